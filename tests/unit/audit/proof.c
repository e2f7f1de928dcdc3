/*
 * Unit tests of src/audit/tree.c and src/audit/reader.c: proofs served
 * from the stored tree, receipts and their offline check, NDJSON export
 * with proofs, and retention (pruning keeps the log verifiable).
 *
 * - Inclusion and consistency proofs for a log of 700 records (cached
 *   block roots at level 8 in use) equal those merkle.c generates from
 *   all leaves, and verify against the signed roots.
 * - A receipt checks; any change to its record, proof, sequence or
 *   checkpoint, another key, or garbage makes it fail.
 * - Export lines carry proofs that verify against the exported checkpoint.
 * - Retention prunes old records: verify still passes, receipts for them
 *   answer ERR_GONE, the archive holds them with proofs, and a body
 *   removed beyond the signed bound is caught.
 */
#include "audit_test.h"

#include <fcntl.h>

#include "core/base64.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"

#define HL MERKLE_HASH_LEN
#define N 700

static uint8_t leaves[N * HL];

static void load_leaves(const struct fx *f, uint64_t n)
{
	sqlite3 *db = raw_db(f);
	sqlite3_stmt *st = NULL;
	uint64_t i = 0;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT leaf FROM record ORDER BY id", -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && i < n) {
		assert_int_equal(sqlite3_column_bytes(st, 0), HL);
		memcpy(leaves + i * HL, sqlite3_column_blob(st, 0), HL);
		i++;
	}
	assert_int_equal(i, n);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static size_t decode_hashes(const json_t *arr, uint8_t *out)
{
	size_t n = json_array_size(arr);

	assert_true(n <= MERKLE_PROOF_MAX);
	for (size_t i = 0; i < n; i++) {
		struct buf b = BUF_INIT(64);
		const char *s = json_string_value(json_array_get(arr, i));
		assert_non_null(s);
		assert_int_equal(base64url_decode(s, strlen(s), &b), ERR_OK);
		assert_int_equal(b.len, HL);
		memcpy(out + i * HL, b.data, HL);
		buf_release(&b);
	}
	return n;
}

/* The signed root of the checkpoint JWS (its payload, not re-verified here). */
static void jws_root(const char *jws, uint64_t *size, uint8_t root[HL])
{
	struct ctx c = CTX_INIT;
	json_t *h = NULL, *p = NULL;
	struct buf b = BUF_INIT(64);
	const char *r;

	assert_int_equal(jose_jws_decode_unverified(jws, strlen(jws), &h, &p, &c), ERR_OK);
	*size = (uint64_t)json_integer_value(json_object_get(p, "size"));
	r = json_string_value(json_object_get(p, "root"));
	assert_int_equal(base64url_decode(r, strlen(r), &b), ERR_OK);
	assert_int_equal(b.len, HL);
	memcpy(root, b.data, HL);
	buf_release(&b);
	json_decref(h);
	json_decref(p);
}

static int setup700(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct audit_opts o = {.checkpoint_records = 50};

	fx_init(f, "audit-proof");
	fx_open(f, &o);
	for (int i = 0; i < N; i += 50)
		record_n(f->a, i, 50, false);
	fx_close(f);
	load_leaves(f, N);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fx_release(f);
	free(f);
	return 0;
}

