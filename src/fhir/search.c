/*
 * search.c - runs a parsed FHIR search against the store and writes the
 * searchset Bundle: matches, _include/_revinclude resources, an outcome
 * entry for ignored parameters, and self/next/previous links built from
 * keyset cursors.  Matches are copied as stored bytes unless _summary or
 * _elements asks for a subset, which re-serializes that resource only.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"
#include "fhir/search_int.h"

#define BUNDLE_MAX ((size_t)256 << 20)
#define INCLUDE_MAX 1000
/* Room reserved for a page's entries: ENTRY_GUESS bytes each, for at most ENTRIES_GUESS_MAX. */
#define ENTRY_GUESS 2048
#define ENTRIES_GUESS_MAX 64

/*
 * The entries of one kind (matches or included resources), written as
 * they arrive: each hit's whole Bundle entry goes into 'entries' at once
 * (its stored bytes copied as they are, never parsed unless _summary or
 * _elements asks for a subset), and a small record keeps what the links
 * and the includes need.  'seen' holds the rids taken so far (shared by the
 * matches and the includes, so that a resource appears once).
 */
struct hit_ref {
	int64_t rid;
	size_t off, len;          /* the entry's bytes in entries, without a comma */
	char type[64];
	char id[72];
};

struct rid_set {
	int64_t *slot;            /* 0: empty (rids start at 1) */
	size_t cap, n;
};

struct collect {
	struct fhir *f;
	const struct search_parsed *p;
	const char *mode;         /* search.mode of these entries */
	struct buf entries;
	struct buf tmp;           /* a subsetted resource */
	struct hit_ref *hits;
	size_t n, cap;
	struct rid_set *seen;
	bool subset;              /* apply _summary / _elements (matches only) */
	const char *watch_id;     /* note whether Patient/watch_id is among the hits */
	bool watch_seen;
	struct store_cursor first_pos, last_pos;
};

static void rid_set_release(struct rid_set *s)
{
	free(s->slot);
	s->slot = NULL;
	s->cap = s->n = 0;
}

static size_t rid_hash(int64_t rid, size_t cap)
{
	return (size_t)(((uint64_t)rid * 0x9E3779B97F4A7C15u) >> 17) & (cap - 1);
}

/* Add 'rid' to the set; false when it was there already. */
static bool rid_set_add(struct rid_set *s, int64_t rid)
{
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		struct rid_set grown = {NULL, s->cap ? s->cap * 2 : 64, 0};

		grown.slot = xcalloc(grown.cap, sizeof(*grown.slot));
		for (size_t k = 0; k < s->cap; k++)
			if (s->slot[k])
				rid_set_add(&grown, s->slot[k]);
		free(s->slot);
		*s = grown;
	}
	for (i = rid_hash(rid, s->cap); s->slot[i]; i = (i + 1) & (s->cap - 1))
		if (s->slot[i] == rid)
			return false;
	s->slot[i] = rid;
	s->n++;
	return true;
}

static void subset(const struct search_parsed *p, struct buf *json);

/* Is a subset of each resource asked for (_summary other than false/count, _elements)? */
static bool subsetting(const struct search_parsed *p)
{
	return p->nelements || (p->summary != SUMMARY_NONE && p->summary != SUMMARY_COUNT);
}

static void collect_init(struct collect *k, struct fhir *f, const struct search_parsed *p,
			 const char *mode, struct rid_set *seen)
{
	memset(k, 0, sizeof(*k));
	k->f = f;
	k->p = p;
	k->mode = mode;
	k->seen = seen;
	buf_init(&k->entries, BUNDLE_MAX);
	buf_init(&k->tmp, BUNDLE_MAX);
}

static void collect_release(struct collect *k)
{
	buf_release(&k->entries);
	buf_release(&k->tmp);
	free(k->hits);
}

/*
 * Copy a cursor's values: its first 'nsort' keys (the others are unused),
 * text only up to its NUL (a key's text is 256 bytes; this runs per hit).
 */
