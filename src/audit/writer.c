/*
 * writer.c - the audit writer: a bounded queue that any thread feeds
 * (audit_record), a journal thread that makes what is queued durable in
 * group commits (journal.c), and a writer thread that moves journaled
 * records into audit.db in batches, appends leaves to this node's Merkle
 * tree, caches block roots, signs checkpoints and applies retention.
 *
 * Threads and ownership.  struct audit's queue, the list of journaled
 * records, counters and failure state are guarded by 'mu'; the journal
 * (files, position, buffers) belongs to the journal thread, and the
 * connection, statements, compact range, tiers and prune progress to the
 * writer thread, after audit_open() returns.  Producers serialize their
 * record before taking the lock, so the lock is held only to push a
 * pointer.
 *
 * The journal thread takes up to BATCH_MAX records (at most a quarter of
 * a journal file), writes them with one write and one fdatasync, wakes
 * every waiter whose ticket is now durable and passes the records on.
 * Under load it waits a moment for company, as PostgreSQL's commit_delay
 * does: when the last write held at least COMMIT_SIBLINGS waited-for
 * records and the next record came while it ran (or within
 * COMMIT_DELAY_US of its end), up to COMMIT_DELAY_US for as many again
 * (at most half the queue), since the CPU a sync and its wake-ups cost is
 * paid per write, not per record; one request at a time, or the first
 * after a quiet spell, never waits.  Records no one will wait for
 * (recorded without a ticket: a token issued, a sign-in) may wait
 * LINGER_US in the queue for company, up to LINGER_RECORDS of them, so
 * that a stream of such events costs a write and a flush per batch rather
 * than one each; the first waiter ends the wait.
 *
 * The writer takes every journaled record (up to BATCH_MAX) into one
 * transaction with one fsync at COMMIT (WAL, synchronous=FULL), which
 * also records the last journal entry in audit.db; while it commits, the
 * journal goes on, so its batches grow with the load.  Since a journaled
 * record is already durable, a busy writer (its last transaction held at
 * least writer_busy_records) lets them gather for up to writer_linger_ms
 * or WRITER_BATCH records: a commit costs about the same for 20 records
 * as for 500.  A quiet one inserts at once, so that other processes
 * reading audit.db see a record when its request is answered.  Whoever
 * needs the records in audit.db (audit_settle(), a journal about to
 * overwrite a file) counts itself in 'hurry', which ends that wait.
 *
 * Failure.  Any storage error, in the journal or in audit.db, stops both
 * threads for good: queued records are dropped, waiters get ERR_IO,
 * audit_record() answers ERR_IO; what the journal holds is inserted at
 * the next start.  The caller's response is 503 (fail closed); an
 * operator looks at the disk and the log (DESIGN.md: after an fsync error
 * we do not trust a retry).  Except a full disk for audit.db (SQLITE_FULL:
 * a refused write, nothing synced, the transaction rolled back): the
 * writer puts its tree back as the database has it and writes the same
 * batch again every FULL_RETRY_MS until there is room.  A write lock held
 * by another connection is not a failure either: the writer waits for it
 * (begin()).  In both cases records go on into the journal until both its
 * files are full; then the journal thread waits, waiters give up after
 * AUDIT_WAIT_MS (ERR_BUSY) and the full queue refuses the rest, so
 * disclosures get 503 until the writer can go on, and then resume.
 */
#include "audit/audit.h"
#include "audit/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/jose.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"

#define HL MERKLE_HASH_LEN
#define BATCH_MAX 4096
#define PRUNE_CHUNK 2000
#define ROWS_PER_INSERT 16
#define RECORD_COLS "id, time_ms, type, outcome, patient, agent, client, request_id, trace_id, leaf, body"
#define RECORD_VALUES "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define DAY_MS 86400000LL
/* How long, and for how many, records no one waits for wait for more (see the top). */
#define LINGER_US 10000
#define LINGER_RECORDS 256
/* The journal's wait for company under load (company_deadline()). */
#define COMMIT_DELAY_US 200
#define COMMIT_SIBLINGS 4
/* How many journaled records the writer inserts without lingering (see the top). */
#define WRITER_BATCH 512
/* How often a writer facing a full disk tries again. */
#define FULL_RETRY_MS 250

/* One queued record: the canonical tail and the indexed columns. */
struct pending {
	struct pending *next;     /* in the list of journaled records */
	uint64_t jseq;            /* its journal entry; 0 until journaled */
	int64_t time_ms;
	enum audit_type type;
	int outcome;
	const char *patient, *agent, *client, *request, *trace; /* into mem or NULL */
	size_t tail_len;
	size_t entry_size;        /* its journal entry's bytes */
	char mem[]; /* the tail, NUL, then the column strings */
};

struct audit {
	/* fixed after audit_open() */
	char *dir;
	char node[AUDIT_NODE_MAX + 1];
	int64_t no;               /* the stream's number (record keys) */
	enum audit_durability durability;
	size_t queue_max;
	uint32_t ckpt_records, ckpt_ms;
	uint32_t retention_days;
	uint32_t prune_interval_ms;
	int64_t linger_us;        /* writer_linger_ms */
	size_t busy_records;      /* writer_busy_records */
	char *archive_dir; /* NULL: no archive */
	const struct jose_key *key;
	char *sign_header;
	uint8_t pepper[AUDIT_PEPPER_LEN];

	/* the journal thread's */
	struct journal jn;
	struct buf jbuf, jpay;

	/* the writer thread's */
	sqlite3 *db;
	sqlite3_stmt *ins_record, *ins_rows, *ins_subtree, *ins_ckpt, *set_mark;
	/* records appended but not yet inserted: ROWS_PER_INSERT go in one
	 * multi-row INSERT (a third less work per row in SQLite than one
	 * statement each); the rest at the end of the transaction */
	struct row {
		int64_t id;
		const struct pending *p;
		uint8_t leaf[MERKLE_HASH_LEN];
		struct buf body;
	} rows[ROWS_PER_INSERT];
	size_t nrows;
	struct tree_src *tree;
	struct merkle_compact mc;
	struct tiers tiers;
	uint64_t signed_size;     /* size of this stream's last checkpoint */
	bool last_final;          /* ... and it was a closing one */
	int64_t unsigned_since;   /* monotonic us when the tree first outgrew it */
	int64_t next_prune;       /* monotonic us */
	bool disk_full;           /* the last commit() failed on a full disk */
	uint64_t jseq_in_db;      /* published as applied_jseq */
	uint64_t prune_below, prune_cleared;
	bool prune_active;

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t journal_cv; /* the journal thread waits for records */
	bool journal_idle;        /* ... and is waiting on journal_cv now */
	pthread_cond_t work_cv;   /* the writer waits for journaled records */
	bool writer_idle;         /* ... and is waiting on work_cv now */
	pthread_cond_t applied_cv; /* the writer has inserted records */
	/*
	 * Producers wait for durability on done_cv[g & 1], g the number of the
	 * batch that will hold their ticket: a commit wakes only the waiters
	 * it satisfied, not those still queued for the next one.
	 */
	pthread_cond_t done_cv[2];
	struct pending **q;
	size_t qhead, qcount;
	int64_t q_since;          /* monotonic us when the queue last became non-empty */
	uint64_t wanted;          /* the highest ticket someone waits for */
	uint64_t enq;             /* tickets handed out */
	uint64_t gen;             /* batches taken */
	uint64_t inflight_end;    /* last ticket of the batch being written */
	uint64_t durable;         /* last ticket on disk (in the journal) */
	/* journaled records the writer has yet to insert, oldest first */
	struct pending *ready, **ready_tail;
	size_t ready_count;
	int64_t ready_since;      /* monotonic us when 'ready' last became non-empty */
	int hurry;                /* threads waiting for 'applied': the writer does not linger */
	size_t delay_n;           /* the journal waits for this many queued records (0: it does not) */
	bool busy;                /* the writer's last transaction was big: it lingers */
	uint64_t applied;         /* last ticket in audit.db */
	uint64_t applied_jseq;    /* last journal entry in audit.db */
	bool journal_done;        /* the journal thread has ended */
	uint64_t journal_us;      /* time the journal thread spent writing and syncing */
	uint64_t rejected, rejected_unreported;
	uint64_t commits, inserts, checkpoints, size_pub;
	uint64_t write_us, sync_us;       /* published from the writer's own counters */
	uint64_t write_us_local, sync_us_local;
	uint64_t checkpoints_local; /* the writer's count, published as 'checkpoints' */
	bool stopping;
	enum err failed;
	char failmsg[256];
	uint64_t prune_req, prune_done, prune_count;
	enum err prune_err;
	char prune_msg[256];
	/* the writer's: why the last retention run could not archive */
	enum err prune_soft;
	char prune_soft_msg[256];

	pthread_t thread, jthread;
	bool started, jstarted;
	/* audit_notify(): registrations the notifier thread answers, under mu */
	pthread_t notifier;
	bool notifier_started, notify_stop;
	pthread_cond_t notify_cv;
	struct audit_notice *notices;
	int64_t notify_wake;      /* when the notifier wakes on its own (monotonic us), under mu */
	uint64_t notifier_wakes;  /* under mu */
	bool in_thread;           /* the writer thread runs: begin() waits out a lock */
};

const uint8_t *audit_pepper(const struct audit *a)
{
	return a->pepper;
}

