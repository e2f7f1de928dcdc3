/*
 * store.h - the storage interface.  Domain modules see only this header;
 * backends (sqlite.c, later postgres.c) implement struct store_ops and
 * nothing backend-specific crosses this line.
 *
 * Data model: every version of every resource is kept as its JSON bytes
 * (meta already set by the caller) with (type, id, version, last_updated,
 * deleted).  The current version of each resource also has index rows
 * (token, string, date, reference, quantity, number, uri) and compartment
 * rows (the patients whose record it belongs to), written in the same
 * transaction as the resource.
 *
 * Threading: a struct store is shared by all threads; each thread gets its
 * own backend connection on first use (one connection per worker), with its
 * own cached prepared statements.  A transaction belongs to the thread that
 * began it.
 *
 * Every function returns enum err and leaves a message on 'c'.
 */
#ifndef VERANDA_STORE_STORE_H
#define VERANDA_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct store;

/* Schema version this build reads and writes. */
int store_schema_supported(void);

/*
 * Open the store described by 'url' ("sqlite:PATH" or "postgresql://...").
 * Does not migrate.  busy_ms: how long to wait for locks.
 * ERR_IO when the database cannot be opened.
 */
enum err store_open(struct store **out, const char *url, int busy_ms, struct ctx *c);
void store_close(struct store *s);
/* Close the calling thread's connection (call before a worker thread exits). */
void store_thread_done(struct store *s);

/*
 * The change epoch: a counter shared by every process that has the same
 * store open (for SQLite, through a memory map of a file beside the
 * database), so that one process's bump is seen by every other's next
 * store_epoch() at once.  Callers bump it after a change that ends
 * access; caches compare it with the value they last checked at.  A bump
 * inside a transaction is repeated when the transaction ends, so that no
 * one re-checks between the bump and the commit and keeps what it saw.
 * Costs one atomic load or add, no system call.
 */
uint64_t store_epoch(struct store *s);
void store_epoch_bump(struct store *s);

/*
 * Bring the schema to store_schema_supported() with numbered forward
 * migrations, each in one transaction.  A database from a newer schema
 * gives ERR_UNSUPPORTED ("database schema version N is newer than this
 * build supports (M)").
 */
enum err store_migrate(struct store *s, struct ctx *c);
/* The schema version in the database (0 for an empty one). */
enum err store_schema_version(struct store *s, int *version, struct ctx *c);
/* Is the store reachable and its schema current?  (readiness) */
enum err store_ping(struct store *s, struct ctx *c);
/*
 * Has storage failed for good (a failed sync: every write is refused until
 * restart)?  One atomic load; for callers choosing how to answer.
 */
bool store_failed(struct store *s);

/* ---- transactions (per thread; not nestable) ---- */
enum err store_begin(struct store *s, struct ctx *c);
/* Has this thread a transaction open on 's'? */
bool store_in_tx(const struct store *s);
enum err store_commit(struct store *s, struct ctx *c);
void store_rollback(struct store *s);
/*
 * Savepoint inside the current transaction (import: one bad resource must
 * not undo the others).  store_savepoint_end(s, false) rolls back to it.
 */
enum err store_savepoint(struct store *s, struct ctx *c);
enum err store_savepoint_end(struct store *s, bool keep, struct ctx *c);

/* ---- index rows ---- */
enum store_ix {
	STORE_IX_TOKEN,     /* a = system, b = code, c = display/text (for :text) */
	STORE_IX_STRING,    /* a = normalized (lowercase, no accents), b = exact */
	STORE_IX_DATE,      /* lo..hi, milliseconds since epoch, inclusive */
	STORE_IX_REFERENCE, /* a = target type, b = target id, c = url as written */
	STORE_IX_QUANTITY,  /* num = value, lo..hi precision range; a = system, b = code/unit */
	STORE_IX_NUMBER,    /* num = value; lo..hi precision range */
	STORE_IX_URI,       /* a = uri */
};
#define STORE_IX_KINDS 7

struct store_ix_row {
	enum store_ix kind;
	const char *param;   /* search parameter code, e.g. "code" */
	const char *a, *b, *c;
	double num;          /* number / quantity value */
	double nlo, nhi;     /* number / quantity implicit precision range */
	int64_t lo, hi;      /* date range in ms since epoch, inclusive */
};

/* ---- writes ---- */
enum store_op { STORE_PUT, STORE_DELETE };

struct store_put {
	enum store_op op;
	const char *type;
	const char *id;
	/*
	 * Optimistic concurrency: the version the caller read.  0 means "must
	 * not exist yet" (create); -1 means "any" (not checked).  A mismatch
	 * gives ERR_CONFLICT and writes nothing.
	 */
	int64_t expect_version;
	int64_t version;          /* the new version number (expected + 1) */
	int64_t last_updated;     /* ms since epoch */
	const char *json;         /* full resource JSON with meta; NULL on delete */
	size_t json_len;
	const struct store_ix_row *ix; /* current index rows (ignored on delete) */
	size_t nix;
	const char *const *patients;   /* compartment: patient ids */
	size_t npatients;
};

