/*
 * parse.c - FHIR search parameters to a struct store_query.
 *
 * Handles every parameter kind with its modifiers and prefixes, the
 * escapes \, \| \$ and \\, comma (OR) and repetition (AND), one level of
 * chaining and of reverse chaining (_has), and the result parameters
 * (_count, _sort, _total, _summary, _elements, _include, _revinclude,
 * _page).  Errors are ERR_INVALID with the parameter's name as the
 * expression and a message that says what a valid value looks like.
 * All memory comes from the caller's arena.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/str.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"
#include "fhir/search_int.h"

#define MAX_ALTERNATIVES 64
#define MAX_VALUE_LEN 2048

void search_parsed_init(struct search_parsed *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->applied, 64 << 10);
	buf_init(&p->ignored, 16 << 10);
}

void search_parsed_release(struct search_parsed *p)
{
	buf_release(&p->applied);
	buf_release(&p->ignored);
}

/* ---- splitting and unescaping ---- */

/*
 * Split 's' on unescaped 'sep'; pieces keep their escapes.  Returns the
 * number of pieces (at most max), or -1 when there are more.
 */
static int split_escaped(struct arena *a, const char *s, char sep, const char **out, int max)
{
	int n = 0;
	const char *start = s;

	for (const char *p = s;; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == sep || *p == '\0') {
			if (n == max)
				return -1;
			out[n++] = arena_strndup(a, start, (size_t)(p - start));
			if (*p == '\0')
				break;
			start = p + 1;
		}
	}
	return n;
}

