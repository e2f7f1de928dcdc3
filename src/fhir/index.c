/*
 * index.c - search index rows, patient compartment and derived data
 * categories of one resource.
 *
 * For each search parameter of the type (and the common ones) the path is
 * walked through the parsed resource and every value found becomes rows:
 *
 *   token      Coding: a = system, b = code, c = display.
 *              CodeableConcept: one row per coding as above, plus a row
 *                (a = b = NULL, c = text) when its text differs from every
 *                display, so that :text finds it.
 *              Identifier: a = system, b = value, c = type.text; plus one
 *                row per type coding under "<code>:of-type" with a = type
 *                system, b = type code, c = value (model.h).
 *              ContactPoint (telecom): a = ContactPoint.system ("phone"),
 *                b = value.  phone/email filter on the system by path.
 *              code, string, id primitives: a = NULL, b = value.
 *              boolean: b = "true" or "false".
 *   string     string primitive: a = normalized (fhir_str_normalize, at most
 *                STRING_NORM_MAX bytes), b = exact.  HumanName and Address
 *                give one row per part (family, each given, prefix, suffix,
 *                text; each line, city, district, state, postalCode,
 *                country, text).
 *   date       date/dateTime/instant: its precision range lo..hi (inclusive
 *                ms); Period: start.lo .. end.hi with open ends INT64_MIN /
 *                INT64_MAX; Timing: one row per event.
 *   reference  Reference.reference or a canonical string; c = as written.
 *                "Type/id[/_history/v]": a = Type, b = id.  Absolute URL:
 *                a/b from its trailing Type/id when it has one.  "#id",
 *                "urn:...", conditional "Type?query": a = b = NULL.  When a
 *                parameter restricts targets, a Reference whose type is not
 *                listed (or cannot be known) is not indexed; a canonical
 *                string of unknown type is (the element fixes its type).
 *   quantity   num = value, nlo..nhi its implicit precision range (5.4 ->
 *                5.35..5.45), a = system, b = code (else unit).  The range
 *                comes from the shortest decimal form of the parsed double,
 *                so "1.0" counts as "1" (jansson keeps no source text).
 *   number     num, nlo..nhi as for quantity.
 *   uri        a = the uri.
 *
 * Missing elements and JSON nulls are skipped.  A present but malformed
 * element fails the whole call with ERR_UNPROCESSABLE naming the element
 * ("Observation.effectiveDateTime") and saying what is wrong.
 *
 * Everything returned is allocated from the caller's arena; nothing else
 * is allocated.  Reentrant and thread-safe (no shared state).
 */
#include "fhir/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/str.h"

#define MAX_STEPS 8
#define STEP_NAME_MAX 64
#define STRING_NORM_MAX 1024
#define PATH_MAX_LEN 160

struct step {
	char name[STEP_NAME_MAX];
	bool choice;                /* name[x] */
	char fkey[32], fval[32];    /* .where(fkey='fval'), empty when none */
};

struct walker {
	struct arena *a;
	const char *type;
	const struct fhir_param *p;
	const char *of_type;        /* "<code>:of-type", made on first use */
	struct fhir_index *out;
	struct ctx *c;
	/* dedup set: row index + 1, open addressing */
	uint32_t *set;
	size_t set_cap;
	/* where we are, for messages: "Observation.code.coding[0]" */
	char path[PATH_MAX_LEN];
	size_t plen;
};

/* ---- rows ---- */

static uint64_t hash_str(uint64_t h, const char *s)
{
	if (!s)
		return (h ^ 0xff) * 1099511628211u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return (h ^ 0xfe) * 1099511628211u;
}

static uint64_t hash_row(const struct store_ix_row *r)
{
	uint64_t h = 14695981039346656037u;
	uint64_t bits;

	h = (h ^ (uint64_t)r->kind) * 1099511628211u;
	h = hash_str(h, r->param);
	h = hash_str(h, r->a);
	h = hash_str(h, r->b);
	h = hash_str(h, r->c);
	h = (h ^ (uint64_t)r->lo) * 1099511628211u;
	h = (h ^ (uint64_t)r->hi) * 1099511628211u;
	memcpy(&bits, &r->num, sizeof(bits));
	h = (h ^ bits) * 1099511628211u;
	return h;
}

static bool str_same(const char *x, const char *y)
{
	return x == y || (x && y && !strcmp(x, y));
}

static bool row_same(const struct store_ix_row *x, const struct store_ix_row *y)
{
	return x->kind == y->kind && str_same(x->param, y->param) && str_same(x->a, y->a) &&
	       str_same(x->b, y->b) && str_same(x->c, y->c) && x->lo == y->lo && x->hi == y->hi &&
	       x->num == y->num && x->nlo == y->nlo && x->nhi == y->nhi;
}

/* Insert row index i into the dedup set (which has room). */
static void set_put(struct walker *w, size_t i)
{
	size_t mask = w->set_cap - 1, j = hash_row(&w->out->rows[i]) & mask;

	while (w->set[j])
		j = (j + 1) & mask;
	w->set[j] = (uint32_t)(i + 1);
}

/* Is a row equal to 'r' already present? */
static bool set_has(const struct walker *w, const struct store_ix_row *r)
{
	size_t mask = w->set_cap - 1, j = hash_row(r) & mask;

	for (; w->set[j]; j = (j + 1) & mask)
		if (row_same(&w->out->rows[w->set[j] - 1], r))
			return true;
	return false;
}

