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
#include "core/log.h"
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

bool audit_view_receipt_ok(const struct audit_view_q *q, const json_t *rec)
{
	const json_t *agent = json_object_get(rec, "agent");
	const char *role = jstr(agent, "role"), *user = jstr(agent, "username");
	const char *patient = jstr(rec, "patient");

	if (!patient || !q->patient || strcmp(patient, q->patient))
		return false;
	if (user && q->self && !strcmp(user, q->self))
		return true;
	return role && (!strcmp(role, "clinician") || !strcmp(role, "support") ||
			!strcmp(role, "compliance") || !strcmp(role, "admin") ||
			!strcmp(role, "system"));
}

/* Does record 'rec' belong in the view of 'kind' (NULL: everything)? */
static bool kind_has(const char *kind, const json_t *rec)
{
	const json_t *agent = json_object_get(rec, "agent");
	const char *role = jstr(agent, "role");

	if (!kind)
		return true;
	if (!strcmp(kind, "apps"))
		return jstr(agent, "client") != NULL;
	if (!strcmp(kind, "staff"))
		return role && strcmp(role, "patient") && strcmp(role, "caregiver") &&
		       strcmp(role, "system");
	if (!strcmp(kind, "refused"))
		return json_integer_value(json_object_get(rec, "outcome")) != 0;
	return true;
}

