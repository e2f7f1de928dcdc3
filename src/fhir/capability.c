/*
 * capability.c - the CapabilityStatement at /fhir/metadata, generated from
 * the type table so that it states exactly what is implemented.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/json.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"

static json_t *interactions(const char *const *codes)
{
	json_t *a = json_array();

	for (; *codes; codes++)
		json_array_append_new(a, json_pack("{s:s}", "code", *codes));
	return a;
}

void fhir_capability_build(struct fhir *f)
{
	static const char *const rw[] = {"read", "vread", "update", "delete", "history-instance",
					 "history-type", "create", NULL};
	static const char *const ro[] = {"read", "vread", "history-instance", "history-type", NULL};
	static const char *const sys[] = {"history-system", NULL};
	json_t *cs, *rest, *resources;
	char date[32];

	clock_format_instant(clock_now_ms(), date);
	date[10] = '\0';
	resources = json_array();
	for (const struct fhir_type *t = fhir_types; t->name; t++) {
		bool server_only = t->flags & FHIR_TYPE_SERVER_WRITES_ONLY;
		json_t *r = json_pack("{s:s,s:o,s:s,s:b,s:b,s:b,s:s,s:[s]}",
				      "type", t->name,
				      "interaction", interactions(server_only ? ro : rw),
				      "versioning", "versioned-update",
				      "readHistory", 1,
				      "updateCreate", !server_only,
				      "conditionalCreate", 0,
				      "conditionalDelete", "not-supported",
				      "referencePolicy", "literal");
		json_array_append_new(resources, r);
	}
	rest = json_pack("{s:s,s:o,s:o}", "mode", "server", "resource", resources,
			 "interaction", interactions(sys));
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
