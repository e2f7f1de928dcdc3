/*
 * tests/unit/policy/test_scope.c - SMART scopes: v2 and v1 syntax, cruds
 * order, suffixes that must not be reinterpreted, type shapes, flags,
 * granular parameters and their percent-decoding, the limits that make a
 * scope string invalid, formatting (syntax kept, deduplicated, stable
 * order), intersection, coverage, consent restriction, decisions with
 * mixed contexts and filters, category choices and descriptions.
 */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "policy/scope.h"

#define LAB "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
#define VITALS "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
#define SURVEY "http://terminology.hl7.org/CodeSystem/observation-category|survey"
#define PROBLEM "http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item"
#define CONCERN "http://hl7.org/fhir/us/core/CodeSystem/condition-category|health-concern"

static struct scope_set *parse(const char *s)
{
	struct scope_set *set = NULL;
	struct ctx c = CTX_INIT;

	assert_int_equal(scope_parse(s, &set, &c), ERR_OK);
	assert_non_null(set);
	return set;
}

/* The formatted set, to free(). */
static char *fmt(const struct scope_set *set)
{
	struct buf b = BUF_INIT(1 << 20);
	struct ctx c = CTX_INIT;

	assert_int_equal(scope_format(set, &b, &c), ERR_OK);
	return buf_take(&b, NULL);
}

static void assert_fmt(const struct scope_set *set, const char *want)
{
	char *got = fmt(set);

	assert_string_equal(got, want);
	free(got);
}

/* parse 'in', format it, expect 'want' */
static void assert_round(const char *in, const char *want)
{
	struct scope_set *set = parse(in);

	assert_fmt(set, want);
	scope_set_free(set);
}

/* 'tok' alone is ignored: no flag, no resource scope, one ignored token */
static void assert_ignored(const char *tok)
{
	struct scope_set *set = parse(tok);

	if (scope_count(set) != 0 || scope_flags(set) != 0)
		fail_msg("'%s' was not ignored", tok);
	assert_int_equal(scope_ignored_count(set), 1);
	assert_string_equal(scope_ignored_at(set, 0), tok);
	assert_fmt(set, "");
	scope_set_free(set);
}

static void test_v2(void **state)
{
	static const struct {
		const char *suffix;
		unsigned perms;
	} cases[] = {
		{"c", SCOPE_C},
		{"r", SCOPE_R},
		{"u", SCOPE_U},
		{"d", SCOPE_D},
		{"s", SCOPE_S},
		{"rs", SCOPE_R | SCOPE_S},
		{"cud", SCOPE_C | SCOPE_U | SCOPE_D},
		{"cs", SCOPE_C | SCOPE_S},
		{"rd", SCOPE_R | SCOPE_D},
		{"cruds", SCOPE_CRUDS},
		{"crud", SCOPE_C | SCOPE_R | SCOPE_U | SCOPE_D},
	};
	char tok[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scope_set *set;
		const struct scope_res *r;

		snprintf(tok, sizeof(tok), "patient/Observation.%s", cases[i].suffix);
		set = parse(tok);
		assert_int_equal(scope_count(set), 1);
		r = scope_at(set, 0);
		assert_int_equal(r->ctx, SCOPE_PATIENT);
		assert_string_equal(r->type, "Observation");
		assert_int_equal(r->perms, cases[i].perms);
		assert_false(r->v1);
		assert_int_equal(r->nq, 0);
		assert_fmt(set, tok);
		scope_set_free(set);
	}

	{
		struct scope_set *set = parse("user/Patient.rs system/*.cruds patient/*.s");
		assert_int_equal(scope_count(set), 3);
		assert_int_equal(scope_at(set, 0)->ctx, SCOPE_USER);
		assert_int_equal(scope_at(set, 1)->ctx, SCOPE_SYSTEM);
		assert_string_equal(scope_at(set, 1)->type, "*");
		assert_int_equal(scope_at(set, 2)->ctx, SCOPE_PATIENT);
		assert_null(scope_at(set, 3));
		assert_true(scope_has_ctx(set, SCOPE_USER));
		assert_fmt(set, "user/Patient.rs system/*.cruds patient/*.s");
		scope_set_free(set);
	}
	{
		struct scope_set *set = parse("user/Patient.rs");
		assert_false(scope_has_ctx(set, SCOPE_PATIENT));
		assert_false(scope_has_ctx(set, SCOPE_SYSTEM));
		assert_true(scope_has_ctx(set, SCOPE_USER));
		scope_set_free(set);
	}
}

static void test_v1(void **state)
{
	struct scope_set *set;

	(void)state;
	set = parse("patient/Observation.read user/Condition.write system/*.* patient/*.read");
	assert_int_equal(scope_count(set), 4);
	assert_int_equal(scope_at(set, 0)->perms, SCOPE_R | SCOPE_S);
	assert_true(scope_at(set, 0)->v1);
	assert_int_equal(scope_at(set, 1)->perms, SCOPE_C | SCOPE_U | SCOPE_D);
	assert_true(scope_at(set, 1)->v1);
	assert_int_equal(scope_at(set, 2)->perms, SCOPE_CRUDS);
	assert_true(scope_at(set, 2)->v1);
	assert_string_equal(scope_at(set, 2)->type, "*");
	assert_fmt(set, "patient/Observation.read user/Condition.write system/*.* patient/*.read");
	scope_set_free(set);

	/* the same permissions written both ways are two scopes, each kept as written */
	assert_round("patient/Observation.read patient/Observation.rs patient/Observation.read",
		     "patient/Observation.read patient/Observation.rs");
}

