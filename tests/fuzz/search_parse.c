/*
 * tests/fuzz/search_parse.c - libFuzzer target for the FHIR search parser
 * (src/fhir/parse.c).
 *
 * Input: the first byte picks the resource type searched (or $everything
 * when it picks one past the last type) and, in its top bit, strict
 * handling; the rest is a query string split on '&' and then on the first
 * '=' (as the HTTP layer hands it over after decoding).  The rest is also
 * decoded as a _page cursor on its own.
 *
 * Findings: a crash, a leak, a sanitizer report, an error without a
 * message, a parse that violates the limits of struct search_parsed or
 * the meaning of struct store_query (an empty OR list, a date range with
 * lo > hi, a reference without an id or URL, ...), an "applied" query
 * string that does not parse back to the same query, or a cursor that
 * does not survive encode -> decode.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"
#include "fhir/search_int.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAIRS 256
#define PAGE_MAX 100

static struct fhir *fhir(void)
{
	static struct fhir *f;

	if (!f) {
		struct fhir_opts o;
		memset(&o, 0, sizeof(o));
		o.base_url = "http://h/base";
		o.page_size = 20;
		o.page_max = PAGE_MAX;
		o.json_depth_max = 64;
		o.body_max = 1 << 20;
		f = fhir_new(NULL, &o);
	}
	return f;
}

static size_t ntypes(void)
{
	size_t n = 0;

	while (fhir_types[n].name)
		n++;
	return n;
}

static void check_match(const struct store_cond *c, const struct store_match *m)
{
	if ((unsigned)m->cmp > STORE_CMP_AP)
		abort();
	switch (c->kind) {
	case STORE_IX_DATE:
		if (m->lo > m->hi)
			abort();
		break;
	case STORE_IX_NUMBER:
	case STORE_IX_QUANTITY:
		if (!isfinite(m->num) || m->nlo > m->num || m->num > m->nhi)
			abort();
		break;
	case STORE_IX_REFERENCE:
		if (m->c ? (m->a || m->b) : (!m->b || !fhir_id_valid(m->b)))
			abort();
		if (m->a && !fhir_type_find(m->a))
			abort();
		break;
	case STORE_IX_TOKEN:
		if (c->mod == STORE_MOD_OF_TYPE ? (!m->a || !m->b || !m->c)
		    : c->mod == STORE_MOD_TEXT ? !m->a
					       : (!m->a && !m->b) || (m->b && !*m->b))
			abort();
		break;
	case STORE_IX_STRING:
		if (c->mod == STORE_MOD_EXACT ? !m->b : !m->a)
			abort();
		break;
	case STORE_IX_URI:
		if (!m->a)
			abort();
		break;
	default:
		abort();
	}
}

/* A condition; 'nested' for the inside of a chain or _has (no further nesting). */
static void check_cond(const struct store_cond *c, bool nested)
{
	if (!c->param)
		abort();
	if (c->has || c->chain) {
		if (nested || (c->has && c->chain) || c->kind != STORE_IX_REFERENCE)
			abort();
		if (c->has) {
			if (!c->has_type || !c->has_param || !fhir_type_find(c->has_type))
				abort();
			check_cond(c->has, true);
		} else {
			if (!c->chain_type || !fhir_type_find(c->chain_type))
				abort();
			check_cond(c->chain, true);
		}
		if (c->nm)
			abort();
		return;
	}
	if (c->has_type || c->chain_type)
		abort();
	if (c->mod == STORE_MOD_MISSING || c->mod == STORE_MOD_PRESENT) {
		if (c->nm)
			abort();
		return;
	}
	if (c->nm == 0 || c->nm > 64 || !c->m)
		abort();
	for (size_t i = 0; i < c->nm; i++)
		check_match(c, &c->m[i]);
}

static void check_parsed(const struct search_parsed *p, const char *type)
{
	if (p->nconds > SEARCH_MAX_CONDS || p->q.nconds != p->nconds ||
	    (p->nconds && p->q.conds != p->conds))
		abort();
	if (!type && p->nconds)
		abort(); /* $everything takes no search parameters */
	for (size_t i = 0; i < p->nconds; i++)
		check_cond(&p->conds[i], false);
	if (p->ninc > SEARCH_MAX_INCLUDES || p->nelements > SEARCH_MAX_ELEMENTS ||
	    p->q.nsort > STORE_SORT_MAX)
		abort();
	for (size_t i = 0; i < p->nelements; i++)
		if (!p->elements[i] || !*p->elements[i])
			abort();
	for (size_t i = 0; i < p->q.nsort; i++)
		if (p->sort[i].by == STORE_SORT_PARAM && !p->sort[i].param)
			abort();
	if (p->count < 0 || p->count > PAGE_MAX)
		abort();
	if (p->q.limit != (p->summary == SUMMARY_COUNT ? 0 : p->count))
		abort();
	if (p->has_cursor != p->q.cursor.set)
		abort();
	if (p->applied.err)
		abort();
}

