/*
 * The audit log's intake journal: records durable in it survive a crash
 * before they reach audit.db, torn and damaged entries are not replayed,
 * a gap is refused, a second writer is kept off the stream, every batch
 * is synced, and a failed sync (EIO) fails closed for good.  A crash
 * is a child process that records, waits for durability and kills itself
 * (SIGKILL), with audit.db locked so that nothing gets past the journal.
 */
#include "audit_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/audit_int.h"
#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/syscall.h>

/*
 * fdatasync() as this test binary sees it (the executable's definition
 * comes before libc's, for SQLite too): counts the syncs of journal files
 * and, when armed, fails them with EIO as a dying disk would.
 */
static atomic_int journal_syncs, fail_journal_syncs;

static bool is_journal(int fd)
{
	char link[64], path[512];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return strstr(path, "/audit-journal/") != NULL;
}

int fdatasync(int fd)
{
	if (is_journal(fd)) {
		atomic_fetch_add(&journal_syncs, 1);
		if (atomic_load(&fail_journal_syncs)) {
			errno = EIO;
			return -1;
		}
	}
	return (int)syscall(SYS_fdatasync, fd);
}

/*
 * In a child: open the log, lock audit.db, record 'n' records from
 * 'from' and wait for each, then exit without closing anything.
 */
static void crash_after_in(struct fx *f, int from, int n, size_t journal_bytes)
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct ctx c = CTX_INIT;
		struct audit_opts o = {.data_dir = f->dir, .key = f->key, .archive_dir = "",
				       .journal_bytes = journal_bytes};
		struct audit *a = NULL;
		sqlite3 *lock;
		uint64_t t;

		if (audit_open(&o, &a, &c))
			_exit(2);
		lock = raw_db(f);
		if (sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			_exit(3);
		for (int i = from; i < from + n; i++) {
			char p[16];
			struct audit_entity en;
			struct audit_event ev = sample_event(i, p, sizeof(p), &en);
			if (audit_record(a, &ev, &t, &c) || audit_wait(a, t, &c))
				_exit(4);
		}
		raise(SIGKILL); /* a crash: nothing runs after this, not even exit handlers */
		_exit(5);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		fail_msg("the child failed before its crash (exit %d)", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void expect_ok(const struct fx *f, uint64_t n)
{
	struct audit_verify_report r;
	struct ctx c = CTX_INIT;

	if (audit_verify(f->dir, f->pub, &r, &c) != ERR_OK)
		fail_msg("verify: %s", c.msg);
	assert_true(r.ok);
	assert_int_equal(r.records, n);
}

static void crash_after(struct fx *f, int from, int n)
{
	crash_after_in(f, from, n, 0);
}

/*
 * The agents of the records in audit.db, in sequence order, must be those
 * of sample events from..from+n-1 after the first 'skip': each record
 * once, in the order it was recorded.
 */
static void expect_sequence(const struct fx *f, int skip, int from, int n)
{
	static const char *const users[] = {"alice", "bob", "drsmith", "carol"};
	sqlite3 *db = raw_db(f);
	sqlite3_stmt *st = NULL;
	int i = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT agent, patient FROM record WHERE type LIKE 'fhir.%'"
					    " ORDER BY id LIMIT -1 OFFSET ?",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int(st, 1, skip);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char p[16];
		assert_true(i < n);
		snprintf(p, sizeof(p), "p%d", (from + i) % 7);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), users[(from + i) % 4]);
		assert_string_equal((const char *)sqlite3_column_text(st, 1), p);
		i++;
	}
	assert_int_equal(i, n);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void journal_path(const struct fx *f, int k, char *out, size_t n)
{
	snprintf(out, n, "%s/audit-journal/node-1.%d", f->dir, k);
}

