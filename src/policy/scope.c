/*
 * scope.c - SMART scope sets: parsing, formatting, intersection,
 * coverage, consent restriction and per-interaction decisions.  See
 * scope.h.
 *
 * A set is built once (parse, intersect, restrict) and then only read.
 * While it is built, resource scopes are deduplicated by their written
 * form through a small open-addressing table of hashes, so that building
 * stays linear even when an intersection pairs hundreds of scopes.
 */
#include "policy/scope.h"

#include <stdint.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "core/url.h"

struct scope_set {
	unsigned flags;
	struct scope_res *res;
	uint32_t *hash;        /* hash of res[i]'s written form */
	size_t nres, capres;
	uint32_t *slots;       /* index + 1 into res[], 0 when empty */
	size_t nslots;         /* a power of two, at least twice nres */
	char **ign;
	size_t nign, capign;
};

static const struct {
	const char *name;
	unsigned flag;
} flag_names[] = {
	{"openid", SCOPE_OPENID},
	{"fhirUser", SCOPE_FHIRUSER},
	{"profile", SCOPE_PROFILE},
	{"launch", SCOPE_LAUNCH},
	{"launch/patient", SCOPE_LAUNCH_PATIENT},
	{"launch/encounter", SCOPE_LAUNCH_ENCOUNTER},
	{"offline_access", SCOPE_OFFLINE},
	{"online_access", SCOPE_ONLINE},
};
#define NFLAGS (sizeof(flag_names) / sizeof(flag_names[0]))

static const char *const ctx_names[] = {"patient", "user", "system"};

#define PERMS_RS (SCOPE_R | SCOPE_S)
#define PERMS_CUD (SCOPE_C | SCOPE_U | SCOPE_D)

/* ---- sets ---- */

static struct scope_set *set_new(void)
{
	return xcalloc(1, sizeof(struct scope_set));
}

void scope_set_free(struct scope_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->nign; i++)
		free(set->ign[i]);
	free(set->ign);
	free(set->res);
	free(set->hash);
	free(set->slots);
	free(set);
}

unsigned scope_flags(const struct scope_set *set)
{
	return set ? set->flags : 0;
}

size_t scope_count(const struct scope_set *set)
{
	return set ? set->nres : 0;
}

const struct scope_res *scope_at(const struct scope_set *set, size_t i)
{
	return set && i < set->nres ? &set->res[i] : NULL;
}

size_t scope_ignored_count(const struct scope_set *set)
{
	return set ? set->nign : 0;
}

const char *scope_ignored_at(const struct scope_set *set, size_t i)
{
	return set && i < set->nign ? set->ign[i] : NULL;
}

bool scope_has_ctx(const struct scope_set *set, enum scope_ctx ctx)
{
	for (size_t i = 0; i < scope_count(set); i++)
		if (set->res[i].ctx == ctx)
			return true;
	return false;
}

/* Can the permissions be written as v1 (.read, .write, .*)? */
static bool v1_expressible(unsigned perms)
{
	return perms == PERMS_RS || perms == PERMS_CUD || perms == SCOPE_CRUDS;
}

/* The permission part of the written form ("read", "rs", ...) into out[6]. */
static const char *suffix(const struct scope_res *r, char out[6])
{
	static const char letters[] = "cruds";
	size_t k = 0;

	if (r->v1) {
		if (r->perms == PERMS_RS)
			return "read";
		if (r->perms == PERMS_CUD)
			return "write";
		return "*";
	}
	for (int i = 0; i < 5; i++)
		if (r->perms & (1u << i))
			out[k++] = letters[i];
	out[k] = '\0';
	return out;
}

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static uint32_t fnv_str(uint32_t h, const char *s)
{
	return fnv(h, s, strlen(s) + 1); /* the NUL separates fields */
}

static uint32_t res_hash(const struct scope_res *r)
{
	char sfx[6];
	uint32_t h = 2166136261u;

	h = fnv_str(h, ctx_names[r->ctx]);
	h = fnv_str(h, r->type);
	h = fnv_str(h, suffix(r, sfx));
	for (size_t i = 0; i < r->nq; i++) {
		h = fnv_str(h, r->q[i].name);
		h = fnv_str(h, r->q[i].value);
	}
	return h;
}