/* Remove FHIR search escapes (\, \| \$ \\). */
static const char *unescape(struct arena *a, const char *s)
{
	char *out = arena_alloc(a, strlen(s) + 1), *o = out;

	for (; *s; s++) {
		if (*s == '\\' && (s[1] == ',' || s[1] == '|' || s[1] == '$' || s[1] == '\\'))
			s++;
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* ---- prefixes and numbers ---- */

static enum store_cmp take_prefix(const char **v)
{
	static const struct {
		const char *p;
		enum store_cmp cmp;
	} prefixes[] = {
		{"eq", STORE_CMP_EQ}, {"ne", STORE_CMP_NE}, {"lt", STORE_CMP_LT},
		{"gt", STORE_CMP_GT}, {"le", STORE_CMP_LE}, {"ge", STORE_CMP_GE},
		{"sa", STORE_CMP_SA}, {"eb", STORE_CMP_EB}, {"ap", STORE_CMP_AP},
	};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		if (!strncmp(*v, prefixes[i].p, 2) &&
		    (isdigit((unsigned char)(*v)[2]) || (*v)[2] == '-' || (*v)[2] == '.')) {
			*v += 2;
			return prefixes[i].cmp;
		}
	}
	return STORE_CMP_EQ;
}

/*
 * Parse a FHIR decimal search value; [lo, hi) is its implicit precision
 * range ("5.4" is [5.35, 5.45)); exponent forms are exact-ish ranges too.
 * While the digits fit in a double's integer range the bounds are the
 * digits with a 5 added or taken away in the next place, scaled by a power
 * of ten: each step is exact or rounded once, so a bound is the double
 * nearest its decimal, the one a stored 5.35 is parsed to (5.4 - 0.05 in
 * binary is 5.3500000000000005 and would leave 5.35 out).
 */
static bool parse_decimal(const char *s, double *v, double *lo, double *hi)
{
	static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
				       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	const int64_t exact_max = INT64_C(1) << 53;
	const char *p = s;
	int decimals = 0, exponent = 0, scale;
	bool dot = false, digits = false, neg = *s == '-', exact = true;
	int64_t mant = 0, a, b;
	char *end;
	double half;

	if (*p == '-' || *p == '+')
		p++;
	for (; *p; p++) {
		if (isdigit((unsigned char)*p)) {
			digits = true;
			if (dot)
				decimals++;
			if (mant > exact_max / 10)
				exact = false;
			else
				mant = mant * 10 + (*p - '0');
		} else if (*p == '.' && !dot) {
			dot = true;
		} else {
			break;
		}
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		/* FHIR decimals allow an explicit sign on the exponent: 1e+2, 1e-2 */
		const char *ex = p[1] == '+' && isdigit((unsigned char)p[2]) ? p + 2 : p + 1;
		int64_t e;
		if (str_to_i64(ex, -300, 300, &e))
			return false;
		exponent = (int)e;
	} else if (*p) {
		return false;
	}
	*v = strtod(s, &end);
	if (!isfinite(*v))
		return false;
	/* the bounds are (10 * mant -/+ 5) * 10^scale */
	scale = exponent - decimals - 1;
	if (exact && mant * 10 + 5 <= exact_max && scale >= -22 && scale <= 22) {
		a = mant * 10 - 5;
		b = mant * 10 + 5;
		if (neg) {
			int64_t t = a;
			a = -b;
			b = -t;
		}
		*lo = scale < 0 ? (double)a / pow10[-scale] : (double)a * pow10[scale];
		*hi = scale < 0 ? (double)b / pow10[-scale] : (double)b * pow10[scale];
		return true;
	}
	half = 0.5 * pow(10.0, (double)(exponent - decimals));
	*lo = *v - half;
	*hi = *v + half;
	return true;
}

/* ---- one parameter value to matches ---- */

struct pctx {
	struct fhir *f;
	struct arena *a;
	struct ctx *c;
};

static enum err bad(struct pctx *x, const char *name, const char *fmt, const char *val)
{
	char msg[400];

	snprintf(msg, sizeof(msg), fmt, val);
	return ctx_errorx(x->c, ERR_INVALID, name, "parameter '%s': %s", name, msg);
}

static enum err parse_token(struct pctx *x, const char *name, enum store_mod mod, const char *alt,
			    struct store_match *m)
{
	const char *parts[3];
	int n;

	if (mod == STORE_MOD_TEXT) {
		struct buf nb = BUF_INIT(MAX_VALUE_LEN * 4);
		fhir_str_normalize(unescape(x->a, alt), &nb);
		m->a = arena_strndup(x->a, nb.data, nb.len);
		buf_release(&nb);
		return ERR_OK;
	}
	n = split_escaped(x->a, alt, '|', parts, 3);
	if (mod == STORE_MOD_OF_TYPE) {
		if (n != 3)
			return bad(x, name, "':of-type' takes system|code|value, not '%s'", alt);
		m->a = unescape(x->a, parts[0]);
		m->b = unescape(x->a, parts[1]);
		m->c = unescape(x->a, parts[2]);
		return ERR_OK;
	}
	if (n == 1) {
		m->a = NULL;
		m->b = unescape(x->a, parts[0]);
	} else if (n == 2) {
		m->a = unescape(x->a, parts[0]);
		m->b = *parts[1] ? unescape(x->a, parts[1]) : NULL;
		if (!*m->a && !m->b)
			return bad(x, name, "'%s' names neither a system nor a code", alt);
	} else {
		return bad(x, name, "a token is [system|]code, not '%s'", alt);
	}
	if (m->b && !*m->b)
		return bad(x, name, "empty code in '%s'", alt);
	return ERR_OK;
}

static enum err parse_string(struct pctx *x, enum store_mod mod, const char *alt,
			     struct store_match *m)
{
	const char *raw = unescape(x->a, alt);
	struct buf nb = BUF_INIT(MAX_VALUE_LEN * 4);

	fhir_str_normalize(raw, &nb);
	m->a = arena_strndup(x->a, nb.data, nb.len);
	buf_release(&nb);
	if (mod == STORE_MOD_EXACT)
		m->b = raw; /* a narrows through the normalized index, b decides */
	return ERR_OK;
}

static enum err parse_date(struct pctx *x, const char *name, const char *alt, struct store_match *m)
{
	const char *v = alt;

	m->cmp = take_prefix(&v);
	v = unescape(x->a, v);
	if (fhir_date_parse_search(v, &m->lo, &m->hi))
		return bad(x, name, "'%s' is not a FHIR date or dateTime (e.g. 2024, 2024-03-01, 2024-03-01T10:00:00Z)", alt);
	return ERR_OK;
}

static enum err parse_number(struct pctx *x, const char *name, const char *alt, struct store_match *m)
{
	const char *v = alt;

	m->cmp = take_prefix(&v);
	if (!parse_decimal(v, &m->num, &m->nlo, &m->nhi))
		return bad(x, name, "'%s' is not a number (e.g. 5.4, gt100)", alt);
	return ERR_OK;
}

static enum err parse_quantity(struct pctx *x, const char *name, const char *alt,
			       struct store_match *m)
{
	const char *parts[3];
	const char *v;
	int n = split_escaped(x->a, alt, '|', parts, 3);

	if (n != 1 && n != 3)
		return bad(x, name, "a quantity is [prefix]number[|system|code], not '%s'", alt);
	v = parts[0];
	m->cmp = take_prefix(&v);
	if (!parse_decimal(v, &m->num, &m->nlo, &m->nhi))
		return bad(x, name, "'%s' does not start with a number", alt);
	if (n == 3) {
		m->a = *parts[1] ? unescape(x->a, parts[1]) : NULL;
		m->b = *parts[2] ? unescape(x->a, parts[2]) : NULL;
	}
	return ERR_OK;
}

static bool is_type_name(const char *s, size_t n)
{
	char t[64];

	if (n == 0 || n >= sizeof(t))
		return false;
	memcpy(t, s, n);
	t[n] = '\0';
	return fhir_type_find(t) != NULL;
}

/* Can reference parameter 'pd' point at a 'type' (a parameter without a target list: any)? */
static bool is_target(const struct fhir_param *pd, const char *type)
{
	if (!pd->targets)
		return true;
	for (const char *const *t = pd->targets; *t; t++)
		if (!strcmp(*t, type))
			return true;
	return false;
}

/*
 * Does token parameter 'pd' search Identifiers, the only values that get
 * "<code>:of-type" rows (index.c)?  True when an alternative of its path
 * ends in an Identifier element (a trailing .where() filter aside).
 */
static bool is_identifier_param(const struct fhir_param *pd)
{
	static const char *const keys[] = {"identifier", "masterIdentifier", "groupIdentifier",
					   "requisition"};
	const char *s = pd->path;

	while (*s) {
		size_t len = strcspn(s, "|"), step;
		const char *end = s + len, *where, *dot;

		while (end > s && end[-1] == ' ')
			end--;
		where = memmem(s, (size_t)(end - s), ".where(", 7);
		if (where)
			end = where;
		for (dot = end; dot > s && dot[-1] != '.'; dot--)
			;
		step = (size_t)(end - dot);
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strlen(keys[i]) == step && !memcmp(dot, keys[i], step))
				return true;
		s += len;
		while (*s == '|' || *s == ' ')
			s++;
	}
	return false;
}

