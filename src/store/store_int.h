/*
 * store_int.h - inside the store module only: the backend vtable, the
 * shared part of struct store, and the helpers backends use for the
 * sticky failure state and for test fault injection.
 *
 * store.c validates arguments, enforces the sticky "storage failed" state
 * and dispatches to s->ops; a backend (sqlite.c, later postgres.c) owns
 * everything behind s->be: connections, statements, transactions.
 *
 * Threading: struct store is shared by every thread.  The sticky state and
 * the fault counter are safe to touch from any thread; backend state is the
 * backend's business (one connection per thread for SQLite).
 */
#ifndef VERANDA_STORE_STORE_INT_H
#define VERANDA_STORE_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "store/query.h"
#include "store/store.h"

/*
 * Schema version of this build.  Every backend ships migrations numbered
 * 1..STORE_SCHEMA_VERSION (src/store/schema/<backend>/NNNN_name.sql).
 */
#define STORE_SCHEMA_VERSION 9

/* Largest stored resource a read will return (ERR_TOOBIG beyond). */
#define STORE_JSON_MAX ((size_t)512 << 20)

/*
 * The backend vtable.  Each entry has the contract of the store_* function
 * of the same name in store.h; store.c has already checked the arguments
 * (non-NULL, lengths, ranges) and the sticky failure state.
 *
 * open: 'target' is the URL without its scheme ("PATH" of "sqlite:PATH").
 * Sets s->be; on failure leaves s->be NULL and close is not called.
 * close: releases everything behind s->be (s->be may be NULL).
 */
struct store_ops {
	const char *name;
	enum err (*open)(struct store *s, const char *target, int busy_ms, struct ctx *c);
	void (*close)(struct store *s);
	void (*thread_done)(struct store *s);
	enum err (*migrate)(struct store *s, struct ctx *c);
	enum err (*schema_version)(struct store *s, int *version, struct ctx *c);
	enum err (*ping)(struct store *s, struct ctx *c);
	enum err (*begin)(struct store *s, struct ctx *c);
	enum err (*commit)(struct store *s, struct ctx *c);
	void (*rollback)(struct store *s);
	enum err (*savepoint)(struct store *s, struct ctx *c);
	enum err (*savepoint_end)(struct store *s, bool keep, struct ctx *c);
	enum err (*put)(struct store *s, const struct store_put *p, struct ctx *c);
	enum err (*get)(struct store *s, const char *type, const char *id, int64_t version,
			struct store_resource *out, struct ctx *c);
	/* optional (these two): store.c falls back to get and a compartment query */
	enum err (*get_compartment)(struct store *s, const char *type, const char *id,
				    int64_t version, struct store_resource *out,
				    char (*patients)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
				    struct ctx *c);
	enum err (*get_in)(struct store *s, const char *type, const char *id, int64_t version,
			   const char *patient, struct store_resource *out, bool *in,
			   struct ctx *c);
	enum err (*current_version)(struct store *s, const char *type, const char *id,
				    int64_t *version, bool *deleted, struct ctx *c);
	enum err (*history)(struct store *s, const struct store_history_q *q,
			    store_resource_fn fn, void *arg, bool *more, int64_t *total,
			    struct ctx *c);
	enum err (*count)(struct store *s, const char *type, int64_t *n, struct ctx *c);
	enum err (*last_seq)(struct store *s, int64_t *seq, struct ctx *c);
	enum err (*search)(struct store *s, const struct store_query *q, store_hit_fn fn,
			   void *arg, bool *more, int64_t *total, struct ctx *c);
	enum err (*search_explain)(struct store *s, const struct store_query *q,
				   struct buf *out, struct buf *sql, struct ctx *c);
	/* optional (these two): without them there is no version cache */
	void (*version_cache)(struct store *s, size_t bytes);
	void (*version_cache_stats)(struct store *s, struct store_cache_stats *out);
	enum err (*include)(struct store *s, const int64_t *rids, size_t n, const char *src_type,
			    const char *param, const char *target_type,
			    const struct store_confine *cf, store_hit_fn fn, void *arg,
			    struct ctx *c);
	enum err (*revinclude)(struct store *s, const char *target_type, const char *const *ids,
			       size_t n, const char *src_type, const char *param, int64_t limit,
			       const struct store_confine *cf, store_hit_fn fn, void *arg,
			       struct ctx *c);
	/*
	 * Accounts (store.h).  user_get reads by username when it is non-NULL,
	 * else by uid.  A backend may leave these NULL (ERR_UNSUPPORTED).
	 */
	enum err (*user_insert)(struct store *s, const struct store_user *u, int64_t *uid,
				struct ctx *c);
	enum err (*user_update)(struct store *s, const struct store_user *u, struct ctx *c);
	enum err (*user_get)(struct store *s, const char *username, int64_t uid,
			     struct store_user *out, struct ctx *c);
	enum err (*user_list)(struct store *s, store_user_fn fn, void *arg, struct ctx *c);
	enum err (*user_patients_set)(struct store *s, int64_t uid,
				      const struct store_user_patient *links, size_t n,
				      struct ctx *c);
	enum err (*user_patients)(struct store *s, int64_t uid, struct store_user_patient *out,
				  size_t max, size_t *n, struct ctx *c);
	enum err (*compartment_of)(struct store *s, const char *type, const char *id,
				   char (*out)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
				   struct ctx *c);
	enum err (*in_compartment)(struct store *s, const char *patient, const char *type,
				   const char *id, bool *yes, struct ctx *c);
	/*
	 * Auth items (store.h).  item_set_state: by grp when non-NULL, else
	 * by uid; ns NULL means every namespace.  item_delete: by key when
	 * non-NULL, else every item of ns owned by uid.
	 */
	enum err (*item_put)(struct store *s, const struct store_item *it, bool replace,
			     struct ctx *c);
	enum err (*item_get)(struct store *s, const char *ns, const char *key,
			     struct store_item *out, struct ctx *c);
	enum err (*item_take)(struct store *s, const char *ns, const char *key, int from, int to,
			      struct store_item *out, struct ctx *c);
	enum err (*item_update)(struct store *s, const char *ns, const char *key,
				const char *data, int64_t expires, struct ctx *c);
	enum err (*item_set_state)(struct store *s, const char *ns, int64_t uid, const char *grp,
				   int to, int64_t *n, struct ctx *c);
	enum err (*item_delete)(struct store *s, const char *ns, const char *key, int64_t uid,
				int64_t *n, struct ctx *c);
	enum err (*item_list)(struct store *s, const char *ns, int64_t uid, const char *grp,
			      store_item_fn fn, void *arg, struct ctx *c);
	enum err (*item_purge)(struct store *s, int64_t now, int64_t *n, struct ctx *c);
	enum err (*refold)(struct store *s, store_fold_fn fold, struct ctx *c);
};

