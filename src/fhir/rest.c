/*
 * rest.c - the FHIR REST edge: turns HTTP requests under /fhir into
 * service calls and enum err + message into OperationOutcomes with the
 * right status.  Content negotiation, ETag / Last-Modified, conditional
 * requests (If-Match, If-None-Match, If-Modified-Since) and Prefer live
 * here; the service knows nothing of HTTP.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "auth/endpoints.h"
#include "auth/oauth.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/url.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"
#include "http/http.h"

#define FHIR_JSON "application/fhir+json; charset=utf-8"
#define PAGE_BUF_MAX ((size_t)256 << 20)

static const char *issue_for_status(int status)
{
	switch (status) {
	case 400: return "invalid";
	case 401: return "login";
	case 403: return "forbidden";
	case 404: return "not-found";
	case 405: return "not-supported";
	case 406: return "not-supported";
	case 409: return "conflict";
	case 410: return "deleted";
	case 412: return "conflict";
	case 413: return "too-costly";
	case 415: return "not-supported";
	case 422: return "processing";
	case 503: return "transient";
	}
	return status >= 500 ? "exception" : "invalid";
}

/* Respond with an OperationOutcome. */
static void send_outcome(struct http_req *q, int status, const char *msg, const char *expr)
{
	struct buf b = BUF_INIT(1 << 16);

	fhir_outcome(&b, status >= 400 ? "error" : "information", issue_for_status(status), msg, expr);
	if (status == 503)
		http_resp_header(q, "Retry-After", "1");
	http_resp_buf(q, status, FHIR_JSON, &b);
	buf_release(&b);
}

static void audit_store_error(struct http_req *q);
static struct store *rest_store; /* for send_error(): has storage failed for good? */

static void send_error(struct http_req *q, const struct ctx *c)
{
	if (c->code == ERR_IO && rest_store && store_failed(rest_store)) {
		/*
		 * Storage failed for good (a sync failed): the service is
		 * unavailable until an operator restarts it, not broken by
		 * this request.
		 */
		log_msg(LOG_ERROR, "fhir: %s", c->msg[0] ? c->msg : err_str(c->code));
		audit_store_error(q);
		http_resp_header(q, "Retry-After", "60");
		send_outcome(q, 503,
			     "the server cannot store data right now: writes are refused until it is"
			     " restarted; the failure is in its log under this request's X-Request-Id",
			     NULL);
		return;
	}
	if (c->code == ERR_IO) {
		/* the details (SQLite's words, file names) are for the operator, not the client */
		log_msg(LOG_ERROR, "fhir: %s", c->msg[0] ? c->msg : err_str(c->code));
		audit_store_error(q);
		send_outcome(q, 500,
			     "the server could not complete this request; the failure is in its log"
			     " under this request's X-Request-Id",
			     NULL);
		return;
	}
	send_outcome(q, fhir_status_of(c->code), c->msg[0] ? c->msg : err_str(c->code), c->expr);
}

static void cors_fhir(struct http_req *q);

/* The HTTP layer's own errors under /fhir (no route, 405, 413, 415, ...). */
static void render_http_error(struct http_req *q, int status, const char *msg)
{
	cors_fhir(q);
	send_outcome(q, status, msg, NULL);
}

/*
 * Content negotiation.  We serve FHIR JSON only: application/fhir+json,
 * application/json, any type, application/ anything (and _format json).
 * Returns false after answering 406 when the client accepts none of them.
 */
static bool media_ok(const char *m)
{
	size_t n = strcspn(m, ";");

	while (n && (m[n - 1] == ' ' || m[n - 1] == '\t'))
		n--;
	return (n == 21 && !strncasecmp(m, "application/fhir+json", n)) ||
	       (n == 16 && !strncasecmp(m, "application/json", n)) ||
	       (n == 3 && !strncmp(m, "*/*", n)) ||
	       (n == 13 && !strncasecmp(m, "application/*", n)) ||
	       (n == 4 && !strncasecmp(m, "json", n));
}

static bool accept_ok(struct http_req *q)
{
	const char *fmt = http_req_query(q, "_format");
	const char *acc = http_req_header(q, "Accept");

	if (fmt) {
		if (media_ok(fmt))
			return true;
		cors_fhir(q);
		send_outcome(q, 406, "this server serves FHIR JSON only (_format=json or application/fhir+json)", "_format");
		return false;
	}
	if (!acc || !*acc)
		return true;
	/* any acceptable member of the list will do (q-values other than 0 ignored) */
	for (const char *p = acc; *p;) {
		size_t n;
		char item[128];

		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ",");
		if (n && n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			if (media_ok(item) && !strstr(item, "q=0,") && !str_ends(item, "q=0"))
				return true;
		}
		p += n;
	}
	cors_fhir(q);
	send_outcome(q, 406, "this server serves FHIR JSON only: ask for application/fhir+json", NULL);
	return false;
}

/*
 * The charset parameter of a Content-Type, unquoted, into 'out' (empty when
 * there is none).  The body is read as UTF-8 whatever it says, so another
 * charset must be refused: its bytes would be stored as different text.
 */
static void content_charset(const char *ct, char *out, size_t size)
{
	const char *p = strchr(ct, ';');

	out[0] = '\0';
	while (p) {
		size_t n;

		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!strncasecmp(p, "charset", 7)) {
			const char *v = p + 7;
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v == '=') {
				v++;
				while (*v == ' ' || *v == '\t')
					v++;
				if (*v == '"')
					v++;
				n = strcspn(v, "\"; \t");
				snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), v);
				/* it is echoed in the answer: printable ASCII only */
				for (char *o = out; *o; o++)
					if ((unsigned char)*o < 0x20 || (unsigned char)*o > 0x7e)
						*o = '?';
				if (!out[0])
					str_copy(out, "(empty)", size);
				return;
			}
		}
		p = strchr(p, ';');
	}
}

/* The request body must be FHIR JSON in UTF-8: 415 otherwise. */
static bool content_type_ok(struct http_req *q)
{
	const char *ct = http_req_header(q, "Content-Type");
	char cs[64], msg[160];

	if (ct && (media_ok(ct) && strncmp(ct, "*/*", 3) && strncasecmp(ct, "application/*", 13))) {
		content_charset(ct, cs, sizeof(cs));
		if (!cs[0] || !strcasecmp(cs, "utf-8"))
			return true;
		cors_fhir(q);
		snprintf(msg, sizeof(msg), "charset '%s' is not supported: send the body in UTF-8 (charset=utf-8)",
			 cs);
		send_outcome(q, 415, msg, NULL);
		return false;
	}
	cors_fhir(q);
	send_outcome(q, 415, ct ? "request body must be application/fhir+json"
				: "request has no Content-Type: send application/fhir+json", NULL);
	return false;
}


/* ---- authorization ---- */

/*
 * Every FHIR interaction but the CapabilityStatement needs a bearer
 * access token (RFC 6750).  The token's scopes decide per type and
 * interaction (scope_decide); the context decides whose data:
 *   patient/ scopes confine every interaction to the patient in context;
 *   user/ scopes act with the user's own rights: patients and caregivers
 *     are confined to the patient in context (else their own record),
 *     staff roles are not confined;
 *   system/ scopes (backend services) are not confined.
 * Types outside the patient compartment (Practitioner, Organization,
 * Medication, ...) are shared reference data and never confined.
 * Granular scopes (patient/Observation.rs?category=...) become search
 * parameters ANDed to every search and checked on every read.
 * A read of something outside what the token may see answers the same
 * 404 as a resource that does not exist.
 */
static struct oauth *rest_auth;
static struct audit *rest_audit;

/*
 * A storage failure behind a FHIR request: system.store-error, outcome 8,
 * with the request's ids (the details go to the server log, which says
 * what failed).  At most one a second, so that an outage does not fill
 * the queue; not waited for.
 */
static void audit_store_error(struct http_req *q)
{
	static _Atomic int64_t last;
	int64_t now = clock_now_ms(), prev = atomic_load(&last);
	struct audit_event ev;
	struct ctx c = CTX_INIT;

	if (!rest_audit || now - prev < 1000 || !atomic_compare_exchange_strong(&last, &prev, now))
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = AUDIT_SYSTEM_STORE_ERROR;
	ev.outcome = AUDIT_SERIOUS;
	ev.outcome_code = "io";
	ev.agent.user_id = "veranda";
	ev.source.client_addr = http_req_client_addr(q);
	ev.correlation.request_id = http_req_id(q);
	ev.correlation.trace_id = http_req_trace_id(q);
	if (audit_record(rest_audit, &ev, NULL, &c))
		log_msg(LOG_WARN, "audit: %s", c.msg);
}
static const char *rest_audit_dir;

/*
 * Before reading the log: wait until what was recorded so far is in it
 * (audit_settle()).  A log that cannot catch up is read as it is.
 */
static void settle_audit(void)
{
	struct ctx ig = CTX_INIT;

	audit_settle(rest_audit, AUDIT_SETTLE_READ_MS, &ig);
}

void fhir_rest_set_audit(struct audit *a, const char *data_dir)
{
	rest_audit = a;
	rest_audit_dir = data_dir;
}

struct access {
	bool on;                     /* a token was checked */
	struct principal p;
	const char *patient;         /* confine to this patient's record (NULL: no) */
	struct scope_decision d;
	char own[80];                /* the user's own patient id */
};

static void access_done(struct access *a)
{
	if (a->on && rest_auth)
		oauth_principal_release(rest_auth, &a->p);
	a->on = false;
}

/* Is 'type' confined by a patient context (the Patient type or a compartment type)? */
static bool confinable(const char *type)
{
	return fhir_type_in_record(type);
}

/* Do the scopes of 'a' allow 'op' on every type, without constraints? */
static bool all_types_allowed(const struct access *a, enum scope_op op)
{
	for (const struct fhir_type *t = fhir_types; t->name; t++) {
		struct scope_decision d;
		scope_decide(a->p.scopes, t->name, op, &d);
		if (!d.allowed || d.nfilters)
			return false;
	}
	return true;
}

static void cors_fhir(struct http_req *q)
{
	const char *origin = http_req_header(q, "Origin");

	if (origin && auth_cors_origin_ok(origin)) {
		http_resp_header(q, "Access-Control-Allow-Origin", origin);
		http_resp_header(q, "Vary", "Origin");
		http_resp_header(q, "Access-Control-Expose-Headers",
				 "ETag, Location, Content-Location, Last-Modified, X-Request-Id, WWW-Authenticate");
	}
}

static void deny(struct http_req *q, int status, const char *www, const char *msg)
{
	if (www)
		http_resp_header(q, "WWW-Authenticate", www);
	send_outcome(q, status, msg, NULL);
}

static void audit_denied(struct http_req *q, const struct access *acc,
			 const char *type, const char *id, const char *code);

/*
 * Answer 403 insufficient_scope with 'msg' and record the refusal
 * (policy.denied, outcome code 'code'; audit_denied() says whose record
 * it names).
 */
static void refuse(struct http_req *q, const struct access *acc, const char *type,
		   const char *id, const char *code, const char *msg)
{
	audit_denied(q, acc, type, id, code);
	deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"", msg);
}

/* Does the request carry an access_token in its query or form body? */
static bool token_in_url(struct http_req *q)
{
	const char *name, *value;

	/* a form body's fields are in the same list (http.h) */
	for (size_t i = 0; i < http_req_query_count(q); i++) {
		http_req_query_at(q, i, &name, &value);
		if (!strcmp(name, "access_token"))
			return true;
	}
	return false;
}

/*
 * Authorize interaction 'op' on 'type' (NULL: every type the request may
 * touch is checked by the caller).  Answers 401/403 itself and returns
 * false; on true the caller must access_done().
 */
static bool guard(struct http_req *q, const char *type, enum scope_op op, struct access *a)
{
	const char *h = http_req_header(q, "Authorization");
	char tb[OAUTH_BEARER_MAX];
	struct ctx c = CTX_INIT;
	bool in_url;

	memset(a, 0, sizeof(*a));
	cors_fhir(q);
	if (!rest_auth)
		return true;
	in_url = token_in_url(q);
	if (in_url || http_req_header_count(q, "Authorization") > 1) {
		/*
		 * RFC 6750 2.3 and 3.1: one method only, and never the URL (logs,
		 * history, Referer); two Authorization headers are ambiguous
		 */
		audit_denied(q, NULL, type, NULL, in_url ? "token-in-url" : "two-tokens");
		deny(q, 400, "Bearer realm=\"veranda\", error=\"invalid_request\"",
		     "send one access token, in one Authorization header, and none in the URL");
		return false;
	}
	if (!(h = oauth_bearer(h, tb, sizeof(tb)))) {
		audit_denied(q, NULL, type, NULL, "no-token");
		deny(q, 401, "Bearer realm=\"veranda\"", "an access token is required (Authorization: Bearer)");
		return false;
	}
	if (oauth_verify(rest_auth, h, &a->p, &c)) {
		char www[400];
		snprintf(www, sizeof(www), "Bearer realm=\"veranda\", error=\"invalid_token\", error_description=\"%s\"",
			 c.msg);
		audit_denied(q, NULL, type, NULL, "invalid-token");
		deny(q, 401, www, c.msg);
		return false;
	}
	a->on = true;
	if (type) {
		scope_decide(a->p.scopes, type, op, &a->d);
		if (!a->d.allowed) {
			char msg[200];
			snprintf(msg, sizeof(msg), "the access token's scopes do not allow this interaction on %s", type);
			audit_denied(q, a, type, NULL, "insufficient-scope");
			deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"", msg);
			access_done(a);
			return false;
		}
	} else {
		a->d.allowed = true;
		a->d.ctx = SCOPE_PATIENT;
		for (size_t i = 0; i < scope_count(a->p.scopes); i++)
			if (scope_at(a->p.scopes, i)->ctx > a->d.ctx)
				a->d.ctx = scope_at(a->p.scopes, i)->ctx;
	}
	if (str_starts(a->p.fhir_user, "Patient/"))
		str_copy(a->own, a->p.fhir_user + 8, sizeof(a->own));
	if (a->d.ctx == SCOPE_PATIENT ||
	    (a->d.ctx == SCOPE_USER && (a->p.role == USER_PATIENT || a->p.role == USER_CAREGIVER))) {
		a->patient = a->p.patient[0] ? a->p.patient : a->own[0] ? a->own : NULL;
		if (!a->patient) {
			audit_denied(q, a, type, NULL, "no-patient-context");
			deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"",
			     "the access token has no patient in context");
			access_done(a);
			return false;
		}
	}
	/*
	 * Staff other than clinicians (support, compliance, administrators)
	 * do not read patient records with user/ scopes: that needs an
	 * elevation or break-the-glass (staff console).  Shared reference
	 * data stays readable; the audit log has its own rule.
	 */
	if (a->d.ctx == SCOPE_USER && a->p.uid &&
	    (a->p.role == USER_SUPPORT || a->p.role == USER_COMPLIANCE || a->p.role == USER_ADMIN) &&
	    (!type || (confinable(type) && strcmp(type, "AuditEvent")))) {
		/*
		 * the resource asked for, so that the refusal is in its patient's
		 * record: a route's own {type}/{id}, or the patient of
		 * Patient/{id}/... ($everything), not another type in its compartment
		 */
		const char *rt = http_req_param(q, "type"), *id = http_req_param(q, "id");
		if (!type || strcmp(rt ? rt : "Patient", type))
			id = NULL;
		audit_denied(q, a, type, id && fhir_id_valid(id) ? id : NULL,
			     "staff-role-needs-elevation");
		deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"",
		     "your role does not open patient records without an elevation or break-the-glass");
		access_done(a);
		return false;
	}
	return true;
}

