/*
 * db.c - DATA/audit.db: opening a connection with the audit settings,
 * creating and migrating the schema (PRAGMA user_version), the log's
 * secret, checkpoints as stored and as signed, and the public keys the
 * log recorded.
 *
 * A connection belongs to one thread at a time.  The writer owns one
 * read-write connection; readers and the verifier open query-only ones.
 */
#include "audit/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/jose.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/rand.h"
#include "core/str.h"

/*
 * Version 1.  `record` holds every record of every stream, keyed by
 * id = stream number << 48 | sequence (one b-tree for the table and its
 * key): the canonical body (NULL once pruned), its leaf hash (kept for
 * ever) and copies of the fields queries filter on (checked against the
 * body by the verifier: altering them could hide a record).  Indexes are
 * the ones the patient view and compliance searches need; every index
 * costs the writer on each record, and one whose keys are random (a
 * request id) costs a page write per record, so type is indexed only for
 * the rare non-FHIR events and the request and trace ids not at all
 * (filter them within a time range).  `stream` numbers the node ids, `subtree` caches the roots of
 * complete aligned blocks of 2^8, 2^16, ... leaves so proofs need not
 * read the whole tree, `checkpoint` holds each signed tree head and its
 * compact range, `signer` the public JWK of every key that signed,
 * `prune` the writer's progress through retention, `meta` the format name
 * and the secret for hashing search values.
 */
static const char schema_v1[] =
	"CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE stream(no INTEGER PRIMARY KEY, node TEXT NOT NULL UNIQUE);"
	"CREATE TABLE record("
	" id INTEGER PRIMARY KEY,"
	" time_ms INTEGER NOT NULL, type TEXT NOT NULL, outcome INTEGER NOT NULL,"
	" patient TEXT, agent TEXT, client TEXT, request_id TEXT, trace_id TEXT,"
	" leaf BLOB NOT NULL, body TEXT);"
	"CREATE INDEX record_time ON record(time_ms);"
	"CREATE INDEX record_patient ON record(patient, time_ms) WHERE patient IS NOT NULL;"
	"CREATE INDEX record_agent ON record(agent, time_ms) WHERE agent IS NOT NULL;"
	"CREATE INDEX record_client ON record(client, time_ms) WHERE client IS NOT NULL;"
	"CREATE INDEX record_special ON record(type, time_ms) WHERE " AUDIT_SPECIAL_TYPES ";"
	"CREATE TABLE subtree(node TEXT NOT NULL, level INTEGER NOT NULL, idx INTEGER NOT NULL,"
	" hash BLOB NOT NULL, PRIMARY KEY (node, level, idx)) WITHOUT ROWID;"
	"CREATE TABLE checkpoint(node TEXT NOT NULL, size INTEGER NOT NULL,"
	" time_ms INTEGER NOT NULL, root BLOB NOT NULL, compact BLOB NOT NULL,"
	" kid TEXT, jws TEXT, final INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (node, size));"
	"CREATE TABLE signer(kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, first_ms INTEGER NOT NULL);"
	"CREATE TABLE prune(node TEXT PRIMARY KEY, below INTEGER NOT NULL,"
	" cleared INTEGER NOT NULL) WITHOUT ROWID;";

