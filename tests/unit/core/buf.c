/*
 * tests/unit/core/buf.c - struct buf: the never-NULL, always NUL-terminated
 * invariant, the hard cap and its sticky error, formatting, JSON string
 * escaping, ownership hand-over and reuse.
 */
#include "unit.h"

#include <string.h>

#include "core/buf.h"

/* The invariants every test re-checks after each operation. */
static void check_invariants(const struct buf *b)
{
	assert_non_null(b->data);
	assert_true(b->len <= b->max);
	assert_int_equal(b->data[b->len], '\0');
	if (b->cap)
		assert_true(b->len < b->cap);
}

static void test_init_empty(void **state)
{
	struct buf a = BUF_INIT(100);
	struct buf b;

	(void)state;
	buf_init(&b, 100);
	check_invariants(&a);
	check_invariants(&b);
	assert_string_equal(a.data, "");
	assert_string_equal(b.data, "");
	assert_int_equal(a.len, 0);
	assert_int_equal(a.err, ERR_OK);
	assert_int_equal(b.max, 100);
	/* releasing an empty buffer is fine and leaves it empty */
	buf_release(&a);
	check_invariants(&a);
	buf_reset(&b);
	check_invariants(&b);
	assert_string_equal(b.data, "");
}

static void test_add_grows(void **state)
{
	struct buf b = BUF_INIT(1 << 20);
	char expect[10001];

	(void)state;
	assert_int_equal(buf_adds(&b, "hello"), ERR_OK);
	check_invariants(&b);
	assert_string_equal(b.data, "hello");
	assert_int_equal(b.len, 5);
	assert_int_equal(buf_addch(&b, ' '), ERR_OK);
	assert_int_equal(buf_add(&b, "worldXXX", 5), ERR_OK);
	check_invariants(&b);
	assert_string_equal(b.data, "hello world");
	/* embedded NUL bytes are data, still terminated after them */
	assert_int_equal(buf_add(&b, "a\0b", 3), ERR_OK);
	assert_int_equal(b.len, 14);
	assert_memory_equal(b.data, "hello worlda\0b", 15);
	check_invariants(&b);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	/* many appends across several reallocations */
	for (int i = 0; i < 10000; i++) {
		expect[i] = (char)('a' + i % 26);
		assert_int_equal(buf_addch(&b, expect[i]), ERR_OK);
	}
	expect[10000] = '\0';
	check_invariants(&b);
	assert_int_equal(b.len, 10000);
	assert_string_equal(b.data, expect);
	/* adding nothing is fine even to an empty buffer */
	buf_release(&b);
	assert_int_equal(buf_add(&b, "", 0), ERR_OK);
	check_invariants(&b);
	assert_string_equal(b.data, "");
	buf_release(&b);
}

static void test_cap_exact(void **state)
{
	struct buf b = BUF_INIT(8);

	(void)state;
	/* exactly max bytes fit */
	assert_int_equal(buf_adds(&b, "12345678"), ERR_OK);
	check_invariants(&b);
	assert_string_equal(b.data, "12345678");
	/* one more does not, and nothing of it is written */
	assert_int_equal(buf_addch(&b, '9'), ERR_TOOBIG);
	check_invariants(&b);
	assert_string_equal(b.data, "12345678");
	assert_int_equal(b.err, ERR_TOOBIG);
	buf_release(&b);
}

static void test_cap_sticky(void **state)
{
	struct buf b = BUF_INIT(10);

	(void)state;
	assert_int_equal(buf_adds(&b, "abc"), ERR_OK);
	assert_int_equal(buf_adds(&b, "0123456789"), ERR_TOOBIG);
	check_invariants(&b);
	/* the failed append left the contents alone */
	assert_string_equal(b.data, "abc");
	assert_int_equal(b.len, 3);
	/* later appends, even ones that would fit, are no-ops keeping the error */
	assert_int_equal(buf_addch(&b, 'd'), ERR_TOOBIG);
	assert_int_equal(buf_adds(&b, "e"), ERR_TOOBIG);
	assert_int_equal(buf_add(&b, "f", 1), ERR_TOOBIG);
	assert_int_equal(buf_addf(&b, "%d", 1), ERR_TOOBIG);
	assert_int_equal(buf_add_json_str(&b, "g", 1), ERR_TOOBIG);
	assert_int_equal(buf_grow(&b, 1), ERR_TOOBIG);
	assert_int_equal(b.err, ERR_TOOBIG);
	assert_string_equal(b.data, "abc");
	check_invariants(&b);
	/* reset clears the error and keeps the cap */
	buf_reset(&b);
	assert_int_equal(b.err, ERR_OK);
	assert_int_equal(buf_adds(&b, "0123456789"), ERR_OK);
	assert_string_equal(b.data, "0123456789");
	assert_int_equal(buf_addch(&b, 'x'), ERR_TOOBIG);
	buf_release(&b);
}