static void cursor_copy(struct store_cursor *dst, const struct store_cursor *src, size_t nsort)
{
	dst->set = src->set;
	dst->snapshot_rid = src->snapshot_rid;
	dst->rid = src->rid;
	for (size_t i = 0; i < STORE_SORT_MAX; i++) {
		dst->key[i].null = src->key[i].null;
		dst->key[i].i = src->key[i].i;
		dst->key[i].r = src->key[i].r;
		if (i < nsort)
			str_copy(dst->key[i].s, src->key[i].s, sizeof(dst->key[i].s));
		else
			dst->key[i].s[0] = '\0';
	}
}

/* store_hit_fn: write the hit's entry, once per resource. */
static int collect_hit(void *arg, const struct store_hit *h)
{
	struct collect *k = arg;
	const struct store_resource *r = h->res;
	struct buf *b = &k->entries;
	const struct buf *json = &r->json;
	struct hit_ref *hr;

	if (!rid_set_add(k->seen, h->rid))
		return 0;
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 64;
		k->hits = xrealloc(k->hits, k->cap * sizeof(*k->hits));
	}
	if (k->subset) {
		buf_reset(&k->tmp);
		buf_add(&k->tmp, r->json.data, r->json.len);
		subset(k->p, &k->tmp);
		json = &k->tmp;
	}
	hr = &k->hits[k->n++];
	hr->rid = h->rid;
	str_copy(hr->type, r->type, sizeof(hr->type));
	str_copy(hr->id, r->id, sizeof(hr->id));
	hr->off = b->len;
	buf_grow(b, json->len + 256);
	buf_adds(b, "{\"fullUrl\":\"");
	buf_adds(b, k->f->base);
	buf_addch(b, '/');
	buf_adds(b, r->type);
	buf_addch(b, '/');
	buf_adds(b, r->id);
	buf_adds(b, "\",\"resource\":");
	buf_add(b, json->data, json->len);
	buf_adds(b, ",\"search\":{\"mode\":\"");
	buf_adds(b, k->mode);
	buf_adds(b, "\"}}");
	hr->len = b->len - hr->off;
	if (k->watch_id && !k->watch_seen && !strcmp(r->type, "Patient") && !strcmp(r->id, k->watch_id))
		k->watch_seen = true;
	if (k->n == 1)
		cursor_copy(&k->first_pos, &h->pos, k->p->q.nsort);
	cursor_copy(&k->last_pos, &h->pos, k->p->q.nsort);
	return 0;
}

/* ---- subsetting (_summary, _elements) ---- */

struct summary_def {
	const char *type;
	const char *const *elements;
};

