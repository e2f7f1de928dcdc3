/*
 * Tests for fhir_index_resource(): rows of every kind from hand-written
 * resources, reference forms and targets, the patient compartment, derived
 * data categories, and 422s that name the element.
 */
#include "unit.h"

#include <math.h>
#include <string.h>

#include "core/json.h"
#include "fhir/model.h"

static const char ANY[] = "<any>";

struct fx {
	struct arena a;
	struct fhir_index ix;
	struct ctx c;
	json_t *res;
	enum err e;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	*state = f;
	return f ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	json_decref(f->res);
	arena_release(&f->a);
	free(f);
	return 0;
}

static enum err run(struct fx *f, const char *type, const char *id, const char *json)
{
	struct ctx pc = CTX_INIT;

	json_decref(f->res);
	arena_release(&f->a);
	ctx_clear(&f->c);
	f->res = json_parse_bounded(json, strlen(json), 64, &pc);
	if (!f->res)
		fail_msg("test JSON does not parse: %s", pc.msg);
	f->e = fhir_index_resource(&f->a, type, id, f->res, &f->ix, &f->c);
	return f->e;
}

static bool field_ok(const char *want, const char *got)
{
	if (want == ANY)
		return true;
	if (!want || !got)
		return want == got;
	return !strcmp(want, got);
}

static size_t count(const struct fx *f, enum store_ix kind, const char *param, const char *a,
		    const char *b, const char *c)
{
	size_t n = 0;

	for (size_t i = 0; i < f->ix.n; i++) {
		const struct store_ix_row *r = &f->ix.rows[i];
		if (r->kind == kind && !strcmp(r->param, param) && field_ok(a, r->a) &&
		    field_ok(b, r->b) && field_ok(c, r->c))
			n++;
	}
	return n;
}

static const struct store_ix_row *find(const struct fx *f, enum store_ix kind, const char *param)
{
	for (size_t i = 0; i < f->ix.n; i++)
		if (f->ix.rows[i].kind == kind && !strcmp(f->ix.rows[i].param, param))
			return &f->ix.rows[i];
	return NULL;
}

static void dump(const struct fx *f)
{
	for (size_t i = 0; i < f->ix.n; i++) {
		const struct store_ix_row *r = &f->ix.rows[i];
		print_message("  %d %s a=%s b=%s c=%s lo=%lld hi=%lld num=%g\n", r->kind, r->param,
			      r->a ? r->a : "-", r->b ? r->b : "-", r->c ? r->c : "-", (long long)r->lo,
			      (long long)r->hi, r->num);
	}
}

static const char *show(const char *s)
{
	return s == ANY ? "*" : s ? s : "-";
}

static void expect_rows(const struct fx *f, size_t n, enum store_ix kind, const char *param,
			const char *a, const char *b, const char *c, int line)
{
	size_t got = count(f, kind, param, a, b, c);

	if (got != n) {
		dump(f);
		fail_msg("line %d: kind %d %s %s|%s|%s: %zu rows, want %zu", line, kind, param, show(a),
			 show(b), show(c), got, n);
	}
}

#define EXPECT(f, n, kind, param, a, b, c) expect_rows(f, n, kind, param, a, b, c, __LINE__)

static bool has_patient(const struct fx *f, const char *id)
{
	for (size_t i = 0; i < f->ix.npatients; i++)
		if (!strcmp(f->ix.patients[i], id))
			return true;
	return false;
}

