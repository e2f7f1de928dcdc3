/*
 * query.h - the store's search interface: a backend-neutral description of
 * a FHIR search (conditions over the index tables, sort keys, paging) that
 * each backend turns into one SQL statement.  The FHIR module builds a
 * struct store_query from the request (src/fhir/search.c); nothing in here
 * is SQLite- or PostgreSQL-specific.
 *
 * Semantics:
 *  - A query selects current, not deleted resources of one type.
 *  - conds are ANDed; within one cond the matches are ORed (FHIR: a
 *    repeated parameter is AND, a comma list is OR).
 *  - A cond on kind K tests the index rows of kind K with that param:
 *    "some row of the resource satisfies some match" (or, with
 *    STORE_MOD_NOT, "no row satisfies any match").
 *  - Paging is keyset: results are ordered by the sort keys then rid; the
 *    cursor holds the last row's key values and rid, and a snapshot rid
 *    bound (resources created after the first page are not added to later
 *    pages, so pages never shift).
 *  - Sorting: ascending by a parameter uses the lowest of the resource's
 *    values (dates: the earliest start), descending the highest (dates:
 *    the latest end); resources without a value come last either way.
 *    The final tie-breaker is rid, ascending, or descending when the last
 *    sort key is descending.  No sort keys: rid ascending.  A resource
 *    whose key values change between pages moves (it may then be seen
 *    twice or not at all); updates that keep them keep its place.
 *  - Text sort keys longer than 255 bytes are cut at a UTF-8 boundary (so
 *    that they fit the cursor); sorting and paging both use the cut value,
 *    so values that agree on their first ~255 bytes are ordered by rid.
 *  - "ne" on dates, numbers and quantities is per row: some value of the
 *    resource is not equal (unlike token :not, which needs every value to
 *    differ and also matches resources without one).
 * All strings are borrowed from the caller for the duration of the call.
 */
#ifndef VERANDA_STORE_QUERY_H
#define VERANDA_STORE_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "store/store.h"

/* FHIR search prefixes (for date, number, quantity). */
enum store_cmp {
	STORE_CMP_EQ = 0,
	STORE_CMP_NE,
	STORE_CMP_LT,
	STORE_CMP_GT,
	STORE_CMP_LE,
	STORE_CMP_GE,
	STORE_CMP_SA,
	STORE_CMP_EB,
	STORE_CMP_AP,
};

enum store_mod {
	STORE_MOD_NONE = 0,
	STORE_MOD_NOT,          /* token :not — no row matches (also reference: see below) */
	STORE_MOD_MISSING,      /* :missing=true — no row of this param at all */
	STORE_MOD_PRESENT,      /* :missing=false — some row of this param */
	STORE_MOD_TEXT,         /* token :text — c (display/text) starts with (normalized) */
	STORE_MOD_EXACT,        /* string :exact — b equals exactly */
	STORE_MOD_CONTAINS,     /* string :contains — a contains (normalized) */
	STORE_MOD_OF_TYPE,      /* identifier :of-type — param "<p>:of-type" rows: a,b = type system,code; c = value */
	STORE_MOD_BELOW,        /* uri :below — prefix */
	STORE_MOD_ABOVE,        /* uri :above — the value is a prefix of the parameter */
};

/*
 * One alternative.  Meaning by kind:
 *  TOKEN:     system (NULL: any system; "": no system) and code (NULL: any code).
 *             :text — a = normalized text prefix.
 *  STRING:    a = normalized value: prefix match (default), exact (:exact
 *             compares b with the raw value), contains (:contains).  With
 *             :exact, a may also carry the normalized value: the backend
 *             then narrows by the normalized index first (a is optional).
 *  DATE:      lo..hi inclusive range of the search value, compared with the
 *             row's range by cmp as FHIR defines (eq: row within value; ne;
 *             lt/gt/le/ge: row range intersects the open/closed half-line;
 *             sa: row starts after value ends; eb: row ends before value
 *             starts; ap: the row overlaps the value widened on each side
 *             by a tenth of the gap between the value and now, at least a
 *             day).
 *  REFERENCE: a = target type (NULL: any), b = target id, or c = full URL
 *             when b is NULL; a alone: any reference that is or may be to
 *             that type, i.e. all but those known to be to another type
 *             (with STORE_MOD_NOT, none of them: an alias's :missing).
 *  QUANTITY:  num with nlo..nhi (precision range), cmp; a = system (NULL any),
 *             b = code/unit (NULL any).
 *  NUMBER:    num with nlo..nhi, cmp.  NUMBER and QUANTITY compare the row's
 *             value (not its own precision range): eq nlo <= value < nhi;
 *             lt/le/gt/ge/sa/eb against num; ap within 10% of num or
 *             within nlo..nhi, whichever is wider.
 *  URI:       a = uri (exact, or :below / :above).
 */
struct store_match {
	enum store_cmp cmp;
	const char *a, *b, *c;
	double num, nlo, nhi;
	int64_t lo, hi;
};

struct store_cond {
	enum store_ix kind;
	const char *param;
	enum store_mod mod;
	const struct store_match *m;
	size_t nm;
	/*
	 * Special columns instead of index rows: "_id" (TOKEN, b = the id;
	 * with no modifier, :not or :missing it tests the resource's id) and
	 * "_lastUpdated" (DATE on the resource's last_updated).  These are
	 * recognised by param name.
	 */

