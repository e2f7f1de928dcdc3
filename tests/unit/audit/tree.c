/*
 * Unit tests of src/audit/tree.c on a synthetic stream of 70,000 leaves
 * (written straight into the schema, with the block roots the tiers
 * produce), so that cached roots at levels 8 and 16 are both in use:
 * subtree hashes, inclusion and consistency proofs and compact ranges
 * must equal what merkle.c computes from the whole leaf array, and tiers
 * rebuilt from the database at any size must continue exactly as
 * appending would have.
 */
#include "audit_test.h"

#include "audit/audit_int.h"

#define HL MERKLE_HASH_LEN
#define LEAVES 70000

static uint8_t *leaves;

struct sink {
	sqlite3_stmt *st;
};

static enum err put_subtree(void *arg, int level, uint64_t idx, const uint8_t hash[HL])
{
	struct sink *s = arg;

	sqlite3_bind_text(s->st, 1, "n", -1, SQLITE_STATIC);
	sqlite3_bind_int(s->st, 2, level);
	sqlite3_bind_int64(s->st, 3, (sqlite3_int64)idx);
	sqlite3_bind_blob(s->st, 4, hash, HL, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(s->st), SQLITE_DONE);
	sqlite3_reset(s->st);
	return ERR_OK;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ctx c = CTX_INIT;
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	struct sink s = {NULL};
	struct tiers tr;

	fx_dir(f, "audit-tree");
	assert_int_equal(adb_open(f->dir, true, &db, &c), ERR_OK);
	leaves = malloc((size_t)LEAVES * HL);
	assert_int_equal(sqlite3_exec(db, "BEGIN; INSERT INTO stream(no, node) VALUES (1, 'n')", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "INSERT INTO record(id, time_ms, type, outcome, leaf)"
					    " VALUES (" ID0 " + ?, 0, 'fhir.read', 0, ?)",
					    -1, &ins, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO subtree VALUES (?, ?, ?, ?)", -1, &s.st,
					    NULL),
			 SQLITE_OK);
	tiers_init(&tr);
	for (uint64_t i = 0; i < LEAVES; i++) {
		uint64_t v = i * 2654435761u;
		merkle_leaf_hash(&v, sizeof(v), leaves + i * HL);
		sqlite3_bind_int64(ins, 1, (sqlite3_int64)i);
		sqlite3_bind_blob(ins, 2, leaves + i * HL, HL, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
		sqlite3_reset(ins);
		assert_int_equal(tiers_append(&tr, i, leaves + i * HL, put_subtree, &s), ERR_OK);
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(s.st);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fx_release(f);
	free(f);
	free(leaves);
	return 0;
}

static void test_cached_levels(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = raw_db(f);
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT (SELECT count(*) FROM subtree WHERE level = 8),"
					    " (SELECT count(*) FROM subtree WHERE level = 16),"
					    " (SELECT count(*) FROM subtree WHERE level > 16)",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), LEAVES / 256);
	assert_int_equal(sqlite3_column_int(st, 1), 1);
	assert_int_equal(sqlite3_column_int(st, 2), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_proofs_and_ranges(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	sqlite3 *db = NULL;
	struct tree_src *t;
	const uint64_t sizes[] = {1, 2, 255, 256, 257, 65535, 65536, 65537, 69999, LEAVES};
	const uint64_t idx[] = {0, 255, 256, 65535, 65536, 69998};

	assert_int_equal(adb_open(f->dir, false, &db, &c), ERR_OK);
	t = tree_src_new(db, "n");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t n = sizes[s];
		uint8_t want[HL], got[HL];
		struct merkle_compact mc;

		assert_int_equal(merkle_root(leaves, n, want), ERR_OK);
		assert_int_equal(tree_range_hash(t, 0, n, got, &c), ERR_OK);
		assert_memory_equal(got, want, HL);
		assert_int_equal(tree_compact(t, n, &mc, &c), ERR_OK);
		merkle_compact_root(&mc, got);
		assert_memory_equal(got, want, HL);
		/* proofs from merkle.c cost O(n) each: a few sizes only */
		for (size_t k = 0; k < sizeof(idx) / sizeof(idx[0]); k++) {
			uint8_t p1[MERKLE_PROOF_MAX * HL], p2[MERKLE_PROOF_MAX * HL];
			size_t n1, n2;
			if (idx[k] >= n || (n != 257 && n != LEAVES))
				continue;
			assert_int_equal(tree_inclusion(t, idx[k], n, p1, &n1, &c), ERR_OK);
			assert_int_equal(merkle_inclusion_proof(leaves, n, idx[k], p2, &n2), ERR_OK);
			assert_int_equal(n1, n2);
			assert_memory_equal(p1, p2, n1 * HL);
			if (idx[k] > 0) {
				assert_int_equal(tree_consistency(t, idx[k], n, p1, &n1, &c), ERR_OK);
				assert_int_equal(merkle_consistency_proof(leaves, idx[k], n, p2, &n2),
						 ERR_OK);
				assert_int_equal(n1, n2);
				assert_memory_equal(p1, p2, n1 * HL);
			}
		}
	}
	/* beyond the stored leaves */
	{
		uint8_t h[HL], p[MERKLE_PROOF_MAX * HL];
		size_t n;
		assert_int_not_equal(tree_range_hash(t, 0, LEAVES + 1, h, &c), ERR_OK);
		assert_int_equal(tree_inclusion(t, 5, 5, p, &n, &c), ERR_INVALID);
		assert_int_equal(tree_consistency(t, 0, 5, p, &n, &c), ERR_INVALID);
		assert_int_equal(tree_leaf(t, LEAVES, h, &c), ERR_NOTFOUND);
	}
	tree_src_free(t);
	sqlite3_close(db);
}

static enum err collect(void *arg, int level, uint64_t i, const uint8_t hash[HL])
{
	uint64_t *n = arg;

