/* clock.c - settable wall clock.  See clock.h. */
#include "core/clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static _Atomic int64_t fixed_ms;
static _Atomic int64_t offset_ms;

int64_t clock_now_ms(void)
{
	struct timespec ts;
	int64_t f = atomic_load(&fixed_ms);

	if (f)
		return f;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
	       atomic_load(&offset_ms);
}

int64_t clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void clock_set_fixed(int64_t ms)
{
	atomic_store(&fixed_ms, ms);
}

void clock_set_offset(int64_t ms)
{
	atomic_store(&offset_ms, ms);
}

/*
 * Whole seconds and the millisecond remainder, rounded towards minus
 * infinity so instants before 1970 come out right (-1 ms is
 * 1969-12-31T23:59:59.999Z, not 1970-01-01T00:00:00.-01Z).
 */
static time_t split_ms(int64_t ms, int *frac)
{
	int64_t sec = ms / 1000, rem = ms % 1000;

	if (rem < 0) {
		sec--;
		rem += 1000;
	}
	if (frac)
		*frac = (int)rem;
	return (time_t)sec;
}

void clock_format_instant(int64_t ms, char out[32])
{
	int frac;
	time_t t = split_ms(ms, &frac);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100,
		 tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, frac);
}

void clock_format_http(int64_t ms, char out[40])
{
	time_t t = split_ms(ms, NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/*
 * strptime() is lenient: it takes "sun", "Sunday", "6", the year "94",
 * 31 February and second 60, and timegm() quietly normalizes the result.
 * HTTP-date is case-sensitive with fixed-width fields (RFC 7231 section
 * 7.1.1.1), so a date is accepted only when formatting the parsed time
 * gives back exactly the input; a recipient ignores an invalid date.
 */
enum err clock_parse_http(const char *s, int64_t *ms)
{
	struct tm tm;
	const char *end;
	char again[40];
	int64_t v;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return ERR_INVALID;
	v = (int64_t)timegm(&tm) * 1000;
	clock_format_http(v, again);
	if (strcmp(again, s) != 0)
		return ERR_INVALID;
	*ms = v;
	return ERR_OK;
}
