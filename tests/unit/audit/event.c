/*
 * Unit tests of src/audit/event.c: the catalogue, the canonical record
 * (exact bytes), validation of events (what may not enter a record),
 * hashed ids and normalized search queries.
 */
#include "audit_test.h"

#include "core/clock.h"

/* 2026-11-28T19:09:03.123Z */
#define T0 1795892943123LL

static void test_catalogue(void **state)
{
	(void)state;
	for (int t = 1; t < AUDIT_TYPE_COUNT; t++) {
		const char *name = audit_type_name((enum audit_type)t);
		assert_non_null(name);
		assert_int_equal(audit_type_parse(name), t);
		assert_non_null(strchr("CRUDE", audit_type_action((enum audit_type)t)));
		/* names are unique */
		for (int u = t + 1; u < AUDIT_TYPE_COUNT; u++)
			assert_string_not_equal(name, audit_type_name((enum audit_type)u));
	}
	assert_null(audit_type_name(AUDIT_TYPE_NONE));
	assert_null(audit_type_name(AUDIT_TYPE_COUNT));
	assert_null(audit_type_name((enum audit_type)-3));
	assert_int_equal(audit_type_parse("fhir.nothing"), AUDIT_TYPE_NONE);
	assert_int_equal(audit_type_parse(NULL), AUDIT_TYPE_NONE);
	assert_string_equal(audit_type_name(AUDIT_FHIR_READ), "fhir.read");
	assert_int_equal(audit_type_action(AUDIT_FHIR_CREATE), 'C');
	assert_int_equal(audit_type_action(AUDIT_FHIR_SEARCH), 'E');
}

static void test_canonical_full(void **state)
{
	struct ctx c = CTX_INIT;
	struct buf b = BUF_INIT(AUDIT_RECORD_MAX);
	const char *reasons[] = {"scope:patient/Observation.rs", "consent-permit"};
	struct audit_entity en[2] = {
		{.type = "Observation", .id = "o1", .version = "3", .category = "laboratory"},
		{.type = "Observation", .query = "Observation?code=x&patient=123"},
	};
	char session[AUDIT_HASH_SIZE], token[AUDIT_HASH_SIZE];
	struct audit_event ev = {
		.type = AUDIT_FHIR_READ,
		.time_ms = T0,
		.outcome = 0,
		.agent = {"u1", "alice", "patient", "Patient/123", "portal", NULL},
		.patient = "123",
		.entities = en,
		.n_entities = 2,
		.source = {"192.0.2.1", session, token},
		.authority = {"openid patient/*.rs", "c9", NULL, NULL, reasons, 2},
		.correlation = {"r-1", "4bf92f3577b34da6a3ce929d0e0e4736"},
	};

	(void)state;
	audit_hash_id("session-secret", session);
	audit_hash_id("jti-1", token);
	assert_int_equal(audit_event_serialize(&ev, "node-1", 42, &b, &c), ERR_OK);
	{
		char want[4096];
		snprintf(want, sizeof(want),
			 "{\"v\":1,\"seq\":42,\"node\":\"node-1\",\"time\":\"2026-11-28T19:09:03.123Z\","
			 "\"type\":\"fhir.read\",\"action\":\"R\",\"outcome\":0,"
			 "\"agent\":{\"user\":\"u1\",\"username\":\"alice\",\"role\":\"patient\","
			 "\"fhirUser\":\"Patient/123\",\"client\":\"portal\"},"
			 "\"patient\":\"123\","
			 "\"entity\":[{\"type\":\"Observation\",\"id\":\"o1\",\"version\":\"3\","
			 "\"category\":\"laboratory\"},{\"type\":\"Observation\","
			 "\"query\":\"Observation?code=x&patient=123\"}],"
			 "\"source\":{\"addr\":\"192.0.2.1\",\"session\":\"%s\",\"token\":\"%s\"},"
			 "\"authority\":{\"scopes\":\"openid patient/*.rs\",\"consent\":\"c9\","
			 "\"reasons\":[\"scope:patient/Observation.rs\",\"consent-permit\"]},"
			 "\"correlation\":{\"request\":\"r-1\",\"trace\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}}",
			 session, token);
		assert_string_equal(b.data, want);
	}
	/* it is JSON */
	{
		json_error_t je;
		json_t *j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
		assert_non_null(j);
		json_decref(j);
	}
	buf_release(&b);
}

