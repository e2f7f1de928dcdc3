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

/* 'v' (0 <= v < 10^n; below 0 writes zeros) as n decimal digits at p; returns the end. */
static char *digits(char *p, int v, int n)
{
	if (v < 0)
		v = 0;
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

/* Written digit by digit: every search page and every audit record stamps one. */
void clock_format_instant(int64_t ms, char out[32])
{
	int frac;
	time_t t = split_ms(ms, &frac);
	struct tm tm;
	char *p = out;

	gmtime_r(&t, &tm);
	p = digits(p, (tm.tm_year + 1900) % 10000, 4);
	*p++ = '-';
	p = digits(p, (tm.tm_mon + 1) % 100, 2);
	*p++ = '-';
	p = digits(p, tm.tm_mday % 100, 2);
	*p++ = 'T';
	p = digits(p, tm.tm_hour % 100, 2);
	*p++ = ':';
	p = digits(p, tm.tm_min % 100, 2);
	*p++ = ':';
	p = digits(p, tm.tm_sec % 100, 2);
	*p++ = '.';
	p = digits(p, frac, 3);
	*p++ = 'Z';
	*p = '\0';
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

void clock_after_ms(clockid_t id, int64_t ms, struct timespec *out)
{
	clock_gettime(id, out);
	out->tv_sec += (time_t)(ms / 1000);
	out->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (out->tv_nsec >= 1000000000L) {
		out->tv_sec++;
		out->tv_nsec -= 1000000000L;
	}
}
