/*
 * jose.c - JWK, JWK Sets, thumbprints, key files and JWS compact on
 * OpenSSL 3 EVP (no deprecated RSA_* / EC_KEY_* calls).  See jose.h.
 *
 * Threading: a key is read-only once shared and OpenSSL 3 allows one
 * EVP_PKEY to sign and verify in many threads at once; every call makes
 * its own EVP_MD_CTX.  The two digests are fetched once (pthread_once) so
 * the hot path does not look them up by name.  Every OpenSSL failure path
 * clears the thread's OpenSSL error queue: the message that matters goes
 * on the caller's struct ctx.
 */
#include "auth/jose.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"

/* Bytes of the largest RSA modulus and of the largest signature. */
#define RSA_MAX_BYTES (JOSE_RSA_MAX_BITS / 8)
#define SIG_MAX RSA_MAX_BYTES
/* JSON nesting allowed in a JWS header, a JWS payload and a JWK Set. */
#define HEADER_DEPTH 8
#define PAYLOAD_DEPTH 32
#define JWKS_DEPTH 8
/* The largest JWK Set text, and the most entries its "keys" may list. */
#define JWKS_TEXT_MAX (256 * 1024)
#define JWKS_ENTRIES_MAX 256
/* A key file is a few kilobytes of PEM. */
#define KEY_FILE_MAX (64 * 1024)

struct jose_key {
	atomic_int refs;
	EVP_PKEY *pkey;
	enum jose_kty kty;
	int bits;               /* RSA modulus bits, or 256 / 384 for EC */
	bool priv;
	enum jose_alg alg;      /* JOSE_ALG_UNSET: any alg of the type */
	char kid[JOSE_KID_MAX + 1];
	char use[16];           /* "" when absent */
};

struct jose_jwks {
	struct jose_key **keys;
	size_t n;
};

/* ---- algorithms ----------------------------------------------------------- */

struct alg_info {
	enum jose_alg alg;
	const char *name;
	int kty;                /* 0 for HMAC */
	int ec_bits;            /* the curve of an ES* alg */
	bool sha384;
};

static const struct alg_info alg_table[] = {
	{JOSE_RS256, "RS256", JOSE_KTY_RSA, 0, false},
	{JOSE_RS384, "RS384", JOSE_KTY_RSA, 0, true},
	{JOSE_ES256, "ES256", JOSE_KTY_EC, 256, false},
	{JOSE_ES384, "ES384", JOSE_KTY_EC, 384, true},
	{JOSE_HS256, "HS256", 0, 0, false},
};

#define NALGS (sizeof(alg_table) / sizeof(alg_table[0]))

static const struct alg_info *alg_info(enum jose_alg a)
{
	for (size_t i = 0; i < NALGS; i++)
		if (alg_table[i].alg == a)
			return &alg_table[i];
	return NULL;
}

/* The algorithm named by the JSON string 'v' (embedded NULs never match). */
static const struct alg_info *alg_by_json(const json_t *v)
{
	const char *s = json_string_value(v);

	if (!s || strlen(s) != json_string_length(v))
		return NULL;
	for (size_t i = 0; i < NALGS; i++)
		if (strcmp(alg_table[i].name, s) == 0)
			return &alg_table[i];
	return NULL;
}

const char *jose_alg_name(enum jose_alg alg)
{
	const struct alg_info *ai = alg_info(alg);

	return ai ? ai->name : NULL;
}

enum jose_alg jose_alg_parse(const char *name)
{
	for (size_t i = 0; name && i < NALGS; i++)
		if (strcmp(alg_table[i].name, name) == 0)
			return alg_table[i].alg;
	return JOSE_ALG_UNSET;
}

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256, *md_sha384;

static void md_fetch(void)
{
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	md_sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
}

/* The digest of 'ai', fetched once; NULL only when OpenSSL has no SHA-2. */
static const EVP_MD *alg_md(const struct alg_info *ai)
{
	pthread_once(&md_once, md_fetch);
	return ai->sha384 ? md_sha384 : md_sha256;
}

static enum jose_alg default_alg(enum jose_kty kty, int bits)
{
	if (kty == JOSE_KTY_RSA)
		return JOSE_RS256;
	return bits == 384 ? JOSE_ES384 : JOSE_ES256;
}

/* May 'k' verify or sign under 'ai'? */
static bool alg_suits(const struct jose_key *k, const struct alg_info *ai)
{
	if (ai->kty != (int)k->kty)
		return false;
	if (k->kty == JOSE_KTY_EC && ai->ec_bits != k->bits)
		return false;
	return k->alg == JOSE_ALG_UNSET || k->alg == ai->alg;
}

/* Record an OpenSSL failure: forget OpenSSL's own queue, keep our message. */
static enum err ossl_fail(struct ctx *c, enum err code, const char *what)
{
	ERR_clear_error();
	return ctx_errorf(c, code, "%s", what);
}

/* ---- small helpers ---------------------------------------------------------- */

/* A buffer for secrets: allocated once at its full size so it never moves. */
static void secret_buf_init(struct buf *b, size_t max)
{
	buf_init(b, max);
	buf_grow(b, max);
}

static void secret_buf_release(struct buf *b)
{
	if (b->cap)
		mem_wipe(b->data, b->cap);
	buf_release(b);
}

/* Is the JSON string 'v' exactly 's' (no embedded NUL)? */
static bool json_str_is(const json_t *v, const char *s)
{
	const char *t = json_string_value(v);

	return t && json_string_length(v) == strlen(s) && memcmp(t, s, strlen(s)) == 0;
}

/* ---- keys ---------------------------------------------------------------- */

static struct jose_key *key_new(EVP_PKEY *pkey, enum jose_kty kty, int bits, bool priv)
{
	struct jose_key *k = xcalloc(1, sizeof(*k));

	atomic_init(&k->refs, 1);
	k->pkey = pkey;
	k->kty = kty;
	k->bits = bits;
	k->priv = priv;
	return k;
}

struct jose_key *jose_key_ref(struct jose_key *k)
{
	atomic_fetch_add(&k->refs, 1);
	return k;
}

