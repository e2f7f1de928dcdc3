/*
 * bundle.c - the batch and transaction interactions (POST [base] with a
 * Bundle of type "batch" or "transaction").
 *
 * A transaction runs in one store transaction: all of it or nothing.  Its
 * entries are processed in the order FHIR R4 gives (DELETE, POST, PUT,
 * GET); after the deletes, "urn:uuid:" full URLs of created resources are
 * given server ids and every link to them in the Bundle is rewritten.
 * Conditional create (request.ifNoneExist), conditional update (PUT
 * Type?query) and conditional delete (DELETE Type?query) are resolved by
 * searching inside the transaction.  A failing entry, a reference to a
 * "urn:" no entry defines, a full URL two entries share and two writes to
 * one resource roll everything back and the answer is that error.  A
 * batch runs each entry on its own and reports each entry's status.
 * Responses list entries in request order.
 */
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/rand.h"
#include "core/str.h"
#include "core/url.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"
#include "fhir/search_int.h"

#define BUNDLE_ENTRIES_MAX 5000
#define RESP_MAX ((size_t)256 << 20)

enum method { M_GET, M_POST, M_PUT, M_DELETE, M_BAD };

struct entry {
	json_t *e;              /* the Bundle entry (borrowed) */
	json_t *res;            /* its resource (borrowed), may be NULL */
	const char *src;        /* the body from where its numbers start (json_src_offsets()) */
	size_t srclen;
	enum method method;
	const char *type;       /* from the URL */
	const char *id;         /* from the URL, NULL for type-level */
	int64_t vid;            /* _history/N in a GET url, 0 none */
	const char *query;      /* after '?', NULL none */
	const char *assigned;   /* id assigned to a POST (urn:uuid mapping or conditional match) */
	bool exists;            /* conditional create matched an existing resource */
	const char *target;     /* Type/id a write entry touched (the overlap check) */
	int status;             /* response status */
	struct buf out;         /* the response entry JSON */
	bool has_done;          /* a transaction's entry: what it did, told before the commit */
	struct fhir_entry_done done;
	struct fhir_search_req search;
};

/* ---- URL of an entry: [base/]Type[/id[/_history/vid]][?query] ---- */

static enum err parse_url(struct fhir *f, struct arena *a, const char *url, struct entry *en,
			  struct ctx *c)
{
	const char *base = fhir_base(f);
	size_t bl = strlen(base);
	const char *q, *p;
	char *path;

	if (!strncmp(url, base, bl) && url[bl] == '/')
		url += bl + 1;
	q = strchr(url, '?');
	path = arena_strndup(a, url, q ? (size_t)(q - url) : strlen(url));
	en->query = q ? arena_strdup(a, q + 1) : NULL;
	p = strchr(path, '/');
	if (p) {
		char *rest;
		path[p - path] = '\0';
		rest = path + (p - path) + 1;
		p = strchr(rest, '/');
		if (p) {
			int64_t v;
			rest[p - rest] = '\0';
			if (strncmp(p + 1, "_history/", 9) || str_to_i64(p + 10, 1, INT64_MAX, &v))
				return ctx_errorf(c, ERR_INVALID, "entry request url '%s' is not Type, Type/id or Type/id/_history/n", url);
			en->vid = v;
		}
		en->id = rest;
	}
	en->type = path;
	if (!fhir_type_find(en->type))
		return ctx_errorf(c, ERR_NOTFOUND, "resource type '%s' is not supported by this server", en->type);
	if (en->id && !fhir_id_valid(en->id))
		return ctx_errorf(c, ERR_INVALID, "'%s' is not a valid resource id", en->id);
	return ERR_OK;
}

/* Split and decode a query string into fhir_kv pairs (arena memory). */
static enum err split_query(struct arena *a, const char *qs, struct fhir_kv **kv, size_t *n,
			    struct ctx *c)
{
	size_t cap = 1, k = 0;