enum err adb_stream_no(sqlite3 *db, const char *node, bool create, int64_t *no, struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e;

	*no = 0;
	if (create && sqlite3_get_autocommit(db)) {
		/* the check and the registration in one transaction */
		if ((e = adb_exec(db, "BEGIN IMMEDIATE", c)))
			return e;
		if ((e = adb_stream_no(db, node, true, no, c))) {
			struct ctx ig = CTX_INIT;
			adb_exec(db, "ROLLBACK", &ig);
			return e;
		}
		return adb_exec(db, "COMMIT", c);
	}
	if (create) {
		/*
		 * AuditEvent ids write '_' as '-' (FHIR ids have no '_'): a new
		 * stream must not share them with an existing one
		 */
		if ((e = adb_prepare(db, "SELECT node FROM stream WHERE replace(node, '_', '-') = replace(?1, '_', '-')"
				     " AND node <> ?1 AND NOT EXISTS (SELECT 1 FROM stream WHERE node = ?1) LIMIT 1",
				     &st, c)))
			return e;
		sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
		switch (sqlite3_step(st)) {
		case SQLITE_ROW:
			e = ctx_errorf(c, ERR_CONFLICT,
				       "node id '%s' differs from the audit stream '%s' only in '_' and '-', so their AuditEvent ids would be the same: choose another node id",
				       node, (const char *)sqlite3_column_text(st, 0));
			break;
		case SQLITE_DONE:
			break;
		default:
			e = adb_fail(c, ERR_IO, db, "cannot register the audit stream");
		}
		sqlite3_finalize(st);
		if (e)
			return e;
		if ((e = adb_prepare(db, "INSERT INTO stream(node) VALUES (?) ON CONFLICT(node) DO NOTHING",
				     &st, c)))
			return e;
		sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			e = adb_fail(c, ERR_IO, db, "cannot register the audit stream");
		sqlite3_finalize(st);
		if (e)
			return e;
	}
	if ((e = adb_prepare(db, "SELECT no FROM stream WHERE node = ?", &st, c)))
		return e;
	sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		*no = sqlite3_column_int64(st, 0);
		if (*no < 1 || *no > AUDIT_STREAMS_MAX)
			e = ctx_errorf(c, ERR_IO, "audit stream '%s' has an invalid number", node);
		break;
	case SQLITE_DONE:
		e = ctx_errorf(c, ERR_NOTFOUND, "the audit log has no stream '%s'", node);
		break;
	default:
		e = adb_fail(c, ERR_IO, db, "audit log");
	}
	sqlite3_finalize(st);
	return e;
}

enum err adb_fail(struct ctx *c, enum err code, sqlite3 *db, const char *what)
{
	return ctx_errorf(c, code, "%s: %s", what, db ? sqlite3_errmsg(db) : "no database");
}

enum err adb_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct ctx *c)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return adb_fail(c, ERR_IO, db, "audit log query");
	}
	return ERR_OK;
}

enum err adb_exec(sqlite3 *db, const char *sql, struct ctx *c)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return adb_fail(c, ERR_IO, db, "audit log");
	return ERR_OK;
}

int adb_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (!s || !*s)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static enum err pragma_int(sqlite3 *db, const char *sql, int64_t *out, struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e = adb_prepare(db, sql, &st, c);

	if (e)
		return e;
	if (sqlite3_step(st) == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		e = adb_fail(c, ERR_IO, db, "audit log");
	sqlite3_finalize(st);
	return e;
}

static enum err meta_get(sqlite3 *db, const char *name, struct buf *out, struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e = adb_prepare(db, "SELECT value FROM meta WHERE name = ?", &st, c);

	if (e)
		return e;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		buf_add(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
		break;
	case SQLITE_DONE:
		e = ctx_errorf(c, ERR_NOTFOUND, "audit log has no '%s'", name);
		break;
	default:
		e = adb_fail(c, ERR_IO, db, "audit log");
	}
	sqlite3_finalize(st);
	return e;
}

/* Create or check the schema inside one write transaction. */
static enum err migrate(sqlite3 *db, const char *path, struct ctx *c)
{
	struct buf fmt = BUF_INIT(256);
	int64_t version = 0, tables = 0;
	enum err e;

	if ((e = adb_exec(db, "BEGIN IMMEDIATE", c)))
		return e;
	if ((e = pragma_int(db, "PRAGMA user_version", &version, c)))
		goto out;
	if (version > AUDIT_SCHEMA_VERSION) {
		e = ctx_errorf(c, ERR_UNSUPPORTED,
			       "'%s' has audit schema %lld, newer than this program's %d", path,
			       (long long)version, AUDIT_SCHEMA_VERSION);
		goto out;
	}
	if (version == 0) {
		uint8_t pepper[AUDIT_PEPPER_LEN];
		sqlite3_stmt *st = NULL;
		char sql[64];

		if ((e = pragma_int(db, "SELECT count(*) FROM sqlite_master", &tables, c)))
			goto out;
		if (tables) {
			e = ctx_errorf(c, ERR_IO, "'%s' is not a Veranda audit log", path);
			goto out;
		}
		if ((e = adb_exec(db, schema_v1, c)))
			goto out;
		if ((e = adb_prepare(db, "INSERT INTO meta(name, value) VALUES (?, ?)", &st, c)))
			goto out;
		sqlite3_bind_text(st, 1, "format", -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, AUDIT_FORMAT, (int)strlen(AUDIT_FORMAT), SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			e = adb_fail(c, ERR_IO, db, "cannot create audit log");
		sqlite3_reset(st);
		rand_bytes(pepper, sizeof(pepper));
		sqlite3_bind_text(st, 1, "pepper", -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, pepper, sizeof(pepper), SQLITE_TRANSIENT);
		mem_wipe(pepper, sizeof(pepper));
		if (!e && sqlite3_step(st) != SQLITE_DONE)
			e = adb_fail(c, ERR_IO, db, "cannot create audit log");
		sqlite3_finalize(st);
		if (e)
			goto out;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", AUDIT_SCHEMA_VERSION);
		if ((e = adb_exec(db, sql, c)))
			goto out;
	}
	if ((e = meta_get(db, "format", &fmt, c)) || strcmp(fmt.data, AUDIT_FORMAT) != 0) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_IO, "'%s' is not a Veranda audit log", path);
		goto out;
	}
	e = adb_exec(db, "COMMIT", c);
out:
	if (e)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	buf_release(&fmt);
	return e;
}