static bool kv_eq(const struct scope_kv *a, const struct scope_kv *b)
{
	return !strcmp(a->name, b->name) && !strcmp(a->value, b->value);
}

/* Same written form? (both normalized: v1 only when expressible) */
static bool res_same(const struct scope_res *a, const struct scope_res *b)
{
	if (a->ctx != b->ctx || a->perms != b->perms || a->v1 != b->v1 || a->nq != b->nq ||
	    strcmp(a->type, b->type))
		return false;
	for (size_t i = 0; i < a->nq; i++)
		if (!kv_eq(&a->q[i], &b->q[i]))
			return false;
	return true;
}

static void slots_rebuild(struct scope_set *set, size_t nslots)
{
	free(set->slots);
	set->slots = xcalloc(nslots, sizeof(*set->slots));
	set->nslots = nslots;
	for (size_t i = 0; i < set->nres; i++) {
		size_t k = set->hash[i] & (nslots - 1);
		while (set->slots[k])
			k = (k + 1) & (nslots - 1);
		set->slots[k] = (uint32_t)(i + 1);
	}
}

/*
 * Add a copy of 'in' unless a scope with the same written form is there.
 * ERR_INVALID past SCOPE_TOKENS_MAX (which also bounds the work of an
 * intersection).
 */
static enum err add_res(struct scope_set *set, const struct scope_res *in, struct ctx *c)
{
	struct scope_res r = *in;
	uint32_t h;
	size_t k;

	if (r.v1 && (r.nq || !v1_expressible(r.perms)))
		r.v1 = false;
	h = res_hash(&r);
	if (set->nslots) {
		for (k = h & (set->nslots - 1); set->slots[k]; k = (k + 1) & (set->nslots - 1)) {
			size_t i = set->slots[k] - 1;
			if (set->hash[i] == h && res_same(&set->res[i], &r))
				return ERR_OK;
		}
	}
	if (set->nres == SCOPE_TOKENS_MAX)
		return ctx_errorf(c, ERR_INVALID, "the scopes come to more than %d scopes",
				  SCOPE_TOKENS_MAX);
	if (set->nres == set->capres) {
		set->capres = set->capres ? 2 * set->capres : 8;
		set->res = xrealloc(set->res, set->capres * sizeof(*set->res));
		set->hash = xrealloc(set->hash, set->capres * sizeof(*set->hash));
	}
	set->res[set->nres] = r;
	set->hash[set->nres] = h;
	set->nres++;
	if (2 * set->nres > set->nslots) {
		slots_rebuild(set, set->nslots ? 2 * set->nslots : 16);
	} else {
		for (k = h & (set->nslots - 1); set->slots[k]; k = (k + 1) & (set->nslots - 1))
			;
		set->slots[k] = (uint32_t)set->nres;
	}
	return ERR_OK;
}

static void add_ignored(struct scope_set *set, const char *tok, size_t n)
{
	for (size_t i = 0; i < set->nign; i++)
		if (strlen(set->ign[i]) == n && !memcmp(set->ign[i], tok, n))
			return;
	if (set->nign == set->capign) {
		set->capign = set->capign ? 2 * set->capign : 4;
		set->ign = xrealloc(set->ign, set->capign * sizeof(*set->ign));
	}
	set->ign[set->nign++] = xstrndup(tok, n);
}

/* ---- parsing ---- */

static bool is_upper(char ch)
{
	return ch >= 'A' && ch <= 'Z';
}

static bool is_alpha(char ch)
{
	return is_upper(ch) || (ch >= 'a' && ch <= 'z');
}

static bool is_ctl(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f;
}