static void test_canonical_minimal_and_escapes(void **state)
{
	struct ctx c = CTX_INIT;
	struct buf b = BUF_INIT(AUDIT_RECORD_MAX);
	struct audit_event ev = {.type = AUDIT_SYSTEM_START, .time_ms = 1};

	(void)state;
	assert_int_equal(audit_event_serialize(&ev, "n", 0, &b, &c), ERR_OK);
	assert_string_equal(b.data, "{\"v\":1,\"seq\":0,\"node\":\"n\",\"time\":\"1970-01-01T00:00:00.001Z\","
				    "\"type\":\"system.start\",\"action\":\"E\",\"outcome\":0}");
	buf_reset(&b);
	/* quotes, backslashes, control characters; non-ASCII stays as UTF-8 */
	ev.type = AUDIT_SIGNIN_FAILED;
	ev.outcome = AUDIT_MINOR;
	ev.outcome_code = "bad_password";
	ev.agent.username = "a\"b\\c\n\t\x01\x7f\xc3\xa9";
	ev.action = 'E';
	assert_int_equal(audit_event_serialize(&ev, "n", 7, &b, &c), ERR_OK);
	assert_non_null(strstr(b.data, "\"username\":\"a\\\"b\\\\c\\n\\t\\u0001\x7f\xc3\xa9\""));
	assert_non_null(strstr(b.data, "\"outcome\":4,\"outcomeCode\":\"bad_password\""));
	buf_release(&b);
}

static void test_validation(void **state)
{
	struct ctx c = CTX_INIT;
	struct buf b = BUF_INIT(AUDIT_RECORD_MAX);
	struct audit_event ev;
	char big[AUDIT_TEXT_MAX + 2];
	const char *bad_reason[] = {"has space"};
	struct audit_entity empty = {0};

	(void)state;
#define EXPECT(code)                                                                  \
	do {                                                                          \
		ctx_clear(&c);                                                        \
		assert_int_equal(audit_event_serialize(&ev, "n", 1, &b, &c), code);   \
		assert_int_equal(b.len, 0);                                           \
	} while (0)
#define RESET() (ev = (struct audit_event){.type = AUDIT_FHIR_READ, .time_ms = T0})

	RESET();
	assert_int_equal(audit_event_serialize(&ev, "n", 1, &b, &c), ERR_OK);
	buf_reset(&b);
	RESET();
	ev.type = AUDIT_TYPE_NONE;
	EXPECT(ERR_INVALID);
	RESET();
	ev.action = 'X';
	EXPECT(ERR_INVALID);
	RESET();
	ev.outcome = 3;
	EXPECT(ERR_INVALID);
	RESET();
	ev.outcome_code = "Has Capitals";
	EXPECT(ERR_INVALID);
	RESET();
	ev.time_ms = -5;
	EXPECT(ERR_INVALID);
	/* raw secrets are refused: only audit_hash_id() output */
	RESET();
	ev.source.session_hash = "0123456789abcdef0123456789abcdef0123456789a";
	EXPECT(ERR_INVALID);
	assert_non_null(strstr(c.msg, "hashed"));
	RESET();
	ev.source.token_hash = "sha256:tooshort";
	EXPECT(ERR_INVALID);
	RESET();
	ev.agent.user_id = "\xff\xfe";
	EXPECT(ERR_INVALID);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	RESET();
	ev.authority.scopes = big;
	EXPECT(ERR_TOOBIG);
	RESET();
	ev.patient = big;
	EXPECT(ERR_TOOBIG);
	RESET();
	ev.entities = &empty;
	ev.n_entities = 1;
	EXPECT(ERR_INVALID);
	RESET();
	ev.n_entities = AUDIT_ENTITIES_MAX + 1;
	ev.entities = &empty;
	EXPECT(ERR_TOOBIG);
	RESET();
	ev.authority.reasons = bad_reason;
	ev.authority.n_reasons = 1;
	EXPECT(ERR_INVALID);
	/* a record past AUDIT_RECORD_MAX: many long entities */
	{
		struct audit_entity many[AUDIT_ENTITIES_MAX];
		big[AUDIT_TEXT_MAX] = '\0';
		for (int i = 0; i < AUDIT_ENTITIES_MAX; i++)
			many[i] = (struct audit_entity){.type = "Observation", .query = big};
		RESET();
		ev.entities = many;
		ev.n_entities = AUDIT_ENTITIES_MAX;
		EXPECT(ERR_TOOBIG);
	}
	/* bad node ids */
	RESET();
	ctx_clear(&c);
	assert_int_equal(audit_event_serialize(&ev, "has space", 1, &b, &c), ERR_INVALID);
	assert_int_equal(audit_event_serialize(&ev, "", 1, &b, &c), ERR_INVALID);
	buf_release(&b);
#undef EXPECT
#undef RESET
}

