/*
 * capability.c - the CapabilityStatement at /fhir/metadata, generated from
 * the type table so that it states exactly what is implemented.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/json.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"

#define AP(c, k, desc) {"AuditEvent", c, FHIR_PARAM_##k, NULL, NULL, NULL, desc}

const struct fhir_param fhir_audit_params[] = {
	AP("agent", TOKEN, "The username of the person who acted"),
	AP("client", TOKEN, "The client id of the app that acted"),
	AP("date", DATE, "When the event was recorded (eq, ge, gt, le, lt, sa, eb; repeat to narrow)"),
	AP("entity", REFERENCE, "The resource the event was about (Type/id)"),
	AP("outcome", TOKEN, "0 (success), 4 (minor failure), 8 (serious failure) or 12 (major failure)"),
	AP("patient", REFERENCE, "The patient whose record was touched (id or Patient/id)"),
	AP("request", TOKEN, "The request id (X-Request-Id) of the interaction"),
	AP("type", TOKEN, "An event type (fhir.read, oauth.token-issued, ...) or a category"),
	{NULL, NULL, 0, NULL, NULL, NULL, NULL},
};

static json_t *interactions(const char *const *codes)
{
	json_t *a = json_array();

	for (; *codes; codes++)
		json_array_append_new(a, json_pack("{s:s}", "code", *codes));
	return a;
}

/*
 * rest.security: SMART on FHIR (the legacy oauth-uris extension that
 * SMART 1 clients read; the same URLs as the discovery documents) and CORS.
 */