/* Escape a search value's ',' '$' '\' (FHIR search escaping). */
static const char *esc(struct arena *ar, const char *v)
{
	size_t n = strlen(v), k = 0;
	char *o = arena_alloc(ar, 2 * n + 1);

	for (size_t i = 0; i < n; i++) {
		if (v[i] == ',' || v[i] == '$' || v[i] == '\\')
			o[k++] = '\\';
		o[k++] = v[i];
	}
	o[k] = '\0';
	return o;
}

/*
 * Append the granular filters of 'a' on 'type' to kv[*k..] as search
 * parameters.  False ('why' says why) when they cannot be expressed
 * together, or when one names no search parameter of 'type': a search
 * ignores unknown parameters, and a constraint must not turn into none.
 */
static bool add_filters(struct http_req *q, const struct access *a, const char *type,
			struct fhir_kv *kv, size_t *k, char *why, size_t wn)
{
	const struct scope_decision *d = &a->d;
	struct arena *ar = http_req_arena(q);

	if (!a->on || d->nfilters == 0)
		return true;
	for (size_t i = 0; i < d->nfilters; i++)
		for (size_t j = 0; j < d->filters[i]->nq; j++) {
			char base[SCOPE_KV_NAME_MAX];
			str_copy(base, d->filters[i]->q[j].name, sizeof(base));
			base[strcspn(base, ":.")] = '\0';
			if (fhir_param_find(type, base))
				continue;
			snprintf(why, wn, "the granted scopes constrain %s by '%s', which is not one of its search parameters",
				 type, d->filters[i]->q[j].name);
			return false;
		}
	if (d->nfilters == 1) {
		for (size_t i = 0; i < d->filters[0]->nq; i++) {
			kv[*k].name = d->filters[0]->q[i].name;
			kv[*k].value = esc(ar, d->filters[0]->q[i].value);
			(*k)++;
		}
		return true;
	}
	for (size_t i = 0; i < d->nfilters; i++)
		if (d->filters[i]->nq != 1 || strcmp(d->filters[i]->q[0].name, d->filters[0]->q[0].name)) {
			snprintf(why, wn, "the granted scopes constrain this type by different parameters; ask for one kind of constraint");
			return false;
		}
	{
		struct buf b = BUF_INIT(1 << 16);
		for (size_t i = 0; i < d->nfilters; i++) {
			if (i)
				buf_addch(&b, ',');
			buf_adds(&b, esc(ar, d->filters[i]->q[0].value));
		}
		kv[*k].name = d->filters[0]->q[0].name;
		kv[*k].value = arena_strdup(ar, b.data);
		(*k)++;
		buf_release(&b);
	}
	return true;
}

/* Does type/id pass the granular filters of 'a' (and its confinement)?  One counting search. */
static bool filters_match(struct http_req *q, struct fhir *f, const struct access *a,
			  const char *type, const char *id)
{
	struct fhir_kv kv[24];
	size_t k = 0;
	struct fhir_search_req sr;
	struct buf out = BUF_INIT(1 << 16);
	struct ctx c = CTX_INIT;
	bool ok;

	char why[200];

	kv[k].name = "_id";
	kv[k++].value = id;
	if (!add_filters(q, a, type, kv, &k, why, sizeof(why))) {
		deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"", why);
		return false;
	}
	kv[k].name = "_summary";
	kv[k++].value = "count";
	kv[k].name = "_total";
	kv[k++].value = "accurate";
	memset(&sr, 0, sizeof(sr));
	sr.type = type;
	sr.params = kv;
	sr.nparams = k;
	ok = !fhir_search(f, &sr, &out, &c) && !strstr(out.data, "\"total\":0");
	buf_release(&out);
	return ok;
}

/*
 * Narrow 'a' for a read or vread of type/id: the token user's own FHIR
 * resource (its fhirUser: a caregiver's Patient or RelatedPerson) is read,
 * and recorded, outside the patient context, whoever's record the token is
 * confined to; SMART apps read it to learn who is signed in.  Granular
 * filters and the scopes of its type still apply.
 */
static void read_access(struct access *a, const char *type, const char *id)
{
	size_t tl = type && id ? strlen(type) : 0;

	if (a->on && tl && !strncmp(a->p.fhir_user, type, tl) && a->p.fhir_user[tl] == '/' &&
	    !strcmp(a->p.fhir_user + tl + 1, id))
		a->patient = NULL;
}

/* Must type/id be found in the confined patient's compartment to be seen by 'a'? */
static bool confined_check(const struct access *a, const char *type, const char *id)
{
	return a->patient && confinable(type) &&
	       !(!strcmp(type, "Patient") && !strcmp(id, a->patient));
}

/*
 * May 'a' see type/id?  (Confinement and granular filters; the type itself
 * was checked.)  'in' is whether type/id is in the confined patient's
 * compartment when the caller's read already told (1 or 0), else -1.
 */
static bool visible_in(struct http_req *q, struct fhir *f, const struct access *a,
		       const char *type, const char *id, int in)
{
	struct ctx c = CTX_INIT;
	bool yes = in > 0;

	if (!a->on)
		return true;
	if (confined_check(a, type, id)) {
		if (in < 0 && store_in_compartment(f->store, a->patient, type, id, &yes, &c))
			return false;
		if (!yes)
			return false;
	}
	if (a->d.nfilters && !filters_match(q, f, a, type, id)) {
		if (!http_resp_done(q))
			return false;
		return false;
	}
	return true;
}

static bool visible(struct http_req *q, struct fhir *f, const struct access *a, const char *type,
		    const char *id)
{
	return visible_in(q, f, a, type, id, -1);
}

/* Would the resource body[0..n) of 'type' belong to the confined patient's record? */
static bool body_in_record(struct http_req *q, struct fhir *f, const struct access *a,
			   const char *type, const char *id, const char *body, size_t n)
{
	struct fhir_index ix;
	struct ctx c = CTX_INIT;
	json_t *res;
	bool ok = false;

	if (!a->on || !a->patient || !confinable(type))
		return true;
	if (!strcmp(type, "Patient"))
		return id && !strcmp(id, a->patient);
	if (!(res = json_parse_bounded(body, n, f->opts.json_depth_max, &c)))
		return true; /* the write itself will reject the body */
	memset(&ix, 0, sizeof(ix));
	/* it must land in this patient's record, and in no one else's */
	if (!fhir_index_resource(http_req_arena(q), type, id ? id : "new", res, &ix, &c)) {
		ok = ix.npatients > 0;
		for (size_t i = 0; i < ix.npatients && ok; i++)
			ok = !strcmp(ix.patients[i], a->patient);
	}
	json_decref(res);
	return ok;
}

/* ---- versions ---- */

/*
 * Are the versions of type/id judged one by one for 'a' (vread, instance
 * history)?  Under a patient context or granular filters they are: the
 * resource may have moved to another record, or out of a granted
 * category, since a version was written.
 */
static bool versions_judged(const struct access *a, const char *type, const char *id)
{
	return a->on && (confined_check(a, type, id) || a->d.nfilters);
}

/* What judging the versions of one resource for one token needs, worked out once. */
struct version_judge {
	struct http_req *q;
	struct fhir *f;
	const struct access *a;
	int64_t current;          /* the current version (0: unknown) */
	bool current_ok;          /* may 'a' see it (visible(), as a read decides)? */
	struct fhir_kv kv[24];    /* the granular filters as search parameters */
	size_t nkv;
	bool kv_ok;               /* false: they cannot be evaluated, no older version shows */
};

/*
 * Prepare to judge versions of type/id for 'a'; 'current_ok' is what
 * visible() said of the resource as it is now.  Reads the current version
 * number; nothing is sent.
 */
static void version_judge_init(struct version_judge *vj, struct http_req *q, struct fhir *f,
			       const struct access *a, const char *type, const char *id,
			       bool current_ok)
{
	struct ctx c = CTX_INIT;
	bool del = false;
	char why[200];

	memset(vj, 0, sizeof(*vj));
	vj->q = q;
	vj->f = f;
	vj->a = a;
	vj->current_ok = current_ok;
	if (store_current_version(f->store, type, id, &vj->current, &del, &c))
		vj->current = 0;
	vj->kv_ok = add_filters(q, a, type, vj->kv, &vj->nkv, why, sizeof(why));
}

/*
 * May the token see version 'r' (live or a deletion) of the resource
 * vj was made for?  The current live version as a read decides
 * (vj->current_ok); an older live version by its own content: in the
 * confined patient's record and matching the granular filters
 * (fhir_version_judge()); a deletion, which has no content, by the version
 * it ended, so that it shows only where that version shows.  Reads
 * versions and never searches, so it may run inside a history walk
 * (fhir_history_q.keep).  Any failure hides the version.
 */
static bool version_ok(void *arg, const struct store_resource *r)
{
	struct version_judge *vj = arg;
	struct ctx c = CTX_INIT;
	bool yes = false;

	if (r->version == vj->current && !r->deleted)
		return vj->current_ok;
	if (r->deleted) {
		struct store_resource prev;

		if (r->version <= 1)
			return false;
		store_resource_init(&prev);
		yes = !fhir_read(vj->f, r->type, r->id, r->version - 1, &prev, &c) && version_ok(vj, &prev);
		store_resource_release(&prev);
		return yes;
	}
	if (!vj->kv_ok)
		return false;
	if (fhir_version_judge(vj->f, r, confined_check(vj->a, r->type, r->id) ? vj->a->patient : NULL,
			       vj->kv, vj->nkv, &yes, &c))
		return false;
	return yes;
}

/*
 * May 'a' see version 'vid' of type/id, that exists, whatever record the
 * resource is in now (for a resource it may not see as it is now)?
 */
static bool version_seen(struct http_req *q, struct fhir *f, const struct access *a,
			 const char *type, const char *id, int64_t vid)
{
	struct version_judge vj;
	struct store_resource r;
	struct ctx c = CTX_INIT;
	enum err e;
	bool ok = false;

	store_resource_init(&r);
	e = fhir_read(f, type, id, vid, &r, &c);
	if (!e || e == ERR_GONE) {
		version_judge_init(&vj, q, f, a, type, id, false);
		ok = version_ok(&vj, &r);
	}
	store_resource_release(&r);
	return ok;
}

/* ---- audit ---- */

/*
 * Every interaction is recorded in the audit log (when the server has
 * one): who (the token's user, role, fhirUser, app), whose record, what
 * (type, id, version; for searches the normalized query with identifying
 * values hashed), through which token (its id hashed) and grant, and the
 * request and trace ids.  A response that discloses patient data (or
 * acknowledges a write) is sent only once its record is durable (audit
 * "sync"); when the log cannot take the record the answer is 503 with
 * Retry-After and no data: audit fails closed.  Refusals (401, 403 and
 * hidden-resource 404s) are recorded as policy denials without waiting.
 * A search by a token that is not confined to one patient is recorded
 * once, with the patient it names (patient=, subject=Patient/...) if any.
 */
#define AUDIT_PATIENTS_MAX 16

struct fhir_audit {
	enum audit_type type;
	int outcome;
	const char *code;
	const char *rtype, *id, *version, *query;
	char patients[AUDIT_PATIENTS_MAX][STORE_PATIENT_ID_SIZE];
	size_t npatients;
};

static void fa_patient(struct fhir_audit *fa, const char *p)
{
	if (p && *p && fa->npatients < AUDIT_PATIENTS_MAX)
		str_copy(fa->patients[fa->npatients++], p, STORE_PATIENT_ID_SIZE);
}

/*
 * Whose records hold type/id: the confined patient, the Patient itself, or
 * (needs_compartment()) the patients its compartment lists.
 */
static bool needs_compartment(const struct access *acc, const char *type)
{
	return !(acc && acc->on && acc->patient && confinable(type)) && strcmp(type, "Patient");
}

/* The patients of type/id into fa, the compartment's being patients[0..n). */
static void fa_patients_in(struct fhir_audit *fa, const struct access *acc, const char *type,
			   const char *id, char (*patients)[STORE_PATIENT_ID_SIZE], size_t n)
{
	if (!rest_audit || !type || !id)
		return;
	if (!needs_compartment(acc, type))
		fa_patient(fa, acc && acc->on && acc->patient && confinable(type) ? acc->patient : id);
	else
		for (size_t i = 0; i < n; i++)
			fa_patient(fa, patients[i]);
}

/* fa_patients_in() when the compartment is still to be read. */
static void fa_patients_of(struct fhir_audit *fa, struct fhir *f, const struct access *acc,
			   const char *type, const char *id)
{
	char patients[AUDIT_PATIENTS_MAX][STORE_PATIENT_ID_SIZE];
	struct ctx c = CTX_INIT;
	size_t n = 0;

	if (rest_audit && type && id && needs_compartment(acc, type))
		store_compartment_of(f->store, type, id, patients, AUDIT_PATIENTS_MAX, &n, &c);
	fa_patients_in(fa, acc, type, id, patients, n);
}

/*
 * Record 'fa' (one record per patient it names).  With 'wait', block
 * until durable; false (after answering 503) when the log cannot take it.
 */
static bool audit_fhir_q(struct http_req *q, const struct access *acc, const struct fhir_audit *fa,
			 bool wait, uint64_t *ticket_out);

static bool audit_fhir(struct http_req *q, const struct access *acc, const struct fhir_audit *fa,
		       bool wait)
{
	return audit_fhir_q(q, acc, fa, wait, NULL);
}

#define AUDIT_UNAVAILABLE "the audit log cannot record this access right now: try again shortly"

/*
 * Holding an answer until its record is durable: the request's thread does
 * not wait (http_req_defer()); the audit log resumes the request once the
 * record is on disk (from its journal thread), or with a 503 when it cannot
 * be (from its notifier).  hold_done() only resumes: it must not block.
 */
struct audit_hold {
	struct audit_notice n;
	struct http_req *q;
};

static void hold_done(struct audit_notice *n, enum err e)
{
	struct audit_hold *h = n->arg;

	if (e)
		log_msg(LOG_ERROR, "audit: a record was not made durable: %s", err_str(e));
	http_req_resume(h->q, e == ERR_OK);
}

static void hold_arm(struct http_req *q, void *arg)
{
	struct audit_hold *h = arg;
	struct ctx c = CTX_INIT;
	bool pending = false;
	enum err e = audit_notify(rest_audit, h->n.ticket, &h->n, &pending, &c);

	if (pending)
		return;
	if (e)
		log_msg(LOG_ERROR, "audit: %s", c.msg);
	http_req_resume(q, e == ERR_OK);
}

static void hold_fail(struct http_req *q, void *arg)
{
	(void)arg;
	send_outcome(q, 503, AUDIT_UNAVAILABLE, NULL);
}

/*
 * Send the answer only once record 'ticket' is durable.  False after
 * answering 503 when that is already known to be impossible; when the
 * answer is known to be safe (durable already, or audit "async") nothing
 * is held.
 */
static bool audit_hold(struct http_req *q, uint64_t ticket)
{
	struct audit_hold *h;
	struct ctx c = CTX_INIT;
	bool pending = false;

	if (audit_notify(rest_audit, ticket, NULL, &pending, &c)) {
		log_msg(LOG_ERROR, "audit: %s", c.msg);
		send_outcome(q, 503, AUDIT_UNAVAILABLE, NULL);
		return false;
	}
	if (!pending)
		return true;
	h = arena_alloc(http_req_arena(q), sizeof(*h));
	memset(h, 0, sizeof(*h));
	h->n.fn = hold_done;
	h->n.arg = h;
	h->n.ticket = ticket; /* audit_notify() takes it from here */
	h->q = q;
	http_req_defer(q, hold_arm, hold_fail, h);
	return true;
}

/* Wait for a queued record (without holding the thread); false when 503 was sent. */
static bool audit_wait_ticket(struct http_req *q, uint64_t ticket)
{
	return !rest_audit || audit_hold(q, ticket);
}

/*
 * Queue 'fa' (one record per patient it names); with 'wait', block until
 * durable; with 'ticket_out', only queue and give the last ticket.  False
 * (after answering 503) when the log cannot take it and the caller must
 * not disclose or keep anything.
 */