/*
 * Write one resource version.  Runs in the caller's transaction when one is
 * open, else in its own.  On success the version row, the current pointer,
 * the index rows and the compartment rows all change together.
 *
 * Failures: ERR_INVALID (bad arguments) and ERR_CONFLICT (expect_version
 * mismatch, or a version not newer than the current one) write nothing and
 * leave the caller's transaction usable.  A failure after writing started
 * (in practice: storage failed, ERR_IO) leaves nothing outside a
 * transaction; inside one it marks the transaction broken: further writes
 * and store_commit() fail with ERR_IO until store_rollback(), or
 * store_savepoint_end(s, false) of a savepoint taken before the put.
 * So a caller need not wrap each put in a savepoint to keep a refused
 * write out of its transaction.
 */
enum err store_put(struct store *s, const struct store_put *p, struct ctx *c);

/* ---- reads ---- */
#define STORE_PATIENT_ID_SIZE 72   /* a patient id and its NUL */

struct store_resource {
	char type[64];
	char id[72];
	int64_t version;
	int64_t last_updated;
	bool deleted;
	int64_t seq;              /* global write sequence number */
	struct buf json;          /* stored bytes (empty for a delete) */
};

void store_resource_init(struct store_resource *r);
void store_resource_release(struct store_resource *r);

/*
 * Read a resource: version 0 means current.  ERR_NOTFOUND when it never
 * existed (or that version did not); a deleted current version is returned
 * with deleted = true and ERR_OK.
 */
enum err store_get(struct store *s, const char *type, const char *id, int64_t version,
		   struct store_resource *out, struct ctx *c);

/*
 * store_get() that also reads, in the same statement, the patients whose
 * compartment holds the current version of type/id, as
 * store_compartment_of() gives them (id order, at most 'max' into
 * patients[], *n of them; none for a deleted or unknown resource).  One
 * read instead of two on the paths that need both: a patient-confined read
 * and its audit record.
 */
enum err store_get_compartment(struct store *s, const char *type, const char *id,
			       int64_t version, struct store_resource *out,
			       char (*patients)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
			       struct ctx *c);

/*
 * store_get() that also tells, from the same statement, whether the
 * current version of type/id is in patient 'patient''s compartment
 * (*in; as store_in_compartment()).
 */
enum err store_get_in(struct store *s, const char *type, const char *id, int64_t version,
		      const char *patient, struct store_resource *out, bool *in, struct ctx *c);

/* Current version number of a resource; 0 when it never existed. */
enum err store_current_version(struct store *s, const char *type, const char *id,
			       int64_t *version, bool *deleted, struct ctx *c);

/*
 * History, newest first.  type and id may be NULL (system or type level).
 * since: only versions with last_updated >= since (0: all).
 * before_seq: keyset cursor, only versions with seq < before_seq (0: none).
 * Calls fn for at most 'limit' versions; *more is set when another exists.
 * A non-zero return from fn stops the walk and is returned.  The resource
 * passed to fn is reused for the next one (copy what you keep); fn may read
 * with store_get() but not write or walk history (ERR_INVALID).
 */
struct store_history_q {
	const char *type;
	const char *id;
	int64_t since;
	int64_t at_most;          /* last_updated <= at_most (0: no bound): _at / snapshot */
	int64_t before_seq;
	int64_t limit;
};
typedef int (*store_resource_fn)(void *arg, const struct store_resource *r);
enum err store_history(struct store *s, const struct store_history_q *q,
		       store_resource_fn fn, void *arg, bool *more, int64_t *total,
		       struct ctx *c);

/* Number of current (not deleted) resources of 'type' (NULL: all). */
enum err store_count(struct store *s, const char *type, int64_t *n, struct ctx *c);

/* Largest write sequence number so far (0 for an empty store). */
enum err store_last_seq(struct store *s, int64_t *seq, struct ctx *c);

/*
 * Keep up to about 'bytes' of stored versions in memory for search pages
 * (0: none; the default).  A version never changes once committed, so
 * the cache needs no invalidation.  Call once, before other threads use
 * the store (later calls change nothing); a backend without a cache
 * ignores it.
 */
void store_version_cache(struct store *s, size_t bytes);

/*
 * The longest one search may run (store_search() with its count, each
 * store_include() and store_revinclude()), in ms; 0, the default: no
 * limit.  Past it the search stops with ERR_TOOBIG ("it ran longer than
 * the search time limit"), having returned no hit or some.  Thread-safe;
 * applies to searches that start afterwards.
 */
void store_search_time_max(struct store *s, int ms);

