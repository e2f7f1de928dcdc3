/*
 * request.c - what a handler sees of a request (http_req_*) and how it
 * answers (http_resp_*), plus the rendering of errors the HTTP layer
 * itself detects.
 *
 * A handler owns its struct http_req until it returns (one worker thread);
 * strings returned by the accessors live until the request completes.
 * The response is only recorded here; server.c turns it into a
 * libmicrohttpd response after the handler returns.
 */
#include "http/http.h"

#include <microhttpd.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "http/http_int.h"

/*
 * Accessors: what they return lives until the request completes; the
 * request's own strings (method name, path, ids, client address) are never
 * NULL.  http_req_method() is 0 for a method outside enum http_method (such
 * a request only ever reaches an error renderer).
 */

enum http_method http_req_method(const struct http_req *q)
{
	return q->method;
}

const char *http_req_method_name(const struct http_req *q)
{
	return q->method_name;
}

const char *http_req_path(const struct http_req *q)
{
	return q->match.path ? q->match.path : q->raw_path;
}

/* The matched route's template; "" when no route matched. */
const char *http_req_route(const struct http_req *q)
{
	return q->match.route ? q->match.route->pattern : "";
}

const char *http_req_param(const struct http_req *q, const char *name)
{
	const struct http_route_ent *e = q->match.route;
	size_t i;

	if (!e)
		return NULL;
	for (i = 0; i < e->nsegs; i++)
		if (e->segs[i].kind != HTTP_SEG_LIT && strcmp(e->segs[i].text, name) == 0)
			return q->match.values[i];
	return NULL;
}

/*
 * The query's pairs followed, for an application/x-www-form-urlencoded
 * body, by the body's pairs (FHIR search by POST sends its parameters
 * either way).
 */
size_t http_req_query_count(const struct http_req *q)
{
	return q->nquery;
}

void http_req_query_at(const struct http_req *q, size_t i, const char **name, const char **value)
{
	if (i >= q->nquery) {
		*name = NULL;
		*value = NULL;
		return;
	}
	*name = q->query[i].name;
	*value = q->query[i].value;
}

const char *http_req_query(const struct http_req *q, const char *name)
{
	size_t i;

	for (i = 0; i < q->nquery; i++)
		if (strcmp(q->query[i].name, name) == 0)
			return q->query[i].value;
	return NULL;
}

