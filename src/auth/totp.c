/*
 * totp.c - RFC 6238 TOTP on liboath, enrolment URIs, recovery codes.
 * See totp.h.
 *
 * liboath is initialised once (pthread_once).  Its validators compare
 * with strcmp and stop at the first match, so verification generates the
 * window's codes with oath_totp_generate2() and compares them here in
 * constant time.
 */
#include "auth/totp.h"

#include <liboath/oath.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/rand.h"
#include "core/str.h"

#define URI_FIELD_MAX 128
#define SALT_MAX 255
#define RECOVERY_LEN 10

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_status = OATH_OK;

static void oath_start(void)
{
	oath_status = oath_init();
}

static bool oath_ready(void)
{
	pthread_once(&oath_once, oath_start);
	return oath_status == OATH_OK;
}

void totp_secret_generate(unsigned char out[TOTP_SECRET_LEN])
{
	rand_bytes(out, TOTP_SECRET_LEN);
}

enum err totp_base32_encode(const void *secret, size_t n, struct buf *out)
{
	char *b32 = NULL;
	size_t len = 0;
	enum err rc;

	if (n == 0 || n > TOTP_SECRET_MAX || !oath_ready())
		return ERR_INVALID;
	if (oath_base32_encode(secret, n, &b32, &len) != OATH_OK)
		return ERR_INVALID;
	while (len && b32[len - 1] == '=')
		len--;
	rc = buf_add(out, b32, len);
	mem_wipe(b32, len);
	free(b32);
	return rc;
}

enum err totp_base32_decode(const char *s, size_t len, unsigned char *out, size_t cap,
			    size_t *n, struct ctx *c)
{
	char *raw = NULL;
	size_t rn = 0;
	enum err rc = ERR_OK;

	*n = 0;
	if (!oath_ready() || len > 4 * TOTP_SECRET_MAX ||
	    oath_base32_decode(s, len, &raw, &rn) != OATH_OK)
		return ctx_errorf(c, ERR_INVALID, "not a base32 secret");
	if (rn == 0 || rn > cap) {
		rc = ctx_errorf(c, ERR_INVALID, "a secret has 1 to %zu bytes", cap);
		goto out;
	}
	memcpy(out, raw, rn);
	*n = rn;
out:
	if (raw) {
		mem_wipe(raw, rn);
		free(raw);
	}
	return rc;
}

/* A label part: non-empty UTF-8, no controls, no ':', bounded. */
static bool uri_field_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > URI_FIELD_MAX || !str_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f || ch == ':')
			return false;
	}
	return true;
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static void add_pct(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			buf_addch(b, (char)ch);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};

			buf_add(b, e, 3);
		}
	}
}

enum err totp_uri(const char *issuer, const char *account, const void *secret, size_t n,
		  struct buf *out, struct ctx *c)
{
	size_t start = out->len;
	enum err saved = out->err;

	if (!uri_field_ok(issuer) || !uri_field_ok(account))
		return ctx_errorf(c, ERR_INVALID,
				  "issuer and account are 1 to %d characters without ':'",
				  URI_FIELD_MAX);
	if (n == 0 || n > TOTP_SECRET_MAX)
		return ctx_errorf(c, ERR_INVALID, "bad TOTP secret length");
	buf_adds(out, "otpauth://totp/");
	add_pct(out, issuer);
	buf_addch(out, ':');
	add_pct(out, account);
	buf_adds(out, "?secret=");
	if (!out->err && totp_base32_encode(secret, n, out) != ERR_OK && !out->err)
		out->err = ERR_INVALID;
	buf_adds(out, "&issuer=");
	add_pct(out, issuer);
	buf_addf(out, "&algorithm=SHA1&digits=%d&period=%d", TOTP_DIGITS, TOTP_STEP);
	if (out->err) {
		enum err rc = out->err;

		mem_wipe(out->data + start, out->len - start);
		buf_truncate(out, start);
		out->err = saved;
		return ctx_errorf(c, rc, "the otpauth URI does not fit");
	}
	return ERR_OK;
}