/*
 * A reference value: Type/id, a bare id, or a URL.  'type_mod' is the
 * :Type modifier (or the type an alias narrows to); 'implied' the one type
 * the parameter can refer to, if it has one: a bare id then names a
 * resource of that type (the only rows the parameter has), which lets the
 * store seek by id and type.
 */
static enum err parse_reference(struct pctx *x, const char *name, const char *type_mod,
				const char *implied, const char *alt, struct store_match *m)
{
	const char *v = unescape(x->a, alt);
	const char *base = fhir_base(x->f);
	size_t bl = strlen(base);
	const char *slash;

	if (!strncmp(v, base, bl) && v[bl] == '/')
		v += bl + 1;
	if (str_starts(v, "http://") || str_starts(v, "https://") || str_starts(v, "urn:")) {
		m->c = v;
		return ERR_OK;
	}
	slash = strchr(v, '/');
	if (slash) {
		const char *hist = strstr(slash + 1, "/_history/");
		size_t idlen = hist ? (size_t)(hist - slash - 1) : strlen(slash + 1);

		if (!is_type_name(v, (size_t)(slash - v)))
			return bad(x, name, "'%s' is not Type/id with a supported type", alt);
		if (hist && !fhir_id_valid(hist + strlen("/_history/")))
			return bad(x, name, "'%s' has no valid version after _history", alt);
		m->a = arena_strndup(x->a, v, (size_t)(slash - v));
		m->b = arena_strndup(x->a, slash + 1, idlen);
		if (type_mod && strcmp(type_mod, m->a))
			return bad(x, name, "'%s' does not refer to a resource type this parameter allows", alt);
	} else {
		m->a = type_mod ? type_mod : implied;
		m->b = v;
	}
	if (!fhir_id_valid(m->b))
		return bad(x, name, "'%s' does not hold a valid resource id", alt);
	return ERR_OK;
}

/* ---- one parameter ---- */

static enum store_ix ix_of(enum fhir_param_kind k)
{
	switch (k) {
	case FHIR_PARAM_TOKEN: return STORE_IX_TOKEN;
	case FHIR_PARAM_STRING: return STORE_IX_STRING;
	case FHIR_PARAM_DATE: return STORE_IX_DATE;
	case FHIR_PARAM_REFERENCE: return STORE_IX_REFERENCE;
	case FHIR_PARAM_QUANTITY: return STORE_IX_QUANTITY;
	case FHIR_PARAM_NUMBER: return STORE_IX_NUMBER;
	case FHIR_PARAM_URI: return STORE_IX_URI;
	}
	return STORE_IX_TOKEN;
}

static enum store_mod mod_of(const char *mod, enum fhir_param_kind k, bool *ok)
{
	*ok = true;
	if (!mod)
		return STORE_MOD_NONE;
	if (!strcmp(mod, "missing"))
		return STORE_MOD_MISSING;
	switch (k) {
	case FHIR_PARAM_TOKEN:
		if (!strcmp(mod, "not"))
			return STORE_MOD_NOT;
		if (!strcmp(mod, "text"))
			return STORE_MOD_TEXT;
		if (!strcmp(mod, "of-type"))
			return STORE_MOD_OF_TYPE;
		break;
	case FHIR_PARAM_STRING:
		if (!strcmp(mod, "exact"))
			return STORE_MOD_EXACT;
		if (!strcmp(mod, "contains"))
			return STORE_MOD_CONTAINS;
		break;
	case FHIR_PARAM_URI:
		if (!strcmp(mod, "below"))
			return STORE_MOD_BELOW;
		if (!strcmp(mod, "above"))
			return STORE_MOD_ABOVE;
		break;
	case FHIR_PARAM_REFERENCE:
		/* a type modifier (subject:Patient) is handled by the caller */
		break;
	default:
		break;
	}
	*ok = false;
	return STORE_MOD_NONE;
}