	for (const char *p = qs; *p; p++)
		cap += *p == '&';
	*kv = arena_zalloc(a, cap * sizeof(**kv));
	while (*qs) {
		size_t len = strcspn(qs, "&");
		const char *eq = memchr(qs, '=', len);
		size_t nl = eq ? (size_t)(eq - qs) : len;
		char *name = arena_alloc(a, nl + 1), *value = arena_alloc(a, len + 1);
		long dn = url_pct_decode_mem(qs, nl, true, name);
		long dv = eq ? url_pct_decode_mem(eq + 1, len - nl - 1, true, value) : 0;

		if (dn < 0 || dv < 0)
			return ctx_errorf(c, ERR_INVALID, "malformed query in an entry url");
		name[dn] = '\0';
		value[dv] = '\0';
		if (dn) {
			(*kv)[k].name = name;
			(*kv)[k].value = value;
			k++;
		}
		qs += len;
		if (*qs == '&')
			qs++;
	}
	*n = k;
	return ERR_OK;
}

struct found {
	char ids[2][72];
	int64_t versions[2];
	int n;
};

static int found_hit(void *arg, const struct store_hit *h)
{
	struct found *fd = arg;

	if (fd->n < 2) {
		str_copy(fd->ids[fd->n], h->res->id, sizeof(fd->ids[0]));
		fd->versions[fd->n] = h->res->version;
	}
	fd->n++;
	return 0;
}

/* Resources of 'type' matching the search 'qs' (at most two are reported). */
static enum err find_matches(struct fhir *f, struct arena *a, const char *type, const char *qs,
			     struct found *fd, struct ctx *c)
{
	struct fhir_search_req sr;
	struct search_parsed p;
	struct fhir_kv *kv;
	size_t n;
	bool more = false;
	int64_t total = -1;
	enum err e;

	memset(fd, 0, sizeof(*fd));
	if ((e = split_query(a, qs, &kv, &n, c)))
		return e;
	if (n == 0)
		return ctx_errorf(c, ERR_INVALID, "a conditional request needs search parameters");
	memset(&sr, 0, sizeof(sr));
	sr.type = type;
	sr.params = kv;
	sr.nparams = n;
	sr.strict = true; /* an ignored parameter would widen the match */
	search_parsed_init(&p);
	if (!(e = fhir_search_parse(f, a, &sr, &p, c))) {
		p.q.limit = 2;
		p.q.total = STORE_TOTAL_NONE;
		e = store_search(f->store, &p.q, found_hit, fd, &more, &total, c);
	}
	search_parsed_release(&p);
	return e;
}

/* ---- references ---- */

/*
 * Rewrite the quoted attribute values of a narrative ('div') that are full
 * URLs in 'map' (href="urn:uuid:..." and src="urn:uuid:..." links).
 */
static void narrative_links(json_t *div, json_t *map)
{
	const char *s = json_string_value(div), *p = s, *u;
	struct buf b = BUF_INIT(RESP_MAX);
	bool changed = false;

	while ((u = strstr(p, "urn:"))) {
		const char *end = u > s && (u[-1] == '"' || u[-1] == '\'') ? strchr(u, u[-1]) : NULL;
		json_t *to = end ? json_object_getn(map, u, (size_t)(end - u)) : NULL;

		if (!to) {
			buf_add(&b, p, (size_t)(u - p) + 4);
			p = u + 4;
			continue;
		}
		buf_add(&b, p, (size_t)(u - p));
		buf_adds(&b, json_string_value(to));
		p = end;
		changed = true;
	}
	buf_adds(&b, p);
	if (changed && !b.err)
		json_string_set(div, b.data);
	buf_release(&b);
}

/*
 * Resolve the Bundle's own links in 'v', the value of element 'key'
 * (FHIR R4 http.html#trules): every string that is a full URL in 'map'
 * becomes the Type/id it was given, whether a Reference.reference or an
 * element of type uri, url, oid or uuid (Attachment.url, valueUri...), and
 * so do the narrative's links.  A "value" (Identifier.value,
 * ContactPoint.value) is a string, not a link, and is kept.  Returns the
 * first Reference.reference left naming a "urn:" that no entry defines
 * (it would point nowhere), or NULL.
 */
