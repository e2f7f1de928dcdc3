/*
 * validate.c - the checks a resource body passes before a write.
 *
 * Two classes of failure, as FHIR servers usually split them:
 *   ERR_INVALID (400)        the body is not a resource of this URL: not a
 *                            JSON object, no or unknown resourceType, a
 *                            resourceType other than the URL's, an id that
 *                            is not an id, an update whose body id is
 *                            missing or differs from the URL's, a
 *                            top-level member that is no element of the
 *                            type.
 *   ERR_UNPROCESSABLE (422)  a resource of the right type that breaks a
 *                            rule: meta or text of the wrong shape,
 *                            malformed extensions (at any depth: each an
 *                            object with a url) or contained resources, a
 *                            required element (R4 minimum cardinality 1)
 *                            missing, a top-level element of the wrong
 *                            JSON shape (a list where R4 has one value,
 *                            a plain value where it has an object, a
 *                            number out of its type's range), a
 *                            code outside its required value set (status,
 *                            intent, gender...).  Formats of indexed elements (dates,
 *                            codes, references) are checked by
 *                            fhir_index_resource(), which also answers 422.
 * Each failure names the element in ctx expr ("Observation.status") and
 * says what to change.  Pure function; thread-safe.
 */
#include "fhir/model.h"

#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/str.h"

/* Elements with minimum cardinality 1 in R4 ("x[x]": any choice of x). */
static const struct {
	const char *type;
	const char *const *elements;
} required[] = {
#define R(t, ...) {t, (const char *const[]){__VA_ARGS__, NULL}}
	R("AllergyIntolerance", "patient"),
	R("Appointment", "status", "participant"),
	R("AuditEvent", "type", "recorded", "agent", "source"),
	R("Binary", "contentType"),
	R("CarePlan", "status", "intent", "subject"),
	R("Communication", "status"),
	R("Condition", "subject"),
	R("Consent", "status", "scope", "category"),
	R("DiagnosticReport", "status", "code"),
	R("DocumentReference", "status", "content"),
	R("Encounter", "status", "class"),
	R("Goal", "lifecycleStatus", "description", "subject"),
	R("Immunization", "status", "vaccineCode", "patient", "occurrence[x]"),
	R("MedicationRequest", "status", "intent", "medication[x]", "subject"),
	R("Observation", "status", "code"),
	R("Procedure", "status", "subject"),
	R("Provenance", "target", "recorded", "agent"),
	R("Questionnaire", "status"),
	R("QuestionnaireResponse", "status"),
	R("RelatedPerson", "patient"),
	R("ServiceRequest", "status", "intent", "subject"),
	R("Task", "status", "intent"),
#undef R
};

/*
 * The JSON shape R4 fixes for top-level elements of each type, as
 * " name:k" words, k one of
 *   o  one object (a CodeableConcept, Reference, Period...: cardinality 0..1 or 1..1)
 *   O  a list of objects (0..*)
 *   s  one string (code, date, dateTime, instant, string, uri...)
 *   S  a list of strings
 *   b  true or false
 *   i  an integer of 32 bits; p one above 0 (positiveInt); u one of 0 or
 *      above (unsignedInt)
 * Every top-level element R4 defines for the type is listed (besides
 * those of every resource: id, meta, implicitRules, language, text,
 * contained, extension, modifierExtension), so a member that is none of
 * them is not FHIR: taken from the R4 4.0.1 StructureDefinitions.
 */
