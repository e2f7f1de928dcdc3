/*
 * Tests for fhir_validate(): 400 for structure, 422 for rules (required
 * elements, JSON shapes of top-level elements, codes of required
 * bindings), with expressions.
 */
#include "unit.h"

#include <string.h>

#include "core/json.h"
#include "fhir/model.h"

struct vcase {
	const char *url_type, *url_id, *json;
	enum err want;
	const char *expr;     /* expected ctx expr (NULL: not checked) */
	const char *msg;      /* a part of the message (NULL: not checked) */
};

static const struct vcase cases[] = {
	/* fine */
	{"Patient", NULL, "{\"resourceType\":\"Patient\"}", ERR_OK, NULL, NULL},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"id\":\"bad id!\"}", ERR_OK, NULL, NULL},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"id\":17}", ERR_OK, NULL, NULL},
	{"Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"meta\":{\"profile\":[\"http://x\"],"
			  "\"security\":[{\"code\":\"R\"}]},\"text\":{\"status\":\"generated\","
			  "\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">Hi</div>\"},"
			  "\"extension\":[{\"url\":\"http://e\",\"valueString\":\"x\"}],"
			  "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o1\"}]}", ERR_OK, NULL, NULL},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}",
	 ERR_OK, NULL, NULL},
	{"MedicationRequest", NULL, "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"order\","
				    "\"medicationCodeableConcept\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/p\"}}",
	 ERR_OK, NULL, NULL},
	{"AuditEvent", NULL, "{\"resourceType\":\"AuditEvent\",\"type\":{\"code\":\"rest\"},\"recorded\":\"2024\","
			     "\"agent\":[{\"requestor\":true}],\"source\":{\"observer\":{\"display\":\"x\"}}}",
	 ERR_OK, NULL, NULL},
	/* 400: structure */
	{"Patient", NULL, "[]", ERR_INVALID, "Patient", "JSON object"},
	{"Patient", NULL, "{}", ERR_INVALID, "resourceType", "no resourceType"},
	{"Patient", NULL, "{\"resourceType\":7}", ERR_INVALID, "resourceType", "must be a string"},
	{"Patient", NULL, "{\"resourceType\":\"Patientx\"}", ERR_INVALID, "resourceType", "unknown resourceType 'Patientx'"},
	{"Patient", NULL, "{\"resourceType\":\"Observation\"}", ERR_INVALID, "resourceType",
	 "resourceType 'Observation' does not match the type in the URL ('Patient')"},
	{"Nope", NULL, "{\"resourceType\":\"Nope\"}", ERR_INVALID, NULL, "not supported"},
	{"Patient", "p1", "{\"resourceType\":\"Patient\"}", ERR_INVALID, "Patient.id", "must carry the id"},
	{"Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":null}", ERR_INVALID, "Patient.id", "must carry the id"},
	{"Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":\"p2\"}", ERR_INVALID, "Patient.id",
	 "the body id 'p2' differs from the id in the URL ('p1')"},
	{"Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":\"p 1\"}", ERR_INVALID, "Patient.id", "1-64"},
	{"Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":1}", ERR_INVALID, "Patient.id", "1-64"},
	/* 422: rules */
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"meta\":[]}", ERR_UNPROCESSABLE, "Patient.meta", "must be an object"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":\"http://x\"}}", ERR_UNPROCESSABLE,
	 "Patient.meta.profile", "array of canonical"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":[1]}}", ERR_UNPROCESSABLE,
	 "Patient.meta.profile", "item 0"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"meta\":{\"security\":{\"code\":\"R\"}}}", ERR_UNPROCESSABLE,
	 "Patient.meta.security", "array of Coding"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"meta\":{\"tag\":[\"x\"]}}", ERR_UNPROCESSABLE,
	 "Patient.meta.tag[0]", "Coding object"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"text\":\"hi\"}", ERR_UNPROCESSABLE, "Patient.text", "Narrative"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"text\":{\"div\":5}}", ERR_UNPROCESSABLE, "Patient.text.div", "string"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"text\":{\"div\":\"<p>x</p>\"}}", ERR_UNPROCESSABLE,
	 "Patient.text.div", "<div>"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"text\":{\"status\":1,\"div\":\"<div/>\"}}", ERR_UNPROCESSABLE,
	 "Patient.text.status", "code"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"extension\":{}}", ERR_UNPROCESSABLE, "Patient.extension", "array"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"extension\":[{\"valueString\":\"x\"}]}", ERR_UNPROCESSABLE,
	 "Patient.extension[0]", "url"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"modifierExtension\":[1]}", ERR_UNPROCESSABLE,
	 "Patient.modifierExtension[0]", "url"},
	/* extensions at any depth need their url */
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"x\",\"extension\":[{\"valueString\":\"x\"}]}]}",
	 ERR_UNPROCESSABLE, "Patient.name[0].extension[0]", "url"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"birthDate\":\"2000\",\"_birthDate\":{\"extension\":{\"url\":\"u\"}}}",
	 ERR_UNPROCESSABLE, "Patient._birthDate.extension", "array"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"u\",\"extension\":[{\"url\":\"a\",\"valueInteger\":1},{\"url\":1}]}]}",
	 ERR_UNPROCESSABLE, "Patient.extension[0].extension[1]", "url"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"u\",\"extension\":[{\"url\":\"a\",\"valueInteger\":1}]}],"
			  "\"name\":[{\"family\":\"x\",\"modifierExtension\":[{\"url\":\"m\",\"valueBoolean\":true}]}]}", ERR_OK, NULL, NULL},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"contained\":{}}", ERR_UNPROCESSABLE, "Patient.contained", "array"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"contained\":[{\"id\":\"a\"}]}", ERR_UNPROCESSABLE,
	 "Patient.contained[0]", "resourceType"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\"}]}",
	 ERR_UNPROCESSABLE, "Patient.contained[0]", "needs an id"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o\","
			  "\"contained\":[]}]}", ERR_UNPROCESSABLE, "Patient.contained[0]", "dom-2"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o\","
			  "\"meta\":{\"versionId\":\"1\"}}]}", ERR_UNPROCESSABLE, "Patient.contained[0]", "dom-4"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"}}", ERR_UNPROCESSABLE,
	 "Observation.status", "Observation.status is required"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\"}", ERR_UNPROCESSABLE,
	 "Observation.code", "required"},
	{"MedicationRequest", NULL, "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"order\","
				    "\"subject\":{\"reference\":\"Patient/p\"}}",
	 ERR_UNPROCESSABLE, "MedicationRequest.medication[x]", "required"},
	{"DocumentReference", NULL, "{\"resourceType\":\"DocumentReference\",\"status\":\"current\",\"content\":[]}",
	 ERR_UNPROCESSABLE, "DocumentReference.content", "required"},
	{"Binary", NULL, "{\"resourceType\":\"Binary\",\"data\":\"aGk=\"}", ERR_UNPROCESSABLE, "Binary.contentType", "required"},
	/* FHIR JSON: no nulls (but array placeholders), no empty objects, arrays or strings */
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"gender\":null}", ERR_UNPROCESSABLE, "Patient.gender", "null"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"name\":[]}", ERR_UNPROCESSABLE, "Patient.name", "empty array"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"name\":[{}]}", ERR_UNPROCESSABLE, "Patient.name", "empty object"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"maritalStatus\":{}}", ERR_UNPROCESSABLE, "Patient.maritalStatus", "empty object"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\"}]}", ERR_UNPROCESSABLE, "Patient.name.family", "empty string"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null],\"_given\":[null,{\"id\":\"x\"}]}]}", ERR_OK, NULL, NULL},
	/* top-level elements in the JSON shape R4 gives them */
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":\"abc\"}",
	 ERR_UNPROCESSABLE, "Observation.code", "one JSON object"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":[{\"text\":\"x\"}]}",
	 ERR_UNPROCESSABLE, "Observation.code", "not a list"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
			      "\"category\":{\"text\":\"lab\"}}",
	 ERR_UNPROCESSABLE, "Observation.category", "a list (a JSON array) of objects"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
			      "\"performer\":[\"Practitioner/1\"]}",
	 ERR_UNPROCESSABLE, "Observation.performer[0]", "JSON object"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":[\"final\"],\"code\":{\"text\":\"x\"}}",
	 ERR_UNPROCESSABLE, "Observation.status", "JSON string"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
			      "\"valueBoolean\":\"true\"}",
	 ERR_UNPROCESSABLE, "Observation.valueBoolean", "true or false"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"name\":{\"family\":\"X\"}}", ERR_UNPROCESSABLE,
	 "Patient.name", "a list"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"active\":\"yes\"}", ERR_UNPROCESSABLE, "Patient.active",
	 "true or false"},
	{"Location", NULL, "{\"resourceType\":\"Location\",\"address\":[{\"city\":\"X\"}]}", ERR_UNPROCESSABLE,
	 "Location.address", "one JSON object"},
	{"Encounter", NULL, "{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":{\"code\":\"AMB\"},"
			    "\"type\":[{\"text\":\"visit\"}],\"period\":{\"start\":\"2020\"},\"subject\":{\"reference\":\"Patient/p\"}}",
	 ERR_OK, NULL, NULL},
	/* codes of a required binding */
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"done\",\"code\":{\"text\":\"x\"}}",
	 ERR_UNPROCESSABLE, "Observation.status", "must be one of: registered, preliminary, final, amended, corrected, "
	 "cancelled, entered-in-error, unknown (found 'done')"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"Final\",\"code\":{\"text\":\"x\"}}",
	 ERR_UNPROCESSABLE, "Observation.status", "found 'Final'"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"entered-in-error\",\"code\":{\"text\":\"x\"}}",
	 ERR_OK, NULL, NULL},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"in\",\"code\":{\"text\":\"x\"}}",
	 ERR_UNPROCESSABLE, "Observation.status", "found 'in'"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final unknown\",\"code\":{\"text\":\"x\"}}",
	 ERR_UNPROCESSABLE, "Observation.status", "found"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"gender\":\"M\"}", ERR_UNPROCESSABLE, "Patient.gender",
	 "male, female, other, unknown"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"gender\":\"unknown\"}", ERR_OK, NULL, NULL},
	{"AllergyIntolerance", NULL, "{\"resourceType\":\"AllergyIntolerance\",\"patient\":{\"reference\":\"Patient/p\"},"
				     "\"category\":[\"food\",\"drink\"]}",
	 ERR_UNPROCESSABLE, "AllergyIntolerance.category[1]", "found 'drink'"},
	{"AllergyIntolerance", NULL, "{\"resourceType\":\"AllergyIntolerance\",\"patient\":{\"reference\":\"Patient/p\"},"
				     "\"category\":\"food\"}",
	 ERR_UNPROCESSABLE, "AllergyIntolerance.category", "list (a JSON array) of strings"},
	{"AllergyIntolerance", NULL, "{\"resourceType\":\"AllergyIntolerance\",\"patient\":{\"reference\":\"Patient/p\"},"
				     "\"category\":[\"food\",null],\"_category\":[null,{\"extension\":[{\"url\":\"u\",\"valueString\":\"x\"}]}]}",
	 ERR_OK, NULL, NULL},
	{"MedicationRequest", NULL, "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"orders\","
				    "\"medicationCodeableConcept\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/p\"}}",
	 ERR_UNPROCESSABLE, "MedicationRequest.intent", "found 'orders'"},
	/* keys that are no element's name match nothing in the table (found by fuzzing: "" overran it) */
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"\":\"x\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}",
	 ERR_INVALID, "Observation.", "is not an element of Observation"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
			      "\"status:s category\":\"x\"}",
	 ERR_INVALID, "Observation.status:s category", "not an element"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"code:o\":1}",
	 ERR_INVALID, "Observation.code:o", "not an element"},
	/* members that are no element of the type: 400 */
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"frobnicate\":true}", ERR_INVALID, "Patient.frobnicate",
	 "is not an element of Patient in FHIR R4"},
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
			      "\"valueQuanity\":{\"value\":1}}",
	 ERR_INVALID, "Observation.valueQuanity", "check its spelling"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"_frobnicate\":{\"id\":\"x\"}}", ERR_INVALID, "Patient._frobnicate",
	 "not an element"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"_name\":[{\"id\":\"x\"}]}", ERR_INVALID, "Patient._name",
	 "not an element"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"gender\":\"male\",\"_gender\":{\"id\":\"g\"},\"_id\":{\"id\":\"i\"},"
			  "\"language\":\"en\",\"implicitRules\":\"http://x\"}",
	 ERR_OK, NULL, NULL},
	/* contained resources of a known type: their elements as at the top */
	{"MedicationRequest", NULL, "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"order\","
				    "\"subject\":{\"reference\":\"Patient/p\"},\"medicationReference\":{\"reference\":\"#m\"},"
				    "\"contained\":[{\"resourceType\":\"Medication\",\"id\":\"m\",\"code\":\"abc\"}]}",
	 ERR_UNPROCESSABLE, "MedicationRequest.contained[0].code", "one JSON object"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o\","
			  "\"nmae\":\"X\"}]}",
	 ERR_INVALID, "Patient.contained[0].nmae", "not an element of Organization"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o\","
			  "\"name\":\"X\",\"active\":true},{\"resourceType\":\"Substance\",\"id\":\"s\",\"anything\":1}]}",
	 ERR_OK, NULL, NULL},
	/* whole numbers in the range of their type */
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"multipleBirthInteger\":2147483648}", ERR_UNPROCESSABLE,
	 "Patient.multipleBirthInteger", "from -2147483648 to 2147483647"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"multipleBirthInteger\":-2147483648}", ERR_OK, NULL, NULL},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"multipleBirthInteger\":2.5}", ERR_UNPROCESSABLE,
	 "Patient.multipleBirthInteger", "whole number"},
	{"Patient", NULL, "{\"resourceType\":\"Patient\",\"multipleBirthInteger\":\"2\"}", ERR_UNPROCESSABLE,
	 "Patient.multipleBirthInteger", "whole number"},
	{"Appointment", NULL, "{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"participant\":[{\"status\":\"accepted\"}],"
			      "\"minutesDuration\":0}",
	 ERR_UNPROCESSABLE, "Appointment.minutesDuration", "from 1 to"},
	{"Appointment", NULL, "{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"participant\":[{\"status\":\"accepted\"}],"
			      "\"minutesDuration\":30,\"priority\":0}",
	 ERR_OK, NULL, NULL},
	{"Appointment", NULL, "{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"participant\":[{\"status\":\"accepted\"}],"
			      "\"priority\":-1}",
	 ERR_UNPROCESSABLE, "Appointment.priority", "from 0 to"},
	/* a code with only an extension, and an element not in the table, are left alone */
	{"Observation", NULL, "{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"},\"status\":\"final\","
			      "\"_status\":{\"extension\":[{\"url\":\"u\",\"valueString\":\"x\"}]},\"valueInteger\":3}",
	 ERR_OK, NULL, NULL},
	{NULL, NULL, NULL, ERR_OK, NULL, NULL},
};

