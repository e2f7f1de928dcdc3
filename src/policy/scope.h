/*
 * scope.h - SMART App Launch 2.2 scopes: parse a scope string, write it
 * back, narrow what a client asks for to what it may have, and answer
 * "may this token do that interaction on that resource type?".
 *
 * Syntax understood (SMART App Launch 2.2, scopes-and-launch-context):
 *
 *   v2 resource scope   (patient|user|system)/(Type|*).[c][r][u][d][s]
 *                       letters in cruds order, at least one, optionally
 *                       followed by ?name=value(&name=value)* (granular:
 *                       at most SCOPE_KV_MAX pairs; names and values
 *                       non-empty, percent-decoded to text without
 *                       control characters; '"', '\' and bytes
 *                       outside printable ASCII only as %XX)
 *   v1 resource scope   (patient|user|system)/(Type|*).(read|write|*)
 *                       read = rs, write = cud, * = cruds; remembered as
 *                       v1 so that they are written back the same way
 *   flags               openid fhirUser profile launch launch/patient
 *                       launch/encounter offline_access online_access
 *
 * Type is "*" or a resource type name shape [A-Z][A-Za-z]{0,62}; it is
 * not checked against the types this server supports.  Scopes are case
 * sensitive.  Any other token (an out-of-order or unknown suffix such as
 * ".sr" or ".dus", a v1 scope with a query, a malformed or over-long query,
 * "email", "launch/imagingStudy", ...) is kept as "ignored": never
 * reinterpreted, never granted, never written back.
 *
 * A struct scope_set is immutable once made: flags, resource scopes and
 * ignored tokens, each deduplicated (resource scopes by their written
 * form) and kept in the order first seen.  Every set made here formats
 * to a scope string that scope_parse() accepts and that parses back to
 * the same set (at most SCOPE_STRING_MAX bytes and SCOPE_TOKENS_MAX
 * scopes), so a grant can be stored and sent as its string.  Every
 * function here is pure;
 * sets may be shared read-only between threads.  Pointers returned into
 * a set (scope_at(), decision filters) live as long as the set.
 *
 * Only core/ is used.  Nothing here knows OAuth error codes or HTTP: the
 * callers map ERR_INVALID + message to invalid_scope.
 */
#ifndef VERANDA_POLICY_SCOPE_H
#define VERANDA_POLICY_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

#define SCOPE_STRING_MAX 8192     /* bytes of a scope string */
#define SCOPE_TOKENS_MAX 256      /* space-separated tokens in a scope string */
#define SCOPE_KV_MAX 4            /* granular parameters of one scope */
#define SCOPE_TYPE_MAX 64         /* bytes of a type, with its NUL */
#define SCOPE_KV_NAME_MAX 64      /* bytes of a decoded parameter name, with its NUL */
#define SCOPE_KV_VALUE_MAX 256    /* bytes of a decoded parameter value, with its NUL */
#define SCOPE_DECIDE_FILTERS_MAX 16

enum scope_ctx { SCOPE_PATIENT, SCOPE_USER, SCOPE_SYSTEM };

/* Permission bits of a resource scope. */
enum { SCOPE_C = 1, SCOPE_R = 2, SCOPE_U = 4, SCOPE_D = 8, SCOPE_S = 16 };
#define SCOPE_CRUDS (SCOPE_C | SCOPE_R | SCOPE_U | SCOPE_D | SCOPE_S)

/* FHIR interactions, each allowed by one permission letter. */
enum scope_op {
	SCOPE_OP_CREATE,   /* c */
	SCOPE_OP_READ,     /* r: read, vread, instance history */
	SCOPE_OP_UPDATE,   /* u */
	SCOPE_OP_DELETE,   /* d */
	SCOPE_OP_SEARCH,   /* s: search, type/system history, $everything */
};

/* One granular constraint, decoded. */
struct scope_kv {
	char name[SCOPE_KV_NAME_MAX];
	char value[SCOPE_KV_VALUE_MAX];
};

/* One resource scope. */
struct scope_res {
	enum scope_ctx ctx;
	char type[SCOPE_TYPE_MAX];        /* "Observation" or "*" */
	unsigned perms;                   /* SCOPE_C|..., never 0 */
	bool v1;                          /* written as .read/.write/.* */
	struct scope_kv q[SCOPE_KV_MAX];  /* a resource must match ALL of them */
	size_t nq;
};

