/*
 * store.c - the storage front: picks a backend by URL scheme, checks
 * arguments, keeps the sticky "storage failed" state and dispatches to the
 * backend's vtable (store_int.h).  Nothing backend-specific lives here.
 *
 * The public contracts are in store.h; the comments here say what this
 * layer adds (argument checks, the sticky state).
 *
 * Ownership: store_open() returns a struct store that store_close() frees.
 * Threading: every function may be called from any thread; per-thread
 * state (connections, transactions) lives in the backend.
 */
#include "store/store_int.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"

/* Sizes of the name fields of struct store_resource (with their NUL). */
#define TYPE_SIZE sizeof(((struct store_resource *)0)->type)
#define ID_SIZE sizeof(((struct store_resource *)0)->id)

/* STORE_SCHEMA_VERSION: every backend ships migrations up to it. */
int store_schema_supported(void)
{
	return STORE_SCHEMA_VERSION;
}

/* ---- sticky failure and fault injection ---- */

/* See store_int.h. */
void store_mark_failed(struct store *s, const char *why)
{
	pthread_mutex_lock(&s->failed_mu);
	if (!atomic_load(&s->failed)) {
		str_copy(s->failed_why, why && *why ? why : "unknown error",
			 sizeof(s->failed_why));
		atomic_store(&s->failed, true);
	}
	pthread_mutex_unlock(&s->failed_mu);
}

bool store_failed(struct store *s)
{
	return atomic_load_explicit(&s->failed, memory_order_acquire);
}

enum err store_check_healthy(struct store *s, struct ctx *c)
{
	char why[sizeof(s->failed_why)];

	if (!store_failed(s))
		return ERR_OK;
	pthread_mutex_lock(&s->failed_mu);
	str_copy(why, s->failed_why, sizeof(why));
	pthread_mutex_unlock(&s->failed_mu);
	return ctx_errorf(c, ERR_IO,
			  "storage failed earlier (%s); writes are refused until restart", why);
}

void store_test_fault(struct store *s, long n, enum store_fault kind)
{
	if (n <= 0 || kind == STORE_FAULT_NONE) {
		atomic_store(&s->fault_countdown, 0);
		atomic_store(&s->fault_kind, STORE_FAULT_NONE);
		return;
	}
	atomic_store(&s->fault_kind, (int)kind);
	atomic_store(&s->fault_countdown, n);
}

enum store_fault store_fault_next(struct store *s)
{
	long n = atomic_load_explicit(&s->fault_countdown, memory_order_relaxed);

	while (n > 0) {
		if (atomic_compare_exchange_weak(&s->fault_countdown, &n, n - 1))
			return n == 1 ? (enum store_fault)atomic_load(&s->fault_kind)
				      : STORE_FAULT_NONE;
	}
	return STORE_FAULT_NONE;
}

/* ---- lifecycle ---- */

/*
 * Open the store named by 'url'.  "sqlite:PATH" opens (creating if needed)
 * the SQLite database at PATH; "postgresql://" and "postgres://" are not
 * available yet (ERR_UNSUPPORTED); anything else is ERR_INVALID.  On
 * success *out owns the store (store_close()); on failure *out is NULL.
 */
enum err store_open(struct store **out, const char *url, int busy_ms, struct ctx *c)
{
	const struct store_ops *ops = NULL;
	const char *target = NULL;
	struct store *s = NULL;
	enum err e;

	*out = NULL;
	if (!url || !*url)
		return ctx_errorf(c, ERR_INVALID, "no store url given");
	if (busy_ms < 0)
		return ctx_errorf(c, ERR_INVALID, "busy timeout %d is negative", busy_ms);
	if (str_starts(url, "sqlite:")) {
		ops = &store_sqlite_ops;
		target = url + strlen("sqlite:");
		if (!*target)
			return ctx_errorf(c, ERR_INVALID, "store url 'sqlite:' names no file");
	} else if (str_starts(url, "postgresql://") || str_starts(url, "postgres://")) {
		/* The URL may hold a password: do not echo it. */
		return ctx_errorf(c, ERR_UNSUPPORTED,
				  "postgresql storage is not available in this build");
	} else {
		size_t n = strcspn(url, ":");
		return ctx_errorf(c, ERR_INVALID, "unknown store url scheme '%.*s'",
				  (int)(n > 32 ? 32 : n), url);
	}

	s = xcalloc(1, sizeof(*s));
	s->ops = ops;
	atomic_init(&s->failed, false);
	atomic_init(&s->fault_countdown, 0);
	atomic_init(&s->fault_kind, STORE_FAULT_NONE);
	atomic_init(&s->epoch_own, 1);
	s->epoch = &s->epoch_own;
	pthread_mutex_init(&s->failed_mu, NULL);
	e = ops->open(s, target, busy_ms, c);
	if (e) {
		pthread_mutex_destroy(&s->failed_mu);
		free(s);
		return e;
	}
	*out = s;
	return ERR_OK;
}