static void test_cases(void **state)
{
	(void)state;

	for (const struct vcase *k = cases; k->json; k++) {
		struct ctx c = CTX_INIT, pc = CTX_INIT;
		json_t *res = json_parse_bounded(k->json, strlen(k->json), 64, &pc);
		enum err e;

		if (!res)
			fail_msg("case JSON does not parse: %s", k->json);
		e = fhir_validate(k->url_type, k->url_id, res, &c);
		json_decref(res);
		if (e != k->want)
			fail_msg("%s %s: got %d (%s), want %d", k->url_type, k->json, e, c.msg, k->want);
		if (e == ERR_OK)
			continue;
		if (k->expr && strcmp(c.expr, k->expr))
			fail_msg("%s: expression '%s', want '%s'", k->json, c.expr, k->expr);
		if (k->msg && !strstr(c.msg, k->msg))
			fail_msg("%s: message '%s' lacks '%s'", k->json, c.msg, k->msg);
		if (!c.msg[0])
			fail_msg("%s: no message", k->json);
	}
}

static void test_null_ctx(void **state)
{
	json_t *res = json_object();
	(void)state;

	assert_int_equal(fhir_validate("Patient", NULL, res, NULL), ERR_INVALID);
	assert_int_equal(fhir_validate("Patient", NULL, NULL, NULL), ERR_INVALID);
	json_decref(res);
	res = json_string("Patient");
	assert_int_equal(fhir_validate("Patient", NULL, res, NULL), ERR_INVALID);
	json_decref(res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_null_ctx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