static const struct {
	const char *type;
	const char *shapes;
} shapes[] = {
	{"AllergyIntolerance",
	 " identifier:O clinicalStatus:o verificationStatus:o type:s category:S criticality:s code:o"
	 " patient:o encounter:o onsetDateTime:s onsetAge:o onsetPeriod:o onsetRange:o onsetString:s"
	 " recordedDate:s recorder:o asserter:o lastOccurrence:s note:O reaction:O"},
	{"Appointment",
	 " identifier:O status:s cancelationReason:o serviceCategory:O serviceType:O specialty:O"
	 " appointmentType:o reasonCode:O reasonReference:O description:s supportingInformation:O"
	 " start:s end:s created:s comment:s patientInstruction:s basedOn:O participant:O"
	 " requestedPeriod:O minutesDuration:p priority:u slot:O"},
	{"CarePlan",
	 " identifier:O instantiatesCanonical:S instantiatesUri:S basedOn:O replaces:O partOf:O"
	 " status:s intent:s category:O title:s description:s subject:o encounter:o period:o"
	 " created:s author:o contributor:O careTeam:O addresses:O supportingInfo:O goal:O"
	 " activity:O note:O"},
	{"CareTeam",
	 " identifier:O status:s category:O name:s subject:o encounter:o period:o participant:O"
	 " reasonCode:O reasonReference:O managingOrganization:O telecom:O note:O"},
	{"Communication",
	 " identifier:O instantiatesCanonical:S instantiatesUri:S basedOn:O partOf:O inResponseTo:O"
	 " status:s statusReason:o category:O priority:s medium:O subject:o topic:o about:O"
	 " encounter:o sent:s received:s recipient:O sender:o reasonCode:O reasonReference:O"
	 " payload:O note:O"},
	{"Condition",
	 " identifier:O clinicalStatus:o verificationStatus:o category:O severity:o code:o bodySite:O"
	 " subject:o encounter:o onsetDateTime:s onsetAge:o onsetPeriod:o onsetRange:o onsetString:s"
	 " abatementDateTime:s abatementAge:o abatementPeriod:o abatementRange:o abatementString:s"
	 " recordedDate:s recorder:o asserter:o stage:O evidence:O note:O"},
	{"Consent",
	 " identifier:O status:s scope:o category:O patient:o dateTime:s performer:O organization:O"
	 " sourceAttachment:o sourceReference:o policy:O policyRule:o verification:O provision:o"},
	{"Device",
	 " identifier:O definition:o udiCarrier:O status:s statusReason:O distinctIdentifier:s"
	 " manufacturer:s manufactureDate:s expirationDate:s lotNumber:s serialNumber:s deviceName:O"
	 " modelNumber:s partNumber:s type:o specialization:O version:O property:O patient:o owner:o"
	 " contact:O location:o url:s note:O safety:O parent:o"},
	{"DiagnosticReport",
	 " identifier:O basedOn:O status:s category:O code:o subject:o encounter:o"
	 " effectiveDateTime:s effectivePeriod:o issued:s performer:O resultsInterpreter:O specimen:O"
	 " result:O imagingStudy:O media:O conclusion:s conclusionCode:O presentedForm:O"},
	{"DocumentReference",
	 " masterIdentifier:o identifier:O status:s docStatus:s type:o category:O subject:o date:s"
	 " author:O authenticator:o custodian:o relatesTo:O description:s securityLabel:O content:O"
	 " context:o"},
	{"Encounter",
	 " identifier:O status:s statusHistory:O class:o classHistory:O type:O serviceType:o"
	 " priority:o subject:o episodeOfCare:O basedOn:O participant:O appointment:O period:o"
	 " length:o reasonCode:O reasonReference:O diagnosis:O account:O hospitalization:o"
	 " location:O serviceProvider:o partOf:o"},
	{"Goal",
	 " identifier:O lifecycleStatus:s achievementStatus:o category:O priority:o description:o"
	 " subject:o startDate:s startCodeableConcept:o target:O statusDate:s statusReason:s"
	 " expressedBy:o addresses:O note:O outcomeCode:O outcomeReference:O"},
	{"Immunization",
	 " identifier:O status:s statusReason:o vaccineCode:o patient:o encounter:o"
	 " occurrenceDateTime:s occurrenceString:s recorded:s primarySource:b reportOrigin:o"
	 " location:o manufacturer:o lotNumber:s expirationDate:s site:o route:o doseQuantity:o"
	 " performer:O note:O reasonCode:O reasonReference:O isSubpotent:b subpotentReason:O"
	 " education:O programEligibility:O fundingSource:o reaction:O protocolApplied:O"},
	{"Location",
	 " identifier:O status:s operationalStatus:o name:s alias:S description:s mode:s type:O"
	 " telecom:O address:o physicalType:o position:o managingOrganization:o partOf:o"
	 " hoursOfOperation:O availabilityExceptions:s endpoint:O"},
	{"Medication",
	 " identifier:O code:o status:s manufacturer:o form:o amount:o ingredient:O batch:o"},
	{"MedicationRequest",
	 " identifier:O status:s statusReason:o intent:s category:O priority:s doNotPerform:b"
	 " reportedBoolean:b reportedReference:o medicationCodeableConcept:o medicationReference:o"
	 " subject:o encounter:o supportingInformation:O authoredOn:s requester:o performer:o"
	 " performerType:o recorder:o reasonCode:O reasonReference:O instantiatesCanonical:S"
	 " instantiatesUri:S basedOn:O groupIdentifier:o courseOfTherapyType:o insurance:O note:O"
	 " dosageInstruction:O dispenseRequest:o substitution:o priorPrescription:o detectedIssue:O"
	 " eventHistory:O"},
	{"Observation",
	 " identifier:O basedOn:O partOf:O status:s category:O code:o subject:o focus:O encounter:o"
	 " effectiveDateTime:s effectivePeriod:o effectiveTiming:o effectiveInstant:s issued:s"
	 " performer:O valueQuantity:o valueCodeableConcept:o valueString:s valueBoolean:b valueInteger:i"
	 " valueRange:o valueRatio:o valueSampledData:o valueTime:s valueDateTime:s valuePeriod:o"
	 " dataAbsentReason:o interpretation:O note:O bodySite:o method:o specimen:o device:o"
	 " referenceRange:O hasMember:O derivedFrom:O component:O"},
	{"Organization",
	 " identifier:O active:b type:O name:s alias:S telecom:O address:O partOf:o contact:O"
	 " endpoint:O"},
	{"Patient",
	 " identifier:O active:b name:O telecom:O gender:s birthDate:s deceasedBoolean:b"
	 " deceasedDateTime:s address:O maritalStatus:o multipleBirthBoolean:b multipleBirthInteger:i"
	 " photo:O contact:O"
	 " communication:O generalPractitioner:O managingOrganization:o link:O"},
	{"Practitioner",
	 " identifier:O active:b name:O telecom:O address:O gender:s birthDate:s photo:O"
	 " qualification:O communication:O"},
	{"PractitionerRole",
	 " identifier:O active:b period:o practitioner:o organization:o code:O specialty:O location:O"
	 " healthcareService:O telecom:O availableTime:O notAvailable:O availabilityExceptions:s"
	 " endpoint:O"},
	{"Procedure",
	 " identifier:O instantiatesCanonical:S instantiatesUri:S basedOn:O partOf:O status:s"
	 " statusReason:o category:o code:o subject:o encounter:o performedDateTime:s"
	 " performedPeriod:o performedString:s performedAge:o performedRange:o recorder:o asserter:o"
	 " performer:O location:o reasonCode:O reasonReference:O bodySite:O outcome:o report:O"
	 " complication:O complicationDetail:O followUp:O note:O focalDevice:O usedReference:O"
	 " usedCode:O"},
	{"Provenance",
	 " target:O occurredPeriod:o occurredDateTime:s recorded:s policy:S location:o reason:O"
	 " activity:o agent:O entity:O signature:O"},
	{"Questionnaire",
	 " url:s identifier:O version:s name:s title:s derivedFrom:S status:s experimental:b"
	 " subjectType:S date:s publisher:s contact:O description:s useContext:O jurisdiction:O"
	 " purpose:s copyright:s approvalDate:s lastReviewDate:s effectivePeriod:o code:O item:O"},
	{"QuestionnaireResponse",
	 " identifier:o basedOn:O partOf:O questionnaire:s status:s subject:o encounter:o authored:s"
	 " author:o source:o item:O"},
	{"RelatedPerson",
	 " identifier:O active:b patient:o relationship:O name:O telecom:O gender:s birthDate:s"
	 " address:O photo:O period:o communication:O"},
	{"ServiceRequest",
	 " identifier:O instantiatesCanonical:S instantiatesUri:S basedOn:O replaces:O"
	 " requisition:o status:s intent:s category:O priority:s doNotPerform:b code:o orderDetail:O"
	 " subject:o encounter:o occurrenceDateTime:s occurrencePeriod:o occurrenceTiming:o"
	 " asNeededBoolean:b asNeededCodeableConcept:o authoredOn:s requester:o performerType:o"
	 " performer:O locationCode:O locationReference:O reasonCode:O reasonReference:O insurance:O"
	 " supportingInfo:O specimen:O bodySite:O note:O patientInstruction:s relevantHistory:O"
	 " quantityQuantity:o quantityRange:o quantityRatio:o"},
	{"Task",
	 " identifier:O instantiatesCanonical:s instantiatesUri:s basedOn:O groupIdentifier:o"
	 " partOf:O status:s statusReason:o businessStatus:o intent:s priority:s code:o"
	 " description:s focus:o for:o encounter:o executionPeriod:o authoredOn:s lastModified:s"
	 " requester:o performerType:O owner:o location:o reasonCode:o reasonReference:o"
	 " insurance:O note:O relevantHistory:O restriction:o input:O output:O"},
};

