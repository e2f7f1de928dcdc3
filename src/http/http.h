/*
 * http.h - the HTTP layer on libmicrohttpd: server, router, requests and
 * responses.  Module routes files (src/fhir/rest.c, ...) register handlers
 * here; services never include this header.
 *
 * Threading: the server runs a pool of worker threads (one per core by
 * default) on epoll.  A handler runs on a worker thread and owns its
 * struct http_req until it returns; everything allocated from the request
 * arena is released when the request completes.
 *
 * Each request gets: a request id (a well-formed incoming X-Request-Id,
 * else a generated one), W3C trace context (traceparent, kept or started),
 * both set on the thread's log context while the handler runs; a JSON
 * access-log line when it completes (route template, status, duration,
 * request id; never bodies or query values); the security headers on every
 * response.
 */
#ifndef VERANDA_HTTP_HTTP_H
#define VERANDA_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

struct http_server;
struct http_router;
struct http_req;

enum http_method {
	HTTP_GET = 1 << 0,
	HTTP_HEAD = 1 << 1,
	HTTP_POST = 1 << 2,
	HTTP_PUT = 1 << 3,
	HTTP_DELETE = 1 << 4,
	HTTP_PATCH = 1 << 5,
	HTTP_OPTIONS = 1 << 6,
};
#define HTTP_ANY 0x7f

/* What a route accepts as a body; the cap comes from the configuration. */
enum http_body {
	HTTP_BODY_NONE = 0, /* a non-empty body gets 413 */
	HTTP_BODY_FHIR,     /* up to fhir_body_max */
	HTTP_BODY_FORM,     /* up to form_body_max */
};

typedef void (*http_handler_fn)(struct http_req *req, void *arg);

/*
 * Renders an error that the HTTP layer itself detects (no route: 404,
 * method not allowed: 405, body too big: 413, malformed request: 400,
 * overload: 503, handler set no response: 500) in the format of the
 * module that owns the path prefix (OperationOutcome, OAuth JSON, HTML).
 * It must set a response with http_resp_*().
 */
typedef void (*http_error_fn)(struct http_req *req, int status, const char *msg);

/* ---- router ---- */

struct http_router *http_router_new(void);
void http_router_free(struct http_router *r);

/*
 * Register 'fn' for 'methods' on 'pattern'.  Patterns are absolute paths
 * whose segments are literals or "{name}" parameters ("/fhir/{type}/{id}");
 * a final "{name*}" matches the rest of the path.  Literal segments win over
 * parameters, so "/fhir/metadata" and "/fhir/{type}" coexist.  A path that
 * matches a pattern under another method gives 405 with Allow.
 */
void http_route(struct http_router *r, unsigned methods, const char *pattern,
		enum http_body body, http_handler_fn fn, void *arg);

/* Errors under 'prefix' ("/fhir") are rendered by 'fn'; longest prefix wins. */
void http_router_on_error(struct http_router *r, const char *prefix, http_error_fn fn);

/* ---- server ---- */

/*
 * Create a server from 'cfg' (listen, workers, max_connections,
 * connection_timeout, header_max, fhir_body_max, form_body_max, tls_*).
 * The router is borrowed and must outlive the server.
 */
struct http_server *http_server_new(const struct config *cfg, struct http_router *r);
/*
 * Bind and start serving.  ERR_BUSY "address 'ADDR:PORT' is already in use",
 * ERR_INVALID for a malformed address, ERR_IO otherwise.
 */
enum err http_server_start(struct http_server *s, struct ctx *c);
/*
 * Stop accepting new connections, let in-flight requests finish (at most
 * 'grace_ms'), then stop the workers.
 */
void http_server_stop(struct http_server *s, int grace_ms);
void http_server_free(struct http_server *s);
/* Port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);
/* Is the server serving https? */
bool http_server_tls(const struct http_server *s);
/* Called on each worker thread just before it exits (closes per-thread store connections). */
void http_server_on_thread_exit(struct http_server *s, void (*fn)(void *), void *arg);

/* ---- request ---- */

enum http_method http_req_method(const struct http_req *q);
const char *http_req_method_name(const struct http_req *q);
/* Decoded path ("/fhir/Patient/1"). */
const char *http_req_path(const struct http_req *q);
/* The matched route template ("/fhir/{type}/{id}"), for logs and metrics. */
const char *http_req_route(const struct http_req *q);
/* Path parameter by name, decoded; NULL when the route has none by that name. */
const char *http_req_param(const struct http_req *q, const char *name);

