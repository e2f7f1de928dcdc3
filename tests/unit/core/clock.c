/*
 * tests/unit/core/clock.c - the settable wall clock and the two date
 * formats: FHIR instants and RFC 7231 HTTP dates (IMF-fixdate).
 */
#include "unit.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"

/* 1994-11-06T08:49:37Z, the RFC 7231 example. */
#define RFC_EXAMPLE_MS 784111777000LL
/* 9999-12-31T23:59:59.999Z, the last FHIR instant. */
#define LAST_INSTANT_MS 253402300799999LL

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int reset_clock(void **state)
{
	(void)state;
	clock_set_fixed(0);
	clock_set_offset(0);
	return 0;
}

static void test_real_time(void **state)
{
	int64_t before, now, after;

	(void)state;
	before = real_ms();
	now = clock_now_ms();
	after = real_ms();
	assert_true(before <= now && now <= after);
}

static void test_fixed(void **state)
{
	(void)state;
	clock_set_fixed(RFC_EXAMPLE_MS + 123);
	assert_int_equal(clock_now_ms(), RFC_EXAMPLE_MS + 123);
	assert_int_equal(clock_now_ms(), RFC_EXAMPLE_MS + 123);
	clock_set_fixed(1);
	assert_int_equal(clock_now_ms(), 1);
	/* 0 returns to real time */
	clock_set_fixed(0);
	assert_true(clock_now_ms() > RFC_EXAMPLE_MS * 2);
}

static void test_offset(void **state)
{
	int64_t day = 86400000, before, now, after;

	(void)state;
	clock_set_offset(30 * day);
	before = real_ms();
	now = clock_now_ms();
	after = real_ms();
	assert_true(before + 30 * day <= now && now <= after + 30 * day);

	clock_set_offset(-day);
	before = real_ms();
	now = clock_now_ms();
	after = real_ms();
	assert_true(before - day <= now && now <= after - day);

	clock_set_offset(0);
	before = real_ms();
	now = clock_now_ms();
	assert_true(now >= before && now - before < day);
}

static void test_mono(void **state)
{
	int64_t a, b;
	struct timespec ts = {0, 2000000};

	(void)state;
	a = clock_mono_us();
	nanosleep(&ts, NULL);
	b = clock_mono_us();
	assert_true(b - a >= 2000);
	/* the monotonic clock is not moved by the wall-clock settings */
	clock_set_fixed(5);
	assert_true(clock_mono_us() >= b);
}

static void instant_is(int64_t ms, const char *want)
{
	char out[32];

	memset(out, 'X', sizeof(out));
	clock_format_instant(ms, out);
	assert_string_equal(out, want);
	assert_int_equal(strlen(out), 24);
}

static void test_format_instant(void **state)
{
	(void)state;
	instant_is(0, "1970-01-01T00:00:00.000Z");
	instant_is(1, "1970-01-01T00:00:00.001Z");
	instant_is(999, "1970-01-01T00:00:00.999Z");
	instant_is(1000, "1970-01-01T00:00:01.000Z");
	instant_is(RFC_EXAMPLE_MS + 7, "1994-11-06T08:49:37.007Z");
	instant_is(RFC_EXAMPLE_MS + 120, "1994-11-06T08:49:37.120Z");
	instant_is(951782400000LL, "2000-02-29T00:00:00.000Z");
	instant_is(1709251199999LL, "2024-02-29T23:59:59.999Z");
	instant_is(LAST_INSTANT_MS, "9999-12-31T23:59:59.999Z");
	instant_is(253402214400000LL, "9999-12-31T00:00:00.000Z");
	/* before the epoch the milliseconds still count up within the second */
	instant_is(-1, "1969-12-31T23:59:59.999Z");
	instant_is(-1000, "1969-12-31T23:59:59.000Z");
	instant_is(-1001, "1969-12-31T23:59:58.999Z");
	instant_is(-14182940000LL, "1969-07-20T20:17:40.000Z");
}

static void http_is(int64_t ms, const char *want)
{
	char out[40];

	clock_format_http(ms, out);
	assert_string_equal(out, want);
}

