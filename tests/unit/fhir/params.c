/* Tests for the type and search parameter tables and their lookups. */
#include "unit.h"

#include <string.h>

#include "fhir/model.h"

/* The parameters each type must have (US Core 6 required/recommended, and more). */
static const struct {
	const char *type;
	const char *codes;    /* space separated */
} expected[] = {
	{"Observation", "patient subject category code date status value-quantity value-concept "
			"value-string combo-code encounter performer based-on"},
	{"Condition", "patient subject category clinical-status verification-status code onset-date "
		      "abatement-date recorded-date encounter"},
	{"MedicationRequest", "patient subject status intent authoredon medication encounter requester "
			      "category"},
	{"Encounter", "patient subject date status class type identifier participant practitioner "
		      "location service-provider reason-code"},
	{"DiagnosticReport", "patient subject category code date status encounter result performer "
			     "issued"},
	{"DocumentReference", "patient subject category type date status period identifier author "
			      "encounter contenttype"},
	{"Appointment", "patient actor practitioner location date status service-type identifier"},
	{"Communication", "patient subject recipient sender sent received status category encounter"},
	{"Patient", "identifier name family given birthdate gender telecom phone email address "
		    "address-city address-postalcode address-state death-date general-practitioner "
		    "organization active"},
	{"Practitioner", "name family given identifier active"},
	{"PractitionerRole", "practitioner organization role specialty identifier"},
	{"Organization", "name identifier address type active"},
	{"Location", "name identifier address organization type status"},
	{"RelatedPerson", "patient name identifier relationship active"},
	{"CareTeam", "patient subject status category participant"},
	{"CarePlan", "patient subject status category date intent"},
	{"Goal", "patient subject lifecycle-status target-date description"},
	{"ServiceRequest", "patient subject status intent code category authored requester"},
	{"Procedure", "patient subject code date status encounter"},
	{"AllergyIntolerance", "patient clinical-status verification-status code category criticality "
			       "onset"},
	{"Immunization", "patient date status vaccine-code lot-number"},
	{"Medication", "code status form ingredient"},
	{"Device", "patient type status identifier udi-di"},
	{"Questionnaire", "url name title status code version"},
	{"QuestionnaireResponse", "patient subject questionnaire status authored author"},
	{"Consent", "patient status category date scope action actor period"},
	{"Provenance", "target patient agent recorded"},
	{"Task", "patient owner status code intent focus for requester authored-on business-status"},
	{"AuditEvent", "patient agent date type subtype action outcome entity source policy site"},
};

static void test_types(void **state)
{
	size_t n = 0;
	(void)state;

	for (const struct fhir_type *t = fhir_types; t->name; t++, n++) {
		if (n > 0)
			assert_true(strcmp(t[-1].name, t->name) < 0);
		assert_ptr_equal(fhir_type_find(t->name), t);
	}
	assert_int_equal(n, 30);
	assert_null(fhir_type_find("Foo"));
	assert_null(fhir_type_find("patient"));
	assert_null(fhir_type_find(""));
	assert_null(fhir_type_find(NULL));
	assert_true(fhir_type_find("AuditEvent")->flags & FHIR_TYPE_SERVER_WRITES_ONLY);
	assert_false(fhir_type_find("Patient")->flags & FHIR_TYPE_SERVER_WRITES_ONLY);
	assert_non_null(fhir_type_find("Binary"));
}

static void test_id_valid(void **state)
{
	char long_id[70];
	(void)state;

	assert_true(fhir_id_valid("a"));
	assert_true(fhir_id_valid("Abc-123.x"));
	assert_true(fhir_id_valid("0023b3a7-2ded-840c-ee5b-6b123fdcfb0b"));
	memset(long_id, 'a', 64);
	long_id[64] = '\0';
	assert_true(fhir_id_valid(long_id));
	long_id[64] = 'a';
	long_id[65] = '\0';
	assert_false(fhir_id_valid(long_id));
	assert_false(fhir_id_valid(""));
	assert_false(fhir_id_valid(NULL));
	assert_false(fhir_id_valid("a b"));
	assert_false(fhir_id_valid("a_b"));
	assert_false(fhir_id_valid("a/b"));
	assert_false(fhir_id_valid("\xc3\xa9"));
}

static void test_table_sorted_and_complete(void **state)
{
	const struct fhir_param *p, *prev = NULL;
	(void)state;

	for (p = fhir_params; p->code; prev = p, p++) {
		if (prev) {
			int r = strcmp(prev->type ? prev->type : "", p->type ? p->type : "");
			if (r > 0 || (r == 0 && strcmp(prev->code, p->code) >= 0))
				fail_msg("table out of order at %s %s", p->type, p->code);
		}
		if (p->type && !fhir_type_find(p->type))
			fail_msg("unknown type %s", p->type);
		assert_non_null(p->path);
		assert_true(p->path[0] != '\0');
		assert_non_null(p->expression);
		assert_non_null(p->description);
		assert_true(p->description[0] != '\0');
		if (p->type && p->expression[0] != '(' && strncmp(p->expression, p->type, strlen(p->type)))
			fail_msg("%s.%s: expression '%s' does not start with the type", p->type, p->code,
				 p->expression);
		if (p->targets)
			assert_int_equal(p->kind, FHIR_PARAM_REFERENCE);
		assert_ptr_equal(fhir_param_find(p->type, p->code), p);
	}
}

