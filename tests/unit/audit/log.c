/*
 * Unit tests of the audit writer (src/audit/writer.c) and verifier
 * (src/audit/verify.c).
 *
 * - The writer: records become durable in order, checkpoints come every
 *   N records and at close (marked final), many producers at once, async
 *   mode, reopening, a full queue answers ERR_BUSY and the writer records
 *   the backlog, a storage failure makes everything answer ERR_IO, a full
 *   disk makes records wait until there is room.
 * - The verifier, on a log of 45 records with checkpoints every 10: a
 *   clean log verifies; then each test alters audit.db directly with
 *   sqlite3 (a body, a body with its leaf hash recomputed, an indexed
 *   column, a deleted row, an inserted row, swapped rows, removed last
 *   rows, a row added after close, a checkpoint's signature or columns,
 *   a missing body) and asserts that verify fails and names the right
 *   record.
 */
#include "audit_test.h"

#include <pthread.h>
#include <stdatomic.h>

#include "core/clock.h"
#include "core/log.h"

static void expect_ok(const struct fx *f, uint64_t records)
{
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;
	enum err e = audit_verify(f->dir, f->pub, &r, &c);

	if (e != ERR_OK)
		fail_msg("verify: %s", c.msg);
	assert_true(r.ok);
	assert_int_equal(r.records, records);
	assert_false(r.keys_from_log);
}

/* Verify must fail, naming [first, end) (end 0: first + 1) and a reason containing 'why'. */
static void expect_bad(const struct fx *f, int64_t first, int64_t end, const char *why)
{
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;
	enum err e = audit_verify(f->dir, f->pub, &r, &c);

	if (e == ERR_OK)
		fail_msg("verify passed, expected a failure at %lld (%s)", (long long)first, why);
	assert_int_equal(e, ERR_INVALID);
	assert_false(r.ok);
	if (r.first_bad != first || r.bad_end != (end ? end : first + 1) ||
	    !strstr(r.reason, why))
		fail_msg("verify named [%lld, %lld) '%s'; expected [%lld, %lld) '%s'",
			 (long long)r.first_bad, (long long)r.bad_end, r.reason, (long long)first,
			 (long long)(end ? end : first + 1), why);
	assert_string_equal(r.node, "node-1");
	assert_non_null(strstr(c.msg, "does not verify"));
}

/* A closed log of 45 records, checkpoints at 10, 20, 30, 40 and 45 (final). */
static int setup45(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct audit_opts o = {.checkpoint_records = 10};

	fx_init(f, "audit-log");
	fx_open(f, &o);
	record_n(f->a, 0, 45, true);
	fx_close(f);
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

static int64_t count(const struct fx *f, const char *sql)
{
	sqlite3 *db = raw_db(f);
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Replace the body of 'seq' (and, with 'rehash', its leaf hash to match). */
static void set_body(const struct fx *f, int64_t seq, const char *body, bool rehash)
{
	sqlite3 *db = raw_db(f);
	sqlite3_stmt *st = NULL;
	uint8_t leaf[MERKLE_HASH_LEN];

	merkle_leaf_hash(body, strlen(body), leaf);
	assert_int_equal(sqlite3_prepare_v2(db,
					    rehash ? "UPDATE record SET body = ?1, leaf = ?2 WHERE id = ?3"
						   : "UPDATE record SET body = ?1 WHERE id = ?3",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, leaf, sizeof(leaf), SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ID0_N + seq);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static char *get_body(const struct fx *f, int64_t seq)
{
	sqlite3 *db = raw_db(f);
	sqlite3_stmt *st = NULL;
	char *s = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT body FROM record WHERE id = ?", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, ID0_N + seq);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_non_null(s);
	return s;
}

/* body with the first occurrence of 'from' replaced by 'to'. */
static char *edit(const char *body, const char *from, const char *to)
{
	const char *at = strstr(body, from);
	struct buf b = BUF_INIT(AUDIT_RECORD_MAX);

	assert_non_null(at);
	buf_add(&b, body, (size_t)(at - body));
	buf_adds(&b, to);
	buf_adds(&b, at + strlen(from));
	return buf_take(&b, NULL);
}

/* ---- the writer ----------------------------------------------------------------- */

static void test_clean_log(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;

	expect_ok(f, 45);
	assert_int_equal(count(f, "SELECT count(*) FROM record"), 45);
	assert_int_equal(count(f, "SELECT group_concat(size) = '10,20,30,40,45' FROM"
				  " (SELECT size FROM checkpoint ORDER BY size)"),
			 1);
	assert_int_equal(count(f, "SELECT final FROM checkpoint WHERE size = 45"), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM checkpoint WHERE final = 1"), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM checkpoint WHERE jws IS NULL"), 0);
	/* without keys: the log's own, and it says so */
	assert_int_equal(audit_verify(f->dir, NULL, &r, &c), ERR_OK);
	assert_true(r.keys_from_log);
	assert_int_equal(r.checkpoints, 5);
	assert_int_equal(r.unsigned_tail, 0);
	assert_int_equal(r.streams, 1);
	/* another key does not verify it */
	{
		struct jose_key *other = NULL;
		struct jose_jwks *set;
		assert_int_equal(jose_key_generate(JOSE_GEN_P256, &other, &c), ERR_OK);
		set = public_set(other);
		assert_int_equal(audit_verify(f->dir, set, &r, &c), ERR_INVALID);
		assert_non_null(strstr(r.reason, "unknown key"));
		assert_int_equal(r.first_bad, 0);
		assert_int_equal(r.bad_end, 10);
		jose_jwks_free(set);
		jose_key_free(other);
	}
	/* no log at all */
	assert_int_equal(audit_verify("/nonexistent-veranda", f->pub, &r, &c), ERR_NOTFOUND);
}

struct producer {
	struct audit *a;
	int base, n;
	int errors;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < p->n; i++) {
		char pat[16];
		struct audit_entity en;
		struct audit_event ev = sample_event(p->base + i, pat, sizeof(pat), &en);
		struct ctx c = CTX_INIT;
		if (audit_record_sync(p->a, &ev, &c) != ERR_OK)
			p->errors++;
	}
	return NULL;
}

static void test_concurrent_producers(void **state)
{
	struct fx f;
	struct audit_opts o = {.checkpoint_records = 100, .node = "web-2"};
	struct producer p[8];
	pthread_t th[8];
	struct audit_stats st;
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;

	(void)state;
	fx_init(&f, "audit-conc");
	fx_open(&f, &o);
	assert_string_equal(audit_node(f.a), "web-2");
	for (int i = 0; i < 8; i++) {
		p[i] = (struct producer){f.a, i * 1000, 150, 0};
		assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].errors, 0);
	}
	assert_int_equal(audit_settle(f.a, AUDIT_WAIT_MS, &c), ERR_OK);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 1200);
	assert_false(st.failed);
	/* group commit: fewer commits than records */
	assert_true(st.commits < 1200);
	assert_true(st.checkpoints >= 1);
	fx_close(&f);
	assert_int_equal(audit_verify(f.dir, f.pub, &r, &c), ERR_OK);
	assert_int_equal(r.records, 1200);
	assert_string_equal(r.node, "");
	assert_int_equal(count(&f, "SELECT count(DISTINCT body) FROM record"),
			 1200);
	/* 4 complete blocks of 256 leaves: their roots are cached */
	assert_int_equal(count(&f, "SELECT count(*) FROM subtree WHERE level = 8"), 4);
	fx_release(&f);
}

