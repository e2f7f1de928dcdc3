/*
 * audit_test.h - helpers shared by the audit unit tests: a temporary data
 * directory per test, a generated ES256 signing key, sample events, and
 * raw SQL on DATA/audit.db for the tamper tests.
 */
#ifndef VERANDA_TESTS_AUDIT_TEST_H
#define VERANDA_TESTS_AUDIT_TEST_H

#include "unit.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/merkle.h"
#include "auth/jose.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"

/*
 * Records are keyed by id = stream number << 48 | sequence; the first
 * stream of a log is number 1, so its record N has id ID0 + N.
 */
#define ID0 "281474976710656"
#define ID0_N 281474976710656LL
#define SEQ "(id - " ID0 ")"
#define COLS "time_ms, type, outcome, patient, agent, client, request_id, trace_id, leaf, body"

struct fx {
	char dir[256];
	struct jose_key *key;
	struct jose_jwks *pub; /* the key's public half */
	struct audit *a;
};

static inline void fx_dir(struct fx *f, const char *name)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
	assert_non_null(mkdtemp(f->dir));
}

static inline struct jose_jwks *public_set(const struct jose_key *k)
{
	struct ctx c = CTX_INIT;
	struct jose_jwks *set = jose_jwks_new();
	struct jose_key *pk = NULL;
	json_t *jwk = NULL;

	assert_int_equal(jose_key_to_jwk(k, false, &jwk, &c), ERR_OK);
	assert_int_equal(jose_key_from_jwk(jwk, JOSE_JWK_PUBLIC_ONLY, &pk, &c), ERR_OK);
	json_decref(jwk);
	assert_int_equal(jose_jwks_add(set, pk, &c), ERR_OK);
	return set;
}

static inline void fx_init(struct fx *f, const char *name)
{
	struct ctx c = CTX_INIT;

	memset(f, 0, sizeof(*f));
	fx_dir(f, name);
	assert_int_equal(jose_key_generate(JOSE_GEN_P256, &f->key, &c), ERR_OK);
	f->pub = public_set(f->key);
}

static inline void fx_open(struct fx *f, struct audit_opts *o)
{
	struct ctx c = CTX_INIT;
	struct audit_opts def = {0};

	if (!o)
		o = &def;
	o->data_dir = f->dir;
	if (!o->key)
		o->key = f->key;
	if (o->archive_dir == NULL)
		o->archive_dir = "";
	if (audit_open(o, &f->a, &c) != ERR_OK)
		fail_msg("audit_open: %s", c.msg);
}

static inline void fx_close(struct fx *f)
{
	struct ctx c = CTX_INIT;

	if (f->a && audit_close(f->a, &c) != ERR_OK)
		fail_msg("audit_close: %s", c.msg);
	f->a = NULL;
}

static inline void fx_release(struct fx *f)
{
	struct ctx c = CTX_INIT;

	if (f->a)
		audit_close(f->a, &c);
	jose_key_free(f->key);
	jose_jwks_free(f->pub);
	unit_rmtree(f->dir);
	memset(f, 0, sizeof(*f));
}

/* A plausible FHIR read by patient number i. */
static inline struct audit_event sample_event(int i, char *patient, size_t psize,
					      struct audit_entity *en)
{
	static const char *const users[] = {"alice", "bob", "drsmith", "carol"};
	struct audit_event ev = {0};

	snprintf(patient, psize, "p%d", i % 7);
	en->type = "Observation";
	en->id = "obs-1";
	en->version = "2";
	en->category = "laboratory";
	en->query = NULL;
	ev.type = i % 5 == 4 ? AUDIT_FHIR_SEARCH : AUDIT_FHIR_READ;
	ev.outcome = i % 11 == 10 ? AUDIT_MINOR : AUDIT_OK;
	ev.agent.user_id = users[i % 4];
	ev.agent.username = users[i % 4];
	ev.agent.role = i % 4 == 2 ? "clinician" : "patient";
	ev.agent.client_id = i % 3 ? "portal" : "growth-chart";
	ev.patient = patient;
	ev.entities = en;
	ev.n_entities = 1;
	ev.source.client_addr = "192.0.2.7";
	ev.correlation.request_id = i % 2 ? "req-odd" : "req-even";
	return ev;
}

/* n durable records from 'from' (each waited for if 'sync'), perhaps not in audit.db yet. */
static inline void record_durable(struct audit *a, int from, int n, bool sync)
{
	struct ctx c = CTX_INIT;
	uint64_t ticket = 0;

	for (int i = from; i < from + n; i++) {
		char p[16];
		struct audit_entity en;
		struct audit_event ev = sample_event(i, p, sizeof(p), &en);
		if (audit_record(a, &ev, &ticket, &c) != ERR_OK)
			fail_msg("audit_record: %s", c.msg);
		if (sync && audit_wait(a, ticket, &c) != ERR_OK)
			fail_msg("audit_wait: %s", c.msg);
	}
	if (!sync && audit_wait(a, ticket, &c) != ERR_OK)
		fail_msg("audit_wait: %s", c.msg);
}

/* n records from 'from', durable and in audit.db, where the tests look. */
static inline void record_n(struct audit *a, int from, int n, bool sync)
{
	struct ctx c = CTX_INIT;

	record_durable(a, from, n, sync);
	if (audit_settle(a, AUDIT_WAIT_MS, &c) != ERR_OK)
		fail_msg("audit_settle: %s", c.msg);
}

/* n durable records dated 'days' ago (for retention), numbered from 0. */
static inline void record_old(struct audit *a, int n, int days)
{
	struct ctx c = CTX_INIT;

	for (int i = 0; i < n; i++) {
		char p[16];
		struct audit_entity en;
		struct audit_event ev = sample_event(i, p, sizeof(p), &en);
		ev.time_ms = clock_now_ms() - (int64_t)days * 86400000LL;
		if (audit_record_sync(a, &ev, &c) != ERR_OK)
			fail_msg("audit_record_sync: %s", c.msg);
	}
	if (audit_settle(a, AUDIT_WAIT_MS, &c) != ERR_OK)
		fail_msg("audit_settle: %s", c.msg);
}

static inline sqlite3 *raw_db(const struct fx *f)
{
	char path[512];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/audit.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static inline void raw_exec(const struct fx *f, const char *sql)
{
	sqlite3 *db = raw_db(f);
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("sql '%s': %s", sql, msg);
	sqlite3_close(db);
}

/* Verify with the fixture's public key; returns the report. */
static inline enum err fx_verify(const struct fx *f, struct audit_verify_report *r)
{
	struct ctx c = CTX_INIT;

	return audit_verify(f->dir, f->pub, r, &c);
}

#endif
