/*
 * tests/unit/auth/password.c - Argon2id password hashes: known answers
 * from the reference implementation's test suite (password "password",
 * salt "somesalt") through the fixed-salt test hook and through verify;
 * the PHC format of fresh hashes; verify and needs_rehash; parameter
 * floors and ceilings (also for stored strings); the dummy verification
 * for unknown users; the cap on concurrent hashes (ERR_BUSY when
 * saturated, never more than the cap at once); and verification's memory
 * blocks (right answers from concurrent callers with different memory
 * costs, never more blocks than slots).
 */
#include "unit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "auth/password.h"
#include "core/clock.h"

/* phc-winner-argon2 src/test.c, Argon2id version 0x13 */
static const struct {
	uint32_t m, t, p;
	const char *phc;
} kat[] = {
	{256, 2, 1, "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"},
	{256, 2, 2, "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc"},
	{65536, 2, 1,
	 "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
};

#define NKAT (sizeof(kat) / sizeof(kat[0]))

static void test_known_answers(void **state)
{
	char out[PASSWORD_PHC_MAX];
	struct ctx c = CTX_INIT;

	(void)state;
	for (size_t i = 0; i < NKAT; i++) {
		struct password_params p = {kat[i].m, kat[i].t, kat[i].p};

		assert_int_equal(password_hash_with_salt("password", 8, &p, "somesalt", 8, out, &c),
				 ERR_OK);
		assert_string_equal(out, kat[i].phc);
		assert_int_equal(password_verify(kat[i].phc, "password", 8, &c), ERR_OK);
		assert_int_equal(password_verify(kat[i].phc, "sassword", 8, &c), ERR_UNAUTHORIZED);
		assert_int_equal(c.code, ERR_UNAUTHORIZED);
		ctx_clear(&c);
		assert_int_equal(password_verify(kat[i].phc, "passwor", 7, &c), ERR_UNAUTHORIZED);
		ctx_clear(&c);
		/* weaker than our floor: replace after the next sign-in */
		assert_true(password_needs_rehash(kat[i].phc, NULL));
	}
	/* the hook still needs a salt libargon2 accepts */
	{
		struct password_params p = {256, 2, 1};

		assert_int_equal(password_hash_with_salt("password", 8, &p, "short", 5, out, &c),
				 ERR_INVALID);
	}
}

static bool b64_run(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/'))
			return false;
	return true;
}

static void test_hash_and_verify(void **state)
{
	static const char head[] = "$argon2id$v=19$m=19456,t=2,p=1$";
	char a[PASSWORD_PHC_MAX], b[PASSWORD_PHC_MAX];
	struct ctx c = CTX_INIT;
	const char pw[] = "correct horse battery staple";
	struct password_params stronger = {65536, 3, 1};

	(void)state;
	assert_int_equal(password_hash(pw, strlen(pw), NULL, a, &c), ERR_OK);
	/* $argon2id$v=19$m=19456,t=2,p=1$ + 22 salt characters + $ + 43 hash characters */
	assert_true(strncmp(a, head, strlen(head)) == 0);
	assert_int_equal(strlen(a), strlen(head) + 22 + 1 + 43);
	assert_true(b64_run(a + strlen(head), 22));
	assert_int_equal(a[strlen(head) + 22], '$');
	assert_true(b64_run(a + strlen(head) + 23, 43));
	assert_int_equal(password_verify(a, pw, strlen(pw), &c), ERR_OK);
	assert_int_equal(password_verify(a, "Correct horse battery staple", strlen(pw), &c),
			 ERR_UNAUTHORIZED);
	ctx_clear(&c);
	/* a fresh salt every time */
	assert_int_equal(password_hash(pw, strlen(pw), NULL, b, &c), ERR_OK);
	assert_string_not_equal(a, b);
	assert_false(password_needs_rehash(a, NULL));
	assert_true(password_needs_rehash(a, &stronger));
	/* stronger parameters */
	assert_int_equal(password_hash(pw, strlen(pw), &stronger, b, &c), ERR_OK);
	assert_non_null(strstr(b, "$m=65536,t=3,p=1$"));
	assert_false(password_needs_rehash(b, &stronger));
	assert_true(password_needs_rehash(b, NULL));
	assert_int_equal(password_verify(b, pw, strlen(pw), &c), ERR_OK);
	/* empty and binary passwords are just bytes */
	assert_int_equal(password_hash("", 0, NULL, b, &c), ERR_OK);
	assert_int_equal(password_verify(b, "", 0, &c), ERR_OK);
	assert_int_equal(password_verify(b, "\0", 1, &c), ERR_UNAUTHORIZED);
	ctx_clear(&c);
	assert_int_equal(password_hash("a\0b", 3, NULL, b, &c), ERR_OK);
	assert_int_equal(password_verify(b, "a\0b", 3, &c), ERR_OK);
	assert_int_equal(password_verify(b, "a\0c", 3, &c), ERR_UNAUTHORIZED);
	ctx_clear(&c);
	/* an over-long password */
	{
		static char big[PASSWORD_MAX + 1];

		memset(big, 'x', sizeof(big));
		assert_int_equal(password_hash(big, sizeof(big), NULL, b, &c), ERR_TOOBIG);
		assert_string_equal(b, "");
		ctx_clear(&c);
		assert_int_equal(password_verify(a, big, sizeof(big), &c), ERR_TOOBIG);
		ctx_clear(&c);
		assert_int_equal(password_hash(big, PASSWORD_MAX, NULL, b, &c), ERR_OK);
	}
}

static void test_params(void **state)
{
	static const struct password_params bad[] = {
		{19455, 2, 1}, {19456, 1, 1}, {19456, 2, 0},
		{19456, 2, PASSWORD_P_MAX + 1}, {PASSWORD_M_MAX + 1, 2, 1}, {19456, PASSWORD_T_MAX + 1, 1},
	};
	struct password_params ok = PASSWORD_PARAMS_DEFAULT;
	char out[PASSWORD_PHC_MAX];
	struct ctx c = CTX_INIT;

	(void)state;
	assert_int_equal(password_params_check(&ok, &c), ERR_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ctx_clear(&c);
		assert_int_equal(password_params_check(&bad[i], &c), ERR_INVALID);
		assert_int_equal(password_hash("x", 1, &bad[i], out, &c), ERR_INVALID);
		assert_string_equal(out, "");
	}
}

static void test_stored_strings(void **state)
{
	static const char *const bad[] = {
		"",
		"plain",
		"$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
		"$argon2d$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		/* 4 GiB and 2^32 passes: never attempted */
		"$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=4294967295,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=255$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=065536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$",
		"$argon2id$v=19$m=65536,t=2,p=1$$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1$c29t$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc$",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc=",
		"$argon2id$v=19$m=65536,t=2,p=1,x=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
	};
	struct ctx c = CTX_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ctx_clear(&c);
		if (password_verify(bad[i], "password", 8, &c) != ERR_INVALID)
			fail_msg("accepted '%s'", bad[i]);
		assert_true(password_needs_rehash(bad[i], NULL));
		/* the message never echoes the stored string */
		assert_null(strstr(c.msg, "c29tZXNhbHQ"));
	}
}