/* Append 'r' unless an equal row exists.  Strings must already be arena-owned. */
static void add_row(struct walker *w, const struct store_ix_row *r)
{
	struct fhir_index *o = w->out;

	if (w->set_cap && set_has(w, r))
		return;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 32;
		struct store_ix_row *rows = arena_alloc(w->a, cap * sizeof(*rows));
		if (o->n)
			memcpy(rows, o->rows, o->n * sizeof(*rows));
		o->rows = rows;
		o->cap = cap;
	}
	o->rows[o->n++] = *r;
	if ((o->n + 1) * 2 > w->set_cap) {
		size_t cap = w->set_cap ? w->set_cap * 2 : 64;
		while ((o->n + 1) * 2 > cap)
			cap *= 2;
		w->set = arena_zalloc(w->a, cap * sizeof(*w->set));
		w->set_cap = cap;
		for (size_t i = 0; i < o->n; i++)
			set_put(w, i);
	} else {
		set_put(w, o->n - 1);
	}
}

static const char *dup(struct walker *w, const char *s)
{
	return s ? arena_strdup(w->a, s) : NULL;
}

static void add_token(struct walker *w, const char *param, const char *a, const char *b,
		      const char *c)
{
	struct store_ix_row r = {.kind = STORE_IX_TOKEN, .param = param};

	r.a = dup(w, a);
	r.b = dup(w, b);
	if (c && !str_ends(param, FHIR_OF_TYPE_SUFFIX)) {
		/* the text is searched by :text, case- and accent-insensitively */
		struct buf nb = BUF_INIT(1 << 16);
		fhir_str_normalize(c, &nb);
		r.c = nb.err ? dup(w, c) : arena_strndup(w->a, nb.data, nb.len);
		buf_release(&nb);
	} else {
		r.c = dup(w, c); /* :of-type rows hold the identifier value, matched exactly */
	}
	add_row(w, &r);
}

/* ---- messages ---- */

/* Extend the location by ".key" or "[i]"; returns the old length to restore. */
static size_t path_push(struct walker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static size_t path_push(struct walker *w, const char *fmt, ...)
{
	size_t old = w->plen;
	va_list ap;
	int n;

	if (w->plen < sizeof(w->path) - 1) {
		va_start(ap, fmt);
		n = vsnprintf(w->path + w->plen, sizeof(w->path) - w->plen, fmt, ap);
		va_end(ap);
		if (n > 0)
			w->plen += (size_t)n;
		if (w->plen > sizeof(w->path) - 1)
			w->plen = sizeof(w->path) - 1;
	}
	return old;
}

static void path_pop(struct walker *w, size_t old)
{
	w->plen = old;
	w->path[old] = '\0';
}

/*
 * ERR_UNPROCESSABLE naming the current element (or its child 'sub'):
 * "<what is wrong> in <element>[: <hint>]".
 */
static enum err bad_hint(struct walker *w, const char *sub, const char *hint, const char *fmt,
			 ...) __attribute__((format(printf, 4, 5)));

static enum err bad_hint(struct walker *w, const char *sub, const char *hint, const char *fmt,
			 ...)
{
	char msg[300], expr[PATH_MAX_LEN + 40];
	va_list ap;

	snprintf(expr, sizeof(expr), "%s%s%s", w->path, sub ? "." : "", sub ? sub : "");
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ctx_errorx(w->c, ERR_UNPROCESSABLE, expr, "%s in %s%s%s", msg, expr,
			  hint ? ": " : "", hint ? hint : "");
}

#define bad(w, sub, ...) bad_hint(w, sub, NULL, __VA_ARGS__)

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "something else";
}

/* ---- primitives ---- */

/* FHIR code: [^\s]+( [^\s]+)* */
static bool code_valid(const char *s)
{
	bool prev_space = true;

	if (!*s)
		return false;
	for (; *s; s++) {
		bool sp = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r';
		if (sp && (*s != ' ' || prev_space))
			return false;
		prev_space = sp;
	}
	return !prev_space;
}

/*
 * An optional string member 'key' of 'obj': *out = its value or NULL when
 * absent; 422 when present but not a string.
 */
static enum err opt_str(struct walker *w, const json_t *obj, const char *key, const char **out)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return ERR_OK;
	if (!json_is_string(v))
		return bad(w, key, "expected a string but found %s", json_kind(v));
	*out = json_string_value(v);
	return ERR_OK;
}

/* An optional code member: like opt_str() plus the FHIR code syntax. */
static enum err opt_code(struct walker *w, const json_t *obj, const char *key, const char **out)
{
	enum err e = opt_str(w, obj, key, out);

	if (e == ERR_OK && *out && !code_valid(*out))
		return bad_hint(w, key, "a code is not empty and has no leading, trailing or "
				"repeated whitespace", "invalid code '%.64s'", *out);
	return e;
}

/* ---- token ---- */

static enum err emit_coding(struct walker *w, const json_t *obj)
{
	const char *system, *code, *display;
	enum err e;

	if ((e = opt_str(w, obj, "system", &system)) || (e = opt_code(w, obj, "code", &code)) ||
	    (e = opt_str(w, obj, "display", &display)))
		return e;
	if (code || display)
		add_token(w, w->p->code, system, code, display);
	return ERR_OK;
}

static enum err emit_codeable(struct walker *w, const json_t *obj)
{
	const json_t *codings = json_object_get(obj, "coding"), *cd;
	const char *text;
	bool text_seen = false;
	size_t i, old;
	enum err e;

	if ((e = opt_str(w, obj, "text", &text)))
		return e;
	if (codings && !json_is_null(codings)) {
		if (!json_is_array(codings))
			return bad(w, "coding", "expected an array of Coding but found %s",
				   json_kind(codings));
		json_array_foreach(codings, i, cd) {
			old = path_push(w, ".coding[%zu]", i);
			if (!json_is_object(cd)) {
				e = bad(w, NULL, "expected a Coding object but found %s", json_kind(cd));
			} else {
				const char *display = json_get_str(cd, "display");
				if (text && display && !strcmp(text, display))
					text_seen = true;
				e = emit_coding(w, cd);
			}
			path_pop(w, old);
			if (e)
				return e;
		}
	}
	if (text && !text_seen)
		add_token(w, w->p->code, NULL, NULL, text);
	return ERR_OK;
}

