/*
 * sqlite_users.c - accounts in the SQLite backend: the user_* entries of
 * struct store_ops over the tables of migration 0003 (users,
 * user_patient).
 *
 * Statements are prepared per call rather than cached on the connection:
 * every account operation on the sign-in path is dominated by an Argon2id
 * hash (~20 ms) next to which a prepare (~20 us) does not show, and the
 * connection's statement table belongs to sqlite.c.
 *
 * Writes go through the backend's own transaction entries (s->ops->begin,
 * savepoint, commit), so they queue on the store's write lock like every
 * other write: outside a transaction each write is its own BEGIN IMMEDIATE
 * ... COMMIT; inside the caller's it runs under a savepoint, so a refused
 * or failed write leaves the caller's transaction as it was.
 *
 * Threading: as sqlite.c, every call uses the calling thread's connection.
 */
#include <sqlite3.h>
#include <string.h>

#include "core/str.h"
#include "store/sqlite_int.h"

#define USER_COLS                                                                       \
	"uid, username, role, fhir_user, password_hash, disabled, created, updated,"     \
	" failed_logins, locked_until, mfa_secret, last_strong_auth"

/* Bind a blob (NULL or empty binds NULL); keeps the first failure. */
static void uq_blob(struct q *q, int i, const void *p, size_t n)
{
	int rc;

	if (q->rc != SQLITE_OK)
		return;
	rc = p && n ? sqlite3_bind_blob64(q->st, i, p, n, SQLITE_STATIC) : sqlite3_bind_null(q->st, i);
	if (rc != SQLITE_OK) {
		q->rc = rc;
		sq_note_error(q->cn, rc);
	}
}

