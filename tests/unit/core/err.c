/*
 * tests/unit/core/err.c - the error vocabulary and struct ctx: the first
 * failure wins, expr is set by ctx_errorx only, long messages truncate
 * inside the fixed arrays, a NULL context is allowed.
 */
#include "unit.h"

#include <string.h>

#include "core/err.h"

static void test_err_str(void **state)
{
	(void)state;
	assert_string_equal(err_str(ERR_OK), "ok");
	assert_string_equal(err_str(ERR_INVALID), "invalid");
	assert_string_equal(err_str(ERR_NOTFOUND), "not found");
	assert_string_equal(err_str(ERR_TOOBIG), "too big");
	assert_string_equal(err_str(ERR_NOMEM), "out of memory");
	assert_string_equal(err_str((enum err)-999), "unknown error");
	assert_string_equal(err_str((enum err)1), "unknown error");
	/* every defined code has its own name */
	for (int i = ERR_OK; i >= ERR_NOMEM; i--) {
		assert_string_not_equal(err_str((enum err)i), "unknown error");
		for (int j = i - 1; j >= ERR_NOMEM; j--)
			assert_string_not_equal(err_str((enum err)i), err_str((enum err)j));
	}
}

static void test_errorf(void **state)
{
	struct ctx c = CTX_INIT;

	(void)state;
	assert_int_equal(c.code, ERR_OK);
	assert_string_equal(c.msg, "");
	assert_int_equal(ctx_errorf(&c, ERR_NOTFOUND, "cannot open '%s' (%d)", "x.db", 2), ERR_NOTFOUND);
	assert_int_equal(c.code, ERR_NOTFOUND);
	assert_string_equal(c.msg, "cannot open 'x.db' (2)");
	assert_string_equal(c.expr, "");
}

static void test_first_error_wins(void **state)
{
	struct ctx c = CTX_INIT;

	(void)state;
	ctx_errorx(&c, ERR_INVALID, "Patient.name", "root cause %d", 1);
	/* later failures still return their own code but do not overwrite */
	assert_int_equal(ctx_errorf(&c, ERR_IO, "consequence"), ERR_IO);
	assert_int_equal(ctx_errorx(&c, ERR_CONFLICT, "other", "another"), ERR_CONFLICT);
	assert_int_equal(c.code, ERR_INVALID);
	assert_string_equal(c.msg, "root cause 1");
	assert_string_equal(c.expr, "Patient.name");

	/* after clear the next error is recorded again */
	ctx_clear(&c);
	assert_int_equal(c.code, ERR_OK);
	assert_string_equal(c.msg, "");
	assert_string_equal(c.expr, "");
	ctx_errorf(&c, ERR_BUSY, "second");
	assert_int_equal(c.code, ERR_BUSY);
	assert_string_equal(c.msg, "second");
	assert_string_equal(c.expr, "");
}

static void test_errorx_sets_expr(void **state)
{
	struct ctx c = CTX_INIT;

	(void)state;
	assert_int_equal(ctx_errorx(&c, ERR_INVALID, "_count", "bad '%s'", "x"), ERR_INVALID);
	assert_string_equal(c.expr, "_count");
	assert_string_equal(c.msg, "bad 'x'");
	ctx_clear(&c);
	/* a NULL expr leaves it empty */
	ctx_errorx(&c, ERR_INVALID, NULL, "no expr");
	assert_string_equal(c.expr, "");
	assert_string_equal(c.msg, "no expr");
	/* ctx_errorf after a stale expr (hand-filled struct) clears it */
	ctx_clear(&c);
	memcpy(c.expr, "stale", 6);
	ctx_errorf(&c, ERR_INVALID, "fresh");
	assert_string_equal(c.expr, "");
}

static void test_truncation(void **state)
{
	struct ctx c;
	char long_msg[2000], long_expr[600];

	(void)state;
	memset(long_msg, 'm', sizeof(long_msg) - 1);
	long_msg[sizeof(long_msg) - 1] = '\0';
	memset(long_expr, 'e', sizeof(long_expr) - 1);
	long_expr[sizeof(long_expr) - 1] = '\0';
	/* poison so a missing terminator would be noticed */
	memset(&c, 0x55, sizeof(c));
	c.code = ERR_OK;
	ctx_errorx(&c, ERR_TOOBIG, long_expr, "%s%s", long_msg, "tail");
	assert_int_equal(c.code, ERR_TOOBIG);
	assert_int_equal(strlen(c.msg), sizeof(c.msg) - 1);
	assert_int_equal(strlen(c.expr), sizeof(c.expr) - 1);
	assert_memory_equal(c.msg, long_msg, sizeof(c.msg) - 1);
	assert_memory_equal(c.expr, long_expr, sizeof(c.expr) - 1);
}

static void test_truncation_utf8(void **state)
{
	struct ctx c = CTX_INIT;
	char text[600];
	size_t len;

	(void)state;
	/* 510 ASCII bytes then a 2-byte character: only its first byte would fit */
	memset(text, 'a', 510);
	memcpy(text + 510, "\xc3\xa9 end", 7);
	ctx_errorf(&c, ERR_INVALID, "%s", text);
	len = strlen(c.msg);
	assert_int_equal(len, 510);
	assert_int_equal(c.msg[509], 'a');

	/* a 4-byte character cut after 2 or 3 bytes is dropped whole */
	for (size_t ascii = 508; ascii <= 510; ascii++) {
		ctx_clear(&c);
		memset(text, 'b', ascii);
		memcpy(text + ascii, "\xf0\x9f\x98\x80", 5);
		ctx_errorf(&c, ERR_INVALID, "%s", text);
		assert_int_equal(strlen(c.msg), ascii + (ascii + 4 <= 511 ? 4 : 0));
	}

	/* a character that fits exactly is kept */
	ctx_clear(&c);
	memset(text, 'c', 509);
	memcpy(text + 509, "\xc3\xa9xyz", 6);
	ctx_errorf(&c, ERR_INVALID, "%s", text);
	assert_int_equal(strlen(c.msg), 511);
	assert_memory_equal(c.msg + 509, "\xc3\xa9", 2);

	/* expr too */
	ctx_clear(&c);
	memset(text, 'e', 126);
	memcpy(text + 126, "\xe2\x82\xac", 4);
	ctx_errorx(&c, ERR_INVALID, text, "m");
	assert_int_equal(strlen(c.expr), 126);

	/* an untruncated message is left exactly as formatted */
	ctx_clear(&c);
	ctx_errorf(&c, ERR_INVALID, "ends in \xc3");
	assert_string_equal(c.msg, "ends in \xc3");
}

static void test_null_ctx(void **state)
{
	(void)state;
	assert_int_equal(ctx_errorf(NULL, ERR_IO, "nobody listens %d", 1), ERR_IO);
	assert_int_equal(ctx_errorx(NULL, ERR_INVALID, "x", "nobody"), ERR_INVALID);
	ctx_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_str),
		cmocka_unit_test(test_errorf),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_errorx_sets_expr),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_truncation_utf8),
		cmocka_unit_test(test_null_ctx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