/*
 * Fill 'cond' for parameter 'pd' (of 'type') with modifier 'mod' and value
 * 'value' (comma list).  'name' is the parameter as written, for messages.
 */
static enum err build_cond(struct pctx *x, const char *name, const struct fhir_param *pd,
			   const char *mod, const char *value, struct store_cond *cond)
{
	const char *alts[MAX_ALTERNATIVES];
	const char *type_mod = NULL, *implied = NULL;
	struct store_match *m;
	enum store_mod smod;
	bool ok;
	int n, i;
	enum err e;

	if (strlen(value) > MAX_VALUE_LEN)
		return bad(x, name, "value is longer than %s bytes", "2048");
	cond->kind = ix_of(pd->kind);
	cond->param = pd->code;
	if (pd->kind == FHIR_PARAM_REFERENCE && mod && strcmp(mod, "missing")) {
		if (!fhir_type_find(mod))
			return bad(x, name, "unknown modifier ':%s' for a reference", mod);
		if (!is_target(pd, mod))
			return bad(x, name, "this parameter never refers to a %s", mod);
		type_mod = mod;
		smod = STORE_MOD_NONE;
	} else {
		smod = mod_of(mod, pd->kind, &ok);
		if (!ok)
			return bad(x, name, "modifier ':%s' does not apply to this parameter", mod);
	}
	if (pd->kind == FHIR_PARAM_REFERENCE) {
		/* an alias ("patient") searches its base's rows ("subject") narrowed to its type */
		const char *tt;
		cond->param = fhir_param_base(pd, &tt)->code;
		if (tt && !type_mod)
			type_mod = tt;
		if (tt && smod == STORE_MOD_MISSING) {
			/*
			 * Only the base's references to that type are the alias's
			 * values: Observation?patient:missing=true matches an
			 * Observation about a Group.  So "no reference to a Patient"
			 * (:not) or "some reference to a Patient"; a reference whose
			 * row does not say its type (another server's) counts as one.
			 */
			if (strcmp(value, "true") && strcmp(value, "false"))
				return bad(x, name, ":missing takes true or false, not '%s'", value);
			m = arena_zalloc(x->a, sizeof(*m));
			m->a = tt;
			cond->mod = strcmp(value, "true") ? STORE_MOD_NONE : STORE_MOD_NOT;
			cond->m = m;
			cond->nm = 1;
			return ERR_OK;
		}
	}
	if (smod == STORE_MOD_OF_TYPE) {
		if (!is_identifier_param(pd))
			return bad(x, name, "':of-type' applies to identifier parameters only%s", "");
		cond->param = arena_printf(x->a, "%s%s", pd->code, FHIR_OF_TYPE_SUFFIX);
	}
	cond->mod = smod;
	if (smod == STORE_MOD_MISSING) {
		if (!strcmp(value, "true"))
			cond->mod = STORE_MOD_MISSING;
		else if (!strcmp(value, "false"))
			cond->mod = STORE_MOD_PRESENT;
		else
			return bad(x, name, ":missing takes true or false, not '%s'", value);
		return ERR_OK;
	}
	if (pd->kind == FHIR_PARAM_REFERENCE && pd->targets && pd->targets[0] && !pd->targets[1])
		implied = pd->targets[0];
	n = split_escaped(x->a, value, ',', alts, MAX_ALTERNATIVES);
	if (n < 0)
		return bad(x, name, "more than %s alternatives", "64");
	m = arena_zalloc(x->a, sizeof(*m) * (size_t)n);
	for (i = 0; i < n; i++) {
		if (!*alts[i])
			return bad(x, name, "empty value in '%s'", value);
		switch (pd->kind) {
		case FHIR_PARAM_TOKEN: e = parse_token(x, name, smod, alts[i], &m[i]); break;
		case FHIR_PARAM_STRING: e = parse_string(x, smod, alts[i], &m[i]); break;
		case FHIR_PARAM_DATE: e = parse_date(x, name, alts[i], &m[i]); break;
		case FHIR_PARAM_NUMBER: e = parse_number(x, name, alts[i], &m[i]); break;
		case FHIR_PARAM_QUANTITY: e = parse_quantity(x, name, alts[i], &m[i]); break;
		case FHIR_PARAM_REFERENCE:
			e = parse_reference(x, name, type_mod, implied, alts[i], &m[i]);
			break;
		case FHIR_PARAM_URI: m[i].a = unescape(x->a, alts[i]); e = ERR_OK; break;
		default: e = bad(x, name, "unsupported parameter kind%s", "");
		}
		if (e)
			return e;
	}
	cond->m = m;
	cond->nm = (size_t)n;
	return ERR_OK;
}

