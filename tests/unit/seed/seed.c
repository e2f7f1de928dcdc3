/*
 * tests/unit/seed/seed.c - the synthetic population generator: determinism,
 * referential order, the demo people and their records, dates, sensitivity
 * labels, and error propagation from the emit callback.
 */
#include "unit.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "seed/seed.h"

/* 2025-06-15T12:00:00Z */
#define TODAY_MS INT64_C(1749988800000)

/* ---- a collecting emit callback ---- */

struct demo_stats {
	const char *id;
	int age;
	unsigned labs_with_range, prelim, corrected, upcoming, refillable;
	unsigned sens_notes;        /* bit mask: 1 PSY, 2 SEX, 4 ETH */
	unsigned labelled;          /* resources with meta.security */
	unsigned notes;
	bool patient_seen;
	int age_found;
};

struct sink {
	uint64_t hash;
	unsigned long count;
	unsigned long fail_at;      /* return ERR_IO on this call (1-based); 0 = never */
	unsigned long calls;
	json_t *seen;               /* "Type/id" -> true */
	bool check_refs;
	unsigned long bad_refs, bad_ids, dup_ids, bad_dates, future;
	char first_bad[256];
	struct demo_stats demo[6];
	/* generated people */
	unsigned long patients;
	unsigned long per_person_min, per_person_max, per_person_cur;
	unsigned long per_person_sum, persons_closed;
	bool in_generated;
	int cur_age;
	unsigned long child_labelled;   /* sensitivity labels on a child's record */
	unsigned long labelled, prelim, corrected;
	unsigned ages[4];           /* child, adolescent, adult, elderly */
	unsigned accented;
	unsigned long resource_types[32];
};

static const char *const demo_ids[6] = {
	SEED_PATIENT_ALICE, SEED_PATIENT_BOB_CHILD, SEED_PATIENT_BOB_MOTHER,
	SEED_PATIENT_BOB, SEED_PATIENT_ERIN, SEED_PATIENT_FRANK,
};
static const int demo_ages[6] = {35, 8, 82, 48, 15, 45};

static void sink_init(struct sink *s, bool check_refs)
{
	memset(s, 0, sizeof(*s));
	s->hash = UINT64_C(1469598103934665603);
	s->seen = json_object();
	s->check_refs = check_refs;
	s->per_person_min = (unsigned long)-1;
	for (int i = 0; i < 6; i++) {
		s->demo[i].id = demo_ids[i];
		s->demo[i].age = demo_ages[i];
		s->demo[i].age_found = -1;
	}
}

static void sink_release(struct sink *s)
{
	json_decref(s->seen);
}

static void fnv(struct sink *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		s->hash ^= (unsigned char)p[i];
		s->hash *= UINT64_C(1099511628211);
	}
}

static void bad(struct sink *s, unsigned long *counter, const char *what, const char *detail)
{
	(*counter)++;
	if (!s->first_bad[0])
		snprintf(s->first_bad, sizeof(s->first_bad), "%s: %s", what, detail);
}

static bool id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= 'a' && id[i] <= 'z') ||
		      (id[i] >= '0' && id[i] <= '9') || id[i] == '-' || id[i] == '.'))
			return false;
	return true;
}

/* Milliseconds of a "YYYY-MM-DDThh:mm:ss(Z|+00:00)" string; -1 if it is not one. */
static int64_t parse_dt(const char *s)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, se, used = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &used) != 6)
		return -1;
	if (strcmp(s + used, "Z") != 0 && strcmp(s + used, "+00:00") != 0)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	return (int64_t)timegm(&tm) * 1000;
}

static bool is_past_key(const char *key)
{
	static const char *const keys[] = {
		"effectiveDateTime", "issued", "authoredOn", "occurrenceDateTime", "sent",
		"received", "onsetDateTime", "recordedDate", "recorded", "abatementDateTime",
		"creation", "date",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i], key) == 0)
			return true;
	return false;
}