enum err adb_open(const char *data_dir, bool create, sqlite3 **out, struct ctx *c)
{
	struct buf path = BUF_INIT(4096);
	sqlite3 *db = NULL;
	struct stat sb;
	enum err e = ERR_OK;
	int64_t version = 0;
	int rc;

	*out = NULL;
	if (!data_dir || !*data_dir)
		return ctx_errorf(c, ERR_INVALID, "no data directory for the audit log");
	buf_addf(&path, "%s/%s", data_dir, AUDIT_DB_NAME);
	if (path.err) {
		e = ctx_errorf(c, ERR_TOOBIG, "data directory path too long");
		goto out;
	}
	if (!create && stat(path.data, &sb) != 0) {
		e = errno == ENOENT ? ctx_errorf(c, ERR_NOTFOUND, "no audit log in '%s'", data_dir)
				    : ctx_errorf(c, ERR_IO, "cannot open '%s': %s", path.data,
						 strerror(errno));
		goto out;
	}
	rc = sqlite3_open_v2(path.data, &db,
			     SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		e = ctx_errorf(c, ERR_IO, "cannot open '%s': %s", path.data,
			       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, AUDIT_BUSY_MS);
	if (create) {
		char mode[16] = "";
		sqlite3_stmt *st = NULL;
		if ((e = adb_prepare(db, "PRAGMA journal_mode = WAL", &st, c)))
			goto out;
		if (sqlite3_step(st) == SQLITE_ROW)
			str_copy(mode, (const char *)sqlite3_column_text(st, 0), sizeof(mode));
		sqlite3_finalize(st);
		if (strcmp(mode, "wal") != 0) {
			e = ctx_errorf(c, ERR_IO, "cannot open '%s': write-ahead logging is not available",
				       path.data);
			goto out;
		}
		/* the writer's connection: 32 MiB of cache keeps the index pages
		 * it touches on every commit out of pread(); the statement journal
		 * of each multi-row INSERT stays in memory instead of going to a
		 * file in /var/tmp (a third of the writer's time went there) */
		if ((e = adb_exec(db, "PRAGMA synchronous = FULL", c)) ||
		    (e = adb_exec(db, "PRAGMA temp_store = MEMORY", c)) ||
		    (e = adb_exec(db, "PRAGMA cache_size = -32768", c)) ||
		    (e = adb_exec(db, "PRAGMA journal_size_limit = 67108864", c)) ||
		    (e = migrate(db, path.data, c)))
			goto out;
	} else {
		if ((e = adb_exec(db, "PRAGMA query_only = 1", c)) ||
		    (e = adb_exec(db, "PRAGMA temp_store = MEMORY", c)) ||
		    (e = pragma_int(db, "PRAGMA user_version", &version, c)))
			goto out;
		if (version == 0) {
			e = ctx_errorf(c, ERR_NOTFOUND, "no audit log in '%s'", data_dir);
			goto out;
		}
		if (version > AUDIT_SCHEMA_VERSION) {
			e = ctx_errorf(c, ERR_UNSUPPORTED,
				       "'%s' has audit schema %lld, newer than this program's %d",
				       path.data, (long long)version, AUDIT_SCHEMA_VERSION);
			goto out;
		}
	}
	*out = db;
	db = NULL;
out:
	sqlite3_close(db);
	buf_release(&path);
	return e;
}

enum err adb_pepper(sqlite3 *db, uint8_t out[AUDIT_PEPPER_LEN], struct ctx *c)
{
	struct buf b = BUF_INIT(256);
	enum err e = meta_get(db, "pepper", &b, c);