static void test_inclusion_proofs(void **state)
{
	struct fx *f = *state;
	struct audit_reader *r = NULL;
	struct ctx c = CTX_INIT;
	const uint64_t seqs[] = {0, 1, 2, 127, 255, 256, 257, 511, 512, 600, 698, 699};
	const uint64_t sizes[] = {0, 700, 650, 600, 300};

	assert_int_equal(audit_reader_open(f->dir, &r, &c), ERR_OK);
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		for (size_t k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++) {
			uint8_t got[MERKLE_PROOF_MAX * HL], want[MERKLE_PROOF_MAX * HL], root[HL];
			size_t gn, wn;
			uint64_t size;
			json_t *p = NULL;
			enum err e = audit_inclusion_proof(r, NULL, seqs[k], sizes[si], &p, &c);

			if (seqs[k] >= (sizes[si] ? sizes[si] : N)) {
				assert_int_equal(e, ERR_NOTFOUND);
				continue;
			}
			if (e != ERR_OK)
				fail_msg("proof %llu@%llu: %s", (unsigned long long)seqs[k],
					 (unsigned long long)sizes[si], c.msg);
			size = (uint64_t)json_integer_value(json_object_get(p, "tree_size"));
			assert_int_equal(size, sizes[si] ? sizes[si] : N);
			gn = decode_hashes(json_object_get(p, "hashes"), got);
			assert_int_equal(merkle_inclusion_proof(leaves, size, seqs[k], want, &wn), ERR_OK);
			assert_int_equal(gn, wn);
			assert_memory_equal(got, want, gn * HL);
			jws_root(json_string_value(json_object_get(p, "checkpoint")), &size, root);
			assert_int_equal(merkle_inclusion_verify(leaves + seqs[k] * HL, seqs[k], size, got,
								 gn, root),
					 ERR_OK);
			json_decref(p);
		}
	}
	/* not a checkpoint size; no such record; no such stream */
	{
		json_t *p = NULL;
		assert_int_equal(audit_inclusion_proof(r, NULL, 3, 77, &p, &c), ERR_NOTFOUND);
		assert_int_equal(audit_inclusion_proof(r, NULL, 5000, 0, &p, &c), ERR_NOTFOUND);
		assert_int_equal(audit_inclusion_proof(r, "other", 1, 0, &p, &c), ERR_NOTFOUND);
		assert_int_equal(audit_inclusion_proof(r, "bad node!", 1, 0, &p, &c), ERR_INVALID);
		assert_null(p);
	}
	audit_reader_free(r);
}

