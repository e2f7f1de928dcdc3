/* Tests for fhir_date_parse(): every precision, zones, leap years, bad input. */
#include "unit.h"

#include "fhir/model.h"

/* 2023-04-05T00:00:00Z */
#define D20230405 INT64_C(1680652800000)
#define DAY INT64_C(86400000)

static void expect_range(const char *s, int64_t lo, int64_t hi)
{
	int64_t l = 0, h = 0;

	if (fhir_date_parse(s, &l, &h) != ERR_OK)
		fail_msg("'%s' was rejected", s);
	if (l != lo || h != hi)
		fail_msg("'%s': got [%lld, %lld], want [%lld, %lld]", s, (long long)l, (long long)h,
			 (long long)lo, (long long)hi);
}

static void expect_bad(const char *s)
{
	int64_t l = 0, h = 0;

	if (fhir_date_parse(s, &l, &h) != ERR_INVALID)
		fail_msg("'%s' was accepted as [%lld, %lld]", s, (long long)l, (long long)h);
}

static void test_year(void **state)
{
	(void)state;
	/* 2023-01-01T00:00:00Z .. 2023-12-31T23:59:59.999Z */
	expect_range("2023", INT64_C(1672531200000), INT64_C(1704067199999));
	expect_range("1970", 0, 365 * DAY - 1);
	/* a leap year is 366 days */
	expect_range("2024", INT64_C(1704067200000), INT64_C(1704067200000) + 366 * DAY - 1);
	expect_range("0001", INT64_C(-62135596800000), INT64_C(-62135596800000) + 365 * DAY - 1);
	expect_range("9999", INT64_C(253370764800000), INT64_C(253402300799999));
}

static void test_month(void **state)
{
	(void)state;
	expect_range("2023-04", INT64_C(1680307200000), INT64_C(1680307200000) + 30 * DAY - 1);
	expect_range("2023-02", INT64_C(1675209600000), INT64_C(1675209600000) + 28 * DAY - 1);
	expect_range("2024-02", INT64_C(1706745600000), INT64_C(1706745600000) + 29 * DAY - 1);
	expect_range("2023-12", INT64_C(1701388800000), INT64_C(1704067199999));
}

static void test_day(void **state)
{
	(void)state;
	expect_range("2023-04-05", D20230405, D20230405 + DAY - 1);
	expect_range("1970-01-01", 0, DAY - 1);
	expect_range("1969-12-31", -DAY, -1);
	expect_range("2024-02-29", INT64_C(1709164800000), INT64_C(1709164800000) + DAY - 1);
	expect_range("2000-02-29", INT64_C(951782400000), INT64_C(951782400000) + DAY - 1);
}

static void test_minute_second_fraction(void **state)
{
	(void)state;
	int64_t t = D20230405 + 10 * INT64_C(3600000);    /* 10:00Z */

	expect_range("2023-04-05T10:00Z", t, t + 60000 - 1);
	expect_range("2023-04-05T10:00:00Z", t, t + 999);
	expect_range("2023-04-05T10:00:07Z", t + 7000, t + 7999);
	expect_range("2023-04-05T10:00:07.1Z", t + 7100, t + 7199);
	expect_range("2023-04-05T10:00:07.12Z", t + 7120, t + 7129);
	expect_range("2023-04-05T10:00:07.123Z", t + 7123, t + 7123);
	expect_range("2023-04-05T10:00:07.123456Z", t + 7123, t + 7123);
	expect_range("2023-04-05T23:59:59.999Z", D20230405 + DAY - 1, D20230405 + DAY - 1);
	/* the regex allows a leap second */
	expect_range("2016-12-31T23:59:60Z", INT64_C(1483228800000), INT64_C(1483228800999));
}

