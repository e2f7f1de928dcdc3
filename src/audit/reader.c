/*
 * reader.c - reading the audit log: queries, checkpoints, inclusion and
 * consistency proofs, receipts (and their offline check) and NDJSON
 * export with proofs.
 *
 * A struct audit_reader holds one query-only connection and a tree
 * reader; a mutex serializes its calls, and each call runs in one read
 * transaction so that a checkpoint and the leaves it covers come from the
 * same snapshot while the writer keeps appending.
 */
#include "audit/audit.h"
#include "audit/audit_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jose.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"

#define HL MERKLE_HASH_LEN

struct audit_reader {
	pthread_mutex_t mu;
	sqlite3 *db;
	struct tree_src *tree;
};

enum err audit_reader_open(const char *data_dir, struct audit_reader **out, struct ctx *c)
{
	struct audit_reader *r;
	sqlite3 *db = NULL;
	enum err e = adb_open(data_dir, false, &db, c);

	*out = NULL;
	if (e)
		return e;
	r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->db = db;
	r->tree = tree_src_new(db, "");
	*out = r;
	return ERR_OK;
}

void audit_reader_free(struct audit_reader *r)
{
	if (!r)
		return;
	tree_src_free(r->tree);
	sqlite3_close(r->db);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Take the reader and open a read transaction. */
static enum err enter(struct audit_reader *r, struct ctx *c)
{
	enum err e;

	pthread_mutex_lock(&r->mu);
	if ((e = adb_exec(r->db, "BEGIN", c)))
		pthread_mutex_unlock(&r->mu);
	return e;
}

static void leave(struct audit_reader *r)
{
	sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	pthread_mutex_unlock(&r->mu);
}

/* ---- queries ------------------------------------------------------------------- */

struct bindv {
	const char *s;
	int64_t i;
	bool is_int;
};

struct sqlb {
	struct buf sql;
	struct bindv v[64];
	int n;
};

static void bind_s(struct sqlb *q, const char *s)
{
	q->v[q->n].s = s;
	q->v[q->n].is_int = false;
	q->n++;
}

static void bind_i(struct sqlb *q, int64_t i)
{
	q->v[q->n].i = i;
	q->v[q->n].is_int = true;
	q->n++;
}

static bool present(const char *s)
{
	return s && *s;
}

/* Is type 'name' the type or category (the part before a '.') 'want' of length n? */
static bool type_is(const char *name, const char *want, size_t n)
{
	return n && strncmp(name, want, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

/*
 * Does type 'name' match one of the comma-separated types or categories
 * of 'list' (FHIR's comma: any of them)?
 */
static bool type_listed(const char *name, const char *list)
{
	for (const char *p = list; *p; ) {
		size_t n = strcspn(p, ",");

		if (type_is(name, p, n))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

/* The first item of 'list' that names no type or category, into bad[size]; false when none. */
static bool type_unknown(const char *list, char *bad, size_t size)
{
	for (const char *p = list; ; ) {
		size_t n = strcspn(p, ",");
		bool known = false;

		for (int t = 1; t < AUDIT_TYPE_COUNT && !known; t++)
			known = type_is(audit_types[t].name, p, n);
		if (!known) {
			snprintf(bad, size, "%.*s", (int)(n < 100 ? n : 100), p);
			return true;
		}
		if (!p[n])
			return false;
		p += n + 1;
	}
}

/* The WHERE clause of 'f' (and the seq bounds of an archive). */
static enum err build_where(const struct audit_filter *f, uint64_t seq_lo, uint64_t seq_hi,
			    struct sqlb *q, struct ctx *c)
{
	buf_adds(&q->sql, " WHERE r.body IS NOT NULL");
	if (present(f->node)) {
		buf_adds(&q->sql, " AND s.node = ?");
		bind_s(q, f->node);
	}
	if (seq_hi) {
		/* f->node is set: the archiver's range of one stream */
		buf_adds(&q->sql, " AND r.id >= (s.no << 48) + ? AND r.id < (s.no << 48) + ?");
		bind_i(q, (int64_t)seq_lo);
		bind_i(q, (int64_t)seq_hi);
	}
	if (present(f->patient)) {
		buf_adds(&q->sql, " AND r.patient = ?");
		bind_s(q, f->patient);
	}
	if (present(f->agent)) {
		buf_adds(&q->sql, " AND r.agent = ?");
		bind_s(q, f->agent);
	}
	if (present(f->client)) {
		buf_adds(&q->sql, " AND r.client = ?");
		bind_s(q, f->client);
	}
	if (present(f->type)) {
		int found = 0;
		bool fhir = false;
		char bad[128];

		if (type_unknown(f->type, bad, sizeof(bad)))
			return ctx_errorx(c, ERR_INVALID, "type",
					  "unknown audit event type or category '%s'", bad);
		/* the program's own type names ([a-z.-]) as literals: no bound on how many */
		buf_adds(&q->sql, " AND r.type IN (");
		for (int t = 1; t < AUDIT_TYPE_COUNT; t++) {
			const char *name = audit_types[t].name;
			if (type_listed(name, f->type)) {
				buf_addf(&q->sql, "%s'%s'", found ? "," : "", name);
				found++;
				fhir = fhir || str_starts(name, "fhir.");
			}
		}
		buf_addch(&q->sql, ')');
		/* the very condition of the partial index, so the planner may use it */
		if (!fhir)
			buf_adds(&q->sql, " AND r." AUDIT_SPECIAL_TYPES);
	}
	if (f->outcome >= 0) {
		buf_adds(&q->sql, " AND r.outcome = ?");
		bind_i(q, f->outcome);
	}
	if (present(f->request_id)) {
		buf_adds(&q->sql, " AND r.request_id = ?");
		bind_s(q, f->request_id);
	}
	if (present(f->trace_id)) {
		buf_adds(&q->sql, " AND r.trace_id = ?");
		bind_s(q, f->trace_id);
	}
	if (f->since_ms) {
		buf_adds(&q->sql, " AND r.time_ms >= ?");
		bind_i(q, f->since_ms);
	}
	if (f->until_ms) {
		buf_adds(&q->sql, " AND r.time_ms < ?");
		bind_i(q, f->until_ms);
	}
	if (f->after) {
		buf_adds(&q->sql, f->newest_first
					  ? " AND (r.time_ms, r.id) < (?, coalesce((SELECT no FROM stream"
					    " WHERE node = ?), 0) * 281474976710656 + ?)"
					  : " AND (r.time_ms, r.id) > (?, coalesce((SELECT no FROM stream"
					    " WHERE node = ?), 0) * 281474976710656 + ?)");
		bind_i(q, f->after->time_ms);
		bind_s(q, f->after->node);
		bind_i(q, (int64_t)f->after->seq);
	}
	buf_adds(&q->sql, f->newest_first ? " ORDER BY r.time_ms DESC, r.id DESC"
					  : " ORDER BY r.time_ms, r.id");
	if (f->limit) {
		buf_adds(&q->sql, " LIMIT ?");
		bind_i(q, (int64_t)(f->limit > INT64_MAX ? INT64_MAX : f->limit));
	}
	if (q->sql.err)
		return ctx_errorf(c, ERR_TOOBIG, "audit query too large");
	return ERR_OK;
}

static enum err run_query(sqlite3 *db, const struct audit_filter *f, uint64_t seq_lo,
			  uint64_t seq_hi, audit_row_fn fn, void *arg, struct ctx *c)
{
	struct sqlb q = {.sql = BUF_INIT(8192)};
	sqlite3_stmt *st = NULL;
	enum err e;
	int rc;

	buf_adds(&q.sql, "SELECT s.node, r.id, r.time_ms, r.body FROM record r"
			 " JOIN stream s ON s.no = r.id >> 48");
	if ((e = build_where(f, seq_lo, seq_hi, &q, c)) || (e = adb_prepare(db, q.sql.data, &st, c)))
		goto out;
	for (int i = 0; i < q.n; i++) {
		if (q.v[i].is_int)
			sqlite3_bind_int64(st, i + 1, q.v[i].i);
		else
			sqlite3_bind_text(st, i + 1, q.v[i].s, -1, SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *node = (const char *)sqlite3_column_text(st, 0);
		const char *body = (const char *)sqlite3_column_text(st, 3);
		if (!node || !body)
			continue;
		e = fn(arg, node, audit_rid_seq(sqlite3_column_int64(st, 1)), sqlite3_column_int64(st, 2),
		       body, (size_t)sqlite3_column_bytes(st, 3));
		if (e)
			goto out;
	}
	if (rc != SQLITE_DONE)
		e = adb_fail(c, ERR_IO, db, "audit query");
out:
	sqlite3_finalize(st);
	buf_release(&q.sql);
	return e;
}

enum err audit_query(struct audit_reader *r, const struct audit_filter *f, audit_row_fn fn,
		     void *arg, struct ctx *c)
{
	struct audit_filter all = AUDIT_FILTER_INIT;
	enum err e;

	if ((e = enter(r, c)))
		return e;
	e = run_query(r->db, f ? f : &all, 0, 0, fn, arg, c);
	leave(r);
	return e;
}

/*
 * The record whose AuditEvent id is 'id' (audit_event_to_fhir(): the
 * stream's node id with '_' written '-', a dot, the sequence number).
 * No new stream may differ from an existing one only in '_' and '-'
 * (adb_stream_no()); in a log made before that rule, the stream created
 * first answers.
 */
enum err audit_read_fhir_id(struct audit_reader *r, const char *id, audit_row_fn fn, void *arg,
			    struct ctx *c)
{
	const char *dot = id ? strrchr(id, '.') : NULL;
	char node[AUDIT_NODE_MAX + 1];
	sqlite3_stmt *st = NULL;
	int64_t seq;
	enum err e;
	int rc;

	if (!dot || dot == id || (size_t)(dot - id) > AUDIT_NODE_MAX ||
	    str_to_i64(dot + 1, 0, (int64_t)AUDIT_SEQ_LIMIT - 1, &seq))
		return ctx_errorf(c, ERR_NOTFOUND, "no audit record has the id '%s'", id ? id : "");
	memcpy(node, id, (size_t)(dot - id));
	node[dot - id] = '\0';
	if ((e = enter(r, c)))
		return e;
	e = adb_prepare(r->db,
			"SELECT s.node, r.id, r.time_ms, r.body FROM record r"
			" JOIN stream s ON s.no = r.id >> 48"
			" WHERE replace(s.node, '_', '-') = ?1 AND r.id = (s.no << 48) + ?2"
			" AND r.body IS NOT NULL ORDER BY s.no LIMIT 1",
			&st, c);
	if (e)
		goto out;
	sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) && sqlite3_column_text(st, 3))
		e = fn(arg, (const char *)sqlite3_column_text(st, 0),
		       audit_rid_seq(sqlite3_column_int64(st, 1)), sqlite3_column_int64(st, 2),
		       (const char *)sqlite3_column_text(st, 3), (size_t)sqlite3_column_bytes(st, 3));
	else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		e = ctx_errorf(c, ERR_NOTFOUND, "no audit record has the id '%s'", id);
	else
		e = adb_fail(c, ERR_IO, r->db, "audit read");
out:
	sqlite3_finalize(st);
	leave(r);
	return e;
}

/* ---- checkpoints and proofs ---------------------------------------------------------- */

static json_t *ckpt_json(const char *node, uint64_t size, int64_t time_ms, const uint8_t *root,
			 const char *jws)
{
	char r[44], t[32];

	hash_b64(root, r);
	clock_format_instant(time_ms, t);
	return json_pack("{s:s, s:I, s:s, s:s, s:s}", "node", node, "size", (json_int_t)size, "root",
			 r, "time", t, "jws", jws);
}

/*
 * The signed checkpoints: the latest of each stream, or (history) every one
 * after (after_node, after_size) in (node, size) order.  'limit' 0: all;
 * else at most 'limit', and *more says whether another follows.
 */
static enum err list_checkpoints(struct audit_reader *r, const char *node, bool history,
				 const char *after_node, uint64_t after_size, size_t limit,
				 json_t **out, bool *more, struct ctx *c)
{
	json_t *list;
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	enum err e;
	int rc;

	*out = NULL;
	*more = false;
	if (present(node) && !audit_node_valid(node))
		return ctx_errorf(c, ERR_INVALID, "invalid audit stream '%s'", node);
	if (present(after_node) && !audit_node_valid(after_node))
		return ctx_errorf(c, ERR_INVALID, "invalid audit stream '%s'", after_node);
	if (after_size >= AUDIT_SEQ_LIMIT)
		return ctx_errorf(c, ERR_INVALID, "checkpoint size out of range");
	if ((e = enter(r, c)))
		return e;
	list = json_array();
	e = adb_prepare(r->db,
			history ? "SELECT node, size, time_ms, root, jws FROM checkpoint"
				  " WHERE jws IS NOT NULL AND (?1 IS NULL OR node = ?1)"
				  " AND (?3 IS NULL OR node > ?3 OR (node = ?3 AND size > ?4))"
				  " ORDER BY node, size LIMIT ?2"
				: "SELECT node, max(size), time_ms, root, jws FROM checkpoint"
				  " WHERE jws IS NOT NULL AND (?1 IS NULL OR node = ?1)"
				  " GROUP BY node ORDER BY node LIMIT ?2",
			&st, c);
	if (e)
		goto out;
	adb_bind_text(st, 1, node);
	/* one more than asked for says whether another page follows */
	sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit + 1 : -1);
	if (history) {
		adb_bind_text(st, 3, after_node);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)after_size);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (limit && n == limit) {
			*more = true;
			continue;
		}
		if (sqlite3_column_bytes(st, 3) != HL)
			continue;
		json_array_append_new(list, ckpt_json((const char *)sqlite3_column_text(st, 0),
						      (uint64_t)sqlite3_column_int64(st, 1),
						      sqlite3_column_int64(st, 2),
						      sqlite3_column_blob(st, 3),
						      (const char *)sqlite3_column_text(st, 4)));
		n++;
	}
	if (rc != SQLITE_DONE)
		e = adb_fail(c, ERR_IO, r->db, "audit checkpoints");
out:
	sqlite3_finalize(st);
	leave(r);
	if (e)
		json_decref(list);
	else
		*out = json_pack("{s:o}", "checkpoints", list);
	return e;
}

enum err audit_signed_size(struct audit_reader *r, const char *node, uint64_t *size,
			   struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e;

	*size = 0;
	pthread_mutex_lock(&r->mu);
	e = adb_prepare(r->db,
			"SELECT coalesce(max(size), 0) FROM checkpoint"
			" WHERE node = ?1 AND jws IS NOT NULL",
			&st, c);
	if (!e) {
		sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			*size = (uint64_t)sqlite3_column_int64(st, 0);
		else
			e = adb_fail(c, ERR_IO, r->db, "audit checkpoints");
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&r->mu);
	return e;
}

enum err audit_checkpoints(struct audit_reader *r, const char *node, bool history, size_t limit,
			   json_t **out, struct ctx *c)
{
	bool more;

	return list_checkpoints(r, node, history, NULL, 0, limit, out, &more, c);
}

enum err audit_checkpoints_page(struct audit_reader *r, const char *node, const char *after_node,
				uint64_t after_size, size_t limit, json_t **out, bool *more,
				struct ctx *c)
{
	*out = NULL;
	*more = false;
	if (limit == 0)
		return ctx_errorf(c, ERR_INVALID, "a page holds at least one checkpoint");
	return list_checkpoints(r, node, true, after_node, after_size, limit, out, more, c);
}

/* The only stream, when 'node' is not given. */
static enum err pick_node(sqlite3 *db, const char *node, char out[AUDIT_NODE_MAX + 1],
			  struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e;
	int n = 0;

	if (present(node)) {
		if (!audit_node_valid(node))
			return ctx_errorf(c, ERR_INVALID, "invalid audit stream '%s'", node);
		str_copy(out, node, AUDIT_NODE_MAX + 1);
		return ERR_OK;
	}
	if ((e = adb_prepare(db, "SELECT DISTINCT node FROM checkpoint LIMIT 2", &st, c)))
		return e;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n++ == 0)
			str_copy(out, (const char *)sqlite3_column_text(st, 0), AUDIT_NODE_MAX + 1);
	}
	sqlite3_finalize(st);
	if (n == 0)
		return ctx_errorf(c, ERR_NOTFOUND, "the audit log has no checkpoint yet");
	if (n > 1)
		return ctx_errorf(c, ERR_INVALID, "the audit log has several streams: name one");
	return ERR_OK;
}

