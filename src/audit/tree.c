/*
 * tree.c - one stream's Merkle tree as stored: subtree hashes, inclusion
 * and consistency proofs and compact ranges computed from the leaf hashes
 * in `record` and the block roots cached in `subtree`, plus the tiers
 * that produce those block roots while appending.
 *
 * Cost: the hash of any perfect aligned subtree of 2^k leaves reads at
 * most 128 rows (cached roots at level k rounded down to a multiple of 8,
 * or leaves below level 8), so a proof reads at most a few thousand rows
 * however large the log.  A struct tree_src memoizes perfect subtrees and
 * keeps the last block of 256 leaves, which makes proofs for neighbouring
 * records (an export) cheap.  It belongs to one thread.
 */
#include "audit/audit_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"

#define HL MERKLE_HASH_LEN
#define MEMO_SLOTS 4096

struct memo {
	uint64_t lo, hi; /* hi == 0: empty slot */
	uint8_t h[HL];
};

struct tree_src {
	sqlite3 *db;
	char node[AUDIT_NODE_MAX + 1];
	int64_t no;       /* the stream's number; 0 until looked up */
	sqlite3_stmt *leaves;
	sqlite3_stmt *subs;
	bool have_block;
	uint64_t block;   /* index of the cached block of leaves */
	size_t count;     /* leaves of it present */
	uint8_t leaf[AUDIT_TIER_SIZE][HL];
	struct memo memo[MEMO_SLOTS];
};

struct tree_src *tree_src_new(sqlite3 *db, const char *node)
{
	struct tree_src *t = xcalloc(1, sizeof(*t));

	t->db = db;
	str_copy(t->node, node ? node : "", sizeof(t->node));
	return t;
}

void tree_src_free(struct tree_src *t)
{
	if (!t)
		return;
	sqlite3_finalize(t->leaves);
	sqlite3_finalize(t->subs);
	free(t);
}

void tree_src_set_node(struct tree_src *t, const char *node)
{
	if (strcmp(t->node, node) == 0)
		return;
	str_copy(t->node, node, sizeof(t->node));
	t->no = 0;
	t->have_block = false;
	memset(t->memo, 0, sizeof(t->memo));
}

static enum err load_block(struct tree_src *t, uint64_t block, size_t need, struct ctx *c)
{
	uint64_t lo = block << AUDIT_TIER_BITS;
	enum err e = ERR_OK;
	int rc;

	if (t->have_block && t->block == block && t->count >= need)
		return ERR_OK;
	if (!t->no && (e = adb_stream_no(t->db, t->node, false, &t->no, c)))
		return e;
	if (!t->leaves &&
	    (e = adb_prepare(t->db,
			     "SELECT id, leaf FROM record WHERE id >= ?1 AND id < ?2 ORDER BY id",
			     &t->leaves, c)))
		return e;
	t->have_block = false;
	t->count = 0;
	sqlite3_bind_int64(t->leaves, 1, audit_rid(t->no, lo));
	sqlite3_bind_int64(t->leaves, 2, audit_rid(t->no, lo + AUDIT_TIER_SIZE));
	while ((rc = sqlite3_step(t->leaves)) == SQLITE_ROW) {
		uint64_t seq = audit_rid_seq(sqlite3_column_int64(t->leaves, 0));
		if (seq != lo + t->count || sqlite3_column_bytes(t->leaves, 1) != HL) {
			e = ctx_errorf(c, ERR_IO, "stream '%s' is damaged at record %llu", t->node,
				       (unsigned long long)(lo + t->count));
			break;
		}
		memcpy(t->leaf[t->count++], sqlite3_column_blob(t->leaves, 1), HL);
	}
	if (!e && rc != SQLITE_DONE)
		e = adb_fail(c, ERR_IO, t->db, "audit log");
	sqlite3_reset(t->leaves);
	sqlite3_clear_bindings(t->leaves);
	if (!e && t->count < need)
		e = ctx_errorf(c, ERR_NOTFOUND, "stream '%s' has no record %llu", t->node,
			       (unsigned long long)(lo + t->count));
	if (!e) {
		t->have_block = true;
		t->block = block;
	}
	return e;
}

enum err tree_leaf(struct tree_src *t, uint64_t seq, uint8_t out[HL], struct ctx *c)
{
	uint64_t block = seq >> AUDIT_TIER_BITS;
	size_t off = (size_t)(seq & (AUDIT_TIER_SIZE - 1));
	enum err e = load_block(t, block, off + 1, c);

	if (!e)
		memcpy(out, t->leaf[off], HL);
	return e;
}

/* Stored roots of level 'level', indexes [idx, idx + n). */
static enum err load_subtrees(struct tree_src *t, int level, uint64_t idx, size_t n, uint8_t *out,
			      struct ctx *c)
{
	enum err e = ERR_OK;
	size_t got = 0;
	int rc;

