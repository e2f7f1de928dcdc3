/*
 * rest.c - the FHIR REST edge: turns HTTP requests under /fhir into
 * service calls and enum err + message into OperationOutcomes with the
 * right status.  Content negotiation, ETag / Last-Modified, conditional
 * requests (If-Match, If-None-Match, If-Modified-Since) and Prefer live
 * here; the service knows nothing of HTTP.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/str.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"
#include "http/http.h"

#define FHIR_JSON "application/fhir+json; charset=utf-8"
#define PAGE_BUF_MAX ((size_t)256 << 20)

static const char *issue_for_status(int status)
{
	switch (status) {
	case 400: return "invalid";
	case 401: return "login";
	case 403: return "forbidden";
	case 404: return "not-found";
	case 405: return "not-supported";
	case 406: return "not-supported";
	case 409: return "conflict";
	case 410: return "deleted";
	case 412: return "conflict";
	case 413: return "too-costly";
	case 415: return "not-supported";
	case 422: return "processing";
	case 503: return "transient";
	}
	return status >= 500 ? "exception" : "invalid";
}

/* Respond with an OperationOutcome. */
static void send_outcome(struct http_req *q, int status, const char *msg, const char *expr)
{
	struct buf b = BUF_INIT(1 << 16);

	fhir_outcome(&b, status >= 400 ? "error" : "information", issue_for_status(status), msg, expr);
	if (status == 503)
		http_resp_header(q, "Retry-After", "1");
	http_resp_buf(q, status, FHIR_JSON, &b);
	buf_release(&b);
}

static void send_error(struct http_req *q, const struct ctx *c)
{
	send_outcome(q, fhir_status_of(c->code), c->msg[0] ? c->msg : err_str(c->code), c->expr);
}

/* The HTTP layer's own errors (no route, 405, 413, ...) under /fhir. */
static void render_http_error(struct http_req *q, int status, const char *msg)
{
	send_outcome(q, status, msg, NULL);
}

/*
 * Content negotiation.  We serve FHIR JSON only: application/fhir+json,
 * application/json, any type, application/ anything (and _format json).
 * Returns false after answering 406 when the client accepts none of them.
 */
static bool media_ok(const char *m)
{
	size_t n = strcspn(m, ";");

	while (n && (m[n - 1] == ' ' || m[n - 1] == '\t'))
		n--;
	return (n == 21 && !strncasecmp(m, "application/fhir+json", n)) ||
	       (n == 16 && !strncasecmp(m, "application/json", n)) ||
	       (n == 3 && !strncmp(m, "*/*", n)) ||
	       (n == 13 && !strncasecmp(m, "application/*", n)) ||
	       (n == 4 && !strncasecmp(m, "json", n));
}

static bool accept_ok(struct http_req *q)
{
	const char *fmt = http_req_query(q, "_format");
	const char *acc = http_req_header(q, "Accept");

	if (fmt) {
		if (media_ok(fmt))
			return true;
		send_outcome(q, 406, "this server serves FHIR JSON only (_format=json or application/fhir+json)", "_format");
		return false;
	}
	if (!acc || !*acc)
		return true;
	/* any acceptable member of the list will do (q-values other than 0 ignored) */
	for (const char *p = acc; *p;) {
		size_t n;
		char item[128];

		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ",");
		if (n && n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			if (media_ok(item) && !strstr(item, "q=0,") && !str_ends(item, "q=0"))
				return true;
		}
		p += n;
	}
	send_outcome(q, 406, "this server serves FHIR JSON only: ask for application/fhir+json", NULL);
	return false;
}

/* The request body must be FHIR JSON: 415 otherwise. */
static bool content_type_ok(struct http_req *q)
{
	const char *ct = http_req_header(q, "Content-Type");

	if (ct && (media_ok(ct) && strncmp(ct, "*/*", 3) && strncasecmp(ct, "application/*", 13)))
		return true;
	send_outcome(q, 415, ct ? "request body must be application/fhir+json"
				: "request has no Content-Type: send application/fhir+json", NULL);
	return false;
}

/* Parse W/"N" or "N" into N; -1 when absent; -2 when malformed. */
static int64_t parse_etag(const char *s)
{
	char num[24];
	size_t n;
	int64_t v;

	if (!s)
		return -1;
	while (*s == ' ')
		s++;
	if (!strncmp(s, "W/", 2))
		s += 2;
	if (*s != '"')
		return -2;
	s++;
	n = strcspn(s, "\"");
	if (s[n] != '"' || n == 0 || n >= sizeof(num))
		return -2;
	memcpy(num, s, n);
	num[n] = '\0';
	if (str_to_i64(num, 1, INT64_MAX, &v))
		return -2;
	return v;
}