/* "*" or [A-Z][A-Za-z]{0,62} */
static bool type_ok(const char *s, size_t n)
{
	if (n == 1 && s[0] == '*')
		return true;
	if (n == 0 || n >= SCOPE_TYPE_MAX || !is_upper(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alpha(s[i]))
			return false;
	return true;
}

/* v1 word or v2 letters in cruds order; 0 when neither. */
static unsigned perms_parse(const char *s, size_t n, bool *v1)
{
	static const char letters[] = "cruds";
	unsigned perms = 0;
	int next = 0;

	*v1 = true;
	if (n == 4 && !memcmp(s, "read", 4))
		return PERMS_RS;
	if (n == 5 && !memcmp(s, "write", 5))
		return PERMS_CUD;
	if (n == 1 && s[0] == '*')
		return SCOPE_CRUDS;
	*v1 = false;
	for (size_t i = 0; i < n; i++) {
		const char *p = next < 5 ? memchr(letters + next, s[i], (size_t)(5 - next)) : NULL;
		if (!p)
			return 0;
		next = (int)(p - letters) + 1;
		perms |= 1u << (p - letters);
	}
	return perms;
}

/* Is s[0..n) (decoded) acceptable as a name or value: no controls, valid UTF-8? */
static bool text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_ctl((unsigned char)s[i]))
			return false;
	return str_utf8_valid(s, n);
}

/*
 * May byte 'ch' stand for itself in a written parameter name (is_name) or
 * value?  Printable ASCII but space, '"' and '\\' (not scope-token
 * characters in RFC 6749), '%' (the escape) and '&' (the separator); '='
 * only in a value.  The parser accepts exactly these raw and the
 * formatter writes exactly these raw, so formatting never lengthens what
 * was parsed.
 */
static bool raw_ok(unsigned char ch, bool is_name)
{
	if (ch <= 0x20 || ch >= 0x7f)
		return false;
	return !strchr(is_name ? "\"\\%&=" : "\"\\%&", ch);
}

/*
 * Percent-decode s[0..n) into out[cap] (NUL-terminated); false if
 * malformed, empty, too long, or holding a byte that must be escaped.
 */
static bool decode_into(const char *s, size_t n, char *out, size_t cap, bool is_name)
{
	char tmp[3 * SCOPE_KV_VALUE_MAX];
	long k;

	if (n == 0 || n > 3 * (cap - 1) || n > sizeof(tmp))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '%' && !raw_ok((unsigned char)s[i], is_name))
			return false;
	k = url_pct_decode_mem(s, n, false, tmp);
	if (k <= 0 || (size_t)k > cap - 1 || !text_ok(tmp, (size_t)k))
		return false;
	memcpy(out, tmp, (size_t)k);
	out[k] = '\0';
	return true;
}

/* name=value(&name=value)* into r->q; false when malformed. */
static bool query_parse(const char *s, size_t n, struct scope_res *r)
{
	size_t start = 0;

	r->nq = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i <= n; i++) {
		const char *part, *eq;
		size_t len;

		if (i < n && s[i] != '&')
			continue;
		part = s + start;
		len = i - start;
		start = i + 1;
		if (r->nq == SCOPE_KV_MAX)
			return false;
		eq = memchr(part, '=', len);
		if (!eq)
			return false;
		if (!decode_into(part, (size_t)(eq - part), r->q[r->nq].name, SCOPE_KV_NAME_MAX,
				 true) ||
		    !decode_into(eq + 1, len - (size_t)(eq - part) - 1, r->q[r->nq].value,
				 SCOPE_KV_VALUE_MAX, false))
			return false;
		r->nq++;
	}
	return true;
}

/* A resource scope token into *r; false when it is not one. */
static bool res_parse(const char *tok, size_t n, struct scope_res *r)
{
	const char *end = tok + n, *p = NULL, *dot, *qm;
	size_t i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < 3; i++) {
		size_t k = strlen(ctx_names[i]);
		if (n > k && !memcmp(tok, ctx_names[i], k) && tok[k] == '/') {
			r->ctx = (enum scope_ctx)i;
			p = tok + k + 1;
			break;
		}
	}
	if (!p)
		return false;
	dot = memchr(p, '.', (size_t)(end - p));
	if (!dot || !type_ok(p, (size_t)(dot - p)))
		return false;
	memcpy(r->type, p, (size_t)(dot - p));
	r->type[dot - p] = '\0';
	p = dot + 1;
	qm = memchr(p, '?', (size_t)(end - p));
	r->perms = perms_parse(p, (size_t)((qm ? qm : end) - p), &r->v1);
	if (!r->perms)
		return false;
	if (qm && (r->v1 || !query_parse(qm + 1, (size_t)(end - qm - 1), r)))
		return false;
	return true;
}