static void test_cap_zero_and_huge(void **state)
{
	struct buf b = BUF_INIT(0);

	(void)state;
	assert_int_equal(buf_add(&b, "", 0), ERR_OK);
	check_invariants(&b);
	assert_int_equal(buf_addch(&b, 'x'), ERR_TOOBIG);
	assert_string_equal(b.data, "");
	buf_release(&b);

	/* a request of SIZE_MAX bytes must fail on the cap, not wrap around */
	buf_init(&b, 64);
	assert_int_equal(buf_adds(&b, "a"), ERR_OK);
	assert_int_equal(buf_grow(&b, (size_t)-1), ERR_TOOBIG);
	assert_string_equal(b.data, "a");
	buf_release(&b);
}

static void test_addf(void **state)
{
	struct buf b = BUF_INIT(1 << 16);
	char big[3000];

	(void)state;
	assert_int_equal(buf_addf(&b, "%s=%d", "n", 42), ERR_OK);
	assert_int_equal(buf_addf(&b, ",%05.1f,%lld", 3.25, -9000000000LL), ERR_OK);
	check_invariants(&b);
	assert_string_equal(b.data, "n=42,003.2,-9000000000");
	/* a formatted string longer than the first allocation */
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_addf(&b, "[%s]", big), ERR_OK);
	check_invariants(&b);
	assert_int_equal(b.len, 22 + 2 + 2999);
	assert_int_equal(b.data[22], '[');
	assert_int_equal(b.data[b.len - 1], ']');
	assert_int_equal(b.data[b.len - 2], 'z');
	/* empty format */
	assert_int_equal(buf_addf(&b, "%s", ""), ERR_OK);
	assert_int_equal(b.len, 22 + 2 + 2999);
	buf_release(&b);

	/* formatting past the cap fails and writes nothing */
	buf_init(&b, 10);
	assert_int_equal(buf_addf(&b, "%s", "abcd"), ERR_OK);
	assert_int_equal(buf_addf(&b, "%d", 1234567), ERR_TOOBIG);
	assert_string_equal(b.data, "abcd");
	check_invariants(&b);
	buf_release(&b);
}

