/*
 * sqlite.c - the SQLite backend of the store (struct store_ops).
 *
 * One database file in WAL mode.  A commit returns only after the WAL is
 * on stable storage, so an acknowledged write survives kill -9 and power
 * loss; but the flush is not SQLite's.  Connections run with
 * synchronous=NORMAL (COMMIT writes the WAL without syncing it) and every
 * commit then waits in flush_commits() for a flush of the WAL that began
 * after it: one thread flushes for every commit made before it started,
 * the others wait for it, and the write lock is already free, so the next
 * transaction is written during the flush.  Concurrent writers therefore
 * share flushes instead of queuing behind one each.  Other connections can
 * see a commit while its flush is under way (until it is acknowledged);
 * docs/decisions.md says why that is acceptable.
 *
 * Threading: each thread gets its own connection on first use (a pthread
 * key whose destructor closes it at thread exit; store_thread_done() closes
 * it earlier).  A connection, its cached statements and its transaction
 * state are only ever touched by their thread, except by sqlite_close(),
 * which runs when no other thread uses the store any more.  The list of
 * connections is guarded by a mutex.
 *
 * Statements are prepared once per connection (SQLITE_PREPARE_PERSISTENT)
 * and kept in a table indexed by enum stmt_id; index rows go in by
 * multi-row INSERTs.
 *
 * Transactions: store_begin() is BEGIN IMMEDIATE; a put outside one is its
 * own BEGIN IMMEDIATE ... COMMIT.  A put inside one takes no savepoint: it
 * checks before it writes, and if it fails after writing started the
 * transaction is marked broken (see sqlite_put()).
 *
 * Writers inside the process queue on the store's write lock (a mutex and
 * condition variable, see write_lock()) taken before BEGIN IMMEDIATE and
 * released when the transaction ends, so they never meet SQLite's busy
 * handler, whose sleeping back-off made write latency jump to seconds
 * under concurrency.  The busy timeout still applies to other processes
 * and bounds the wait for the write lock.
 *
 * Search statements are built per query in sqlite_search.c, which reaches
 * connections through sqlite_int.h.
 *
 * Errors: SQLITE_BUSY/LOCKED -> ERR_BUSY, constraint -> ERR_CONFLICT,
 * SQLITE_TOOBIG -> ERR_TOOBIG, everything else -> ERR_IO.  I/O-class
 * failures (SQLITE_IOERR*, SQLITE_FULL, SQLITE_CORRUPT, SQLITE_NOTADB) also
 * set the store's sticky failure state (store_mark_failed()): after them
 * nothing that SQLite later reports as success is trusted.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/embedded.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/sqlite_int.h"
#include "store/vcache.h"

#define MIGRATION_DIR "src/store/schema/sqlite/"

/* ---- the statement table ---- */

/* Index rows of one kind go in by multi-row INSERTs of up to this many. */
#define IX_BATCH 8

enum stmt_id {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SP,
	ST_SP_RELEASE,
	ST_SP_UNDO,
	ST_USER_VERSION,
	ST_LOOKUP,
	ST_RES_INSERT,
	ST_RES_SEQ,
	ST_RES_UPDATE,
	ST_VER_INSERT,
	ST_DEL_TOKEN,
	ST_DEL_STRING,
	ST_DEL_DATE,
	ST_DEL_REFERENCE,
	ST_DEL_QUANTITY,
	ST_DEL_NUMBER,
	ST_DEL_URI,
	ST_DEL_COMPARTMENT,
	ST_DEL_PATIENT_TOKEN,
	ST_INS_COMPARTMENT,
	ST_INS_PATIENT_TOKEN,
	ST_GET_CURRENT,
	ST_GET_VERSION,
	ST_GET_CURRENT_C,
	ST_GET_VERSION_C,
	ST_GET_CURRENT_IN,
	ST_GET_VERSION_IN,
	ST_HIST_ALL,
	ST_HIST_TYPE,
	ST_HIST_ID,
	ST_HCOUNT_ALL,
	ST_HCOUNT_TYPE,
	ST_HCOUNT_ID,
	ST_COUNT_ALL,
	ST_COUNT_TYPE,
	ST_LAST_SEQ,
	ST_IN_COMPARTMENT,
	ST_COMPARTMENT_OF,
	ST_FIXED,
	/* then, per index kind, multi-row inserts of 1..IX_BATCH rows */
	ST_COUNT = ST_FIXED + STORE_IX_KINDS * IX_BATCH
};

/* How many patients a compartment lookup lists (the audit records at most 16). */
#define COMPARTMENT_LIST_MAX 16
#define STR_(x) #x
#define STR(x) STR_(x)

/* sq_once() statements kept per connection (the account and auth-item texts: about 20) */
#define ONCE_SLOTS 32

#define VERSION_COLS "v.type, v.id, v.version, v.last_updated, v.deleted, v.seq, v.json"
/*
 * The patients whose compartment holds r, space-separated (ids never hold
 * a space), in id order: the order of the compartment_rid index (rid, then
 * the key: patient, type), which the scan follows.  split_patients() keeps
 * the first COMPARTMENT_LIST_MAX, as ST_COMPARTMENT_OF lists them.  (A
 * subquery with ORDER BY and LIMIT costs a co-routine: about 1,300
 * instructions more a read.)
 */
#define COMPARTMENT_COL \
	"(SELECT group_concat(c.patient, ' ') FROM compartment c WHERE c.rid = r.rid)"
/* A resource's current version (?1 type, ?2 id), or its version ?3, with columns 'cols'. */
#define GET_CURRENT(cols)                                                      \
	"SELECT " cols " FROM resource r JOIN resource_version v ON v.seq = r.seq" \
	" WHERE r.type = ?1 AND r.id = ?2"
#define GET_VERSION(cols)                                              \
	"SELECT " cols " FROM resource r"                                \
	" JOIN resource_version v ON v.rid = r.rid AND v.version = ?3" \
	" WHERE r.type = ?1 AND r.id = ?2"
#define IN_COMPARTMENT_COL \
	"EXISTS (SELECT 1 FROM compartment c WHERE c.patient = ?4 AND c.type = ?1 AND c.rid = r.rid)"
#define HIST_WHERE \
	"v.seq < :before AND v.last_updated >= :since AND v.last_updated <= :at_most"

static const char *const stmt_sql[ST_FIXED] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* One name serves every nesting level: RELEASE and ROLLBACK TO act on
	 * the innermost savepoint of that name. */
	[ST_SP] = "SAVEPOINT s",
	[ST_SP_RELEASE] = "RELEASE s",
	[ST_SP_UNDO] = "ROLLBACK TO s",
	[ST_USER_VERSION] = "PRAGMA user_version",
	[ST_LOOKUP] = "SELECT rid, version, deleted FROM resource WHERE type = ?1 AND id = ?2",
	/* seq is set once the version row exists (ST_RES_SEQ) */
	[ST_RES_INSERT] = "INSERT INTO resource (type, id, version, last_updated, deleted, seq)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, 0)",
	[ST_RES_SEQ] = "UPDATE resource SET seq = ?2 WHERE rid = ?1",
	[ST_RES_UPDATE] = "UPDATE resource SET version = ?2, last_updated = ?3, deleted = ?4,"
			  " seq = ?5 WHERE rid = ?1",
	[ST_VER_INSERT] = "INSERT INTO resource_version"
			  " (rid, type, id, version, last_updated, deleted, json)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_DEL_TOKEN] = "DELETE FROM ix_token WHERE rid = ?1",
	[ST_DEL_STRING] = "DELETE FROM ix_string WHERE rid = ?1",
	[ST_DEL_DATE] = "DELETE FROM ix_date WHERE rid = ?1",
	[ST_DEL_REFERENCE] = "DELETE FROM ix_reference WHERE rid = ?1",
	[ST_DEL_QUANTITY] = "DELETE FROM ix_quantity WHERE rid = ?1",
	[ST_DEL_NUMBER] = "DELETE FROM ix_number WHERE rid = ?1",
	[ST_DEL_URI] = "DELETE FROM ix_uri WHERE rid = ?1",
	[ST_DEL_COMPARTMENT] = "DELETE FROM compartment WHERE rid = ?1",
	[ST_DEL_PATIENT_TOKEN] = "DELETE FROM ix_patient_token WHERE rid = ?1",
	[ST_INS_COMPARTMENT] = "INSERT OR IGNORE INTO compartment (patient, type, rid, seq)"
			       " VALUES (?1, ?2, ?3, ?4)",
	/* the same selection as 0006_patient_token.sql, for one resource */
	[ST_INS_PATIENT_TOKEN] = "INSERT INTO ix_patient_token"
				 " (rid, ref, n, type, rparam, patient, param, system, code, sort_hi, seq)"
				 " SELECT r.rid, r.n, t.n, r.type, r.param, r.target_id, t.param,"
				 " t.system, t.code, r.sort_hi, r.seq"
				 " FROM ix_reference r JOIN ix_token t ON t.rid = r.rid"
				 " WHERE r.rid = ?1 AND r.target_type = 'Patient'"
				 " AND r.target_id IS NOT NULL AND t.param IN ('category', 'code')"
				 " AND t.code IS NOT NULL",
	[ST_GET_CURRENT] = GET_CURRENT(VERSION_COLS),
	[ST_GET_VERSION] = GET_VERSION(VERSION_COLS),
	/* the same with the patients of the current version's compartment */
	[ST_GET_CURRENT_C] = GET_CURRENT(VERSION_COLS ", " COMPARTMENT_COL),
	[ST_GET_VERSION_C] = GET_VERSION(VERSION_COLS ", " COMPARTMENT_COL),
	/* ... and whether it is in patient ?4's compartment */
	[ST_GET_CURRENT_IN] = GET_CURRENT(VERSION_COLS ", " IN_COMPARTMENT_COL),
	[ST_GET_VERSION_IN] = GET_VERSION(VERSION_COLS ", " IN_COMPARTMENT_COL),
	[ST_HIST_ALL] = "SELECT " VERSION_COLS " FROM resource_version v"
			" WHERE " HIST_WHERE " ORDER BY v.seq DESC LIMIT :limit",
	[ST_HIST_TYPE] = "SELECT " VERSION_COLS " FROM resource_version v"
			 " WHERE v.type = :type AND " HIST_WHERE
			 " ORDER BY v.seq DESC LIMIT :limit",
	/* Within one resource versions grow with seq (sqlite_put checks that the
	 * new version is newer), so the (rid, version) index gives seq order. */
	[ST_HIST_ID] = "SELECT " VERSION_COLS " FROM resource r"
		       " JOIN resource_version v ON v.rid = r.rid"
		       " WHERE r.type = :type AND r.id = :id AND " HIST_WHERE
		       " ORDER BY v.version DESC LIMIT :limit",
	[ST_HCOUNT_ALL] = "SELECT count(*) FROM resource_version v"
			  " WHERE v.last_updated >= :since AND v.last_updated <= :at_most",
	[ST_HCOUNT_TYPE] = "SELECT count(*) FROM resource_version v WHERE v.type = :type"
			   " AND v.last_updated >= :since AND v.last_updated <= :at_most",
	[ST_HCOUNT_ID] = "SELECT count(*) FROM resource r"
			 " JOIN resource_version v ON v.rid = r.rid"
			 " WHERE r.type = :type AND r.id = :id"
			 " AND v.last_updated >= :since AND v.last_updated <= :at_most",
	[ST_COUNT_ALL] = "SELECT count(*) FROM resource WHERE deleted = 0",
	[ST_COUNT_TYPE] = "SELECT count(*) FROM resource WHERE type = ?1 AND deleted = 0",
	[ST_LAST_SEQ] = "SELECT coalesce(max(seq), 0) FROM resource_version",
	[ST_COMPARTMENT_OF] = "SELECT c.patient FROM resource r JOIN compartment c ON c.rid = r.rid"
			      " WHERE r.type = ?1 AND r.id = ?2 ORDER BY c.patient"
			      " LIMIT " STR(COMPARTMENT_LIST_MAX),
	[ST_IN_COMPARTMENT] = "SELECT count(*) FROM resource r JOIN compartment c ON c.rid = r.rid"
			      " AND c.patient = ?3 AND c.type = ?1 WHERE r.type = ?1 AND r.id = ?2",
};