/* CPU time of this thread (p = 1 hashes run in the caller), so a busy machine does not decide. */
static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double verify_ms(const char *phc)
{
	struct ctx c = CTX_INIT;
	double t0 = cpu_ms();

	assert_int_equal(password_verify(phc, "guess", 5, &c), ERR_UNAUTHORIZED);
	return cpu_ms() - t0;
}

static double dummy_ms(const struct password_params *p)
{
	struct ctx c = CTX_INIT;
	double t0 = cpu_ms();

	assert_int_equal(password_dummy_verify("guess", 5, p, &c), ERR_UNAUTHORIZED);
	return cpu_ms() - t0;
}

static void test_dummy(void **state)
{
	struct password_params other = {24576, 2, 1};
	char real[PASSWORD_PHC_MAX], strong[PASSWORD_PHC_MAX];
	struct ctx c = CTX_INIT;
	double r = 1e9, d = 1e9, r2 = 1e9, d2 = 1e9;

	(void)state;
	assert_int_equal(password_hash("secret", 6, NULL, real, &c), ERR_OK);
	assert_int_equal(password_hash("secret", 6, &other, strong, &c), ERR_OK);
	/* the best of a few runs */
	for (int i = 0; i < 4; i++) {
		double x;

		if ((x = verify_ms(real)) < r)
			r = x;
		if ((x = dummy_ms(NULL)) < d)
			d = x;
		if ((x = verify_ms(strong)) < r2)
			r2 = x;
		if ((x = dummy_ms(&other)) < d2)
			d2 = x;
	}
	print_message("password: verify %.1f ms, dummy %.1f ms; m=24576: %.1f / %.1f ms (CPU)\n",
		      r, d, r2, d2);
	assert_true(d > r * 0.5 && d < r * 2.0);
	assert_true(d2 > r2 * 0.5 && d2 < r2 * 2.0);
	assert_int_equal(password_dummy_verify("x", 1, NULL, &c), ERR_UNAUTHORIZED);
	ctx_clear(&c);
	assert_int_equal(password_dummy_verify("x", PASSWORD_MAX + 1, NULL, &c), ERR_TOOBIG);
}

/* ---- the cap ---- */

