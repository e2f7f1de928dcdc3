/*
 * date.c - FHIR date, dateTime and instant values as millisecond ranges.
 *
 * Accepted forms (R4 regexes, plus minute precision for search values):
 *   YYYY | YYYY-MM | YYYY-MM-DD                      (taken as UTC)
 *   YYYY-MM-DDThh:mm(Z|+hh:mm|-hh:mm)                (minute precision)
 *   YYYY-MM-DDThh:mm:ss[.f+](Z|+hh:mm|-hh:mm)        (second / fraction)
 * Year 0001-9999, month 01-12, day valid for the month (leap years),
 * hour 00-23, minute 00-59, second 00-60 (the regex allows a leap second,
 * which simply counts as the first second of the next minute), offset
 * -14:00..+14:00.  A time in a resource always needs a zone; a search value
 * may leave it out, and is then taken as UTC like a date without a time.
 * Pure functions; thread-safe.
 */
#include "fhir/model.h"

#include <string.h>

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* Read exactly n digits at *p into *v and advance; false when not digits. */
static bool digits(const char **p, int n, int *v)
{
	int x = 0;

	for (int i = 0; i < n; i++) {
		char ch = (*p)[i];
		if (ch < '0' || ch > '9')
			return false;
		x = x * 10 + (ch - '0');
	}
	*p += n;
	*v = x;
	return true;
}

/* Parse a zone at *p into an offset in minutes east of UTC. */
static bool zone(const char **p, int *offset_min)
{
	const char *s = *p;
	int hh, mm, sign;

	if (*s == 'Z') {
		*offset_min = 0;
		*p = s + 1;
		return true;
	}
	if (*s != '+' && *s != '-')
		return false;
	sign = *s == '-' ? -1 : 1;
	s++;
	if (!digits(&s, 2, &hh) || *s++ != ':' || !digits(&s, 2, &mm))
		return false;
	if (mm > 59 || hh > 14 || (hh == 14 && mm != 0))
		return false;
	*offset_min = sign * (hh * 60 + mm);
	*p = s;
	return true;
}

#define MS_MIN INT64_C(60000)
#define MS_DAY INT64_C(86400000)

/* Parse 's'; a time without a zone is UTC when 'zone_optional', else invalid. */
static enum err parse(const char *s, bool zone_optional, int64_t *lo, int64_t *hi)
{
	const char *p = s;
	int y, m = 1, d = 1, hh = 0, mi = 0, ss = 0, ms = 0, off = 0;
	int64_t start, width;

	if (!s || !digits(&p, 4, &y) || y == 0)
		return ERR_INVALID;
	if (*p == '\0') {
		start = days_from_civil(y, 1, 1) * MS_DAY;
		width = days_from_civil(y + 1, 1, 1) * MS_DAY - start;
		goto done;
	}
	if (*p++ != '-' || !digits(&p, 2, &m) || m < 1 || m > 12)
		return ERR_INVALID;
	if (*p == '\0') {
		start = days_from_civil(y, (unsigned)m, 1) * MS_DAY;
		width = (int64_t)month_days(y, m) * MS_DAY;
		goto done;
	}
	if (*p++ != '-' || !digits(&p, 2, &d) || d < 1 || d > month_days(y, m))
		return ERR_INVALID;
	if (*p == '\0') {
		start = days_from_civil(y, (unsigned)m, (unsigned)d) * MS_DAY;
		width = MS_DAY;
		goto done;
	}
	if (*p++ != 'T' || !digits(&p, 2, &hh) || hh > 23 || *p++ != ':' ||
	    !digits(&p, 2, &mi) || mi > 59)
		return ERR_INVALID;
	width = MS_MIN;
	if (*p == ':') {
		p++;
		if (!digits(&p, 2, &ss) || ss > 60)
			return ERR_INVALID;
		width = 1000;
		if (*p == '.') {
			int n = 0;
			p++;
			while (*p >= '0' && *p <= '9') {
				if (n < 3)
					ms = ms * 10 + (*p - '0');
				n++;
				p++;
			}
			if (n == 0)
				return ERR_INVALID;
			for (int k = n; k < 3; k++)
				ms *= 10;
			width = n == 1 ? 100 : n == 2 ? 10 : 1;
		}
	}
	if (!(zone_optional && *p == '\0') && !zone(&p, &off))
		return ERR_INVALID;
	if (*p != '\0')
		return ERR_INVALID;
	start = days_from_civil(y, (unsigned)m, (unsigned)d) * MS_DAY +
		((int64_t)hh * 60 + mi - off) * MS_MIN + (int64_t)ss * 1000 + ms;
done:
	*lo = start;
	*hi = start + width - 1;
	return ERR_OK;
}

enum err fhir_date_parse(const char *s, int64_t *lo, int64_t *hi)
{
	return parse(s, false, lo, hi);
}

enum err fhir_date_parse_search(const char *s, int64_t *lo, int64_t *hi)
{
	return parse(s, true, lo, hi);
}
