/*
 * validate.c - the checks a resource body passes before a write.
 *
 * Two classes of failure, as FHIR servers usually split them:
 *   ERR_INVALID (400)        the body is not a resource of this URL: not a
 *                            JSON object, no or unknown resourceType, a
 *                            resourceType other than the URL's, an id that
 *                            is not an id, an update whose body id is
 *                            missing or differs from the URL's.
 *   ERR_UNPROCESSABLE (422)  a resource of the right type that breaks a
 *                            rule: meta or text of the wrong shape,
 *                            malformed extensions (at any depth: each an
 *                            object with a url) or contained resources, a
 *                            required element (R4 minimum cardinality 1)
 *                            missing.  Formats of indexed elements (dates,
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
	    (e = check_contained(type, res, c)) || (e = check_required(type, res, c)))
		return e;
	str_copy(expr, type, sizeof(expr));
	if ((e = check_values(res, expr, strlen(expr), sizeof(expr), false, c)))
		return e;
	str_copy(path, type, sizeof(path));
	return check_nested_extensions(res, path, strlen(path), sizeof(path), c);
}
