/*
 * view.c - the patient's view of the audit log: who accessed my record,
 * when, what kind of data, through what and why, in plain language,
 * newest first.  A domain view: the portal and the account pages show it;
 * it reads records and never their clinical content (records hold none).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "core/str.h"

/* What a resource type is, for a person. */
static const char *kind_of(const char *type)
{
	static const struct {
		const char *type, *words;
	} k[] = {
		{"AllergyIntolerance", "allergies"}, {"Appointment", "appointments"},
		{"CarePlan", "care plans"}, {"CareTeam", "care team"},
		{"Communication", "messages"}, {"Condition", "health problems"},
		{"Consent", "consents"}, {"Coverage", "insurance"},
		{"DiagnosticReport", "test reports"}, {"DocumentReference", "documents and notes"},
		{"Encounter", "visits"}, {"Goal", "goals"}, {"Immunization", "immunizations"},
		{"MedicationDispense", "medications"}, {"MedicationRequest", "medications"},
		{"MedicationStatement", "medications"}, {"Observation", "test results and measurements"},
		{"Patient", "personal details"}, {"Procedure", "procedures"},
		{"RelatedPerson", "caregivers"}, {"ServiceRequest", "orders and referrals"},
		{"Task", "tasks"},
	};

	for (size_t i = 0; type && i < sizeof(k) / sizeof(k[0]); i++)
		if (!strcmp(k[i].type, type))
			return k[i].words;
	return "record";
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && *s ? s : NULL;
}