enum err scope_parse(const char *s, struct scope_set **out, struct ctx *c)
{
	struct scope_set *set = NULL;
	size_t len, ntok = 0, i, start;
	enum err rc = ERR_OK;

	*out = NULL;
	if (!s)
		s = "";
	len = strnlen(s, SCOPE_STRING_MAX + 1);
	if (len > SCOPE_STRING_MAX)
		return ctx_errorf(c, ERR_INVALID, "the scope string is longer than %d bytes",
				  SCOPE_STRING_MAX);
	for (i = 0; i < len; i++) {
		if (is_ctl((unsigned char)s[i]))
			return ctx_errorf(c, ERR_INVALID,
					  "the scope string holds a control character (0x%02x at byte %zu)",
					  (unsigned char)s[i], i);
		if (s[i] != ' ' && (i == 0 || s[i - 1] == ' '))
			ntok++;
	}
	if (ntok > SCOPE_TOKENS_MAX)
		return ctx_errorf(c, ERR_INVALID, "the scope string holds more than %d scopes",
				  SCOPE_TOKENS_MAX);

	set = set_new();
	for (i = start = 0; i <= len; i++) {
		const char *tok = s + start;
		size_t n = i - start, f;
		struct scope_res r;

		if (i < len && s[i] != ' ')
			continue;
		start = i + 1;
		if (n == 0)
			continue;
		for (f = 0; f < NFLAGS; f++)
			if (strlen(flag_names[f].name) == n && !memcmp(flag_names[f].name, tok, n))
				break;
		if (f < NFLAGS)
			set->flags |= flag_names[f].flag;
		else if (res_parse(tok, n, &r))
			rc = add_res(set, &r, c); /* cannot fail: at most SCOPE_TOKENS_MAX */
		else
			add_ignored(set, tok, n);
		if (rc)
			break;
	}
	if (rc) {
		scope_set_free(set);
		return rc;
	}
	*out = set;
	return ERR_OK;
}

/* ---- formatting ---- */

static void add_encoded(struct buf *out, const char *s, bool is_name)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (raw_ok(ch, is_name)) {
			buf_addch(out, (char)ch);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			buf_add(out, e, 3);
		}
	}
}

enum err scope_res_format(const struct scope_res *r, struct buf *out)
{
	struct scope_res n = *r;
	char sfx[6];

	if (n.v1 && (n.nq || !v1_expressible(n.perms)))
		n.v1 = false;
	buf_addf(out, "%s/%s.%s", ctx_names[n.ctx], n.type, suffix(&n, sfx));
	for (size_t i = 0; i < n.nq; i++) {
		buf_addch(out, i ? '&' : '?');
		add_encoded(out, n.q[i].name, true);
		buf_addch(out, '=');
		add_encoded(out, n.q[i].value, false);
	}
	return out->err;
}

enum err scope_format(const struct scope_set *set, struct buf *out, struct ctx *c)
{
	bool first = true;

	for (size_t f = 0; f < NFLAGS; f++) {
		if (!(scope_flags(set) & flag_names[f].flag))
			continue;
		if (!first)
			buf_addch(out, ' ');
		buf_adds(out, flag_names[f].name);
		first = false;
	}
	for (size_t i = 0; i < scope_count(set); i++) {
		if (!first)
			buf_addch(out, ' ');
		scope_res_format(&set->res[i], out);
		first = false;
	}
	if (out->err)
		return ctx_errorf(c, out->err, "the scope string is longer than %zu bytes", out->max);
	return ERR_OK;
}

/* ---- algebra ---- */

/*
 * A set made by intersect or restrict must fit in a scope string that
 * scope_parse() accepts (a grant is stored and sent as one); free it and
 * fail otherwise.
 */