static void test_bad_suffixes(void **state)
{
	static const char *const bad[] = {
		"patient/Observation.sr",     "patient/Observation.dus",   "patient/Observation.rr",
		"patient/Observation.rsc",    "patient/Observation.",       "patient/Observation.x",
		"patient/Observation.READ",   "patient/Observation.Read",   "patient/Observation.rsx",
		"patient/Observation.reads",  "patient/Observation.**",     "patient/Observation.r s",
		"patient/Observation.rs.r",   "patient/Observation",        "patient/Observation.writes",
		"patient/Observation.cruds?", "patient/Observation.read?category=x",
		"patient/Observation.*?category=x",
	};
	struct scope_decision d;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct scope_set *set = parse(bad[i]);
		if (strchr(bad[i], ' ')) {
			scope_set_free(set);
			continue; /* two tokens: checked below */
		}
		if (scope_count(set))
			fail_msg("'%s' parsed as a resource scope", bad[i]);
		assert_int_equal(scope_ignored_count(set), 1);
		for (int op = SCOPE_OP_CREATE; op <= SCOPE_OP_SEARCH; op++) {
			scope_decide(set, "Observation", (enum scope_op)op, &d);
			assert_false(d.allowed);
		}
		scope_set_free(set);
	}
	/* "patient/Observation.r s": a valid scope and an ignored token "s" */
	{
		struct scope_set *set = parse("patient/Observation.r s");
		assert_int_equal(scope_count(set), 1);
		assert_int_equal(scope_at(set, 0)->perms, SCOPE_R);
		assert_int_equal(scope_ignored_count(set), 1);
		assert_string_equal(scope_ignored_at(set, 0), "s");
		scope_set_free(set);
	}
	/* .sr is not reinterpreted as .rs even beside valid scopes */
	{
		struct scope_set *set = parse("patient/Condition.rs patient/Observation.sr");
		assert_fmt(set, "patient/Condition.rs");
		scope_decide(set, "Observation", SCOPE_OP_READ, &d);
		assert_false(d.allowed);
		scope_set_free(set);
	}
}

static void test_type_and_context_shapes(void **state)
{
	char tok[128], type[70];

	(void)state;
	assert_ignored("patient/observation.rs");
	assert_ignored("patient/Obs3rvation.rs");
	assert_ignored("patient/Obs-ervation.rs");
	assert_ignored("patient/.rs");
	assert_ignored("patient/**.rs");
	assert_ignored("patient/*Observation.rs");
	assert_ignored("Patient/Observation.rs");
	assert_ignored("group/Observation.rs");
	assert_ignored("patient.Observation.rs");
	assert_ignored("patient//Observation.rs");
	assert_ignored("patient/");

	/* the longest type that fits (63 bytes), and one more */
	memset(type, 'a', sizeof(type));
	type[0] = 'T';
	type[63] = '\0';
	snprintf(tok, sizeof(tok), "patient/%s.rs", type);
	assert_round(tok, tok);
	type[63] = 'a';
	type[64] = '\0';
	snprintf(tok, sizeof(tok), "patient/%s.rs", type);
	assert_ignored(tok);
}

static void test_flags(void **state)
{
	struct scope_set *set;

	(void)state;
	set = parse("online_access offline_access launch/encounter launch/patient launch profile "
		    "fhirUser openid");
	assert_int_equal(scope_flags(set), SCOPE_FLAGS_ALL);
	assert_int_equal(scope_count(set), 0);
	assert_int_equal(scope_ignored_count(set), 0);
	assert_fmt(set, "openid fhirUser profile launch launch/patient launch/encounter "
			"offline_access online_access");
	scope_set_free(set);

	assert_round("profile", "profile");
	set = parse("profile");
	assert_int_equal(scope_flags(set), SCOPE_PROFILE);
	scope_set_free(set);

	assert_ignored("email");
	assert_ignored("foo");
	assert_ignored("fhiruser");
	assert_ignored("OpenID");
	assert_ignored("launch/imagingStudy");
	assert_ignored("launch/");
	assert_ignored("offline-access");
	assert_ignored("\"openid\"");
	assert_ignored("caf\xc3\xa9");
}

static void test_granular(void **state)
{
	struct scope_set *set;
	const struct scope_res *r;

	(void)state;
	set = parse("patient/Observation.rs?category=" LAB);
	r = scope_at(set, 0);
	assert_int_equal(r->perms, SCOPE_R | SCOPE_S);
	assert_int_equal(r->nq, 1);
	assert_string_equal(r->q[0].name, "category");
	assert_string_equal(r->q[0].value, LAB);
	assert_fmt(set, "patient/Observation.rs?category=" LAB);
	scope_set_free(set);

	/* several pairs, kept in order; a wildcard may be granular too */
	set = parse("user/*.s?category=a&code=b&status=final&_tag=x|y");
	r = scope_at(set, 0);
	assert_int_equal(r->nq, 4);
	assert_string_equal(r->q[1].name, "code");
	assert_string_equal(r->q[3].name, "_tag");
	assert_string_equal(r->q[3].value, "x|y");
	assert_fmt(set, "user/*.s?category=a&code=b&status=final&_tag=x|y");
	scope_set_free(set);

	/* five pairs are too many */
	assert_ignored("patient/Observation.rs?a=1&b=2&c=3&d=4&e=5");
	/* malformed queries */
	assert_ignored("patient/Observation.rs?category");
	assert_ignored("patient/Observation.rs?category=");
	assert_ignored("patient/Observation.rs?=x");
	assert_ignored("patient/Observation.rs?category=x&");
	assert_ignored("patient/Observation.rs?&category=x");
	assert_ignored("patient/Observation.rs?a=1&&b=2");
	/* a value may hold '=', '?' and '#' as they are */
	assert_round("patient/Observation.rs?code=a=b?c#d", "patient/Observation.rs?code=a=b?c#d");
	/* '"', '\\' and bytes outside printable ASCII must be escaped */
	assert_ignored("patient/Observation.rs?code=a\"b");
	assert_ignored("patient/Observation.rs?code=a\\b");
	assert_ignored("patient/Observation.rs?code=caf\xc3\xa9");
	assert_ignored("patient/Observation.rs?c\xc3\xa9=x");
	assert_round("patient/Observation.rs?code=a%22b%5Cc%C3%A9",
		     "patient/Observation.rs?code=a%22b%5Cc%C3%A9");
}