const char *audit_node(const struct audit *a)
{
	return a->node;
}

/* ---- producers ------------------------------------------------------------- */

static char *put(char **p, const char *s)
{
	char *at;
	size_t n;

	if (!s || !*s)
		return NULL;
	n = strlen(s) + 1;
	at = *p;
	memcpy(at, s, n);
	*p += n;
	return at;
}

static size_t slen(const char *s)
{
	return s && *s ? strlen(s) + 1 : 0;
}

/* The fixed part of a journal payload (see payload_put()). */
#define PAYLOAD_FIXED 16

static size_t payload_size(const struct pending *p)
{
	const char *cols[] = {p->patient, p->agent, p->client, p->request, p->trace};
	size_t n = PAYLOAD_FIXED + p->tail_len + 1 + strlen(audit_type_name(p->type)) + 1;

	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		n += cols[i] ? strlen(cols[i]) + 1 : 1;
	return n;
}

static struct pending *pending_new(const struct audit_event *ev, int64_t time_ms,
				   const struct buf *tail)
{
	/* the agent column: the username, else the user id */
	const char *agent = ev->agent.username && *ev->agent.username ? ev->agent.username
								     : ev->agent.user_id;
	size_t extra = slen(ev->patient) + slen(agent) + slen(ev->agent.client_id) +
		       slen(ev->correlation.request_id) +
		       slen(ev->correlation.trace_id);
	struct pending *p = xmalloc(sizeof(*p) + tail->len + 1 + extra);
	char *w = p->mem + tail->len + 1;

	memcpy(p->mem, tail->data, tail->len + 1);
	p->tail_len = tail->len;
	p->time_ms = time_ms;
	p->type = ev->type;
	p->outcome = ev->outcome;
	p->patient = put(&w, ev->patient);
	p->agent = put(&w, agent);
	p->client = put(&w, ev->agent.client_id);
	p->request = put(&w, ev->correlation.request_id);
	p->trace = put(&w, ev->correlation.trace_id);
	p->entry_size = journal_entry_size(payload_size(p));
	return p;
}

static size_t linger_max(const struct audit *a)
{
	return a->queue_max / 4 < LINGER_RECORDS ? a->queue_max / 4 + 1 : LINGER_RECORDS;
}

/* Someone waits for 'ticket' (under mu): a lingering journal thread writes now. */
static void want(struct audit *a, uint64_t ticket)
{
	if (ticket > a->wanted) {
		a->wanted = ticket;
		if (a->journal_idle && (!a->delay_n || a->qcount >= a->delay_n))
			pthread_cond_signal(&a->journal_cv);
	}
}

enum err audit_record(struct audit *a, const struct audit_event *ev, uint64_t *ticket,
		      struct ctx *c)
{
	struct buf tail = BUF_INIT(AUDIT_RECORD_MAX);
	struct pending *p = NULL;
	int64_t t;
	enum err e;

	if (ticket)
		*ticket = 0;
	if (!a)
		return ctx_errorf(c, ERR_IO, "audit log is not open");
	if (ev && (ev->type == AUDIT_SYSTEM_BACKLOG || ev->type == AUDIT_SYSTEM_PRUNE))
		return ctx_errorf(c, ERR_INVALID, "'%s' events are written by the audit log itself",
				  audit_type_name(ev->type));
	t = ev && ev->time_ms ? ev->time_ms : clock_now_ms();
	if ((e = event_serialize_tail(ev, a->node, t, &tail, c)))
		goto out;
	p = pending_new(ev, t, &tail);
	pthread_mutex_lock(&a->mu);
	if (a->failed || a->stopping) {
		e = ctx_errorf(c, ERR_IO, "audit log unavailable: %s",
			       a->failed ? a->failmsg : "closing");
	} else if (a->qcount >= a->queue_max) {
		a->rejected++;
		a->rejected_unreported++;
		e = ctx_errorf(c, ERR_BUSY, "audit queue is full (%zu records waiting)", a->qcount);
	} else {
		a->q[(a->qhead + a->qcount) % a->queue_max] = p;
		if (a->qcount++ == 0)
			a->q_since = clock_mono_us();
		p = NULL;
		a->enq++;
		if (ticket) {
			/* a caller that takes a ticket will wait for it: no lingering */
			*ticket = a->enq;
			if (a->durability == AUDIT_SYNC)
				want(a, a->enq);
		}
		/* the first record sets the journal's deadline; the rest wait with it */
		if (a->journal_idle && (a->qcount == 1 || a->qcount >= linger_max(a)))
			pthread_cond_signal(&a->journal_cv);
	}
	pthread_mutex_unlock(&a->mu);
out:
	free(p);
	buf_release(&tail);
	return e;
}

static void abs_deadline(struct timespec *ts, int64_t mono_us)
{
	ts->tv_sec = (time_t)(mono_us / 1000000);
	ts->tv_nsec = (long)(mono_us % 1000000) * 1000;
}

enum err audit_wait(struct audit *a, uint64_t ticket, struct ctx *c)
{
	int64_t deadline = clock_mono_us() + AUDIT_WAIT_MS * 1000LL;
	struct timespec ts;
	enum err e = ERR_OK;

	if (!a)
		return ctx_errorf(c, ERR_IO, "audit log is not open");
	ts.tv_sec = (time_t)(deadline / 1000000);
	ts.tv_nsec = (long)(deadline % 1000000) * 1000;
	pthread_mutex_lock(&a->mu);
	if (a->durability == AUDIT_SYNC && a->durable < ticket)
		want(a, ticket);
	if (a->durability == AUDIT_SYNC)
		while (a->durable < ticket && !a->failed) {
			uint64_t g = ticket <= a->inflight_end ? a->gen : a->gen + 1;
			if (pthread_cond_timedwait(&a->done_cv[g & 1], &a->mu, &ts) == ETIMEDOUT &&
			    a->durable < ticket && !a->failed) {
				e = ctx_errorf(c, ERR_BUSY,
					       "audit record not durable after %d ms (the audit log is"
					       " locked or stalled)",
					       AUDIT_WAIT_MS);
				goto out;
			}
		}
	if ((a->durability == AUDIT_SYNC && a->durable < ticket) ||
	    (a->durability == AUDIT_ASYNC && a->failed))
		e = ctx_errorf(c, ERR_IO, "audit record not written: %s", a->failmsg);
out:
	pthread_mutex_unlock(&a->mu);
	return e;
}

enum err audit_settle(struct audit *a, int timeout_ms, struct ctx *c)
{
	struct timespec ts;
	uint64_t target;
	enum err e = ERR_OK;

	if (!a)
		return ctx_errorf(c, ERR_IO, "audit log is not open");
	abs_deadline(&ts, clock_mono_us() + timeout_ms * 1000LL);
	pthread_mutex_lock(&a->mu);
	target = a->enq;
	if (a->applied < target && !a->failed) {
		/* no lingering on the way: the journal writes now, the writer inserts now */
		want(a, target);
		a->hurry++;
		if (a->writer_idle)
			pthread_cond_signal(&a->work_cv);
		while (a->applied < target && !a->failed)
			if (pthread_cond_timedwait(&a->applied_cv, &a->mu, &ts) == ETIMEDOUT &&
			    a->applied < target && !a->failed) {
				e = ctx_errorf(c, ERR_BUSY,
					       "audit records not in the log after %d ms (the audit"
					       " log is locked or stalled)",
					       timeout_ms);
				break;
			}
		a->hurry--;
	}
	if (!e && a->applied < target)
		e = ctx_errorf(c, ERR_IO, "audit log failed: %s", a->failmsg);
	pthread_mutex_unlock(&a->mu);
	return e;
}

enum err audit_notify(struct audit *a, uint64_t ticket, struct audit_notice *n, bool *pending,
		      struct ctx *c)
{
	enum err e = ERR_OK;

	*pending = false;
	if (!a)
		return ctx_errorf(c, ERR_IO, "audit log is not open");
	pthread_mutex_lock(&a->mu);
	if (a->failed)
		e = ctx_errorf(c, ERR_IO, "audit record not written: %s", a->failmsg);
	else if (a->durability == AUDIT_SYNC && a->durable < ticket) {
		if (!a->notifier_started || a->notify_stop) {
			e = ctx_errorf(c, ERR_IO, "audit log is closing");
		} else {
			*pending = true;
			want(a, ticket);
			if (n) {
				n->ticket = ticket;
				n->deadline = clock_mono_us() + AUDIT_WAIT_MS * 1000LL;
				n->result = ERR_OK;
				n->next = a->notices;
				a->notices = n;
				/*
				 * The notifier sleeps until the earliest deadline it
				 * knows of (the journal thread answers what its writes
				 * make durable): wake it only if this deadline comes
				 * first.  Deadlines are all AUDIT_WAIT_MS after their
				 * registration, so that is rare; a wake-up on every
				 * registration was a futex call and a thread switch on
				 * every audited read.
				 */
				if (n->deadline < a->notify_wake)
					pthread_cond_signal(&a->notify_cv);
			}
		}
	}
	pthread_mutex_unlock(&a->mu);
	return e;
}

/*
 * Detach the notices that are settled now (under mu): their record is
 * durable, the log failed or closes, or their deadline passed.  '*wake'
 * (may be NULL) becomes the earliest deadline of those left, if earlier.
 */
