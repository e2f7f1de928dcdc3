/*
 * Tests for the FHIR search parser (src/fhir/parse.c): every prefix,
 * modifier and escape, token / reference / quantity / date forms, comma
 * (OR) and repetition (AND), chaining and _has, the result parameters,
 * unknown parameters (lenient and strict), the applied query string and
 * the _page cursor.  No store is needed: the parser never touches it.
 */
#include "unit.h"

#include <math.h>
#include <string.h>

#include "core/arena.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/err.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"
#include "fhir/search_int.h"

/*
 * The table has no parameter of kind number yet, so parse_number() cannot
 * be reached through fhir_search_parse().  Compile a private copy of
 * parse.c (exported names renamed so they do not clash with the library's)
 * to test it directly.
 */
#define fhir_search_parse copy_fhir_search_parse
#define search_parsed_init copy_search_parsed_init
#define search_parsed_release copy_search_parsed_release
#define search_cursor_encode copy_search_cursor_encode
#define search_cursor_decode copy_search_cursor_decode
#define search_applied_add copy_search_applied_add
enum err copy_search_cursor_encode(const struct store_cursor *cur, bool backward, struct buf *out);
enum err copy_search_cursor_decode(const char *token, struct store_cursor *cur, bool *backward);
#include "fhir/parse.c"
#undef fhir_search_parse
#undef search_parsed_init
#undef search_parsed_release
#undef search_cursor_encode
#undef search_cursor_decode
#undef search_applied_add

#define BASE_URL "http://h/base"
#define FHIR_BASE BASE_URL "/fhir"
#define PAGE_SIZE 20
#define PAGE_MAX 100

/* 2023-04-05T00:00:00Z in ms */
#define D20230405 INT64_C(1680652800000)
#define HOUR INT64_C(3600000)
#define DAY INT64_C(86400000)

static struct fhir *F;

/* One parse: arena, result, error context. */
struct run {
	struct arena a;
	struct search_parsed p;
	struct ctx c;
	enum err e;
};

static int group_setup(void **state)
{
	struct fhir_opts o = {0};
	(void)state;

	o.base_url = BASE_URL;
	o.page_size = PAGE_SIZE;
	o.page_max = PAGE_MAX;
	o.json_depth_max = 64;
	o.body_max = 1 << 20;
	F = fhir_new(NULL, &o);
	return F ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	fhir_free(F);
	F = NULL;
	return 0;
}

static void run_release(struct run *r)
{
	search_parsed_release(&r->p);
	arena_release(&r->a);
}

static int setup(void **state)
{
	struct run *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	search_parsed_init(&r->p);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct run *r = *state;

	run_release(r);
	free(r);
	return 0;
}

/*
 * Parse the query string 'qs' ("a=b&c=d", already percent-decoded: split
 * on '&' then on the first '=') for 'type'.  The previous result of 'r'
 * is released first.
 */