	if (!t->subs &&
	    (e = adb_prepare(t->db,
			     "SELECT idx, hash FROM subtree WHERE node = ?1 AND level = ?2"
			     " AND idx >= ?3 AND idx < ?4 ORDER BY idx",
			     &t->subs, c)))
		return e;
	sqlite3_bind_text(t->subs, 1, t->node, -1, SQLITE_STATIC);
	sqlite3_bind_int(t->subs, 2, level);
	sqlite3_bind_int64(t->subs, 3, (sqlite3_int64)idx);
	sqlite3_bind_int64(t->subs, 4, (sqlite3_int64)(idx + n));
	while ((rc = sqlite3_step(t->subs)) == SQLITE_ROW) {
		if ((uint64_t)sqlite3_column_int64(t->subs, 0) != idx + got ||
		    sqlite3_column_bytes(t->subs, 1) != HL) {
			rc = SQLITE_CORRUPT;
			break;
		}
		memcpy(out + got * HL, sqlite3_column_blob(t->subs, 1), HL);
		got++;
	}
	sqlite3_reset(t->subs);
	sqlite3_clear_bindings(t->subs);
	if (rc != SQLITE_DONE || got != n)
		e = ctx_errorf(c, ERR_IO, "stream '%s': cached subtree roots at level %d are missing",
			       t->node, level);
	return e;
}

static size_t memo_slot(uint64_t lo, uint64_t hi)
{
	uint64_t x = lo * 0x9e3779b97f4a7c15ULL ^ (hi + 0x632be59bd9b4e019ULL);
	x ^= x >> 29;
	return (size_t)(x % MEMO_SLOTS);
}

/* The root of the perfect aligned subtree [lo, lo + 2^k). */
static enum err perfect(struct tree_src *t, uint64_t lo, int k, uint8_t out[HL], struct ctx *c)
{
	uint64_t hi = lo + ((uint64_t)1 << k);
	struct memo *m = &t->memo[memo_slot(lo, hi)];
	enum err e;

	if (m->hi == hi && m->lo == lo) {
		memcpy(out, m->h, HL);
		return ERR_OK;
	}
	if (k >= AUDIT_TIER_BITS) {
		int level = k - k % AUDIT_TIER_BITS;
		size_t n = (size_t)1 << (k - level);
		uint8_t hashes[128 * HL];
		if ((e = load_subtrees(t, level, lo >> level, n, hashes, c)))
			return e;
		e = merkle_root(hashes, n, out);
	} else {
		uint64_t block = lo >> AUDIT_TIER_BITS;
		size_t off = (size_t)(lo & (AUDIT_TIER_SIZE - 1));
		size_t n = (size_t)1 << k;
		if ((e = load_block(t, block, off + n, c)))
			return e;
		e = merkle_root(t->leaf[off], n, out);
	}
	if (e)
		return ctx_errorf(c, e, "subtree out of range");
	if (k > 0) {
		m->lo = lo;
		m->hi = hi;
		memcpy(m->h, out, HL);
	}
	return ERR_OK;
}