/*
 * Close the store and every thread's connection.  Other threads must have
 * stopped using it (and should have called store_thread_done()).  NULL is
 * fine.
 */
void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->be)
		s->ops->close(s);
	pthread_mutex_destroy(&s->failed_mu);
	free(s);
}

/* Close the calling thread's connection; NULL is fine. */
void store_thread_done(struct store *s)
{
	if (s)
		s->ops->thread_done(s);
}

/* Migrating is a write: refused after a storage failure. */
enum err store_migrate(struct store *s, struct ctx *c)
{
	enum err e = store_check_healthy(s, c);

	return e ? e : s->ops->migrate(s, c);
}

enum err store_schema_version(struct store *s, int *version, struct ctx *c)
{
	*version = 0;
	return s->ops->schema_version(s, version, c);
}

/* Not ready after a storage failure (ERR_IO with the cause), else the backend's check. */
enum err store_ping(struct store *s, struct ctx *c)
{
	enum err e = store_check_healthy(s, c);

	return e ? e : s->ops->ping(s, c);
}

/* ---- transactions ---- */

/*
 * The store whose transaction this thread has open, and whether the epoch
 * was bumped inside it: such a bump is seen by other processes before the
 * change is committed (one re-checking then would find nothing yet), so
 * the transaction's end bumps again (store_epoch_bump()).
 */
static _Thread_local struct store *tx_store;
static _Thread_local bool tx_bumped;

bool store_in_tx(const struct store *s)
{
	return tx_store == s;
}

void store_tx_note_bump(struct store *s)
{
	if (tx_store == s)
		tx_bumped = true;
}

static void tx_ended(struct store *s)
{
	bool bump = tx_store == s && tx_bumped;

	if (tx_store == s) {
		tx_store = NULL;
		tx_bumped = false;
	}
	if (bump)
		store_epoch_bump(s);
}

/* Writes (begin, commit, savepoint, put) are refused after a storage failure. */
enum err store_begin(struct store *s, struct ctx *c)
{
	enum err e = store_check_healthy(s, c);

	if (!e && !(e = s->ops->begin(s, c))) {
		tx_store = s;
		tx_bumped = false;
	}
	return e;
}

/* After a storage failure the transaction is rolled back, not committed. */
enum err store_commit(struct store *s, struct ctx *c)
{
	enum err e = store_check_healthy(s, c);

	if (e)
		s->ops->rollback(s);
	else
		e = s->ops->commit(s, c);
	tx_ended(s);
	return e;
}

void store_rollback(struct store *s)
{
	s->ops->rollback(s);
	tx_ended(s);
}

enum err store_savepoint(struct store *s, struct ctx *c)
{
	enum err e = store_check_healthy(s, c);

	return e ? e : s->ops->savepoint(s, c);
}

/* Undoing to a savepoint is always allowed; keeping it is a write. */
enum err store_savepoint_end(struct store *s, bool keep, struct ctx *c)
{
	if (keep) {
		enum err e = store_check_healthy(s, c);
		if (e)
			return e;
	}
	return s->ops->savepoint_end(s, keep, c);
}

/* ---- writes ---- */

/* Is 's' a non-empty string shorter than 'size' bytes? */
static bool name_ok(const char *s, size_t size)
{
	return s && *s && strnlen(s, size) < size;
}