static enum err emit_identifier(struct walker *w, const json_t *obj)
{
	const json_t *type = json_object_get(obj, "type"), *codings, *cd;
	const char *system, *value, *type_text = NULL;
	size_t i;
	enum err e;

	if ((e = opt_str(w, obj, "system", &system)) || (e = opt_str(w, obj, "value", &value)))
		return e;
	if (type && !json_is_null(type)) {
		if (!json_is_object(type))
			return bad(w, "type", "expected a CodeableConcept but found %s", json_kind(type));
		type_text = json_get_str(type, "text");
	}
	if (value)
		add_token(w, w->p->code, system, value, type_text);
	if (!value || !type || !json_is_array(codings = json_object_get(type, "coding")))
		return ERR_OK;
	if (!w->of_type)
		w->of_type = arena_printf(w->a, "%s%s", w->p->code, FHIR_OF_TYPE_SUFFIX);
	json_array_foreach(codings, i, cd) {
		const char *ts, *tc;
		size_t old = path_push(w, ".type.coding[%zu]", i);
		if (!json_is_object(cd))
			e = bad(w, NULL, "expected a Coding object but found %s", json_kind(cd));
		else if (!(e = opt_str(w, cd, "system", &ts)) && !(e = opt_code(w, cd, "code", &tc)) && tc)
			add_token(w, w->of_type, ts, tc, value);
		path_pop(w, old);
		if (e)
			return e;
	}
	return ERR_OK;
}

static enum err emit_contact(struct walker *w, const json_t *obj)
{
	const char *system, *value;
	enum err e;

	if ((e = opt_code(w, obj, "system", &system)) || (e = opt_str(w, obj, "value", &value)))
		return e;
	if (value)
		add_token(w, w->p->code, system, value, NULL);
	return ERR_OK;
}

static bool is_identifier_key(const char *key)
{
	return !strcmp(key, "identifier") || !strcmp(key, "masterIdentifier") ||
	       !strcmp(key, "groupIdentifier") || !strcmp(key, "requisition");
}

/* Token leaves that are FHIR strings, not codes (whitespace allowed). */
static bool is_string_leaf(const char *key)
{
	return !strcmp(key, "site") || !strcmp(key, "version") || !strcmp(key, "lotNumber") ||
	       !strcmp(key, "altId");
}

static enum err emit_token(struct walker *w, const json_t *v, const char *key)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (!is_string_leaf(key) && !code_valid(s))
			return bad_hint(w, NULL, "a code is not empty and has no leading, trailing or "
					"repeated whitespace", "invalid code '%.64s'", s);
		if (!*s)
			return bad(w, NULL, "empty string: leave the element out instead");
		add_token(w, w->p->code, NULL, s, NULL);
		return ERR_OK;
	}
	if (json_is_boolean(v)) {
		add_token(w, w->p->code, NULL, json_is_true(v) ? "true" : "false", NULL);
		return ERR_OK;
	}
	if (!json_is_object(v))
		return bad(w, NULL, "expected a code, Coding, CodeableConcept or Identifier but found %s",
			   json_kind(v));
	if (!strcmp(key, "telecom"))
		return emit_contact(w, v);
	if (is_identifier_key(key))
		return emit_identifier(w, v);
	if (json_object_get(v, "coding") ||
	    (json_object_get(v, "text") && !json_object_get(v, "code")))
		return emit_codeable(w, v);
	return emit_coding(w, v);
}

/* ---- string ---- */

static enum err add_string(struct walker *w, const char *s)
{
	struct buf norm = BUF_INIT(STRING_NORM_MAX);
	struct store_ix_row r = {.kind = STORE_IX_STRING, .param = w->p->code};
	enum err e;

	e = fhir_str_normalize(s, &norm);
	if (e == ERR_INVALID) {
		buf_release(&norm);
		return bad(w, NULL, "string is not valid UTF-8");
	}
	/* ERR_TOOBIG: keep the normalized prefix (prefix matching still works) */
	if (norm.len) {
		r.a = arena_strndup(w->a, norm.data, norm.len);
		r.b = dup(w, s);
		add_row(w, &r);
	}
	buf_release(&norm);
	return ERR_OK;
}

/* One part of a HumanName or Address: a string or an array of strings. */
static enum err emit_string_part(struct walker *w, const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key), *x;
	size_t i, old;
	enum err e = ERR_OK;

	if (!v || json_is_null(v))
		return ERR_OK;
	if (json_is_string(v)) {
		old = path_push(w, ".%s", key);
		e = add_string(w, json_string_value(v));
		path_pop(w, old);
		return e;
	}
	if (!json_is_array(v))
		return bad(w, key, "expected a string but found %s", json_kind(v));
	json_array_foreach(v, i, x) {
		old = path_push(w, ".%s[%zu]", key, i);
		if (json_is_string(x))
			e = add_string(w, json_string_value(x));
		else if (!json_is_null(x))
			e = bad(w, NULL, "expected a string but found %s", json_kind(x));
		path_pop(w, old);
		if (e)
			return e;
	}
	return ERR_OK;
}

static enum err emit_string(struct walker *w, const json_t *v)
{
	static const char *const parts[] = {"family", "given", "prefix", "suffix", "text",
					    "line", "city", "district", "state", "postalCode",
					    "country", NULL};
	enum err e;