static uint64_t split_point(uint64_t n)
{
	uint64_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

enum err tree_range_hash(struct tree_src *t, uint64_t lo, uint64_t hi, uint8_t out[HL],
			 struct ctx *c)
{
	uint64_t n = hi - lo;
	uint8_t l[HL], r[HL];
	enum err e;

	if (hi <= lo || hi >= MERKLE_SIZE_LIMIT)
		return ctx_errorf(c, ERR_INVALID, "empty or oversized subtree");
	if ((n & (n - 1)) == 0 && lo % n == 0)
		return perfect(t, lo, __builtin_ctzll(n), out, c);
	{
		uint64_t k = split_point(n);
		if ((e = tree_range_hash(t, lo, lo + k, l, c)) ||
		    (e = tree_range_hash(t, lo + k, hi, r, c)))
			return e;
	}
	merkle_node_hash(l, r, out);
	return ERR_OK;
}

static enum err add_hash(struct tree_src *t, uint64_t lo, uint64_t hi, uint8_t *proof,
			 size_t *len, struct ctx *c)
{
	if (*len >= MERKLE_PROOF_MAX)
		return ctx_errorf(c, ERR_INVALID, "proof too long");
	return tree_range_hash(t, lo, hi, proof + (*len)++ * HL, c);
}

static enum err path(struct tree_src *t, uint64_t m, uint64_t lo, uint64_t hi, uint8_t *proof,
		     size_t *len, struct ctx *c)
{
	uint64_t k;
	enum err e;

	if (hi - lo == 1)
		return ERR_OK;
	k = split_point(hi - lo);
	if (m < lo + k) {
		if ((e = path(t, m, lo, lo + k, proof, len, c)))
			return e;
		return add_hash(t, lo + k, hi, proof, len, c);
	}
	if ((e = path(t, m, lo + k, hi, proof, len, c)))
		return e;
	return add_hash(t, lo, lo + k, proof, len, c);
}

enum err tree_inclusion(struct tree_src *t, uint64_t index, uint64_t size, uint8_t *proof,
			size_t *len, struct ctx *c)
{
	enum err e;

	*len = 0;
	if (index >= size || size >= MERKLE_SIZE_LIMIT)
		return ctx_errorf(c, ERR_INVALID, "record %llu is not in a tree of %llu",
				  (unsigned long long)index, (unsigned long long)size);
	e = path(t, index, 0, size, proof, len, c);
	if (e)
		*len = 0;
	return e;
}

/* SUBPROOF(m, D[lo:hi], b) of RFC 9162 section 2.1.4.1 (m counted from lo). */
static enum err subproof(struct tree_src *t, uint64_t m, uint64_t lo, uint64_t hi, bool b,
			 uint8_t *proof, size_t *len, struct ctx *c)
{
	uint64_t n = hi - lo, k;
	enum err e;

	if (m == n)
		return b ? ERR_OK : add_hash(t, lo, hi, proof, len, c);
	k = split_point(n);
	if (m <= k) {
		if ((e = subproof(t, m, lo, lo + k, b, proof, len, c)))
			return e;
		return add_hash(t, lo + k, hi, proof, len, c);
	}
	if ((e = subproof(t, m - k, lo + k, hi, false, proof, len, c)))
		return e;
	return add_hash(t, lo, lo + k, proof, len, c);
}

enum err tree_consistency(struct tree_src *t, uint64_t size1, uint64_t size2, uint8_t *proof,
			  size_t *len, struct ctx *c)
{
	enum err e;

	*len = 0;
	if (size1 == 0 || size1 > size2 || size2 >= MERKLE_SIZE_LIMIT)
		return ctx_errorf(c, ERR_INVALID, "no consistency proof from %llu to %llu",
				  (unsigned long long)size1, (unsigned long long)size2);
	e = subproof(t, size1, 0, size2, true, proof, len, c);
	if (e)
		*len = 0;
	return e;
}

enum err tree_compact(struct tree_src *t, uint64_t size, struct merkle_compact *out,
		      struct ctx *c)
{
	uint8_t ser[MERKLE_COMPACT_SERIAL_MAX];
	size_t n = 0;
	uint64_t start = 0;
	enum err e;

	merkle_compact_init(out);
	if (size >= MERKLE_SIZE_LIMIT)
		return ctx_errorf(c, ERR_INVALID, "tree too large");
	ser[n++] = 1;
	for (int i = 7; i >= 0; i--)
		ser[n++] = (uint8_t)(size >> (8 * i));
	for (int bit = 61; bit >= 0; bit--) {
		if (!(size >> bit & 1))
			continue;
		if ((e = perfect(t, start, bit, ser + n, c)))
			return e;
		n += HL;
		start += (uint64_t)1 << bit;
	}
	if (merkle_compact_parse(out, ser, n))
		return ctx_errorf(c, ERR_IO, "cannot rebuild the tree of stream '%s'", t->node);
	return ERR_OK;
}

/* ---- tiers ---------------------------------------------------------------- */

void tiers_init(struct tiers *tr)
{
	for (int i = 0; i < AUDIT_TIERS; i++)
		merkle_compact_init(&tr->t[i]);
}

enum err tiers_append(struct tiers *tr, uint64_t index, const uint8_t leaf[HL], tier_emit_fn emit,
		      void *arg)
{
	uint8_t h[HL];

	memcpy(h, leaf, HL);
	for (int i = 0; i < AUDIT_TIERS; i++) {
		int level = AUDIT_TIER_BITS * (i + 1);
		enum err e = merkle_compact_append(&tr->t[i], h);
		if (e)
			return e;
		if (tr->t[i].size < AUDIT_TIER_SIZE)
			break;
		merkle_compact_root(&tr->t[i], h);
		merkle_compact_init(&tr->t[i]);
		if (emit && (e = emit(arg, level, index >> level, h)))
			return e;
	}
	return ERR_OK;
}

enum err tiers_load(struct tiers *tr, struct tree_src *t, uint64_t size, struct ctx *c)
{
	enum err e;

	tiers_init(tr);
	for (int i = 0; i < AUDIT_TIERS; i++) {
		int level = AUDIT_TIER_BITS * i;
		uint64_t upto = size >> level;
		uint64_t from = upto & ~(uint64_t)(AUDIT_TIER_SIZE - 1);
		size_t n = (size_t)(upto - from);
		uint8_t *hashes;

		if (!n)
			continue;
		hashes = xmalloc(n * HL);
		if (level == 0) {
			e = ERR_OK;
			for (size_t j = 0; j < n && !e; j++)
				e = tree_leaf(t, from + j, hashes + j * HL, c);
		} else {
			e = load_subtrees(t, level, from, n, hashes, c);
		}
		for (size_t j = 0; j < n && !e; j++)
			e = merkle_compact_append(&tr->t[i], hashes + j * HL);
		free(hashes);
		if (e)
			return e;
	}
	return ERR_OK;
}