static void test_zones(void **state)
{
	(void)state;
	int64_t t = D20230405 + 10 * INT64_C(3600000);

	expect_range("2023-04-05T12:00:00+02:00", t, t + 999);
	expect_range("2023-04-05T05:30:00-04:30", t, t + 999);
	expect_range("2023-04-05T10:00:00+00:00", t, t + 999);
	expect_range("2023-04-05T10:00:00-00:00", t, t + 999);
	expect_range("2023-04-06T00:00:00+14:00", t, t + 999);
	expect_range("2023-04-04T21:00:00-13:00", t, t + 999);
	/* crossing a day and a year boundary */
	expect_range("2022-12-31T23:00:00-01:00", INT64_C(1672531200000), INT64_C(1672531200999));
	expect_range("1996-12-27T04:21:52-05:00", INT64_C(851678512000), INT64_C(851678512999));
	expect_range("1987-11-19T00:22:16.824-05:00", INT64_C(564297736824), INT64_C(564297736824));
}

static void test_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "2", "202", "20234", "0000", "-2023", "+2023", "2023-", "2023-1", "2023-13",
		"2023-00", "2023-04-", "2023-04-5", "2023-04-00", "2023-04-31", "2023-02-29",
		"1900-02-29", "2100-02-29", "2023-02-30", "2023-06-31", "2023-04-05T",
		"2023-04-05T10", "2023-04-05T10:00", "2023-04-05T10:00:00",
		"2023-04-05T24:00:00Z", "2023-04-05T23:60:00Z", "2023-04-05T23:00:61Z",
		"2023-04-05T10:00:00.Z", "2023-04-05T10:00:00+15:00", "2023-04-05T10:00:00+14:30",
		"2023-04-05T10:00:00+1:00", "2023-04-05T10:00:00+01", "2023-04-05T10:00:00+01:60",
		"2023-04-05T10:00:00ZZ", "2023-04-05T10:00:00Z ", " 2023", "2023x", "2023-04x",
		"2023-04-05x", "2023-04-05 10:00:00Z", "2023/04/05", "2023-04-05t10:00:00z",
		"abcd", "2023-04-05T1a:00:00Z", "2023-04-05T10:00:00.12a", NULL,
	};
	for (size_t i = 0; bad[i]; i++)
		expect_bad(bad[i]);
	{
		int64_t l, h;
		assert_int_equal(fhir_date_parse(NULL, &l, &h), ERR_INVALID);
	}
}

/* fhir_date_parse_search(): a time without a zone is UTC; the rest as before. */
static void test_search_value_without_zone(void **state)
{
	(void)state;
	int64_t t = D20230405 + 10 * INT64_C(3600000), l = 0, h = 0;
	static const struct {
		const char *s;
		int64_t lo, hi;
	} ok[] = {
		{"2023-04-05T10:00", 0, 60000 - 1},
		{"2023-04-05T10:00:00", 0, 999},
		{"2023-04-05T10:00:07.25", 7250, 7259},
		{"2023-04-05T10:00:00Z", 0, 999},
		{"2023-04-05T12:00:00+02:00", 0, 999},
	};
	static const char *const bad[] = {
		"2023-04-05T10", "2023-04-05T10:00:00.", "2023-04-05T10:00:00 ", "2023-04-05T10:00:00+01",
		"2023-04-05T", "2023-04-05T10:00:00ZZ", NULL,
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (fhir_date_parse_search(ok[i].s, &l, &h) != ERR_OK)
			fail_msg("'%s' was rejected", ok[i].s);
		if (l != t + ok[i].lo || h != t + ok[i].hi)
			fail_msg("'%s': got [%lld, %lld]", ok[i].s, (long long)l, (long long)h);
	}
	for (size_t i = 0; bad[i]; i++)
		if (fhir_date_parse_search(bad[i], &l, &h) != ERR_INVALID)
			fail_msg("'%s' was accepted", bad[i]);
	/* a resource's dateTime still needs its zone */
	assert_int_equal(fhir_date_parse("2023-04-05T10:00:00", &l, &h), ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_year),
		cmocka_unit_test(test_month),
		cmocka_unit_test(test_day),
		cmocka_unit_test(test_minute_second_fraction),
		cmocka_unit_test(test_zones),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_search_value_without_zone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