static enum err parse_as(struct run *r, const char *type, const char *patient, const char *qs,
			 bool strict)
{
	struct fhir_search_req req;
	struct fhir_kv *kv;
	size_t n = 0, cap = 1;
	char *s, *tok, *save = NULL;

	run_release(r);
	memset(r, 0, sizeof(*r));
	search_parsed_init(&r->p);
	for (const char *q = qs; *q; q++)
		cap += *q == '&';
	kv = arena_zalloc(&r->a, sizeof(*kv) * cap);
	s = arena_strdup(&r->a, qs);
	for (tok = strtok_r(s, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(tok, '=');
		if (eq)
			*eq = '\0';
		kv[n].name = tok;
		kv[n].value = eq ? eq + 1 : "";
		n++;
	}
	memset(&req, 0, sizeof(req));
	req.type = type;
	req.patient = patient;
	req.params = kv;
	req.nparams = n;
	req.strict = strict;
	r->e = fhir_search_parse(F, &r->a, &req, &r->p, &r->c);
	return r->e;
}

/* Parse and require success. */
static struct search_parsed *ok(struct run *r, const char *type, const char *qs)
{
	if (parse_as(r, type, NULL, qs, false) != ERR_OK)
		fail_msg("%s?%s: %s (%s)", type, qs, err_str(r->e), r->c.msg);
	return &r->p;
}

/* Parse and require 400 naming 'param' both as expression and in the message. */
static void bad_param(struct run *r, const char *type, const char *qs, const char *param)
{
	if (parse_as(r, type, NULL, qs, false) != ERR_INVALID)
		fail_msg("%s?%s: expected ERR_INVALID, got %s", type, qs, err_str(r->e));
	if (r->c.code != ERR_INVALID)
		fail_msg("%s?%s: ctx code %d", type, qs, r->c.code);
	if (strcmp(r->c.expr, param))
		fail_msg("%s?%s: expression '%s', want '%s'", type, qs, r->c.expr, param);
	if (!strstr(r->c.msg, param))
		fail_msg("%s?%s: message '%s' does not name '%s'", type, qs, r->c.msg, param);
}

/* The single condition of a successful parse, with 'nm' matches. */
static const struct store_cond *only_cond(struct search_parsed *p, size_t nm)
{
	assert_int_equal(p->nconds, 1);
	assert_int_equal(p->q.nconds, 1);
	assert_ptr_equal(p->q.conds, p->conds);
	assert_int_equal(p->conds[0].nm, nm);
	if (nm)
		assert_non_null(p->conds[0].m);
	return &p->conds[0];
}

static void assert_near(double got, double want)
{
	if (fabs(got - want) > 1e-9 * (fabs(want) > 1 ? fabs(want) : 1))
		fail_msg("got %.17g, want %.17g", got, want);
}

static const struct {
	const char *p;
	enum store_cmp cmp;
} prefixes[] = {
	{"", STORE_CMP_EQ}, {"eq", STORE_CMP_EQ}, {"ne", STORE_CMP_NE}, {"lt", STORE_CMP_LT},
	{"gt", STORE_CMP_GT}, {"le", STORE_CMP_LE}, {"ge", STORE_CMP_GE}, {"sa", STORE_CMP_SA},
	{"eb", STORE_CMP_EB}, {"ap", STORE_CMP_AP},
};
#define NPREFIXES (sizeof(prefixes) / sizeof(prefixes[0]))

/* ---- dates ---- */

static void test_date_prefixes(void **state)
{
	struct run *r = *state;
	char qs[128];

	for (size_t i = 0; i < NPREFIXES; i++) {
		const struct store_cond *c;

		snprintf(qs, sizeof(qs), "date=%s2023-04-05", prefixes[i].p);
		c = only_cond(ok(r, "Observation", qs), 1);
		assert_int_equal(c->kind, STORE_IX_DATE);
		assert_string_equal(c->param, "date");
		assert_int_equal(c->mod, STORE_MOD_NONE);
		assert_int_equal(c->m[0].cmp, prefixes[i].cmp);
		assert_int_equal(c->m[0].lo, D20230405);
		assert_int_equal(c->m[0].hi, D20230405 + DAY - 1);

		/* the same on another type's date parameter and on _lastUpdated */
		snprintf(qs, sizeof(qs), "birthdate=%s1970", prefixes[i].p);
		c = only_cond(ok(r, "Patient", qs), 1);
		assert_int_equal(c->m[0].cmp, prefixes[i].cmp);
		assert_int_equal(c->m[0].lo, 0);
		assert_int_equal(c->m[0].hi, 365 * DAY - 1);

		snprintf(qs, sizeof(qs), "_lastUpdated=%s2023-04-05T10:00:00Z", prefixes[i].p);
		c = only_cond(ok(r, "Encounter", qs), 1);
		assert_string_equal(c->param, "_lastUpdated");
		assert_int_equal(c->kind, STORE_IX_DATE);
		assert_int_equal(c->m[0].cmp, prefixes[i].cmp);
		assert_int_equal(c->m[0].lo, D20230405 + 10 * HOUR);
		assert_int_equal(c->m[0].hi, D20230405 + 10 * HOUR + 999);
	}
}

static void expect_date(struct run *r, const char *value, int64_t lo, int64_t hi)
{
	char qs[160];
	const struct store_cond *c;

	snprintf(qs, sizeof(qs), "date=%s", value);
	c = only_cond(ok(r, "Observation", qs), 1);
	if (c->m[0].lo != lo || c->m[0].hi != hi)
		fail_msg("date=%s: got [%lld, %lld], want [%lld, %lld]", value, (long long)c->m[0].lo,
			 (long long)c->m[0].hi, (long long)lo, (long long)hi);
}

static void test_date_precision(void **state)
{
	struct run *r = *state;
	int64_t t10 = D20230405 + 10 * HOUR;

	/* the whole year, month, day */
	expect_date(r, "2023", INT64_C(1672531200000), INT64_C(1704067199999));
	expect_date(r, "2024", INT64_C(1704067200000), INT64_C(1704067200000) + 366 * DAY - 1);
	expect_date(r, "2023-04", INT64_C(1680307200000), INT64_C(1680307200000) + 30 * DAY - 1);
	expect_date(r, "2024-02", INT64_C(1706745600000), INT64_C(1706745600000) + 29 * DAY - 1);
	expect_date(r, "2023-04-05", D20230405, D20230405 + DAY - 1);
	/* minute, second, fractions */
	expect_date(r, "2023-04-05T10:00Z", t10, t10 + 60000 - 1);
	expect_date(r, "2023-04-05T10:00:30Z", t10 + 30000, t10 + 30999);
	expect_date(r, "2023-04-05T10:00:30.5Z", t10 + 30500, t10 + 30599);
	expect_date(r, "2023-04-05T10:00:30.25Z", t10 + 30250, t10 + 30259);
	expect_date(r, "2023-04-05T10:00:30.125Z", t10 + 30125, t10 + 30125);
	/* a search value without a zone is taken as UTC */
	expect_date(r, "2023-04-05T10:00", t10, t10 + 60000 - 1);
	expect_date(r, "ge2023-04-05T10:00:30", t10 + 30000, t10 + 30999);
	/* zones shift the instant */
	expect_date(r, "2023-04-05T12:00:00+02:00", t10, t10 + 999);
	expect_date(r, "2023-04-05T05:30:00-04:30", t10, t10 + 999);
	/* prefix and precision together */
	expect_date(r, "ge2023-04", INT64_C(1680307200000), INT64_C(1680307200000) + 30 * DAY - 1);
	expect_date(r, "lt2023-04-05T10:00Z", t10, t10 + 60000 - 1);
}

static void test_date_bad(void **state)
{
	struct run *r = *state;
	static const char *const bad[] = {
		"date=2023-13",      "date=2023-02-29",   "date=2023-4-5",
		"date=20230405",     "date=2023-04-05T10",
		"date=2023-04-05T25:00Z", "date=2023-04-05T10:00:00+15:00",
		"date=gt",           "date=xx2023",       "date=GT2023",
		"date=today",        "date=ge2023,junk",  "date=2023,",
		"date=",             "date=2023-04-05 ",  "date=0000",
		"date=eq 2023",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		bad_param(r, "Observation", bad[i], "date");
	bad_param(r, "Patient", "birthdate=1970-02-30", "birthdate");
	bad_param(r, "Patient", "_lastUpdated=yesterday", "_lastUpdated");
	/* modifiers a date does not take */
	bad_param(r, "Observation", "date:exact=2023", "date:exact");
	bad_param(r, "Observation", "date:not=2023", "date:not");
	bad_param(r, "Observation", "date:Patient=2023", "date:Patient");
}

/* ---- numbers and quantities ---- */

static void test_number_prefixes(void **state)
{
	struct pctx x;
	struct ctx c = CTX_INIT;
	struct arena a = ARENA_INIT;
	struct store_match m;
	char v[64];
	(void)state;

	x.f = F;
	x.a = &a;
	x.c = &c;
	for (size_t i = 0; i < NPREFIXES; i++) {
		snprintf(v, sizeof(v), "%s5.4", prefixes[i].p);
		memset(&m, 0, sizeof(m));
		assert_int_equal(parse_number(&x, "n", v, &m), ERR_OK);
		assert_int_equal(m.cmp, prefixes[i].cmp);
		assert_near(m.num, 5.4);
		assert_near(m.nlo, 5.35);
		assert_near(m.nhi, 5.45);

		snprintf(v, sizeof(v), "%s-100", prefixes[i].p);
		assert_int_equal(parse_number(&x, "n", v, &m), ERR_OK);
		assert_int_equal(m.cmp, prefixes[i].cmp);
		assert_near(m.num, -100);
		assert_near(m.nlo, -100.5);
		assert_near(m.nhi, -99.5);
	}
	/* precision follows the digits written (100 / 100.00 / exponents) */
	assert_int_equal(parse_number(&x, "n", "100.00", &m), ERR_OK);
	assert_near(m.nlo, 99.995);
	assert_near(m.nhi, 100.005);
	assert_int_equal(parse_number(&x, "n", "1.5e2", &m), ERR_OK);
	assert_near(m.num, 150);
	assert_near(m.nlo, 145);
	assert_near(m.nhi, 155);
	assert_int_equal(parse_number(&x, "n", "1.5e+2", &m), ERR_OK);
	assert_near(m.num, 150);
	assert_int_equal(parse_number(&x, "n", "gt2.5E-1", &m), ERR_OK);
	assert_int_equal(m.cmp, STORE_CMP_GT);
	assert_near(m.num, 0.25);
	assert_near(m.nlo, 0.245);
	assert_int_equal(parse_number(&x, "n", ".5", &m), ERR_OK);
	assert_near(m.num, 0.5);
	/* the bounds are the doubles nearest the decimal bounds, as a stored value would be */
	assert_int_equal(parse_number(&x, "n", "5.4", &m), ERR_OK);
	assert_true(m.nlo == 5.35 && m.nhi == 5.45);
	assert_int_equal(parse_number(&x, "n", "-5.4", &m), ERR_OK);
	assert_true(m.nlo == -5.45 && m.nhi == -5.35);
	assert_int_equal(parse_number(&x, "n", "0.3", &m), ERR_OK);
	assert_true(m.nlo == 0.25 && m.nhi == 0.35);
	assert_int_equal(parse_number(&x, "n", "1.15", &m), ERR_OK);
	assert_true(m.nlo == 1.145 && m.nhi == 1.155);
	assert_int_equal(parse_number(&x, "n", "535e-2", &m), ERR_OK);
	assert_true(m.nlo == 5.345 && m.nhi == 5.355);
	assert_int_equal(parse_number(&x, "n", "0", &m), ERR_OK);
	assert_true(m.nlo == -0.5 && m.nhi == 0.5);

	static const char *const bad[] = {
		"", "gt", "abc", "5.4.3", "5..4", "1e", "1e+", "1e+-2", "1e400", "0x10", "inf",
		"nan", "-", "+", "5,4", "5 ", " 5", "gt 5", "GT5", "1e999999999999999999999", "5|mg",
		"9e300000",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ctx_clear(&c);
		if (parse_number(&x, "num", bad[i], &m) != ERR_INVALID)
			fail_msg("number '%s' accepted", bad[i]);
		assert_string_equal(c.expr, "num");
		assert_non_null(strstr(c.msg, "num"));
	}
	arena_release(&a);
}

static void test_quantity(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;
	char qs[160];

	for (size_t i = 0; i < NPREFIXES; i++) {
		snprintf(qs, sizeof(qs), "value-quantity=%s5.4|http://unitsofmeasure.org|mg",
			 prefixes[i].p);
		c = only_cond(ok(r, "Observation", qs), 1);
		assert_int_equal(c->kind, STORE_IX_QUANTITY);
		assert_string_equal(c->param, "value-quantity");
		assert_int_equal(c->m[0].cmp, prefixes[i].cmp);
		assert_near(c->m[0].num, 5.4);
		assert_near(c->m[0].nlo, 5.35);
		assert_near(c->m[0].nhi, 5.45);
		assert_string_equal(c->m[0].a, "http://unitsofmeasure.org");
		assert_string_equal(c->m[0].b, "mg");

		/* a bare number: any system, any unit */
		snprintf(qs, sizeof(qs), "value-quantity=%s100", prefixes[i].p);
		c = only_cond(ok(r, "Observation", qs), 1);
		assert_int_equal(c->m[0].cmp, prefixes[i].cmp);
		assert_near(c->m[0].num, 100);
		assert_near(c->m[0].nlo, 99.5);
		assert_near(c->m[0].nhi, 100.5);
		assert_null(c->m[0].a);
		assert_null(c->m[0].b);
	}
	/* value||code: any system */
	c = only_cond(ok(r, "Observation", "value-quantity=5.4||mg"), 1);
	assert_null(c->m[0].a);
	assert_string_equal(c->m[0].b, "mg");
	/* value|system|: any code */
	c = only_cond(ok(r, "Observation", "value-quantity=5.4|http://unitsofmeasure.org|"), 1);
	assert_string_equal(c->m[0].a, "http://unitsofmeasure.org");
	assert_null(c->m[0].b);
	/* escapes in system and code */
	c = only_cond(ok(r, "Observation", "value-quantity=1|urn:a\\|b|m\\,g\\$"), 1);
	assert_string_equal(c->m[0].a, "urn:a|b");
	assert_string_equal(c->m[0].b, "m,g$");
	/* OR of two quantities */
	c = only_cond(ok(r, "Observation", "value-quantity=lt1||mg,gt2||mg"), 2);
	assert_int_equal(c->m[0].cmp, STORE_CMP_LT);
	assert_int_equal(c->m[1].cmp, STORE_CMP_GT);
	assert_near(c->m[1].num, 2);
	/* exponents, other quantity parameters */
	c = only_cond(ok(r, "Observation", "combo-value-quantity=ap1.5e+2||mm[Hg]"), 1);
	assert_int_equal(c->m[0].cmp, STORE_CMP_AP);
	assert_near(c->m[0].num, 150);
	assert_string_equal(c->m[0].b, "mm[Hg]");
	c = only_cond(ok(r, "Encounter", "length=gt-0.5|http://unitsofmeasure.org|d"), 1);
	assert_near(c->m[0].num, -0.5);
	assert_near(c->m[0].nlo, -0.55);

	static const char *const bad[] = {
		"value-quantity=abc",       "value-quantity=5.4|mg",     "value-quantity=5.4|a|b|c",
		"value-quantity=gt",        "value-quantity=|sys|mg",    "value-quantity=mg",
		"value-quantity=5..4||mg",  "value-quantity=1e||mg",     "value-quantity=0x10",
		"value-quantity=inf",       "value-quantity=nan||mg",    "value-quantity=1e400",
		"value-quantity=5.4|",      "value-quantity=5.4,",       "value-quantity=",
		"value-quantity=5\\.4",     "value-quantity=5 mg",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		bad_param(r, "Observation", bad[i], "value-quantity");
	bad_param(r, "Observation", "value-quantity:exact=5", "value-quantity:exact");
	bad_param(r, "Observation", "value-quantity:below=5", "value-quantity:below");
}

/* ---- tokens ---- */

static void test_token_forms(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;

	c = only_cond(ok(r, "Observation", "code=http://loinc.org|8302-2"), 1);
	assert_int_equal(c->kind, STORE_IX_TOKEN);
	assert_string_equal(c->param, "code");
	assert_int_equal(c->mod, STORE_MOD_NONE);
	assert_string_equal(c->m[0].a, "http://loinc.org");
	assert_string_equal(c->m[0].b, "8302-2");
	/* |code: no system */
	c = only_cond(ok(r, "Observation", "code=|8302-2"), 1);
	assert_string_equal(c->m[0].a, "");
	assert_string_equal(c->m[0].b, "8302-2");
	/* system|: any code of the system */
	c = only_cond(ok(r, "Observation", "code=http://loinc.org|"), 1);
	assert_string_equal(c->m[0].a, "http://loinc.org");
	assert_null(c->m[0].b);
	/* code: any system */
	c = only_cond(ok(r, "Observation", "code=8302-2"), 1);
	assert_null(c->m[0].a);
	assert_string_equal(c->m[0].b, "8302-2");
	/* common token parameters */
	c = only_cond(ok(r, "Patient", "_id=abc-1"), 1);
	assert_string_equal(c->param, "_id");
	assert_null(c->m[0].a);
	assert_string_equal(c->m[0].b, "abc-1");
	c = only_cond(ok(r, "Patient", "_tag=urn:t|x,urn:t|y"), 2);
	assert_string_equal(c->m[1].a, "urn:t");
	assert_string_equal(c->m[1].b, "y");

	bad_param(r, "Observation", "code=|", "code");
	bad_param(r, "Observation", "code=a|b|c", "code");
	bad_param(r, "Observation", "code=", "code");
	bad_param(r, "Observation", "code=a,,b", "code");
	bad_param(r, "Observation", "status=final,", "status");
}

static void test_escapes(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;

	/* "\," is a comma inside one value; "," separates alternatives */
	c = only_cond(ok(r, "Observation", "code=a\\,b"), 1);
	assert_null(c->m[0].a);
	assert_string_equal(c->m[0].b, "a,b");
	c = only_cond(ok(r, "Observation", "code=a,b"), 2);
	assert_string_equal(c->m[0].b, "a");
	assert_string_equal(c->m[1].b, "b");
	/* "\|" is a bar inside the code, not the system separator */
	c = only_cond(ok(r, "Observation", "code=a\\|b"), 1);
	assert_null(c->m[0].a);
	assert_string_equal(c->m[0].b, "a|b");
	c = only_cond(ok(r, "Observation", "code=s\\|t|c\\|d"), 1);
	assert_string_equal(c->m[0].a, "s|t");
	assert_string_equal(c->m[0].b, "c|d");
	/* "\$" and "\\" */
	c = only_cond(ok(r, "Observation", "code=a\\$b"), 1);
	assert_string_equal(c->m[0].b, "a$b");
	c = only_cond(ok(r, "Observation", "code=a\\\\b"), 1);
	assert_string_equal(c->m[0].b, "a\\b");
	/* an escaped backslash does not escape the comma after it */
	c = only_cond(ok(r, "Observation", "code=a\\\\,b"), 2);
	assert_string_equal(c->m[0].b, "a\\");
	assert_string_equal(c->m[1].b, "b");
	/* an escaped backslash before a bar: the bar separates */
	c = only_cond(ok(r, "Observation", "code=s\\\\|c"), 1);
	assert_string_equal(c->m[0].a, "s\\");
	assert_string_equal(c->m[0].b, "c");
	/* other backslashes stay; a trailing one too */
	c = only_cond(ok(r, "Observation", "code=a\\xb\\"), 1);
	assert_string_equal(c->m[0].b, "a\\xb\\");
	/* strings, uris and references unescape too */
	c = only_cond(ok(r, "Patient", "family=O\\,Brien"), 1);
	assert_string_equal(c->m[0].a, "o,brien");
	c = only_cond(ok(r, "Patient", "family:exact=A\\|B\\$C\\\\D"), 1);
	assert_string_equal(c->m[0].b, "A|B$C\\D");
	c = only_cond(ok(r, "Questionnaire", "url=http://x/a\\,b,http://y"), 2);
	assert_string_equal(c->m[0].a, "http://x/a,b");
	assert_string_equal(c->m[1].a, "http://y");
	c = only_cond(ok(r, "Patient", "family=a\\,b,c\\,d,e"), 3);
	assert_string_equal(c->m[0].a, "a,b");
	assert_string_equal(c->m[1].a, "c,d");
	assert_string_equal(c->m[2].a, "e");
}

static void test_token_modifiers(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;

	c = only_cond(ok(r, "Observation", "code:text=Body  Wëight "), 1);
	assert_int_equal(c->mod, STORE_MOD_TEXT);
	assert_string_equal(c->m[0].a, "body weight");
	c = only_cond(ok(r, "Observation", "status:not=final,amended"), 2);
	assert_int_equal(c->mod, STORE_MOD_NOT);
	assert_string_equal(c->param, "status");
	assert_string_equal(c->m[0].b, "final");
	assert_string_equal(c->m[1].b, "amended");
	c = only_cond(ok(r, "Observation", "code:not=http://loinc.org|8302-2"), 1);
	assert_int_equal(c->mod, STORE_MOD_NOT);
	assert_string_equal(c->m[0].a, "http://loinc.org");

	/* :of-type: type system|type code|value, rows of "identifier:of-type" */
	c = only_cond(ok(r, "Patient",
			 "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053"),
		      1);
	assert_int_equal(c->mod, STORE_MOD_OF_TYPE);
	assert_string_equal(c->param, "identifier:of-type");
	assert_string_equal(c->m[0].a, "http://terminology.hl7.org/CodeSystem/v2-0203");
	assert_string_equal(c->m[0].b, "MR");
	assert_string_equal(c->m[0].c, "446053");
	c = only_cond(ok(r, "DocumentReference", "identifier:of-type=s|c|v\\|w"), 1);
	assert_string_equal(c->param, "identifier:of-type");
	assert_string_equal(c->m[0].c, "v|w");
	c = only_cond(ok(r, "Task", "group-identifier:of-type=s|c|v"), 1);
	assert_string_equal(c->param, "group-identifier:of-type");
	bad_param(r, "Patient", "identifier:of-type=MR|446053", "identifier:of-type");
	bad_param(r, "Patient", "identifier:of-type=446053", "identifier:of-type");
	bad_param(r, "Patient", "identifier:of-type=a|b|c|d", "identifier:of-type");
	/* :of-type is for Identifier parameters only */
	bad_param(r, "Observation", "code:of-type=a|b|c", "code:of-type");
	bad_param(r, "Patient", "gender:of-type=a|b|c", "gender:of-type");

	/* modifiers a token does not take */
	bad_param(r, "Observation", "code:exact=x", "code:exact");
	bad_param(r, "Observation", "code:contains=x", "code:contains");
	bad_param(r, "Observation", "code:below=x", "code:below");
	bad_param(r, "Observation", "code:in=http://vs", "code:in");
	bad_param(r, "Observation", "code:Patient=x", "code:Patient");
	bad_param(r, "Observation", "code:=x", "code:");
	bad_param(r, "Observation", "code:text:not=x", "code:text:not");
	bad_param(r, "Observation", "code:TEXT=x", "code:TEXT");
}

/* ---- strings and uris ---- */

static void test_string_modifiers(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;

	c = only_cond(ok(r, "Patient", "name=Zoë"), 1);
	assert_int_equal(c->kind, STORE_IX_STRING);
	assert_int_equal(c->mod, STORE_MOD_NONE);
	assert_string_equal(c->m[0].a, "zoe");
	assert_null(c->m[0].b);
	c = only_cond(ok(r, "Patient", "name:exact=Zoë"), 1);
	assert_int_equal(c->mod, STORE_MOD_EXACT);
	assert_string_equal(c->m[0].b, "Zoë");
	c = only_cond(ok(r, "Patient", "family:contains=ZO,ëv"), 2);
	assert_int_equal(c->mod, STORE_MOD_CONTAINS);
	assert_string_equal(c->m[0].a, "zo");
	assert_string_equal(c->m[1].a, "ev");
	c = only_cond(ok(r, "Patient", "address-city=  San   Francisco "), 1);
	assert_string_equal(c->m[0].a, "san francisco");

	bad_param(r, "Patient", "name:text=x", "name:text");
	bad_param(r, "Patient", "name:not=x", "name:not");
	bad_param(r, "Patient", "name:below=x", "name:below");
	bad_param(r, "Patient", "name:Exact=x", "name:Exact");
	bad_param(r, "Patient", "name=", "name");
	/* bytes that are not UTF-8: refused, however the value would otherwise be read */
	bad_param(r, "Patient", "name=Zo\xff", "name");
	bad_param(r, "Patient", "_id=\xc3", "_id");
	bad_param(r, "Observation", "category=vita\xff\xff\xff\xffl-signs", "category");
	assert_int_equal(parse_as(r, "Patient", NULL, "na\xffme=x", false), ERR_INVALID);
}

static void test_uri_modifiers(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;

	c = only_cond(ok(r, "Questionnaire", "url=http://example.org/q/1"), 1);
	assert_int_equal(c->kind, STORE_IX_URI);
	assert_int_equal(c->mod, STORE_MOD_NONE);
	assert_string_equal(c->m[0].a, "http://example.org/q/1");
	c = only_cond(ok(r, "Questionnaire", "url:below=http://example.org/q"), 1);
	assert_int_equal(c->mod, STORE_MOD_BELOW);
	assert_string_equal(c->m[0].a, "http://example.org/q");
	c = only_cond(ok(r, "Questionnaire", "url:above=http://example.org/q/1/2"), 1);
	assert_int_equal(c->mod, STORE_MOD_ABOVE);
	c = only_cond(ok(r, "Patient", "_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"), 1);
	assert_string_equal(c->param, "_profile");
	assert_int_equal(c->kind, STORE_IX_URI);

	bad_param(r, "Questionnaire", "url:exact=http://x", "url:exact");
	bad_param(r, "Questionnaire", "url:contains=x", "url:contains");
	bad_param(r, "Questionnaire", "url:not=x", "url:not");
}

/* ---- references ---- */

static void test_reference_forms(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;

	c = only_cond(ok(r, "Observation", "patient=Patient/123"), 1);
	assert_int_equal(c->kind, STORE_IX_REFERENCE);
	/* "patient" is an alias: the rows of "subject", narrowed to Patient */
	assert_string_equal(c->param, "subject");
	assert_string_equal(c->m[0].a, "Patient");
	assert_string_equal(c->m[0].b, "123");
	assert_null(c->m[0].c);
	/* a bare id: any type */
	c = only_cond(ok(r, "Observation", "subject=123"), 1);
	assert_null(c->m[0].a);
	assert_string_equal(c->m[0].b, "123");
	/* :Type */
	c = only_cond(ok(r, "Observation", "subject:Patient=123"), 1);
	assert_int_equal(c->mod, STORE_MOD_NONE);
	assert_string_equal(c->m[0].a, "Patient");
	assert_string_equal(c->m[0].b, "123");
	c = only_cond(ok(r, "Observation", "subject:Patient=Patient/123"), 1);
	assert_string_equal(c->m[0].a, "Patient");
	/* an absolute URL on this server is Type/id */
	c = only_cond(ok(r, "Observation", "patient=" FHIR_BASE "/Patient/123"), 1);
	assert_string_equal(c->m[0].a, "Patient");
	assert_string_equal(c->m[0].b, "123");
	assert_null(c->m[0].c);
	/* versions are dropped */
	c = only_cond(ok(r, "Observation", "patient=Patient/123/_history/2"), 1);
	assert_string_equal(c->m[0].a, "Patient");
	assert_string_equal(c->m[0].b, "123");
	c = only_cond(ok(r, "Observation", "patient=" FHIR_BASE "/Patient/a.b-c/_history/7"), 1);
	assert_string_equal(c->m[0].b, "a.b-c");
	/* other absolute URLs stay URLs */
	c = only_cond(ok(r, "Observation", "patient=http://other.org/fhir/Patient/123"), 1);
	assert_null(c->m[0].a);
	assert_null(c->m[0].b);
	assert_string_equal(c->m[0].c, "http://other.org/fhir/Patient/123");
	c = only_cond(ok(r, "Observation", "patient=" BASE_URL "/fhir2/Patient/1"), 1);
	assert_string_equal(c->m[0].c, BASE_URL "/fhir2/Patient/1");
	c = only_cond(ok(r, "Observation", "subject=urn:uuid:1f0e2a3c-0000-4000-8000-000000000001"), 1);
	assert_string_equal(c->m[0].c, "urn:uuid:1f0e2a3c-0000-4000-8000-000000000001");
	c = only_cond(ok(r, "Observation", "subject=https://x.org/Group/1"), 1);
	assert_string_equal(c->m[0].c, "https://x.org/Group/1");
	/* OR */
	c = only_cond(ok(r, "Observation", "patient=Patient/1,2,Patient/3/_history/1"), 3);
	assert_string_equal(c->m[1].b, "2");
	assert_string_equal(c->m[1].a, "Patient"); /* a bare id of an alias takes its one type */
	assert_string_equal(c->m[2].b, "3");
	c = only_cond(ok(r, "Observation", "subject=2"), 1);
	assert_null(c->m[0].a);

	bad_param(r, "Observation", "patient=Foo/1", "patient");
	bad_param(r, "Observation", "patient=Practitioner/1", "patient");
	bad_param(r, "Observation", "patient=patient/1", "patient");
	bad_param(r, "Observation", "patient=Patient/", "patient");
	bad_param(r, "Observation", "patient=Patient/1/2", "patient");
	bad_param(r, "Observation", "patient=Patient/a b", "patient");
	bad_param(r, "Observation", "patient=Patient/1/_history/", "patient");
	bad_param(r, "Observation", "patient=Patient/1/_history/2/3", "patient");
	bad_param(r, "Observation", "patient=Patient/1/_history/a_b", "patient");
	bad_param(r, "Observation", "patient=" FHIR_BASE "/Foo/1", "patient");
	bad_param(r, "Observation", "patient=a_b", "patient");
	bad_param(r, "Observation", "patient=", "patient");
	bad_param(r, "Observation", "subject:Patient=Practitioner/1", "subject:Patient");
	bad_param(r, "Observation", "subject:Foo=1", "subject:Foo");
	bad_param(r, "Observation", "subject:patient=1", "subject:patient");
	bad_param(r, "Observation", "subject:identifier=x|1", "subject:identifier");
	bad_param(r, "Observation", "subject:not=Patient/1", "subject:not");
	/* a type the parameter never points at */
	bad_param(r, "Observation", "patient:Practitioner=1", "patient:Practitioner");
	bad_param(r, "Observation", "encounter:Patient=1", "encounter:Patient");
}

/* ---- :missing ---- */

static void test_missing_everywhere(void **state)
{
	struct run *r = *state;
	static const struct {
		const char *type, *param;
		enum store_ix kind;
	} params[] = {
		{"Observation", "code", STORE_IX_TOKEN},
		{"Patient", "identifier", STORE_IX_TOKEN},
		{"Patient", "name", STORE_IX_STRING},
		{"Observation", "date", STORE_IX_DATE},
		{"Observation", "subject", STORE_IX_REFERENCE},
		{"Observation", "value-quantity", STORE_IX_QUANTITY},
		{"Questionnaire", "url", STORE_IX_URI},
		{"Encounter", "_lastUpdated", STORE_IX_DATE},
		{"Encounter", "_tag", STORE_IX_TOKEN},
		{"Encounter", "_profile", STORE_IX_URI},
	};
	char qs[128], name[96];

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const struct store_cond *c;

		snprintf(qs, sizeof(qs), "%s:missing=true", params[i].param);
		c = only_cond(ok(r, params[i].type, qs), 0);
		assert_int_equal(c->mod, STORE_MOD_MISSING);
		assert_int_equal(c->kind, params[i].kind);
		assert_string_equal(c->param, params[i].param);

		snprintf(qs, sizeof(qs), "%s:missing=false", params[i].param);
		c = only_cond(ok(r, params[i].type, qs), 0);
		assert_int_equal(c->mod, STORE_MOD_PRESENT);

		snprintf(name, sizeof(name), "%s:missing", params[i].param);
		snprintf(qs, sizeof(qs), "%s=maybe", name);
		bad_param(r, params[i].type, qs, name);
		snprintf(qs, sizeof(qs), "%s=TRUE", name);
		bad_param(r, params[i].type, qs, name);
		snprintf(qs, sizeof(qs), "%s=true,false", name);
		bad_param(r, params[i].type, qs, name);
		snprintf(qs, sizeof(qs), "%s=", name);
		bad_param(r, params[i].type, qs, name);
	}
	/* in a chain and in _has */
	{
		struct search_parsed *p = ok(r, "Observation", "patient.birthdate:missing=true");
		const struct store_cond *c = only_cond(p, 0);
		assert_non_null(c->chain);
		assert_int_equal(c->chain->mod, STORE_MOD_MISSING);
		p = ok(r, "Patient", "_has:Observation:patient:value-quantity:missing=false");
		c = only_cond(p, 0);
		assert_non_null(c->has);
		assert_int_equal(c->has->mod, STORE_MOD_PRESENT);
	}
}

/* ---- OR and AND ---- */

static void test_or_and(void **state)
{
	struct run *r = *state;
	struct search_parsed *p;

	p = ok(r, "Observation", "code=a,b,c&code=d&date=ge2023&date=lt2024");
	assert_int_equal(p->nconds, 4);
	assert_string_equal(p->conds[0].param, "code");
	assert_int_equal(p->conds[0].nm, 3);
	assert_string_equal(p->conds[0].m[2].b, "c");
	assert_string_equal(p->conds[1].param, "code");
	assert_int_equal(p->conds[1].nm, 1);
	assert_string_equal(p->conds[1].m[0].b, "d");
	assert_int_equal(p->conds[2].m[0].cmp, STORE_CMP_GE);
	assert_int_equal(p->conds[3].m[0].cmp, STORE_CMP_LT);
	assert_ptr_equal(p->q.conds, p->conds);
	assert_int_equal(p->q.nconds, 4);
	assert_string_equal(p->q.type, "Observation");
	assert_null(p->q.patient);
}

static void test_limits(void **state)
{
	struct run *r = *state;
	struct buf b = BUF_INIT(1 << 20);

	/* 64 alternatives are fine, 65 are not */
	buf_adds(&b, "code=");
	for (int i = 0; i < 64; i++)
		buf_addf(&b, "%sc%d", i ? "," : "", i);
	only_cond(ok(r, "Observation", b.data), 64);
	buf_adds(&b, ",c64");
	bad_param(r, "Observation", b.data, "code");

	/* a value of 2048 bytes is fine, 2049 are not */
	buf_reset(&b);
	buf_adds(&b, "family=");
	for (int i = 0; i < 2048; i++)
		buf_addch(&b, 'a');
	only_cond(ok(r, "Patient", b.data), 1);
	buf_addch(&b, 'a');
	bad_param(r, "Patient", b.data, "family");

	/* 64 conditions are fine, a 65th is not; unknown ones do not count */
	buf_reset(&b);
	for (int i = 0; i < 64; i++)
		buf_addf(&b, "%scode=c%d", i ? "&" : "", i);
	buf_adds(&b, "&unknown=1");
	assert_int_equal(ok(r, "Observation", b.data)->nconds, 64);
	assert_string_equal(r->p.ignored.data, "unknown");
	buf_adds(&b, "&status=final");
	bad_param(r, "Observation", b.data, "status");
	assert_non_null(strstr(r->c.msg, "64"));
	buf_release(&b);
}

/* ---- chaining and _has ---- */

static void test_chaining(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;

	c = only_cond(ok(r, "Observation", "patient.name=Smith,Jones"), 0);
	assert_int_equal(c->kind, STORE_IX_REFERENCE);
	assert_string_equal(c->param, "subject");
	assert_string_equal(c->chain_type, "Patient");
	assert_non_null(c->chain);
	assert_int_equal(c->chain->kind, STORE_IX_STRING);
	assert_string_equal(c->chain->param, "name");
	assert_int_equal(c->chain->nm, 2);
	assert_string_equal(c->chain->m[0].a, "smith");
	assert_string_equal(c->chain->m[1].a, "jones");
	assert_null(c->chain->chain);

	/* subject points anywhere: the type modifier picks Patient */
	c = only_cond(ok(r, "Observation", "subject:Patient.name:exact=Smith"), 0);
	assert_string_equal(c->param, "subject");
	assert_string_equal(c->chain_type, "Patient");
	assert_int_equal(c->chain->mod, STORE_MOD_EXACT);
	assert_string_equal(c->chain->m[0].b, "Smith");
	/* a parameter only one type has needs no modifier */
	c = only_cond(ok(r, "Observation", "subject.general-practitioner=Practitioner/1"), 0);
	assert_string_equal(c->chain_type, "Patient");
	assert_string_equal(c->chain->m[0].a, "Practitioner");
	/* chained token, date, reference and _id */
	c = only_cond(ok(r, "Observation", "patient.identifier=urn:mrn|42"), 0);
	assert_string_equal(c->chain->m[0].a, "urn:mrn");
	c = only_cond(ok(r, "Observation", "encounter.date=ge2023-01"), 0);
	assert_string_equal(c->chain_type, "Encounter");
	assert_int_equal(c->chain->m[0].cmp, STORE_CMP_GE);
	c = only_cond(ok(r, "Observation", "patient.organization=Organization/o1"), 0);
	assert_string_equal(c->chain->m[0].b, "o1");
	c = only_cond(ok(r, "Observation", "patient._id=p1"), 0);
	assert_string_equal(c->chain->param, "_id");

	/* ambiguous: subject can be a Patient, Practitioner, ... with a name */
	bad_param(r, "Observation", "subject.name=x", "subject.name");
	assert_non_null(strstr(r->c.msg, "subject:Patient.name"));
	bad_param(r, "Observation", "performer.name=x", "performer.name");
	/* two levels */
	bad_param(r, "Observation", "patient.organization.name=x", "patient.organization.name");
	/* not a reference, unknown chained parameter, bad modifiers, bad value */
	bad_param(r, "Observation", "code.text=x", "code.text");
	bad_param(r, "Observation", "patient.nope=x", "patient.nope");
	bad_param(r, "Observation", "subject:Nope.name=x", "subject:Nope.name");
	bad_param(r, "Observation", "patient:Practitioner.name=x", "patient:Practitioner.name");
	bad_param(r, "Observation", "patient:missing.name=x", "patient:missing.name");
	bad_param(r, "Observation", "patient.name:nope=x", "patient.name:nope");
	bad_param(r, "Observation", "patient.birthdate=notadate", "patient.birthdate");
	bad_param(r, "Observation", "patient.name=", "patient.name");
	/* an unknown head is an unknown parameter */
	ok(r, "Observation", "nope.name=x");
	assert_int_equal(r->p.nconds, 0);
	assert_string_equal(r->p.ignored.data, "nope.name");
}

static void test_has(void **state)
{
	struct run *r = *state;
	const struct store_cond *c;

	c = only_cond(ok(r, "Patient", "_has:Observation:patient:code=http://loinc.org|8302-2"), 0);
	assert_string_equal(c->has_type, "Observation");
	assert_string_equal(c->has_param, "subject");
	assert_non_null(c->has);
	assert_int_equal(c->has->kind, STORE_IX_TOKEN);
	assert_string_equal(c->has->param, "code");
	assert_int_equal(c->has->nm, 1);
	assert_string_equal(c->has->m[0].a, "http://loinc.org");
	assert_string_equal(c->has->m[0].b, "8302-2");
	assert_null(c->chain);

	c = only_cond(ok(r, "Patient", "_has:Observation:subject:code:text=weight"), 0);
	assert_int_equal(c->has->mod, STORE_MOD_TEXT);
	c = only_cond(ok(r, "Encounter", "_has:Observation:encounter:date=ge2023,lt2000"), 0);
	assert_string_equal(c->has_param, "encounter");
	assert_int_equal(c->has->nm, 2);
	c = only_cond(ok(r, "Patient", "_has:Condition:patient:_lastUpdated=gt2023"), 0);
	assert_string_equal(c->has->param, "_lastUpdated");

	bad_param(r, "Patient", "_has:Observation=x", "_has:Observation");
	bad_param(r, "Patient", "_has:Observation:patient=x", "_has:Observation:patient");
	bad_param(r, "Patient", "_has:Nope:patient:code=x", "_has:Nope:patient:code");
	bad_param(r, "Patient", "_has:Observation:code:code=x", "_has:Observation:code:code");
	bad_param(r, "Patient", "_has:Observation:nope:code=x", "_has:Observation:nope:code");
	bad_param(r, "Patient", "_has:Observation:patient:nope=x", "_has:Observation:patient:nope");
	bad_param(r, "Patient", "_has:Observation:patient:code:nope=x",
		  "_has:Observation:patient:code:nope");
	bad_param(r, "Patient", "_has:Observation:patient:date=bad", "_has:Observation:patient:date");
	bad_param(r, "Patient", "_has:Observation:patient:code=", "_has:Observation:patient:code");
	/* nested _has is not supported */
	bad_param(r, "Patient", "_has:Observation:patient:_has:AuditEvent:entity:type=x",
		  "_has:Observation:patient:_has:AuditEvent:entity:type");
	/* Observation.encounter never points at a Patient */
	bad_param(r, "Patient", "_has:Observation:encounter:code=x", "_has:Observation:encounter:code");
}

/* ---- result parameters ---- */

static void test_count(void **state)
{
	struct run *r = *state;
	struct search_parsed *p;

	p = ok(r, "Observation", "code=x");
	assert_int_equal(p->count, PAGE_SIZE);
	assert_false(p->count_given);
	assert_int_equal(p->q.limit, PAGE_SIZE);
	p = ok(r, "Observation", "_count=5");
	assert_int_equal(p->count, 5);
	assert_true(p->count_given);
	assert_int_equal(p->q.limit, 5);
	p = ok(r, "Observation", "_count=100000");
	assert_int_equal(p->count, PAGE_MAX);
	assert_int_equal(p->q.limit, PAGE_MAX);
	p = ok(r, "Observation", "_count=9223372036854775807");
	assert_int_equal(p->count, PAGE_MAX);
	p = ok(r, "Observation", "_count=0");
	assert_int_equal(p->q.limit, 0);
	assert_int_equal(p->nconds, 0);
	assert_int_equal(p->applied.len, 0);

	static const char *const bad[] = {"_count=-1", "_count=abc", "_count=", "_count=1.5",
					  "_count= 5", "_count=5x", "_count=99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		bad_param(r, "Observation", bad[i], "_count");
}

static void test_sort(void **state)
{
	struct run *r = *state;
	struct search_parsed *p;

	p = ok(r, "Observation", "_sort=-date,code,_id,-_lastUpdated");
	assert_ptr_equal(p->q.sort, p->sort);
	assert_int_equal(p->q.nsort, 4);
	assert_int_equal(p->sort[0].by, STORE_SORT_PARAM);
	assert_int_equal(p->sort[0].kind, STORE_IX_DATE);
	assert_string_equal(p->sort[0].param, "date");
	assert_true(p->sort[0].desc);
	assert_int_equal(p->sort[1].by, STORE_SORT_PARAM);
	assert_int_equal(p->sort[1].kind, STORE_IX_TOKEN);
	assert_string_equal(p->sort[1].param, "code");
	assert_false(p->sort[1].desc);
	assert_int_equal(p->sort[2].by, STORE_SORT_ID);
	assert_false(p->sort[2].desc);
	assert_int_equal(p->sort[3].by, STORE_SORT_LAST_UPDATED);
	assert_true(p->sort[3].desc);
	p = ok(r, "Patient", "_sort=family");
	assert_int_equal(p->q.nsort, 1);
	assert_int_equal(p->sort[0].kind, STORE_IX_STRING);
	p = ok(r, "Observation", "code=x");
	assert_int_equal(p->q.nsort, 0);

	bad_param(r, "Observation", "_sort=nope", "_sort");
	bad_param(r, "Observation", "_sort=-nope", "_sort");
	bad_param(r, "Observation", "_sort=patient", "_sort");   /* references do not sort */
	bad_param(r, "Observation", "_sort=a,b,c,d,e", "_sort");
	bad_param(r, "Observation", "_sort=date,_id,code,status,_lastUpdated", "_sort");
	bad_param(r, "Observation", "_sort=", "_sort");
	bad_param(r, "Observation", "_sort=-", "_sort");
	bad_param(r, "Observation", "_sort=date,", "_sort");
	bad_param(r, "Patient", "_sort=date", "_sort");
}

static void test_total_summary_elements(void **state)
{
	struct run *r = *state;
	struct search_parsed *p;

	/* no count by default (search.c gives the total when the first page has every match) */
	p = ok(r, "Observation", "");
	assert_int_equal(p->q.total, STORE_TOTAL_NONE);
	assert_false(p->total_given);
	p = ok(r, "Observation", "_total=none");
	assert_int_equal(p->q.total, STORE_TOTAL_NONE);
	assert_true(p->total_given);
	assert_int_equal(ok(r, "Observation", "_total=estimate")->q.total, STORE_TOTAL_ESTIMATE);
	assert_int_equal(ok(r, "Observation", "_total=accurate")->q.total, STORE_TOTAL_ACCURATE);
	bad_param(r, "Observation", "_total=all", "_total");
	bad_param(r, "Observation", "_total=", "_total");

	assert_int_equal(ok(r, "Observation", "_summary=true")->summary, SUMMARY_TRUE);
	assert_int_equal(ok(r, "Observation", "_summary=false")->summary, SUMMARY_NONE);
	assert_int_equal(ok(r, "Observation", "_summary=text")->summary, SUMMARY_TEXT);
	assert_int_equal(ok(r, "Observation", "_summary=data")->summary, SUMMARY_DATA);
	p = ok(r, "Observation", "_summary=count&_count=50");
	assert_int_equal(p->summary, SUMMARY_COUNT);
	assert_int_equal(p->q.limit, 0);
	assert_int_equal(p->q.total, STORE_TOTAL_ACCURATE);
	/* _summary=count still counts when _total=none */
	p = ok(r, "Observation", "_total=none&_summary=count");
	assert_int_equal(p->q.total, STORE_TOTAL_ACCURATE);
	bad_param(r, "Observation", "_summary=yes", "_summary");
	bad_param(r, "Observation", "_summary=", "_summary");

	p = ok(r, "Patient", "_elements=Patient.name,gender,,birthDate");
	assert_int_equal(p->nelements, 3);
	assert_string_equal(p->elements[0], "name");
	assert_string_equal(p->elements[1], "gender");
	assert_string_equal(p->elements[2], "birthDate");
	p = ok(r, "Patient", "_elements=name&_elements=gender");
	assert_int_equal(p->nelements, 2);

	/* at most 64 elements, also over repeated _elements */
	struct buf b = BUF_INIT(1 << 16);
	buf_adds(&b, "_elements=");
	for (int i = 0; i < 64; i++)
		buf_addf(&b, "%se%d", i ? "," : "", i);
	assert_int_equal(ok(r, "Patient", b.data)->nelements, 64);
	buf_adds(&b, ",e64");
	bad_param(r, "Patient", b.data, "_elements");
	buf_reset(&b);
	for (int k = 0; k < 3; k++) {
		buf_addf(&b, "%s_elements=", k ? "&" : "");
		for (int i = 0; i < 30; i++)
			buf_addf(&b, "%sk%de%d", i ? "," : "", k, i);
	}
	bad_param(r, "Patient", b.data, "_elements");
	buf_release(&b);
}

static void test_include(void **state)
{
	struct run *r = *state;
	struct search_parsed *p;

	p = ok(r, "Observation", "_include=Observation:patient&_include=Observation:subject:Patient"
				 "&_include:iterate=Patient:general-practitioner&_include=*"
				 "&_revinclude=Provenance:target&_revinclude:iterate=Observation:*"
				 "&_include=Observation:*&_include:recurse=Observation:has-member");
	assert_int_equal(p->ninc, 8);
	assert_string_equal(p->inc[0].src_type, "Observation");
	assert_string_equal(p->inc[0].param, "subject");
	assert_string_equal(p->inc[0].target_type, "Patient");
	assert_false(p->inc[0].iterate);
	assert_false(p->inc[0].reverse);
	assert_string_equal(p->inc[1].target_type, "Patient");
	assert_string_equal(p->inc[2].src_type, "Patient");
	assert_true(p->inc[2].iterate);
	assert_null(p->inc[3].src_type);
	assert_null(p->inc[3].param);
	assert_true(p->inc[4].reverse);
	assert_string_equal(p->inc[4].src_type, "Provenance");
	assert_string_equal(p->inc[4].param, "target");
	assert_true(p->inc[5].reverse);
	assert_true(p->inc[5].iterate);
	assert_null(p->inc[5].param);
	assert_string_equal(p->inc[6].src_type, "Observation");
	assert_null(p->inc[6].param);
	assert_true(p->inc[7].iterate);
	assert_int_equal(p->nconds, 0);

	bad_param(r, "Observation", "_include=Observation", "_include");
	bad_param(r, "Observation", "_include=Observation:code", "_include");
	bad_param(r, "Observation", "_include=Nope:patient", "_include");
	bad_param(r, "Observation", "_include=Observation:nope", "_include");
	bad_param(r, "Observation", "_include=Observation:patient:Nope", "_include");
	bad_param(r, "Observation", "_include=Observation:patient:Patient:x", "_include");
	bad_param(r, "Observation", "_include=", "_include");
	bad_param(r, "Observation", "_include:nope=Observation:patient", "_include:nope");
	bad_param(r, "Observation", "_include:iterate:x=Observation:patient", "_include:iterate:x");
	bad_param(r, "Observation", "_revinclude=*", "_revinclude");
	bad_param(r, "Observation", "_revinclude=Provenance", "_revinclude");
	bad_param(r, "Observation", "_revinclude:nope=Provenance:target", "_revinclude:nope");

	/* at most 16 */
	struct buf b = BUF_INIT(1 << 16);
	for (int i = 0; i < 16; i++)
		buf_addf(&b, "%s_include=Observation:patient", i ? "&" : "");
	assert_int_equal(ok(r, "Observation", b.data)->ninc, 16);
	buf_adds(&b, "&_revinclude=Provenance:target");
	bad_param(r, "Observation", b.data, "_revinclude");
	buf_release(&b);

	/* names that merely start with _include are unknown parameters */
	p = ok(r, "Observation", "_includes=Observation:patient&_revincludeX=Provenance:target");
	assert_int_equal(p->ninc, 0);
	assert_string_equal(p->ignored.data, "_includes, _revincludeX");
}

/* ---- unknown parameters, strict handling, applied ---- */

static void test_unknown(void **state)
{
	struct run *r = *state;
	struct search_parsed *p;

	p = ok(r, "Observation", "foo=1&code=x&bar&_format=json&_pretty=true&name=y&_text=z");
	assert_int_equal(p->nconds, 1);
	assert_string_equal(p->ignored.data, "foo, bar, name, _text");
	assert_string_equal(p->applied.data, "code=x");
	p = ok(r, "Observation", "code=x");
	assert_int_equal(p->ignored.len, 0);

	/* strict: the first unknown parameter is a 400 naming it */
	assert_int_equal(parse_as(r, "Observation", NULL, "code=x&foo=1&bar=2", true), ERR_INVALID);
	assert_string_equal(r->c.expr, "foo");
	assert_non_null(strstr(r->c.msg, "foo"));
	assert_non_null(strstr(r->c.msg, "strict"));
	assert_int_equal(parse_as(r, "Observation", NULL, "name=x", true), ERR_INVALID);
	assert_string_equal(r->c.expr, "name");
	assert_int_equal(parse_as(r, "Observation", NULL, "nope.name=x", true), ERR_INVALID);
	assert_string_equal(r->c.expr, "nope.name");
	/* _format and _pretty are known; everything else here is too */
	assert_int_equal(parse_as(r, "Observation", NULL,
				  "_format=json&_pretty=true&code=x&_count=3&_sort=date&_total=none"
				  "&_summary=data&_elements=code&_include=Observation:patient",
				  true),
			 ERR_OK);
	assert_int_equal(r->p.ignored.len, 0);

	/* $everything (no type): search parameters are unknown */
	assert_int_equal(parse_as(r, NULL, "p1", "code=x&_count=5", false), ERR_OK);
	assert_int_equal(r->p.nconds, 0);
	assert_string_equal(r->p.ignored.data, "code");
	assert_null(r->p.q.type);
	assert_string_equal(r->p.q.patient, "p1");
	assert_int_equal(r->p.q.limit, 5);
	assert_int_equal(parse_as(r, NULL, "p1", "code=x", true), ERR_INVALID);
	assert_string_equal(r->c.expr, "code");
	/* $everything sorts by _id / _lastUpdated only */
	assert_int_equal(parse_as(r, NULL, "p1", "_sort=-_lastUpdated", false), ERR_OK);
	assert_int_equal(r->p.q.nsort, 1);
	assert_int_equal(parse_as(r, NULL, "p1", "_sort=date", false), ERR_INVALID);
	assert_string_equal(r->c.expr, "_sort");

	/* a compartment search keeps the patient */
	assert_int_equal(parse_as(r, "Observation", "p1", "code=x", false), ERR_OK);
	assert_string_equal(r->p.q.patient, "p1");
	assert_string_equal(r->p.q.type, "Observation");
}

static void test_applied(void **state)
{
	struct run *r = *state;
	struct store_cursor cur;
	struct buf tok = BUF_INIT(4096), qs = BUF_INIT(8192);
	struct search_parsed *p;

	memset(&cur, 0, sizeof(cur));
	cur.snapshot_rid = 10;
	cur.rid = 5;
	assert_int_equal(search_cursor_encode(&cur, false, &tok), ERR_OK);
	buf_addf(&qs, "code=a&_count=5&_page=%s&foo=1&_sort=-date&_format=json&date=ge2023"
		      "&_include=Observation:patient&_total=none&_summary=data&_elements=code",
		 tok.data);
	p = ok(r, "Observation", qs.data);
	/* the single-valued controls (_sort, _total, _summary) come last */
	assert_string_equal(p->applied.data, "code=a&date=ge2023&_include=Observation:patient"
					     "&_elements=code&_sort=-date&_total=none&_summary=data");
	assert_true(p->has_cursor);
	assert_int_equal(p->count, 5);

	/* given twice, only the one that applies (the last) is shown */
	p = ok(r, "Observation", "_sort=date&code=a&_total=accurate&_sort=-date&_summary=text"
				 "&_total=none&_summary=data");
	assert_string_equal(p->applied.data, "code=a&_sort=-date&_total=none&_summary=data");
	assert_true(p->q.nsort == 1 && p->q.sort[0].desc);
	assert_int_equal(p->q.total, STORE_TOTAL_NONE);
	assert_int_equal(p->summary, SUMMARY_DATA);

	/* names keep ':', values are percent-encoded */
	p = ok(r, "Observation", "code:not=http://loinc.org|8302-2&patient.name=A B");
	assert_string_equal(p->applied.data, "code:not=http:%2F%2Floinc.org%7C8302-2"
					     "&patient.name=A%20B");
	p = ok(r, "Observation", "code=a\\,b&_has:Observation:has-member:code=x&value-string=é");
	assert_string_equal(p->applied.data,
			    "code=a%5C%2Cb&_has:Observation:has-member:code=x&value-string=%C3%A9");
	buf_release(&tok);
	buf_release(&qs);
}

/* ---- the _page cursor ---- */

static void test_cursor_round_trip(void **state)
{
	struct run *r = *state;
	struct store_cursor cur, back;
	struct buf tok = BUF_INIT(4096), qs = BUF_INIT(8192);
	bool backward = false;

	memset(&cur, 0, sizeof(cur));
	cur.set = true;
	cur.snapshot_rid = INT64_C(9007199254740993);
	cur.rid = 42;
	cur.key[0].null = true;
	str_copy(cur.key[1].s, "smith \"jr\" \\ é", sizeof(cur.key[1].s));
	cur.key[2].i = -INT64_C(1680652800000);
	cur.key[2].r = 5.25;
	memset(cur.key[3].s, 'x', sizeof(cur.key[3].s) - 1); /* the longest key */

	for (int dir = 0; dir < 2; dir++) {
		buf_reset(&tok);
		assert_int_equal(search_cursor_encode(&cur, dir, &tok), ERR_OK);
		/* base64url: safe in a query string as is */
		assert_int_equal(strspn(tok.data, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
						  "0123456789-_"),
				 tok.len);
		memset(&back, 0x55, sizeof(back));
		assert_int_equal(search_cursor_decode(tok.data, &back, &backward), ERR_OK);
		assert_int_equal(backward, dir == 1);
		assert_true(back.set);
		assert_int_equal(back.snapshot_rid, cur.snapshot_rid);
		assert_int_equal(back.rid, cur.rid);
		assert_true(back.key[0].null);
		assert_false(back.key[1].null);
		assert_string_equal(back.key[1].s, cur.key[1].s);
		assert_false(back.key[2].null);
		assert_string_equal(back.key[2].s, "");
		assert_int_equal(back.key[2].i, cur.key[2].i);
		assert_true(back.key[2].r == cur.key[2].r);
		assert_string_equal(back.key[3].s, cur.key[3].s);

		/* and through _page */
		buf_reset(&qs);
		buf_addf(&qs, "code=x&_page=%s", tok.data);
		assert_int_equal(parse_as(r, "Observation", NULL, qs.data, false), ERR_OK);
		assert_true(r->p.has_cursor);
		assert_true(r->p.q.cursor.set);
		assert_int_equal(r->p.q.backward, dir == 1);
		assert_int_equal(r->p.q.cursor.rid, 42);
		assert_string_equal(r->p.q.cursor.key[1].s, cur.key[1].s);
	}
	/* an all-zero cursor */
	memset(&cur, 0, sizeof(cur));
	buf_reset(&tok);
	assert_int_equal(search_cursor_encode(&cur, false, &tok), ERR_OK);
	assert_int_equal(search_cursor_decode(tok.data, &back, &backward), ERR_OK);
	assert_int_equal(back.rid, 0);
	assert_false(back.key[0].null);
	assert_false(backward);
	/* no _page, no cursor */
	assert_false(ok(r, "Observation", "code=x")->has_cursor);
	assert_false(r->p.q.cursor.set);
	buf_release(&tok);
	buf_release(&qs);
}

/* base64url of 'json' */
static void b64(struct buf *out, const char *json)
{
	buf_reset(out);
	assert_int_equal(base64url_encode(json, strlen(json), out), ERR_OK);
}

static void expect_bad_cursor(struct run *r, const char *token)
{
	struct store_cursor cur;
	struct buf qs = BUF_INIT(1 << 16);
	bool back = true;

	if (search_cursor_decode(token, &cur, &back) != ERR_INVALID)
		fail_msg("cursor '%s' accepted", token);
	assert_false(cur.set);
	buf_addf(&qs, "code=x&_page=%s", token);
	bad_param(r, "Observation", qs.data, "_page");
	assert_false(r->p.has_cursor);
	buf_release(&qs);
}

static void test_cursor_rejects(void **state)
{
	struct run *r = *state;
	struct store_cursor cur;
	struct buf tok = BUF_INIT(1 << 16), big = BUF_INIT(1 << 16);
	bool back;
	static const char *const garbage[] = {
		"", "x", "!!!!", "abc=", "a b", "eyJ", "%00", "////", "++++", "AAAA", "bnVsbA",
	};
	static const char *const json[] = {
		"null", "[]", "{}", "\"s\"", "42",
		"{\"s\":1,\"r\":2,\"b\":false}",
		"{\"s\":1,\"r\":2,\"k\":[null,null,null,null]}",
		"{\"s\":1,\"b\":false,\"k\":[null,null,null,null]}",
		"{\"s\":-1,\"r\":2,\"b\":false,\"k\":[null,null,null,null]}",
		"{\"s\":1,\"r\":-2,\"b\":false,\"k\":[null,null,null,null]}",
		"{\"s\":1.5,\"r\":2,\"b\":false,\"k\":[null,null,null,null]}",
		"{\"s\":\"1\",\"r\":2,\"b\":false,\"k\":[null,null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":0,\"k\":[null,null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[null,null,null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":{}}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[\"\",null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[true,null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[1,null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[[1],null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[[1.5,2],null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[[1,\"2\"],null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[[1,2,3],null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[{},null,null,null]}",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[null,null,null,null]} trailing",
		"{\"s\":1,\"r\":2,\"b\":false,\"k\":[\"a\\u0000b\",null,null,null]}",
		"{\"s\":99999999999999999999,\"r\":2,\"b\":false,\"k\":[null,null,null,null]}",
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		expect_bad_cursor(r, garbage[i]);
	for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
		b64(&tok, json[i]);
		expect_bad_cursor(r, tok.data);
	}
	/* the valid form of the above is accepted */
	b64(&tok, "{\"s\":1,\"r\":2,\"b\":true,\"k\":[null,\"a\",[3,4.5],[0,0]]}");
	assert_int_equal(search_cursor_decode(tok.data, &cur, &back), ERR_OK);
	assert_true(back);
	assert_string_equal(cur.key[1].s, "a");
	assert_int_equal(cur.key[2].i, 3);

	/* a key of 256 bytes does not fit */
	buf_reset(&big);
	buf_adds(&big, "{\"s\":1,\"r\":2,\"b\":false,\"k\":[\"");
	for (int i = 0; i < 256; i++)
		buf_addch(&big, 'k');
	buf_adds(&big, "\",null,null,null]}");
	b64(&tok, big.data);
	expect_bad_cursor(r, tok.data);

	/* a token over 2048 characters */
	buf_reset(&big);
	for (int i = 0; i < 2049; i++)
		buf_addch(&big, 'A');
	expect_bad_cursor(r, big.data);

	/* tampering with a real token: padding, other alphabets, cut, flipped, non-canonical */
	memset(&cur, 0, sizeof(cur));
	cur.rid = 7;
	buf_reset(&tok);
	assert_int_equal(search_cursor_encode(&cur, false, &tok), ERR_OK);
	buf_reset(&big);
	buf_addf(&big, "%s=", tok.data);
	expect_bad_cursor(r, big.data);
	buf_reset(&big);
	buf_addf(&big, "%.*s", (int)tok.len - 1, tok.data);
	expect_bad_cursor(r, big.data);
	buf_reset(&big);
	buf_addf(&big, "%.*s", (int)tok.len / 2, tok.data);
	expect_bad_cursor(r, big.data);
	buf_reset(&big);
	buf_addf(&big, "x%s", tok.data);
	expect_bad_cursor(r, big.data);
	for (size_t i = 0; i < tok.len; i++) {
		/* replacing one character with one outside the alphabet */
		buf_reset(&big);
		buf_add(&big, tok.data, tok.len);
		big.data[i] = '+';
		expect_bad_cursor(r, big.data);
	}
	buf_release(&tok);
	buf_release(&big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_date_prefixes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_date_precision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_date_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_number_prefixes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quantity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_modifiers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_string_modifiers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uri_modifiers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reference_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_or_and, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chaining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_has, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_total_summary_elements, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor_rejects, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
