/*
 * jose_parse - libFuzzer target for src/auth/jose.c: arbitrary bytes as a
 * compact JWS to every verifier (one EC key, one RSA key, a key set, an
 * HS256 secret, the raw-payload and the unverified decoders), and, when
 * they are JSON, as a JWK and as a JWK Set.  A verifier must answer with a
 * code and a message, or success with JSON objects; an imported key must
 * survive export and re-import with the same thumbprint.  Any crash, leak
 * or sanitizer report is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jose.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 7515 appendix A.3 (EC P-256) and A.2 (RSA) public keys. */
static const char ec_jwk[] =
	"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
static const char rsa_jwk[] =
	"{\"kty\":\"RSA\",\"kid\":\"rsa\",\"e\":\"AQAB\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_"
	"wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_"
	"YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-"
	"UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8N"
	"Aco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\"}";
static const char secret[] = "0123456789abcdef0123456789abcdef";

static struct jose_key *ec, *rsa;
static struct jose_jwks *set;

static struct jose_key *load(const char *text)
{
	struct ctx c = CTX_INIT;
	json_t *j = json_loads(text, 0, NULL);
	struct jose_key *k = NULL;

	if (!j || jose_key_from_jwk(j, 0, &k, &c) != ERR_OK)
		abort();
	json_decref(j);
	return k;
}

static void setup(void)
{
	struct ctx c = CTX_INIT;

	if (ec)
		return;
	ec = load(ec_jwk);
	rsa = load(rsa_jwk);
	set = jose_jwks_new();
	jose_jwks_add(set, jose_key_ref(ec), &c);
	jose_jwks_add(set, jose_key_ref(rsa), &c);
}

/* A verifier's answer is clean: objects on success, NULLs and a message on failure. */
static void check(enum err rc, const struct ctx *c, json_t *h, json_t *p)
{
	if (rc == ERR_OK) {
		if (!json_is_object(h) || !json_is_object(p) || c->code != ERR_OK)
			abort();
	} else if (h || p || c->code != rc || !c->msg[0]) {
		abort();
	}
	json_decref(h);
	json_decref(p);
}

static void fuzz_jws(const char *s, size_t n)
{
	const struct jose_key *keys[] = {ec, rsa};
	struct ctx c = CTX_INIT;
	json_t *h = NULL, *p = NULL;
	const struct jose_key *used = NULL;
	struct buf raw = BUF_INIT(JOSE_JWS_MAX);
	enum err rc;

	for (size_t i = 0; i < 2; i++) {
		ctx_clear(&c);
		rc = jose_jws_verify(s, n, keys[i], &h, &p, &c);
		check(rc, &c, h, p);
	}
	ctx_clear(&c);
	rc = jose_jws_verify_jwks(s, n, set, &h, &p, &used, &c);
	if ((rc == ERR_OK) != (used != NULL))
		abort();
	check(rc, &c, h, p);
	ctx_clear(&c);
	rc = jose_hs256_verify(s, n, secret, 32, &h, &p, &c);
	check(rc, &c, h, p);
	ctx_clear(&c);
	rc = jose_jws_decode_unverified(s, n, &h, &p, &c);
	check(rc, &c, h, p);
	ctx_clear(&c);
	rc = jose_jws_verify_raw(s, n, ec, &h, &raw, &c);
	if (rc != ERR_OK && raw.len)
		abort();
	check(rc, &c, h, rc == ERR_OK ? json_object() : NULL);
	buf_release(&raw);
}

/* Export 'k' (public, and private when it has one), import again: same thumbprint. */
static void round_trip(const struct jose_key *k)
{
	char a[JOSE_THUMBPRINT_SIZE], b[JOSE_THUMBPRINT_SIZE];
	struct ctx c = CTX_INIT;

	if (jose_key_thumbprint(k, a, &c) != ERR_OK)
		abort();
	for (int priv = 0; priv <= (int)jose_key_has_private(k); priv++) {
		json_t *jwk = NULL;
		struct jose_key *again = NULL;

		if (jose_key_to_jwk(k, priv, &jwk, &c) != ERR_OK ||
		    jose_key_from_jwk(jwk, priv ? 0 : JOSE_JWK_PUBLIC_ONLY, &again, &c) != ERR_OK ||
		    jose_key_thumbprint(again, b, &c) != ERR_OK || strcmp(a, b) != 0 ||
		    jose_key_has_private(again) != (priv != 0))
			abort();
		json_decref(jwk);
		jose_key_free(again);
	}
}

static void fuzz_jwk(const char *s, size_t n)
{
	struct ctx c = CTX_INIT, pc = CTX_INIT;
	json_t *v = json_parse_bounded(s, n, 16, &pc), *doc = NULL;
	struct jose_key *k = NULL;
	struct jose_jwks *ks = NULL;
	enum err rc;

	if (!v)
		return;
	rc = jose_key_from_jwk(v, 0, &k, &c);
	if ((rc == ERR_OK) != (k != NULL) || (rc != ERR_OK && (c.code != rc || !c.msg[0])))
		abort();
	if (k)
		round_trip(k);
	jose_key_free(k);
	ctx_clear(&c);
	rc = jose_jwks_from_json(v, 0, &ks, &c);
	if ((rc == ERR_OK) != (ks != NULL))
		abort();
	if (ks) {
		if (jose_jwks_to_json(ks, &doc, &c) != ERR_OK ||
		    json_array_size(json_object_get(doc, "keys")) != jose_jwks_count(ks))
			abort();
		for (size_t i = 0; i < jose_jwks_count(ks); i++)
			round_trip(jose_jwks_get(ks, i));
		json_decref(doc);
		jose_jwks_free(ks);
	}
	json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	fuzz_jws((const char *)data, size);
	fuzz_jwk((const char *)data, size);
	return 0;
}