/* Code elements with a required binding in R4: the codes allowed, as " code" words. */
static const struct {
	const char *type;
	const char *element;
	const char *codes;
} bindings[] = {
#define GENDER " male female other unknown"
#define PRIORITY " routine urgent asap stat"
#define EVENT_STATUS " preparation in-progress not-done on-hold stopped completed entered-in-error unknown"
#define REQUEST_STATUS " draft active on-hold revoked completed entered-in-error unknown"
#define REQUEST_INTENT " proposal plan directive order original-order reflex-order filler-order instance-order option"
	{"AllergyIntolerance", "type", " allergy intolerance"},
	{"AllergyIntolerance", "category", " food medication environment biologic"},
	{"AllergyIntolerance", "criticality", " low high unable-to-assess"},
	{"Appointment", "status",
	 " proposed pending booked arrived fulfilled cancelled noshow entered-in-error checked-in waitlist"},
	{"CarePlan", "status", REQUEST_STATUS},
	{"CarePlan", "intent", " proposal plan order option"},
	{"CareTeam", "status", " proposed active suspended inactive entered-in-error"},
	{"Communication", "status", EVENT_STATUS},
	{"Communication", "priority", PRIORITY},
	{"Consent", "status", " draft proposed active rejected inactive entered-in-error"},
	{"Device", "status", " active inactive entered-in-error unknown"},
	{"DiagnosticReport", "status",
	 " registered partial preliminary final amended corrected appended cancelled entered-in-error unknown"},
	{"DocumentReference", "status", " current superseded entered-in-error"},
	{"DocumentReference", "docStatus", " preliminary final amended entered-in-error"},
	{"Encounter", "status",
	 " planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown"},
	{"Goal", "lifecycleStatus",
	 " proposed planned accepted active on-hold completed cancelled entered-in-error rejected"},
	{"Immunization", "status", " completed entered-in-error not-done"},
	{"Location", "status", " active suspended inactive"},
	{"Location", "mode", " instance kind"},
	{"Medication", "status", " active inactive entered-in-error"},
	{"MedicationRequest", "status",
	 " active on-hold cancelled completed entered-in-error stopped draft unknown"},
	{"MedicationRequest", "intent",
	 " proposal plan order original-order reflex-order filler-order instance-order option"},
	{"MedicationRequest", "priority", PRIORITY},
	{"Observation", "status",
	 " registered preliminary final amended corrected cancelled entered-in-error unknown"},
	{"Patient", "gender", GENDER},
	{"Practitioner", "gender", GENDER},
	{"Procedure", "status", EVENT_STATUS},
	{"Questionnaire", "status", " draft active retired unknown"},
	{"QuestionnaireResponse", "status", " in-progress completed amended entered-in-error stopped"},
	{"RelatedPerson", "gender", GENDER},
	{"ServiceRequest", "status", REQUEST_STATUS},
	{"ServiceRequest", "intent", REQUEST_INTENT},
	{"ServiceRequest", "priority", PRIORITY},
	{"Task", "status",
	 " draft requested received accepted rejected ready cancelled in-progress on-hold failed"
	 " completed entered-in-error"},
	{"Task", "intent",
	 " unknown proposal plan order original-order reflex-order filler-order instance-order option"},
	{"Task", "priority", PRIORITY},
#undef GENDER
#undef PRIORITY
#undef EVENT_STATUS
#undef REQUEST_STATUS
#undef REQUEST_INTENT
};