#define E(...) (const char *const[]){__VA_ARGS__, NULL}
static const struct summary_def summaries[] = {
	{"Patient", E("identifier", "active", "name", "telecom", "gender", "birthDate", "deceased[x]",
		      "address", "managingOrganization", "link")},
	{"Observation", E("identifier", "basedOn", "partOf", "status", "category", "code", "subject",
			  "focus", "encounter", "effective[x]", "issued", "performer", "value[x]",
			  "hasMember", "derivedFrom", "component")},
	{"Condition", E("identifier", "clinicalStatus", "verificationStatus", "category", "severity",
			"code", "bodySite", "subject", "encounter", "onset[x]", "abatement[x]",
			"recordedDate")},
	{"Encounter", E("identifier", "status", "class", "type", "serviceType", "priority", "subject",
			"episodeOfCare", "basedOn", "participant", "appointment", "period", "length",
			"reasonCode", "reasonReference", "diagnosis", "account", "location",
			"serviceProvider", "partOf")},
	{"MedicationRequest", E("identifier", "status", "statusReason", "intent", "category",
				"priority", "doNotPerform", "reported[x]", "medication[x]", "subject",
				"encounter", "authoredOn", "requester", "reasonCode", "reasonReference",
				"basedOn", "groupIdentifier", "dosageInstruction")},
	{"DiagnosticReport", E("identifier", "basedOn", "status", "category", "code", "subject",
			       "encounter", "effective[x]", "issued", "performer", "resultsInterpreter",
			       "specimen", "result")},
	{"Appointment", E("identifier", "status", "cancelationReason", "serviceCategory",
			  "serviceType", "specialty", "appointmentType", "priority", "description",
			  "start", "end", "basedOn", "participant")},
	{"DocumentReference", E("masterIdentifier", "identifier", "status", "docStatus", "type",
				"category", "subject", "date", "author", "authenticator", "custodian",
				"relatesTo", "securityLabel", "content", "context")},
	{"Practitioner", E("identifier", "active", "name", "telecom", "address", "gender",
			   "birthDate")},
	{"Organization", E("identifier", "active", "type", "name", "alias", "address", "partOf",
			   "endpoint")},
	{"AllergyIntolerance", E("identifier", "clinicalStatus", "verificationStatus", "type",
				 "category", "criticality", "code", "patient", "asserter")},
	{"AuditEvent", E("type", "subtype", "action", "recorded", "outcome", "outcomeDesc",
			 "purposeOfEvent")},
	{"Binary", E("contentType", "securityContext")},
	{"CarePlan", E("identifier", "instantiatesCanonical", "instantiatesUri", "basedOn",
		       "replaces", "partOf", "status", "intent", "category", "title", "description",
		       "subject", "encounter", "period", "created", "author", "addresses")},
	{"CareTeam", E("identifier", "status", "category", "name", "subject", "encounter", "period",
		       "managingOrganization")},
	{"Communication", E("identifier", "instantiatesCanonical", "instantiatesUri", "basedOn",
			    "partOf", "status", "statusReason", "priority", "subject", "encounter",
			    "reasonCode", "reasonReference")},
	{"Consent", E("identifier", "status", "scope", "category", "patient", "dateTime",
		      "performer", "organization", "source[x]", "policyRule", "verification",
		      "provision")},
	{"Device", E("udiCarrier", "status", "safety")},
	{"Goal", E("lifecycleStatus", "achievementStatus", "category", "priority", "description",
		   "subject", "start[x]", "statusDate", "expressedBy")},
	{"Immunization", E("status", "vaccineCode", "patient", "occurrence[x]", "primarySource",
			   "performer", "note", "isSubpotent")},
	{"Location", E("identifier", "status", "operationalStatus", "name", "description", "mode",
		       "type", "physicalType", "managingOrganization")},
	{"Medication", E("identifier", "code", "status", "manufacturer", "amount")},
	{"PractitionerRole", E("identifier", "active", "period", "practitioner", "organization",
			       "code", "specialty", "location", "telecom")},
	{"Procedure", E("identifier", "instantiatesCanonical", "instantiatesUri", "basedOn",
			"partOf", "status", "statusReason", "category", "code", "subject",
			"encounter", "performed[x]", "recorder", "asserter", "performer",
			"location", "reasonCode", "reasonReference", "bodySite", "outcome")},
	{"Provenance", E("target", "recorded")},
	{"Questionnaire", E("url", "identifier", "version", "name", "title", "status", "experimental",
			    "subjectType", "date", "publisher", "contact", "useContext",
			    "jurisdiction", "effectivePeriod", "code")},
	{"QuestionnaireResponse", E("identifier", "basedOn", "partOf", "questionnaire", "status",
				    "subject", "encounter", "authored", "author", "source")},
	{"RelatedPerson", E("identifier", "active", "patient", "relationship", "name", "telecom",
			    "gender", "birthDate", "address")},
	{"ServiceRequest", E("identifier", "instantiatesCanonical", "instantiatesUri", "basedOn",
			     "replaces", "requisition", "status", "intent", "category", "priority",
			     "doNotPerform", "code", "orderDetail", "quantity[x]", "subject",
			     "encounter", "occurrence[x]", "asNeeded[x]", "authoredOn", "requester",
			     "performerType", "performer", "locationCode", "locationReference",
			     "reasonCode", "reasonReference", "specimen", "bodySite",
			     "patientInstruction")},
	{"Task", E("instantiatesCanonical", "instantiatesUri", "basedOn", "groupIdentifier",
		   "partOf", "status", "statusReason", "businessStatus", "intent", "code",
		   "description", "focus", "for", "encounter", "executionPeriod", "lastModified",
		   "requester", "owner", "location")},
};

/*
 * The top-level elements R4 makes mandatory (min 1) in each supported type
 * that has any: kept under _elements and _summary=text, which R4 asks to
 * return them whether requested or not (search.html#elements, #summary).
 */
