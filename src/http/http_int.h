/*
 * http_int.h - what the files of src/http/ share and nobody else sees:
 * the router's tables, the per-request object and the helpers that the
 * server (server.c), the router (router.c) and the request/response
 * accessors (request.c) call on one another.
 *
 * Ownership: a struct http_req is created by server.c on the first call of
 * libmicrohttpd's access handler for a request and freed by server.c in
 * the request-completed callback; everything a request allocates comes
 * from its arena or is owned by the struct (body, response body).
 * A request belongs to the worker thread that serves its connection.
 */
#ifndef VERANDA_HTTP_HTTP_INT_H
#define VERANDA_HTTP_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

struct MHD_Connection;

/* Most query or form pairs a request may carry (more: 400 or 413). */
#define HTTP_PAIRS_MAX 256
#define HTTP_PAIRS_MAX_STR "256"

/* ---- router (router.c) ---- */

enum http_seg_kind { HTTP_SEG_REST = 0, HTTP_SEG_PARAM = 1, HTTP_SEG_LIT = 2 };

struct http_seg {
	enum http_seg_kind kind;
	char *text; /* the literal, or the parameter's name */
};

struct http_route_ent {
	unsigned methods;
	char *pattern;
	struct http_seg *segs;
	size_t nsegs;
	enum http_body body;
	http_handler_fn fn;
	void *arg;
};

/* The outcome of matching a raw path and a method against the routes. */
struct http_match {
	int status;                        /* 0 = matched; else 400, 404 or 405 */
	const char *msg;                   /* for a non-zero status */
	const struct http_route_ent *route;
	const char **values;               /* per route segment: decoded value (NULL for literals) */
	const char *path;                  /* the whole path, decoded */
	unsigned allow;                    /* for 405: the methods the path takes */
};

/*
 * Match 'raw_path' (as received, still percent-encoded) for 'method'
 * (0 for a method outside enum http_method).  The path is split on '/'
 * first and each segment decoded afterwards, so "%2F" stays inside its
 * segment.  Values are allocated from 'a'.  Never fails otherwise; the
 * outcome is in 'm'.
 */
void http_router_match(const struct http_router *r, struct arena *a, const char *raw_path,
		       unsigned method, struct http_match *m);
/* The error renderer registered for the longest prefix of 'raw_path', or NULL. */
http_error_fn http_router_error_fn(const struct http_router *r, const char *raw_path);
/* Write "GET, HEAD, POST" for the methods in 'mask' into out[0..n). */
void http_methods_format(unsigned mask, char *out, size_t n);

/* ---- request (request.c) ---- */

struct http_hdr {
	const char *name;
	const char *value;
};

struct http_req {
	struct arena arena;
	struct MHD_Connection *conn;
	struct watch *watch;        /* the connection's deadline (server.c); NULL: none */
	bool https;

	enum http_method method;    /* 0 when the method is none of ours */
	const char *method_name;
	const char *raw_path;
	struct http_match match;

	struct http_pair *query;    /* query pairs, then form body pairs */
	size_t nquery;
	struct http_pair *form;     /* points into 'query' past the query pairs */
	size_t nform;

	struct buf body;
	char id[72];
	char trace_id[33];
	char client[64];

	/* server.c's bookkeeping before the handler runs */
	int64_t start_us;
	size_t cap;                 /* body bytes the route accepts */
	int pending;                /* an error status decided before the body ended */
	const char *pending_msg;
	size_t discarded, discard_max; /* body bytes dropped after 'pending' */
	bool close;                 /* send Connection: close */

	/* http_req_defer(): the answer waits, the connection is suspended */
	void (*defer_arm)(struct http_req *q, void *arg);
	void (*defer_fail)(struct http_req *q, void *arg);
	void *defer_arg;
	bool held;                  /* suspended until http_req_resume() */
	bool resume_ok;

	/* response, set once by http_resp_*() */
	bool resp_done;
	bool resp_broken;           /* the handler's response is unusable: send 500 */
	int status;
	const char *content_type;
	char *resp_body;            /* malloc'ed; handed to libmicrohttpd */
	size_t resp_len;
	struct http_hdr *hdrs;
	size_t nhdrs, hdrcap;
};

/* Drop any response and headers set so far (before an error is rendered). */
void http_resp_reset(struct http_req *q);

/*
 * Render an error the HTTP layer detected through the renderer registered
 * for the request's path (or a small JSON body); 405 adds Allow.
 */
void http_render_error(const struct http_router *r, struct http_req *q, int status,
		       const char *msg);

/* ---- url.c ---- */

/*
 * Decode s[0..n) into dst, which has room for n bytes (decoding never
 * lengthens).  Returns the decoded length, or -1 for a malformed escape,
 * a raw or decoded NUL.  dst is not NUL-terminated.
 */
long http_pct_decode_mem(const char *s, size_t n, bool form, char *dst);

#endif