/* Is 'word' one of the space-led words of 'list'? */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	if (!n || strchr(word, ' '))
		return false;
	for (const char *p = strstr(list, word); p; p = strstr(p + 1, word))
		if (p > list && p[-1] == ' ' && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* The shape letter of element 'key' in 'spec' (" name:k" words), or 0. */
static char shape_of(const char *spec, const char *key)
{
	size_t n = strlen(key);

	if (!n || strpbrk(key, " :"))
		return 0; /* no element's name: "" would match everywhere */
	for (const char *p = strstr(spec, key); p; p = strstr(p + 1, key))
		if (p > spec && p[-1] == ' ' && p[n] == ':')
			return p[n + 1];
	return 0;
}

static const char *shape_words(char k)
{
	switch (k) {
	case 'o':
		return "must be one JSON object, not a list or a plain value";
	case 'O':
		return "must be a list (a JSON array) of objects, even when there is one";
	case 's':
		return "must be a JSON string";
	case 'S':
		return "must be a list (a JSON array) of strings, even when there is one";
	case 'i':
		return "must be a whole number from -2147483648 to 2147483647";
	case 'p':
		return "must be a whole number from 1 to 2147483647";
	case 'u':
		return "must be a whole number from 0 to 2147483647";
	default:
		return "must be true or false";
	}
}

/* Is 'v' a JSON integer from lo to 2^31 - 1? */
static bool int32_from(const json_t *v, json_int_t lo)
{
	return json_is_integer(v) && json_integer_value(v) >= lo &&
	       json_integer_value(v) <= 2147483647;
}

static bool shape_ok(char k, const json_t *v)
{
	switch (k) {
	case 'o':
		return json_is_object(v);
	case 's':
	case 'S':
		return json_is_string(v);
	case 'b':
		return json_is_boolean(v);
	case 'i':
		return int32_from(v, -2147483647 - 1);
	case 'p':
		return int32_from(v, 1);
	case 'u':
		return int32_from(v, 0);
	default:
		return json_is_object(v);
	}
}

/* Members every resource may have, checked elsewhere. */
static bool base_member(const char *key)
{
	static const char *const names[] = {"resourceType", "id", "meta", "implicitRules",
					    "language", "text", "contained", "extension",
					    "modifierExtension", "_id", "_implicitRules",
					    "_language"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(key, names[i]))
			return true;
	return false;
}

/* The codes of a bound element, for the message: "a, b, c". */
static void codes_text(const char *codes, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = codes + 1; *p && o + 3 < size; p++)
		if (*p == ' ') {
			out[o++] = ',';
			out[o++] = ' ';
		} else {
			out[o++] = *p;
		}
	out[o] = '\0';
}