/*
 * Records no one waits for keep each other company: twenty that come 2 ms
 * apart go in a few commits (each record waits up to 10 ms for others)
 * rather than one each, as they did when every record was written at
 * once.  One waited for after each record gets a commit of its own.
 */
static void test_linger(void **state)
{
	const struct timespec gap = {0, 2000000};
	struct fx f;
	struct audit_stats st, st2;
	struct ctx c = CTX_INIT;
	uint64_t ticket = 0;

	(void)state;
	fx_init(&f, "audit-linger");
	fx_open(&f, NULL);
	for (int i = 0; i < 20; i++) {
		char p[16];
		struct audit_entity en;
		struct audit_event ev = sample_event(i, p, sizeof(p), &en);

		/* without a ticket: no one will wait for it */
		assert_int_equal(audit_record(f.a, &ev, i == 19 ? &ticket : NULL, &c), ERR_OK);
		nanosleep(&gap, NULL);
	}
	assert_int_equal(audit_wait(f.a, ticket, &c), ERR_OK);
	assert_int_equal(audit_settle(f.a, AUDIT_WAIT_MS, &c), ERR_OK);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 20);
	print_message("20 records 2 ms apart, nobody waiting: %llu commits\n", (unsigned long long)st.commits);
	assert_true(st.commits <= 12);
	record_n(f.a, 20, 10, true);
	audit_stats(f.a, &st2);
	assert_int_equal(st2.records, 30);
	assert_true(st2.commits - st.commits >= 10);
	fx_close(&f);
	expect_ok(&f, 30);
	fx_release(&f);
}

static void test_async_and_reopen(void **state)
{
	struct fx f;
	struct audit_opts o = {.durability = AUDIT_ASYNC, .checkpoint_records = 7};
	struct ctx c = CTX_INIT;
	struct audit_stats st;

	(void)state;
	fx_init(&f, "audit-async");
	fx_open(&f, &o);
	record_n(f.a, 0, 20, false);
	fx_close(&f);
	/* a second run continues the same stream */
	o.durability = AUDIT_SYNC;
	fx_open(&f, &o);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 20);
	record_n(f.a, 20, 5, true);
	fx_close(&f);
	expect_ok(&f, 25);
	assert_int_equal(count(&f, "SELECT max(" SEQ ") FROM record"), 24);
	/* two closes: two final checkpoints, the last one last */
	assert_int_equal(count(&f, "SELECT count(*) FROM checkpoint WHERE final = 1"), 2);
	assert_int_equal(count(&f, "SELECT max(size) FROM checkpoint WHERE final = 1"), 25);
	/* reopening with nothing new writes nothing */
	fx_open(&f, &o);
	fx_close(&f);
	assert_int_equal(count(&f, "SELECT count(*) FROM checkpoint WHERE final = 1"), 2);
	/* bad options */
	{
		struct audit *a = NULL;
		struct audit_opts bad = {.data_dir = f.dir, .node = "bad node"};
		assert_int_equal(audit_open(&bad, &a, &c), ERR_INVALID);
		assert_null(a);
		bad.node = NULL;
		bad.data_dir = NULL;
		assert_int_equal(audit_open(&bad, &a, &c), ERR_INVALID);
	}
	/*
	 * a node id that differs from an existing stream's only in '_' and
	 * '-' would share its AuditEvent ids: refused, and nothing registered
	 */
	{
		struct audit *a = NULL;
		struct audit_opts twin = {.data_dir = f.dir, .node = "node_1", .key = f.key, .archive_dir = ""};
		struct audit_opts other = {.node = "node_2"};

		ctx_clear(&c);
		assert_int_equal(audit_open(&twin, &a, &c), ERR_CONFLICT);
		assert_null(a);
		assert_non_null(strstr(c.msg, "node-1"));
		assert_int_equal(count(&f, "SELECT count(*) FROM stream WHERE node = 'node_1'"), 0);
		ctx_clear(&c);
		fx_open(&f, &other);
		fx_close(&f);
		fx_open(&f, &o); /* the existing stream opens as before */
		fx_close(&f);
		assert_int_equal(count(&f, "SELECT count(*) FROM stream"), 2);
	}
	fx_release(&f);
}

