/*
 * sqlite_items.c - auth items in the SQLite backend: the item_* entries
 * of struct store_ops over the table of migration 0004 (auth_items).
 *
 * Statements are prepared per call (sqlite_users.c explains why that is
 * cheap enough next to the work around them).  Writes go through the
 * backend's transaction entries, so they queue on the store's write lock;
 * inside the caller's transaction they run under a savepoint.
 *
 * Threading: as sqlite.c, every call uses the calling thread's connection.
 */
#include <sqlite3.h>
#include <string.h>

#include "core/str.h"
#include "store/sqlite_int.h"

#define ITEM_COLS "ns, key, uid, grp, data, created, expires, state"

/* Fill 'it' from a row of ITEM_COLS. */
static enum err read_item(sqlite3_stmt *st, struct store_item *it, struct ctx *c)
{
	const void *data = sqlite3_column_text(st, 4);
	int n = sqlite3_column_bytes(st, 4);

	sq_col_text(st, 0, it->ns, sizeof(it->ns));
	sq_col_text(st, 1, it->key, sizeof(it->key));
	it->uid = sqlite3_column_int64(st, 2);
	sq_col_text(st, 3, it->grp, sizeof(it->grp));
	it->created = sqlite3_column_int64(st, 5);
	it->expires = sqlite3_column_int64(st, 6);
	it->state = sqlite3_column_int(st, 7);
	buf_reset(&it->data);
	if (buf_add(&it->data, data ? data : "", (size_t)n))
		return ctx_errorf(c, ERR_TOOBIG, "stored item is larger than %zu bytes", it->data.max);
	return ERR_OK;
}

/* Run a write statement 'sql' after 'bind' filled it; *changes gets the row count. */
static enum err item_write(struct store *s, const char *what, const char *sql,
			   void (*bind)(struct q *q, const void *arg), const void *arg,
			   int64_t *changes, struct ctx *c)
{
	struct conn *cn;
	struct q q;
	bool own;
	enum err e;
	int rc;

	if ((e = sq_conn_get(s, &cn, c)) || (e = sq_write_begin(s, cn, &own, c)))
		return e;
	q = sq_once(cn, sql);
	bind(&q, arg);
	rc = sq_run(&q);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
		e = ctx_errorf(c, ERR_CONFLICT, "%s: the item exists", what);
	else if (rc != SQLITE_OK)
		e = sq_fail(cn, rc, c, what);
	else if (changes)
		*changes = sqlite3_changes(sq_conn_db(cn));
	sq_once_end(&q);
	return sq_write_end(s, own, e, c);
}

static void bind_put(struct q *q, const void *arg)
{
	const struct store_item *it = arg;

	sq_bind_text(q, 1, it->ns);
	sq_bind_text(q, 2, it->key);
	if (it->uid > 0)
		sq_bind_int(q, 3, it->uid);
	sq_bind_text(q, 4, it->grp[0] ? it->grp : NULL);
	if (q->rc == SQLITE_OK) {
		const char *d = it->data.len ? it->data.data : "{}";
		size_t n = it->data.len ? it->data.len : 2;
		q->rc = sqlite3_bind_text64(q->st, 5, d, n, SQLITE_STATIC, SQLITE_UTF8);
	}
	sq_bind_int(q, 6, it->created);
	sq_bind_int(q, 7, it->expires);
	sq_bind_int(q, 8, it->state);
}

enum err sqlite_item_put(struct store *s, const struct store_item *it, bool replace,
			 struct ctx *c)
{
	return item_write(s, "cannot store an auth item",
			  replace ? "INSERT OR REPLACE INTO auth_items (" ITEM_COLS ")"
				    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
				  : "INSERT INTO auth_items (" ITEM_COLS ")"
				    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
			  bind_put, it, NULL, c);
}

/* Read (ns, key) on connection 'cn': ERR_NOTFOUND when absent. */
static enum err get_on(struct conn *cn, const char *ns, const char *key, struct store_item *out,
		       struct ctx *c)
{
	struct q q;
	enum err e = ERR_OK;
	int rc;

	q = sq_once(cn, "SELECT " ITEM_COLS " FROM auth_items WHERE ns = ?1 AND key = ?2");
	sq_bind_text(&q, 1, ns);
	sq_bind_text(&q, 2, key);
	rc = sq_step(&q);
	if (rc == SQLITE_ROW)
		e = out ? read_item(q.st, out, c) : ERR_OK;
	else if (rc == SQLITE_DONE)
		e = ctx_errorf(c, ERR_NOTFOUND, "no such %s", ns);
	else
		e = sq_fail(cn, rc, c, "cannot read an auth item");
	sq_once_end(&q);
	return e;
}

enum err sqlite_item_get(struct store *s, const char *ns, const char *key,
			 struct store_item *out, struct ctx *c)
{
	struct conn *cn;
	enum err e;

	if ((e = sq_conn_get(s, &cn, c)))
		return e;
	return get_on(cn, ns, key, out, c);
}

enum err sqlite_item_take(struct store *s, const char *ns, const char *key, int from, int to,
			  struct store_item *out, struct ctx *c)
{
	struct store_item tmp;
	struct store_item *it = out ? out : &tmp;
	struct conn *cn;
	struct q q;
	bool own;
	enum err e;
	int rc;