void jose_key_free(struct jose_key *k)
{
	if (!k || atomic_fetch_sub(&k->refs, 1) != 1)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum jose_kty jose_key_kty(const struct jose_key *k)
{
	return k->kty;
}

enum jose_alg jose_key_alg(const struct jose_key *k)
{
	return k->alg;
}

const char *jose_key_kid(const struct jose_key *k)
{
	return k->kid;
}

bool jose_key_has_private(const struct jose_key *k)
{
	return k->priv;
}

int jose_key_bits(const struct jose_key *k)
{
	return k->bits;
}

enum err jose_key_set_kid(struct jose_key *k, const char *kid, struct ctx *c)
{
	size_t n = strlen(kid);

	if (n == 0 || n > JOSE_KID_MAX)
		return ctx_errorf(c, ERR_INVALID, "a kid has 1 to %d characters", JOSE_KID_MAX);
	for (size_t i = 0; i < n; i++)
		if (kid[i] < 0x20 || kid[i] > 0x7e)
			return ctx_errorf(c, ERR_INVALID, "a kid is printable ASCII");
	str_copy(k->kid, kid, sizeof(k->kid));
	return ERR_OK;
}

enum err jose_key_set_alg(struct jose_key *k, enum jose_alg alg, struct ctx *c)
{
	const struct alg_info *ai;
	enum jose_alg saved = k->alg;

	if (alg == JOSE_ALG_UNSET) {
		k->alg = alg;
		return ERR_OK;
	}
	ai = alg_info(alg);
	if (!ai || ai->kty == 0)
		return ctx_errorf(c, ERR_UNSUPPORTED, "unsupported key algorithm");
	k->alg = JOSE_ALG_UNSET;
	if (!alg_suits(k, ai)) {
		k->alg = saved;
		return ctx_errorf(c, ERR_UNSUPPORTED, "alg '%s' does not suit this key", ai->name);
	}
	k->alg = alg;
	return ERR_OK;
}

/* Map an OpenSSL EC group name to the field size in bits (0: unsupported). */
static int ec_group_bits(const char *name)
{
	if (strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0 ||
	    strcmp(name, "secp256r1") == 0)
		return 256;
	if (strcmp(name, "secp384r1") == 0 || strcmp(name, "P-384") == 0)
		return 384;
	return 0;
}

/*
 * Wrap an EVP_PKEY of a supported type (takes it over, freeing it on
 * failure).  kid, use and alg are left empty.
 */
static enum err key_wrap(EVP_PKEY *pkey, bool priv, struct jose_key **out, struct ctx *c)
{
	char group[64];
	int bits;

	*out = NULL;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < JOSE_RSA_MIN_BITS || bits > JOSE_RSA_MAX_BITS) {
			EVP_PKEY_free(pkey);
			return ctx_errorf(c, ERR_UNSUPPORTED, "RSA keys have %d to %d bits, not %d",
					  JOSE_RSA_MIN_BITS, JOSE_RSA_MAX_BITS, bits);
		}
		*out = key_new(pkey, JOSE_KTY_RSA, bits, priv);
		return ERR_OK;
	}
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
					   sizeof(group), NULL) == 1 &&
	    (bits = ec_group_bits(group)) != 0) {
		*out = key_new(pkey, JOSE_KTY_EC, bits, priv);
		return ERR_OK;
	}
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return ctx_errorf(c, ERR_UNSUPPORTED, "only RSA and EC P-256/P-384 keys are supported");
}

/* Give a key we made or loaded its defaults: use "sig", the type's alg, the thumbprint as kid. */
static enum err key_set_defaults(struct jose_key *k, struct ctx *c)
{
	k->alg = default_alg(k->kty, k->bits);
	str_copy(k->use, "sig", sizeof(k->use));
	return jose_key_thumbprint(k, k->kid, c);
}

enum err jose_key_generate(enum jose_keygen type, struct jose_key **out, struct ctx *c)
{
	EVP_PKEY *pkey = NULL;
	enum err rc;

	*out = NULL;
	switch (type) {
	case JOSE_GEN_RSA2048: pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048); break;
	case JOSE_GEN_RSA3072: pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072); break;
	case JOSE_GEN_P256: pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1"); break;
	case JOSE_GEN_P384: pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp384r1"); break;
	default: return ctx_errorf(c, ERR_INVALID, "unknown key type");
	}
	if (!pkey)
		return ossl_fail(c, ERR_IO, "key generation failed");
	if ((rc = key_wrap(pkey, true, out, c)) != ERR_OK)
		return rc;
	if ((rc = key_set_defaults(*out, c)) != ERR_OK) {
		jose_key_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- JWK import ------------------------------------------------------------- */

/*
 * Decode the base64url member 'name' of 'jwk' into 'out' (reset first), at
 * most 'max' bytes.  ERR_NOTFOUND (not recorded) when it is absent.
 */
static enum err get_b64(const json_t *jwk, const char *name, size_t max, struct buf *out,
			struct ctx *c)
{
	const json_t *v = json_object_get(jwk, name);
	size_t len;

	if (!v)
		return ERR_NOTFOUND;
	if (!json_is_string(v))
		return ctx_errorf(c, ERR_INVALID, "JWK member '%s' is not a string", name);
	len = json_string_length(v);
	if (len == 0 || len > (max * 4 + 2) / 3)
		return ctx_errorf(c, ERR_INVALID, "JWK member '%s' has a bad length", name);
	buf_reset(out);
	if (base64url_decode(json_string_value(v), len, out) != ERR_OK || out->len > max)
		return ctx_errorf(c, ERR_INVALID, "JWK member '%s' is not base64url", name);
	return ERR_OK;
}

/* A required member; a missing one is ERR_INVALID. */
static enum err need_b64(const json_t *jwk, const char *name, size_t max, struct buf *out,
			 struct ctx *c)
{
	enum err rc = get_b64(jwk, name, max, out, c);

	if (rc == ERR_NOTFOUND)
		return ctx_errorf(c, ERR_INVALID, "JWK member '%s' is missing", name);
	return rc;
}

/*
 * Build an EVP_PKEY of 'type' from 'params' and validate it: a private key
 * must match its public part (pairwise check); an EC public key must be a
 * point of the curve's prime-order group.  An RSA public key gets only the
 * deterministic checks its caller made (size, odd modulus and exponent):
 * OpenSSL's RSA public check is a probabilistic SP 800-56B test costing
 * milliseconds that may accept a modulus once and refuse it the next time,
 * and a malformed modulus can only make signatures fail to verify.
 */
static enum err pkey_from_params(const char *type, OSSL_PARAM *params, bool priv,
				 EVP_PKEY **out, struct ctx *c)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL), *vctx = NULL;
	EVP_PKEY *pkey = NULL;
	enum err rc = ERR_OK;
	int ok;

	if (!pctx || EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &pkey, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
			      params) != 1) {
		rc = ossl_fail(c, ERR_INVALID, "the JWK does not describe a valid key");
		goto out;
	}
	vctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!vctx)
		ok = 0;
	else if (priv)
		ok = EVP_PKEY_pairwise_check(vctx);
	else if (strcmp(type, "RSA") == 0)
		ok = 1;
	else
		ok = EVP_PKEY_public_check(vctx);
	if (ok != 1) {
		rc = ossl_fail(c, ERR_INVALID, "the JWK does not describe a valid key");
		goto out;
	}
	*out = pkey;
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(vctx);
	EVP_PKEY_CTX_free(pctx);
	return rc;
}

static const char *const rsa_priv_members[] = {"d", "p", "q", "dp", "dq", "qi"};
static const char *const rsa_priv_params[] = {
	OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
	OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
	OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};
#define RSA_NPRIV 6

static enum err rsa_from_jwk(const json_t *jwk, unsigned flags, EVP_PKEY **out, bool *priv,
			     struct ctx *c)
{
	struct buf tmp;
	BIGNUM *n = NULL, *e = NULL, *pv[RSA_NPRIV] = {NULL};
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	int present = 0, bits;
	enum err rc;

