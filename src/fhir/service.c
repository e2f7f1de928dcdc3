/*
 * service.c - FHIR reads and writes over the store.
 *
 * A write parses the body once (bounded), validates it, sets id and meta,
 * computes index rows and the patient compartment, serializes it once and
 * hands the bytes and rows to store_put() in one transaction.  Reads hand
 * back the stored bytes untouched.  Optimistic concurrency: a write names
 * the version it read; the store refuses a stale one (ERR_CONFLICT), which
 * becomes 412 when the client sent If-Match and a retry otherwise.
 */
#include "fhir/fhir.h"

#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/rand.h"
#include "core/str.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"

#define WRITE_RETRIES 8

struct fhir *fhir_new(struct store *s, const struct fhir_opts *o)
{
	struct fhir *f = xcalloc(1, sizeof(*f));

	f->store = s;
	f->opts = *o;
	snprintf(f->base, sizeof(f->base), "%s/fhir", o->base_url);
	fhir_index_set_base(f->base);
	buf_init(&f->capability, 4 << 20);
	fhir_capability_build(f);
	return f;
}

void fhir_free(struct fhir *f)
{
	if (!f)
		return;
	buf_release(&f->capability);
	free(f);
}

const char *fhir_base(const struct fhir *f)
{
	return f->base;
}

void fhir_result_init(struct fhir_result *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->json, (size_t)1 << 30);
}

void fhir_result_release(struct fhir_result *r)
{
	buf_release(&r->json);
}

static enum err check_type(const char *type, struct ctx *c)
{
	if (!fhir_type_find(type))
		return ctx_errorf(c, ERR_NOTFOUND, "resource type '%s' is not supported by this server", type);
	return ERR_OK;
}

enum err fhir_read(struct fhir *f, const char *type, const char *id, int64_t version,
		   struct store_resource *out, struct ctx *c)
{
	return fhir_read_compartment(f, type, id, version, out, NULL, NULL, NULL, 0, NULL, c);
}

enum err fhir_read_compartment(struct fhir *f, const char *type, const char *id, int64_t version,
			       struct store_resource *out, const char *patient, bool *in,
			       char (*patients)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
			       struct ctx *c)
{
	enum err e;

	if (n)
		*n = 0;
	if (in)
		*in = false;
	if ((e = check_type(type, c)))
		return e;
	if (!fhir_id_valid(id))
		return ctx_errorf(c, ERR_NOTFOUND, "%s/%s is not known", type, id);
	if (patient)
		e = store_get_in(f->store, type, id, version, patient, out, in, c);
	else if (patients)
		e = store_get_compartment(f->store, type, id, version, out, patients, max, n, c);
	else
		e = store_get(f->store, type, id, version, out, c);
	if (e == ERR_NOTFOUND) {
		ctx_clear(c);
		if (version)
			return ctx_errorf(c, ERR_NOTFOUND, "%s/%s has no version %lld", type, id, (long long)version);
		return ctx_errorf(c, ERR_NOTFOUND, "%s/%s is not known", type, id);
	}
	if (e)
		return e;
	if (out->deleted)
		return ctx_errorf(c, ERR_GONE, "%s/%s was deleted (version %lld)", type, id,
				  (long long)out->version);
	return ERR_OK;
}

/* Set id and meta.versionId/lastUpdated on 'res'. */
static void set_meta(json_t *res, const char *id, int64_t version, int64_t now)
{
	json_t *meta = json_object_get(res, "meta");
	char vid[24], ts[32];

	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(res, "meta", meta);
	}
	snprintf(vid, sizeof(vid), "%lld", (long long)version);
	clock_format_instant(now, ts);
	json_object_set_new(res, "id", json_string(id));
	json_object_set_new(meta, "versionId", json_string(vid));
	json_object_set_new(meta, "lastUpdated", json_string(ts));
}

/*
 * Write 'res' (already validated) as 'id': expect is the version to replace
 * (0: must not exist; -1: whatever is current, retried on races; -2: like
 * -1, but first tried as a create without looking the resource up).
 * if_match >= 0 turns a version mismatch into ERR_PRECONDITION.
 */
static enum err write_resource(struct fhir *f, const char *type, const char *id, json_t *res,
			       const char *src, size_t srclen, int64_t expect, int64_t if_match,
			       struct fhir_result *out, struct ctx *c)
{
	struct arena a = ARENA_INIT;
	struct fhir_index ix;
	struct buf bytes = BUF_INIT((size_t)f->opts.body_max * 2 + 4096);
	enum err e = ERR_OK;
	int attempt;