static bool audit_fhir_q(struct http_req *q, const struct access *acc, const struct fhir_audit *fa,
			 bool wait, uint64_t *ticket_out)
{
	struct audit_event ev;
	struct audit_entity ent;
	char th[AUDIT_HASH_SIZE];
	const char *reasons[3];
	size_t nreasons = 0;
	uint64_t ticket = 0;
	struct ctx c = CTX_INIT;
	enum err e = ERR_OK;
	size_t n = fa->npatients ? fa->npatients : 1;

	if (ticket_out)
		*ticket_out = 0;
	if (!rest_audit)
		return true;
	memset(&ev, 0, sizeof(ev));
	memset(&ent, 0, sizeof(ent));
	ev.type = fa->type;
	ev.outcome = fa->outcome;
	ev.outcome_code = fa->code;
	if (acc && acc->on) {
		ev.agent.username = acc->p.uid ? acc->p.username : NULL;
		ev.agent.role = acc->p.uid ? user_role_name(acc->p.role) : "system";
		ev.agent.fhir_user = acc->p.fhir_user;
		ev.agent.client_id = acc->p.client_id;
		if (acc->patient && acc->own[0] && strcmp(acc->patient, acc->own))
			ev.agent.on_behalf_of = acc->patient;
		audit_hash_id(acc->p.jti, th);
		ev.source.token_hash = th;
		ev.authority.scopes = acc->p.scope;
		ev.authority.grant_id = acc->p.grant_id;
		/* why it was allowed: the scope context, and how the answer was narrowed */
		reasons[nreasons++] = acc->d.ctx == SCOPE_SYSTEM ? "scope:system"
				      : acc->d.ctx == SCOPE_USER ? "scope:user"
								 : "scope:patient";
		if (acc->patient)
			reasons[nreasons++] = "patient-compartment";
		if (acc->d.nfilters)
			reasons[nreasons++] = "granular-scope";
		ev.authority.reasons = reasons;
		ev.authority.n_reasons = nreasons;
	} else {
		ev.agent.user_id = rest_auth ? "unauthenticated" : "unauthorized-mode";
	}
	ent.type = fa->rtype;
	ent.id = fa->id;
	ent.version = fa->version;
	ent.query = fa->query;
	if (ent.type || ent.id || ent.query) {
		ev.entities = &ent;
		ev.n_entities = 1;
	}
	ev.source.client_addr = http_req_client_addr(q);
	ev.correlation.request_id = http_req_id(q);
	ev.correlation.trace_id = http_req_trace_id(q);
	for (size_t i = 0; i < n && !e; i++) {
		ev.patient = fa->npatients ? fa->patients[i] : NULL;
		e = audit_record(rest_audit, &ev, &ticket, &c);
	}
	if (!e && ticket_out) {
		*ticket_out = ticket;
		return true;
	}
	if (!e && wait)
		return audit_hold(q, ticket);
	if (!e)
		return true;
	log_msg(LOG_ERROR, "audit: %s", c.msg);
	if (!wait && !ticket_out)
		return true;
	send_outcome(q, 503, AUDIT_UNAVAILABLE, NULL);
	return false;
}

/* Record a refusal (not waited for). */
/*
 * Refusals of requests without a valid token cost an attacker nothing, so
 * at most DENIALS_ANON_PER_S of them are recorded each second; the rest
 * are counted, and the first such refusal of a later second records how
 * many were left out (policy.denied, code "suppressed", entity query
 * "suppressed=N").  Refusals of a valid token are always recorded.
 */
#define DENIALS_ANON_PER_S 50

static _Atomic int64_t anon_second, anon_count, anon_dropped;

/* May this anonymous refusal be recorded?  *summary: how many to report as left out. */
static bool anon_denial_admit(int64_t *summary)
{
	int64_t sec = clock_now_ms() / 1000, w = atomic_load(&anon_second);

	*summary = 0;
	if (sec != w && atomic_compare_exchange_strong(&anon_second, &w, sec)) {
		atomic_store(&anon_count, 0);
		*summary = atomic_exchange(&anon_dropped, 0);
	}
	if (atomic_fetch_add(&anon_count, 1) < DENIALS_ANON_PER_S)
		return true;
	atomic_fetch_add(&anon_dropped, 1);
	return false;
}

/*
 * Record a refusal.  The record names the patients whose record type/id
 * is in (when an id is given and the resource exists): a refused attempt
 * on a patient's data belongs in that patient's history, whoever made
 * it; else the patient of the requester's context.
 */
static void audit_denied(struct http_req *q, const struct access *acc,
			 const char *type, const char *id, const char *code)
{
	struct fhir_audit fa;

	if (!acc || !acc->on) {
		int64_t left_out = 0;
		bool admit = !rest_audit || anon_denial_admit(&left_out);

		if (left_out) {
			char qs[48];

			memset(&fa, 0, sizeof(fa));
			fa.type = AUDIT_POLICY_DENIED;
			fa.outcome = AUDIT_MINOR;
			fa.code = "suppressed";
			snprintf(qs, sizeof(qs), "suppressed=%lld", (long long)left_out);
			fa.query = qs;
			audit_fhir(q, NULL, &fa, false);
		}
		if (!admit)
			return;
	}
	memset(&fa, 0, sizeof(fa));
	fa.type = AUDIT_POLICY_DENIED;
	fa.outcome = AUDIT_MINOR;
	fa.code = code;
	fa.rtype = type;
	fa.id = id;
	if (rest_store && rest_audit && type && id) {
		char patients[AUDIT_PATIENTS_MAX][STORE_PATIENT_ID_SIZE];
		struct ctx ig = CTX_INIT;
		size_t n = 0;

		if (store_compartment_of(rest_store, type, id, patients, AUDIT_PATIENTS_MAX, &n, &ig))
			n = 0;
		for (size_t i = 0; i < n; i++)
			fa_patient(&fa, patients[i]);
	}
	if (!fa.npatients && acc && acc->on && acc->patient)
		fa_patient(&fa, acc->patient);
	audit_fhir(q, acc, &fa, false);
}

/*
 * Parse W/"N" or "N" into N; -1 when absent; -2 when malformed, also when
 * anything but spaces follows (a list of ETags names no single version).
 */
static int64_t parse_etag(const char *s)
{
	char num[24];
	size_t n;
	int64_t v;

	if (!s)
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	if (!strncmp(s, "W/", 2))
		s += 2;
	if (*s != '"')
		return -2;
	s++;
	n = strcspn(s, "\"");
	if (s[n] != '"' || n == 0 || n >= sizeof(num) || s[n + 1 + strspn(s + n + 1, " \t")])
		return -2;
	memcpy(num, s, n);
	num[n] = '\0';
	if (str_to_i64(num, 1, INT64_MAX, &v))
		return -2;
	return v;
}

/*
 * Does If-None-Match 's' match version 'v' (RFC 9110 section 13.1.2)?
 * "*", or a comma-separated list of which one entity tag (weak
 * comparison) is 'v'.  An element that is no tag of ours matches nothing.
 */
static bool inm_matches(const char *s, int64_t v)
{
	char one[48];

	if (s && s[strspn(s, " \t")] == '*')
		return true;
	while (s && *s) {
		size_t n = strcspn(s, ",");

		/* parse_etag() takes the spaces around a tag */
		if (n < sizeof(one)) {
			memcpy(one, s, n);
			one[n] = '\0';
			if (parse_etag(one) == v)
				return true;
		}
		s += n + (s[n] == ',');
	}
	return false;
}

static void set_version_headers(struct http_req *q, int64_t version, int64_t last_updated)
{
	char etag[40], lm[40];

	snprintf(etag, sizeof(etag), "W/\"%lld\"", (long long)version);
	clock_format_http(last_updated, lm);
	http_resp_header(q, "ETag", etag);
	http_resp_header(q, "Last-Modified", lm);
}

/* ---- read / vread ---- */

static void auditevent_read(struct http_req *q, const struct fhir *f, const char *id,
			    const char *vid);

static void handle_read(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const char *type = http_req_param(q, "type"), *id = http_req_param(q, "id");
	const char *vid = http_req_param(q, "vid");
	char patients[AUDIT_PATIENTS_MAX][STORE_PATIENT_ID_SIZE];
	struct store_resource r;
	struct ctx c = CTX_INIT;
	struct access acc, ra;
	int64_t version = 0;
	size_t npatients = 0;
	bool in = false;
	enum err e;

	if (!strcmp(type, "AuditEvent")) {
		/* the audit log, not the store: compliance only */
		auditevent_read(q, f, id, vid);
		return;
	}
	if (!accept_ok(q) || !guard(q, type, SCOPE_OP_READ, &acc))
		return;
	ra = acc;
	read_access(&ra, type, id);
	store_resource_init(&r);
	if (vid && str_to_i64(vid, 1, INT64_MAX, &version)) {
		send_outcome(q, 404, "version ids are positive integers", NULL);
		goto out;
	}
	/*
	 * One statement reads the resource and what the confinement check (is
	 * it in the patient's record?) or the audit record (whose record is
	 * it in?) needs to know of its compartment.
	 */
	if (ra.on && confined_check(&ra, type, id))
		e = fhir_read_compartment(f, type, id, version, &r, ra.patient, &in, NULL, 0,
					  NULL, &c);
	else if (rest_audit && needs_compartment(&ra, type))
		e = fhir_read_compartment(f, type, id, version, &r, NULL, NULL, patients,
					  AUDIT_PATIENTS_MAX, &npatients, &c);
	else
		e = fhir_read(f, type, id, version, &r, &c);
	if (e && e != ERR_NOTFOUND && e != ERR_GONE) {
		send_error(q, &c);
		goto out;
	}
	if (ra.on) {
		bool now = visible_in(q, f, &ra, type, id, in), ok = now;

		if (vid && (!e || e == ERR_GONE) && !http_resp_done(q) && versions_judged(&ra, type, id)) {
			/* a vread: the version's own record and categories decide */
			struct version_judge vj;

			version_judge_init(&vj, q, f, &ra, type, id, now);
			ok = version_ok(&vj, &r);
		}
		if (!ok) {
			/*
			 * The same answer as for a resource that does not exist,
			 * which a version that does not exist also gets here (the
			 * read tells that none is in the record)
			 */
			audit_denied(q, &ra, type, id, "not-visible");
			if (!http_resp_done(q)) {
				char msg[200];
				snprintf(msg, sizeof(msg), "%s/%s is not known", type, id);
				send_outcome(q, 404, msg, NULL);
			}
			goto out;
		}
	}
	if (e) {
		/*
		 * nothing disclosed, but asked for: on record, so that probing for
		 * ids shows (a deleted resource has left its compartment: no patient)
		 */
		struct fhir_audit fa;

		memset(&fa, 0, sizeof(fa));
		fa.type = vid ? AUDIT_FHIR_VREAD : AUDIT_FHIR_READ;
		fa.outcome = AUDIT_MINOR;
		fa.code = e == ERR_GONE ? "gone" : "not-found";
		fa.rtype = type;
		fa.id = id;
		audit_fhir(q, &ra, &fa, false);
	}
	if (e == ERR_GONE) {
		set_version_headers(q, r.version, r.last_updated);
		send_error(q, &c);
		goto out;
	}
	if (e) {
		send_error(q, &c);
		goto out;
	}
	{
		struct fhir_audit fa;
		char vs[24];

		memset(&fa, 0, sizeof(fa));
		snprintf(vs, sizeof(vs), "%lld", (long long)r.version);
		fa.type = vid ? AUDIT_FHIR_VREAD : AUDIT_FHIR_READ;
		fa.rtype = type;
		fa.id = id;
		fa.version = vs;
		fa_patients_in(&fa, &ra, type, id, patients, npatients);
		if (!audit_fhir(q, &ra, &fa, true))
			goto out;
	}
	set_version_headers(q, r.version, r.last_updated);
	if (!vid) {
		const char *inm = http_req_header(q, "If-None-Match");
		const char *ims = http_req_header(q, "If-Modified-Since");
		int64_t since;

		if (inm_matches(inm, r.version)) {
			http_resp_empty(q, 304);
			goto out;
		}
		if (!inm && ims && !clock_parse_http(ims, &since) &&
		    r.last_updated / 1000 <= since / 1000) {
			http_resp_empty(q, 304);
			goto out;
		}
	}
	http_resp_buf(q, 200, FHIR_JSON, &r.json);
out:
	store_resource_release(&r);
	access_done(&acc);
}

/* ---- writes ---- */

/*
 * The outcome code of a failure: err_str() with each character outside
 * [a-z0-9] made '-' ("precondition failed": "precondition-failed"), for an
 * audit record's codes are [a-z0-9_.:-] and one that is not is refused.
 */
static const char *err_code(enum err e, char *out, size_t n)
{
	size_t i = 0;

	for (const char *s = err_str(e); *s && i + 1 < n; s++, i++)
		out[i] = (islower((unsigned char)*s) || isdigit((unsigned char)*s)) ? *s : '-';
	out[i] = '\0';
	return out;
}

/* Record a write's outcome; false (503 sent) when a successful one cannot be recorded. */
static bool audit_write(struct http_req *q, struct fhir *f, const struct access *acc,
			enum audit_type t, const char *type, const char *id,
			const struct fhir_result *res, const struct ctx *c, struct fhir_audit *pre,
			uint64_t *ticket)
{
	struct fhir_audit fa;
	char vs[24], code[32];

	memset(&fa, 0, sizeof(fa));
	if (pre)
		fa = *pre;
	fa.type = t;
	fa.rtype = type;
	fa.id = res && res->id[0] ? res->id : id;
	if (c) {
		fa.outcome = AUDIT_MINOR;
		fa.code = err_code(c->code, code, sizeof(code));
		/* whose record the attempt was on, as for a refusal */
		if (!pre)
			fa_patients_of(&fa, f, acc, fa.rtype, fa.id);
		if (!fa.npatients && acc && acc->on && acc->patient)
			fa_patient(&fa, acc->patient);
		audit_fhir(q, acc, &fa, false);
		return true;
	}
	snprintf(vs, sizeof(vs), "%lld", (long long)res->version);
	fa.version = vs;
	if (!pre)
		fa_patients_of(&fa, f, acc, fa.rtype, fa.id);
	return audit_fhir_q(q, acc, &fa, ticket == NULL, ticket);
}

/*
 * Writes are audited fail-closed: the write runs in a transaction, its
 * record is queued before the commit (a full queue rolls the write back:
 * 503, nothing kept), and the answer waits for the record to be durable.
 */
static bool write_begin(struct http_req *q, struct fhir *f)
{
	struct ctx c = CTX_INIT;

	if (!rest_audit)
		return true;
	if (store_begin(f->store, &c)) {
		send_error(q, &c);
		return false;
	}
	return true;
}

/*
 * Commit a successful, queued write and wait for its record; false when
 * answered.  The ticket is read through a pointer: callers pass the
 * audit_write() that sets it as 'queued', and the order in which C
 * evaluates arguments is unspecified, so a ticket passed by value could be
 * read before it was set (and the answer not wait for the record).
 */
static bool write_commit(struct http_req *q, struct fhir *f, bool queued, const uint64_t *ticket)
{
	struct ctx c = CTX_INIT;

	if (!rest_audit)
		return queued;
	if (!queued) {
		store_rollback(f->store);
		return false;
	}
	if (store_commit(f->store, &c)) {
		send_error(q, &c);
		return false;
	}
	return audit_wait_ticket(q, *ticket);
}

static void write_abort(struct fhir *f)
{
	if (rest_audit)
		store_rollback(f->store);
}

/*
 * May 'acc' write type/id (id NULL: a create) with 'body' (NULL: a
 * delete)?  Writes under granular scopes are refused; under a patient
 * context shared reference data (types outside the compartment) is not
 * written, the resource must stay in that patient's record, and an
 * update must find it live there: update as create would tell an id
 * taken by a hidden or deleted resource from a free one (and reviving a
 * deleted id would show its old versions in the history), so it answers
 * the 404 of a missing resource.  A delete of a hidden or deleted resource
 * answers as one of a missing resource (delete_missing()).  Answers itself
 * when not allowed.
 */