static void test_crash_tail_signed_at_start(void **state)
{
	struct fx f;
	struct audit_opts o = {.checkpoint_records = 1000};
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;

	(void)state;
	fx_init(&f, "audit-crash");
	fx_open(&f, &o);
	record_n(f.a, 0, 12, true);
	fx_close(&f);
	/* as if the process died before signing: no checkpoint at all */
	raw_exec(&f, "DELETE FROM checkpoint");
	assert_int_equal(audit_verify(f.dir, f.pub, &r, &c), ERR_OK);
	assert_int_equal(r.unsigned_tail, 12);
	assert_int_equal(r.checkpoints, 0);
	/* the next start signs what was left */
	fx_open(&f, &o);
	assert_int_equal(count(&f, "SELECT count(*) FROM checkpoint WHERE size = 12 AND final = 0"), 1);
	fx_close(&f);
	assert_int_equal(audit_verify(f.dir, f.pub, &r, &c), ERR_OK);
	assert_int_equal(r.unsigned_tail, 0);
	fx_release(&f);
}

static void test_unsigned_log_refused(void **state)
{
	struct fx f;
	struct audit_opts o = {0};
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;

	(void)state;
	fx_init(&f, "audit-nokey");
	o.data_dir = f.dir;
	o.archive_dir = "";
	assert_int_equal(audit_open(&o, &f.a, &c), ERR_OK);
	record_n(f.a, 0, 3, true);
	fx_close(&f);
	assert_int_equal(audit_verify(f.dir, f.pub, &r, &c), ERR_INVALID);
	assert_non_null(strstr(r.reason, "not signed"));
	assert_int_equal(r.first_bad, 0);
	assert_int_equal(r.bad_end, 3);
	fx_release(&f);
}

/* Hold the write lock so the writer cannot commit, then fill the queue. */
/* After 50 refusals in a row: whether nothing more becomes durable (else count again). */
static bool jammed(struct audit *a, int *streak)
{
	struct audit_stats st;
	size_t was;

	if (*streak < 50)
		return false;
	audit_stats(a, &st);
	was = st.unapplied;
	usleep(200 * 1000);
	audit_stats(a, &st);
	if (st.unapplied == was && st.queued == 4)
		return true;
	*streak = 0;
	return false;
}

