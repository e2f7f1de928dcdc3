/*
 * bench/audit.c - durable audit appends per second (built and run by
 * bench/audit; see docs/performance.md, section "Audit").
 *
 * 1. naive: one thread, one SQLite transaction per record (BEGIN, INSERT,
 *    COMMIT) into the same schema as the audit log (record table and its
 *    indexes, WAL, synchronous=FULL): every record pays its own fsync.
 * 2. audit: the audit writer (group commit, Merkle tree, cached block
 *    roots, an ES256 checkpoint every 1000 records) with W producer
 *    threads, each calling audit_record() then audit_wait() (sync mode:
 *    it returns once the record is on disk) in a loop.
 * 3. the same with one producer (every record its own commit: the
 *    latency-bound case).
 * Then audit_verify() over everything written, to show the records are
 * real and how fast a log verifies.
 *
 * All runs use the same directory (same disk), in interleaved rounds
 * (default 3).  Prints one line per run and the medians, with the ratio
 * against the goals (20x the naive loop, 10,000 durable appends/s with
 * 64 writers).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "audit/merkle.h"
#include "auth/jose.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/str.h"

#define LAT_MAX 200000

static double seconds = 5;
static int writers = 64;
static atomic_bool stop;

/*
 * A FHIR read as the REST edge will record it: 1,000 patients, four
 * users, a hashed token id, and (as in production) a new request id and
 * trace id for every record, which land on random index pages.
 */
static struct audit_event sample(int i, char *patient, size_t n, struct audit_entity *en,
				 char *tok)
{
	static _Thread_local char req[40], trace[40];
	static const char *const users[] = {"alice", "bob", "drsmith", "carol"};
	struct audit_event ev = {0};

	snprintf(patient, n, "patient-%d", i % 1000);
	*en = (struct audit_entity){.type = "Observation", .id = "obs-123456", .version = "2",
				    .category = "laboratory"};
	audit_hash_id(patient, tok);
	ev.type = AUDIT_FHIR_READ;
	ev.agent.user_id = users[i % 4];
	ev.agent.username = users[i % 4];
	ev.agent.role = "patient";
	ev.agent.fhir_user = "Patient/123";
	ev.agent.client_id = "portal";
	ev.patient = patient;
	ev.entities = en;
	ev.n_entities = 1;
	ev.source.client_addr = "192.0.2.15";
	ev.source.token_hash = tok;
	ev.authority.scopes = "openid fhirUser patient/*.rs";
	rand_hex(req, 16);
	rand_hex(trace, 16);
	ev.correlation.request_id = req;
	ev.correlation.trace_id = trace;
	return ev;
}

static double now_s(void)
{
	return (double)clock_mono_us() / 1e6;
}

/* ---- naive ---------------------------------------------------------------- */