extern const struct store_ops store_sqlite_ops;

/* Test fault kinds (see store_test_fault()). */
enum store_fault {
	STORE_FAULT_NONE = 0,
	STORE_FAULT_BUSY,   /* a transient failure: lock not granted */
	STORE_FAULT_IO,     /* a storage failure: sets the sticky state */
};

struct store {
	const struct store_ops *ops;
	void *be;                    /* backend state, owned by ops */

	/* Sticky failure: set once, never cleared while the process lives. */
	atomic_bool failed;
	pthread_mutex_t failed_mu;   /* guards failed_why while it is written */
	char failed_why[256];

	/* Test fault injection: the fault_countdown-th statement fails. */
	atomic_long fault_countdown;
	atomic_int fault_kind;

	/*
	 * The change epoch (store_epoch()): the backend points 'epoch' at a
	 * counter shared with other processes when it can, else it stays
	 * at epoch_own.
	 */
	_Atomic uint64_t *epoch;
	_Atomic uint64_t epoch_own;

	atomic_int search_ms;        /* store_search_time_max(); 0: no limit */
};

/*
 * Map the counter in the first eight bytes of the file at 'path' (created
 * 0600 if missing) shared with every other process that maps it; NULL,
 * with a warning logged, when that cannot be done.  store_epoch_unmap()
 * releases it (NULL is fine).
 */
_Atomic uint64_t *store_epoch_map(const char *path);
/* store_epoch_bump() tells store.c, which bumps again when this thread's transaction ends. */
void store_tx_note_bump(struct store *s);
void store_epoch_unmap(_Atomic uint64_t *w);

/*
 * Record that storage failed ("disk I/O error" or a longer reason): from
 * now on every write and store_ping() fail with ERR_IO.  The first reason
 * is kept.  Thread-safe.
 */
void store_mark_failed(struct store *s, const char *why);

/*
 * Replace r's JSON with the n bytes at json (NULL or 0: empty), for a
 * backend filling a struct store_resource it reads.  ERR_TOOBIG past
 * STORE_JSON_MAX.
 */
enum err store_resource_set_json(struct store_resource *r, const void *json, size_t n);

/*
 * ERR_OK while storage has not failed; else ERR_IO with "storage failed
 * earlier (WHY); writes are refused until restart" on 'c'.  Thread-safe.
 */
enum err store_check_healthy(struct store *s, struct ctx *c);

/*
 * Test hook: the n-th backend statement executed from now on (counted over
 * all threads; n >= 1) fails as 'kind' says, once.  n = 0 or kind =
 * STORE_FAULT_NONE disarms.  Statements that undo work (rollback) are
 * never failed, so every injected failure must end in a clean state.
 */
void store_test_fault(struct store *s, long n, enum store_fault kind);

/*
 * Called by a backend before each statement: STORE_FAULT_NONE normally, the
 * armed fault kind when this is the statement chosen by store_test_fault().
 * Costs one relaxed atomic load when no fault is armed.
 */
enum store_fault store_fault_next(struct store *s);

#endif