/* The plain-language line of one record. */
static json_t *line_of(const struct audit_view_q *q, const json_t *rec, int64_t t)
{
	const json_t *agent = json_object_get(rec, "agent"), *auth = json_object_get(rec, "authority");
	const json_t *ent = json_array_get(json_object_get(rec, "entity"), 0);
	const char *type = jstr(rec, "type"), *user = jstr(agent, "username"), *role = jstr(agent, "role");
	const char *client = jstr(agent, "client"), *behalf = jstr(agent, "onBehalfOf");
	const char *fhir_user = jstr(agent, "fhirUser");
	const char *rtype = jstr(ent, "type"), *kind = kind_of(rtype);
	const char *pos = q->own ? "your" : "the";
	char who[200], what[300], through[300], why[200], when[32], app[128] = "";
	bool refused = json_integer_value(json_object_get(rec, "outcome")) != 0;
	bool me = user && q->self && !strcmp(user, q->self);

	if (client) {
		if (q->app_name)
			q->app_name(q->arg, client, app, sizeof(app));
		if (!app[0])
			str_copy(app, client, sizeof(app));
	}
	if (me)
		str_copy(who, "You", sizeof(who));
	else if (role && (!strcmp(role, "patient") || !strcmp(role, "caregiver")) &&
		 !(fhir_user && !strncmp(fhir_user, "Patient/", 8) && q->patient &&
		   !strcmp(fhir_user + 8, q->patient)) &&
		 !(behalf && q->patient && !strcmp(behalf, q->patient)))
		/* another patient's account (an app that asked for this record): not named */
		str_copy(who, "Someone using another patient's account", sizeof(who));
	else if (role && !strcmp(role, "clinician"))
		snprintf(who, sizeof(who), "A clinician (%s)", user ? user : "unknown");
	else if (role && !strcmp(role, "caregiver"))
		snprintf(who, sizeof(who), "%s caregiver %s", q->own ? "Your" : "A", user ? user : "");
	else if (role && (!strcmp(role, "support") || !strcmp(role, "compliance") || !strcmp(role, "admin")))
		snprintf(who, sizeof(who), "Veranda %s staff (%s)", role, user ? user : "unknown");
	else if (role && !strcmp(role, "system"))
		snprintf(who, sizeof(who), "The service %s", client ? app : "unknown");
	else if (role && !strcmp(role, "operator"))
		str_copy(who, "A Veranda administrator", sizeof(who)); /* the command line */
	else if (user)
		snprintf(who, sizeof(who), "%s", user);
	else
		str_copy(who, "Someone who was not signed in", sizeof(who));

	if (!type)
		type = "";
	if (!strncmp(type, "oauth.token-", 12)) {
		/* the token endpoint's records: the app acts, whoever the grant is for */
		const char *code = jstr(rec, "outcomeCode");
		if (refused)
			snprintf(what, sizeof(what), "The app %s was refused access to %s record", app, pos);
		else if (!strcmp(type, "oauth.token-revoked") && code && !strcmp(code, "replay-detected"))
			snprintf(what, sizeof(what),
				 "Veranda ended the access of the app %s: a code or token it had used was presented again",
				 app);
		else if (!strcmp(type, "oauth.token-revoked") && code && !strcmp(code, "removed-by-user"))
			snprintf(what, sizeof(what), "%s ended the access of the app %s", me ? "You" : who, app);
		else if (!strcmp(type, "oauth.token-revoked"))
			snprintf(what, sizeof(what), "The app %s gave up its access to %s record", app, pos);
		else if (!strcmp(type, "oauth.token-refreshed"))
			snprintf(what, sizeof(what), "The app %s renewed its access to %s record", app, pos);
		else if (!strcmp(type, "oauth.token-introspected"))
			/* a resource server asking whether a token it was shown still counts */
			snprintf(what, sizeof(what),
				 "The app %s checked whether an app's access to %s record was still valid",
				 app, pos);
		else
			snprintf(what, sizeof(what), "The app %s received access to %s record", app, pos);
		who[0] = '\0';
	} else if (refused)
		snprintf(what, sizeof(what), "%s refused access to %s %s", me ? "were" : "was", pos, kind);
	else if (!strcmp(type, "fhir.read") || !strcmp(type, "fhir.vread"))
		snprintf(what, sizeof(what), "looked at %s %s", pos, kind);
	else if (!strcmp(type, "fhir.search"))
		snprintf(what, sizeof(what), "searched %s %s", pos, kind);
	else if (!strcmp(type, "fhir.history"))
		snprintf(what, sizeof(what), "looked at earlier versions of %s %s", pos, kind);
	else if (!strcmp(type, "fhir.everything") || !strcmp(type, "fhir.export"))
		snprintf(what, sizeof(what), "opened %s whole record", pos);
	else if (!strcmp(type, "fhir.create"))
		snprintf(what, sizeof(what), "added to %s %s", pos, kind);
	else if (!strcmp(type, "fhir.update"))
		snprintf(what, sizeof(what), "changed %s %s", pos, kind);
	else if (!strcmp(type, "fhir.delete"))
		snprintf(what, sizeof(what), "removed something from %s %s", pos, kind);
	else if (!strcmp(type, "oauth.authorize-granted"))
		snprintf(what, sizeof(what), "allowed the app %s to use %s record", app, pos);
	else if (!strcmp(type, "proxy.approved") || !strcmp(type, "proxy.revoked"))
		/* the account given or denied caregiver access is the first entity */
		snprintf(what, sizeof(what), !strcmp(type, "proxy.approved")
						     ? "gave the account %s caregiver access to %s record"
						     : "ended the caregiver access of the account %s to %s record",
			 jstr(ent, "id") ? jstr(ent, "id") : "unknown", pos);
	else
		snprintf(what, sizeof(what), "%s", type);

	if (!strncmp(type, "oauth.", 6) || (role && (!strcmp(role, "system") || !strcmp(role, "operator"))))
		through[0] = '\0'; /* the sentence names the app or service already */
	else if (client && role && strcmp(role, "system"))
		snprintf(through, sizeof(through), "through the app %s", app);
	else if (client)
		snprintf(through, sizeof(through), "as a connected service");
	else
		str_copy(through, "through Veranda", sizeof(through));
	if (behalf && through[0])
		snprintf(through + strlen(through), sizeof(through) - strlen(through), ", acting for %s",
			 q->own ? "you" : "the patient");

	if (jstr(auth, "breakglass"))
		str_copy(why, "emergency access (break-the-glass)", sizeof(why));
	else if (jstr(auth, "consent"))
		snprintf(why, sizeof(why), "%s consent", q->own ? "your" : "the patient's");
	else if (role && !strcmp(role, "clinician"))
		str_copy(why, "care (treatment)", sizeof(why));
	else if (role && !strcmp(role, "system"))
		snprintf(why, sizeof(why), "a service %s clinic connected to Veranda", q->own ? "your" : "the");
	else if (role && !strcmp(role, "caregiver") && !q->own)
		str_copy(why, "caregiver access set up for this record", sizeof(why));
	else if (!strcmp(type, "oauth.authorize-granted"))
		str_copy(why, "", sizeof(why)); /* the line says who allowed it */
	else if (me)
		str_copy(why, "your own use", sizeof(why));
	else if (jstr(auth, "grant") || !strncmp(type, "oauth.", 6))
		str_copy(why, q->own ? "you allowed this app" : "this app was allowed", sizeof(why));
	else
		str_copy(why, "", sizeof(why));
	if (!strncmp(type, "oauth.token-", 12) || refused)
		why[0] = '\0'; /* the sentence says it; a refusal was allowed by nothing */
	{
		time_t secs = (time_t)(t / 1000);
		struct tm tm;
		gmtime_r(&secs, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	}
	/* empty parts are left out, so that the page shows nothing for them */
	return json_pack("{s:s, s:s*, s:s, s:s*, s:s*, s:s, s:b}", "when", when, "who",
			 who[0] ? who : NULL, "what", what, "through", through[0] ? through : NULL,
			 "why", why[0] ? why : NULL, "type", type, "refused", refused);
}

struct view {
	const struct audit_view_q *q;
	const char *kind;
	json_t *lines;
	size_t want;
	struct audit_cursor last;
	bool more;
};

static enum err view_row(void *arg, const char *node, uint64_t seq, int64_t time_ms,
			 const char *record, size_t len)
{
	struct view *v = arg;
	json_t *rec;

	if (!(rec = json_loadb(record, len, 0, NULL)))
		return ERR_OK;
	if (!kind_has(v->kind, rec)) {
		json_decref(rec);
		return ERR_OK;
	}
	/* one matching line past the page: there are older ones */
	if (json_array_size(v->lines) == v->want) {
		json_decref(rec);
		v->more = true;
		return ERR_CONFLICT;
	}
	{
		json_t *line = line_of(v->q, rec, time_ms);
		char ref[AUDIT_NODE_MAX + 32];

		if (line && audit_view_receipt_ok(v->q, rec)) {
			snprintf(ref, sizeof(ref), "%s:%llu", node, (unsigned long long)seq);
			json_object_set_new(line, "receipt", json_string(ref));
		}
		json_array_append_new(v->lines, line);
	}
	json_decref(rec);
	v->last.time_ms = time_ms;
	str_copy(v->last.node, node, sizeof(v->last.node));
	v->last.seq = seq;
	return ERR_OK;
}

/*
 * A line whose record no signed checkpoint covers yet has no receipt to
 * give: it says "receipt_pending" instead of linking to a 404.  When the
 * checkpoints cannot be read, the links stay (the receipt page says what
 * it can).
 */
static void pending_receipts(struct audit_reader *r, json_t *lines)
{
	char node[AUDIT_NODE_MAX + 1], last[AUDIT_NODE_MAX + 1] = "";
	uint64_t seq, signed_size = 0;
	json_t *line;
	size_t i;

	json_array_foreach(lines, i, line) {
		const char *ref = json_string_value(json_object_get(line, "receipt"));

		if (!ref || !audit_ref_parse(ref, node, &seq))
			continue;
		if (strcmp(node, last)) {
			struct ctx c = CTX_INIT;

			if (audit_signed_size(r, node, &signed_size, &c)) {
				log_warn("access view: %s", c.msg);
				return;
			}
			str_copy(last, node, sizeof(last));
		}
		if (seq >= signed_size) {
			json_object_del(line, "receipt");
			json_object_set_new(line, "receipt_pending", json_true());
		}
	}
}

enum err audit_patient_view(struct audit_reader *r, const struct audit_view_q *q, json_t **out,
			    struct audit_cursor *next, bool *more, struct ctx *c)
{
	struct audit_filter f = AUDIT_FILTER_INIT;
	struct view v;
	enum err e;

	*out = NULL;
	*more = false;
	memset(&v, 0, sizeof(v));
	v.q = q;
	v.lines = json_array();
	v.kind = q->kind && *q->kind && strcmp(q->kind, "all") ? q->kind : NULL;
	v.want = q->limit ? q->limit : 25;
	f.patient = q->patient;
	f.newest_first = true;
	f.after = q->after;
	e = audit_query(r, &f, view_row, &v, c);
	if (e && e != ERR_CONFLICT) {
		json_decref(v.lines);
		return e;
	}
	pending_receipts(r, v.lines);
	*out = v.lines;
	*more = v.more;
	if (next)
		*next = v.last;
	return ERR_OK;
}