	if (json_is_string(v))
		return add_string(w, json_string_value(v));
	if (!json_is_object(v))
		return bad(w, NULL, "expected a string, HumanName or Address but found %s",
			   json_kind(v));
	for (size_t i = 0; parts[i]; i++)
		if ((e = emit_string_part(w, v, parts[i])))
			return e;
	return ERR_OK;
}

/* ---- date ---- */

/* The FHIR type name to use in a message about the element 'key'. */
static const char *date_word(const char *key)
{
	static const char *const dates[] = {"birthDate", "dueDate", "startDate", NULL};
	static const char *const instants[] = {"issued", "recorded", "lastUpdated", NULL};

	for (const char *const *k = dates; *k; k++)
		if (!strcmp(key, *k))
			return "date";
	for (const char *const *k = instants; *k; k++)
		if (!strcmp(key, *k))
			return "instant";
	return str_ends(key, "Instant") ? "instant" : "dateTime";
}

static enum err parse_date(struct walker *w, const json_t *v, const char *key, int64_t *lo,
			   int64_t *hi)
{
	const char *s;

	if (!json_is_string(v))
		return bad(w, NULL, "expected a %s string but found %s", date_word(key), json_kind(v));
	s = json_string_value(v);
	if (fhir_date_parse(s, lo, hi))
		return bad_hint(w, NULL, "use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss "
				"with a zone such as Z or +01:00", "invalid %s '%.64s'",
				date_word(key), s);
	return ERR_OK;
}

static void add_date(struct walker *w, int64_t lo, int64_t hi)
{
	struct store_ix_row r = {.kind = STORE_IX_DATE, .param = w->p->code, .lo = lo, .hi = hi};
	add_row(w, &r);
}

/* A member of a Period: *lo..*hi stay as given when it is absent. */
static enum err period_end(struct walker *w, const json_t *obj, const char *key, bool *present,
			   int64_t *lo, int64_t *hi)
{
	const json_t *v = json_object_get(obj, key);
	size_t old;
	enum err e;

	*present = v && !json_is_null(v);
	if (!*present)
		return ERR_OK;
	old = path_push(w, ".%s", key);
	e = parse_date(w, v, key, lo, hi);
	path_pop(w, old);
	return e;
}

static enum err emit_date(struct walker *w, const json_t *v, const char *key)
{
	int64_t lo, hi, slo = INT64_MIN, shi = INT64_MIN, elo = INT64_MAX, ehi = INT64_MAX;
	const json_t *events, *x;
	bool has_start, has_end;
	size_t i, old;
	enum err e;

	if (json_is_string(v)) {
		if ((e = parse_date(w, v, key, &lo, &hi)))
			return e;
		add_date(w, lo, hi);
		return ERR_OK;
	}
	if (!json_is_object(v))
		return bad(w, NULL, "expected a date, dateTime, Period or Timing but found %s",
			   json_kind(v));
	if ((events = json_object_get(v, "event"))) {    /* Timing */
		if (json_is_null(events))
			return ERR_OK;
		if (!json_is_array(events))
			return bad(w, "event", "expected an array of dateTime but found %s",
				   json_kind(events));
		json_array_foreach(events, i, x) {
			old = path_push(w, ".event[%zu]", i);
			e = json_is_null(x) ? ERR_OK : parse_date(w, x, "dateTime", &lo, &hi);
			if (!e && !json_is_null(x))
				add_date(w, lo, hi);
			path_pop(w, old);
			if (e)
				return e;
		}
		return ERR_OK;
	}
	if ((e = period_end(w, v, "start", &has_start, &slo, &shi)) ||
	    (e = period_end(w, v, "end", &has_end, &elo, &ehi)))
		return e;
	if (!has_start && !has_end)
		return ERR_OK;
	if (has_start && has_end && slo > ehi)
		return bad(w, NULL, "the period starts after it ends (%s)",
			   json_get_str(v, "start") ? json_get_str(v, "start") : "?");
	add_date(w, slo, ehi);
	return ERR_OK;
}

/* ---- reference ---- */

static bool type_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > 64 || s[0] < 'A' || s[0] > 'Z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
			return false;
	return true;
}

static bool id_valid_n(const char *s, size_t n)
{
	char id[72];

	if (n == 0 || n > 64)
		return false;
	memcpy(id, s, n);
	id[n] = '\0';
	return fhir_id_valid(id);
}

/*
 * Split "Type/id" or "Type/id/_history/v" (s[0..n)) into its parts.
 * Returns false when it is not of that form.
 */
static bool split_type_id(const char *s, size_t n, const char **t, size_t *tn, const char **id,
			  size_t *idn)
{
	const char *slash = memchr(s, '/', n), *rest, *slash2;
	size_t rn;

	if (!slash)
		return false;
	*t = s;
	*tn = (size_t)(slash - s);
	rest = slash + 1;
	rn = n - *tn - 1;
	slash2 = memchr(rest, '/', rn);
	*id = rest;
	*idn = slash2 ? (size_t)(slash2 - rest) : rn;
	if (slash2) {
		/* only "/_history/<vid>" may follow */
		const char *h = slash2 + 1;
		size_t hn = rn - *idn - 1;
		if (hn <= 9 || strncmp(h, "_history/", 9) || !id_valid_n(h + 9, hn - 9))
			return false;
	}
	return type_name_valid(*t, *tn) && id_valid_n(*id, *idn);
}

/* This server's FHIR base URL (fhir_index_set_base); empty: none known. */
static char local_base[600];

void fhir_index_set_base(const char *base)
{
	str_copy(local_base, base ? base : "", sizeof(local_base));
}

struct ref {
	char *type, *id;     /* NULL when not known */
	bool typed;          /* the target type is known (type may be set without id) */
};

/* Parse a literal reference or canonical; 422 when it cannot be one. */
static enum err parse_ref(struct walker *w, const char *s, struct ref *r)
{
	const char *t, *id, *q;
	size_t tn, idn, n = strlen(s);

