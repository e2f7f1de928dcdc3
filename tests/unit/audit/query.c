/*
 * Unit tests of audit queries (src/audit/reader.c), the FHIR AuditEvent
 * mapping (src/audit/balp.c) and the command line (src/audit/cli.c).
 *
 * - Every filter alone and together, newest first, limits and keyset
 *   paging over a log of known events.
 * - BALP: a read, a search, a sign-in and a break-the-glass record map
 *   to the expected AuditEvent codes, agents and entities.
 * - `veranda audit …`: exit status and output of each subcommand, with
 *   stdout captured; usage errors exit 2.
 */
#include "audit_test.h"

#include <fcntl.h>

#include "audit/cli.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/json.h"

#define T0 1795892943123LL /* 2026-11-28T19:09:03.123Z */
#define HOUR 3600000LL

struct known {
	enum audit_type type;
	int outcome;
	const char *user, *client, *patient, *request;
	int64_t at;
};

static const struct known events[] = {
	{AUDIT_SIGNIN, 0, "alice", "portal", NULL, "r1", T0},
	{AUDIT_FHIR_READ, 0, "alice", "portal", "p1", "r2", T0 + HOUR},
	{AUDIT_FHIR_SEARCH, 0, "alice", "growth-chart", "p1", "r3", T0 + 2 * HOUR},
	{AUDIT_FHIR_READ, 4, "bob", "portal", "p2", "r4", T0 + 3 * HOUR},
	{AUDIT_POLICY_DENIED, 4, "bob", "portal", "p1", "r4", T0 + 3 * HOUR},
	{AUDIT_BREAKGLASS_START, 0, "drsmith", "staff", "p1", "r5", T0 + 4 * HOUR},
	{AUDIT_FHIR_READ, 0, "drsmith", "staff", "p1", "r6", T0 + 5 * HOUR},
	{AUDIT_SIGNIN_FAILED, 4, "mallory", "portal", NULL, "r7", T0 + 6 * HOUR},
	{AUDIT_TOKEN_ISSUED, 0, "alice", "growth-chart", "p1", "r8", T0 + 7 * HOUR},
	{AUDIT_FHIR_UPDATE, 0, "drsmith", "staff", "p2", "r9", T0 + 8 * HOUR},
};
#define NEV (sizeof(events) / sizeof(events[0]))

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct audit_opts o = {.checkpoint_records = 4};
	struct ctx c = CTX_INIT;
	const char *reasons[] = {"clinician-emergency"};

	fx_init(f, "audit-query");
	fx_open(f, &o);
	for (size_t i = 0; i < NEV; i++) {
		const struct known *k = &events[i];
		struct audit_entity en = {.type = "Observation", .id = "o1", .version = "3"};
		struct audit_event ev = {.type = k->type, .outcome = k->outcome, .time_ms = k->at};
		char th[AUDIT_HASH_SIZE];
		ev.agent.user_id = k->user;
		ev.agent.username = k->user;
		ev.agent.client_id = k->client;
		ev.patient = k->patient;
		ev.correlation.request_id = k->request;
		ev.correlation.trace_id = "trace-1";
		if (k->patient) {
			ev.entities = &en;
			ev.n_entities = 1;
		}
		if (k->type == AUDIT_FHIR_SEARCH)
			en = (struct audit_entity){.type = "Observation",
						   .query = "Observation?code=1234-5&patient=p1"};
		if (k->type == AUDIT_BREAKGLASS_START) {
			ev.authority.breakglass_id = "bg-7";
			ev.authority.reasons = reasons;
			ev.authority.n_reasons = 1;
			ev.agent.role = "clinician";
			ev.agent.fhir_user = "Practitioner/9";
		}
		if (!strcmp(k->user, "alice")) {
			ev.agent.fhir_user = "Patient/p1";
			ev.agent.role = "patient";
			audit_hash_id("jti-1", th);
			ev.source.token_hash = th;
			ev.authority.scopes = "patient/Observation.rs";
		}
		ev.source.client_addr = "198.51.100.4";
		if (audit_record_sync(f->a, &ev, &c))
			fail_msg("record: %s", c.msg);
	}
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

struct rows {
	int n;
	uint64_t seq[32];
	int64_t time[32];
	char node[AUDIT_NODE_MAX + 1];
};