static void test_percent_decoding(void **state)
{
	struct scope_set *set;
	char tok[1024], val[300];

	(void)state;
	set = parse("patient/Observation.rs?cat%65gory=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem"
		    "%2Fobservation-category%7claboratory");
	assert_string_equal(scope_at(set, 0)->q[0].name, "category");
	assert_string_equal(scope_at(set, 0)->q[0].value, LAB);
	assert_fmt(set, "patient/Observation.rs?category=" LAB);
	scope_set_free(set);

	/* encoded and plain forms of the same scope are one scope */
	assert_round("patient/Observation.rs?category=" LAB " patient/Observation.rs?category=http"
		     "%3A//terminology.hl7.org/CodeSystem/observation-category%7Claboratory",
		     "patient/Observation.rs?category=" LAB);

	/* characters that need encoding are written encoded, '+' is not a space */
	set = parse("patient/Observation.rs?code=a%20b%26c%25d+e&x%3Dy=%C3%A9");
	assert_string_equal(scope_at(set, 0)->q[0].value, "a b&c%d+e");
	assert_string_equal(scope_at(set, 0)->q[1].name, "x=y");
	assert_string_equal(scope_at(set, 0)->q[1].value, "\xc3\xa9");
	assert_fmt(set, "patient/Observation.rs?code=a%20b%26c%25d+e&x%3Dy=%C3%A9");
	scope_set_free(set);
	/* escapes of characters that may stand for themselves are written plainly */
	assert_round("patient/Observation.rs?code=%61%3D%3F%7C%2B", "patient/Observation.rs?code=a=?|+");

	assert_ignored("patient/Observation.rs?category=%zz");
	assert_ignored("patient/Observation.rs?category=%2");
	assert_ignored("patient/Observation.rs?category=ab%");
	assert_ignored("patient/Observation.rs?category=a%00b");
	assert_ignored("patient/Observation.rs?category=a%0Ab");
	assert_ignored("patient/Observation.rs?category=a%7Fb");
	assert_ignored("patient/Observation.rs?category=%FF");
	assert_ignored("patient/Observation.rs?category=%C3");
	assert_ignored("patient/Observation.rs?%00=x");

	/* decoded lengths: 255 bytes of value fit, 256 do not, however encoded */
	memset(val, 'v', 255);
	val[255] = '\0';
	snprintf(tok, sizeof(tok), "patient/Observation.rs?code=%s", val);
	assert_round(tok, tok);
	snprintf(tok, sizeof(tok), "patient/Observation.rs?code=%s%%76", val);
	assert_ignored(tok);
	snprintf(tok, sizeof(tok), "patient/Observation.rs?code=%%76%.254s", val);
	set = parse(tok);
	assert_int_equal(scope_count(set), 1);
	assert_int_equal(strlen(scope_at(set, 0)->q[0].value), 255);
	scope_set_free(set);
	/* names: 63 bytes fit, 64 do not */
	memset(val, 'n', 64);
	val[63] = '\0';
	snprintf(tok, sizeof(tok), "patient/Observation.rs?%s=x", val);
	assert_round(tok, tok);
	val[63] = 'n';
	val[64] = '\0';
	snprintf(tok, sizeof(tok), "patient/Observation.rs?%s=x", val);
	assert_ignored(tok);
}

static void test_parse_limits(void **state)
{
	struct scope_set *set = (struct scope_set *)&set;
	struct ctx c = CTX_INIT;
	char *big = malloc(SCOPE_STRING_MAX + 2);
	size_t n = 0;

	(void)state;
	/* NULL and blank strings are empty sets */
	set = parse(NULL);
	assert_int_equal(scope_count(set), 0);
	assert_fmt(set, "");
	scope_set_free(set);
	assert_round("   ", "");
	assert_round("  openid   patient/Patient.rs  ", "openid patient/Patient.rs");

	/* 8192 bytes are fine, 8193 are not */
	memset(big, 'x', SCOPE_STRING_MAX + 1);
	big[SCOPE_STRING_MAX] = '\0';
	set = parse(big);
	assert_int_equal(scope_ignored_count(set), 1);
	scope_set_free(set);
	big[SCOPE_STRING_MAX] = 'x';
	big[SCOPE_STRING_MAX + 1] = '\0';
	set = (struct scope_set *)&set;
	assert_int_equal(scope_parse(big, &set, &c), ERR_INVALID);
	assert_null(set);
	assert_int_equal(c.code, ERR_INVALID);
	assert_non_null(strstr(c.msg, "8192"));

	/* control characters */
	static const char *const ctl[] = {"openid\tfhirUser", "openid\nfhirUser", "openid\r",
					  "patient/Patient.rs\x7f", "\x01"};
	for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++) {
		ctx_clear(&c);
		set = (struct scope_set *)&set;
		assert_int_equal(scope_parse(ctl[i], &set, &c), ERR_INVALID);
		assert_null(set);
		assert_non_null(strstr(c.msg, "control character"));
	}

	/* 256 tokens are fine, 257 are not (duplicates count) */
	for (int i = 0; i < SCOPE_TOKENS_MAX; i++)
		n += (size_t)snprintf(big + n, SCOPE_STRING_MAX + 2 - n, "openid ");
	set = parse(big);
	assert_int_equal(scope_flags(set), SCOPE_OPENID);
	scope_set_free(set);
	snprintf(big + n, SCOPE_STRING_MAX + 2 - n, "x");
	ctx_clear(&c);
	set = (struct scope_set *)&set;
	assert_int_equal(scope_parse(big, &set, &c), ERR_INVALID);
	assert_null(set);
	assert_non_null(strstr(c.msg, "256"));
	free(big);
}