	memset(r, 0, sizeof(*r));
	if (n == 0)
		return bad(w, NULL, "empty reference: leave the element out instead");
	if (s[0] == '#' || str_starts(s, "urn:"))
		return ERR_OK;
	q = strchr(s, '?');
	if (local_base[0] && !strncmp(s, local_base, strlen(local_base)) &&
	    s[strlen(local_base)] == '/' && split_type_id(s + strlen(local_base) + 1,
							    n - strlen(local_base) - 1, &t, &tn, &id, &idn)) {
		/* an absolute URL on this server is the local Type/id */
		r->type = arena_strndup(w->a, t, tn);
		r->id = arena_strndup(w->a, id, idn);
		r->typed = true;
		return ERR_OK;
	}
	if (memmem(s, q ? (size_t)(q - s) : n, "://", 3)) {
		/*
		 * Another server's resource: its type still counts for parameters
		 * that restrict targets, but its id is not one of ours, so the row
		 * keeps only the URL (never "Patient/x" of this server, and never
		 * this server's patient compartment).
		 */
		size_t end = strcspn(s, "|#?");
		const char *segs[4] = {NULL, NULL, NULL, NULL};
		size_t k = 0;
		for (size_t i = end; i > 0 && k < 4; i--)
			if (s[i - 1] == '/')
				segs[k++] = s + i;
		for (size_t j = 1; j < k; j++) {
			/* segs[j] starts "Type/..." with j segments after it */
			const char *start = segs[j];
			if (split_type_id(start, (size_t)(s + end - start), &t, &tn, &id, &idn)) {
				r->type = arena_strndup(w->a, t, tn);
				r->typed = true;
				break;
			}
		}
		return ERR_OK;
	}
	if (q) {
		/* conditional reference "Type?search" (bulk data exports use them) */
		if (!type_name_valid(s, (size_t)(q - s)))
			goto invalid;
		r->type = arena_strndup(w->a, s, (size_t)(q - s));
		r->typed = true;
		return ERR_OK;
	}
	if (!split_type_id(s, n, &t, &tn, &id, &idn))
		goto invalid;
	r->type = arena_strndup(w->a, t, tn);
	r->id = arena_strndup(w->a, id, idn);
	r->typed = true;
	return ERR_OK;
invalid:
	return bad_hint(w, NULL, "expected 'Type/id', an absolute URL, 'urn:...' or '#id'",
			"invalid reference '%.64s'", s);
}

static bool target_ok(const struct fhir_param *p, const char *type)
{
	if (!p->targets)
		return true;
	for (const char *const *t = p->targets; *t; t++)
		if (!strcmp(*t, type))
			return true;
	return false;
}

static enum err emit_reference(struct walker *w, const json_t *v)
{
	struct store_ix_row row = {.kind = STORE_IX_REFERENCE, .param = w->p->code};
	const json_t *ref = v;
	bool canonical = json_is_string(v);
	struct ref r;
	size_t old = w->plen;
	enum err e;

	if (json_is_object(v)) {
		ref = json_object_get(v, "reference");
		if (!ref || json_is_null(ref))
			return ERR_OK;    /* identifier or display only */
		old = path_push(w, ".reference");
		if (!json_is_string(ref)) {
			e = bad_hint(w, NULL, "write it as a string such as \"Patient/123\"",
				     "Reference.reference must be a string but found %s",
				     json_kind(ref));
			goto out;
		}
	} else if (!canonical) {
		return bad(w, NULL, "expected a Reference object but found %s", json_kind(v));
	}
	if ((e = parse_ref(w, json_string_value(ref), &r)))
		goto out;
	if (w->p->targets && (r.typed ? !target_ok(w->p, r.type) : !canonical))
		goto out;
	row.c = dup(w, json_string_value(ref));
	if (r.id) {
		row.a = r.type;
		row.b = r.id;
	}
	add_row(w, &row);
out:
	path_pop(w, old);
	return e;
}

/* ---- quantity, number, uri ---- */

/*
 * The half-width of the implicit precision of 'v' (0.05 for 5.4): half a
 * unit of its last decimal place, where the decimals are those of the
 * shortest form that reads back as the same double, and never fewer than
 * zero (1500.0 and 1.5e3 count as 1500, i.e. +-0.5).
 */
static double precision_half(const json_t *v)
{
	char s[40];
	double x = json_number_value(v);
	int sig = 0, exp10 = 0, decimals;
	const char *e;

	if (json_is_integer(v) || x == 0)
		return 0.5;
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*e", prec - 1, x);
		if (strtod(s, NULL) == x) {
			sig = prec;
			break;
		}
	}
	if (!sig)
		return 0.5;
	e = strchr(s, 'e');
	exp10 = e ? (int)strtol(e + 1, NULL, 10) : 0;
	decimals = sig - 1 - exp10;
	if (decimals < 0)
		decimals = 0;
	return 0.5 * pow(10.0, -decimals);
}

static void add_number(struct walker *w, enum store_ix kind, const json_t *v, const char *a,
		       const char *b)
{
	struct store_ix_row r = {.kind = kind, .param = w->p->code};
	double half = precision_half(v);

	r.num = json_number_value(v);
	r.nlo = r.num - half;
	r.nhi = r.num + half;
	r.a = dup(w, a);
	r.b = dup(w, b);
	add_row(w, &r);
}

static enum err emit_quantity(struct walker *w, const json_t *v)
{
	const json_t *value;
	const char *system, *code, *unit;
	enum err e;