/*
 * The elements of a Patient that tie the record to the clinic and to other
 * records: under a patient context they cannot be changed (a patient
 * linking their Patient to another patient's would put it into that
 * record), nor its security labels.
 */
static const char *const patient_managed[] = {
	"identifier", "active", "managingOrganization", "generalPractitioner", "link",
};

static bool same_element(const json_t *a, const json_t *b)
{
	return (!a && !b) || (a && b && json_equal(a, b));
}

/*
 * May 'body' replace the stored Patient 'id' under a patient context?  The
 * managed elements and meta.security must be as stored; false with 'why'
 * naming the element otherwise.  A body that does not parse passes: the
 * write itself rejects it.
 */
static bool patient_managed_kept(struct fhir *f, const char *id, const char *body, size_t n,
				 char *why, size_t wn)
{
	struct store_resource r;
	struct ctx c = CTX_INIT;
	json_t *old = NULL, *neu = NULL;
	bool ok = true;

	store_resource_init(&r);
	if (fhir_read(f, "Patient", id, 0, &r, &c) ||
	    !(old = json_parse_bounded(r.json.data, r.json.len, f->opts.json_depth_max, &c)) ||
	    !(neu = json_parse_bounded(body, n, f->opts.json_depth_max, &c)))
		goto out;
	for (size_t i = 0; ok && i < sizeof(patient_managed) / sizeof(patient_managed[0]); i++)
		if (!same_element(json_object_get(old, patient_managed[i]), json_object_get(neu, patient_managed[i]))) {
			snprintf(why, wn, "Patient.%s is kept by the clinic and cannot be changed with access confined to one patient's record",
				 patient_managed[i]);
			ok = false;
		}
	if (ok && !same_element(json_object_get(json_object_get(old, "meta"), "security"),
				json_object_get(json_object_get(neu, "meta"), "security"))) {
		snprintf(why, wn, "Patient.meta.security is kept by the clinic and cannot be changed with access confined to one patient's record");
		ok = false;
	}
out:
	json_decref(old);
	json_decref(neu);
	store_resource_release(&r);
	return ok;
}

/*
 * Answer a delete of type/id as handle_delete() answers one of a resource
 * that was never written: 412 when If-Match names a version (the current
 * version of a missing resource is 0, fhir_delete()), else 204, or 200 with
 * an OperationOutcome when the client prefers one.
 */
static void delete_missing(struct http_req *q, const char *type, const char *id)
{
	const char *pf = http_req_header(q, "Prefer");
	int64_t im = parse_etag(http_req_header(q, "If-Match"));
	char msg[300];

	if (im >= 0) {
		snprintf(msg, sizeof(msg), "If-Match names version %lld but the current version of %s/%s is 0",
			 (long long)im, type, id);
		send_outcome(q, 412, msg, NULL);
	} else if (pf && !strstr(pf, "return=minimal") && strstr(pf, "return=OperationOutcome")) {
		snprintf(msg, sizeof(msg), "%s/%s was not present; nothing to delete", type, id);
		send_outcome(q, 200, msg, NULL);
	} else {
		http_resp_empty(q, 204);
	}
}

static bool write_allowed(struct http_req *q, struct fhir *f, const struct access *acc,
			  const char *type, const char *id, const struct buf *body)
{
	int64_t version = 0;
	bool deleted = false, live;
	struct ctx c = CTX_INIT;
	char msg[200];

	if (!acc->on)
		return true;
	if (acc->d.nfilters) {
		deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"",
		     "writes need a scope without search-parameter constraints");
		return false;
	}
	if (!acc->patient)
		return true;
	if (!confinable(type)) {
		deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"",
		     "shared reference data cannot be written with access confined to one patient's record");
		return false;
	}
	live = id && !store_current_version(f->store, type, id, &version, &deleted, &c) && version &&
	       !deleted;
	if (!body && live && !strcmp(type, "Patient") && !strcmp(id, acc->patient)) {
		deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"",
		     "the patient's own Patient resource is kept by the clinic and cannot be deleted with access confined to one patient's record");
		return false;
	}
	if (!body) {
		/*
		 * A hidden resource, or a deleted one (its record is no longer
		 * known), answers as a missing one, If-Match included: the
		 * version of a deleted resource would tell that it exists.
		 */
		if ((live && !visible(q, f, acc, type, id)) || (version && deleted)) {
			if (!http_resp_done(q))
				delete_missing(q, type, id);
			return false;
		}
		return true;
	}
	if (id && (!live || !visible(q, f, acc, type, id))) {
		if (!http_resp_done(q)) {
			snprintf(msg, sizeof(msg), "%s/%s is not known", type, id);
			send_outcome(q, 404, msg, NULL);
		}
		return false;
	}
	if (!body_in_record(q, f, acc, type, id, body->data, body->len)) {
		deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"",
		     "the resource must belong to the record of the patient in context");
		return false;
	}
	if (!strcmp(type, "Patient") && !patient_managed_kept(f, id, body->data, body->len, msg, sizeof(msg))) {
		deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"", msg);
		return false;
	}
	return true;
}

enum cond_kind { COND_CREATE, COND_UPDATE, COND_DELETE };

/*
 * A conditional interaction's Bundle around the client's body: at most
 * this many bytes (the request: its url, If-None-Exist, If-Match) and
 * levels of nesting (Bundle, entry, entry object), not counted against the
 * body's limits.
 */
#define COND_WRAP_BYTES 65536
#define COND_WRAP_DEPTH 3

enum prefer { PREFER_REPRESENTATION, PREFER_MINIMAL, PREFER_OUTCOME };

static enum prefer get_prefer(struct http_req *q)
{
	const char *p = http_req_header(q, "Prefer");

	if (!p)
		return PREFER_REPRESENTATION;
	if (strstr(p, "return=minimal"))
		return PREFER_MINIMAL;
	if (strstr(p, "return=OperationOutcome"))
		return PREFER_OUTCOME;
	return PREFER_REPRESENTATION;
}

static void send_write_result(struct http_req *q, struct fhir *f, struct fhir_result *res, int status)
{
	char loc[900];

	snprintf(loc, sizeof(loc), "%s/%s/%s/_history/%lld", fhir_base(f), res->type, res->id,
		 (long long)res->version);
	set_version_headers(q, res->version, res->last_updated);
	http_resp_header(q, "Location", loc);
	http_resp_header(q, "Content-Location", loc);
	switch (get_prefer(q)) {
	case PREFER_MINIMAL:
		http_resp_empty(q, status);
		break;
	case PREFER_OUTCOME: {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s/%s %s as version %lld", res->type, res->id,
			 /* 200 with 'created': a conditional create's existing match */
			 status == 201 ? "created" : res->created ? "already exists" : "updated",
			 (long long)res->version);
		send_outcome(q, status, msg, NULL);
		break;
	}
	case PREFER_REPRESENTATION:
		http_resp_buf(q, status, FHIR_JSON, &res->json);
		break;
	}
}

static bool if_match(struct http_req *q, int64_t *v)
{
	*v = parse_etag(http_req_header(q, "If-Match"));
	if (*v == -2) {
		cors_fhir(q);
		send_outcome(q, 400, "If-Match must be a version ETag such as W/\"3\"", NULL);
		return false;
	}
	return true;
}

static void handle_conditional(struct http_req *q, struct fhir *f, enum cond_kind k, const char *ine);

static void handle_create(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const struct buf *body = http_req_body(q);
	struct fhir_result res;
	struct ctx c = CTX_INIT;
	struct access acc;
	uint64_t ticket = 0;

	if (http_req_header(q, "If-None-Exist")) {
		handle_conditional(q, f, COND_CREATE, http_req_header(q, "If-None-Exist"));
		return;
	}
	if (!accept_ok(q) || !content_type_ok(q) ||
	    !guard(q, http_req_param(q, "type"), SCOPE_OP_CREATE, &acc))
		return;
	if (!write_allowed(q, f, &acc, http_req_param(q, "type"), NULL, body)) {
		audit_denied(q, &acc, http_req_param(q, "type"), NULL, "outside-record");
		access_done(&acc);
		return;
	}
	fhir_result_init(&res);
	if (!write_begin(q, f))
		goto done;
	if (fhir_create(f, http_req_param(q, "type"), body->data, body->len, &res, &c)) {
		write_abort(f);
		audit_write(q, f, &acc, AUDIT_FHIR_CREATE, http_req_param(q, "type"), NULL, NULL, &c, NULL, NULL);
		if (c.code == ERR_FORBIDDEN) {
			http_resp_header(q, "Allow", "GET, HEAD");
			send_outcome(q, 405, c.msg, NULL);
		} else {
			send_error(q, &c);
		}
	} else if (write_commit(q, f, audit_write(q, f, &acc, AUDIT_FHIR_CREATE, res.type, NULL, &res,
						   NULL, NULL, &ticket), &ticket)) {
		send_write_result(q, f, &res, 201);
	}
done:
	fhir_result_release(&res);
	access_done(&acc);
}

static void handle_update(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const struct buf *body = http_req_body(q);
	struct fhir_result res;
	struct ctx c = CTX_INIT;
	struct access acc;
	uint64_t ticket = 0;
	int64_t v;

	if (!accept_ok(q) || !content_type_ok(q) || !if_match(q, &v) ||
	    !guard(q, http_req_param(q, "type"), SCOPE_OP_UPDATE, &acc))
		return;
	if (!write_allowed(q, f, &acc, http_req_param(q, "type"), http_req_param(q, "id"), body)) {
		audit_denied(q, &acc, http_req_param(q, "type"), http_req_param(q, "id"), "outside-record");
		access_done(&acc);
		return;
	}
	fhir_result_init(&res);
	if (!write_begin(q, f))
		goto done;
	if (fhir_update(f, http_req_param(q, "type"), http_req_param(q, "id"), body->data,
			body->len, v, &res, &c)) {
		write_abort(f);
		audit_write(q, f, &acc, AUDIT_FHIR_UPDATE, http_req_param(q, "type"),
			    http_req_param(q, "id"), NULL, &c, NULL, NULL);
		if (c.code == ERR_FORBIDDEN) {
			http_resp_header(q, "Allow", "GET, HEAD");
			send_outcome(q, 405, c.msg, NULL);
		} else {
			send_error(q, &c);
		}
	} else if (write_commit(q, f, audit_write(q, f, &acc, res.created ? AUDIT_FHIR_CREATE : AUDIT_FHIR_UPDATE,
						   res.type, res.id, &res, NULL, NULL, &ticket), &ticket)) {
		send_write_result(q, f, &res, res.created ? 201 : 200);
	}
done:
	fhir_result_release(&res);
	access_done(&acc);
}

/* Answer a delete that deleted version 'version' of type/id (0: nothing was there). */
static void send_delete_result(struct http_req *q, const char *type, const char *id, int64_t version)
{
	if (version) {
		char etag[40];
		snprintf(etag, sizeof(etag), "W/\"%lld\"", (long long)version);
		http_resp_header(q, "ETag", etag);
	}
	if (get_prefer(q) == PREFER_OUTCOME) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s/%s %s", type, id,
			 version ? "deleted" : "was not present; nothing to delete");
		send_outcome(q, 200, msg, NULL);
	} else {
		http_resp_empty(q, 204);
	}
}

static void handle_delete(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	struct fhir_audit pre;
	struct fhir_result res;
	struct ctx c = CTX_INIT;
	struct access acc;
	uint64_t ticket = 0;
	int64_t v;

	if (!accept_ok(q) || !if_match(q, &v) ||
	    !guard(q, http_req_param(q, "type"), SCOPE_OP_DELETE, &acc))
		return;
	if (!write_allowed(q, f, &acc, http_req_param(q, "type"), http_req_param(q, "id"), NULL)) {
		audit_denied(q, &acc, http_req_param(q, "type"), http_req_param(q, "id"), "outside-record");
		access_done(&acc);
		return;
	}
	fhir_result_init(&res);
	/* whose record it was: the compartment is gone after the delete */
	memset(&pre, 0, sizeof(pre));
	fa_patients_of(&pre, f, &acc, http_req_param(q, "type"), http_req_param(q, "id"));
	if (!write_begin(q, f))
		goto done;
	if (fhir_delete(f, http_req_param(q, "type"), http_req_param(q, "id"), v, &res, &c)) {
		write_abort(f);
		audit_write(q, f, &acc, AUDIT_FHIR_DELETE, http_req_param(q, "type"),
			    http_req_param(q, "id"), NULL, &c, &pre, NULL);
		if (c.code == ERR_FORBIDDEN) {
			http_resp_header(q, "Allow", "GET, HEAD");
			send_outcome(q, 405, c.msg, NULL);
		} else {
			send_error(q, &c);
		}
	} else if (write_commit(q, f, audit_write(q, f, &acc, AUDIT_FHIR_DELETE, http_req_param(q, "type"),
						   http_req_param(q, "id"), &res, NULL, &pre, &ticket), &ticket)) {
		send_delete_result(q, res.type, res.id, res.unchanged ? 0 : res.version);
	}
done:
	fhir_result_release(&res);
	access_done(&acc);
}

/* ---- history ---- */

static bool parse_instant_param(struct http_req *q, const char *name, int64_t *out)
{
	const char *v = http_req_query(q, name);
	int64_t lo, hi;

	*out = 0;
	if (!v)
		return true;
	if (fhir_date_parse(v, &lo, &hi)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "parameter '%s' must be a FHIR instant such as 2024-01-31T10:00:00Z", name);
		send_outcome(q, 400, msg, name);
		return false;
	}
	*out = !strcmp(name, "_at") ? hi : lo;
	return true;
}

static void handle_history(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	struct fhir_history_q hq;
	struct buf out = BUF_INIT(PAGE_BUF_MAX);
	struct ctx c = CTX_INIT;
	const char *count = http_req_query(q, "_count"), *cursor = http_req_query(q, "_cursor");
	struct version_judge vj;
	struct access acc;

	if (!accept_ok(q))
		return;
	memset(&hq, 0, sizeof(hq));
	hq.type = http_req_param(q, "type");
	hq.id = http_req_param(q, "id");
	if (!hq.type && http_req_param(q, "ctype"))
		hq.type = "Patient"; /* /fhir/Patient/{id}/_history via the compartment route */
	if (!guard(q, hq.type, hq.id ? SCOPE_OP_READ : SCOPE_OP_SEARCH, &acc))
		goto out;
	if (acc.on && hq.id) {
		bool now = visible(q, f, &acc, hq.type, hq.id);

		if (!http_resp_done(q) && versions_judged(&acc, hq.type, hq.id)) {
			/*
			 * Each version shows by its own record and categories
			 * (version_ok()); a resource none of whose versions shows
			 * is not known (fhir_history()).
			 */
			version_judge_init(&vj, q, f, &acc, hq.type, hq.id, now);
			hq.keep = version_ok;
			hq.keep_arg = &vj;
		} else if (!now) {
			/* the same answer as for a resource that does not exist, as a read's */
			audit_denied(q, &acc, hq.type, hq.id, "not-visible");
			if (!http_resp_done(q)) {
				char msg[200];
				snprintf(msg, sizeof(msg), "%s/%s is not known", hq.type, hq.id);
				send_outcome(q, 404, msg, NULL);
			}
			goto out;
		}
	}
	if (acc.on && !hq.id && ((acc.patient && (!hq.type || confinable(hq.type))) || acc.d.nfilters)) {
		refuse(q, &acc, hq.type, NULL, "insufficient-scope",
		       "history across records is not available with patient-scoped or constrained access");
		goto out;
	}
	if (acc.on && !hq.type && !all_types_allowed(&acc, SCOPE_OP_SEARCH)) {
		refuse(q, &acc, NULL, NULL, "insufficient-scope",
		       "the history of every type needs scopes that allow searching every type");
		goto out;
	}
	hq.count = f->opts.page_size;
	if (count && str_to_i64(count, 0, INT64_MAX, &hq.count)) {
		send_outcome(q, 400, "_count must be a non-negative integer", "_count");
		goto out;
	}
	if (hq.count > f->opts.page_max)
		hq.count = f->opts.page_max;
	if (cursor && str_to_i64(cursor, 1, INT64_MAX, &hq.cursor)) {
		send_outcome(q, 400, "_cursor is not a valid page cursor", "_cursor");
		goto out;
	}
	if (!parse_instant_param(q, "_since", &hq.since) || !parse_instant_param(q, "_at", &hq.at_most))
		goto out;
	if (fhir_history(f, &hq, &out, &c)) {
		if (hq.keep && c.code == ERR_NOTFOUND) {
			/* as above: no version shows, as for a resource that does not exist */
			audit_denied(q, &acc, hq.type, hq.id, "not-visible");
			send_outcome(q, 404, c.msg, NULL);
			goto out;
		}
		send_error(q, &c);
		goto out;
	}
	{
		struct fhir_audit fa;

		memset(&fa, 0, sizeof(fa));
		fa.type = AUDIT_FHIR_HISTORY;
		fa.rtype = hq.type;
		fa.id = hq.id;
		if (hq.id)
			fa_patients_of(&fa, f, &acc, hq.type, hq.id);
		if (!audit_fhir(q, &acc, &fa, true))
			goto out;
	}
	http_resp_buf(q, 200, FHIR_JSON, &out);
out:
	access_done(&acc);
	buf_release(&out);
}