static void test_format_dedup_order(void **state)
{
	struct scope_set *set;

	(void)state;
	set = parse("foo patient/Observation.rs launch/patient patient/Observation.rs openid "
		    "patient/Observation.read user/*.cruds foo email offline_access user/*.cruds "
		    "patient/Condition.rs?category=" PROBLEM " patient/Condition.rs?category=" PROBLEM);
	assert_int_equal(scope_count(set), 4);
	assert_int_equal(scope_ignored_count(set), 2);
	assert_string_equal(scope_ignored_at(set, 0), "foo");
	assert_string_equal(scope_ignored_at(set, 1), "email");
	assert_null(scope_ignored_at(set, 2));
	assert_fmt(set, "openid launch/patient offline_access patient/Observation.rs "
			"patient/Observation.read user/*.cruds patient/Condition.rs?category=" PROBLEM);
	scope_set_free(set);

	/* a buffer too small for the string */
	{
		struct buf b = BUF_INIT(10);
		struct ctx c = CTX_INIT;
		set = parse("openid patient/Observation.rs");
		assert_int_equal(scope_format(set, &b, &c), ERR_TOOBIG);
		assert_int_equal(c.code, ERR_TOOBIG);
		buf_release(&b);
		scope_set_free(set);
	}
	/* one scope alone */
	{
		struct buf b = BUF_INIT(256);
		set = parse("patient/Observation.rs?category=" LAB);
		assert_int_equal(scope_res_format(scope_at(set, 0), &b), ERR_OK);
		assert_string_equal(b.data, "patient/Observation.rs?category=" LAB);
		buf_release(&b);
		scope_set_free(set);
	}
}

/* format(requested ∩ allowed) */
static void assert_meet(const char *req, const char *allowed, const char *want)
{
	struct scope_set *r = parse(req), *a = parse(allowed), *m = NULL;
	struct ctx c = CTX_INIT;

	assert_int_equal(scope_intersect(r, a, &m, &c), ERR_OK);
	assert_fmt(m, want);
	assert_int_equal(scope_ignored_count(m), 0);
	/* never more than either side */
	assert_true(scope_covers(r, m));
	assert_true(scope_covers(a, m));
	scope_set_free(m);
	scope_set_free(a);
	scope_set_free(r);
}

static void test_intersect(void **state)
{
	(void)state;
	assert_meet("patient/Observation.cruds", "patient/*.rs", "patient/Observation.rs");
	assert_meet("patient/Observation.read", "patient/*.*", "patient/Observation.read");
	assert_meet("patient/Observation.*", "patient/*.rs", "patient/Observation.read");
	assert_meet("patient/Observation.*", "patient/*.cud", "patient/Observation.write");
	assert_meet("patient/Observation.write", "patient/*.cu", "patient/Observation.cu");
	assert_meet("patient/Observation.read", "patient/Observation.r", "patient/Observation.r");
	assert_meet("patient/*.read", "patient/Condition.rs patient/Observation.r",
		    "patient/Condition.read patient/Observation.r");
	assert_meet("patient/*.rs", "patient/*.cruds", "patient/*.rs");
	assert_meet("patient/Observation.c", "patient/*.rs", "");
	/* contexts must match */
	assert_meet("user/Observation.rs", "patient/*.rs", "");
	assert_meet("patient/Observation.rs system/*.rs", "user/*.cruds system/Patient.r",
		    "system/Patient.r");
	/* types must match */
	assert_meet("patient/Observation.rs", "patient/Condition.rs", "");

	/* granular under an unconstrained allowance is kept */
	assert_meet("patient/Observation.rs?category=" LAB, "patient/Observation.rs",
		    "patient/Observation.rs?category=" LAB);
	assert_meet("patient/Observation.cruds?category=" LAB, "patient/*.read",
		    "patient/Observation.rs?category=" LAB);
	/* an unconstrained request under a granular allowance takes its constraints */
	assert_meet("patient/Observation.read", "patient/Observation.rs?category=" LAB,
		    "patient/Observation.rs?category=" LAB);
	/* both granular: both constraints apply */
	assert_meet("patient/Observation.rs?category=" LAB, "patient/Observation.rs?category=" LAB,
		    "patient/Observation.rs?category=" LAB);
	assert_meet("patient/Observation.rs?code=x", "patient/Observation.rs?category=" LAB,
		    "patient/Observation.rs?code=x&category=" LAB);
	assert_meet("patient/Observation.rs?a=1&b=2&c=3", "patient/Observation.rs?d=4",
		    "patient/Observation.rs?a=1&b=2&c=3&d=4");
	assert_meet("patient/Observation.rs?a=1&b=2&c=3", "patient/Observation.rs?d=4&e=5", "");

	/* flags: both must hold them; ignored tokens are dropped */
	assert_meet("openid fhirUser offline_access launch/patient foo patient/Observation.sr",
		    "openid launch/patient profile bar", "openid launch/patient");
	/* deduplicated */
	assert_meet("patient/*.rs patient/Observation.rs", "patient/Observation.rs",
		    "patient/Observation.rs");
	assert_meet("patient/Observation.rs", "patient/*.rs patient/Observation.cruds",
		    "patient/Observation.rs");
}