static void test_hash_id(void **state)
{
	char a[AUDIT_HASH_SIZE], b[AUDIT_HASH_SIZE];

	(void)state;
	audit_hash_id("abc", a);
	/* SHA-256("abc") = ba7816bf... in base64url */
	assert_string_equal(a, "sha256:ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
	audit_hash_id("abd", b);
	assert_string_not_equal(a, b);
	assert_int_equal(strlen(a), AUDIT_HASH_SIZE - 1);
}

static void test_query_normalize(void **state)
{
	struct fx f;
	struct ctx c = CTX_INIT;
	struct buf b = BUF_INIT(AUDIT_TEXT_MAX);
	const struct audit_param p1[] = {
		{"patient", "123", false}, {"code", "http://loinc.org|1234-5", false}, {"family", "Smith", false},
		{"date", "ge2020-01-01", false}, {"_count", "10", false},
	};
	const struct audit_param p2[] = {
		{"family", "Smith", false}, {"subject", "Patient/999", false}, {"name:contains", "Smi th", false},
		{"subject:Patient.birthdate", "1970-01-01", false}, {"address-use", "home", false},
		{"address-city", "Springfield", false}, {"_has:Observation:patient:identifier", "x|1", false},
		{"status", "a&b=c~d", false},
	};

	(void)state;
	fx_init(&f, "audit-query");
	fx_open(&f, NULL);
	assert_int_equal(audit_query_normalize(f.a, "Observation", p1, 5, "123", &b, &c), ERR_OK);
	/* sorted; the patient's own id and codes readable; the family name hashed */
	{
		const char *want = "Observation?_count=10&code=http://loinc.org|1234-5&"
				   "date=ge2020-01-01&family=~";
		assert_true(strncmp(b.data, want, strlen(want)) == 0);
	}
	assert_non_null(strstr(b.data, "&patient=123"));
	assert_null(strstr(b.data, "Smith"));
	{
		/* equal values hash equally, under the log's own key */
		const char *h = strstr(b.data, "family=~") + 7;
		char first[32];
		snprintf(first, sizeof(first), "%.23s", h);
		assert_int_equal(strlen(first), 23);
		buf_reset(&b);
		assert_int_equal(audit_query_normalize(f.a, "Patient", p2, 8, "123", &b, &c), ERR_OK);
		assert_non_null(strstr(b.data, first));
	}
	assert_null(strstr(b.data, "Smi"));
	assert_null(strstr(b.data, "999"));         /* another patient */
	assert_null(strstr(b.data, "1970"));        /* chained birthdate */
	assert_null(strstr(b.data, "Springfield"));
	assert_null(strstr(b.data, "x|1"));
	assert_non_null(strstr(b.data, "address-use=home"));
	assert_non_null(strstr(b.data, "status=a%26b%3Dc%7Ed"));
	assert_non_null(strstr(b.data, "name:contains=~"));
	assert_true(strncmp(b.data, "Patient?_has:Observation:patient:identifier=~", 45) == 0);
	/* no patient in context: a patient reference is hashed */
	{
		const struct audit_param p3[] = {{"patient", "123", false}};
		buf_reset(&b);
		assert_int_equal(audit_query_normalize(f.a, NULL, p3, 1, NULL, &b, &c), ERR_OK);
		assert_true(strncmp(b.data, "?patient=~", 10) == 0);
		buf_reset(&b);
		assert_int_equal(audit_query_normalize(f.a, "", p3, 1, "123", &b, &c), ERR_OK);
		assert_string_equal(b.data, "?patient=123");
	}
	/* a parameter marked 'hash' (one the search ignored) keeps only a hash of its value */
	{
		const struct audit_param p4[] = {{"status", "final", false}, {"access_token", "eyJ.secret.sig", true}};
		buf_reset(&b);
		assert_int_equal(audit_query_normalize(f.a, "Observation", p4, 2, NULL, &b, &c), ERR_OK);
		assert_null(strstr(b.data, "secret"));
		assert_true(strncmp(b.data, "Observation?access_token=~", 26) == 0);
		assert_non_null(strstr(b.data, "&status=final"));
	}
	/* errors leave the buffer as it was */
	{
		const struct audit_param bad[] = {{NULL, "x", false}};
		const struct audit_param utf[] = {{"name", "\xc3", false}};
		buf_reset(&b);
		buf_adds(&b, "keep");
		assert_int_equal(audit_query_normalize(f.a, "X", bad, 1, NULL, &b, &c), ERR_INVALID);
		assert_int_equal(audit_query_normalize(f.a, "X", utf, 1, NULL, &b, &c), ERR_INVALID);
		assert_int_equal(audit_query_normalize(NULL, "X", utf, 1, NULL, &b, &c), ERR_INVALID);
		assert_string_equal(b.data, "keep");
	}
	/* a different log hashes differently */
	{
		struct fx g;
		struct buf b2 = BUF_INIT(AUDIT_TEXT_MAX);
		fx_init(&g, "audit-query2");
		fx_open(&g, NULL);
		buf_reset(&b);
		assert_int_equal(audit_query_normalize(f.a, "Patient", p2, 1, NULL, &b, &c), ERR_OK);
		assert_int_equal(audit_query_normalize(g.a, "Patient", p2, 1, NULL, &b2, &c), ERR_OK);
		assert_string_not_equal(b.data, b2.data);
		buf_release(&b2);
		fx_release(&g);
	}
	buf_release(&b);
	fx_release(&f);
}

/* audit_hash_value(): a keyed hash per purpose, apart from a searched-for value's. */
static void test_hash_value(void **state)
{
	struct fx f;
	struct ctx c = CTX_INIT;
	struct buf b = BUF_INIT(AUDIT_TEXT_MAX);
	char h1[AUDIT_VALUE_HASH_SIZE], h2[AUDIT_VALUE_HASH_SIZE], h3[AUDIT_VALUE_HASH_SIZE];
	const struct audit_param p[] = {{"family", "veranda-demo", false}};

	(void)state;
	fx_init(&f, "audit-hash-value");
	fx_open(&f, NULL);
	assert_int_equal(audit_hash_value(f.a, "signin-name", "veranda-demo", h1, &c), ERR_OK);
	assert_int_equal(audit_hash_value(f.a, "signin-name", "veranda-demo", h2, &c), ERR_OK);
	assert_int_equal(audit_hash_value(f.a, "signin-name", "veranda-demp", h3, &c), ERR_OK);
	assert_int_equal(strlen(h1), AUDIT_VALUE_HASH_SIZE - 1);
	assert_int_equal(h1[0], '~');
	assert_int_equal(strspn(h1 + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 22);
	assert_string_equal(h1, h2);
	assert_string_not_equal(h1, h3);
	assert_null(strstr(h1, "veranda"));
	/* not the hash a search for the same value records, nor another purpose's */
	assert_int_equal(audit_query_normalize(f.a, "Patient", p, 1, NULL, &b, &c), ERR_OK);
	assert_int_equal(strlen(b.data), strlen("Patient?family=") + AUDIT_VALUE_HASH_SIZE - 1);
	assert_string_not_equal(b.data + strlen("Patient?family="), h1);
	assert_int_equal(audit_hash_value(f.a, "other", "veranda-demo", h2, &c), ERR_OK);
	assert_string_not_equal(h1, h2);
	assert_int_equal(audit_hash_value(NULL, "signin-name", "x", h3, &c), ERR_INVALID);
	assert_string_equal(h3, "");
	assert_int_equal(audit_hash_value(f.a, "", "x", h3, &c), ERR_INVALID);
	buf_release(&b);
	fx_release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalogue),
		cmocka_unit_test(test_canonical_full),
		cmocka_unit_test(test_canonical_minimal_and_escapes),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_hash_id),
		cmocka_unit_test(test_query_normalize),
		cmocka_unit_test(test_hash_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