static void test_expected_params(void **state)
{
	char buf[512];
	(void)state;

	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		char *save = NULL, *code;
		snprintf(buf, sizeof(buf), "%s", expected[i].codes);
		for (code = strtok_r(buf, " ", &save); code; code = strtok_r(NULL, " ", &save)) {
			const struct fhir_param *p = fhir_param_find(expected[i].type, code);
			if (!p || !p->type || strcmp(p->type, expected[i].type))
				fail_msg("%s has no parameter '%s'", expected[i].type, code);
		}
	}
}

static void test_kinds_and_targets(void **state)
{
	const struct fhir_param *p;
	(void)state;

	for (p = fhir_params; p->code; p++) {
		if (!strcmp(p->code, "patient")) {
			assert_int_equal(p->kind, FHIR_PARAM_REFERENCE);
			assert_non_null(p->targets);
			assert_string_equal(p->targets[0], "Patient");
			assert_null(p->targets[1]);
		}
		if (!strcmp(p->code, "subject")) {
			assert_int_equal(p->kind, FHIR_PARAM_REFERENCE);
			assert_null(p->targets);
		}
	}
	p = fhir_param_find("Observation", "value-quantity");
	assert_int_equal(p->kind, FHIR_PARAM_QUANTITY);
	assert_string_equal(p->expression, "(Observation.value as Quantity) | (Observation.value as SampledData)");
	assert_int_equal(fhir_param_find("Observation", "date")->kind, FHIR_PARAM_DATE);
	assert_string_equal(fhir_param_find("Observation", "date")->path, "effective[x]");
	assert_int_equal(fhir_param_find("Patient", "name")->kind, FHIR_PARAM_STRING);
	assert_int_equal(fhir_param_find("Patient", "gender")->kind, FHIR_PARAM_TOKEN);
	assert_int_equal(fhir_param_find("Questionnaire", "url")->kind, FHIR_PARAM_URI);
	assert_int_equal(fhir_param_find("AuditEvent", "policy")->kind, FHIR_PARAM_URI);
	assert_string_equal(fhir_param_find("Patient", "phone")->path, "telecom.where(system='phone')");
}

static void test_lookup(void **state)
{
	const struct fhir_param *p;
	size_t n;
	(void)state;

	p = fhir_param_find("Observation", "code");
	assert_non_null(p);
	assert_string_equal(p->type, "Observation");
	assert_int_equal(p->kind, FHIR_PARAM_TOKEN);
	/* common parameters are found for every type, and alone */
	p = fhir_param_find("Observation", "_lastUpdated");
	assert_non_null(p);
	assert_null(p->type);
	assert_int_equal(p->kind, FHIR_PARAM_DATE);
	assert_non_null(fhir_param_find(NULL, "_id"));
	assert_non_null(fhir_param_find("Binary", "_security"));
	assert_int_equal(fhir_param_find("Patient", "_profile")->kind, FHIR_PARAM_URI);
	assert_null(fhir_param_find("Observation", "nope"));
	assert_null(fhir_param_find("Nope", "code"));
	assert_null(fhir_param_find(NULL, "code"));
	assert_null(fhir_param_find("Observation", NULL));
	assert_null(fhir_param_find("Observation", ""));

	p = fhir_params_of("Observation", &n);
	assert_true(n >= 13);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(p[i].type, "Observation");
	p = fhir_params_of(NULL, &n);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_null(p[i].type);
	fhir_params_of("Binary", &n);
	assert_int_equal(n, 0);
	fhir_params_of("Nope", &n);
	assert_int_equal(n, 0);
}

static void test_compartment(void **state)
{
	const char *const *c;
	(void)state;

	for (const struct fhir_type *t = fhir_types; t->name; t++)
		for (c = fhir_compartment_params(t->name); *c; c++) {
			const struct fhir_param *p = fhir_param_find(t->name, *c);
			if (!p || p->kind != FHIR_PARAM_REFERENCE)
				fail_msg("%s compartment param %s is not a reference parameter", t->name, *c);
		}
	c = fhir_compartment_params("Observation");
	assert_string_equal(c[0], "subject");
	assert_string_equal(c[1], "performer");
	assert_null(c[2]);
	assert_null(fhir_compartment_params("Practitioner")[0]);
	assert_null(fhir_compartment_params(NULL)[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_table_sorted_and_complete),
		cmocka_unit_test(test_expected_params),
		cmocka_unit_test(test_kinds_and_targets),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_compartment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