static const char *resolve_links(json_t *v, const char *key, json_t *map)
{
	const char *bad = NULL, *b, *k;
	json_t *val;
	size_t i;

	if (json_is_string(v)) {
		json_t *to = json_object_get(map, json_string_value(v));
		if (!strcmp(key, "div"))
			narrative_links(v, map);
		else if (to && strcmp(key, "value"))
			json_string_set(v, json_string_value(to));
		else if (!strcmp(key, "reference") && str_starts(json_string_value(v), "urn:"))
			bad = json_string_value(v);
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, val) {
			if ((b = resolve_links(val, k, map)) && !bad)
				bad = b;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, val) {
			if ((b = resolve_links(val, key, map)) && !bad)
				bad = b;
		}
	}
	return bad;
}

/* ---- one entry ---- */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "200 OK";
	case 201: return "201 Created";
	case 204: return "204 No Content";
	case 304: return "304 Not Modified";
	case 400: return "400 Bad Request";
	case 403: return "403 Forbidden";
	case 404: return "404 Not Found";
	case 405: return "405 Method Not Allowed";
	case 409: return "409 Conflict";
	case 410: return "410 Gone";
	case 412: return "412 Precondition Failed";
	case 413: return "413 Payload Too Large";
	case 422: return "422 Unprocessable Entity";
	case 503: return "503 Service Unavailable";
	}
	return "500 Internal Server Error";
}

int fhir_status_of(enum err e)
{
	switch (e) {
	case ERR_OK: return 200;
	case ERR_INVALID: return 400;
	case ERR_UNAUTHORIZED: return 401;
	case ERR_FORBIDDEN: return 403;
	case ERR_NOTFOUND: return 404;
	case ERR_CONFLICT: return 409;
	case ERR_GONE: return 410;
	case ERR_PRECONDITION: return 412;
	case ERR_TOOBIG: return 413;
	case ERR_UNPROCESSABLE: return 422;
	case ERR_BUSY: return 503;
	case ERR_UNSUPPORTED: return 400;
	case ERR_IO:
	case ERR_NOMEM: return 500;
	}
	return 500;
}

static void respond_write(struct entry *en, const struct fhir_result *r, int status, bool repr)
{
	char ts[32];

	en->status = status;
	clock_format_instant(r->last_updated, ts);
	buf_addf(&en->out, "{\"response\":{\"status\":\"%s\"", reason(status));
	if (r->version)
		buf_addf(&en->out, ",\"location\":\"%s/%s/_history/%lld\",\"etag\":\"W/\\\"%lld\\\"\",\"lastModified\":\"%s\"",
			 r->type, r->id, (long long)r->version, (long long)r->version, ts);
	buf_addch(&en->out, '}');
	if (repr && r->json.len) {
		buf_adds(&en->out, ",\"resource\":");
		buf_add(&en->out, r->json.data, r->json.len);
	}
	buf_addch(&en->out, '}');
}

static void respond_error(struct entry *en, const struct ctx *c)
{
	struct buf oo = BUF_INIT(1 << 16);

	en->status = fhir_status_of(c->code);
	fhir_outcome(&oo, "error", fhir_issue_code(c->code), c->msg, c->expr);
	buf_reset(&en->out);
	buf_addf(&en->out, "{\"response\":{\"status\":\"%s\",\"outcome\":", reason(en->status));
	buf_add(&en->out, oo.data, oo.len);
	buf_adds(&en->out, "}}");
	buf_release(&oo);
}

/*
 * Tell the caller what an entry did (fhir_bundle_hooks.done): at once in a
 * batch; in a transaction ('defer') kept in the entry and told once every
 * entry has run, before the commit, so that nothing is told of a
 * transaction that is rolled back.
 */
static enum err entry_done(const struct fhir_bundle_hooks *hooks, struct entry *en,
			   struct arena *a, bool defer, enum fhir_entry_op op, const char *type,
			   const char *id, int64_t version, const struct fhir_search_req *search,
			   struct ctx *c)
{
	struct fhir_entry_done d = {op, type, id, version, search};

	if (!hooks || !hooks->done)
		return ERR_OK;
	if (!defer)
		return hooks->done(hooks->arg, &d, c);
	en->has_done = true;
	en->done = d;
	en->done.type = type ? arena_strdup(a, type) : NULL;
	en->done.id = id ? arena_strdup(a, id) : NULL;
	if (search) {
		en->search = *search;
		en->done.search = &en->search;
	}
	return ERR_OK;
}