static struct audit_notice *notices_take(struct audit *a, int64_t now, int64_t *wake)
{
	struct audit_notice *done = NULL, **pp = &a->notices, *n;

	while ((n = *pp)) {
		if (n->ticket <= a->durable) {
			n->result = ERR_OK;
		} else if (a->failed || a->notify_stop) {
			n->result = ERR_IO;
		} else if (now >= n->deadline) {
			n->result = ERR_BUSY;
		} else {
			if (wake && n->deadline < *wake)
				*wake = n->deadline;
			pp = &n->next;
			continue;
		}
		*pp = n->next;
		n->next = done;
		done = n;
	}
	return done;
}

/* Call the notices' functions (without mu: they may take other locks, and free n). */
static void notices_answer(struct audit_notice *done)
{
	struct audit_notice *n, *next;

	for (n = done; n; n = next) {
		next = n->next;
		n->fn(n, n->result);
	}
}

/*
 * The notifier thread: answers audit_notify() registrations when the log
 * fails, when it closes and when AUDIT_WAIT_MS have passed -- the last
 * even while the journal is stuck in a sync, which is why this is not the
 * journal's job.  Those a journal write makes durable, the journal thread
 * answers right after the write.
 */
static void *notifier_main(void *arg)
{
	struct audit *a = arg;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		int64_t now = clock_mono_us(), wake = now + 1000000;
		struct audit_notice *done = notices_take(a, now, &wake);
		struct timespec ts;

		if (done) {
			pthread_mutex_unlock(&a->mu);
			notices_answer(done);
			pthread_mutex_lock(&a->mu);
			continue;
		}
		if (a->notify_stop)
			break;
		a->notify_wake = wake;
		abs_deadline(&ts, wake);
		pthread_cond_timedwait(&a->notify_cv, &a->mu, &ts);
		/* running: registrations made until the next scan are in it */
		a->notify_wake = INT64_MAX;
		a->notifier_wakes++;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

enum err audit_record_sync(struct audit *a, const struct audit_event *ev, struct ctx *c)
{
	uint64_t ticket;
	enum err e = audit_record(a, ev, &ticket, c);

	return e ? e : audit_wait(a, ticket, c);
}

void audit_stats(struct audit *a, struct audit_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	out->records = a->size_pub;
	out->checkpoints = a->checkpoints;
	out->commits = a->commits;
	out->inserts = a->inserts;
	out->write_us = a->write_us;
	out->sync_us = a->sync_us;
	out->journal_us = a->journal_us;
	out->unapplied = (size_t)(a->durable - a->applied);
	out->rejected = a->rejected;
	out->notifier_wakes = a->notifier_wakes;
	out->queued = a->qcount;
	out->failed = a->failed != ERR_OK;
	pthread_mutex_unlock(&a->mu);
}

/* ---- the writer thread: appending ------------------------------------------- */

static enum err emit_subtree(void *arg, int level, uint64_t idx, const uint8_t hash[HL])
{
	struct audit *a = arg;
	sqlite3_stmt *st = a->ins_subtree;
	int rc;

	sqlite3_bind_text(st, 1, a->node, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, level);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)idx);
	sqlite3_bind_blob(st, 4, hash, HL, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? ERR_OK : ERR_IO;
}

static void bind_row(sqlite3_stmt *st, int at, const struct row *r)
{
	const struct pending *p = r->p;

	sqlite3_bind_int64(st, at + 1, r->id);
	sqlite3_bind_int64(st, at + 2, p->time_ms);
	sqlite3_bind_text(st, at + 3, audit_type_name(p->type), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, at + 4, p->outcome);
	adb_bind_text(st, at + 5, p->patient);
	adb_bind_text(st, at + 6, p->agent);
	adb_bind_text(st, at + 7, p->client);
	adb_bind_text(st, at + 8, p->request);
	adb_bind_text(st, at + 9, p->trace);
	sqlite3_bind_blob(st, at + 10, r->leaf, MERKLE_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, at + 11, r->body.data, (int)r->body.len, SQLITE_STATIC);
}

/* Insert the appended rows (inside the writer's transaction). */
static enum err flush_rows(struct audit *a, struct ctx *c)
{
	size_t n = a->nrows;
	int rc = SQLITE_DONE;

	a->nrows = 0;
	if (n == ROWS_PER_INSERT) {
		for (size_t i = 0; i < n; i++)
			bind_row(a->ins_rows, (int)i * 11, &a->rows[i]);
		rc = sqlite3_step(a->ins_rows);
		sqlite3_reset(a->ins_rows);
		sqlite3_clear_bindings(a->ins_rows);
	} else {
		for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
			bind_row(a->ins_record, 0, &a->rows[i]);
			rc = sqlite3_step(a->ins_record);
			sqlite3_reset(a->ins_record);
			sqlite3_clear_bindings(a->ins_record);
		}
	}
	if (rc != SQLITE_DONE)
		return adb_fail(c, ERR_IO, a->db, "cannot append to the audit log");
	return ERR_OK;
}

/*
 * Append one record (inside the writer's transaction): its body, leaf,
 * place in the tree and block roots.  The row itself is inserted by
 * flush_rows(), at the latest before COMMIT; 'p' must live until then.
 */
static enum err append(struct audit *a, const struct pending *p, struct ctx *c)
{
	uint64_t seq = a->mc.size;
	struct row *r;
	enum err e;

	if (seq >= AUDIT_SEQ_LIMIT)
		return ctx_errorf(c, ERR_TOOBIG, "audit stream '%s' is full", a->node);
	if (a->nrows == ROWS_PER_INSERT && (e = flush_rows(a, c)))
		return e;
	r = &a->rows[a->nrows];
	buf_reset(&r->body);
	audit_record_prefix(&r->body, seq);
	buf_add(&r->body, p->mem, p->tail_len);
	if (r->body.err)
		return ctx_errorf(c, ERR_TOOBIG, "audit record too large");
	merkle_leaf_hash(r->body.data, r->body.len, r->leaf);
	r->id = audit_rid(a->no, seq);
	r->p = p;
	a->nrows++;
	if ((e = merkle_compact_append(&a->mc, r->leaf)))
		return ctx_errorf(c, e, "audit log is full");
	if ((e = tiers_append(&a->tiers, seq, r->leaf, emit_subtree, a)))
		return adb_fail(c, ERR_IO, a->db, "cannot append to the audit log");
	if (a->signed_size + 1 == a->mc.size)
		a->unsigned_since = clock_mono_us();
	return ERR_OK;
}

/* Append an event the log writes itself (backlog, prune). */
static enum err append_internal(struct audit *a, enum audit_type type, int outcome,
				const char *code, const char *query, struct ctx *c)
{
	struct audit_entity en = {.type = "AuditEvent", .query = query};
	struct audit_event ev = {.type = type, .outcome = outcome, .outcome_code = code,
				 .entities = &en, .n_entities = 1};
	struct buf tail = BUF_INIT(AUDIT_RECORD_MAX);
	struct pending *p;
	int64_t t = clock_now_ms();
	enum err e = event_serialize_tail(&ev, a->node, t, &tail, c);

	if (e) {
		buf_release(&tail);
		return e;
	}
	p = pending_new(&ev, t, &tail);
	e = append(a, p, c);
	if (!e)
		e = flush_rows(a, c); /* before 'p' goes */
	free(p);
	buf_release(&tail);
	return e;
}

/*
 * Sign and store a checkpoint of the current tree (inside a transaction).
 * 'final' marks the one written at close; it replaces a plain checkpoint
 * of the same size.
 */
static enum err checkpoint(struct audit *a, bool final, struct ctx *c)
{
	struct buf payload = BUF_INIT(1024), jws = BUF_INIT(4096), compact = BUF_INIT(4096);
	uint8_t root[HL];
	int64_t now = clock_now_ms();
	sqlite3_stmt *st = a->ins_ckpt;
	enum err e = ERR_OK;
	int rc;

	if (a->mc.size == 0 || a->mc.size < a->signed_size ||
	    (a->mc.size == a->signed_size && (!final || a->last_final)))
		return ERR_OK;
	merkle_compact_root(&a->mc, root);
	ckpt_payload(a->node, a->mc.size, root, now, final, &payload);
	merkle_compact_serialize(&a->mc, &compact);
	if (payload.err || compact.err) {
		e = ctx_errorf(c, ERR_TOOBIG, "checkpoint too large");
		goto out;
	}
	if (a->key &&
	    (e = jose_jws_sign_raw(a->key, a->sign_header, strlen(a->sign_header), payload.data,
				   payload.len, &jws, c)))
		goto out;
	sqlite3_bind_text(st, 1, a->node, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->mc.size);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_blob(st, 4, root, HL, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, compact.data, (int)compact.len, SQLITE_STATIC);
	adb_bind_text(st, 6, a->key ? jose_key_kid(a->key) : NULL);
	if (a->key)
		sqlite3_bind_text(st, 7, jws.data, (int)jws.len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int(st, 8, final);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		e = adb_fail(c, ERR_IO, a->db, "cannot write an audit checkpoint");
		goto out;
	}
	a->signed_size = a->mc.size;
	a->last_final = final;
	a->checkpoints_local++;
out:
	buf_release(&payload);
	buf_release(&jws);
	buf_release(&compact);
	return e;
}