/* ---- search ---- */

/*
 * May a search by 'a' bring in (or select by) resources of 'type'?  The
 * scopes must allow it without constraints; under a patient context or
 * granular scopes it must be shared reference data (a type outside the
 * patient compartment), unless 'confined': included resources are
 * confined to the patient in context (fhir_search_req.include_patient).
 */
static bool other_type_ok(const struct access *a, const char *type, enum scope_op op, bool confined)
{
	struct scope_decision d;

	scope_decide(a->p.scopes, type, op, &d);
	if (!d.allowed || d.nfilters)
		return false;
	if (confined && a->patient)
		return true;
	return !((a->patient || a->d.nfilters) && confinable(type));
}

/*
 * May the chained parameter 'name' (ref[:Type].param, hop by hop from
 * 'type') be used?  Each type a hop may reach must pass other_type_ok()
 * for search; a hop to no known type needs every type.
 */
static bool chain_ok(const struct access *a, const char *type, const char *name)
{
	char cur[64], hop[128];
	const char *dot;

	str_copy(cur, type ? type : "", sizeof(cur));
	for (; (dot = strchr(name, '.')) != NULL; name = dot + 1) {
		const struct fhir_param *p;
		char *ty;

		if ((size_t)(dot - name) >= sizeof(hop))
			return false;
		memcpy(hop, name, (size_t)(dot - name));
		hop[dot - name] = '\0';
		if ((ty = strchr(hop, ':')) != NULL)
			*ty++ = '\0';
		p = cur[0] ? fhir_param_find(cur, hop) : NULL;
		if (ty && *ty) {
			str_copy(cur, ty, sizeof(cur));
		} else if (p && p->targets && p->targets[0]) {
			for (size_t j = 0; p->targets[j]; j++)
				if (!other_type_ok(a, p->targets[j], SCOPE_OP_SEARCH, false))
					return false;
			str_copy(cur, p->targets[1] ? "" : p->targets[0], sizeof(cur));
			continue;
		} else {
			if (a->patient || a->d.nfilters || !all_types_allowed(a, SCOPE_OP_SEARCH))
				return false;
			cur[0] = '\0';
			continue;
		}
		if (!other_type_ok(a, cur, SCOPE_OP_SEARCH, false))
			return false;
	}
	return true;
}

/*
 * _include and _revinclude bring in resources of other types, _has and
 * chained parameters select by them: every type they may name must be
 * allowed by the scopes (read for includes, search for the others)
 * without constraints (other_type_ok()).  Under a patient context the
 * included resources are confined to the patient's record, so includes may
 * name any type the scopes allow; _has and chains select by resources that
 * are not confined and may name shared reference data only.  An include
 * whose targets are not known needs every type.  False ('why' says why)
 * otherwise.
 */
static bool includes_ok(const struct access *a, const char *type, const struct fhir_kv *kv,
			size_t n, char *why, size_t wn)
{
	if (!a->on)
		return true;
	for (size_t i = 0; i < n; i++) {
		bool rev = str_starts(kv[i].name, "_revinclude");
		char src[64], code[64], target[64];
		const char *v = kv[i].value;
		bool ok = true;

		if (kv[i].name[0] != '_' && strchr(kv[i].name, '.')) {
			ok = chain_ok(a, type, kv[i].name);
		} else if (str_starts(kv[i].name, "_has:")) {
			/* _has:Type:reference:parameter, maybe nested: every Type named */
			for (const char *p = kv[i].name; ok && (p = strstr(p, "_has:")) != NULL;) {
				char t[64] = "";
				p += 5;
				ok = sscanf(p, "%63[A-Za-z]", t) == 1 &&
				     other_type_ok(a, t, SCOPE_OP_SEARCH, false);
			}
		} else if (rev || str_starts(kv[i].name, "_include")) {
			src[0] = code[0] = target[0] = '\0';
			sscanf(v, "%63[^:]:%63[^:]:%63s", src, code, target);
			if (rev) {
				ok = other_type_ok(a, src, SCOPE_OP_READ, true);
			} else if (target[0]) {
				ok = other_type_ok(a, target, SCOPE_OP_READ, true);
			} else {
				const struct fhir_param *p = fhir_param_find(src, code);
				if (p && p->targets && p->targets[0])
					for (size_t j = 0; ok && p->targets[j]; j++)
						ok = other_type_ok(a, p->targets[j], SCOPE_OP_READ, true);
				else
					ok = (a->patient || !a->d.nfilters) &&
					     all_types_allowed(a, SCOPE_OP_READ);
			}
		} else {
			continue;
		}
		if (!ok) {
			snprintf(why, wn, "%s=%s may bring in data outside what this token may see",
				 kv[i].name, v ? v : "");
			return false;
		}
	}
	return true;
}

/*
 * Bound a search on 'type' (NULL: $everything, whose types are bounded by
 * everything_types()) by 'a': the includes, chains and _has it may use
 * (includes_ok(), for $everything too), the granular filters ANDed to it
 * (kv[*k..] needs room for 2 * SCOPE_KV_MAX + 1 more), and under a patient
 * context the patient's record: *patient for a compartment type (a
 * compartment search of another patient is refused), _id for Patient, and
 * the includes' confinement in *inc_patient.  False ('why' says why: 403) otherwise.
 */
static bool confine_search(struct http_req *q, const struct access *a, const char *type,
			   struct fhir_kv *kv, size_t *k, const char **patient,
			   const char **inc_patient, char *why, size_t wn)
{
	*inc_patient = NULL;
	if (!a->on)
		return true;
	/* $everything passes its includes to the search too: they are bounded alike */
	if (!includes_ok(a, type, kv, *k, why, wn) || (type && !add_filters(q, a, type, kv, k, why, wn)))
		return false;
	if (!a->patient)
		return true;
	*inc_patient = a->patient;
	if (type && !confinable(type))
		return true;
	if (*patient && strcmp(*patient, a->patient)) {
		snprintf(why, wn, "the access token is for another patient's record");
		return false;
	}
	if (type && !strcmp(type, "Patient")) {
		kv[*k].name = "_id";
		kv[(*k)++].value = a->patient;
	} else {
		*patient = a->patient;
	}
	return true;
}

/*
 * Does a search on 'type' apply parameter 'name' (a search parameter of the
 * type or of every type, with a modifier or a chain, _has, or a result
 * parameter)?  The search ignores the others, and the audit record keeps
 * only a hash of their values: they may hold anything.
 */
static bool search_param_known(const char *type, const char *name)
{
	static const char *const control[] = {
		"_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude",
		"_page", "_type", "_since", "_format", "_pretty", "_has",
	};
	char base[64];
	size_t n = strcspn(name, ":.");

	if (n >= sizeof(base))
		return false;
	memcpy(base, name, n);
	base[n] = '\0';
	for (size_t i = 0; i < sizeof(control) / sizeof(control[0]); i++)
		if (!strcmp(base, control[i]))
			return true;
	return fhir_param_find(type, base) != NULL;
}

/*
 * A search's normalized query for its record (into 'qs').  One that cannot
 * be normalized (longer than AUDIT_TEXT_MAX once normalized, or not UTF-8)
 * is recorded as "Type?_query=too-long" or "Type?_query=invalid": the
 * record still shows a search and why its query is not there.
 */
static const char *audit_query_of(const char *type, const struct audit_param *ap, size_t n,
				  const char *patient, struct buf *qs)
{
	struct ctx c = CTX_INIT;

	if (!audit_query_normalize(rest_audit, type, ap, n, patient, qs, &c))
		return qs->data;
	buf_reset(qs);
	buf_addf(qs, "%s?_query=%s", type ? type : "", c.code == ERR_TOOBIG ? "too-long" : "invalid");
	return qs->err ? NULL : qs->data;
}

/*
 * Record a search: the normalized query, and the patient it is about (the
 * confined or compartment patient, else one named by patient= or
 * subject=Patient/...).  Waited for (the response discloses data), or with
 * 'ticket' only queued, its ticket there (false after answering 503).
 */
static bool audit_search(struct http_req *q, const struct access *acc, const char *type,
			 const char *patient, bool everything, const struct fhir_kv *kv, size_t n,
			 uint64_t *ticket)
{
	struct fhir_audit fa;
	struct audit_param *ap;
	struct buf qs = BUF_INIT(AUDIT_TEXT_MAX);
	bool ok;

	if (!rest_audit)
		return true;
	memset(&fa, 0, sizeof(fa));
	fa.type = everything ? AUDIT_FHIR_EVERYTHING : AUDIT_FHIR_SEARCH;
	fa.rtype = everything ? "Patient" : type;
	fa.id = everything ? patient : NULL;
	if (patient) {
		fa_patient(&fa, patient);
	} else {
		for (size_t i = 0; i < n && !fa.npatients; i++) {
			const char *v = kv[i].value;
			if (strcmp(kv[i].name, "patient") && strcmp(kv[i].name, "subject") &&
			    strcmp(kv[i].name, "patient:Patient") && strcmp(kv[i].name, "subject:Patient") &&
			    !(type && !strcmp(type, "Patient") && !strcmp(kv[i].name, "_id")))
				continue;
			if (str_starts(v, "Patient/"))
				v += 8;
			else if (strchr(v, '/'))
				continue;
			if (*v && !strchr(v, ','))
				fa_patient(&fa, v);
		}
	}
	ap = arena_zalloc(http_req_arena(q), (n + 1) * sizeof(*ap));
	for (size_t i = 0; i < n; i++) {
		ap[i].name = kv[i].name;
		ap[i].value = kv[i].value;
		ap[i].hash = !search_param_known(type, kv[i].name);
	}
	fa.query = audit_query_of(type, ap, n, fa.npatients ? fa.patients[0] : NULL, &qs);
	ok = audit_fhir_q(q, acc, &fa, ticket == NULL, ticket);
	buf_release(&qs);
	return ok;
}

/*
 * $everything under a token: only the compartment types the scopes allow
 * without constraints, intersected with the client's own _type.  An
 * unknown type in _type is left for the search to refuse (400, the same
 * check as without a token); types the scopes allow that cannot be in a
 * record (Practitioner...) give an empty answer, not a refusal.
 */
static bool everything_types(struct http_req *q, const struct access *a, struct fhir_kv *kv,
			     size_t *k)
{
	struct buf b = BUF_INIT(1 << 16), outside = BUF_INIT(1 << 16);
	size_t at = *k;
	const char *list;

	if (!a->on)
		return true;
	for (size_t i = 0; i < *k; i++) {
		const char *p = kv[i].value;

		if (strcmp(kv[i].name, "_type"))
			continue;
		while (*p) {
			char t[64];
			size_t l = strcspn(p, ",");
			struct scope_decision d;

			snprintf(t, sizeof(t), "%.*s", (int)(l < sizeof(t) ? l : sizeof(t) - 1), p);
			if (l >= sizeof(t) || !fhir_type_find(t)) {
				/* left as given: the search refuses it (400) before it reads anything */
				buf_release(&b);
				buf_release(&outside);
				return true;
			}
			/* a type the scopes allow that no record holds */
			if (!confinable(t)) {
				scope_decide(a->p.scopes, t, SCOPE_OP_SEARCH, &d);
				if (d.allowed && !d.nfilters) {
					if (outside.len)
						buf_addch(&outside, ',');
					buf_adds(&outside, t);
				}
			}
			p += l + (p[l] == ',');
		}
	}
	for (const struct fhir_type *t = fhir_types; t->name; t++) {
		struct scope_decision d;
		bool in = true;
		if (!confinable(t->name))
			continue;
		/* an exact member of every _type given (each a comma-separated list) */
		for (size_t i = 0; i < *k && in; i++) {
			const char *p = kv[i].value;
			size_t tl = strlen(t->name);
			if (strcmp(kv[i].name, "_type"))
				continue;
			in = false;
			while (*p && !in) {
				size_t l = strcspn(p, ",");
				in = l == tl && !strncmp(p, t->name, l);
				p += l + (p[l] == ',');
			}
		}
		if (!in)
			continue;
		scope_decide(a->p.scopes, t->name, SCOPE_OP_SEARCH, &d);
		if (!d.allowed || d.nfilters)
			continue;
		if (b.len)
			buf_addch(&b, ',');
		buf_adds(&b, t->name);
	}
	if (!b.len && outside.len) {
		/* asked only for types no record holds (or not allowed): it finds none of them */
		buf_reset(&b);
		buf_add(&b, outside.data, outside.len);
	}
	buf_release(&outside);
	if (!b.len) {
		buf_release(&b);
		refuse(q, a, "Patient", NULL, "insufficient-scope",
		       "the access token's scopes allow none of the record's types");
		return false;
	}
	/* every _type given becomes the list: none may widen it */
	list = arena_strdup(http_req_arena(q), b.data);
	for (size_t i = 0; i < *k; i++)
		if (!strcmp(kv[i].name, "_type")) {
			kv[i].value = list;
			at = i;
		}
	kv[at].name = "_type";
	kv[at].value = list;
	if (at == *k)
		(*k)++;
	buf_release(&b);
	return true;
}

/*
 * May 'acc' read the audit log?  Only a user of the compliance role; the
 * rest get 403 (recorded as a refusal).
 */
static bool compliance_only(struct http_req *q, const struct access *acc)
{
	if (acc->on && acc->p.uid && acc->p.role == USER_COMPLIANCE)
		return true;
	audit_denied(q, acc, "AuditEvent", NULL, "not-compliance");
	deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"",
	     "only the compliance role may read the audit log");
	return false;
}

/*
 * The audit log asked for anywhere but /fhir/AuditEvent (a compartment
 * search, say): refused as GET /fhir/AuditEvent refuses everyone but the
 * compliance role, who are told where to look.
 */
static void auditevent_elsewhere(struct http_req *q)
{
	struct access acc;

	if (!guard(q, "AuditEvent", SCOPE_OP_SEARCH, &acc))
		return;
	if (compliance_only(q, &acc)) {
		send_outcome(q, 400, "the audit log is searched at /fhir/AuditEvent (GET, or POST _search)",
			     NULL);
	}
	access_done(&acc);
}

