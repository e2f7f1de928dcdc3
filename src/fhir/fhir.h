/*
 * fhir.h - the FHIR R4 service: reads, writes, history, the capability
 * statement, OperationOutcomes and import.  Every surface (REST, portal,
 * staff console, import) goes through these functions; none of them knows
 * about HTTP.  The REST edge is rest.c.
 *
 * Threading: one struct fhir is shared by all threads; every function is
 * thread-safe (the store gives each thread its own connection).
 * Results that hold bytes (struct fhir_result, struct buf) belong to the
 * caller.
 */
#ifndef VERANDA_FHIR_FHIR_H
#define VERANDA_FHIR_FHIR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "store/store.h"

struct fhir;
struct http_router;

struct fhir_opts {
	const char *base_url;     /* public base URL without /fhir and without trailing slash */
	int64_t page_size;        /* default _count */
	int64_t page_max;         /* maximum _count */
	int json_depth_max;
	int64_t body_max;         /* bytes of one resource */
	const char *software_version;
};

struct fhir *fhir_new(struct store *s, const struct fhir_opts *o);
void fhir_free(struct fhir *f);
/* "{base}/fhir" */
const char *fhir_base(const struct fhir *f);

/* The outcome of a write. */
struct fhir_result {
	char type[64];
	char id[72];
	int64_t version;
	int64_t last_updated;
	bool created;           /* a new resource (201) rather than a new version */
	bool unchanged;         /* a delete of something already deleted or absent */
	struct buf json;        /* the stored representation (empty for deletes) */
};

void fhir_result_init(struct fhir_result *r);
void fhir_result_release(struct fhir_result *r);

/*
 * Read the current version (version 0) or a given version.
 * ERR_NOTFOUND for an unknown type, id or version; ERR_GONE when that
 * version is a deletion (out still describes it: version, last_updated).
 */
enum err fhir_read(struct fhir *f, const char *type, const char *id, int64_t version,
		   struct store_resource *out, struct ctx *c);

/*
 * fhir_read() that also tells, from the same read, whether the current
 * version is in patient 'patient''s compartment (*in, store_get_in()), or
 * when 'patient' is NULL, which patients' compartments hold it
 * (patients[0..max), *n of them, store_get_compartment()).
 */
enum err fhir_read_compartment(struct fhir *f, const char *type, const char *id, int64_t version,
			       struct store_resource *out, const char *patient, bool *in,
			       char (*patients)[STORE_PATIENT_ID_SIZE], size_t max, size_t *n,
			       struct ctx *c);

/*
 * Judge the stored version 'r' from its own content rather than from the
 * index tables (which hold current versions only): *yes when it is live,
 * in patient 'patient''s compartment (NULL: not asked) and matches every
 * search parameter params[0..n) of its type (n 0: none asked).  Token,
 * string, reference and uri parameters and _id are evaluated; any other
 * (dates, numbers, quantities, _lastUpdated, chains, _has) leaves *yes
 * false, as does a deletion.  *yes is false on error: ERR_INVALID when
 * the parameters do not parse, ERR_UNPROCESSABLE when the stored version
 * no longer indexes (match.c).
 */
struct fhir_kv;
enum err fhir_version_judge(struct fhir *f, const struct store_resource *r, const char *patient,
			    const struct fhir_kv *params, size_t n, bool *yes, struct ctx *c);

/*
 * Create a resource of 'type' from the JSON text body[0..n) with a
 * server-assigned id.  ERR_INVALID / ERR_UNPROCESSABLE / ERR_TOOBIG for a
 * rejected body (nothing is written); ERR_NOTFOUND for an unknown type;
 * ERR_FORBIDDEN for a type clients may not write.
 */
enum err fhir_create(struct fhir *f, const char *type, const char *body, size_t n,
		     struct fhir_result *res, struct ctx *c);

/*
 * Update (or create, if absent) 'type'/'id' from body[0..n).  if_match:
 * the version the client saw (-1: no If-Match).  ERR_PRECONDITION when
 * it is not the current version; of two concurrent updates with the same
 * if_match exactly one succeeds.
 */
enum err fhir_update(struct fhir *f, const char *type, const char *id, const char *body,
		     size_t n, int64_t if_match, struct fhir_result *res, struct ctx *c);

