/*
 * model.h - what the FHIR module knows about resources: the supported
 * types, the search parameters and their extraction into index rows, the
 * patient compartment, derived data categories and sensitivity labels,
 * validation on write, and FHIR primitive parsing (dates, ids).
 *
 * Pure functions over jansson values: no I/O, no HTTP, no store access.
 * Memory for index rows comes from the caller's arena.  Thread-safe.
 */
#ifndef VERANDA_FHIR_MODEL_H
#define VERANDA_FHIR_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "store/store.h"

/* ---- resource types ---- */

enum {
	FHIR_TYPE_SERVER_WRITES_ONLY = 1 << 0, /* AuditEvent: clients may not write */
};

struct fhir_type {
	const char *name;
	unsigned flags;
};

/* The supported types, in alphabetical order, NULL-name terminated. */
extern const struct fhir_type fhir_types[];
/* The type named exactly 'name' or NULL. */
const struct fhir_type *fhir_type_find(const char *name);

/* Is 'id' a valid FHIR id: [A-Za-z0-9\-\.]{1,64}? */
bool fhir_id_valid(const char *id);

/* ---- primitives ---- */

/*
 * Parse a FHIR date, dateTime or instant ("2023", "2023-04", "2023-04-05",
 * "2023-04-05T10:00:00+02:00", fractions of a second allowed) into the
 * inclusive range of milliseconds it denotes: "2023" is the whole year.
 * A dateTime with a time must have a zone (FHIR rule); a date without a
 * time is taken as UTC.  ERR_INVALID for anything else (bad month, Feb 30, ...).
 */
enum err fhir_date_parse(const char *s, int64_t *lo, int64_t *hi);

/*
 * Normalize for string search: Unicode lowercase and accents removed for
 * Latin letters ("Zoë" -> "zoe"), whitespace runs to one space, trimmed.
 * Appends to 'out'.
 */
enum err fhir_str_normalize(const char *s, struct buf *out);

/* ---- search parameters ---- */

enum fhir_param_kind {
	FHIR_PARAM_TOKEN,
	FHIR_PARAM_STRING,
	FHIR_PARAM_DATE,
	FHIR_PARAM_REFERENCE,
	FHIR_PARAM_QUANTITY,
	FHIR_PARAM_NUMBER,
	FHIR_PARAM_URI,
};

struct fhir_param {
	const char *type;      /* resource type; NULL for the common ones (_id, _lastUpdated, _tag, _security, _profile) */
	const char *code;      /* "patient", "code", "date", ... */
	enum fhir_param_kind kind;
	/*
	 * Where the values are, as simple paths from the resource root separated
	 * by " | " ("subject | patient"); "[x]" names a choice element
	 * ("effective[x]" matches effectiveDateTime, effectivePeriod, ...).
	 * Arrays are walked at every step.
	 */
	const char *path;
	/* The R4 FHIRPath expression of the parameter (docs, differential tests). */
	const char *expression;
	/* Reference parameters: the allowed target types, NULL-terminated; NULL = any. */
	const char *const *targets;
	const char *description;
};

/* Every parameter, NULL-code terminated. */
extern const struct fhir_param fhir_params[];
/* The parameter 'code' of 'type' (or a common one); NULL when unknown. */
const struct fhir_param *fhir_param_find(const char *type, const char *code);

/* ---- indexing ---- */

struct fhir_index {
	struct store_ix_row *rows;
	size_t n, cap;
	const char **patients;   /* patient compartment: ids, no duplicates */
	size_t npatients, patients_cap;
};

/*
 * Compute the index rows, the patient compartment and the derived rows
 * (data category: token rows with param "_category-veranda" and system
 * "urn:veranda:data-category"; sensitivity from meta.security) of
 * 'res', a resource of 'type' with id 'id'.  Strings and rows are allocated
 * from 'a'.  Fails with ERR_UNPROCESSABLE (expression names the element)
 * when an indexed element has a malformed primitive (a bad date, a
 * reference that is not a string, a code with whitespace).
 */
enum err fhir_index_resource(struct arena *a, const char *type, const char *id,
			     const json_t *res, struct fhir_index *out, struct ctx *c);

/* ---- validation ---- */

/*
 * Validate a resource body for a write.  'url_type' is the type of the URL;
 * 'url_id' the id of the URL for an update (NULL for a create, where a
 * body id is ignored and replaced).  Checks: a JSON object; resourceType
 * present, known and equal to url_type; id syntax; body id equal to url_id
 * on update; meta, if present, an object; text.div, if present, a string.
 * Primitive formats of indexed elements are checked by fhir_index_resource().
 * ERR_INVALID (400) or ERR_UNPROCESSABLE (422) with expression set.
 */
enum err fhir_validate(const char *url_type, const char *url_id, const json_t *res,
		       struct ctx *c);

#endif