static void run_search(struct http_req *q, struct fhir *f, const char *type, const char *patient,
		       bool everything)
{
	struct fhir_search_req sr;
	struct buf out = BUF_INIT(PAGE_BUF_MAX);
	struct ctx c = CTX_INIT;
	const char *prefer = http_req_header(q, "Prefer");
	/* a form body's fields follow the query's in the same list (http.h) */
	size_t n = http_req_query_count(q), k = 0;
	struct fhir_kv *kv = arena_zalloc(http_req_arena(q), sizeof(*kv) * (n + 2 + 2 * SCOPE_KV_MAX + 2));
	const char *inc_patient = NULL;
	char why[300];
	struct access acc;

	memset(&acc, 0, sizeof(acc));
	if (!accept_ok(q))
		goto out;
	if (type && !strcmp(type, "AuditEvent")) {
		/* Patient/X/AuditEvent: the log is not stored with the records */
		auditevent_elsewhere(q);
		goto out;
	}
	for (size_t i = 0; i < n; i++, k++)
		http_req_query_at(q, i, &kv[k].name, &kv[k].value);
	if (everything) {
		if (!guard(q, "Patient", SCOPE_OP_READ, &acc) || !everything_types(q, &acc, kv, &k))
			goto out;
	} else if (!guard(q, type, SCOPE_OP_SEARCH, &acc)) {
		goto out;
	}
	if (!confine_search(q, &acc, everything ? NULL : type, kv, &k, &patient, &inc_patient, why,
			    sizeof(why))) {
		/* another patient's record (it names that patient) or what the scopes do not allow */
		if (patient && acc.patient && strcmp(patient, acc.patient))
			refuse(q, &acc, "Patient", patient, "outside-record", why);
		else
			refuse(q, &acc, everything ? "Patient" : type, NULL, "insufficient-scope", why);
		goto out;
	}
	memset(&sr, 0, sizeof(sr));
	sr.type = type;
	sr.patient = patient;
	sr.everything = everything;
	sr.params = kv;
	sr.nparams = k;
	sr.strict = prefer && strstr(prefer, "handling=strict");
	sr.include_patient = inc_patient;
	if (fhir_search(f, &sr, &out, &c)) {
		send_error(q, &c);
		goto out;
	}
	if (!audit_search(q, &acc, type, patient, everything, kv, k, NULL))
		goto out;
	http_resp_buf(q, 200, FHIR_JSON, &out);
out:
	access_done(&acc);
	buf_release(&out);
}

static void handle_search(struct http_req *q, void *arg)
{
	run_search(q, arg, http_req_param(q, "type"), NULL, false);
}

static void handle_auditevent(struct http_req *q, void *arg);

/* Only a form body is parsed as a form: anything else is 415. */
static bool search_form(struct http_req *q)
{
	if (http_req_is_form(q))
		return true;
	cors_fhir(q);
	send_outcome(q, 415, "POST _search takes an application/x-www-form-urlencoded body", NULL);
	return false;
}

static void handle_search_post(struct http_req *q, void *arg)
{
	if (!search_form(q))
		return;
	/* the form's fields read like the query's (http.h): the same search as GET */
	if (!strcmp(http_req_param(q, "type"), "AuditEvent"))
		handle_auditevent(q, arg);
	else
		run_search(q, arg, http_req_param(q, "type"), NULL, false);
}

static void handle_history(struct http_req *q, void *arg);

static void handle_compartment(struct http_req *q, void *arg)
{
	/* "/fhir/Patient/{id}/_history" lands here: the literal Patient wins */
	if (!strcmp(http_req_param(q, "ctype"), "_history")) {
		handle_history(q, arg);
		return;
	}
	run_search(q, arg, http_req_param(q, "ctype"), http_req_param(q, "id"), false);
}

/* POST Patient/{id}/{type}/_search: the compartment search with a form body. */
static void handle_compartment_post(struct http_req *q, void *arg)
{
	if (search_form(q))
		run_search(q, arg, http_req_param(q, "ctype"), http_req_param(q, "id"), false);
}

static void handle_everything(struct http_req *q, void *arg)
{
	run_search(q, arg, NULL, http_req_param(q, "id"), true);
}

/*
 * Check every entry of a batch or transaction against the token before
 * anything runs: the entry's type and interaction against the scopes;
 * under a patient context reads and deletes must be in the patient's
 * record, writes must put the resource there, and conditional creates
 * (ifNoneExist) and conditional updates (PUT Type?query) are refused, for
 * their queries are not confined.  One entry out of bounds refuses the
 * whole Bundle with 403 (nothing runs).  Searches are bounded as they run
 * (bundle_search()).
 */
static bool bundle_allowed(struct http_req *q, struct fhir *f, const struct access *a,
			   const struct buf *body, bool single)
{
	struct ctx c = CTX_INIT;
	json_t *doc, *entries, *en;
	size_t i;
	bool ok = true;
	char why[300] = "";
	const char *code = "insufficient-scope";

	if (!a->on)
		return true;
	/* as deep as fhir_bundle() reads it, the wrapper of a conditional included */
	if (!(doc = json_parse_bounded(body->data, body->len,
				       f->opts.json_depth_max + (single ? COND_WRAP_DEPTH : 0), &c)))
		return true; /* the Bundle code answers the syntax error */
	entries = json_object_get(doc, "entry");
	json_array_foreach(entries, i, en) {
		json_t *rq = json_object_get(en, "request"), *res = json_object_get(en, "resource");
		const char *method = json_string_value(json_object_get(rq, "method"));
		const char *url = json_string_value(json_object_get(rq, "url"));
		char type[64] = "", id[72] = "";
		long long vid = 0;
		enum scope_op op;
		struct scope_decision d;
		struct access ea = *a;
		char pre[32] = "";

		if (!single)
			snprintf(pre, sizeof(pre), "entry %zu: ", i);
		if (!method || !url)
			continue; /* malformed: the Bundle code answers */
		if (str_starts(url, f->base) && url[strlen(f->base)] == '/')
			url += strlen(f->base) + 1;
		sscanf(url, "%63[A-Za-z]/%71[A-Za-z0-9.-]/_history/%lld", type, id, &vid);
		if (!strchr(url, '/') && strchr(url, '?'))
			id[0] = '\0';
		/* the Bundle code runs a HEAD entry as a GET (method_of()) */
		if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
			op = id[0] ? SCOPE_OP_READ : SCOPE_OP_SEARCH;
		else if (!strcmp(method, "POST"))
			op = SCOPE_OP_CREATE;
		else if (!strcmp(method, "PUT"))
			op = SCOPE_OP_UPDATE;
		else if (!strcmp(method, "DELETE"))
			op = SCOPE_OP_DELETE;
		else
			continue;
		scope_decide(a->p.scopes, type, op, &d);
		ea.d = d;
		if (!strcmp(type, "AuditEvent")) {
			/* not stored with the records: only /fhir/AuditEvent, compliance only */
			snprintf(why, sizeof(why), "%sthe audit log is read at /fhir/AuditEvent, not in a Bundle", pre);
		} else if (!d.allowed) {
			snprintf(why, sizeof(why), "%sthe scopes do not allow %s %s", pre, method, type);
		} else if (op == SCOPE_OP_SEARCH) {
			/* bounded when it runs (bundle_search()) */
		} else if (((op == SCOPE_OP_UPDATE || op == SCOPE_OP_DELETE) && !id[0]) ||
			   (op == SCOPE_OP_CREATE && json_object_get(rq, "ifNoneExist"))) {
			struct scope_decision sd;

			/*
			 * A conditional interaction searches: whether it matched
			 * tells what exists, so it needs the search scope too; and
			 * its query would run over every record, so not under a
			 * patient context or constraints
			 */
			scope_decide(a->p.scopes, type, SCOPE_OP_SEARCH, &sd);
			/* a search allowed only by a patient/ scope is confined too */
			if (a->patient || d.nfilters || sd.nfilters || (sd.allowed && sd.ctx == SCOPE_PATIENT))
				snprintf(why, sizeof(why), "%sconditional creates, updates and deletes are not available with patient-scoped or constrained access", pre);
			else if (!sd.allowed)
				snprintf(why, sizeof(why), "%sa conditional %s searches: the scopes do not allow searching %s", pre, method, type);
		} else if (a->patient && op != SCOPE_OP_READ && !confinable(type)) {
			snprintf(why, sizeof(why), "%sshared reference data cannot be written with access confined to one patient's record", pre);
		} else if (op == SCOPE_OP_READ || op == SCOPE_OP_DELETE) {
			bool seen;

			if (op == SCOPE_OP_READ)
				read_access(&ea, type, id);
			seen = visible(q, f, &ea, type, id);
			/*
			 * A vread: a version in the token's record shows whatever
			 * record the resource is in now.  One of a resource it sees
			 * that does not show answers its entry (bundle_version()).
			 */
			if (!seen && !http_resp_done(q) && op == SCOPE_OP_READ && vid > 0 &&
			    versions_judged(&ea, type, id))
				seen = version_seen(q, f, &ea, type, id, vid);
			if (!seen && !http_resp_done(q)) {
				snprintf(why, sizeof(why), "%s%s/%s is not in the record this token may see", pre, type, id);
				code = "not-visible";
			}
			else if (op == SCOPE_OP_DELETE && a->patient && !strcmp(type, "Patient") &&
				 !strcmp(id, a->patient))
				snprintf(why, sizeof(why), "%sthe patient's own Patient resource is kept by the clinic", pre);
		} else if (d.nfilters) {
			snprintf(why, sizeof(why), "%swrites need a scope without search-parameter constraints", pre);
		} else if (a->patient && confinable(type)) {
			char *txt = json_dumps(res, JSON_COMPACT);
			bool in = txt && body_in_record(q, f, &ea, type, id[0] ? id : NULL, txt, strlen(txt));
			if (!in) {
				snprintf(why, sizeof(why), "%sthe resource must belong to the record of the patient in context", pre);
				code = "outside-record";
			}
			else if (op == SCOPE_OP_UPDATE && id[0]) {
				int64_t v = 0;
				bool del = false;
				char kept[240];
				/* as write_allowed(): no update as create */
				if (store_current_version(f->store, type, id, &v, &del, &c) || !v || del ||
				    (!visible(q, f, &ea, type, id) && !http_resp_done(q))) {
					snprintf(why, sizeof(why), "%s%s/%s is not in the record this token may see", pre, type, id);
					code = "not-visible";
				}
				else if (!strcmp(type, "Patient") &&
					 !patient_managed_kept(f, id, txt, strlen(txt), kept, sizeof(kept)))
					snprintf(why, sizeof(why), "%s%s", pre, kept);
			}
			free(txt);
		}
		if (why[0] || http_resp_done(q)) {
			/* the entry refused, with whose record it would have touched */
			if (why[0])
				audit_denied(q, a, type[0] ? type : NULL, id[0] ? id : NULL, code);
			ok = false;
			break;
		}
	}
	json_decref(doc);
	if (!ok && !http_resp_done(q))
		deny(q, 403, "Bearer realm=\"veranda\", error=\"insufficient_scope\"", why);
	return ok;
}

/* A Bundle's searches, bounded by the request's token, and its entries' records. */
struct bundle_guard {
	struct http_req *q;
	struct fhir *f;
	const struct access *acc;
	bool unrecorded;             /* a record could not be queued: 503 sent */
	/* what the last entry did, for a conditional interaction (one entry) */
	bool did;
	enum fhir_entry_op op;
	char type[64], id[72];
	int64_t version;
	uint64_t ticket;             /* its record's */
};

/*
 * Bound a search entry of a Bundle as run_search() bounds a search: the
 * scopes of its type, its includes, chains and _has, the granular filters
 * and the patient context.  ERR_FORBIDDEN (the entry's 403) otherwise.
 */
static enum err bundle_search(void *arg, struct fhir_search_req *sr, struct ctx *c)
{
	struct bundle_guard *g = arg;
	struct access ea = *g->acc;
	struct fhir_kv *kv;
	size_t k = sr->nparams;
	char why[300];

	if (g->unrecorded)
		return ctx_errorf(c, ERR_BUSY, AUDIT_UNAVAILABLE);
	if (!ea.on)
		return ERR_OK;
	scope_decide(ea.p.scopes, sr->type, SCOPE_OP_SEARCH, &ea.d);
	if (!ea.d.allowed) {
		audit_denied(g->q, &ea, sr->type, NULL, "insufficient-scope");
		return ctx_errorf(c, ERR_FORBIDDEN, "the access token's scopes do not allow searching %s",
				  sr->type ? sr->type : "");
	}
	kv = arena_zalloc(http_req_arena(g->q), sizeof(*kv) * (k + 2 * SCOPE_KV_MAX + 2));
	if (k)
		memcpy(kv, sr->params, k * sizeof(*kv));
	if (!confine_search(g->q, &ea, sr->type, kv, &k, &sr->patient, &sr->include_patient, why,
			    sizeof(why))) {
		audit_denied(g->q, &ea, sr->type, NULL, "insufficient-scope");
		return ctx_errorf(c, ERR_FORBIDDEN, "%s", why);
	}
	sr->params = kv;
	sr->nparams = k;
	return ERR_OK;
}

/*
 * May the token see the version a vread entry read (as handle_read()
 * judges)?  ERR_NOTFOUND, the answer for a version that does not exist,
 * when it may not.
 */
static enum err bundle_version(void *arg, const struct store_resource *r, struct ctx *c)
{
	struct bundle_guard *g = arg;
	struct access ea = *g->acc;
	struct version_judge vj;

	if (g->unrecorded)
		return ctx_errorf(c, ERR_BUSY, AUDIT_UNAVAILABLE);
	if (!ea.on)
		return ERR_OK;
	scope_decide(ea.p.scopes, r->type, SCOPE_OP_READ, &ea.d);
	read_access(&ea, r->type, r->id);
	if (!versions_judged(&ea, r->type, r->id))
		return ERR_OK;
	version_judge_init(&vj, g->q, g->f, &ea, r->type, r->id, visible(g->q, g->f, &ea, r->type, r->id));
	if (version_ok(&vj, r))
		return ERR_OK;
	audit_denied(g->q, &ea, r->type, r->id, "not-visible");
	return ctx_errorf(c, ERR_NOTFOUND, "%s/%s has no version %lld", r->type, r->id, (long long)r->version);
}

/*
 * Record what an entry of a Bundle did, as the same interaction on its own
 * is recorded, queued without waiting: the Bundle's own record, the last,
 * is waited for.  Under a transaction this runs before the commit, so a
 * record that cannot be queued rolls everything back (fail closed).
 */
static enum err bundle_done(void *arg, const struct fhir_entry_done *d, struct ctx *c)
{
	static const enum audit_type types[] = {
		[FHIR_ENTRY_READ] = AUDIT_FHIR_READ, [FHIR_ENTRY_VREAD] = AUDIT_FHIR_VREAD,
		[FHIR_ENTRY_SEARCH] = AUDIT_FHIR_SEARCH, [FHIR_ENTRY_CREATE] = AUDIT_FHIR_CREATE,
		[FHIR_ENTRY_UPDATE] = AUDIT_FHIR_UPDATE, [FHIR_ENTRY_DELETE] = AUDIT_FHIR_DELETE,
	};
	struct bundle_guard *g = arg;
	struct access ea = *g->acc;
	uint64_t ticket;
	bool ok;