	(void)level;
	(void)i;
	(void)hash;
	(*n)++;
	return ERR_OK;
}

static void test_tiers_reload(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	sqlite3 *db = NULL;
	struct tree_src *t;
	const uint64_t cuts[] = {0, 1, 255, 256, 300, 65535, 65536, 65800};

	assert_int_equal(adb_open(f->dir, false, &db, &c), ERR_OK);
	t = tree_src_new(db, "n");
	for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
		struct tiers a, b;
		uint64_t ea = 0, eb = 0;
		/* continuing from a reload emits what continuing from scratch does */
		tiers_init(&a);
		for (uint64_t i = 0; i < cuts[k]; i++)
			tiers_append(&a, i, leaves + i * HL, NULL, NULL);
		assert_int_equal(tiers_load(&b, t, cuts[k], &c), ERR_OK);
		for (int i = 0; i < AUDIT_TIERS; i++) {
			assert_int_equal(a.t[i].size, b.t[i].size);
			{
				uint8_t ra[HL], rb[HL];
				merkle_compact_root(&a.t[i], ra);
				merkle_compact_root(&b.t[i], rb);
				assert_memory_equal(ra, rb, HL);
			}
		}
		for (uint64_t i = cuts[k]; i < cuts[k] + 600 && i < LEAVES; i++) {
			tiers_append(&a, i, leaves + i * HL, collect, &ea);
			tiers_append(&b, i, leaves + i * HL, collect, &eb);
		}
		assert_int_equal(ea, eb);
	}
	tree_src_free(t);
	sqlite3_close(db);
}

static long long pragma(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * The writer's connection syncs every commit (FULL = 2), and no connection
 * puts temporary data (the statement journal of a multi-row INSERT, a
 * sort) in a file outside the data directory (temp_store MEMORY = 2): such
 * a file would add a disk write per page the writer touches, and a full
 * /var/tmp would fail the log.
 */
static void test_connection_settings(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	sqlite3 *w = NULL, *r = NULL;

	assert_int_equal(adb_open(f->dir, true, &w, &c), ERR_OK);
	assert_int_equal(adb_open(f->dir, false, &r, &c), ERR_OK);
	assert_int_equal(pragma(w, "PRAGMA synchronous"), 2);
	assert_int_equal(pragma(w, "PRAGMA temp_store"), 2);
	assert_int_equal(pragma(r, "PRAGMA temp_store"), 2);
	assert_int_equal(pragma(r, "PRAGMA query_only"), 1);
	sqlite3_close(r);
	sqlite3_close(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cached_levels),
		cmocka_unit_test(test_proofs_and_ranges),
		cmocka_unit_test(test_tiers_reload),
		cmocka_unit_test(test_connection_settings),
	};
	if (getenv("AUDIT_TEST_FILTER"))
		cmocka_set_test_filter(getenv("AUDIT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