static enum err check_binding(const char *type, const char *key, const json_t *v,
			      const char *expr, struct ctx *c)
{
	char list[400];

	if (json_is_null(v)) /* a placeholder in a list of codes, paired with _element */
		return ERR_OK;
	for (size_t i = 0; i < sizeof(bindings) / sizeof(bindings[0]); i++) {
		if (strcmp(bindings[i].type, type) || strcmp(bindings[i].element, key))
			continue;
		if (has_word(bindings[i].codes, json_string_value(v)))
			return ERR_OK;
		codes_text(bindings[i].codes, list, sizeof(list));
		return ctx_errorx(c, ERR_UNPROCESSABLE, expr, "%s must be one of: %s (found '%.64s')",
				  expr, list, json_string_value(v));
	}
	return ERR_OK;
}

/*
 * Top-level elements in the shape R4 gives them, and bound codes from
 * their value set (422); a member that is no element of the type, nor the
 * "_name" of a primitive one, is 400: it is not FHIR, and keeping it would
 * keep data no search or reader knows of (a misspelt element, say).
 * 'at' begins each element's expression ("Patient", or
 * "MedicationRequest.contained[0]" for a contained resource).
 */
static enum err check_shapes(const char *type, const json_t *res, const char *at, struct ctx *c)
{
	const char *spec = NULL, *key;
	char expr[224];
	json_t *v, *x;
	size_t i;
	enum err e;

	for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]) && !spec; i++)
		if (!strcmp(shapes[i].type, type))
			spec = shapes[i].shapes;
	if (!spec)
		return ERR_OK;
	json_object_foreach((json_t *)res, key, v) {
		char k;

		if (base_member(key))
			continue;
		snprintf(expr, sizeof(expr), "%s.%.100s", at, key);
		k = shape_of(spec, key[0] == '_' ? key + 1 : key);
		if (!k || (key[0] == '_' && (k == 'o' || k == 'O')))
			return ctx_errorx(c, ERR_INVALID, expr,
					  "%s is not an element of %s in FHIR R4: check its spelling, or "
					  "carry the data in an extension", expr, type);
		if (key[0] == '_' || json_is_null(v))
			continue;
		if (k == 'O' || k == 'S') {
			if (!json_is_array(v))
				return ctx_errorx(c, ERR_UNPROCESSABLE, expr, "%s %s", expr, shape_words(k));
			json_array_foreach(v, i, x) {
				snprintf(expr, sizeof(expr), "%s.%.100s[%zu]", at, key, i);
				if (!(k == 'S' && json_is_null(x)) && !shape_ok(k, x))
					return ctx_errorx(c, ERR_UNPROCESSABLE, expr, "%s %s", expr,
							  k == 'S' ? "must be a JSON string"
								   : "must be a JSON object");
				if (k == 'S' && (e = check_binding(type, key, x, expr, c)))
					return e;
			}
			continue;
		}
		if (!shape_ok(k, v))
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr, "%s %s", expr, shape_words(k));
		if (k == 's' && (e = check_binding(type, key, v, expr, c)))
			return e;
	}
	return ERR_OK;
}