static void test_intersect_limit(void **state)
{
	struct buf req = BUF_INIT(SCOPE_STRING_MAX);
	struct scope_set *r, *a1, *a2, *m = NULL, *again = NULL;
	struct ctx c = CTX_INIT;
	char *s;

	(void)state;
	/* 256 scopes come out of one allowed type, 512 would come out of two */
	for (int i = 0; i < SCOPE_TOKENS_MAX; i++)
		buf_addf(&req, "%spatient/*.r?k=%d", i ? " " : "", i);
	assert_int_equal(req.err, ERR_OK);
	r = parse(req.data);
	assert_int_equal(scope_count(r), SCOPE_TOKENS_MAX);
	a1 = parse("patient/A.r");
	a2 = parse("patient/A.r patient/B.r");
	assert_int_equal(scope_intersect(r, a1, &m, &c), ERR_OK);
	assert_int_equal(scope_count(m), SCOPE_TOKENS_MAX);
	/* what comes out parses back */
	s = fmt(m);
	again = parse(s);
	assert_int_equal(scope_count(again), SCOPE_TOKENS_MAX);
	assert_true(scope_covers(again, m) && scope_covers(m, again));
	scope_set_free(again);
	free(s);
	scope_set_free(m);
	m = (struct scope_set *)&m;
	assert_int_equal(scope_intersect(r, a2, &m, &c), ERR_INVALID);
	assert_null(m);
	assert_non_null(strstr(c.msg, "256 scopes"));
	scope_set_free(r);

	/* a flag counts as a scope too: 256 resource scopes and openid are too many */
	{
		struct buf al = BUF_INIT(SCOPE_STRING_MAX);
		struct scope_set *a, *r2;
		buf_adds(&al, "openid");
		for (int i = 0; i < SCOPE_TOKENS_MAX / 2; i++)
			buf_addf(&al, " patient/T%c%c.r", 'a' + i / 26, 'a' + i % 26);
		a = parse(al.data);
		r = parse("patient/*.r?k=1 patient/*.r?k=2");
		r2 = parse("openid patient/*.r?k=1 patient/*.r?k=2");
		assert_int_equal(scope_intersect(r, a, &m, &c), ERR_OK);
		assert_int_equal(scope_count(m), SCOPE_TOKENS_MAX);
		scope_set_free(m);
		ctx_clear(&c);
		assert_int_equal(scope_intersect(r2, a, &m, &c), ERR_INVALID);
		assert_null(m);
		scope_set_free(r2);
		scope_set_free(r);
		scope_set_free(a);
		buf_release(&al);
	}

	/* 120 scopes of 80 bytes do not fit in 8192 bytes */
	buf_reset(&req);
	for (int i = 0; i < 60; i++)
		buf_addf(&req, "%spatient/*.r?k=%060d", i ? " " : "", i);
	r = parse(req.data);
	ctx_clear(&c);
	m = (struct scope_set *)&m;
	assert_int_equal(scope_intersect(r, a2, &m, &c), ERR_INVALID);
	assert_null(m);
	assert_non_null(strstr(c.msg, "8192 bytes"));
	assert_int_equal(scope_intersect(r, a1, &m, &c), ERR_OK);
	assert_int_equal(scope_count(m), 60);
	scope_set_free(m);

	scope_set_free(r);
	scope_set_free(a2);
	scope_set_free(a1);
	buf_release(&req);
}

static bool covers(const char *granted, const char *req)
{
	struct scope_set *g = parse(granted), *r = parse(req);
	bool ok = scope_covers(g, r);

	scope_set_free(r);
	scope_set_free(g);
	return ok;
}

static void test_covers(void **state)
{
	(void)state;
	assert_true(covers("openid patient/*.rs", "openid patient/Observation.read"));
	assert_true(covers("openid patient/*.rs", ""));
	assert_true(covers("openid", "openid"));
	assert_false(covers("openid patient/*.rs", "offline_access"));
	assert_false(covers("openid", "openid fhirUser"));
	/* types */
	assert_true(covers("patient/*.rs", "patient/*.read"));
	assert_false(covers("patient/Observation.rs", "patient/*.rs"));
	assert_false(covers("patient/Observation.rs", "patient/Condition.rs"));
	/* permission letters, from one or several scopes */
	assert_false(covers("patient/Observation.rs", "patient/Observation.rus"));
	assert_false(covers("patient/Observation.read", "patient/Observation.*"));
	assert_true(covers("patient/Observation.r patient/Observation.s", "patient/Observation.rs"));
	assert_true(covers("patient/Observation.write patient/*.read", "patient/Observation.*"));
	/* contexts */
	assert_false(covers("user/*.cruds", "patient/Observation.r"));
	assert_false(covers("patient/*.cruds", "system/Observation.r"));
	/* granular */
	assert_false(covers("patient/Observation.rs?category=" LAB, "patient/Observation.rs"));
	assert_true(covers("patient/Observation.rs?category=" LAB,
			   "patient/Observation.rs?category=" LAB));
	assert_true(covers("patient/Observation.rs?category=" LAB,
			   "patient/Observation.r?code=x&category=" LAB));
	assert_false(covers("patient/Observation.rs?category=" LAB,
			    "patient/Observation.rs?category=" VITALS));
	assert_false(covers("patient/Observation.rs?category=" LAB " patient/Observation.rs?category="
			    VITALS, "patient/Observation.rs"));
	assert_true(covers("patient/Observation.rs", "patient/Observation.rs?category=" LAB));
	assert_true(covers("patient/*.rs?category=" LAB, "patient/Observation.rs?category=" LAB));
	/* ignored tokens are never granted, and not asked about */
	assert_true(covers("openid", "openid foo patient/Observation.sr"));
}