static void set_version_headers(struct http_req *q, int64_t version, int64_t last_updated)
{
	char etag[40], lm[40];

	snprintf(etag, sizeof(etag), "W/\"%lld\"", (long long)version);
	clock_format_http(last_updated, lm);
	http_resp_header(q, "ETag", etag);
	http_resp_header(q, "Last-Modified", lm);
}

/* ---- read / vread ---- */

static void handle_read(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const char *type = http_req_param(q, "type"), *id = http_req_param(q, "id");
	const char *vid = http_req_param(q, "vid");
	struct store_resource r;
	struct ctx c = CTX_INIT;
	int64_t version = 0;
	enum err e;

	if (!accept_ok(q))
		return;
	if (vid && str_to_i64(vid, 1, INT64_MAX, &version)) {
		send_outcome(q, 404, "version ids are positive integers", NULL);
		return;
	}
	store_resource_init(&r);
	e = fhir_read(f, type, id, version, &r, &c);
	if (e == ERR_GONE) {
		set_version_headers(q, r.version, r.last_updated);
		send_error(q, &c);
		goto out;
	}
	if (e) {
		send_error(q, &c);
		goto out;
	}
	set_version_headers(q, r.version, r.last_updated);
	if (!vid) {
		int64_t inm = parse_etag(http_req_header(q, "If-None-Match"));
		const char *ims = http_req_header(q, "If-Modified-Since");
		int64_t since;

		if (inm == r.version) {
			http_resp_empty(q, 304);
			goto out;
		}
		if (inm == -1 && ims && !clock_parse_http(ims, &since) &&
		    r.last_updated / 1000 <= since / 1000) {
			http_resp_empty(q, 304);
			goto out;
		}
	}
	http_resp_buf(q, 200, FHIR_JSON, &r.json);
out:
	store_resource_release(&r);
}

/* ---- writes ---- */

enum prefer { PREFER_REPRESENTATION, PREFER_MINIMAL, PREFER_OUTCOME };

static enum prefer get_prefer(struct http_req *q)
{
	const char *p = http_req_header(q, "Prefer");

	if (!p)
		return PREFER_REPRESENTATION;
	if (strstr(p, "return=minimal"))
		return PREFER_MINIMAL;
	if (strstr(p, "return=OperationOutcome"))
		return PREFER_OUTCOME;
	return PREFER_REPRESENTATION;
}

static void send_write_result(struct http_req *q, struct fhir *f, struct fhir_result *res, int status)
{
	char loc[900];

	snprintf(loc, sizeof(loc), "%s/%s/%s/_history/%lld", fhir_base(f), res->type, res->id,
		 (long long)res->version);
	set_version_headers(q, res->version, res->last_updated);
	http_resp_header(q, "Location", loc);
	http_resp_header(q, "Content-Location", loc);
	switch (get_prefer(q)) {
	case PREFER_MINIMAL:
		http_resp_empty(q, status);
		break;
	case PREFER_OUTCOME: {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s/%s %s as version %lld", res->type, res->id,
			 status == 201 ? "created" : "updated", (long long)res->version);
		send_outcome(q, status, msg, NULL);
		break;
	}
	case PREFER_REPRESENTATION:
		http_resp_buf(q, status, FHIR_JSON, &res->json);
		break;
	}
}

static bool if_match(struct http_req *q, int64_t *v)
{
	*v = parse_etag(http_req_header(q, "If-Match"));
	if (*v == -2) {
		send_outcome(q, 400, "If-Match must be a version ETag such as W/\"3\"", NULL);
		return false;
	}
	return true;
}

static void handle_create(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const struct buf *body = http_req_body(q);
	struct fhir_result res;
	struct ctx c = CTX_INIT;

	if (!accept_ok(q) || !content_type_ok(q))
		return;
	fhir_result_init(&res);
	if (fhir_create(f, http_req_param(q, "type"), body->data, body->len, &res, &c)) {
		if (c.code == ERR_FORBIDDEN) {
			http_resp_header(q, "Allow", "GET, HEAD");
			send_outcome(q, 405, c.msg, NULL);
		} else {
			send_error(q, &c);
		}
	} else {
		send_write_result(q, f, &res, 201);
	}
	fhir_result_release(&res);
}