static enum err collect(void *arg, const char *node, uint64_t seq, int64_t time_ms,
			const char *record, size_t len)
{
	struct rows *r = arg;

	assert_true(len > 0 && record[0] == '{');
	if (r->n < 32) {
		r->seq[r->n] = seq;
		r->time[r->n] = time_ms;
	}
	snprintf(r->node, sizeof(r->node), "%s", node);
	r->n++;
	return ERR_OK;
}

static int run(const struct fx *f, const struct audit_filter *flt, struct rows *out)
{
	struct audit_reader *r = NULL;
	struct ctx c = CTX_INIT;
	enum err e;

	memset(out, 0, sizeof(*out));
	assert_int_equal(audit_reader_open(f->dir, &r, &c), ERR_OK);
	e = audit_query(r, flt, collect, out, &c);
	audit_reader_free(r);
	return e ? -1 : out->n;
}

static void test_filters(void **state)
{
	struct fx *f = *state;
	struct audit_filter q;
	struct rows rows;

#define Q(field, value, want)                               \
	do {                                                \
		q = (struct audit_filter)AUDIT_FILTER_INIT; \
		q.field = value;                            \
		assert_int_equal(run(f, &q, &rows), want);  \
	} while (0)

	q = (struct audit_filter)AUDIT_FILTER_INIT;
	assert_int_equal(run(f, &q, &rows), (int)NEV);
	assert_int_equal(run(f, NULL, &rows), (int)NEV);
	for (int i = 1; i < rows.n; i++)
		assert_true(rows.time[i] >= rows.time[i - 1]);
	Q(patient, "p1", 6);
	Q(patient, "p2", 2);
	Q(patient, "nobody", 0);
	Q(agent, "alice", 4);
	Q(agent, "drsmith", 3);
	Q(client, "growth-chart", 2);
	Q(type, "fhir.read", 3);
	Q(type, "fhir", 5);
	Q(type, "session", 2);
	Q(type, "access.breakglass-start", 1);
	Q(outcome, 4, 3);
	Q(outcome, 0, 7);
	Q(request_id, "r4", 2);
	Q(trace_id, "trace-1", (int)NEV);
	Q(node, "node-1", (int)NEV);
	Q(node, "node-2", 0);
	Q(since_ms, T0 + 5 * HOUR, 4);
	Q(until_ms, T0 + HOUR, 1);
	/* together */
	q = (struct audit_filter)AUDIT_FILTER_INIT;
	q.patient = "p1";
	q.type = "fhir";
	q.since_ms = T0 + 2 * HOUR;
	q.until_ms = T0 + 6 * HOUR;
	assert_int_equal(run(f, &q, &rows), 2);
	assert_int_equal(rows.seq[0], 2);
	assert_int_equal(rows.seq[1], 6);
	/* unknown type */
	q = (struct audit_filter)AUDIT_FILTER_INIT;
	q.type = "nonsense";
	assert_int_equal(run(f, &q, &rows), -1);
	/* newest first, pages of 3 with a cursor */
	{
		struct audit_cursor cur;
		uint64_t seen[NEV];
		int total = 0;
		q = (struct audit_filter)AUDIT_FILTER_INIT;
		q.newest_first = true;
		q.limit = 3;
		for (;;) {
			int n = run(f, &q, &rows);
			assert_true(n >= 0 && n <= 3);
			for (int i = 0; i < n; i++)
				seen[total++] = rows.seq[i];
			if (n < 3)
				break;
			cur.time_ms = rows.time[n - 1];
			cur.seq = rows.seq[n - 1];
			snprintf(cur.node, sizeof(cur.node), "%s", rows.node);
			q.after = &cur;
		}
		assert_int_equal(total, (int)NEV);
		/* records 3 and 4 share a time: both appear, in (time, seq) order */
		for (int i = 0; i < total; i++)
			assert_int_equal(seen[i], NEV - 1 - (size_t)i);
	}
#undef Q
}

static char *record_of(const struct fx *f, uint64_t seq)
{
	sqlite3 *db = raw_db(f);
	sqlite3_stmt *st = NULL;
	char *s = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT body FROM record WHERE id = ?", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, ID0_N + (sqlite3_int64)seq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return s;
}

static json_t *fhir_of(const struct fx *f, uint64_t seq, const char *base)
{
	char *rec = record_of(f, seq);
	struct ctx c = CTX_INIT;
	json_t *ae = NULL;

	if (audit_event_to_fhir(rec, strlen(rec), base, &ae, &c))
		fail_msg("to fhir: %s", c.msg);
	free(rec);
	return ae;
}

