/*
 * jose.h - the JOSE primitives of the authorization server, on OpenSSL 3
 * EVP only: JSON Web Keys (RFC 7517/7518) for RSA and EC P-256/P-384, JWK
 * Sets, JWK thumbprints (RFC 7638), key generation and private-key files,
 * and JWS compact serialization (RFC 7515) with RS256, RS384, ES256 and
 * ES384, plus a separate HS256 API for client_secret_jwt.
 *
 * What verification accepts: a compact JWS of at most JOSE_JWS_MAX bytes,
 * exactly three non-empty base64url parts (strict: no padding, no
 * whitespace, canonical trailing bits), a protected header that is a JSON
 * object without duplicate members whose "alg" names an algorithm the key
 * may be used with, no "crit" member (we understand no extensions), and,
 * except for the *_raw variants, a payload that is a JSON object.  "none"
 * and the HS* algorithms are never accepted by the asymmetric verifiers;
 * only jose_hs256_verify() accepts HS256.  Header members that point at
 * keys ("jku", "jwk", "x5u", "x5c") are ignored: keys come only from the
 * caller.
 *
 * Ownership: a struct jose_key is reference counted; jose_key_free() drops
 * one reference.  A key is mutable (jose_key_set_kid/alg) only before it
 * is shared; afterwards it is read-only and may be used by many threads
 * at once.  A struct jose_jwks owns the references it holds and is
 * read-only once built.  Returned json_t values belong to the caller.
 *
 * Secrets: private key material is held by OpenSSL (EVP_PKEY) and by this
 * module only; temporary copies (PEM text, decoded parameters) are wiped
 * before they are freed.  Messages put on the struct ctx never contain key
 * material, signatures or token contents.
 *
 * Errors: ERR_INVALID malformed input; ERR_TOOBIG over a size limit;
 * ERR_UNSUPPORTED an algorithm, key type or curve we do not accept;
 * ERR_NOTFOUND no key to verify with (unknown kid); ERR_UNAUTHORIZED the
 * signature does not verify or the key may not be used with the token's
 * alg; ERR_IO / ERR_CONFLICT / ERR_FORBIDDEN for key files (see there).
 */
#ifndef VERANDA_AUTH_JOSE_H
#define VERANDA_AUTH_JOSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* The longest compact JWS we parse, in bytes. */
#define JOSE_JWS_MAX 16384
/* The longest "kid" we accept or set, in bytes. */
#define JOSE_KID_MAX 255
/* A base64url SHA-256 thumbprint: 43 characters and a NUL. */
#define JOSE_THUMBPRINT_SIZE 44
/* The most keys a struct jose_jwks holds. */
#define JOSE_JWKS_MAX_KEYS 64
/* RSA modulus bounds, in bits. */
#define JOSE_RSA_MIN_BITS 2048
#define JOSE_RSA_MAX_BITS 8192
/* HS256 keys shorter than the hash output are refused (RFC 7518 section 3.2). */
#define JOSE_HS256_MIN_SECRET 32

enum jose_alg {
	JOSE_ALG_UNSET = 0, /* a key without "alg": any algorithm of its type */
	JOSE_RS256,
	JOSE_RS384,
	JOSE_ES256,
	JOSE_ES384,
	JOSE_HS256,
};

enum jose_kty { JOSE_KTY_RSA = 1, JOSE_KTY_EC = 2 };

/* What jose_key_generate() makes. */
enum jose_keygen { JOSE_GEN_RSA2048, JOSE_GEN_RSA3072, JOSE_GEN_P256, JOSE_GEN_P384 };

struct jose_key;
struct jose_jwks;

/* "RS256" etc.; NULL for JOSE_ALG_UNSET. */
const char *jose_alg_name(enum jose_alg alg);
/* The algorithm named 'name' ("none" and unknown names give JOSE_ALG_UNSET). */
enum jose_alg jose_alg_parse(const char *name);

/* ---- keys ---------------------------------------------------------------- */

/*
 * Generate a new signing key.  Its alg is RS256 for RSA, ES256 for P-256
 * and ES384 for P-384, its use "sig" and its kid the RFC 7638 thumbprint.
 * The caller owns *out (jose_key_free).  ERR_IO when OpenSSL fails.
 */
enum err jose_key_generate(enum jose_keygen type, struct jose_key **out, struct ctx *c);

/* Flags for jose_key_from_jwk(). */
#define JOSE_JWK_PUBLIC_ONLY 1u /* refuse a JWK carrying private members */