	if (!json_is_object(v))
		return bad(w, NULL, "expected a Quantity object but found %s", json_kind(v));
	value = json_object_get(v, "value");
	if ((e = opt_str(w, v, "system", &system)) || (e = opt_code(w, v, "code", &code)) ||
	    (e = opt_str(w, v, "unit", &unit)))
		return e;
	if (!value || json_is_null(value))
		return ERR_OK;
	if (!json_is_number(value))
		return bad(w, "value", "a quantity value must be a JSON number such as 5.4 but found %s",
			   json_kind(value));
	add_number(w, STORE_IX_QUANTITY, value, system, code ? code : unit);
	/* "5.4||mmHg" matches the code or the unit (FHIR R4 quantity search) */
	if (code && unit && strcmp(code, unit))
		add_number(w, STORE_IX_QUANTITY, value, NULL, unit);
	return ERR_OK;
}

static enum err emit_number(struct walker *w, const json_t *v)
{
	if (!json_is_number(v))
		return bad(w, NULL, "expected a JSON number but found %s", json_kind(v));
	add_number(w, STORE_IX_NUMBER, v, NULL, NULL);
	return ERR_OK;
}

static enum err emit_uri(struct walker *w, const json_t *v)
{
	struct store_ix_row r = {.kind = STORE_IX_URI, .param = w->p->code};
	const char *s;

	if (!json_is_string(v))
		return bad(w, NULL, "expected a uri string but found %s", json_kind(v));
	s = json_string_value(v);
	if (!*s || strpbrk(s, " \t\r\n"))
		return bad_hint(w, NULL, "a uri is not empty and has no whitespace",
				"invalid uri '%.64s'", s);
	r.a = dup(w, s);
	add_row(w, &r);
	return ERR_OK;
}

/* One value found by the path walk; 'key' is the element's name. */
static enum err emit(struct walker *w, const json_t *v, const char *key)
{
	switch (w->p->kind) {
	case FHIR_PARAM_TOKEN: return emit_token(w, v, key);
	case FHIR_PARAM_STRING: return emit_string(w, v);
	case FHIR_PARAM_DATE: return emit_date(w, v, key);
	case FHIR_PARAM_REFERENCE: return emit_reference(w, v);
	case FHIR_PARAM_QUANTITY: return emit_quantity(w, v);
	case FHIR_PARAM_NUMBER: return emit_number(w, v);
	case FHIR_PARAM_URI: return emit_uri(w, v);
	}
	return ERR_OK;
}

/* ---- the path walk ---- */

/* Does the choice suffix (after "value") fit the parameter kind? */
static bool choice_fits(enum fhir_param_kind kind, const char *suffix)
{
	static const char *const date[] = {"DateTime", "Date", "Instant", "Period", "Timing", NULL};
	static const char *const token[] = {"CodeableConcept", "Coding", "Code", "Boolean",
					    "Identifier", "String", "Id", NULL};
	static const char *const string[] = {"String", "HumanName", "Address", "Markdown", NULL};
	static const char *const reference[] = {"Reference", "Canonical", NULL};
	static const char *const quantity[] = {"Quantity", "Age", "Duration", "Distance", "Count",
					       NULL};
	static const char *const number[] = {"Integer", "Decimal", "PositiveInt", "UnsignedInt",
					     NULL};
	static const char *const uri[] = {"Uri", "Url", "Canonical", "Oid", "Uuid", NULL};
	const char *const *set = NULL;

	switch (kind) {
	case FHIR_PARAM_TOKEN: set = token; break;
	case FHIR_PARAM_STRING: set = string; break;
	case FHIR_PARAM_DATE: set = date; break;
	case FHIR_PARAM_REFERENCE: set = reference; break;
	case FHIR_PARAM_QUANTITY: set = quantity; break;
	case FHIR_PARAM_NUMBER: set = number; break;
	case FHIR_PARAM_URI: set = uri; break;
	}
	for (; set && *set; set++)
		if (!strcmp(*set, suffix))
			return true;
	return false;
}

static enum err visit(struct walker *w, const json_t *node, const struct step *steps, size_t i,
		      size_t n, const char *key);

/* The value 'v' of element 'key' at step i: walk arrays, apply the filter. */
static enum err descend(struct walker *w, const json_t *v, const struct step *steps, size_t i,
			size_t n, const char *key)
{
	const struct step *st = &steps[i];
	size_t old = path_push(w, ".%s", key), k;
	const json_t *x;
	enum err e = ERR_OK;

	if (json_is_array(v)) {
		json_array_foreach(v, k, x) {
			size_t old2 = path_push(w, "[%zu]", k);
			if (!json_is_null(x) &&
			    (!st->fkey[0] || str_same(json_get_str(x, st->fkey), st->fval)))
				e = visit(w, x, steps, i + 1, n, key);
			path_pop(w, old2);
			if (e)
				break;
		}
	} else if (!json_is_null(v) &&
		   (!st->fkey[0] || str_same(json_get_str(v, st->fkey), st->fval))) {
		e = visit(w, v, steps, i + 1, n, key);
	}
	path_pop(w, old);
	return e;
}

static enum err visit(struct walker *w, const json_t *node, const struct step *steps, size_t i,
		      size_t n, const char *key)
{
	const struct step *st;
	enum err e;

	if (i == n)
		return emit(w, node, key);
	st = &steps[i];
	if (!json_is_object(node))
		return bad(w, NULL, "expected an object (to find '%s' in it) but found %s", st->name,
			   json_kind(node));
	if (st->choice) {
		size_t len = strlen(st->name);
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)node, k, v) {
			if (strncmp(k, st->name, len) || k[len] < 'A' || k[len] > 'Z' ||
			    !choice_fits(w->p->kind, k + len))
				continue;
			if ((e = descend(w, v, steps, i, n, k)))
				return e;
		}
		return ERR_OK;
	}
	{
		const json_t *v = json_object_get(node, st->name);
		if (!v)
			return ERR_OK;
		return descend(w, v, steps, i, n, st->name);
	}
}