const char *http_req_header(const struct http_req *q, const char *name)
{
	return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

struct header_count {
	const char *name;
	size_t n;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	struct header_count *hc = cls;

	(void)kind;
	(void)value;
	if (key && !strcasecmp(key, hc->name))
		hc->n++;
	return MHD_YES;
}

size_t http_req_header_count(const struct http_req *q, const char *name)
{
	struct header_count hc = {name, 0};

	MHD_get_connection_values(q->conn, MHD_HEADER_KIND, count_header, &hc);
	return hc.n;
}

const struct buf *http_req_body(const struct http_req *q)
{
	return &q->body;
}

const char *http_req_form(const struct http_req *q, const char *name)
{
	size_t i;

	for (i = 0; i < q->nform; i++)
		if (strcmp(q->form[i].name, name) == 0)
			return q->form[i].value;
	return NULL;
}

size_t http_req_form_count(const struct http_req *q)
{
	return q->nform;
}

void http_req_form_at(const struct http_req *q, size_t i, const char **name, const char **value)
{
	if (i >= q->nform) {
		*name = NULL;
		*value = NULL;
		return;
	}
	*name = q->form[i].name;
	*value = q->form[i].value;
}

const char *http_req_id(const struct http_req *q)
{
	return q->id;
}

const char *http_req_trace_id(const struct http_req *q)
{
	return q->trace_id;
}

const char *http_req_client_addr(const struct http_req *q)
{
	return q->client;
}

bool http_req_is_https(const struct http_req *q)
{
	return q->https;
}

struct arena *http_req_arena(struct http_req *q)
{
	return &q->arena;
}

/* ---- response ---- */

/*
 * Headers are kept in order; several of one name are all sent (Set-Cookie).
 * A name equal to a default header (security headers, Cache-Control)
 * replaces the default.  Values with CR or LF are refused when the
 * response is built (logged, not sent).
 */
void http_resp_header(struct http_req *q, const char *name, const char *value)
{
	if (q->nhdrs == q->hdrcap) {
		size_t ncap = q->hdrcap ? q->hdrcap * 2 : 8;
		struct http_hdr *n = arena_alloc(&q->arena, ncap * sizeof(*n));

		if (q->nhdrs)
			memcpy(n, q->hdrs, q->nhdrs * sizeof(*n));
		q->hdrs = n;
		q->hdrcap = ncap;
	}
	q->hdrs[q->nhdrs].name = arena_strdup(&q->arena, name);
	q->hdrs[q->nhdrs].value = arena_strdup(&q->arena, value);
	q->nhdrs++;
}

/* Claim the one response; false (and a log line) when one is already set. */
static bool claim(struct http_req *q, int status, const char *content_type)
{
	if (q->resp_done) {
		log_error("http: a second response for '%s' was ignored", http_req_route(q));
		return false;
	}
	if (status < 100 || status > 599) {
		log_error("http: handler for '%s' gave status %d", http_req_route(q), status);
		q->resp_broken = true;
	}
	q->resp_done = true;
	q->status = status;
	q->content_type = content_type ? arena_strdup(&q->arena, content_type) : NULL;
	return true;
}

void http_resp_bytes(struct http_req *q, int status, const char *content_type,
		     const void *data, size_t n)
{
	if (!claim(q, status, content_type))
		return;
	if (n) {
		q->resp_body = xmalloc(n);
		memcpy(q->resp_body, data, n);
	}
	q->resp_len = n;
}

/*
 * A buffer in error (its builder overflowed its cap) is not sent: the
 * request gets a 500 through the error renderer instead.
 */
void http_resp_buf(struct http_req *q, int status, const char *content_type, struct buf *b)
{
	if (!claim(q, status, content_type)) {
		buf_release(b);
		return;
	}
	if (b->err) {
		log_error("http: response body for '%s' failed: %s", http_req_route(q),
			  err_str(b->err));
		q->resp_broken = true;
		buf_release(b);
		return;
	}
	q->resp_body = buf_take(b, &q->resp_len);
	if (!q->resp_len) {
		free(q->resp_body);
		q->resp_body = NULL;
	}
}

void http_resp_empty(struct http_req *q, int status)
{
	claim(q, status, NULL);
}

bool http_resp_done(const struct http_req *q)
{
	return q->resp_done;
}

void http_req_defer(struct http_req *q, void (*arm)(struct http_req *q, void *arg),
		    void (*fail)(struct http_req *q, void *arg), void *arg)
{
	q->defer_arm = arm;
	q->defer_fail = fail;
	q->defer_arg = arg;
}

void http_req_resume(struct http_req *q, bool ok)
{
	q->resume_ok = ok;
	MHD_resume_connection(q->conn);
}

void http_resp_reset(struct http_req *q)
{
	free(q->resp_body);
	q->resp_body = NULL;
	q->resp_len = 0;
	q->resp_done = false;
	q->resp_broken = false;
	q->status = 0;
	q->content_type = NULL;
	q->nhdrs = 0;
}

static void default_error(struct http_req *q, int status, const char *msg)
{
	struct buf b = BUF_INIT(4096);

	buf_adds(&b, "{\"error\":\"");
	buf_add_json_str(&b, msg, strnlen(msg, 1024));
	buf_adds(&b, "\"}");
	http_resp_buf(q, status, "application/json", &b);
}

void http_render_error(const struct http_router *r, struct http_req *q, int status,
		       const char *msg)
{
	http_error_fn fn = r ? http_router_error_fn(r, q->raw_path ? q->raw_path : "/") : NULL;
	char allow[96];

	http_resp_reset(q);
	if (status == 405) {
		http_methods_format(q->match.allow, allow, sizeof(allow));
		http_resp_header(q, "Allow", allow);
	}
	if (fn)
		fn(q, status, msg);
	if (!q->resp_done || q->resp_broken) {
		http_resp_reset(q);
		if (status == 405)
			http_resp_header(q, "Allow", allow);
		default_error(q, status, msg);
	}
}