/*
 * Import one JWK (a JSON object): kty "RSA" with n, e (and d, p, q, dp,
 * dq, qi together for a private key; "oth" is refused) or kty "EC" with
 * crv "P-256"/"P-384", x, y (full length, and d for a private key).  The
 * optional kid, use and alg are kept; an alg must suit the key.  The key
 * is validated (EC point on the curve, RSA modulus size and form, private
 * parts consistent with public).  ERR_UNSUPPORTED for another kty or crv,
 * or an unusable alg; ERR_INVALID for anything malformed.  The caller owns
 * *out.
 */
enum err jose_key_from_jwk(const json_t *jwk, unsigned flags, struct jose_key **out,
			   struct ctx *c);

/*
 * The key as a JWK object (a new reference in *out): kty and its public
 * members, then kid, use and alg where set.  With 'with_private' the
 * private members too (ERR_INVALID when the key has none): that object
 * then holds secrets; keep it out of logs and responses.
 */
enum err jose_key_to_jwk(const struct jose_key *k, bool with_private, json_t **out,
			 struct ctx *c);

/*
 * The RFC 7638 thumbprint (SHA-256, base64url) of the public key into
 * out[JOSE_THUMBPRINT_SIZE].  ERR_IO when OpenSSL fails.
 */
enum err jose_key_thumbprint(const struct jose_key *k, char out[JOSE_THUMBPRINT_SIZE],
			     struct ctx *c);

/*
 * Write the private key as unencrypted PKCS#8 PEM to 'path', created with
 * mode 0600: the bytes go to a temporary file in the same directory, which
 * is synced and then linked to 'path', so 'path' either does not exist or
 * holds the whole key.  An existing 'path' is never replaced:
 * ERR_CONFLICT.  ERR_INVALID for a public-only key, ERR_IO for a system
 * failure (the temporary file is removed).
 */
enum err jose_key_save(const struct jose_key *k, const char *path, struct ctx *c);

/*
 * Read a PEM private key written by jose_key_save() (or any unencrypted
 * PKCS#8 / traditional PEM of a supported type).  kid is the thumbprint,
 * use "sig", alg the default for the type (as jose_key_generate).
 * ERR_NOTFOUND when 'path' does not exist; ERR_FORBIDDEN when the file is
 * not a regular file or group or others may access it; ERR_INVALID for
 * unreadable contents (encrypted keys included); ERR_UNSUPPORTED for
 * another key type or size.  The caller owns *out.
 */
enum err jose_key_load(const char *path, struct jose_key **out, struct ctx *c);

/* Another reference to 'k' (returns 'k'). */
struct jose_key *jose_key_ref(struct jose_key *k);
/* Drop one reference; the key is destroyed with the last.  NULL is fine. */
void jose_key_free(struct jose_key *k);

enum jose_kty jose_key_kty(const struct jose_key *k);
/* The key's alg, or JOSE_ALG_UNSET when it has none. */
enum jose_alg jose_key_alg(const struct jose_key *k);
/* The kid ("" when it has none). */
const char *jose_key_kid(const struct jose_key *k);
bool jose_key_has_private(const struct jose_key *k);
/* RSA modulus bits or the EC field bits (256, 384). */
int jose_key_bits(const struct jose_key *k);

/*
 * Set the kid (printable ASCII, 1..JOSE_KID_MAX bytes) or the alg (one
 * that suits the key; JOSE_ALG_UNSET clears it).  Only before the key is
 * shared.  ERR_INVALID / ERR_UNSUPPORTED otherwise, and the key is
 * unchanged.
 */
enum err jose_key_set_kid(struct jose_key *k, const char *kid, struct ctx *c);
enum err jose_key_set_alg(struct jose_key *k, enum jose_alg alg, struct ctx *c);

/* ---- key sets -------------------------------------------------------------- */

/* An empty set (never NULL). */
struct jose_jwks *jose_jwks_new(void);
void jose_jwks_free(struct jose_jwks *set);

/*
 * Add 'k' to the set, which takes over the caller's reference (call
 * jose_key_ref() first to keep one).  ERR_TOOBIG past JOSE_JWKS_MAX_KEYS
 * (the reference is dropped then).
 */
enum err jose_jwks_add(struct jose_jwks *set, struct jose_key *k, struct ctx *c);

/*
 * Import a JWK Set document {"keys":[...]}.  Keys of a kty or crv we do not
 * support are skipped (RFC 7517 section 5); a malformed key of a supported
 * type fails the whole set with ERR_INVALID naming its index.  'flags' as
 * for jose_key_from_jwk().  The caller owns *out.
 */
enum err jose_jwks_from_json(const json_t *doc, unsigned flags, struct jose_jwks **out,
			     struct ctx *c);
/* The same from JSON text s[0..n) (at most 256 KiB). */
enum err jose_jwks_parse(const char *s, size_t n, unsigned flags, struct jose_jwks **out,
			 struct ctx *c);