/* request.ifMatch: W/"N", "N" or N, N a version number; ERR_INVALID otherwise. */
static enum err parse_if_match(const char *im, int64_t *version)
{
	const char *p = im;
	char num[24];
	size_t k = 0;
	bool quoted;

	if (!strncmp(p, "W/", 2))
		p += 2;
	if ((quoted = *p == '"'))
		p++;
	while (*p >= '0' && *p <= '9' && k + 1 < sizeof(num))
		num[k++] = *p++;
	num[k] = '\0';
	if (quoted && *p++ != '"')
		return ERR_INVALID;
	if (*p || str_to_i64(num, 1, INT64_MAX, version))
		return ERR_INVALID;
	return ERR_OK;
}

static enum err run_entry(struct fhir *f, struct arena *a, struct entry *en, bool repr,
			  const struct fhir_bundle_hooks *hooks, bool defer, struct ctx *c)
{
	struct fhir_result r;
	struct found fd;
	enum err e = ERR_OK;
	const char *im = json_string_value(json_object_get(json_object_get(en->e, "request"), "ifMatch"));
	int64_t if_match = -1;

	if (im && parse_if_match(im, &if_match))
		return ctx_errorf(c, ERR_INVALID, "request.ifMatch must be a version ETag such as W/\"3\", not '%s'", im);
	fhir_result_init(&r);
	switch (en->method) {
	case M_POST:
		if (en->exists) {
			/* conditional create matched: report the existing resource */
			struct store_resource sr;
			store_resource_init(&sr);
			e = fhir_read(f, en->type, en->assigned, 0, &sr, c);
			if (!e)
				e = entry_done(hooks, en, a, defer, FHIR_ENTRY_READ, sr.type, sr.id, sr.version, NULL, c);
			if (!e) {
				/* no write: two creates may both find one resource */
				str_copy(r.type, sr.type, sizeof(r.type));
				str_copy(r.id, sr.id, sizeof(r.id));
				r.version = sr.version;
				r.last_updated = sr.last_updated;
				buf_add(&r.json, sr.json.data, sr.json.len);
				respond_write(en, &r, 200, repr);
			}
			store_resource_release(&sr);
			break;
		}
		if (!json_is_object(en->res)) {
			e = ctx_errorf(c, ERR_INVALID, "a POST entry needs a resource");
			break;
		}
		if (en->assigned)
			json_object_set_new(en->res, "id", json_string(en->assigned));
		e = fhir_write_json(f, en->type, en->assigned, en->res, en->src, en->srclen, -1, &r, c);
		if (!e)
			e = entry_done(hooks, en, a, defer, FHIR_ENTRY_CREATE, r.type, r.id, r.version, NULL, c);
		if (!e) {
			en->target = arena_printf(a, "%s/%s", r.type, r.id);
			respond_write(en, &r, 201, repr);
		}
		break;
	case M_PUT: {
		const char *id = en->id;
		if (!json_is_object(en->res)) {
			e = ctx_errorf(c, ERR_INVALID, "a PUT entry needs a resource");
			break;
		}
		if (!id && en->query) {
			if ((e = find_matches(f, a, en->type, en->query, &fd, c)))
				break;
			if (fd.n > 1) {
				e = ctx_errorf(c, ERR_PRECONDITION, "conditional update of %s?%s matches more than one resource",
					       en->type, en->query);
				break;
			}
			if (fd.n == 1) {
				const json_t *bid = json_object_get(en->res, "id");

				id = arena_strdup(a, fd.ids[0]);
				/* FHIR: a body id that is not the match's is an error */
				if (bid && !(json_is_string(bid) && !strcmp(json_string_value(bid), id))) {
					e = ctx_errorx(c, ERR_INVALID, "id",
						       "conditional update of %s?%s found %s/%s but the resource's id is '%.64s': leave the id out or make it '%s'",
						       en->type, en->query, en->type, id,
						       json_is_string(bid) ? json_string_value(bid) : "(not a string)", id);
					break;
				}
				json_object_set_new(en->res, "id", json_string(id));
			} else if (json_is_string(json_object_get(en->res, "id"))) {
				/*
				 * FHIR: no match and an id is an update as create of that
				 * id; one naming a live resource the query did not match
				 * would overwrite it, so that is refused
				 */
				int64_t v = 0;
				bool del = false;

				id = arena_strdup(a, json_string_value(json_object_get(en->res, "id")));
				if (fhir_id_valid(id) && (e = store_current_version(f->store, en->type, id, &v, &del, c)))
					break;
				if (v && !del) {
					e = ctx_errorx(c, ERR_PRECONDITION, "id",
						       "conditional update of %s?%s matches nothing, but %s/%s exists: it would be overwritten; leave the id out to create a new resource",
						       en->type, en->query, en->type, id);
					break;
				}
			}
		}
		if (!id && !en->query) {
			e = ctx_errorf(c, ERR_INVALID, "a PUT entry url must name Type/id or Type?search");
			break;
		}
		e = fhir_write_json(f, en->type, id, en->res, en->src, en->srclen, if_match, &r, c);
		if (!e)
			e = entry_done(hooks, en, a, defer, r.created ? FHIR_ENTRY_CREATE : FHIR_ENTRY_UPDATE, r.type, r.id,
				       r.version, NULL, c);
		if (!e) {
			en->target = arena_printf(a, "%s/%s", r.type, r.id);
			respond_write(en, &r, r.created ? 201 : 200, repr);
		}
		break;
	}
	case M_DELETE: {
		const char *id = en->id;
		if (!id && en->query) {
			if ((e = find_matches(f, a, en->type, en->query, &fd, c)))
				break;
			if (fd.n > 1) {
				e = ctx_errorf(c, ERR_PRECONDITION, "conditional delete of %s?%s matches more than one resource",
					       en->type, en->query);
				break;
			}
			id = fd.n ? arena_strdup(a, fd.ids[0]) : NULL;
		}
		if (!id && !en->query) {
			e = ctx_errorf(c, ERR_INVALID, "a DELETE entry url must name Type/id or Type?search");
			break;
		}
		if (id)
			e = fhir_delete(f, en->type, id, if_match, &r, c);
		if (!e && id && !r.unchanged)
			e = entry_done(hooks, en, a, defer, FHIR_ENTRY_DELETE, en->type, id, r.version, NULL, c);
		if (!e) {
			en->target = id ? arena_printf(a, "%s/%s", en->type, id) : NULL;
			r.version = r.unchanged ? 0 : r.version;
			respond_write(en, &r, 204, false);
		}
		break;
	}
	case M_GET:
		if (en->id) {
			struct store_resource sr;
			store_resource_init(&sr);
			e = fhir_read(f, en->type, en->id, en->vid, &sr, c);
			if ((!e || e == ERR_GONE) && en->vid && hooks && hooks->version) {
				struct ctx vc = CTX_INIT;
				/* the caller may see that version, or answers as if it did not exist */
				if (hooks->version(hooks->arg, &sr, &vc)) {
					ctx_clear(c);
					e = ctx_errorf(c, vc.code, "%s", vc.msg);
				}
			}
			if (!e)
				e = entry_done(hooks, en, a, defer, en->vid ? FHIR_ENTRY_VREAD : FHIR_ENTRY_READ, sr.type, sr.id,
					       sr.version, NULL, c);
			if (!e) {
				en->status = 200;
				buf_addf(&en->out, "{\"response\":{\"status\":\"200 OK\",\"etag\":\"W/\\\"%lld\\\"\"},\"resource\":",
					 (long long)sr.version);
				buf_add(&en->out, sr.json.data, sr.json.len);
				buf_addch(&en->out, '}');
			}
			store_resource_release(&sr);
		} else {
			struct fhir_search_req sq;
			struct fhir_kv *kv = NULL;
			size_t n = 0;
			struct buf sb = BUF_INIT(RESP_MAX);

			if (en->query && (e = split_query(a, en->query, &kv, &n, c)))
				break;
			memset(&sq, 0, sizeof(sq));
			sq.type = en->type;
			sq.params = kv;
			sq.nparams = n;
			if (!hooks || !hooks->search || !(e = hooks->search(hooks->arg, &sq, c)))
				e = fhir_search(f, &sq, &sb, c);
			if (!e)
				e = entry_done(hooks, en, a, defer, FHIR_ENTRY_SEARCH, sq.type, NULL, 0, &sq, c);
			if (!e) {
				en->status = 200;
				buf_adds(&en->out, "{\"response\":{\"status\":\"200 OK\"},\"resource\":");
				buf_add(&en->out, sb.data, sb.len);
				buf_addch(&en->out, '}');
			}
			buf_release(&sb);
		}
		break;
	case M_BAD:
		e = ctx_errorf(c, ERR_INVALID, "entry request.method must be GET, POST, PUT or DELETE");
		break;
	}
	fhir_result_release(&r);
	return e;
}

