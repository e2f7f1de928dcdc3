/*
 * router.c - routes ("/fhir/{type}/{id}", "/static/{path*}") and per-prefix
 * error renderers.
 *
 * Routes are registered at start-up (a malformed pattern is a programming
 * error: it aborts with a message) and only read afterwards, so matching
 * needs no lock.  Matching walks every route: there are a few dozen, and a
 * segment comparison costs nanoseconds.  Among the routes that match the
 * path and take the method, the most specific wins: segment by segment,
 * a literal beats a parameter, which beats a final {rest*}; at equal
 * specificity the first registered wins.
 */
#include "http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "http/http_int.h"

struct err_ent {
	char *prefix;
	size_t len;
	http_error_fn fn;
};

struct http_router {
	struct http_route_ent *routes;
	size_t n, cap;
	struct err_ent *errs;
	size_t nerr, errcap;
};

/* Creates an empty router; free it with http_router_free(). */
struct http_router *http_router_new(void)
{
	return xcalloc(1, sizeof(struct http_router));
}

/* Frees the router and its tables; NULL is fine.  No server may still use it. */
void http_router_free(struct http_router *r)
{
	size_t i, j;

	if (!r)
		return;
	for (i = 0; i < r->n; i++) {
		for (j = 0; j < r->routes[i].nsegs; j++)
			free(r->routes[i].segs[j].text);
		free(r->routes[i].segs);
		free(r->routes[i].pattern);
	}
	free(r->routes);
	for (i = 0; i < r->nerr; i++)
		free(r->errs[i].prefix);
	free(r->errs);
	free(r);
}

static void bad_pattern(const char *pattern, const char *why)
{
	fprintf(stderr, "veranda: bad route pattern '%s': %s\n", pattern, why);
	abort();
}

/*
 * Registers a route (see http.h).  Aborts on a malformed pattern: one not
 * starting with '/', an unterminated or empty "{}", a "{x*}" that is not
 * the last segment, or no methods.
 */
void http_route(struct http_router *r, unsigned methods, const char *pattern,
		enum http_body body, http_handler_fn fn, void *arg)
{
	struct http_route_ent *e;
	const char *p;
	size_t nsegs = 1, i;

	if (pattern[0] != '/')
		bad_pattern(pattern, "must start with '/'");
	if (!(methods & HTTP_ANY) || !fn)
		bad_pattern(pattern, "no methods or no handler");
	for (p = pattern + 1; *p; p++)
		if (*p == '/')
			nsegs++;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 32;
		r->routes = xrealloc(r->routes, r->cap * sizeof(*r->routes));
	}
	e = &r->routes[r->n];
	e->methods = methods & HTTP_ANY;
	e->pattern = xstrdup(pattern);
	e->segs = xcalloc(nsegs, sizeof(*e->segs));
	e->nsegs = nsegs;
	e->body = body;
	e->fn = fn;
	e->arg = arg;
	p = pattern + 1;
	for (i = 0; i < nsegs; i++) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct http_seg *s = &e->segs[i];

		if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
			if (len >= 3 && p[len - 2] == '*') {
				if (i != nsegs - 1)
					bad_pattern(pattern, "{name*} must be the last segment");
				s->kind = HTTP_SEG_REST;
				s->text = xstrndup(p + 1, len - 3);
			} else {
				s->kind = HTTP_SEG_PARAM;
				s->text = xstrndup(p + 1, len - 2);
			}
			if (!s->text[0] || strpbrk(s->text, "{}*"))
				bad_pattern(pattern, "bad parameter name");
		} else {
			if (memchr(p, '{', len) || memchr(p, '}', len))
				bad_pattern(pattern, "braces inside a literal segment");
			s->kind = HTTP_SEG_LIT;
			s->text = xstrndup(p, len);
		}
		p += len + 1;
	}
	r->n++;
}

/* Registers an error renderer for paths under 'prefix' (see http.h). */
void http_router_on_error(struct http_router *r, const char *prefix, http_error_fn fn)
{
	size_t len = strlen(prefix);

	while (len > 1 && prefix[len - 1] == '/')
		len--;
	if (r->nerr == r->errcap) {
		r->errcap = r->errcap ? r->errcap * 2 : 8;
		r->errs = xrealloc(r->errs, r->errcap * sizeof(*r->errs));
	}
	r->errs[r->nerr].prefix = xstrndup(prefix, len);
	r->errs[r->nerr].len = len;
	r->errs[r->nerr].fn = fn;
	r->nerr++;
}

http_error_fn http_router_error_fn(const struct http_router *r, const char *raw_path)
{
	http_error_fn best = NULL;
	size_t best_len = 0, i;

	for (i = 0; i < r->nerr; i++) {
		const struct err_ent *e = &r->errs[i];

		if (strncmp(raw_path, e->prefix, e->len) != 0)
			continue;
		/* "/fhir" covers "/fhir" and "/fhir/...", not "/fhirx"; "/" covers all */
		if (!(e->len == 1 || raw_path[e->len] == '\0' || raw_path[e->len] == '/'))
			continue;
		if (!best || e->len > best_len) {
			best = e->fn;
			best_len = e->len;
		}
	}
	return best;
}

