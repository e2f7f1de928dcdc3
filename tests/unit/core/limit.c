/*
 * tests/unit/core/limit.c - failures counted per key in fixed windows:
 * the limit is reached on the max-th failure and refuses until the window
 * ends, keys count apart, max 0 refuses nothing, and a table full of live
 * windows never lets a refusal go.
 */
#include "unit.h"

#include <stdio.h>

#include "core/limit.h"

static void test_window(void **state)
{
	struct limit *l = limit_new(3, 60000);

	(void)state;
	assert_int_equal(limit_refused_ms(l, "a:192.0.2.1", 1000), 0);
	assert_false(limit_fail(l, "a:192.0.2.1", 1000));
	assert_false(limit_fail(l, "a:192.0.2.1", 2000));
	assert_int_equal(limit_refused_ms(l, "a:192.0.2.1", 2000), 0);
	assert_true(limit_fail(l, "a:192.0.2.1", 3000)); /* the third reaches it */
	assert_int_equal(limit_refused_ms(l, "a:192.0.2.1", 3000), 58000);
	assert_int_equal(limit_refused_ms(l, "a:192.0.2.1", 60999), 1);
	assert_false(limit_fail(l, "a:192.0.2.1", 4000)); /* reached once per window */
	/* another key is not refused */
	assert_int_equal(limit_refused_ms(l, "a:192.0.2.2", 4000), 0);
	assert_int_equal(limit_refused_ms(l, "c:192.0.2.1", 4000), 0);
	/* the window ends: counting starts again */
	assert_int_equal(limit_refused_ms(l, "a:192.0.2.1", 61000), 0);
	assert_false(limit_fail(l, "a:192.0.2.1", 61000));
	assert_int_equal(limit_refused_ms(l, "a:192.0.2.1", 61000), 0);
	limit_free(l);
}

static void test_off(void **state)
{
	struct limit *l = limit_new(0, 60000);

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_false(limit_fail(l, "k", 1000));
	assert_int_equal(limit_refused_ms(l, "k", 1000), 0);
	limit_free(l);
	/* no table at all refuses nothing either */
	assert_int_equal(limit_refused_ms(NULL, "k", 1), 0);
	assert_false(limit_fail(NULL, "k", 1));
}

/* Long keys: the first bytes and the hash name a slot; different keys still count apart. */
static void test_long_keys(void **state)
{
	struct limit *l = limit_new(2, 60000);
	char a[300], b[300];

	(void)state;
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[sizeof(b) - 2] = 'y';
	assert_false(limit_fail(l, a, 10));
	assert_true(limit_fail(l, a, 10));
	assert_true(limit_refused_ms(l, a, 10) > 0);
	assert_int_equal(limit_refused_ms(l, b, 10), 0);
	limit_free(l);
}

/*
 * Far more live keys than slots: a refused key is never pushed out by
 * others, however many; keys that reach the limit keep their refusal
 * while the table can hold them, and the rest go uncounted.
 */
static void test_full_table(void **state)
{
	struct limit *l = limit_new(2, 60000);
	char k[32];
	int reached = 0, still = 0;

	(void)state;
	assert_false(limit_fail(l, "a:victim", 1000));
	assert_true(limit_fail(l, "a:victim", 1000));
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "a:10.0.%d.%d", i / 256, i % 256);
		assert_false(limit_fail(l, k, 1000 + i));
	}
	assert_true(limit_refused_ms(l, "a:victim", 30000) > 0);
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "b:%d", i);
		limit_fail(l, k, 40000);
		reached += limit_fail(l, k, 40000);
	}
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "b:%d", i);
		still += limit_refused_ms(l, k, 50000) > 0;
	}
	assert_true(reached > 1000 && reached < 4096);
	assert_int_equal(still, reached);
	assert_true(limit_refused_ms(l, "a:victim", 50000) > 0);
	/* the windows end: the slots serve new keys again */
	assert_false(limit_fail(l, "c:new", 200000));
	assert_true(limit_fail(l, "c:new", 200000));
	limit_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_long_keys),
		cmocka_unit_test(test_full_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