static bool checkpoint_due(const struct audit *a, bool stopping)
{
	if (a->mc.size <= a->signed_size)
		return false;
	return stopping || a->mc.size - a->signed_size >= a->ckpt_records ||
	       clock_mono_us() - a->unsigned_since >= (int64_t)a->ckpt_ms * 1000;
}

/*
 * BEGIN IMMEDIATE.  Another connection holding the write lock past the
 * busy timeout (another node on the same file, an operator's sqlite3
 * shell, a backup) is not a storage failure: nothing has been written, so
 * the running writer waits for the lock instead of stopping for good.
 * Meanwhile the queue fills (producers get ERR_BUSY) and waiters give up
 * after AUDIT_WAIT_MS: disclosures get 503 until the lock is released.  A
 * closing writer, and audit_open(), still give up.
 */
static enum err begin(struct audit *a, struct ctx *c)
{
	bool warned = false;

	for (;;) {
		int rc = sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		bool stopping;

		if (rc == SQLITE_OK) {
			if (warned)
				log_warn("audit: the audit log is writable again");
			return ERR_OK;
		}
		pthread_mutex_lock(&a->mu);
		stopping = a->stopping;
		pthread_mutex_unlock(&a->mu);
		if ((rc & 0xff) != SQLITE_BUSY || !a->in_thread || stopping)
			return adb_fail(c, ERR_IO, a->db, "audit log");
		if (!warned)
			log_warn("audit: the audit log is locked by another connection; waiting for it"
				 " (disclosures get 503 meanwhile)");
		warned = true;
	}
}

static enum err commit(struct audit *a, enum err e, struct ctx *c)
{
	a->disk_full = false;
	if (!e)
		e = flush_rows(a, c);
	a->nrows = 0;
	if (!e)
		e = adb_exec(a->db, "COMMIT", c);
	if (e) {
		a->disk_full = (sqlite3_errcode(a->db) & 0xff) == SQLITE_FULL;
		sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return e;
}

/* The writer's tree before a transaction, to go back to if it is rolled back. */
struct undo {
	uint64_t size, signed_size, checkpoints;
	bool last_final;
	int64_t unsigned_since;
};

static void undo_mark(const struct audit *a, struct undo *u)
{
	*u = (struct undo){a->mc.size, a->signed_size, a->checkpoints_local, a->last_final,
			   a->unsigned_since};
}

/* The transaction was rolled back: the tree as the database has it. */
static enum err undo_to(struct audit *a, const struct undo *u, struct ctx *c)
{
	enum err e;

	a->signed_size = u->signed_size;
	a->checkpoints_local = u->checkpoints;
	a->last_final = u->last_final;
	a->unsigned_since = u->unsigned_since;
	a->nrows = 0;
	tree_src_free(a->tree);
	a->tree = tree_src_new(a->db, a->node);
	e = tree_compact(a->tree, u->size, &a->mc, c);
	return e ? e : tiers_load(&a->tiers, a->tree, u->size, c);
}

/*
 * The disk is full: wait FULL_RETRY_MS before writing again.  ERR_IO when
 * the log is closing meanwhile (it cannot close cleanly without room).
 */
static enum err full_wait(struct audit *a, bool *warned, struct ctx *c)
{
	struct timespec ts;
	bool stopping;

	if (!*warned)
		log_warn("audit: the disk is full: records wait and disclosures get 503;"
			 " writing resumes when there is room");
	*warned = true;
	pthread_mutex_lock(&a->mu);
	abs_deadline(&ts, clock_mono_us() + FULL_RETRY_MS * 1000LL);
	if (!a->stopping)
		pthread_cond_timedwait(&a->work_cv, &a->mu, &ts);
	stopping = a->stopping;
	pthread_mutex_unlock(&a->mu);
	return stopping ? ctx_errorf(c, ERR_IO, "the audit log is closing and its disk is full")
			: ERR_OK;
}

/* The meta row that names the last journal entry audit.db holds. */
static void mark_name(const struct audit *a, char *out, size_t n)
{
	snprintf(out, n, "journal:%s", a->node);
}

/* Record, in the writer's transaction, that the journal is in up to 'jseq'. */
static enum err set_mark(struct audit *a, uint64_t jseq, struct ctx *c)
{
	char name[AUDIT_NODE_MAX + 16];
	int rc;

	mark_name(a, name, sizeof(name));
	sqlite3_bind_text(a->set_mark, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(a->set_mark, 2, (sqlite3_int64)jseq);
	rc = sqlite3_step(a->set_mark);
	sqlite3_reset(a->set_mark);
	return rc == SQLITE_DONE ? ERR_OK : adb_fail(c, ERR_IO, a->db, "cannot append to the audit log");
}

/* One group commit: the batch, a backlog record if needed, a checkpoint if due. */
static enum err write_batch(struct audit *a, struct pending **batch, size_t n, uint64_t rejected,
			    bool stopping, struct ctx *c)
{
	int64_t t0 = clock_mono_us(), t1;
	enum err e = begin(a, c);

	if (e)
		return e;
	if (rejected) {
		char q[64];
		snprintf(q, sizeof(q), "rejected=%llu", (unsigned long long)rejected);
		e = append_internal(a, AUDIT_SYSTEM_BACKLOG, AUDIT_SERIOUS, "queue_full", q, c);
	}
	for (size_t i = 0; i < n && !e; i++) {
		e = append(a, batch[i], c);
		/* every ckpt_records records exactly, however the batches fall */
		if (!e && a->mc.size - a->signed_size >= a->ckpt_records)
			e = checkpoint(a, false, c);
	}
	if (!e && n)
		e = set_mark(a, batch[n - 1]->jseq, c);
	if (!e && checkpoint_due(a, stopping))
		e = checkpoint(a, stopping, c);
	if (!e)
		e = flush_rows(a, c);
	t1 = clock_mono_us();
	e = commit(a, e, c);
	a->write_us_local += (uint64_t)(t1 - t0);
	a->sync_us_local += (uint64_t)(clock_mono_us() - t1);
	if (!e && n)
		a->jseq_in_db = batch[n - 1]->jseq;
	return e;
}

/* ---- retention ---------------------------------------------------------------- */

/* Write records [lo, hi) to DATA/audit-archive/NODE-LO-HI.ndjson, synced. */
static enum err archive(struct audit *a, uint64_t lo, uint64_t hi, struct ctx *c)
{
	struct buf path = BUF_INIT(4096);
	struct audit_filter f = AUDIT_FILTER_INIT;
	enum err e = ERR_OK;
	int fd = -1;

	if (mkdir(a->archive_dir, 0700) != 0 && errno != EEXIST) {
		e = ctx_errorf(c, ERR_IO, "cannot create '%s': %s", a->archive_dir, strerror(errno));
		goto out;
	}
	buf_addf(&path, "%s/%s-%llu-%llu.ndjson", a->archive_dir, a->node, (unsigned long long)lo,
		 (unsigned long long)(hi - 1));
	if (path.err) {
		e = ctx_errorf(c, ERR_TOOBIG, "archive path too long");
		goto out;
	}
	fd = open(path.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = ctx_errorf(c, ERR_IO, "cannot create '%s': %s", path.data, strerror(errno));
		goto out;
	}
	f.node = a->node;
	if ((e = adb_export(a->db, a->tree, &f, lo, hi, fd, NULL, c)))
		goto out;
	if (fsync(fd) != 0) {
		e = ctx_errorf(c, ERR_IO, "cannot sync '%s': %s", path.data, strerror(errno));
		goto out;
	}
	e = adb_fsync_path(a->archive_dir, O_RDONLY | O_DIRECTORY, c);
out:
	if (fd >= 0)
		close(fd);
	buf_release(&path);
	return e;
}

static enum err save_prune(struct audit *a, struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e = adb_prepare(a->db,
				 "INSERT INTO prune(node, below, cleared) VALUES (?1, ?2, ?3)"
				 " ON CONFLICT(node) DO UPDATE SET below = ?2, cleared = ?3",
				 &st, c);

	if (e)
		return e;
	sqlite3_bind_text(st, 1, a->node, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->prune_below);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)a->prune_cleared);
	if (sqlite3_step(st) != SQLITE_DONE)
		e = adb_fail(c, ERR_IO, a->db, "cannot record pruning");
	sqlite3_finalize(st);
	return e;
}

/*
 * Decide what retention removes: the longest prefix of signed records
 * older than the cutoff.  Archive it, then append a signed
 * system.audit-prune record that allows it, and start clearing.
 */
static enum err prune_start(struct audit *a, struct ctx *c)
{
	int64_t cutoff;
	uint64_t below = a->signed_size, old;
	sqlite3_stmt *st = NULL;
	enum err e;
	char q[64];