static void test_queue_full_fails_closed(void **state)
{
	struct fx f;
	struct audit_opts o = {.queue_max = 4, .checkpoint_records = 1000,
			       .journal_bytes = AUDIT_JOURNAL_MIN};
	struct ctx c = CTX_INIT;
	struct audit_stats st;
	uint64_t last = 0;
	int accepted = 0, busy = 0;
	sqlite3 *lock;

	(void)state;
	fx_init(&f, "audit-busy");
	fx_open(&f, &o);
	/*
	 * audit.db locked: the journal takes records until both its files
	 * are full (a few hundred), then four queue and the rest are refused.
	 */
	lock = raw_db(&f);
	assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	/*
	 * Until 50 refusals in a row, 2 ms apart, and then nothing more
	 * becoming durable for 200 ms: the journal takes no more (a slow sync
	 * alone can refuse 50 in a row).
	 */
	for (int i = 0, streak = 0; !jammed(f.a, &streak); i++) {
		char p[16];
		struct audit_entity en;
		struct audit_event ev = sample_event(i, p, sizeof(p), &en);
		uint64_t t;
		enum err e;
		ctx_clear(&c);
		assert_true(i < 100000);
		e = audit_record(f.a, &ev, &t, &c);
		if (e == ERR_OK) {
			accepted++;
			last = t;
			streak = 0;
		} else {
			assert_int_equal(e, ERR_BUSY);
			assert_non_null(strstr(c.msg, "queue is full"));
			busy++;
			streak++;
			usleep(2000);
		}
	}
	/* the journal's two 64 KiB files hold a few hundred records */
	assert_true(accepted > 100 && accepted < 1000);
	audit_stats(f.a, &st);
	assert_int_equal(st.rejected, (uint64_t)busy);
	assert_int_equal(st.queued, 4);
	assert_int_equal(st.records, 0);
	assert_int_equal(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(lock);
	assert_int_equal(audit_wait(f.a, last, &c), ERR_OK);
	assert_int_equal(audit_settle(f.a, AUDIT_WAIT_MS, &c), ERR_OK);
	fx_close(&f);
	/* the backlog is on record: its records count every refusal */
	assert_int_equal(count(&f, "SELECT sum(CAST(substr(body, instr(body, 'rejected=') + 9) AS INTEGER))"
				   " FROM record WHERE type = 'system.audit-backlog' AND outcome = 8"),
			 busy);
	expect_ok(&f, (uint64_t)accepted +
			      (uint64_t)count(&f, "SELECT count(*) FROM record WHERE type = 'system.audit-backlog'"));
	fx_release(&f);
}

/* audit_notify(): answered at once, later by the notifier, after the deadline, and at close. */
struct note {
	struct audit_notice n;
	atomic_int calls;
	_Atomic enum err result;
};

static void note_fn(struct audit_notice *n, enum err e)
{
	struct note *w = n->arg;

	atomic_store(&w->result, e);
	atomic_fetch_add(&w->calls, 1);
}

static void note_init(struct note *w)
{
	memset(w, 0, sizeof(*w));
	w->n.fn = note_fn;
	w->n.arg = w;
	atomic_init(&w->calls, 0);
	atomic_init(&w->result, ERR_OK);
}

/* Wait up to 'ms' for the notice's callback. */
static bool note_called(struct note *w, int ms)
{
	for (int i = 0; i < ms / 10 && !atomic_load(&w->calls); i++)
		usleep(10 * 1000);
	return atomic_load(&w->calls) != 0;
}

/*
 * With audit.db locked (the writer cannot insert), record until both
 * journal files are full and records queue behind them.
 */
static int jam(struct audit *a)
{
	struct audit_stats st;
	struct ctx c = CTX_INIT;

	for (int k = 0; k < 200; k++) {
		for (int i = 0; i < 500; i++) {
			char p[16];
			struct audit_entity en;
			struct audit_event ev = sample_event(i, p, sizeof(p), &en);
			assert_int_equal(audit_record(a, &ev, NULL, &c), ERR_OK);
		}
		usleep(30000);
		audit_stats(a, &st);
		if (st.queued) {
			/* jammed, not just behind: nothing more becomes durable */
			size_t was = st.unapplied;
			usleep(200000);
			audit_stats(a, &st);
			if (st.queued && st.unapplied == was)
				return (k + 1) * 500;
		}
	}
	fail_msg("the journal took every record with audit.db locked");
	return 0;
}

static void test_notify(void **state)
{
	struct fx f;
	struct audit_opts o = {.checkpoint_records = 1000, .journal_bytes = AUDIT_JOURNAL_MIN};
	struct ctx c = CTX_INIT;
	char p[16];
	struct audit_entity en;
	struct audit_event ev = sample_event(1, p, sizeof(p), &en);
	struct note w;
	bool pending = true;
	uint64_t t;
	int64_t t0;
	int jammed = 0;
	sqlite3 *lock;

	(void)state;
	fx_init(&f, "audit-notify");
	fx_open(&f, &o);

	/* durable already: answered at once, nothing registered */
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
	assert_int_equal(audit_wait(f.a, t, &c), ERR_OK);
	note_init(&w);
	assert_int_equal(audit_notify(f.a, t, &w.n, &pending, &c), ERR_OK);
	assert_false(pending);
	assert_false(note_called(&w, 50));

	/* a lock on audit.db does not hold records back: the journal takes them */
	lock = raw_db(&f);
	assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
	note_init(&w);
	assert_int_equal(audit_notify(f.a, t, &w.n, &pending, &c), ERR_OK);
	assert_true(!pending || note_called(&w, 5000));
	assert_true(!pending || atomic_load(&w.result) == ERR_OK);

	/* ... until both its files are full: then pending until the lock goes, then ERR_OK */
	jammed += jam(f.a);
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
	assert_int_equal(audit_notify(f.a, t, NULL, &pending, &c), ERR_OK);
	assert_true(pending); /* a question only */
	note_init(&w);
	assert_int_equal(audit_notify(f.a, t, &w.n, &pending, &c), ERR_OK);
	assert_true(pending);
	assert_false(note_called(&w, 300));
	assert_int_equal(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	assert_true(note_called(&w, 20000));
	assert_int_equal(atomic_load(&w.result), ERR_OK);
	assert_int_equal(atomic_load(&w.calls), 1);

	/* jammed past AUDIT_WAIT_MS: ERR_BUSY then, even with the writer stuck */
	assert_int_equal(audit_settle(f.a, AUDIT_WAIT_MS, &c), ERR_OK); /* nothing left from before */
	assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	jammed += jam(f.a);
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
	note_init(&w);
	t0 = clock_mono_us();
	assert_int_equal(audit_notify(f.a, t, &w.n, &pending, &c), ERR_OK);
	assert_true(pending);
	assert_true(note_called(&w, AUDIT_WAIT_MS + 2000));
	assert_int_equal(atomic_load(&w.result), ERR_BUSY);
	assert_true(clock_mono_us() - t0 >= (AUDIT_WAIT_MS - 50) * 1000LL);
	assert_int_equal(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(audit_wait(f.a, t, &c), ERR_OK); /* the record itself got in */

	/*
	 * Registrations do not wake the notifier (only commits and the
	 * earliest deadline do): 50 notices while the writer is stuck cost
	 * at most the notifier's own periodic wake-ups, not 50.
	 */
	{
		static struct note many[50];
		struct audit_stats before, after;
		int64_t t1;

		assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
		jammed += jam(f.a);
		assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
		audit_stats(f.a, &before);
		t1 = clock_mono_us();
		for (int i = 0; i < 50; i++) {
			note_init(&many[i]);
			assert_int_equal(audit_notify(f.a, t, &many[i].n, &pending, &c), ERR_OK);
			assert_true(pending);
			usleep(2000);
		}
		audit_stats(f.a, &after);
		/* one wake a second at most while nothing is due, plus one to spare */
		assert_true(after.notifier_wakes - before.notifier_wakes <=
			    (uint64_t)((clock_mono_us() - t1) / 1000000) + 2);
		assert_int_equal(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
		for (int i = 0; i < 50; i++) {
			assert_true(note_called(&many[i], 20000));
			assert_int_equal(atomic_load(&many[i].result), ERR_OK);
		}
		sqlite3_close(lock);
	}

	/* a ticket the log will never reach: answered ERR_IO when it closes */
	note_init(&w);
	assert_int_equal(audit_notify(f.a, t + 1000, &w.n, &pending, &c), ERR_OK);
	assert_true(pending);
	assert_false(note_called(&w, 100));
	fx_close(&f);
	assert_int_equal(atomic_load(&w.calls), 1);
	assert_int_equal(atomic_load(&w.result), ERR_IO);
	expect_ok(&f, 5 + jammed);
	fx_release(&f);
}

/*
 * A held answer goes out from the journal thread, right after the write
 * that made its record durable: promptly, and without waking the notifier
 * (which only keeps deadlines and answers failure and close).
 */
static void test_notice_answered_by_journal(void **state)
{
	struct fx f;
	struct ctx c = CTX_INIT;
	struct audit_stats before, after;
	char p[16];
	struct audit_entity en;
	struct audit_event ev = sample_event(3, p, sizeof(p), &en);
	int64_t t0;
	int held = 0;

	(void)state;
	fx_init(&f, "audit-notice-journal");
	fx_open(&f, NULL);
	audit_stats(f.a, &before);
	t0 = clock_mono_us();
	for (int i = 0; i < 20; i++) {
		struct note w;
		bool pending = false;
		uint64_t t;

		note_init(&w);
		assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
		assert_int_equal(audit_notify(f.a, t, &w.n, &pending, &c), ERR_OK);
		if (!pending)
			continue; /* durable already: nothing held */
		held++;
		/* well before the notifier's own wake-up, a second away */
		assert_true(note_called(&w, 400));
		assert_int_equal(atomic_load(&w.result), ERR_OK);
	}
	audit_stats(f.a, &after);
	assert_true(held > 0);
	assert_true(after.notifier_wakes - before.notifier_wakes <=
		    (uint64_t)((clock_mono_us() - t0) / 1000000) + 1);
	fx_close(&f);
	expect_ok(&f, 20);
	fx_release(&f);
}

static void test_storage_failure_fails_closed(void **state)
{
	struct fx f;
	struct audit_opts o = {.checkpoint_records = 1000};
	struct ctx c = CTX_INIT;
	char p[16];
	struct audit_entity en;
	struct audit_event ev = sample_event(1, p, sizeof(p), &en);
	uint64_t t;
	struct audit_stats st;

	(void)state;
	log_set_level(LOG_OFF); /* the writer says why it stopped */
	fx_init(&f, "audit-fail");
	fx_open(&f, &o);
	record_n(f.a, 0, 2, true);
	/*
	 * The table disappears under the writer.  The record is durable in
	 * the journal, so its wait may succeed; moving it into audit.db fails,
	 * and from then on the log refuses records: disclosures fail closed.
	 */
	raw_exec(&f, "DROP TABLE record");
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
	ctx_clear(&c);
	assert_int_equal(audit_settle(f.a, AUDIT_WAIT_MS, &c), ERR_IO);
	assert_non_null(strstr(c.msg, "failed"));
	ctx_clear(&c);
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_IO);
	ctx_clear(&c);
	assert_int_equal(audit_record_sync(f.a, &ev, &c), ERR_IO);
	audit_stats(f.a, &st);
	assert_true(st.failed);
	ctx_clear(&c);
	assert_int_equal(audit_close(f.a, &c), ERR_IO);
	f.a = NULL;
	log_set_level(LOG_WARN);
	fx_release(&f);
}

/*
 * A full disk: the default VFS for the test refuses every write with
 * SQLITE_FULL (ENOSPC) while 'disk_full' is set; the unix VFS does the rest.
 */
#define FULL_KINDS 4 /* the unix VFS's method tables seen (one per locking style) */
static sqlite3_vfs full_vfs, *unix_vfs;
static sqlite3_io_methods full_methods[FULL_KINDS];
static const sqlite3_io_methods *unix_methods[FULL_KINDS];
static pthread_mutex_t full_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool disk_full;
static atomic_int full_refusals;

static int full_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	const sqlite3_io_methods *m = unix_methods[f->pMethods - full_methods];

	if (atomic_load(&disk_full)) {
		atomic_fetch_add(&full_refusals, 1);
		return SQLITE_FULL;
	}
	return m->xWrite(f, p, n, off);
}

static int full_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	int rc = unix_vfs->xOpen(unix_vfs, name, f, flags, out);
	int k;

	(void)v;
	if (rc != SQLITE_OK || !f->pMethods)
		return rc;
	pthread_mutex_lock(&full_mu);
	for (k = 0; k < FULL_KINDS && unix_methods[k] && unix_methods[k] != f->pMethods; k++)
		;
	if (k < FULL_KINDS && !unix_methods[k]) {
		full_methods[k] = *f->pMethods;
		full_methods[k].xWrite = full_write;
		unix_methods[k] = f->pMethods;
	}
	pthread_mutex_unlock(&full_mu);
	if (k == FULL_KINDS) {
		f->pMethods->xClose(f);
		return SQLITE_CANTOPEN;
	}
	f->pMethods = &full_methods[k];
	return rc;
}

static void full_vfs_install(void)
{
	unix_vfs = sqlite3_vfs_find(NULL);
	full_vfs = *unix_vfs;
	full_vfs.pNext = NULL;
	full_vfs.zName = "audit-test-full";
	full_vfs.xOpen = full_open;
	assert_int_equal(sqlite3_vfs_register(&full_vfs, 1), SQLITE_OK);
}

static void full_vfs_remove(void)
{
	sqlite3_vfs_unregister(&full_vfs);
	sqlite3_vfs_register(unix_vfs, 1);
}

/*
 * A full disk is waited out, not a failure (security plan case 87): a
 * record taken while every write is refused is not durable and the writer
 * keeps trying (every 250 ms) without failing; once there is room the same
 * record becomes durable, later ones follow, and the log verifies.
 */
static void test_disk_full_waits(void **state)
{
	struct fx f;
	struct audit_opts o = {.checkpoint_records = 1000};
	struct ctx c = CTX_INIT;
	char p[16];
	struct audit_entity en;
	struct audit_event ev = sample_event(3, p, sizeof(p), &en);
	struct audit_stats st;
	uint64_t t;

	(void)state;
	log_set_level(LOG_OFF); /* the writer says the disk is full */
	full_vfs_install();
	fx_init(&f, "audit-full");
	fx_open(&f, &o);
	record_n(f.a, 0, 3, true);
	atomic_store(&full_refusals, 0);
	atomic_store(&disk_full, true);
	/* durable in the journal (written before the disk filled), not in audit.db */
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
	assert_int_equal(audit_wait(f.a, t, &c), ERR_OK);
	for (int i = 0; i < 500 && atomic_load(&full_refusals) < 2; i++)
		usleep(10000);
	assert_true(atomic_load(&full_refusals) >= 2); /* refused, and tried again */
	audit_stats(f.a, &st);
	assert_false(st.failed);
	assert_int_equal(st.records, 3);
	assert_int_equal(st.unapplied, 1);
	atomic_store(&disk_full, false);
	assert_int_equal(audit_settle(f.a, AUDIT_WAIT_MS, &c), ERR_OK);
	record_n(f.a, 10, 5, true);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 9);
	fx_close(&f);
	expect_ok(&f, 9);
	fx_release(&f);
	full_vfs_remove();
	log_set_level(LOG_WARN);
}

