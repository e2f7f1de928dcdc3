/*
 * scope_parse - libFuzzer target for src/policy/scope.c.
 *
 * Input: up to the first '\n', a requested scope string A; after it, an
 * allowed scope string B (empty without a '\n').  Each is parsed; a
 * failure must be ERR_INVALID with a message and no set.  A parsed set
 * must keep the limits of struct scope_res and must survive
 * parse -> format -> parse with the same formatting, no longer than the
 * input.  Then the algebra must only ever narrow: A ∩ B is covered by
 * both A and B (and formats back the same way), every set covers itself,
 * a consent restriction of A is covered by A, and whatever a narrowed
 * set allows, the wider one allows in the same or a broader context.
 *
 * Findings: a crash, a leak, a sanitizer report, or any broken property
 * above (abort()).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "policy/scope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FMT_MAX (4 * SCOPE_STRING_MAX)

static const char *const types[] = {"Observation", "Condition", "Patient", "*", "A", ""};

static void check_text(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n == 0 || n == cap)
		abort();
}

static void check_res(const struct scope_res *r)
{
	char text[96];
	size_t tn;

	if ((unsigned)r->ctx > SCOPE_SYSTEM || r->perms == 0 || (r->perms & ~SCOPE_CRUDS) ||
	    r->nq > SCOPE_KV_MAX)
		abort();
	tn = strnlen(r->type, SCOPE_TYPE_MAX);
	if (tn == 0 || tn == SCOPE_TYPE_MAX)
		abort();
	if (strcmp(r->type, "*") && !(r->type[0] >= 'A' && r->type[0] <= 'Z'))
		abort();
	if (r->v1 && (r->nq || (r->perms != (SCOPE_R | SCOPE_S) &&
				r->perms != (SCOPE_C | SCOPE_U | SCOPE_D) && r->perms != SCOPE_CRUDS)))
		abort();
	for (size_t i = 0; i < r->nq; i++) {
		check_text(r->q[i].name, SCOPE_KV_NAME_MAX);
		check_text(r->q[i].value, SCOPE_KV_VALUE_MAX);
	}
	scope_describe(r, text, sizeof(text));
	check_text(text, sizeof(text));
}

/* The set's string, to free(); checks the limits and the round trip. */
static char *check_set(const struct scope_set *set, size_t input_len)
{
	struct buf a = BUF_INIT(FMT_MAX), b = BUF_INIT(FMT_MAX);
	struct scope_set *again = NULL;
	struct ctx c = CTX_INIT;

	if (scope_flags(set) & ~SCOPE_FLAGS_ALL || scope_count(set) > SCOPE_TOKENS_MAX ||
	    scope_ignored_count(set) > SCOPE_TOKENS_MAX || scope_at(set, scope_count(set)))
		abort();
	for (size_t i = 0; i < scope_count(set); i++)
		check_res(scope_at(set, i));
	for (size_t i = 0; i < scope_ignored_count(set); i++)
		if (!scope_ignored_at(set, i) || !*scope_ignored_at(set, i))
			abort();
	if (scope_format(set, &a, &c) != ERR_OK)
		abort();
	if (a.len > SCOPE_STRING_MAX || (input_len != SIZE_MAX && a.len > input_len))
		abort();
	if (scope_parse(a.data, &again, &c) != ERR_OK)
		abort();
	if (scope_format(again, &b, &c) != ERR_OK || b.len != a.len || memcmp(a.data, b.data, a.len))
		abort();
	if (scope_ignored_count(again) || scope_count(again) != scope_count(set) ||
	    scope_flags(again) != scope_flags(set))
		abort();
	if (!scope_covers(set, again) || !scope_covers(again, set) || !scope_covers(set, set))
		abort();
	scope_set_free(again);
	buf_release(&b);
	return buf_take(&a, NULL);
}

static int ctx_rank(enum scope_ctx x)
{
	return x == SCOPE_SYSTEM ? 2 : x == SCOPE_USER ? 1 : 0;
}

/* What 'narrow' allows, 'wide' allows too, in the same or a broader context. */
static void check_narrower(const struct scope_set *wide, const struct scope_set *narrow)
{
	if (!scope_covers(wide, narrow))
		abort();
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		for (int op = SCOPE_OP_CREATE; op <= SCOPE_OP_SEARCH; op++) {
			struct scope_decision dn, dw;
			scope_decide(narrow, types[t], (enum scope_op)op, &dn);
			scope_decide(wide, types[t], (enum scope_op)op, &dw);
			if (dn.nfilters > SCOPE_DECIDE_FILTERS_MAX || (!dn.allowed && dn.nfilters))
				abort();
			for (size_t i = 0; i < dn.nfilters; i++)
				if (!dn.filters[i] || !dn.filters[i]->nq || dn.filters[i]->ctx != dn.ctx)
					abort();
			if (dn.allowed && (!dw.allowed || ctx_rank(dw.ctx) < ctx_rank(dn.ctx)))
				abort();
		}
	}
}

static struct scope_set *parse_part(const char *s, size_t n)
{
	struct scope_set *set = (struct scope_set *)&set;
	struct ctx c = CTX_INIT;
	enum err e = scope_parse(s, &set, &c);

	if (e != ERR_OK) {
		if (e != ERR_INVALID || c.code != e || !c.msg[0] || set)
			abort();
		return NULL;
	}
	free(check_set(set, n));
	return set;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const lab[] = {
		"http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
		"http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
	};
	static const char *const denied[] = {"Patient", "MedicationRequest"};
	static const struct scope_choice choices[] = {
		{"Observation", lab, 2},
		{"Condition", NULL, 0},
	};
	struct scope_set *a = NULL, *b = NULL, *m = NULL, *r = NULL;
	struct ctx c = CTX_INIT;
	const char *nl;
	char *s;
	size_t alen;

	if (size > 2 * SCOPE_STRING_MAX + 2)
		return 0;
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	nl = memchr(s, '\n', size);
	alen = nl ? (size_t)(nl - s) : size;
	s[alen] = '\0'; /* A ends at the newline (or at a NUL inside: strlen decides) */

	a = parse_part(s, strlen(s));
	if (nl)
		b = parse_part(s + alen + 1, strlen(s + alen + 1));
	else if (scope_parse("", &b, &c))
		abort();
	if (!a || !b)
		goto out;

	if (scope_intersect(a, b, &m, &c) == ERR_OK) {
		free(check_set(m, SIZE_MAX));
		check_narrower(a, m);
		check_narrower(b, m);
		if (scope_ignored_count(m))
			abort();
	} else if (m || c.code != ERR_INVALID || !c.msg[0]) {
		abort();
	}
	ctx_clear(&c);
	if (scope_restrict(a, SCOPE_OFFLINE | (size & 1 ? SCOPE_FHIRUSER : 0), denied,
			   size & 2 ? 2 : 0, choices, size & 4 ? 2 : 1, &r, &c) == ERR_OK) {
		free(check_set(r, SIZE_MAX));
		check_narrower(a, r);
		if (scope_flags(r) & SCOPE_OFFLINE)
			abort();
	} else if (r || c.code != ERR_INVALID || !c.msg[0]) {
		abort();
	}
	check_narrower(a, a);
out:
	scope_set_free(r);
	scope_set_free(m);
	scope_set_free(b);
	scope_set_free(a);
	free(s);
	return 0;
}
