/*
 * tests/unit/core/rand.c - secure randomness: UUID v4 layout (RFC 4122
 * version and variant), hex output length and alphabet, and that values
 * differ between calls.
 */
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/rand.h"

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_uuid(const char *u)
{
	assert_int_equal(strlen(u), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(u[i], '-');
		else if (!is_lower_hex(u[i]))
			fail_msg("'%s' has '%c' at %d", u, u[i], i);
	}
	/* xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx with V in 8, 9, a, b */
	assert_int_equal(u[14], '4');
	assert_non_null(strchr("89ab", u[19]));
}

static void test_uuid(void **state)
{
	char a[37], b[37];
	int variant_seen[4] = {0};

	(void)state;
	memset(a, 'X', sizeof(a));
	rand_uuid(a);
	check_uuid(a);
	rand_uuid(b);
	check_uuid(b);
	assert_string_not_equal(a, b);
	/* over many draws all four variant nibbles appear (chance of a miss ~4e-63) */
	for (int i = 0; i < 500; i++) {
		rand_uuid(a);
		check_uuid(a);
		variant_seen[strchr("89ab", a[19]) - "89ab"] = 1;
	}
	for (int i = 0; i < 4; i++)
		assert_true(variant_seen[i]);
}

static void test_hex(void **state)
{
	char out[2 * 200 + 2];
	char prev[2 * 200 + 2];
	static const size_t sizes[] = {0, 1, 16, 32, 63, 64, 65, 200};

	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		memset(out, 'X', sizeof(out));
		rand_hex(out, n);
		assert_int_equal(strlen(out), 2 * n);
		/* nothing written past the terminator */
		assert_int_equal(out[2 * n + 1], 'X');
		for (size_t i = 0; i < 2 * n; i++)
			assert_true(is_lower_hex(out[i]));
	}
	rand_hex(prev, 32);
	rand_hex(out, 32);
	assert_string_not_equal(prev, out);
	/* the block boundary at 64 bytes: both halves are random, not repeated */
	rand_hex(out, 200);
	assert_memory_not_equal(out, out + 128, 128);
}

static void test_bytes_and_u64(void **state)
{
	unsigned char a[64], b[64];
	uint64_t x, y;
	int zeros = 0;

	(void)state;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	rand_bytes(a, sizeof(a));
	rand_bytes(b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	for (size_t i = 0; i < sizeof(a); i++)
		zeros += a[i] == 0;
	assert_true(zeros < 16);
	rand_bytes(a, 0); /* nothing to do */
	x = rand_u64();
	y = rand_u64();
	assert_true(x != y);
}

/*
 * rand_id_bytes() hands out a 4 KiB pool in pieces: no piece repeats
 * another, across refills and with pieces that straddle a refill, and the
 * bytes look random (no run of zeros, which a used-up pool would give).
 */
static void test_id_bytes(void **state)
{
	enum { PIECE = 24, N = 600 }; /* 14,400 bytes: three refills, uneven */
	static unsigned char got[N][PIECE];
	int zeros = 0;

	(void)state;
	for (int i = 0; i < N; i++)
		rand_id_bytes(got[i], PIECE);
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < i; j++)
			assert_memory_not_equal(got[i], got[j], PIECE);
		for (int k = 0; k < PIECE; k++)
			zeros += got[i][k] == 0;
	}
	/* about N * PIECE / 256 = 56 zero bytes expected */
	assert_true(zeros < 200);
	rand_id_bytes(got[0], 0);
	{
		unsigned char big[10000];
		memset(big, 0, sizeof(big));
		rand_id_bytes(big, sizeof(big)); /* more than one pool at once */
		zeros = 0;
		for (size_t k = 0; k < sizeof(big); k++)
			zeros += big[k] == 0;
		assert_true(zeros < 150);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_bytes_and_u64),
		cmocka_unit_test(test_id_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