/* Split "code:mod" (mod may be NULL). */
static void split_mod(struct arena *a, const char *name, const char **code, const char **mod)
{
	const char *colon = strchr(name, ':');

	if (colon) {
		*code = arena_strndup(a, name, (size_t)(colon - name));
		*mod = arena_strdup(a, colon + 1);
	} else {
		*code = name;
		*mod = NULL;
	}
}

/*
 * The single target type of a reference parameter that has 'sub' (for
 * chains); *hits says how many target types have it.
 */
static const char *chain_target(const struct fhir_param *pd, const char *type_mod, const char *sub,
				int *hits)
{
	const char *found = NULL;

	*hits = 0;
	if (type_mod) {
		*hits = 1;
		return type_mod;
	}
	if (pd->targets) {
		for (const char *const *t = pd->targets; *t; t++) {
			if (fhir_param_find(*t, sub)) {
				found = *t;
				(*hits)++;
			}
		}
		return *hits == 1 ? found : NULL;
	}
	for (const struct fhir_type *t = fhir_types; t->name; t++) {
		if (fhir_param_find(t->name, sub)) {
			found = t->name;
			(*hits)++;
		}
	}
	return *hits == 1 ? found : NULL;
}

/*
 * Parse one search parameter 'name=value' for 'type' into 'cond'.
 * Returns ERR_NOTFOUND (no message) for an unknown parameter.
 */
static enum err parse_param(struct pctx *x, const char *type, const char *name, const char *value,
			    struct store_cond *cond)
{
	const char *dot, *code, *mod;
	const struct fhir_param *pd;
	enum err e;

	if (str_starts(name, "_has:")) {
		/* _has:Type:refparam:param[:mod] */
		const char *parts[4];
		int n = split_escaped(x->a, name + 5, ':', parts, 4);
		const struct fhir_param *ref, *sub;
		struct store_cond *hc;

		if (n < 3)
			return bad(x, name, "_has takes _has:Type:reference:parameter, not '%s'", name);
		if (!fhir_type_find(parts[0]))
			return bad(x, name, "unknown resource type '%s' in _has", parts[0]);
		ref = fhir_param_find(parts[0], parts[1]);
		if (!ref || ref->kind != FHIR_PARAM_REFERENCE)
			return bad(x, name, "'%s' is not a reference parameter of that type", parts[1]);
		if (!is_target(ref, type))
			return bad(x, name, "'%s' never refers to the resource type searched", parts[1]);
		sub = fhir_param_find(parts[0], parts[2]);
		if (!sub)
			return bad(x, name, "unknown parameter '%s' in _has", parts[2]);
		hc = arena_zalloc(x->a, sizeof(*hc));
		if ((e = build_cond(x, name, sub, n == 4 ? parts[3] : NULL, value, hc)))
			return e;
		cond->has_type = parts[0];
		cond->has_param = fhir_param_base(ref, NULL)->code;
		cond->has = hc;
		cond->kind = STORE_IX_REFERENCE;
		cond->param = ref->code;
		return ERR_OK;
	}
	dot = strchr(name, '.');
	if (dot) {
		/* chain: ref[:Type].param[:mod] */
		const char *head = arena_strndup(x->a, name, (size_t)(dot - name));
		const char *subcode, *submod, *target;
		const struct fhir_param *sub;
		struct store_cond *cc;
		int hits;

		split_mod(x->a, head, &code, &mod);
		pd = fhir_param_find(type, code);
		if (!pd)
			return ERR_NOTFOUND;
		if (pd->kind != FHIR_PARAM_REFERENCE)
			return bad(x, name, "'%s' is not a reference parameter and cannot be chained", code);
		if (mod && !fhir_type_find(mod))
			return bad(x, name, "unknown type modifier ':%s'", mod);
		if (mod && !is_target(pd, mod))
			return bad(x, name, "this reference parameter never refers to a %s", mod);
		if (strchr(dot + 1, '.'))
			return bad(x, name, "only one level of chaining is supported (%s)", name);
		split_mod(x->a, dot + 1, &subcode, &submod);
		target = chain_target(pd, mod, subcode, &hits);
		if (!target && hits == 0)
			return bad(x, name, "'%s' is not a search parameter of a type this reference points at",
				   subcode);
		if (!target)
			return bad(x, name, "cannot tell which resource type '%s' chains to; add a type, e.g. subject:Patient.name",
				   name);
		sub = fhir_param_find(target, subcode);
		if (!sub)
			return bad(x, name, "'%s' is not a search parameter of the chained type", subcode);
		cc = arena_zalloc(x->a, sizeof(*cc));
		if ((e = build_cond(x, name, sub, submod, value, cc)))
			return e;
		cond->kind = STORE_IX_REFERENCE;
		cond->param = fhir_param_base(pd, NULL)->code;
		cond->chain_type = target;
		cond->chain = cc;
		return ERR_OK;
	}
	split_mod(x->a, name, &code, &mod);
	pd = fhir_param_find(type, code);
	if (!pd)
		return ERR_NOTFOUND;
	return build_cond(x, name, pd, mod, value, cond);
}

