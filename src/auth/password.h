/*
 * password.h - password hashing with Argon2id (libargon2), stored as PHC
 * strings: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> with a 16-byte
 * random salt and a 32-byte hash (standard base64 without padding, as the
 * reference implementation writes them).
 *
 * Memory: every hash or verify holds m KiB for ~20 ms.  A global counting
 * semaphore caps how many run at once (default: the number of cores), so a
 * flood of sign-ins queues instead of exhausting memory; a caller that
 * waits longer than the configured timeout gets ERR_BUSY (answer 503).
 *
 * Secrets: passwords are read in place, never copied by this module, never
 * logged and never put in a ctx message.  Comparison of hashes is
 * argon2_verify()'s constant-time compare.
 *
 * Threading: every function is thread-safe.
 */
#ifndef VERANDA_AUTH_PASSWORD_H
#define VERANDA_AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Room for any PHC string password_hash() writes, with its NUL. */
#define PASSWORD_PHC_MAX 256
/* The longest password accepted, in bytes. */
#define PASSWORD_MAX 1024
/* The defaults and floors: OWASP's Argon2id parameters. */
#define PASSWORD_M_DEFAULT 19456
#define PASSWORD_T_DEFAULT 2
#define PASSWORD_P_DEFAULT 1
/* Ceilings, also applied to stored PHC strings before verifying them. */
#define PASSWORD_M_MAX (1024 * 1024) /* 1 GiB */
#define PASSWORD_T_MAX 64
#define PASSWORD_P_MAX 16
#define PASSWORD_SALT_LEN 16
#define PASSWORD_HASH_LEN 32

struct password_params {
	uint32_t m_kib;  /* memory, KiB: PASSWORD_M_DEFAULT..PASSWORD_M_MAX */
	uint32_t t;      /* passes: PASSWORD_T_DEFAULT..PASSWORD_T_MAX */
	uint32_t p;      /* lanes: 1..PASSWORD_P_MAX */
};

#define PASSWORD_PARAMS_DEFAULT {PASSWORD_M_DEFAULT, PASSWORD_T_DEFAULT, PASSWORD_P_DEFAULT}

/*
 * ERR_OK when 'p' is within the floors and ceilings above, else
 * ERR_INVALID naming the parameter.
 */
enum err password_params_check(const struct password_params *p, struct ctx *c);

/*
 * Set the cap on concurrent hashes (0: the number of online cores) and how
 * long a caller waits for a slot (milliseconds; default 5000).  Callers
 * already holding slots keep them.
 */
void password_limit_set(unsigned max_concurrent, unsigned wait_ms);
/* How many hashes are running now (for metrics and tests). */
unsigned password_limit_in_use(void);
/*
 * How many memory blocks verification keeps (for metrics and tests): one
 * for each slot that has verified a password, never more than the cap has
 * allowed at once.
 */
unsigned password_blocks(void);

/*
 * Hash pw[0..n) with 'params' (NULL: the defaults) and a fresh random salt
 * into out[PASSWORD_PHC_MAX].  ERR_INVALID for bad params, ERR_TOOBIG for a
 * password over PASSWORD_MAX bytes, ERR_BUSY when no slot came free in
 * time, ERR_IO when libargon2 fails (memory).
 */
enum err password_hash(const char *pw, size_t n, const struct password_params *params,
		       char out[PASSWORD_PHC_MAX], struct ctx *c);

/*
 * Does pw[0..n) match the PHC string 'phc'?  ERR_OK on a match,
 * ERR_UNAUTHORIZED on a mismatch, ERR_INVALID when 'phc' is not an
 * argon2id v=19 PHC string within the ceilings, ERR_TOOBIG for a password
 * over PASSWORD_MAX, ERR_BUSY as for password_hash().
 */
enum err password_verify(const char *phc, const char *pw, size_t n, struct ctx *c);

/*
 * Spend the time and memory of a verification against a fixed dummy hash
 * made with 'params' (NULL: the defaults), so that a sign-in for an
 * unknown user takes as long as one for a known user.  Never succeeds:
 * ERR_UNAUTHORIZED, or the error of password_verify() (ERR_BUSY when no
 * slot came free, ERR_TOOBIG, ERR_INVALID for bad params, ERR_IO).
 */
enum err password_dummy_verify(const char *pw, size_t n, const struct password_params *params,
			       struct ctx *c);

/*
 * Should 'phc' be replaced by a fresh hash (after a successful verify)?
 * True when it is not argon2id v=19, when its m, t or p differ from
 * 'params' (NULL: the defaults), or its salt or hash length differ from
 * ours, or it does not parse.
 */
bool password_needs_rehash(const char *phc, const struct password_params *params);

/*
 * Test hook: hash with a caller-chosen salt (at least 8 bytes) and no
 * floors on the parameters (only libargon2's own limits), for known-answer
 * tests against the reference implementation.  Never use it for real
 * passwords.  Errors as password_hash().
 */
enum err password_hash_with_salt(const char *pw, size_t n, const struct password_params *params,
				 const void *salt, size_t salt_len, char out[PASSWORD_PHC_MAX],
				 struct ctx *c);

#endif