/* ---- the Bundle ---- */

static enum method method_of(const char *m)
{
	if (!m)
		return M_BAD;
	if (!strcmp(m, "GET") || !strcmp(m, "HEAD"))
		return M_GET;
	if (!strcmp(m, "POST"))
		return M_POST;
	if (!strcmp(m, "PUT"))
		return M_PUT;
	if (!strcmp(m, "DELETE"))
		return M_DELETE;
	return M_BAD;
}

/* Read the entries' request elements; for a transaction, stop at the first bad one. */
static enum err read_entries(struct fhir *f, struct arena *a, json_t *entries, struct entry *ens,
			     size_t n, bool transaction, struct ctx *c)
{
	for (size_t i = 0; i < n; i++) {
		struct entry *en = &ens[i];
		json_t *req;
		const char *url;
		struct ctx ec = CTX_INIT;

		en->e = json_array_get(entries, i);
		buf_init(&en->out, RESP_MAX);
		req = json_object_get(en->e, "request");
		en->res = json_object_get(en->e, "resource");
		en->method = method_of(json_string_value(json_object_get(req, "method")));
		url = json_string_value(json_object_get(req, "url"));
		if (!json_is_object(en->e) || !url || en->method == M_BAD) {
			ctx_errorx(&ec, ERR_INVALID, "Bundle.entry.request",
				   "entry %zu: request.method (GET, POST, PUT, DELETE) and request.url are required", i + 1);
		} else if (!parse_url(f, a, url, en, &ec) && en->res && json_is_object(en->res) &&
			   (en->method == M_POST || en->method == M_PUT)) {
			const char *rt = json_string_value(json_object_get(en->res, "resourceType"));
			if (!rt || strcmp(rt, en->type))
				ctx_errorx(&ec, ERR_INVALID, "Bundle.entry.resource.resourceType",
					   "entry %zu: the resource is not a %s as its request url says", i + 1, en->type);
		}
		if (!ec.code && en->id && en->query && *en->query &&
		    (en->method == M_PUT || en->method == M_DELETE))
			/* the query would be ignored: say so rather than write what it did not select */
			ctx_errorx(&ec, ERR_INVALID, "Bundle.entry.request.url",
				   "entry %zu: request.url '%s' names both a resource and a search: use Type/id, or Type?search for a conditional %s",
				   i + 1, url, en->method == M_PUT ? "update" : "delete");
		if (ec.code) {
			if (transaction) {
				*c = ec;
				return ec.code;
			}
			respond_error(en, &ec);
		}
	}
	return ERR_OK;
}