	secret_buf_init(&tmp, RSA_MAX_BYTES);
	if ((rc = need_b64(jwk, "n", RSA_MAX_BYTES, &tmp, c)) != ERR_OK)
		goto out;
	n = BN_bin2bn((unsigned char *)tmp.data, (int)tmp.len, NULL);
	if ((rc = need_b64(jwk, "e", 8, &tmp, c)) != ERR_OK)
		goto out;
	e = BN_bin2bn((unsigned char *)tmp.data, (int)tmp.len, NULL);
	if (!n || !e) {
		rc = ossl_fail(c, ERR_IO, "out of memory");
		goto out;
	}
	bits = BN_num_bits(n);
	if (bits < JOSE_RSA_MIN_BITS || bits > JOSE_RSA_MAX_BITS) {
		rc = ctx_errorf(c, ERR_INVALID, "RSA modulus of %d bits (allowed: %d to %d)", bits,
				JOSE_RSA_MIN_BITS, JOSE_RSA_MAX_BITS);
		goto out;
	}
	if (!BN_is_odd(n) || !BN_is_odd(e) || BN_num_bits(e) < 2) {
		rc = ctx_errorf(c, ERR_INVALID, "RSA modulus or exponent is malformed");
		goto out;
	}
	if (json_object_get(jwk, "oth")) {
		rc = ctx_errorf(c, ERR_UNSUPPORTED, "multi-prime RSA keys are not supported");
		goto out;
	}
	for (int i = 0; i < RSA_NPRIV; i++) {
		rc = get_b64(jwk, rsa_priv_members[i], RSA_MAX_BYTES, &tmp, c);
		if (rc == ERR_NOTFOUND)
			continue;
		if (rc != ERR_OK)
			goto out;
		pv[i] = BN_secure_new();
		if (!pv[i] || !BN_bin2bn((unsigned char *)tmp.data, (int)tmp.len, pv[i])) {
			rc = ossl_fail(c, ERR_IO, "out of memory");
			goto out;
		}
		present++;
	}
	rc = ERR_OK;
	if (present && (flags & JOSE_JWK_PUBLIC_ONLY)) {
		rc = ctx_errorf(c, ERR_INVALID, "the JWK carries private key members");
		goto out;
	}
	if (present && present != RSA_NPRIV) {
		rc = ctx_errorf(c, ERR_INVALID, "an RSA private JWK needs all of d, p, q, dp, dq and qi");
		goto out;
	}
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
		rc = ossl_fail(c, ERR_IO, "out of memory");
		goto out;
	}
	for (int i = 0; present && i < RSA_NPRIV; i++) {
		if (!OSSL_PARAM_BLD_push_BN(bld, rsa_priv_params[i], pv[i])) {
			rc = ossl_fail(c, ERR_IO, "out of memory");
			goto out;
		}
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	if (!params) {
		rc = ossl_fail(c, ERR_IO, "out of memory");
		goto out;
	}
	*priv = present != 0;
	rc = pkey_from_params("RSA", params, *priv, out, c);
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	for (int i = 0; i < RSA_NPRIV; i++)
		BN_clear_free(pv[i]);
	BN_free(n);
	BN_free(e);
	secret_buf_release(&tmp);
	return rc;
}

static enum err ec_from_jwk(const json_t *jwk, unsigned flags, EVP_PKEY **out, bool *priv,
			    struct ctx *c)
{
	const json_t *crv = json_object_get(jwk, "crv");
	const char *group;
	unsigned char pub[1 + 2 * 48];
	struct buf tmp;
	BIGNUM *d = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	size_t flen;
	enum err rc;

	if (!json_is_string(crv))
		return ctx_errorf(c, ERR_INVALID, "EC JWK without 'crv'");
	if (json_str_is(crv, "P-256")) {
		group = "prime256v1";
		flen = 32;
	} else if (json_str_is(crv, "P-384")) {
		group = "secp384r1";
		flen = 48;
	} else {
		return ctx_errorf(c, ERR_UNSUPPORTED, "unsupported EC curve");
	}
	secret_buf_init(&tmp, flen);
	pub[0] = 0x04;
	if ((rc = need_b64(jwk, "x", flen, &tmp, c)) != ERR_OK)
		goto out;
	if (tmp.len != flen) {
		rc = ctx_errorf(c, ERR_INVALID, "EC JWK member 'x' must be %zu bytes", flen);
		goto out;
	}
	memcpy(pub + 1, tmp.data, flen);
	if ((rc = need_b64(jwk, "y", flen, &tmp, c)) != ERR_OK)
		goto out;
	if (tmp.len != flen) {
		rc = ctx_errorf(c, ERR_INVALID, "EC JWK member 'y' must be %zu bytes", flen);
		goto out;
	}
	memcpy(pub + 1 + flen, tmp.data, flen);
	rc = get_b64(jwk, "d", flen, &tmp, c);
	if (rc == ERR_OK) {
		if (flags & JOSE_JWK_PUBLIC_ONLY) {
			rc = ctx_errorf(c, ERR_INVALID, "the JWK carries private key members");
			goto out;
		}
		if (tmp.len != flen) {
			rc = ctx_errorf(c, ERR_INVALID, "EC JWK member 'd' must be %zu bytes", flen);
			goto out;
		}
		d = BN_secure_new();
		if (!d || !BN_bin2bn((unsigned char *)tmp.data, (int)tmp.len, d)) {
			rc = ossl_fail(c, ERR_IO, "out of memory");
			goto out;
		}
	} else if (rc != ERR_NOTFOUND) {
		goto out;
	}
	bld = OSSL_PARAM_BLD_new();
	if (!bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * flen) ||
	    (d && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d)) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld))) {
		rc = ossl_fail(c, ERR_IO, "out of memory");
		goto out;
	}
	*priv = d != NULL;
	rc = pkey_from_params("EC", params, *priv, out, c);
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(d);
	secret_buf_release(&tmp);
	return rc;
}

/* kid, use and alg of a JWK onto 'k'. */
static enum err jwk_meta(const json_t *jwk, struct jose_key *k, struct ctx *c)
{
	const json_t *kid = json_object_get(jwk, "kid"), *use = json_object_get(jwk, "use");
	const json_t *alg = json_object_get(jwk, "alg");
	const struct alg_info *ai;

	if (kid) {
		size_t n = json_string_length(kid);

		if (!json_is_string(kid) || n == 0 || n > JOSE_KID_MAX ||
		    strlen(json_string_value(kid)) != n)
			return ctx_errorf(c, ERR_INVALID, "JWK 'kid' must be a string of 1 to %d bytes",
					  JOSE_KID_MAX);
		str_copy(k->kid, json_string_value(kid), sizeof(k->kid));
	}
	if (use) {
		size_t n = json_string_length(use);

		if (!json_is_string(use) || n == 0 || n >= sizeof(k->use) ||
		    strlen(json_string_value(use)) != n)
			return ctx_errorf(c, ERR_INVALID, "JWK 'use' must be a short string");
		str_copy(k->use, json_string_value(use), sizeof(k->use));
	}
	if (alg) {
		if (!json_is_string(alg))
			return ctx_errorf(c, ERR_INVALID, "JWK 'alg' must be a string");
		ai = alg_by_json(alg);
		if (!ai || ai->kty == 0)
			return ctx_errorf(c, ERR_UNSUPPORTED, "unsupported JWK 'alg'");
		if (!alg_suits(k, ai))
			return ctx_errorf(c, ERR_INVALID, "JWK 'alg' %s does not suit the key", ai->name);
		k->alg = ai->alg;
	}
	return ERR_OK;
}

enum err jose_key_from_jwk(const json_t *jwk, unsigned flags, struct jose_key **out,
			   struct ctx *c)
{
	const json_t *kty = json_object_get(jwk, "kty");
	EVP_PKEY *pkey = NULL;
	bool priv = false;
	enum err rc;

