/*
 * tests/unit/core/arena.c - the per-request bump allocator: many and big
 * allocations stay usable and aligned, the string helpers copy, cleanups
 * run once each in reverse order on release.  ASan checks that every byte
 * handed out is inside a live block and that release frees everything.
 */
#include "unit.h"

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"

static void check_aligned(const void *p)
{
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
}

static void test_empty_release(void **state)
{
	struct arena a = ARENA_INIT;

	(void)state;
	arena_release(&a);
	assert_null(a.blocks);
	assert_null(a.cleanups);
	arena_release(&a); /* twice is fine */
	assert_null(a.blocks);
}

static void test_many_allocations(void **state)
{
	struct arena a = ARENA_INIT;
	enum { N = 5000 };
	unsigned char *p[N];

	(void)state;
	/* sizes 1..97 cross many block boundaries; fill each with its own pattern */
	for (int i = 0; i < N; i++) {
		size_t n = (size_t)(i % 97) + 1;
		p[i] = arena_alloc(&a, n);
		check_aligned(p[i]);
		memset(p[i], i & 0xff, n);
	}
	/* no allocation overlapped another */
	for (int i = 0; i < N; i++) {
		size_t n = (size_t)(i % 97) + 1;
		for (size_t k = 0; k < n; k++)
			assert_int_equal(p[i][k], i & 0xff);
	}
	/* distinct pointers */
	for (int i = 1; i < N; i++)
		assert_true(p[i] != p[i - 1]);
	arena_release(&a);
	assert_null(a.blocks);
	/* reusable after release */
	check_aligned(arena_alloc(&a, 10));
	arena_release(&a);
}

static void test_alignment(void **state)
{
	struct arena a = ARENA_INIT;
	static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 8191, 8192, 8193, 1};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *p = arena_alloc(&a, sizes[i]);
		check_aligned(p);
		memset(p, 0xab, sizes[i]);
		/* the storage can hold the most aligned scalar types */
		if (sizes[i] >= sizeof(long double)) {
			*(long double *)p = 1.5L;
			assert_true(*(long double *)p == 1.5L);
		}
		check_aligned(arena_zalloc(&a, 1));
	}
	arena_release(&a);
}

static void test_zero_size(void **state)
{
	struct arena a = ARENA_INIT;
	char *p, *q;

	(void)state;
	p = arena_alloc(&a, 0);
	check_aligned(p);
	q = arena_alloc(&a, 1);
	check_aligned(q);
	*q = 'x';
	assert_int_equal(*q, 'x');
	arena_release(&a);
}

static void test_big_allocations(void **state)
{
	struct arena a = ARENA_INIT;
	size_t big = 1 << 20;
	unsigned char *small1, *p, *small2, *q;

	(void)state;
	small1 = arena_alloc(&a, 16);
	memset(small1, 1, 16);
	p = arena_alloc(&a, big);
	check_aligned(p);
	memset(p, 2, big);
	small2 = arena_alloc(&a, 16);
	check_aligned(small2);
	memset(small2, 3, 16);
	q = arena_alloc(&a, big + 3);
	check_aligned(q);
	memset(q, 4, big + 3);
	for (size_t i = 0; i < 16; i++) {
		assert_int_equal(small1[i], 1);
		assert_int_equal(small2[i], 3);
	}
	assert_int_equal(p[0], 2);
	assert_int_equal(p[big - 1], 2);
	assert_int_equal(q[big + 2], 4);
	/* exactly one block size */
	p = arena_alloc(&a, 8192);
	memset(p, 5, 8192);
	arena_release(&a);
}

static void test_zalloc_and_strings(void **state)
{
	struct arena a = ARENA_INIT;
	unsigned char *z;
	char src[] = "mutable";
	char *s, *t, *u, *long_s;
	char big[5000];

	(void)state;
	/* dirty a block first so zeroing is observable */
	memset(arena_alloc(&a, 4000), 0xff, 4000);
	z = arena_zalloc(&a, 300);
	for (int i = 0; i < 300; i++)
		assert_int_equal(z[i], 0);

	s = arena_strdup(&a, src);
	assert_string_equal(s, "mutable");
	assert_true(s != src);
	src[0] = 'X'; /* a copy, not an alias */
	assert_string_equal(s, "mutable");

	t = arena_strndup(&a, "abcdef", 3);
	assert_string_equal(t, "abc");
	t = arena_strndup(&a, "", 0);
	assert_string_equal(t, "");

	u = arena_printf(&a, "%s-%d-%05.2f", "x", 42, 3.14159);
	assert_string_equal(u, "x-42-03.14");
	u = arena_printf(&a, "%s", "");
	assert_string_equal(u, "");

	/* a formatted string bigger than a block */
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	long_s = arena_printf(&a, "<%s>%s", big, big);
	assert_int_equal(strlen(long_s), 2 + 2 * (sizeof(big) - 1));
	assert_int_equal(long_s[0], '<');
	assert_int_equal(long_s[sizeof(big)], '>');
	long_s = arena_strdup(&a, big);
	assert_string_equal(long_s, big);
	arena_release(&a);
}

struct trace {
	int order[16];
	int n;
};

struct step {
	struct trace *t;
	int id;
};

static void record(void *arg)
{
	struct step *s = arg;

	assert_true(s->t->n < 16);
	s->t->order[s->t->n++] = s->id;
}

static void free_it(void *arg)
{
	free(arg);
}

static void test_cleanups_reverse(void **state)
{
	struct arena a = ARENA_INIT;
	struct trace t = {{0}, 0};
	struct step *steps;

	(void)state;
	steps = arena_alloc(&a, 5 * sizeof(*steps));
	for (int i = 0; i < 5; i++) {
		steps[i].t = &t;
		steps[i].id = i;
		arena_on_release(&a, record, &steps[i]);
		/* interleave allocations so cleanups land in several blocks */
		memset(arena_alloc(&a, 3000), 0, 3000);
	}
	/* a heap object owned by the arena: LeakSanitizer checks it is freed */
	arena_on_release(&a, free_it, malloc(100));
	assert_int_equal(t.n, 0);
	arena_release(&a);
	assert_int_equal(t.n, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(t.order[i], 4 - i);
	assert_null(a.cleanups);
	/* a second release does not run them again */
	arena_release(&a);
	assert_int_equal(t.n, 5);
}

static void test_cleanup_may_read_arena(void **state)
{
	struct arena a = ARENA_INIT;
	struct trace t = {{0}, 0};
	struct step *first, *second;

	(void)state;
	/* cleanups run before any block is freed, so they may read arena memory */
	first = arena_alloc(&a, sizeof(*first));
	*first = (struct step){&t, 1};
	arena_on_release(&a, record, first);
	arena_alloc(&a, 1 << 16);
	second = arena_alloc(&a, sizeof(*second));
	*second = (struct step){&t, 2};
	arena_on_release(&a, record, second);
	arena_release(&a);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.order[0], 2);
	assert_int_equal(t.order[1], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_release),
		cmocka_unit_test(test_many_allocations),
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_zero_size),
		cmocka_unit_test(test_big_allocations),
		cmocka_unit_test(test_zalloc_and_strings),
		cmocka_unit_test(test_cleanups_reverse),
		cmocka_unit_test(test_cleanup_may_read_arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