static double run_naive(const char *dir, uint64_t *count)
{
	struct ctx c = CTX_INIT;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct buf body = BUF_INIT(AUDIT_RECORD_MAX);
	double t0, t1;
	uint64_t n = 0;

	/* its own directory on the same disk: its rows have no tree */
	mkdir(dir, 0700);
	if (adb_open(dir, true, &db, &c)) {
		fprintf(stderr, "bench: %s\n", c.msg);
		exit(1);
	}
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO record(id, time_ms, type, outcome, patient, agent, client,"
			       " request_id, trace_id, leaf, body)"
			       " VALUES (?1, ?2, 'fhir.read', 0, ?3, ?4, 'portal', ?5, ?6, ?7, ?8)",
			       -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench: %s\n", sqlite3_errmsg(db));
		exit(1);
	}
	t0 = now_s();
	while ((t1 = now_s()) - t0 < seconds) {
		char p[32], tok[AUDIT_HASH_SIZE];
		struct audit_entity en;
		struct audit_event ev = sample((int)n, p, sizeof(p), &en, tok);
		uint8_t leaf[MERKLE_HASH_LEN];

		ev.time_ms = clock_now_ms();
		buf_reset(&body);
		audit_event_serialize(&ev, "naive", n, &body, &c);
		merkle_leaf_hash(body.data, body.len, leaf);
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		sqlite3_bind_int64(st, 1, audit_rid(1, n));
		sqlite3_bind_int64(st, 2, ev.time_ms);
		sqlite3_bind_text(st, 3, ev.patient, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, ev.agent.user_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, ev.correlation.request_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, ev.correlation.trace_id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 7, leaf, sizeof(leaf), SQLITE_STATIC);
		sqlite3_bind_text(st, 8, body.data, (int)body.len, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			fprintf(stderr, "bench: %s\n", sqlite3_errmsg(db));
			exit(1);
		}
		sqlite3_reset(st);
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	buf_release(&body);
	*count = n;
	return (double)n / (t1 - t0);
}

/* ---- audit writer ---------------------------------------------------------- */

struct producer {
	struct audit *a;
	int id;
	uint64_t n;
	uint32_t *lat; /* microseconds, sampled */
	size_t nlat, cap;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	while (!atomic_load(&stop)) {
		char pat[32], tok[AUDIT_HASH_SIZE];
		struct audit_entity en;
		struct audit_event ev = sample(p->id * 100000 + (int)p->n, pat, sizeof(pat), &en, tok);
		struct ctx c = CTX_INIT;
		int64_t t0 = clock_mono_us();

		if (audit_record_sync(p->a, &ev, &c)) {
			fprintf(stderr, "bench: %s\n", c.msg);
			exit(1);
		}
		if (p->nlat < p->cap)
			p->lat[p->nlat++] = (uint32_t)(clock_mono_us() - t0);
		p->n++;
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double run_audit(const char *dir, const char *node, int nthreads,
			const struct jose_key *key, uint64_t *count, double *p50, double *p99,
			uint64_t *commits)
{
	struct audit_opts o = {.data_dir = dir, .node = node, .key = key, .archive_dir = ""};
	struct producer *ps = calloc((size_t)nthreads, sizeof(*ps));
	pthread_t *th = calloc((size_t)nthreads, sizeof(*th));
	uint32_t *all = NULL;
	size_t nall = 0;
	struct audit_stats st;
	struct ctx c = CTX_INIT;
	struct audit *a = NULL;
	double t0, t1;
	uint64_t total = 0;
	size_t backlog;

	if (audit_open(&o, &a, &c)) {
		fprintf(stderr, "bench: %s\n", c.msg);
		exit(1);
	}
	atomic_store(&stop, false);
	t0 = now_s();
	for (int i = 0; i < nthreads; i++) {
		ps[i] = (struct producer){a, i, 0, NULL, 0, LAT_MAX / (size_t)nthreads};
		ps[i].lat = malloc(ps[i].cap * sizeof(uint32_t));
		pthread_create(&th[i], NULL, produce, &ps[i]);
	}
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&stop, true);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	/*
	 * A record is durable once journaled; the run counts until every
	 * record is also in audit.db, so a writer that falls behind shows.
	 */
	audit_stats(a, &st);
	backlog = st.unapplied;
	if (audit_settle(a, AUDIT_WAIT_MS, &c)) {
		fprintf(stderr, "bench: %s\n", c.msg);
		exit(1);
	}
	t1 = now_s();
	audit_stats(a, &st);
	*commits = st.commits;
	if (st.commits && st.inserts)
		printf("           journal: %.0f us a group commit (%.1f records); writer: %.0f us"
		       " inserting and %.0f us committing a transaction (%.1f records), busy %.0f%%;"
		       " %llu records left to insert when the producers stopped\n",
		       (double)st.journal_us / (double)st.commits,
		       (double)st.records / (double)st.commits,
		       (double)st.write_us / (double)st.inserts, (double)st.sync_us / (double)st.inserts,
		       (double)st.records / (double)st.inserts,
		       100.0 * (double)(st.write_us + st.sync_us) / 1e6 / (t1 - t0),
		       (unsigned long long)backlog);
	if (audit_close(a, &c)) {
		fprintf(stderr, "bench: %s\n", c.msg);
		exit(1);
	}
	for (int i = 0; i < nthreads; i++) {
		total += ps[i].n;
		all = realloc(all, (nall + ps[i].nlat) * sizeof(uint32_t));
		memcpy(all + nall, ps[i].lat, ps[i].nlat * sizeof(uint32_t));
		nall += ps[i].nlat;
		free(ps[i].lat);
	}
	qsort(all, nall, sizeof(*all), cmp_u32);
	*p50 = nall ? all[nall / 2] / 1000.0 : 0;
	*p99 = nall ? all[nall * 99 / 100] / 1000.0 : 0;
	free(all);
	free(ps);
	free(th);
	*count = total;
	return (double)total / (t1 - t0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	char dir[512] = "";
	int rounds = 3;
	struct jose_key *key = NULL;
	struct jose_jwks *pub = NULL;
	struct ctx c = CTX_INIT;
	double naive[16], many[16], one[16], ratio[16], t0, tv;
	struct audit_verify_report r;

	/* as `veranda` runs SQLite (main.c): no memory statistics, whose mutex every allocation takes */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			str_copy(dir, argv[++i], sizeof(dir));
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--writers") && i + 1 < argc)
			writers = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = (int)strtol(argv[++i], NULL, 10);
		else
			goto usage;
	}
	if (!*dir || seconds <= 0 || writers < 1 || writers > 4096 || rounds < 1 || rounds > 16)
		goto usage;
	log_set_level(LOG_WARN);
	if (jose_key_generate(JOSE_GEN_P256, &key, &c)) {
		fprintf(stderr, "bench: %s\n", c.msg);
		return 1;
	}
	{
		json_t *j = NULL;
		struct jose_key *pk = NULL;
		jose_key_to_jwk(key, false, &j, &c);
		jose_key_from_jwk(j, JOSE_JWK_PUBLIC_ONLY, &pk, &c);
		json_decref(j);
		pub = jose_jwks_new();
		jose_jwks_add(pub, pk, &c);
	}

	/* rounds interleave the three tests so that a change in the machine's
	 * load hits them alike; each ratio compares neighbouring runs */
	for (int k = 0; k < rounds; k++) {
		uint64_t n_naive, n_many, n_one, commits_many, commits_one;
		double p50m, p99m, p50o, p99o;
		char sub[600], node[32];

		snprintf(sub, sizeof(sub), "%s/naive-%d", dir, k);
		naive[k] = run_naive(sub, &n_naive);
		printf("round %d  naive      1 writer : %7.0f appends/s  (%llu records, one transaction"
		       " and fsync each)\n",
		       k + 1, naive[k], (unsigned long long)n_naive);
		fflush(stdout);
		snprintf(node, sizeof(node), "many-%d", k);
		many[k] = run_audit(dir, node, writers, key, &n_many, &p50m, &p99m, &commits_many);
		printf("round %d  audit  %4d writers : %7.0f appends/s  (%llu records, %.1f per group"
		       " commit; record+wait p50 %.2f ms, p99 %.2f ms)\n",
		       k + 1, writers, many[k], (unsigned long long)n_many,
		       commits_many ? (double)n_many / (double)commits_many : 0, p50m, p99m);
		fflush(stdout);
		snprintf(node, sizeof(node), "one-%d", k);
		one[k] = run_audit(dir, node, 1, key, &n_one, &p50o, &p99o, &commits_one);
		printf("round %d  audit     1 writer  : %7.0f appends/s  (%llu records; p50 %.2f ms,"
		       " p99 %.2f ms)\n",
		       k + 1, one[k], (unsigned long long)n_one, p50o, p99o);
		fflush(stdout);
		ratio[k] = many[k] / naive[k];
	}

	t0 = now_s();
	if (audit_verify(dir, pub, &r, &c)) {
		fprintf(stderr, "bench: verify: %s\n", c.msg);
		return 1;
	}
	tv = now_s() - t0;
	printf("verify: %llu records in %llu streams, %llu signed checkpoints, %.2f s (%.0f records/s)\n",
	       (unsigned long long)r.records, (unsigned long long)r.streams,
	       (unsigned long long)r.checkpoints, tv, (double)r.records / tv);
	{
		double mr = median(ratio, rounds), mm = median(many, rounds);
		printf("median of %d rounds: naive %.0f/s, audit %d writers %.0f/s, audit 1 writer"
		       " %.0f/s\n",
		       rounds, median(naive, rounds), writers, mm, median(one, rounds));
		printf("ratio %d writers / naive: %.1fx (goal >= 20x: %s); %.0f appends/s"
		       " (goal >= 10000: %s)\n",
		       writers, mr, mr >= 20 ? "met" : "below goal", mm,
		       mm >= 10000 ? "met" : "below goal");
	}
	jose_jwks_free(pub);
	jose_key_free(key);
	return 0;
usage:
	fprintf(stderr, "usage: bench-audit --dir DIR [--seconds S] [--writers N] [--rounds R]\n");
	return 2;
}
