/*
 * balp.c - the FHIR R4 AuditEvent form of a record, following IHE Basic
 * Audit Log Patterns (BALP) for the RESTful interactions and DICOM audit
 * codes for sign-in, system and security events.  docs/audit.md has the
 * table.  Reentrant; builds a new jansson tree per call.
 *
 * What goes where (BALP names in brackets):
 *   type / subtype   rest + restful-interaction code [BALP]; DICOM codes
 *                    otherwise; always also our own type name under
 *                    urn:veranda:audit-event-type
 *   agent            the user [IRCP, requestor], the app [Source Role ID,
 *                    110153] with the client's address, this server
 *                    [Destination Role ID, 110152]
 *   agent.policy     token id hash (BALP: the OAuth token), consent,
 *                    grant and break-the-glass ids
 *   source           this node, security-source-type 4 (application server)
 *   entity           patient [Person / Patient], data [System Object /
 *                    Domain Resource], query [Query, base64], request id
 *                    [XrequestId]
 *   purposeOfEvent   BTG when a break-the-glass id is present
 */
#include "audit/audit.h"
#include "audit/audit_int.h"

#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/str.h"

#define SYS_EVENT "http://terminology.hl7.org/CodeSystem/audit-event-type"
#define SYS_REST "http://hl7.org/fhir/restful-interaction"
#define SYS_DCM "http://dicom.nema.org/resources/ontology/DCM"
#define SYS_OURS "urn:veranda:audit-event-type"
#define SYS_PART "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#define SYS_ENTITY_TYPE "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#define SYS_OBJECT_ROLE "http://terminology.hl7.org/CodeSystem/object-role"
#define SYS_BALP_ENTITY "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
#define SYS_SOURCE "http://terminology.hl7.org/CodeSystem/security-source-type"
#define SYS_ACT_REASON "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#define EXT_REASON "urn:veranda:audit:policy-reason"
#define EXT_BEHALF "urn:veranda:audit:on-behalf-of"

struct mapping {
	const char *type;      /* our name prefix or full name */
	const char *sys, *code, *display;        /* AuditEvent.type */
	const char *sub_sys, *sub_code, *sub_display; /* standard subtype or NULL */
};

static const struct mapping maps[] = {
	{"fhir.read", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "read", "read"},
	{"fhir.vread", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "vread", "vread"},
	{"fhir.search", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "search-type",
	 "search type"},
	{"fhir.history", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "history-instance",
	 "history instance"},
	{"fhir.create", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "create", "create"},
	{"fhir.update", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "update", "update"},
	{"fhir.delete", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "delete", "delete"},
	{"fhir.everything", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "operation",
	 "operation"},
	{"fhir.export", SYS_EVENT, "rest", "Restful Operation", SYS_REST, "operation", "operation"},
	{"session.signin", SYS_DCM, "110114", "User Authentication", SYS_DCM, "110122", "Login"},
	{"session.signin-failed", SYS_DCM, "110114", "User Authentication", SYS_DCM, "110122",
	 "Login"},
	{"session.signout", SYS_DCM, "110114", "User Authentication", SYS_DCM, "110123", "Logout"},
	{"session.expired", SYS_DCM, "110114", "User Authentication", SYS_DCM, "110123", "Logout"},
	{"session.", SYS_DCM, "110114", "User Authentication", NULL, NULL, NULL},
	{"oauth.", SYS_DCM, "110114", "User Authentication", NULL, NULL, NULL},
	{"consent.", SYS_DCM, "110110", "Patient Record", NULL, NULL, NULL},
	{"proxy.", SYS_DCM, "110110", "Patient Record", NULL, NULL, NULL},
	{"policy.denied", SYS_DCM, "110113", "Security Alert", NULL, NULL, NULL},
	{"access.breakglass-start", SYS_DCM, "110113", "Security Alert", SYS_DCM, "110127",
	 "Emergency Override Started"},
	{"access.breakglass-end", SYS_DCM, "110113", "Security Alert", SYS_DCM, "110138",
	 "Emergency Override Stopped"},
	{"access.", SYS_DCM, "110113", "Security Alert", NULL, NULL, NULL},
	{"admin.user", SYS_DCM, "110113", "Security Alert", SYS_DCM, "110137",
	 "User Security Attributes Changed"},
	{"admin.", SYS_DCM, "110113", "Security Alert", SYS_DCM, "110129", "Security Configuration"},
	{"system.start", SYS_DCM, "110100", "Application Activity", SYS_DCM, "110120",
	 "Application Start"},
	{"system.stop", SYS_DCM, "110100", "Application Activity", SYS_DCM, "110121",
	 "Application Stop"},
	{"system.", SYS_DCM, "110100", "Application Activity", NULL, NULL, NULL},
};

static const struct mapping *find_map(const char *type)
{
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		size_t n = strlen(maps[i].type);
		if (maps[i].type[n - 1] == '.' ? strncmp(type, maps[i].type, n) == 0
					       : strcmp(type, maps[i].type) == 0)
			return &maps[i];
	}
	return NULL;
}