	if (a->retention_days == AUDIT_RETAIN_FOREVER)
		return ERR_OK;
	cutoff = clock_now_ms() - (int64_t)a->retention_days * DAY_MS;
	e = adb_prepare(a->db,
			"SELECT id FROM record WHERE id >= ?1 AND id < ?2 AND time_ms >= ?3"
			" ORDER BY id LIMIT 1",
			&st, c);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, audit_rid(a->no, a->prune_below));
	sqlite3_bind_int64(st, 2, audit_rid(a->no, a->signed_size));
	sqlite3_bind_int64(st, 3, cutoff);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		below = audit_rid_seq(sqlite3_column_int64(st, 0));
		break;
	case SQLITE_DONE:
		break;
	default:
		e = adb_fail(c, ERR_IO, a->db, "audit retention");
	}
	sqlite3_finalize(st);
	a->prune_soft = ERR_OK;
	a->prune_soft_msg[0] = '\0';
	if (e)
		return e;
	if (below <= a->prune_below) {
		/* nothing new; clearing resumes if a full disk paused it */
		a->prune_active = a->prune_cleared < a->prune_below;
		return ERR_OK;
	}
	if (a->archive_dir) {
		/* no archive, no pruning; but the log itself is fine: keep
		 * writing, say why, and try again at the next interval */
		struct ctx ac = CTX_INIT;
		enum err ae = archive(a, a->prune_below, below, &ac);
		if (ae) {
			a->prune_soft = ae;
			str_copy(a->prune_soft_msg, ac.msg, sizeof(a->prune_soft_msg));
			log_error("audit: retention postponed: %s", ac.msg);
			return ERR_OK;
		}
	}
	snprintf(q, sizeof(q), "below=%llu", (unsigned long long)below);
	if ((e = begin(a, c)))
		return e;
	old = a->prune_below;
	e = append_internal(a, AUDIT_SYSTEM_PRUNE, AUDIT_OK, NULL, q, c);
	if (!e) {
		a->prune_below = below;
		e = save_prune(a, c);
	}
	if (!e)
		e = checkpoint(a, false, c);
	if ((e = commit(a, e, c))) {
		a->prune_below = old; /* rolled back */
		return e;
	}
	a->prune_active = a->prune_cleared < a->prune_below;
	log_info("audit: pruning records %llu to %llu of stream '%s' (older than %u days)",
		 (unsigned long long)a->prune_cleared, (unsigned long long)below - 1, a->node,
		 a->retention_days);
	return ERR_OK;
}

/* Clear the bodies of up to PRUNE_CHUNK records; returns how many. */
static enum err prune_chunk(struct audit *a, uint64_t *done, struct ctx *c)
{
	uint64_t to = a->prune_cleared + PRUNE_CHUNK, old = a->prune_cleared;
	sqlite3_stmt *st = NULL;
	enum err e;

	*done = 0;
	if (to > a->prune_below)
		to = a->prune_below;
	if ((e = begin(a, c)))
		return e;
	e = adb_prepare(a->db,
			"UPDATE record SET body = NULL, patient = NULL, agent = NULL, client = NULL,"
			" request_id = NULL, trace_id = NULL"
			" WHERE id >= ?1 AND id < ?2 AND body IS NOT NULL",
			&st, c);
	if (!e) {
		sqlite3_bind_int64(st, 1, audit_rid(a->no, a->prune_cleared));
		sqlite3_bind_int64(st, 2, audit_rid(a->no, to));
		if (sqlite3_step(st) != SQLITE_DONE)
			e = adb_fail(c, ERR_IO, a->db, "audit retention");
		else
			*done = (uint64_t)sqlite3_changes(a->db);
		sqlite3_finalize(st);
	}
	if (!e) {
		a->prune_cleared = to;
		e = save_prune(a, c);
	}
	if ((e = commit(a, e, c))) {
		a->prune_cleared = old; /* rolled back */
		return e;
	}
	a->prune_active = a->prune_cleared < a->prune_below;
	return ERR_OK;
}

/*
 * Retention could not commit because the disk is full: the log takes
 * precedence.  Go back to the tree the database holds ('u' when the
 * transaction appended), pause clearing until the next interval, and
 * answer a waiting audit_prune() with ERR_BUSY.
 */
static enum err prune_full(struct audit *a, const struct undo *u, struct ctx *c)
{
	enum err e = u ? undo_to(a, u, c) : ERR_OK;

	a->prune_active = false;
	a->prune_soft = ERR_BUSY;
	str_copy(a->prune_soft_msg, "the disk is full; retention runs again when there is room",
		 sizeof(a->prune_soft_msg));
	log_warn("audit: retention postponed: the disk is full");
	return e;
}

/* ---- the writer thread: the loop ---------------------------------------------- */

static void fail(struct audit *a, enum err e, const struct ctx *c)
{
	a->failed = e ? e : ERR_IO;
	str_copy(a->failmsg, c->msg[0] ? c->msg : err_str(a->failed), sizeof(a->failmsg));
	log_error("audit: writer stopped: %s", a->failmsg);
	while (a->qcount) {
		free(a->q[a->qhead]);
		a->q[a->qhead] = NULL;
		a->qhead = (a->qhead + 1) % a->queue_max;
		a->qcount--;
	}
	pthread_cond_broadcast(&a->done_cv[0]);
	pthread_cond_broadcast(&a->done_cv[1]);
	pthread_cond_broadcast(&a->applied_cv);
	pthread_cond_signal(&a->notify_cv);
	pthread_cond_signal(&a->journal_cv);
	pthread_cond_signal(&a->work_cv);
	if (a->prune_req != a->prune_done) {
		a->prune_err = a->failed;
		str_copy(a->prune_msg, a->failmsg, sizeof(a->prune_msg));
		a->prune_done = a->prune_req;
	}
}

/* ---- the journal thread ------------------------------------------------------ */

/*
 * A queued record as a journal entry's payload: time, outcome and the
 * tail's length (this machine's byte order: the journal is read back only
 * where it was written), the tail and a NUL, then the type's name (not its
 * number, which another version may give another type), patient, agent,
 * client, request id and trace id, each NUL-terminated ("" when absent).
 */
static void payload_put(struct buf *b, const struct pending *p)
{
	int64_t t = p->time_ms;
	uint32_t tlen = (uint32_t)p->tail_len;
	int32_t outcome = p->outcome;
	const char *cols[] = {p->patient, p->agent, p->client, p->request, p->trace};
	const char *type = audit_type_name(p->type);

	buf_reset(b);
	buf_add(b, &t, 8);
	buf_add(b, &outcome, 4);
	buf_add(b, &tlen, 4);
	buf_add(b, p->mem, p->tail_len + 1);
	buf_add(b, type, strlen(type) + 1);
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		buf_add(b, cols[i] ? cols[i] : "", cols[i] ? strlen(cols[i]) + 1 : 1);
}

/* The next NUL-terminated string of [*at, end), NULL when empty; false when unterminated. */
static bool payload_str(char **at, const char *end, const char **out)
{
	char *z = memchr(*at, '\0', (size_t)(end - *at));

	if (!z)
		return false;
	*out = z == *at ? NULL : *at;
	*at = z + 1;
	return true;
}

static enum err payload_get(const uint8_t *d, size_t n, struct pending **out, struct ctx *c)
{
	struct pending *p;
	const char *type = NULL;
	uint32_t tlen;
	enum err e;
	char *at, *end;
	bool ok;

	*out = NULL;
	if (n < PAYLOAD_FIXED + 1)
		return ctx_errorf(c, ERR_IO, "audit journal entry too short");
	memcpy(&tlen, d + 12, 4);
	if (tlen > AUDIT_RECORD_MAX || tlen >= n - PAYLOAD_FIXED || d[PAYLOAD_FIXED + tlen] != '\0')
		return ctx_errorf(c, ERR_IO, "audit journal entry malformed");
	p = xmalloc(sizeof(*p) + n - PAYLOAD_FIXED);
	memset(p, 0, sizeof(*p));
	memcpy(&p->time_ms, d, 8);
	memcpy(&p->outcome, d + 8, 4);
	p->tail_len = tlen;
	memcpy(p->mem, d + PAYLOAD_FIXED, n - PAYLOAD_FIXED);
	at = p->mem + tlen + 1;
	end = p->mem + (n - PAYLOAD_FIXED);
	ok = payload_str(&at, end, &type) && payload_str(&at, end, &p->patient) &&
	     payload_str(&at, end, &p->agent) && payload_str(&at, end, &p->client) &&
	     payload_str(&at, end, &p->request) && payload_str(&at, end, &p->trace) && at == end;
	if (!ok) {
		free(p);
		return ctx_errorf(c, ERR_IO, "audit journal entry malformed");
	}
	p->type = audit_type_parse(type);
	if (p->type == AUDIT_TYPE_NONE) {
		e = ctx_errorf(c, ERR_IO, "audit journal entry of an unknown type '%.64s'",
			       type ? type : "");
		free(p);
		return e;
	}
	*out = p;
	return ERR_OK;
}

enum err journal_payload_check(const uint8_t *d, size_t n, struct ctx *c)
{
	struct pending *p;
	enum err e = payload_get(d, n, &p, c);

	free(p);
	return e;
}

/*
 * Wait until every entry of the file the journal would write next is in
 * audit.db, then write it from its start.  false when the log failed
 * meanwhile.
 */
static bool journal_turn(struct audit *a)
{
	int other = !a->jn.cur;
	bool ok;

	pthread_mutex_lock(&a->mu);
	a->hurry++;
	while (a->applied_jseq < a->jn.last[other] && !a->failed) {
		if (a->writer_idle)
			pthread_cond_signal(&a->work_cv);
		pthread_cond_wait(&a->applied_cv, &a->mu);
	}
	a->hurry--;
	ok = !a->failed;
	pthread_mutex_unlock(&a->mu);
	journal_next_file(&a->jn);
	return ok;
}

/* Journal a batch: one write, one fdatasync. */
static enum err journal_batch(struct audit *a, struct pending **batch, size_t n, size_t bytes,
			      struct ctx *c)
{
	int64_t t0;
	enum err e = ERR_OK;