static const struct summary_def mandatory[] = {
	{"AllergyIntolerance", E("patient")},
	{"Appointment", E("status", "participant")},
	{"AuditEvent", E("type", "recorded", "agent", "source")},
	{"Binary", E("contentType")},
	{"CarePlan", E("status", "intent", "subject")},
	{"Communication", E("status")},
	{"Condition", E("subject")},
	{"Consent", E("status", "scope", "category")},
	{"DiagnosticReport", E("status", "code")},
	{"DocumentReference", E("status", "content")},
	{"Encounter", E("status", "class")},
	{"Goal", E("lifecycleStatus", "description", "subject")},
	{"Immunization", E("status", "vaccineCode", "patient", "occurrence[x]")},
	{"MedicationRequest", E("status", "intent", "medication[x]", "subject")},
	{"Observation", E("status", "code")},
	{"Procedure", E("status", "subject")},
	{"Provenance", E("target", "recorded", "agent")},
	{"Questionnaire", E("status")},
	{"QuestionnaireResponse", E("status")},
	{"RelatedPerson", E("patient")},
	{"ServiceRequest", E("status", "intent", "subject")},
	{"Task", E("status", "intent")},
};
#undef E

/* The elements of 'type' in 'defs' (n entries), or NULL. */
static const char *const *elements_of(const struct summary_def *defs, size_t n, const char *type)
{
	for (size_t i = 0; type && i < n; i++)
		if (!strcmp(defs[i].type, type))
			return defs[i].elements;
	return NULL;
}

static bool element_listed(const char *key, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n && list[i]; i++) {
		size_t l = strlen(list[i]);
		if (l > 3 && !strcmp(list[i] + l - 3, "[x]")) {
			if (!strncmp(key, list[i], l - 3) && key[l - 3] >= 'A' && key[l - 3] <= 'Z')
				return true;
		} else if (!strcmp(key, list[i])) {
			return true;
		}
	}
	return false;
}

static void mark_subsetted(json_t *res)
{
	json_t *meta = json_object_get(res, "meta"), *tags;

	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(res, "meta", meta);
	}
	tags = json_object_get(meta, "tag");
	if (!json_is_array(tags)) {
		tags = json_array();
		json_object_set_new(meta, "tag", tags);
	}
	json_array_append_new(tags, json_pack("{s:s,s:s,s:s}", "system",
					      "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
					      "code", "SUBSETTED", "display", "Resource encoded in summary mode"));
}

/* Rewrite hc->json per _summary/_elements (no change when neither applies). */
static void subset(const struct search_parsed *p, struct buf *json)
{
	json_t *res, *out;
	const char *key;
	json_t *val;
	const char *const *list = NULL, *const *must;
	size_t nlist = (size_t)-1;
	const char *type;

	if (p->nelements == 0 && (p->summary == SUMMARY_NONE || p->summary == SUMMARY_COUNT))
		return;
	res = json_loadb(json->data, json->len, 0, NULL);
	if (!res)
		return;
	out = json_object();
	type = json_get_str(res, "resourceType");
	must = elements_of(mandatory, sizeof(mandatory) / sizeof(mandatory[0]), type);
	if (p->nelements) {
		list = p->elements;
		nlist = p->nelements;
	} else if (p->summary == SUMMARY_TRUE) {
		list = elements_of(summaries, sizeof(summaries) / sizeof(summaries[0]), type);
	}
	json_object_foreach(res, key, val) {
		bool keep;

		if (!strcmp(key, "resourceType") || !strcmp(key, "id") || !strcmp(key, "meta"))
			keep = true;
		else if ((p->nelements || p->summary == SUMMARY_TEXT) && must &&
			 element_listed(key, must, (size_t)-1))
			keep = true;
		else if (p->summary == SUMMARY_TEXT && !p->nelements)
			keep = !strcmp(key, "text");
		else if (p->summary == SUMMARY_DATA && !p->nelements)
			keep = strcmp(key, "text") != 0;
		else if (list)
			keep = element_listed(key, list, nlist);
		else /* _summary=true on a type without a table (none yet): drop narrative and extensions */
			keep = strcmp(key, "text") && strcmp(key, "contained") && strcmp(key, "extension") &&
			       strcmp(key, "modifierExtension");
		if (keep)
			json_object_set(out, key, val);
	}
	if (json_object_get(out, "meta"))
		json_object_set_new(out, "meta", json_deep_copy(json_object_get(out, "meta")));
	mark_subsetted(out);
	buf_reset(json);
	json_dump_buf(out, json);
	json_decref(out);
	json_decref(res);
}