/* request.ifNoneExist of a POST entry: note an existing match, or fail on several. */
static enum err conditional_create(struct fhir *f, struct arena *a, struct entry *en, size_t i,
				   struct ctx *c)
{
	const char *ine = json_string_value(json_object_get(json_object_get(en->e, "request"), "ifNoneExist"));
	struct found fd;
	enum err e;

	if (!ine)
		return ERR_OK;
	if ((e = find_matches(f, a, en->type, ine, &fd, c)))
		return e;
	if (fd.n > 1)
		return ctx_errorf(c, ERR_PRECONDITION, "entry %zu: ifNoneExist '%s' matches more than one resource",
				  i + 1, ine);
	if (fd.n == 1) {
		en->assigned = arena_strdup(a, fd.ids[0]);
		en->exists = true;
	}
	return ERR_OK;
}

/*
 * Transaction pre-pass, after the deletes: ids for urn:uuid POSTs and
 * conditional creates, and 'map' from each full URL to its Type/id.  A full
 * URL two entries share is ERR_INVALID (R4 bdl-7): a link to it would name
 * either.
 */
static enum err assign_ids(struct fhir *f, struct arena *a, struct entry *ens, size_t n,
			   json_t *map, struct ctx *c)
{
	json_t *seen = json_object();
	enum err e = ERR_OK;

	for (size_t i = 0; i < n && !e; i++) {
		struct entry *en = &ens[i];
		const char *full = json_string_value(json_object_get(en->e, "fullUrl"));
		json_t *first = full ? json_object_get(seen, full) : NULL;
		char uuid[37];

		if (first) {
			e = ctx_errorx(c, ERR_INVALID, "Bundle.entry.fullUrl", "entries %lld and %zu have the same fullUrl '%s'",
				       (long long)json_integer_value(first), i + 1, full);
			break;
		}
		if (full)
			json_object_set_new(seen, full, json_integer((json_int_t)i + 1));
		if (en->method == M_POST) {
			if ((e = conditional_create(f, a, en, i, c)))
				break;
			if (!en->assigned) {
				rand_uuid(uuid);
				en->assigned = arena_strdup(a, uuid);
			}
			if (full)
				json_object_set_new(map, full, json_string(arena_printf(a, "%s/%s", en->type, en->assigned)));
		} else if (en->method == M_PUT && en->id && full && str_starts(full, "urn:")) {
			json_object_set_new(map, full, json_string(arena_printf(a, "%s/%s", en->type, en->id)));
		}
	}
	json_decref(seen);
	return e;
}