/* Flags for the non-resource scopes. */
enum {
	SCOPE_OPENID = 1,
	SCOPE_FHIRUSER = 2,
	SCOPE_PROFILE = 4,
	SCOPE_OFFLINE = 8,               /* offline_access */
	SCOPE_ONLINE = 16,               /* online_access */
	SCOPE_LAUNCH = 32,
	SCOPE_LAUNCH_PATIENT = 64,       /* launch/patient */
	SCOPE_LAUNCH_ENCOUNTER = 128,    /* launch/encounter */
};
#define SCOPE_FLAGS_ALL 255u

struct scope_set;

/*
 * Parse a space-separated scope string (runs of spaces are one
 * separator; NULL is the empty string) into a new set for the caller to
 * scope_set_free().  Individual tokens never make it fail: unknown or
 * malformed ones are kept as ignored.  ERR_INVALID with a message (and
 * *out NULL) only when 's' is not a scope string at all: longer than
 * SCOPE_STRING_MAX bytes, a control character (including tab and line
 * breaks), or more than SCOPE_TOKENS_MAX tokens.
 */
enum err scope_parse(const char *s, struct scope_set **out, struct ctx *c);

/* Free a set; NULL is fine. */
void scope_set_free(struct scope_set *set);

/* The SCOPE_OPENID... flags of the set. */
unsigned scope_flags(const struct scope_set *set);

/* Resource scopes, in order: scope_at(set, i) for i < scope_count(set). */
size_t scope_count(const struct scope_set *set);
const struct scope_res *scope_at(const struct scope_set *set, size_t i);

/*
 * Ignored tokens, as written (for logs and for telling the user what was
 * not granted; they may hold any byte but control characters and spaces,
 * so escape them on output).
 */
size_t scope_ignored_count(const struct scope_set *set);
const char *scope_ignored_at(const struct scope_set *set, size_t i);

/* Does the set hold a resource scope in context 'ctx'? (patient/: a patient must be in context) */
bool scope_has_ctx(const struct scope_set *set, enum scope_ctx ctx);

/*
 * Append the set to 'out' as a scope string: the flags first, in the
 * order openid fhirUser profile launch launch/patient launch/encounter
 * offline_access online_access, then the resource scopes in set order,
 * each in the syntax it was written in (v1 or v2), separated by one
 * space; ignored tokens are left out.  Parameter names and values are
 * written as decoded, with %XX only for what cannot stand for itself
 * (bytes outside printable ASCII, space, '"', '\', '%', '&', and '=' in
 * a name), so "|", ":", "/" stay as they are and the result is never
 * longer than the string parsed.  Parsing the result gives the same set.
 * Returns out->err (ERR_TOOBIG past its cap, with a message on 'c').
 */
enum err scope_format(const struct scope_set *set, struct buf *out, struct ctx *c);

/* Append one resource scope in its written form (as scope_format()). */
enum err scope_res_format(const struct scope_res *r, struct buf *out);

/*
 * requested ∩ allowed, a new set: what the client asked for, narrowed to
 * what its registration allows.  Flags: both must hold them.  A resource
 * scope pairs with each allowed scope of the same context whose type is
 * the same or "*" (a requested "*" narrows to the allowed type); the
 * permissions are the common ones (none: nothing kept); the constraints
 * are the requested ones under an unconstrained allowance, the allowed
 * ones under an unconstrained request, otherwise both together (AND;
 * nothing kept past SCOPE_KV_MAX).  The result keeps the requested
 * syntax when it can express the permissions (v1 rs, cud, cruds without
 * constraints), v2 otherwise.  Examples (W is the wildcard type "*"):
 * patient/W.rs allowed + patient/Observation.cruds requested ->
 * patient/Observation.rs; patient/Observation.read requested under
 * patient/W.* -> patient/Observation.read; patient/W.read requested under
 * patient/Condition.rs -> patient/Condition.read.  Ignored tokens are
 * dropped.  ERR_INVALID (and *out NULL) when the result would not fit in
 * one scope string (more than SCOPE_TOKENS_MAX scopes or
 * SCOPE_STRING_MAX bytes).
 */
enum err scope_intersect(const struct scope_set *requested, const struct scope_set *allowed,
			 struct scope_set **out, struct ctx *c);

