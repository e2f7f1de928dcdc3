/*
 * tests/unit/store/sqlite.c - the store interface on its SQLite backend.
 *
 * Each test gets a fresh temporary directory (mkdtemp) with a migrated
 * store in it, removed afterwards.  Tests look behind the interface with a
 * separate raw SQLite connection to check index and compartment rows, and
 * inject failures two ways: the store's own fault hook (store_test_fault)
 * and a VFS shim ("faulty") that makes a chosen write or fsync fail the
 * way a failing disk does.
 *
 * The import measurement prints resources/s and asserts nothing about
 * speed.  VERANDA_STORE_BENCH=N runs only it, with N resources (default
 * 3000 as part of the suite).
 */
#include "unit.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/str.h"
#include "core/embedded.h"
#include "store/query.h"
#include "store/store.h"
#include "store/store_int.h"

/* ---- fixture ---- */

struct fx {
	char dir[256];
	char path[300];   /* the database file */
	char url[340];
	struct store *s;
};

static void fx_paths(struct fx *f, const char *vfs)
{
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	if (vfs)
		snprintf(f->url, sizeof(f->url), "sqlite:file:%s?vfs=%s", f->path, vfs);
	else
		snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
}

/* A new empty temporary directory for the fixture (under $TMPDIR or /tmp). */
static int fx_newdir(struct fx *f)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	fx_paths(f, NULL);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ctx c = CTX_INIT;

	if (fx_newdir(f))
		return -1;
	if (store_open(&f->s, f->url, 5000, &c) || store_migrate(f->s, &c)) {
		fprintf(stderr, "setup: %s\n", c.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* Reopen the fixture's store (a restart). */
static void fx_reopen(struct fx *f)
{
	struct ctx c = CTX_INIT;

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(&f->s, f->url, 5000, &c), ERR_OK);
}

/* ---- raw access behind the interface ---- */

static int64_t raw_int(const struct fx *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void raw_exec(const struct fx *f, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* Every index and compartment row of all resources. */
static int64_t raw_ix_total(const struct fx *f)
{
	return raw_int(f, "SELECT (SELECT count(*) FROM ix_token) + (SELECT count(*) FROM ix_string)"
			  " + (SELECT count(*) FROM ix_date) + (SELECT count(*) FROM ix_reference)"
			  " + (SELECT count(*) FROM ix_quantity) + (SELECT count(*) FROM ix_number)"
			  " + (SELECT count(*) FROM ix_uri) + (SELECT count(*) FROM compartment)");
}

/* ---- building puts ---- */

/* A resource with one row of each index kind, all tagged with 'tag'. */
struct res {
	char type[32], id[64], json[256], tag[32], patient[32];
	struct store_ix_row ix[7];
	const char *patients[1];
	struct store_put p;
};

static void res_make(struct res *r, enum store_op op, const char *type, const char *id,
		     int64_t expect, int64_t version, const char *tag)
{
	memset(r, 0, sizeof(*r));
	str_copy(r->type, type, sizeof(r->type));
	str_copy(r->id, id, sizeof(r->id));
	str_copy(r->tag, tag, sizeof(r->tag));
	snprintf(r->patient, sizeof(r->patient), "pat-%s", tag);
	snprintf(r->json, sizeof(r->json),
		 "{\"resourceType\":\"%s\",\"id\":\"%s\",\"meta\":{\"versionId\":\"%lld\"},"
		 "\"note\":\"%s\"}",
		 type, id, (long long)version, tag);
	r->ix[0] = (struct store_ix_row){.kind = STORE_IX_TOKEN, .param = "code",
					 .a = "http://loinc.org", .b = r->tag, .c = "text"};
	r->ix[1] = (struct store_ix_row){.kind = STORE_IX_STRING, .param = "name",
					 .a = r->tag, .b = r->tag};
	r->ix[2] = (struct store_ix_row){.kind = STORE_IX_DATE, .param = "date",
					 .lo = version * 1000, .hi = version * 1000 + 999};
	r->ix[3] = (struct store_ix_row){.kind = STORE_IX_REFERENCE, .param = "subject",
					 .a = "Patient", .b = r->patient, .c = "Patient/x"};
	r->ix[4] = (struct store_ix_row){.kind = STORE_IX_QUANTITY, .param = "value-quantity",
					 .num = 5.5, .nlo = 5.45, .nhi = 5.55,
					 .a = "http://unitsofmeasure.org", .b = r->tag};
	r->ix[5] = (struct store_ix_row){.kind = STORE_IX_NUMBER, .param = "probability",
					 .num = (double)version, .nlo = 0, .nhi = 1};
	r->ix[6] = (struct store_ix_row){.kind = STORE_IX_URI, .param = "url", .a = r->tag};
	r->patients[0] = r->patient;
	r->p = (struct store_put){
		.op = op, .type = r->type, .id = r->id, .expect_version = expect,
		.version = version, .last_updated = 1700000000000 + version,
		.json = op == STORE_PUT ? r->json : NULL,
		.json_len = op == STORE_PUT ? strlen(r->json) : 0,
		.ix = r->ix, .nix = 7, .patients = r->patients, .npatients = 1,
	};
}

static enum err put(struct store *s, enum store_op op, const char *type, const char *id,
		    int64_t expect, int64_t version, const char *tag, struct ctx *c)
{
	struct res r;

	res_make(&r, op, type, id, expect, version, tag);
	return store_put(s, &r.p, c);
}

#define PUT_REFUSED_IO(s, id) do { \
	struct ctx c_ = CTX_INIT; \
	assert_int_equal(put((s), STORE_PUT, "Patient", (id), 0, 1, (id), &c_), ERR_IO); \
} while (0)

#define PUT_OK(s, type, id, expect, version, tag) do { \
	struct ctx c_ = CTX_INIT; \
	enum err e_ = put((s), STORE_PUT, (type), (id), (expect), (version), (tag), &c_); \
	if (e_) \
		fail_msg("put %s/%s: %s", (type), (id), c_.msg); \
} while (0)

/* Rows of every kind carrying 'tag' (7 index rows + 1 compartment row per resource). */
static int64_t rows_tagged(const struct fx *f, const char *tag)
{
	char sql[1024];

	snprintf(sql, sizeof(sql),
		 "SELECT (SELECT count(*) FROM ix_token WHERE code = '%s')"
		 " + (SELECT count(*) FROM ix_string WHERE norm = '%s')"
		 " + (SELECT count(*) FROM ix_reference WHERE target_id = 'pat-%s')"
		 " + (SELECT count(*) FROM ix_quantity WHERE code = '%s')"
		 " + (SELECT count(*) FROM ix_uri WHERE uri = '%s')"
		 " + (SELECT count(*) FROM compartment WHERE patient = 'pat-%s')",
		 tag, tag, tag, tag, tag, tag);
	return raw_int(f, sql);
}

/* Index rows of one resource (by its rid). */
static int64_t rows_of(const struct fx *f, const char *type, const char *id)
{
	char sql[1024];
	const char *t[] = {"ix_token", "ix_string", "ix_date", "ix_reference",
			   "ix_quantity", "ix_number", "ix_uri", "compartment"};
	int64_t n = 0;

	for (size_t i = 0; i < 8; i++) {
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM %s WHERE rid ="
			 " (SELECT rid FROM resource WHERE type = '%s' AND id = '%s')",
			 t[i], type, id);
		n += raw_int(f, sql);
	}
	return n;
}

/* ---- tests ---- */

static void test_open_migrate_reopen(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct ctx c = CTX_INIT;
	struct fx g;
	int v = -1;

	/* A fresh file is version 0 and not ready until migrated. */
	memcpy(&g, f, sizeof(g));
	snprintf(g.path, sizeof(g.path), "%s/fresh.db", f->dir);
	snprintf(g.url, sizeof(g.url), "sqlite:%s", g.path);
	assert_int_equal(store_open(&g.s, g.url, 1000, &c), ERR_OK);
	assert_int_equal(store_schema_version(g.s, &v, &c), ERR_OK);
	assert_int_equal(v, 0);
	assert_int_not_equal(store_ping(g.s, &c), ERR_OK);
	assert_non_null(strstr(c.msg, "schema version 0"));
	ctx_clear(&c);
	assert_int_equal(store_migrate(g.s, &c), ERR_OK);
	assert_int_equal(store_schema_version(g.s, &v, &c), ERR_OK);
	assert_int_equal(v, store_schema_supported());
	assert_int_equal(store_ping(g.s, &c), ERR_OK);
	store_close(g.s);

	/* WAL and FULL sync are what the store runs with. */
	assert_int_equal(raw_int(f, "PRAGMA user_version"), store_schema_supported());
	assert_int_equal(raw_int(f, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);

	PUT_OK(f->s, "Patient", "p1", 0, 1, "alice");
	fx_reopen(f);
	assert_int_equal(store_migrate(f->s, &c), ERR_OK);     /* idempotent */
	assert_int_equal(store_schema_version(f->s, &v, &c), ERR_OK);
	assert_int_equal(v, store_schema_supported());
	store_resource_init(&r);
	assert_int_equal(store_get(f->s, "Patient", "p1", 0, &r, &c), ERR_OK);
	assert_int_equal(r.version, 1);
	assert_non_null(strstr(r.json.data, "alice"));
	store_resource_release(&r);
	assert_int_equal(rows_tagged(f, "alice"), 6);
}

static int upgrade_hit(void *arg, const struct store_hit *h)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 256 - n, "%s:%lld;", h->res->id, (long long)h->res->version);
	return 0;
}

/*
 * A database written at schema 5 (migrations 0001-0005 run by hand, rows
 * as that schema's store wrote them, its trigger setting sort_hi) and then
 * migrated: schema 6 must fill ix_patient_token and schema 7 the seq of
 * every index and compartment row from the resource's current version, so
 * that an upgraded server answers as a new one would.
 */