/* Query (or, for form bodies, body) parameters in order of appearance, decoded. */
size_t http_req_query_count(const struct http_req *q);
void http_req_query_at(const struct http_req *q, size_t i, const char **name, const char **value);
/* First value of a query parameter; NULL when absent. */
const char *http_req_query(const struct http_req *q, const char *name);

/* Request header (case-insensitive name); NULL when absent (the first when repeated). */
const char *http_req_header(const struct http_req *q, const char *name);

/*
 * Whether the request's Content-Type is application/x-www-form-urlencoded
 * (followed by nothing, ';' or a space): exactly the bodies whose pairs
 * follow the query's (http_req_query).
 */
bool http_req_is_form(const struct http_req *q);
/* How many times the request carries header 'name' (case-insensitive). */
size_t http_req_header_count(const struct http_req *q, const char *name);
/* Request body bytes (empty when none). */
const struct buf *http_req_body(const struct http_req *q);
/* Parsed application/x-www-form-urlencoded body field; NULL when absent. */
const char *http_req_form(const struct http_req *q, const char *name);
size_t http_req_form_count(const struct http_req *q);
void http_req_form_at(const struct http_req *q, size_t i, const char **name, const char **value);

const char *http_req_id(const struct http_req *q);
const char *http_req_trace_id(const struct http_req *q);
/* Client address (the forwarded one when trust_proxy is set). */
const char *http_req_client_addr(const struct http_req *q);
/* Was the request received over TLS (or forwarded as https with trust_proxy)? */
bool http_req_is_https(const struct http_req *q);
struct arena *http_req_arena(struct http_req *q);

/* ---- response (exactly one per request) ---- */

/* Add a response header (replaces a default security header of that name). */
void http_resp_header(struct http_req *q, const char *name, const char *value);
/* Respond with a copy of data[0..n). */
void http_resp_bytes(struct http_req *q, int status, const char *content_type,
		     const void *data, size_t n);
/* Respond with the buffer's bytes; the buffer is left empty (ownership moves). */
void http_resp_buf(struct http_req *q, int status, const char *content_type, struct buf *b);
/* Respond with no body. */
void http_resp_empty(struct http_req *q, int status);
/* Has a response been set? */
bool http_resp_done(const struct http_req *q);

/*
 * Hold the answer without holding the thread.  After the handler returns,
 * the connection is suspended (its worker thread serves other
 * connections) and arm(q, arg) runs on that thread; arm, or whatever it
 * hands q to, then calls http_req_resume(q, ok) exactly once, from any
 * thread.  The response the handler set goes out then; with ok false,
 * fail(q, arg) sets another in its place (on a worker thread, the first
 * response and its headers already dropped).  A second call replaces the
 * first.
 */
void http_req_defer(struct http_req *q, void (*arm)(struct http_req *q, void *arg),
		    void (*fail)(struct http_req *q, void *arg), void *arg);
void http_req_resume(struct http_req *q, bool ok);

/* ---- helpers shared by the edges (src/http/url.c) ---- */

/*
 * Percent-decode s[0..n) into 'out' (appends); '+' becomes a space when
 * 'form' is true.  ERR_INVALID for a malformed escape or a decoded NUL.
 */
enum err http_pct_decode(const char *s, size_t n, bool form, struct buf *out);
/* Percent-encode for a query value (unreserved characters kept). */
enum err http_pct_encode(const char *s, size_t n, struct buf *out);

/*
 * Parse an application/x-www-form-urlencoded string (also a raw query)
 * into name/value pairs allocated from 'a'.  At most 'max_pairs' pairs
 * (ERR_TOOBIG beyond).  Returns the count in *n.
 */
struct http_pair {
	const char *name;
	const char *value;
};
enum err http_form_parse(struct arena *a, const char *s, size_t len, size_t max_pairs,
			 struct http_pair **pairs, size_t *n, struct ctx *c);

/* Is 's' a well-formed request id ([A-Za-z0-9._:-], 1..64 chars)? */
bool http_request_id_valid(const char *s);
/*
 * Parse a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>"); fills trace_id
 * (33 bytes) and parent_id (17 bytes).  ERR_INVALID when malformed or all-zero.
 */
enum err http_traceparent_parse(const char *s, char trace_id[33], char parent_id[17]);

#endif