	if (a->jn.off + bytes > a->jn.cap && !journal_turn(a))
		return ctx_errorf(c, ERR_IO, "audit log failed");
	t0 = clock_mono_us();
	buf_reset(&a->jbuf);
	for (size_t i = 0; i < n && !e; i++) {
		batch[i]->jseq = a->jn.next++;
		payload_put(&a->jpay, batch[i]);
		if (a->jpay.err ||
		    journal_put(&a->jbuf, a->jn.round, batch[i]->jseq, a->jpay.data, a->jpay.len))
			e = ctx_errorf(c, ERR_TOOBIG, "audit record too large for the journal");
	}
	if (!e)
		e = journal_write(&a->jn, a->jbuf.data, a->jbuf.len, c);
	if (!e)
		a->jn.last[a->jn.cur] = batch[n - 1]->jseq;
	a->journal_us += (uint64_t)(clock_mono_us() - t0);
	return e;
}

/*
 * When the journal, which someone waits for, should write: 0 for now, or
 * the moment up to which it waits for company (see the top), setting
 * delay_n.  It waits when the last write held enough waited-for records
 * ('last_n') and the first queued record came while that write ran or
 * just after ('last_done'): under load, not after a quiet spell.  For at
 * most half the queue, which must not fill meanwhile.  Under mu.
 */
static int64_t company_deadline(struct audit *a, size_t last_n, int64_t last_done, int64_t now)
{
	int64_t d = a->q_since + COMMIT_DELAY_US;
	size_t target = last_n < a->queue_max / 2 ? last_n : a->queue_max / 2;

	if (target < COMMIT_SIBLINGS || a->q_since > last_done + COMMIT_DELAY_US ||
	    a->qcount >= target || now >= d)
		return 0;
	a->delay_n = target;
	return d;
}

/*
 * The journal thread: takes what is queued (lingering while no one waits,
 * see the top), journals it, answers its waiters and passes the records
 * on to the writer thread.
 */
static void *journal_main(void *arg)
{
	struct audit *a = arg;
	struct pending **batch = xcalloc(BATCH_MAX, sizeof(*batch));
	size_t last_n = 0;     /* records in the last write, if someone waited for it */
	int64_t last_done = 0; /* when it was durable (monotonic us) */

	pthread_setname_np(pthread_self(), "audit-journal");
	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct ctx c = CTX_INIT;
		struct audit_notice *done;
		size_t n = 0, bytes = 0;
		bool was_empty;
		enum err e;

		for (;;) {
			int64_t now = clock_mono_us(), wake = now + 3600 * 1000000LL;
			struct timespec ts;

			if (a->stopping || a->failed)
				break;
			if (a->qcount) {
				int64_t d = a->q_since + LINGER_US;
				if (a->wanted > a->durable) {
					/* someone waits: write now, or wait a moment for company */
					if (!(d = company_deadline(a, last_n, last_done, now)))
						break;
				} else if (a->qcount >= linger_max(a) || now >= d) {
					break;
				}
				wake = d;
			}
			abs_deadline(&ts, wake);
			a->journal_idle = true;
			pthread_cond_timedwait(&a->journal_cv, &a->mu, &ts);
			a->journal_idle = false;
		}
		if (a->failed || !a->qcount)
			break; /* failed, or closing with nothing left */
		while (n < BATCH_MAX && a->qcount) {
			struct pending *p = a->q[a->qhead];
			if (n && bytes + p->entry_size > a->jn.cap / 4)
				break;
			bytes += p->entry_size;
			batch[n++] = p;
			a->q[a->qhead] = NULL;
			a->qhead = (a->qhead + 1) % a->queue_max;
			a->qcount--;
		}
		a->delay_n = 0;
		last_n = a->wanted > a->durable ? n : 0; /* not a batch of lingering records */
		a->gen++;
		a->inflight_end = a->durable + n;
		pthread_mutex_unlock(&a->mu);

		e = journal_batch(a, batch, n, bytes, &c);

		pthread_mutex_lock(&a->mu);
		if (e) {
			for (size_t i = 0; i < n; i++)
				free(batch[i]);
			if (!a->failed)
				fail(a, e, &c);
			break;
		}
		last_done = clock_mono_us();
		was_empty = !a->ready;
		if (was_empty)
			a->ready_since = last_done; /* the writer's deadline starts */
		for (size_t i = 0; i < n; i++) {
			batch[i]->next = NULL;
			*a->ready_tail = batch[i];
			a->ready_tail = &batch[i]->next;
		}
		a->ready_count += n;
		a->durable += n;
		a->commits++;
		pthread_cond_broadcast(&a->done_cv[a->gen & 1]);
		if (a->writer_idle && (was_empty || a->ready_count >= WRITER_BATCH || a->hurry))
			pthread_cond_signal(&a->work_cv);
		/* held answers this write made safe go out from here: no thread switch on the way */
		if ((done = a->notices ? notices_take(a, last_done, NULL) : NULL)) {
			pthread_mutex_unlock(&a->mu);
			notices_answer(done);
			pthread_mutex_lock(&a->mu);
		}
	}
	a->journal_done = true;
	pthread_cond_signal(&a->work_cv);
	pthread_mutex_unlock(&a->mu);
	free(batch);
	return NULL;
}

static void *writer_main(void *arg)
{
	struct audit *a = arg;
	struct pending **batch = xcalloc(BATCH_MAX, sizeof(*batch));
	bool full = false; /* writing waits for room on the disk */

	pthread_setname_np(pthread_self(), "audit-writer");
	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct ctx c = CTX_INIT;
		uint64_t rejected, pruned_now = 0, prune_ticket;
		bool stopping, prune_due;
		struct undo u;
		size_t n = 0;
		enum err e = ERR_OK;

		for (;;) {
			int64_t now = clock_mono_us(), wake = now + 3600 * 1000000LL;
			struct timespec ts;

			if (a->journal_done || a->failed || a->rejected_unreported ||
			    a->prune_active || a->prune_req != a->prune_done || now >= a->next_prune)
				break;
			if (a->ready_count) {
				int64_t d = a->ready_since + a->linger_us;
				if (!a->busy || a->ready_count >= WRITER_BATCH || now >= d || a->hurry)
					break;
				if (d < wake)
					wake = d;
			}
			if (a->mc.size > a->signed_size) {
				int64_t d = a->unsigned_since + (int64_t)a->ckpt_ms * 1000;
				if (now >= d)
					break;
				if (d < wake)
					wake = d;
			}
			if (a->next_prune < wake)
				wake = a->next_prune;
			abs_deadline(&ts, wake);
			a->writer_idle = true;
			pthread_cond_timedwait(&a->work_cv, &a->mu, &ts);
			a->writer_idle = false;
		}
		if (a->failed)
			break; /* the journal thread failed: what it journaled waits for the next start */
		while (n < BATCH_MAX && a->ready) {
			batch[n++] = a->ready;
			a->ready = a->ready->next;
			a->ready_count--;
		}
		if (!a->ready)
			a->ready_tail = &a->ready;
		rejected = a->rejected_unreported;
		a->rejected_unreported = 0;
		stopping = a->journal_done && a->ready_count == 0;
		prune_ticket = a->prune_req;
		prune_due = !stopping && (prune_ticket != a->prune_done ||
					  clock_mono_us() >= a->next_prune);
		pthread_mutex_unlock(&a->mu);

		undo_mark(a, &u);
		if (n || rejected) {
			/* on a full disk, the same batch again until it goes in */
			while ((e = write_batch(a, batch, n, rejected, stopping, &c)) && a->disk_full &&
			       !(e = undo_to(a, &u, &c)) && !(e = full_wait(a, &full, &c)))
				c = (struct ctx)CTX_INIT;
		} else if (checkpoint_due(a, stopping) ||
			   (stopping && a->mc.size && !a->last_final)) {
			/* on a full disk the next round tries again */
			e = commit(a, begin(a, &c) ? ERR_IO : checkpoint(a, stopping, &c), &c);
			if (e && a->disk_full && !(e = undo_to(a, &u, &c)))
				e = full_wait(a, &full, &c);
		}
		if (full && !e && !a->disk_full) {
			log_warn("audit: the disk has room again: writing resumed");
			full = false;
		}
		for (size_t i = 0; i < n; i++)
			free(batch[i]);

		/* tell the waiting first: retention work must not delay them */
		pthread_mutex_lock(&a->mu);
		if (e) {
			fail(a, e, &c);
			break;
		}
		if (n || rejected)
			a->inserts++;
		a->size_pub = a->mc.size;
		a->checkpoints = a->checkpoints_local;
		a->write_us = a->write_us_local;
		a->sync_us = a->sync_us_local;
		if (n) {
			a->busy = n >= a->busy_records;
			a->applied += n;
			a->applied_jseq = a->jseq_in_db;
			pthread_cond_broadcast(&a->applied_cv);
		}
		if (stopping && a->mc.size <= a->signed_size)
			break;
		if (!prune_due && !a->prune_active)
			continue;
		pthread_mutex_unlock(&a->mu);

		if (prune_due && !a->prune_active) {
			a->next_prune = clock_mono_us() + (int64_t)a->prune_interval_ms * 1000;
			undo_mark(a, &u);
			if ((e = prune_start(a, &c)) && a->disk_full)
				e = prune_full(a, &u, &c);
		}
		/* one chunk per round, or all of them when someone waits */
		while (!e && a->prune_active) {
			uint64_t k = 0;
			if ((e = prune_chunk(a, &k, &c)) && a->disk_full)
				e = prune_full(a, NULL, &c);
			pruned_now += k;
			if (prune_ticket == a->prune_done)
				break;
		}

		pthread_mutex_lock(&a->mu);
		if (e) {
			fail(a, e, &c);
			break;
		}
		a->prune_count += pruned_now;
		a->size_pub = a->mc.size;
		a->checkpoints = a->checkpoints_local;
		if (prune_ticket != a->prune_done && !a->prune_active) {
			a->prune_done = prune_ticket;
			a->prune_err = a->prune_soft;
			str_copy(a->prune_msg, a->prune_soft_msg, sizeof(a->prune_msg));
			pthread_cond_broadcast(&a->done_cv[0]);
			pthread_cond_broadcast(&a->done_cv[1]);
		}
	}
	pthread_mutex_unlock(&a->mu);
	free(batch);
	/* the thread's random generator (checkpoint signatures), before the process may exit */
	OPENSSL_thread_stop();
	return NULL;
}