	*out = NULL;
	if (!json_is_object(jwk))
		return ctx_errorf(c, ERR_INVALID, "a JWK is a JSON object");
	if (!json_is_string(kty))
		return ctx_errorf(c, ERR_INVALID, "JWK without 'kty'");
	if (json_str_is(kty, "RSA"))
		rc = rsa_from_jwk(jwk, flags, &pkey, &priv, c);
	else if (json_str_is(kty, "EC"))
		rc = ec_from_jwk(jwk, flags, &pkey, &priv, c);
	else
		return ctx_errorf(c, ERR_UNSUPPORTED, "unsupported JWK 'kty'");
	if (rc != ERR_OK)
		return rc;
	if ((rc = key_wrap(pkey, priv, out, c)) != ERR_OK)
		return rc;
	if ((rc = jwk_meta(jwk, *out, c)) != ERR_OK) {
		jose_key_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- JWK export and thumbprint ------------------------------------------------ */

/*
 * Append the base64url form of the key's big-number parameter 'name' to
 * 'out', left-padded with zeros to 'pad' bytes (0: minimal length).  The
 * raw bytes are wiped.
 */
static enum err param_b64(const struct jose_key *k, const char *name, size_t pad,
			  struct buf *out, struct ctx *c)
{
	unsigned char raw[RSA_MAX_BYTES];
	BIGNUM *bn = NULL;
	size_t len;
	enum err rc = ERR_OK;

	if (EVP_PKEY_get_bn_param(k->pkey, name, &bn) != 1)
		return ossl_fail(c, ERR_IO, "cannot read a key parameter");
	len = pad ? pad : (size_t)BN_num_bytes(bn);
	if (len > sizeof(raw) || BN_bn2binpad(bn, raw, (int)len) < 0) {
		rc = ossl_fail(c, ERR_IO, "key parameter out of range");
		goto out;
	}
	if (base64url_encode(raw, len, out) != ERR_OK)
		rc = ctx_errorf(c, out->err, "key parameter does not fit");
out:
	mem_wipe(raw, sizeof(raw));
	BN_clear_free(bn);
	return rc;
}

static size_t ec_flen(const struct jose_key *k)
{
	return k->bits == 384 ? 48 : 32;
}

/* Set obj[member] to the base64url of parameter 'name'; secret values are wiped from the scratch buffer. */
static enum err set_param(json_t *obj, const char *member, const struct jose_key *k,
			  const char *name, size_t pad, struct ctx *c)
{
	struct buf b;
	enum err rc;

	secret_buf_init(&b, 2 * RSA_MAX_BYTES);
	rc = param_b64(k, name, pad, &b, c);
	if (rc == ERR_OK)
		json_object_set_new(obj, member, json_stringn(b.data, b.len));
	secret_buf_release(&b);
	return rc;
}

enum err jose_key_to_jwk(const struct jose_key *k, bool with_private, json_t **out,
			 struct ctx *c)
{
	json_t *o = json_object();
	enum err rc = ERR_OK;

	*out = NULL;
	if (with_private && !k->priv) {
		rc = ctx_errorf(c, ERR_INVALID, "the key has no private part");
		goto out;
	}
	if (k->kty == JOSE_KTY_RSA) {
		json_object_set_new(o, "kty", json_string("RSA"));
		if ((rc = set_param(o, "n", k, OSSL_PKEY_PARAM_RSA_N, 0, c)) ||
		    (rc = set_param(o, "e", k, OSSL_PKEY_PARAM_RSA_E, 0, c)))
			goto out;
		for (int i = 0; with_private && i < RSA_NPRIV; i++)
			if ((rc = set_param(o, rsa_priv_members[i], k, rsa_priv_params[i], 0, c)))
				goto out;
	} else {
		json_object_set_new(o, "kty", json_string("EC"));
		json_object_set_new(o, "crv", json_string(k->bits == 384 ? "P-384" : "P-256"));
		if ((rc = set_param(o, "x", k, OSSL_PKEY_PARAM_EC_PUB_X, ec_flen(k), c)) ||
		    (rc = set_param(o, "y", k, OSSL_PKEY_PARAM_EC_PUB_Y, ec_flen(k), c)))
			goto out;
		if (with_private &&
		    (rc = set_param(o, "d", k, OSSL_PKEY_PARAM_PRIV_KEY, ec_flen(k), c)))
			goto out;
	}
	if (k->kid[0])
		json_object_set_new(o, "kid", json_string(k->kid));
	if (k->use[0])
		json_object_set_new(o, "use", json_string(k->use));
	if (k->alg != JOSE_ALG_UNSET)
		json_object_set_new(o, "alg", json_string(jose_alg_name(k->alg)));
	*out = o;
	o = NULL;
out:
	json_decref(o);
	return rc;
}

enum err jose_key_thumbprint(const struct jose_key *k, char out[JOSE_THUMBPRINT_SIZE],
			     struct ctx *c)
{
	struct buf canon = BUF_INIT(4096), enc = BUF_INIT(64);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	enum err rc;

	/* RFC 7638 section 3.2: the required members in lexicographic order, no whitespace */
	if (k->kty == JOSE_KTY_RSA) {
		buf_adds(&canon, "{\"e\":\"");
		if ((rc = param_b64(k, OSSL_PKEY_PARAM_RSA_E, 0, &canon, c)))
			goto out;
		buf_adds(&canon, "\",\"kty\":\"RSA\",\"n\":\"");
		if ((rc = param_b64(k, OSSL_PKEY_PARAM_RSA_N, 0, &canon, c)))
			goto out;
		buf_adds(&canon, "\"}");
	} else {
		buf_addf(&canon, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"",
			 k->bits == 384 ? "P-384" : "P-256");
		if ((rc = param_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, ec_flen(k), &canon, c)))
			goto out;
		buf_adds(&canon, "\",\"y\":\"");
		if ((rc = param_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, ec_flen(k), &canon, c)))
			goto out;
		buf_adds(&canon, "\"}");
	}
	if (canon.err) {
		rc = ctx_errorf(c, canon.err, "thumbprint input too long");
		goto out;
	}
	if (EVP_Digest(canon.data, canon.len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		rc = ossl_fail(c, ERR_IO, "SHA-256 failed");
		goto out;
	}
	base64url_encode(md, mdlen, &enc);
	str_copy(out, enc.data, JOSE_THUMBPRINT_SIZE);
	rc = ERR_OK;
out:
	buf_release(&canon);
	buf_release(&enc);
	return rc;
}

/* ---- key files ---------------------------------------------------------------- */

static enum err write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return ERR_IO;
		}
		p += w;
		n -= (size_t)w;
	}
	return ERR_OK;
}

/* fsync the directory holding 'path' so a new name in it is durable. */
static enum err sync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, r;

	str_copy(dir, path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (!slash)
		str_copy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ERR_IO;
	r = fsync(fd);
	close(fd);
	return r == 0 ? ERR_OK : ERR_IO;
}

enum err jose_key_save(const struct jose_key *k, const char *path, struct ctx *c)
{
	char tmp[PATH_MAX];
	BIO *bio = NULL;
	char *pem = NULL;
	long len;
	int fd = -1;
	bool made = false;
	enum err rc = ERR_OK;