static enum err finish(struct scope_set *set, struct scope_set **out, struct ctx *c)
{
	struct buf b = BUF_INIT(SCOPE_STRING_MAX);
	size_t ntok = set->nres;
	enum err rc = ERR_OK;

	for (size_t f = 0; f < NFLAGS; f++)
		ntok += (set->flags & flag_names[f].flag) != 0;
	if (ntok > SCOPE_TOKENS_MAX)
		rc = ctx_errorf(c, ERR_INVALID, "the scopes come to more than %d scopes",
				SCOPE_TOKENS_MAX);
	else if (scope_format(set, &b, NULL))
		rc = ctx_errorf(c, ERR_INVALID, "the scopes come to more than %d bytes",
				SCOPE_STRING_MAX);
	buf_release(&b);
	if (rc) {
		scope_set_free(set);
		return rc;
	}
	*out = set;
	return ERR_OK;
}

static bool kv_in(const struct scope_kv *kv, const struct scope_kv *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (kv_eq(kv, &list[i]))
			return true;
	return false;
}

/* Is every constraint of 'a' among those of 'b'? */
static bool q_subset(const struct scope_res *a, const struct scope_res *b)
{
	for (size_t i = 0; i < a->nq; i++)
		if (!kv_in(&a->q[i], b->q, b->nq))
			return false;
	return true;
}

/* Does scope type 'have' include resources of type 'want'? */
static bool type_covers(const char *have, const char *want)
{
	return !strcmp(have, "*") || !strcmp(have, want);
}

/* r ∩ a into *out; false when empty or not expressible. */
static bool res_meet(const struct scope_res *r, const struct scope_res *a, struct scope_res *out)
{
	if (r->ctx != a->ctx)
		return false;
	*out = *r;
	if (type_covers(a->type, r->type))
		; /* the requested type */
	else if (!strcmp(r->type, "*"))
		memcpy(out->type, a->type, sizeof(out->type));
	else
		return false;
	out->perms = r->perms & a->perms;
	if (!out->perms)
		return false;
	for (size_t i = 0; i < a->nq; i++) {
		if (kv_in(&a->q[i], out->q, out->nq))
			continue;
		if (out->nq == SCOPE_KV_MAX)
			return false;
		out->q[out->nq++] = a->q[i];
	}
	return true;
}

enum err scope_intersect(const struct scope_set *requested, const struct scope_set *allowed,
			 struct scope_set **out, struct ctx *c)
{
	struct scope_set *set = set_new();
	enum err rc = ERR_OK;

	*out = NULL;
	set->flags = scope_flags(requested) & scope_flags(allowed);
	for (size_t i = 0; i < scope_count(requested) && !rc; i++) {
		for (size_t j = 0; j < scope_count(allowed) && !rc; j++) {
			struct scope_res m;
			if (res_meet(&requested->res[i], &allowed->res[j], &m))
				rc = add_res(set, &m, c);
		}
	}
	if (rc) {
		scope_set_free(set);
		return rc;
	}
	return finish(set, out, c);
}

bool scope_covers(const struct scope_set *granted, const struct scope_set *req)
{
	if (scope_flags(req) & ~scope_flags(granted))
		return false;
	for (size_t i = 0; i < scope_count(req); i++) {
		const struct scope_res *r = &req->res[i];
		unsigned held = 0;

		for (size_t j = 0; j < scope_count(granted) && (r->perms & ~held); j++) {
			const struct scope_res *g = &granted->res[j];
			if (g->ctx == r->ctx && type_covers(g->type, r->type) && q_subset(g, r))
				held |= g->perms;
		}
		if (r->perms & ~held)
			return false;
	}
	return true;
}

static bool listed(const char *type, const char *const *types, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (types[i] && !strcmp(types[i], type))
			return true;
	return false;
}

