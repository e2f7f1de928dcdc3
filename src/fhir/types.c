/*
 * types.c - the resource types this server supports and the FHIR id rule.
 * Constant tables only; thread-safe.  See model.h.
 */
#include "fhir/model.h"

#include <string.h>

/* Alphabetical (strcmp order): fhir_type_find() searches it by bisection. */
const struct fhir_type fhir_types[] = {
	{"AllergyIntolerance", 0},
	{"Appointment", 0},
	{"AuditEvent", FHIR_TYPE_SERVER_WRITES_ONLY},
	{"Binary", 0},
	{"CarePlan", 0},
	{"CareTeam", 0},
	{"Communication", 0},
	{"Condition", 0},
	{"Consent", 0},
	{"Device", 0},
	{"DiagnosticReport", 0},
	{"DocumentReference", 0},
	{"Encounter", 0},
	{"Goal", 0},
	{"Immunization", 0},
	{"Location", 0},
	{"Medication", 0},
	{"MedicationRequest", 0},
	{"Observation", 0},
	{"Organization", 0},
	{"Patient", 0},
	{"Practitioner", 0},
	{"PractitionerRole", 0},
	{"Procedure", 0},
	{"Provenance", 0},
	{"Questionnaire", 0},
	{"QuestionnaireResponse", 0},
	{"RelatedPerson", 0},
	{"ServiceRequest", 0},
	{"Task", 0},
	{NULL, 0},
};

#define NTYPES (sizeof(fhir_types) / sizeof(fhir_types[0]) - 1)

const struct fhir_type *fhir_type_find(const char *name)
{
	size_t lo = 0, hi = NTYPES;

	if (!name)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(name, fhir_types[mid].name);
		if (r == 0)
			return &fhir_types[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool fhir_id_valid(const char *id)
{
	size_t n = 0;

	if (!id)
		return false;
	for (; id[n]; n++) {
		char ch = id[n];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
		if (!ok || n >= 64)
			return false;
	}
	return n >= 1;
}