/* Walk every value: references must resolve, dateTimes must carry a zone. */
static void walk(struct sink *s, const char *key, json_t *v)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) walk(s, k, x);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) walk(s, key, x);
	} else if (json_is_string(v)) {
		const char *str = json_string_value(v);
		size_t n = strlen(str);
		if (key && strcmp(key, "reference") == 0 && s->check_refs &&
		    !json_object_get(s->seen, str))
			bad(s, &s->bad_refs, "dangling reference", str);
		if (n >= 11 && str[4] == '-' && str[7] == '-' && str[10] == 'T' &&
		    str[0] >= '0' && str[0] <= '9') {
			int64_t ms = parse_dt(str);
			if (ms < 0)
				bad(s, &s->bad_dates, "bad dateTime", str);
			else if (key && is_past_key(key) && ms > TODAY_MS)
				bad(s, &s->future, key, str);
		}
	}
}

static const char *patient_of(json_t *r)
{
	const char *ref = json_string_value(json_object_get(json_object_get(r, "subject"), "reference"));
	size_t i;
	json_t *p;

	if (!ref)
		ref = json_string_value(json_object_get(json_object_get(r, "patient"), "reference"));
	if (!ref && json_object_get(r, "participant")) {
		json_array_foreach(json_object_get(r, "participant"), i, p) {
			const char *a = json_string_value(json_object_get(json_object_get(p, "actor"), "reference"));
			if (a && strncmp(a, "Patient/", 8) == 0) {
				ref = a;
				break;
			}
		}
	}
	if (ref && strncmp(ref, "Patient/", 8) == 0)
		return ref + 8;
	return NULL;
}

static bool has_code(json_t *cc, const char *system, const char *code)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(cc, "coding"), i, c)
		if (strcmp(json_string_value(json_object_get(c, "system")), system) == 0 &&
		    strcmp(json_string_value(json_object_get(c, "code")), code) == 0)
			return true;
	return false;
}

static bool has_security(json_t *r, const char *code)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(json_object_get(r, "meta"), "security"), i, c)
		if (strcmp(json_string_value(json_object_get(c, "code")), code) == 0)
			return true;
	return false;
}

static int age_of(const char *birth, int64_t today_ms)
{
	int by, bm, bd, ty, tm_, td;
	time_t t = (time_t)(today_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	ty = tm.tm_year + 1900;
	tm_ = tm.tm_mon + 1;
	td = tm.tm_mday;
	if (sscanf(birth, "%4d-%2d-%2d", &by, &bm, &bd) != 3)
		return -1;
	return ty - by - (tm_ < bm || (tm_ == bm && td < bd));
}

static void demo_account(struct sink *s, const char *type, json_t *r, const char *pid)
{
	struct demo_stats *d = NULL;

	for (int i = 0; i < 6; i++)
		if (strcmp(demo_ids[i], pid) == 0)
			d = &s->demo[i];
	if (!d)
		return;
	if (json_object_get(json_object_get(r, "meta"), "security"))
		d->labelled++;
	if (strcmp(type, "Observation") == 0) {
		json_t *cat = json_array_get(json_object_get(r, "category"), 0);
		const char *st = json_string_value(json_object_get(r, "status"));
		if (has_code(cat, "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")) {
			json_t *code = json_object_get(r, "code");
			json_t *rr = json_array_get(json_object_get(r, "referenceRange"), 0);
			json_t *c0 = json_array_get(json_object_get(code, "coding"), 0);
			if (strcmp(json_string_value(json_object_get(c0, "system")), "http://loinc.org") == 0 &&
			    rr && (json_object_get(rr, "low") || json_object_get(rr, "high")) &&
			    json_object_get(r, "valueQuantity"))
				d->labs_with_range++;
			if (strcmp(st, "preliminary") == 0)
				d->prelim++;
			if (strcmp(st, "corrected") == 0)
				d->corrected++;
		}
	} else if (strcmp(type, "Appointment") == 0) {
		const char *st = json_string_value(json_object_get(r, "status"));
		int64_t start = parse_dt(json_string_value(json_object_get(r, "start")));
		if (strcmp(st, "booked") == 0 && start > TODAY_MS &&
		    json_array_size(json_object_get(r, "participant")) == 3)
			d->upcoming++;
	} else if (strcmp(type, "MedicationRequest") == 0) {
		json_t *n = json_object_get(json_object_get(r, "dispenseRequest"), "numberOfRepeatsAllowed");
		if (strcmp(json_string_value(json_object_get(r, "status")), "active") == 0 &&
		    json_integer_value(n) > 0)
			d->refillable++;
	} else if (strcmp(type, "DocumentReference") == 0) {
		json_t *att = json_object_get(json_array_get(json_object_get(r, "content"), 0), "attachment");
		const char *b64 = json_string_value(json_object_get(att, "data"));
		unsigned char out[4096];
		int n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)strlen(b64));
		assert_true(n > 0 && n < (int)sizeof(out));
		out[n] = '\0';
		assert_non_null(strstr((char *)out, "Patient: "));
		assert_string_equal(json_string_value(json_object_get(att, "contentType")), "text/plain");
		d->notes++;
		if (has_security(r, "PSY"))
			d->sens_notes |= 1;
		if (has_security(r, "SEX"))
			d->sens_notes |= 2;
		if (has_security(r, "ETH"))
			d->sens_notes |= 4;
	}
}