	if (!k->priv)
		return ctx_errorf(c, ERR_INVALID, "only a private key is saved");
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp))
		return ctx_errorf(c, ERR_INVALID, "key file path too long");
	bio = BIO_new(BIO_s_secmem());
	if (!bio || PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (len = BIO_get_mem_data(bio, &pem)) <= 0) {
		rc = ossl_fail(c, ERR_IO, "cannot encode the private key");
		goto out;
	}
	/* mkostemp creates the file with O_EXCL and mode 0600 */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = ctx_errorf(c, ERR_IO, "cannot create a file next to '%s': %s", path,
				strerror(errno));
		goto out;
	}
	made = true;
	if (fchmod(fd, S_IRUSR | S_IWUSR) != 0 || write_all(fd, pem, (size_t)len) != ERR_OK ||
	    fsync(fd) != 0) {
		rc = ctx_errorf(c, ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = ctx_errorf(c, ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	/* link() never replaces: 'path' appears complete or not at all */
	if (link(tmp, path) != 0) {
		if (errno == EEXIST)
			rc = ctx_errorf(c, ERR_CONFLICT, "key file '%s' already exists", path);
		else
			rc = ctx_errorf(c, ERR_IO, "cannot create '%s': %s", path, strerror(errno));
		goto out;
	}
	if (sync_dir_of(path) != ERR_OK)
		rc = ctx_errorf(c, ERR_IO, "cannot sync the directory of '%s': %s", path,
				strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (made)
		unlink(tmp);
	BIO_free(bio); /* a secmem BIO clears its memory */
	return rc;
}

/* PEM passphrase callback: never prompt; encrypted keys fail to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

enum err jose_key_load(const char *path, struct jose_key **out, struct ctx *c)
{
	struct stat st;
	struct buf data;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	int fd;
	enum err rc = ERR_OK;

	*out = NULL;
	buf_init(&data, KEY_FILE_MAX);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return ctx_errorf(c, ERR_NOTFOUND, "no key file '%s'", path);
		if (errno == ELOOP)
			return ctx_errorf(c, ERR_FORBIDDEN, "key file '%s' is a symbolic link", path);
		return ctx_errorf(c, ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	}
	if (fstat(fd, &st) != 0) {
		rc = ctx_errorf(c, ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ctx_errorf(c, ERR_FORBIDDEN, "key file '%s' is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = ctx_errorf(c, ERR_FORBIDDEN,
				"key file '%s' is accessible to group or others (mode %03o; want 600)",
				path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if (st.st_size > KEY_FILE_MAX) {
		rc = ctx_errorf(c, ERR_TOOBIG, "key file '%s' is too large", path);
		goto out;
	}
	secret_buf_init(&data, KEY_FILE_MAX);
	for (;;) {
		ssize_t r = read(fd, data.data + data.len, data.max - data.len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = ctx_errorf(c, ERR_IO, "cannot read '%s': %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		data.len += (size_t)r;
		if (data.len == data.max) {
			rc = ctx_errorf(c, ERR_TOOBIG, "key file '%s' is too large", path);
			goto out;
		}
	}
	bio = BIO_new_mem_buf(data.data, (int)data.len);
	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!pkey) {
		rc = ossl_fail(c, ERR_INVALID, "key file holds no readable unencrypted private key");
		goto out;
	}
	rc = key_wrap(pkey, true, out, c);
	if (rc == ERR_OK && (rc = key_set_defaults(*out, c)) != ERR_OK) {
		jose_key_free(*out);
		*out = NULL;
	}
out:
	BIO_free(bio);
	close(fd);
	secret_buf_release(&data);
	return rc;
}

/* ---- key sets ------------------------------------------------------------------ */

struct jose_jwks *jose_jwks_new(void)
{
	return xcalloc(1, sizeof(struct jose_jwks));
}

void jose_jwks_free(struct jose_jwks *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		jose_key_free(set->keys[i]);
	free(set->keys);
	free(set);
}

enum err jose_jwks_add(struct jose_jwks *set, struct jose_key *k, struct ctx *c)
{
	if (set->n >= JOSE_JWKS_MAX_KEYS) {
		jose_key_free(k);
		return ctx_errorf(c, ERR_TOOBIG, "a key set holds at most %d keys", JOSE_JWKS_MAX_KEYS);
	}
	set->keys = xrealloc(set->keys, (set->n + 1) * sizeof(*set->keys));
	set->keys[set->n++] = k;
	return ERR_OK;
}

enum err jose_jwks_from_json(const json_t *doc, unsigned flags, struct jose_jwks **out,
			     struct ctx *c)
{
	const json_t *keys = json_object_get(doc, "keys"), *v;
	struct jose_jwks *set = NULL;
	size_t i;
	enum err rc = ERR_OK;

	*out = NULL;
	if (!json_is_object(doc) || !json_is_array(keys))
		return ctx_errorf(c, ERR_INVALID, "a JWK Set is an object with a 'keys' array");
	if (json_array_size(keys) > JWKS_ENTRIES_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "a JWK Set lists at most %d keys", JWKS_ENTRIES_MAX);
	set = jose_jwks_new();
	json_array_foreach(keys, i, v) {
		struct ctx kc = CTX_INIT;
		struct jose_key *k;
		enum err krc = jose_key_from_jwk(v, flags, &k, &kc);

		/* RFC 7517 section 5: ignore keys we do not understand */
		if (krc == ERR_UNSUPPORTED)
			continue;
		if (krc != ERR_OK) {
			rc = ctx_errorf(c, krc, "key %zu: %s", i, kc.msg);
			goto out;
		}
		if ((rc = jose_jwks_add(set, k, c)) != ERR_OK)
			goto out;
	}
	*out = set;
	set = NULL;
out:
	jose_jwks_free(set);
	return rc;
}

enum err jose_jwks_parse(const char *s, size_t n, unsigned flags, struct jose_jwks **out,
			 struct ctx *c)
{
	json_t *doc;
	enum err rc;

	*out = NULL;
	if (n > JWKS_TEXT_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "a JWK Set is at most %d bytes", JWKS_TEXT_MAX);
	doc = json_parse_bounded(s, n, JWKS_DEPTH, c);
	if (!doc)
		return c && c->code ? c->code : ERR_INVALID;
	rc = jose_jwks_from_json(doc, flags, out, c);
	json_decref(doc);
	return rc;
}

enum err jose_jwks_to_json(const struct jose_jwks *set, json_t **out, struct ctx *c)
{
	json_t *arr = json_array(), *jwk;
	enum err rc;

	*out = NULL;
	for (size_t i = 0; i < set->n; i++) {
		if ((rc = jose_key_to_jwk(set->keys[i], false, &jwk, c)) != ERR_OK) {
			json_decref(arr);
			return rc;
		}
		json_array_append_new(arr, jwk);
	}
	*out = json_pack("{s:o}", "keys", arr);
	return ERR_OK;
}

size_t jose_jwks_count(const struct jose_jwks *set)
{
	return set->n;
}

struct jose_key *jose_jwks_get(const struct jose_jwks *set, size_t i)
{
	return i < set->n ? set->keys[i] : NULL;
}

struct jose_key *jose_jwks_find(const struct jose_jwks *set, const char *kid)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->keys[i]->kid, kid) == 0)
			return set->keys[i];
	return NULL;
}

/* ---- signatures ------------------------------------------------------------------ */