	if (g->unrecorded)
		return ctx_errorf(c, ERR_BUSY, AUDIT_UNAVAILABLE);
	if (d->op != FHIR_ENTRY_SEARCH) {
		/* what the entry did, for a conditional interaction's answer */
		g->did = true;
		g->op = d->op;
		str_copy(g->type, d->type, sizeof(g->type));
		str_copy(g->id, d->id, sizeof(g->id));
		g->version = d->version;
		g->ticket = 0;
	}
	if (!rest_audit)
		return ERR_OK;
	if (ea.on) {
		/* the authority of the interaction the entry did */
		static const enum scope_op ops[] = {
			[FHIR_ENTRY_READ] = SCOPE_OP_READ, [FHIR_ENTRY_VREAD] = SCOPE_OP_READ,
			[FHIR_ENTRY_SEARCH] = SCOPE_OP_SEARCH, [FHIR_ENTRY_CREATE] = SCOPE_OP_CREATE,
			[FHIR_ENTRY_UPDATE] = SCOPE_OP_UPDATE, [FHIR_ENTRY_DELETE] = SCOPE_OP_DELETE,
		};
		scope_decide(ea.p.scopes, d->type, ops[d->op], &ea.d);
	}
	if (d->op == FHIR_ENTRY_SEARCH) {
		const struct fhir_search_req *sr = d->search;
		ok = audit_search(g->q, &ea, sr->type, sr->patient, false, sr->params, sr->nparams, &ticket);
	} else {
		struct fhir_audit fa;
		char vs[24];

		memset(&fa, 0, sizeof(fa));
		fa.type = types[d->op];
		fa.rtype = d->type;
		fa.id = d->id;
		if (d->op == FHIR_ENTRY_READ || d->op == FHIR_ENTRY_VREAD)
			read_access(&ea, d->type, d->id);
		if (d->version) {
			snprintf(vs, sizeof(vs), "%lld", (long long)d->version);
			fa.version = vs;
		}
		fa_patients_of(&fa, g->f, &ea, d->type, d->id);
		ok = audit_fhir_q(g->q, &ea, &fa, false, &ticket);
		g->ticket = ticket;
	}
	if (!ok) {
		g->unrecorded = true;
		return ctx_errorf(c, ERR_BUSY, AUDIT_UNAVAILABLE);
	}
	return ERR_OK;
}

static void handle_bundle(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const struct buf *body = http_req_body(q);
	struct buf out = BUF_INIT(PAGE_BUF_MAX);
	struct ctx c = CTX_INIT;
	struct access acc;
	struct bundle_guard bg = {.q = q, .f = f, .acc = &acc};
	const struct fhir_bundle_hooks hooks = {bundle_search, bundle_done, bundle_version, &bg, 0, 0};

	memset(&acc, 0, sizeof(acc));
	if (!accept_ok(q) || !content_type_ok(q) || !guard(q, NULL, SCOPE_OP_READ, &acc) ||
	    !bundle_allowed(q, f, &acc, body, false))
		goto out;
	if (fhir_bundle(f, body->data, body->len, get_prefer(q) == PREFER_REPRESENTATION &&
			http_req_header(q, "Prefer") != NULL, &hooks, &out, &c)) {
		if (!bg.unrecorded) {
			/* the attempt, as a failed write is recorded (its entries left no trace) */
			struct fhir_audit fa;
			char code[32];

			memset(&fa, 0, sizeof(fa));
			fa.type = AUDIT_FHIR_UPDATE;
			fa.rtype = "Bundle";
			fa.outcome = AUDIT_MINOR;
			fa.code = err_code(c.code, code, sizeof(code));
			audit_fhir(q, &acc, &fa, false);
			send_error(q, &c);
		}
		goto out;
	}
	if (bg.unrecorded)
		goto out; /* 503 sent: an entry's record could not be queued */
	{
		/*
		 * One record for the Bundle itself, after its entries' (which name
		 * their patients): the answer waits for it, and so for them all.
		 * It names no patient: a batch of reads did not change anyone's
		 * record, and the patient's access history shows the entries.
		 */
		static const char tx_answer[] = "{\"resourceType\":\"Bundle\",\"type\":\"transaction-response\"";
		struct fhir_audit fa;

		memset(&fa, 0, sizeof(fa));
		fa.type = AUDIT_FHIR_UPDATE;
		fa.rtype = "Bundle";
		/* the type fhir_bundle() read, as its answer names it */
		fa.query = str_starts(out.data, tx_answer) ? "transaction" : "batch";
		if (!audit_fhir(q, &acc, &fa, true))
			goto out;
	}
	http_resp_buf(q, 200, FHIR_JSON, &out);
out:
	access_done(&acc);
	buf_release(&out);
}

/* ---- Conditional create, update and delete ---- */

/*
 * The message of a one-entry transaction's failure without the entry's
 * number ("transaction failed at entry 1 (PUT Patient?...): ", "entry 1: "),
 * which a plain request has no use for.
 */
static const char *single_msg(const char *m)
{
	const char *p;

	if (str_starts(m, "transaction failed at entry 1") && (p = strstr(m, ": ")))
		m = p + 2;
	if (str_starts(m, "entry 1: "))
		m += 9;
	return m;
}

/*
 * A conditional create (POST with If-None-Exist), update (PUT Type?query)
 * or delete (DELETE Type?query) runs as a transaction of one entry: the
 * Bundle code resolves the query inside the transaction (no match, one,
 * several: 412), bundle_allowed() and its hooks bound and record it as
 * they do the same entry of a Bundle, and it is answered as the plain
 * interaction is.  The body is spliced in as sent, once it parses, so that
 * its numbers keep their written form.  'ine' is the If-None-Exist query.
 */
static void handle_conditional(struct http_req *q, struct fhir *f, enum cond_kind k, const char *ine)
{
	static const char *const methods[] = {"POST", "PUT", "DELETE"};
	static const enum scope_op ops[] = {SCOPE_OP_CREATE, SCOPE_OP_UPDATE, SCOPE_OP_DELETE};
	static const enum audit_type types[] = {AUDIT_FHIR_CREATE, AUDIT_FHIR_UPDATE, AUDIT_FHIR_DELETE};
	const char *type = http_req_param(q, "type"), *name, *value;
	const struct fhir_type *t;
	const struct buf *body = http_req_body(q);
	struct buf url = BUF_INIT(8192), doc = BUF_INIT(body->len + COND_WRAP_BYTES), out = BUF_INIT(PAGE_BUF_MAX);
	struct store_resource sr;
	struct ctx c = CTX_INIT;
	struct access acc;
	struct bundle_guard bg = {.q = q, .f = f, .acc = &acc};
	const struct fhir_bundle_hooks hooks = {bundle_search, bundle_done, bundle_version, &bg,
						 .wrap_bytes = COND_WRAP_BYTES, .wrap_depth = COND_WRAP_DEPTH};
	json_t *rq = NULL, *res = NULL;
	char *rqs = NULL;
	int64_t v = -1;

	memset(&acc, 0, sizeof(acc));
	store_resource_init(&sr);
	if (!(t = fhir_type_find(type)) || (t->flags & FHIR_TYPE_SERVER_WRITES_ONLY)) {
		char msg[200];
		/* /fhir/metadata and /fhir/_history are read only, as is the audit log */
		cors_fhir(q);
		if (t || !strcmp(type, "metadata") || !strcmp(type, "_history")) {
			snprintf(msg, sizeof(msg), "%s cannot be written", type);
			http_resp_header(q, "Allow", "GET, HEAD");
			send_outcome(q, 405, msg, NULL);
		} else {
			snprintf(msg, sizeof(msg), "resource type '%.64s' is not supported by this server", type);
			send_outcome(q, 404, msg, NULL);
		}
		goto out;
	}
	if (!accept_ok(q) || (k != COND_DELETE && !content_type_ok(q)) || (k != COND_CREATE && !if_match(q, &v)) ||
	    !guard(q, type, ops[k], &acc))
		goto out;
	buf_adds(&url, type);
	for (size_t i = 0; k != COND_CREATE && i < http_req_query_count(q); i++) {
		http_req_query_at(q, i, &name, &value);
		if (strcmp(name, "_format") && strcmp(name, "_pretty"))
			url_add_param(&url, name, value);
	}
	if (k != COND_CREATE && !strchr(url.data ? url.data : "", '?')) {
		send_outcome(q, 400, "a conditional update or delete needs search parameters", NULL);
		goto out;
	}
	if (url.err) {
		send_outcome(q, 400, "the conditional request is too long", NULL);
		goto out;
	}
	if (!(rq = json_pack("{s:s, s:s%}", "method", methods[k], "url", url.data, url.len))) {
		send_outcome(q, 400, "the search of a conditional request must be UTF-8", NULL);
		goto out;
	}
	if (ine) {
		/* "identifier=x", also as "?identifier=x" or "Patient?identifier=x" */
		const char *qm = strchr(ine, '?');
		json_t *js = json_string(qm ? qm + 1 : ine);
		if (!js || json_object_set_new(rq, "ifNoneExist", js)) {
			send_outcome(q, 400, "If-None-Exist must be a search in UTF-8", NULL);
			goto out;
		}
	}
	if (v >= 0) {
		char et[40];
		snprintf(et, sizeof(et), "W/\"%lld\"", (long long)v);
		json_object_set_new(rq, "ifMatch", json_string(et));
	}
	if (!(rqs = json_dumps(rq, JSON_COMPACT))) {
		send_outcome(q, 400, "the conditional request is too long", NULL);
		goto out;
	}
	buf_adds(&doc, "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":");
	buf_adds(&doc, rqs);
	if (k != COND_DELETE) {
		/* the body must be one JSON value before it is spliced in */
		if (!(res = json_parse_bounded(body->data, body->len, f->opts.json_depth_max, &c))) {
			send_error(q, &c);
			goto out;
		}
		buf_adds(&doc, ",\"resource\":");
		buf_add(&doc, body->data, body->len);
	}
	buf_adds(&doc, "}]}");
	if (doc.err) {
		send_outcome(q, 413, "the resource is too large", NULL);
		goto out;
	}
	if (!bundle_allowed(q, f, &acc, &doc, true))
		goto out;
	if (fhir_bundle(f, doc.data, doc.len, false, &hooks, &out, &c)) {
		if (!bg.unrecorded) {
			struct ctx sc = CTX_INIT;

			ctx_errorx(&sc, c.code, c.expr, "%s", single_msg(c.msg));
			audit_write(q, f, &acc, types[k], type, NULL, NULL, &sc, NULL, NULL);
			send_error(q, &sc);
		}
		goto out;
	}
	if (bg.unrecorded)
		goto out; /* 503 sent */
	if (!bg.did) {
		/*
		 * A conditional delete that matched nothing, answered as a delete
		 * of a missing resource (delete_missing()) and recorded: whether a
		 * search matched tells something too
		 */
		struct fhir_audit fa;
		char msg[200];

		memset(&fa, 0, sizeof(fa));
		fa.type = AUDIT_FHIR_DELETE;
		fa.rtype = type;
		if (rest_audit && !audit_fhir(q, &acc, &fa, true))
			goto out;
		if (v >= 0) {
			snprintf(msg, sizeof(msg), "If-Match names version %lld but the search matched no %s",
				 (long long)v, type);
			send_outcome(q, 412, msg, NULL);
		} else if (get_prefer(q) == PREFER_OUTCOME) {
			snprintf(msg, sizeof(msg), "the search matched no %s; nothing to delete", type);
			send_outcome(q, 200, msg, NULL);
		} else {
			http_resp_empty(q, 204);
		}
		goto out;
	}
	if (bg.op != FHIR_ENTRY_DELETE && fhir_read(f, bg.type, bg.id, bg.version, &sr, &c)) {
		send_error(q, &c);
		goto out;
	}
	if (!audit_wait_ticket(q, bg.ticket))
		goto out;
	if (bg.op == FHIR_ENTRY_DELETE) {
		send_delete_result(q, bg.type, bg.id, bg.version);
	} else {
		struct fhir_result fr;

		fhir_result_init(&fr);
		str_copy(fr.type, sr.type, sizeof(fr.type));
		str_copy(fr.id, sr.id, sizeof(fr.id));
		fr.version = sr.version;
		fr.last_updated = sr.last_updated;
		/* a conditional create that found its match: nothing was written */
		fr.created = bg.op == FHIR_ENTRY_READ;
		buf_add(&fr.json, sr.json.data, sr.json.len);
		/* 200 for a create that found its match, or an update */
		send_write_result(q, f, &fr, bg.op == FHIR_ENTRY_CREATE ? 201 : 200);
		fhir_result_release(&fr);
	}
out:
	free(rqs);
	json_decref(rq);
	json_decref(res);
	store_resource_release(&sr);
	buf_release(&url);
	buf_release(&doc);
	buf_release(&out);
	access_done(&acc);
}

static void handle_cond_update(struct http_req *q, void *arg)
{
	handle_conditional(q, arg, COND_UPDATE, NULL);
}

static void handle_cond_delete(struct http_req *q, void *arg)
{
	handle_conditional(q, arg, COND_DELETE, NULL);
}

/* ---- AuditEvent: the audit log, for the compliance role only ---- */

struct ae_page {
	json_t *entries;
	const char *base;
	const char *entity;          /* Type/id filter, or NULL */
	size_t want, got;
	struct audit_cursor last;
	bool more;
};

static enum err ae_row(void *arg, const char *node, uint64_t seq, int64_t time_ms,
		       const char *record, size_t len)
{
	struct ae_page *pg = arg;
	struct ctx c = CTX_INIT;
	json_t *ev = NULL;
	char url[900];

	if (pg->entity) {
		/* entity=Type/id: the record must name it */
		char needle[64 + 256 + 32]; /* ae_entity_ok()'s limits */
		const char *slash = strchr(pg->entity, '/');
		if (!slash)
			return ERR_OK;
		snprintf(needle, sizeof(needle), "\"type\":\"%.*s\",\"id\":\"%s\"", (int)(slash - pg->entity),
			 pg->entity, slash + 1);
		if (!memmem(record, len, needle, strlen(needle)))
			return ERR_OK;
	}
	if (pg->got == pg->want) {
		/* a matching row beyond the page: there is a next page */
		pg->more = true;
		return ERR_CONFLICT;
	}
	if (audit_event_to_fhir(record, len, pg->base, &ev, &c))
		return ERR_OK;
	snprintf(url, sizeof(url), "%s/AuditEvent/%s", pg->base,
		 json_string_value(json_object_get(ev, "id")) ? json_string_value(json_object_get(ev, "id")) : "");
	json_array_append_new(pg->entries, json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", url, "resource", ev,
						     "search", "mode", "match"));
	pg->got++;
	pg->last.time_ms = time_ms;
	str_copy(pg->last.node, node, sizeof(pg->last.node));
	pg->last.seq = seq;
	return ERR_OK;
}

/*
 * Is 'v' an entity the filter can look for: Type/id, the type letters and
 * digits starting with a letter (FHIR types and the log's own, such as
 * User and Client), the id 1 to 256 bytes of UTF-8 that the record's
 * canonical form writes as they are (so the text match in ae_row() is
 * exact)?
 */