void http_methods_format(unsigned mask, char *out, size_t n)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{HTTP_GET, "GET"},   {HTTP_HEAD, "HEAD"},     {HTTP_POST, "POST"},
		{HTTP_PUT, "PUT"},   {HTTP_DELETE, "DELETE"}, {HTTP_PATCH, "PATCH"},
		{HTTP_OPTIONS, "OPTIONS"},
	};
	size_t i, k = 0;

	if (mask & HTTP_GET)
		mask |= HTTP_HEAD;
	if (n)
		out[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(mask & names[i].bit))
			continue;
		k += (size_t)snprintf(out + (k < n ? k : n), k < n ? n - k : 0, "%s%s",
				      k ? ", " : "", names[i].name);
	}
}

/* Does route 'e' match the decoded segments seg[0..n)?  ({name*} takes one or more.) */
static bool route_matches(const struct http_route_ent *e, const char *const *seg, size_t n)
{
	size_t i;

	for (i = 0; i < e->nsegs; i++) {
		const struct http_seg *s = &e->segs[i];

		if (s->kind == HTTP_SEG_REST)
			return i < n;
		if (i >= n)
			return false;
		if (s->kind == HTTP_SEG_LIT ? strcmp(s->text, seg[i]) != 0 : seg[i][0] == '\0')
			return false;
	}
	return i == n;
}

/* > 0 when 'a' is more specific than 'b'. */
static int specificity(const struct http_route_ent *a, const struct http_route_ent *b)
{
	size_t i;

	for (i = 0; i < a->nsegs && i < b->nsegs; i++)
		if (a->segs[i].kind != b->segs[i].kind)
			return (int)a->segs[i].kind - (int)b->segs[i].kind;
	return 0;
}

void http_router_match(const struct http_router *r, struct arena *a, const char *raw_path,
		       unsigned method, struct http_match *m)
{
	const struct http_route_ent *best = NULL;
	const char **seg, **rest;
	size_t rawlen = strlen(raw_path), nseg = 1, i, k;
	unsigned want = method == HTTP_HEAD ? (HTTP_HEAD | HTTP_GET) : method;
	char *dec;
	long dlen;

	memset(m, 0, sizeof(*m));
	if (raw_path[0] != '/') {
		m->status = 404;
		m->msg = "no such endpoint";
		return;
	}
	/* one trailing slash is ignored: "/fhir/" is the FHIR base "/fhir" */
	if (rawlen > 1 && raw_path[rawlen - 1] == '/')
		rawlen--;
	dec = arena_alloc(a, rawlen + 1);
	dlen = http_pct_decode_mem(raw_path, rawlen, false, dec);
	if (dlen < 0) {
		m->status = 400;
		m->msg = "malformed percent-encoding in the path";
		return;
	}
	dec[dlen] = '\0';
	m->path = dec;

	for (i = 1; i < rawlen; i++)
		if (raw_path[i] == '/')
			nseg++;
	seg = arena_alloc(a, nseg * sizeof(*seg));
	rest = arena_alloc(a, nseg * sizeof(*rest));
	/* split the raw path on '/', then decode each segment */
	{
		const char *p = raw_path + 1;

		for (k = 0; k < nseg; k++) {
			const char *end = strchr(p, '/');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			char *d = arena_alloc(a, len + 1);
			long dl = http_pct_decode_mem(p, len, false, d);

			if (dl < 0) {
				m->status = 400;
				m->msg = "malformed percent-encoding in the path";
				return;
			}
			d[dl] = '\0';
			seg[k] = d;
			rest[k] = p;
			p += len + 1;
		}
	}

	for (i = 0; i < r->n; i++) {
		const struct http_route_ent *e = &r->routes[i];

		if (!route_matches(e, seg, nseg))
			continue;
		m->allow |= e->methods;
		if (!(e->methods & want))
			continue;
		if (!best || specificity(e, best) > 0)
			best = e;
	}
	if (!best) {
		m->status = m->allow ? 405 : 404;
		m->msg = m->allow ? "method not allowed" : "no such endpoint";
		return;
	}
	m->route = best;
	m->values = arena_zalloc(a, best->nsegs * sizeof(*m->values));
	for (k = 0; k < best->nsegs; k++) {
		const struct http_seg *s = &best->segs[k];

		if (s->kind == HTTP_SEG_PARAM) {
			m->values[k] = seg[k];
		} else if (s->kind == HTTP_SEG_REST) {
			/* the remainder decoded as a whole (already checked above) */
			size_t len = rawlen - (size_t)(rest[k] - raw_path);
			char *d = arena_alloc(a, len + 1);
			long dl = http_pct_decode_mem(rest[k], len, false, d);

			d[dl < 0 ? 0 : dl] = '\0';
			m->values[k] = d;
		}
	}
}