/* Logical delete (a new, deleted version).  Deleting an absent or deleted
 * resource succeeds with res->unchanged. */
enum err fhir_delete(struct fhir *f, const char *type, const char *id, int64_t if_match,
		     struct fhir_result *res, struct ctx *c);

/*
 * History as a Bundle of type "history", newest first.  type/id may be
 * NULL (system/type level).  since/at_most in ms (0: unbounded); count
 * entries per page; cursor: the seq to continue before (0: first page).
 * Links self/next carry _count/_since and the cursor.
 */
struct fhir_history_q {
	const char *type;
	const char *id;
	int64_t since;
	int64_t at_most;
	int64_t count;
	int64_t cursor;
	/*
	 * Instance history only (may be NULL): the versions to list.  Only
	 * versions keep() returns true for are listed, counted in total and
	 * paged over (a next link only when another kept version follows);
	 * when it keeps no version at all, whatever the window, the history
	 * fails with ERR_NOTFOUND as for an unknown id.  keep() runs inside a
	 * store history walk: it may read versions (store_get()) but not
	 * search, write or walk.  At most FHIR_HISTORY_WALK_MAX versions are
	 * looked at per page.
	 */
	bool (*keep)(void *arg, const struct store_resource *r);
	void *keep_arg;
};
#define FHIR_HISTORY_WALK_MAX 100000
enum err fhir_history(struct fhir *f, const struct fhir_history_q *q, struct buf *out,
		      struct ctx *c);

/* ---- search (search.c) ---- */

/* A decoded query parameter. */
struct fhir_kv {
	const char *name;
	const char *value;
};

struct fhir_search_req {
	const char *type;          /* resource type searched; NULL for $everything */
	const char *patient;       /* compartment: Patient/{patient}/{type} or $everything */
	bool everything;           /* Patient/{patient}/$everything */
	const struct fhir_kv *params;
	size_t nparams;
	bool strict;               /* Prefer: handling=strict: unknown parameters are errors */
	/* _include/_revinclude bring in only this patient's record and shared data (NULL: all) */
	const char *include_patient;
};

/*
 * Run a search and write a Bundle of type "searchset" to 'out': matches
 * (search.mode "match"), _include/_revinclude resources ("include"), and an
 * OperationOutcome entry ("outcome") listing ignored parameters.  Links
 * self (only the parameters applied), next and previous (keyset cursors in
 * _page).  ERR_INVALID naming the parameter (ctx expression) for a bad
 * value, an unknown parameter under strict handling, or a bad _page.
 */
enum err fhir_search(struct fhir *f, const struct fhir_search_req *r, struct buf *out,
		     struct ctx *c);

/*
 * POST [base]: a Bundle of type "batch" or "transaction" (body[0..len)).
 * Writes the batch-response / transaction-response Bundle to 'out'.
 * A transaction is all or nothing: on any entry's failure nothing is
 * kept and the error (naming the entry) is returned.  'representation':
 * include the written resources in the response entries.  'hooks' (may be
 * NULL): the caller's bounds on searches and its record of each entry.
 */
struct fhir_bundle_hooks;
enum err fhir_bundle(struct fhir *f, const char *body, size_t len, bool representation,
		     const struct fhir_bundle_hooks *hooks, struct buf *out, struct ctx *c);

/* What one entry of a Bundle did. */
enum fhir_entry_op {
	FHIR_ENTRY_READ,
	FHIR_ENTRY_VREAD,
	FHIR_ENTRY_SEARCH,
	FHIR_ENTRY_CREATE,
	FHIR_ENTRY_UPDATE,
	FHIR_ENTRY_DELETE,
};

struct fhir_entry_done {
	enum fhir_entry_op op;
	const char *type;
	const char *id;                       /* NULL for a search */
	int64_t version;                      /* 0: none */
	const struct fhir_search_req *search; /* FHIR_ENTRY_SEARCH: the request as it ran */
};