static enum err inclusion_locked(struct audit_reader *r, const char *node, uint64_t seq,
				 uint64_t size, json_t **out, struct ctx *c)
{
	uint8_t proof[MERKLE_PROOF_MAX * HL], leaf[HL];
	struct ckpt k;
	size_t len = 0;
	char lh[44];
	enum err e;

	*out = NULL;
	if ((e = ckpt_load(r->db, node, size, &k, c)))
		return e;
	if (!k.jws) {
		e = ctx_errorf(c, ERR_NOTFOUND, "checkpoint %llu of '%s' is not signed",
			       (unsigned long long)k.size, node);
		goto out;
	}
	if (seq >= k.size) {
		e = ctx_errorf(c, ERR_NOTFOUND, "record %llu of '%s' is not covered by a signed checkpoint yet",
			       (unsigned long long)seq, node);
		goto out;
	}
	tree_src_set_node(r->tree, node);
	if ((e = tree_leaf(r->tree, seq, leaf, c)) ||
	    (e = tree_inclusion(r->tree, seq, k.size, proof, &len, c)))
		goto out;
	hash_b64(leaf, lh);
	*out = json_pack("{s:s, s:I, s:I, s:s, s:o, s:s}", "node", node, "seq", (json_int_t)seq,
			 "tree_size", (json_int_t)k.size, "leaf_hash", lh, "hashes",
			 hashes_json(proof, len), "checkpoint", k.jws);
out:
	ckpt_release(&k);
	return e;
}