static void test_consistency_proofs(void **state)
{
	struct fx *f = *state;
	struct audit_reader *r = NULL;
	struct ctx c = CTX_INIT;
	const uint64_t pairs[][2] = {{50, 700}, {100, 150}, {250, 300}, {256 + 44, 650},
				     {700, 700}, {50, 50}, {300, 600}};

	assert_int_equal(audit_reader_open(f->dir, &r, &c), ERR_OK);
	for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
		uint8_t got[MERKLE_PROOF_MAX * HL], want[MERKLE_PROOF_MAX * HL], r1[HL], r2[HL];
		uint64_t s1, s2;
		size_t gn, wn;
		json_t *p = NULL;

		if (audit_consistency_proof(r, NULL, pairs[k][0], pairs[k][1], &p, &c))
			fail_msg("consistency %llu..%llu: %s", (unsigned long long)pairs[k][0],
				 (unsigned long long)pairs[k][1], c.msg);
		gn = decode_hashes(json_object_get(p, "hashes"), got);
		assert_int_equal(merkle_consistency_proof(leaves, pairs[k][0], pairs[k][1], want, &wn),
				 ERR_OK);
		assert_int_equal(gn, wn);
		assert_memory_equal(got, want, gn * HL);
		jws_root(json_string_value(json_object_get(p, "checkpoint1")), &s1, r1);
		jws_root(json_string_value(json_object_get(p, "checkpoint2")), &s2, r2);
		assert_int_equal(merkle_consistency_verify(s1, s2, r1, r2, got, gn), ERR_OK);
		json_decref(p);
	}
	{
		json_t *p = NULL;
		assert_int_equal(audit_consistency_proof(r, NULL, 0, 50, &p, &c), ERR_INVALID);
		assert_int_equal(audit_consistency_proof(r, NULL, 100, 50, &p, &c), ERR_INVALID);
		assert_int_equal(audit_consistency_proof(r, NULL, 51, 100, &p, &c), ERR_NOTFOUND);
	}
	/* the checkpoints list */
	{
		json_t *l = NULL;
		assert_int_equal(audit_checkpoints(r, NULL, false, 0, &l, &c), ERR_OK);
		assert_int_equal(json_array_size(json_object_get(l, "checkpoints")), 1);
		assert_int_equal(json_integer_value(json_object_get(
					 json_array_get(json_object_get(l, "checkpoints"), 0), "size")),
				 N);
		json_decref(l);
		assert_int_equal(audit_checkpoints(r, "node-1", true, 0, &l, &c), ERR_OK);
		assert_int_equal(json_array_size(json_object_get(l, "checkpoints")), N / 50);
		json_decref(l);
		assert_int_equal(audit_checkpoints(r, NULL, true, 3, &l, &c), ERR_OK);
		assert_int_equal(json_array_size(json_object_get(l, "checkpoints")), 3);
		json_decref(l);
		assert_int_equal(audit_checkpoints(r, "bad node!", false, 0, &l, &c), ERR_INVALID);
		assert_null(l);
	}
	/* the history in pages: each checkpoint once, in order, and *more until the last */
	{
		char after[AUDIT_NODE_MAX + 1] = "";
		uint64_t size = 0, want = 50;
		bool more = true;
		int pages = 0;
		json_t *l = NULL;

		while (more) {
			json_t *list;
			assert_int_equal(audit_checkpoints_page(r, "node-1", pages ? after : NULL, size,
								 3, &l, &more, &c),
					 ERR_OK);
			list = json_object_get(l, "checkpoints");
			assert_true(json_array_size(list) >= 1 && json_array_size(list) <= 3);
			for (size_t i = 0; i < json_array_size(list); i++, want += 50)
				assert_int_equal(json_integer_value(json_object_get(
							 json_array_get(list, i), "size")),
						 want);
			size = (uint64_t)json_integer_value(
				json_object_get(json_array_get(list, json_array_size(list) - 1), "size"));
			snprintf(after, sizeof(after), "node-1");
			json_decref(l);
			pages++;
		}
		assert_int_equal(want, N + 50);
		assert_int_equal(pages, (N / 50 + 2) / 3);
		assert_int_equal(audit_checkpoints_page(r, NULL, NULL, 0, 0, &l, &more, &c), ERR_INVALID);
		assert_int_equal(audit_checkpoints_page(r, NULL, "x/y", 0, 3, &l, &more, &c),
				 ERR_INVALID);
		assert_null(l);
	}
	audit_reader_free(r);
}

static char *receipt_text(const struct fx *f, uint64_t seq)
{
	struct audit_reader *r = NULL;
	struct ctx c = CTX_INIT;
	json_t *rc = NULL;
	char *s;

	assert_int_equal(audit_reader_open(f->dir, &r, &c), ERR_OK);
	if (audit_receipt(r, NULL, seq, &rc, &c))
		fail_msg("receipt: %s", c.msg);
	audit_reader_free(r);
	s = json_dumps(rc, JSON_COMPACT);
	json_decref(rc);
	return s;
}

static enum err check(const struct fx *f, const char *s)
{
	struct ctx c = CTX_INIT;

	return audit_receipt_verify(s, strlen(s), f->pub, NULL, &c);
}