/* format(restrict(parse(s), ...)) */
static void assert_restrict(const char *s, unsigned drop, const char *const *denied, size_t nd,
			    const struct scope_choice *ch, size_t nch, const char *want)
{
	struct scope_set *set = parse(s), *out = NULL;
	struct ctx c = CTX_INIT;

	assert_int_equal(scope_restrict(set, drop, denied, nd, ch, nch, &out, &c), ERR_OK);
	assert_fmt(out, want);
	assert_true(scope_covers(set, out)); /* never more than before */
	scope_set_free(out);
	scope_set_free(set);
}

static void test_restrict(void **state)
{
	static const char *const cond[] = {PROBLEM, CONCERN};
	static const char *const lab[] = {LAB};
	static const char *const lab_vitals[] = {LAB, VITALS};
	static const char *const vitals[] = {VITALS};
	static const char *const med[] = {"MedicationRequest"};
	static const char *const obs[] = {"Observation"};
	static const char *const star[] = {"*"};
	const struct scope_choice choices[] = {
		{"Condition", cond, 2},
		{"Observation", lab, 1},
	};

	(void)state;
	/* the (g)(10) limited and granular grant */
	assert_restrict("launch/patient openid fhirUser offline_access patient/Patient.read "
			"patient/Condition.read patient/Observation.read patient/MedicationRequest.read "
			"patient/AllergyIntolerance.cruds",
			SCOPE_OFFLINE, med, 1, choices, 2,
			"openid fhirUser launch/patient patient/Patient.read "
			"patient/Condition.rs?category=" PROBLEM " "
			"patient/Condition.rs?category=" CONCERN " "
			"patient/Observation.rs?category=" LAB " "
			"patient/AllergyIntolerance.cruds");
	/* nothing to change */
	assert_restrict("openid patient/Observation.read", 0, NULL, 0, NULL, 0,
			"openid patient/Observation.read");
	/* the permissions kept are those intersected with rs */
	assert_restrict("patient/Observation.cruds user/Observation.r patient/Observation.cu", 0,
			NULL, 0, choices + 1, 1,
			"patient/Observation.rs?category=" LAB " user/Observation.r?category=" LAB);
	/* a granular scope keeps its constraints and gains the category */
	assert_restrict("patient/Observation.rs?code=x", 0, NULL, 0, choices + 1, 1,
			"patient/Observation.rs?code=x&category=" LAB);
	assert_restrict("patient/Observation.rs?category=" LAB, 0, NULL, 0,
			(const struct scope_choice[]){{"Observation", lab_vitals, 2}}, 1,
			"patient/Observation.rs?category=" LAB " patient/Observation.rs?category=" LAB
			"&category=" VITALS);
	assert_restrict("patient/Observation.rs?a=1&b=2&c=3&d=4", 0, NULL, 0,
			(const struct scope_choice[]){{"Observation", vitals, 1}}, 1, "");
	/* no category chosen withholds the type */
	assert_restrict("patient/Observation.rs patient/Patient.rs", 0, NULL, 0,
			(const struct scope_choice[]){{"Observation", NULL, 0}}, 1,
			"patient/Patient.rs");
	/* duplicates from two scopes of the type collapse */
	assert_restrict("patient/Observation.read patient/Observation.rs", 0, NULL, 0, choices + 1,
			1, "patient/Observation.rs?category=" LAB);
	/* wildcards: only "*" withholds them, choices leave them alone */
	assert_restrict("patient/*.rs patient/Observation.rs", 0, obs, 1, NULL, 0, "patient/*.rs");
	assert_restrict("patient/*.rs patient/Observation.rs", 0, star, 1, NULL, 0,
			"patient/Observation.rs");
	assert_restrict("patient/*.rs", 0, NULL, 0, choices, 2, "patient/*.rs");
	/* a choice for a type not requested adds nothing; denied beats a choice */
	assert_restrict("patient/Patient.rs", 0, NULL, 0, choices, 2, "patient/Patient.rs");
	assert_restrict("patient/Observation.rs patient/Patient.rs", 0, obs, 1, choices, 2,
			"patient/Patient.rs");
	/* flags */
	assert_restrict("openid fhirUser offline_access online_access launch",
			SCOPE_OFFLINE | SCOPE_ONLINE | SCOPE_FHIRUSER, NULL, 0, NULL, 0,
			"openid launch");

	/* bad choices */
	{
		static const char *const empty[] = {""};
		static const char *const nul[] = {NULL};
		static const char *const ctl[] = {"a\nb"};
		static const char *const bad_utf8[] = {"\xff"};
		char longer[SCOPE_KV_VALUE_MAX + 1];
		const char *const too_long[] = {longer};
		const struct scope_choice bad[] = {
			{NULL, lab, 1},         {"Observation", empty, 1},    {"Observation", nul, 1},
			{"Observation", ctl, 1}, {"Observation", bad_utf8, 1}, {"Observation", too_long, 1},
			{"Observation", NULL, 1},
		};
		struct scope_set *set = parse("patient/Observation.rs"), *out;

		memset(longer, 'x', sizeof(longer) - 1);
		longer[sizeof(longer) - 1] = '\0';
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct ctx c = CTX_INIT;
			out = (struct scope_set *)&out;
			assert_int_equal(scope_restrict(set, 0, NULL, 0, &bad[i], 1, &out, &c),
					 ERR_INVALID);
			assert_null(out);
			assert_true(c.msg[0] != '\0');
		}
		/* 255 bytes are fine */
		longer[SCOPE_KV_VALUE_MAX - 1] = '\0';
		{
			struct ctx c = CTX_INIT;
			assert_int_equal(scope_restrict(set, 0, NULL, 0, &bad[5], 1, &out, &c), ERR_OK);
			assert_int_equal(scope_count(out), 1);
			assert_int_equal(strlen(scope_at(out, 0)->q[0].value), 255);
			scope_set_free(out);
		}
		scope_set_free(set);
	}
}