struct job {
	struct password_params p;
	enum err rc;
};

static void *hash_job(void *arg)
{
	struct job *j = arg;
	char out[PASSWORD_PHC_MAX];
	struct ctx c = CTX_INIT;

	j->rc = password_hash("flood", 5, &j->p, out, &c);
	return NULL;
}

static _Atomic bool watching;
static unsigned most_seen;

static void *watch(void *arg)
{
	(void)arg;
	while (watching) {
		unsigned n = password_limit_in_use();

		if (n > most_seen)
			most_seen = n;
	}
	return NULL;
}

static void test_cap(void **state)
{
	struct job slow = {{65536, 16, 1}, ERR_IO}, jobs[5];
	pthread_t th, ths[5], w;
	char out[PASSWORD_PHC_MAX];
	struct ctx c = CTX_INIT;
	int64_t t0, waited;

	(void)state;
	/* one slot, held by a slow hash: the next caller gives up after 50 ms */
	password_limit_set(1, 50);
	assert_int_equal(pthread_create(&th, NULL, hash_job, &slow), 0);
	t0 = clock_mono_us();
	while (password_limit_in_use() == 0 && clock_mono_us() - t0 < 5000000) {
		struct timespec ts = {0, 1000000};

		nanosleep(&ts, NULL);
	}
	assert_int_equal(password_limit_in_use(), 1);
	t0 = clock_mono_us();
	assert_int_equal(password_hash("x", 1, NULL, out, &c), ERR_BUSY);
	waited = clock_mono_us() - t0;
	assert_int_equal(c.code, ERR_BUSY);
	assert_true(waited >= 45000);
	assert_true(waited < 2000000 || password_limit_in_use() == 1);
	ctx_clear(&c);
	assert_int_equal(password_verify(
				 "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
				 "password", 8, &c),
			 ERR_BUSY);
	ctx_clear(&c);
	assert_int_equal(password_dummy_verify("x", 1, NULL, &c), ERR_BUSY);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(slow.rc, ERR_OK);
	assert_int_equal(password_limit_in_use(), 0);

	/* two slots, five callers that wait long enough: all succeed, never more than two at once */
	password_limit_set(2, 30000);
	most_seen = 0;
	watching = true;
	assert_int_equal(pthread_create(&w, NULL, watch, NULL), 0);
	for (int i = 0; i < 5; i++) {
		jobs[i].p = (struct password_params){32768, 2, 1};
		jobs[i].rc = ERR_IO;
		assert_int_equal(pthread_create(&ths[i], NULL, hash_job, &jobs[i]), 0);
	}
	for (int i = 0; i < 5; i++) {
		assert_int_equal(pthread_join(ths[i], NULL), 0);
		assert_int_equal(jobs[i].rc, ERR_OK);
	}
	watching = false;
	assert_int_equal(pthread_join(w, NULL), 0);
	assert_true(most_seen >= 1 && most_seen <= 2);
	assert_int_equal(password_limit_in_use(), 0);
	password_limit_set(0, 5000);
}

struct check {
	size_t kat;
	bool right;
	enum err rc;
};

static void *verify_job(void *arg)
{
	struct check *k = arg;
	struct ctx c = CTX_INIT;

	for (int i = 0; i < 4; i++) {
		k->rc = password_verify(kat[k->kat].phc, k->right ? "password" : "passw0rd", 8, &c);
		if (k->rc != (k->right ? ERR_OK : ERR_UNAUTHORIZED))
			break;
		ctx_clear(&c);
	}
	return NULL;
}

static void test_verify_blocks(void **state)
{
	struct check ks[6];
	pthread_t ths[6];

	(void)state;
	/* six callers, two slots: blocks of 256 KiB and 64 MiB taken in turns */
	password_limit_set(2, 60000);
	for (size_t i = 0; i < 6; i++) {
		ks[i] = (struct check){i % NKAT, i % 2 == 0, ERR_IO};
		assert_int_equal(pthread_create(&ths[i], NULL, verify_job, &ks[i]), 0);
	}
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(pthread_join(ths[i], NULL), 0);
		if (ks[i].rc != (ks[i].right ? ERR_OK : ERR_UNAUTHORIZED))
			fail_msg("caller %zu (vector %zu, %s password): %s", i, ks[i].kat,
				 ks[i].right ? "right" : "wrong", err_str(ks[i].rc));
	}
	assert_int_equal(password_limit_in_use(), 0);
	/* earlier tests ran one at a time or with two slots */
	assert_true(password_blocks() >= 1 && password_blocks() <= 2);
	password_limit_set(0, 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_hash_and_verify),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_stored_strings),
		cmocka_unit_test(test_dummy),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_verify_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