static void close_person(struct sink *s)
{
	if (!s->in_generated)
		return;
	if (s->per_person_cur < s->per_person_min)
		s->per_person_min = s->per_person_cur;
	if (s->per_person_cur > s->per_person_max)
		s->per_person_max = s->per_person_cur;
	s->per_person_sum += s->per_person_cur;
	s->persons_closed++;
}

static const char *const type_names[] = {
	"Organization", "Location", "Practitioner", "PractitionerRole", "Patient", "RelatedPerson",
	"CareTeam", "AllergyIntolerance", "Condition", "Appointment", "Encounter", "Observation",
	"DiagnosticReport", "MedicationRequest", "Immunization", "DocumentReference",
	"Communication", "Goal", "CarePlan",
};

static enum err collect(void *arg, json_t *r)
{
	struct sink *s = arg;
	char *text;
	const char *type = json_string_value(json_object_get(r, "resourceType"));
	const char *id = json_string_value(json_object_get(r, "id"));
	char key[160];

	s->calls++;
	if (s->fail_at && s->calls == s->fail_at)
		return ERR_IO;
	assert_non_null(type);
	assert_non_null(id);
	text = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(text);
	fnv(s, text, strlen(text));
	free(text);
	s->count++;
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (strcmp(type_names[i], type) == 0)
			s->resource_types[i]++;

	if (!id_valid(id))
		bad(s, &s->bad_ids, "bad id", id);
	snprintf(key, sizeof(key), "%s/%s", type, id);
	walk(s, NULL, r);
	if (json_object_get(s->seen, key))
		bad(s, &s->dup_ids, "duplicate id", key);
	json_object_set_new(s->seen, key, json_true());

	if (strcmp(type, "Patient") == 0) {
		const char *birth = json_string_value(json_object_get(r, "birthDate"));
		int age = age_of(birth, TODAY_MS);
		bool demo = false;

		close_person(s);
		for (int i = 0; i < 6; i++)
			if (strcmp(demo_ids[i], id) == 0) {
				s->demo[i].patient_seen = true;
				s->demo[i].age_found = age;
				demo = true;
			}
		s->in_generated = !demo;
		s->per_person_cur = 0;
		s->cur_age = age;
		if (!demo) {
			json_t *name = json_array_get(json_object_get(r, "name"), 0);
			char *n = json_dumps(name, JSON_ENSURE_ASCII);
			s->patients++;
			s->ages[age < 12 ? 0 : age < 18 ? 1 : age < 65 ? 2 : 3]++;
			if (strstr(n, "\\u"))
				s->accented++;
			free(n);
		}
	}
	s->per_person_cur++;
	if (s->in_generated && json_object_get(json_object_get(r, "meta"), "security")) {
		s->labelled++;
		if (s->cur_age < 12)
			s->child_labelled++;
	}
	if (s->in_generated && strcmp(type, "Observation") == 0) {
		const char *st = json_string_value(json_object_get(r, "status"));
		s->prelim += strcmp(st, "preliminary") == 0;
		s->corrected += strcmp(st, "corrected") == 0;
	}
	{
		const char *pid = patient_of(r);
		if (pid)
			demo_account(s, type, r, pid);
	}
	return ERR_OK;
}