/* Resolve the links of every entry's resource (resolve_links()); ERR_INVALID names a dangling one. */
static enum err resolve_all(struct entry *ens, size_t n, json_t *map, struct ctx *c)
{
	for (size_t i = 0; i < n; i++) {
		const char *bad = ens[i].res ? resolve_links(ens[i].res, "", map) : NULL;
		if (bad)
			return ctx_errorx(c, ERR_INVALID, "Bundle.entry.resource",
					  "entry %zu: the reference '%s' names no resource of this Bundle", i + 1, bad);
	}
	return ERR_OK;
}

/*
 * Run a transaction's entries of one method, in request order.  Two writes
 * to one resource (their resolved Type/id, in 'targets') are ERR_INVALID:
 * R4 fails a transaction whose identities overlap, for its result would
 * depend on the order of processing.
 */
static enum err run_phase(struct fhir *f, struct arena *a, struct entry *ens, size_t n, enum method m,
			  bool repr, const struct fhir_bundle_hooks *hooks, json_t *targets, struct ctx *c)
{
	for (size_t i = 0; i < n; i++) {
		struct entry *en = &ens[i];
		json_t *rq = json_object_get(en->e, "request"), *other;
		struct ctx ec = CTX_INIT;

		if (en->method != m)
			continue;
		if (!run_entry(f, a, en, repr, hooks, true, &ec) && en->target && m != M_GET) {
			if (!(other = json_object_get(targets, en->target))) {
				json_object_set_new(targets, en->target, json_integer((json_int_t)i + 1));
				continue;
			}
			ctx_errorx(&ec, ERR_INVALID, "Bundle.entry.request",
				   "%s is changed by entry %lld too; a transaction may change a resource once",
				   en->target, (long long)json_integer_value(other));
		}
		if (ec.code)
			return ctx_errorx(c, ec.code, ec.expr, "transaction failed at entry %zu (%s %s): %s", i + 1,
					  json_string_value(json_object_get(rq, "method")),
					  json_string_value(json_object_get(rq, "url")), ec.msg);
	}
	return ERR_OK;
}