/*
 * Retention on a full disk: the prune cannot commit, so it is postponed
 * (ERR_BUSY to whoever asked) and the log goes on; with room again the
 * same prune runs, and the log verifies.  (It used to stop the writer.)
 */
static void test_prune_disk_full(void **state)
{
	struct fx f;
	struct audit_opts o = {.retention_days = AUDIT_RETAIN_FOREVER, .checkpoint_records = 1000};
	struct audit_verify_report r;
	struct audit_stats st;
	struct ctx c = CTX_INIT;
	uint64_t pruned = 99;

	(void)state;
	log_set_level(LOG_OFF);
	full_vfs_install();
	fx_init(&f, "audit-prune-full");
	fx_open(&f, &o);
	record_old(f.a, 5, 10);
	fx_close(&f);
	o.retention_days = 1; /* no archive directory: the prune goes straight to the log */
	fx_open(&f, &o);
	atomic_store(&full_refusals, 0);
	atomic_store(&disk_full, true);
	assert_int_equal(audit_prune(f.a, &pruned, &c), ERR_BUSY);
	assert_non_null(strstr(c.msg, "the disk is full"));
	assert_true(atomic_load(&full_refusals) > 0);
	audit_stats(f.a, &st);
	assert_false(st.failed);
	atomic_store(&disk_full, false);
	ctx_clear(&c);
	record_n(f.a, 5, 3, true); /* the writer is alive */
	assert_int_equal(audit_prune(f.a, &pruned, &c), ERR_OK);
	assert_int_equal(pruned, 5);
	fx_close(&f);
	assert_int_equal(audit_verify(f.dir, f.pub, &r, &c), ERR_OK);
	assert_true(r.ok);
	assert_int_equal(r.records, 9); /* 5 + 3 and the prune record */
	assert_int_equal(r.pruned, 5);
	fx_release(&f);
	full_vfs_remove();
	log_set_level(LOG_WARN);
}