enum err audit_inclusion_proof(struct audit_reader *r, const char *node, uint64_t seq,
			       uint64_t size, json_t **out, struct ctx *c)
{
	char nd[AUDIT_NODE_MAX + 1];
	enum err e;

	*out = NULL;
	if ((e = enter(r, c)))
		return e;
	if (!(e = pick_node(r->db, node, nd, c)))
		e = inclusion_locked(r, nd, seq, size, out, c);
	leave(r);
	return e;
}

enum err audit_consistency_proof(struct audit_reader *r, const char *node, uint64_t size1,
				 uint64_t size2, json_t **out, struct ctx *c)
{
	uint8_t proof[MERKLE_PROOF_MAX * HL];
	struct ckpt k1 = {0}, k2 = {0};
	char nd[AUDIT_NODE_MAX + 1];
	size_t len = 0;
	enum err e;

	*out = NULL;
	if (size1 == 0 || size1 > size2)
		return ctx_errorf(c, ERR_INVALID, "a consistency proof needs 0 < size1 <= size2");
	if ((e = enter(r, c)))
		return e;
	if ((e = pick_node(r->db, node, nd, c)) || (e = ckpt_load(r->db, nd, size1, &k1, c)) ||
	    (e = ckpt_load(r->db, nd, size2, &k2, c)))
		goto out;
	if (!k1.jws || !k2.jws) {
		e = ctx_errorf(c, ERR_NOTFOUND, "checkpoint %llu of '%s' is not signed",
			       (unsigned long long)(k1.jws ? size2 : size1), nd);
		goto out;
	}
	tree_src_set_node(r->tree, nd);
	if ((e = tree_consistency(r->tree, size1, size2, proof, &len, c)))
		goto out;
	*out = json_pack("{s:s, s:I, s:I, s:o, s:s, s:s}", "node", nd, "size1", (json_int_t)size1,
			 "size2", (json_int_t)size2, "hashes", hashes_json(proof, len),
			 "checkpoint1", k1.jws, "checkpoint2", k2.jws);
out:
	ckpt_release(&k1);
	ckpt_release(&k2);
	leave(r);
	return e;
}