static bool ae_entity_ok(const char *v)
{
	const char *slash = strchr(v, '/'), *id;
	size_t n;

	if (!slash || slash == v || slash - v > 64 || !isalpha((unsigned char)v[0]))
		return false;
	for (const char *p = v; p < slash; p++)
		if (!isalnum((unsigned char)*p))
			return false;
	id = slash + 1;
	n = strlen(id);
	if (n == 0 || n > 256 || !str_utf8_valid(id, n))
		return false;
	for (const char *p = id; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
			return false;
	return true;
}

/*
 * date=geX / leX / ltX / gtX / eqX / saX / ebX (a FHIR date or dateTime)
 * narrows [*since, *until): several date parameters are all applied.
 * False for a value or a prefix that is not one of these.
 */
static bool ae_date(const char *v, int64_t *since, int64_t *until)
{
	char pre[3] = "eq";
	int64_t lo, hi, s = INT64_MIN, u = INT64_MAX;

	if (strlen(v) > 2 && isalpha((unsigned char)v[0]) && isalpha((unsigned char)v[1])) {
		memcpy(pre, v, 2);
		v += 2;
	}
	if (fhir_date_parse(v, &lo, &hi))
		return false;
	if (!strcmp(pre, "eq")) {
		s = lo;
		u = hi + 1;
	} else if (!strcmp(pre, "ge")) {
		s = lo;
	} else if (!strcmp(pre, "gt") || !strcmp(pre, "sa")) {
		s = hi + 1;
	} else if (!strcmp(pre, "le")) {
		u = hi + 1;
	} else if (!strcmp(pre, "lt") || !strcmp(pre, "eb")) {
		u = lo;
	} else {
		return false;
	}
	if (s > *since)
		*since = s;
	if (u < *until)
		*until = u;
	return true;
}

/*
 * The parameters GET /fhir/AuditEvent applies (fhir_audit_params[], which
 * the CapabilityStatement lists, and the paging ones); the search ignores
 * others.
 */
static bool ae_param_known(const char *name)
{
	static const char *const control[] = {"_count", "_page", "_format"};

	for (const struct fhir_param *p = fhir_audit_params; p->code; p++)
		if (!strcmp(name, p->code))
			return true;
	for (size_t i = 0; i < sizeof(control) / sizeof(control[0]); i++)
		if (!strcmp(name, control[i]))
			return true;
	return false;
}

/*
 * GET /fhir/AuditEvent: the audit log as AuditEvents (IHE BALP), newest
 * first, for users with the compliance role whose token allows reading
 * AuditEvent; everyone else gets 403.  Parameters: patient, agent
 * (username), client, date (with prefixes), type (an event type such as
 * fhir.read, or a category: fhir, session, oauth...), outcome (0, 4, 8,
 * 12), entity (Type/id), request (request id), _count (default 50, at
 * most 500); paging with _page links.
 */
/* An AuditEvent search link: the request's parameters but 'skip', each followed by '&'. */
static void ae_link(struct http_req *q, const struct fhir *f, const char *skip, struct buf *b)
{
	buf_addf(b, "%s/AuditEvent?", f->base);
	for (size_t i = 0; i < http_req_query_count(q); i++) {
		const char *n, *v;
		http_req_query_at(q, i, &n, &v);
		if (!strcmp(n, skip) || !ae_param_known(n))
			continue; /* the links say what the search applied */
		http_pct_encode(n, strlen(n), b);
		buf_addch(b, '=');
		http_pct_encode(v, strlen(v), b);
		buf_addch(b, '&');
	}
}

static void handle_auditevent(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	struct access acc;
	struct audit_filter flt = AUDIT_FILTER_INIT;
	struct audit_reader *rd = NULL;
	struct ae_page pg;
	struct audit_cursor after;
	struct ctx c = CTX_INIT;
	struct buf out = BUF_INIT(PAGE_BUF_MAX), self = BUF_INIT(8192);
	const char *v, *prefer = http_req_header(q, "Prefer");
	int64_t count = 50, outcome, since = INT64_MIN, until = INT64_MAX;
	json_t *bundle;
	enum err e;

	memset(&pg, 0, sizeof(pg));
	if (!accept_ok(q) || !guard(q, "AuditEvent", SCOPE_OP_SEARCH, &acc) ||
	    !compliance_only(q, &acc))
		goto out;
	if (!rest_audit_dir) {
		send_outcome(q, 404, "this server keeps no audit log", NULL);
		goto out;
	}
	/*
	 * Each filter but date matches one field of a record, so it is given
	 * once (the same value again changes nothing); dates narrow the range.
	 * A parameter the search does not apply is left out of its links, or
	 * refused under Prefer: handling=strict.
	 */
	for (size_t i = 0; i < http_req_query_count(q); i++) {
		const char *n, *pv;
		char msg[200];
		http_req_query_at(q, i, &n, &v);
		if (!ae_param_known(n)) {
			if (prefer && strstr(prefer, "handling=strict")) {
				snprintf(msg, sizeof(msg),
					 "unknown search parameter '%.64s' for AuditEvent (Prefer: handling=strict)", n);
				send_outcome(q, 400, msg, n);
				goto out;
			}
			continue;
		}
		if (!strcmp(n, "date")) {
			if (!ae_date(v, &since, &until)) {
				send_outcome(q, 400, "date must be a FHIR date with a prefix eq, ge, gt, le, lt, sa or eb",
					     "date");
				goto out;
			}
			continue;
		}
		if ((pv = http_req_query(q, n)) && strcmp(pv, v)) {
			snprintf(msg, sizeof(msg), "%.32s is given twice with different values: an audit record has one", n);
			send_outcome(q, 400, msg, n);
			goto out;
		}
	}
	flt.newest_first = true;
	flt.patient = http_req_query(q, "patient");
	if (flt.patient && str_starts(flt.patient, "Patient/"))
		flt.patient += 8;
	flt.agent = http_req_query(q, "agent");
	flt.client = http_req_query(q, "client");
	flt.type = http_req_query(q, "type");
	flt.request_id = http_req_query(q, "request");
	pg.entity = http_req_query(q, "entity");
	if (pg.entity && !ae_entity_ok(pg.entity)) {
		/* refused here: a malformed value would scan the whole log to match nothing */
		send_outcome(q, 400,
			     "entity must be Type/id: a type of letters and digits, and an id of at most 256 bytes of text without quotes, backslashes or control characters",
			     "entity");
		goto out;
	}
	if ((v = http_req_query(q, "outcome"))) {
		if (str_to_i64(v, 0, 12, &outcome) || outcome % 4) {
			send_outcome(q, 400, "outcome is 0, 4, 8 or 12", "outcome");
			goto out;
		}
		flt.outcome = (int)outcome;
	}
	if (since > INT64_MIN)
		flt.since_ms = since; /* 0, the epoch, bounds nothing: no record is older */
	if (until < INT64_MAX)
		flt.until_ms = until ? until : -1; /* 0 would be no bound: before the epoch, nothing */
	if ((v = http_req_query(q, "_count")) && str_to_i64(v, 1, 500, &count)) {
		send_outcome(q, 400, "_count must be from 1 to 500", "_count");
		goto out;
	}
	if ((v = http_req_query(q, "_page"))) {
		if (!audit_cursor_parse(v, &after)) {
			send_outcome(q, 400, "_page is not a page of this search", "_page");
			goto out;
		}
		flt.after = &after;
	}
	pg.want = (size_t)count;
	pg.entries = json_array();
	pg.base = f->base;
	flt.limit = pg.entity ? 0 : pg.want + 1;
	settle_audit();
	if ((e = audit_reader_open(rest_audit_dir, &rd, &c)) ||
	    ((e = audit_query(rd, &flt, ae_row, &pg, &c)) && e != ERR_CONFLICT)) {
		json_decref(pg.entries);
		if (e == ERR_INVALID)
			send_outcome(q, 400, c.msg, "type");
		else
			send_error(q, &c);
		goto out;
	}
	{
		/*
		 * audit the audit search itself, with its normalized query: the
		 * agent searched for is a person (a username), so its value is
		 * hashed, as are the values of parameters the search ignores
		 */
		struct fhir_audit fa;
		size_t n = http_req_query_count(q);
		struct audit_param *ap = arena_zalloc(http_req_arena(q), (n + 1) * sizeof(*ap));
		struct buf qs = BUF_INIT(AUDIT_TEXT_MAX);
		bool ok;

		memset(&fa, 0, sizeof(fa));
		fa.type = AUDIT_FHIR_SEARCH;
		fa.rtype = "AuditEvent";
		if (flt.patient)
			fa_patient(&fa, flt.patient);
		for (size_t i = 0; i < n; i++) {
			http_req_query_at(q, i, &ap[i].name, &ap[i].value);
			ap[i].hash = !strcmp(ap[i].name, "agent") ||
				     !search_param_known("AuditEvent", ap[i].name);
		}
		fa.query = audit_query_of("AuditEvent", ap, n, flt.patient, &qs);
		ok = audit_fhir(q, &acc, &fa, true);
		buf_release(&qs);
		if (!ok) {
			json_decref(pg.entries);
			goto out;
		}
	}
	/* self: the filters applied, as next repeats them */
	ae_link(q, f, "_count", &self);
	buf_addf(&self, "_count=%lld", (long long)count);
	bundle = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:o}", "resourceType", "Bundle", "type", "searchset",
			   "link", "relation", "self", "url", self.data, "entry", pg.entries);
	if (pg.more) {
		/* the same filters, continuing after the last row */
		struct buf nx = BUF_INIT(8192);
		ae_link(q, f, "_page", &nx);
		buf_addf(&nx, "_page=%lld:%s:%llu", (long long)pg.last.time_ms, pg.last.node,
			 (unsigned long long)pg.last.seq);
		json_array_append_new(json_object_get(bundle, "link"),
				      json_pack("{s:s, s:s}", "relation", "next", "url", nx.data));
		buf_release(&nx);
	}
	json_dump_buf(bundle, &out);
	json_decref(bundle);
	http_resp_buf(q, 200, FHIR_JSON, &out);
out:
	audit_reader_free(rd);
	access_done(&acc);
	buf_release(&out);
	buf_release(&self);
}

struct ae_one {
	const char *base;
	json_t *ev;
	char patient[STORE_PATIENT_ID_SIZE];
};

static enum err ae_one_row(void *arg, const char *node, uint64_t seq, int64_t time_ms,
			   const char *record, size_t len)
{
	struct ae_one *o = arg;
	struct ctx c = CTX_INIT;
	json_t *rec = json_loadb(record, len, 0, NULL);
	const char *p = json_string_value(json_object_get(rec, "patient"));

	(void)node;
	(void)seq;
	(void)time_ms;
	if (p)
		str_copy(o->patient, p, sizeof(o->patient));
	json_decref(rec);
	return audit_event_to_fhir(record, len, o->base, &o->ev, &c) ? ERR_NOTFOUND : ERR_OK;
}

/*
 * GET /fhir/AuditEvent/{id}: one record of the audit log as the AuditEvent
 * its search entry gives (the entry's fullUrl), for the compliance role
 * only.  Audit records have no versions: a vread is answered 404.  The
 * read is itself recorded, as a read of that AuditEvent (and of the
 * patient the record is about).
 */
static void auditevent_read(struct http_req *q, const struct fhir *f, const char *id,
			    const char *vid)
{
	struct access acc;
	struct audit_reader *rd = NULL;
	struct ae_one one;
	struct fhir_audit fa;
	struct ctx c = CTX_INIT;
	struct buf out = BUF_INIT(PAGE_BUF_MAX);
	char msg[200];
	enum err e;

	memset(&acc, 0, sizeof(acc));
	memset(&one, 0, sizeof(one));
	one.base = f->base;
	if (!accept_ok(q) || !guard(q, "AuditEvent", SCOPE_OP_READ, &acc) || !compliance_only(q, &acc))
		goto out;
	if (!rest_audit_dir) {
		send_outcome(q, 404, "this server keeps no audit log", NULL);
		goto out;
	}
	if (vid) {
		send_outcome(q, 404, "AuditEvent resources have no versions", NULL);
		goto out;
	}
	settle_audit();
	if (!(e = audit_reader_open(rest_audit_dir, &rd, &c)))
		e = audit_read_fhir_id(rd, id, ae_one_row, &one, &c);
	if (e == ERR_NOTFOUND) {
		snprintf(msg, sizeof(msg), "AuditEvent/%.100s is not known", id);
		send_outcome(q, 404, msg, NULL);
		goto out;
	}
	if (e) {
		send_error(q, &c);
		goto out;
	}
	memset(&fa, 0, sizeof(fa));
	fa.type = AUDIT_FHIR_READ;
	fa.rtype = "AuditEvent";
	fa.id = id;
	fa_patient(&fa, one.patient);
	if (!audit_fhir(q, &acc, &fa, true))
		goto out;
	json_dump_buf(one.ev, &out);
	http_resp_buf(q, 200, FHIR_JSON, &out);
out:
	json_decref(one.ev);
	audit_reader_free(rd);
	access_done(&acc);
	buf_release(&out);
}

static void handle_metadata(struct http_req *q, void *arg)
{
	struct fhir *f = arg;
	const struct buf *cs = fhir_capability(f);

	if (!accept_ok(q))
		return;
	/* the same for every origin, so a cached copy serves any of them */
	http_resp_header(q, "Access-Control-Allow-Origin", "*");
	http_resp_header(q, "Cache-Control", "public, max-age=300");
	http_resp_bytes(q, 200, FHIR_JSON, cs->data, cs->len);
}

static void handle_preflight(struct http_req *q, void *arg)
{
	const char *origin = http_req_header(q, "Origin");

	(void)arg;
	if (origin && auth_cors_origin_ok(origin)) {
		http_resp_header(q, "Access-Control-Allow-Origin", origin);
		http_resp_header(q, "Vary", "Origin");
		http_resp_header(q, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
		/* the request headers this API reads (conditional reads, request ids, trace context) */
		http_resp_header(q, "Access-Control-Allow-Headers",
				 "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, "
				 "If-Modified-Since, X-Request-Id, traceparent");
		http_resp_header(q, "Access-Control-Max-Age", "600");
	}
	http_resp_empty(q, 204);
}

void fhir_rest_register(struct fhir *f, struct http_router *r, struct oauth *o)
{
	static const char *const preflight[] = {
		"/fhir", "/fhir/metadata", "/fhir/_history", "/fhir/{type}", "/fhir/{type}/_search",
		"/fhir/{type}/_history", "/fhir/{type}/{id}", "/fhir/{type}/{id}/_history",
		"/fhir/{type}/{id}/_history/{vid}", "/fhir/Patient/{id}/$everything",
		"/fhir/Patient/{id}/{ctype}", "/fhir/Patient/{id}/{ctype}/_search", NULL};

	rest_auth = o;
	rest_store = f->store;
	http_route(r, HTTP_GET, "/fhir/AuditEvent", HTTP_BODY_NONE, handle_auditevent, f);
	for (const char *const *p = preflight; *p; p++)
		http_route(r, HTTP_OPTIONS, *p, HTTP_BODY_NONE, handle_preflight, f);
	http_router_on_error(r, "/fhir", render_http_error);
	http_route(r, HTTP_GET, "/fhir/metadata", HTTP_BODY_NONE, handle_metadata, f);
	http_route(r, HTTP_POST, "/fhir", HTTP_BODY_FHIR, handle_bundle, f);
	http_route(r, HTTP_GET, "/fhir/_history", HTTP_BODY_NONE, handle_history, f);
	http_route(r, HTTP_POST, "/fhir/{type}", HTTP_BODY_FHIR, handle_create, f);
	http_route(r, HTTP_GET, "/fhir/{type}", HTTP_BODY_NONE, handle_search, f);
	http_route(r, HTTP_POST, "/fhir/{type}/_search", HTTP_BODY_FORM, handle_search_post, f);
	http_route(r, HTTP_GET, "/fhir/Patient/{id}/$everything", HTTP_BODY_NONE, handle_everything, f);
	http_route(r, HTTP_GET, "/fhir/Patient/{id}/{ctype}", HTTP_BODY_NONE, handle_compartment, f);
	http_route(r, HTTP_POST, "/fhir/Patient/{id}/{ctype}/_search", HTTP_BODY_FORM,
		   handle_compartment_post, f);
	http_route(r, HTTP_GET, "/fhir/{type}/_history", HTTP_BODY_NONE, handle_history, f);
	http_route(r, HTTP_GET, "/fhir/{type}/{id}", HTTP_BODY_NONE, handle_read, f);
	http_route(r, HTTP_PUT, "/fhir/{type}", HTTP_BODY_FHIR, handle_cond_update, f);
	http_route(r, HTTP_DELETE, "/fhir/{type}", HTTP_BODY_NONE, handle_cond_delete, f);
	http_route(r, HTTP_PUT, "/fhir/{type}/{id}", HTTP_BODY_FHIR, handle_update, f);
	http_route(r, HTTP_DELETE, "/fhir/{type}/{id}", HTTP_BODY_NONE, handle_delete, f);
	http_route(r, HTTP_GET, "/fhir/{type}/{id}/_history", HTTP_BODY_NONE, handle_history, f);
	http_route(r, HTTP_GET, "/fhir/{type}/{id}/_history/{vid}", HTTP_BODY_NONE, handle_read, f);
}