/*
 * Is every flag and every resource scope of 'req' covered by 'granted'
 * (refresh with a scope parameter)?  A resource scope is covered when
 * each of its permission letters is held by some granted scope of the
 * same context, whose type is the same or "*", and whose constraints
 * are all among the requested scope's (an unconstrained scope covers
 * granular ones, not the reverse).  The syntax (v1/v2) does not matter;
 * ignored tokens of 'req' are not considered (they are never granted).
 */
bool scope_covers(const struct scope_set *granted, const struct scope_set *req);

/*
 * What the user chose on the consent screen for a type offered with
 * category choices: categories[0..n) as "system|code" (n == 0: none
 * chosen, the type is withheld).
 */
struct scope_choice {
	const char *type;
	const char *const *categories;
	size_t n;
};

/*
 * A new set: 'set' without the flags in 'drop_flags' (e.g. SCOPE_OFFLINE
 * when the user declines), without the resource scopes whose type is one
 * of denied_types[0..ndenied), and with each resource scope of a type
 * listed in choices[] replaced by one v2 scope per chosen category,
 * <ctx>/<Type>.<perms ∩ rs>?category=<system>|<code> (a scope with
 * neither r nor s is dropped; a scope that was already granular keeps its
 * constraints and gains the category, so the result never grants more).
 * Output order follows 'set'; the results are deduplicated.
 *
 * Types match exactly: a wildcard scope is withheld only by listing "*"
 * (withholding "Observation" leaves a patient wildcard .rs in place; the consent
 * screen shows the wildcard as a choice of its own), and choices never
 * apply to wildcard scopes.  A choice for a type with no scope does
 * nothing; when a type is both denied and in choices[], denied wins.
 * ERR_INVALID for a NULL type or category, a category that is empty,
 * longer than SCOPE_KV_VALUE_MAX - 1 bytes or not text (control
 * characters, invalid UTF-8), or a result that would not fit in one scope
 * string (as scope_intersect()).
 */
enum err scope_restrict(const struct scope_set *set, unsigned drop_flags,
			const char *const *denied_types, size_t ndenied,
			const struct scope_choice *choices, size_t nchoices,
			struct scope_set **out, struct ctx *c);

/* The decision for one FHIR interaction on one resource type. */
struct scope_decision {
	bool allowed;
	enum scope_ctx ctx;   /* the broadest context that allows it: system > user > patient */
	size_t nfilters;      /* 0: unfiltered; else the resource must match ANY of filters[] */
	/* granular scopes (each: ALL of its q[] must match); point into the set */
	const struct scope_res *filters[SCOPE_DECIDE_FILTERS_MAX];
};

/*
 * Decide whether the scopes allow 'op' on resources of 'type' (a concrete
 * type name; "*" matches only wildcard scopes).  The context chosen is
 * the broadest one with a scope of that type (or "*") holding the op's
 * letter.  In that context an unconstrained scope wins (nfilters 0);
 * otherwise filters[] lists the allowing granular scopes (OR); past
 * SCOPE_DECIDE_FILTERS_MAX the rest are left out, which only narrows.
 * When nothing allows it: allowed false, ctx SCOPE_PATIENT, nfilters 0.
 */
void scope_decide(const struct scope_set *set, const char *type, enum scope_op op,
		  struct scope_decision *out);

/* A category choice offered on the consent screen. */
struct scope_category {
	const char *value;   /* "system|code" */
	const char *label;   /* plain language, capitalised: "Lab results" */
};

/*
 * The category choices offered for 'type': Condition (encounter-
 * diagnosis, problem-list-item, health-concern) and Observation
 * (laboratory, social-history, vital-signs, survey, sdoh), with the US
 * Core / (g)(10) system|code values.  NULL and *n = 0 for other types.
 */
const struct scope_category *scope_categories(const char *type, size_t *n);

/*
 * A plain-language description of one resource scope for the
 * authorization screen ("See your lab results", "See and add your
 * medications and prescriptions"), written to out[0..n) and always
 * NUL-terminated (cut when too long; n == 0 writes nothing).  May quote
 * constraint values the client chose: escape for HTML.
 */
void scope_describe(const struct scope_res *r, char *out, size_t n);

/* The description of one flag (a single SCOPE_OPENID... bit); NULL for anything else. */
const char *scope_describe_flag(unsigned flag);

#endif