/* Parse one alternative of a path ("telecom.where(system='phone')"). */
static size_t parse_steps(const char *alt, size_t len, struct step *steps)
{
	size_t n = 0, i = 0;

	while (i < len && n < MAX_STEPS) {
		size_t j = i;
		while (j < len && alt[j] != '.')
			j++;
		if (j - i > 6 && !strncmp(alt + i, "where(", 6) && n > 0) {
			/* where(key='value') */
			const char *s = alt + i + 6, *eq = memchr(s, '=', j - i - 6);
			struct step *prev = &steps[n - 1];
			if (eq) {
				size_t kn = (size_t)(eq - s), vn = (size_t)(alt + j - eq) - 4;
				if (kn < sizeof(prev->fkey) && vn < sizeof(prev->fval) && eq[1] == '\'') {
					memcpy(prev->fkey, s, kn);
					prev->fkey[kn] = '\0';
					memcpy(prev->fval, eq + 2, vn);
					prev->fval[vn] = '\0';
				}
			}
		} else {
			struct step *st = &steps[n++];
			size_t k = j - i;
			memset(st, 0, sizeof(*st));
			if (k > 3 && !strncmp(alt + j - 3, "[x]", 3)) {
				st->choice = true;
				k -= 3;
			}
			if (k >= sizeof(st->name))
				k = sizeof(st->name) - 1;
			memcpy(st->name, alt + i, k);
		}
		i = j + 1;
	}
	return n;
}

static enum err index_param(struct walker *w, const json_t *res)
{
	const char *path = w->p->path, *sep;
	struct step steps[MAX_STEPS];
	enum err e;

	w->of_type = NULL;
	for (;;) {
		size_t len, n;
		sep = strstr(path, " | ");
		len = sep ? (size_t)(sep - path) : strlen(path);
		n = parse_steps(path, len, steps);
		if (n && (e = visit(w, res, steps, 0, n, w->type)))
			return e;
		if (!sep)
			return ERR_OK;
		path = sep + 3;
	}
}

/* ---- derived data categories ---- */

/*
 * Data categories: one or more token rows per resource with param
 * FHIR_CATEGORY_PARAM, system FHIR_CATEGORY_SYSTEM.  Consent and proxy
 * rules filter by these codes.
 *
 *   type                     code(s)
 *   Observation              labs (category laboratory), vitals (vital-signs),
 *                            imaging (imaging), results-other (a category
 *                            that is none of these, or no category)
 *   DiagnosticReport         labs (category LAB or LOINC LP29693-6),
 *                            imaging (RAD or LOINC LP29684-5), results-other
 *                            (another category, or none); plus notes when it carries a
 *                            narrative report (presentedForm) or has a US Core
 *                            note category (LP29684-5, LP29708-2, LP7839-6)
 *   DocumentReference        notes (US Core category clinical-note),
 *                            documents (anything else)
 *   Binary                   documents
 *   MedicationRequest,
 *   Medication               medications
 *   Condition                conditions
 *   AllergyIntolerance       allergies
 *   Immunization             immunizations
 *   Procedure                procedures
 *   Encounter                encounters
 *   Appointment              appointments
 *   Communication            messages
 *   CarePlan, CareTeam, Goal,
 *   ServiceRequest, Task     care-plans
 *   Patient, RelatedPerson   demographics
 *   Consent                  consents
 *   Device                   devices
 *   Questionnaire,
 *   QuestionnaireResponse    questionnaires
 *   AuditEvent, Provenance   audit
 *   Practitioner, PractitionerRole,
 *   Organization, Location   directory
 *
 * Sensitivity needs no derived rows: meta.security labels (v3-ActCode
 * PSY, ETH, SDV, HIV, SEX...; v3-Confidentiality R, V) are indexed by the
 * common _security parameter.
 */
static const struct {
	const char *type, *category;
} fixed_categories[] = {
	{"AllergyIntolerance", "allergies"},
	{"Appointment", "appointments"},
	{"AuditEvent", "audit"},
	{"Binary", "documents"},
	{"CarePlan", "care-plans"},
	{"CareTeam", "care-plans"},
	{"Communication", "messages"},
	{"Condition", "conditions"},
	{"Consent", "consents"},
	{"Device", "devices"},
	{"Encounter", "encounters"},
	{"Goal", "care-plans"},
	{"Immunization", "immunizations"},
	{"Location", "directory"},
	{"Medication", "medications"},
	{"MedicationRequest", "medications"},
	{"Organization", "directory"},
	{"Patient", "demographics"},
	{"Practitioner", "directory"},
	{"PractitionerRole", "directory"},
	{"Procedure", "procedures"},
	{"Provenance", "audit"},
	{"Questionnaire", "questionnaires"},
	{"QuestionnaireResponse", "questionnaires"},
	{"RelatedPerson", "demographics"},
	{"ServiceRequest", "care-plans"},
	{"Task", "care-plans"},
};

/* Does a coding of the CodeableConcept 'cat' have one of 'codes' as its code? */
static bool concept_has(const json_t *cat, const char *const *codes)
{
	const json_t *cd;
	size_t j;

	json_array_foreach(json_object_get(cat, "coding"), j, cd) {
		const char *code = json_get_str(cd, "code");
		for (const char *const *k = codes; code && *k; k++)
			if (!strcmp(code, *k))
				return true;
	}
	return false;
}

/* Does any category of 'res' have a coding with one of 'codes'? */
static bool has_category(const json_t *res, const char *const *codes)
{
	const json_t *cat;
	size_t i;

	json_array_foreach(json_object_get(res, "category"), i, cat)
		if (concept_has(cat, codes))
			return true;
	return false;
}

