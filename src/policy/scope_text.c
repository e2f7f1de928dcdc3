/*
 * scope_text.c - what scopes mean in plain words: the category choices
 * offered on the consent screen and the descriptions shown there.  See
 * scope.h.  Static tables only; nothing allocates.
 *
 * The words are for patients and caregivers first (a patient/ scope says
 * "your ..."); docs/scopes.md explains the same scopes to staff.
 */
#include "policy/scope.h"

#include <string.h>

#define COND_SYS "http://terminology.hl7.org/CodeSystem/condition-category|"
#define OBS_SYS "http://terminology.hl7.org/CodeSystem/observation-category|"

static const struct scope_category condition_categories[] = {
	{COND_SYS "encounter-diagnosis", "Diagnoses made at visits"},
	{COND_SYS "problem-list-item", "Problem list (ongoing health problems)"},
	{"http://hl7.org/fhir/us/core/CodeSystem/condition-category|health-concern",
	 "Health concerns"},
};

static const struct scope_category observation_categories[] = {
	{OBS_SYS "laboratory", "Lab results"},
	{OBS_SYS "social-history", "Social history (such as smoking, alcohol and work)"},
	{OBS_SYS "vital-signs", "Vital signs (such as blood pressure, pulse and weight)"},
	{OBS_SYS "survey", "Answers to surveys and questionnaires"},
	{"http://hl7.org/fhir/us/core/CodeSystem/us-core-category|sdoh",
	 "Social needs (such as housing, food and transport)"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const struct scope_category *scope_categories(const char *type, size_t *n)
{
	if (type && !strcmp(type, "Condition")) {
		*n = COUNT(condition_categories);
		return condition_categories;
	}
	if (type && !strcmp(type, "Observation")) {
		*n = COUNT(observation_categories);
		return observation_categories;
	}
	*n = 0;
	return NULL;
}

/* What resources of a type are, as a noun phrase that reads after "your". */
static const struct {
	const char *type;
	const char *noun;
} nouns[] = {
	{"AllergyIntolerance", "allergies and intolerances"},
	{"Appointment", "appointments"},
	{"Binary", "attached files (documents and images)"},
	{"CarePlan", "care plans"},
	{"CareTeam", "care team members"},
	{"Communication", "messages"},
	{"Condition", "health conditions (diagnoses, problems and concerns)"},
	{"Consent", "privacy and sharing choices"},
	{"Coverage", "insurance coverage"},
	{"Device", "implants and medical devices"},
	{"DiagnosticReport", "test and imaging reports"},
	{"DocumentReference", "clinical notes and documents"},
	{"Encounter", "visits and hospital stays"},
	{"FamilyMemberHistory", "family health history"},
	{"Goal", "health goals"},
	{"ImagingStudy", "imaging studies (X-rays, scans)"},
	{"Immunization", "immunizations (vaccines)"},
	{"Location", "places of care"},
	{"Medication", "medication details"},
	{"MedicationAdministration", "medicines given during care"},
	{"MedicationDispense", "pharmacy dispensing records"},
	{"MedicationRequest", "medications and prescriptions"},
	{"MedicationStatement", "self-reported medications"},
	{"Observation", "test results, vital signs and other measurements"},
	{"Organization", "care organizations (clinics, hospitals, insurers)"},
	{"Patient", "basic details (name, date of birth, contact details)"},
	{"Practitioner", "care providers (doctors, nurses and other clinicians)"},
	{"PractitionerRole", "care providers' roles and specialties"},
	{"Procedure", "procedures and surgeries"},
	{"Provenance", "record history (who entered or changed information)"},
	{"Questionnaire", "questionnaires"},
	{"QuestionnaireResponse", "answers to questionnaires"},
	{"RelatedPerson", "caregivers and contacts"},
	{"Schedule", "appointment schedules"},
	{"ServiceRequest", "orders and referrals"},
	{"Slot", "open appointment times"},
	{"Specimen", "lab samples"},
};

/* A bounded writer: appends while there is room, always NUL-terminated. */
struct out {
	char *p;
	size_t n, len;
};

static void put(struct out *o, const char *s)
{
	for (; *s && o->len + 1 < o->n; s++)
		o->p[o->len++] = *s;
	if (o->n)
		o->p[o->len] = '\0';
}

/* 's' with its first letter lowercased. */
static void put_lower(struct out *o, const char *s)
{
	char first[2] = {s[0], '\0'};

	if (!s[0])
		return;
	if (first[0] >= 'A' && first[0] <= 'Z')
		first[0] = (char)(first[0] - 'A' + 'a');
	put(o, first);
	put(o, s + 1);
}

static void put_verbs(struct out *o, unsigned perms)
{
	const char *v[4];
	size_t n = 0;

	if (perms & (SCOPE_R | SCOPE_S))
		v[n++] = "see";
	if (perms & SCOPE_C)
		v[n++] = "add";
	if (perms & SCOPE_U)
		v[n++] = "change";
	if (perms & SCOPE_D)
		v[n++] = "delete";
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(o, i + 1 == n ? " and " : ", ");
		if (i == 0) {
			char cap[2] = {(char)(v[0][0] - 'a' + 'A'), '\0'};
			put(o, cap);
			put(o, v[0] + 1);
		} else {
			put(o, v[i]);
		}
	}
}

/* The label of a category constraint the consent screen knows, or NULL. */
static const char *category_label(const struct scope_res *r)
{
	const struct scope_category *cats;
	size_t n;

	if (r->nq != 1 || strcmp(r->q[0].name, "category"))
		return NULL;
	cats = scope_categories(r->type, &n);
	for (size_t i = 0; i < n; i++) {
		const char *bar = strchr(cats[i].value, '|');
		if (!strcmp(r->q[0].value, cats[i].value) || !strcmp(r->q[0].value, bar + 1))
			return cats[i].label;
	}
	return NULL;
}

void scope_describe(const struct scope_res *r, char *buf, size_t n)
{
	struct out o = {buf, n, 0};
	const char *label = category_label(r), *noun = NULL;
	bool wild = !strcmp(r->type, "*");

	if (n == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(nouns) / sizeof(nouns[0]) && !noun; i++)
		if (!strcmp(nouns[i].type, r->type))
			noun = nouns[i].noun;

	put_verbs(&o, r->perms);
	put(&o, " ");
	if (wild && r->ctx == SCOPE_PATIENT) {
		put(&o, "all of your health record: every kind of information, now and in the "
			"future");
	} else if (wild) {
		put(&o, "every kind of information, now and in the future,");
	} else if (r->ctx == SCOPE_PATIENT) {
		put(&o, "your ");
	}
	if (wild) {
		/* said above */
	} else if (label) {
		put_lower(&o, label);
	} else if (noun) {
		put(&o, noun);
	} else {
		put(&o, r->type);
		put(&o, " records");
	}
	if (r->ctx == SCOPE_USER)
		put(&o, " in the records you have access to");
	else if (r->ctx == SCOPE_SYSTEM)
		put(&o, " in every patient's record (a service working without a user)");
	if (r->nq && !label) {
		put(&o, " (only those where ");
		for (size_t i = 0; i < r->nq; i++) {
			if (i)
				put(&o, " and ");
			put(&o, r->q[i].name);
			put(&o, " is ");
			put(&o, r->q[i].value);
		}
		put(&o, ")");
	}
}

const char *scope_describe_flag(unsigned flag)
{
	switch (flag) {
	case SCOPE_OPENID:
		return "Confirm that it is you who signed in";
	case SCOPE_FHIRUSER:
		return "Know who you are in the health record (your own patient, caregiver or "
		       "staff record)";
	case SCOPE_PROFILE:
		return "See your basic profile (your name and who you are in the health record)";
	case SCOPE_OFFLINE:
		return "Keep access when you are not using the app (until the grant ends or you "
		       "revoke it)";
	case SCOPE_ONLINE:
		return "Keep access while you stay signed in, and lose it when you sign out";
	case SCOPE_LAUNCH:
		return "Open with the record you are looking at in the portal";
	case SCOPE_LAUNCH_PATIENT:
		return "Know whose record you chose to share (yours, or that of someone you care "
		       "for)";
	case SCOPE_LAUNCH_ENCOUNTER:
		return "Know which visit you are looking at";
	default:
		return NULL;
	}
}