static void check_cursor_round_trip(const struct store_cursor *cur, bool backward)
{
	struct buf tok = BUF_INIT(1 << 16);
	struct store_cursor back;
	bool b = !backward;

	if (search_cursor_encode(cur, backward, &tok) != ERR_OK)
		abort();
	if (search_cursor_decode(tok.data, &back, &b) != ERR_OK)
		abort();
	if (b != backward || !back.set || back.snapshot_rid != cur->snapshot_rid ||
	    back.rid != cur->rid)
		abort();
	for (int i = 0; i < STORE_SORT_MAX; i++) {
		if (back.key[i].null != cur->key[i].null)
			abort();
		if (cur->key[i].null)
			continue;
		if (strcmp(back.key[i].s, cur->key[i].s))
			abort();
		if (!cur->key[i].s[0] && (back.key[i].i != cur->key[i].i || back.key[i].r != cur->key[i].r))
			abort();
	}
	buf_release(&tok);
}

/* The applied parameters are the self link: they must parse back to the same query. */
static void check_applied(struct fhir *f, const struct fhir_search_req *r,
			  const struct search_parsed *p)
{
	struct arena a = ARENA_INIT;
	struct ctx c = CTX_INIT;
	struct http_pair *pairs;
	struct fhir_kv *kv;
	struct fhir_search_req again = *r;
	struct search_parsed q;
	size_t n;

	if (http_form_parse(&a, p->applied.data, p->applied.len, MAX_PAIRS, &pairs, &n, &c))
		abort();
	kv = arena_zalloc(&a, sizeof(*kv) * (n + 1));
	for (size_t i = 0; i < n; i++) {
		kv[i].name = pairs[i].name;
		kv[i].value = pairs[i].value;
	}
	again.params = kv;
	again.nparams = n;
	search_parsed_init(&q);
	if (fhir_search_parse(f, &a, &again, &q, &c) != ERR_OK)
		abort();
	if (q.nconds != p->nconds || q.ninc != p->ninc || q.q.nsort != p->q.nsort ||
	    q.nelements != p->nelements || q.summary != p->summary || q.q.total != p->q.total ||
	    q.ignored.len != 0 || q.applied.len != p->applied.len ||
	    memcmp(q.applied.data, p->applied.data, p->applied.len))
		abort();
	for (size_t i = 0; i < q.nconds; i++)
		if (q.conds[i].kind != p->conds[i].kind || q.conds[i].mod != p->conds[i].mod ||
		    q.conds[i].nm != p->conds[i].nm || strcmp(q.conds[i].param, p->conds[i].param))
			abort();
	search_parsed_release(&q);
	arena_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fhir *f = fhir();
	struct arena a = ARENA_INIT;
	struct ctx c = CTX_INIT;
	struct search_parsed p;
	struct fhir_search_req r;
	struct fhir_kv *kv;
	struct store_cursor cur;
	size_t nt = ntypes(), n = 0, start;
	char *s;
	bool back;
	enum err e;

	if (size == 0)
		return 0;
	s = arena_alloc(&a, size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';

	/* the rest on its own as a _page cursor */
	if (search_cursor_decode(s, &cur, &back) == ERR_OK)
		check_cursor_round_trip(&cur, back);
	else if (cur.set)
		abort();

	/* the rest as a query string: split on '&', then on the first '=' */
	kv = arena_zalloc(&a, sizeof(*kv) * MAX_PAIRS);
	for (size_t i = start = 0; i <= size - 1 && n < MAX_PAIRS; i++) {
		if (i < size - 1 && s[i] != '&')
			continue;
		if (i > start) {
			char *eq;
			s[i] = '\0';
			kv[n].name = s + start;
			eq = strchr(s + start, '=');
			if (eq) {
				*eq = '\0';
				kv[n].value = eq + 1;
			} else {
				kv[n].value = "";
			}
			n++;
		}
		start = i + 1;
	}

	memset(&r, 0, sizeof(r));
	if ((data[0] & 0x7f) % (nt + 1) == nt) {
		r.type = NULL; /* $everything */
		r.patient = "p1";
		r.everything = true;
	} else {
		r.type = fhir_types[(data[0] & 0x7f) % (nt + 1)].name;
		/* a compartment search for every other lap over the types */
		r.patient = ((data[0] & 0x7f) / (nt + 1)) & 1 ? "p1" : NULL;
	}
	r.params = kv;
	r.nparams = n;
	r.strict = (data[0] & 0x80) != 0;

	search_parsed_init(&p);
	e = fhir_search_parse(f, &a, &r, &p, &c);
	if (e) {
		if (e != ERR_INVALID || c.code != e || !c.msg[0])
			abort();
	} else {
		check_parsed(&p, r.type);
		if (p.has_cursor)
			check_cursor_round_trip(&p.q.cursor, p.q.backward);
		check_applied(f, &r, &p);
	}
	search_parsed_release(&p);
	arena_release(&a);
	return 0;
}