static void test_upgrade_from_schema_5(void **state)
{
	struct fx *f = *state;
	struct fx g;
	struct ctx c = CTX_INIT;
	sqlite3 *db = NULL;
	char got[256] = "";
	bool more;

	memcpy(&g, f, sizeof(g));
	snprintf(g.path, sizeof(g.path), "%s/old.db", f->dir);
	snprintf(g.url, sizeof(g.url), "sqlite:%s", g.path);
	assert_int_equal(sqlite3_open(g.path, &db), SQLITE_OK);
	for (int n = 1; n <= 5; n++) {
		const struct embedded_file *e;
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "src/store/schema/sqlite/%04d_", n);
		for (e = embedded_files; e->path && strncmp(e->path, prefix, strlen(prefix)); e++)
			;
		assert_non_null(e->path);
		if (sqlite3_exec(db, (const char *)e->data, NULL, NULL, NULL) != SQLITE_OK)
			fail_msg("%s: %s", e->path, sqlite3_errmsg(db));
	}
	/* o1 at version 2 (seq 2), o2 at version 1 (seq 3): both labs of p1; o3 of p2 */
	if (sqlite3_exec(db,
			 "PRAGMA user_version = 5;"
			 "INSERT INTO resource VALUES (1, 'Observation', 'o1', 2, 1000, 0, 2),"
			 " (2, 'Observation', 'o2', 1, 1000, 0, 3), (3, 'Observation', 'o3', 1, 1000, 0, 4);"
			 "INSERT INTO resource_version (seq, rid, type, id, version, last_updated, deleted, json)"
			 " VALUES (1, 1, 'Observation', 'o1', 1, 900, 0, CAST('{\"v\":1}' AS BLOB)),"
			 " (2, 1, 'Observation', 'o1', 2, 1000, 0, CAST('{\"v\":2}' AS BLOB)),"
			 " (3, 2, 'Observation', 'o2', 1, 1000, 0, CAST('{\"v\":1}' AS BLOB)),"
			 " (4, 3, 'Observation', 'o3', 1, 1000, 0, CAST('{\"v\":1}' AS BLOB));"
			 "INSERT INTO ix_date (rid, n, type, param, lo, hi) VALUES"
			 " (1, 0, 'Observation', 'date', 50, 50), (2, 0, 'Observation', 'date', 70, 70),"
			 " (3, 0, 'Observation', 'date', 60, 60);"
			 "INSERT INTO ix_reference (rid, n, type, param, target_type, target_id, url) VALUES"
			 " (1, 1, 'Observation', 'subject', 'Patient', 'p1', 'Patient/p1'),"
			 " (2, 1, 'Observation', 'subject', 'Patient', 'p1', 'Patient/p1'),"
			 " (3, 1, 'Observation', 'subject', 'Patient', 'p2', 'Patient/p2');"
			 "INSERT INTO ix_token (rid, n, type, param, system, code, text) VALUES"
			 " (1, 2, 'Observation', 'category', 'http://c', 'laboratory', NULL),"
			 " (1, 3, 'Observation', 'code', NULL, NULL, 'text only'),"
			 " (2, 2, 'Observation', 'category', 'http://c', 'laboratory', NULL),"
			 " (3, 2, 'Observation', 'category', 'http://c', 'laboratory', NULL);"
			 "INSERT INTO compartment (patient, type, rid) VALUES ('p1', 'Observation', 1),"
			 " ('p1', 'Observation', 2), ('p2', 'Observation', 3);",
			 NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("schema 5 rows: %s", sqlite3_errmsg(db));
	sqlite3_close(db);

	assert_int_equal(store_open(&g.s, g.url, 5000, &c), ERR_OK);
	assert_int_equal(store_migrate(g.s, &c), ERR_OK);
	assert_int_equal(raw_int(&g, "PRAGMA user_version"), store_schema_supported());
	/* one row per category with a code (the text-only code row has none) */
	assert_int_equal(raw_int(&g, "SELECT count(*) FROM ix_patient_token"), 3);
	assert_int_equal(raw_int(&g, "SELECT count(*) FROM ix_patient_token WHERE patient = 'p1'"
				     " AND rparam = 'subject' AND code = 'laboratory'"), 2);
	assert_int_equal(raw_int(&g, "SELECT sort_hi FROM ix_patient_token WHERE rid = 2"), 70);
	/* every row's seq is its resource's current one */
	assert_int_equal(raw_int(&g, "SELECT (SELECT count(*) FROM ix_token t JOIN resource r USING (rid)"
				     " WHERE t.seq = r.seq) + (SELECT count(*) FROM ix_date t JOIN resource r"
				     " USING (rid) WHERE t.seq = r.seq) + (SELECT count(*) FROM ix_reference t"
				     " JOIN resource r USING (rid) WHERE t.seq = r.seq) + (SELECT count(*) FROM"
				     " compartment t JOIN resource r USING (rid) WHERE t.seq = r.seq) +"
				     " (SELECT count(*) FROM ix_patient_token t JOIN resource r USING (rid)"
				     " WHERE t.seq = r.seq)"),
			 4 + 3 + 3 + 3 + 3);
	/* and the walk serves the current versions, newest first */
	{
		struct store_sort newest = {.by = STORE_SORT_PARAM, .kind = STORE_IX_DATE,
					    .param = "date", .desc = true};
		struct store_match pm = {.a = "Patient", .b = "p1"}, lab = {.b = "laboratory"};
		struct store_cond two[2] = {
			{.kind = STORE_IX_REFERENCE, .param = "subject", .m = &pm, .nm = 1},
			{.kind = STORE_IX_TOKEN, .param = "category", .m = &lab, .nm = 1}};
		struct store_query q = {.type = "Observation", .conds = two, .nconds = 2,
					.sort = &newest, .nsort = 1, .limit = 10};

		assert_int_equal(store_search(g.s, &q, upgrade_hit, got, &more, NULL, &c), ERR_OK);
		assert_string_equal(got, "o2:1;o1:2;");
	}
	store_close(g.s);
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	struct ctx c = CTX_INIT;
	char url[340], path[300];
	FILE *fp;

	assert_int_equal(store_open(&s, "sqlite:/nonexistent-dir/x.db", 100, &c), ERR_IO);
	assert_null(s);
	assert_string_equal(c.msg, "cannot open '/nonexistent-dir/x.db': unable to open database file");

	ctx_clear(&c);
	assert_int_equal(store_open(&s, "postgresql://u:secret@h/db", 100, &c), ERR_UNSUPPORTED);
	assert_null(strstr(c.msg, "secret"));
	ctx_clear(&c);
	assert_int_equal(store_open(&s, "mysql://h/db", 100, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_open(&s, "sqlite:", 100, &c), ERR_INVALID);

	/* A file that is not a database. */
	snprintf(path, sizeof(path), "%s/junk.db", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 512; i++)
		fputs("not a database at all ", fp);
	fclose(fp);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	ctx_clear(&c);
	assert_int_equal(store_open(&s, url, 100, &c), ERR_IO);
	assert_null(s);
	assert_non_null(strstr(c.msg, "file is not a database"));
}

/*
 * The change epoch is one counter for every store open on the same
 * database (two struct store here, as two processes would have): a bump
 * through one is seen by the other's next load.  Where the file beside
 * the database cannot be used, a store keeps a counter of its own.
 */
static void test_epoch_shared(void **state)
{
	struct fx *f = *state;
	struct store *other = NULL, *lone = NULL;
	struct ctx c = CTX_INIT;
	char path[340], url[360];
	uint64_t a, b;
	struct stat st;

	assert_int_equal(store_open(&other, f->url, 1000, &c), ERR_OK);
	snprintf(path, sizeof(path), "%s-epoch", f->path);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(st.st_blocks > 0); /* allocated: no SIGBUS on a full disk later */

	a = store_epoch(other);
	assert_int_equal(store_epoch(f->s), a);
	store_epoch_bump(f->s);
	assert_int_equal(store_epoch(other), a + 1);
	store_epoch_bump(other);
	store_epoch_bump(other);
	assert_int_equal(store_epoch(f->s), a + 3);
	/*
	 * a bump inside a transaction is repeated as it ends (others see the
	 * first before the commit), on commit or rollback; one outside, once
	 */
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	store_epoch_bump(f->s);
	assert_int_equal(store_epoch(other), a + 4);
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	assert_int_equal(store_epoch(other), a + 5);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	store_epoch_bump(f->s);
	store_rollback(f->s);
	assert_int_equal(store_epoch(other), a + 7);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	store_epoch_bump(f->s);
	assert_int_equal(store_epoch(other), a + 8);
	a += 5;
	store_close(other);

	/* reopened later, the counter is where it was left */
	assert_int_equal(store_open(&other, f->url, 1000, &c), ERR_OK);
	assert_int_equal(store_epoch(other), a + 3);
	store_close(other);

	/* the epoch's place taken by a directory: a counter of its own */
	snprintf(path, sizeof(path), "%s/lone.db-epoch", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(url, sizeof(url), "sqlite:%s/lone.db", f->dir);
	assert_int_equal(store_open(&lone, url, 1000, &c), ERR_OK);
	b = store_epoch(lone);
	store_epoch_bump(lone);
	assert_int_equal(store_epoch(lone), b + 1);
	assert_int_equal(store_epoch(f->s), a + 3);
	store_close(lone);
	rmdir(path);
}

static void test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	char sql[64], want[128];

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", store_schema_supported() + 1);
	raw_exec(f, sql);
	fx_reopen(f);
	assert_int_equal(store_migrate(f->s, &c), ERR_UNSUPPORTED);
	snprintf(want, sizeof(want),
		 "database schema version %d is newer than this build supports (%d)",
		 store_schema_supported() + 1, store_schema_supported());
	assert_string_equal(c.msg, want);
	ctx_clear(&c);
	assert_int_equal(store_ping(f->s, &c), ERR_UNSUPPORTED);
	assert_string_equal(c.msg, want);
	/* Nothing was changed. */
	assert_int_equal(raw_int(f, "PRAGMA user_version"), store_schema_supported() + 1);
}

static void test_put_get_versions(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct ctx c = CTX_INIT;
	struct res a, b;
	int64_t v = -1, seq1, seq2, n;
	bool del = true;

	store_resource_init(&r);
	res_make(&a, STORE_PUT, "Observation", "o1", 0, 1, "first");
	assert_int_equal(store_put(f->s, &a.p, &c), ERR_OK);
	assert_int_equal(store_last_seq(f->s, &seq1, &c), ERR_OK);
	res_make(&b, STORE_PUT, "Observation", "o1", 1, 2, "second");
	assert_int_equal(store_put(f->s, &b.p, &c), ERR_OK);
	assert_int_equal(store_last_seq(f->s, &seq2, &c), ERR_OK);
	assert_true(seq2 > seq1 && seq1 > 0);

	/* Current: the bytes as stored, and the metadata. */
	assert_int_equal(store_get(f->s, "Observation", "o1", 0, &r, &c), ERR_OK);
	assert_string_equal(r.type, "Observation");
	assert_string_equal(r.id, "o1");
	assert_int_equal(r.version, 2);
	assert_int_equal(r.last_updated, 1700000000002);
	assert_false(r.deleted);
	assert_int_equal(r.seq, seq2);
	assert_int_equal(r.json.len, strlen(b.json));
	assert_memory_equal(r.json.data, b.json, r.json.len);

	/* By version. */
	assert_int_equal(store_get(f->s, "Observation", "o1", 1, &r, &c), ERR_OK);
	assert_int_equal(r.version, 1);
	assert_int_equal(r.seq, seq1);
	assert_string_equal(r.json.data, a.json);

	assert_int_equal(store_get(f->s, "Observation", "o1", 3, &r, &c), ERR_NOTFOUND);
	assert_string_equal(c.msg, "version 3 of 'Observation/o1' not found");
	ctx_clear(&c);
	assert_int_equal(store_get(f->s, "Observation", "nope", 0, &r, &c), ERR_NOTFOUND);
	assert_string_equal(c.msg, "resource 'Observation/nope' not found");
	ctx_clear(&c);
	assert_int_equal(store_get(f->s, "Patient", "o1", 0, &r, &c), ERR_NOTFOUND);
	ctx_clear(&c);

	assert_int_equal(store_current_version(f->s, "Observation", "o1", &v, &del, &c), ERR_OK);
	assert_int_equal(v, 2);
	assert_false(del);
	assert_int_equal(store_current_version(f->s, "Observation", "none", &v, &del, &c), ERR_OK);
	assert_int_equal(v, 0);

	PUT_OK(f->s, "Patient", "p1", 0, 1, "pp");
	assert_int_equal(store_count(f->s, "Observation", &n, &c), ERR_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_count(f->s, NULL, &n, &c), ERR_OK);
	assert_int_equal(n, 2);

	/* Bad arguments are refused before anything is written. */
	res_make(&a, STORE_PUT, "Observation", "o1", 2, 5, "bad");
	assert_int_equal(store_put(f->s, &a.p, &c), ERR_INVALID);
	ctx_clear(&c);
	res_make(&a, STORE_PUT, "Observation", "o1", 2, 3, "bad");
	a.p.json = NULL;
	assert_int_equal(store_put(f->s, &a.p, &c), ERR_INVALID);
	ctx_clear(&c);
	res_make(&a, STORE_PUT, "Observation", "o1", 2, 3, "bad");
	a.ix[2].kind = (enum store_ix)99;
	assert_int_equal(store_put(f->s, &a.p, &c), ERR_INVALID);
	ctx_clear(&c);
	res_make(&a, STORE_PUT, "Observation", "", 0, 1, "bad");
	assert_int_equal(store_put(f->s, &a.p, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(rows_tagged(f, "bad"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM resource_version"), 3);
	store_resource_release(&r);
}

static void test_delete(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct ctx c = CTX_INIT;
	int64_t v, n;
	bool del = false;

	store_resource_init(&r);
	PUT_OK(f->s, "Condition", "c1", 0, 1, "cond1");
	PUT_OK(f->s, "Condition", "c1", 1, 2, "cond2");
	assert_int_equal(rows_of(f, "Condition", "c1"), 8);
	assert_int_equal(put(f->s, STORE_DELETE, "Condition", "c1", 2, 3, "x", &c), ERR_OK);

	assert_int_equal(store_get(f->s, "Condition", "c1", 0, &r, &c), ERR_OK);
	assert_true(r.deleted);
	assert_int_equal(r.version, 3);
	assert_int_equal(r.json.len, 0);
	/* Earlier versions stay readable. */
	assert_int_equal(store_get(f->s, "Condition", "c1", 2, &r, &c), ERR_OK);
	assert_false(r.deleted);
	assert_non_null(strstr(r.json.data, "cond2"));
	assert_int_equal(store_current_version(f->s, "Condition", "c1", &v, &del, &c), ERR_OK);
	assert_int_equal(v, 3);
	assert_true(del);
	assert_int_equal(store_count(f->s, "Condition", &n, &c), ERR_OK);
	assert_int_equal(n, 0);
	/* Index and compartment rows are gone; the version row is kept, empty. */
	assert_int_equal(rows_of(f, "Condition", "c1"), 0);
	assert_int_equal(raw_ix_total(f), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM resource_version WHERE deleted = 1"
				    " AND length(json) = 0 AND version = 3"), 1);

	/* Re-created after the delete: rows come back. */
	PUT_OK(f->s, "Condition", "c1", 3, 4, "cond4");
	assert_int_equal(store_get(f->s, "Condition", "c1", 0, &r, &c), ERR_OK);
	assert_false(r.deleted);
	assert_int_equal(rows_of(f, "Condition", "c1"), 8);
	assert_int_equal(rows_tagged(f, "cond4"), 6);
	store_resource_release(&r);
}

static void test_conflict_writes_nothing(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	int64_t seq, seq2, versions, ixrows;

	PUT_OK(f->s, "Patient", "p1", 0, 1, "orig");
	assert_int_equal(store_last_seq(f->s, &seq, &c), ERR_OK);
	versions = raw_int(f, "SELECT count(*) FROM resource_version");
	ixrows = raw_ix_total(f);

	/* Create over an existing one. */
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p1", 0, 1, "new", &c), ERR_CONFLICT);
	assert_string_equal(c.msg, "version conflict: expected 0, found 1");
	ctx_clear(&c);
	/* Stale version. */
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p1", 4, 5, "new", &c), ERR_CONFLICT);
	assert_string_equal(c.msg, "version conflict: expected 4, found 1");
	ctx_clear(&c);
	/* Update of something that does not exist. */
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p2", 1, 2, "new", &c), ERR_CONFLICT);
	assert_string_equal(c.msg, "version conflict: expected 1, found 0");
	ctx_clear(&c);
	/* Unchecked write that would not be newer. */
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p1", -1, 1, "new", &c), ERR_CONFLICT);
	ctx_clear(&c);

	assert_int_equal(store_last_seq(f->s, &seq2, &c), ERR_OK);
	assert_int_equal(seq2, seq);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM resource_version"), versions);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM resource"), 1);
	assert_int_equal(raw_ix_total(f), ixrows);
	assert_int_equal(rows_tagged(f, "orig"), 6);
	assert_int_equal(rows_tagged(f, "new"), 0);

	/* A conflict inside a transaction leaves the transaction usable. */
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	PUT_OK(f->s, "Patient", "p3", 0, 1, "txa");
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p1", 0, 1, "new", &c), ERR_CONFLICT);
	ctx_clear(&c);
	PUT_OK(f->s, "Patient", "p4", 0, 1, "txb");
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	assert_int_equal(rows_tagged(f, "txa"), 6);
	assert_int_equal(rows_tagged(f, "txb"), 6);
	assert_int_equal(rows_tagged(f, "new"), 0);

	/* expect_version -1 is unchecked. */
	PUT_OK(f->s, "Patient", "p1", -1, 2, "any");
	assert_int_equal(rows_tagged(f, "orig"), 0);
}

/* ---- racing writers ---- */

struct racer {
	struct store *s;
	pthread_barrier_t *bar;
	const char *id;
	const char *tag;
	enum err result;
	char msg[256];
};

static void *race_main(void *arg)
{
	struct racer *r = arg;
	struct ctx c = CTX_INIT;

	pthread_barrier_wait(r->bar);
	r->result = put(r->s, STORE_PUT, "Patient", r->id, 1, 2, r->tag, &c);
	str_copy(r->msg, c.msg, sizeof(r->msg));
	store_thread_done(r->s);
	return NULL;
}

static void test_race_same_version(void **state)
{
	struct fx *f = *state;
	pthread_barrier_t bar;
	int rounds = 25;

	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < rounds; i++) {
		struct racer r[2] = {{f->s, &bar, NULL, "racea", 0, ""},
				     {f->s, &bar, NULL, "raceb", 0, ""}};
		pthread_t t[2];
		char id[32], sql[128];
		int ok = 0, conflict = 0;

		snprintf(id, sizeof(id), "race%d", i);
		r[0].id = r[1].id = id;
		PUT_OK(f->s, "Patient", id, 0, 1, "base");
		for (int k = 0; k < 2; k++)
			assert_int_equal(pthread_create(&t[k], NULL, race_main, &r[k]), 0);
		for (int k = 0; k < 2; k++) {
			pthread_join(t[k], NULL);
			if (r[k].result == ERR_OK)
				ok++;
			else if (r[k].result == ERR_CONFLICT)
				conflict++;
			else
				fail_msg("racer: %s", r[k].msg);
		}
		assert_int_equal(ok, 1);
		assert_int_equal(conflict, 1);
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM resource_version WHERE id = '%s'", id);
		assert_int_equal(raw_int(f, sql), 2);
		assert_int_equal(rows_of(f, "Patient", id), 8);
	}
	pthread_barrier_destroy(&bar);
	/* Each round's loser wrote no index rows. */
	assert_int_equal(rows_tagged(f, "racea") + rows_tagged(f, "raceb"), 6 * rounds);
}

/* ---- history ---- */

struct walk {
	int64_t seqs[512];
	char ids[512][16];
	int64_t versions[512];
	int n;
	int stop_after;
};

static int walk_fn(void *arg, const struct store_resource *r)
{
	struct walk *w = arg;

	assert_true(w->n < 512);
	w->seqs[w->n] = r->seq;
	str_copy(w->ids[w->n], r->id, sizeof(w->ids[0]));
	w->versions[w->n] = r->version;
	w->n++;
	if (w->stop_after && w->n == w->stop_after)
		return 42;
	return 0;
}

/* Walk all pages of 'q' with page size 'limit'; optional write between pages. */
static void walk_all(struct fx *f, struct store_history_q q, int limit, struct walk *w,
		     int64_t *total, bool write_between)
{
	struct ctx c = CTX_INIT;
	bool more = true;
	int pages = 0;

	w->n = 0;
	q.limit = limit;
	q.before_seq = 0;
	while (more) {
		int before = w->n;
		assert_int_equal(store_history(f->s, &q, walk_fn, w, &more,
					       pages == 0 ? total : NULL, &c), ERR_OK);
		assert_true(w->n - before <= limit);
		if (more)
			assert_int_equal(w->n - before, limit);
		if (w->n == before)
			break;
		q.before_seq = w->seqs[w->n - 1];
		pages++;
		if (write_between) {
			char id[32];
			snprintf(id, sizeof(id), "late%d", pages);
			PUT_OK(f->s, "Patient", id, 0, 1, "late");
		}
	}
}

static void test_history(void **state)
{
	struct fx *f = *state;
	struct store_history_q q = {0};
	struct ctx c = CTX_INIT;
	struct walk *w = calloc(1, sizeof(*w));
	int64_t total = -1, lastseq;
	bool more;

	/* 6 patients x 3 versions and 5 observations x 2, interleaved. */
	for (int v = 1; v <= 3; v++) {
		for (int i = 0; i < 6; i++) {
			char id[16];
			snprintf(id, sizeof(id), "p%d", i);
			PUT_OK(f->s, "Patient", id, v - 1, v, "h");
			if (v <= 2 && i < 5) {
				snprintf(id, sizeof(id), "o%d", i);
				PUT_OK(f->s, "Observation", id, v - 1, v, "h");
			}
		}
	}
	assert_int_equal(store_last_seq(f->s, &lastseq, &c), ERR_OK);

	/* System level, several page sizes. */
	for (int limit = 1; limit <= 7; limit += 3) {
		walk_all(f, q, limit, w, &total, false);
		assert_int_equal(w->n, 28);
		assert_int_equal(total, 28);
		for (int i = 1; i < w->n; i++)
			assert_true(w->seqs[i] < w->seqs[i - 1]);   /* newest first, no repeat */
		assert_int_equal(w->seqs[0], lastseq);
		assert_int_equal(w->seqs[w->n - 1], lastseq - 27);  /* contiguous: no skip */
	}

	/* Type level. */
	q.type = "Observation";
	walk_all(f, q, 3, w, &total, false);
	assert_int_equal(w->n, 10);
	assert_int_equal(total, 10);
	for (int i = 1; i < w->n; i++)
		assert_true(w->seqs[i] < w->seqs[i - 1]);

	/* Instance level. */
	q.type = "Patient";
	q.id = "p2";
	walk_all(f, q, 2, w, &total, false);
	assert_int_equal(w->n, 3);
	assert_int_equal(total, 3);
	assert_int_equal(w->versions[0], 3);
	assert_int_equal(w->versions[2], 1);
	for (int i = 0; i < w->n; i++)
		assert_string_equal(w->ids[i], "p2");

	/* since / at_most (last_updated = 1700000000000 + version). */
	q.id = NULL;
	q.type = "Patient";
	q.since = 1700000000002;
	walk_all(f, q, 100, w, &total, false);
	assert_int_equal(total, 12);
	assert_int_equal(w->n, 12);
	q.since = 0;
	q.at_most = 1700000000001;
	walk_all(f, q, 100, w, &total, false);
	assert_int_equal(total, 6);
	for (int i = 0; i < w->n; i++)
		assert_int_equal(w->versions[i], 1);

	/* limit 0 tells whether anything exists; fn stopping ends the walk. */
	q.at_most = 0;
	q.limit = 0;
	w->n = 0;
	assert_int_equal(store_history(f->s, &q, walk_fn, w, &more, &total, &c), ERR_OK);
	assert_int_equal(w->n, 0);
	assert_true(more);
	q.limit = 10;
	w->stop_after = 2;
	assert_int_equal((int)store_history(f->s, &q, walk_fn, w, &more, NULL, &c), 42);
	assert_int_equal(w->n, 2);

	/* Writes between pages neither shift nor repeat what the walk returns. */
	w->stop_after = 0;
	q = (struct store_history_q){0};
	walk_all(f, q, 4, w, &total, true);
	assert_int_equal(w->n, 28);
	assert_int_equal(w->seqs[0], lastseq);
	for (int i = 1; i < w->n; i++)
		assert_int_equal(w->seqs[i], w->seqs[i - 1] - 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM resource WHERE id LIKE 'late%'"), 7);

	/* Unknown id: empty. */
	q.type = "Patient";
	q.id = "nobody";
	w->n = 0;
	assert_int_equal(store_history(f->s, &q, walk_fn, w, &more, &total, &c), ERR_OK);
	assert_int_equal(w->n, 0);
	assert_int_equal(total, 0);
	assert_false(more);
	free(w);
}

/* ---- transactions ---- */

static void test_savepoint(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct ctx c = CTX_INIT;

	store_resource_init(&r);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	PUT_OK(f->s, "Patient", "a", 0, 1, "spa");
	assert_int_equal(store_savepoint(f->s, &c), ERR_OK);
	PUT_OK(f->s, "Patient", "b", 0, 1, "spb");
	PUT_OK(f->s, "Patient", "a", 1, 2, "spa2");
	/* Visible inside the transaction. */
	assert_int_equal(store_get(f->s, "Patient", "b", 0, &r, &c), ERR_OK);
	assert_int_equal(store_savepoint_end(f->s, false, &c), ERR_OK);
	assert_int_equal(store_get(f->s, "Patient", "b", 0, &r, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(store_savepoint(f->s, &c), ERR_OK);
	PUT_OK(f->s, "Patient", "c", 0, 1, "spc");
	assert_int_equal(store_savepoint(f->s, &c), ERR_OK);      /* nested */
	PUT_OK(f->s, "Patient", "d", 0, 1, "spd");
	assert_int_equal(store_savepoint_end(f->s, false, &c), ERR_OK);
	assert_int_equal(store_savepoint_end(f->s, true, &c), ERR_OK);
	assert_int_equal(store_savepoint_end(f->s, true, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_commit(f->s, &c), ERR_OK);

	assert_int_equal(store_get(f->s, "Patient", "a", 0, &r, &c), ERR_OK);
	assert_int_equal(r.version, 1);
	assert_int_equal(store_get(f->s, "Patient", "c", 0, &r, &c), ERR_OK);
	assert_int_equal(store_get(f->s, "Patient", "b", 0, &r, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(store_get(f->s, "Patient", "d", 0, &r, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(rows_tagged(f, "spa"), 6);
	assert_int_equal(rows_tagged(f, "spc"), 6);
	assert_int_equal(rows_tagged(f, "spb") + rows_tagged(f, "spa2") + rows_tagged(f, "spd"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM resource_version"), 2);
	store_resource_release(&r);
}

static void test_rollback_no_trace(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct ctx c = CTX_INIT;
	int64_t seq, seq2, versions, ix;

	store_resource_init(&r);
	PUT_OK(f->s, "Patient", "keep", 0, 1, "keep");
	assert_int_equal(store_last_seq(f->s, &seq, &c), ERR_OK);
	versions = raw_int(f, "SELECT count(*) FROM resource_version");
	ix = raw_ix_total(f);

	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	PUT_OK(f->s, "Patient", "gone", 0, 1, "gone");
	PUT_OK(f->s, "Patient", "keep", 1, 2, "gone2");
	assert_int_equal(put(f->s, STORE_DELETE, "Patient", "keep", 2, 3, "x", &c), ERR_OK);
	store_rollback(f->s);

	assert_int_equal(store_get(f->s, "Patient", "gone", 0, &r, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(store_get(f->s, "Patient", "keep", 0, &r, &c), ERR_OK);
	assert_int_equal(r.version, 1);
	assert_false(r.deleted);
	assert_int_equal(store_last_seq(f->s, &seq2, &c), ERR_OK);
	assert_int_equal(seq2, seq);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM resource_version"), versions);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM resource"), 1);
	assert_int_equal(raw_ix_total(f), ix);
	assert_int_equal(rows_tagged(f, "gone") + rows_tagged(f, "gone2"), 0);
	assert_int_equal(rows_tagged(f, "keep"), 6);

	/* The thread can start again; misuse is refused. */
	assert_int_equal(store_commit(f->s, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_savepoint(f->s, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	assert_int_equal(store_begin(f->s, &c), ERR_INVALID);
	ctx_clear(&c);
	PUT_OK(f->s, "Patient", "later", 0, 1, "later");
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	assert_int_equal(rows_tagged(f, "later"), 6);
	store_resource_release(&r);
}

static void test_index_rows_replaced(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct res a;

	PUT_OK(f->s, "Observation", "o1", 0, 1, "ver1");
	assert_int_equal(rows_of(f, "Observation", "o1"), 8);
	assert_int_equal(rows_tagged(f, "ver1"), 6);
	assert_int_equal(raw_int(f, "SELECT hi FROM ix_date"), 1999);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM ix_token WHERE type = 'Observation'"
				    " AND param = 'code' AND system = 'http://loinc.org'"
				    " AND text = 'text'"), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM ix_quantity WHERE value = 5.5"
				    " AND lo = 5.45 AND system = 'http://unitsofmeasure.org'"), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM compartment WHERE patient = 'pat-ver1'"
				    " AND type = 'Observation'"), 1);

	/* Update: new rows replace the old ones, fewer of them this time. */
	res_make(&a, STORE_PUT, "Observation", "o1", 1, 2, "ver2");
	a.p.nix = 3;
	assert_int_equal(store_put(f->s, &a.p, &c), ERR_OK);
	assert_int_equal(rows_tagged(f, "ver1"), 0);
	assert_int_equal(rows_of(f, "Observation", "o1"), 4);
	assert_int_equal(raw_int(f, "SELECT hi FROM ix_date"), 2999);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM ix_uri"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM compartment WHERE patient = 'pat-ver2'"), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM compartment"), 1);

	/* Another resource's rows are untouched by this one's changes. */
	PUT_OK(f->s, "Observation", "o2", 0, 1, "other");
	res_make(&a, STORE_PUT, "Observation", "o1", 2, 3, "ver3");
	a.p.npatients = 0;
	assert_int_equal(store_put(f->s, &a.p, &c), ERR_OK);
	assert_int_equal(rows_of(f, "Observation", "o1"), 7);
	assert_int_equal(rows_tagged(f, "other"), 6);

	assert_int_equal(put(f->s, STORE_DELETE, "Observation", "o1", 3, 4, "x", &c), ERR_OK);
	assert_int_equal(rows_of(f, "Observation", "o1"), 0);
	assert_int_equal(rows_of(f, "Observation", "o2"), 8);
}

static void test_sticky_fault_hook(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct ctx c = CTX_INIT;

	store_resource_init(&r);
	PUT_OK(f->s, "Patient", "p1", 0, 1, "before");
	store_test_fault(f->s, 1, STORE_FAULT_IO);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p1", 1, 2, "during", &c), ERR_IO);
	assert_non_null(strstr(c.msg, "disk I/O error"));
	store_test_fault(f->s, 0, STORE_FAULT_NONE);

	ctx_clear(&c);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p1", 1, 2, "after", &c), ERR_IO);
	assert_true(str_starts(c.msg, "storage failed earlier ("));
	assert_true(str_ends(c.msg, "); writes are refused until restart"));
	ctx_clear(&c);
	assert_int_equal(store_begin(f->s, &c), ERR_IO);
	ctx_clear(&c);
	assert_int_equal(store_ping(f->s, &c), ERR_IO);
	assert_true(str_starts(c.msg, "storage failed earlier ("));
	ctx_clear(&c);
	/* Reads still answer. */
	assert_int_equal(store_get(f->s, "Patient", "p1", 0, &r, &c), ERR_OK);
	assert_int_equal(r.version, 1);
	assert_int_equal(rows_tagged(f, "during") + rows_tagged(f, "after"), 0);

	/* A restart clears it. */
	fx_reopen(f);
	PUT_OK(f->s, "Patient", "p1", 1, 2, "after");
	assert_int_equal(store_ping(f->s, &c), ERR_OK);
	store_resource_release(&r);
}

/* A busy failure is transient: no sticky state. */
static void test_busy_not_sticky(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;

	store_test_fault(f->s, 1, STORE_FAULT_BUSY);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p1", 0, 1, "busy", &c), ERR_BUSY);
	ctx_clear(&c);
	PUT_OK(f->s, "Patient", "p1", 0, 1, "fine");
	assert_int_equal(store_ping(f->s, &c), ERR_OK);
}

/*
 * Failure injection: make each statement of a transaction (begin, two
 * puts, commit) fail in turn.  Every failure must come back as a clean
 * ERR_BUSY; after it the database holds either the whole transaction or
 * none of it, and each resource's index rows match its current version.
 */
static void test_fault_loop(void **state)
{
	struct fx *f = *state;
	int n, ok_at = 0;
	int64_t versions = 1;

	PUT_OK(f->s, "Patient", "x", 0, 1, "x1");
	for (n = 1; n < 200 && !ok_at; n++) {
		struct ctx c = CTX_INIT;
		struct store_resource r;
		int64_t xv = 0, yv = 0;
		char y[16];
		bool del;
		enum err e;

		snprintf(y, sizeof(y), "y%d", n);
		store_test_fault(f->s, n, STORE_FAULT_BUSY);
		e = store_begin(f->s, &c);
		if (!e)
			e = put(f->s, STORE_PUT, "Patient", y, 0, 1, y, &c);
		if (!e) {
			e = store_savepoint(f->s, &c);
			if (!e) {
				e = put(f->s, STORE_PUT, "Patient", "x", 1, 2, "x2", &c);
				if (e) {
					/* like the importer: drop this one, keep the rest */
					ctx_clear(&c);
					e = store_savepoint_end(f->s, false, &c);
				} else {
					e = store_savepoint_end(f->s, true, &c);
				}
			}
		}
		if (!e)
			e = store_commit(f->s, &c);
		else
			store_rollback(f->s);
		store_test_fault(f->s, 0, STORE_FAULT_NONE);
		if (e) {
			assert_int_equal(e, ERR_BUSY);
			assert_true(c.msg[0] != '\0');
		}

		assert_int_equal(store_current_version(f->s, "Patient", "x", &xv, &del, &c), ERR_OK);
		assert_int_equal(store_current_version(f->s, "Patient", y, &yv, &del, &c), ERR_OK);
		assert_true(xv == 1 || xv == 2);
		assert_true(yv == 0 || yv == 1);
		if (e)
			assert_int_equal(yv, 0);                /* nothing of a failed transaction */
		if (xv == 2)
			assert_int_equal(yv, 1);                /* x2 only with the rest */
		assert_int_equal(rows_tagged(f, xv == 2 ? "x2" : "x1"), 6);
		assert_int_equal(rows_tagged(f, xv == 2 ? "x1" : "x2"), 0);
		assert_int_equal(rows_tagged(f, y), yv ? 6 : 0);
		versions += yv + (xv == 2);
		assert_int_equal(raw_int(f, "SELECT count(*) FROM resource_version"), versions);
		store_resource_init(&r);
		assert_int_equal(store_get(f->s, "Patient", "x", 0, &r, &c), ERR_OK);
		assert_non_null(strstr(r.json.data, xv == 2 ? "x2" : "x1"));
		store_resource_release(&r);
		if (!e && xv == 2)
			ok_at = n;
	}
	/* Every statement of the sequence got its failure before it succeeded. */
	assert_true(ok_at > 30);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
}

/*
 * A put that fails inside the caller's transaction: refused before it
 * wrote (the transaction goes on), or part-way (the transaction is broken:
 * more writes and the commit are refused, nothing of it is committed).
 * With a savepoint taken before the put, rolling back to it repairs the
 * transaction.  Each statement of the put fails in turn.
 */
static void test_put_failure_in_transaction(void **state)
{
	struct fx *f = *state;
	int n, ok_at = 0, early = 0, broken = 0;

	PUT_OK(f->s, "Patient", "x", 0, 1, "x1");
	for (n = 1; n < 100 && !ok_at; n++) {
		for (int with_sp = 0; with_sp <= 1; with_sp++) {
			struct ctx c = CTX_INIT;
			char a[16];
			int64_t xv = 0, av = 0;
			bool del;
			enum err e, ce;

			snprintf(a, sizeof(a), "a%d-%d", n, with_sp);
			assert_int_equal(store_begin(f->s, &c), ERR_OK);
			PUT_OK(f->s, "Patient", a, 0, 1, a);
			if (with_sp)
				assert_int_equal(store_savepoint(f->s, &c), ERR_OK);
			store_test_fault(f->s, n, STORE_FAULT_BUSY);
			e = put(f->s, STORE_PUT, "Patient", "x", 1, 2, "x2", &c);
			store_test_fault(f->s, 0, STORE_FAULT_NONE);
			if (e)
				assert_int_equal(e, ERR_BUSY);
			if (with_sp)
				assert_int_equal(store_savepoint_end(f->s, e == ERR_OK, &c), ERR_OK);
			ctx_clear(&c);
			ce = store_commit(f->s, &c);
			if (ce) {
				/* only a put that failed part-way, without a savepoint */
				assert_int_not_equal(e, ERR_OK);
				assert_false(with_sp);
				assert_int_equal(ce, ERR_IO);
				assert_true(str_starts(c.msg, "cannot commit: a write in this"
							      " transaction failed part-way ("));
				broken++;
			} else if (e && !with_sp) {
				early++;
			}

			ctx_clear(&c);
			assert_int_equal(store_current_version(f->s, "Patient", "x", &xv, &del, &c), ERR_OK);
			assert_int_equal(store_current_version(f->s, "Patient", a, &av, &del, &c), ERR_OK);
			assert_int_equal(av, ce ? 0 : 1);
			assert_int_equal(rows_tagged(f, a), ce ? 0 : 6);
			assert_int_equal(xv, e ? 1 : 2);
			assert_int_equal(rows_tagged(f, "x1"), e ? 6 : 0);
			assert_int_equal(rows_tagged(f, "x2"), e ? 0 : 6);
			assert_int_equal(rows_of(f, "Patient", "x"), 8);
			assert_int_equal(raw_int(f, "SELECT count(*) FROM resource_version WHERE id = 'x'"), xv);
			if (!e) {
				ok_at = n;
				break;
			}
		}
	}
	assert_true(ok_at > 10);   /* every statement of the put failed once */
	assert_true(early >= 1);   /* the version lookup: nothing written yet */
	assert_true(broken >= 5);
}

/* A broken transaction refuses more writes until it is rolled back. */
static void test_broken_transaction(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;

	PUT_OK(f->s, "Patient", "x", 0, 1, "x1");
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	store_test_fault(f->s, 3, STORE_FAULT_BUSY);    /* lookup, version row, then this */
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "x", 1, 2, "x2", &c), ERR_BUSY);
	store_test_fault(f->s, 0, STORE_FAULT_NONE);
	ctx_clear(&c);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "y", 0, 1, "y1", &c), ERR_IO);
	assert_true(str_starts(c.msg, "a write in this transaction failed part-way (cannot write"
				      " 'Patient/x': database is locked); roll it back first"));
	ctx_clear(&c);
	assert_int_equal(store_savepoint(f->s, &c), ERR_IO);
	ctx_clear(&c);
	store_rollback(f->s);
	PUT_OK(f->s, "Patient", "y", 0, 1, "y1");
	assert_int_equal(rows_tagged(f, "x1") + rows_tagged(f, "y1"), 12);
	assert_int_equal(rows_tagged(f, "x2"), 0);

	/* A savepoint released after the failure passes the damage outwards. */
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	assert_int_equal(store_savepoint(f->s, &c), ERR_OK);
	assert_int_equal(store_savepoint(f->s, &c), ERR_OK);
	store_test_fault(f->s, 3, STORE_FAULT_BUSY);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "x", 1, 2, "x2", &c), ERR_BUSY);
	store_test_fault(f->s, 0, STORE_FAULT_NONE);
	assert_int_equal(store_savepoint_end(f->s, true, &c), ERR_OK);
	PUT_REFUSED_IO(f->s, "z");
	assert_int_equal(store_savepoint_end(f->s, false, &c), ERR_OK);   /* repaired */
	PUT_OK(f->s, "Patient", "z", 0, 1, "z1");
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	assert_int_equal(rows_tagged(f, "z1"), 6);
	assert_int_equal(rows_tagged(f, "x2"), 0);
	assert_int_equal(rows_tagged(f, "x1"), 6);
}

/* A history callback may read but not write or walk history again. */
static int nested_fn(void *arg, const struct store_resource *r)
{
	struct fx *f = arg;
	struct store_resource got;
	struct store_history_q q = {.limit = 1};
	struct ctx c = CTX_INIT;
	bool more;

	store_resource_init(&got);
	assert_int_equal(store_get(f->s, r->type, r->id, r->version, &got, &c), ERR_OK);
	assert_int_equal(got.seq, r->seq);
	store_resource_release(&got);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "inside", 0, 1, "inside", &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_begin(f->s, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_history(f->s, &q, NULL, NULL, &more, NULL, &c), ERR_INVALID);
	return 0;
}

static void test_history_callback_limits(void **state)
{
	struct fx *f = *state;
	struct store_history_q q = {.limit = 10};
	struct ctx c = CTX_INIT;
	bool more;

	PUT_OK(f->s, "Patient", "p1", 0, 1, "one");
	PUT_OK(f->s, "Patient", "p1", 1, 2, "two");
	assert_int_equal(store_history(f->s, &q, nested_fn, f, &more, NULL, &c), ERR_OK);
	assert_int_equal(rows_tagged(f, "inside"), 0);
	/* and afterwards writing works again */
	PUT_OK(f->s, "Patient", "after", 0, 1, "after");
}

/* ---- a VFS that fails the n-th write or fsync, like a failing disk ---- */

struct ffile {
	sqlite3_file base;
	sqlite3_file *real;
	bool wal;              /* the write-ahead log */
	bool kept;             /* the database or its log: a power loss keeps what was synced */
	char path[512];
};

static sqlite3_vfs *real_vfs;
static atomic_long vfs_countdown;      /* fail the n-th counted operation */
static atomic_bool vfs_sync_only;      /* count fsyncs only */
static atomic_long vfs_failures;
static atomic_bool vfs_full;           /* writes to the database or its log: ENOSPC */
/*
 * What happens to the write-ahead log: every write and every finished
 * fsync takes the next number of wal_clock, so "the last fsync ended after
 * the last write" is wal_synced > wal_written.  wal_sync_us slows each
 * fsync of it down, as a slow disk would.
 */
static atomic_long wal_clock, wal_written, wal_synced, wal_syncs;
static atomic_int wal_sync_us;

/*
 * Power loss (security plan case 84).  While 'lossy' is set, every fsync
 * of the database or its write-ahead log copies the file as it then is:
 * what a disk keeps when the power goes is what was on it at the last
 * fsync (and what a concurrent write may have added; never less).
 * power_loss() writes those copies into another directory, which then
 * holds the files as they would be found after the machine restarted.
 */
#define SHADOWS 8
static atomic_bool lossy;
static pthread_mutex_t shadow_mu = PTHREAD_MUTEX_INITIALIZER;
static struct shadow {
	char path[512];
	unsigned char *data;
	size_t len;
} shadows[SHADOWS];

/* Keep 'n' bytes as the synced image of the file named 'path' (its base name). */
static void shadow_keep(const char *path, unsigned char *data, size_t n)
{
	const char *base = strrchr(path, '/');
	int i;

	base = base ? base + 1 : path;
	pthread_mutex_lock(&shadow_mu);
	for (i = 0; i < SHADOWS && shadows[i].path[0] && strcmp(shadows[i].path, base); i++)
		;
	assert_true(i < SHADOWS);
	free(shadows[i].data);
	str_copy(shadows[i].path, base, sizeof(shadows[i].path));
	shadows[i].data = data;
	shadows[i].len = n;
	pthread_mutex_unlock(&shadow_mu);
}

static void shadow_take(const struct ffile *f)
{
	sqlite3_int64 n = 0;
	unsigned char *copy;

	if (f->real->pMethods->xFileSize(f->real, &n) != SQLITE_OK || n < 0 || n > (1 << 28))
		return;
	copy = malloc((size_t)n + 1);
	assert_non_null(copy);
	if (n && f->real->pMethods->xRead(f->real, copy, (int)n, 0) != SQLITE_OK) {
		free(copy);
		return;
	}
	shadow_keep(f->path, copy, (size_t)n);
}

/* Take the file at 'path' as it is now as synced (when it exists). */
static void shadow_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *data;
	long n;

	if (!fp)
		return;
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	data = malloc((size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	shadow_keep(path, data, (size_t)n);
}

static void shadows_clear(void)
{
	pthread_mutex_lock(&shadow_mu);
	for (int i = 0; i < SHADOWS; i++) {
		free(shadows[i].data);
		shadows[i] = (struct shadow){0};
	}
	pthread_mutex_unlock(&shadow_mu);
}

static int vfs_fault(bool is_sync)
{
	long n;

	if (atomic_load(&vfs_sync_only) && !is_sync)
		return 0;
	n = atomic_load(&vfs_countdown);
	while (n > 0) {
		if (atomic_compare_exchange_weak(&vfs_countdown, &n, n - 1)) {
			if (n == 1) {
				atomic_fetch_add(&vfs_failures, 1);
				return 1;
			}
			return 0;
		}
	}
	return 0;
}

#define REAL(f) (((struct ffile *)(f))->real)

static int f_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods->xClose(REAL(f));
	free(REAL(f));
	return rc;
}
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	if (vfs_fault(false))
		return SQLITE_IOERR_WRITE;
	if (((struct ffile *)f)->kept && atomic_load(&vfs_full))
		return SQLITE_FULL;
	if (((struct ffile *)f)->wal)
		atomic_store(&wal_written, atomic_fetch_add(&wal_clock, 1) + 1);
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags)
{
	struct ffile *ff = (struct ffile *)f;
	int rc;

	if (vfs_fault(true))
		return SQLITE_IOERR_FSYNC;
	if (ff->wal && atomic_load(&wal_sync_us))
		usleep((useconds_t)atomic_load(&wal_sync_us));
	rc = REAL(f)->pMethods->xSync(REAL(f), flags);
	if (rc == SQLITE_OK && ff->kept && atomic_load(&lossy))
		shadow_take(ff);
	if (ff->wal) {
		atomic_fetch_add(&wal_syncs, 1);
		atomic_store(&wal_synced, atomic_fetch_add(&wal_clock, 1) + 1);
	}
	return rc;
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_check(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_fctl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shmbarrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shmunmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	*pp = NULL;   /* no memory mapping: every page goes through xRead */
	(void)f;
	(void)off;
	(void)n;
	return SQLITE_OK;
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	(void)f;
	(void)off;
	(void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods f_methods = {
	3, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock, f_unlock,
	f_check, f_fctl, f_sector, f_devchar, f_shmmap, f_shmlock, f_shmbarrier,
	f_shmunmap, f_fetch, f_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
	struct ffile *f = (struct ffile *)file;
	int rc;

	(void)vfs;
	f->real = calloc(1, (size_t)real_vfs->szOsFile);
	rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
	if (rc != SQLITE_OK || !f->real->pMethods) {
		if (f->real->pMethods)
			f->real->pMethods->xClose(f->real);
		free(f->real);
		f->real = NULL;
		f->base.pMethods = NULL;
		return rc == SQLITE_OK ? SQLITE_CANTOPEN : rc;
	}
	f->base.pMethods = &f_methods;
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	f->kept = (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_DB)) != 0;
	str_copy(f->path, name ? name : "", sizeof(f->path));
	return SQLITE_OK;
}
static int v_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync);
}
static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int v_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static int v_random(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}
static int v_time(sqlite3_vfs *vfs, double *t)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, t);
}
static int v_lasterr(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xGetLastError(real_vfs, n, out);
}
static int v_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

static sqlite3_vfs faulty_vfs;

static void vfs_register(void)
{
	if (real_vfs)
		return;
	real_vfs = sqlite3_vfs_find(NULL);
	faulty_vfs = (sqlite3_vfs){
		.iVersion = 2, .szOsFile = (int)sizeof(struct ffile),
		.mxPathname = real_vfs->mxPathname, .zName = "faulty",
		.xOpen = v_open, .xDelete = v_delete, .xAccess = v_access,
		.xFullPathname = v_fullpath, .xRandomness = v_random, .xSleep = v_sleep,
		.xCurrentTime = v_time, .xGetLastError = v_lasterr,
		.xCurrentTimeInt64 = v_time64,
	};
	assert_int_equal(sqlite3_vfs_register(&faulty_vfs, 0), SQLITE_OK);
}

static void vfs_arm(long n, bool sync_only)
{
	atomic_store(&vfs_sync_only, sync_only);
	atomic_store(&vfs_countdown, n);
}

/* Open the fixture's database through the faulty VFS. */
static void fx_open_faulty(struct fx *f)
{
	struct ctx c = CTX_INIT;

	vfs_register();
	store_close(f->s);
	f->s = NULL;
	fx_paths(f, "faulty");
	if (store_open(&f->s, f->url, 5000, &c))
		fail_msg("open %s: %s", f->url, c.msg);
}

/* A failed fsync at commit: the write fails and every later write is refused. */
static void test_sticky_fsync(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct ctx c = CTX_INIT;
	long before;

	fx_open_faulty(f);
	PUT_OK(f->s, "Patient", "p1", 0, 1, "ok1");

	before = atomic_load(&vfs_failures);
	vfs_arm(1, true);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p1", 1, 2, "lost", &c), ERR_IO);
	assert_int_equal(atomic_load(&vfs_failures), before + 1);
	assert_non_null(strstr(c.msg, "disk I/O error"));
	vfs_arm(0, false);

	/* The disk "works" again, but the store does not trust it. */
	ctx_clear(&c);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "p2", 0, 1, "later", &c), ERR_IO);
	assert_true(str_starts(c.msg, "storage failed earlier (cannot commit: disk I/O error"));
	assert_true(str_ends(c.msg, "); writes are refused until restart"));
	ctx_clear(&c);
	assert_int_equal(store_ping(f->s, &c), ERR_IO);
	ctx_clear(&c);
	assert_int_equal(store_begin(f->s, &c), ERR_IO);
	ctx_clear(&c);
	assert_int_equal(store_migrate(f->s, &c), ERR_IO);
	ctx_clear(&c);

	/* After a restart the database is consistent and writable. */
	fx_reopen(f);
	store_resource_init(&r);
	assert_int_equal(store_get(f->s, "Patient", "p1", 0, &r, &c), ERR_OK);
	assert_true(r.version == 1 || r.version == 2);   /* an unsynced commit may survive */
	assert_int_equal(store_get(f->s, "Patient", "p2", 0, &r, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	PUT_OK(f->s, "Patient", "p2", 0, 1, "later");
	assert_int_equal(store_ping(f->s, &c), ERR_OK);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	store_resource_release(&r);
}

/* The write-ahead log was flushed after its last write. */
static void assert_wal_flushed(void)
{
	assert_true(atomic_load(&wal_written) > 0);
	assert_true(atomic_load(&wal_synced) > atomic_load(&wal_written));
}

/*
 * Every kind of write returns only once the write-ahead log holding it is
 * on disk (connections commit with synchronous=NORMAL; the store flushes):
 * a put on its own, a transaction, an item, an account.  A
 * transaction that wrote nothing flushes nothing.
 */
static void test_commit_flushed(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct store_item it;
	struct store_user u = {0};
	struct ctx c = CTX_INIT;
	int64_t uid = 0;
	long syncs;

	fx_open_faulty(f);
	PUT_OK(f->s, "Patient", "p1", 0, 1, "one");
	assert_wal_flushed();

	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	PUT_OK(f->s, "Patient", "p2", 0, 1, "two");
	PUT_OK(f->s, "Observation", "o2", 0, 1, "two");
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	assert_wal_flushed();

	store_item_init(&it);
	str_copy(it.ns, "test", sizeof(it.ns));
	str_copy(it.key, "k1", sizeof(it.key));
	it.expires = clock_now_ms() + 60000;
	buf_adds(&it.data, "{}");
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	assert_wal_flushed();
	store_item_release(&it);

	str_copy(u.username, "flush", sizeof(u.username));
	str_copy(u.role, "patient", sizeof(u.role));
	str_copy(u.password_hash, "$argon2id$x", sizeof(u.password_hash));
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_OK);
	assert_wal_flushed();

	/* reading in a transaction writes nothing and flushes nothing */
	syncs = atomic_load(&wal_syncs);
	store_resource_init(&r);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	assert_int_equal(store_get(f->s, "Patient", "p1", 0, &r, &c), ERR_OK);
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	assert_int_equal(atomic_load(&wal_syncs), syncs);
	store_resource_release(&r);
}