static void handle_update(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const struct buf *body = http_req_body(q);
	struct fhir_result res;
	struct ctx c = CTX_INIT;
	int64_t v;

	if (!accept_ok(q) || !content_type_ok(q) || !if_match(q, &v))
		return;
	fhir_result_init(&res);
	if (fhir_update(f, http_req_param(q, "type"), http_req_param(q, "id"), body->data,
			body->len, v, &res, &c)) {
		if (c.code == ERR_FORBIDDEN) {
			http_resp_header(q, "Allow", "GET, HEAD");
			send_outcome(q, 405, c.msg, NULL);
		} else {
			send_error(q, &c);
		}
	} else {
		send_write_result(q, f, &res, res.created ? 201 : 200);
	}
	fhir_result_release(&res);
}

static void handle_delete(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	struct fhir_result res;
	struct ctx c = CTX_INIT;
	int64_t v;

	if (!accept_ok(q) || !if_match(q, &v))
		return;
	fhir_result_init(&res);
	if (fhir_delete(f, http_req_param(q, "type"), http_req_param(q, "id"), v, &res, &c)) {
		if (c.code == ERR_FORBIDDEN) {
			http_resp_header(q, "Allow", "GET, HEAD");
			send_outcome(q, 405, c.msg, NULL);
		} else {
			send_error(q, &c);
		}
	} else {
		if (!res.unchanged) {
			char etag[40];
			snprintf(etag, sizeof(etag), "W/\"%lld\"", (long long)res.version);
			http_resp_header(q, "ETag", etag);
		}
		if (get_prefer(q) == PREFER_OUTCOME) {
			char msg[200];
			snprintf(msg, sizeof(msg), "%s/%s %s", res.type, res.id,
				 res.unchanged ? "was not present; nothing to delete" : "deleted");
			send_outcome(q, 200, msg, NULL);
		} else {
			http_resp_empty(q, 204);
		}
	}
	fhir_result_release(&res);
}

/* ---- history ---- */

static bool parse_instant_param(struct http_req *q, const char *name, int64_t *out)
{
	const char *v = http_req_query(q, name);
	int64_t lo, hi;

	*out = 0;
	if (!v)
		return true;
	if (fhir_date_parse(v, &lo, &hi)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "parameter '%s' must be a FHIR instant such as 2024-01-31T10:00:00Z", name);
		send_outcome(q, 400, msg, name);
		return false;
	}
	*out = !strcmp(name, "_at") ? hi : lo;
	return true;
}

static void handle_history(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	struct fhir_history_q hq;
	struct buf out = BUF_INIT(PAGE_BUF_MAX);
	struct ctx c = CTX_INIT;
	const char *count = http_req_query(q, "_count"), *cursor = http_req_query(q, "_cursor");

	if (!accept_ok(q))
		return;
	memset(&hq, 0, sizeof(hq));
	hq.type = http_req_param(q, "type");
	hq.id = http_req_param(q, "id");
	if (!hq.type && http_req_param(q, "ctype"))
		hq.type = "Patient"; /* /fhir/Patient/{id}/_history via the compartment route */
	hq.count = f->opts.page_size;
	if (count && str_to_i64(count, 0, INT64_MAX, &hq.count)) {
		send_outcome(q, 400, "_count must be a non-negative integer", "_count");
		goto out;
	}
	if (hq.count > f->opts.page_max)
		hq.count = f->opts.page_max;
	if (cursor && str_to_i64(cursor, 1, INT64_MAX, &hq.cursor)) {
		send_outcome(q, 400, "_cursor is not a valid page cursor", "_cursor");
		goto out;
	}
	if (!parse_instant_param(q, "_since", &hq.since) || !parse_instant_param(q, "_at", &hq.at_most))
		goto out;
	if (fhir_history(f, &hq, &out, &c)) {
		send_error(q, &c);
		goto out;
	}
	http_resp_buf(q, 200, FHIR_JSON, &out);
out:
	buf_release(&out);
}

/* ---- search ---- */

static void run_search(struct http_req *q, struct fhir *f, const char *type, const char *patient,
		       bool everything, bool form)
{
	struct fhir_search_req sr;
	struct buf out = BUF_INIT(PAGE_BUF_MAX);
	struct ctx c = CTX_INIT;
	const char *prefer = http_req_header(q, "Prefer");
	size_t n = http_req_query_count(q) + (form ? http_req_form_count(q) : 0), k = 0;
	struct fhir_kv *kv = arena_zalloc(http_req_arena(q), sizeof(*kv) * (n + 1));

	if (!accept_ok(q))
		goto out;
	for (size_t i = 0; i < http_req_query_count(q); i++, k++)
		http_req_query_at(q, i, &kv[k].name, &kv[k].value);
	for (size_t i = 0; form && i < http_req_form_count(q); i++, k++)
		http_req_form_at(q, i, &kv[k].name, &kv[k].value);
	memset(&sr, 0, sizeof(sr));
	sr.type = type;
	sr.patient = patient;
	sr.everything = everything;
	sr.params = kv;
	sr.nparams = k;
	sr.strict = prefer && strstr(prefer, "handling=strict");
	if (fhir_search(f, &sr, &out, &c)) {
		send_error(q, &c);
		goto out;
	}
	http_resp_buf(q, 200, FHIR_JSON, &out);
out:
	buf_release(&out);
}