static int64_t records(const struct fx *f)
{
	sqlite3 *db = raw_db(f);
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM record", -1, &st, NULL),
			 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Records acknowledged as durable, never inserted: in the log after the next open. */
static void test_crash_recovered(void **state)
{
	struct fx f;
	struct audit_stats st;

	(void)state;
	log_set_level(LOG_ERROR); /* the recovery's warning */
	fx_init(&f, "journal-crash");
	fx_open(&f, NULL);
	record_n(f.a, 0, 5, true);
	fx_close(&f);
	crash_after(&f, 5, 20);
	assert_int_equal(records(&f), 5); /* nothing got past the journal */
	fx_open(&f, NULL);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 25);
	expect_sequence(&f, 0, 0, 25);
	/* and the stream goes on from there */
	record_n(f.a, 25, 5, false);
	fx_close(&f);
	expect_ok(&f, 30);
	/* a second open has nothing more to insert */
	fx_open(&f, NULL);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 30);
	fx_close(&f);
	expect_ok(&f, 30);
	log_set_level(LOG_WARN);
	fx_release(&f);
}

/*
 * A torn or damaged entry ends the journal there: the entries before it
 * are inserted, it and what follows are not (they were never answered).
 */
static void test_torn_tail(void **state)
{
	struct fx f;
	struct audit_stats st;
	char path[512];
	uint8_t *data = malloc(AUDIT_JOURNAL_DEFAULT);
	size_t at = 0, last = 0;
	int fd;

	(void)state;
	log_set_level(LOG_ERROR);
	fx_init(&f, "journal-torn");
	crash_after(&f, 0, 10);
	journal_path(&f, 0, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, data, AUDIT_JOURNAL_DEFAULT, 0), (ssize_t)AUDIT_JOURNAL_DEFAULT);
	/* walk to the last entry: a header, the payload padded to 8 */
	for (int i = 0; i < 10; i++) {
		uint32_t len;
		memcpy(&len, data + at + 4, 4);
		last = at;
		at += JOURNAL_HEADER + ((len + 7) & ~7u);
	}
	/* one byte of its payload changed, as a write cut short would leave it */
	data[last + 40] ^= 0x5a;
	assert_int_equal(pwrite(fd, data + last + 40, 1, (off_t)(last + 40)), 1);
	close(fd);
	free(data);
	fx_open(&f, NULL);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 9);
	fx_close(&f);
	expect_ok(&f, 9);
	expect_sequence(&f, 0, 0, 9);
	log_set_level(LOG_WARN);
	fx_release(&f);
}

/* Entries that do not follow on from what audit.db holds: refused, named. */
static void test_gap_refused(void **state)
{
	struct fx f;
	struct ctx c = CTX_INIT;
	struct audit_opts o = {0};
	struct audit *a = NULL;
	sqlite3 *db;

	(void)state;
	log_set_level(LOG_ERROR);
	fx_init(&f, "journal-gap");
	fx_open(&f, NULL);
	record_n(f.a, 0, 3, true);
	fx_close(&f);
	crash_after(&f, 3, 4); /* journal entries 4 to 7 */
	/* audit.db claims less than it had: entries 2 and 3 look missing */
	db = raw_db(&f);
	assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value = 1 WHERE name = 'journal:node-1'",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_close(db);
	o.data_dir = f.dir;
	o.key = f.key;
	o.archive_dir = "";
	/* (the crashed run wrote 4 to 7 over 1 to 3: a journal starts each run at its start) */
	assert_int_equal(audit_open(&o, &a, &c), ERR_IO);
	assert_null(a);
	assert_non_null(strstr(c.msg, "missing"));
	/* told the truth again, it opens and inserts 4 to 7 */
	db = raw_db(&f);
	assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value = 3 WHERE name = 'journal:node-1'",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	fx_open(&f, NULL);
	fx_close(&f);
	expect_ok(&f, 7);
	log_set_level(LOG_WARN);
	fx_release(&f);
}

/* A crash with entries in both files: inserted in order, file 0's before file 1's. */
static void test_crash_across_files(void **state)
{
	struct fx f;
	struct audit_stats st;
	struct audit_opts o = {.journal_bytes = AUDIT_JOURNAL_MIN};

	(void)state;
	log_set_level(LOG_ERROR);
	fx_init(&f, "journal-two");
	/* the smallest files hold about a hundred records each */
	crash_after_in(&f, 0, 150, AUDIT_JOURNAL_MIN);
	assert_int_equal(records(&f), 0);
	fx_open(&f, &o);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 150);
	fx_close(&f);
	expect_ok(&f, 150);
	expect_sequence(&f, 0, 0, 150);
	log_set_level(LOG_WARN);
	fx_release(&f);
}