struct store_cache_stats {
	uint64_t hits, misses, puts, evictions;
	size_t bytes, entries;
};
/* The version cache's counters (all zero without one). */
void store_version_cache_stats(struct store *s, struct store_cache_stats *out);

/*
 * The patients whose compartment holds the current version of type/id,
 * in id order, into out[0..max); *n gets how many were written.
 */
enum err store_compartment_of(struct store *s, const char *type, const char *id,
			      char (*out)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
			      struct ctx *c);

/*
 * Is the current version of type/id in patient 'patient''s compartment?
 * (false, ERR_OK for an unknown or deleted resource.)  One index probe:
 * the fast path of patient-scoped authorization.
 */
enum err store_in_compartment(struct store *s, const char *patient, const char *type,
			      const char *id, bool *yes, struct ctx *c);

/* ---- user accounts (src/store/users.c, backends: sqlite_users.c) ---- */

/* Field sizes of struct store_user, with their NUL. */
#define STORE_USERNAME_SIZE 65
#define STORE_ROLE_SIZE 16
#define STORE_FHIR_USER_SIZE 160
#define STORE_PHC_SIZE 256
#define STORE_MFA_SECRET_MAX 64

/*
 * One account row.  The store checks sizes and that username and role are
 * non-empty; what a valid username, role or fhir user is, the accounts
 * service (auth/users.h) decides.  username is stored as given: the
 * service lowercases it first.  fhir_user "" is stored as NULL.
 * password_hash and mfa_secret are sensitive: callers wipe the struct
 * (store_user_wipe()) when done with it.
 */
struct store_user {
	int64_t uid;
	char username[STORE_USERNAME_SIZE];
	char role[STORE_ROLE_SIZE];
	char fhir_user[STORE_FHIR_USER_SIZE];   /* "" when none */
	char password_hash[STORE_PHC_SIZE];
	bool disabled;
	int64_t created, updated;                /* ms since epoch */
	int64_t failed_logins;
	int64_t locked_until;                    /* ms since epoch; 0: not locked */
	unsigned char mfa_secret[STORE_MFA_SECRET_MAX];
	size_t mfa_secret_len;                   /* 0: no MFA enrolled */
	int64_t last_strong_auth;                /* ms since epoch; 0: never */
};

/* A patient a user may act for (table user_patient). */
struct store_user_patient {
	char patient_id[72];                     /* Patient id */
	char relationship[32];                   /* "self", "proxy" */
	char related_person[72];                 /* RelatedPerson id; "" for self */
};

/* Zero 'u' in a way the compiler keeps (it holds a hash and maybe a secret). */
void store_user_wipe(struct store_user *u);

/*
 * Insert account 'u' (its uid is ignored) and set *uid to the new one.
 * Runs in the caller's transaction when one is open.  ERR_CONFLICT when
 * the username is taken, ERR_INVALID for empty or oversized fields (or a
 * role the backend refuses).
 */
enum err store_user_insert(struct store *s, const struct store_user *u, int64_t *uid,
			   struct ctx *c);

/*
 * Overwrite every column but uid, username and created of the account
 * u->uid.  ERR_NOTFOUND when there is no such account.
 */
enum err store_user_update(struct store *s, const struct store_user *u, struct ctx *c);

/*
 * Read the account named 'username' (compared as stored: exact bytes) or
 * with uid 'uid' into 'out'.  ERR_NOTFOUND when there is none.
 */
enum err store_user_get(struct store *s, const char *username, struct store_user *out,
			struct ctx *c);
enum err store_user_get_uid(struct store *s, int64_t uid, struct store_user *out,
			    struct ctx *c);

/*
 * Every account in username order.  'fn' gets a struct reused for the
 * next row (password_hash and mfa_secret are left empty: listing never
 * reads them); a non-zero return stops the walk and is returned.  fn must
 * not call the store.
 */
typedef int (*store_user_fn)(void *arg, const struct store_user *u);
enum err store_user_list(struct store *s, store_user_fn fn, void *arg, struct ctx *c);

/*
 * Replace the patients account 'uid' may act for with links[0..n), in one
 * transaction (the caller's when open).  ERR_INVALID for an empty patient
 * id, ERR_CONFLICT when a patient appears twice.
 */
enum err store_user_patients_set(struct store *s, int64_t uid,
				 const struct store_user_patient *links, size_t n,
				 struct ctx *c);

/*
 * The patients account 'uid' may act for, ordered by patient id, into
 * out[0..max); *n is set to how many exist (may exceed max: the rest is
 * not written).
 */
enum err store_user_patients(struct store *s, int64_t uid, struct store_user_patient *out,
			     size_t max, size_t *n, struct ctx *c);

/* ---- auth items (src/store/items.c, backends: sqlite_items.c) ---- */