static void handle_search(struct http_req *q, void *arg)
{
	run_search(q, arg, http_req_param(q, "type"), NULL, false, false);
}

static void handle_search_post(struct http_req *q, void *arg)
{
	const char *ct = http_req_header(q, "Content-Type");

	if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
		send_outcome(q, 415, "POST _search takes an application/x-www-form-urlencoded body", NULL);
		return;
	}
	run_search(q, arg, http_req_param(q, "type"), NULL, false, true);
}

static void handle_history(struct http_req *q, void *arg);

static void handle_compartment(struct http_req *q, void *arg)
{
	/* "/fhir/Patient/{id}/_history" lands here: the literal Patient wins */
	if (!strcmp(http_req_param(q, "ctype"), "_history")) {
		handle_history(q, arg);
		return;
	}
	run_search(q, arg, http_req_param(q, "ctype"), http_req_param(q, "id"), false, false);
}

static void handle_everything(struct http_req *q, void *arg)
{
	run_search(q, arg, NULL, http_req_param(q, "id"), true, false);
}

static void handle_bundle(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const struct buf *body = http_req_body(q);
	struct buf out = BUF_INIT(PAGE_BUF_MAX);
	struct ctx c = CTX_INIT;

	if (!accept_ok(q) || !content_type_ok(q))
		goto out;
	if (fhir_bundle(f, body->data, body->len, get_prefer(q) == PREFER_REPRESENTATION &&
			http_req_header(q, "Prefer") != NULL, &out, &c)) {
		send_error(q, &c);
		goto out;
	}
	http_resp_buf(q, 200, FHIR_JSON, &out);
out:
	buf_release(&out);
}

static void handle_metadata(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const struct buf *cs = fhir_capability(f);

	if (!accept_ok(q))
		return;
	http_resp_header(q, "Cache-Control", "public, max-age=300");
	http_resp_bytes(q, 200, FHIR_JSON, cs->data, cs->len);
}

void fhir_rest_register(struct fhir *f, struct http_router *r)
{
	http_router_on_error(r, "/fhir", render_http_error);
	http_route(r, HTTP_GET, "/fhir/metadata", HTTP_BODY_NONE, handle_metadata, f);
	http_route(r, HTTP_POST, "/fhir", HTTP_BODY_FHIR, handle_bundle, f);
	http_route(r, HTTP_GET, "/fhir/_history", HTTP_BODY_NONE, handle_history, f);
	http_route(r, HTTP_POST, "/fhir/{type}", HTTP_BODY_FHIR, handle_create, f);
	http_route(r, HTTP_GET, "/fhir/{type}", HTTP_BODY_NONE, handle_search, f);
	http_route(r, HTTP_POST, "/fhir/{type}/_search", HTTP_BODY_FORM, handle_search_post, f);
	http_route(r, HTTP_GET, "/fhir/Patient/{id}/$everything", HTTP_BODY_NONE, handle_everything, f);
	http_route(r, HTTP_GET, "/fhir/Patient/{id}/{ctype}", HTTP_BODY_NONE, handle_compartment, f);
	http_route(r, HTTP_GET, "/fhir/{type}/_history", HTTP_BODY_NONE, handle_history, f);
	http_route(r, HTTP_GET, "/fhir/{type}/{id}", HTTP_BODY_NONE, handle_read, f);
	http_route(r, HTTP_PUT, "/fhir/{type}/{id}", HTTP_BODY_FHIR, handle_update, f);
	http_route(r, HTTP_DELETE, "/fhir/{type}/{id}", HTTP_BODY_NONE, handle_delete, f);
	http_route(r, HTTP_GET, "/fhir/{type}/{id}/_history", HTTP_BODY_NONE, handle_history, f);
	http_route(r, HTTP_GET, "/fhir/{type}/{id}/_history/{vid}", HTTP_BODY_NONE, handle_read, f);
}