/* The HMAC-SHA-256 of msg into mac[32]. */
static enum err hs256(const void *secret, size_t secret_len, const void *msg, size_t n,
		      unsigned char mac[32])
{
	size_t len = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, secret_len, msg, n, mac, 32,
		       &len) ||
	    len != 32) {
		ERR_clear_error();
		return ERR_IO;
	}
	return ERR_OK;
}

/* Sign 'msg' under 'ai' with 'k' into sig (JOSE form: R||S for ES*). */
static enum err sign_asym(const struct jose_key *k, const struct alg_info *ai, const void *msg,
			  size_t n, unsigned char sig[SIG_MAX], size_t *slen, struct ctx *c)
{
	unsigned char der[SIG_MAX];
	const unsigned char *p = der;
	size_t dlen = sizeof(der), half = (size_t)k->bits / 8;
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	const EVP_MD *md = alg_md(ai);
	enum err rc = ERR_OK;

	if (!mctx || !md || EVP_DigestSignInit(mctx, NULL, md, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(mctx, k->kty == JOSE_KTY_EC ? der : sig, &dlen, msg, n) != 1) {
		rc = ossl_fail(c, ERR_IO, "signing failed");
		goto out;
	}
	if (k->kty == JOSE_KTY_RSA) {
		*slen = dlen;
		goto out;
	}
	/* ECDSA: DER SEQUENCE { r, s } to the fixed-width R||S of RFC 7518 section 3.4 */
	es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	if (!es) {
		rc = ossl_fail(c, ERR_IO, "signing failed");
		goto out;
	}
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, (int)half) < 0 || BN_bn2binpad(s, sig + half, (int)half) < 0) {
		rc = ossl_fail(c, ERR_IO, "signing failed");
		goto out;
	}
	*slen = 2 * half;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(mctx);
	return rc;
}

/*
 * Does 'sig' verify 'msg' under 'ai' with 'k'?  ERR_OK or ERR_UNAUTHORIZED
 * (with a message), ERR_IO when OpenSSL cannot even start.
 */
static enum err verify_asym(const struct jose_key *k, const struct alg_info *ai,
			    const void *msg, size_t n, const unsigned char *sig, size_t slen,
			    struct ctx *c)
{
	unsigned char der[2 * 48 + 16];
	const unsigned char *vsig = sig;
	size_t vlen = slen;
	EVP_MD_CTX *mctx = NULL;
	ECDSA_SIG *es = NULL;
	const EVP_MD *md = alg_md(ai);
	enum err rc = ERR_OK;
	int ok;

	if (k->kty == JOSE_KTY_EC) {
		size_t half = (size_t)k->bits / 8;
		BIGNUM *r, *s;
		unsigned char *p = der;
		int dl;

		if (slen != 2 * half)
			return ctx_errorf(c, ERR_UNAUTHORIZED, "an %s signature has %zu bytes, not %zu",
					  ai->name, 2 * half, slen);
		es = ECDSA_SIG_new();
		r = BN_bin2bn(sig, (int)half, NULL);
		s = BN_bin2bn(sig + half, (int)half, NULL);
		if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
			BN_free(r);
			BN_free(s);
			rc = ossl_fail(c, ERR_IO, "out of memory");
			goto out;
		}
		dl = i2d_ECDSA_SIG(es, NULL);
		if (dl <= 0 || (size_t)dl > sizeof(der) || i2d_ECDSA_SIG(es, &p) != dl) {
			rc = ossl_fail(c, ERR_IO, "cannot encode the signature");
			goto out;
		}
		vsig = der;
		vlen = (size_t)dl;
	} else if (slen != (size_t)(k->bits + 7) / 8) {
		return ctx_errorf(c, ERR_UNAUTHORIZED, "an %s signature with this key has %d bytes",
				  ai->name, (k->bits + 7) / 8);
	}
	mctx = EVP_MD_CTX_new();
	if (!mctx || !md || EVP_DigestVerifyInit(mctx, NULL, md, NULL, k->pkey) != 1) {
		rc = ossl_fail(c, ERR_IO, "cannot start verifying");
		goto out;
	}
	ok = EVP_DigestVerify(mctx, vsig, vlen, msg, n);
	if (ok != 1)
		rc = ossl_fail(c, ERR_UNAUTHORIZED, "the JWS signature does not verify");
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(mctx);
	return rc;
}

/* ---- JWS compact ---------------------------------------------------------------- */

/* Who signs: a key, or an HS256 secret. */
struct signer {
	const struct jose_key *key;
	const void *secret;
	size_t secret_len;
};

/*
 * Append BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(sig) to
 * 'out'.  The header must be a JSON object whose alg is 'ai'.  On failure
 * 'out' is restored.
 */
static enum err jws_build(const struct signer *sg, const struct alg_info *ai,
			  const char *header, size_t hn, const void *payload, size_t pn,
			  struct buf *out, struct ctx *c)
{
	unsigned char sig[SIG_MAX];
	size_t slen = 0, start = out->len;
	enum err saved = out->err, rc;
	struct ctx hc = CTX_INIT;
	json_t *h = json_parse_bounded(header, hn, HEADER_DEPTH, &hc);

	if (!json_is_object(h) || !json_str_is(json_object_get(h, "alg"), ai->name)) {
		json_decref(h);
		return ctx_errorf(c, ERR_INVALID, "the JWS header must be an object with alg %s",
				  ai->name);
	}
	json_decref(h);
	if (saved)
		return ctx_errorf(c, saved, "output buffer already failed");
	base64url_encode(header, hn, out);
	buf_addch(out, '.');
	base64url_encode(payload, pn, out);
	if (out->err) {
		rc = ctx_errorf(c, ERR_TOOBIG, "the JWS does not fit");
		goto fail;
	}
	if (sg->key)
		rc = sign_asym(sg->key, ai, out->data + start, out->len - start, sig, &slen, c);
	else if ((rc = hs256(sg->secret, sg->secret_len, out->data + start, out->len - start,
			     sig)) == ERR_OK)
		slen = 32;
	else
		rc = ctx_errorf(c, rc, "HMAC failed");
	if (rc != ERR_OK)
		goto fail;
	buf_addch(out, '.');
	base64url_encode(sig, slen, out);
	if (out->err || out->len - start > JOSE_JWS_MAX) {
		rc = ctx_errorf(c, ERR_TOOBIG, "the JWS does not fit");
		goto fail;
	}
	return ERR_OK;
fail:
	buf_truncate(out, start);
	out->err = saved;
	return rc;
}

/* The header text: {"alg":..,"kid":..} and the members of 'extra'. */
static enum err header_text(const char *alg, const char *kid, const json_t *extra,
			    struct buf *hb, struct ctx *c)
{
	json_t *h = json_object(), *v;
	const char *name;
	enum err rc = ERR_OK;

	json_object_set_new(h, "alg", json_string(alg));
	if (kid && kid[0])
		json_object_set_new(h, "kid", json_string(kid));
	if (extra && !json_is_object(extra)) {
		rc = ctx_errorf(c, ERR_INVALID, "extra header members must be an object");
		goto out;
	}
	if (extra) {
		json_object_foreach((json_t *)extra, name, v) {
			if (strcmp(name, "alg") == 0 || strcmp(name, "kid") == 0) {
				rc = ctx_errorf(c, ERR_INVALID, "extra header members may not set '%s'",
						name);
				goto out;
			}
			json_object_set(h, name, v);
		}
	}
	if (json_dump_buf(h, hb) != ERR_OK)
		rc = ctx_errorf(c, ERR_TOOBIG, "the JWS header is too large");
out:
	json_decref(h);
	return rc;
}

