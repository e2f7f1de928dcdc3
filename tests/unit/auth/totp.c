/*
 * tests/unit/auth/totp.c - TOTP: the RFC 6238 appendix B vectors (SHA-1,
 * 8 digits) through totp_code(); verification around a fixed clock (the
 * +-1 step window, the matched step, replays refused); secrets, base32
 * and the otpauth URI; recovery codes (alphabet, format, distinctness,
 * normalised input, salted hashes, single match).
 */
#include "unit.h"

#include <stdbool.h>
#include <string.h>

#include "auth/totp.h"
#include "core/clock.h"

static const unsigned char rfc_secret[] = "12345678901234567890";

/* RFC 6238 appendix B, the SHA-1 column. */
static const struct {
	int64_t t;
	const char *code;
} rfc6238[] = {
	{59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
	{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
};

static void test_rfc6238_vectors(void **state)
{
	char out[TOTP_CODE_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(rfc6238) / sizeof(rfc6238[0]); i++) {
		assert_int_equal(totp_code(rfc_secret, 20, rfc6238[i].t, 8, out), ERR_OK);
		assert_string_equal(out, rfc6238[i].code);
		/* 6 digits are the last 6 of the same truncation */
		assert_int_equal(totp_code(rfc_secret, 20, rfc6238[i].t, 6, out), ERR_OK);
		assert_string_equal(out, rfc6238[i].code + 2);
	}
	assert_int_equal(totp_code(rfc_secret, 20, 59, 5, out), ERR_INVALID);
	assert_int_equal(totp_code(rfc_secret, 20, 59, 9, out), ERR_INVALID);
	assert_int_equal(totp_code(rfc_secret, 0, 59, 6, out), ERR_INVALID);
	assert_int_equal(totp_code(rfc_secret, 20, -1, 6, out), ERR_INVALID);
}

static void test_step(void **state)
{
	(void)state;
	assert_int_equal(totp_step_at(0), 0);
	assert_int_equal(totp_step_at(29999), 0);
	assert_int_equal(totp_step_at(30000), 1);
	assert_int_equal(totp_step_at(59000), 1);
	assert_int_equal(totp_step_at(1111111109000), 37037036);
	assert_int_equal(totp_step_at(-1), -1);
}

/* The 6-digit code of the RFC secret at step 's'. */
static void code_at(int64_t s, char out[TOTP_CODE_MAX])
{
	assert_int_equal(totp_code(rfc_secret, 20, s * TOTP_STEP, 6, out), ERR_OK);
}

static void test_verify_window(void **state)
{
	const int64_t now = 1234567890; /* step 41152263, 0 s into the step */
	const int64_t step = now / TOTP_STEP;
	char code[TOTP_CODE_MAX], spaced[16];
	struct ctx c = CTX_INIT;
	int64_t got = 0;

	(void)state;
	clock_set_fixed((now + 10) * 1000);
	/* the current step, and one either side */
	for (int64_t d = -1; d <= 1; d++) {
		code_at(step + d, code);
		assert_int_equal(totp_verify(rfc_secret, 20, code, TOTP_NO_STEP, &got, &c), ERR_OK);
		assert_int_equal(got, step + d);
	}
	/* two steps away is too far */
	code_at(step - 2, code);
	assert_int_equal(totp_verify(rfc_secret, 20, code, TOTP_NO_STEP, &got, &c), ERR_UNAUTHORIZED);
	assert_int_equal(got, TOTP_NO_STEP);
	ctx_clear(&c);
	code_at(step + 2, code);
	assert_int_equal(totp_verify(rfc_secret, 20, code, TOTP_NO_STEP, &got, &c), ERR_UNAUTHORIZED);
	ctx_clear(&c);
	/* replays: a step already used, or an earlier one, is refused */
	code_at(step, code);
	assert_int_equal(totp_verify(rfc_secret, 20, code, step, &got, &c), ERR_CONFLICT);
	assert_int_equal(got, TOTP_NO_STEP);
	ctx_clear(&c);
	code_at(step - 1, code);
	assert_int_equal(totp_verify(rfc_secret, 20, code, step, &got, &c), ERR_CONFLICT);
	ctx_clear(&c);
	code_at(step + 1, code);
	assert_int_equal(totp_verify(rfc_secret, 20, code, step, &got, &c), ERR_OK);
	assert_int_equal(got, step + 1);
	/* the window moves with the clock */
	clock_set_fixed((now + 31) * 1000);
	code_at(step - 1, code);
	assert_int_equal(totp_verify(rfc_secret, 20, code, TOTP_NO_STEP, &got, &c), ERR_UNAUTHORIZED);
	ctx_clear(&c);
	code_at(step + 2, code);
	assert_int_equal(totp_verify(rfc_secret, 20, code, TOTP_NO_STEP, &got, &c), ERR_OK);
	/* spaces are ignored; anything else is malformed */
	code_at(step + 1, code);
	snprintf(spaced, sizeof(spaced), "%.3s %.3s", code, code + 3);
	assert_int_equal(totp_verify(rfc_secret, 20, spaced, TOTP_NO_STEP, &got, &c), ERR_OK);
	static const char *const bad[] = {"", "12345", "1234567", "12345a", "-12345", "１２３４５６", NULL};
	for (int i = 0; bad[i]; i++) {
		ctx_clear(&c);
		assert_int_equal(totp_verify(rfc_secret, 20, bad[i], TOTP_NO_STEP, &got, &c), ERR_INVALID);
	}
	ctx_clear(&c);
	assert_int_equal(totp_verify(rfc_secret, 20, NULL, TOTP_NO_STEP, &got, &c), ERR_INVALID);
	/* a wrong secret */
	ctx_clear(&c);
	code_at(step + 1, code);
	assert_int_equal(totp_verify("12345678901234567891", 20, code, TOTP_NO_STEP, &got, &c),
			 ERR_UNAUTHORIZED);
	clock_set_fixed(0);
}

static void test_secret_and_uri(void **state)
{
	unsigned char a[TOTP_SECRET_LEN], b[TOTP_SECRET_LEN], back[TOTP_SECRET_MAX];
	struct buf enc = BUF_INIT(128), uri = BUF_INIT(1024), tiny = BUF_INIT(40);
	struct ctx c = CTX_INIT;
	size_t n;

	(void)state;
	totp_secret_generate(a);
	totp_secret_generate(b);
	assert_memory_not_equal(a, b, TOTP_SECRET_LEN);
	/* RFC 4648 section 10, without padding */
	assert_int_equal(totp_base32_encode("foobar", 6, &enc), ERR_OK);
	assert_string_equal(enc.data, "MZXW6YTBOI");
	buf_reset(&enc);
	assert_int_equal(totp_base32_encode(rfc_secret, 20, &enc), ERR_OK);
	assert_string_equal(enc.data, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
	assert_int_equal(totp_base32_decode(enc.data, enc.len, back, sizeof(back), &n, &c), ERR_OK);
	assert_int_equal(n, 20);
	assert_memory_equal(back, rfc_secret, 20);
	assert_int_equal(totp_base32_decode("mzxw6ytboi", 10, back, sizeof(back), &n, &c), ERR_OK);
	assert_memory_equal(back, "foobar", 6);
	assert_int_equal(totp_base32_decode("MZXW6YTBOI======", 16, back, sizeof(back), &n, &c), ERR_OK);
	assert_int_equal(n, 6);
	assert_int_equal(totp_base32_decode("MZ!W", 4, back, sizeof(back), &n, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(totp_base32_decode(enc.data, enc.len, back, 10, &n, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(totp_base32_encode(rfc_secret, 0, &enc), ERR_INVALID);

	assert_int_equal(totp_uri("Veranda Health", "alice@example.org", rfc_secret, 20, &uri, &c),
			 ERR_OK);
	assert_string_equal(uri.data,
			    "otpauth://totp/Veranda%20Health:alice%40example.org"
			    "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Veranda%20Health"
			    "&algorithm=SHA1&digits=6&period=30");
	buf_reset(&uri);
	assert_int_equal(totp_uri("Ünïcode & Co", "bob", rfc_secret, 20, &uri, &c), ERR_OK);
	assert_non_null(strstr(uri.data, "otpauth://totp/%C3%9Cn%C3%AFcode%20%26%20Co:bob?"));
	buf_reset(&uri);
	assert_int_equal(totp_uri("Bad:Issuer", "bob", rfc_secret, 20, &uri, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(totp_uri("Veranda", "", rfc_secret, 20, &uri, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(totp_uri("Veranda", "a\nb", rfc_secret, 20, &uri, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(totp_uri("Veranda", "\xff", rfc_secret, 20, &uri, &c), ERR_INVALID);
	assert_int_equal(uri.len, 0);
	/* a full buffer is refused and left as it was */
	ctx_clear(&c);
	buf_adds(&tiny, "x");
	assert_int_equal(totp_uri("Veranda", "alice", rfc_secret, 20, &tiny, &c), ERR_TOOBIG);
	assert_string_equal(tiny.data, "x");
	assert_int_equal(tiny.err, ERR_OK);
	buf_release(&tiny);
	buf_release(&uri);
	buf_release(&enc);
}

static void test_recovery_codes(void **state)
{
	struct totp_recovery codes[10];
	const char *hashes[10];
	char h[TOTP_RECOVERY_HASH_SIZE], typed[32];
	struct ctx c = CTX_INIT;
	size_t idx = 99;

	(void)state;
	assert_int_equal(totp_recovery_generate("user-42", codes, 10, &c), ERR_OK);
	for (int i = 0; i < 10; i++) {
		const char *s = codes[i].code;

		assert_int_equal(strlen(s), 11);
		assert_int_equal(s[5], '-');
		for (int j = 0; j < 11; j++)
			if (j != 5 && !strchr("0123456789abcdefghjkmnpqrstvwxyz", s[j]))
				fail_msg("'%s' has '%c'", s, s[j]);
		assert_int_equal(strlen(codes[i].hash), 64);
		for (int j = 0; j < i; j++) {
			assert_string_not_equal(codes[i].code, codes[j].code);
			assert_string_not_equal(codes[i].hash, codes[j].hash);
		}
		hashes[i] = codes[i].hash;
		/* the code itself is not in its hash */
		assert_null(strstr(codes[i].hash, codes[i].code));
	}
	/* each code matches its own hash only */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(totp_recovery_verify("user-42", codes[i].code, hashes, 10, &idx, &c),
				 ERR_OK);
		assert_int_equal(idx, i);
	}
	/* typed differently: upper case, no dash, spaces, look-alikes */
	for (size_t j = 0, k = 0; j <= strlen(codes[3].code); j++) {
		char ch = codes[3].code[j];

		if (ch == '-')
			continue;
		typed[k++] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch == '0' ? 'O' : ch == '1' ? 'l' : ch;
		if (k == 4)
			typed[k++] = ' ';
	}
	assert_int_equal(totp_recovery_verify("user-42", typed, hashes, 10, &idx, &c), ERR_OK);
	assert_int_equal(idx, 3);
	/* another account's salt, a used (removed) code, garbage */
	assert_int_equal(totp_recovery_verify("user-43", codes[3].code, hashes, 10, &idx, &c),
			 ERR_UNAUTHORIZED);
	ctx_clear(&c);
	assert_int_equal(totp_recovery_verify("user-42", codes[3].code, hashes, 3, &idx, &c),
			 ERR_UNAUTHORIZED);
	ctx_clear(&c);
	static const char *const bad[] = {"", "abcd-abcd", "abcde-abcdef", "abcde-abcdu", "abcde_abcde", NULL};
	for (int i = 0; bad[i]; i++) {
		ctx_clear(&c);
		assert_int_equal(totp_recovery_verify("user-42", bad[i], hashes, 10, &idx, &c), ERR_INVALID);
	}
	ctx_clear(&c);
	assert_int_equal(totp_recovery_hash("user-42", codes[0].code, h, &c), ERR_OK);
	assert_string_equal(h, codes[0].hash);
	assert_int_equal(totp_recovery_hash("", codes[0].code, h, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(totp_recovery_generate("user-42", codes, 0, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(totp_recovery_generate("user-42", codes, TOTP_RECOVERY_MAX + 1, &c), ERR_INVALID);
	/*
	 * a known answer, so stored hashes stay valid across versions:
	 * SHA-256("veranda-recovery-v1" NUL "user-42" NUL "abcdefghjk")
	 */
	assert_int_equal(totp_recovery_hash("user-42", "ABCDE FGHJK", h, &c), ERR_OK);
	assert_string_equal(h, "060acc99035df2cbf016a9377ba1ad38d61af6dd0154a0b4533574198621483f");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors),
		cmocka_unit_test(test_step),
		cmocka_unit_test(test_verify_window),
		cmocka_unit_test(test_secret_and_uri),
		cmocka_unit_test(test_recovery_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
