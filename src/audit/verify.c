/*
 * verify.c - `veranda audit verify`: recompute everything in audit.db and
 * name the first record that does not match.
 *
 * Per stream, in sequence order, one pass:
 *   - sequences are 0, 1, 2 ... without gaps or repeats;
 *   - each body hashes to its stored leaf, parses as a record of this
 *     stream with this sequence, and agrees with the indexed columns
 *     (which queries filter on: altering them could hide a record);
 *   - a missing body is allowed only below the bound of a signed
 *     system.audit-prune record;
 *   - the cached block roots equal the roots of their leaves;
 *   - at every checkpoint the root of the leaves so far equals the
 *     signed root, and the JWS verifies under the given keys;
 *   - no checkpoint lies beyond the last record (truncation), and no
 *     record follows the checkpoint the writer signed when it closed.
 * Where only a checkpoint root disagrees (leaf hashes recomputed along
 * with the bodies), the stored compact range of that checkpoint, once its
 * own root matches the signed one, says which perfect subtree differs:
 * the report names the range [first_bad, bad_end) that holds the change.
 *
 * Memory is O(log n) per stream; time is one read of the table.
 */
#include "audit/audit.h"
#include "audit/audit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jose.h"
#include "core/mem.h"
#include "core/str.h"

#define HL MERKLE_HASH_LEN

struct vstate {
	sqlite3 *db;
	const struct jose_jwks *keys;
	struct audit_verify_report *r;
	const char *node;
	int64_t no;          /* the stream's number; 0: it has no records */
	sqlite3_stmt *sub;   /* cached subtree lookup */
	uint64_t bad_block_lo, bad_block_hi;
	bool bad_block;
};