	if (!e && b.len != AUDIT_PEPPER_LEN)
		e = ctx_errorf(c, ERR_IO, "audit log secret is damaged");
	if (!e)
		memcpy(out, b.data, AUDIT_PEPPER_LEN);
	mem_wipe(b.data, b.len);
	buf_release(&b);
	return e;
}

void ckpt_release(struct ckpt *k)
{
	free(k->jws);
	free(k->kid);
	memset(k, 0, sizeof(*k));
}

enum err ckpt_load(sqlite3 *db, const char *node, uint64_t size, struct ckpt *out,
		   struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e;

	memset(out, 0, sizeof(*out));
	e = adb_prepare(db,
			size ? "SELECT size, time_ms, root, jws, kid FROM checkpoint"
			       " WHERE node = ?1 AND size = ?2"
			     : "SELECT size, time_ms, root, jws, kid FROM checkpoint"
			       " WHERE node = ?1 AND jws IS NOT NULL ORDER BY size DESC LIMIT 1",
			&st, c);
	if (e)
		return e;
	sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	if (size)
		sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		str_copy(out->node, node, sizeof(out->node));
		out->size = (uint64_t)sqlite3_column_int64(st, 0);
		out->time_ms = sqlite3_column_int64(st, 1);
		if (sqlite3_column_bytes(st, 2) != MERKLE_HASH_LEN) {
			e = ctx_errorf(c, ERR_IO, "checkpoint of '%s' at %llu is damaged", node,
				       (unsigned long long)out->size);
			break;
		}
		memcpy(out->root, sqlite3_column_blob(st, 2), MERKLE_HASH_LEN);
		if (sqlite3_column_type(st, 3) == SQLITE_TEXT)
			out->jws = xstrdup((const char *)sqlite3_column_text(st, 3));
		if (sqlite3_column_type(st, 4) == SQLITE_TEXT)
			out->kid = xstrdup((const char *)sqlite3_column_text(st, 4));
		break;
	case SQLITE_DONE:
		e = size ? ctx_errorf(c, ERR_NOTFOUND, "stream '%s' has no checkpoint of size %llu",
				      node, (unsigned long long)size)
			 : ctx_errorf(c, ERR_NOTFOUND, "stream '%s' has no signed checkpoint", node);
		break;
	default:
		e = adb_fail(c, ERR_IO, db, "audit log");
	}
	sqlite3_finalize(st);
	if (e)
		ckpt_release(out);
	return e;
}

enum err ckpt_payload(const char *node, uint64_t size, const uint8_t root[MERKLE_HASH_LEN],
		      int64_t time_ms, bool final, struct buf *out)
{
	char r[44], t[32];

	hash_b64(root, r);
	clock_format_instant(time_ms, t);
	/* node ids need no escaping ([A-Za-z0-9._-]) */
	return buf_addf(out,
			"{\"log\":\"" AUDIT_FORMAT "\",\"node\":\"%s\",\"size\":%llu,\"root\":\"%s\","
			"\"time\":\"%s\"%s}",
			node, (unsigned long long)size, r, t, final ? ",\"final\":true" : "");
}

