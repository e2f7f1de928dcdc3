/*
 * tests/fuzz/audit_receipt.c - libFuzzer target for the parsers of
 * src/audit/ that take documents from outside: receipts (which patients
 * keep and bring back), stored records read back for the FHIR AuditEvent
 * form, and checkpoint JWS.
 *
 * Input: byte 0 picks the parser (modulo 3), the rest is the document.
 *   0  audit_receipt_verify() with the RFC 7517 appendix A.2 P-256 key
 *      (kid "audit-fuzz"), which signed the corpus receipts, so that
 *      mutations of a record or proof reach the Merkle check; on success
 *      the record must be an object whose "seq" and "node" exist
 *   1  audit_event_to_fhir(): on success an AuditEvent object
 *   2  ckpt_verify_jws() on the bytes as a string
 * Every call must answer a known code with a message, never crash or leak.
 * The corpus in tests/fuzz/corpus/audit_receipt holds real receipts,
 * records and checkpoints.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "auth/jose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char pub_jwk[] =
	"{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"audit-fuzz\",\"alg\":\"ES256\","
	"\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
	"\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}";

static struct jose_jwks *keys;

static void setup(void)
{
	struct ctx c = CTX_INIT;
	struct jose_key *k = NULL;
	json_t *j;

	if (keys)
		return;
	j = json_loads(pub_jwk, 0, NULL);
	if (!j || jose_key_from_jwk(j, JOSE_JWK_PUBLIC_ONLY, &k, &c) != ERR_OK)
		abort();
	json_decref(j);
	keys = jose_jwks_new();
	if (jose_jwks_add(keys, k, &c) != ERR_OK)
		abort();
}

static void expect_failure(enum err e, const struct ctx *c)
{
	if (e != ERR_INVALID && e != ERR_TOOBIG && e != ERR_UNAUTHORIZED && e != ERR_UNSUPPORTED &&
	    e != ERR_NOTFOUND)
		abort();
	if (!c->msg[0])
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = CTX_INIT;
	const char *doc = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	json_t *out = NULL;
	enum err e;

	setup();
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		e = audit_receipt_verify(doc, n, keys, &out, &c);
		if (e == ERR_OK) {
			if (!json_is_object(out) || !json_is_integer(json_object_get(out, "seq")) ||
			    !json_is_string(json_object_get(out, "node")))
				abort();
		} else {
			if (out)
				abort();
			expect_failure(e, &c);
		}
		break;
	case 1:
		e = audit_event_to_fhir(doc, n, "https://fuzz.example/fhir", &out, &c);
		if (e == ERR_OK) {
			const char *rt = json_string_value(json_object_get(out, "resourceType"));
			if (!rt || strcmp(rt, "AuditEvent") != 0)
				abort();
		} else {
			if (out)
				abort();
			expect_failure(e, &c);
		}
		break;
	default: {
		struct ckpt_claim claim;
		char *s = malloc(n + 1);
		if (!s)
			abort();
		memcpy(s, doc, n);
		s[n] = '\0';
		e = ckpt_verify_jws(s, keys, &claim, &c);
		if (e == ERR_OK && (!audit_node_valid(claim.node) || claim.size >= MERKLE_SIZE_LIMIT))
			abort();
		if (e != ERR_OK)
			expect_failure(e, &c);
		free(s);
		break;
	}
	}
	json_decref(out);
	return 0;
}