/*
 * The caller's part in a Bundle (any function may be NULL):
 * - search bounds each search entry before it runs: it may narrow *sr (its
 *   params replaced by an array of its own that lives until fhir_bundle()
 *   returns) or return an error;
 * - version judges the version a vread entry (GET Type/id/_history/n) read,
 *   live or deleted, before the entry is answered with it: an error
 *   answers the entry instead (ERR_NOTFOUND: as a version that does not
 *   exist);
 * - done learns of each entry that succeeded, for the audit log: in a batch
 *   as it runs, in a transaction once every entry has run and before the
 *   commit (nothing is told of a transaction that fails); it may return an
 *   error.
 * An error answers that entry (batch) or fails the whole Bundle
 * (transaction: nothing is kept).
 */
struct fhir_bundle_hooks {
	enum err (*search)(void *arg, struct fhir_search_req *sr, struct ctx *c);
	enum err (*done)(void *arg, const struct fhir_entry_done *d, struct ctx *c);
	enum err (*version)(void *arg, const struct store_resource *r, struct ctx *c);
	void *arg;
	/*
	 * A Bundle the caller wrapped around one resource (a conditional
	 * interaction): its bytes and nesting are not counted against the
	 * body and depth limits.  0 for a Bundle a client sent.
	 */
	size_t wrap_bytes;
	int wrap_depth;
};

/* The HTTP status for an error code (the FHIR edge's mapping). */
int fhir_status_of(enum err e);

/* The CapabilityStatement (JSON bytes, built once). */
const struct buf *fhir_capability(const struct fhir *f);

/*
 * An OperationOutcome for an error: severity "error", the FHIR issue code
 * that matches 'code', diagnostics 'msg', expression 'expr' (may be empty).
 */
enum err fhir_outcome(struct buf *out, const char *severity, const char *issue_code,
		      const char *msg, const char *expr);
/* The FHIR issue type code for an error ("invalid", "not-found", ...). */
const char *fhir_issue_code(enum err e);

/* ---- import ---- */

struct fhir_import_stats {
	int64_t lines;      /* resources seen */
	int64_t imported;
	int64_t rejected;
	int64_t per_type_n; /* number of entries used in per_type */
	struct {
		char type[64];
		int64_t n;
	} per_type[64];
};

/*
 * Called for each rejected line with its file, 1-based line (or Bundle
 * entry index) and the reason.
 */
typedef void (*fhir_import_reject_fn)(void *arg, const char *file, int64_t line,
				      const char *reason);
/* Called after each committed batch with bytes read so far of the file. */
typedef void (*fhir_import_progress_fn)(void *arg, const char *file, int64_t done,
					int64_t total, const struct fhir_import_stats *st);

/*
 * Import one file: FHIR NDJSON (one resource per line) or one JSON Bundle
 * (its entries' resources).  Keeps ids (a resource that exists gets a new
 * version).  Each resource is written atomically; batches are committed
 * every 'batch' resources, so an interrupted import leaves whole resources
 * only.  A bad line is reported through 'reject' and does not stop the
 * rest.  ERR_IO when the file cannot be read or the store fails.
 */
enum err fhir_import_file(struct fhir *f, const char *path, int batch,
			  fhir_import_reject_fn reject, fhir_import_progress_fn progress,
			  void *arg, struct fhir_import_stats *st, struct ctx *c);

/*
 * Write one parsed resource keeping its id (update semantics, no
 * If-Match), as import and seed do.  src[0..srclen) is the text it was
 * parsed from, so numbers keep their written precision (NULL: none).
 * The caller may hold a transaction.
 */
enum err fhir_put_json(struct fhir *f, json_t *res, const char *src, size_t srclen,
		       struct fhir_result *out, struct ctx *c);

/* ---- REST edge (rest.c) ---- */
struct oauth;
/*
 * Register the FHIR routes.  With 'o', every interaction but
 * /fhir/metadata needs a bearer access token of that authorization
 * server and is confined by its scopes and patient context (rest.c
 * explains the rules); NULL serves without authorization (benchmarks on
 * loopback only).
 */
void fhir_rest_register(struct fhir *f, struct http_router *r, struct oauth *o);
/*
 * Record every interaction in audit log 'a' (borrowed; NULL: none), and
 * serve GET /fhir/AuditEvent from the log in data_dir (NULL: none).
 */
struct audit;
void fhir_rest_set_audit(struct audit *a, const char *data_dir);

#endif