/* ---- includes ---- */

/* The types that can be in a patient's record (fhir_type_in_record()), listed once. */
static const char *in_record[64];
static size_t n_in_record;
static pthread_once_t in_record_once = PTHREAD_ONCE_INIT;

static void list_in_record(void)
{
	for (const struct fhir_type *t = fhir_types; t->name && n_in_record < 64; t++)
		if (fhir_type_in_record(t->name))
			in_record[n_in_record++] = t->name;
}

static enum err run_includes(struct fhir *f, const struct search_parsed *p, const char *type,
			     const char *patient, struct collect *matches, struct collect *incs,
			     struct ctx *c)
{
	struct store_confine cf = {patient, in_record, 0};
	size_t pass, i;
	enum err e;

	pthread_once(&in_record_once, list_in_record);
	cf.ntypes = n_in_record;

	for (pass = 0; pass < 2; pass++) {
		/* pass 0: from the matches; pass 1 (:iterate): from what pass 0 included */
		struct collect *from = pass == 0 ? matches : incs;
		size_t from_n = from->n;

		for (i = 0; i < p->ninc; i++) {
			const struct search_include *inc = &p->inc[i];
			int64_t *rids;
			const char **ids;
			size_t n = 0;

			if (pass == 1 && (!inc->iterate || inc->reverse))
				continue;
			rids = xcalloc(from_n ? from_n : 1, sizeof(*rids));
			ids = xcalloc(from_n ? from_n : 1, sizeof(*ids));
			for (size_t k = 0; k < from_n; k++) {
				const struct hit_ref *h = &from->hits[k];
				if (!inc->reverse && inc->src_type && strcmp(inc->src_type, h->type))
					continue;
				if (inc->reverse && (!type || strcmp(h->type, type)))
					continue;
				rids[n] = h->rid;
				ids[n] = h->id;
				n++;
			}
			e = ERR_OK;
			if (n && !inc->reverse)
				e = store_include(f->store, rids, n, inc->src_type, inc->param,
						  inc->target_type, &cf, collect_hit, incs, c);
			else if (n && inc->reverse)
				e = store_revinclude(f->store, type, ids, n,
						     inc->src_type, inc->param, INCLUDE_MAX + 1, &cf,
						     collect_hit, incs, c);
			free(rids);
			free(ids);
			if (e)
				return e;
			if (incs->n > INCLUDE_MAX)
				return ctx_errorf(c, ERR_TOOBIG,
						  "_include/_revinclude would add more than %d resources; use a smaller _count",
						  INCLUDE_MAX);
		}
	}
	return ERR_OK;
}

/* ---- the Bundle ---- */

static void add_link(struct buf *b, struct fhir *f, const struct fhir_search_req *r,
		     const struct search_parsed *p, const char *rel, const struct store_cursor *cur,
		     bool backward, bool *first)
{
	buf_adds(b, *first ? "{\"relation\":\"" : ",{\"relation\":\"");
	*first = false;
	buf_adds(b, rel);
	buf_adds(b, "\",\"url\":\"");
	buf_adds(b, f->base);
	if (r->everything) {
		buf_adds(b, "/Patient/");
		buf_adds(b, r->patient);
		buf_adds(b, "/$everything?");
	} else if (r->patient) {
		buf_adds(b, "/Patient/");
		buf_adds(b, r->patient);
		buf_addch(b, '/');
		buf_adds(b, r->type);
		buf_addch(b, '?');
	} else {
		buf_addch(b, '/');
		buf_adds(b, r->type);
		buf_addch(b, '?');
	}
	if (p->applied.len) {
		/* applied parameters are already percent-encoded: only JSON-escape */
		buf_add_json_str(b, p->applied.data, p->applied.len);
		buf_addch(b, '&');
	}
	buf_adds(b, "_count=");
	buf_adds(b, p->count_text);
	if (cur) {
		buf_adds(b, "&_page=");
		search_cursor_encode(cur, backward, b);
	}
	buf_adds(b, "\"}");
}