/* sqlite_int.h */
int sq_run(struct q *q)
{
	int rc = sq_step(q);

	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* sqlite_int.h */
void sq_col_text(sqlite3_stmt *st, int i, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	str_copy(dst, t ? (const char *)t : "", size);
}

/* Fill 'u' from a row of USER_COLS; secrets only when 'secrets'. */
static void read_user(sqlite3_stmt *st, struct store_user *u, bool secrets)
{
	const void *blob;
	int n;

	store_user_wipe(u);
	u->uid = sqlite3_column_int64(st, 0);
	sq_col_text(st, 1, u->username, sizeof(u->username));
	sq_col_text(st, 2, u->role, sizeof(u->role));
	sq_col_text(st, 3, u->fhir_user, sizeof(u->fhir_user));
	if (secrets)
		sq_col_text(st, 4, u->password_hash, sizeof(u->password_hash));
	u->disabled = sqlite3_column_int(st, 5) != 0;
	u->created = sqlite3_column_int64(st, 6);
	u->updated = sqlite3_column_int64(st, 7);
	u->failed_logins = sqlite3_column_int64(st, 8);
	u->locked_until = sqlite3_column_int64(st, 9);
	if (secrets) {
		blob = sqlite3_column_blob(st, 10);
		n = sqlite3_column_bytes(st, 10);
		if (blob && n > 0 && (size_t)n <= sizeof(u->mfa_secret)) {
			memcpy(u->mfa_secret, blob, (size_t)n);
			u->mfa_secret_len = (size_t)n;
		}
	}
	u->last_strong_auth = sqlite3_column_int64(st, 11);
}

/* sqlite_int.h */
enum err sq_write_begin(struct store *s, struct conn *cn, bool *own, struct ctx *c)
{
	if (sq_conn_walk(cn, 0) > 0)
		return ctx_errorf(c, ERR_INVALID, "cannot write from inside a walk");
	*own = sqlite3_get_autocommit(sq_conn_db(cn)) != 0;
	return *own ? s->ops->begin(s, c) : s->ops->savepoint(s, c);
}

/* sqlite_int.h */
enum err sq_write_end(struct store *s, bool own, enum err e, struct ctx *c)
{
	if (own) {
		if (e) {
			s->ops->rollback(s);
			return e;
		}
		return s->ops->commit(s, c);
	}
	if (e) {
		s->ops->savepoint_end(s, false, NULL);
		return e;
	}
	return s->ops->savepoint_end(s, true, c);
}

/* Bind the mutable columns of 'u' at ?3..?12 (see the statements below). */
static void bind_user(struct q *q, const struct store_user *u)
{
	sq_bind_text(q, 3, u->role);
	sq_bind_text(q, 4, u->fhir_user[0] ? u->fhir_user : NULL);
	sq_bind_text(q, 5, u->password_hash);
	sq_bind_int(q, 6, u->disabled);
	sq_bind_int(q, 7, u->created);
	sq_bind_int(q, 8, u->updated);
	sq_bind_int(q, 9, u->failed_logins);
	sq_bind_int(q, 10, u->locked_until);
	uq_blob(q, 11, u->mfa_secret, u->mfa_secret_len);
	sq_bind_int(q, 12, u->last_strong_auth);
}

/*
 * store_ops.user_insert: ERR_CONFLICT when the username is taken,
 * ERR_INVALID for a role the table's CHECK constraint refuses.
 */
enum err sqlite_user_insert(struct store *s, const struct store_user *u, int64_t *uid,
				   struct ctx *c)
{
	struct conn *cn;
	struct q q;
	bool own;
	enum err e;
	int rc;

	if ((e = sq_conn_get(s, &cn, c)) || (e = sq_write_begin(s, cn, &own, c)))
		return e;
	q = sq_once(cn, "INSERT INTO users (" USER_COLS ")"
			 " VALUES (NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
	sq_bind_text(&q, 2, u->username);
	bind_user(&q, u);
	rc = sq_run(&q);
	if (rc == SQLITE_OK)
		*uid = sqlite3_last_insert_rowid(sq_conn_db(cn));
	else if (rc == SQLITE_CONSTRAINT_UNIQUE)
		e = ctx_errorf(c, ERR_CONFLICT, "user '%s' already exists", u->username);
	else if (rc == SQLITE_CONSTRAINT_CHECK)
		e = ctx_errorf(c, ERR_INVALID, "role '%s' is not a valid role", u->role);
	else
		e = sq_fail(cn, rc, c, "cannot add a user");
	sq_once_end(&q);
	e = sq_write_end(s, own, e, c);
	if (e)
		*uid = 0;
	return e;
}

/* store_ops.user_update: every column but uid, username, created. */
enum err sqlite_user_update(struct store *s, const struct store_user *u, struct ctx *c)
{
	struct conn *cn;
	struct q q;
	bool own;
	enum err e;
	int rc;

	if ((e = sq_conn_get(s, &cn, c)) || (e = sq_write_begin(s, cn, &own, c)))
		return e;
	/* ?2 (username) and ?7 (created) are bound but not used: they do not change */
	q = sq_once(cn, "UPDATE users SET role = ?3, fhir_user = ?4, password_hash = ?5,"
			 " disabled = ?6, updated = ?8, failed_logins = ?9, locked_until = ?10,"
			 " mfa_secret = ?11, last_strong_auth = ?12"
			 " WHERE uid = ?1");
	sq_bind_int(&q, 1, u->uid);
	bind_user(&q, u);
	rc = sq_run(&q);
	if (rc == SQLITE_CONSTRAINT_CHECK)
		e = ctx_errorf(c, ERR_INVALID, "role '%s' is not a valid role", u->role);
	else if (rc != SQLITE_OK)
		e = sq_fail(cn, rc, c, "cannot update a user");
	else if (sqlite3_changes(sq_conn_db(cn)) == 0)
		e = ctx_errorf(c, ERR_NOTFOUND, "user %lld not found", (long long)u->uid);
	sq_once_end(&q);
	return sq_write_end(s, own, e, c);
}

/* store_ops.user_get: by username when non-NULL, else by uid. */
enum err sqlite_user_get(struct store *s, const char *username, int64_t uid,
				struct store_user *out, struct ctx *c)
{
	struct conn *cn;
	struct q q;
	enum err e;
	int rc;

	if ((e = sq_conn_get(s, &cn, c)))
		return e;
	if (username) {
		q = sq_once(cn, "SELECT " USER_COLS " FROM users WHERE username = ?1");
		sq_bind_text(&q, 1, username);
	} else {
		q = sq_once(cn, "SELECT " USER_COLS " FROM users WHERE uid = ?1");
		sq_bind_int(&q, 1, uid);
	}
	rc = sq_step(&q);
	if (rc == SQLITE_ROW)
		read_user(q.st, out, true);
	else if (rc == SQLITE_DONE && username)
		e = ctx_errorf(c, ERR_NOTFOUND, "user '%s' not found", username);
	else if (rc == SQLITE_DONE)
		e = ctx_errorf(c, ERR_NOTFOUND, "user %lld not found", (long long)uid);
	else
		e = sq_fail(cn, rc, c, "cannot read a user");
	sq_once_end(&q);
	return e;
}

/* store_ops.user_list: username order, no secrets read. */
enum err sqlite_user_list(struct store *s, store_user_fn fn, void *arg, struct ctx *c)
{
	struct store_user u;
	struct conn *cn;
	struct q q;
	enum err e;
	int rc;

	if ((e = sq_conn_get(s, &cn, c)))
		return e;
	if (sq_conn_walk(cn, 0) > 0)
		return ctx_errorf(c, ERR_INVALID, "cannot list users from inside a walk");
	q = sq_once(cn, "SELECT " USER_COLS " FROM users ORDER BY username");
	sq_conn_walk(cn, 1);
	while ((rc = sq_step(&q)) == SQLITE_ROW) {
		int stop;

		read_user(q.st, &u, false);
		if ((stop = fn(arg, &u)) != 0) {
			e = (enum err)stop;
			break;
		}
	}
	sq_conn_walk(cn, -1);
	if (!e && rc != SQLITE_ROW && rc != SQLITE_DONE)
		e = sq_fail(cn, rc, c, "cannot list users");
	sq_once_end(&q);
	store_user_wipe(&u);
	return e;
}

/* store_ops.user_patients_set: delete the old links, insert the new ones. */
enum err sqlite_user_patients_set(struct store *s, int64_t uid,
					 const struct store_user_patient *links, size_t n,
					 struct ctx *c)
{
	struct conn *cn;
	struct q q;
	bool own;
	enum err e;
	int rc;

	if ((e = sq_conn_get(s, &cn, c)) || (e = sq_write_begin(s, cn, &own, c)))
		return e;
	q = sq_once(cn, "DELETE FROM user_patient WHERE uid = ?1");
	sq_bind_int(&q, 1, uid);
	rc = sq_run(&q);
	sq_once_end(&q);
	if (rc != SQLITE_OK) {
		e = sq_fail(cn, rc, c, "cannot update a user's patients");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		q = sq_once(cn, "INSERT INTO user_patient (uid, patient_id, relationship,"
				 " related_person) VALUES (?1, ?2, ?3, ?4)");
		sq_bind_int(&q, 1, uid);
		sq_bind_text(&q, 2, links[i].patient_id);
		sq_bind_text(&q, 3, links[i].relationship);
		sq_bind_text(&q, 4, links[i].related_person[0] ? links[i].related_person : NULL);
		rc = sq_run(&q);
		sq_once_end(&q);
		if ((rc & 0xff) == SQLITE_CONSTRAINT) {
			e = ctx_errorf(c, ERR_CONFLICT, "patient '%s' is linked twice",
				       links[i].patient_id);
			goto out;
		}
		if (rc != SQLITE_OK) {
			e = sq_fail(cn, rc, c, "cannot update a user's patients");
			goto out;
		}
	}
out:
	return sq_write_end(s, own, e, c);
}

/* store_ops.user_patients: by patient id; *n counts every link. */
enum err sqlite_user_patients(struct store *s, int64_t uid, struct store_user_patient *out,
				     size_t max, size_t *n, struct ctx *c)
{
	struct conn *cn;
	struct q q;
	enum err e;
	int rc;

	if ((e = sq_conn_get(s, &cn, c)))
		return e;
	q = sq_once(cn, "SELECT patient_id, relationship, related_person FROM user_patient"
			 " WHERE uid = ?1 ORDER BY patient_id");
	sq_bind_int(&q, 1, uid);
	while ((rc = sq_step(&q)) == SQLITE_ROW) {
		if (*n < max) {
			struct store_user_patient *l = &out[*n];

			sq_col_text(q.st, 0, l->patient_id, sizeof(l->patient_id));
			sq_col_text(q.st, 1, l->relationship, sizeof(l->relationship));
			sq_col_text(q.st, 2, l->related_person, sizeof(l->related_person));
		}
		(*n)++;
	}
	if (rc != SQLITE_DONE)
		e = sq_fail(cn, rc, c, "cannot read a user's patients");
	sq_once_end(&q);
	return e;
}