/* ---- result parameters ---- */

static enum err parse_sort(struct pctx *x, const char *type, const char *value,
			   struct search_parsed *p)
{
	const char *keys[STORE_SORT_MAX + 1];
	int n = split_escaped(x->a, value, ',', keys, STORE_SORT_MAX);

	if (n < 0)
		return bad(x, "_sort", "at most %s sort keys", "4");
	for (int i = 0; i < n; i++) {
		const char *k = keys[i];
		struct store_sort *s = &p->sort[i];
		const struct fhir_param *pd;

		s->desc = *k == '-';
		if (s->desc)
			k++;
		if (!strcmp(k, "_id")) {
			s->by = STORE_SORT_ID;
		} else if (!strcmp(k, "_lastUpdated")) {
			s->by = STORE_SORT_LAST_UPDATED;
		} else {
			pd = type ? fhir_param_find(type, k) : NULL;
			if (!pd)
				return bad(x, "_sort", "cannot sort by '%s': not a search parameter of this type", k);
			if (pd->kind == FHIR_PARAM_REFERENCE)
				return bad(x, "_sort", "cannot sort by the reference parameter '%s'", k);
			s->by = STORE_SORT_PARAM;
			s->kind = ix_of(pd->kind);
			s->param = pd->code;
		}
	}
	p->q.sort = p->sort;
	p->q.nsort = (size_t)n;
	return ERR_OK;
}

static enum err parse_include(struct pctx *x, const char *name, const char *value,
			      struct search_parsed *p)
{
	const char *parts[4];
	struct search_include *inc;
	bool reverse = str_starts(name, "_revinclude");
	const char *mod = strchr(name, ':');
	int n;

	if (mod && strcmp(mod, ":iterate") && strcmp(mod, ":recurse"))
		return bad(x, name, "unknown modifier on %s", name);
	if (p->ninc == SEARCH_MAX_INCLUDES)
		return bad(x, name, "at most %s _include/_revinclude parameters", "16");
	inc = &p->inc[p->ninc];
	memset(inc, 0, sizeof(*inc));
	inc->iterate = mod != NULL;
	inc->reverse = reverse;
	if (!strcmp(value, "*")) {
		if (reverse)
			return bad(x, name, "'%s' needs Type:parameter", value);
		inc->src_type = NULL;
		p->ninc++;
		return ERR_OK;
	}
	n = split_escaped(x->a, value, ':', parts, 3);
	if (n < 2 || !fhir_type_find(parts[0]))
		return bad(x, name, "'%s' is not Type:parameter[:TargetType]", value);
	inc->src_type = parts[0];
	if (!strcmp(parts[1], "*")) {
		inc->param = NULL;
	} else {
		const struct fhir_param *pd = fhir_param_find(parts[0], parts[1]);
		if (!pd || pd->kind != FHIR_PARAM_REFERENCE)
			return bad(x, name, "'%s' is not a reference parameter", value);
		inc->param = fhir_param_base(pd, &inc->target_type)->code;
	}
	if (n == 3) {
		if (!fhir_type_find(parts[2]))
			return bad(x, name, "unknown target type in '%s'", value);
		if (inc->target_type && strcmp(inc->target_type, parts[2]))
			return bad(x, name, "'%s' names a target type the parameter never refers to", value);
		inc->target_type = parts[2];
	}
	p->ninc++;
	return ERR_OK;
}

/* Percent-encode for a query string: unreserved characters (and ':') stay. */
static void qs_encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == ':') {
			buf_addch(b, (char)ch);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			buf_add(b, e, 3);
		}
	}
}

void search_applied_add(struct search_parsed *p, const char *name, const char *value)
{
	if (p->applied.len)
		buf_addch(&p->applied, '&');
	qs_encode(&p->applied, name);
	buf_addch(&p->applied, '=');
	qs_encode(&p->applied, value);
}

static bool is_ignored_result_param(const char *name)
{
	return !strcmp(name, "_format") || !strcmp(name, "_pretty");
}

enum err fhir_search_parse(struct fhir *f, struct arena *a, const struct fhir_search_req *r,
			   struct search_parsed *p, struct ctx *c)
{
	struct pctx x = {f, a, c};
	struct store_cond cond;
	const char *last_sort = NULL, *last_total = NULL, *last_summary = NULL;
	size_t i;
	enum err e;