/*
 * Entries of an earlier round behind the current one are not its
 * continuation, even where a torn write left them whole and their numbers
 * follow on: a crash tears the first of ten entries; the next run writes
 * its own first entry over it and crashes in turn; only that one is
 * inserted, not the nine behind it.
 */
static void test_old_round_not_replayed(void **state)
{
	struct fx f;
	char path[512];
	uint8_t b;
	int fd;

	(void)state;
	log_set_level(LOG_ERROR);
	fx_init(&f, "journal-round");
	crash_after(&f, 0, 10);
	journal_path(&f, 0, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, JOURNAL_HEADER + 4), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, JOURNAL_HEADER + 4), 1);
	close(fd);
	crash_after(&f, 0, 1); /* the same record again: an entry of the same size */
	fx_open(&f, NULL);
	fx_close(&f);
	expect_ok(&f, 1);
	expect_sequence(&f, 0, 0, 1);
	log_set_level(LOG_WARN);
	fx_release(&f);
}

/* Every journal write is synced before its records count as durable. */
static void test_every_batch_synced(void **state)
{
	struct fx f;
	struct audit_stats st;
	int before;

	(void)state;
	fx_init(&f, "journal-sync");
	fx_open(&f, NULL);
	before = atomic_load(&journal_syncs);
	record_n(f.a, 0, 40, true); /* each waited for: 40 journal writes */
	audit_stats(f.a, &st);
	assert_int_equal(st.commits, 40);
	assert_true(atomic_load(&journal_syncs) - before >= 40);
	fx_close(&f);
	expect_ok(&f, 40);
	fx_release(&f);
}

/*
 * A journal sync that fails (EIO) fails closed: the waiter gets ERR_IO,
 * later records are refused, and the log is not trusted again in this
 * run (a retry after an fsync error proves nothing).  What was durable
 * before is in the log.
 */
static void test_sync_failure_fails_closed(void **state)
{
	struct fx f;
	struct ctx c = CTX_INIT;
	struct audit_stats st;
	char p[16];
	struct audit_entity en;
	struct audit_event ev = sample_event(7, p, sizeof(p), &en);
	uint64_t t;

	(void)state;
	log_set_level(LOG_OFF); /* the writer says why it stopped */
	fx_init(&f, "journal-eio");
	fx_open(&f, NULL);
	record_n(f.a, 0, 3, true);
	atomic_store(&fail_journal_syncs, 1);
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_OK);
	assert_int_equal(audit_wait(f.a, t, &c), ERR_IO);
	assert_non_null(strstr(c.msg, "sync"));
	atomic_store(&fail_journal_syncs, 0);
	ctx_clear(&c);
	assert_int_equal(audit_record(f.a, &ev, &t, &c), ERR_IO); /* not trusted again */
	audit_stats(f.a, &st);
	assert_true(st.failed);
	ctx_clear(&c);
	assert_int_equal(audit_close(f.a, &c), ERR_IO);
	f.a = NULL;
	/* the next run has the three records from before (and may have the fourth) */
	fx_open(&f, NULL);
	audit_stats(f.a, &st);
	assert_true(st.records == 3 || st.records == 4);
	fx_close(&f);
	log_set_level(LOG_WARN);
	fx_release(&f);
}

/* A second writer of the same stream, in this process or another: refused. */
static void test_one_writer(void **state)
{
	struct fx f;
	struct ctx c = CTX_INIT;
	struct audit_opts o = {0};
	struct audit *b = NULL;

	(void)state;
	fx_init(&f, "journal-lock");
	fx_open(&f, NULL);
	o.data_dir = f.dir;
	o.key = f.key;
	o.archive_dir = "";
	assert_int_equal(audit_open(&o, &b, &c), ERR_CONFLICT);
	assert_null(b);
	assert_non_null(strstr(c.msg, "another process"));
	/* another stream of the same log is fine */
	ctx_clear(&c);
	o.node = "node-2";
	assert_int_equal(audit_open(&o, &b, &c), ERR_OK);
	record_n(b, 0, 2, true);
	record_n(f.a, 0, 2, true);
	assert_int_equal(audit_close(b, &c), ERR_OK);
	fx_close(&f);
	expect_ok(&f, 4);
	fx_release(&f);
}

/*
 * The journal's two files are written in turn: many records, far more
 * than both (smallest) files hold at once, all arrive, in order, and
 * verify; and the files did not grow.
 */