/* The plain-language line of one record ('self': the viewer's username). */
static json_t *line_of(const json_t *rec, const char *self, int64_t t)
{
	const json_t *agent = json_object_get(rec, "agent"), *auth = json_object_get(rec, "authority");
	const json_t *ent = json_array_get(json_object_get(rec, "entity"), 0);
	const char *type = jstr(rec, "type"), *user = jstr(agent, "username"), *role = jstr(agent, "role");
	const char *client = jstr(agent, "client"), *behalf = jstr(agent, "onBehalfOf");
	const char *rtype = jstr(ent, "type"), *kind = kind_of(rtype);
	char who[200], what[200], through[200], why[200], when[32];
	bool refused = json_integer_value(json_object_get(rec, "outcome")) != 0;

	if (user && self && !strcmp(user, self))
		str_copy(who, "You", sizeof(who));
	else if (role && !strcmp(role, "clinician"))
		snprintf(who, sizeof(who), "A clinician (%s)", user ? user : "unknown");
	else if (role && !strcmp(role, "caregiver"))
		snprintf(who, sizeof(who), "Your caregiver %s", user ? user : "");
	else if (role && (!strcmp(role, "support") || !strcmp(role, "compliance") || !strcmp(role, "admin")))
		snprintf(who, sizeof(who), "Veranda %s staff (%s)", role, user ? user : "unknown");
	else if (role && !strcmp(role, "system"))
		snprintf(who, sizeof(who), "The service %s", client ? client : "unknown");
	else if (user)
		snprintf(who, sizeof(who), "%s", user);
	else
		str_copy(who, "Someone who was not signed in", sizeof(who));

	if (!type)
		type = "";
	if (refused)
		snprintf(what, sizeof(what), "%s refused access to your %s", strcmp(who, "You") ? "was" : "were", kind);
	else if (!strcmp(type, "fhir.read") || !strcmp(type, "fhir.vread"))
		snprintf(what, sizeof(what), "looked at your %s", kind);
	else if (!strcmp(type, "fhir.search"))
		snprintf(what, sizeof(what), "searched your %s", kind);
	else if (!strcmp(type, "fhir.history"))
		snprintf(what, sizeof(what), "looked at earlier versions of your %s", kind);
	else if (!strcmp(type, "fhir.everything") || !strcmp(type, "fhir.export"))
		str_copy(what, "opened your whole record", sizeof(what));
	else if (!strcmp(type, "fhir.create"))
		snprintf(what, sizeof(what), "added to your %s", kind);
	else if (!strcmp(type, "fhir.update"))
		snprintf(what, sizeof(what), "changed your %s", kind);
	else if (!strcmp(type, "fhir.delete"))
		snprintf(what, sizeof(what), "removed something from your %s", kind);
	else if (!strcmp(type, "oauth.authorize-granted"))
		snprintf(what, sizeof(what), "allowed the app %s to use your record", client ? client : "");
	else if (!strcmp(type, "oauth.token-issued") || !strcmp(type, "oauth.token-refreshed"))
		snprintf(what, sizeof(what), "The app %s received access to your record", client ? client : "");
	else if (!strcmp(type, "oauth.token-revoked"))
		snprintf(what, sizeof(what), "ended the access of the app %s", client ? client : "");
	else
		snprintf(what, sizeof(what), "%s", type);

	if (client && role && strcmp(role, "system"))
		snprintf(through, sizeof(through), "through the app %s", client);
	else if (client)
		snprintf(through, sizeof(through), "as a connected service");
	else
		str_copy(through, "through Veranda", sizeof(through));
	if (behalf)
		snprintf(through + strlen(through), sizeof(through) - strlen(through), ", acting for you");

	if (jstr(auth, "breakglass"))
		str_copy(why, "emergency access (break-the-glass)", sizeof(why));
	else if (jstr(auth, "consent"))
		str_copy(why, "your consent", sizeof(why));
	else if (role && !strcmp(role, "clinician"))
		str_copy(why, "your care (treatment)", sizeof(why));
	else if (role && !strcmp(role, "caregiver"))
		str_copy(why, "caregiver access you or your family set up", sizeof(why));
	else if (user && self && !strcmp(user, self))
		str_copy(why, "your own use", sizeof(why));
	else if (jstr(auth, "grant") || !strncmp(type, "oauth.", 6))
		str_copy(why, "you allowed this app", sizeof(why));
	else
		str_copy(why, "", sizeof(why));
	if (!strncmp(what, "The app", 7)) /* the sentence has its own subject */
		who[0] = '\0';
	{
		time_t secs = (time_t)(t / 1000);
		struct tm tm;
		gmtime_r(&secs, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "when", when, "who", who, "what", what,
			 "through", through, "why", why, "type", type, "refused", refused);
}

struct view {
	json_t *lines;
	const char *self;
	const char *kind;
	size_t want;
	struct audit_cursor last;
	bool more;
};

static enum err view_row(void *arg, const char *node, uint64_t seq, int64_t time_ms,
			 const char *record, size_t len)
{
	struct view *v = arg;
	json_t *rec, *line;
	const char *role, *type;

	if (json_array_size(v->lines) == v->want) {
		v->more = true;
		return ERR_CONFLICT;
	}
	if (!(rec = json_loadb(record, len, 0, NULL)))
		return ERR_OK;
	role = jstr(json_object_get(rec, "agent"), "role");
	type = jstr(rec, "type");
	if (v->kind && ((!strcmp(v->kind, "apps") && (!type || strncmp(type, "oauth.", 6))) ||
			(!strcmp(v->kind, "staff") &&
			 (!role || !strcmp(role, "patient") || !strcmp(role, "caregiver") ||
			  !strcmp(role, "system"))) ||
			(!strcmp(v->kind, "refused") && !json_integer_value(json_object_get(rec, "outcome"))))) {
		json_decref(rec);
		return ERR_OK;
	}
	line = line_of(rec, v->self, time_ms);
	json_decref(rec);
	json_array_append_new(v->lines, line);
	v->last.time_ms = time_ms;
	str_copy(v->last.node, node, sizeof(v->last.node));
	v->last.seq = seq;
	return ERR_OK;
}

enum err audit_patient_view(struct audit_reader *r, const char *patient, const char *self,
			    const char *kind, const struct audit_cursor *after, size_t limit,
			    json_t **out, struct audit_cursor *next, bool *more, struct ctx *c)
{
	struct audit_filter f = AUDIT_FILTER_INIT;
	struct view v;
	enum err e;

	*out = NULL;
	*more = false;
	memset(&v, 0, sizeof(v));
	v.lines = json_array();
	v.self = self;
	v.kind = kind && *kind && strcmp(kind, "all") ? kind : NULL;
	v.want = limit ? limit : 25;
	f.patient = patient;
	f.newest_first = true;
	f.after = after;
	e = audit_query(r, &f, view_row, &v, c);
	if (e && e != ERR_CONFLICT) {
		json_decref(v.lines);
		return e;
	}
	*out = v.lines;
	*more = v.more;
	if (next)
		*next = v.last;
	return ERR_OK;
}