int64_t totp_step_at(int64_t ms)
{
	int64_t q = ms / (TOTP_STEP * 1000);

	if (ms % (TOTP_STEP * 1000) < 0)
		q--;
	return q;
}

enum err totp_code(const void *secret, size_t n, int64_t unix_seconds, unsigned digits,
		   char out[TOTP_CODE_MAX])
{
	out[0] = '\0';
	if (n == 0 || n > TOTP_SECRET_MAX || digits < 6 || digits > 8 || unix_seconds < 0 ||
	    !oath_ready())
		return ERR_INVALID;
	if (oath_totp_generate2(secret, n, (time_t)unix_seconds, TOTP_STEP,
				OATH_TOTP_DEFAULT_START_TIME, digits, 0, out) != OATH_OK) {
		out[0] = '\0';
		return ERR_INVALID;
	}
	return ERR_OK;
}

enum err totp_verify(const void *secret, size_t n, const char *code, int64_t last_step,
		     int64_t *step, struct ctx *c)
{
	char typed[TOTP_DIGITS + 1], want[TOTP_CODE_MAX];
	int64_t now = totp_step_at(clock_now_ms()), best = -1;
	size_t len = 0;
	enum err rc = ERR_OK;

	*step = TOTP_NO_STEP;
	/* the digits, ignoring spaces ("123 456") */
	for (const char *p = code; p && *p; p++) {
		if (*p == ' ')
			continue;
		if (*p < '0' || *p > '9' || len == TOTP_DIGITS) {
			len = 0;
			break;
		}
		typed[len++] = *p;
	}
	if (len != TOTP_DIGITS) {
		rc = ctx_errorf(c, ERR_INVALID, "a code has %d digits", TOTP_DIGITS);
		goto out;
	}
	typed[len] = '\0';
	for (int64_t s = now - 1; s <= now + 1; s++) {
		if (s < 0)
			continue;
		if (totp_code(secret, n, s * TOTP_STEP, TOTP_DIGITS, want) != ERR_OK) {
			rc = ctx_errorf(c, ERR_INVALID, "bad TOTP secret");
			goto out;
		}
		/* every step is compared; no early exit on a match */
		if (str_eq_ct(typed, TOTP_DIGITS, want, strlen(want)) && s > best)
			best = s;
	}
	if (best < 0)
		rc = ctx_errorf(c, ERR_UNAUTHORIZED, "the code is wrong or expired");
	else if (best <= last_step)
		rc = ctx_errorf(c, ERR_CONFLICT, "the code was already used; wait for the next one");
	else
		*step = best;
out:
	mem_wipe(typed, sizeof(typed));
	mem_wipe(want, sizeof(want));
	return rc;
}

/* ---- recovery codes ------------------------------------------------------------ */

/* 32 symbols without i, l, o, u: 5 bits each. */
static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

/* The symbol 'ch' stands for after normalisation, or 0 when none. */
static char normal_symbol(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		ch = (char)(ch - 'A' + 'a');
	if (ch == 'o')
		return '0';
	if (ch == 'i' || ch == 'l')
		return '1';
	return (ch && strchr(alphabet, ch)) ? ch : 0;
}

/* Normalise 'input' into out[RECOVERY_LEN] (no NUL); false when malformed. */
static bool recovery_normal(const char *input, char out[RECOVERY_LEN])
{
	size_t n = 0;

	for (const char *p = input; p && *p; p++) {
		char sym;

		if (*p == '-' || *p == ' ')
			continue;
		sym = normal_symbol(*p);
		if (!sym || n == RECOVERY_LEN)
			return false;
		out[n++] = sym;
	}
	return n == RECOVERY_LEN;
}

static bool salt_ok(const char *salt)
{
	size_t n = salt ? strlen(salt) : 0;

	return n >= 1 && n <= SALT_MAX;
}