/*
 * The public JWK Set document {"keys":[...]} of every key (never private
 * members), for the jwks_uri endpoint.  *out is a new reference.
 */
enum err jose_jwks_to_json(const struct jose_jwks *set, json_t **out, struct ctx *c);

size_t jose_jwks_count(const struct jose_jwks *set);
/* The i-th key (borrowed), or NULL past the end. */
struct jose_key *jose_jwks_get(const struct jose_jwks *set, size_t i);
/* The first key whose kid is 'kid' (borrowed), or NULL. */
struct jose_key *jose_jwks_find(const struct jose_jwks *set, const char *kid);

/* ---- JWS compact ---------------------------------------------------------- */

/*
 * Sign 'payload' (a JSON object) with the private key 'k' under the key's
 * alg and append the compact JWS to 'out'.  The protected header is
 * {"alg":..,"kid":..} (kid when the key has one) followed by the members
 * of 'header_extra' (may be NULL; e.g. {"typ":"at+jwt"}), which may not
 * set alg or kid.  ERR_INVALID for a public-only key, a key without alg, a
 * non-object payload or a bad header_extra; ERR_TOOBIG when 'out' is full;
 * ERR_IO when OpenSSL fails.  On failure 'out' is as it was.
 */
enum err jose_jws_sign(const struct jose_key *k, const json_t *header_extra,
		       const json_t *payload, struct buf *out, struct ctx *c);

/*
 * Lower level: sign the exact bytes of a protected header (JSON text, an
 * object whose "alg" is the key's alg) and of a payload (any bytes), for
 * test vectors and detached formats.  Same errors as jose_jws_sign().
 */
enum err jose_jws_sign_raw(const struct jose_key *k, const char *header, size_t header_len,
			   const void *payload, size_t payload_len, struct buf *out,
			   struct ctx *c);

/*
 * Verify the compact JWS token[0..n) with key 'k' (public or private).
 * The header's alg must suit the key (kty and curve, and equal the key's
 * alg when it has one); a kid in the header is not compared.  On success
 * *header and *payload (either pointer may be NULL) receive new
 * references; on failure they are set to NULL.  Errors as in the file
 * comment.
 */
enum err jose_jws_verify(const char *token, size_t n, const struct jose_key *k,
			 json_t **header, json_t **payload, struct ctx *c);

/*
 * Verify against a key set: with a kid in the header, the keys with that
 * kid (ERR_NOTFOUND when there is none); without, every key whose type
 * suits the alg, in order.  Keys with use "enc" are never used.
 * 'used' (may be NULL) receives the verifying key (borrowed from 'set').
 */
enum err jose_jws_verify_jwks(const char *token, size_t n, const struct jose_jwks *set,
			      json_t **header, json_t **payload,
			      const struct jose_key **used, struct ctx *c);

/*
 * As jose_jws_verify(), but the payload may be any bytes: they are
 * appended to 'payload' (on failure it is as it was).
 */
enum err jose_jws_verify_raw(const char *token, size_t n, const struct jose_key *k,
			     json_t **header, struct buf *payload, struct ctx *c);

/*
 * Parse a compact JWS WITHOUT verifying it, with the same syntax rules as
 * the verifiers (the payload must be a JSON object): for reading "iss" of a
 * client assertion to find the client's keys before verifying.  Nothing in
 * the result may be trusted.  alg is not checked.
 */
enum err jose_jws_decode_unverified(const char *token, size_t n, json_t **header,
				    json_t **payload, struct ctx *c);

/* ---- HS256 (client_secret_jwt only) --------------------------------------- */

/*
 * Sign 'payload' with HMAC-SHA-256 under 'secret' (at least
 * JOSE_HS256_MIN_SECRET bytes): header {"alg":"HS256"} then the members of
 * 'header_extra' (may be NULL).  Errors as jose_jws_sign().
 */
enum err jose_hs256_sign(const void *secret, size_t secret_len, const json_t *header_extra,
			 const json_t *payload, struct buf *out, struct ctx *c);
/* The exact-bytes variant, as jose_jws_sign_raw() (the header's alg must be HS256). */
enum err jose_hs256_sign_raw(const void *secret, size_t secret_len, const char *header,
			     size_t header_len, const void *payload, size_t payload_len,
			     struct buf *out, struct ctx *c);
/*
 * Verify an HS256 compact JWS with 'secret' (MAC compared in constant
 * time).  Any alg other than HS256 is ERR_UNSUPPORTED.  Results and other
 * errors as jose_jws_verify().
 */
enum err jose_hs256_verify(const char *token, size_t n, const void *secret,
			   size_t secret_len, json_t **header, json_t **payload, struct ctx *c);

#endif