static const char OBS[] =
	"{\"resourceType\":\"Observation\",\"id\":\"o1\","
	"\"meta\":{\"lastUpdated\":\"2024-01-02T03:04:05.678Z\","
	" \"profile\":[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab\"],"
	" \"security\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"HIV\"}],"
	" \"tag\":[{\"system\":\"urn:t\",\"code\":\"x\"}]},"
	"\"identifier\":[{\"system\":\"urn:lab\",\"value\":\"A-1\",\"type\":{\"text\":\"Filler\","
	"  \"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v2-0203\",\"code\":\"FILL\"}]}}],"
	"\"status\":\"final\","
	"\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\","
	"  \"code\":\"laboratory\",\"display\":\"Laboratory\"}]}],"
	"\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2345-7\",\"display\":\"Glucose\"},"
	"  {\"system\":\"http://loinc.org\",\"code\":\"2345-7\",\"display\":\"Glucose\"},"
	"  {\"system\":\"http://snomed.info/sct\",\"code\":\"33747003\"}],\"text\":\"Glucose [Mass/volume] in Serum\"},"
	"\"subject\":{\"reference\":\"Patient/p1\",\"display\":\"Alice\"},"
	"\"encounter\":{\"reference\":\"Encounter/e1\"},"
	"\"effectiveDateTime\":\"2023-04-05T10:00:00+02:00\","
	"\"issued\":\"2023-04-05T12:00:00Z\","
	"\"performer\":[{\"reference\":\"Practitioner/d1\"},{\"reference\":\"Patient/p1\"},"
	"  {\"reference\":\"Patient/p2\"},{\"display\":\"someone\"}],"
	"\"valueQuantity\":{\"value\":5.4,\"unit\":\"mg/dL\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"mg/dL\"},"
	"\"component\":[{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\"}]},"
	"  \"valueQuantity\":{\"value\":120,\"unit\":\"mmHg\"}}]}";

/* An absolute URL on this server's own base is the local Type/id. */
static void test_local_base(void **state)
{
	struct fx *f = *state;

	fhir_index_set_base("https://other.example/fhir");
	assert_int_equal(run(f, "Observation", "ob",
			     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
			     "\"subject\":{\"reference\":\"https://other.example/fhir/Patient/p9\"}}"),
			 ERR_OK);
	fhir_index_set_base(NULL);
	EXPECT(f, 1, STORE_IX_REFERENCE, "subject", "Patient", "p9", ANY);
	assert_int_equal(f->ix.npatients, 1);
	assert_string_equal(f->ix.patients[0], "p9");
}