static const char *path_str(const json_t *j, const char *path)
{
	/* "a.0.b" */
	char key[64];
	const char *p = path;

	while (*p && j) {
		size_t n = strcspn(p, ".");
		snprintf(key, sizeof(key), "%.*s", (int)n, p);
		if (json_is_array(j))
			j = json_array_get(j, strtoul(key, NULL, 10));
		else
			j = json_object_get(j, key);
		p += n;
		if (*p == '.')
			p++;
	}
	return json_is_string(j) ? json_string_value(j) : NULL;
}

static void test_balp(void **state)
{
	struct fx *f = *state;
	json_t *ae;

	/* a read by the patient through the portal */
	ae = fhir_of(f, 1, "https://ehr.example/fhir");
	assert_string_equal(path_str(ae, "resourceType"), "AuditEvent");
	assert_string_equal(path_str(ae, "id"), "node-1.1");
	assert_string_equal(path_str(ae, "type.system"),
			    "http://terminology.hl7.org/CodeSystem/audit-event-type");
	assert_string_equal(path_str(ae, "type.code"), "rest");
	assert_string_equal(path_str(ae, "subtype.0.system"), "http://hl7.org/fhir/restful-interaction");
	assert_string_equal(path_str(ae, "subtype.0.code"), "read");
	assert_string_equal(path_str(ae, "subtype.1.code"), "fhir.read");
	assert_string_equal(path_str(ae, "action"), "R");
	assert_string_equal(path_str(ae, "outcome"), "0");
	assert_string_equal(path_str(ae, "recorded"), "2026-11-28T20:09:03.123Z");
	assert_string_equal(path_str(ae, "agent.0.type.coding.0.code"), "IRCP");
	assert_true(json_is_true(json_object_get(json_array_get(json_object_get(ae, "agent"), 0),
						 "requestor")));
	assert_string_equal(path_str(ae, "agent.0.who.reference"),
			    "https://ehr.example/fhir/Patient/p1");
	assert_string_equal(path_str(ae, "agent.0.altId"), "alice");
	assert_true(strncmp(path_str(ae, "agent.0.policy.0"), "token:sha256:", 13) == 0);
	assert_string_equal(path_str(ae, "agent.1.type.coding.0.code"), "110153");
	assert_string_equal(path_str(ae, "agent.1.who.identifier.value"), "portal");
	assert_string_equal(path_str(ae, "agent.1.network.address"), "198.51.100.4");
	assert_string_equal(path_str(ae, "agent.1.policy.0"), "patient/Observation.rs");
	assert_string_equal(path_str(ae, "agent.2.type.coding.0.code"), "110152");
	assert_string_equal(path_str(ae, "source.observer.display"), "node-1");
	assert_string_equal(path_str(ae, "entity.0.what.reference"),
			    "https://ehr.example/fhir/Patient/p1");
	assert_string_equal(path_str(ae, "entity.0.role.code"), "1");
	assert_string_equal(path_str(ae, "entity.1.what.reference"),
			    "https://ehr.example/fhir/Observation/o1/_history/3");
	assert_string_equal(path_str(ae, "entity.1.role.code"), "4");
	assert_string_equal(path_str(ae, "entity.2.what.identifier.value"), "r2");
	assert_string_equal(path_str(ae, "entity.2.type.code"), "XrequestId");
	json_decref(ae);

	/* a search: the normalized query, base64 */
	ae = fhir_of(f, 2, NULL);
	assert_string_equal(path_str(ae, "subtype.0.code"), "search-type");
	assert_string_equal(path_str(ae, "action"), "E");
	assert_string_equal(path_str(ae, "entity.1.role.code"), "24");
	{
		const char *q = path_str(ae, "entity.1.query");
		struct buf b = BUF_INIT(1024);
		assert_non_null(q);
		assert_int_equal(base64_decode(q, strlen(q), &b), ERR_OK);
		assert_string_equal(b.data, "Observation?code=1234-5&patient=p1");
		buf_release(&b);
	}
	assert_string_equal(path_str(ae, "entity.0.what.reference"), "Patient/p1");
	json_decref(ae);

	/* sign-in: DICOM user authentication / login */
	ae = fhir_of(f, 0, NULL);
	assert_string_equal(path_str(ae, "type.code"), "110114");
	assert_string_equal(path_str(ae, "subtype.0.code"), "110122");
	json_decref(ae);
	ae = fhir_of(f, 7, NULL);
	assert_string_equal(path_str(ae, "outcome"), "4");
	assert_string_equal(path_str(ae, "agent.0.who.identifier.value"), "mallory");
	json_decref(ae);

	/* break-the-glass: a security alert with purpose BTG and the reason code */
	ae = fhir_of(f, 5, NULL);
	assert_string_equal(path_str(ae, "type.code"), "110113");
	assert_string_equal(path_str(ae, "subtype.0.code"), "110127");
	assert_string_equal(path_str(ae, "purposeOfEvent.0.coding.0.code"), "BTG");
	assert_string_equal(path_str(ae, "agent.0.who.reference"), "Practitioner/9");
	assert_string_equal(path_str(ae, "agent.0.policy.0"), "breakglass:bg-7");
	assert_string_equal(path_str(ae, "extension.0.valueCode"), "clinician-emergency");
	json_decref(ae);

	/* update */
	ae = fhir_of(f, 9, NULL);
	assert_string_equal(path_str(ae, "subtype.0.code"), "update");
	assert_string_equal(path_str(ae, "action"), "U");
	json_decref(ae);

	/* not a record */
	{
		struct ctx c = CTX_INIT;
		const char *bad[] = {"{}", "[1]", "nope",
				     "{\"v\":1,\"seq\":0,\"node\":\"n\",\"time\":\"2026-11-28T19:09:03.123Z\","
				     "\"type\":\"made.up\",\"action\":\"R\",\"outcome\":0}",
				     "{\"v\":1,\"seq\":0,\"node\":\"n\",\"time\":\"2026-13-28T19:09:03.123Z\","
				     "\"type\":\"fhir.read\",\"action\":\"R\",\"outcome\":0}"};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			ae = NULL;
			assert_int_equal(audit_event_to_fhir(bad[i], strlen(bad[i]), NULL, &ae, &c),
					 ERR_INVALID);
			assert_null(ae);
		}
	}
}