/* Append the entries of 'k' to 'b' (in reverse order when 'reverse'). */
static void add_entries(struct buf *b, const struct collect *k, bool reverse, bool *first)
{
	for (size_t i = 0; i < k->n; i++) {
		const struct hit_ref *h = &k->hits[reverse ? k->n - 1 - i : i];

		if (!*first)
			buf_addch(b, ',');
		*first = false;
		buf_add(b, k->entries.data + h->off, h->len);
	}
}

/*
 * Is Patient/id current and not deleted?  ERR_NOTFOUND or ERR_GONE
 * ("Patient/id is not known") otherwise, or the store's failure.  Asked
 * only when the $everything page does not show the patient itself (the
 * patient is in its own compartment, so a first page usually does): one
 * statement less per request.
 */
static enum err everything_patient(struct fhir *f, const char *id, struct ctx *c)
{
	int64_t v = 0;
	bool del = false;
	enum err e = store_current_version(f->store, "Patient", id, &v, &del, c);

	if (e)
		return e;
	if (v == 0 || del)
		return ctx_errorf(c, v ? ERR_GONE : ERR_NOTFOUND, "Patient/%s is not known", id);
	return ERR_OK;
}

enum err fhir_search(struct fhir *f, const struct fhir_search_req *r, struct buf *out,
		     struct ctx *c)
{
	struct arena a = ARENA_INIT;
	struct search_parsed p;
	struct collect matches, incs;
	struct rid_set seen = {NULL, 0, 0};
	struct fhir_search_req req = *r;
	struct fhir_kv *rest = NULL;
	const char *types[64];
	size_t ntypes = 0;
	int64_t since = 0, total = -1;
	const char *since_text = NULL;
	bool more = false, first;
	char now[32];
	enum err e;

	search_parsed_init(&p);
	collect_init(&matches, f, &p, "match", &seen);
	collect_init(&incs, f, &p, "include", &seen);
	if (r->type && !fhir_type_find(r->type)) {
		e = ctx_errorf(c, ERR_NOTFOUND, "resource type '%s' is not supported by this server", r->type);
		goto out;
	}
	if (r->patient && !fhir_id_valid(r->patient)) {
		e = ctx_errorf(c, ERR_NOTFOUND, "Patient/%s is not known", r->patient);
		goto out;
	}
	if (r->everything) {
		size_t n = 0;

		/* whether the patient exists is asked at the end (everything_patient()) */
		matches.watch_id = r->patient;
		/* take _since and _type here; the rest goes to the parser */
		rest = arena_zalloc(&a, sizeof(*rest) * (r->nparams + 1));
		for (size_t i = 0; i < r->nparams; i++) {
			const struct fhir_kv *kv = &r->params[i];
			int64_t lo, hi;

			if (!strcmp(kv->name, "_since")) {
				if (!kv->value || fhir_date_parse(kv->value, &lo, &hi)) {
					e = ctx_errorx(c, ERR_INVALID, "_since", "parameter '_since': '%s' is not a FHIR instant",
						       kv->value ? kv->value : "");
					goto out;
				}
				since = lo;
				since_text = kv->value;
			} else if (!strcmp(kv->name, "_type")) {
				const char *tv = kv->value ? kv->value : "";
				while (*tv) {
					size_t l = strcspn(tv, ",");
					char *t = arena_strndup(&a, tv, l);
					if (!fhir_type_find(t)) {
						e = ctx_errorx(c, ERR_INVALID, "_type",
							       "parameter '_type': unknown resource type '%s'", t);
						goto out;
					}
					if (ntypes < sizeof(types) / sizeof(types[0]))
						types[ntypes++] = t;
					tv += l;
					if (*tv == ',')
						tv++;
				}
			} else {
				rest[n++] = *kv;
			}
		}
		req.params = rest;
		req.nparams = n;
		req.type = NULL;
	}
	if ((e = fhir_search_parse(f, &a, &req, &p, c)))
		goto out;
	matches.subset = subsetting(&p);
	/* room for a page of typical entries at once (growing from 64 bytes copies them ~10 times) */
	buf_grow(&matches.entries, (size_t)(p.q.limit < ENTRIES_GUESS_MAX ? p.q.limit : ENTRIES_GUESS_MAX) *
					   ENTRY_GUESS);
	if (r->everything) {
		p.q.types = ntypes ? types : NULL;
		p.q.ntypes = ntypes;
		p.q.since = since;
		if (since_text)
			search_applied_add(&p, "_since", since_text);
		for (size_t i = 0; i < ntypes; i++)
			buf_addf(&p.applied, "%s%s%s", p.applied.len && i == 0 ? "&" : "",
				 i == 0 ? "_type=" : ",", types[i]);
	}
	if (p.has_cursor && p.q.total != STORE_TOTAL_NONE)
		p.q.total = STORE_TOTAL_NONE; /* total is given on the first page */
	if ((e = store_search(f->store, &p.q, collect_hit, &matches, &more, &total, c)))
		goto out;
	if (total < 0 && !p.total_given && !p.has_cursor && !more)
		total = (int64_t)matches.n; /* the first page holds every match: the total is free */
	if (p.ninc && (e = run_includes(f, &p, r->type, r->include_patient, &matches, &incs, c)))
		goto out;