static enum err run(struct sink *s, unsigned patients, uint64_t seed, int64_t today)
{
	struct seed_opts o = {patients, seed, today};
	struct ctx c = CTX_INIT;
	enum err e = seed_generate(&o, collect, s, &c);

	close_person(s);
	s->in_generated = false;
	return e;
}

/* ---- tests ---- */

static void test_deterministic(void **state)
{
	struct sink a, b, d;

	(void)state;
	sink_init(&a, false);
	sink_init(&b, false);
	sink_init(&d, false);
	assert_int_equal(run(&a, 30, 42, TODAY_MS), ERR_OK);
	assert_int_equal(run(&b, 30, 42, TODAY_MS), ERR_OK);
	assert_int_equal(run(&d, 30, 43, TODAY_MS), ERR_OK);
	assert_int_equal(a.count, b.count);
	assert_true(a.hash == b.hash);
	assert_true(a.hash != d.hash);
	sink_release(&a);
	sink_release(&b);
	sink_release(&d);
}

/* Only the day of today_ms matters. */
static void test_same_day_same_bytes(void **state)
{
	struct sink a, b;

	(void)state;
	sink_init(&a, false);
	sink_init(&b, false);
	assert_int_equal(run(&a, 10, 5, TODAY_MS - 12 * 3600 * 1000), ERR_OK);       /* 00:00 */
	assert_int_equal(run(&b, 10, 5, TODAY_MS + 11 * 3600 * 1000 + 59999), ERR_OK); /* 23:00:59 */
	assert_int_equal(a.count, b.count);
	assert_true(a.hash == b.hash);
	sink_release(&a);
	sink_release(&b);
}

/* A person's record does not depend on how many people come after it. */
static void test_prefix_stable(void **state)
{
	struct sink a, b;

	(void)state;
	sink_init(&a, false);
	sink_init(&b, false);
	assert_int_equal(run(&a, 5, 7, TODAY_MS), ERR_OK);
	b.fail_at = a.count + 1;
	assert_int_equal(run(&b, 50, 7, TODAY_MS), ERR_IO);
	assert_int_equal(b.count, a.count);
	assert_true(a.hash == b.hash);
	sink_release(&a);
	sink_release(&b);
}

static void test_population(void **state)
{
	struct sink s;
	int64_t t0 = clock_mono_us();
	double avg;

	(void)state;
	sink_init(&s, true);
	assert_int_equal(run(&s, 100, 1, TODAY_MS), ERR_OK);
	if (s.first_bad[0])
		fprintf(stderr, "first problem: %s\n", s.first_bad);
	assert_int_equal(s.bad_refs, 0);
	assert_int_equal(s.bad_ids, 0);
	assert_int_equal(s.dup_ids, 0);
	assert_int_equal(s.bad_dates, 0);
	assert_int_equal(s.future, 0);
	assert_int_equal(s.patients, 100);
	avg = (double)s.per_person_sum / (double)s.persons_closed;
	fprintf(stderr, "seed: 100 patients -> %lu resources in %.1f ms (under ASan); "
		"per generated person min %lu avg %.1f max %lu; ages %u/%u/%u/%u; accented names %u\n",
		s.count, (double)(clock_mono_us() - t0) / 1000.0, s.per_person_min, avg,
		s.per_person_max, s.ages[0], s.ages[1], s.ages[2], s.ages[3], s.accented);
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		fprintf(stderr, "  %-20s %lu\n", type_names[i], s.resource_types[i]);
	assert_true(s.per_person_min >= 20);
	assert_true(s.per_person_max <= 140);
	assert_true(avg >= 40 && avg <= 95);
	for (int i = 0; i < 4; i++)
		assert_true(s.ages[i] > 0);
	assert_true(s.accented > 0);
	/* Sensitive records exist, never for children; some results are not final. */
	assert_true(s.labelled > 0);
	assert_int_equal(s.child_labelled, 0);
	assert_true(s.prelim > 0);
	assert_true(s.corrected > 0);
	/* Every type is represented. */
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		assert_true(s.resource_types[i] > 0);
	assert_int_equal(s.resource_types[2], 20); /* practitioners */
	sink_release(&s);
}