static enum err choice_check(const struct scope_choice *ch, struct ctx *c)
{
	if (!ch->type)
		return ctx_errorf(c, ERR_INVALID, "a category choice names no resource type");
	if (ch->n && !ch->categories)
		return ctx_errorf(c, ERR_INVALID, "the category choice for '%s' has no list",
				  ch->type);
	for (size_t k = 0; k < ch->n; k++) {
		const char *v = ch->categories[k];
		size_t n = v ? strlen(v) : 0;
		if (n == 0 || n >= SCOPE_KV_VALUE_MAX || !text_ok(v, n))
			return ctx_errorx(c, ERR_INVALID, "category",
					  "a category chosen for '%s' is empty, too long or not text",
					  ch->type);
	}
	return ERR_OK;
}

/* Add 'r' narrowed to each chosen category. */
static enum err add_choices(struct scope_set *set, const struct scope_res *r,
			    const struct scope_choice *ch, struct ctx *c)
{
	enum err rc = ERR_OK;

	for (size_t k = 0; k < ch->n && !rc; k++) {
		struct scope_res n = *r;
		struct scope_kv kv;

		n.perms &= PERMS_RS;
		n.v1 = false;
		if (!n.perms)
			break;
		memset(&kv, 0, sizeof(kv));
		memcpy(kv.name, "category", sizeof("category"));
		str_copy(kv.value, ch->categories[k], sizeof(kv.value));
		if (!kv_in(&kv, n.q, n.nq)) {
			if (n.nq == SCOPE_KV_MAX)
				continue; /* cannot narrow further: leave it out */
			n.q[n.nq++] = kv;
		}
		rc = add_res(set, &n, c);
	}
	return rc;
}

enum err scope_restrict(const struct scope_set *set, unsigned drop_flags,
			const char *const *denied_types, size_t ndenied,
			const struct scope_choice *choices, size_t nchoices,
			struct scope_set **out, struct ctx *c)
{
	struct scope_set *res = NULL;
	enum err rc = ERR_OK;

	*out = NULL;
	if (ndenied && !denied_types)
		return ctx_errorf(c, ERR_INVALID, "no list of withheld types");
	if (nchoices && !choices)
		return ctx_errorf(c, ERR_INVALID, "no list of category choices");
	for (size_t k = 0; k < nchoices; k++)
		if ((rc = choice_check(&choices[k], c)))
			return rc;

	res = set_new();
	res->flags = scope_flags(set) & ~drop_flags;
	for (size_t i = 0; i < scope_count(set) && !rc; i++) {
		const struct scope_res *r = &set->res[i];
		const struct scope_choice *ch = NULL;

		if (listed(r->type, denied_types, ndenied))
			continue;
		for (size_t k = 0; k < nchoices && !ch && strcmp(r->type, "*"); k++)
			if (!strcmp(choices[k].type, r->type))
				ch = &choices[k];
		rc = ch ? add_choices(res, r, ch, c) : add_res(res, r, c);
	}
	if (rc) {
		scope_set_free(res);
		return rc;
	}
	return finish(res, out, c);
}

void scope_decide(const struct scope_set *set, const char *type, enum scope_op op,
		  struct scope_decision *out)
{
	static const unsigned op_bit[] = {SCOPE_C, SCOPE_R, SCOPE_U, SCOPE_D, SCOPE_S};
	static const enum scope_ctx order[] = {SCOPE_SYSTEM, SCOPE_USER, SCOPE_PATIENT};

	memset(out, 0, sizeof(*out));
	out->ctx = SCOPE_PATIENT;
	if (!type || !*type || (unsigned)op > SCOPE_OP_SEARCH)
		return;
	for (size_t o = 0; o < 3; o++) {
		size_t nf = 0;

		for (size_t i = 0; i < scope_count(set); i++) {
			const struct scope_res *r = &set->res[i];
			if (r->ctx != order[o] || !(r->perms & op_bit[op]) ||
			    !type_covers(r->type, type))
				continue;
			if (!r->nq) {
				memset(out->filters, 0, sizeof(out->filters));
				out->allowed = true;
				out->ctx = order[o];
				out->nfilters = 0;
				return;
			}
			if (nf < SCOPE_DECIDE_FILTERS_MAX)
				out->filters[nf++] = r;
		}
		if (nf) {
			out->allowed = true;
			out->ctx = order[o];
			out->nfilters = nf;
			return;
		}
	}
}