	/*
	 * Chaining (Observation?patient.name=x): this cond's kind is REFERENCE
	 * and 'param' a reference parameter; the resource must reference a
	 * resource of 'chain_type' that satisfies 'chain' (one level).
	 */
	const char *chain_type;
	const struct store_cond *chain;

	/*
	 * Reverse chaining (Patient?_has:Observation:patient:code=x): some
	 * resource of 'has_type' whose reference parameter 'has_param' points at
	 * this resource satisfies 'has'.  kind/param/m are unused.
	 */
	const char *has_type;
	const char *has_param;
	const struct store_cond *has;
};

enum store_sort_kind {
	STORE_SORT_ID,           /* resource id */
	STORE_SORT_LAST_UPDATED,
	STORE_SORT_PARAM,        /* by an indexed parameter */
};

struct store_sort {
	enum store_sort_kind by;
	enum store_ix kind;      /* for STORE_SORT_PARAM */
	const char *param;
	bool desc;               /* ascending sorts by the lowest value, descending by the highest */
};

#define STORE_SORT_MAX 4

/* Keyset cursor: the last row of the previous page. */
struct store_cursor {
	bool set;
	int64_t snapshot_rid;     /* only resources with rid <= this */
	int64_t rid;              /* last rid */
	/* sort key values of the last row, as text / integer / real per key */
	struct {
		bool null;
		int64_t i;
		double r;
		char s[256];
	} key[STORE_SORT_MAX];
};

enum store_total { STORE_TOTAL_NONE, STORE_TOTAL_ESTIMATE, STORE_TOTAL_ACCURATE };

struct store_query {
	const char *type;                /* NULL: every type (compartment searches only) */
	const char *const *types;        /* with type NULL: only these types (NULL: all) */
	size_t ntypes;
	const char *patient;             /* compartment: only resources in this patient's record */
	const struct store_cond *conds;
	size_t nconds;
	const struct store_sort *sort;
	size_t nsort;
	int64_t limit;                   /* page size; 0 = count only */
	struct store_cursor cursor;
	/*
	 * Walk backwards from the cursor (for "previous" links): the rows before
	 * it, nearest first; the caller reverses them.  *more then says whether
	 * rows exist before those.
	 */
	bool backward;                   /* needs cursor.set */
	enum store_total total;
	int64_t since;                   /* $everything _since: last_updated >= since (0: none) */
};

/*
 * One match: the resource with its current stored bytes and its keyset
 * position.  Valid during the callback only (the resource is reused).
 * Hits of store_include() and store_revinclude() have pos.set = false.
 */
struct store_hit {
	const struct store_resource *res;
	int64_t rid;
	struct store_cursor pos;         /* cursor that continues after this hit */
};
typedef int (*store_hit_fn)(void *arg, const struct store_hit *hit);

/*
 * Run a search: calls fn for each hit of the page in order (at most
 * q->limit), sets *more when another page exists and *total when
 * q->total asks for it (-1 otherwise).  ERR_INVALID for a query the backend
 * cannot express (message says why; "search too complex" past the size
 * caps), ERR_IO / ERR_BUSY from storage.  limit 0 calls fn for nothing
 * (*more says whether anything matches).  A non-zero return of fn stops
 * the walk and is returned.  fn may read (store_get) but not write or
 * search again (ERR_INVALID).  more and total may be NULL.
 */
enum err store_search(struct store *s, const struct store_query *q, store_hit_fn fn,
		      void *arg, bool *more, int64_t *total, struct ctx *c);

/*
 * The backend's plan for q (SQLite: EXPLAIN QUERY PLAN lines), appended to
 * 'out' one step per line, and the SQL text in 'sql' (may be NULL).  For
 * tests that assert every parameter kind uses an index.
 */
enum err store_search_explain(struct store *s, const struct store_query *q, struct buf *out,
			      struct buf *sql, struct ctx *c);

/*
 * Included resources confined to one patient's record: a resource whose
 * type is one of 'types' is included only when it is in the compartment of
 * 'patient'; resources of other types (shared reference data) as usual.
 * No confinement when the pointer or its patient is NULL.
 */
struct store_confine {
	const char *patient;
	const char *const *types;
	size_t ntypes;
};

/*
 * Targets of reference parameter 'param' (NULL: every reference
 * parameter) of the resources 'rids' (for _include): calls fn with each
 * distinct current, not deleted target resource of type 'target_type'
 * (NULL: any), in rid order, within 'cf' (may be NULL).  src_type (NULL:
 * any) restricts the rows followed to those of resources of that type.
 */
enum err store_include(struct store *s, const int64_t *rids, size_t n, const char *src_type,
		       const char *param, const char *target_type, const struct store_confine *cf,
		       store_hit_fn fn, void *arg, struct ctx *c);

/*
 * Resources of 'src_type' whose reference parameter 'param' (NULL: any)
 * points at one of the resources (type 'target_type', ids 'ids') (for
 * _revinclude): at most 'limit' of them within 'cf' (may be NULL), in rid
 * order, each once.
 */
enum err store_revinclude(struct store *s, const char *target_type, const char *const *ids,
			  size_t n, const char *src_type, const char *param, int64_t limit,
			  const struct store_confine *cf, store_hit_fn fn, void *arg,
			  struct ctx *c);

#endif
