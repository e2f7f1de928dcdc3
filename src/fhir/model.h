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
 * fhir_date_parse() for a search value: a time may also come without a
 * zone ("2023-04-05T10:00", "2023-04-05T10:00:00"), and is then taken as
 * UTC, as a date without a time is (R4 leaves such a value to the
 * server's time zone; this server's is UTC).
 */
enum err fhir_date_parse_search(const char *s, int64_t *lo, int64_t *hi);

/*
 * Normalize for string search: lowercase and accents removed for Latin,
 * Greek and Cyrillic letters ("Zoë" -> "zoe", "Nguyễn" -> "nguyen",
 * "Иванов" -> "иванов"), whitespace runs to one space, trimmed.
 * Appends to 'out'.
 */
enum err fhir_str_normalize(const char *s, struct buf *out);

/*
 * The version of that folding: raised whenever it reaches more letters, so
 * that the stored search forms are folded again (store_refold()).  1:
 * Latin-1 and Latin Extended-A; 2: also Latin Extended-B and Additional,
 * Greek, Cyrillic and the Latin ligatures.
 */
#define FHIR_FOLD_VERSION 2

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
	 * Arrays are walked at every step.  A step may be followed by a filter
	 * ".where(key='value')" that keeps only the elements whose primitive
	 * 'key' equals 'value' ("telecom.where(system='phone')").  A choice
	 * "[x]" only matches the choices that fit the kind (a date parameter
	 * on "occurrence[x]" reads occurrenceDateTime and occurrencePeriod,
	 * not occurrenceString).
	 */
	const char *path;
	/* The R4 FHIRPath expression of the parameter (docs, differential tests). */
	const char *expression;
	/* Reference parameters: the allowed target types, NULL-terminated; NULL = any. */
	const char *const *targets;
	const char *description;
};

/* Every parameter, NULL-code terminated, sorted by (type, code), common ones first. */
extern const struct fhir_param fhir_params[];
/* The parameter 'code' of 'type' (or a common one); NULL when unknown. */
const struct fhir_param *fhir_param_find(const char *type, const char *code);
/*
 * The parameters of 'type' alone (NULL: the common ones), a contiguous run
 * of fhir_params[] of length *n (0 for an unknown type).
 */
const struct fhir_param *fhir_params_of(const char *type, size_t *n);

/*
 * The parameter whose index rows serve 'p': 'p' itself, or for an alias
 * (Observation "patient" = "subject" narrowed to Patient) the base
 * parameter, with *target_type set to the one allowed target type (NULL
 * when 'p' is not an alias).  Aliases have no index rows of their own.
 */
const struct fhir_param *fhir_param_base(const struct fhir_param *p, const char **target_type);
/*
 * The reference parameters of 'type' that put a resource into a patient's
 * compartment (R4 CompartmentDefinition "patient"), NULL-terminated; empty
 * for types outside the compartment.
 */
const char *const *fhir_compartment_params(const char *type);
/*
 * Can a resource of 'type' be in a patient's record: Patient itself or a
 * type with compartment parameters?  (Other types are shared reference
 * data: Practitioner, Organization, Medication, Location...)
 */
bool fhir_type_in_record(const char *type);

/* ---- indexing ---- */

/* The derived data category rows (see index.c for the mapping). */
#define FHIR_CATEGORY_PARAM "_category-veranda"
#define FHIR_CATEGORY_SYSTEM "urn:veranda:data-category"
/*
 * Identifier token parameters also get rows for the :of-type modifier:
 * param "<code>:of-type" (e.g. "identifier:of-type"), a = Identifier.type
 * coding system, b = its code, c = Identifier.value.
 */
#define FHIR_OF_TYPE_SUFFIX ":of-type"

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
 * 'out' is reset first; rows are distinct.  Row contents per kind are
 * described at the top of index.c.  ERR_INVALID for an unknown 'type'.
 */
enum err fhir_index_resource(struct arena *a, const char *type, const char *id,
			     const json_t *res, struct fhir_index *out, struct ctx *c);

/*
 * Tell the indexer this server's FHIR base URL ("https://h/fhir"), so that
 * absolute references to it index as local Type/id.  References to other
 * servers keep only their URL.  Call once at start-up, before any thread
 * indexes (not thread-safe against concurrent indexing).
 */
void fhir_index_set_base(const char *base);

/* ---- validation ---- */

/*
 * Validate a resource body for a write.  'url_type' is the type of the URL;
 * 'url_id' the id of the URL for an update (NULL for a create, where a
 * body id is ignored and replaced).  Checks: a JSON object; resourceType
 * present, known and equal to url_type; id syntax; body id equal to url_id
 * on update; meta, if present, an object; text.div, if present, a string.
 * Primitive formats of indexed elements are checked by fhir_index_resource().
 * ERR_INVALID (400) or ERR_UNPROCESSABLE (422) with expression set.
 * Also 422: meta.profile/tag/security, text, extension, modifierExtension
 * and contained of the wrong shape, and a missing element that R4 requires
 * (minimum cardinality 1, e.g. Observation.status).  The split between 400
 * and 422 is described at the top of validate.c.
 */
enum err fhir_validate(const char *url_type, const char *url_id, const json_t *res,
		       struct ctx *c);

#endif