struct flusher {
	struct store *s;
	pthread_barrier_t *go;
	int k;
	enum err e;
};

static void *flusher_main(void *arg)
{
	struct flusher *w = arg;
	struct ctx c = CTX_INIT;
	char id[16];

	snprintf(id, sizeof(id), "f%d", w->k);
	pthread_barrier_wait(w->go);
	w->e = put(w->s, STORE_PUT, "Patient", id, 0, 1, "flusher", &c);
	store_thread_done(w->s);
	return NULL;
}

/*
 * Concurrent commits share flushes, and the write lock is free during a
 * flush: with every fsync of the log taking 50 ms, eight writers started
 * together need far fewer than eight fsyncs (were the lock held during the
 * flush, or each commit flushed on its own, there would be eight), and
 * every write is there after a reopen.
 */
static void test_flush_shared(void **state)
{
	enum { N = 8 };
	struct fx *f = *state;
	struct flusher w[N];
	pthread_t t[N];
	pthread_barrier_t go;
	struct ctx c = CTX_INIT;
	int64_t n = 0;
	long syncs;

	fx_open_faulty(f);
	PUT_OK(f->s, "Patient", "first", 0, 1, "first");
	assert_int_equal(pthread_barrier_init(&go, NULL, N), 0);
	atomic_store(&wal_sync_us, 50000);
	syncs = atomic_load(&wal_syncs);
	for (int i = 0; i < N; i++) {
		w[i] = (struct flusher){f->s, &go, i, ERR_IO};
		assert_int_equal(pthread_create(&t[i], NULL, flusher_main, &w[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].e, ERR_OK);
	}
	atomic_store(&wal_sync_us, 0);
	syncs = atomic_load(&wal_syncs) - syncs;
	pthread_barrier_destroy(&go);
	assert_true(syncs >= 1);
	assert_true(syncs <= N / 2);
	assert_wal_flushed();
	fx_reopen(f);
	assert_int_equal(store_count(f->s, "Patient", &n, &c), ERR_OK);
	assert_int_equal(n, N + 1);
}

/*
 * Security plan case 87: a full disk.  Writes fail with ERR_BUSY ("the disk
 * is full"; the API answers 503) and leave nothing behind, alone or in a
 * transaction; the store is not marked failed, reads go on, and writes
 * work again as soon as there is room -- without a restart.
 */
static void test_disk_full(void **state)
{
	struct fx *f = *state;
	struct store_resource r;
	struct ctx c = CTX_INIT;

	fx_open_faulty(f);
	PUT_OK(f->s, "Patient", "before", 0, 1, "before");
	atomic_store(&vfs_full, true);
	assert_int_equal(put(f->s, STORE_PUT, "Patient", "lost", 0, 1, "lost", &c), ERR_BUSY);
	assert_non_null(strstr(c.msg, "the disk is full"));
	ctx_clear(&c);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	PUT_OK(f->s, "Patient", "lost-1", 0, 1, "lost");
	PUT_OK(f->s, "Observation", "lost-2", 0, 1, "lost");
	assert_int_equal(store_commit(f->s, &c), ERR_BUSY);
	ctx_clear(&c);
	/* not sticky: reads and the health check go on */
	store_resource_init(&r);
	assert_int_equal(store_get(f->s, "Patient", "before", 0, &r, &c), ERR_OK);
	assert_int_equal(store_ping(f->s, &c), ERR_OK);
	/* room again */
	atomic_store(&vfs_full, false);
	PUT_OK(f->s, "Patient", "after", 0, 1, "after");
	PUT_OK(f->s, "Patient", "lost", 0, 1, "again");
	fx_reopen(f);
	assert_int_equal(store_get(f->s, "Patient", "before", 0, &r, &c), ERR_OK);
	assert_int_equal(store_get(f->s, "Patient", "after", 0, &r, &c), ERR_OK);
	assert_int_equal(store_get(f->s, "Patient", "lost-1", 0, &r, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(store_get(f->s, "Observation", "lost-2", 0, &r, &c), ERR_NOTFOUND);
	assert_int_equal(rows_tagged(f, "lost"), 0);
	assert_int_equal(rows_tagged(f, "again"), 6);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	store_resource_release(&r);
}

/* Write the files a power loss would leave (see 'lossy') into 'dir'. */
static void power_loss(const char *dir)
{
	pthread_mutex_lock(&shadow_mu);
	for (int i = 0; i < SHADOWS; i++) {
		char path[1024];
		FILE *fp;

		if (!shadows[i].path[0])
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, shadows[i].path);
		fp = fopen(path, "wb");
		assert_non_null(fp);
		assert_int_equal(fwrite(shadows[i].data, 1, shadows[i].len, fp), shadows[i].len);
		assert_int_equal(fclose(fp), 0);
	}
	pthread_mutex_unlock(&shadow_mu);
}

struct acker {
	struct store *s;
	pthread_barrier_t *go;
	int k, n;
	bool acked[40];
};

static void *acker_main(void *arg)
{
	struct acker *w = arg;

	pthread_barrier_wait(w->go);
	for (int i = 0; i < w->n; i++) {
		struct ctx c = CTX_INIT;
		char id[32];

		snprintf(id, sizeof(id), "a%d-%d", w->k, i);
		if (i % 4 == 3) { /* every fourth in a transaction with a second write */
			char id2[40];

			snprintf(id2, sizeof(id2), "%s-b", id);
			w->acked[i] = store_begin(w->s, &c) == ERR_OK &&
				      put(w->s, STORE_PUT, "Patient", id, 0, 1, "acked", &c) == ERR_OK &&
				      put(w->s, STORE_PUT, "Observation", id2, 0, 1, "acked", &c) == ERR_OK &&
				      store_commit(w->s, &c) == ERR_OK;
		} else {
			w->acked[i] = put(w->s, STORE_PUT, "Patient", id, 0, 1, "acked", &c) == ERR_OK;
		}
	}
	store_thread_done(w->s);
	return NULL;
}

/*
 * Security plan case 84: power loss after acknowledged writes.  Four
 * writers make 40 writes each (puts, and transactions of two); then the
 * machine "loses power": only what was synced survives.  Every write that
 * returned ERR_OK must be there, whole, in a database that passes its
 * integrity check -- which fails if commits are acknowledged before the
 * write-ahead log holding them is synced (synchronous=NORMAL alone).
 */
static void test_power_loss(void **state)
{
	enum { N = 4, WRITES = 40 };
	struct fx *f = *state;
	struct fx g;
	struct acker w[N];
	pthread_t t[N];
	pthread_barrier_t go;
	struct ctx c = CTX_INIT;
	int acked = 0;

	char wal[400];

	shadows_clear();
	fx_open_faulty(f);
	/* what the set-up wrote counts as synced */
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	shadow_file(f->path);
	shadow_file(wal);
	atomic_store(&lossy, true);
	PUT_OK(f->s, "Patient", "first", 0, 1, "first");
	assert_int_equal(pthread_barrier_init(&go, NULL, N), 0);
	for (int i = 0; i < N; i++) {
		w[i] = (struct acker){.s = f->s, .go = &go, .k = i, .n = WRITES};
		assert_int_equal(pthread_create(&t[i], NULL, acker_main, &w[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
	atomic_store(&lossy, false);

	/* the power goes now, with the store still open: nothing is closed cleanly */
	memset(&g, 0, sizeof(g));
	assert_int_equal(fx_newdir(&g), 0);
	power_loss(g.dir);
	shadows_clear();
	assert_int_equal(store_open(&g.s, g.url, 5000, &c), ERR_OK);
	assert_int_equal(raw_int(&g, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < WRITES; k++) {
			struct store_resource r;
			char id[32], id2[40];

			if (!w[i].acked[k])
				continue;
			acked++;
			snprintf(id, sizeof(id), "a%d-%d", i, k);
			store_resource_init(&r);
			ctx_clear(&c);
			if (store_get(g.s, "Patient", id, 0, &r, &c) != ERR_OK)
				fail_msg("acknowledged write Patient/%s lost in the power loss", id);
			assert_int_equal(r.version, 1);
			if (k % 4 == 3) {
				snprintf(id2, sizeof(id2), "%s-b", id);
				if (store_get(g.s, "Observation", id2, 0, &r, &c) != ERR_OK)
					fail_msg("acknowledged write Observation/%s lost in the power loss", id2);
			}
			store_resource_release(&r);
		}
	}
	assert_int_equal(acked, N * WRITES);
	/* whole: each has all its index rows (six a resource; none lost, none doubled) */
	assert_int_equal(rows_tagged(&g, "acked"), 6 * (N * WRITES + N * WRITES / 4));
	PUT_OK(g.s, "Patient", "after", 0, 1, "after");
	store_close(g.s);
	unit_rmtree(g.dir);
}

/*
 * Make each write or fsync of a 20-resource transaction fail in turn.  The
 * transaction must report the failure; after a restart the database is
 * intact and holds all of it or none of it.
 */
static void test_io_fault_loop(void **state)
{
	struct fx *f = *state;
	int n, done = 0, failures = 0;

	for (n = 1; n < 400 && !done; n++) {
		struct ctx c = CTX_INIT;
		int64_t count = 0;
		enum err e;

		/* A fresh database each round. */
		store_close(f->s);
		f->s = NULL;
		unit_rmtree(f->dir);
		assert_int_equal(fx_newdir(f), 0);
		fx_open_faulty(f);
		assert_int_equal(store_migrate(f->s, &c), ERR_OK);
		PUT_OK(f->s, "Patient", "base", 0, 1, "base");

		vfs_arm(n, false);
		e = store_begin(f->s, &c);
		for (int i = 0; i < 20 && !e; i++) {
			char id[16];
			snprintf(id, sizeof(id), "r%d", i);
			e = put(f->s, STORE_PUT, "Observation", id, 0, 1, "batch", &c);
		}
		if (!e)
			e = store_commit(f->s, &c);
		else
			store_rollback(f->s);
		if (atomic_load(&vfs_countdown) > 0)
			done = 1;          /* the transaction finished before the n-th operation */
		vfs_arm(0, false);
		if (e) {
			failures++;
			assert_int_equal(e, ERR_IO);
			/* sticky until restart */
			ctx_clear(&c);
			assert_int_equal(put(f->s, STORE_PUT, "Patient", "z", 0, 1, "z", &c), ERR_IO);
			assert_true(str_starts(c.msg, "storage failed earlier ("));
		}

		fx_reopen(f);
		ctx_clear(&c);
		assert_int_equal(store_count(f->s, "Observation", &count, &c), ERR_OK);
		if (!e)
			assert_int_equal(count, 20);
		else
			assert_true(count == 0 || count == 20);
		assert_int_equal(rows_tagged(f, "batch"), 6 * count);
		assert_int_equal(rows_tagged(f, "base"), 6);
		assert_int_equal(raw_int(f, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
		PUT_OK(f->s, "Patient", "after", 0, 1, "after");
	}
	assert_true(done);
	assert_true(failures >= 3);
}

/* ---- threads ---- */

struct worker {
	struct store *s;
	int k;
	bool thread_done;
	enum err e;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ctx c = CTX_INIT;
	struct store_resource r;

	store_resource_init(&r);
	for (int i = 0; i < 20 && !w->e; i++) {
		char id[32];
		snprintf(id, sizeof(id), "w%d-%d", w->k, i);
		w->e = put(w->s, STORE_PUT, "Patient", id, 0, 1, "worker", &c);
		if (!w->e)
			w->e = store_get(w->s, "Patient", id, 0, &r, &c);
	}
	store_resource_release(&r);
	if (w->thread_done)
		store_thread_done(w->s);
	return NULL;
}

/* Threads with their own connections; some exit without store_thread_done(). */
static void test_threads(void **state)
{
	struct fx *f = *state;
	struct worker w[4];
	pthread_t t[4];
	struct ctx c = CTX_INIT;
	int64_t n;

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){f->s, i, i % 2 == 0, ERR_OK};
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].e, ERR_OK);
	}
	assert_int_equal(store_count(f->s, "Patient", &n, &c), ERR_OK);
	assert_int_equal(n, 80);
	/* this thread keeps working after the others are gone */
	store_thread_done(f->s);
	PUT_OK(f->s, "Patient", "main", 0, 1, "main");
}

/* ---- import throughput ---- */

/*
 * Write 'total' Observations with 15 index rows (6 token, 2 string, 2 date,
 * 2 reference, 1 quantity, 1 number, 1 uri) and one compartment row each,
 * the way the importer does: one transaction per 1000, and (with_sp) a
 * savepoint around each resource.  Prints the rate; asserts only results.
 */
static void import_run(struct fx *f, long total, bool with_sp, const char *prefix)
{
	struct ctx c = CTX_INIT;
	struct store_ix_row ix[15];
	char json[1600], code[32], name[32], pid[32], sql[128];
	const char *patients[1] = {pid};
	int64_t t0, t1;
	clock_t cpu0, cpu1;

	memset(json, 'x', sizeof(json) - 1);
	json[sizeof(json) - 1] = '\0';
	t0 = clock_mono_us();
	cpu0 = clock();
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	for (long i = 0; i < total; i++) {
		char id[48];
		struct store_put p;

		snprintf(id, sizeof(id), "%s-%ld", prefix, i);
		snprintf(code, sizeof(code), "%ld-%ld", 1000 + i % 300, i % 7);
		snprintf(name, sizeof(name), "name %ld", i % 977);
		snprintf(pid, sizeof(pid), "pat-%ld", i / 50);
		for (int k = 0; k < 15; k++)
			ix[k] = (struct store_ix_row){.kind = STORE_IX_TOKEN, .param = "code",
						      .a = "http://loinc.org", .b = code, .c = name};
		ix[4].kind = ix[5].kind = STORE_IX_STRING;
		ix[4].a = ix[5].b = name;
		ix[5].a = name;
		ix[6].kind = ix[7].kind = STORE_IX_DATE;
		ix[6].param = ix[7].param = "date";
		ix[6].lo = ix[7].lo = 1600000000000 + i * 60000;
		ix[6].hi = ix[7].hi = ix[6].lo + 59999;
		ix[8].kind = ix[9].kind = STORE_IX_REFERENCE;
		ix[8].param = "subject";
		ix[9].param = "patient";
		ix[8].a = ix[9].a = "Patient";
		ix[8].b = ix[9].b = pid;
		ix[10].kind = STORE_IX_QUANTITY;
		ix[10].param = "value-quantity";
		ix[10].num = (double)(i % 200) / 10.0;
		ix[11].kind = STORE_IX_NUMBER;
		ix[11].param = "n";
		ix[12].kind = STORE_IX_URI;
		ix[12].param = "_profile";
		ix[12].a = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
		p = (struct store_put){.op = STORE_PUT, .type = "Observation", .id = id,
				       .expect_version = 0, .version = 1,
				       .last_updated = 1700000000000 + i, .json = json,
				       .json_len = sizeof(json) - 1, .ix = ix, .nix = 15,
				       .patients = patients, .npatients = 1};
		if (with_sp)
			assert_int_equal(store_savepoint(f->s, &c), ERR_OK);
		if (store_put(f->s, &p, &c))
			fail_msg("put %s: %s", id, c.msg);
		if (with_sp)
			assert_int_equal(store_savepoint_end(f->s, true, &c), ERR_OK);
		if ((i + 1) % 1000 == 0) {
			assert_int_equal(store_commit(f->s, &c), ERR_OK);
			assert_int_equal(store_begin(f->s, &c), ERR_OK);
		}
	}
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	t1 = clock_mono_us();
	cpu1 = clock();
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ix_token WHERE rid IN"
		 " (SELECT rid FROM resource WHERE id LIKE '%s-%%')", prefix);
	assert_int_equal(raw_int(f, sql), 6 * total);
	fprintf(stderr, "import %s: %ld resources with 15 index rows in %.0f ms: %.0f resources/s"
		" (CPU %.0f ms: %.0f resources per CPU second)\n",
		with_sp ? "(savepoint per resource)" : "(no savepoints)        ",
		total, (double)(t1 - t0) / 1000.0, (double)total * 1e6 / (double)(t1 - t0),
		(double)(cpu1 - cpu0) * 1000.0 / CLOCKS_PER_SEC,
		(double)total * CLOCKS_PER_SEC / (double)(cpu1 - cpu0 ? cpu1 - cpu0 : 1));
}

static void test_import_rate(void **state)
{
	struct fx *f = *state;
	const char *env = getenv("VERANDA_STORE_BENCH");
	long total = 3000;
	int64_t n;
	struct ctx c = CTX_INIT;

	if (env) {
		int64_t v;
		if (str_to_i64(env, 1, 10000000, &v) == ERR_OK)
			total = (long)v;
	}
	import_run(f, total, true, "sp");
	/* a second store of the same size, without the per-resource savepoints */
	store_close(f->s);
	f->s = NULL;
	unit_rmtree(f->dir);
	assert_int_equal(fx_newdir(f), 0);
	assert_int_equal(store_open(&f->s, f->url, 5000, &c), ERR_OK);
	assert_int_equal(store_migrate(f->s, &c), ERR_OK);
	import_run(f, total, false, "nosp");
	assert_int_equal(store_count(f->s, "Observation", &n, &c), ERR_OK);
	assert_int_equal(n, total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_migrate_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_schema_5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_get_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflict_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_race_same_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_savepoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_no_trace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_rows_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_fault_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoch_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_not_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_failure_in_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_callback_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_fsync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_flushed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_fault_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_rate, setup, teardown),
	};
	/* A measurement run (VERANDA_STORE_BENCH=N) runs only the import test. */
	if (getenv("VERANDA_STORE_BENCH"))
		cmocka_set_test_filter("test_import_rate");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
