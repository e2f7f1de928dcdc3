/*
 * search.c - the search front of the store (query.h): checks a struct
 * store_query, an include or a revinclude request before the backend sees
 * it, and dispatches to s->ops.  Like store.c it knows nothing about any
 * backend; the SQL lives in sqlite_search.c.
 *
 * What this layer guarantees the backends: names are non-empty and fit
 * struct store_resource, every cond is well-formed for its kind and
 * modifier (chains and _has nested at most SEARCH_DEPTH_MAX deep), sizes
 * are within the caps below, and the output arguments are initialised
 * (*more = false, *total = -1) before anything can fail.
 *
 * Threading: like store.c, any thread; nothing here keeps state.
 */
#include <math.h>
#include <string.h>

#include "core/str.h"
#include "store/store_int.h"

/* Sizes of the name fields of struct store_resource (with their NUL). */
#define TYPE_SIZE sizeof(((struct store_resource *)0)->type)
#define ID_SIZE sizeof(((struct store_resource *)0)->id)

/* Largest page a search serves (the FHIR layer caps _count lower). */
#define SEARCH_LIMIT_MAX 100000
/* Conditions per level, alternatives per condition, types in a $everything. */
#define SEARCH_CONDS_MAX 128
#define SEARCH_MATCHES_MAX 1024
#define SEARCH_TYPES_MAX 256
/* Nesting of chains and _has (FHIR parsing produces one level). */
#define SEARCH_DEPTH_MAX 3
/* Resources per include / revinclude call. */
#define INCLUDE_IDS_MAX 10000
/* Longest parameter code (the index tables hold what index.c writes). */
#define PARAM_MAX 256

/* Is 's' a non-empty string shorter than 'size' bytes? */
static bool name_ok(const char *s, size_t size)
{
	return s && *s && strnlen(s, size) < size;
}

static bool is_id_param(const char *p)
{
	return !strcmp(p, "_id");
}

static bool is_updated_param(const char *p)
{
	return !strcmp(p, "_lastUpdated");
}

/* Does modifier 'mod' apply to conds of 'kind'? */
static bool mod_fits(enum store_ix kind, enum store_mod mod)
{
	switch (mod) {
	case STORE_MOD_NONE:
	case STORE_MOD_MISSING:
	case STORE_MOD_PRESENT:
		return true;
	case STORE_MOD_NOT:
		return kind == STORE_IX_TOKEN || kind == STORE_IX_REFERENCE;
	case STORE_MOD_TEXT:
	case STORE_MOD_OF_TYPE:
		return kind == STORE_IX_TOKEN;
	case STORE_MOD_EXACT:
	case STORE_MOD_CONTAINS:
		return kind == STORE_IX_STRING;
	case STORE_MOD_BELOW:
	case STORE_MOD_ABOVE:
		return kind == STORE_IX_URI;
	}
	return false;
}

/* ERR_INVALID unless match 'm' of a cond (kind, mod) has what the kind needs. */
static enum err check_match(const struct store_cond *cd, const struct store_match *m,
			    struct ctx *c)
{
	const char *p = cd->param;

	if (cd->kind == STORE_IX_DATE || cd->kind == STORE_IX_NUMBER ||
	    cd->kind == STORE_IX_QUANTITY) {
		if ((unsigned)m->cmp > STORE_CMP_AP)
			return ctx_errorf(c, ERR_INVALID, "search on '%s' has an unknown prefix %d",
					  p, (int)m->cmp);
	}
	switch (cd->kind) {
	case STORE_IX_TOKEN:
		if (cd->mod == STORE_MOD_TEXT && !m->a)
			return ctx_errorf(c, ERR_INVALID, "search on '%s:text' has no text", p);
		if (is_id_param(p) && cd->mod != STORE_MOD_TEXT && cd->mod != STORE_MOD_OF_TYPE &&
		    !m->b)
			return ctx_errorf(c, ERR_INVALID, "search on '_id' has no id");
		break;
	case STORE_IX_STRING:
		if (cd->mod == STORE_MOD_EXACT ? !m->b : !m->a)
			return ctx_errorf(c, ERR_INVALID, "search on '%s' has no value", p);
		break;
	case STORE_IX_DATE:
		if (m->lo > m->hi)
			return ctx_errorf(c, ERR_INVALID, "search on '%s' has an empty date range", p);
		break;
	case STORE_IX_REFERENCE:
		if (!m->a && !m->b && !m->c)
			return ctx_errorf(c, ERR_INVALID, "search on '%s' names no target", p);
		break;
	case STORE_IX_QUANTITY:
	case STORE_IX_NUMBER:
		if (!isfinite(m->num) || !isfinite(m->nlo) || !isfinite(m->nhi) || m->nlo > m->nhi)
			return ctx_errorf(c, ERR_INVALID, "search on '%s' has no usable number", p);
		break;
	case STORE_IX_URI:
		if (!m->a || !*m->a)
			return ctx_errorf(c, ERR_INVALID, "search on '%s' has no uri", p);
		break;
	}
	return ERR_OK;
}