static enum err failf(struct audit_verify_report *r, const char *node, int64_t first,
		      int64_t end, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum err failf(struct audit_verify_report *r, const char *node, int64_t first,
		      int64_t end, const char *fmt, ...)
{
	va_list ap;

	r->ok = false;
	str_copy(r->node, node ? node : "", sizeof(r->node));
	r->first_bad = first;
	r->bad_end = end;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return ERR_INVALID;
}

static bool same(const char *a, const char *b)
{
	if (a && !*a)
		a = NULL;
	if (b && !*b)
		b = NULL;
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* The bound below which a signed prune record allows missing bodies. */
static enum err prune_bound(struct vstate *v, uint64_t *below, struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e;
	int rc;

	*below = 0;
	e = adb_prepare(v->db,
			"SELECT id, body FROM record WHERE id >= ?2 AND id < ?2 + (SELECT coalesce(max(size),"
			" 0) FROM checkpoint WHERE node = ?1 AND jws IS NOT NULL)"
			" AND type = 'system.audit-prune' AND " AUDIT_SPECIAL_TYPES " AND body IS NOT NULL",
			&st, c);
	if (e)
		return e;
	sqlite3_bind_text(st, 1, v->node, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, audit_rid(v->no, 0));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *body = col_text(st, 1);
		json_t *rec = NULL;
		struct rec_cols cols;
		uint64_t seq;
		const char *node, *q;
		unsigned long long b;
		char tail;
		struct ctx ignore = CTX_INIT;

		if (!body || rec_parse(body, strlen(body), &rec, &seq, &node, &cols, &ignore))
			continue; /* the main pass reports it */
		q = json_string_value(
			json_object_get(json_array_get(json_object_get(rec, "entity"), 0), "query"));
		if (q && sscanf(q, "below=%llu%c", &b, &tail) == 1 && b <= seq && b > *below)
			*below = b;
		json_decref(rec);
	}
	if (rc != SQLITE_DONE)
		e = adb_fail(c, ERR_IO, v->db, "audit log");
	sqlite3_finalize(st);
	return e;
}

/* Tiers callback: the cached root of a finished block must match. */
static enum err check_block(void *arg, int level, uint64_t idx, const uint8_t hash[HL])
{
	struct vstate *v = arg;
	bool ok = false;

	sqlite3_bind_text(v->sub, 1, v->node, -1, SQLITE_STATIC);
	sqlite3_bind_int(v->sub, 2, level);
	sqlite3_bind_int64(v->sub, 3, (sqlite3_int64)idx);
	if (sqlite3_step(v->sub) == SQLITE_ROW && sqlite3_column_bytes(v->sub, 0) == HL)
		ok = memcmp(sqlite3_column_blob(v->sub, 0), hash, HL) == 0;
	sqlite3_reset(v->sub);
	if (!ok && !v->bad_block) {
		v->bad_block = true;
		v->bad_block_lo = idx << level;
		v->bad_block_hi = (idx + 1) << level;
	}
	return ERR_OK;
}

/*
 * Which perfect subtree of a checkpoint differs: compare the stored
 * compact range (trusted only when its root is the signed one) with the
 * recomputed one, subtree by subtree from the left, as long as both sizes
 * hold the same subtrees ('mine' may be shorter than the checkpoint when
 * the pass stopped early).  True, with [*first, *end) clamped to lo_ok,
 * when a subtree differs; false (and [lo_ok, mine->size)) when the stored
 * range cannot say.
 */
static bool narrow(const uint8_t *compact, size_t clen, const struct merkle_compact *mine,
		   const uint8_t signed_root[HL], uint64_t lo_ok, int64_t *first, int64_t *end)
{
	struct merkle_compact theirs;
	uint8_t root[HL];
	uint64_t start = 0;

	*first = (int64_t)lo_ok;
	*end = (int64_t)mine->size;
	if (merkle_compact_parse(&theirs, compact, clen) || theirs.size < mine->size)
		return false;
	merkle_compact_root(&theirs, root);
	if (memcmp(root, signed_root, HL) != 0)
		return false;
	for (int bit = 61; bit >= 0; bit--) {
		uint64_t span = (uint64_t)1 << bit;
		bool in_theirs = theirs.size & span, in_mine = mine->size & span;

		if (in_theirs != in_mine)
			break;
		if (!in_mine)
			continue;
		if (memcmp(theirs.level[bit], mine->level[bit], HL) != 0) {
			if (start + span <= lo_ok)
				return false;
			*first = (int64_t)(start > lo_ok ? start : lo_ok);
			*end = (int64_t)(start + span);
			return true;
		}
		start += span;
	}
	return false;
}

/*
 * The checks of one record on its own: its body against its leaf hash,
 * its sequence and stream, its indexed columns, or its absence against
 * the prune bound.  ERR_INVALID (the report filled in) when it fails.
 */
static enum err check_record(struct vstate *v, sqlite3_stmt *rs, uint64_t seq,
			     const uint8_t leaf[HL], uint64_t prune_below, uint64_t last_ok)
{
	struct audit_verify_report *r = v->r;
	const char *body = col_text(rs, 10);
	enum err e = ERR_OK;

	if (!body) {
		if (seq >= prune_below)
			return failf(r, v->node, (int64_t)seq, (int64_t)seq + 1,
				     "record %llu has no body and no signed prune record allows it",
				     (unsigned long long)seq);
		r->pruned++;
	} else {
		uint8_t h[HL];
		json_t *rec = NULL;
		struct rec_cols cols;
		uint64_t rseq;
		const char *rnode, *bad = NULL;
		struct ctx pc = CTX_INIT;
		size_t blen = (size_t)sqlite3_column_bytes(rs, 10);

		merkle_leaf_hash(body, blen, h);
		if (memcmp(h, leaf, HL) != 0)
			return failf(r, v->node, (int64_t)seq, (int64_t)seq + 1,
				     "record %llu does not match its leaf hash (the record or"
				     " the hash was altered)",
				     (unsigned long long)seq);
		if (rec_parse(body, blen, &rec, &rseq, &rnode, &cols, &pc))
			return failf(r, v->node, (int64_t)seq, (int64_t)seq + 1,
				     "record %llu is not a valid audit record: %s",
				     (unsigned long long)seq, pc.msg);
		if (rseq != seq)
			bad = "its sequence number (records reordered, inserted or deleted)";
		else if (strcmp(rnode, v->node) != 0)
			bad = "its stream";
		else if (cols.time_ms != sqlite3_column_int64(rs, 1))
			bad = "the time column";
		else if (!same(cols.type, col_text(rs, 2)))
			bad = "the type column";
		else if (cols.outcome != sqlite3_column_int(rs, 3))
			bad = "the outcome column";
		else if (!same(cols.patient, col_text(rs, 4)))
			bad = "the patient column";
		else if (!same(cols.agent, col_text(rs, 5)))
			bad = "the agent column";
		else if (!same(cols.client, col_text(rs, 6)))
			bad = "the client column";
		else if (!same(cols.request_id, col_text(rs, 7)))
			bad = "the request id column";
		else if (!same(cols.trace_id, col_text(rs, 8)))
			bad = "the trace id column";
		if (bad) {
			/* a record that says it is an earlier one was pushed
			 * along by rows inserted at [rseq, seq) */
			int64_t first = rseq < seq && rseq >= last_ok ? (int64_t)rseq
								     : (int64_t)seq;
			if (rseq != seq)
				e = failf(r, v->node, first, (int64_t)seq + (first == (int64_t)seq),
					  "record %llu says it is record %llu: %s",
					  (unsigned long long)seq, (unsigned long long)rseq,
					  bad);
			else
				e = failf(r, v->node, (int64_t)seq, (int64_t)seq + 1,
					  "record %llu does not match %s",
					  (unsigned long long)seq, bad);
		}
		json_decref(rec);
	}
	return e;
}

static enum err verify_stream(struct vstate *v, struct ctx *c)
{
	struct audit_verify_report *r = v->r;
	sqlite3_stmt *rs = NULL, *cs = NULL;
	struct merkle_compact mc;
	struct tiers tr;
	uint64_t expected = 0, prune_below = 0, last_ok = 0;
	bool have_ck = false, ck_final = false, last_final = false, held = false;
	uint64_t ck_size = 0;
	enum err e;
	int rc;

	merkle_compact_init(&mc);
	tiers_init(&tr);
	v->bad_block = false;
	if ((e = prune_bound(v, &prune_below, c)))
		return e;
	if ((e = adb_prepare(v->db,
			     "SELECT id, time_ms, type, outcome, patient, agent, client, request_id,"
			     " trace_id, leaf, body FROM record WHERE id >= ?1 AND id < ?2 ORDER BY id",
			     &rs, c)) ||
	    (e = adb_prepare(v->db,
			     "SELECT size, time_ms, root, compact, jws, final FROM checkpoint"
			     " WHERE node = ? ORDER BY size",
			     &cs, c)) ||
	    (e = adb_prepare(v->db,
			     "SELECT hash FROM subtree WHERE node = ? AND level = ? AND idx = ?",
			     &v->sub, c)))
		goto out;
	/* a stream without a number has no records (ids of stream 0 never exist) */
	sqlite3_bind_int64(rs, 1, v->no ? audit_rid(v->no, 0) : 1);
	sqlite3_bind_int64(rs, 2, v->no ? audit_rid(v->no + 1, 0) : 0);
	sqlite3_bind_text(cs, 1, v->node, -1, SQLITE_STATIC);

#define NEXT_CK()                                                                          \
	do {                                                                               \
		rc = sqlite3_step(cs);                                                     \
		have_ck = rc == SQLITE_ROW;                                                \
		if (!have_ck && rc != SQLITE_DONE) {                                       \
			e = adb_fail(c, ERR_IO, v->db, "audit log");                       \
			goto out;                                                          \
		}                                                                          \
		ck_size = have_ck ? (uint64_t)sqlite3_column_int64(cs, 0) : 0;             \
		ck_final = have_ck && sqlite3_column_int(cs, 5) != 0;                      \
	} while (0)

	NEXT_CK();
	if (have_ck && ck_size == 0) {
		e = failf(r, v->node, -1, -1, "a checkpoint of size 0 is stored");
		goto out;
	}
	while ((rc = sqlite3_step(rs)) == SQLITE_ROW) {
		uint64_t seq = audit_rid_seq(sqlite3_column_int64(rs, 0));
		uint8_t leaf[HL];

		/*
		 * After a failure (held), only the stored leaves count, up to the
		 * next signed checkpoint: its root says whether an earlier record
		 * that passed its own checks was altered too (a body rewritten
		 * with its leaf hash), and that one comes first.
		 */
		if (seq != expected && !held) {
			if (seq > expected)
				e = failf(r, v->node, (int64_t)expected, (int64_t)expected + 1,
					  "record %llu is missing (the next stored is %llu)",
					  (unsigned long long)expected, (unsigned long long)seq);
			else
				e = failf(r, v->node, (int64_t)seq, (int64_t)seq + 1,
					  "record %llu is stored twice", (unsigned long long)seq);
			held = true;
		}
		if (sqlite3_column_bytes(rs, 9) != HL) {
			if (!held)
				e = failf(r, v->node, (int64_t)seq, (int64_t)seq + 1,
					  "record %llu has no valid leaf hash", (unsigned long long)seq);
			goto out;
		}
		memcpy(leaf, sqlite3_column_blob(rs, 9), HL);
		if (!held && (e = check_record(v, rs, seq, leaf, prune_below, last_ok)))
			held = true;
		if (merkle_compact_append(&mc, leaf) ||
		    tiers_append(&tr, expected, leaf, check_block, v)) {
			if (!held)
				e = failf(r, v->node, (int64_t)seq, (int64_t)seq + 1, "tree too large");
			goto out;
		}
		expected++;
		r->records++;

		while (have_ck && ck_size == expected) {
			struct ckpt_claim claim;
			struct ctx jc = CTX_INIT;
			const char *jws = col_text(cs, 4);
			uint8_t root[HL];
			enum err je;

			merkle_compact_root(&mc, root);
			if (held && !jws)
				goto out;
			if (!jws) {
				e = failf(r, v->node, (int64_t)last_ok, (int64_t)ck_size,
					  "checkpoint at %llu is not signed: records %llu to %llu are"
					  " not covered by a signature",
					  (unsigned long long)ck_size, (unsigned long long)last_ok,
					  (unsigned long long)ck_size - 1);
				goto out;
			}
			je = ckpt_verify_jws(jws, v->keys, &claim, &jc);
			if (held && (je || strcmp(claim.node, v->node) != 0 || claim.size != ck_size))
				goto out;
			if (je) {
				e = failf(r, v->node, (int64_t)last_ok, (int64_t)ck_size,
					  "checkpoint at %llu: %s", (unsigned long long)ck_size,
					  jc.msg);
				goto out;
			}
			if (strcmp(claim.node, v->node) != 0 || claim.size != ck_size) {
				e = failf(r, v->node, (int64_t)last_ok, (int64_t)ck_size,
					  "checkpoint at %llu is signed for stream '%s' at %llu",
					  (unsigned long long)ck_size, claim.node,
					  (unsigned long long)claim.size);
				goto out;
			}
			if (memcmp(claim.root, root, HL) != 0) {
				int64_t first, end;
				bool found = narrow(sqlite3_column_blob(cs, 3),
						    (size_t)sqlite3_column_bytes(cs, 3), &mc, claim.root,
						    last_ok, &first, &end);
				/* a held failure stands unless the change lies wholly before it */
				if (held && !(found && end <= r->first_bad))
					goto out;
				if (!held && v->bad_block && (int64_t)v->bad_block_lo >= first &&
				    (int64_t)v->bad_block_hi <= end) {
					first = (int64_t)v->bad_block_lo > first ? (int64_t)v->bad_block_lo : first;
					end = (int64_t)v->bad_block_hi;
				}
				e = failf(r, v->node, first, end,
					  "the signed root of checkpoint %llu does not match records"
					  " %lld to %lld: one of them was altered, inserted or removed",
					  (unsigned long long)ck_size, (long long)first,
					  (long long)end - 1);
				goto out;
			}
			/* the leaves so far are the signed ones: the held failure is the first */
			if (held)
				goto out;
			if (sqlite3_column_bytes(cs, 2) != HL ||
			    memcmp(sqlite3_column_blob(cs, 2), claim.root, HL) != 0 ||
			    sqlite3_column_int64(cs, 1) != claim.time_ms ||
			    (sqlite3_column_int(cs, 5) != 0) != claim.final) {
				e = failf(r, v->node, -1, -1,
					  "checkpoint at %llu: stored columns differ from what was signed",
					  (unsigned long long)ck_size);
				goto out;
			}
			r->checkpoints++;
			last_ok = ck_size;
			last_final = ck_final;
			NEXT_CK();
		}
		if (v->bad_block) {
			if (!held)
				e = failf(r, v->node, (int64_t)v->bad_block_lo, (int64_t)v->bad_block_hi,
					  "records %llu to %llu do not match the root stored for them"
					  " when they were written (a record or that root was altered)",
					  (unsigned long long)v->bad_block_lo,
					  (unsigned long long)v->bad_block_hi - 1);
			goto out;
		}
	}
	if (held)
		goto out;
	if (rc != SQLITE_DONE) {
		e = adb_fail(c, ERR_IO, v->db, "audit log");
		goto out;
	}
	if (have_ck) {
		e = failf(r, v->node, (int64_t)expected, (int64_t)ck_size,
			  "the stream ends at record %llu but a checkpoint covers %llu records:"
			  " records %llu to %llu were removed",
			  (unsigned long long)expected, (unsigned long long)ck_size,
			  (unsigned long long)expected, (unsigned long long)ck_size - 1);
		goto out;
	}
	if (last_final && expected > last_ok) {
		e = failf(r, v->node, (int64_t)last_ok, (int64_t)expected,
			  "records %llu to %llu follow the checkpoint the writer signed when it"
			  " closed the stream",
			  (unsigned long long)last_ok, (unsigned long long)expected - 1);
		goto out;
	}
	r->unsigned_tail += expected - last_ok;
#undef NEXT_CK
out:
	sqlite3_finalize(rs);
	sqlite3_finalize(cs);
	sqlite3_finalize(v->sub);
	v->sub = NULL;
	return e;
}

enum err audit_verify(const char *data_dir, const struct jose_jwks *keys,
		      struct audit_verify_report *r, struct ctx *c)
{
	struct vstate v = {0};
	struct jose_jwks *own = NULL;
	sqlite3_stmt *ns = NULL;
	enum err e;
	int rc;

	memset(r, 0, sizeof(*r));
	r->ok = true;
	r->first_bad = -1;
	r->bad_end = -1;
	if ((e = adb_open(data_dir, false, &v.db, c)))
		goto out;
	if (!keys) {
		if ((e = adb_log_keys(v.db, &own, c)))
			goto out;
		keys = own;
		r->keys_from_log = true;
	}
	v.keys = keys;
	v.r = r;
	if ((e = adb_exec(v.db, "BEGIN", c)))
		goto out;
	{
		/* rows of no registered stream would escape every check and query */
		sqlite3_stmt *st = NULL;
		int64_t orphans = 0;
		if ((e = adb_prepare(v.db,
				     "SELECT count(*) FROM record WHERE (id >> 48) NOT IN"
				     " (SELECT no FROM stream)",
				     &st, c)))
			goto out;
		if (sqlite3_step(st) == SQLITE_ROW)
			orphans = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (orphans) {
			e = failf(r, "", -1, -1, "%lld records belong to no stream",
				  (long long)orphans);
			ctx_errorf(c, ERR_INVALID, "audit log does not verify: %s", r->reason);
			goto out;
		}
	}
	if ((e = adb_prepare(v.db,
			     "SELECT node FROM stream UNION SELECT node FROM checkpoint ORDER BY 1",
			     &ns, c)))
		goto out;
	while ((rc = sqlite3_step(ns)) == SQLITE_ROW) {
		const char *node = col_text(ns, 0);
		char nd[AUDIT_NODE_MAX + 1];
		if (!node || !audit_node_valid(node)) {
			e = failf(r, node, -1, -1, "a stream has an invalid name");
			break;
		}
		str_copy(nd, node, sizeof(nd));
		v.node = nd;
		if ((e = adb_stream_no(v.db, nd, false, &v.no, c))) {
			if (e != ERR_NOTFOUND)
				break;
			ctx_clear(c);
			e = ERR_OK;
			v.no = 0;
		}
		r->streams++;
		if ((e = verify_stream(&v, c)))
			break;
	}
	if (!e && rc != SQLITE_DONE)
		e = adb_fail(c, ERR_IO, v.db, "audit log");
	sqlite3_finalize(ns);
	sqlite3_exec(v.db, "COMMIT", NULL, NULL, NULL);
	if (e == ERR_INVALID && !r->ok) {
		if (r->first_bad >= 0)
			ctx_errorf(c, ERR_INVALID, "audit log does not verify: stream '%s', record %lld: %s",
				   r->node, (long long)r->first_bad, r->reason);
		else
			ctx_errorf(c, ERR_INVALID, "audit log does not verify: stream '%s': %s",
				   r->node, r->reason);
	}
out:
	if (e && e != ERR_INVALID)
		r->ok = false;
	jose_jwks_free(own);
	sqlite3_close(v.db);
	return e;
}

enum err audit_verify_extends(const char *data_dir, const struct jose_jwks *keys,
			      const char *checkpoint, struct ctx *c)
{
	struct jose_jwks *own = NULL;
	struct merkle_compact mc;
	struct ckpt_claim claim;
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	uint8_t root[HL];
	int64_t no = 0;
	enum err e;
	int rc;

	if (!checkpoint)
		return ctx_errorf(c, ERR_INVALID, "no checkpoint");
	if ((e = adb_open(data_dir, false, &db, c)))
		return e;
	if (!keys) {
		if ((e = adb_log_keys(db, &own, c)))
			goto out;
		keys = own;
	}
	if ((e = ckpt_verify_jws(checkpoint, keys, &claim, c)))
		goto out;
	if (claim.size == 0) {
		e = ctx_errorf(c, ERR_INVALID, "checkpoint of an empty tree proves nothing");
		goto out;
	}
	/* from the leaves themselves, not the cached block roots */
	if (claim.size >= AUDIT_SEQ_LIMIT) {
		e = ctx_errorf(c, ERR_INVALID, "checkpoint too large");
		goto out;
	}
	if ((e = adb_stream_no(db, claim.node, false, &no, c))) {
		if (e == ERR_NOTFOUND) {
			ctx_clear(c);
			e = ctx_errorf(c, ERR_INVALID,
				       "stream '%s' no longer holds the %llu records of the checkpoint",
				       claim.node, (unsigned long long)claim.size);
		}
		goto out;
	}
	if ((e = adb_prepare(db, "SELECT id, leaf FROM record WHERE id >= ? AND id < ? ORDER BY id",
			     &st, c)))
		goto out;
	sqlite3_bind_int64(st, 1, audit_rid(no, 0));
	sqlite3_bind_int64(st, 2, audit_rid(no, claim.size));
	merkle_compact_init(&mc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (audit_rid_seq(sqlite3_column_int64(st, 0)) != mc.size ||
		    sqlite3_column_bytes(st, 1) != HL)
			break;
		merkle_compact_append(&mc, sqlite3_column_blob(st, 1));
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		e = adb_fail(c, ERR_IO, db, "audit log");
		goto out;
	}
	if (mc.size != claim.size) {
		e = ctx_errorf(c, ERR_INVALID,
			       "stream '%s' no longer holds the %llu records of the checkpoint"
			       " (record %llu is missing)",
			       claim.node, (unsigned long long)claim.size,
			       (unsigned long long)mc.size);
		goto out;
	}
	merkle_compact_root(&mc, root);
	if (memcmp(root, claim.root, HL) != 0)
		e = ctx_errorf(c, ERR_INVALID,
			       "stream '%s' does not extend the checkpoint of %llu records: some of"
			       " those records were changed",
			       claim.node, (unsigned long long)claim.size);
out:
	sqlite3_finalize(st);
	jose_jwks_free(own);
	sqlite3_close(db);
	return e;
}