static void test_format_http(void **state)
{
	(void)state;
	http_is(RFC_EXAMPLE_MS, "Sun, 06 Nov 1994 08:49:37 GMT");
	/* milliseconds are dropped, not rounded */
	http_is(RFC_EXAMPLE_MS + 999, "Sun, 06 Nov 1994 08:49:37 GMT");
	http_is(0, "Thu, 01 Jan 1970 00:00:00 GMT");
	http_is(-1, "Wed, 31 Dec 1969 23:59:59 GMT");
	http_is(-1500, "Wed, 31 Dec 1969 23:59:58 GMT");
	http_is(LAST_INSTANT_MS, "Fri, 31 Dec 9999 23:59:59 GMT");
}

static void test_http_round_trip(void **state)
{
	static const int64_t samples[] = {
		0, 1000, RFC_EXAMPLE_MS, 951782400000LL, 1709251199000LL,
		1700000000000LL, 4102444800000LL, 253402300799000LL, -86400000LL,
	};
	char out[40];
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		clock_format_http(samples[i], out);
		ms = -42;
		assert_int_equal(clock_parse_http(out, &ms), ERR_OK);
		assert_int_equal(ms, samples[i]);
	}
	/* whole seconds: formatting drops the milliseconds */
	clock_format_http(RFC_EXAMPLE_MS + 456, out);
	assert_int_equal(clock_parse_http(out, &ms), ERR_OK);
	assert_int_equal(ms, RFC_EXAMPLE_MS);
	/* every day of a leap year */
	for (int64_t d = 0; d < 366; d++) {
		int64_t t = 946684800000LL + d * 86400000 + 3723000;
		clock_format_http(t, out);
		assert_int_equal(clock_parse_http(out, &ms), ERR_OK);
		assert_int_equal(ms, t);
	}
}

static void test_http_rejects(void **state)
{
	static const char *const junk[] = {
		"",
		"junk",
		"Sun, 06 Nov 1994 08:49:37 GMT trailing",
		"Sun, 06 Nov 1994 08:49:37 GMT\r\n",
		" Sun, 06 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37",
		"Sun, 06 Nov 1994 08:49:37 UTC",
		"Sun, 06 Nov 1994 08:49:37 gmt",
		"Sun, 06 Nov 1994",
		"Sun, 06 Xyz 1994 08:49:37 GMT",
		"Sun, 32 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 25:49:37 GMT",
		"Sun, 06 Nov 1994 08:61:37 GMT",
		"1994-11-06T08:49:37Z",
		"784111777",
		/* well-formed looking but not a real date, or not canonical */
		"Tue, 31 Feb 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:60 GMT",
		"Mon, 06 Nov 1994 08:49:37 GMT",
		"sun, 06 nov 1994 08:49:37 GMT",
		"Sunday, 06 Nov 1994 08:49:37 GMT",
		"Sun, 6 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 94 08:49:37 GMT",
		"Sun, 06 November 1994 08:49:37 GMT",
		"Sun,06 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 8:49:37 GMT",
		NULL,
	};
	int64_t ms;

	(void)state;
	for (int i = 0; junk[i]; i++) {
		ms = 12345;
		if (clock_parse_http(junk[i], &ms) != ERR_INVALID)
			fail_msg("accepted '%s'", junk[i]);
		assert_int_equal(ms, 12345);
	}
}

/* clock_after_ms: a deadline 'ms' ahead on the clock asked for, nanoseconds normalized. */
static void test_after_ms(void **state)
{
	struct timespec now, at;

	(void)state;
	for (int64_t ms = 0; ms < 3000; ms += 999) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		clock_after_ms(CLOCK_MONOTONIC, ms, &at);
		int64_t d = (int64_t)(at.tv_sec - now.tv_sec) * 1000000000LL + (at.tv_nsec - now.tv_nsec);

		assert_true(at.tv_nsec >= 0 && at.tv_nsec < 1000000000L);
		assert_true(d >= ms * 1000000LL && d < ms * 1000000LL + 100000000LL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_real_time, reset_clock),
		cmocka_unit_test_teardown(test_fixed, reset_clock),
		cmocka_unit_test_teardown(test_offset, reset_clock),
		cmocka_unit_test_teardown(test_mono, reset_clock),
		cmocka_unit_test(test_after_ms),
		cmocka_unit_test(test_format_instant),
		cmocka_unit_test(test_format_http),
		cmocka_unit_test(test_http_round_trip),
		cmocka_unit_test(test_http_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