/*
 * The authorization server's state (schema 0004_auth_items.sql): items
 * keyed by (namespace, key) with an owner uid, a group, a JSON payload,
 * an expiry and a state.  The store reads only the columns; what the
 * payload holds is the auth service's business.
 */
#define STORE_ITEM_NS_SIZE 16
#define STORE_ITEM_KEY_SIZE 200
#define STORE_ITEM_DATA_MAX ((size_t)64 << 10)

enum store_item_state {
	STORE_ITEM_LIVE = 0,
	STORE_ITEM_USED = 1,     /* a consumed code or launch, a rotated refresh token */
	STORE_ITEM_REVOKED = 2,
};

struct store_item {
	char ns[STORE_ITEM_NS_SIZE];
	char key[STORE_ITEM_KEY_SIZE];
	int64_t uid;                      /* 0: none */
	char grp[STORE_ITEM_KEY_SIZE];    /* "": none */
	struct buf data;                  /* JSON text; empty is stored as {} */
	int64_t created;                  /* ms since epoch */
	int64_t expires;                  /* ms since epoch; 0: never */
	int state;                        /* enum store_item_state */
};

/* Initialise (data empty, 'data' capped at STORE_ITEM_DATA_MAX) / release. */
void store_item_init(struct store_item *it);
void store_item_release(struct store_item *it);

/*
 * Insert 'it'.  ERR_CONFLICT when (ns, key) exists and 'replace' is
 * false; with 'replace' an existing item is overwritten.  ERR_INVALID for
 * an empty ns or key, or fields too long.  Runs in the caller's
 * transaction when one is open.
 */
enum err store_item_put(struct store *s, const struct store_item *it, bool replace,
			struct ctx *c);

/*
 * Read (ns, key) into 'out' whatever its state or expiry (the caller
 * decides).  ERR_NOTFOUND when absent.
 */
enum err store_item_get(struct store *s, const char *ns, const char *key,
			struct store_item *out, struct ctx *c);

/*
 * Atomically move (ns, key) from state 'from' to state 'to' and read it
 * into 'out' (may be NULL) as it was before.  ERR_NOTFOUND when absent;
 * ERR_CONFLICT when its state was not 'from' (nothing changes; 'out'
 * still gets the item): of two concurrent takes exactly one succeeds.
 */
enum err store_item_take(struct store *s, const char *ns, const char *key, int from, int to,
			 struct store_item *out, struct ctx *c);

/*
 * Replace the payload and expiry of (ns, key) (data NULL: keep it;
 * expires < 0: keep it).  ERR_NOTFOUND when absent.
 */
enum err store_item_update(struct store *s, const char *ns, const char *key,
			   const char *data, int64_t expires, struct ctx *c);

/*
 * Set the state of every item of namespace 'ns' (NULL: every namespace)
 * owned by 'uid' / in group 'grp'.  *n (may be NULL) gets how many
 * changed.  Items already in state 'to' are left alone.
 */
enum err store_item_set_state_uid(struct store *s, const char *ns, int64_t uid, int to,
				  int64_t *n, struct ctx *c);
enum err store_item_set_state_grp(struct store *s, const char *ns, const char *grp, int to,
				  int64_t *n, struct ctx *c);

/* Delete (ns, key); deleting an absent item succeeds. */
enum err store_item_delete(struct store *s, const char *ns, const char *key, struct ctx *c);
/* Delete every item of namespace 'ns' owned by 'uid'; *n (may be NULL) gets the count. */
enum err store_item_delete_uid(struct store *s, const char *ns, int64_t uid, int64_t *n,
			       struct ctx *c);

/*
 * Walk the items of namespace 'ns' in key order; uid > 0 keeps those
 * owned by uid, grp non-NULL those in group grp.  'fn' gets an item
 * reused for the next one and must not call the store; a non-zero return
 * stops the walk and is returned.
 */
typedef int (*store_item_fn)(void *arg, const struct store_item *it);
enum err store_item_list(struct store *s, const char *ns, int64_t uid, const char *grp,
			 store_item_fn fn, void *arg, struct ctx *c);

/* Delete every item whose expiry is set and before 'now' (ms); *n gets the count. */
enum err store_item_purge(struct store *s, int64_t now, int64_t *n, struct ctx *c);

/* ---- search forms ---- */

/* A folding of text into its search form (fhir_str_normalize()): appends to 'out'. */
typedef enum err (*store_fold_fn)(const char *s, struct buf *out);

/*
 * Fold the stored search forms again with 'fold' (string index values and
 * token texts, each from its earlier folded form), unless the store says
 * folding 'version' has been applied: a folding that reaches more letters
 * then also finds what was written before it.  One write transaction; the
 * version is kept as the auth item ("store", "fold").  ERR_UNSUPPORTED
 * from a backend without it.
 */
enum err store_refold(struct store *s, int version, store_fold_fn fold, struct ctx *c);

#endif