static json_t *coding(const char *sys, const char *code, const char *display)
{
	json_t *c = json_pack("{s:s, s:s}", "system", sys, "code", code);
	if (display)
		json_object_set_new(c, "display", json_string(display));
	return c;
}

static json_t *concept(const char *sys, const char *code, const char *display)
{
	return json_pack("{s:[o]}", "coding", coding(sys, code, display));
}

static const char *get(const json_t *o, const char *k)
{
	const json_t *v = o ? json_object_get(o, k) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "Base/Type/id" or "Type/id" for a reference. */
static json_t *reference(const char *base, const char *type, const char *id, const char *version)
{
	char ref[1024];

	if (version)
		snprintf(ref, sizeof(ref), "%s%s%s/%s/_history/%s", base ? base : "",
			 base && *base ? "/" : "", type, id, version);
	else
		snprintf(ref, sizeof(ref), "%s%s%s/%s", base ? base : "", base && *base ? "/" : "",
			 type, id);
	return json_pack("{s:s}", "reference", ref);
}

static json_t *identifier(const char *value)
{
	return json_pack("{s:{s:s}}", "identifier", "value", value);
}

static void add_policy(json_t *agent, const char *prefix, const char *value)
{
	char s[512];
	json_t *p;

	if (!value)
		return;
	p = json_object_get(agent, "policy");
	if (!p) {
		p = json_array();
		json_object_set_new(agent, "policy", p);
	}
	snprintf(s, sizeof(s), "%s%s", prefix, value);
	json_array_append_new(p, json_string(s));
}

enum err audit_event_to_fhir(const char *record, size_t n, const char *base, json_t **out,
			     struct ctx *c)
{
	json_t *rec = NULL, *ae = NULL, *agents, *entities, *subtypes;
	const json_t *agent, *source, *authority, *corr, *ents;
	const struct mapping *m;
	const char *node, *type, *action;
	struct rec_cols cols;
	uint64_t seq;
	char outcome[4], id[96];
	enum err e;

	*out = NULL;
	if ((e = rec_parse(record, n, &rec, &seq, &node, &cols, c)))
		return e;
	type = cols.type;
	action = get(rec, "action");
	m = find_map(type);
	if (!m || !action || strlen(action) != 1 || !strchr("CRUDE", action[0])) {
		json_decref(rec);
		return ctx_errorf(c, ERR_INVALID, "not an audit record this server writes");
	}
	agent = json_object_get(rec, "agent");
	source = json_object_get(rec, "source");
	authority = json_object_get(rec, "authority");
	corr = json_object_get(rec, "correlation");
	ents = json_object_get(rec, "entity");

	ae = json_pack("{s:s}", "resourceType", "AuditEvent");
	snprintf(id, sizeof(id), "%s.%llu", node, (unsigned long long)seq);
	for (char *p = id; *p; p++)
		if (*p == '_')
			*p = '-';
	if (strlen(id) <= 64)
		json_object_set_new(ae, "id", json_string(id));
	json_object_set_new(ae, "type", coding(m->sys, m->code, m->display));
	subtypes = json_array();
	if (m->sub_sys) {
		const char *sub = m->sub_code;
		/* a search on the whole system or a history of a type */
		if (strcmp(type, "fhir.search") == 0 && json_is_array(ents)) {
			const char *q = get(json_array_get(ents, 0), "query");
			if (q && q[0] == '?')
				sub = "search-system";
		} else if (strcmp(type, "fhir.history") == 0 && json_is_array(ents) &&
			   !get(json_array_get(ents, 0), "id")) {
			sub = "history-type";
		}
		json_array_append_new(subtypes, coding(m->sub_sys, sub, NULL));
	}
	json_array_append_new(subtypes, coding(SYS_OURS, type, NULL));
	json_object_set_new(ae, "subtype", subtypes);
	json_object_set_new(ae, "action", json_string(action));
	json_object_set_new(ae, "recorded", json_string(get(rec, "time")));
	snprintf(outcome, sizeof(outcome), "%d", cols.outcome);
	json_object_set_new(ae, "outcome", json_string(outcome));
	if (get(rec, "outcomeCode"))
		json_object_set_new(ae, "outcomeDesc", json_string(get(rec, "outcomeCode")));
	if (get(authority, "breakglass"))
		json_object_set_new(ae, "purposeOfEvent",
				    json_pack("[o]", concept(SYS_ACT_REASON, "BTG", "break the glass")));

	agents = json_array();
	if (get(agent, "user") || get(agent, "username") || get(agent, "fhirUser")) {
		json_t *u = json_pack("{s:o, s:b}", "type",
				      concept(SYS_PART, "IRCP", "information recipient"),
				      "requestor", 1);
		const char *fu = get(agent, "fhirUser");
		const char *slash = fu ? strchr(fu, '/') : NULL;
		if (fu && slash && slash != fu && slash[1]) {
			char t[128];
			size_t tl = (size_t)(slash - fu);
			if (tl < sizeof(t)) {
				memcpy(t, fu, tl);
				t[tl] = '\0';
				json_object_set_new(u, "who", reference(base, t, slash + 1, NULL));
			}
		}
		if (!json_object_get(u, "who") && (get(agent, "user") || get(agent, "username")))
			json_object_set_new(u, "who", identifier(get(agent, "user") ? get(agent, "user")
											: get(agent, "username")));
		if (get(agent, "username"))
			json_object_set_new(u, "altId", json_string(get(agent, "username")));
		if (get(agent, "role"))
			json_object_set_new(u, "role",
					    json_pack("[{s:s}]", "text", get(agent, "role")));
		add_policy(u, "token:", get(source, "token"));
		add_policy(u, "session:", get(source, "session"));
		add_policy(u, "Consent/", get(authority, "consent"));
		add_policy(u, "grant:", get(authority, "grant"));
		add_policy(u, "breakglass:", get(authority, "breakglass"));
		if (get(agent, "onBehalfOf"))
			json_object_set_new(u, "extension",
					    json_pack("[{s:s, s:s}]", "url", EXT_BEHALF, "valueString",
						      get(agent, "onBehalfOf")));
		json_array_append_new(agents, u);
	}
	{
		json_t *app = json_pack("{s:o, s:b}", "type",
					concept(SYS_DCM, "110153", "Source Role ID"), "requestor",
					get(agent, "user") || get(agent, "username") ? 0 : 1);
		if (get(agent, "client"))
			json_object_set_new(app, "who", identifier(get(agent, "client")));
		if (get(source, "addr"))
			json_object_set_new(app, "network",
					    json_pack("{s:s, s:s}", "address", get(source, "addr"),
						      "type", "2"));
		if (get(authority, "scopes")) {
			json_t *pol = json_array();
			json_array_append_new(pol, json_string(get(authority, "scopes")));
			json_object_set_new(app, "policy", pol);
		}
		if (json_object_size(app) > 2 || !json_array_size(agents))
			json_array_append_new(agents, app);
		else
			json_decref(app);
	}
	json_array_append_new(agents, json_pack("{s:o, s:b, s:{s:s}}", "type",
						concept(SYS_DCM, "110152", "Destination Role ID"),
						"requestor", 0, "who", "display", node));
	json_object_set_new(ae, "agent", agents);
	json_object_set_new(ae, "source",
			    json_pack("{s:s, s:{s:s}, s:[o]}", "site", node, "observer", "display",
				      node, "type",
				      coding(SYS_SOURCE, "4", "Application Server")));

	entities = json_array();
	if (get(rec, "patient"))
		json_array_append_new(entities,
				      json_pack("{s:o, s:o, s:o}", "what",
						reference(base, "Patient", get(rec, "patient"), NULL),
						"type", coding(SYS_ENTITY_TYPE, "1", "Person"), "role",
						coding(SYS_OBJECT_ROLE, "1", "Patient")));
	for (size_t i = 0; json_is_array(ents) && i < json_array_size(ents); i++) {
		const json_t *en = json_array_get(ents, i);
		const char *et = get(en, "type"), *eid = get(en, "id"), *q = get(en, "query");
		json_t *x;
		if (q) {
			struct buf b64 = BUF_INIT(4 * AUDIT_TEXT_MAX);
			base64_encode(q, strlen(q), &b64);
			x = json_pack("{s:o, s:o, s:s, s:s}", "type",
				      coding(SYS_ENTITY_TYPE, "2", "System Object"), "role",
				      coding(SYS_OBJECT_ROLE, "24", "Query"), "description", q,
				      "query", b64.data);
			buf_release(&b64);
		} else {
			x = json_pack("{s:o, s:o}", "type",
				      coding(SYS_ENTITY_TYPE, "2", "System Object"), "role",
				      coding(SYS_OBJECT_ROLE, "4", "Domain Resource"));
			if (et && eid)
				json_object_set_new(x, "what",
						    reference(base, et, eid, get(en, "version")));
			else if (eid)
				json_object_set_new(x, "what", identifier(eid));
		}
		if (et && !json_object_get(x, "what"))
			json_object_set_new(x, "name", json_string(et));
		if (get(en, "category"))
			json_object_set_new(x, "securityLabel",
					    json_pack("[{s:s, s:s}]", "system",
						      "urn:veranda:data-category", "code",
						      get(en, "category")));
		json_array_append_new(entities, x);
	}
	if (get(corr, "request"))
		json_array_append_new(
			entities,
			json_pack("{s:o, s:o}", "what", identifier(get(corr, "request")), "type",
				  coding(SYS_BALP_ENTITY, "XrequestId", "X-Request-Id")));
	if (json_array_size(entities))
		json_object_set_new(ae, "entity", entities);
	else
		json_decref(entities);
	{
		const json_t *rs = json_object_get(authority, "reasons");
		if (json_is_array(rs) && json_array_size(rs)) {
			json_t *ext = json_array();
			for (size_t i = 0; i < json_array_size(rs); i++)
				if (json_is_string(json_array_get(rs, i)))
					json_array_append_new(
						ext, json_pack("{s:s, s:s}", "url", EXT_REASON,
							       "valueCode",
							       json_string_value(json_array_get(rs, i))));
			json_object_set_new(ae, "extension", ext);
		}
	}
	json_decref(rec);
	*out = ae;
	return ERR_OK;
}