/* hex(SHA-256("veranda-recovery-v1" NUL salt NUL code)) */
static enum err recovery_digest(const char *salt, const char code[RECOVERY_LEN],
				char hash[TOTP_RECOVERY_HASH_SIZE], struct ctx *c)
{
	static const char tag[] = "veranda-recovery-v1";
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	enum err rc = ERR_OK;

	if (!m || EVP_DigestInit_ex(m, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(m, tag, sizeof(tag)) != 1 ||
	    EVP_DigestUpdate(m, salt, strlen(salt) + 1) != 1 ||
	    EVP_DigestUpdate(m, code, RECOVERY_LEN) != 1 ||
	    EVP_DigestFinal_ex(m, md, &mdlen) != 1 || mdlen != 32) {
		rc = ctx_errorf(c, ERR_IO, "SHA-256 failed");
		goto out;
	}
	for (unsigned i = 0; i < mdlen; i++) {
		hash[2 * i] = hex[md[i] >> 4];
		hash[2 * i + 1] = hex[md[i] & 15];
	}
	hash[2 * mdlen] = '\0';
out:
	EVP_MD_CTX_free(m);
	return rc;
}

enum err totp_recovery_generate(const char *salt, struct totp_recovery *out, size_t count,
				struct ctx *c)
{
	unsigned char rnd[RECOVERY_LEN];
	char code[RECOVERY_LEN];
	enum err rc = ERR_OK;

	if (!salt_ok(salt) || count == 0 || count > TOTP_RECOVERY_MAX)
		return ctx_errorf(c, ERR_INVALID, "bad recovery code request");
	for (size_t i = 0; i < count; i++) {
		bool dup;

		do {
			rand_bytes(rnd, sizeof(rnd));
			/* 256 is a multiple of 32: each symbol is uniform */
			for (size_t j = 0; j < RECOVERY_LEN; j++)
				code[j] = alphabet[rnd[j] & 31];
			memcpy(out[i].code, code, 5);
			out[i].code[5] = '-';
			memcpy(out[i].code + 6, code + 5, 5);
			out[i].code[11] = '\0';
			dup = false;
			for (size_t j = 0; j < i; j++)
				dup |= strcmp(out[j].code, out[i].code) == 0;
		} while (dup);
		if ((rc = recovery_digest(salt, code, out[i].hash, c)) != ERR_OK)
			break;
	}
	mem_wipe(rnd, sizeof(rnd));
	mem_wipe(code, sizeof(code));
	if (rc != ERR_OK)
		mem_wipe(out, count * sizeof(*out));
	return rc;
}

enum err totp_recovery_hash(const char *salt, const char *input,
			    char hash[TOTP_RECOVERY_HASH_SIZE], struct ctx *c)
{
	char code[RECOVERY_LEN];
	enum err rc;

	hash[0] = '\0';
	if (!salt_ok(salt))
		return ctx_errorf(c, ERR_INVALID, "bad recovery code salt");
	if (!recovery_normal(input, code)) {
		mem_wipe(code, sizeof(code));
		return ctx_errorf(c, ERR_INVALID, "a recovery code looks like xxxxx-xxxxx");
	}
	rc = recovery_digest(salt, code, hash, c);
	mem_wipe(code, sizeof(code));
	return rc;
}

enum err totp_recovery_verify(const char *salt, const char *input, const char *const *hashes,
			      size_t n, size_t *index, struct ctx *c)
{
	char hash[TOTP_RECOVERY_HASH_SIZE];
	size_t found = SIZE_MAX;
	enum err rc = totp_recovery_hash(salt, input, hash, c);

	if (rc != ERR_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const char *h = hashes[i] ? hashes[i] : "";
		/* constant time in the contents; a match does not stop the loop */
		bool eq = str_eq_ct(hash, TOTP_RECOVERY_HASH_SIZE - 1, h, strlen(h));

		if (eq && found == SIZE_MAX)
			found = i;
	}
	mem_wipe(hash, sizeof(hash));
	if (found == SIZE_MAX)
		return ctx_errorf(c, ERR_UNAUTHORIZED, "the recovery code is not valid");
	*index = found;
	return ERR_OK;
}