/* The stored body of a record: ERR_GONE pruned, ERR_NOTFOUND absent. */
static enum err load_body(sqlite3 *db, const char *node, uint64_t seq, char **out, struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	int64_t no = 0;
	enum err e;

	*out = NULL;
	if (seq >= AUDIT_SEQ_LIMIT)
		return ctx_errorf(c, ERR_NOTFOUND, "stream '%s' has no record %llu", node,
				  (unsigned long long)seq);
	if ((e = adb_stream_no(db, node, false, &no, c)) ||
	    (e = adb_prepare(db, "SELECT body FROM record WHERE id = ?", &st, c)))
		return e;
	sqlite3_bind_int64(st, 1, audit_rid(no, seq));
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			e = ctx_errorf(c, ERR_GONE, "record %llu of '%s' was removed by retention",
				       (unsigned long long)seq, node);
		else
			*out = xstrdup((const char *)sqlite3_column_text(st, 0));
		break;
	case SQLITE_DONE:
		e = ctx_errorf(c, ERR_NOTFOUND, "stream '%s' has no record %llu", node,
			       (unsigned long long)seq);
		break;
	default:
		e = adb_fail(c, ERR_IO, db, "audit log");
	}
	sqlite3_finalize(st);
	return e;
}

static json_t *signer_jwk(sqlite3 *db, const char *kid)
{
	sqlite3_stmt *st = NULL;
	json_t *j = NULL;

	if (!kid || sqlite3_prepare_v2(db, "SELECT jwk FROM signer WHERE kid = ?", -1, &st, NULL))
		return NULL;
	sqlite3_bind_text(st, 1, kid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		j = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	return j;
}

enum err audit_receipt(struct audit_reader *r, const char *node, uint64_t seq, json_t **out,
		       struct ctx *c)
{
	char nd[AUDIT_NODE_MAX + 1], *body = NULL;
	json_t *proof = NULL, *jwk = NULL;
	struct ckpt k = {0};
	enum err e;

	*out = NULL;
	if ((e = enter(r, c)))
		return e;
	if ((e = pick_node(r->db, node, nd, c)) || (e = load_body(r->db, nd, seq, &body, c)) ||
	    (e = inclusion_locked(r, nd, seq, 0, &proof, c)) || (e = ckpt_load(r->db, nd, 0, &k, c)))
		goto out;
	*out = json_pack("{s:s, s:s, s:s, s:I, s:O, s:O, s:O}", "receipt",
			 "veranda-audit-receipt/1", "record", body, "node", nd, "seq",
			 (json_int_t)seq, "tree_size", json_object_get(proof, "tree_size"), "hashes",
			 json_object_get(proof, "hashes"), "checkpoint",
			 json_object_get(proof, "checkpoint"));
	if ((jwk = signer_jwk(r->db, k.kid)))
		json_object_set_new(*out, "jwk", jwk);
out:
	ckpt_release(&k);
	json_decref(proof);
	free(body);
	leave(r);
	return e;
}

enum err audit_receipt_verify(const char *json, size_t n, const struct jose_jwks *keys,
			      json_t **record, struct ctx *c)
{
	json_t *doc = NULL, *rec = NULL;
	const json_t *hashes, *jseq, *jsize;
	const char *body, *node, *jws, *kind, *rnode = NULL;
	uint8_t proof[MERKLE_PROOF_MAX * HL], leaf[HL];
	struct ckpt_claim claim;
	uint64_t rseq = 0;
	struct rec_cols cols;
	size_t len;
	enum err e = ERR_OK;

	if (record)
		*record = NULL;
	if (!json)
		return ctx_errorf(c, ERR_INVALID, "no receipt");
	if (n > AUDIT_RECEIPT_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "receipt larger than %d bytes", AUDIT_RECEIPT_MAX);
	if (!keys)
		return ctx_errorf(c, ERR_INVALID, "no key to check the receipt with");
	if (!(doc = json_parse_bounded(json, n, 8, c)))
		return ERR_INVALID;
	kind = json_get_str(doc, "receipt");
	body = json_get_str(doc, "record");
	node = json_get_str(doc, "node");
	jws = json_get_str(doc, "checkpoint");
	jseq = json_object_get(doc, "seq");
	jsize = json_object_get(doc, "tree_size");
	hashes = json_object_get(doc, "hashes");
	if (!kind || strcmp(kind, "veranda-audit-receipt/1") != 0 || !body || !node ||
	    !audit_node_valid(node) || !jws || !json_is_integer(jseq) ||
	    json_integer_value(jseq) < 0 || !json_is_integer(jsize) || !json_is_array(hashes)) {
		e = ctx_errorf(c, ERR_INVALID, "not a Veranda audit receipt");
		goto out;
	}
	len = json_array_size(hashes);
	if (len > MERKLE_PROOF_MAX) {
		e = ctx_errorf(c, ERR_INVALID, "receipt proof too long");
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		if (!hash_unb64(json_string_value(json_array_get(hashes, i)), proof + i * HL)) {
			e = ctx_errorf(c, ERR_INVALID, "receipt proof hash %zu is not a hash", i);
			goto out;
		}
	}
	if ((e = ckpt_verify_jws(jws, keys, &claim, c)))
		goto out;
	if (strcmp(claim.node, node) != 0 || (json_int_t)claim.size != json_integer_value(jsize)) {
		e = ctx_errorf(c, ERR_INVALID, "receipt does not match its checkpoint");
		goto out;
	}
	if ((e = rec_parse(body, strlen(body), &rec, &rseq, &rnode, &cols, c)))
		goto out;
	if (rseq != (uint64_t)json_integer_value(jseq) || strcmp(rnode, node) != 0) {
		e = ctx_errorf(c, ERR_INVALID, "receipt record is not record %lld of '%s'",
			       (long long)json_integer_value(jseq), node);
		goto out;
	}
	merkle_leaf_hash(body, strlen(body), leaf);
	if (merkle_inclusion_verify(leaf, rseq, claim.size, proof, len, claim.root) != ERR_OK) {
		e = ctx_errorf(c, ERR_INVALID,
			       "receipt record is not in the signed tree (proof does not verify)");
		goto out;
	}
	if (record) {
		*record = rec;
		rec = NULL;
	}
out:
	json_decref(rec);
	json_decref(doc);
	return e;
}

/* ---- export ---------------------------------------------------------------------------- */

struct exp_stream {
	char node[AUDIT_NODE_MAX + 1];
	uint64_t size; /* 0: no signed checkpoint */
};

struct exp {
	sqlite3 *db;
	struct tree_src *tree;
	struct exp_stream *streams;
	size_t n;
	int fd;
	struct buf out;
	uint64_t count;
	struct ctx *c;
};

static enum err flush(struct exp *x, bool force)
{
	enum err e = ERR_OK;

	if (x->out.len && (force || x->out.len > 65536)) {
		e = adb_write_all(x->fd, x->out.data, x->out.len, x->c);
		buf_reset(&x->out);
	}
	return e;
}

static enum err export_row(void *arg, const char *node, uint64_t seq, int64_t time_ms,
			   const char *body, size_t len)
{
	struct exp *x = arg;
	struct exp_stream *s = NULL;
	uint8_t proof[MERKLE_PROOF_MAX * HL];
	size_t plen = 0;
	enum err e;

	(void)time_ms;
	for (size_t i = 0; i < x->n && !s; i++)
		if (strcmp(x->streams[i].node, node) == 0)
			s = &x->streams[i];
	buf_addf(&x->out, "{\"node\":\"%s\",\"seq\":%llu,\"record\":\"", node,
		 (unsigned long long)seq);
	buf_add_json_str(&x->out, body, len);
	buf_addch(&x->out, '"');
	if (s && seq < s->size) {
		tree_src_set_node(x->tree, node);
		if ((e = tree_inclusion(x->tree, seq, s->size, proof, &plen, x->c)))
			return e;
		buf_adds(&x->out, ",\"hashes\":[");
		for (size_t i = 0; i < plen; i++) {
			char h[44];
			hash_b64(proof + i * HL, h);
			buf_addf(&x->out, "%s\"%s\"", i ? "," : "", h);
		}
		buf_addch(&x->out, ']');
	} else {
		buf_adds(&x->out, ",\"unsigned\":true");
	}
	buf_adds(&x->out, "}\n");
	if (x->out.err)
		return ctx_errorf(x->c, ERR_TOOBIG, "export line too long");
	x->count++;
	return flush(x, false);
}

enum err adb_export(sqlite3 *db, struct tree_src *t, const struct audit_filter *f,
		   uint64_t seq_lo, uint64_t seq_hi, int fd, uint64_t *count, struct ctx *c)
{
	struct exp x = {.db = db, .tree = t, .fd = fd, .out = BUF_INIT(1 << 24), .c = c};
	sqlite3_stmt *st = NULL;
	enum err e;
	int rc;

	if (count)
		*count = 0;
	if ((e = adb_prepare(db,
			     "SELECT node, max(size) FROM checkpoint WHERE jws IS NOT NULL"
			     " AND (?1 IS NULL OR node = ?1) GROUP BY node ORDER BY node",
			     &st, c)))
		return e;
	adb_bind_text(st, 1, f->node);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct ckpt k;
		const char *node = (const char *)sqlite3_column_text(st, 0);
		if (!node || !audit_node_valid(node))
			continue;
		if ((e = ckpt_load(db, node, (uint64_t)sqlite3_column_int64(st, 1), &k, c)))
			goto out;
		x.streams = xrealloc(x.streams, (x.n + 1) * sizeof(*x.streams));
		str_copy(x.streams[x.n].node, node, sizeof(x.streams[x.n].node));
		x.streams[x.n].size = k.size;
		x.n++;
		buf_addf(&x.out, "{\"node\":\"%s\",\"size\":%llu,\"checkpoint\":\"", node,
			 (unsigned long long)k.size);
		buf_add_json_str(&x.out, k.jws, strlen(k.jws));
		buf_adds(&x.out, "\"}\n");
		ckpt_release(&k);
	}
	if (rc != SQLITE_DONE) {
		e = adb_fail(c, ERR_IO, db, "audit export");
		goto out;
	}
	if ((e = run_query(db, f, seq_lo, seq_hi, export_row, &x, c)))
		goto out;
	e = flush(&x, true);
	if (count)
		*count = x.count;
out:
	sqlite3_finalize(st);
	free(x.streams);
	buf_release(&x.out);
	return e;
}

enum err audit_export(struct audit_reader *r, const struct audit_filter *f, int fd,
		      uint64_t *count, struct ctx *c)
{
	struct audit_filter all = AUDIT_FILTER_INIT;
	enum err e;

	if ((e = enter(r, c)))
		return e;
	e = adb_export(r->db, r->tree, f ? f : &all, 0, 0, fd, count, c);
	leave(r);
	return e;
}