enum err audit_prune(struct audit *a, uint64_t *pruned, struct ctx *c)
{
	enum err e = ERR_OK;
	uint64_t want, before;

	if (pruned)
		*pruned = 0;
	if (!a)
		return ctx_errorf(c, ERR_IO, "audit log is not open");
	pthread_mutex_lock(&a->mu);
	if (a->failed) {
		e = ctx_errorf(c, ERR_IO, "audit log unavailable: %s", a->failmsg);
		goto out;
	}
	before = a->prune_count;
	want = ++a->prune_req;
	pthread_cond_signal(&a->work_cv);
	while (a->prune_done < want)
		pthread_cond_wait(&a->done_cv[0], &a->mu);
	if (a->prune_err)
		e = ctx_errorf(c, a->prune_err, "audit retention failed: %s", a->prune_msg);
	else if (pruned)
		*pruned = a->prune_count - before;
out:
	pthread_mutex_unlock(&a->mu);
	return e;
}

/* ---- open and close ------------------------------------------------------------ */

static enum err query_u64(sqlite3 *db, const char *sql, const char *node, uint64_t *out,
			  struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	enum err e = adb_prepare(db, sql, &st, c);

	if (e)
		return e;
	sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	else
		e = adb_fail(c, ERR_IO, db, "audit log");
	sqlite3_finalize(st);
	return e;
}

static enum err record_signer(struct audit *a, struct ctx *c)
{
	char thumb[JOSE_THUMBPRINT_SIZE];
	const char *kid = jose_key_kid(a->key);
	json_t *jwk = NULL;
	char *text = NULL;
	sqlite3_stmt *st = NULL;
	enum err e;

	if ((e = jose_key_to_jwk(a->key, false, &jwk, c)))
		return e;
	if (!*kid) {
		if ((e = jose_key_thumbprint(a->key, thumb, c)))
			goto out;
		kid = thumb;
	}
	text = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
	if ((e = adb_prepare(a->db,
			     "INSERT INTO signer(kid, jwk, first_ms) VALUES (?, ?, ?)"
			     " ON CONFLICT(kid) DO NOTHING",
			     &st, c)))
		goto out;
	sqlite3_bind_text(st, 1, kid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, clock_now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		e = adb_fail(c, ERR_IO, a->db, "cannot record the audit signing key");
out:
	sqlite3_finalize(st);
	free(text);
	json_decref(jwk);
	return e;
}

/* The last checkpoint of this stream must match the stored tree. */
static enum err check_last_checkpoint(struct audit *a, struct ctx *c)
{
	sqlite3_stmt *st = NULL;
	struct merkle_compact mc;
	uint8_t root[HL];
	enum err e;
	uint64_t size = 0;
	bool have = false;

	if ((e = adb_prepare(a->db,
			     "SELECT size, root, final FROM checkpoint WHERE node = ?"
			     " ORDER BY size DESC LIMIT 1",
			     &st, c)))
		return e;
	sqlite3_bind_text(st, 1, a->node, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 1) == HL) {
		size = (uint64_t)sqlite3_column_int64(st, 0);
		memcpy(root, sqlite3_column_blob(st, 1), HL);
		a->last_final = sqlite3_column_int(st, 2) != 0;
		have = true;
	}
	sqlite3_finalize(st);
	a->signed_size = size;
	if (!have)
		return ERR_OK;
	if (a->last_final && a->mc.size > size)
		return ctx_errorf(c, ERR_IO,
				  "audit stream '%s' has %llu records after the checkpoint its writer"
				  " signed when it closed: run 'veranda audit verify'",
				  a->node, (unsigned long long)(a->mc.size - size));
	if (size > a->mc.size)
		return ctx_errorf(c, ERR_IO,
				  "audit stream '%s' is shorter (%llu) than its last checkpoint (%llu):"
				  " run 'veranda audit verify'",
				  a->node, (unsigned long long)a->mc.size, (unsigned long long)size);
	if ((e = tree_compact(a->tree, size, &mc, c)))
		return e;
	{
		uint8_t now[HL];
		merkle_compact_root(&mc, now);
		if (memcmp(now, root, HL) != 0)
			return ctx_errorf(c, ERR_IO,
					  "audit stream '%s' does not match its last checkpoint:"
					  " run 'veranda audit verify'",
					  a->node);
	}
	return ERR_OK;
}

/* Drain: the journal thread journals what is queued, the writer inserts it; both end. */
static void stop_threads(struct audit *a)
{
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	pthread_cond_signal(&a->journal_cv);
	pthread_cond_signal(&a->work_cv);
	pthread_mutex_unlock(&a->mu);
	if (a->jstarted)
		pthread_join(a->jthread, NULL);
	if (a->started)
		pthread_join(a->thread, NULL);
	a->jstarted = a->started = false;
}

/* Replay: collect entries and insert them BATCH_MAX at a time. */
struct replay {
	struct audit *a;
	struct pending **batch;
	size_t n;
};

static enum err replay_flush(struct replay *r, struct ctx *c)
{
	enum err e = r->n ? write_batch(r->a, r->batch, r->n, 0, false, c) : ERR_OK;

	for (size_t i = 0; i < r->n; i++)
		free(r->batch[i]);
	r->n = 0;
	return e;
}

static enum err replay_entry(void *arg, uint64_t jseq, const uint8_t *d, size_t n, struct ctx *c)
{
	struct replay *r = arg;
	struct pending *p;
	enum err e = payload_get(d, n, &p, c);

	if (e)
		return e;
	p->jseq = jseq;
	r->batch[r->n++] = p;
	return r->n == BATCH_MAX ? replay_flush(r, c) : ERR_OK;
}

/*
 * Insert what the journal holds beyond audit.db: records a previous run
 * made durable but did not insert (it crashed, or its disk filled).
 */
static enum err recover(struct audit *a, struct ctx *c)
{
	struct replay r = {.a = a};
	char name[AUDIT_NODE_MAX + 16];
	uint64_t mark = 0, count = 0;
	enum err e;

	mark_name(a, name, sizeof(name));
	if ((e = query_u64(a->db, "SELECT coalesce((SELECT value FROM meta WHERE name = ?), 0)", name,
			   &mark, c)))
		return e;
	r.batch = xcalloc(BATCH_MAX, sizeof(*r.batch));
	e = journal_replay(&a->jn, mark, replay_entry, &r, &count, c);
	if (!e)
		e = replay_flush(&r, c);
	a->jseq_in_db = a->applied_jseq = a->jn.next - 1;
	for (size_t i = 0; i < r.n; i++)
		free(r.batch[i]);
	free(r.batch);
	if (!e && count)
		log_warn("audit: %llu records of stream '%s' were durable in the journal but not in"
			 " the log (an earlier run stopped before inserting them): inserted now",
			 (unsigned long long)count, a->node);
	return e;
}

static void audit_free(struct audit *a)
{
	if (!a)
		return;
	sqlite3_finalize(a->ins_record);
	sqlite3_finalize(a->ins_rows);
	for (int i = 0; i < ROWS_PER_INSERT; i++)
		buf_release(&a->rows[i].body);
	sqlite3_finalize(a->ins_subtree);
	sqlite3_finalize(a->ins_ckpt);
	sqlite3_finalize(a->set_mark);
	tree_src_free(a->tree);
	while (a->ready) {
		struct pending *p = a->ready;
		a->ready = p->next;
		free(p);
	}
	journal_close(&a->jn);
	buf_release(&a->jbuf);
	buf_release(&a->jpay);
	sqlite3_close(a->db);
	for (size_t i = 0; a->q && i < a->qcount; i++)
		free(a->q[(a->qhead + i) % a->queue_max]);
	free(a->q);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->work_cv);
	pthread_cond_destroy(&a->journal_cv);
	pthread_cond_destroy(&a->applied_cv);
	pthread_cond_destroy(&a->done_cv[0]);
	pthread_cond_destroy(&a->done_cv[1]);
	pthread_cond_destroy(&a->notify_cv);
	mem_wipe(a->pepper, sizeof(a->pepper));
	free(a->sign_header);
	free(a->archive_dir);
	free(a->dir);
	free(a);
}