static void test_files_turn(void **state)
{
	struct fx f;
	struct audit_stats st;
	struct audit_opts o = {.checkpoint_records = 5000, .journal_bytes = AUDIT_JOURNAL_MIN};
	struct stat sb;
	char path[512];

	(void)state;
	fx_init(&f, "journal-turn");
	fx_open(&f, &o);
	for (int i = 0; i < 24000; i += 2000)
		record_n(f.a, i, 2000, false);
	audit_stats(f.a, &st);
	assert_int_equal(st.records, 24000);
	assert_int_equal(st.unapplied, 0);
	fx_close(&f);
	expect_ok(&f, 24000);
	for (int k = 0; k < 2; k++) {
		journal_path(&f, k, path, sizeof(path));
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_size, AUDIT_JOURNAL_MIN);
	}
	fx_release(&f);
}

/* Wait up to 'ms' for every journaled record to be in audit.db, without asking for it. */
static bool applied_within(struct audit *a, int ms)
{
	int64_t until = clock_mono_us() + ms * 1000LL;
	struct audit_stats st;

	for (;;) {
		audit_stats(a, &st);
		if (st.unapplied == 0 || clock_mono_us() >= until)
			return st.unapplied == 0;
		usleep(2000);
	}
}

/*
 * A busy writer lets journaled records (durable already) gather before it
 * inserts them into audit.db: one transaction for many journal writes.
 * Whoever needs them there (audit_settle()) ends that wait at once, and
 * so do enough of them.  A quiet writer does not wait.
 */
static void test_writer_gathers(void **state)
{
	struct fx f;
	struct ctx c = CTX_INIT;
	struct audit_stats st;
	struct audit_opts o = {.writer_linger_ms = 3000, .checkpoint_records = 100000};
	uint64_t inserts;
	int64_t t0, ms;

	(void)state;
	fx_init(&f, "journal-gather");
	/* quiet (one record at a time): each is in audit.db soon after it is durable */
	fx_open(&f, &o);
	for (int i = 0; i < 5; i++) {
		record_durable(f.a, i, 1, true);
		assert_true(applied_within(f.a, 1000));
	}
	fx_close(&f);
	/* busy (every transaction counts as big here) */
	o.writer_busy_records = 1;
	fx_open(&f, &o);
	record_n(f.a, 5, 1, true); /* one transaction: busy from now on */
	audit_stats(f.a, &st);
	inserts = st.inserts;
	t0 = clock_mono_us();
	record_durable(f.a, 6, 40, true); /* 40 journal writes */
	audit_stats(f.a, &st);
	ms = (clock_mono_us() - t0) / 1000;
	assert_true(st.commits >= 41);
	/* at most one insert per linger (one per journal write without it) */
	assert_true(st.inserts - inserts <= 1 + (uint64_t)(ms / 3000));
	if (ms < 2500)
		assert_int_equal(st.unapplied, 40);
	t0 = clock_mono_us();
	assert_int_equal(audit_settle(f.a, AUDIT_WAIT_MS, &c), ERR_OK);
	ms = (clock_mono_us() - t0) / 1000;
	assert_true(ms < 1500); /* not the 3 s linger */
	audit_stats(f.a, &st);
	assert_int_equal(st.unapplied, 0);
	assert_int_equal(st.records, 46);
	/* a batch's worth goes in without anyone asking */
	record_durable(f.a, 46, 1200, false);
	t0 = clock_mono_us();
	do {
		audit_stats(f.a, &st);
		ms = (clock_mono_us() - t0) / 1000;
		if (st.records >= 46 + 512)
			break;
		usleep(5000);
	} while (ms < 2500);
	assert_true(st.records >= 46 + 512);
	fx_close(&f);
	expect_ok(&f, 1246);
	fx_release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash_recovered),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_gap_refused),
		cmocka_unit_test(test_crash_across_files),
		cmocka_unit_test(test_every_batch_synced),
		cmocka_unit_test(test_sync_failure_fails_closed),
		cmocka_unit_test(test_old_round_not_replayed),
		cmocka_unit_test(test_one_writer),
		cmocka_unit_test(test_files_turn),
		cmocka_unit_test(test_writer_gathers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