/* Is 'v' a value at all (not null, not an empty array)? */
static bool present(const json_t *v)
{
	return v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0);
}

static bool has_element(const json_t *res, const char *name)
{
	size_t n = strlen(name);
	const char *key;
	json_t *v;

	if (n > 3 && !strcmp(name + n - 3, "[x]")) {
		n -= 3;
		json_object_foreach((json_t *)res, key, v)
			if (!strncmp(key, name, n) && key[n] >= 'A' && key[n] <= 'Z' && present(v))
				return true;
		return false;
	}
	return present(json_object_get(res, name));
}

static enum err check_required(const char *type, const json_t *res, struct ctx *c)
{
	char expr[128];

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (strcmp(required[i].type, type))
			continue;
		for (const char *const *e = required[i].elements; *e; e++) {
			if (has_element(res, *e))
				continue;
			snprintf(expr, sizeof(expr), "%s.%s", type, *e);
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s is required: a %s must have it", expr, type);
		}
	}
	return ERR_OK;
}

/* meta.tag / meta.security: arrays of Coding objects. */
static enum err check_codings(const char *type, const json_t *meta, const char *key,
			      struct ctx *c)
{
	const json_t *arr = json_object_get(meta, key), *x;
	char expr[128];
	size_t i;

	if (!arr)
		return ERR_OK;
	snprintf(expr, sizeof(expr), "%s.meta.%s", type, key);
	if (!json_is_array(arr))
		return ctx_errorx(c, ERR_UNPROCESSABLE, expr, "%s must be an array of Coding objects",
				  expr);
	json_array_foreach(arr, i, x) {
		if (!json_is_object(x)) {
			snprintf(expr, sizeof(expr), "%s.meta.%s[%zu]", type, key, i);
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s must be a Coding object with system and code", expr);
		}
	}
	return ERR_OK;
}

static enum err check_meta(const char *type, const json_t *res, struct ctx *c)
{
	const json_t *meta = json_object_get(res, "meta"), *profile, *x;
	char expr[128];
	size_t i;
	enum err e;

	if (!meta)
		return ERR_OK;
	snprintf(expr, sizeof(expr), "%s.meta", type);
	if (!json_is_object(meta))
		return ctx_errorx(c, ERR_UNPROCESSABLE, expr, "%s must be an object (or left out)",
				  expr);
	if ((profile = json_object_get(meta, "profile"))) {
		snprintf(expr, sizeof(expr), "%s.meta.profile", type);
		if (!json_is_array(profile))
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s must be an array of canonical URLs", expr);
		json_array_foreach(profile, i, x)
			if (!json_is_string(x))
				return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
						  "%s must be an array of canonical URLs (item %zu is not a string)",
						  expr, i);
	}
	if ((e = check_codings(type, meta, "tag", c)) || (e = check_codings(type, meta, "security", c)))
		return e;
	return ERR_OK;
}

static enum err check_text(const char *type, const json_t *res, struct ctx *c)
{
	const json_t *text = json_object_get(res, "text"), *div, *status;
	char expr[128];

	if (!text)
		return ERR_OK;
	snprintf(expr, sizeof(expr), "%s.text", type);
	if (!json_is_object(text))
		return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
				  "%s must be a Narrative object with status and div", expr);
	if ((status = json_object_get(text, "status")) && !json_is_string(status)) {
		snprintf(expr, sizeof(expr), "%s.text.status", type);
		return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
				  "%s must be a code such as 'generated'", expr);
	}
	if ((div = json_object_get(text, "div"))) {
		snprintf(expr, sizeof(expr), "%s.text.div", type);
		if (!json_is_string(div))
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s must be a string of XHTML", expr);
		if (!str_starts(json_string_value(div), "<div"))
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s must be an XHTML <div> element", expr);
	}
	return ERR_OK;
}