static void test_decide(void **state)
{
	struct scope_set *set;
	struct scope_decision d;

	(void)state;
	set = parse("patient/Observation.rs?category=" LAB " patient/Observation.rs?category=" VITALS
		    " user/Condition.r system/Patient.cruds patient/*.c user/Observation.s?category="
		    SURVEY);

	/* granular filters of one context are ORed */
	scope_decide(set, "Observation", SCOPE_OP_READ, &d);
	assert_true(d.allowed);
	assert_int_equal(d.ctx, SCOPE_PATIENT);
	assert_int_equal(d.nfilters, 2);
	assert_ptr_equal(d.filters[0], scope_at(set, 0));
	assert_ptr_equal(d.filters[1], scope_at(set, 1));
	/* the broadest context that allows it wins */
	scope_decide(set, "Observation", SCOPE_OP_SEARCH, &d);
	assert_true(d.allowed);
	assert_int_equal(d.ctx, SCOPE_USER);
	assert_int_equal(d.nfilters, 1);
	assert_ptr_equal(d.filters[0], scope_at(set, 5));
	scope_decide(set, "Observation", SCOPE_OP_CREATE, &d);
	assert_true(d.allowed);
	assert_int_equal(d.ctx, SCOPE_PATIENT);
	assert_int_equal(d.nfilters, 0);
	scope_decide(set, "Observation", SCOPE_OP_UPDATE, &d);
	assert_false(d.allowed);
	assert_int_equal(d.nfilters, 0);

	scope_decide(set, "Condition", SCOPE_OP_READ, &d);
	assert_true(d.allowed);
	assert_int_equal(d.ctx, SCOPE_USER);
	assert_int_equal(d.nfilters, 0);
	scope_decide(set, "Condition", SCOPE_OP_SEARCH, &d);
	assert_false(d.allowed);
	scope_decide(set, "Patient", SCOPE_OP_DELETE, &d);
	assert_true(d.allowed);
	assert_int_equal(d.ctx, SCOPE_SYSTEM);
	scope_decide(set, "Patient", SCOPE_OP_CREATE, &d);
	assert_int_equal(d.ctx, SCOPE_SYSTEM);
	scope_decide(set, "Encounter", SCOPE_OP_CREATE, &d); /* patient/ *.c */
	assert_true(d.allowed);
	assert_int_equal(d.ctx, SCOPE_PATIENT);
	scope_decide(set, "Encounter", SCOPE_OP_READ, &d);
	assert_false(d.allowed);
	scope_decide(set, NULL, SCOPE_OP_CREATE, &d);
	assert_false(d.allowed);
	scope_decide(set, "", SCOPE_OP_CREATE, &d);
	assert_false(d.allowed);
	scope_decide(set, "Observation", (enum scope_op)99, &d);
	assert_false(d.allowed);
	/* "*" as the type asked about matches only wildcard scopes */
	scope_decide(set, "*", SCOPE_OP_CREATE, &d);
	assert_true(d.allowed);
	scope_decide(set, "*", SCOPE_OP_READ, &d);
	assert_false(d.allowed);
	scope_set_free(set);

	/* an unconstrained scope beats granular ones in the same context */
	set = parse("patient/Observation.rs?category=" LAB " patient/*.r");
	scope_decide(set, "Observation", SCOPE_OP_READ, &d);
	assert_true(d.allowed);
	assert_int_equal(d.ctx, SCOPE_PATIENT);
	assert_int_equal(d.nfilters, 0);
	assert_null(d.filters[0]);
	scope_decide(set, "Observation", SCOPE_OP_SEARCH, &d);
	assert_true(d.allowed);
	assert_int_equal(d.nfilters, 1);
	scope_set_free(set);

	/* each letter allows its own interaction only */
	{
		static const char letters[] = "cruds";
		for (int l = 0; l < 5; l++) {
			char tok[64];
			snprintf(tok, sizeof(tok), "patient/Observation.%c", letters[l]);
			set = parse(tok);
			for (int op = SCOPE_OP_CREATE; op <= SCOPE_OP_SEARCH; op++) {
				scope_decide(set, "Observation", (enum scope_op)op, &d);
				if (d.allowed != (op == l))
					fail_msg("'%s' and op %d", tok, op);
				scope_decide(set, "Condition", (enum scope_op)op, &d);
				assert_false(d.allowed);
			}
			scope_set_free(set);
		}
	}
	/* v1 read is read and search */
	set = parse("patient/Observation.read");
	scope_decide(set, "Observation", SCOPE_OP_READ, &d);
	assert_true(d.allowed);
	scope_decide(set, "Observation", SCOPE_OP_SEARCH, &d);
	assert_true(d.allowed);
	scope_decide(set, "Observation", SCOPE_OP_CREATE, &d);
	assert_false(d.allowed);
	scope_set_free(set);

	/* at most 16 filters */
	{
		struct buf b = BUF_INIT(4096);
		for (int i = 0; i < 20; i++)
			buf_addf(&b, "patient/Observation.r?code=%d ", i);
		set = parse(b.data);
		scope_decide(set, "Observation", SCOPE_OP_READ, &d);
		assert_true(d.allowed);
		assert_int_equal(d.nfilters, SCOPE_DECIDE_FILTERS_MAX);
		scope_set_free(set);
		buf_release(&b);
	}
}

