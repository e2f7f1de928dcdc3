/*
 * sqlite_int.h - inside the SQLite backend only: what sqlite.c (connections,
 * cached fixed statements, transactions, writes) shares with
 * sqlite_search.c (search statements built per query).
 *
 * A struct conn is one thread's connection; it stays opaque here and is
 * reached through the sq_conn_*() accessors.  Every function below must be
 * called on the thread that owns the connection.
 *
 * Statements: a struct q is one use of a prepared statement.  The sq_bind_*
 * helpers keep the first failure in q->rc, sq_step() runs the store's fault
 * hook before SQLite (so injected failures reach search statements too) and
 * sq_end() resets the statement and drops its bindings.
 */
#ifndef VERANDA_STORE_SQLITE_INT_H
#define VERANDA_STORE_SQLITE_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/query.h"
#include "store/store_int.h"

struct conn;
struct sq_search;

/* One use of a prepared statement (see the file comment). */
struct q {
	struct conn *cn;
	sqlite3_stmt *st;
	int rc;
};

/*
 * The calling thread's connection, opened on first use; the store keeps
 * ownership.  ERR_IO when a new connection cannot be opened.
 */
enum err sq_conn_get(struct store *s, struct conn **out, struct ctx *c);
sqlite3 *sq_conn_db(struct conn *cn);
/*
 * Enter (+1) or leave (-1) a callback walk (history, search, include):
 * writes and nested walks are refused while one is running.  Returns the
 * depth before the change.
 */
int sq_conn_walk(struct conn *cn, int delta);
/*
 * Start (on) or end the search time limit (store_search_time_max()) of
 * the connection's statements: past it a step returns SQLITE_INTERRUPT,
 * which sq_fail() makes ERR_TOOBIG.
 */
void sq_conn_deadline(struct conn *cn, bool on);
/* The store's version cache (NULL: none), and whether this connection may fill it. */
struct vcache *sq_conn_vcache(struct conn *cn);
bool sq_conn_may_cache(struct conn *cn);
/* The connection's search state slot (sqlite_search.c owns what it holds). */
struct sq_search **sq_conn_search(struct conn *cn);

/* Remember SQLite's message for failure 'rc' before a reset replaces it. */
void sq_note_error(struct conn *cn, int rc);
/*
 * Turn failure 'rc' into an enum err with "WHAT: reason" on 'c' (ERR_BUSY,
 * ERR_CONFLICT, ERR_TOOBIG or ERR_IO; a storage failure also sets the
 * store's sticky state).
 */
enum err sq_fail(struct conn *cn, int rc, struct ctx *c, const char *what);

void sq_bind_text(struct q *q, int i, const char *s);   /* NULL binds NULL */
void sq_bind_int(struct q *q, int i, int64_t v);
void sq_bind_real(struct q *q, int i, double v);
/* SQLITE_ROW, SQLITE_DONE or a failure (noted on the connection, kept in q->rc). */
int sq_step(struct q *q);
void sq_end(struct q *q);

/*
 * Copy a row whose first seven columns are type, id, version,
 * last_updated, deleted, seq, json into 'r' (its json buffer is reused).
 * ERR_TOOBIG past STORE_JSON_MAX.
 */
enum err sq_read_row(sqlite3_stmt *st, struct store_resource *r, struct ctx *c);

/*
 * Is 'param' a token parameter that ix_patient_token (schema 6) holds:
 * 'category' or 'code'?  The writer (sqlite.c) and the planner
 * (sqlite_search.c) ask the same question; the table's SQL in
 * 0006_patient_token.sql and ST_INS_PATIENT_TOKEN names the same two.
 */
bool sq_patient_token_param(const char *param);

/*
 * A read transaction around several statements that must agree (a count
 * and its page): *began says whether one was started (not inside the
 * caller's transaction); sq_read_end() finishes it.
 */
enum err sq_read_begin(struct conn *cn, bool *began, struct ctx *c);
void sq_read_end(struct conn *cn, bool began);

/* ---- sqlite_search.c ---- */

/* Free a connection's search state (cached statements); NULL is fine. */
void sq_search_free(struct sq_search *ss);