	p->count = f->opts.page_size;
	p->q.type = r->type;
	p->q.patient = r->patient;
	/*
	 * Without _total, the total is given only when it costs nothing: when
	 * the first page holds every match (search.c).  _total=accurate or
	 * estimate asks for a count of every match.
	 */
	p->q.total = STORE_TOTAL_NONE;
	for (i = 0; i < r->nparams; i++) {
		const char *name = r->params[i].name, *value = r->params[i].value;

		if (!value)
			value = "";
		/* the HTTP layer refuses such bytes; a caller that did not gets the same answer */
		if (!str_utf8_valid(name, strlen(name)))
			return ctx_errorf(c, ERR_INVALID, "a parameter name is not valid UTF-8");
		if (!str_utf8_valid(value, strlen(value)))
			return bad(&x, name, "the value is not valid UTF-8%s", "");
		if (is_ignored_result_param(name))
			continue;
		if (!strcmp(name, "_count")) {
			if (str_to_i64(value, 0, INT64_MAX, &p->count))
				return bad(&x, name, "'%s' is not a non-negative integer", value);
			if (p->count > f->opts.page_max)
				p->count = f->opts.page_max;
			p->count_given = true;
			continue;
		}
		if (!strcmp(name, "_page")) {
			bool back;
			if (search_cursor_decode(value, &p->q.cursor, &back))
				return bad(&x, name, "'%s' is not a page cursor of this server", value);
			p->q.backward = back;
			p->has_cursor = true;
			continue;
		}
		if (!strcmp(name, "_sort")) {
			if ((e = parse_sort(&x, r->type, value, p)))
				return e;
			last_sort = value; /* the last one applies: the self link shows it alone */
			continue;
		}
		if (!strcmp(name, "_total")) {
			p->total_given = true;
			if (!strcmp(value, "none"))
				p->q.total = STORE_TOTAL_NONE;
			else if (!strcmp(value, "estimate"))
				p->q.total = STORE_TOTAL_ESTIMATE;
			else if (!strcmp(value, "accurate"))
				p->q.total = STORE_TOTAL_ACCURATE;
			else
				return bad(&x, name, "'%s' is not none, estimate or accurate", value);
			last_total = value;
			continue;
		}
		if (!strcmp(name, "_summary")) {
			if (!strcmp(value, "true"))
				p->summary = SUMMARY_TRUE;
			else if (!strcmp(value, "false"))
				p->summary = SUMMARY_NONE;
			else if (!strcmp(value, "text"))
				p->summary = SUMMARY_TEXT;
			else if (!strcmp(value, "data"))
				p->summary = SUMMARY_DATA;
			else if (!strcmp(value, "count"))
				p->summary = SUMMARY_COUNT;
			else
				return bad(&x, name, "'%s' is not true, false, text, data or count", value);
			last_summary = value;
			continue;
		}
		if (!strcmp(name, "_elements")) {
			const char *els[SEARCH_MAX_ELEMENTS];
			int n = split_escaped(a, value, ',', els, SEARCH_MAX_ELEMENTS);
			if (n < 0)
				return bad(&x, name, "at most %s elements", "64");
			for (int k = 0; k < n; k++) {
				const char *el = els[k];
				if (strchr(el, '.'))
					el = strchr(el, '.') + 1; /* "Patient.name" means "name" */
				if (!*el)
					continue;
				if (p->nelements == SEARCH_MAX_ELEMENTS)
					return bad(&x, name, "at most %s elements", "64");
				p->elements[p->nelements++] = el;
			}
			search_applied_add(p, name, value);
			continue;
		}
		if (!strcmp(name, "_include") || str_starts(name, "_include:") ||
		    !strcmp(name, "_revinclude") || str_starts(name, "_revinclude:")) {
			if ((e = parse_include(&x, name, value, p)))
				return e;
			search_applied_add(p, name, value);
			continue;
		}
		if (!r->type) {
			/* $everything takes only _since, _type, _count (handled by the caller) */
			goto unknown;
		}
		memset(&cond, 0, sizeof(cond));
		e = parse_param(&x, r->type, name, value, &cond);
		if (e == ERR_NOTFOUND)
			goto unknown;
		if (e)
			return e;
		if (p->nconds == SEARCH_MAX_CONDS)
			return bad(&x, name, "more than %s search parameters", "64");
		p->conds[p->nconds++] = cond;
		search_applied_add(p, name, value);
		continue;
unknown:
		if (r->strict)
			return ctx_errorx(c, ERR_INVALID, name,
					  "unknown search parameter '%s' for %s (Prefer: handling=strict)",
					  name, r->type ? r->type : "$everything");
		if (p->ignored.len)
			buf_adds(&p->ignored, ", ");
		buf_adds(&p->ignored, name);
	}
	if (last_sort)
		search_applied_add(p, "_sort", last_sort);
	if (last_total)
		search_applied_add(p, "_total", last_total);
	if (last_summary)
		search_applied_add(p, "_summary", last_summary);
	p->q.conds = p->conds;
	p->q.nconds = p->nconds;
	p->q.limit = p->summary == SUMMARY_COUNT ? 0 : p->count;
	snprintf(p->count_text, sizeof(p->count_text), "%lld", (long long)p->count);
	if (p->summary == SUMMARY_COUNT && p->q.total == STORE_TOTAL_NONE)
		p->q.total = STORE_TOTAL_ACCURATE;
	return ERR_OK;
}

