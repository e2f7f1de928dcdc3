/*
 * tests/unit/core/str.c - string helpers: strtonum-style integer parsing,
 * constant-time comparison, the UTF-8 validator (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF, no truncated sequences) and bounded
 * copies.
 */
#include "unit.h"

#include <stdint.h>
#include <string.h>

#include "core/str.h"

/* Parse expecting success. */
static int64_t ok_i64(const char *s, int64_t min, int64_t max)
{
	int64_t v = 0x5a5a;

	assert_int_equal(str_to_i64(s, min, max, &v), ERR_OK);
	return v;
}

/* Parse expecting failure; the output is left alone. */
static void bad_i64(const char *s, int64_t min, int64_t max)
{
	int64_t v = 0x5a5a;

	if (str_to_i64(s, min, max, &v) != ERR_INVALID)
		fail_msg("'%s' was accepted in [%lld, %lld]", s, (long long)min, (long long)max);
	assert_int_equal(v, 0x5a5a);
}

static void test_to_i64(void **state)
{
	(void)state;
	assert_int_equal(ok_i64("0", 0, 10), 0);
	assert_int_equal(ok_i64("10", 0, 10), 10);
	assert_int_equal(ok_i64("-5", -5, 5), -5);
	assert_int_equal(ok_i64("-0", 0, 0), 0);
	assert_int_equal(ok_i64("007", 0, 10), 7);
	assert_true(ok_i64("9223372036854775807", INT64_MIN, INT64_MAX) == INT64_MAX);
	assert_true(ok_i64("-9223372036854775808", INT64_MIN, INT64_MAX) == INT64_MIN);

	/* range, both ends */
	bad_i64("11", 0, 10);
	bad_i64("-1", 0, 10);
	bad_i64("-6", -5, 5);
	bad_i64("6", -5, 5);
	/* overflow */
	bad_i64("9223372036854775808", INT64_MIN, INT64_MAX);
	bad_i64("-9223372036854775809", INT64_MIN, INT64_MAX);
	bad_i64("99999999999999999999999", INT64_MIN, INT64_MAX);
	/* empty and junk */
	bad_i64("", 0, 10);
	bad_i64(NULL, 0, 10);
	bad_i64("-", -10, 10);
	bad_i64("abc", 0, 10);
	bad_i64("1x", 0, 10);
	bad_i64("1.0", 0, 10);
	bad_i64("1e2", 0, 1000);
	bad_i64("0x10", 0, 100);
	/* signs and spaces */
	bad_i64("+1", 0, 10);
	bad_i64(" 1", 0, 10);
	bad_i64("1 ", 0, 10);
	bad_i64("\t1", 0, 10);
	bad_i64("1\n", 0, 10);
	bad_i64("--1", -10, 10);
	bad_i64("-+1", -10, 10);
	bad_i64("- 1", -10, 10);
	bad_i64("+-1", -10, 10);
}

static void test_eq_ct(void **state)
{
	(void)state;
	assert_true(str_eq_ct("secret", 6, "secret", 6));
	assert_true(str_eq_ct("", 0, "", 0));
	assert_true(str_eq_ct(NULL, 0, NULL, 0));
	assert_false(str_eq_ct("secret", 6, "secreT", 6));
	assert_false(str_eq_ct("secret", 6, "Secret", 6));
	assert_false(str_eq_ct("secret", 6, "secret!", 7));
	assert_false(str_eq_ct("secret!", 7, "secret", 6));
	assert_false(str_eq_ct("secret", 6, "", 0));
	/* bytes, not C strings: NUL and high bytes count */
	assert_true(str_eq_ct("a\0b", 3, "a\0b", 3));
	assert_false(str_eq_ct("a\0b", 3, "a\0c", 3));
	assert_false(str_eq_ct("\x80", 1, "\x00", 1));
	/* only the given lengths are compared */
	assert_true(str_eq_ct("abcX", 3, "abcY", 3));
}

static void utf8_ok(const char *s, size_t n)
{
	if (!str_utf8_valid(s, n))
		fail_msg("valid UTF-8 rejected (%zu bytes, first 0x%02x)", n, (unsigned char)s[0]);
}

static void utf8_bad(const char *s, size_t n)
{
	if (str_utf8_valid(s, n))
		fail_msg("invalid UTF-8 accepted (%zu bytes, first 0x%02x)", n, (unsigned char)s[0]);
}