/* store_ops entries: the contracts of store_search() etc. in query.h. */
enum err sqlite_search(struct store *s, const struct store_query *q, store_hit_fn fn, void *arg,
		       bool *more, int64_t *total, struct ctx *c);
enum err sqlite_search_explain(struct store *s, const struct store_query *q, struct buf *out,
			       struct buf *sql, struct ctx *c);
enum err sqlite_include(struct store *s, const int64_t *rids, size_t n, const char *src_type,
			const char *param, const char *target_type, const struct store_confine *cf,
			store_hit_fn fn, void *arg, struct ctx *c);
enum err sqlite_revinclude(struct store *s, const char *target_type, const char *const *ids,
			   size_t n, const char *src_type, const char *param, int64_t limit,
			   const struct store_confine *cf, store_hit_fn fn, void *arg,
			   struct ctx *c);

/* ---- statements of the account and auth-item backends ---- */

/*
 * The statement for 'sql', which must be a string constant: its address
 * keys a small per-connection cache (sqlite.c), so each text is prepared
 * once per connection, not per call.  A failure is kept in q.rc (and
 * noted).  When the cached statement is already running (a callback of its
 * own walk), a fresh one is prepared for this use.
 */
struct q sq_once(struct conn *cn, const char *sql);
/* Done with q's statement: reset it for the next use (or finalize a fresh one). */
void sq_once_end(struct q *q);
/* Step a statement that returns no row: SQLITE_OK or the failure. */
int sq_run(struct q *q);
/* Copy text column 'i' into dst[size] ("" for NULL). */
void sq_col_text(sqlite3_stmt *st, int i, char *dst, size_t size);
/*
 * Start a write: its own transaction when none is open (*own = true),
 * else a savepoint in the caller's.  Refused inside a walk.
 */
enum err sq_write_begin(struct store *s, struct conn *cn, bool *own, struct ctx *c);
/* Finish a write begun by sq_write_begin(): keep it when e is ERR_OK. */
enum err sq_write_end(struct store *s, bool own, enum err e, struct ctx *c);

/* ---- sqlite_users.c ---- */

/* store_ops entries: the contracts of store_user_*() in store.h. */
enum err sqlite_user_insert(struct store *s, const struct store_user *u, int64_t *uid,
			    struct ctx *c);
enum err sqlite_user_update(struct store *s, const struct store_user *u, struct ctx *c);
enum err sqlite_user_get(struct store *s, const char *username, int64_t uid,
			 struct store_user *out, struct ctx *c);
enum err sqlite_user_list(struct store *s, store_user_fn fn, void *arg, struct ctx *c);
enum err sqlite_user_patients_set(struct store *s, int64_t uid,
				  const struct store_user_patient *links, size_t n,
				  struct ctx *c);
enum err sqlite_user_patients(struct store *s, int64_t uid, struct store_user_patient *out,
			      size_t max, size_t *n, struct ctx *c);

/* ---- sqlite_items.c: the item_* entries of store_ops (contracts in store_int.h) ---- */

enum err sqlite_item_put(struct store *s, const struct store_item *it, bool replace,
			 struct ctx *c);
enum err sqlite_item_get(struct store *s, const char *ns, const char *key,
			 struct store_item *out, struct ctx *c);
enum err sqlite_item_take(struct store *s, const char *ns, const char *key, int from, int to,
			  struct store_item *out, struct ctx *c);
enum err sqlite_item_update(struct store *s, const char *ns, const char *key, const char *data,
			    int64_t expires, struct ctx *c);
enum err sqlite_item_set_state(struct store *s, const char *ns, int64_t uid, const char *grp,
			       int to, int64_t *n, struct ctx *c);
enum err sqlite_item_delete(struct store *s, const char *ns, const char *key, int64_t uid,
			    int64_t *n, struct ctx *c);
enum err sqlite_item_list(struct store *s, const char *ns, int64_t uid, const char *grp,
			  store_item_fn fn, void *arg, struct ctx *c);
enum err sqlite_item_purge(struct store *s, int64_t now, int64_t *n, struct ctx *c);

#endif