/*
 * Index tables: the INSERT head and the number of columns of a row; the
 * last is seq, the current version's (schema 7), bound by insert_ix_rows().
 */
static const struct {
	const char *head;
	int ncols;
} ix_tables[STORE_IX_KINDS] = {
	[STORE_IX_TOKEN] = {"INSERT INTO ix_token (rid, n, type, param, system, code, text, seq)", 8},
	[STORE_IX_STRING] = {"INSERT INTO ix_string (rid, n, type, param, norm, exact, seq)", 7},
	[STORE_IX_DATE] = {"INSERT INTO ix_date (rid, n, type, param, lo, hi, seq)", 7},
	[STORE_IX_REFERENCE] = {"INSERT INTO ix_reference"
				" (rid, n, type, param, target_type, target_id, url, seq)", 8},
	[STORE_IX_QUANTITY] = {"INSERT INTO ix_quantity"
			       " (rid, n, type, param, value, lo, hi, system, code, seq)", 10},
	[STORE_IX_NUMBER] = {"INSERT INTO ix_number (rid, n, type, param, value, lo, hi, seq)", 8},
	[STORE_IX_URI] = {"INSERT INTO ix_uri (rid, n, type, param, uri, seq)", 6},
};

/* The statement inserting 'rows' (1..IX_BATCH) index rows of 'kind'. */
static enum stmt_id ix_insert_id(enum store_ix kind, size_t rows)
{
	return (enum stmt_id)(ST_FIXED + (int)kind * IX_BATCH + (int)rows - 1);
}

/*
 * The SQL of statement 'id': fixed text, or a multi-row index insert built
 * into 'b'.  NULL when 'b' overflowed (cannot happen with the caps here).
 */
static const char *stmt_text(enum stmt_id id, struct buf *b)
{
	int kind, rows;

	if (id < ST_FIXED)
		return stmt_sql[id];
	kind = (int)(id - ST_FIXED) / IX_BATCH;
	rows = (int)(id - ST_FIXED) % IX_BATCH + 1;
	buf_adds(b, ix_tables[kind].head);
	buf_adds(b, " VALUES ");
	for (int r = 0; r < rows; r++) {
		buf_adds(b, r ? ", (?" : "(?");
		for (int k = 1; k < ix_tables[kind].ncols; k++)
			buf_adds(b, ", ?");
		buf_addch(b, ')');
	}
	return b->err ? NULL : b->data;
}

static const enum stmt_id ix_delete[] = {
	ST_DEL_TOKEN, ST_DEL_STRING, ST_DEL_DATE, ST_DEL_REFERENCE,
	ST_DEL_QUANTITY, ST_DEL_NUMBER, ST_DEL_URI, ST_DEL_COMPARTMENT,
	ST_DEL_PATIENT_TOKEN,
};

/* ---- backend state ---- */

struct conn;

struct sq_store {
	struct store *s;        /* the front object (sticky state, faults) */
	char *path;             /* as given to sqlite3_open_v2 (may be a file: URI) */
	int busy_ms;
	pthread_key_t key;      /* the calling thread's struct conn */
	pthread_mutex_t mu;     /* guards 'conns' */
	struct conn *conns;     /* every open connection */
	/* The write lock: 'writer' is set while a connection holds it. */
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	bool writer;
	struct vcache *vc;      /* versions for search pages (vcache.h), or NULL */
	_Atomic uint64_t *epoch; /* the shared change epoch (store_epoch_map()), or NULL */
	/* Flushes (flush_commits()), under fmu. */
	pthread_mutex_t fmu;
	pthread_cond_t fcv;
	uint64_t committed;     /* commits made through this store */
	uint64_t flushed;       /* ... the first this many of which are on disk */
	bool flushing;          /* a thread is flushing now */
};

struct conn {
	struct sq_store *st;
	sqlite3 *db;
	struct conn *prev, *next;
	bool in_tx;             /* an explicit transaction (store_begin) is open */
	int nsp;                /* open savepoints (store_savepoint) */
	/*
	 * A put failed after it had written rows in the explicit transaction:
	 * it cannot commit until it is rolled back, or rolled back to a
	 * savepoint at most broken_depth deep (taken before that put).
	 */
	bool broken;
	int broken_depth;
	char broken_why[448];
	char fail_msg[448];     /* the last message fail() made */
	int walking;            /* inside a history or search callback */
	bool write_locked;      /* this connection holds the store's write lock */
	sqlite3_int64 changes;  /* sqlite3_total_changes64() when the transaction began */
	struct sq_search *search; /* search statements (sqlite_search.c) */
	int64_t deadline_us;    /* a search's time limit (clock_mono_us()); 0: none */
	int err_rc;             /* the last failure noted on this connection */
	char err_msg[256];      /* ... and SQLite's message for it */
	sqlite3_stmt *stmt[ST_COUNT];
	/* sq_once(): statements keyed by the address of their constant SQL text */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} once[ONCE_SLOTS];
};

/* ---- errors ---- */

/* Remember SQLite's message for 'rc' before a reset or rollback replaces it. */
static void note_error(struct conn *cn, int rc)
{
	const char *msg;

	if (sqlite3_extended_errcode(cn->db) == rc)
		msg = sqlite3_errmsg(cn->db);
	else
		msg = sqlite3_errstr(rc);     /* injected, or already overwritten */
	cn->err_rc = rc;
	str_copy(cn->err_msg, msg, sizeof(cn->err_msg));
}

/*
 * Failures after which the file's state is unknown: the sticky ones.  A
 * full disk is not one of them: SQLite reports it when a write is refused
 * (ENOSPC), before anything is synced, and rolls the transaction back, so
 * writes work again once there is room, without a restart.
 */
static bool is_storage_failure(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return true;
	default:
		return false;
	}
}

/*
 * Turn SQLite result 'rc' into an enum err with "WHAT: reason" on 'c' (may
 * be NULL).  A storage failure also sets the store's sticky state.
 */