/* The receipt with member 'name' replaced by 'value' (JSON text). */
static char *with(const char *s, const char *name, const char *value)
{
	json_t *j = json_loads(s, 0, NULL);
	char *out;

	json_object_set_new(j, name, json_loads(value, JSON_DECODE_ANY, NULL));
	out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

static void test_receipts(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	char *s = receipt_text(f, 257), *t;
	json_t *rec = NULL, *doc = json_loads(s, 0, NULL);

	assert_int_equal(audit_receipt_verify(s, strlen(s), f->pub, &rec, &c), ERR_OK);
	assert_int_equal(json_integer_value(json_object_get(rec, "seq")), 257);
	assert_string_equal(json_string_value(json_object_get(rec, "node")), "node-1");
	assert_non_null(json_object_get(doc, "jwk"));
	json_decref(rec);

	/* the record changed */
	{
		const char *body = json_string_value(json_object_get(doc, "record"));
		char *b2 = strdup(body);
		json_t *js;
		char *p = strstr(b2, "\"outcome\":");
		assert_non_null(p);
		p[10] = p[10] == '0' ? '4' : '0';
		js = json_string(b2);
		t = json_dumps(js, JSON_ENCODE_ANY);
		free(b2);
		json_decref(js);
		{
			char *t2 = with(s, "record", t);
			assert_int_equal(check(f, t2), ERR_INVALID);
			free(t2);
		}
		free(t);
	}
	/* another record's bytes under this proof */
	{
		char *other = receipt_text(f, 258);
		json_t *o = json_loads(other, 0, NULL);
		char *rtext = json_dumps(json_object_get(o, "record"), JSON_ENCODE_ANY);
		char *t2 = with(s, "record", rtext);
		assert_int_equal(check(f, t2), ERR_INVALID);
		free(t2);
		free(rtext);
		json_decref(o);
		free(other);
	}
	/* seq, proof, checkpoint, key */
	t = with(s, "seq", "256");
	assert_int_equal(check(f, t), ERR_INVALID);
	free(t);
	t = with(s, "tree_size", "699");
	assert_int_equal(check(f, t), ERR_INVALID);
	free(t);
	{
		json_t *h = json_deep_copy(json_object_get(doc, "hashes"));
		char *ht;
		json_array_set_new(h, 2, json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
		ht = json_dumps(h, 0);
		t = with(s, "hashes", ht);
		assert_int_equal(check(f, t), ERR_INVALID);
		free(t);
		json_array_remove(h, 0);
		free(ht);
		ht = json_dumps(h, 0);
		t = with(s, "hashes", ht);
		assert_int_equal(check(f, t), ERR_INVALID);
		free(t);
		free(ht);
		json_decref(h);
		t = with(s, "hashes", "[\"not a hash\"]");
		assert_int_equal(check(f, t), ERR_INVALID);
		free(t);
	}
	{
		char *jws = strdup(json_string_value(json_object_get(doc, "checkpoint")));
		size_t n = strlen(jws);
		json_t *js;
		jws[n - 3] = jws[n - 3] == 'A' ? 'B' : 'A';
		js = json_string(jws);
		free(jws);
		jws = json_dumps(js, JSON_ENCODE_ANY);
		json_decref(js);
		t = with(s, "checkpoint", jws);
		assert_int_equal(check(f, t), ERR_UNAUTHORIZED);
		free(t);
		free(jws);
	}
	{
		struct jose_key *other = NULL;
		struct jose_jwks *set;
		assert_int_equal(jose_key_generate(JOSE_GEN_P256, &other, &c), ERR_OK);
		set = public_set(other);
		assert_int_equal(audit_receipt_verify(s, strlen(s), set, NULL, &c), ERR_UNAUTHORIZED);
		jose_jwks_free(set);
		jose_key_free(other);
		assert_int_equal(audit_receipt_verify(s, strlen(s), NULL, NULL, &c), ERR_INVALID);
	}
	assert_int_equal(check(f, "{}"), ERR_INVALID);
	assert_int_equal(check(f, "not json"), ERR_INVALID);
	assert_int_equal(audit_receipt_verify(s, AUDIT_RECEIPT_MAX + 1, f->pub, NULL, &c), ERR_TOOBIG);
	json_decref(doc);
	free(s);
}

static void test_cache_tamper(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;
	struct audit_reader *rd = NULL;
	json_t *p = NULL;
	uint8_t got[MERKLE_PROOF_MAX * HL], root[HL];
	uint64_t size;
	size_t gn;

	raw_exec(f, "UPDATE subtree SET hash = zeroblob(32) WHERE level = 8 AND idx = 1");
	assert_int_equal(audit_verify(f->dir, f->pub, &r, &c), ERR_INVALID);
	assert_int_equal(r.first_bad, 256);
	assert_int_equal(r.bad_end, 512);
	/* a proof built on the damaged cache does not verify: a client notices */
	assert_int_equal(audit_reader_open(f->dir, &rd, &c), ERR_OK);
	assert_int_equal(audit_inclusion_proof(rd, NULL, 3, 0, &p, &c), ERR_OK);
	gn = decode_hashes(json_object_get(p, "hashes"), got);
	jws_root(json_string_value(json_object_get(p, "checkpoint")), &size, root);
	assert_int_equal(merkle_inclusion_verify(leaves + 3 * HL, 3, size, got, gn, root), ERR_INVALID);
	json_decref(p);
	audit_reader_free(rd);
}

static void test_export(void **state)
{
	struct fx *f = *state;
	struct audit_reader *r = NULL;
	struct ctx c = CTX_INIT;
	struct audit_filter flt = AUDIT_FILTER_INIT;
	char path[300];
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	uint64_t n = 0, lines = 0, size = 0;
	uint8_t root[HL];
	int fd;

	snprintf(path, sizeof(path), "%s/export.ndjson", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(audit_reader_open(f->dir, &r, &c), ERR_OK);
	flt.patient = "p3";
	assert_int_equal(audit_export(r, &flt, fd, &n, &c), ERR_OK);
	close(fd);
	audit_reader_free(r);
	assert_int_equal(n, N / 7);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (getline(&line, &cap, fp) > 0) {
		json_t *j = json_loads(line, 0, NULL);
		assert_non_null(j);
		if (lines++ == 0) {
			jws_root(json_string_value(json_object_get(j, "checkpoint")), &size, root);
			assert_int_equal(size, N);
		} else {
			const char *rec = json_string_value(json_object_get(j, "record"));
			uint64_t seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
			uint8_t proof[MERKLE_PROOF_MAX * HL], leaf[HL];
			size_t pn = decode_hashes(json_object_get(j, "hashes"), proof);
			merkle_leaf_hash(rec, strlen(rec), leaf);
			assert_int_equal(merkle_inclusion_verify(leaf, seq, size, proof, pn, root), ERR_OK);
			assert_non_null(strstr(rec, "\"patient\":\"p3\""));
		}
		json_decref(j);
	}
	assert_int_equal(lines, n + 1);
	free(line);
	fclose(fp);
}

static void test_retention(void **state)
{
	struct fx f;
	struct audit_opts o = {.retention_days = AUDIT_RETAIN_FOREVER, .checkpoint_records = 100};
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;
	int64_t old = clock_now_ms() - 3 * 86400000LL;
	struct audit_reader *rd = NULL;
	json_t *rc = NULL;
	uint64_t pruned = 0;
	char archive[300], path[400];

	(void)state;
	fx_init(&f, "audit-retention");
	snprintf(archive, sizeof(archive), "%s/archive", f.dir);
	fx_open(&f, &o);
	for (int i = 0; i < 300; i++) {
		char p[16];
		struct audit_entity en;
		struct audit_event ev = sample_event(i, p, sizeof(p), &en);
		uint64_t t;
		ev.time_ms = old + i;
		assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
		if (i == 299)
			assert_int_equal(audit_wait(f.a, t, &c), ERR_OK);
	}
	record_n(f.a, 300, 20, false);
	fx_close(&f);
	/* keep one day: the 300 old records go */
	o.retention_days = 1;
	o.archive_dir = archive;
	fx_open(&f, &o);
	assert_int_equal(audit_prune(f.a, &pruned, &c), ERR_OK);
	fx_close(&f);
	{
		sqlite3 *db = raw_db(&f);
		sqlite3_stmt *st = NULL;
		assert_int_equal(sqlite3_prepare_v2(db,
						    "SELECT count(*) FROM record WHERE body IS NULL"
						    " AND patient IS NULL AND agent IS NULL",
						    -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 300);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	assert_int_equal(audit_verify(f.dir, f.pub, &r, &c), ERR_OK);
	assert_int_equal(r.pruned, 300);
	assert_int_equal(r.records, 321); /* and the prune record */
	/* receipts: gone for pruned records, fine for the others */
	assert_int_equal(audit_reader_open(f.dir, &rd, &c), ERR_OK);
	assert_int_equal(audit_receipt(rd, NULL, 10, &rc, &c), ERR_GONE);
	assert_int_equal(audit_receipt(rd, NULL, 310, &rc, &c), ERR_OK);
	{
		char *s = json_dumps(rc, JSON_COMPACT);
		assert_int_equal(check(&f, s), ERR_OK);
		free(s);
		json_decref(rc);
	}
	/* queries do not see pruned records */
	{
		struct audit_filter flt = AUDIT_FILTER_INIT;
		int fd;
		uint64_t n = 0;
		snprintf(path, sizeof(path), "%s/all.ndjson", f.dir);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_int_equal(audit_export(rd, &flt, fd, &n, &c), ERR_OK);
		close(fd);
		assert_int_equal(n, 21);
	}
	audit_reader_free(rd);
	/* the archive holds them, with proofs */
	{
		FILE *fp;
		char *line = NULL;
		size_t cap = 0;
		int lines = 0;
		snprintf(path, sizeof(path), "%s/node-1-0-299.ndjson", archive);
		fp = fopen(path, "r");
		assert_non_null(fp);
		while (getline(&line, &cap, fp) > 0)
			lines++;
		assert_int_equal(lines, 301);
		free(line);
		fclose(fp);
	}
	/* pruning again finds nothing */
	fx_open(&f, &o);
	assert_int_equal(audit_prune(f.a, &pruned, &c), ERR_OK);
	assert_int_equal(pruned, 0);
	fx_close(&f);
	/* a body removed beyond the signed bound is tampering */
	raw_exec(&f, "UPDATE record SET body = NULL WHERE " SEQ " = 305");
	assert_int_equal(audit_verify(f.dir, f.pub, &r, &c), ERR_INVALID);
	assert_int_equal(r.first_bad, 305);
	fx_release(&f);
}

/* An archive that cannot be written postpones pruning; the log goes on. */
static void test_retention_archive_failure(void **state)
{
	struct fx f;
	struct audit_opts o = {.retention_days = AUDIT_RETAIN_FOREVER};
	struct ctx c = CTX_INIT;
	uint64_t pruned = 99;
	struct audit_verify_report r;

	(void)state;
	fx_init(&f, "audit-noarchive");
	fx_open(&f, &o);
	record_old(f.a, 5, 10);
	fx_close(&f);
	log_set_level(LOG_OFF);
	o.retention_days = 1;
	o.archive_dir = "/proc/veranda-no-such-dir/archive";
	fx_open(&f, &o);
	assert_int_equal(audit_prune(f.a, &pruned, &c), ERR_IO);
	assert_non_null(strstr(c.msg, "cannot create"));
	record_n(f.a, 5, 3, true);
	fx_close(&f);
	log_set_level(LOG_WARN);
	assert_int_equal(audit_verify(f.dir, f.pub, &r, &c), ERR_OK);
	assert_int_equal(r.records, 8);
	assert_int_equal(r.pruned, 0);
	fx_release(&f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup700, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_inclusion_proofs),
		T(test_consistency_proofs),
		T(test_receipts),
		T(test_cache_tamper),
		T(test_export),
		cmocka_unit_test(test_retention),
		cmocka_unit_test(test_retention_archive_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