/* Each journal file's size for these options: the default, at least the minimum, whole words. */
static uint64_t journal_size(const struct audit_opts *o)
{
	size_t n = o->journal_bytes ? o->journal_bytes : AUDIT_JOURNAL_DEFAULT;

	return (n < AUDIT_JOURNAL_MIN ? AUDIT_JOURNAL_MIN : n) & ~(size_t)7;
}

static enum err make_header(struct audit *a, struct ctx *c)
{
	struct buf h = BUF_INIT(1024);
	enum jose_alg alg = jose_key_alg(a->key);
	const char *kid = jose_key_kid(a->key);

	if (!jose_key_has_private(a->key))
		return ctx_errorf(c, ERR_INVALID, "the audit signing key has no private part");
	if (alg == JOSE_ALG_UNSET || alg == JOSE_HS256)
		return ctx_errorf(c, ERR_INVALID, "the audit signing key needs an asymmetric alg");
	buf_addf(&h, "{\"alg\":\"%s\"", jose_alg_name(alg));
	if (*kid) {
		buf_adds(&h, ",\"kid\":\"");
		buf_add_json_str(&h, kid, strlen(kid));
		buf_addch(&h, '"');
	}
	buf_adds(&h, ",\"typ\":\"" AUDIT_CHECKPOINT_TYP "\"}");
	a->sign_header = buf_take(&h, NULL);
	return ERR_OK;
}

enum err audit_open(const struct audit_opts *o, struct audit **out, struct ctx *c)
{
	struct audit *a = NULL;
	pthread_condattr_t ca;
	enum err e = ERR_OK;
	uint64_t size = 0;

	*out = NULL;
	if (!o || !o->data_dir || !*o->data_dir)
		return ctx_errorf(c, ERR_INVALID, "audit log needs a data directory");
	if (o->node && !audit_node_valid(o->node))
		return ctx_errorf(c, ERR_INVALID,
				  "audit node id must be 1 to %d of [A-Za-z0-9._-], not '%s'",
				  AUDIT_NODE_MAX, o->node);
	a = xcalloc(1, sizeof(*a));
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->work_cv, &ca);
	pthread_cond_init(&a->journal_cv, &ca);
	pthread_cond_init(&a->applied_cv, &ca);
	pthread_cond_init(&a->done_cv[0], &ca);
	pthread_cond_init(&a->done_cv[1], &ca);
	pthread_cond_init(&a->notify_cv, &ca);
	pthread_condattr_destroy(&ca);
	a->notify_wake = INT64_MAX; /* not yet asleep: its first scan sees every registration */
	for (int i = 0; i < ROWS_PER_INSERT; i++)
		buf_init(&a->rows[i].body, AUDIT_RECORD_MAX + 64);
	a->jn.fd[0] = a->jn.fd[1] = -1;
	a->ready_tail = &a->ready;
	buf_init(&a->jpay, JOURNAL_ENTRY_MAX);
	a->dir = xstrdup(o->data_dir);
	str_copy(a->node, o->node ? o->node : "node-1", sizeof(a->node));
	a->durability = o->durability;
	a->queue_max = o->queue_max ? o->queue_max : AUDIT_QUEUE_DEFAULT;
	a->ckpt_records = o->checkpoint_records ? o->checkpoint_records
						: AUDIT_CHECKPOINT_RECORDS_DEFAULT;
	a->ckpt_ms = o->checkpoint_ms ? o->checkpoint_ms : AUDIT_CHECKPOINT_MS_DEFAULT;
	a->busy_records = o->writer_busy_records ? o->writer_busy_records
						 : AUDIT_WRITER_BUSY_RECORDS_DEFAULT;
	a->linger_us = 1000LL * (o->writer_linger_ms ? o->writer_linger_ms
						     : AUDIT_WRITER_LINGER_MS_DEFAULT);
	a->retention_days = o->retention_days ? o->retention_days : AUDIT_RETENTION_DAYS_DEFAULT;
	a->prune_interval_ms = o->prune_interval_ms ? o->prune_interval_ms : (uint32_t)DAY_MS;
	if (!o->archive_dir) {
		struct buf p = BUF_INIT(4096);
		buf_addf(&p, "%s/audit-archive", o->data_dir);
		a->archive_dir = buf_take(&p, NULL);
	} else if (*o->archive_dir) {
		a->archive_dir = xstrdup(o->archive_dir);
	}
	a->key = o->key;
	if (o->durability != AUDIT_SYNC && o->durability != AUDIT_ASYNC) {
		e = ctx_errorf(c, ERR_INVALID, "unknown audit durability");
		goto out;
	}
	if (a->key && (e = make_header(a, c)))
		goto out;
	a->q = xcalloc(a->queue_max, sizeof(*a->q));
	/* the journal's lock first: nothing of the stream is looked at while another process writes it */
	if ((e = journal_open(a->dir, a->node, journal_size(o), &a->jn, c)) ||
	    (e = adb_open(o->data_dir, true, &a->db, c)) || (e = adb_pepper(a->db, a->pepper, c)))
		goto out;
	buf_init(&a->jbuf, a->jn.cap / 4 + JOURNAL_ENTRY_MAX + 64);
	if ((e = adb_prepare(a->db,
			     "INSERT INTO record(" RECORD_COLS ") VALUES " RECORD_VALUES,
			     &a->ins_record, c)) ||
	    (e = adb_prepare(a->db,
			     "INSERT INTO subtree(node, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
			     &a->ins_subtree, c)) ||
	    (e = adb_prepare(a->db,
			     "INSERT OR REPLACE INTO checkpoint(node, size, time_ms, root, compact,"
			     " kid, jws, final) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
			     &a->ins_ckpt, c)) ||
	    (e = adb_prepare(a->db,
			     "INSERT INTO meta(name, value) VALUES (?1, ?2)"
			     " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
			     &a->set_mark, c)))
		goto out;
	{
		struct buf sql = BUF_INIT(4096);
		buf_adds(&sql, "INSERT INTO record(" RECORD_COLS ") VALUES " RECORD_VALUES);
		for (int i = 1; i < ROWS_PER_INSERT; i++)
			buf_adds(&sql, ", " RECORD_VALUES);
		e = adb_prepare(a->db, sql.data, &a->ins_rows, c);
		buf_release(&sql);
		if (e)
			goto out;
	}
	if ((e = adb_stream_no(a->db, a->node, true, &a->no, c)))
		goto out;
	{
		sqlite3_stmt *st = NULL;
		if ((e = adb_prepare(a->db, "SELECT max(id) FROM record WHERE id >= ?1 AND id < ?2",
				     &st, c)))
			goto out;
		sqlite3_bind_int64(st, 1, audit_rid(a->no, 0));
		sqlite3_bind_int64(st, 2, audit_rid(a->no + 1, 0));
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER)
			size = audit_rid_seq(sqlite3_column_int64(st, 0)) + 1;
		sqlite3_finalize(st);
	}
	if ((e = query_u64(a->db, "SELECT coalesce(max(below), 0) FROM prune WHERE node = ?",
			   a->node, &a->prune_below, c)) ||
	    (e = query_u64(a->db, "SELECT coalesce(max(cleared), 0) FROM prune WHERE node = ?",
			   a->node, &a->prune_cleared, c)))
		goto out;
	a->prune_active = a->prune_cleared < a->prune_below;
	a->tree = tree_src_new(a->db, a->node);
	if ((e = tree_compact(a->tree, size, &a->mc, c)) ||
	    (e = tiers_load(&a->tiers, a->tree, size, c)) || (e = check_last_checkpoint(a, c)) ||
	    (e = recover(a, c)))
		goto out;
	a->unsigned_since = clock_mono_us();
	a->size_pub = a->mc.size;
	if (a->key) {
		if ((e = begin(a, c)))
			goto out;
		if ((e = commit(a, record_signer(a, c), c)))
			goto out;
	}
	if (a->mc.size > a->signed_size) {
		if ((e = begin(a, c)) || (e = commit(a, checkpoint(a, false, c), c)))
			goto out;
	}
	a->next_prune = clock_mono_us();
	if (pthread_create(&a->jthread, NULL, journal_main, a) != 0) {
		e = ctx_errorf(c, ERR_IO, "cannot start the audit journal");
		goto out;
	}
	a->jstarted = true;
	a->in_thread = true;
	if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
		a->in_thread = false;
		e = ctx_errorf(c, ERR_IO, "cannot start the audit writer");
		stop_threads(a);
		goto out;
	}
	a->started = true;
	if (a->durability == AUDIT_SYNC &&
	    pthread_create(&a->notifier, NULL, notifier_main, a) == 0)
		a->notifier_started = true; /* else audit_notify() answers ERR_IO: callers fail closed */
	*out = a;
	a = NULL;
out:
	audit_free(a);
	return e;
}

enum err audit_close(struct audit *a, struct ctx *c)
{
	enum err e = ERR_OK;

	if (!a)
		return ERR_OK;
	stop_threads(a);
	if (a->notifier_started) {
		/* what is durable now is all there will be: answer every notice */
		pthread_mutex_lock(&a->mu);
		a->notify_stop = true;
		pthread_cond_signal(&a->notify_cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->notifier, NULL);
	}
	if (a->failed)
		e = ctx_errorf(c, a->failed, "audit log failed: %s", a->failmsg);
	audit_free(a);
	return e;
}