static enum err fail(struct conn *cn, int rc, struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static enum err fail(struct conn *cn, int rc, struct ctx *c, const char *fmt, ...)
{
	char what[160], msg[448];
	enum err e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if ((rc & 0xff) == SQLITE_INTERRUPT)
		snprintf(msg, sizeof(msg), "%s: it ran longer than the search time limit (%d ms)", what,
			 atomic_load(&cn->st->s->search_ms));
	else
		snprintf(msg, sizeof(msg), "%s: %s", what,
			 (rc & 0xff) == SQLITE_FULL ? "the disk is full; try again later"
			 : cn->err_rc == rc	    ? cn->err_msg
						    : sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
		e = ERR_BUSY;
		break;
	case SQLITE_CONSTRAINT:
		e = ERR_CONFLICT;
		break;
	case SQLITE_TOOBIG:
	case SQLITE_INTERRUPT: /* sq_conn_deadline(): too costly */
		e = ERR_TOOBIG;
		break;
	default:
		e = ERR_IO;
		break;
	}
	if (is_storage_failure(rc))
		store_mark_failed(cn->st->s, msg);
	str_copy(cn->fail_msg, msg, sizeof(cn->fail_msg));
	return ctx_errorf(c, e, "%s", msg);
}

/* ---- statements ---- */

/*
 * One use of a cached statement (struct q, sqlite_int.h): q_start()
 * prepares (once per connection) and the q_* binders keep the first
 * failure in q->rc, so a sequence of binds and a step is checked once.
 * q_end() resets the statement; every q_start() must be paired with a
 * q_end().
 */

/* Start a use of statement 'id', preparing it on the connection's first use. */
static struct q q_start(struct conn *cn, enum stmt_id id)
{
	struct q q = {cn, cn->stmt[id], SQLITE_OK};
	struct buf b = BUF_INIT(4096);
	const char *sql;

	if (!q.st) {
		sql = stmt_text(id, &b);
		q.rc = sql ? sqlite3_prepare_v3(cn->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
						&cn->stmt[id], NULL)
			   : SQLITE_TOOBIG;
		if (q.rc != SQLITE_OK) {
			note_error(cn, q.rc);
			cn->stmt[id] = NULL;
		}
		q.st = cn->stmt[id];
		buf_release(&b);
	}
	return q;
}

/* sqlite_int.h */
struct q sq_once(struct conn *cn, const char *sql)
{
	struct q q = {cn, NULL, SQLITE_OK};
	int slot = -1;

	for (int i = 0; i < ONCE_SLOTS && slot < 0; i++)
		if (cn->once[i].sql == sql || !cn->once[i].sql)
			slot = i;
	if (slot >= 0 && cn->once[slot].st && !sqlite3_stmt_busy(cn->once[slot].st))
		return (struct q){cn, cn->once[slot].st, SQLITE_OK};
	if (slot >= 0 && cn->once[slot].sql)
		slot = -1; /* busy: this use gets a statement of its own */
	q.rc = sqlite3_prepare_v3(cn->db, sql, -1, slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0, &q.st,
				  NULL);
	if (q.rc != SQLITE_OK) {
		note_error(cn, q.rc);
		sqlite3_finalize(q.st);
		q.st = NULL;
	} else if (slot >= 0) {
		cn->once[slot].sql = sql;
		cn->once[slot].st = q.st;
	}
	return q;
}

/* sqlite_int.h */
void sq_once_end(struct q *q)
{
	for (int i = 0; q->st && i < ONCE_SLOTS; i++)
		if (q->cn->once[i].st == q->st) {
			sqlite3_reset(q->st);
			sqlite3_clear_bindings(q->st);
			q->st = NULL;
			return;
		}
	sqlite3_finalize(q->st);
	q->st = NULL;
}

/* Keep the first failure of a bind. */
static void q_check(struct q *q, int rc)
{
	if (rc != SQLITE_OK) {
		q->rc = rc;
		note_error(q->cn, rc);
	}
}

/* Bind text (NULL binds NULL).  The caller's string must outlive the step. */
static void q_text(struct q *q, int i, const char *s)
{
	if (q->rc == SQLITE_OK)
		q_check(q, s ? sqlite3_bind_text(q->st, i, s, -1, SQLITE_STATIC)
			     : sqlite3_bind_null(q->st, i));
}

/* Bind a 64-bit integer. */
static void q_int(struct q *q, int i, int64_t v)
{
	if (q->rc == SQLITE_OK)
		q_check(q, sqlite3_bind_int64(q->st, i, v));
}

/* Bind a double. */
static void q_real(struct q *q, int i, double v)
{
	if (q->rc == SQLITE_OK)
		q_check(q, sqlite3_bind_double(q->st, i, v));
}

/* Bind integer parameter 'name' if the statement has it. */
static void q_named(struct q *q, const char *name, int64_t v)
{
	int i;

	if (q->rc != SQLITE_OK)
		return;
	i = sqlite3_bind_parameter_index(q->st, name);
	if (i > 0)
		q_int(q, i, v);
}

/* Bind text parameter 'name' if the statement has it. */
static void q_named_text(struct q *q, const char *name, const char *s)
{
	int i;

	if (q->rc != SQLITE_OK)
		return;
	i = sqlite3_bind_parameter_index(q->st, name);
	if (i > 0)
		q_text(q, i, s);
}

/* A blob; NULL 'p' stores an empty blob (not NULL). */
static void q_blob(struct q *q, int i, const void *p, size_t n)
{
	if (q->rc != SQLITE_OK)
		return;
	if (p && n)
		q_check(q, sqlite3_bind_blob64(q->st, i, p, n, SQLITE_STATIC));
	else
		q_check(q, sqlite3_bind_zeroblob(q->st, i, 0));
}

/*
 * Step once: SQLITE_ROW, SQLITE_DONE or a failure (noted on the
 * connection and kept in q->rc).  The test fault hook may fail the step
 * before SQLite runs it.
 */
static int q_step(struct q *q)
{
	int rc;

	if (q->rc != SQLITE_OK)
		return q->rc;
	switch (store_fault_next(q->cn->st->s)) {
	case STORE_FAULT_BUSY:
		rc = SQLITE_BUSY;
		break;
	case STORE_FAULT_IO:
		rc = SQLITE_IOERR;
		break;
	default:
		rc = sqlite3_step(q->st);
		break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		note_error(q->cn, rc);
		q->rc = rc;
	}
	return rc;
}

/* Reset the statement for its next use and drop the borrowed bindings. */
static void q_end(struct q *q)
{
	if (q->st) {
		sqlite3_reset(q->st);
		sqlite3_clear_bindings(q->st);
	}
}

/* Step a statement that returns no row to the end: SQLITE_OK or a failure. */
static int q_run(struct q *q)
{
	int rc = q_step(q);

	q_end(q);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Run statement 'id' that takes no parameters: SQLITE_OK or a failure. */
static int run(struct conn *cn, enum stmt_id id)
{
	struct q q = q_start(cn, id);

	return q_run(&q);
}

/*
 * Run an undo statement (ROLLBACK, ROLLBACK TO): never fault-injected.  A
 * failure here is a storage failure: it is logged on the sticky state.
 */
static void undo(struct conn *cn, enum stmt_id id)
{
	struct q q = q_start(cn, id);
	int rc = q.rc;

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(q.st);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
		else
			note_error(cn, rc);
	}
	q_end(&q);
	if (rc != SQLITE_OK && !(id == ST_ROLLBACK && sqlite3_get_autocommit(cn->db)))
		store_mark_failed(cn->st->s, cn->err_msg);
}

/* ---- connections ---- */

static void write_unlock(struct conn *cn);

/*
 * Finalize the statements and close the connection (not unlinked here).
 * A write lock it still holds (a thread that ended inside a transaction)
 * is released.
 */
static void conn_free(struct conn *cn)
{
	if (!cn)
		return;
	sq_search_free(cn->search);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(cn->stmt[i]);
	for (int i = 0; i < ONCE_SLOTS; i++)
		sqlite3_finalize(cn->once[i].st);
	sqlite3_close_v2(cn->db);   /* rolls back an open transaction */
	write_unlock(cn);
	free(cn);
}

/* ---- the in-process write lock ---- */

/*
 * Take the store's write lock for 'cn', waiting at most the busy timeout
 * (ERR_BUSY "database is busy" after it).  Not owner-bound: write_unlock()
 * may run on any thread (conn_free() at close).  A connection that holds
 * it already gets ERR_OK at once.
 */
static enum err write_lock(struct conn *cn, struct ctx *c)
{
	struct sq_store *st = cn->st;
	struct timespec until;
	enum err e = ERR_OK;
	int rc = 0;

	if (cn->write_locked)
		return ERR_OK;
	clock_after_ms(CLOCK_MONOTONIC, st->busy_ms, &until);
	pthread_mutex_lock(&st->wmu);
	while (st->writer && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&st->wcv, &st->wmu, &until);
	if (st->writer) {
		e = ctx_errorf(c, ERR_BUSY, "database is busy: another write did not finish in %d ms",
			       st->busy_ms);
	} else {
		st->writer = true;
		cn->write_locked = true;
	}
	pthread_mutex_unlock(&st->wmu);
	return e;
}

/* Release the write lock if 'cn' holds it, waking one waiting writer. */
static void write_unlock(struct conn *cn)
{
	struct sq_store *st = cn->st;

	if (!cn->write_locked)
		return;
	pthread_mutex_lock(&st->wmu);
	st->writer = false;
	cn->write_locked = false;
	pthread_cond_signal(&st->wcv);
	pthread_mutex_unlock(&st->wmu);
}

/*
 * Make the commit 'cn' has just made durable (see the top of the file):
 * wait until a flush of the WAL that began after it has ended.  The first
 * thread to find no flush under way does it for every commit made so far;
 * the others wait for the one that covers them.  Called after COMMIT
 * returned and the write lock was released.  A failed flush is a storage
 * failure: the store's sticky state is set, this and every waiting commit
 * get ERR_IO, and no later flush is trusted.
 */
static enum err flush_commits(struct conn *cn, struct ctx *c)
{
	struct sq_store *st = cn->st;
	enum err e = ERR_OK;
	uint64_t mine;

	pthread_mutex_lock(&st->fmu);
	mine = ++st->committed;
	while (st->flushed < mine && !e) {
		sqlite3_file *wal = NULL;
		uint64_t upto;
		int rc;

		if (st->flushing) {
			pthread_cond_wait(&st->fcv, &st->fmu);
			continue;
		}
		if ((e = store_check_healthy(st->s, c)))
			break;
		/* every commit counted so far returned from COMMIT before this */
		upto = st->committed;
		st->flushing = true;
		pthread_mutex_unlock(&st->fmu);
		rc = sqlite3_file_control(cn->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
		if (rc == SQLITE_OK && wal && wal->pMethods)
			rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
		if (rc != SQLITE_OK) {
			cn->err_rc = SQLITE_IOERR_FSYNC;
			snprintf(cn->err_msg, sizeof(cn->err_msg), "%s while flushing the write-ahead log",
				 sqlite3_errstr(rc));
			e = fail(cn, SQLITE_IOERR_FSYNC, c, "cannot commit");
		}
		pthread_mutex_lock(&st->fmu);
		st->flushing = false;
		if (!e)
			st->flushed = upto;
		pthread_cond_broadcast(&st->fcv);
	}
	pthread_mutex_unlock(&st->fmu);
	return e;
}

/* Remove 'cn' from the store's list of connections. */
static void conn_unlink(struct conn *cn)
{
	struct sq_store *st = cn->st;

	pthread_mutex_lock(&st->mu);
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		st->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	pthread_mutex_unlock(&st->mu);
}

/* pthread key destructor: the thread exits with its connection open. */
static void conn_thread_exit(void *arg)
{
	struct conn *cn = arg;

	conn_unlink(cn);
	conn_free(cn);
}

/* Run one setup statement that may return a row; fill 'val' with its text. */
static int setup(sqlite3 *db, const char *sql, char *val, size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && val) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		str_copy(val, t ? (const char *)t : "", size);
	}
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = SQLITE_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

/*
 * sqlite3_progress_handler(): every few thousand virtual-machine steps,
 * stop the statement (SQLITE_INTERRUPT) once the connection's search
 * deadline has passed.  Without a deadline, one load.
 */
static int past_deadline(void *arg)
{
	const struct conn *cn = arg;

	return cn->deadline_us && clock_mono_us() > cn->deadline_us;
}

/*
 * Open a new connection to the store's database with the per-connection
 * settings: WAL, synchronous=NORMAL, the busy timeout, extended result
 * codes.  On success *out is unlinked and owned by the caller.  ERR_IO
 * with "cannot open 'PATH': reason" when SQLite cannot open the file or
 * cannot put it in WAL mode.
 */
static enum err conn_open(struct sq_store *st, struct conn **out, struct ctx *c)
{
	const char *const pragmas[] = {
		/* COMMIT writes the WAL; flush_commits() syncs it (see the top) */
		"PRAGMA synchronous = NORMAL",
		"PRAGMA foreign_keys = OFF",
		/* Savepoint journals in memory: a spill to a temporary file costs
		 * a write(2) per page, and the importer takes a savepoint per
		 * resource.  (SQLITE_CONFIG_STMTJRNL_SPILL would allow bigger
		 * in-memory chunks, but SQLite 3.40 fails such spills with
		 * SQLITE_FULL above ~128 KiB.) */
		"PRAGMA temp_store = MEMORY",
		"PRAGMA cache_size = -32768",     /* 32 MiB per connection */
		"PRAGMA journal_size_limit = 67108864", /* WAL shrinks back to 64 MiB */
	};
	struct conn *cn = xcalloc(1, sizeof(*cn));
	char mode[32] = "";
	enum err e = ERR_OK;
	int rc;

	cn->st = st;
	rc = sqlite3_open_v2(st->path, &cn->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_URI,
			     NULL);
	if (rc != SQLITE_OK) {
		e = ctx_errorf(c, ERR_IO, "cannot open '%s': %s", st->path,
			       cn->db ? sqlite3_errmsg(cn->db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_extended_result_codes(cn->db, 1);
	sqlite3_busy_timeout(cn->db, st->busy_ms);
	sqlite3_progress_handler(cn->db, 4000, past_deadline, cn);
	rc = setup(cn->db, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
	if (rc != SQLITE_OK) {
		e = ctx_errorf(c, ERR_IO, "cannot open '%s': %s", st->path, sqlite3_errmsg(cn->db));
		goto out;
	}
	if (strcmp(mode, "wal") != 0) {
		e = ctx_errorf(c, ERR_IO, "cannot open '%s': write-ahead logging is not available",
			       st->path);
		goto out;
	}
	for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
		rc = setup(cn->db, pragmas[i], NULL, 0);
		if (rc != SQLITE_OK) {
			e = ctx_errorf(c, ERR_IO, "cannot open '%s': %s", st->path,
				       sqlite3_errmsg(cn->db));
			goto out;
		}
	}
out:
	if (e) {
		conn_free(cn);
		cn = NULL;
	}
	*out = cn;
	return e;
}

/*
 * The calling thread's connection, opened on first use.  The store keeps
 * ownership.  ERR_IO when a new connection cannot be opened.
 */
static enum err conn_get(struct store *s, struct conn **out, struct ctx *c)
{
	struct sq_store *st = s->be;
	struct conn *cn = pthread_getspecific(st->key);
	enum err e;

	if (cn) {
		*out = cn;
		return ERR_OK;
	}
	*out = NULL;
	e = conn_open(st, &cn, c);
	if (e)
		return e;
	if (pthread_setspecific(st->key, cn) != 0) {
		conn_free(cn);
		return ctx_errorf(c, ERR_IO, "cannot attach a database connection to this thread");
	}
	pthread_mutex_lock(&st->mu);
	cn->next = st->conns;
	if (st->conns)
		st->conns->prev = cn;
	st->conns = cn;
	pthread_mutex_unlock(&st->mu);
	*out = cn;
	return ERR_OK;
}

/*
 * A failure inside an explicit transaction may have made SQLite roll it
 * back on its own (SQLITE_FULL, some I/O errors).  Then writes would run
 * in autocommit mode while the caller believes they are in its
 * transaction: refuse them until the caller rolls back.
 */
static enum err tx_alive(struct conn *cn, struct ctx *c)
{
	if (cn->in_tx && sqlite3_get_autocommit(cn->db))
		return ctx_errorf(c, ERR_IO,
				  "the transaction was rolled back after an earlier failure");
	return ERR_OK;
}

/*
 * Can the explicit transaction (if any) take more writes?  Not when SQLite
 * dropped it, nor when a put failed part-way in it (see struct conn).
 */
static enum err tx_writable(struct conn *cn, struct ctx *c)
{
	enum err e = tx_alive(cn, c);

	if (e)
		return e;
	if (cn->in_tx && cn->broken)
		return ctx_errorf(c, ERR_IO,
				  "a write in this transaction failed part-way (%s); roll it back first",
				  cn->broken_why);
	return ERR_OK;
}

/*
 * Start (begin) or finish (commit, rollback) a transaction's bookkeeping;
 * finishing releases the write lock.
 */
static void tx_reset(struct conn *cn, bool in_tx)
{
	if (!in_tx)
		write_unlock(cn);
	cn->in_tx = in_tx;
	cn->nsp = 0;
	cn->broken = false;
	cn->broken_depth = 0;
	cn->broken_why[0] = '\0';
}

/* ---- lifecycle ---- */

/*
 * store_ops.open: set up the backend for the database file (or file: URI)
 * 'target' and open the calling thread's connection, so that a bad path
 * fails here (ERR_IO "cannot open 'PATH': reason").  On failure nothing is
 * left allocated and s->be is NULL.
 */
static enum err sqlite_open(struct store *s, const char *target, int busy_ms, struct ctx *c)
{
	struct sq_store *st = xcalloc(1, sizeof(*st));
	struct conn *cn;
	enum err e;

	st->s = s;
	st->path = xstrdup(target);
	st->busy_ms = busy_ms;
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->wmu, NULL);
	pthread_mutex_init(&st->fmu, NULL);
	pthread_cond_init(&st->fcv, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&st->wcv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (pthread_key_create(&st->key, conn_thread_exit) != 0) {
		pthread_cond_destroy(&st->fcv);
		pthread_mutex_destroy(&st->fmu);
		pthread_cond_destroy(&st->wcv);
		pthread_mutex_destroy(&st->wmu);
		pthread_mutex_destroy(&st->mu);
		free(st->path);
		free(st);
		return ctx_errorf(c, ERR_IO, "cannot create a thread key for '%s'", target);
	}
	s->be = st;
	/* Open the caller's connection now so that a bad path fails here. */
	e = conn_get(s, &cn, c);
	if (e) {
		s->ops->close(s);
		s->be = NULL;
		return e;
	}
	/* the change epoch beside the database file (none for a database in memory) */
	{
		const char *file = sqlite3_db_filename(cn->db, "main");

		if (file && *file) {
			struct buf b = BUF_INIT(4096 + 16);

			if (buf_addf(&b, "%s-epoch", file) == ERR_OK &&
			    (st->epoch = store_epoch_map(b.data)))
				s->epoch = st->epoch;
			buf_release(&b);
		}
	}
	return ERR_OK;
}

/*
 * store_ops.close: close every thread's connection (rolling back what is
 * open) and free the backend.  No other thread may use the store now.
 */
static void sqlite_close(struct store *s)
{
	struct sq_store *st = s->be;
	struct conn *cn, *next;

	if (!st)
		return;
	pthread_setspecific(st->key, NULL);
	pthread_key_delete(st->key);   /* no destructor runs after this */
	pthread_mutex_lock(&st->mu);
	cn = st->conns;
	st->conns = NULL;
	pthread_mutex_unlock(&st->mu);
	for (; cn; cn = next) {
		next = cn->next;
		conn_free(cn);
	}
	vcache_free(st->vc); /* after the connections: their searches may pin entries */
	s->epoch = &s->epoch_own;
	store_epoch_unmap(st->epoch);
	pthread_cond_destroy(&st->fcv);
	pthread_mutex_destroy(&st->fmu);
	pthread_cond_destroy(&st->wcv);
	pthread_mutex_destroy(&st->wmu);
	pthread_mutex_destroy(&st->mu);
	free(st->path);
	free(st);
	s->be = NULL;
}

/* store_ops.thread_done: close the calling thread's connection, if any. */
static void sqlite_thread_done(struct store *s)
{
	struct sq_store *st = s->be;
	struct conn *cn = pthread_getspecific(st->key);

	if (!cn)
		return;
	pthread_setspecific(st->key, NULL);
	conn_unlink(cn);
	conn_free(cn);
}

/* ---- schema ---- */

/* PRAGMA user_version into *version. */
static enum err read_user_version(struct conn *cn, int *version, struct ctx *c)
{
	struct q q = q_start(cn, ST_USER_VERSION);
	int rc = q_step(&q);
	enum err e = ERR_OK;

	if (rc == SQLITE_DONE)
		note_error(cn, rc = SQLITE_ERROR);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(q.st, 0);
	else
		e = fail(cn, rc, c, "cannot read the schema version");
	q_end(&q);
	return e;
}

/* The error for a database written by a newer build. */
static enum err newer_schema(int version, struct ctx *c)
{
	return ctx_errorf(c, ERR_UNSUPPORTED,
			  "database schema version %d is newer than this build supports (%d)",
			  version, STORE_SCHEMA_VERSION);
}

/*
 * The embedded migration numbered 'n' ("src/store/schema/sqlite/0001_x.sql":
 * four digits, an underscore).  ERR_IO when it is missing or not unique:
 * the build is broken.
 */
static enum err find_migration(int n, const struct embedded_file **out, struct ctx *c)
{
	const size_t plen = strlen(MIGRATION_DIR);

	*out = NULL;
	for (const struct embedded_file *f = embedded_files; f->path; f++) {
		char digits[5];
		int64_t v;

		if (strncmp(f->path, MIGRATION_DIR, plen) != 0 || !str_ends(f->path, ".sql"))
			continue;
		if (strlen(f->path + plen) < 6 || f->path[plen + 4] != '_')
			continue;
		memcpy(digits, f->path + plen, 4);
		digits[4] = '\0';
		if (str_to_i64(digits, 1, 9999, &v) || v != n)
			continue;
		if (*out)
			return ctx_errorf(c, ERR_IO, "two schema migrations are numbered %04d", n);
		*out = f;
	}
	if (!*out)
		return ctx_errorf(c, ERR_IO, "schema migration %04d is missing from this build", n);
	return ERR_OK;
}

/* Apply migration 'n' in its own transaction (nothing if another process did). */
static enum err apply_migration(struct conn *cn, int n, struct ctx *c)
{
	const struct embedded_file *f;
	char *errmsg = NULL;
	char sql[64];
	bool open = false;
	enum err e;
	int rc, v = 0;

	e = find_migration(n, &f, c);
	if (e)
		goto out;
	e = write_lock(cn, c);
	if (e)
		goto out;
	rc = run(cn, ST_BEGIN);
	if (rc != SQLITE_OK) {
		e = fail(cn, rc, c, "cannot start schema migration %04d", n);
		goto out;
	}
	open = true;
	e = read_user_version(cn, &v, c);
	if (e)
		goto out;
	if (v > STORE_SCHEMA_VERSION) {
		e = newer_schema(v, c);
		goto out;
	}
	if (v < n) {
		rc = sqlite3_exec(cn->db, (const char *)f->data, NULL, NULL, &errmsg);
		if (rc != SQLITE_OK) {
			note_error(cn, rc);
			if (errmsg)
				str_copy(cn->err_msg, errmsg, sizeof(cn->err_msg));
			e = fail(cn, rc, c, "schema migration '%s' failed",
				 f->path + strlen(MIGRATION_DIR));
			goto out;
		}
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", n);
		rc = sqlite3_exec(cn->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			note_error(cn, rc);
			e = fail(cn, rc, c, "cannot record schema version %d", n);
			goto out;
		}
	}
	rc = run(cn, ST_COMMIT);
	if (rc != SQLITE_OK) {
		e = fail(cn, rc, c, "cannot commit schema migration %04d", n);
		goto out;
	}
	open = false;
out:
	if (open)
		undo(cn, ST_ROLLBACK);
	write_unlock(cn);
	sqlite3_free(errmsg);
	if (!e && v < n)
		e = flush_commits(cn, c);
	return e;
}

/*
 * store_ops.migrate: apply migrations user_version+1 .. STORE_SCHEMA_VERSION,
 * each in its own BEGIN IMMEDIATE transaction.  ERR_UNSUPPORTED for a newer
 * database, ERR_INVALID inside a transaction, ERR_IO when a migration is
 * missing or fails (that migration is rolled back; earlier ones stay).
 */
static enum err sqlite_migrate(struct store *s, struct ctx *c)
{
	struct conn *cn;
	enum err e;
	int v = 0;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	if (cn->in_tx || cn->walking)
		return ctx_errorf(c, ERR_INVALID, "cannot migrate inside a transaction");
	e = read_user_version(cn, &v, c);
	if (e)
		return e;
	if (v > STORE_SCHEMA_VERSION)
		return newer_schema(v, c);
	for (int n = v + 1; n <= STORE_SCHEMA_VERSION; n++) {
		e = apply_migration(cn, n, c);
		if (e)
			return e;
	}
	return ERR_OK;
}

/* veranda_fold(text): the store_fold_fn given as the function's user data. */
static void fold_sql(sqlite3_context *x, int argc, sqlite3_value **argv)
{
	store_fold_fn fold = *(store_fold_fn *)sqlite3_user_data(x);
	const unsigned char *in = sqlite3_value_text(argv[0]);
	struct buf b = BUF_INIT(1 << 20);

	(void)argc;
	if (!in) {
		sqlite3_result_null(x);
	} else if (fold((const char *)in, &b) == ERR_INVALID || b.err) {
		/* not UTF-8 or too long: keep the stored form */
		sqlite3_result_value(x, argv[0]);
	} else {
		sqlite3_result_text(x, b.data ? b.data : "", (int)b.len, SQLITE_TRANSIENT);
	}
	buf_release(&b);
}

/*
 * store_ops.refold, inside the caller's transaction: string index values
 * and token texts (not the identifier values of :of-type rows) folded
 * again from their stored forms.
 */
static enum err sqlite_refold(struct store *s, store_fold_fn fold, struct ctx *c)
{
	static const char sql[] =
		"UPDATE ix_string SET norm = veranda_fold(norm) WHERE norm <> veranda_fold(norm);"
		"UPDATE ix_token SET text = veranda_fold(text)"
		" WHERE text IS NOT NULL AND param NOT LIKE '%:of-type' AND text <> veranda_fold(text);";
	struct conn *cn;
	enum err e = conn_get(s, &cn, c);
	int rc;

	if (e)
		return e;
	rc = sqlite3_create_function(cn->db, "veranda_fold", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
				     &fold, fold_sql, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(cn->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		e = fail(cn, rc, c, "cannot fold the search forms again");
	sqlite3_create_function(cn->db, "veranda_fold", 1, SQLITE_UTF8, NULL, NULL, NULL, NULL);
	return e;
}

/* store_ops.schema_version: PRAGMA user_version (0 for a new file). */
static enum err sqlite_schema_version(struct store *s, int *version, struct ctx *c)
{
	struct conn *cn;
	enum err e = conn_get(s, &cn, c);

	return e ? e : read_user_version(cn, version, c);
}

/*
 * store_ops.ping: read the schema version from the file.  ERR_UNSUPPORTED
 * when it is newer than this build, ERR_IO when older or unreadable.
 */
static enum err sqlite_ping(struct store *s, struct ctx *c)
{
	struct conn *cn;
	enum err e;
	int v = 0;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	e = read_user_version(cn, &v, c);
	if (e)
		return e;
	if (v > STORE_SCHEMA_VERSION)
		return newer_schema(v, c);
	if (v < STORE_SCHEMA_VERSION)
		return ctx_errorf(c, ERR_IO,
				  "database schema version %d is older than this build needs (%d)",
				  v, STORE_SCHEMA_VERSION);
	return ERR_OK;
}

/* ---- transactions ---- */

/*
 * store_ops.begin: BEGIN IMMEDIATE, so the write lock is taken now (waiting
 * up to the busy timeout, else ERR_BUSY) and later statements of the
 * transaction never fail for lock upgrades.  ERR_INVALID when one is open.
 */
static enum err sqlite_begin(struct store *s, struct ctx *c)
{
	struct conn *cn;
	enum err e;
	int rc;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	if (cn->in_tx)
		return ctx_errorf(c, ERR_INVALID, "a transaction is already open on this thread");
	if (cn->walking)
		return ctx_errorf(c, ERR_INVALID, "cannot write from inside a history or search walk");
	e = write_lock(cn, c);
	if (e)
		return e;
	rc = run(cn, ST_BEGIN);
	if (rc != SQLITE_OK) {
		write_unlock(cn);
		return fail(cn, rc, c, "cannot begin a transaction");
	}
	tx_reset(cn, true);
	cn->changes = sqlite3_total_changes64(cn->db);
	return ERR_OK;
}

/*
 * Commit the connection's transaction.  On failure it is rolled back, and
 * an I/O-class failure sets the sticky state (a failed fsync is not
 * retried).
 */
static enum err commit_tx(struct conn *cn, struct ctx *c)
{
	int rc = run(cn, ST_COMMIT);
	enum err e;

	if (rc == SQLITE_OK)
		return ERR_OK;
	e = fail(cn, rc, c, "cannot commit");
	if (!sqlite3_get_autocommit(cn->db))
		undo(cn, ST_ROLLBACK);
	return e;
}

/*
 * store_ops.commit: commit the thread's transaction.  Whatever the outcome
 * the thread has no transaction afterwards (a failed one is rolled back).
 */
static enum err sqlite_commit(struct store *s, struct ctx *c)
{
	struct conn *cn;
	bool wrote = false;
	enum err e;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	if (!cn->in_tx)
		return ctx_errorf(c, ERR_INVALID, "no transaction is open on this thread");
	if (cn->broken) {
		e = ctx_errorf(c, ERR_IO,
			       "cannot commit: a write in this transaction failed part-way (%s);"
			       " the transaction was rolled back", cn->broken_why);
		undo(cn, ST_ROLLBACK);
	} else if ((e = tx_alive(cn, c)) != ERR_OK) {
		if (!sqlite3_get_autocommit(cn->db))
			undo(cn, ST_ROLLBACK);
	} else if ((e = commit_tx(cn, c)) == ERR_OK) {
		wrote = sqlite3_total_changes64(cn->db) != cn->changes;
	}
	tx_reset(cn, false);       /* the write lock goes before the flush */
	if (wrote)
		e = flush_commits(cn, c);
	return e;
}

/* store_ops.rollback: roll back the thread's transaction, if any. */
static void sqlite_rollback(struct store *s)
{
	struct sq_store *st = s->be;
	struct conn *cn = pthread_getspecific(st->key);

	if (!cn || !cn->in_tx)
		return;
	if (!sqlite3_get_autocommit(cn->db))
		undo(cn, ST_ROLLBACK);
	tx_reset(cn, false);
}

/* store_ops.savepoint: nested savepoint; ERR_INVALID outside a transaction. */
static enum err sqlite_savepoint(struct store *s, struct ctx *c)
{
	struct conn *cn;
	enum err e;
	int rc;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	if (!cn->in_tx)
		return ctx_errorf(c, ERR_INVALID, "no transaction is open on this thread");
	e = tx_writable(cn, c);
	if (e)
		return e;
	rc = run(cn, ST_SP);
	if (rc != SQLITE_OK)
		return fail(cn, rc, c, "cannot set a savepoint");
	cn->nsp++;
	return ERR_OK;
}

/*
 * store_ops.savepoint_end: release the innermost savepoint (keep) or undo
 * everything since it and drop it.  ERR_INVALID when none is open.
 */
static enum err sqlite_savepoint_end(struct store *s, bool keep, struct ctx *c)
{
	struct conn *cn;
	enum err e;
	int rc;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	if (!cn->in_tx || cn->nsp == 0)
		return ctx_errorf(c, ERR_INVALID, "no savepoint is open on this thread");
	e = tx_alive(cn, c);
	if (e)
		return e;
	if (keep) {
		rc = run(cn, ST_SP_RELEASE);
		if (rc != SQLITE_OK)
			return fail(cn, rc, c, "cannot release a savepoint");
		/* a broken put inside it now belongs to the enclosing level */
		if (cn->broken && cn->broken_depth >= cn->nsp)
			cn->broken_depth = cn->nsp - 1;
	} else {
		undo(cn, ST_SP_UNDO);
		undo(cn, ST_SP_RELEASE);  /* ROLLBACK TO leaves the savepoint open */
		/* undoing a savepoint taken before the broken put repairs it */
		if (cn->broken && cn->nsp <= cn->broken_depth)
			cn->broken = false;
	}
	cn->nsp--;
	return ERR_OK;
}

/* ---- writes ---- */

/* rid, version and deleted flag of a resource; *rid = 0 when it never existed. */
static int lookup(struct conn *cn, const char *type, const char *id, int64_t *rid,
		  int64_t *version, bool *deleted)
{
	struct q q = q_start(cn, ST_LOOKUP);
	int rc;

	*rid = 0;
	*version = 0;
	*deleted = false;
	q_text(&q, 1, type);
	q_text(&q, 2, id);
	rc = q_step(&q);
	if (rc == SQLITE_ROW) {
		*rid = sqlite3_column_int64(q.st, 0);
		*version = sqlite3_column_int64(q.st, 1);
		*deleted = sqlite3_column_int(q.st, 2) != 0;
	}
	q_end(&q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Bind one index row at parameter offset 'base' of a multi-row insert. */
static void bind_ix_row(struct q *q, int base, int64_t rid, int64_t n, const char *type,
			const struct store_ix_row *x)
{
	q_int(q, base + 1, rid);
	q_int(q, base + 2, n);
	q_text(q, base + 3, type);
	q_text(q, base + 4, x->param);
	switch (x->kind) {
	case STORE_IX_TOKEN:
	case STORE_IX_REFERENCE:
		q_text(q, base + 5, x->a);
		q_text(q, base + 6, x->b);
		q_text(q, base + 7, x->c);
		break;
	case STORE_IX_STRING:
		q_text(q, base + 5, x->a);
		q_text(q, base + 6, x->b);
		break;
	case STORE_IX_DATE:
		q_int(q, base + 5, x->lo);
		q_int(q, base + 6, x->hi);
		break;
	case STORE_IX_QUANTITY:
		q_real(q, base + 5, x->num);
		q_real(q, base + 6, x->nlo);
		q_real(q, base + 7, x->nhi);
		q_text(q, base + 8, x->a);
		q_text(q, base + 9, x->b);
		break;
	case STORE_IX_NUMBER:
		q_real(q, base + 5, x->num);
		q_real(q, base + 6, x->nlo);
		q_real(q, base + 7, x->nhi);
		break;
	case STORE_IX_URI:
		q_text(q, base + 5, x->a);
		break;
	}
}

/*
 * Insert the index rows of a put, kind by kind, IX_BATCH rows per
 * statement (fewer statements is most of the cost).  Row n is p->ix[n].
 * Order matters: date rows go in before reference rows, because the
 * trigger of schema 5 copies the resource's newest date onto its
 * references to patients as they are inserted (ix_reference.sort_hi,
 * which newest-first patient searches walk).  Inserting references first
 * would silently leave that sort key empty.
 */
static int insert_ix_rows(struct conn *cn, const struct store_put *p, int64_t rid, int64_t seq)
{
	size_t pick[IX_BATCH];

	for (int kind = 0; kind < STORE_IX_KINDS; kind++) {
		size_t k = 0;

		for (size_t i = 0; i <= p->nix; i++) {
			struct q q;
			int rc;

			if (i < p->nix && (int)p->ix[i].kind == kind)
				pick[k++] = i;
			if (k < IX_BATCH && (i < p->nix || k == 0))
				continue;
			q = q_start(cn, ix_insert_id((enum store_ix)kind, k));
			for (size_t j = 0; j < k; j++) {
				int base = (int)j * ix_tables[kind].ncols;

				bind_ix_row(&q, base, rid, (int64_t)pick[j], p->type, &p->ix[pick[j]]);
				q_int(&q, base + ix_tables[kind].ncols, seq);
			}
			rc = q_run(&q);
			if (rc != SQLITE_OK)
				return rc;
			k = 0;
		}
	}
	return SQLITE_OK;
}

bool sq_patient_token_param(const char *param)
{
	return !strcmp(param, "category") || !strcmp(param, "code");
}

/*
 * Does the put have rows for ix_patient_token (schema 6): a reference to a
 * Patient and a 'category' or 'code' token with a code?  Most resources
 * do; the check spares the statement for the rest.
 */
static bool has_patient_tokens(const struct store_put *p)
{
	bool ref = false, tok = false;

	for (size_t i = 0; i < p->nix && !(ref && tok); i++) {
		const struct store_ix_row *x = &p->ix[i];

		if (x->kind == STORE_IX_REFERENCE)
			ref = ref || (x->a && x->b && !strcmp(x->a, "Patient"));
		else if (x->kind == STORE_IX_TOKEN)
			tok = tok || (x->b && sq_patient_token_param(x->param));
	}
	return ref && tok;
}

/*
 * The rows of one put after the version check: new resource row if
 * needed, version row, current pointer, index and compartment rows.
 * Returns SQLITE_OK or the failing SQLite code (noted on the connection);
 * *wrote says whether a statement before the failing one changed rows
 * (each statement on its own is atomic).
 */
static int write_rows(struct conn *cn, const struct store_put *p, int64_t rid,
		      bool had_rows, bool *wrote)
{
	sqlite3 *db = cn->db;
	bool del = p->op == STORE_DELETE;
	int64_t seq;
	struct q q;
	int rc;

	bool created = !rid;

	/* A new resource row gets its final values at once, so the indexes on
	 * resource are written once; only seq (not indexed) follows. */
	if (created) {
		q = q_start(cn, ST_RES_INSERT);
		q_text(&q, 1, p->type);
		q_text(&q, 2, p->id);
		q_int(&q, 3, p->version);
		q_int(&q, 4, p->last_updated);
		q_int(&q, 5, del);
		rc = q_run(&q);
		if (rc != SQLITE_OK)
			return rc;
		rid = sqlite3_last_insert_rowid(db);
		*wrote = true;
	}

	q = q_start(cn, ST_VER_INSERT);
	q_int(&q, 1, rid);
	q_text(&q, 2, p->type);
	q_text(&q, 3, p->id);
	q_int(&q, 4, p->version);
	q_int(&q, 5, p->last_updated);
	q_int(&q, 6, del);
	q_blob(&q, 7, del ? NULL : p->json, del ? 0 : p->json_len);
	rc = q_run(&q);
	if (rc != SQLITE_OK)
		return rc;
	seq = sqlite3_last_insert_rowid(db);
	*wrote = true;

	if (created) {
		q = q_start(cn, ST_RES_SEQ);
		q_int(&q, 1, rid);
		q_int(&q, 2, seq);
	} else {
		q = q_start(cn, ST_RES_UPDATE);
		q_int(&q, 1, rid);
		q_int(&q, 2, p->version);
		q_int(&q, 3, p->last_updated);
		q_int(&q, 4, del);
		q_int(&q, 5, seq);
	}
	rc = q_run(&q);
	if (rc != SQLITE_OK)
		return rc;

	if (had_rows) {
		for (size_t i = 0; i < sizeof(ix_delete) / sizeof(ix_delete[0]); i++) {
			q = q_start(cn, ix_delete[i]);
			q_int(&q, 1, rid);
			rc = q_run(&q);
			if (rc != SQLITE_OK)
				return rc;
		}
	}
	if (del)
		return SQLITE_OK;

	rc = insert_ix_rows(cn, p, rid, seq);
	if (rc != SQLITE_OK)
		return rc;
	if (has_patient_tokens(p)) {
		q = q_start(cn, ST_INS_PATIENT_TOKEN);
		q_int(&q, 1, rid);
		rc = q_run(&q);
		if (rc != SQLITE_OK)
			return rc;
	}
	for (size_t i = 0; i < p->npatients; i++) {
		q = q_start(cn, ST_INS_COMPARTMENT);
		q_text(&q, 1, p->patients[i]);
		q_text(&q, 2, p->type);
		q_int(&q, 3, rid);
		q_int(&q, 4, seq);
		rc = q_run(&q);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/*
 * Write one version.  Outside an explicit transaction the put is its own
 * BEGIN IMMEDIATE ... COMMIT (the version check runs under the write
 * lock, so racing writers serialize) and a failure leaves nothing.
 *
 * Inside the caller's transaction a put takes no savepoint of its own
 * (copying pages to a savepoint journal is a third of the cost of a put).
 * The checks come before the first write, so a refused put (conflict)
 * writes nothing and the transaction goes on.  A put that fails after it
 * started writing -- in practice only when storage fails -- marks the
 * transaction broken: later writes and the commit are refused until the
 * caller rolls back, or rolls back to a savepoint taken before the put.
 * That is also how PostgreSQL treats a failed statement.
 */
static enum err sqlite_put(struct store *s, const struct store_put *p, struct ctx *c)
{
	struct conn *cn;
	bool own, deleted, wrote = false;
	int64_t rid, cur;
	enum err e;
	int rc;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	if (cn->walking)
		return ctx_errorf(c, ERR_INVALID, "cannot write from inside a history or search walk");
	e = tx_writable(cn, c);
	if (e)
		return e;
	own = !cn->in_tx;
	if (own) {
		e = write_lock(cn, c);
		if (e)
			return e;
		rc = run(cn, ST_BEGIN);
		if (rc != SQLITE_OK) {
			write_unlock(cn);
			return fail(cn, rc, c, "cannot write '%s/%s'", p->type, p->id);
		}
	}

	rc = lookup(cn, p->type, p->id, &rid, &cur, &deleted);
	if (rc != SQLITE_OK) {
		e = fail(cn, rc, c, "cannot read '%s/%s'", p->type, p->id);
		goto out;
	}
	if (p->expect_version >= 0 && p->expect_version != cur) {
		e = ctx_errorf(c, ERR_CONFLICT, "version conflict: expected %lld, found %lld",
			       (long long)p->expect_version, (long long)cur);
		goto out;
	}
	if (p->version <= cur) {
		e = ctx_errorf(c, ERR_CONFLICT,
			       "version conflict: version %lld is not newer than %lld",
			       (long long)p->version, (long long)cur);
		goto out;
	}
	rc = write_rows(cn, p, rid, rid != 0 && !deleted, &wrote);
	if (rc != SQLITE_OK) {
		e = fail(cn, rc, c, "cannot write '%s/%s'", p->type, p->id);
		goto out;
	}
	if (own) {
		e = commit_tx(cn, c);      /* rolls back itself on failure */
		write_unlock(cn);
		return e ? e : flush_commits(cn, c);
	}
out:
	if (own) {
		undo(cn, ST_ROLLBACK);
		write_unlock(cn);
	} else if (e && wrote) {
		cn->broken = true;
		cn->broken_depth = cn->nsp;
		str_copy(cn->broken_why, cn->fail_msg, sizeof(cn->broken_why));
	}
	return e;
}

/* ---- reads ---- */

/* Copy the current row (VERSION_COLS) into 'r'.  ERR_TOOBIG past STORE_JSON_MAX. */
static enum err read_row(sqlite3_stmt *st, struct store_resource *r, struct ctx *c)
{
	const unsigned char *t;
	const void *json;
	int n;

	t = sqlite3_column_text(st, 0);
	str_copy(r->type, t ? (const char *)t : "", sizeof(r->type));
	t = sqlite3_column_text(st, 1);
	str_copy(r->id, t ? (const char *)t : "", sizeof(r->id));
	r->version = sqlite3_column_int64(st, 2);
	r->last_updated = sqlite3_column_int64(st, 3);
	r->deleted = sqlite3_column_int(st, 4) != 0;
	r->seq = sqlite3_column_int64(st, 5);
	json = sqlite3_column_blob(st, 6);
	n = sqlite3_column_bytes(st, 6);
	if (store_resource_set_json(r, json, n > 0 ? (size_t)n : 0))
		return ctx_errorf(c, ERR_TOOBIG, "stored resource '%s/%s' is too large to read",
				  r->type, r->id);
	return ERR_OK;
}

/* The space-separated ids of list (NULL: none) into out[0..max). */
static void split_patients(const char *list, char (*out)[STORE_PATIENT_ID_SIZE], size_t max,
			   size_t *n)
{
	*n = 0;
	while (list && *list && *n < max) {
		size_t len = strcspn(list, " ");

		if (len < STORE_PATIENT_ID_SIZE) {
			memcpy(out[*n], list, len);
			out[(*n)++][len] = '\0';
		}
		list += len;
		list += *list == ' ';
	}
}

/*
 * store_ops.get: the current version (version 0) or the given one, deleted
 * versions included (deleted = true, empty json).  ERR_NOTFOUND otherwise.
 * 'out' is overwritten; its json buffer is reused.
 */
/*
 * The read of store_get(); with 'patient', *in tells whether the current
 * version is in that patient's compartment; else with 'patients', the
 * compartment's patients go to patients[0..max) (*n of them).
 */
static enum err get(struct store *s, const char *type, const char *id, int64_t version,
		    struct store_resource *out, const char *patient, bool *in,
		    char (*patients)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n, struct ctx *c)
{
	struct conn *cn;
	struct q q;
	enum err e;
	int rc;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	if (patient)
		q = q_start(cn, version ? ST_GET_VERSION_IN : ST_GET_CURRENT_IN);
	else if (patients)
		q = q_start(cn, version ? ST_GET_VERSION_C : ST_GET_CURRENT_C);
	else
		q = q_start(cn, version ? ST_GET_VERSION : ST_GET_CURRENT);
	q_text(&q, 1, type);
	q_text(&q, 2, id);
	if (version)
		q_int(&q, 3, version);
	if (patient)
		q_text(&q, 4, patient);
	rc = q_step(&q);
	if (rc == SQLITE_ROW) {
		e = read_row(q.st, out, c);
		if (!e && patient)
			*in = sqlite3_column_int(q.st, 7) != 0;
		else if (!e && patients)
			split_patients((const char *)sqlite3_column_text(q.st, 7), patients, max, n);
	} else if (rc == SQLITE_DONE && version)
		e = ctx_errorf(c, ERR_NOTFOUND, "version %lld of '%s/%s' not found",
			       (long long)version, type, id);
	else if (rc == SQLITE_DONE)
		e = ctx_errorf(c, ERR_NOTFOUND, "resource '%s/%s' not found", type, id);
	else
		e = fail(cn, rc, c, "cannot read '%s/%s'", type, id);
	q_end(&q);
	return e;
}

static enum err sqlite_get(struct store *s, const char *type, const char *id, int64_t version,
			   struct store_resource *out, struct ctx *c)
{
	return get(s, type, id, version, out, NULL, NULL, NULL, 0, NULL, c);
}

/* store_ops.get_compartment: sqlite_get and the compartment, one statement. */
static enum err sqlite_get_compartment(struct store *s, const char *type, const char *id,
				       int64_t version, struct store_resource *out,
				       char (*patients)[STORE_PATIENT_ID_SIZE], size_t max,
				       size_t *n, struct ctx *c)
{
	return get(s, type, id, version, out, NULL, NULL, patients, max, n, c);
}

/* store_ops.get_in: sqlite_get and a compartment check, one statement. */
static enum err sqlite_get_in(struct store *s, const char *type, const char *id, int64_t version,
			      const char *patient, struct store_resource *out, bool *in,
			      struct ctx *c)
{
	return get(s, type, id, version, out, patient, in, NULL, 0, NULL, c);
}

/* store_ops.current_version: version and deleted flag, 0 when never written. */
static enum err sqlite_current_version(struct store *s, const char *type, const char *id,
				       int64_t *version, bool *deleted, struct ctx *c)
{
	struct conn *cn;
	int64_t rid;
	bool del;
	enum err e;
	int rc;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	rc = lookup(cn, type, id, &rid, version, &del);
	if (rc != SQLITE_OK)
		return fail(cn, rc, c, "cannot read '%s/%s'", type, id);
	if (deleted)
		*deleted = del;
	return ERR_OK;
}

/* Bind the history filters; unset bounds become the widest ones. */
static void bind_history(struct q *q, const struct store_history_q *hq, bool page)
{
	q_named_text(q, ":type", hq->type);
	q_named_text(q, ":id", hq->id);
	q_named(q, ":since", hq->since ? hq->since : INT64_MIN);
	q_named(q, ":at_most", hq->at_most ? hq->at_most : INT64_MAX);
	if (page) {
		q_named(q, ":before", hq->before_seq ? hq->before_seq : INT64_MAX);
		q_named(q, ":limit", hq->limit + 1);   /* one more tells whether more exist */
	}
}

/* A single-value count(*) query. */
static int count_query(struct q *q, int64_t *n)
{
	int rc = q_step(q);

	if (rc == SQLITE_ROW)
		*n = sqlite3_column_int64(q->st, 0);
	else if (rc == SQLITE_DONE)
		note_error(q->cn, rc = SQLITE_ERROR);
	q_end(q);
	return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/*
 * History page.  Outside an explicit transaction the count and the page
 * are read in one read transaction, so they agree.  'fn' gets a
 * store_resource that is reused for the next row (copy what you keep); it
 * may call store_get() but not write or walk history itself.
 */
static enum err sqlite_history(struct store *s, const struct store_history_q *hq,
			       store_resource_fn fn, void *arg, bool *more, int64_t *total,
			       struct ctx *c)
{
	enum stmt_id page_id = hq->id ? ST_HIST_ID : hq->type ? ST_HIST_TYPE : ST_HIST_ALL;
	enum stmt_id count_id = hq->id ? ST_HCOUNT_ID : hq->type ? ST_HCOUNT_TYPE : ST_HCOUNT_ALL;
	struct store_resource r;
	bool read_tx = false;
	struct conn *cn;
	int64_t n = 0;
	struct q q;
	enum err e;
	int rc;

	store_resource_init(&r);
	e = conn_get(s, &cn, c);
	if (e)
		goto out;
	if (cn->walking) {
		e = ctx_errorf(c, ERR_INVALID, "history cannot be walked from a history callback");
		goto out;
	}
	if (!cn->in_tx) {
		rc = run(cn, ST_BEGIN_READ);
		if (rc != SQLITE_OK) {
			e = fail(cn, rc, c, "cannot read history");
			goto out;
		}
		read_tx = true;
	}
	if (total) {
		q = q_start(cn, count_id);
		bind_history(&q, hq, false);
		rc = count_query(&q, total);
		if (rc != SQLITE_OK) {
			e = fail(cn, rc, c, "cannot count history");
			goto out;
		}
	}
	q = q_start(cn, page_id);
	bind_history(&q, hq, true);
	cn->walking++;
	while ((rc = q_step(&q)) == SQLITE_ROW) {
		int stop;

		if (n == hq->limit) {
			if (more)
				*more = true;
			break;
		}
		e = read_row(q.st, &r, c);
		if (e)
			break;
		n++;
		if (fn && (stop = fn(arg, &r)) != 0) {
			e = (enum err)stop;
			break;
		}
	}
	cn->walking--;
	if (!e && rc != SQLITE_ROW && rc != SQLITE_DONE)
		e = fail(cn, rc, c, "cannot read history");
	q_end(&q);
out:
	if (read_tx)
		undo(cn, ST_ROLLBACK);   /* a read transaction: nothing to keep */
	store_resource_release(&r);
	return e;
}

/* store_ops.count: current, not deleted resources of 'type' (NULL: all). */
static enum err sqlite_count(struct store *s, const char *type, int64_t *n, struct ctx *c)
{
	struct conn *cn;
	struct q q;
	enum err e;
	int rc;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	q = q_start(cn, type ? ST_COUNT_TYPE : ST_COUNT_ALL);
	if (type)
		q_text(&q, 1, type);
	rc = count_query(&q, n);
	return rc == SQLITE_OK ? ERR_OK : fail(cn, rc, c, "cannot count resources");
}

/* store_ops.last_seq: the highest resource_version.seq, 0 when empty. */
static enum err sqlite_last_seq(struct store *s, int64_t *seq, struct ctx *c)
{
	struct conn *cn;
	struct q q;
	enum err e;
	int rc;

	e = conn_get(s, &cn, c);
	if (e)
		return e;
	q = q_start(cn, ST_LAST_SEQ);
	rc = count_query(&q, seq);
	return rc == SQLITE_OK ? ERR_OK : fail(cn, rc, c, "cannot read the write sequence");
}

/* store_ops.in_compartment: one probe of the compartment's primary key. */
static enum err sqlite_in_compartment(struct store *s, const char *patient, const char *type,
				      const char *id, bool *yes, struct ctx *c)
{
	struct conn *cn;
	struct q q;
	int64_t n = 0;
	enum err e;
	int rc;

	if ((e = conn_get(s, &cn, c)))
		return e;
	q = q_start(cn, ST_IN_COMPARTMENT);
	sq_bind_text(&q, 1, type);
	sq_bind_text(&q, 2, id);
	sq_bind_text(&q, 3, patient);
	rc = count_query(&q, &n);
	*yes = n > 0;
	return rc == SQLITE_OK ? ERR_OK : fail(cn, rc, c, "cannot read the patient compartment");
}

/* store_ops.compartment_of: the patients whose records hold type/id. */
static enum err sqlite_compartment_of(struct store *s, const char *type, const char *id,
				      char (*out)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
				      struct ctx *c)
{
	struct conn *cn;
	struct q q;
	enum err e;
	int rc;

	*n = 0;
	if ((e = conn_get(s, &cn, c)))
		return e;
	q = q_start(cn, ST_COMPARTMENT_OF);
	sq_bind_text(&q, 1, type);
	sq_bind_text(&q, 2, id);
	while ((rc = q_step(&q)) == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_text(q.st, 0);
		if (*n < max && p)
			str_copy(out[(*n)++], (const char *)p, STORE_PATIENT_ID_SIZE);
	}
	q_end(&q);
	return rc == SQLITE_DONE ? ERR_OK : fail(cn, rc, c, "cannot read the patient compartment");
}

/* ---- shared with sqlite_search.c (sqlite_int.h) ---- */

enum err sq_conn_get(struct store *s, struct conn **out, struct ctx *c)
{
	return conn_get(s, out, c);
}

sqlite3 *sq_conn_db(struct conn *cn)
{
	return cn->db;
}

void sq_conn_deadline(struct conn *cn, bool on)
{
	int ms = atomic_load(&cn->st->s->search_ms);

	cn->deadline_us = on && ms > 0 ? clock_mono_us() + (int64_t)ms * 1000 : 0;
}

int sq_conn_walk(struct conn *cn, int delta)
{
	int before = cn->walking;

	cn->walking += delta;
	return before;
}

struct sq_search **sq_conn_search(struct conn *cn)
{
	return &cn->search;
}

void sq_note_error(struct conn *cn, int rc)
{
	note_error(cn, rc);
}

enum err sq_fail(struct conn *cn, int rc, struct ctx *c, const char *what)
{
	return fail(cn, rc, c, "%s", what);
}

void sq_bind_text(struct q *q, int i, const char *s)
{
	q_text(q, i, s);
}

void sq_bind_int(struct q *q, int i, int64_t v)
{
	q_int(q, i, v);
}

void sq_bind_real(struct q *q, int i, double v)
{
	q_real(q, i, v);
}

int sq_step(struct q *q)
{
	return q_step(q);
}

void sq_end(struct q *q)
{
	q_end(q);
}

enum err sq_read_row(sqlite3_stmt *st, struct store_resource *r, struct ctx *c)
{
	return read_row(st, r, c);
}

struct vcache *sq_conn_vcache(struct conn *cn)
{
	return cn->st->vc;
}

/*
 * May rows this connection reads go into the version cache?  Not inside
 * its own transaction: a version written there may yet be rolled back and
 * its seq given to another.  Outside one it reads committed rows only.
 */
bool sq_conn_may_cache(struct conn *cn)
{
	return !cn->in_tx && cn->nsp == 0;
}

/* Connections keep the cache they found: a second call changes nothing. */
static void sqlite_version_cache(struct store *s, size_t bytes)
{
	struct sq_store *st = s->be;

	if (!st->vc)
		st->vc = vcache_new(bytes);
}

static void sqlite_version_cache_stats(struct store *s, struct store_cache_stats *out)
{
	vcache_stats(((struct sq_store *)s->be)->vc, out);
}

/* A deferred BEGIN unless the caller's transaction is open. */
enum err sq_read_begin(struct conn *cn, bool *began, struct ctx *c)
{
	int rc;

	*began = false;
	if (cn->in_tx)
		return ERR_OK;
	rc = run(cn, ST_BEGIN_READ);
	if (rc != SQLITE_OK)
		return fail(cn, rc, c, "cannot start a read transaction");
	*began = true;
	return ERR_OK;
}

/* A read transaction has nothing to keep: roll it back. */
void sq_read_end(struct conn *cn, bool began)
{
	if (began)
		undo(cn, ST_ROLLBACK);
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.thread_done = sqlite_thread_done,
	.migrate = sqlite_migrate,
	.schema_version = sqlite_schema_version,
	.ping = sqlite_ping,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.savepoint = sqlite_savepoint,
	.savepoint_end = sqlite_savepoint_end,
	.put = sqlite_put,
	.get = sqlite_get,
	.get_compartment = sqlite_get_compartment,
	.get_in = sqlite_get_in,
	.current_version = sqlite_current_version,
	.history = sqlite_history,
	.count = sqlite_count,
	.last_seq = sqlite_last_seq,
	.search = sqlite_search,
	.search_explain = sqlite_search_explain,
	.version_cache = sqlite_version_cache,
	.version_cache_stats = sqlite_version_cache_stats,
	.include = sqlite_include,
	.revinclude = sqlite_revinclude,
	.user_insert = sqlite_user_insert,
	.user_update = sqlite_user_update,
	.user_get = sqlite_user_get,
	.user_list = sqlite_user_list,
	.user_patients_set = sqlite_user_patients_set,
	.user_patients = sqlite_user_patients,
	.in_compartment = sqlite_in_compartment,
	.compartment_of = sqlite_compartment_of,
	.item_put = sqlite_item_put,
	.item_get = sqlite_item_get,
	.item_take = sqlite_item_take,
	.item_update = sqlite_item_update,
	.item_set_state = sqlite_item_set_state,
	.item_delete = sqlite_item_delete,
	.item_list = sqlite_item_list,
	.item_purge = sqlite_item_purge,
	.refold = sqlite_refold,
};