static enum err check_conds(const struct store_cond *conds, size_t n, int depth,
			    struct ctx *c);

/* ERR_INVALID unless 'cd' is a well-formed cond at nesting 'depth'. */
static enum err check_cond(const struct store_cond *cd, int depth, struct ctx *c)
{
	enum err e;

	if (cd->has || cd->has_type || cd->has_param) {
		if (!cd->has || !name_ok(cd->has_type, TYPE_SIZE) ||
		    !name_ok(cd->has_param, PARAM_MAX))
			return ctx_errorf(c, ERR_INVALID, "a _has search needs a type, a reference"
					  " parameter and a condition");
		if (depth >= SEARCH_DEPTH_MAX)
			return ctx_errorf(c, ERR_INVALID, "search too complex: _has and chains"
					  " nest more than %d deep", SEARCH_DEPTH_MAX);
		return check_conds(cd->has, 1, depth + 1, c);
	}
	if ((unsigned)cd->kind >= STORE_IX_KINDS)
		return ctx_errorf(c, ERR_INVALID, "search condition has unknown kind %d",
				  (int)cd->kind);
	if (!name_ok(cd->param, PARAM_MAX))
		return ctx_errorf(c, ERR_INVALID, "search condition names no parameter");
	if (cd->chain || cd->chain_type) {
		if (!cd->chain || !name_ok(cd->chain_type, TYPE_SIZE) ||
		    cd->kind != STORE_IX_REFERENCE)
			return ctx_errorf(c, ERR_INVALID, "chained search on '%s' needs a reference"
					  " parameter, a target type and a condition", cd->param);
		if (depth >= SEARCH_DEPTH_MAX)
			return ctx_errorf(c, ERR_INVALID, "search too complex: _has and chains"
					  " nest more than %d deep", SEARCH_DEPTH_MAX);
		return check_conds(cd->chain, 1, depth + 1, c);
	}
	if ((unsigned)cd->mod > STORE_MOD_ABOVE || !mod_fits(cd->kind, cd->mod))
		return ctx_errorf(c, ERR_INVALID, "modifier %d does not apply to '%s'",
				  (int)cd->mod, cd->param);
	if (is_updated_param(cd->param) && cd->kind != STORE_IX_DATE)
		return ctx_errorf(c, ERR_INVALID, "'_lastUpdated' is a date parameter");
	if (is_id_param(cd->param) && cd->kind != STORE_IX_TOKEN)
		return ctx_errorf(c, ERR_INVALID, "'_id' is a token parameter");
	if (cd->mod == STORE_MOD_MISSING || cd->mod == STORE_MOD_PRESENT)
		return ERR_OK;
	if (cd->nm == 0 || !cd->m)
		return ctx_errorf(c, ERR_INVALID, "search on '%s' has no value", cd->param);
	if (cd->nm > SEARCH_MATCHES_MAX)
		return ctx_errorf(c, ERR_INVALID, "search too complex: '%s' has more than %d"
				  " alternatives", cd->param, SEARCH_MATCHES_MAX);
	for (size_t i = 0; i < cd->nm; i++) {
		e = check_match(cd, &cd->m[i], c);
		if (e)
			return e;
	}
	return ERR_OK;
}

static enum err check_conds(const struct store_cond *conds, size_t n, int depth,
			    struct ctx *c)
{
	enum err e;