static void test_record_refuses_bad_events(void **state)
{
	struct fx f;
	struct ctx c = CTX_INIT;
	struct audit_event ev = {.type = AUDIT_SYSTEM_PRUNE};
	uint64_t t = 99;

	(void)state;
	fx_init(&f, "audit-bad");
	fx_open(&f, NULL);
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_INVALID);
	assert_int_equal(t, 0);
	ev.type = AUDIT_FHIR_READ;
	ev.outcome = 5;
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_INVALID);
	assert_int_equal(audit_record(f.a, NULL, &t, &c), ERR_INVALID);
	assert_int_equal(audit_record(NULL, &ev, &t, &c), ERR_IO);
	fx_close(&f);
	assert_int_equal(count(&f, "SELECT count(*) FROM record"), 0);
	/* an empty log verifies */
	expect_ok(&f, 0);
	fx_release(&f);
}

/* ---- tampering ------------------------------------------------------------------------ */

static void test_alter_body(void **state)
{
	struct fx *f = *state;
	char *b = get_body(f, 17), *b2 = edit(b, "\"patient\":\"p3\"", "\"patient\":\"p4\"");

	set_body(f, 17, b2, false);
	expect_bad(f, 17, 0, "does not match its leaf hash");
	free(b);
	free(b2);
}

static void test_alter_body_and_leaf(void **state)
{
	struct fx *f = *state;
	char *b = get_body(f, 17), *b2 = edit(b, "\"outcome\":0", "\"outcome\":4");

	/* the leaf hash rewritten too: only the signed root can tell; 20 = 16 + 4 */
	set_body(f, 17, b2, true);
	raw_exec(f, "UPDATE record SET outcome = 4 WHERE " SEQ " = 17");
	expect_bad(f, 16, 20, "signed root of checkpoint 20");
	free(b);
	free(b2);
}

static void test_alter_body_and_leaf_fine_checkpoints(void **state)
{
	struct fx f;
	struct audit_opts o = {.checkpoint_records = 1};
	char *b, *b2;

	(void)state;
	fx_init(&f, "audit-fine");
	fx_open(&f, &o);
	record_n(f.a, 0, 12, true);
	fx_close(&f);
	expect_ok(&f, 12);
	b = get_body(&f, 5);
	b2 = edit(b, "\"outcome\":0", "\"outcome\":4");
	set_body(&f, 5, b2, true);
	raw_exec(&f, "UPDATE record SET outcome = 4 WHERE " SEQ " = 5");
	/* a checkpoint per record: the exact record */
	expect_bad(&f, 5, 0, "signed root of checkpoint 6");
	free(b);
	free(b2);
	fx_release(&f);
}

static void test_alter_column(void **state)
{
	struct fx *f = *state;

	/* hiding a record from a patient's query */
	raw_exec(f, "UPDATE record SET patient = 'p6' WHERE " SEQ " = 31");
	expect_bad(f, 31, 0, "patient column");
}