	for (attempt = 0; attempt < WRITE_RETRIES; attempt++) {
		struct store_put p;
		int64_t cur = 0, now = clock_now_ms();
		bool deleted = false;

		/*
		 * expect -2 (import): most resources are new, so first try to
		 * create without a lookup; a conflict means it exists: look it up.
		 */
		if (expect == -1 || (expect == -2 && attempt > 0) || if_match >= 0) {
			if ((e = store_current_version(f->store, type, id, &cur, &deleted, c)))
				goto out;
		}
		if (if_match >= 0 && if_match != cur) {
			e = ctx_errorf(c, ERR_PRECONDITION,
				       "If-Match names version %lld but the current version of %s/%s is %lld",
				       (long long)if_match, type, id, (long long)cur);
			goto out;
		}
		if (expect == 0)
			cur = 0;
		set_meta(res, id, cur + 1, now);
		memset(&ix, 0, sizeof(ix));
		if ((e = fhir_index_resource(&a, type, id, res, &ix, c)))
			goto out;
		buf_reset(&bytes);
		if ((e = json_dump_buf_src(res, &bytes, src, srclen))) {
			e = ctx_errorf(c, ERR_TOOBIG, "resource is too large to store");
			goto out;
		}
		memset(&p, 0, sizeof(p));
		p.op = STORE_PUT;
		p.type = type;
		p.id = id;
		p.expect_version = cur;
		p.version = cur + 1;
		p.last_updated = now;
		p.json = bytes.data;
		p.json_len = bytes.len;
		p.ix = ix.rows;
		p.nix = ix.n;
		p.patients = ix.patients;
		p.npatients = ix.npatients;
		e = store_put(f->store, &p, c);
		if (e == ERR_CONFLICT && expect != 0 && if_match < 0) {
			/* lost a race without If-Match: read again and retry */
			ctx_clear(c);
			arena_release(&a);
			continue;
		}
		if (e == ERR_CONFLICT && if_match >= 0) {
			ctx_clear(c);
			e = ctx_errorf(c, ERR_PRECONDITION,
				       "%s/%s was changed by another request; read it again and retry",
				       type, id);
		}
		if (e)
			goto out;
		str_copy(out->type, type, sizeof(out->type));
		str_copy(out->id, id, sizeof(out->id));
		out->version = cur + 1;
		out->last_updated = now;
		out->created = cur == 0 || deleted;
		buf_reset(&out->json);
		buf_add(&out->json, bytes.data, bytes.len);
		goto out;
	}
	e = ctx_errorf(c, ERR_BUSY, "%s/%s is being changed by other requests; retry", type, id);
out:
	arena_release(&a);
	buf_release(&bytes);
	return e;
}

static json_t *parse_body(struct fhir *f, const char *body, size_t n, struct ctx *c)
{
	if ((int64_t)n > f->opts.body_max) {
		ctx_errorf(c, ERR_TOOBIG, "resource body of %zu bytes exceeds the limit of %lld", n,
			   (long long)f->opts.body_max);
		return NULL;
	}
	if (!str_utf8_valid(body, n)) {
		ctx_errorf(c, ERR_INVALID, "request body is not valid UTF-8");
		return NULL;
	}
	return json_parse_bounded(body, n, f->opts.json_depth_max, c);
}

static enum err check_writable(const char *type, struct ctx *c)
{
	const struct fhir_type *t = fhir_type_find(type);

	if (!t)
		return ctx_errorf(c, ERR_NOTFOUND, "resource type '%s' is not supported by this server", type);
	if (t->flags & FHIR_TYPE_SERVER_WRITES_ONLY)
		return ctx_errorf(c, ERR_FORBIDDEN, "%s resources are written by the server only", type);
	return ERR_OK;
}

enum err fhir_create(struct fhir *f, const char *type, const char *body, size_t n,
		     struct fhir_result *res, struct ctx *c)
{
	json_t *doc = NULL;
	char id[37];
	enum err e;

	if ((e = check_writable(type, c)))
		return e;
	if (!(doc = parse_body(f, body, n, c)))
		return c->code;
	if ((e = fhir_validate(type, NULL, doc, c)))
		goto out;
	rand_uuid(id);
	e = write_resource(f, type, id, doc, body, n, 0, -1, res, c);
out:
	json_decref(doc);
	return e;
}