static json_t *security(const struct fhir *f)
{
	char base[700], u[6][760];
	static const char *const names[] = {"authorize", "token", "introspect", "revoke", "manage", "register"};
	static const char *const paths[] = {"/oauth/authorize", "/oauth/token", "/oauth/introspect",
					    "/oauth/revoke", "/account", "/oauth/register"};
	json_t *ext = json_array();

	snprintf(base, sizeof(base), "%s", f->opts.base_url ? f->opts.base_url : "");
	for (size_t i = 0; i < 6; i++) {
		snprintf(u[i], sizeof(u[i]), "%s%s", base, paths[i]);
		json_array_append_new(ext, json_pack("{s:s,s:s}", "url", names[i], "valueUri", u[i]));
	}
	return json_pack("{s:b,s:[{s:[{s:s,s:s,s:s}],s:s}],s:s,s:[{s:s,s:o}]}",
			 "cors", 1,
			 "service", "coding", "system",
			 "http://terminology.hl7.org/CodeSystem/restful-security-service", "code",
			 "SMART-on-FHIR", "display", "SMART-on-FHIR", "text",
			 "OAuth 2 bearer tokens (SMART App Launch 2)",
			 "description", "Every interaction but this statement needs an access token from the "
					"authorization server named in the extension",
			 "extension", "url",
			 "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			 "extension", ext);
}

void fhir_capability_build(struct fhir *f)
{
	static const char *const rw[] = {"read", "vread", "update", "delete", "history-instance",
					 "history-type", "create", "search-type", NULL};
	/* AuditEvent: the audit log, read and searched by the compliance role (rest.c) */
	static const char *const ro[] = {"read", "search-type", NULL};
	static const char *const sys[] = {"transaction", "batch", "history-system", NULL};
	static const char *const kinds[] = {"token", "string", "date", "reference", "quantity",
					    "number", "uri"};
	json_t *cs, *rest, *resources;
	char date[32];

	clock_format_instant(clock_now_ms(), date);
	date[10] = '\0';
	resources = json_array();
	for (const struct fhir_type *t = fhir_types; t->name; t++) {
		bool server_only = t->flags & FHIR_TYPE_SERVER_WRITES_ONLY;
		json_t *params = json_array(), *incs = json_array(), *revs = json_array();
		const struct fhir_param *own;
		size_t n, ncommon;
		json_t *r;

		if (server_only) {
			/* the audit log: its own search (rest.c), no includes */
			for (const struct fhir_param *p = fhir_audit_params; p->code; p++)
				json_array_append_new(params, json_pack("{s:s,s:s,s:s}", "name", p->code,
									"type", kinds[p->kind],
									"documentation", p->description));
			n = 0;
			own = NULL;
		} else {
			/* the common parameters, then the type's own */
			own = fhir_params_of(NULL, &ncommon);
			for (size_t k = 0; k < ncommon; k++)
				json_array_append_new(params, json_pack("{s:s,s:s,s:s}", "name", own[k].code,
									"type", kinds[own[k].kind],
									"documentation", own[k].description ? own[k].description : ""));
			own = fhir_params_of(t->name, &n);
		}
		for (size_t k = 0; k < n; k++) {
			json_array_append_new(params, json_pack("{s:s,s:s,s:s}", "name", own[k].code,
								"type", kinds[own[k].kind],
								"documentation", own[k].description ? own[k].description : ""));
			if (own[k].kind == FHIR_PARAM_REFERENCE) {
				char inc[160];
				snprintf(inc, sizeof(inc), "%s:%s", t->name, own[k].code);
				json_array_append_new(incs, json_string(inc));
			}
		}
		/*
		 * revinclude: every reference parameter of another type that may
		 * point here; not the audit log's, which no search of the records
		 * reaches
		 */
		for (const struct fhir_param *p = fhir_params; p->code && !server_only; p++) {
			bool target = p->kind == FHIR_PARAM_REFERENCE && p->type &&
				      strcmp(p->type, "AuditEvent");
			if (target && p->targets) {
				target = false;
				for (const char *const *tt = p->targets; *tt; tt++)
					if (!strcmp(*tt, t->name))
						target = true;
			}
			if (target) {
				char inc[160];
				snprintf(inc, sizeof(inc), "%s:%s", p->type, p->code);
				json_array_append_new(revs, json_string(inc));
			}
		}
		if (!server_only)
			json_array_append_new(incs, json_string("*"));
		/*
		 * Conditional creates, updates and deletes (one match at most)
		 * are served over REST and in Bundles (bundle.c); conditional
		 * reads are not.  Audit records are written by the server only
		 * and have no versions.
		 */
		r = json_pack("{s:s,s:o,s:s,s:b,s:b,s:b,s:b,s:s,s:s,s:[s],s:o,s:o,s:o}",
			      "type", t->name,
			      "interaction", interactions(server_only ? ro : rw),
			      "versioning", server_only ? "no-version" : "versioned-update",
			      "readHistory", !server_only,
			      "updateCreate", !server_only,
			      "conditionalCreate", !server_only,
			      "conditionalUpdate", !server_only,
			      "conditionalRead", "not-supported",
			      "conditionalDelete", server_only ? "not-supported" : "single",
			      "referencePolicy", "literal",
			      "searchInclude", incs,
			      "searchRevInclude", revs,
			      "searchParam", params);
		/* FHIR JSON has no empty arrays */
		if (!json_array_size(incs))
			json_object_del(r, "searchInclude");
		if (!json_array_size(revs))
			json_object_del(r, "searchRevInclude");
		if (server_only)
			json_object_set_new(r, "documentation",
					    json_string("The audit log as IHE BALP AuditEvents, newest first, for the "
							"compliance role only: read by id, and search by patient, agent, "
							"client, date, type, outcome, entity and request."));
		if (!strcmp(t->name, "Patient"))
			/* an instance operation of Patient (R4: rest.operation is for system ones) */
			json_object_set_new(r, "operation",
					    json_pack("[{s:s,s:s}]", "name", "everything", "definition",
						      "http://hl7.org/fhir/OperationDefinition/Patient-everything"));
		json_array_append_new(resources, r);
	}
	rest = json_pack("{s:s,s:o,s:o}", "mode", "server", "resource", resources,
			 "interaction", interactions(sys));
	json_object_set_new(rest, "security", security(f));
	cs = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s},s:{s:s,s:s},s:s,s:[s,s],s:[o]}",
		       "resourceType", "CapabilityStatement",
		       "status", "active",
		       "date", date,
		       "publisher", "Veranda",
		       "kind", "instance",
		       "description", "Veranda FHIR R4 server",
		       "software", "name", "Veranda", "version",
		       f->opts.software_version ? f->opts.software_version : "0",
		       "implementation", "description", "Veranda FHIR R4 API", "url", f->base,
		       "fhirVersion", "4.0.1",
		       "format", "application/fhir+json", "json",
		       "rest", rest);
	buf_reset(&f->capability);
	json_dump_buf(cs, &f->capability);
	json_decref(cs);
}

const struct buf *fhir_capability(const struct fhir *f)
{
	return &f->capability;
}