static void test_alter_other_columns(void **state)
{
	struct fx *f = *state;

	raw_exec(f, "UPDATE record SET agent = 'nobody' WHERE " SEQ " = 8");
	expect_bad(f, 8, 0, "agent column");
	raw_exec(f, "UPDATE record SET agent = 'alice' WHERE " SEQ " = 8");
	raw_exec(f, "UPDATE record SET time_ms = time_ms + 1 WHERE " SEQ " = 3");
	expect_bad(f, 3, 0, "time column");
}

static void test_delete_record(void **state)
{
	struct fx *f = *state;

	raw_exec(f, "DELETE FROM record WHERE " SEQ " = 23");
	expect_bad(f, 23, 0, "record 23 is missing");
}

static void test_delete_and_renumber(void **state)
{
	struct fx *f = *state;

	raw_exec(f, "DELETE FROM record WHERE " SEQ " = 23");
	raw_exec(f, "UPDATE record SET id = -id WHERE " SEQ " > 23");
	raw_exec(f, "UPDATE record SET id = -id - 1 WHERE id < 0");
	expect_bad(f, 23, 0, "says it is record 24");
}

static void test_insert_record(void **state)
{
	struct fx *f = *state;
	char *b = get_body(f, 30),
	     *b2 = edit(b, "\"client\":\"growth-chart\"", "\"client\":\"evil-app\"");

	/* make room at 30 and put a forged record there, correct in itself */
	raw_exec(f, "UPDATE record SET id = -id WHERE " SEQ " >= 30");
	raw_exec(f, "UPDATE record SET id = -id + 1 WHERE id < 0");
	raw_exec(f, "INSERT INTO record SELECT id - 1, " COLS " FROM record WHERE " SEQ " = 31");
	set_body(f, 30, b2, true);
	raw_exec(f, "UPDATE record SET client = 'evil-app' WHERE " SEQ " = 30");
	/* record 31 (the old 30) says it is 30: something was inserted at 30 */
	expect_bad(f, 30, 31, "says it is record 30");
	free(b);
	free(b2);
}

static void test_insert_fully_renumbered(void **state)
{
	struct fx *f = *state;

	/* an insertion at 30 whose author also rewrote every later record's
	 * sequence and leaf hash: the checkpoint at 40 catches it; 40 = 32 + 8 */
	for (int seq = 44; seq >= 30; seq--) {
		char *b = get_body(f, seq), from[32], to[32], *b2;
		char sql[128];
		snprintf(from, sizeof(from), "\"seq\":%d,", seq);
		snprintf(to, sizeof(to), "\"seq\":%d,", seq + 1);
		b2 = edit(b, from, to);
		snprintf(sql, sizeof(sql), "UPDATE record SET id = id + 1 WHERE " SEQ " = %d", seq);
		raw_exec(f, sql);
		set_body(f, seq + 1, b2, true);
		free(b);
		free(b2);
	}
	{
		char *b = get_body(f, 29), *b2 = edit(b, "\"seq\":29,", "\"seq\":30,");
		raw_exec(f, "INSERT INTO record SELECT id + 1, " COLS " FROM record WHERE " SEQ " = 29");
		set_body(f, 30, b2, true);
		free(b);
		free(b2);
	}
	expect_bad(f, 30, 32, "signed root of checkpoint 40");
}

static void test_reorder(void **state)
{
	struct fx *f = *state;

	raw_exec(f, "UPDATE record SET id = -1 WHERE " SEQ " = 12");
	raw_exec(f, "UPDATE record SET id = id - 1 WHERE " SEQ " = 13");
	raw_exec(f, "UPDATE record SET id = " ID0 " + 13 WHERE id = -1");
	expect_bad(f, 12, 0, "says it is record 13");
}

static void test_truncate(void **state)
{
	struct fx *f = *state;

	raw_exec(f, "DELETE FROM record WHERE " SEQ " >= 42");
	expect_bad(f, 42, 45, "records 42 to 44 were removed");
	/* the writer refuses to continue such a stream */
	{
		struct ctx c = CTX_INIT;
		struct audit *a = NULL;
		struct audit_opts o = {.data_dir = f->dir, .key = f->key, .archive_dir = ""};
		assert_int_equal(audit_open(&o, &a, &c), ERR_IO);
		assert_non_null(strstr(c.msg, "shorter"));
	}
}

static void test_truncate_with_checkpoints(void **state)
{
	struct fx *f = *state;
	struct audit_reader *r = NULL;
	struct ctx c = CTX_INIT;
	json_t *cps = NULL;
	char *saved;

	/* a witness kept the latest checkpoint */
	assert_int_equal(audit_reader_open(f->dir, &r, &c), ERR_OK);
	assert_int_equal(audit_checkpoints(r, NULL, false, 0, &cps, &c), ERR_OK);
	audit_reader_free(r);
	saved = strdup(json_string_value(
		json_object_get(json_array_get(json_object_get(cps, "checkpoints"), 0), "jws")));
	json_decref(cps);
	assert_int_equal(audit_verify_extends(f->dir, f->pub, saved, &c), ERR_OK);
	/* cut back to 40 records with their checkpoints: locally consistent... */
	raw_exec(f, "DELETE FROM record WHERE " SEQ " >= 40");
	raw_exec(f, "DELETE FROM checkpoint WHERE size > 40");
	expect_ok(f, 40);
	/* ...but no longer extends what the witness saw */
	ctx_clear(&c);
	assert_int_equal(audit_verify_extends(f->dir, f->pub, saved, &c), ERR_INVALID);
	assert_non_null(strstr(c.msg, "no longer holds"));
	/* a forged checkpoint does not count */
	saved[strlen(saved) - 3] = saved[strlen(saved) - 3] == 'A' ? 'B' : 'A';
	ctx_clear(&c);
	assert_int_equal(audit_verify_extends(f->dir, f->pub, saved, &c), ERR_UNAUTHORIZED);
	free(saved);
}