enum err fhir_update(struct fhir *f, const char *type, const char *id, const char *body,
		     size_t n, int64_t if_match, struct fhir_result *res, struct ctx *c)
{
	json_t *doc = NULL;
	enum err e;

	if ((e = check_writable(type, c)))
		return e;
	if (!fhir_id_valid(id))
		return ctx_errorx(c, ERR_INVALID, "id", "'%s' is not a valid resource id (1-64 of A-Z a-z 0-9 - .)", id);
	if (!(doc = parse_body(f, body, n, c)))
		return c->code;
	if ((e = fhir_validate(type, id, doc, c)))
		goto out;
	e = write_resource(f, type, id, doc, body, n, -1, if_match, res, c);
out:
	json_decref(doc);
	return e;
}

enum err fhir_write_json(struct fhir *f, const char *type, const char *id, json_t *res,
			 const char *src, size_t srclen, int64_t if_match, struct fhir_result *out,
			 struct ctx *c)
{
	char gen[37], idcopy[72];
	enum err e;

	if ((e = check_writable(type, c)))
		return e;
	if (id && !fhir_id_valid(id))
		return ctx_errorx(c, ERR_INVALID, "id", "'%s' is not a valid resource id (1-64 of A-Z a-z 0-9 - .)", id);
	if ((e = fhir_validate(type, id, res, c)))
		return e;
	if (!id) {
		rand_uuid(gen);
		return write_resource(f, type, gen, res, src, srclen, 0, -1, out, c);
	}
	str_copy(idcopy, id, sizeof(idcopy));
	return write_resource(f, type, idcopy, res, src, srclen, -1, if_match, out, c);
}

enum err fhir_put_json(struct fhir *f, json_t *res, const char *src, size_t srclen,
		       struct fhir_result *out, struct ctx *c)
{
	const char *type = json_get_str(res, "resourceType");
	const char *id = json_get_str(res, "id");
	char tcopy[64], idcopy[72];
	enum err e;

	if (!type)
		return ctx_errorx(c, ERR_INVALID, "resourceType", "resource has no resourceType");
	if ((e = check_writable(type, c)))
		return e;
	/* an id that is there but not a string is an error, not a missing id */
	if (!id && json_object_get(res, "id"))
		return ctx_errorx(c, ERR_INVALID, "id", "%.64s.id must be a string of 1-64 of A-Z a-z 0-9 - .",
				  type);
	if (!id) {
		rand_uuid(idcopy);
		json_object_set_new(res, "id", json_string(idcopy));
		id = json_get_str(res, "id");
	}
	if ((e = fhir_validate(type, id, res, c)))
		return e;
	/* both point into 'res', which write_resource() rewrites */
	str_copy(tcopy, type, sizeof(tcopy));
	str_copy(idcopy, id, sizeof(idcopy));
	return write_resource(f, tcopy, idcopy, res, src, srclen, -2, -1, out, c);
}

enum err fhir_delete(struct fhir *f, const char *type, const char *id, int64_t if_match,
		     struct fhir_result *res, struct ctx *c)
{
	int attempt;
	enum err e;

	if ((e = check_writable(type, c)))
		return e;
	if (!fhir_id_valid(id))
		return ctx_errorx(c, ERR_INVALID, "id", "'%s' is not a valid resource id", id);
	for (attempt = 0; attempt < WRITE_RETRIES; attempt++) {
		struct store_put p;
		int64_t cur = 0, now = clock_now_ms();
		bool deleted = false;

		if ((e = store_current_version(f->store, type, id, &cur, &deleted, c)))
			return e;
		if (if_match >= 0 && if_match != cur)
			return ctx_errorf(c, ERR_PRECONDITION,
					  "If-Match names version %lld but the current version of %s/%s is %lld",
					  (long long)if_match, type, id, (long long)cur);
		str_copy(res->type, type, sizeof(res->type));
		str_copy(res->id, id, sizeof(res->id));
		if (cur == 0 || deleted) {
			res->unchanged = true;
			res->version = cur;
			return ERR_OK;
		}
		memset(&p, 0, sizeof(p));
		p.op = STORE_DELETE;
		p.type = type;
		p.id = id;
		p.expect_version = cur;
		p.version = cur + 1;
		p.last_updated = now;
		e = store_put(f->store, &p, c);
		if (e == ERR_CONFLICT) {
			ctx_clear(c);
			if (if_match >= 0)
				return ctx_errorf(c, ERR_PRECONDITION,
						  "%s/%s was changed by another request", type, id);
			continue;
		}
		if (e)
			return e;
		res->version = cur + 1;
		res->last_updated = now;
		return ERR_OK;
	}
	return ctx_errorf(c, ERR_BUSY, "%s/%s is being changed by other requests; retry", type, id);
}
