/*
 * tests/fuzz/url_query.c - libFuzzer target for the request-line parsers of
 * src/http: percent-decoding and -encoding (with a round-trip check),
 * form/query parsing, request-id validation, traceparent parsing and the
 * router's path splitting and matching.  Any input must give a clean
 * result or a clean error: no crash, no leak, no read past the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/http.h"
#include "http/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void h_none(struct http_req *q, void *arg)
{
	(void)q;
	(void)arg;
}

static struct http_router *router(void)
{
	static struct http_router *r;

	if (!r) {
		r = http_router_new();
		http_route(r, HTTP_GET, "/fhir/metadata", HTTP_BODY_NONE, h_none, NULL);
		http_route(r, HTTP_GET | HTTP_PUT, "/fhir/{type}/{id}", HTTP_BODY_FHIR, h_none, NULL);
		http_route(r, HTTP_GET, "/fhir/{type}/{id}/_history/{vid}", HTTP_BODY_NONE, h_none, NULL);
		http_route(r, HTTP_POST, "/fhir/{type}", HTTP_BODY_FHIR, h_none, NULL);
		http_route(r, HTTP_GET, "/static/{path*}", HTTP_BODY_NONE, h_none, NULL);
		http_route(r, HTTP_GET, "/", HTTP_BODY_NONE, h_none, NULL);
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct arena a = ARENA_INIT;
	struct buf dec = BUF_INIT(1 << 20), enc = BUF_INIT(3 << 20), back = BUF_INIT(1 << 20);
	struct ctx c = CTX_INIT;
	struct http_pair *pairs;
	struct http_match m;
	size_t n, i;
	char *z, trace[33], parent[17];

	/* percent-decoding: a success never lengthens the input */
	if (http_pct_decode(s, size, size && (data[0] & 1), &dec) == ERR_OK && dec.len > size)
		abort();

	/* encode, then decode: the input back, unless it holds a NUL */
	if (http_pct_encode(s, size, &enc) != ERR_OK)
		abort();
	if (!memchr(s, '\0', size)) {
		if (http_pct_decode(enc.data, enc.len, true, &back) != ERR_OK || back.len != size ||
		    memcmp(back.data, s, size) != 0)
			abort();
	}

	/* form/query parsing */
	if (http_form_parse(&a, s, size, 64, &pairs, &n, &c) == ERR_OK) {
		if (n > 64 || (n && !pairs))
			abort();
		for (i = 0; i < n; i++)
			if (!pairs[i].name || !pairs[i].value ||
			    strlen(pairs[i].name) + strlen(pairs[i].value) > size)
				abort();
	} else if (n != 0 || pairs || c.code == ERR_OK) {
		abort();
	}

	/* NUL-terminated views for the string parsers */
	z = malloc(size + 1);
	if (!z)
		return 0;
	memcpy(z, data, size);
	z[size] = '\0';
	if (http_traceparent_parse(z, trace, parent) == ERR_OK) {
		if (strlen(trace) != 32 || strlen(parent) != 16)
			abort();
	} else if (trace[0] || parent[0]) {
		abort();
	}
	(void)http_request_id_valid(z);

	/* the router: split on '/', decode per segment, match */
	http_router_match(router(), &a, z, size ? (1u << (data[0] % 7)) : HTTP_GET, &m);
	if (m.status == 0 && (!m.route || !m.path))
		abort();

	free(z);
	buf_release(&dec);
	buf_release(&enc);
	buf_release(&back);
	arena_release(&a);
	return 0;
}
