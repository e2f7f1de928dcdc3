/*
 * match.c - judge one stored version of a resource from its own content:
 * whose record it is in and whether it matches search parameters.  The
 * index tables describe current versions only; an older version is
 * indexed afresh (fhir_index_resource(), the rows a write of it made) and
 * the parsed conditions are evaluated on those rows in memory, with the
 * semantics of store/query.h.
 *
 * Only what can be evaluated exactly is: token (with :not, :missing,
 * :text, :of-type), string, reference and uri conditions and _id.  Any
 * other condition (dates, numbers, quantities, _lastUpdated, chains,
 * _has) makes the version not match: callers use this to decide what a
 * constrained token may see, so it fails closed.
 *
 * Memory: a private arena per call, released before returning.
 * Reentrant.
 */
#include <string.h>

#include "core/arena.h"
#include "core/json.h"
#include "core/str.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"
#include "fhir/search_int.h"

enum verdict { V_NO = 0, V_YES = 1, V_UNKNOWN = -1 };

static bool same(const char *x, const char *y)
{
	return x && y && !strcmp(x, y);
}

static bool starts(const char *s, const char *p)
{
	return s && p && str_starts(s, p);
}

/* A token system: NULL any, "" none (no system or an empty one), else equal. */
static bool system_ok(const char *row, const char *want)
{
	if (!want)
		return true;
	if (!*want)
		return !row || !*row;
	return same(row, want);
}

/* :text: the row's display/text, ASCII-lowercased, starts with the normalized value. */
static bool text_starts(const char *row, const char *p)
{
	size_t n = p ? strlen(p) : 0;

	if (!row || !p)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = row[i];
		if (!ch)
			return false;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch != p[i])
			return false;
	}
	return true;
}

/* Does index row 'x' satisfy alternative 'm' of 'cd'? */
static enum verdict row_matches(const struct store_cond *cd, const struct store_match *m,
				const struct store_ix_row *x)
{
	switch (cd->kind) {
	case STORE_IX_TOKEN:
		if (cd->mod == STORE_MOD_TEXT)
			return text_starts(x->c, m->a) ? V_YES : V_NO;
		if (m->b && !same(x->b, m->b))
			return V_NO;
		if (!system_ok(x->a, m->a))
			return V_NO;
		if (cd->mod == STORE_MOD_OF_TYPE && m->c && !same(x->c, m->c))
			return V_NO;
		return V_YES;
	case STORE_IX_STRING:
		if (cd->mod == STORE_MOD_EXACT)
			return (!m->b || same(x->b, m->b)) && (!m->a || same(x->a, m->a)) ? V_YES : V_NO;
		if (cd->mod == STORE_MOD_CONTAINS)
			return x->a && m->a && strstr(x->a, m->a) ? V_YES : V_NO;
		return starts(x->a, m->a) ? V_YES : V_NO;
	case STORE_IX_REFERENCE:
		if (m->b)
			return same(x->b, m->b) && (!m->a || same(x->a, m->a)) ? V_YES : V_NO;
		if (m->c)
			return same(x->c, m->c) ? V_YES : V_NO;
		return !x->a || same(x->a, m->a) ? V_YES : V_NO;
	case STORE_IX_URI:
		if (cd->mod == STORE_MOD_BELOW)
			return starts(x->a, m->a) ? V_YES : V_NO;
		if (cd->mod == STORE_MOD_ABOVE)
			return x->a && *x->a && starts(m->a, x->a) ? V_YES : V_NO;
		return same(x->a, m->a) ? V_YES : V_NO;
	case STORE_IX_DATE:
	case STORE_IX_QUANTITY:
	case STORE_IX_NUMBER:
		break;
	}
	return V_UNKNOWN;
}

/* Does the resource (id 'id', index 'ix') satisfy condition 'cd'? */
static enum verdict cond_matches(const struct store_cond *cd, const char *id,
				 const struct fhir_index *ix)
{
	bool any = false;

	if (cd->chain || cd->chain_type || cd->has || cd->has_type || !cd->param)
		return V_UNKNOWN;
	if (!strcmp(cd->param, "_id")) {
		if (cd->kind != STORE_IX_TOKEN)
			return V_UNKNOWN;
		if (cd->mod == STORE_MOD_MISSING || cd->mod == STORE_MOD_PRESENT)
			return cd->mod == STORE_MOD_PRESENT ? V_YES : V_NO;
		if (cd->mod != STORE_MOD_NONE && cd->mod != STORE_MOD_NOT)
			return V_UNKNOWN;
		for (size_t i = 0; i < cd->nm && !any; i++)
			any = same(id, cd->m[i].b);
		return any != (cd->mod == STORE_MOD_NOT) ? V_YES : V_NO;
	}
	if (cd->param[0] == '_' && strcmp(cd->param, FHIR_CATEGORY_PARAM))
		return V_UNKNOWN; /* _lastUpdated and other columns of the resource row */
	for (size_t r = 0; r < ix->n; r++) {
		const struct store_ix_row *x = &ix->rows[r];

		if (x->kind != cd->kind || strcmp(x->param, cd->param))
			continue;
		if (cd->mod == STORE_MOD_MISSING || cd->mod == STORE_MOD_PRESENT) {
			any = true;
			break;
		}
		for (size_t i = 0; i < cd->nm && !any; i++) {
			enum verdict v = row_matches(cd, &cd->m[i], x);
			if (v == V_UNKNOWN)
				return V_UNKNOWN;
			any = v == V_YES;
		}
		if (any)
			break;
	}
	if (cd->mod == STORE_MOD_MISSING || cd->mod == STORE_MOD_NOT)
		return any ? V_NO : V_YES;
	return any ? V_YES : V_NO;
}

enum err fhir_version_judge(struct fhir *f, const struct store_resource *r, const char *patient,
			    const struct fhir_kv *params, size_t n, bool *yes, struct ctx *c)
{
	struct arena a = ARENA_INIT;
	struct search_parsed p;
	struct fhir_index ix;
	json_t *res = NULL;
	enum err e = ERR_OK;

	*yes = false;
	search_parsed_init(&p);
	if (r->deleted)
		goto out;
	if (!(res = json_parse_bounded(r->json.data, r->json.len, f->opts.json_depth_max, c))) {
		e = c->code ? c->code : ERR_INVALID;
		goto out;
	}
	memset(&ix, 0, sizeof(ix));
	if ((e = fhir_index_resource(&a, r->type, r->id, res, &ix, c)))
		goto out;
	if (patient) {
		bool in = false;
		for (size_t i = 0; i < ix.npatients && !in; i++)
			in = !strcmp(ix.patients[i], patient);
		if (!in)
			goto out;
	}
	if (n) {
		struct fhir_search_req req;

		memset(&req, 0, sizeof(req));
		req.type = r->type;
		req.params = params;
		req.nparams = n;
		req.strict = true; /* a parameter the parser would skip must not match everything */
		if ((e = fhir_search_parse(f, &a, &req, &p, c)))
			goto out;
		for (size_t i = 0; i < p.nconds; i++)
			if (cond_matches(&p.conds[i], r->id, &ix) != V_YES)
				goto out;
	}
	*yes = true;
out:
	json_decref(res);
	search_parsed_release(&p);
	arena_release(&a);
	return e;
}