#define OK(lit) utf8_ok(lit, sizeof(lit) - 1)
#define BAD(lit) utf8_bad(lit, sizeof(lit) - 1)

static void test_utf8(void **state)
{
	(void)state;
	utf8_ok("", 0);
	OK("plain ASCII \x01\x7f");
	OK("a\0b"); /* NUL is a valid code point; length decides */
	/* each length at its lowest and highest code point */
	OK("\xc2\x80");                 /* U+0080 */
	OK("\xdf\xbf");                 /* U+07FF */
	OK("\xe0\xa0\x80");             /* U+0800 */
	OK("\xef\xbf\xbf");             /* U+FFFF */
	OK("\xed\x9f\xbf");             /* U+D7FF, just below the surrogates */
	OK("\xee\x80\x80");             /* U+E000, just above */
	OK("\xf0\x90\x80\x80");         /* U+10000 */
	OK("\xf4\x8f\xbf\xbf");         /* U+10FFFF */
	OK("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac");

	/* overlongs */
	BAD("\xc0\x80");
	BAD("\xc1\xbf");
	BAD("\xe0\x80\x80");
	BAD("\xe0\x9f\xbf");
	BAD("\xf0\x80\x80\x80");
	BAD("\xf0\x8f\xbf\xbf");
	/* UTF-16 surrogates */
	BAD("\xed\xa0\x80");            /* U+D800 */
	BAD("\xed\xbf\xbf");            /* U+DFFF */
	BAD("\xed\xa0\xbd\xed\xb8\x80"); /* CESU-8 pair */
	/* above U+10FFFF and never-valid lead bytes */
	BAD("\xf4\x90\x80\x80");        /* U+110000 */
	BAD("\xf5\x80\x80\x80");
	BAD("\xf7\xbf\xbf\xbf");
	BAD("\xf8\x88\x80\x80\x80");
	BAD("\xfc\x84\x80\x80\x80\x80");
	BAD("\xfe");
	BAD("\xff");
	/* stray continuation bytes */
	BAD("\x80");
	BAD("a\xbf");
	/* truncated sequences, at the end and in the middle */
	BAD("\xc3");
	BAD("\xe2\x82");
	BAD("\xf0\x9f\x98");
	BAD("x\xf0\x9f");
	BAD("\xc3x");
	BAD("\xe2\x82x");
	BAD("\xf0\x9f\x98x");
	/* a valid sequence cut by the length argument */
	utf8_bad("\xe2\x82\xac", 2);
	utf8_ok("\xe2\x82\xac", 3);
	utf8_ok("ab\xe2\x82\xac", 2);
}

static void test_copy(void **state)
{
	char dst[8];

	(void)state;
	memset(dst, 'X', sizeof(dst));
	assert_int_equal(str_copy(dst, "abc", sizeof(dst)), 3);
	assert_string_equal(dst, "abc");
	/* exactly fits */
	assert_int_equal(str_copy(dst, "1234567", sizeof(dst)), 7);
	assert_string_equal(dst, "1234567");
	/* truncated, still terminated; returns the source length */
	memset(dst, 'X', sizeof(dst));
	assert_int_equal(str_copy(dst, "123456789abc", sizeof(dst)), 12);
	assert_string_equal(dst, "1234567");
	assert_int_equal(str_copy(dst, "", sizeof(dst)), 0);
	assert_string_equal(dst, "");
	/* size 1: only the terminator */
	assert_int_equal(str_copy(dst, "abc", 1), 3);
	assert_string_equal(dst, "");
	/* size 0: nothing written */
	dst[0] = 'Q';
	assert_int_equal(str_copy(dst, "abc", 0), 3);
	assert_int_equal(dst[0], 'Q');
}

static void test_small_helpers(void **state)
{
	(void)state;
	assert_true(str_starts("Patient/123", "Patient/"));
	assert_true(str_starts("abc", ""));
	assert_false(str_starts("Pat", "Patient"));
	assert_true(str_ends("file.json", ".json"));
	assert_true(str_ends("x", ""));
	assert_false(str_ends("json", ".json"));
	assert_true(str_ieq("Content-Type", "content-TYPE"));
	assert_false(str_ieq("abc", "abd"));
	assert_false(str_ieq("abc", "ab"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_to_i64),
		cmocka_unit_test(test_eq_ct),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_small_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