/* ---- cursors ---- */

/* Append the decimal form of 'v'. */
static void add_i64(struct buf *b, int64_t v)
{
	char d[24];
	int n = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		d[sizeof(d) - 1 - n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		d[sizeof(d) - 1 - n++] = '-';
	buf_add(b, d + sizeof(d) - n, (size_t)n);
}

/*
 * The cursor as base64url of {"s":snapshot,"r":rid,"b":backward,"k":[key,
 * key, key, key]}, each key null, a string, or [integer, real].  Written
 * by hand (two links a page; building it with jansson, or with printf,
 * showed in profiles); search_cursor_decode() reads it with jansson.
 */
enum err search_cursor_encode(const struct store_cursor *cur, bool backward, struct buf *out)
{
	struct buf tmp = BUF_INIT(4096);
	enum err e;

	buf_adds(&tmp, "{\"s\":");
	add_i64(&tmp, cur->snapshot_rid);
	buf_adds(&tmp, ",\"r\":");
	add_i64(&tmp, cur->rid);
	buf_adds(&tmp, backward ? ",\"b\":true,\"k\":[" : ",\"b\":false,\"k\":[");
	for (int i = 0; i < STORE_SORT_MAX; i++) {
		if (i)
			buf_addch(&tmp, ',');
		if (cur->key[i].null || (!cur->key[i].s[0] && !isfinite(cur->key[i].r))) {
			buf_adds(&tmp, "null");
		} else if (cur->key[i].s[0]) {
			buf_addch(&tmp, '"');
			buf_add_json_str(&tmp, cur->key[i].s, strnlen(cur->key[i].s, sizeof(cur->key[i].s)));
			buf_addch(&tmp, '"');
		} else {
			buf_addch(&tmp, '[');
			add_i64(&tmp, cur->key[i].i);
			if (cur->key[i].r == 0)
				buf_adds(&tmp, ",0]");
			else
				buf_addf(&tmp, ",%.17g]", cur->key[i].r);
		}
	}
	buf_adds(&tmp, "]}");
	e = tmp.err;
	if (!e)
		e = base64url_encode(tmp.data, tmp.len, out);
	buf_release(&tmp);
	return e;
}

enum err search_cursor_decode(const char *token, struct store_cursor *cur, bool *backward)
{
	struct buf tmp = BUF_INIT(4096);
	json_t *doc = NULL, *keys, *k;
	json_int_t snap, rid;
	int back = 0;
	size_t i;
	enum err e = ERR_INVALID;

	memset(cur, 0, sizeof(*cur));
	if (strlen(token) > 2048 || base64url_decode(token, strlen(token), &tmp))
		goto out;
	doc = json_loadb(tmp.data, tmp.len, 0, NULL);
	if (!doc || json_unpack(doc, "{s:I,s:I,s:b,s:o}", "s", &snap, "r", &rid, "b", &back, "k", &keys))
		goto out;
	if (!json_is_array(keys) || json_array_size(keys) != STORE_SORT_MAX || snap < 0 || rid < 0)
		goto out;
	json_array_foreach(keys, i, k) {
		if (json_is_null(k)) {
			cur->key[i].null = true;
		} else if (json_is_string(k)) {
			if (json_string_length(k) >= sizeof(cur->key[i].s) || json_string_length(k) == 0)
				goto out;
			str_copy(cur->key[i].s, json_string_value(k), sizeof(cur->key[i].s));
		} else if (json_is_array(k) && json_array_size(k) == 2 &&
			   json_is_integer(json_array_get(k, 0)) && json_is_number(json_array_get(k, 1))) {
			cur->key[i].i = json_integer_value(json_array_get(k, 0));
			cur->key[i].r = json_number_value(json_array_get(k, 1));
		} else {
			goto out;
		}
	}
	cur->set = true;
	cur->snapshot_rid = snap;
	cur->rid = rid;
	*backward = back != 0;
	e = ERR_OK;
out:
	json_decref(doc);
	buf_release(&tmp);
	return e;
}