/* extension / modifierExtension: arrays of objects with a url. */
static enum err check_extensions(const char *type, const json_t *res, const char *key,
				 struct ctx *c)
{
	const json_t *arr = json_object_get(res, key), *x;
	char expr[128];
	size_t i;

	if (!arr)
		return ERR_OK;
	snprintf(expr, sizeof(expr), "%s.%s", type, key);
	if (!json_is_array(arr))
		return ctx_errorx(c, ERR_UNPROCESSABLE, expr, "%s must be an array of Extension objects",
				  expr);
	json_array_foreach(arr, i, x) {
		if (!json_is_object(x) || !json_is_string(json_object_get(x, "url"))) {
			snprintf(expr, sizeof(expr), "%s.%s[%zu]", type, key, i);
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s must be an Extension object with a url string", expr);
		}
	}
	return ERR_OK;
}

/*
 * Extensions below the top level (in elements, in primitive "_x" siblings,
 * inside extensions and contained resources) have the same shape: an array
 * of objects, each with a url string.  'path' names the element walked,
 * with array indexes ("Patient.name[0]").
 */
static enum err check_nested_extensions(const json_t *v, char *path, size_t len, size_t size,
					struct ctx *c)
{
	const char *key;
	json_t *val, *x;
	size_t i, k;
	enum err e;

	if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			int n = snprintf(path + len, size - len, "[%zu]", i);
			size_t nl = n > 0 && (size_t)n < size - len ? len + (size_t)n : len;

			e = check_nested_extensions(x, path, nl, size, c);
			path[len] = '\0';
			if (e)
				return e;
		}
		return ERR_OK;
	}
	if (!json_is_object(v))
		return ERR_OK;
	json_object_foreach((json_t *)v, key, val) {
		int n = snprintf(path + len, size - len, ".%s", key);
		size_t nl = n > 0 && (size_t)n < size - len ? len + (size_t)n : len;

		e = ERR_OK;
		if (!strcmp(key, "extension") || !strcmp(key, "modifierExtension")) {
			if (!json_is_array(val))
				e = ctx_errorx(c, ERR_UNPROCESSABLE, path,
					       "%s must be an array of Extension objects", path);
			json_array_foreach(val, k, x) {
				if (e || (json_is_object(x) && json_is_string(json_object_get(x, "url"))))
					continue;
				snprintf(path + nl, size - nl, "[%zu]", k);
				e = ctx_errorx(c, ERR_UNPROCESSABLE, path,
					       "%s must be an Extension object with a url string", path);
			}
		}
		if (!e)
			e = check_nested_extensions(val, path, nl, size, c);
		path[len] = '\0';
		if (e)
			return e;
	}
	return ERR_OK;
}

static enum err check_contained(const char *type, const json_t *res, struct ctx *c)
{
	const json_t *arr = json_object_get(res, "contained"), *x;
	char expr[128];
	size_t i;
	enum err e;

	if (!arr)
		return ERR_OK;
	snprintf(expr, sizeof(expr), "%s.contained", type);
	if (!json_is_array(arr))
		return ctx_errorx(c, ERR_UNPROCESSABLE, expr, "%s must be an array of resources", expr);
	json_array_foreach(arr, i, x) {
		const char *rt = json_get_str(x, "resourceType");
		snprintf(expr, sizeof(expr), "%s.contained[%zu]", type, i);
		if (!json_is_object(x) || !rt || !*rt)
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s must be a resource object with a resourceType", expr);
		if (!fhir_id_valid(json_get_str(x, "id")))
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s needs an id (1-64 of A-Z a-z 0-9 - .) so that '#id' can refer to it",
					  expr);
		if (json_object_get(x, "contained"))
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s must not itself contain resources (dom-2)", expr);
		if (json_object_get(x, "meta") &&
		    (json_object_get(json_object_get(x, "meta"), "versionId") ||
		     json_object_get(json_object_get(x, "meta"), "lastUpdated")))
			return ctx_errorx(c, ERR_UNPROCESSABLE, expr,
					  "%s must not have meta.versionId or meta.lastUpdated (dom-4)",
					  expr);
		/* a contained resource of a type this server knows: its elements as at the top */
		if ((e = check_shapes(rt, x, expr, c)))
			return e;
	}
	return ERR_OK;
}

/*
 * FHIR JSON rules for every element: no null values (except as
 * placeholders inside arrays, paired with an "_element" array), no empty
 * objects, arrays or strings.  'path' names the element for the message.
 */