static void test_demo_people(void **state)
{
	struct sink s;

	(void)state;
	sink_init(&s, true);
	assert_int_equal(run(&s, 0, 1, TODAY_MS), ERR_OK);
	assert_int_equal(s.bad_refs, 0);
	assert_non_null(json_object_get(s.seen, "Practitioner/" SEED_PRACTITIONER_DRSMITH));
	assert_non_null(json_object_get(s.seen, "RelatedPerson/" SEED_RELATED_BOB_CHILD));
	assert_non_null(json_object_get(s.seen, "RelatedPerson/" SEED_RELATED_BOB_MOTHER));
	assert_non_null(json_object_get(s.seen, "RelatedPerson/" SEED_RELATED_FRANK));
	for (int i = 0; i < 6; i++) {
		struct demo_stats *d = &s.demo[i];
		if (!d->patient_seen || d->age_found != d->age || !d->labs_with_range || !d->prelim ||
		    !d->corrected || !d->upcoming || !d->refillable || !d->notes)
			fprintf(stderr, "%s: seen %d age %d labs %u prelim %u corrected %u upcoming %u "
				"refillable %u notes %u\n", d->id, d->patient_seen, d->age_found,
				d->labs_with_range, d->prelim, d->corrected, d->upcoming, d->refillable,
				d->notes);
		assert_true(d->patient_seen);
		assert_int_equal(d->age_found, d->age);
		assert_true(d->labs_with_range >= 5);
		assert_true(d->prelim > 0);
		assert_true(d->corrected > 0);
		assert_true(d->upcoming > 0);
		assert_true(d->refillable > 0);
		assert_true(d->notes > 0);
	}
	assert_true(s.demo[0].sens_notes & 1);   /* alice: mental health */
	assert_true(s.demo[4].sens_notes & 2);   /* erin: sexual health */
	assert_true(s.demo[5].sens_notes & 4);   /* frank: substance use */
	assert_int_equal(s.demo[1].labelled, 0); /* the 8-year-old: nothing sensitive */
	sink_release(&s);
}

/* The relationships and links the proxy rules rely on. */
static enum err find_related(void *arg, json_t *r)
{
	json_t *out = arg;
	const char *type = json_string_value(json_object_get(r, "resourceType"));

	if (strcmp(type, "RelatedPerson") == 0 || strcmp(type, "Patient") == 0) {
		char key[128];
		snprintf(key, sizeof(key), "%s/%s", type, json_string_value(json_object_get(r, "id")));
		json_object_set(out, key, r);
	}
	return ERR_OK;
}

static void test_demo_relations(void **state)
{
	json_t *all = json_object();
	struct seed_opts o = {0, 1, TODAY_MS};
	struct ctx c = CTX_INIT;
	json_t *rp, *bob, *frank;
	const struct {
		const char *rp, *patient, *rel;
	} want[] = {
		{SEED_RELATED_BOB_CHILD, "Patient/" SEED_PATIENT_BOB_CHILD, "FTH"},
		{SEED_RELATED_BOB_MOTHER, "Patient/" SEED_PATIENT_BOB_MOTHER, "CHILD"},
		{SEED_RELATED_FRANK, "Patient/" SEED_PATIENT_ERIN, "FTH"},
	};

	(void)state;
	assert_int_equal(seed_generate(&o, find_related, all, &c), ERR_OK);
	for (size_t i = 0; i < 3; i++) {
		char key[96];
		json_t *rel;
		snprintf(key, sizeof(key), "RelatedPerson/%s", want[i].rp);
		rp = json_object_get(all, key);
		assert_non_null(rp);
		assert_string_equal(json_string_value(json_object_get(json_object_get(rp, "patient"), "reference")),
				    want[i].patient);
		rel = json_array_get(json_object_get(rp, "relationship"), 0);
		assert_true(has_code(rel, "http://terminology.hl7.org/CodeSystem/v3-RoleCode", want[i].rel));
	}
	bob = json_object_get(all, "Patient/" SEED_PATIENT_BOB);
	frank = json_object_get(all, "Patient/" SEED_PATIENT_FRANK);
	assert_int_equal(json_array_size(json_object_get(bob, "link")), 2);
	assert_int_equal(json_array_size(json_object_get(frank, "link")), 1);
	{
		json_t *alice = json_object_get(all, "Patient/" SEED_PATIENT_ALICE);
		json_t *name = json_array_get(json_object_get(alice, "name"), 0);
		assert_string_equal(json_string_value(json_array_get(json_object_get(name, "given"), 0)),
				    "Alice");
		assert_string_equal(json_string_value(json_object_get(name, "family")), "Walker");
	}
	json_decref(all);
}