static void test_categories(void **state)
{
	static const char *const cond[] = {
		"http://terminology.hl7.org/CodeSystem/condition-category|encounter-diagnosis",
		"http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item",
		"http://hl7.org/fhir/us/core/CodeSystem/condition-category|health-concern",
	};
	static const char *const obs[] = {
		"http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
		"http://terminology.hl7.org/CodeSystem/observation-category|social-history",
		"http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
		"http://terminology.hl7.org/CodeSystem/observation-category|survey",
		"http://hl7.org/fhir/us/core/CodeSystem/us-core-category|sdoh",
	};
	const struct scope_category *cats;
	size_t n = 99;

	(void)state;
	cats = scope_categories("Condition", &n);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(cats[i].value, cond[i]);
		assert_true(cats[i].label && cats[i].label[0]);
	}
	cats = scope_categories("Observation", &n);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(cats[i].value, obs[i]);
		assert_true(cats[i].label && cats[i].label[0]);
	}
	n = 99;
	assert_null(scope_categories("Patient", &n));
	assert_int_equal(n, 0);
	assert_null(scope_categories(NULL, &n));
	assert_null(scope_categories("observation", &n));
}

static void describe(const char *tok, char *out, size_t n)
{
	struct scope_set *set = parse(tok);

	assert_int_equal(scope_count(set), 1);
	scope_describe(scope_at(set, 0), out, n);
	scope_set_free(set);
}

static void test_describe(void **state)
{
	static const char *const types[] = {"Condition", "Observation"};
	char text[512], other[512];

	(void)state;
	describe("patient/Observation.rs?category=" LAB, text, sizeof(text));
	assert_string_equal(text, "See your lab results");
	describe("patient/MedicationRequest.read", text, sizeof(text));
	assert_string_equal(text, "See your medications and prescriptions");
	describe("patient/AllergyIntolerance.cud", text, sizeof(text));
	assert_string_equal(text, "Add, change and delete your allergies and intolerances");
	describe("patient/Observation.cruds", text, sizeof(text));
	assert_string_equal(text, "See, add, change and delete your test results, vital signs and "
				  "other measurements");
	describe("patient/ChargeItem.s", text, sizeof(text));
	assert_string_equal(text, "See your ChargeItem records");
	describe("patient/*.rs", text, sizeof(text));
	assert_non_null(strstr(text, "now and in the future"));
	describe("user/*.rs", text, sizeof(text));
	assert_non_null(strstr(text, "now and in the future"));
	assert_non_null(strstr(text, "records you have access to"));
	describe("user/Observation.rs?category=" LAB, text, sizeof(text));
	assert_string_equal(text, "See lab results in the records you have access to");
	describe("system/Patient.rs", text, sizeof(text));
	assert_non_null(strstr(text, "every patient's record"));
	/* a constraint the screen has no words for is shown as it is */
	describe("patient/Observation.rs?code=http://loinc.org|1234-5", text, sizeof(text));
	assert_non_null(strstr(text, "code is http://loinc.org|1234-5"));
	/* a bare code of a known category */
	describe("patient/Observation.rs?category=laboratory", text, sizeof(text));
	assert_string_equal(text, "See your lab results");

	/* every category reads differently from the whole type and from the others */
	for (size_t t = 0; t < 2; t++) {
		const struct scope_category *cats;
		size_t n;
		char whole[512], seen[8][512];

		snprintf(other, sizeof(other), "patient/%s.rs", types[t]);
		describe(other, whole, sizeof(whole));
		cats = scope_categories(types[t], &n);
		for (size_t i = 0; i < n; i++) {
			snprintf(other, sizeof(other), "patient/%s.rs?category=%s", types[t],
				 cats[i].value);
			describe(other, seen[i], sizeof(seen[i]));
			assert_true(strlen(seen[i]) > strlen("See your "));
			assert_string_not_equal(seen[i], whole);
			for (size_t j = 0; j < i; j++)
				assert_string_not_equal(seen[i], seen[j]);
		}
	}

	/* cut to the buffer, always terminated; nothing written for n == 0 */
	describe("patient/Observation.rs?category=" LAB, text, 9);
	assert_string_equal(text, "See your");
	text[0] = 'x';
	describe("patient/Observation.rs?category=" LAB, text, 0);
	assert_int_equal(text[0], 'x');
	describe("patient/Observation.rs?category=" LAB, text, 1);
	assert_string_equal(text, "");

	/* flags */
	for (unsigned f = 1; f <= SCOPE_FLAGS_ALL; f <<= 1) {
		const char *s = scope_describe_flag(f);
		assert_non_null(s);
		assert_true(strlen(s) > 10);
	}
	assert_string_equal(scope_describe_flag(SCOPE_OFFLINE),
			    "Keep access when you are not using the app (until the grant ends or you "
			    "revoke it)");
	assert_null(scope_describe_flag(0));
	assert_null(scope_describe_flag(SCOPE_OPENID | SCOPE_FHIRUSER));
	assert_null(scope_describe_flag(256));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2),
		cmocka_unit_test(test_v1),
		cmocka_unit_test(test_bad_suffixes),
		cmocka_unit_test(test_type_and_context_shapes),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_granular),
		cmocka_unit_test(test_percent_decoding),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_format_dedup_order),
		cmocka_unit_test(test_intersect),
		cmocka_unit_test(test_intersect_limit),
		cmocka_unit_test(test_covers),
		cmocka_unit_test(test_restrict),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_categories),
		cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
