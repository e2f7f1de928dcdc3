/*
 * totp.h - step-up authentication with time-based one-time passwords
 * (RFC 6238, via liboath) and single-use recovery codes.
 *
 * TOTP here is what authenticator apps do by default: HMAC-SHA-1, 6
 * digits, 30-second steps from the Unix epoch, a 20-byte secret shown as
 * unpadded base32 in an otpauth:// URI.  Verification accepts the current
 * step and one step either side, and returns the step that matched: the
 * caller stores it and passes it back next time, so a code is accepted at
 * most once.  Time comes from clock_now_ms() (core/clock.h).
 *
 * Recovery codes are 10 characters from a 32-letter alphabet without
 * look-alikes (no i, l, o, u), shown as "xxxxx-xxxxx" (50 random bits).
 * Only a salted SHA-256 of each is stored; input is normalised (case,
 * dashes and spaces, o/0 and i/l/1 confusions) before hashing.
 *
 * Secrets: TOTP secrets, codes and recovery codes are secrets.  This
 * module wipes its own copies; the caller wipes what it holds (mem_wipe)
 * and never logs them.  Codes are compared in constant time.
 * Threading: every function is thread-safe.
 */
#ifndef VERANDA_AUTH_TOTP_H
#define VERANDA_AUTH_TOTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define TOTP_SECRET_LEN 20     /* bytes of a generated secret */
#define TOTP_SECRET_MAX 64     /* the longest secret accepted */
#define TOTP_STEP 30           /* seconds */
#define TOTP_DIGITS 6
#define TOTP_CODE_MAX 9        /* room for an 8-digit code and its NUL */
#define TOTP_NO_STEP (-1)      /* "no code accepted yet" for totp_verify() */

#define TOTP_RECOVERY_CODE_SIZE 12   /* "xxxxx-xxxxx" and a NUL */
#define TOTP_RECOVERY_HASH_SIZE 65   /* lowercase hex SHA-256 and a NUL */
#define TOTP_RECOVERY_MAX 32         /* the most codes one call makes */

/* Fill out[TOTP_SECRET_LEN] with a new random secret. */
void totp_secret_generate(unsigned char out[TOTP_SECRET_LEN]);

/*
 * Append the RFC 4648 base32 form of secret[0..n) without padding (as
 * authenticator apps expect) to 'out'.  ERR_INVALID for n == 0 or n >
 * TOTP_SECRET_MAX, ERR_TOOBIG when 'out' is full.
 */
enum err totp_base32_encode(const void *secret, size_t n, struct buf *out);

/*
 * Decode base32 text s[0..len) (case-insensitive, spaces and padding
 * allowed) into out[0..cap); *n gets the length.  ERR_INVALID for bad
 * text or a result longer than 'cap'.
 */
enum err totp_base32_decode(const char *s, size_t len, unsigned char *out, size_t cap,
			    size_t *n, struct ctx *c);

/*
 * Append the enrolment URI
 *   otpauth://totp/ISSUER:ACCOUNT?secret=B32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
 * with issuer and account percent-encoded.  Both are non-empty UTF-8
 * without control characters or ':' and at most 128 bytes: ERR_INVALID
 * otherwise.  ERR_TOOBIG when 'out' is full.  The URI holds the secret.
 */
enum err totp_uri(const char *issuer, const char *account, const void *secret, size_t n,
		  struct buf *out, struct ctx *c);

/* The step number (Unix seconds / TOTP_STEP) of the time 'ms' (ms since the epoch). */
int64_t totp_step_at(int64_t ms);

/*
 * The code of secret[0..n) at Unix time 'unix_seconds' with 'digits'
 * (6 to 8) into out[TOTP_CODE_MAX].  ERR_INVALID for bad arguments.
 */
enum err totp_code(const void *secret, size_t n, int64_t unix_seconds, unsigned digits,
		   char out[TOTP_CODE_MAX]);

/*
 * Check a 6-digit 'code' against the steps around clock_now_ms(): now - 1,
 * now, now + 1.  'last_step' is the step returned by the previous
 * successful call for this secret (TOTP_NO_STEP if none): a code of that
 * step or an earlier one is refused, so each code works once.  On success
 * *step gets the matched step (store it).  ERR_INVALID when 'code' is not
 * 6 digits, ERR_UNAUTHORIZED when it matches no step in the window,
 * ERR_CONFLICT when it matches only steps already used.
 */
enum err totp_verify(const void *secret, size_t n, const char *code, int64_t last_step,
		     int64_t *step, struct ctx *c);

/* One recovery code: the code to show once, and the hash to store. */
struct totp_recovery {
	char code[TOTP_RECOVERY_CODE_SIZE];
	char hash[TOTP_RECOVERY_HASH_SIZE];
};

/*
 * Make 'count' (1..TOTP_RECOVERY_MAX) distinct recovery codes for the
 * account named by 'salt' (e.g. the user id; 1..255 bytes), each with its
 * stored hash.  Wipe the codes after showing them.  ERR_INVALID for bad
 * arguments.
 */
enum err totp_recovery_generate(const char *salt, struct totp_recovery *out, size_t count,
				struct ctx *c);

/*
 * The stored form of a recovery code typed by a person: normalised, then
 * hashed with 'salt'.  ERR_INVALID when the input is not 10 characters of
 * the alphabet (after removing dashes and spaces).
 */
enum err totp_recovery_hash(const char *salt, const char *input,
			    char hash[TOTP_RECOVERY_HASH_SIZE], struct ctx *c);

/*
 * Compare 'input' with every stored hash in hashes[0..n) in constant time
 * (all are compared, whatever matches).  On a match *index gets its
 * position (the caller removes it: each code works once).
 * ERR_UNAUTHORIZED when none matches, ERR_INVALID for malformed input.
 */
enum err totp_recovery_verify(const char *salt, const char *input, const char *const *hashes,
			      size_t n, size_t *index, struct ctx *c);

#endif