/* Ages hold whatever the day: leap days, year ends, year starts. */
static void test_ages_any_day(void **state)
{
	static const int64_t days[] = {
		INT64_C(1709164800000),  /* 2024-02-29T00:00:00Z */
		INT64_C(1709251199000),  /* 2024-02-29T23:59:59Z */
		INT64_C(1735689599000),  /* 2024-12-31T23:59:59Z */
		INT64_C(1735689600000),  /* 2025-01-01T00:00:00Z */
		INT64_C(1740787200000),  /* 2025-03-01T00:00:00Z */
		INT64_C(4102444800000),  /* 2100-01-01T00:00:00Z */
	};

	(void)state;
	for (size_t k = 0; k < sizeof(days) / sizeof(days[0]); k++) {
		struct sink s;
		struct seed_opts o = {3, 9, days[k]};
		struct ctx c = CTX_INIT;

		sink_init(&s, true);
		assert_int_equal(seed_generate(&o, collect, &s, &c), ERR_OK);
		assert_int_equal(s.bad_refs, 0);
		for (int i = 0; i < 6; i++)
			assert_true(s.demo[i].patient_seen);
		sink_release(&s);
		/* The sink computes ages against TODAY_MS; recheck against this day. */
		{
			json_t *all = json_object();
			assert_int_equal(seed_generate(&o, find_related, all, &c), ERR_OK);
			for (int i = 0; i < 6; i++) {
				char key[64];
				snprintf(key, sizeof(key), "Patient/%s", demo_ids[i]);
				assert_int_equal(age_of(json_string_value(json_object_get(
						     json_object_get(all, key), "birthDate")), days[k]),
						 demo_ages[i]);
			}
			json_decref(all);
		}
	}
}

static void test_emit_error_stops(void **state)
{
	static const unsigned long at[] = {1, 2, 57, 400, 2500};

	(void)state;
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		struct sink s;
		struct seed_opts o = {40, 3, TODAY_MS};
		struct ctx c = CTX_INIT;

		sink_init(&s, false);
		s.fail_at = at[i];
		assert_int_equal(seed_generate(&o, collect, &s, &c), ERR_IO);
		assert_int_equal(s.calls, at[i]);
		assert_int_equal(c.code, ERR_IO);
		assert_non_null(strstr(c.msg, "seed resource"));
		sink_release(&s);
	}
}

static void test_invalid_options(void **state)
{
	struct seed_opts o = {1, 1, 0};
	struct ctx c = CTX_INIT;
	struct sink s;

	(void)state;
	sink_init(&s, false);
	assert_int_equal(seed_generate(&o, collect, &s, &c), ERR_INVALID);
	assert_int_equal(s.calls, 0);
	ctx_clear(&c);
	o.today_ms = TODAY_MS;
	assert_int_equal(seed_generate(&o, NULL, &s, &c), ERR_INVALID);
	assert_int_equal(seed_generate(NULL, collect, &s, &c), ERR_INVALID);
	sink_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_same_day_same_bytes),
		cmocka_unit_test(test_prefix_stable),
		cmocka_unit_test(test_population),
		cmocka_unit_test(test_demo_people),
		cmocka_unit_test(test_demo_relations),
		cmocka_unit_test(test_ages_any_day),
		cmocka_unit_test(test_emit_error_stops),
		cmocka_unit_test(test_invalid_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