static void test_append_after_close(void **state)
{
	struct fx *f = *state;
	char *b = get_body(f, 44), *b2 = edit(b, "\"seq\":44,", "\"seq\":45,");
	struct ctx c = CTX_INIT;
	struct audit *a = NULL;
	struct audit_opts o = {.data_dir = f->dir, .key = f->key, .archive_dir = ""};

	raw_exec(f, "INSERT INTO record SELECT id + 1, " COLS " FROM record WHERE " SEQ " = 44");
	set_body(f, 45, b2, true);
	expect_bad(f, 45, 0, "follow the checkpoint the writer signed when it closed");
	assert_int_equal(audit_open(&o, &a, &c), ERR_IO);
	assert_non_null(strstr(c.msg, "after the checkpoint"));
	free(b);
	free(b2);
}

static void test_forged_checkpoint(void **state)
{
	struct fx *f = *state;

	/* one flipped character of the signature of the checkpoint at 30 */
	raw_exec(f, "UPDATE checkpoint SET jws = substr(jws, 1, length(jws) - 2) ||"
		    " CASE substr(jws, -2, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(jws, -1)"
		    " WHERE size = 30");
	expect_bad(f, 20, 30, "checkpoint at 30");
}

static void test_checkpoint_columns(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;

	raw_exec(f, "UPDATE checkpoint SET time_ms = time_ms + 1000 WHERE size = 20");
	assert_int_equal(audit_verify(f->dir, f->pub, &r, &c), ERR_INVALID);
	assert_non_null(strstr(r.reason, "differ from what was signed"));
	assert_int_equal(r.first_bad, -1);
	raw_exec(f, "UPDATE checkpoint SET time_ms = time_ms - 1000 WHERE size = 20");
	expect_ok(f, 45);
	raw_exec(f, "UPDATE checkpoint SET jws = NULL WHERE size = 10");
	expect_bad(f, 0, 10, "not signed");
}

static void test_missing_body(void **state)
{
	struct fx *f = *state;

	/* a body removed as if by retention, without a signed prune record */
	raw_exec(f, "UPDATE record SET body = NULL WHERE " SEQ " = 2");
	expect_bad(f, 2, 0, "no signed prune record");
}

static void test_garbage_body(void **state)
{
	struct fx *f = *state;

	set_body(f, 9, "{\"not\":\"a record\"}", true);
	expect_bad(f, 9, 0, "not a valid audit record");
}

/*
 * Two changes before the same checkpoint: record 11 rewritten with its
 * leaf hash (only the signed root of 20 can tell) and a later one caught
 * on its own.  Verify must name the earlier one: the differing subtree
 * [0, 16) of checkpoint 20, from the last good checkpoint on.
 */
static void test_first_of_two_changes(void **state)
{
	struct fx *f = *state;
	char *b = get_body(f, 11), *b2 = edit(b, "\"outcome\":0", "\"outcome\":4");
	char *c = get_body(f, 17), *c2 = edit(c, "\"patient\":\"p3\"", "\"patient\":\"p4\"");

	set_body(f, 11, b2, true);
	raw_exec(f, "UPDATE record SET outcome = 4 WHERE " SEQ " = 11");
	set_body(f, 17, c2, false);
	expect_bad(f, 10, 16, "signed root of checkpoint 20");
	/* the same with a record deleted after it */
	set_body(f, 17, c, false);
	raw_exec(f, "DELETE FROM record WHERE " SEQ " = 18");
	expect_bad(f, 10, 16, "signed root of checkpoint 20");
	free(b);
	free(b2);
	free(c);
	free(c2);
}

/* A later change does not hide behind an earlier one that is the only change before a checkpoint. */
static void test_first_of_two_changes_same_subtree(void **state)
{
	struct fx *f = *state;
	char *c = get_body(f, 17), *c2 = edit(c, "\"patient\":\"p3\"", "\"patient\":\"p4\"");

	/* 17's body altered and 33's leaf: 17 is reported, not a range around 33 */
	set_body(f, 17, c2, false);
	raw_exec(f, "UPDATE record SET leaf = zeroblob(32) WHERE " SEQ " = 33");
	expect_bad(f, 17, 0, "does not match its leaf hash");
	free(c);
	free(c2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup45, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_clean_log),
		cmocka_unit_test(test_concurrent_producers),
		cmocka_unit_test(test_linger),
		cmocka_unit_test(test_async_and_reopen),
		cmocka_unit_test(test_crash_tail_signed_at_start),
		cmocka_unit_test(test_unsigned_log_refused),
		cmocka_unit_test(test_queue_full_fails_closed),
		cmocka_unit_test(test_storage_failure_fails_closed),
		cmocka_unit_test(test_disk_full_waits),
		cmocka_unit_test(test_prune_disk_full),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_notice_answered_by_journal),
		cmocka_unit_test(test_record_refuses_bad_events),
		T(test_alter_body),
		T(test_alter_body_and_leaf),
		cmocka_unit_test(test_alter_body_and_leaf_fine_checkpoints),
		T(test_alter_column),
		T(test_alter_other_columns),
		T(test_delete_record),
		T(test_delete_and_renumber),
		T(test_insert_record),
		T(test_insert_fully_renumbered),
		T(test_reorder),
		T(test_truncate),
		T(test_truncate_with_checkpoints),
		T(test_append_after_close),
		T(test_forged_checkpoint),
		T(test_checkpoint_columns),
		T(test_missing_body),
		T(test_garbage_body),
		T(test_first_of_two_changes),
		T(test_first_of_two_changes_same_subtree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