	if (!out)
		store_item_init(&tmp);
	if ((e = sq_conn_get(s, &cn, c)) || (e = sq_write_begin(s, cn, &own, c)))
		goto done;
	/* under the write lock: read, then change only if the state is 'from' */
	e = get_on(cn, ns, key, it, c);
	if (!e && it->state != from) {
		e = ctx_errorf(c, ERR_CONFLICT, "this %s was already used or revoked", ns);
	} else if (!e) {
		q = sq_once(cn, "UPDATE auth_items SET state = ?3 WHERE ns = ?1 AND key = ?2");
		sq_bind_text(&q, 1, ns);
		sq_bind_text(&q, 2, key);
		sq_bind_int(&q, 3, to);
		if ((rc = sq_run(&q)) != SQLITE_OK)
			e = sq_fail(cn, rc, c, "cannot update an auth item");
		sq_once_end(&q);
	}
	/* a refused take changes nothing, but its read is still good to keep */
	if (e == ERR_CONFLICT || e == ERR_NOTFOUND) {
		enum err e2 = sq_write_end(s, own, ERR_OK, NULL);
		if (e2)
			e = e2;
	} else {
		e = sq_write_end(s, own, e, c);
	}
done:
	if (!out)
		store_item_release(&tmp);
	return e;
}

struct upd {
	const char *ns, *key, *data, *grp;
	int64_t expires, uid;
	int to;
};

static void bind_update(struct q *q, const void *arg)
{
	const struct upd *u = arg;

	sq_bind_text(q, 1, u->ns);
	sq_bind_text(q, 2, u->key);
	sq_bind_text(q, 3, u->data);
	sq_bind_int(q, 4, u->expires);
}

enum err sqlite_item_update(struct store *s, const char *ns, const char *key, const char *data,
			    int64_t expires, struct ctx *c)
{
	struct upd u = {.ns = ns, .key = key, .data = data, .expires = expires};
	int64_t n = 0;
	enum err e;

	e = item_write(s, "cannot update an auth item",
		       "UPDATE auth_items SET data = coalesce(?3, data),"
		       " expires = CASE WHEN ?4 < 0 THEN expires ELSE ?4 END"
		       " WHERE ns = ?1 AND key = ?2",
		       bind_update, &u, &n, c);
	if (!e && n == 0)
		e = ctx_errorf(c, ERR_NOTFOUND, "no such %s", ns);
	return e;
}

static void bind_state(struct q *q, const void *arg)
{
	const struct upd *u = arg;

	sq_bind_text(q, 1, u->ns);
	if (u->grp)
		sq_bind_text(q, 2, u->grp);
	else
		sq_bind_int(q, 2, u->uid);
	sq_bind_int(q, 3, u->to);
}

enum err sqlite_item_set_state(struct store *s, const char *ns, int64_t uid, const char *grp,
			       int to, int64_t *n, struct ctx *c)
{
	struct upd u = {.ns = ns, .uid = uid, .grp = grp, .to = to};

	return item_write(s, "cannot change auth items",
			  grp ? "UPDATE auth_items SET state = ?3 WHERE grp = ?2"
				" AND (?1 IS NULL OR ns = ?1) AND state <> ?3"
			      : "UPDATE auth_items SET state = ?3 WHERE uid = ?2"
				" AND (?1 IS NULL OR ns = ?1) AND state <> ?3",
			  bind_state, &u, n, c);
}

static void bind_delete(struct q *q, const void *arg)
{
	const struct upd *u = arg;

	sq_bind_text(q, 1, u->ns);
	if (u->key)
		sq_bind_text(q, 2, u->key);
	else
		sq_bind_int(q, 2, u->uid);
}

enum err sqlite_item_delete(struct store *s, const char *ns, const char *key, int64_t uid,
			    int64_t *n, struct ctx *c)
{
	struct upd u = {.ns = ns, .key = key, .uid = uid};

	return item_write(s, "cannot delete auth items",
			  key ? "DELETE FROM auth_items WHERE ns = ?1 AND key = ?2"
			      : "DELETE FROM auth_items WHERE ns = ?1 AND uid = ?2",
			  bind_delete, &u, n, c);
}

static void bind_purge(struct q *q, const void *arg)
{
	sq_bind_int(q, 1, *(const int64_t *)arg);
}

enum err sqlite_item_purge(struct store *s, int64_t now, int64_t *n, struct ctx *c)
{
	return item_write(s, "cannot purge auth items",
			  "DELETE FROM auth_items WHERE expires > 0 AND expires < ?1", bind_purge,
			  &now, n, c);
}

enum err sqlite_item_list(struct store *s, const char *ns, int64_t uid, const char *grp,
			  store_item_fn fn, void *arg, struct ctx *c)
{
	struct store_item it;
	struct conn *cn;
	struct q q;
	enum err e;
	int rc, stop = 0;

	if ((e = sq_conn_get(s, &cn, c)))
		return e;
	if (sq_conn_walk(cn, 0) > 0)
		return ctx_errorf(c, ERR_INVALID, "cannot list auth items from inside a walk");
	store_item_init(&it);
	q = sq_once(cn, "SELECT " ITEM_COLS " FROM auth_items WHERE ns = ?1"
			" AND (?2 <= 0 OR uid = ?2) AND (?3 IS NULL OR grp = ?3) ORDER BY key");
	sq_bind_text(&q, 1, ns);
	sq_bind_int(&q, 2, uid);
	sq_bind_text(&q, 3, grp);
	sq_conn_walk(cn, 1);
	while ((rc = sq_step(&q)) == SQLITE_ROW) {
		if ((e = read_item(q.st, &it, c)))
			break;
		if ((stop = fn(arg, &it)))
			break;
	}
	sq_conn_walk(cn, -1);
	if (!e && !stop && rc != SQLITE_DONE)
		e = sq_fail(cn, rc, c, "cannot list auth items");
	sq_once_end(&q);
	store_item_release(&it);
	return e ? e : (enum err)stop;
}