/* Sign the JSON object 'payload' with a header built from alg, kid and 'extra'. */
static enum err sign_json(const struct signer *sg, const struct alg_info *ai, const char *kid,
			  const json_t *extra, const json_t *payload, struct buf *out,
			  struct ctx *c)
{
	struct buf hb = BUF_INIT(JOSE_JWS_MAX), pb = BUF_INIT(JOSE_JWS_MAX);
	enum err rc;

	if (!json_is_object(payload)) {
		rc = ctx_errorf(c, ERR_INVALID, "a JWS payload must be a JSON object");
		goto out;
	}
	if ((rc = header_text(ai->name, kid, extra, &hb, c)) != ERR_OK)
		goto out;
	if (json_dump_buf(payload, &pb) != ERR_OK) {
		rc = ctx_errorf(c, ERR_TOOBIG, "the JWS payload is too large");
		goto out;
	}
	rc = jws_build(sg, ai, hb.data, hb.len, pb.data, pb.len, out, c);
out:
	buf_release(&hb);
	buf_release(&pb);
	return rc;
}

/* The key's alg for signing, checked. */
static enum err signing_alg(const struct jose_key *k, const struct alg_info **ai,
			    struct ctx *c)
{
	if (!k->priv)
		return ctx_errorf(c, ERR_INVALID, "signing needs a private key");
	*ai = alg_info(k->alg);
	if (!*ai || !alg_suits(k, *ai))
		return ctx_errorf(c, ERR_INVALID, "the signing key has no alg");
	return ERR_OK;
}

enum err jose_jws_sign(const struct jose_key *k, const json_t *header_extra,
		       const json_t *payload, struct buf *out, struct ctx *c)
{
	struct signer sg = {k, NULL, 0};
	const struct alg_info *ai;
	enum err rc = signing_alg(k, &ai, c);

	if (rc != ERR_OK)
		return rc;
	return sign_json(&sg, ai, k->kid, header_extra, payload, out, c);
}

enum err jose_jws_sign_raw(const struct jose_key *k, const char *header, size_t header_len,
			   const void *payload, size_t payload_len, struct buf *out,
			   struct ctx *c)
{
	struct signer sg = {k, NULL, 0};
	const struct alg_info *ai;
	enum err rc = signing_alg(k, &ai, c);

	if (rc != ERR_OK)
		return rc;
	return jws_build(&sg, ai, header, header_len, payload, payload_len, out, c);
}

enum err jose_hs256_sign(const void *secret, size_t secret_len, const json_t *header_extra,
			 const json_t *payload, struct buf *out, struct ctx *c)
{
	struct signer sg = {NULL, secret, secret_len};

	if (secret_len < JOSE_HS256_MIN_SECRET)
		return ctx_errorf(c, ERR_INVALID, "an HS256 secret has at least %d bytes",
				  JOSE_HS256_MIN_SECRET);
	return sign_json(&sg, alg_info(JOSE_HS256), NULL, header_extra, payload, out, c);
}

enum err jose_hs256_sign_raw(const void *secret, size_t secret_len, const char *header,
			     size_t header_len, const void *payload, size_t payload_len,
			     struct buf *out, struct ctx *c)
{
	struct signer sg = {NULL, secret, secret_len};

	if (secret_len < JOSE_HS256_MIN_SECRET)
		return ctx_errorf(c, ERR_INVALID, "an HS256 secret has at least %d bytes",
				  JOSE_HS256_MIN_SECRET);
	return jws_build(&sg, alg_info(JOSE_HS256), header, header_len, payload, payload_len,
			 out, c);
}

/* What a verification checks against. */
struct verifier {
	const struct jose_key *key;     /* one key, or */
	const struct jose_jwks *set;    /* a key set, or */
	const void *secret;             /* an HS256 secret (hmac) */
	size_t secret_len;
	bool hmac;
	bool check;                     /* false: decode without verifying */
};

/* A parsed compact JWS. */
struct jws {
	const char *h, *p, *s;          /* the three parts inside the token */
	size_t hn, pn, sn;
	json_t *header;
	const struct alg_info *ai;      /* NULL when alg is not one we know */
	struct buf payload;
	struct buf sig;
};

/* Split into exactly three parts; the header and payload may not be empty. */
static enum err jws_split(const char *tok, size_t n, struct jws *j, struct ctx *c)
{
	const char *d1, *d2;

	if (!tok || n == 0)
		return ctx_errorf(c, ERR_INVALID, "empty JWS");
	if (n > JOSE_JWS_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "a JWS has at most %d bytes", JOSE_JWS_MAX);
	d1 = memchr(tok, '.', n);
	d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
	if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok)))
		return ctx_errorf(c, ERR_INVALID, "a compact JWS has exactly three parts");
	j->h = tok;
	j->hn = (size_t)(d1 - tok);
	j->p = d1 + 1;
	j->pn = (size_t)(d2 - j->p);
	j->s = d2 + 1;
	j->sn = n - (size_t)(j->s - tok);
	if (!j->hn || !j->pn)
		return ctx_errorf(c, ERR_INVALID, "empty JWS header or payload");
	return ERR_OK;
}

static enum err jws_header(struct jws *j, struct ctx *c)
{
	struct buf raw = BUF_INIT(JOSE_JWS_MAX);
	struct ctx jc = CTX_INIT;
	const json_t *alg, *kid;
	enum err rc = ERR_OK;

	if (base64url_decode(j->h, j->hn, &raw) != ERR_OK) {
		rc = ctx_errorf(c, ERR_INVALID, "the JWS header is not base64url");
		goto out;
	}
	j->header = json_parse_bounded(raw.data, raw.len, HEADER_DEPTH, &jc);
	if (!json_is_object(j->header)) {
		rc = ctx_errorf(c, ERR_INVALID, "the JWS header is not a JSON object");
		goto out;
	}
	alg = json_object_get(j->header, "alg");
	if (!json_is_string(alg)) {
		rc = ctx_errorf(c, ERR_INVALID, "the JWS header has no alg");
		goto out;
	}
	kid = json_object_get(j->header, "kid");
	if (kid && !json_is_string(kid)) {
		rc = ctx_errorf(c, ERR_INVALID, "the JWS header's kid is not a string");
		goto out;
	}
	if (json_object_get(j->header, "crit")) {
		rc = ctx_errorf(c, ERR_UNSUPPORTED, "the JWS header has critical extensions");
		goto out;
	}
	j->ai = alg_by_json(alg);
out:
	buf_release(&raw);
	return rc;
}