enum err fhir_bundle(struct fhir *f, const char *body, size_t len, bool representation,
		     const struct fhir_bundle_hooks *hooks, struct buf *out, struct ctx *c)
{
	static const enum method order[] = {M_POST, M_PUT, M_GET}; /* after M_DELETE */
	struct arena a = ARENA_INIT;
	struct entry *ens = NULL;
	json_t *doc = NULL, *entries, *map = json_object(), *targets = json_object();
	const char *type;
	bool transaction, began = false;
	size_t n = 0;
	enum err e = ERR_OK;

	if ((int64_t)len > f->opts.body_max + (int64_t)(hooks ? hooks->wrap_bytes : 0)) {
		e = ctx_errorf(c, ERR_TOOBIG, "Bundle of %zu bytes exceeds the limit of %lld", len,
			       (long long)f->opts.body_max);
		goto out;
	}
	if (!(doc = json_parse_bounded(body, len, f->opts.json_depth_max + (hooks ? hooks->wrap_depth : 0),
				       c))) {
		e = c->code;
		goto out;
	}
	type = json_string_value(json_object_get(doc, "type"));
	if (!json_is_object(doc) || !json_get_str(doc, "resourceType") ||
	    strcmp(json_get_str(doc, "resourceType"), "Bundle")) {
		e = ctx_errorx(c, ERR_INVALID, "resourceType", "POST to the base takes a Bundle of type batch or transaction");
		goto out;
	}
	if (!type || (strcmp(type, "batch") && strcmp(type, "transaction"))) {
		e = ctx_errorx(c, ERR_INVALID, "Bundle.type", "Bundle.type must be batch or transaction, not '%s'",
			       type ? type : "");
		goto out;
	}
	transaction = !strcmp(type, "transaction");
	entries = json_object_get(doc, "entry");
	if (entries && !json_is_array(entries)) {
		e = ctx_errorx(c, ERR_INVALID, "Bundle.entry", "Bundle.entry must be an array");
		goto out;
	}
	n = json_array_size(entries);
	if (n > BUNDLE_ENTRIES_MAX) {
		e = ctx_errorf(c, ERR_TOOBIG, "a Bundle may hold at most %d entries", BUNDLE_ENTRIES_MAX);
		goto out;
	}
	ens = xcalloc(n ? n : 1, sizeof(*ens));
	if ((e = read_entries(f, &a, entries, ens, n, transaction, c)))
		goto out;
	if (n) {
		size_t *offs = xcalloc(n, sizeof(*offs));

		json_src_offsets(doc, "entry", "resource", body, len, offs, n);
		for (size_t i = 0; i < n; i++) {
			ens[i].src = body + offs[i];
			ens[i].srclen = len - offs[i];
		}
		free(offs);
	}

	if (transaction) {
		if ((e = store_begin(f->store, c)))
			goto out;
		began = true;
		/* deletes first, so that a conditional create does not find what they remove */
		if ((e = run_phase(f, &a, ens, n, M_DELETE, representation, hooks, targets, c)) ||
		    (e = assign_ids(f, &a, ens, n, map, c)) || (e = resolve_all(ens, n, map, c)))
			goto out;
		for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
			if ((e = run_phase(f, &a, ens, n, order[k], representation, hooks, targets, c)))
				goto out;
		for (size_t i = 0; i < n && hooks && hooks->done; i++) {
			struct ctx ec = CTX_INIT;
			if (ens[i].has_done && hooks->done(hooks->arg, &ens[i].done, &ec)) {
				e = ctx_errorx(c, ec.code, ec.expr, "transaction failed at entry %zu: %s", i + 1, ec.msg);
				goto out;
			}
		}
		if ((e = store_commit(f->store, c)))
			goto out;
		began = false;
	} else {
		for (size_t i = 0; i < n; i++) {
			struct ctx ec = CTX_INIT;
			if (ens[i].status)
				continue; /* already answered with an error */
			if ((ens[i].method == M_POST && conditional_create(f, &a, &ens[i], i, &ec)) ||
			    run_entry(f, &a, &ens[i], representation, hooks, false, &ec))
				respond_error(&ens[i], &ec);
		}
	}

	buf_addf(out, "{\"resourceType\":\"Bundle\",\"type\":\"%s-response\",\"entry\":[",
		 transaction ? "transaction" : "batch");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_addch(out, ',');
		buf_add(out, ens[i].out.data, ens[i].out.len);
	}
	buf_adds(out, "]}");
	if (out->err)
		e = ctx_errorf(c, ERR_TOOBIG, "the response Bundle is too large");
out:
	if (began)
		store_rollback(f->store);
	for (size_t i = 0; ens && i < n; i++)
		buf_release(&ens[i].out);
	free(ens);
	json_decref(map);
	json_decref(targets);
	json_decref(doc);
	arena_release(&a);
	return e;
}