/* ERR_INVALID unless 'p' is a well-formed write; nothing is touched. */
static enum err check_put(const struct store_put *p, struct ctx *c)
{
	if (p->op != STORE_PUT && p->op != STORE_DELETE)
		return ctx_errorf(c, ERR_INVALID, "unknown store operation %d", (int)p->op);
	if (!name_ok(p->type, TYPE_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource type is missing or too long");
	if (!name_ok(p->id, ID_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource id is missing or too long");
	if (p->expect_version < -1)
		return ctx_errorf(c, ERR_INVALID, "expected version %lld is invalid",
				  (long long)p->expect_version);
	if (p->version < 1 || (p->expect_version >= 0 && p->version != p->expect_version + 1))
		return ctx_errorf(c, ERR_INVALID, "new version %lld does not follow %lld",
				  (long long)p->version, (long long)p->expect_version);
	if (p->op == STORE_PUT && !p->json)
		return ctx_errorf(c, ERR_INVALID, "no resource content to store");
	if (p->op == STORE_DELETE)
		return ERR_OK;
	if (p->nix && !p->ix)
		return ctx_errorf(c, ERR_INVALID, "index rows missing");
	for (size_t i = 0; i < p->nix; i++) {
		const struct store_ix_row *x = &p->ix[i];
		if ((unsigned)x->kind >= STORE_IX_KINDS)
			return ctx_errorf(c, ERR_INVALID, "index row %zu has unknown kind %d", i,
					  (int)x->kind);
		if (!x->param || !*x->param)
			return ctx_errorf(c, ERR_INVALID, "index row %zu names no parameter", i);
		if ((x->kind == STORE_IX_STRING || x->kind == STORE_IX_URI) && !x->a)
			return ctx_errorf(c, ERR_INVALID, "index row %zu ('%s') has no value", i,
					  x->param);
		if ((x->kind == STORE_IX_NUMBER || x->kind == STORE_IX_QUANTITY) && isnan(x->num))
			return ctx_errorf(c, ERR_INVALID, "index row %zu ('%s') is not a number", i,
					  x->param);
	}
	if (p->npatients && !p->patients)
		return ctx_errorf(c, ERR_INVALID, "compartment patients missing");
	for (size_t i = 0; i < p->npatients; i++)
		if (!p->patients[i] || !*p->patients[i])
			return ctx_errorf(c, ERR_INVALID, "compartment patient %zu is empty", i);
	return ERR_OK;
}

/* Checks the put (ERR_INVALID), then the sticky state, then writes. */
enum err store_put(struct store *s, const struct store_put *p, struct ctx *c)
{
	enum err e = check_put(p, c);

	if (e)
		return e;
	e = store_check_healthy(s, c);
	return e ? e : s->ops->put(s, p, c);
}

/* ---- reads ---- */

/* An empty resource whose json buffer holds up to STORE_JSON_MAX bytes. */
void store_resource_init(struct store_resource *r)
{
	r->type[0] = '\0';
	r->id[0] = '\0';
	r->version = 0;
	r->last_updated = 0;
	r->deleted = false;
	r->seq = 0;
	buf_init(&r->json, STORE_JSON_MAX);
}

/* Free the json bytes; 'r' stays usable. */
void store_resource_release(struct store_resource *r)
{
	buf_release(&r->json);
}

enum err store_resource_set_json(struct store_resource *r, const void *json, size_t n)
{
	/* buf_reset() would write to the shared empty buffer: skip when unallocated. */
	if (r->json.cap)
		buf_reset(&r->json);
	r->json.err = ERR_OK;
	return json && n ? buf_add(&r->json, json, n) : ERR_OK;
}

/* ERR_INVALID unless type and id are non-empty and fit struct store_resource. */
static enum err check_ref(const char *type, const char *id, struct ctx *c)
{
	if (!name_ok(type, TYPE_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource type is missing or too long");
	if (!name_ok(id, ID_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource id is missing or too long");
	return ERR_OK;
}

/* The arguments every read takes: a type, an id and a version (0: current). */
static enum err check_get(const char *type, const char *id, int64_t version, struct ctx *c)
{
	enum err e = check_ref(type, id, c);

	if (!e && version < 0)
		e = ctx_errorf(c, ERR_INVALID, "version %lld is invalid", (long long)version);
	return e;
}

enum err store_get(struct store *s, const char *type, const char *id, int64_t version,
		   struct store_resource *out, struct ctx *c)
{
	enum err e = check_get(type, id, version, c);

	return e ? e : s->ops->get(s, type, id, version, out, c);
}

enum err store_get_compartment(struct store *s, const char *type, const char *id,
			       int64_t version, struct store_resource *out,
			       char (*patients)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
			       struct ctx *c)
{
	enum err e = check_get(type, id, version, c);

	*n = 0;
	if (e)
		return e;
	if (s->ops->get_compartment)
		return s->ops->get_compartment(s, type, id, version, out, patients, max, n, c);
	if ((e = s->ops->get(s, type, id, version, out, c)))
		return e;
	return store_compartment_of(s, type, id, patients, max, n, c);
}

enum err store_get_in(struct store *s, const char *type, const char *id, int64_t version,
		      const char *patient, struct store_resource *out, bool *in, struct ctx *c)
{
	enum err e = check_get(type, id, version, c);

	*in = false;
	if (e)
		return e;
	if (!patient || !*patient)
		return ctx_errorf(c, ERR_INVALID, "compartment check needs a patient");
	if (s->ops->get_in)
		return s->ops->get_in(s, type, id, version, patient, out, in, c);
	if ((e = s->ops->get(s, type, id, version, out, c)))
		return e;
	return store_in_compartment(s, patient, type, id, in, c);
}

enum err store_current_version(struct store *s, const char *type, const char *id,
			       int64_t *version, bool *deleted, struct ctx *c)
{
	enum err e;

	*version = 0;
	if (deleted)
		*deleted = false;
	e = check_ref(type, id, c);
	return e ? e : s->ops->current_version(s, type, id, version, deleted, c);
}

/* Largest page store_history() serves. */
#define HISTORY_LIMIT_MAX 100000

enum err store_history(struct store *s, const struct store_history_q *q,
		       store_resource_fn fn, void *arg, bool *more, int64_t *total,
		       struct ctx *c)
{
	if (more)
		*more = false;
	if (total)
		*total = 0;
	if (q->id && !q->type)
		return ctx_errorf(c, ERR_INVALID, "history of an id needs a type");
	if (q->type && !name_ok(q->type, TYPE_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource type is too long");
	if (q->id && !name_ok(q->id, ID_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource id is too long");
	if (q->limit < 0 || q->limit > HISTORY_LIMIT_MAX)
		return ctx_errorf(c, ERR_INVALID, "history page size %lld is out of range",
				  (long long)q->limit);
	if (q->before_seq < 0)
		return ctx_errorf(c, ERR_INVALID, "history cursor %lld is invalid",
				  (long long)q->before_seq);
	return s->ops->history(s, q, fn, arg, more, total, c);
}

enum err store_count(struct store *s, const char *type, int64_t *n, struct ctx *c)
{
	*n = 0;
	if (type && !name_ok(type, TYPE_SIZE))
		return ctx_errorf(c, ERR_INVALID, "resource type is too long");
	return s->ops->count(s, type, n, c);
}

enum err store_last_seq(struct store *s, int64_t *seq, struct ctx *c)
{
	*seq = 0;
	return s->ops->last_seq(s, seq, c);
}

void store_version_cache(struct store *s, size_t bytes)
{
	if (s->ops->version_cache)
		s->ops->version_cache(s, bytes);
}

void store_search_time_max(struct store *s, int ms)
{
	atomic_store(&s->search_ms, ms > 0 ? ms : 0);
}

void store_version_cache_stats(struct store *s, struct store_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (s->ops->version_cache_stats)
		s->ops->version_cache_stats(s, out);
}

enum err store_in_compartment(struct store *s, const char *patient, const char *type,
			      const char *id, bool *yes, struct ctx *c)
{
	*yes = false;
	if (!patient || !*patient || !type || !*type || !id || !*id)
		return ctx_errorf(c, ERR_INVALID, "compartment check needs a patient, a type and an id");
	if (!s->ops->in_compartment)
		return ctx_errorf(c, ERR_UNSUPPORTED, "the %s store has no compartment check",
				  s->ops->name);
	return s->ops->in_compartment(s, patient, type, id, yes, c);
}

enum err store_compartment_of(struct store *s, const char *type, const char *id,
			      char (*out)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
			      struct ctx *c)
{
	*n = 0;
	if (!type || !*type || !id || !*id)
		return ctx_errorf(c, ERR_INVALID, "compartment lookup needs a type and an id");
	if (!s->ops->compartment_of)
		return ctx_errorf(c, ERR_UNSUPPORTED, "the %s store has no compartment lookup",
				  s->ops->name);
	return s->ops->compartment_of(s, type, id, out, max, n, c);
}

/* ---- search forms ---- */

#define FOLD_NS "store"
#define FOLD_KEY "fold"

/* The folding version the store says was applied (0: none recorded). */
static int fold_version(struct store *s, struct ctx *c)
{
	struct store_item it;
	const char *v;
	int n = 0;

	store_item_init(&it);
	if (!store_item_get(s, FOLD_NS, FOLD_KEY, &it, c) && it.data.data &&
	    (v = strstr(it.data.data, "\"version\":")) != NULL)
		for (v += 10; *v >= '0' && *v <= '9' && n < 100000; v++)
			n = n * 10 + (*v - '0');
	store_item_release(&it);
	return n;
}

enum err store_refold(struct store *s, int version, store_fold_fn fold, struct ctx *c)
{
	struct ctx ig = CTX_INIT;
	struct store_item it;
	enum err e;

	if (!s->ops->refold || !s->ops->item_put)
		return ctx_errorf(c, ERR_UNSUPPORTED, "the %s store cannot fold its search forms again",
				  s->ops->name);
	if (fold_version(s, &ig) >= version)
		return ERR_OK;
	if ((e = store_begin(s, c)))
		return e;
	store_item_init(&it);
	str_copy(it.ns, FOLD_NS, sizeof(it.ns));
	str_copy(it.key, FOLD_KEY, sizeof(it.key));
	buf_addf(&it.data, "{\"version\":%d}", version);
	/* another process may have done it meanwhile: then this finds nothing to change */
	e = s->ops->refold(s, fold, c);
	if (!e)
		e = store_item_put(s, &it, true, c);
	store_item_release(&it);
	if (e) {
		store_rollback(s);
		return e;
	}
	return store_commit(s, c);
}