/* Verify j against a key set (see jose_jws_verify_jwks). */
static enum err verify_set(const struct jose_jwks *set, const struct jws *j, const void *msg,
			   size_t n, const struct jose_key **used, struct ctx *c)
{
	const json_t *kidv = json_object_get(j->header, "kid");
	const char *kid = json_string_value(kidv);
	size_t kidn = kid ? json_string_length(kidv) : 0;
	bool kid_seen = false, tried = false;
	struct ctx last = CTX_INIT;

	for (size_t i = 0; i < set->n; i++) {
		const struct jose_key *k = set->keys[i];

		if (k->use[0] && strcmp(k->use, "sig") != 0)
			continue;
		if (kid && (strlen(k->kid) != kidn || memcmp(k->kid, kid, kidn) != 0))
			continue;
		kid_seen = true;
		if (!alg_suits(k, j->ai))
			continue;
		tried = true;
		ctx_clear(&last);
		if (verify_asym(k, j->ai, msg, n, (const unsigned char *)j->sig.data, j->sig.len,
				&last) == ERR_OK) {
			if (used)
				*used = k;
			return ERR_OK;
		}
	}
	if (kid && !kid_seen)
		return ctx_errorf(c, ERR_NOTFOUND, "no key with the JWS's kid");
	if (!tried)
		return ctx_errorf(c, ERR_NOTFOUND, "no key for the JWS's alg %s", j->ai->name);
	return ctx_errorf(c, last.code ? last.code : ERR_UNAUTHORIZED, "%s",
			  last.msg[0] ? last.msg : "the JWS signature does not verify");
}

/*
 * Parse token[0..n) and check it against 'v'.  On success j->header and
 * j->payload hold the header and the payload bytes (the caller releases
 * them with jws_release); 'used' gets the verifying key of a set.
 */
static enum err jws_run(const char *tok, size_t n, const struct verifier *v, struct jws *j,
			const struct jose_key **used, struct ctx *c)
{
	size_t msg_len;
	enum err rc;

	if ((rc = jws_split(tok, n, j, c)) != ERR_OK || (rc = jws_header(j, c)) != ERR_OK)
		return rc;
	if (v->check) {
		if (!j->ai)
			return ctx_errorf(c, ERR_UNSUPPORTED, "unsupported JWS alg");
		if (v->hmac && j->ai->alg != JOSE_HS256)
			return ctx_errorf(c, ERR_UNSUPPORTED, "only HS256 is accepted here");
		if (!v->hmac && j->ai->kty == 0)
			return ctx_errorf(c, ERR_UNSUPPORTED, "alg %s is not accepted here",
					  j->ai->name);
	}
	if (j->sn == 0)
		return ctx_errorf(c, ERR_INVALID, "the JWS has no signature");
	if (base64url_decode(j->s, j->sn, &j->sig) != ERR_OK)
		return ctx_errorf(c, ERR_INVALID, "the JWS signature is not base64url");
	if (base64url_decode(j->p, j->pn, &j->payload) != ERR_OK)
		return ctx_errorf(c, ERR_INVALID, "the JWS payload is not base64url");
	msg_len = j->hn + 1 + j->pn;
	if (!v->check) {
		rc = ERR_OK;
	} else if (v->hmac) {
		unsigned char mac[32];

		if (hs256(v->secret, v->secret_len, tok, msg_len, mac) != ERR_OK)
			return ctx_errorf(c, ERR_IO, "HMAC failed");
		/* constant time; only the (public) length may show */
		if (!str_eq_ct(mac, sizeof(mac), j->sig.data, j->sig.len))
			rc = ctx_errorf(c, ERR_UNAUTHORIZED, "the JWS signature does not verify");
		mem_wipe(mac, sizeof(mac));
	} else if (v->set) {
		rc = verify_set(v->set, j, tok, msg_len, used, c);
	} else if (!alg_suits(v->key, j->ai)) {
		rc = ctx_errorf(c, ERR_UNAUTHORIZED, "the key cannot verify alg %s", j->ai->name);
	} else {
		rc = verify_asym(v->key, j->ai, tok, msg_len, (const unsigned char *)j->sig.data,
				 j->sig.len, c);
	}
	return rc;
}

static void jws_init(struct jws *j)
{
	memset(j, 0, sizeof(*j));
	buf_init(&j->payload, JOSE_JWS_MAX);
	buf_init(&j->sig, JOSE_JWS_MAX);
}

static void jws_release(struct jws *j)
{
	json_decref(j->header);
	buf_release(&j->payload);
	buf_release(&j->sig);
}

/* jws_run, then hand out the header and the payload as JSON. */
static enum err verify_json(const char *tok, size_t n, const struct verifier *v,
			    json_t **header, json_t **payload, const struct jose_key **used,
			    struct ctx *c)
{
	struct jws j;
	struct ctx pc = CTX_INIT;
	json_t *p = NULL;
	enum err rc;

	if (header)
		*header = NULL;
	if (payload)
		*payload = NULL;
	if (used)
		*used = NULL;
	jws_init(&j);
	if ((rc = jws_run(tok, n, v, &j, used, c)) != ERR_OK)
		goto out;
	p = json_parse_bounded(j.payload.data, j.payload.len, PAYLOAD_DEPTH, &pc);
	if (!json_is_object(p)) {
		rc = ctx_errorf(c, ERR_INVALID, "the JWS payload is not a JSON object");
		if (used)
			*used = NULL;
		goto out;
	}
	if (header) {
		*header = j.header;
		j.header = NULL;
	}
	if (payload) {
		*payload = p;
		p = NULL;
	}
out:
	json_decref(p);
	jws_release(&j);
	return rc;
}

enum err jose_jws_verify(const char *token, size_t n, const struct jose_key *k,
			 json_t **header, json_t **payload, struct ctx *c)
{
	struct verifier v = {.key = k, .check = true};

	return verify_json(token, n, &v, header, payload, NULL, c);
}

enum err jose_jws_verify_jwks(const char *token, size_t n, const struct jose_jwks *set,
			      json_t **header, json_t **payload,
			      const struct jose_key **used, struct ctx *c)
{
	struct verifier v = {.set = set, .check = true};

	return verify_json(token, n, &v, header, payload, used, c);
}

enum err jose_jws_decode_unverified(const char *token, size_t n, json_t **header,
				    json_t **payload, struct ctx *c)
{
	struct verifier v = {.check = false};

	return verify_json(token, n, &v, header, payload, NULL, c);
}

enum err jose_hs256_verify(const char *token, size_t n, const void *secret,
			   size_t secret_len, json_t **header, json_t **payload, struct ctx *c)
{
	struct verifier v = {.secret = secret, .secret_len = secret_len, .hmac = true,
			     .check = true};

	if (secret_len < JOSE_HS256_MIN_SECRET) {
		if (header)
			*header = NULL;
		if (payload)
			*payload = NULL;
		return ctx_errorf(c, ERR_INVALID, "an HS256 secret has at least %d bytes",
				  JOSE_HS256_MIN_SECRET);
	}
	return verify_json(token, n, &v, header, payload, NULL, c);
}

enum err jose_jws_verify_raw(const char *token, size_t n, const struct jose_key *k,
			     json_t **header, struct buf *payload, struct ctx *c)
{
	struct verifier v = {.key = k, .check = true};
	struct jws j;
	enum err rc;

	if (header)
		*header = NULL;
	jws_init(&j);
	if ((rc = jws_run(token, n, &v, &j, NULL, c)) != ERR_OK)
		goto out;
	if (payload->err || j.payload.len > payload->max ||
	    payload->len > payload->max - j.payload.len) {
		rc = ctx_errorf(c, ERR_TOOBIG, "the JWS payload does not fit");
		goto out;
	}
	buf_add(payload, j.payload.data, j.payload.len);
	if (header) {
		*header = j.header;
		j.header = NULL;
	}
out:
	jws_release(&j);
	return rc;
}