static void test_json_str(void **state)
{
	struct buf b = BUF_INIT(4096);
	static const char in[] = "a\"b\\c/d\n\r\t\b\f\x01\x1f\x7f";
	static const char ctrl[] = "\x00\x02\x10";
	static const char bad[] = "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\x80|\xe2\x82";
	static const char edges[] = "\xc2\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf";
	static const char utf8[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";

	(void)state;
	assert_int_equal(buf_add_json_str(&b, in, sizeof(in) - 1), ERR_OK);
	check_invariants(&b);
	/* quote and backslash escaped; \n \r \t short; others \u00XX lowercase; DEL passes */
	assert_string_equal(b.data, "a\\\"b\\\\c/d\\n\\r\\t\\u0008\\u000c\\u0001\\u001f\x7f");
	buf_reset(&b);

	/* NUL and other control bytes inside the given length */
	assert_int_equal(buf_add_json_str(&b, ctrl, 3), ERR_OK);
	assert_string_equal(b.data, "\\u0000\\u0002\\u0010");
	buf_reset(&b);

	/* UTF-8 passes through unchanged */
	assert_int_equal(buf_add_json_str(&b, utf8, sizeof(utf8) - 1), ERR_OK);
	assert_string_equal(b.data, utf8);
	buf_reset(&b);

	/* each byte that does not start a well-formed sequence becomes U+FFFD */
	assert_int_equal(buf_add_json_str(&b, "a\xff" "b\xc3", 4), ERR_OK);
	assert_string_equal(b.data, "a\\ufffdb\\ufffd");
	buf_reset(&b);
	/* overlong, surrogate, above U+10FFFF, stray continuation, cut sequence */
	assert_int_equal(buf_add_json_str(&b, bad, sizeof(bad) - 1), ERR_OK);
	assert_string_equal(b.data, "\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\\ufffd|"
				    "\\ufffd|\\ufffd\\ufffd");
	buf_reset(&b);
	/* a sequence cut by the length argument, then the rest of the string */
	assert_int_equal(buf_add_json_str(&b, "\xe2\x82\xac", 2), ERR_OK);
	assert_string_equal(b.data, "\\ufffd\\ufffd");
	buf_reset(&b);
	/* the edges of the valid ranges pass */
	assert_int_equal(buf_add_json_str(&b, edges, sizeof(edges) - 1), ERR_OK);
	assert_string_equal(b.data, edges);
	buf_reset(&b);

	/* only 'n' bytes are read; no quotes are added */
	assert_int_equal(buf_add_json_str(&b, "plainXYZ", 5), ERR_OK);
	assert_string_equal(b.data, "plain");
	assert_int_equal(buf_add_json_str(&b, "", 0), ERR_OK);
	assert_string_equal(b.data, "plain");
	buf_reset(&b);

	/* the escaped form is what counts against the cap */
	buf_release(&b);
	buf_init(&b, 5);
	assert_int_equal(buf_add_json_str(&b, "\x01", 1), ERR_TOOBIG);
	check_invariants(&b);
	buf_release(&b);
	buf_init(&b, 6);
	assert_int_equal(buf_add_json_str(&b, "\x01", 1), ERR_OK);
	assert_string_equal(b.data, "\\u0001");
	buf_release(&b);
}

static void test_take(void **state)
{
	struct buf b = BUF_INIT(100);
	size_t len = 99;
	char *p;

	(void)state;
	/* an empty buffer still hands out an allocated empty string */
	p = buf_take(&b, &len);
	assert_non_null(p);
	assert_true(p != buf_empty);
	assert_string_equal(p, "");
	assert_int_equal(len, 0);
	free(p);

	assert_int_equal(buf_adds(&b, "owned"), ERR_OK);
	p = buf_take(&b, &len);
	assert_string_equal(p, "owned");
	assert_int_equal(len, 5);
	/* the buffer is left empty and usable, the string is the caller's */
	check_invariants(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_true(b.data != p);
	assert_int_equal(buf_adds(&b, "again"), ERR_OK);
	assert_string_equal(b.data, "again");
	assert_string_equal(p, "owned");
	free(p);
	/* len may be NULL; the max survives */
	p = buf_take(&b, NULL);
	assert_string_equal(p, "again");
	free(p);
	assert_int_equal(b.max, 100);
	buf_release(&b);
}

static void test_truncate(void **state)
{
	struct buf b = BUF_INIT(100);

	(void)state;
	buf_truncate(&b, 0); /* empty buffer: no-op */
	check_invariants(&b);
	assert_int_equal(buf_adds(&b, "abcdef"), ERR_OK);
	buf_truncate(&b, 3);
	check_invariants(&b);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	buf_truncate(&b, 10); /* longer than len: nothing changes */
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	buf_truncate(&b, 3);
	assert_string_equal(b.data, "abc");
	assert_int_equal(buf_adds(&b, "XY"), ERR_OK);
	assert_string_equal(b.data, "abcXY");
	buf_truncate(&b, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(b.len, 0);
	buf_release(&b);
}

static void test_reuse_after_release(void **state)
{
	struct buf b = BUF_INIT(16);

	(void)state;
	assert_int_equal(buf_adds(&b, "0123456789abcdefX"), ERR_TOOBIG);
	buf_release(&b);
	/* released: empty, error cleared, same cap */
	check_invariants(&b);
	assert_int_equal(b.err, ERR_OK);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_ptr_equal(b.data, buf_empty);
	assert_int_equal(b.max, 16);
	assert_int_equal(buf_adds(&b, "0123456789abcdef"), ERR_OK);
	assert_string_equal(b.data, "0123456789abcdef");
	assert_int_equal(buf_addch(&b, 'X'), ERR_TOOBIG);
	buf_release(&b);
	buf_release(&b); /* twice is fine */
	check_invariants(&b);
	/* the shared empty string was never written to */
	assert_int_equal(buf_empty[0], '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_empty),
		cmocka_unit_test(test_add_grows),
		cmocka_unit_test(test_cap_exact),
		cmocka_unit_test(test_cap_sticky),
		cmocka_unit_test(test_cap_zero_and_huge),
		cmocka_unit_test(test_addf),
		cmocka_unit_test(test_json_str),
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_reuse_after_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