enum err ckpt_verify_jws(const char *jws, const struct jose_jwks *keys, struct ckpt_claim *out,
			 struct ctx *c)
{
	json_t *header = NULL, *payload = NULL;
	const json_t *js, *jf;
	const char *pn, *pr, *pt, *typ, *log;
	enum err e;

	memset(out, 0, sizeof(*out));
	if (!jws)
		return ctx_errorf(c, ERR_UNAUTHORIZED, "checkpoint is not signed");
	if (!keys)
		return ctx_errorf(c, ERR_UNAUTHORIZED, "no key to check the checkpoint with");
	e = jose_jws_verify_jwks(jws, strlen(jws), keys, &header, &payload, NULL, c);
	if (e == ERR_NOTFOUND) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_UNAUTHORIZED, "checkpoint signed by an unknown key");
	}
	if (e)
		goto out;
	typ = json_get_str(header, "typ");
	log = json_get_str(payload, "log");
	js = json_object_get(payload, "size");
	jf = json_object_get(payload, "final");
	pn = json_get_str(payload, "node");
	pr = json_get_str(payload, "root");
	pt = json_get_str(payload, "time");
	if (!typ || strcmp(typ, AUDIT_CHECKPOINT_TYP) != 0 || !log || strcmp(log, AUDIT_FORMAT) != 0 ||
	    !pn || !audit_node_valid(pn) || !json_is_integer(js) || json_integer_value(js) < 0 ||
	    (uint64_t)json_integer_value(js) >= MERKLE_SIZE_LIMIT || !pr ||
	    !hash_unb64(pr, out->root) || !pt || instant_parse_ms(pt, &out->time_ms) ||
	    (jf && !json_is_true(jf))) {
		e = ctx_errorf(c, ERR_INVALID, "signed payload is not an audit checkpoint");
		goto out;
	}
	str_copy(out->node, pn, sizeof(out->node));
	out->size = (uint64_t)json_integer_value(js);
	out->final = jf != NULL;
out:
	json_decref(header);
	json_decref(payload);
	return e;
}

enum err adb_log_keys(sqlite3 *db, struct jose_jwks **out, struct ctx *c)
{
	struct jose_jwks *set = jose_jwks_new();
	sqlite3_stmt *st = NULL;
	enum err e;
	int rc;

	*out = NULL;
	if ((e = adb_prepare(db, "SELECT kid, jwk FROM signer ORDER BY first_ms", &st, c)))
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *text = (const char *)sqlite3_column_text(st, 1);
		json_t *j = text ? json_loads(text, 0, NULL) : NULL;
		struct jose_key *k = NULL;
		if (!j) {
			e = ctx_errorf(c, ERR_IO, "audit log key is damaged");
			goto out;
		}
		e = jose_key_from_jwk(j, JOSE_JWK_PUBLIC_ONLY, &k, c);
		json_decref(j);
		if (e)
			goto out;
		if ((e = jose_jwks_add(set, k, c)))
			goto out;
	}
	if (rc != SQLITE_DONE)
		e = adb_fail(c, ERR_IO, db, "audit log");
out:
	sqlite3_finalize(st);
	if (e)
		jose_jwks_free(set);
	else
		*out = set;
	return e;
}

enum err adb_write_all(int fd, const char *p, size_t n, struct ctx *c)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return ctx_errorf(c, ERR_IO, "cannot write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
	return ERR_OK;
}

enum err adb_fsync_path(const char *path, int flags, struct ctx *c)
{
	int fd = open(path, flags | O_CLOEXEC);
	enum err e = ERR_OK;

	if (fd < 0)
		return ctx_errorf(c, ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	if (fsync(fd) != 0)
		e = ctx_errorf(c, ERR_IO, "cannot sync '%s': %s", path, strerror(errno));
	close(fd);
	return e;
}