static enum err check_values(const json_t *v, char *path, size_t len, size_t size, bool in_array,
			     struct ctx *c)
{
	const char *key;
	json_t *val;
	size_t i;
	enum err e;

	switch (json_typeof(v)) {
	case JSON_NULL:
		if (in_array)
			return ERR_OK;
		return ctx_errorx(c, ERR_UNPROCESSABLE, path,
				  "%s is null: FHIR JSON leaves out elements that have no value", path);
	case JSON_STRING:
		if (json_string_length(v) == 0)
			return ctx_errorx(c, ERR_UNPROCESSABLE, path,
					  "%s is an empty string: leave the element out instead", path);
		return ERR_OK;
	case JSON_ARRAY:
		if (json_array_size(v) == 0)
			return ctx_errorx(c, ERR_UNPROCESSABLE, path,
					  "%s is an empty array: leave the element out instead", path);
		json_array_foreach(v, i, val) {
			if ((e = check_values(val, path, len, size, true, c)))
				return e;
		}
		return ERR_OK;
	case JSON_OBJECT:
		if (json_object_size(v) == 0)
			return ctx_errorx(c, ERR_UNPROCESSABLE, path,
					  "%s is an empty object: leave the element out instead", path);
		json_object_foreach((json_t *)v, key, val) {
			int n = snprintf(path + len, size - len, ".%s", key);
			size_t nl = n > 0 && (size_t)n < size - len ? len + (size_t)n : len;

			e = check_values(val, path, nl, size, false, c);
			path[len] = '\0';
			if (e)
				return e;
		}
		return ERR_OK;
	default:
		return ERR_OK;
	}
}

enum err fhir_validate(const char *url_type, const char *url_id, const json_t *res,
		       struct ctx *c)
{
	const json_t *rt, *id;
	const char *type;
	char expr[128], path[256];
	enum err e;

	if (!fhir_type_find(url_type))
		return ctx_errorf(c, ERR_INVALID, "resource type '%s' is not supported by this server",
				  url_type ? url_type : "");
	if (!json_is_object(res))
		return ctx_errorx(c, ERR_INVALID, url_type,
				  "the body must be a JSON object holding a %s resource", url_type);
	rt = json_object_get(res, "resourceType");
	if (!rt)
		return ctx_errorx(c, ERR_INVALID, "resourceType",
				  "the resource has no resourceType; add \"resourceType\": \"%s\"",
				  url_type);
	if (!json_is_string(rt))
		return ctx_errorx(c, ERR_INVALID, "resourceType",
				  "resourceType must be a string such as \"%s\"", url_type);
	type = json_string_value(rt);
	if (!fhir_type_find(type))
		return ctx_errorx(c, ERR_INVALID, "resourceType",
				  "unknown resourceType '%.64s' (expected '%s')", type, url_type);
	if (strcmp(type, url_type))
		return ctx_errorx(c, ERR_INVALID, "resourceType",
				  "resourceType '%s' does not match the type in the URL ('%s')", type,
				  url_type);
	snprintf(expr, sizeof(expr), "%s.id", type);
	id = json_object_get(res, "id");
	if (url_id) {
		if (!id || json_is_null(id))
			return ctx_errorx(c, ERR_INVALID, expr,
					  "an update must carry the id of the URL: add \"id\": \"%.64s\"",
					  url_id);
		if (!json_is_string(id) || !fhir_id_valid(json_string_value(id)))
			return ctx_errorx(c, ERR_INVALID, expr,
					  "%s must be a string of 1-64 of A-Z a-z 0-9 - .", expr);
		if (strcmp(json_string_value(id), url_id))
			return ctx_errorx(c, ERR_INVALID, expr,
					  "the body id '%s' differs from the id in the URL ('%.64s')",
					  json_string_value(id), url_id);
	}
	/* on create, the body id is ignored and replaced by the server */
	if ((e = check_meta(type, res, c)) || (e = check_text(type, res, c)) ||
	    (e = check_extensions(type, res, "extension", c)) ||
	    (e = check_extensions(type, res, "modifierExtension", c)) ||
	    (e = check_contained(type, res, c)) || (e = check_required(type, res, c)) ||
	    (e = check_shapes(type, res, type, c)))
		return e;
	str_copy(expr, type, sizeof(expr));
	if ((e = check_values(res, expr, strlen(expr), sizeof(expr), false, c)))
		return e;
	str_copy(path, type, sizeof(path));
	return check_nested_extensions(res, path, strlen(path), sizeof(path), c);
}
