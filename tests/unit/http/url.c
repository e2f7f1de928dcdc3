/*
 * tests/unit/http/url.c - percent-decoding and -encoding, form parsing,
 * request-id validation and traceparent parsing, malformed input included.
 */
#include "unit.h"

#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "http/http.h"

struct dec_case {
	const char *in;
	bool form;
	enum err want;
	const char *out; /* when ERR_OK */
	size_t out_len;
};

static void test_pct_decode(void **state)
{
	static const struct dec_case cases[] = {
		{"", false, ERR_OK, "", 0},
		{"abc", false, ERR_OK, "abc", 3},
		{"a%20b", false, ERR_OK, "a b", 3},
		{"a+b", false, ERR_OK, "a+b", 3},
		{"a+b", true, ERR_OK, "a b", 3},
		{"%2B", true, ERR_OK, "+", 1},
		{"%2f%2F", false, ERR_OK, "//", 2},
		{"%C3%A9", false, ERR_OK, "\xc3\xa9", 2},
		{"%ff", false, ERR_OK, "\xff", 1},
		{"%", false, ERR_INVALID, NULL, 0},
		{"%4", false, ERR_INVALID, NULL, 0},
		{"abc%", false, ERR_INVALID, NULL, 0},
		{"%zz", false, ERR_INVALID, NULL, 0},
		{"%4g", false, ERR_INVALID, NULL, 0},
		{"%00", false, ERR_INVALID, NULL, 0},
		{"a%00b", true, ERR_INVALID, NULL, 0},
		{"%%41", false, ERR_INVALID, NULL, 0},
		{"%+1", true, ERR_INVALID, NULL, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = BUF_INIT(64);
		enum err e;

		buf_adds(&b, "x");
		e = http_pct_decode(cases[i].in, strlen(cases[i].in), cases[i].form, &b);
		assert_int_equal(e, cases[i].want);
		if (e == ERR_OK) {
			assert_int_equal(b.len, 1 + cases[i].out_len);
			assert_memory_equal(b.data + 1, cases[i].out, cases[i].out_len);
		} else {
			/* earlier content kept, still NUL-terminated */
			assert_int_equal(b.len, 1);
			assert_string_equal(b.data, "x");
		}
		buf_release(&b);
	}
}

static void test_pct_decode_limits(void **state)
{
	struct buf b = BUF_INIT(4);
	static const char raw_nul[] = {'a', '\0', 'b'};

	(void)state;
	assert_int_equal(http_pct_decode("abcdef", 6, false, &b), ERR_TOOBIG);
	buf_release(&b);
	/* fits once decoded, but the input length is what is reserved */
	assert_int_equal(http_pct_decode("%41%42", 6, false, &b), ERR_TOOBIG);
	buf_release(&b);
	assert_int_equal(http_pct_decode("abcd", 4, false, &b), ERR_OK);
	assert_string_equal(b.data, "abcd");
	buf_release(&b);
	/* a raw NUL byte inside the input is refused like an encoded one */
	assert_int_equal(http_pct_decode(raw_nul, sizeof(raw_nul), false, &b), ERR_INVALID);
	buf_release(&b);
	/* length-bounded: bytes past n are not read */
	assert_int_equal(http_pct_decode("ab%4", 2, false, &b), ERR_OK);
	assert_string_equal(b.data, "ab");
	buf_release(&b);
}

static void test_pct_encode(void **state)
{
	struct buf b = BUF_INIT(256);
	struct buf round = BUF_INIT(256);
	static const char all[] = "a-b_c.d~e f/g?h&i=j+k%l\xc3\xa9\x01";

	(void)state;
	assert_int_equal(http_pct_encode(all, strlen(all), &b), ERR_OK);
	assert_string_equal(b.data, "a-b_c.d~e%20f%2Fg%3Fh%26i%3Dj%2Bk%25l%C3%A9%01");
	assert_int_equal(http_pct_decode(b.data, b.len, true, &round), ERR_OK);
	assert_string_equal(round.data, all);
	buf_release(&b);
	buf_release(&round);

	buf_init(&b, 4);
	assert_int_equal(http_pct_encode("ab/", 3, &b), ERR_TOOBIG);
	buf_release(&b);
	assert_int_equal(http_pct_encode("", 0, &b), ERR_OK);
	assert_string_equal(b.data, "");
	buf_release(&b);
}

static void test_form_parse(void **state)
{
	struct arena a = ARENA_INIT;
	struct ctx c = CTX_INIT;
	struct http_pair *p;
	size_t n;
	const char *s = "a=1&b=two+words&a=%33&&flag&=empty&c=&d=x%3Dy%26z&";

	(void)state;
	assert_int_equal(http_form_parse(&a, s, strlen(s), 100, &p, &n, &c), ERR_OK);
	assert_int_equal(n, 7);
	assert_string_equal(p[0].name, "a");
	assert_string_equal(p[0].value, "1");
	assert_string_equal(p[1].name, "b");
	assert_string_equal(p[1].value, "two words");
	assert_string_equal(p[2].name, "a");
	assert_string_equal(p[2].value, "3");
	assert_string_equal(p[3].name, "flag");
	assert_string_equal(p[3].value, "");
	assert_string_equal(p[4].name, "");
	assert_string_equal(p[4].value, "empty");
	assert_string_equal(p[5].name, "c");
	assert_string_equal(p[5].value, "");
	assert_string_equal(p[6].name, "d");
	assert_string_equal(p[6].value, "x=y&z");

	/* empty input and only separators: no pairs */
	assert_int_equal(http_form_parse(&a, "", 0, 10, &p, &n, &c), ERR_OK);
	assert_int_equal(n, 0);
	assert_null(p);
	assert_int_equal(http_form_parse(&a, NULL, 0, 10, &p, &n, &c), ERR_OK);
	assert_int_equal(n, 0);
	assert_int_equal(http_form_parse(&a, "&&&", 3, 10, &p, &n, &c), ERR_OK);
	assert_int_equal(n, 0);

	/* length-bounded: stops at len even without a NUL */
	assert_int_equal(http_form_parse(&a, "x=1&y=2", 3, 10, &p, &n, &c), ERR_OK);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].value, "1");

	/* too many pairs */
	assert_int_equal(http_form_parse(&a, "a&b&c", 5, 2, &p, &n, &c), ERR_TOOBIG);
	assert_int_equal(c.code, ERR_TOOBIG);
	assert_int_equal(n, 0);
	assert_null(p);
	ctx_clear(&c);
	assert_int_equal(http_form_parse(&a, "a&b", 3, 0, &p, &n, &c), ERR_TOOBIG);
	ctx_clear(&c);

	/* malformed escapes and NULs */
	assert_int_equal(http_form_parse(&a, "a=%zz", 5, 10, &p, &n, &c), ERR_INVALID);
	assert_int_equal(c.code, ERR_INVALID);
	assert_int_equal(n, 0);
	ctx_clear(&c);
	assert_int_equal(http_form_parse(&a, "%0=1", 4, 10, &p, &n, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(http_form_parse(&a, "a=%00", 5, 10, &p, &n, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(http_form_parse(&a, "a=b\0c", 5, 10, &p, &n, &c), ERR_INVALID);
	ctx_clear(&c);
	/* names and values are UTF-8 text: invalid, overlong or surrogate bytes are malformed */
	assert_int_equal(http_form_parse(&a, "a=%FF", 5, 10, &p, &n, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(http_form_parse(&a, "%C0%AE=1", 8, 10, &p, &n, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(http_form_parse(&a, "a=%ED%A0%80", 11, 10, &p, &n, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(http_form_parse(&a, "a=%C3%A9", 8, 10, &p, &n, &c), ERR_OK);
	assert_string_equal(p[0].value, "\xc3\xa9");
	/* a NULL context is fine */
	assert_int_equal(http_form_parse(&a, "a=%", 3, 10, &p, &n, NULL), ERR_INVALID);
	arena_release(&a);
}

static void test_request_id(void **state)
{
	char long_ok[65], too_long[66];

	(void)state;
	memset(long_ok, 'a', 64);
	long_ok[64] = '\0';
	memset(too_long, 'a', 65);
	too_long[65] = '\0';
	assert_true(http_request_id_valid("abc"));
	assert_true(http_request_id_valid("A-b_c.d:9"));
	assert_true(http_request_id_valid("0f8fad5b-d9cb-469f-a165-70867728950e"));
	assert_true(http_request_id_valid(long_ok));
	assert_false(http_request_id_valid(too_long));
	assert_false(http_request_id_valid(""));
	assert_false(http_request_id_valid(NULL));
	assert_false(http_request_id_valid("a b"));
	assert_false(http_request_id_valid("a\"b"));
	assert_false(http_request_id_valid("a\nb"));
	assert_false(http_request_id_valid("a/b"));
	assert_false(http_request_id_valid("\xc3\xa9"));
}

static void test_traceparent(void **state)
{
	static const char *const bad[] = {
		"",
		"00",
		/* all-zero trace id, all-zero parent id */
		"00-00000000000000000000000000000000-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
		/* uppercase hex */
		"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
		/* version ff */
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		/* wrong separators or lengths */
		"00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
		/* version 00 must not carry more */
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
		/* a later version's extra part must start with '-' */
		"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
		"zz-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	};
	char trace[33], parent[17];
	size_t i;

	(void)state;
	assert_int_equal(http_traceparent_parse(
				 "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", trace, parent),
			 ERR_OK);
	assert_string_equal(trace, "0af7651916cd43dd8448eb211c80319c");
	assert_string_equal(parent, "b7ad6b7169203331");
	/* a future version with more fields is accepted */
	assert_int_equal(http_traceparent_parse(
				 "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-what-ever",
				 trace, parent),
			 ERR_OK);
	assert_string_equal(trace, "0af7651916cd43dd8448eb211c80319c");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(http_traceparent_parse(bad[i], trace, parent), ERR_INVALID);
		assert_string_equal(trace, "");
		assert_string_equal(parent, "");
	}
	assert_int_equal(http_traceparent_parse(NULL, trace, parent), ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pct_decode),
		cmocka_unit_test(test_pct_decode_limits),
		cmocka_unit_test(test_pct_encode),
		cmocka_unit_test(test_form_parse),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_traceparent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