/* ---- the command line ------------------------------------------------------------- */

struct captured {
	int rc;
	char *out;
};

static struct captured cli(const struct fx *f, const struct jose_key *key, const char *args)
{
	char path[300], *argv[32], *copy = strdup(args), *save = NULL;
	int argc = 0, saved, fd;
	struct captured r;
	FILE *fp;
	long n;

	for (char *t = strtok_r(copy, " ", &save); t && argc < 31; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	snprintf(path, sizeof(path), "%s/cli.out", f->dir);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	{
		/* the server's JWK Set, as main.c passes it: here the one key */
		struct buf set = BUF_INIT(64 * 1024);
		json_t *pub = NULL, *doc;
		struct ctx c = CTX_INIT;
		char *text;

		if (key) {
			assert_int_equal(jose_key_to_jwk(key, false, &pub, &c), ERR_OK);
			doc = json_pack("{s:[o]}", "keys", pub);
			text = json_dumps(doc, JSON_COMPACT);
			buf_adds(&set, text);
			free(text);
			json_decref(doc);
		}
		r.rc = audit_cli(f->dir, key ? &set : NULL, argc, argv);
		buf_release(&set);
	}
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	free(copy);
	fp = fopen(path, "r");
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	r.out = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(r.out, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return r;
}

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

#define CLI(key, args, want_rc)                                                          \
	do {                                                                             \
		free(r.out);                                                             \
		r = cli(f, key, args);                                                   \
		if (r.rc != (want_rc))                                                   \
			fail_msg("'%s' exited %d, not %d: %s", args, r.rc, want_rc, r.out); \
	} while (0)

static void test_cli(void **state)
{
	struct fx *f = *state;
	struct captured r = {0, NULL};
	char args[600], receipt[300], jwk[300];

	CLI(f->key, "verify", 0);
	assert_non_null(strstr(r.out, "audit log verified: 1 stream, 10 records"));
	assert_null(strstr(r.out, "recorded in the log"));
	CLI(NULL, "verify", 0);
	assert_non_null(strstr(r.out, "recorded in the log itself"));
	CLI(NULL, "query --patient p1", 0);
	assert_int_equal(lines(r.out), 6);
	CLI(NULL, "query --type fhir --outcome 4 --format text", 0);
	assert_int_equal(lines(r.out), 1);
	assert_non_null(strstr(r.out, "fhir.read"));
	CLI(NULL, "query --agent=drsmith --format fhir --newest-first --limit 2", 0);
	assert_int_equal(lines(r.out), 2);
	assert_non_null(strstr(r.out, "\"resourceType\":\"AuditEvent\""));
	assert_non_null(strstr(r.out, "update"));
	CLI(NULL, "query --since 2026-11-28T22:00:00Z --until 2026-11-29", 0);
	assert_int_equal(lines(r.out), 3);
	CLI(NULL, "query --since 2026-11-28T23:00:00+01:00", 0);
	assert_int_equal(lines(r.out), 7);
	CLI(NULL, "query --request-id r4", 0);
	assert_int_equal(lines(r.out), 2);
	CLI(NULL, "export --client growth-chart", 0);
	assert_int_equal(lines(r.out), 3);
	assert_non_null(strstr(r.out, "\"hashes\":["));
	CLI(NULL, "checkpoints", 0);
	assert_non_null(strstr(r.out, "\"size\": 10"));
	CLI(NULL, "checkpoints --all", 0);
	CLI(NULL, "consistency --from 4 --to 10", 0);
	assert_non_null(strstr(r.out, "\"size1\": 4"));

	/* a receipt, checked offline with and without the published key */
	CLI(NULL, "proof --seq 6", 0);
	snprintf(receipt, sizeof(receipt), "%s/receipt.json", f->dir);
	{
		FILE *fp = fopen(receipt, "w");
		fputs(r.out, fp);
		fclose(fp);
	}
	snprintf(args, sizeof(args), "check-receipt %s", receipt);
	CLI(f->key, args, 0);
	assert_non_null(strstr(r.out, "receipt checks: record 6 of stream 'node-1'"));
	CLI(NULL, args, 0);
	assert_non_null(strstr(r.out, "key inside the receipt"));
	{
		struct ctx c = CTX_INIT;
		json_t *pub = NULL;
		FILE *fp;
		snprintf(jwk, sizeof(jwk), "%s/jwk.json", f->dir);
		assert_int_equal(jose_key_to_jwk(f->key, false, &pub, &c), ERR_OK);
		fp = fopen(jwk, "w");
		json_dumpf(pub, fp, 0);
		fclose(fp);
		json_decref(pub);
	}
	snprintf(args, sizeof(args), "check-receipt %s --jwks %s", receipt, jwk);
	CLI(NULL, args, 0);
	snprintf(args, sizeof(args), "verify --jwks %s", jwk);
	CLI(NULL, args, 0);
	assert_null(strstr(r.out, "recorded in the log"));

	/* a saved checkpoint the log still extends */
	CLI(NULL, "checkpoints", 0);
	{
		json_t *doc = json_loads(r.out, 0, NULL);
		const char *jws = path_str(doc, "checkpoints.0.jws");
		char ck[300];
		FILE *fp;
		snprintf(ck, sizeof(ck), "%s/ck.jws", f->dir);
		fp = fopen(ck, "w");
		fprintf(fp, "%s\n", jws);
		fclose(fp);
		json_decref(doc);
		snprintf(args, sizeof(args), "verify --checkpoint %s", ck);
		CLI(f->key, args, 0);
		assert_non_null(strstr(r.out, "it extends the checkpoint"));
	}

	/* usage errors */
	CLI(NULL, "frobnicate", 2);
	CLI(NULL, "query --colour red", 2);
	CLI(NULL, "query --since yesterday", 2);
	CLI(NULL, "query --outcome 5", 2);
	CLI(NULL, "query --format xml", 2);
	CLI(NULL, "query --type nonsense", 2);
	CLI(NULL, "proof", 2);
	CLI(NULL, "proof --seq -1", 2);
	CLI(NULL, "verify --patient p1", 2);
	CLI(NULL, "check-receipt", 2);
	{
		char *argv0[] = {NULL};
		assert_int_equal(audit_cli(f->dir, NULL, 0, argv0), 2);
	}
	/* failures */
	CLI(NULL, "proof --seq 99", 1);
	/* a tampered log: exit 1 naming the record */
	raw_exec(f, "UPDATE record SET patient = 'p9' WHERE " SEQ " = 3");
	CLI(f->key, "verify", 1);
	assert_non_null(strstr(r.out, "does NOT verify"));
	assert_non_null(strstr(r.out, "first bad record: 3\n"));
	free(r.out);
	assert_non_null(strstr(audit_cli_help, "verify"));
	assert_non_null(strstr(audit_cli_usage, "veranda audit"));
	assert_string_equal(audit_cli_flags[0], "checkpoint");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_balp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