/* Is there no category, or one with none of 'codes'? */
static bool has_other_category(const json_t *res, const char *const *codes)
{
	const json_t *cats = json_object_get(res, "category"), *cat;
	size_t i;

	if (json_array_size(cats) == 0)
		return true;
	json_array_foreach(cats, i, cat)
		if (!concept_has(cat, codes))
			return true;
	return false;
}

static void add_category(struct walker *w, const char *code)
{
	struct store_ix_row r = {.kind = STORE_IX_TOKEN, .param = FHIR_CATEGORY_PARAM,
				 .a = FHIR_CATEGORY_SYSTEM, .b = code};
	add_row(w, &r);
}

static void derive_categories(struct walker *w, const json_t *res)
{
	static const char *const lab[] = {"laboratory", NULL};
	static const char *const vital[] = {"vital-signs", NULL};
	static const char *const imaging[] = {"imaging", NULL};
	static const char *const obs_known[] = {"laboratory", "vital-signs", "imaging", NULL};
	static const char *const dr_known[] = {"LAB", "LP29693-6", "RAD", "LP29684-5", NULL};
	static const char *const dr_lab[] = {"LAB", "LP29693-6", NULL};
	static const char *const dr_imaging[] = {"RAD", "LP29684-5", NULL};
	static const char *const dr_note[] = {"LP29684-5", "LP29708-2", "LP7839-6", NULL};
	static const char *const clinical_note[] = {"clinical-note", NULL};
	const char *t = w->type;

	if (!strcmp(t, "Observation")) {
		if (has_category(res, lab))
			add_category(w, "labs");
		if (has_category(res, vital))
			add_category(w, "vitals");
		if (has_category(res, imaging))
			add_category(w, "imaging");
		if (has_other_category(res, obs_known))
			add_category(w, "results-other");
		return;
	}
	if (!strcmp(t, "DiagnosticReport")) {
		if (has_category(res, dr_lab))
			add_category(w, "labs");
		if (has_category(res, dr_imaging))
			add_category(w, "imaging");
		if (has_other_category(res, dr_known))
			add_category(w, "results-other");
		if (json_array_size(json_object_get(res, "presentedForm")) > 0 ||
		    has_category(res, dr_note))
			add_category(w, "notes");
		return;
	}
	if (!strcmp(t, "DocumentReference")) {
		add_category(w, has_category(res, clinical_note) ? "notes" : "documents");
		return;
	}
	for (size_t i = 0; i < sizeof(fixed_categories) / sizeof(fixed_categories[0]); i++)
		if (!strcmp(fixed_categories[i].type, t)) {
			add_category(w, fixed_categories[i].category);
			return;
		}
}

/* ---- compartment ---- */

static void add_patient(struct walker *w, const char *id)
{
	struct fhir_index *o = w->out;

	for (size_t i = 0; i < o->npatients; i++)
		if (!strcmp(o->patients[i], id))
			return;
	if (o->npatients == o->patients_cap) {
		size_t cap = o->patients_cap ? o->patients_cap * 2 : 4;
		const char **p = arena_alloc(w->a, cap * sizeof(*p));
		if (o->npatients)
			memcpy(p, o->patients, o->npatients * sizeof(*p));
		o->patients = p;
		o->patients_cap = cap;
	}
	o->patients[o->npatients++] = id;
}

static void collect_compartment(struct walker *w, const char *id)
{
	const char *const *params = fhir_compartment_params(w->type);
	struct fhir_index *o = w->out;

	if (!strcmp(w->type, "Patient") && id)
		add_patient(w, arena_strdup(w->a, id));
	for (size_t i = 0; i < o->n; i++) {
		const struct store_ix_row *r = &o->rows[i];
		if (r->kind != STORE_IX_REFERENCE || !r->a || !r->b || strcmp(r->a, "Patient"))
			continue;
		for (const char *const *p = params; *p; p++) {
			/* an alias's values are in its base's rows ("patient" in "subject") */
			const struct fhir_param *pd = fhir_param_find(w->type, *p);
			const char *rows_of = pd ? fhir_param_base(pd, NULL)->code : *p;

			if (!strcmp(rows_of, r->param)) {
				add_patient(w, r->b);
				break;
			}
		}
	}
}

/* ---- entry point ---- */

enum err fhir_index_resource(struct arena *a, const char *type, const char *id,
			     const json_t *res, struct fhir_index *out, struct ctx *c)
{
	struct walker w;
	const struct fhir_param *common, *own;
	size_t ncommon, nown;
	enum err e = ERR_OK;

	memset(out, 0, sizeof(*out));
	if (!fhir_type_find(type))
		return ctx_errorf(c, ERR_INVALID, "unknown resource type '%s'", type ? type : "");
	if (!json_is_object(res))
		return ctx_errorx(c, ERR_INVALID, type, "a %s must be a JSON object", type);
	memset(&w, 0, sizeof(w));
	w.a = a;
	w.type = type;
	w.out = out;
	w.c = c;
	common = fhir_params_of(NULL, &ncommon);
	own = fhir_params_of(type, &nown);
	for (size_t k = 0; k < ncommon + nown; k++) {
		w.p = k < ncommon ? &common[k] : &own[k - ncommon];
		w.plen = (size_t)snprintf(w.path, sizeof(w.path), "%s", type);
		/*
		 * _id and _lastUpdated are searched on the resource's own columns;
		 * an alias is searched on its base parameter's rows.
		 */
		if (!strcmp(w.p->code, "_id") || !strcmp(w.p->code, "_lastUpdated") ||
		    fhir_param_base(w.p, NULL) != w.p)
			continue;
		if ((e = index_param(&w, res)))
			goto out;
	}
	derive_categories(&w, res);
	collect_compartment(&w, id);
out:
	return e;
}