	if (n > SEARCH_CONDS_MAX)
		return ctx_errorf(c, ERR_INVALID, "search too complex: more than %d conditions",
				  SEARCH_CONDS_MAX);
	if (n && !conds)
		return ctx_errorf(c, ERR_INVALID, "search conditions missing");
	for (size_t i = 0; i < n; i++) {
		e = check_cond(&conds[i], depth, c);
		if (e)
			return e;
	}
	return ERR_OK;
}

/* ERR_INVALID unless 'q' is a query every backend can take. */
static enum err check_query(const struct store_query *q, struct ctx *c)
{
	enum err e;

	if (!q)
		return ctx_errorf(c, ERR_INVALID, "no search given");
	if (q->type && !name_ok(q->type, TYPE_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource type is missing or too long");
	if (!q->type && !q->patient)
		return ctx_errorf(c, ERR_INVALID, "a search of every type needs a patient");
	if (q->patient && !name_ok(q->patient, ID_SIZE))
		return ctx_errorf(c, ERR_INVALID, "patient id is missing or too long");
	if (q->ntypes) {
		if (q->type)
			return ctx_errorf(c, ERR_INVALID, "a type list needs a search of every type");
		if (!q->types || q->ntypes > SEARCH_TYPES_MAX)
			return ctx_errorf(c, ERR_INVALID, "type list is missing or too long");
		for (size_t i = 0; i < q->ntypes; i++)
			if (!name_ok(q->types[i], TYPE_SIZE))
				return ctx_errorf(c, ERR_INVALID, "type %zu of the list is missing"
						  " or too long", i);
	}
	if (!q->type && q->nconds)
		return ctx_errorf(c, ERR_INVALID, "search conditions need a resource type");
	e = check_conds(q->conds, q->nconds, 0, c);
	if (e)
		return e;
	if (q->nsort > STORE_SORT_MAX || (q->nsort && !q->sort))
		return ctx_errorf(c, ERR_INVALID, "at most %d sort keys", STORE_SORT_MAX);
	for (size_t i = 0; i < q->nsort; i++) {
		const struct store_sort *k = &q->sort[i];

		if (k->by != STORE_SORT_ID && k->by != STORE_SORT_LAST_UPDATED &&
		    k->by != STORE_SORT_PARAM)
			return ctx_errorf(c, ERR_INVALID, "sort key %zu is of unknown kind", i);
		if (k->by != STORE_SORT_PARAM)
			continue;
		if ((unsigned)k->kind >= STORE_IX_KINDS || !name_ok(k->param, PARAM_MAX))
			return ctx_errorf(c, ERR_INVALID, "sort key %zu names no parameter", i);
		if (k->kind == STORE_IX_REFERENCE)
			return ctx_errorf(c, ERR_INVALID, "cannot sort by the reference parameter '%s'",
					  k->param);
	}
	if (q->limit < 0 || q->limit > SEARCH_LIMIT_MAX)
		return ctx_errorf(c, ERR_INVALID, "page size %lld is out of range",
				  (long long)q->limit);
	if (q->cursor.set) {
		if (q->cursor.snapshot_rid < 0 || q->cursor.rid < 0)
			return ctx_errorf(c, ERR_INVALID, "page cursor is invalid");
		for (int i = 0; i < STORE_SORT_MAX; i++)
			if (!memchr(q->cursor.key[i].s, '\0', sizeof(q->cursor.key[i].s)))
				return ctx_errorf(c, ERR_INVALID, "page cursor is invalid");
	} else if (q->backward) {
		return ctx_errorf(c, ERR_INVALID, "a backward page needs a cursor");
	}
	if (q->total != STORE_TOTAL_NONE && q->total != STORE_TOTAL_ESTIMATE &&
	    q->total != STORE_TOTAL_ACCURATE)
		return ctx_errorf(c, ERR_INVALID, "unknown total mode %d", (int)q->total);
	if (q->since < 0)
		return ctx_errorf(c, ERR_INVALID, "since %lld is invalid", (long long)q->since);
	return ERR_OK;
}

/*
 * Run a search (query.h).  ERR_INVALID for a malformed query (nothing is
 * read); otherwise the backend's result.  *more = false and *total = -1
 * until the backend sets them.
 */
enum err store_search(struct store *s, const struct store_query *q, store_hit_fn fn,
		      void *arg, bool *more, int64_t *total, struct ctx *c)
{
	bool more_dummy;
	int64_t total_dummy;
	enum err e;

	if (!more)
		more = &more_dummy;
	if (!total)
		total = &total_dummy;
	*more = false;
	*total = -1;
	e = check_query(q, c);
	return e ? e : s->ops->search(s, q, fn, arg, more, total, c);
}

/* The plan and SQL of a search (query.h); 'sql' may be NULL. */
enum err store_search_explain(struct store *s, const struct store_query *q, struct buf *out,
			      struct buf *sql, struct ctx *c)
{
	enum err e = check_query(q, c);

	if (e)
		return e;
	if (!out)
		return ctx_errorf(c, ERR_INVALID, "no buffer for the plan");
	return s->ops->search_explain(s, q, out, sql, c);
}

/* A confinement's patient and types must be well formed (NULL: none). */
static enum err confine_ok(const struct store_confine *cf, struct ctx *c)
{
	if (!cf || !cf->patient)
		return ERR_OK;
	if (!name_ok(cf->patient, ID_SIZE))
		return ctx_errorf(c, ERR_INVALID, "confinement patient id is empty or too long");
	if (cf->ntypes > 256 || (cf->ntypes && !cf->types))
		return ctx_errorf(c, ERR_INVALID, "confinement of %zu types is not possible", cf->ntypes);
	for (size_t i = 0; i < cf->ntypes; i++)
		if (!name_ok(cf->types[i], TYPE_SIZE))
			return ctx_errorf(c, ERR_INVALID, "confined type %zu is empty or too long", i);
	return ERR_OK;
}

/*
 * _include (query.h).  ERR_INVALID for a bad request: no callback, too
 * many rids, a name that is empty or too long.  n = 0 calls nothing.
 */
enum err store_include(struct store *s, const int64_t *rids, size_t n, const char *src_type,
		       const char *param, const char *target_type, const struct store_confine *cf,
		       store_hit_fn fn, void *arg, struct ctx *c)
{
	enum err e;

	if (!fn)
		return ctx_errorf(c, ERR_INVALID, "no callback for included resources");
	if (n > INCLUDE_IDS_MAX || (n && !rids))
		return ctx_errorf(c, ERR_INVALID, "include over %zu resources is not possible", n);
	if (src_type && !name_ok(src_type, TYPE_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource type is empty or too long");
	if (target_type && !name_ok(target_type, TYPE_SIZE))
		return ctx_errorf(c, ERR_INVALID, "target type is empty or too long");
	if (param && !name_ok(param, PARAM_MAX))
		return ctx_errorf(c, ERR_INVALID, "include parameter is empty or too long");
	if ((e = confine_ok(cf, c)))
		return e;
	if (n == 0)
		return ERR_OK;
	return s->ops->include(s, rids, n, src_type, param, target_type, cf, fn, arg, c);
}

/*
 * _revinclude (query.h): at most 'limit' resources.  ERR_INVALID for a bad
 * request (no callback, types missing, an id empty or too long).
 */
enum err store_revinclude(struct store *s, const char *target_type, const char *const *ids,
			  size_t n, const char *src_type, const char *param, int64_t limit,
			  const struct store_confine *cf, store_hit_fn fn, void *arg,
			  struct ctx *c)
{
	enum err e;

	if (!fn)
		return ctx_errorf(c, ERR_INVALID, "no callback for included resources");
	if (!name_ok(target_type, TYPE_SIZE) || !name_ok(src_type, TYPE_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource type is missing or too long");
	if (param && !name_ok(param, PARAM_MAX))
		return ctx_errorf(c, ERR_INVALID, "include parameter is empty or too long");
	if (n > INCLUDE_IDS_MAX || (n && !ids))
		return ctx_errorf(c, ERR_INVALID, "revinclude over %zu resources is not possible",
				  n);
	for (size_t i = 0; i < n; i++)
		if (!name_ok(ids[i], ID_SIZE))
			return ctx_errorf(c, ERR_INVALID, "id %zu is missing or too long", i);
	if (limit < 0)
		return ctx_errorf(c, ERR_INVALID, "revinclude limit %lld is invalid",
				  (long long)limit);
	if ((e = confine_ok(cf, c)))
		return e;
	if (n == 0 || limit == 0)
		return ERR_OK;
	return s->ops->revinclude(s, target_type, ids, n, src_type, param, limit, cf, fn, arg, c);
}