static void test_observation(void **state)
{
	struct fx *f = *state;
	const struct store_ix_row *r;

	assert_int_equal(run(f, "Observation", "o1", OBS), ERR_OK);
	/* common */
	/* _id and _lastUpdated are searched on the resource's own columns: no rows */
	EXPECT(f, 0, STORE_IX_TOKEN, "_id", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_TOKEN, "_security", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIV", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "_tag", "urn:t", "x", NULL);
	EXPECT(f, 1, STORE_IX_URI, "_profile", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab", NULL, NULL);
	assert_null(find(f, STORE_IX_DATE, "_lastUpdated"));
	/* tokens: each coding once (duplicates dropped), text as its own row */
	EXPECT(f, 1, STORE_IX_TOKEN, "code", "http://loinc.org", "2345-7", "glucose"); /* text is stored normalized for :text */
	EXPECT(f, 1, STORE_IX_TOKEN, "code", "http://snomed.info/sct", "33747003", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "code", NULL, NULL, "glucose [mass/volume] in serum");
	EXPECT(f, 3, STORE_IX_TOKEN, "code", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_TOKEN, "combo-code", "http://loinc.org", "8480-6", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "combo-code", "http://loinc.org", "2345-7", "glucose");
	EXPECT(f, 1, STORE_IX_TOKEN, "status", NULL, "final", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "category", "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "laboratory");
	EXPECT(f, 1, STORE_IX_TOKEN, "identifier", "urn:lab", "A-1", "filler");
	EXPECT(f, 1, STORE_IX_TOKEN, "identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203", "FILL", "A-1");
	/* quantity with its implicit precision */
	r = find(f, STORE_IX_QUANTITY, "value-quantity");
	assert_non_null(r);
	assert_true(r->num == 5.4);
	assert_true(fabs(r->nlo - 5.35) < 1e-9 && fabs(r->nhi - 5.45) < 1e-9);
	assert_string_equal(r->a, "http://unitsofmeasure.org");
	assert_string_equal(r->b, "mg/dL");
	r = find(f, STORE_IX_QUANTITY, "component-value-quantity");
	assert_non_null(r);
	assert_true(r->num == 120 && r->nlo == 119.5 && r->nhi == 120.5);
	assert_null(r->a);
	assert_string_equal(r->b, "mmHg");    /* unit when there is no code */
	EXPECT(f, 2, STORE_IX_QUANTITY, "combo-value-quantity", ANY, ANY, ANY);
	/* dates: zone applied, second precision */
	r = find(f, STORE_IX_DATE, "date");
	assert_non_null(r);
	assert_int_equal(r->lo, INT64_C(1680652800000) + 8 * 3600000);
	assert_int_equal(r->hi, INT64_C(1680652800000) + 8 * 3600000 + 999);
	/* references and targets */
	EXPECT(f, 1, STORE_IX_REFERENCE, "subject", "Patient", "p1", "Patient/p1");
	EXPECT(f, 0, STORE_IX_REFERENCE, "patient", ANY, ANY, ANY); /* alias of subject */
	EXPECT(f, 1, STORE_IX_REFERENCE, "encounter", "Encounter", "e1", "Encounter/e1");
	EXPECT(f, 3, STORE_IX_REFERENCE, "performer", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "performer", "Practitioner", "d1", "Practitioner/d1");
	/* compartment: subject and performer, each patient once */
	assert_int_equal(f->ix.npatients, 2);
	assert_true(has_patient(f, "p1"));
	assert_true(has_patient(f, "p2"));
	/* derived category */
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, FHIR_CATEGORY_SYSTEM, "labs", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, ANY, ANY);
}

static const char PAT[] =
	"{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
	"\"identifier\":[{\"system\":\"http://hospital.example/mrn\",\"value\":\"12345\"}],"
	"\"name\":[{\"use\":\"official\",\"family\":\"Zo\xc3\xab-M\xc3\xbcller\",\"given\":[\"  Ana  Mar\xc3\xad" "a \",\"Jos\xc3\xa9\"],"
	"  \"prefix\":[\"Dr.\"],\"text\":\"Dr. Ana Mar\xc3\xad" "a Zo\xc3\xab-M\xc3\xbcller\"}],"
	"\"telecom\":[{\"system\":\"phone\",\"value\":\"555-0100\"},{\"system\":\"email\",\"value\":\"ana@example.org\"}],"
	"\"gender\":\"female\",\"birthDate\":\"1980-02\",\"deceasedDateTime\":\"2020-01-01T00:00:00Z\","
	"\"address\":[{\"line\":[\"1 Main St\",\"Apt 2\"],\"city\":\"S\xc3\xa3o Paulo\",\"state\":\"SP\","
	"  \"postalCode\":\"01000-000\",\"country\":\"BR\"}],"
	"\"generalPractitioner\":[{\"reference\":\"Practitioner/d1\"},{\"reference\":\"Location/l1\"}],"
	"\"managingOrganization\":{\"reference\":\"Organization/org1\"},"
	"\"link\":[{\"other\":{\"reference\":\"Patient/p0\"},\"type\":\"replaces\"},"
	"  {\"other\":{\"reference\":\"RelatedPerson/rp1\"},\"type\":\"seealso\"}]}";

static void test_patient(void **state)
{
	struct fx *f = *state;
	const struct store_ix_row *r;

	assert_int_equal(run(f, "Patient", "p1", PAT), ERR_OK);
	EXPECT(f, 1, STORE_IX_STRING, "family", "zoe-muller", "Zo\xc3\xab-M\xc3\xbcller", NULL);
	EXPECT(f, 1, STORE_IX_STRING, "given", "ana maria", "  Ana  Mar\xc3\xad" "a ", NULL);
	EXPECT(f, 1, STORE_IX_STRING, "given", "jose", "Jos\xc3\xa9", NULL);
	EXPECT(f, 1, STORE_IX_STRING, "name", "zoe-muller", ANY, NULL);
	EXPECT(f, 1, STORE_IX_STRING, "name", "dr.", "Dr.", NULL);
	EXPECT(f, 1, STORE_IX_STRING, "name", "dr. ana maria zoe-muller", ANY, NULL);
	EXPECT(f, 5, STORE_IX_STRING, "name", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_STRING, "address", "1 main st", "1 Main St", NULL);
	EXPECT(f, 1, STORE_IX_STRING, "address", "apt 2", "Apt 2", NULL);
	EXPECT(f, 1, STORE_IX_STRING, "address", "sao paulo", ANY, NULL);
	EXPECT(f, 6, STORE_IX_STRING, "address", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_STRING, "address-city", "sao paulo", ANY, NULL);
	EXPECT(f, 1, STORE_IX_STRING, "address-postalcode", "01000-000", ANY, NULL);
	EXPECT(f, 1, STORE_IX_STRING, "address-state", "sp", "SP", NULL);
	EXPECT(f, 2, STORE_IX_TOKEN, "telecom", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_TOKEN, "phone", "phone", "555-0100", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "phone", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_TOKEN, "email", "email", "ana@example.org", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "email", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_TOKEN, "gender", NULL, "female", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "active", NULL, "true", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "identifier", "http://hospital.example/mrn", "12345", NULL);
	r = find(f, STORE_IX_DATE, "birthdate");
	assert_non_null(r);
	assert_int_equal(r->lo, INT64_C(318211200000));                      /* 1980-02-01 */
	assert_int_equal(r->hi, INT64_C(318211200000) + 29 * INT64_C(86400000) - 1);
	assert_non_null(find(f, STORE_IX_DATE, "death-date"));
	/* general-practitioner accepts Practitioner, not Location */
	EXPECT(f, 1, STORE_IX_REFERENCE, "general-practitioner", "Practitioner", "d1", ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "general-practitioner", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "organization", "Organization", "org1", ANY);
	EXPECT(f, 2, STORE_IX_REFERENCE, "link", ANY, ANY, ANY);
	/* compartment: itself and the linked patient, not the RelatedPerson */
	assert_int_equal(f->ix.npatients, 2);
	assert_true(has_patient(f, "p1"));
	assert_true(has_patient(f, "p0"));
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, FHIR_CATEGORY_SYSTEM, "demographics", NULL);
}

static void test_reference_forms(void **state)
{
	struct fx *f = *state;

	assert_int_equal(run(f, "Encounter", "e1",
			     "{\"resourceType\":\"Encounter\",\"status\":\"finished\","
			     "\"class\":{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"AMB\"},"
			     "\"subject\":{\"reference\":\"https://other.example/fhir/Patient/p9/_history/3\"},"
			     "\"participant\":[{\"individual\":{\"reference\":\"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999\"}},"
			     "  {\"individual\":{\"reference\":\"#pr1\"}},"
			     "  {\"individual\":{\"reference\":\"urn:uuid:3b3e5a4e-2f55-4a4c-9d0e-ffffffffffff\"}},"
			     "  {\"individual\":{\"reference\":\"PractitionerRole/r1\"}}],"
			     "\"serviceProvider\":{\"identifier\":{\"system\":\"urn:x\",\"value\":\"1\"}},"
			     "\"period\":{\"start\":\"2023-04-05\"}}"),
			 ERR_OK);
	/* another server's Patient/p9 is not our p9: only the URL is kept, no compartment */
	EXPECT(f, 1, STORE_IX_REFERENCE, "subject", NULL, NULL,
	       "https://other.example/fhir/Patient/p9/_history/3");
	/* "patient" is an alias of "subject" narrowed to Patient: no rows of its own */
	EXPECT(f, 0, STORE_IX_REFERENCE, "patient", ANY, ANY, ANY);
	assert_int_equal(f->ix.npatients, 0);
	/* participant (typed targets): the conditional one (type known) and the role;
	 * '#pr1' and 'urn:' have no knowable type and are left out */
	EXPECT(f, 1, STORE_IX_REFERENCE, "participant", NULL, NULL,
	       "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999");
	EXPECT(f, 1, STORE_IX_REFERENCE, "participant", "PractitionerRole", "r1", "PractitionerRole/r1");
	EXPECT(f, 2, STORE_IX_REFERENCE, "participant", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "practitioner", NULL, NULL, ANY);
	EXPECT(f, 0, STORE_IX_REFERENCE, "service-provider", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_TOKEN, "class", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", NULL);
	/* an open-ended period */
	{
		const struct store_ix_row *r = find(f, STORE_IX_DATE, "date");
		assert_non_null(r);
		assert_int_equal(r->lo, INT64_C(1680652800000));
		assert_true(r->hi == INT64_MAX);
	}
	/* "#id" and "urn:" are kept (c only) where any target is allowed */
	assert_int_equal(run(f, "Observation", "o2",
			     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
			     "\"subject\":{\"reference\":\"urn:uuid:0000\"},"
			     "\"focus\":[{\"reference\":\"#c1\"}],"
			     "\"encounter\":{\"reference\":\"Group/g1\"}}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_REFERENCE, "subject", NULL, NULL, "urn:uuid:0000");
	EXPECT(f, 0, STORE_IX_REFERENCE, "patient", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "focus", NULL, NULL, "#c1");
	EXPECT(f, 0, STORE_IX_REFERENCE, "encounter", ANY, ANY, ANY);
	assert_int_equal(f->ix.npatients, 0);
	EXPECT(f, 1, STORE_IX_TOKEN, "code", NULL, NULL, "x");
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "results-other", NULL);
}

static void test_canonical(void **state)
{
	struct fx *f = *state;

	assert_int_equal(run(f, "QuestionnaireResponse", "qr1",
			     "{\"resourceType\":\"QuestionnaireResponse\",\"status\":\"completed\","
			     "\"questionnaire\":\"http://example.org/fhir/Questionnaire/phq9|1.0\","
			     "\"subject\":{\"reference\":\"Patient/p1\"},\"author\":{\"reference\":\"Patient/p1\"},"
			     "\"authored\":\"2023\"}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_REFERENCE, "questionnaire", NULL, NULL,
	       "http://example.org/fhir/Questionnaire/phq9|1.0");
	assert_int_equal(f->ix.npatients, 1);
	assert_int_equal(run(f, "QuestionnaireResponse", "qr1",
			     "{\"resourceType\":\"QuestionnaireResponse\",\"status\":\"completed\","
			     "\"questionnaire\":\"http://loinc.org/q/44249-1\"}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_REFERENCE, "questionnaire", NULL, NULL, "http://loinc.org/q/44249-1");
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "questionnaires", NULL);
}

static void test_choices_and_timing(void **state)
{
	struct fx *f = *state;

	/* occurrenceString is not a date; onsetString is onset-info */
	assert_int_equal(run(f, "Immunization", "i1",
			     "{\"resourceType\":\"Immunization\",\"status\":\"completed\","
			     "\"vaccineCode\":{\"coding\":[{\"system\":\"http://hl7.org/fhir/sid/cvx\",\"code\":\"140\"}]},"
			     "\"patient\":{\"reference\":\"Patient/p1\"},\"occurrenceString\":\"last spring\","
			     "\"lotNumber\":\"AB  12\"}"),
			 ERR_OK);
	assert_null(find(f, STORE_IX_DATE, "date"));
	EXPECT(f, 1, STORE_IX_STRING, "lot-number", "ab 12", "AB  12", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "vaccine-code", "http://hl7.org/fhir/sid/cvx", "140", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "immunizations", NULL);
	assert_int_equal(run(f, "Condition", "c1",
			     "{\"resourceType\":\"Condition\",\"subject\":{\"reference\":\"Patient/p1\"},"
			     "\"onsetString\":\"As a child\",\"abatementPeriod\":{\"end\":\"2001\"}}"),
			 ERR_OK);
	assert_null(find(f, STORE_IX_DATE, "onset-date"));
	EXPECT(f, 1, STORE_IX_STRING, "onset-info", "as a child", "As a child", NULL);
	{
		const struct store_ix_row *r = find(f, STORE_IX_DATE, "abatement-date");
		assert_non_null(r);
		assert_true(r->lo == INT64_MIN);
		assert_int_equal(r->hi, INT64_C(1009843199999));
	}
	/* Timing events */
	assert_int_equal(run(f, "MedicationRequest", "m1",
			     "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"order\","
			     "\"medicationReference\":{\"reference\":\"Medication/med1\"},"
			     "\"subject\":{\"reference\":\"Patient/p1\"},"
			     "\"dosageInstruction\":[{\"timing\":{\"event\":[\"2023-01-01\",\"2023-01-02\"]}}]}"),
			 ERR_OK);
	EXPECT(f, 2, STORE_IX_DATE, "date", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "medication", "Medication", "med1", ANY);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "medications", NULL);
	assert_int_equal(f->ix.npatients, 1);
}

static void test_numbers(void **state)
{
	struct fx *f = *state;
	const struct store_ix_row *r;

	assert_int_equal(run(f, "Encounter", "e1",
			     "{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":{\"code\":\"AMB\"},"
			     "\"length\":{\"value\":0.001,\"system\":\"http://unitsofmeasure.org\",\"code\":\"d\"}}"),
			 ERR_OK);
	r = find(f, STORE_IX_QUANTITY, "length");
	assert_non_null(r);
	assert_true(fabs(r->nlo - 0.0005) < 1e-12 && fabs(r->nhi - 0.0015) < 1e-12);
	assert_int_equal(run(f, "Encounter", "e1",
			     "{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":{\"code\":\"AMB\"},"
			     "\"length\":{\"value\":1.5e3,\"code\":\"min\"}}"),
			 ERR_OK);
	r = find(f, STORE_IX_QUANTITY, "length");
	assert_non_null(r);
	assert_true(r->num == 1500 && r->nlo == 1499.5 && r->nhi == 1500.5);
}

static void test_categories(void **state)
{
	struct fx *f = *state;

	assert_int_equal(run(f, "Observation", "o",
			     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"BP\"},"
			     "\"category\":[{\"coding\":[{\"code\":\"vital-signs\"}]}]}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, FHIR_CATEGORY_SYSTEM, "vitals", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, ANY, ANY);
	assert_int_equal(run(f, "Observation", "o",
			     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
			     "\"category\":[{\"coding\":[{\"code\":\"social-history\"}]}]}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "results-other", NULL);
	assert_int_equal(run(f, "DiagnosticReport", "d",
			     "{\"resourceType\":\"DiagnosticReport\",\"status\":\"final\",\"code\":{\"text\":\"CBC\"},"
			     "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v2-0074\",\"code\":\"LAB\"}]}],"
			     "\"presentedForm\":[{\"contentType\":\"text/plain\",\"data\":\"aGk=\"}]}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "labs", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "notes", NULL);
	EXPECT(f, 2, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, ANY, ANY);
	assert_int_equal(run(f, "DocumentReference", "dr",
			     "{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
			     "\"category\":[{\"coding\":[{\"code\":\"clinical-note\"}]}],"
			     "\"content\":[{\"attachment\":{\"contentType\":\"text/plain; charset=utf-8\"}}]}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "notes", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "contenttype", NULL, "text/plain; charset=utf-8", NULL);
	assert_int_equal(run(f, "DocumentReference", "dr",
			     "{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
			     "\"content\":[{\"attachment\":{\"contentType\":\"application/pdf\"}}]}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "documents", NULL);
	assert_int_equal(run(f, "Communication", "m",
			     "{\"resourceType\":\"Communication\",\"status\":\"completed\","
			     "\"subject\":{\"reference\":\"Patient/p1\"},\"sender\":{\"reference\":\"Practitioner/d1\"},"
			     "\"recipient\":[{\"reference\":\"Patient/p3\"}],\"sent\":\"2024-05-01T08:00:00Z\"}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "messages", NULL);
	assert_int_equal(f->ix.npatients, 2);
	assert_true(has_patient(f, "p1") && has_patient(f, "p3"));
	assert_int_equal(run(f, "Binary", "b", "{\"resourceType\":\"Binary\",\"contentType\":\"text/plain\"}"),
			 ERR_OK);
	EXPECT(f, 1, STORE_IX_TOKEN, FHIR_CATEGORY_PARAM, ANY, "documents", NULL);
}

static void test_audit_and_appointment_compartment(void **state)
{
	struct fx *f = *state;

	assert_int_equal(run(f, "AuditEvent", "a1",
			     "{\"resourceType\":\"AuditEvent\",\"type\":{\"code\":\"rest\"},\"recorded\":\"2024-01-01T00:00:00Z\","
			     "\"agent\":[{\"who\":{\"reference\":\"Practitioner/d1\"},\"requestor\":true,"
			     "  \"policy\":[\"urn:policy:treatment\"]}],"
			     "\"source\":{\"site\":\"Main Campus\",\"observer\":{\"reference\":\"Device/dev1\"}},"
			     "\"entity\":[{\"what\":{\"reference\":\"Patient/p5\"}},{\"what\":{\"reference\":\"Observation/o1\"}}]}"),
			 ERR_OK);
	assert_int_equal(f->ix.npatients, 1);
	assert_string_equal(f->ix.patients[0], "p5");
	EXPECT(f, 1, STORE_IX_URI, "policy", "urn:policy:treatment", NULL, NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "site", NULL, "Main Campus", NULL);
	EXPECT(f, 1, STORE_IX_TOKEN, "type", NULL, "rest", NULL);
	EXPECT(f, 2, STORE_IX_REFERENCE, "entity", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "source", "Device", "dev1", ANY);
	assert_int_equal(run(f, "Appointment", "ap1",
			     "{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"start\":\"2024-06-01T09:00:00-05:00\","
			     "\"participant\":[{\"actor\":{\"reference\":\"Patient/p1\"},\"status\":\"accepted\"},"
			     "  {\"actor\":{\"reference\":\"Practitioner/d1\"},\"status\":\"accepted\"},"
			     "  {\"actor\":{\"reference\":\"Location/l1\"},\"status\":\"accepted\"}]}"),
			 ERR_OK);
	EXPECT(f, 3, STORE_IX_REFERENCE, "actor", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "patient", "Patient", "p1", ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "practitioner", "Practitioner", "d1", ANY);
	EXPECT(f, 1, STORE_IX_REFERENCE, "location", "Location", "l1", ANY);
	EXPECT(f, 1, STORE_IX_TOKEN, "part-status", NULL, "accepted", NULL);
	assert_int_equal(f->ix.npatients, 1);
}

/* A malformed indexed element: 422 naming it. */
static void expect_422(struct fx *f, const char *type, const char *json, const char *expr,
		       const char *msg_part)
{
	enum err e = run(f, type, "x", json);

	if (e != ERR_UNPROCESSABLE)
		fail_msg("%s: got %d, want 422", json, e);
	if (strcmp(f->c.expr, expr))
		fail_msg("expression '%s', want '%s' (%s)", f->c.expr, expr, f->c.msg);
	if (!strstr(f->c.msg, msg_part))
		fail_msg("message '%s' lacks '%s'", f->c.msg, msg_part);
}

static void test_errors(void **state)
{
	struct fx *f = *state;

	expect_422(f, "Observation",
		   "{\"resourceType\":\"Observation\",\"effectiveDateTime\":\"2023-02-30\"}",
		   "Observation.effectiveDateTime",
		   "invalid dateTime '2023-02-30' in Observation.effectiveDateTime");
	expect_422(f, "Observation",
		   "{\"resourceType\":\"Observation\",\"effectiveDateTime\":\"2023-04-05T10:00:00\"}",
		   "Observation.effectiveDateTime", "with a zone");
	expect_422(f, "Observation", "{\"resourceType\":\"Observation\",\"effectiveDateTime\":20230405}",
		   "Observation.effectiveDateTime", "found a number");
	expect_422(f, "Observation",
		   "{\"resourceType\":\"Observation\",\"effectivePeriod\":{\"start\":\"2023-01-01\",\"end\":\"2023-13\"}}",
		   "Observation.effectivePeriod.end", "invalid dateTime '2023-13'");
	expect_422(f, "Observation",
		   "{\"resourceType\":\"Observation\",\"effectivePeriod\":{\"start\":\"2023-02-01\",\"end\":\"2023-01-01\"}}",
		   "Observation.effectivePeriod", "starts after it ends");
	expect_422(f, "Observation", "{\"resourceType\":\"Observation\",\"subject\":{\"reference\":42}}",
		   "Observation.subject.reference", "must be a string");
	expect_422(f, "Observation", "{\"resourceType\":\"Observation\",\"subject\":{\"reference\":\"Patient/a b\"}}",
		   "Observation.subject.reference", "invalid reference 'Patient/a b'");
	expect_422(f, "Observation", "{\"resourceType\":\"Observation\",\"subject\":{\"reference\":\"\"}}",
		   "Observation.subject.reference", "empty reference");
	expect_422(f, "Observation", "{\"resourceType\":\"Observation\",\"subject\":[1]}",
		   "Observation.subject[0]", "expected a Reference object");
	expect_422(f, "Observation",
		   "{\"resourceType\":\"Observation\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2345 -7 \"}]}}",
		   "Observation.code.coding[0].code", "invalid code '2345 -7 '");
	expect_422(f, "Observation",
		   "{\"resourceType\":\"Observation\",\"code\":{\"coding\":{\"code\":\"x\"}}}",
		   "Observation.code.coding", "expected an array of Coding");
	expect_422(f, "Observation",
		   "{\"resourceType\":\"Observation\",\"code\":{\"coding\":[{\"system\":7,\"code\":\"x\"}]}}",
		   "Observation.code.coding[0].system", "expected a string");
	expect_422(f, "Observation", "{\"resourceType\":\"Observation\",\"status\":\"  final\"}",
		   "Observation.status", "invalid code");
	expect_422(f, "Observation", "{\"resourceType\":\"Observation\",\"status\":3}",
		   "Observation.status", "found a number");
	expect_422(f, "Observation",
		   "{\"resourceType\":\"Observation\",\"valueQuantity\":{\"value\":\"5.4\"}}",
		   "Observation.valueQuantity.value", "must be a JSON number");
	expect_422(f, "Patient", "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"Ann\",7]}]}",
		   "Patient.name[0].given[1]", "expected a string");
	expect_422(f, "Patient", "{\"resourceType\":\"Patient\",\"name\":\"Ann\"}",
		   "Patient.name", "expected an object");
	expect_422(f, "Patient", "{\"resourceType\":\"Patient\",\"birthDate\":\"1980-02-30\"}",
		   "Patient.birthDate", "invalid date '1980-02-30'");
	/* meta.lastUpdated is the server's to set: a client's value is replaced, not indexed */
	expect_422(f, "Patient", "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":[\"a b\"]}}",
		   "Patient.meta.profile[0]", "invalid uri");
	expect_422(f, "Patient",
		   "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:x\",\"value\":5}]}",
		   "Patient.identifier[0].value", "expected a string");
	assert_int_equal(run(f, "Nope", "x", "{}"), ERR_INVALID);
}

static void test_empty_and_nulls(void **state)
{
	struct fx *f = *state;

	assert_int_equal(run(f, "Patient", NULL,
			     "{\"resourceType\":\"Patient\",\"name\":[null,{\"given\":[null,\"A\"]}],\"telecom\":[]}"),
			 ERR_OK);
	EXPECT(f, 0, STORE_IX_TOKEN, "_id", ANY, ANY, ANY);
	EXPECT(f, 1, STORE_IX_STRING, "given", "a", "A", NULL);
	assert_int_equal(f->ix.npatients, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_observation),
		T(test_patient),
		T(test_reference_forms),
		T(test_local_base),
		T(test_canonical),
		T(test_choices_and_timing),
		T(test_numbers),
		T(test_categories),
		T(test_audit_and_appointment_compartment),
		T(test_errors),
		T(test_empty_and_nulls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
