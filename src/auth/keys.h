/*
 * keys.h - the authorization server's own signing keys: one RS256 (RSA
 * 2048) key and one ES256 (P-256) key sign at any time; keys they replaced
 * stay in the published JWK Set for a while, so tokens signed before a
 * rotation still verify.
 *
 * On disk: DATA/keys (mode 0700) holds one unencrypted PKCS#8 PEM file
 * (mode 0600, written atomically by jose_key_save()) per key.  The file
 * name carries the key's history; nothing else records it:
 *
 *   rs256-CREATED.pem                      the current key of its algorithm
 *   rs256-CREATED-SUPERSEDED-RETIRE.pem    a replaced key
 *
 * where the algorithm is rs256 or es256 and CREATED, SUPERSEDED (when it
 * was replaced) and RETIRE (when it leaves the JWK Set) are milliseconds
 * since the Unix epoch.  A rotation writes the new keys first, then
 * renames the old current files (rename is atomic), then deletes expired
 * ones: a crash at any point leaves a usable directory (with two current
 * files of one algorithm, the newer signs and the older stays published
 * until the next rotation marks it replaced).  Other files (temporary
 * files of an interrupted write) are ignored.
 *
 * kid: the RFC 7638 thumbprint of the public key; "alg" and "use":"sig"
 * are set on every published key.
 *
 * A running server reads the keys once, at start (keys_load()); after
 * `veranda keys rotate` restart it to sign with the new keys and publish
 * the new set.
 *
 * Ownership: struct keys owns its jose keys; keys_signing() and
 * keys_jwks() return pointers into it, valid until keys_free().
 * Threading: a loaded struct keys is read-only and may be shared by any
 * number of threads.  keys_init() and keys_rotate() are for one process
 * at a time (the command line).
 *
 * Secrets: private keys are held by auth/jose.h (OpenSSL) and never leave
 * this module except as the signing key handles; messages name files,
 * never key material.
 */
#ifndef VERANDA_AUTH_KEYS_H
#define VERANDA_AUTH_KEYS_H

#include <stdint.h>

#include "auth/jose.h"
#include "core/buf.h"
#include "core/err.h"

/* Default time a replaced key stays published: one day, in ms. */
#define KEYS_RETIRE_DEFAULT_MS (INT64_C(86400) * 1000)
/* The most key files a directory may hold (more is refused as corrupt). */
#define KEYS_FILES_MAX 64

struct keys;

/*
 * Create DATA/keys (mode 0700) and, for each of RS256 and ES256 that has
 * no key yet, generate one.  Idempotent: existing keys are kept.
 * ERR_NOTFOUND when 'data_dir' does not exist; ERR_FORBIDDEN when
 * DATA/keys is not a directory or group or others may access it; ERR_IO.
 */
enum err keys_init(const char *data_dir, struct ctx *c);

/*
 * Load every published key of DATA/keys: the newest key of each
 * algorithm signs; older ones are published until their RETIRE time.
 * ERR_NOTFOUND when there is no directory or an algorithm has no key
 * ("run 'veranda init'"); ERR_FORBIDDEN for loose permissions (of the
 * directory or a key file); ERR_INVALID for an unreadable key file; ERR_IO.
 * The caller owns *out (keys_free()); NULL on failure.
 */
enum err keys_load(const char *data_dir, struct keys **out, struct ctx *c);
void keys_free(struct keys *k);

/*
 * The key that signs with 'alg' (JOSE_RS256 or JOSE_ES256; NULL for
 * another).  Borrowed from 'k'; it holds the private key.
 */
const struct jose_key *keys_signing(const struct keys *k, enum jose_alg alg);

/*
 * The public JWK Set document {"keys":[...]} (JSON bytes, built at load):
 * the signing keys first, then the replaced keys not yet retired, each
 * with kid, alg and use "sig", never private members.  Borrowed from 'k'.
 */
const struct buf *keys_jwks(const struct keys *k);

/*
 * Generate a new RS256 and a new ES256 key.  The keys they replace stay
 * published for 'retire_ms' (>= 0; 0 removes them at once, for a leaked
 * key); keys replaced 'retire_ms' or longer ago, or whose RETIRE time has
 * passed, are deleted.  Works on an empty directory too (as keys_init).
 * The running server keeps its keys until it restarts.
 * ERR_INVALID for a negative retire_ms; otherwise as keys_init().
 */
enum err keys_rotate(const char *data_dir, int64_t retire_ms, struct ctx *c);

enum key_status {
	KEY_SIGNING,     /* the newest key of its algorithm */
	KEY_PUBLISHED,   /* replaced, still in the JWK Set */
	KEY_RETIRED,     /* past its retire time; deleted by the next rotation */
};

/* "signing", "published", "retired". */
const char *key_status_name(enum key_status s);

struct key_info {
	char kid[JOSE_THUMBPRINT_SIZE];
	enum jose_alg alg;
	int64_t created;       /* ms since epoch */
	int64_t superseded;    /* ms; 0 while it signs (or before a rotation marks it) */
	int64_t retire;        /* ms when it leaves the JWK Set; 0: not set */
	enum key_status status;
};

/*
 * Every key file of DATA/keys, RS256 then ES256, newest first, with its
 * status at 'now_ms'.  'fn' gets a struct reused for the next key; a
 * non-zero return stops the walk.  Errors as keys_load() (an empty
 * directory is fine here).
 */
typedef int (*key_fn)(void *arg, const struct key_info *ki);
enum err keys_list(const char *data_dir, int64_t now_ms, key_fn fn, void *arg, struct ctx *c);

#endif