	/* p.q.backward: rows came nearest-first; they are written in order */
	buf_grow(out, matches.entries.len + incs.entries.len + matches.n + incs.n + 4096);
	clock_format_instant(clock_now_ms(), now);
	buf_adds(out, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"timestamp\":\"");
	buf_adds(out, now);
	buf_addch(out, '"');
	if (total >= 0)
		buf_addf(out, ",\"total\":%lld", (long long)total);
	buf_adds(out, ",\"link\":[");
	first = true;
	add_link(out, f, r, &p, "self", p.has_cursor ? &p.q.cursor : NULL, p.q.backward, &first);
	if (matches.n) {
		bool has_next = p.q.backward ? true : more;
		bool has_prev = p.q.backward ? more : p.has_cursor;
		/* the page's last and first entries, in the Bundle's order */
		const struct store_cursor *last = p.q.backward ? &matches.first_pos : &matches.last_pos;
		const struct store_cursor *head = p.q.backward ? &matches.last_pos : &matches.first_pos;

		if (has_next)
			add_link(out, f, r, &p, "next", last, false, &first);
		if (has_prev)
			add_link(out, f, r, &p, "previous", head, true, &first);
	} else if (p.has_cursor && p.q.backward) {
		add_link(out, f, r, &p, "next", &p.q.cursor, false, &first);
	}
	buf_adds(out, "],\"entry\":[");
	first = true;
	add_entries(out, &matches, p.q.backward, &first);
	add_entries(out, &incs, false, &first);
	if (p.ignored.len) {
		struct buf oo = BUF_INIT(64 << 10), msg = BUF_INIT(32 << 10);
		buf_addf(&msg, "ignored unknown search parameter(s): %s", p.ignored.data);
		fhir_outcome(&oo, "warning", "not-supported", msg.data, NULL);
		buf_addf(out, "%s{\"resource\":", first ? "" : ",");
		buf_add(out, oo.data, oo.len);
		buf_adds(out, ",\"search\":{\"mode\":\"outcome\"}}");
		buf_release(&oo);
		buf_release(&msg);
	}
	buf_adds(out, "]}");
	if (out->err || matches.entries.err || incs.entries.err)
		e = ctx_errorf(c, ERR_TOOBIG, "search result page is too large; use a smaller _count");
out:
	if (r->everything && r->patient && fhir_id_valid(r->patient) && (e || !matches.watch_seen)) {
		/* an unknown or deleted patient fails the request, whatever else it holds */
		struct ctx pc = CTX_INIT;
		enum err pe = everything_patient(f, r->patient, &pc);

		if (pe) {
			*c = pc;
			e = pe;
			buf_reset(out);
		}
	}
	collect_release(&matches);
	collect_release(&incs);
	rid_set_release(&seen);
	search_parsed_release(&p);
	arena_release(&a);
	return e;
}
