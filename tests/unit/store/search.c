/*
 * tests/unit/store/search.c - store_search, store_search_explain,
 * store_include and store_revinclude on the SQLite backend.
 *
 * Each test gets a fresh migrated store in a temporary directory and puts
 * hand-made index rows through store_put (the FHIR layer is not involved),
 * then checks which ids come back, in which order, across pages.  Results
 * are compared as comma-separated id lists.
 *
 * test_explain_uses_indexes is the planner guard: for every parameter kind
 * the EXPLAIN QUERY PLAN of the generated statement must seek an index and
 * never SCAN resource or an index table.  It also checks the in-process
 * write lock: concurrent writers queue instead of failing with busy.
 */
#include "unit.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/str.h"
#include "store/query.h"
#include "store/store.h"
#include "store/store_int.h"

#define T0 ((int64_t)1700000000000)   /* 2023-11-14T22:13:20Z */
#define DAY ((int64_t)86400000)

/* ---- fixture ---- */

struct fx {
	char dir[256];
	char url[340];
	struct store *s;
	int64_t clock;      /* last_updated of the next put */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	struct ctx c = CTX_INIT;

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-search-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->url, sizeof(f->url), "sqlite:%s/t.db", f->dir);
	if (store_open(&f->s, f->url, 5000, &c) || store_migrate(f->s, &c)) {
		fprintf(stderr, "setup: %s\n", c.msg);
		return -1;
	}
	f->clock = T0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	clock_set_fixed(0);
	store_close(f->s);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* ---- writing resources with hand-made index rows ---- */

#define TOK(p_, s_, c_, t_) {.kind = STORE_IX_TOKEN, .param = (p_), .a = (s_), .b = (c_), .c = (t_)}
#define STR(p_, n_, e_) {.kind = STORE_IX_STRING, .param = (p_), .a = (n_), .b = (e_)}
#define DATE(p_, l_, h_) {.kind = STORE_IX_DATE, .param = (p_), .lo = (l_), .hi = (h_)}
#define REF(p_, t_, i_, u_) \
	{.kind = STORE_IX_REFERENCE, .param = (p_), .a = (t_), .b = (i_), .c = (u_)}
#define QTY(p_, v_, l_, h_, s_, c_) \
	{.kind = STORE_IX_QUANTITY, .param = (p_), .num = (v_), .nlo = (l_), .nhi = (h_), \
	 .a = (s_), .b = (c_)}
#define NUM(p_, v_, l_, h_) \
	{.kind = STORE_IX_NUMBER, .param = (p_), .num = (v_), .nlo = (l_), .nhi = (h_)}
#define URI(p_, u_) {.kind = STORE_IX_URI, .param = (p_), .a = (u_)}

/*
 * Put (create or update) type/id with these index rows, in the compartment
 * of 'patient' (NULL: none), last_updated = lu (0: the fixture's clock,
 * which then advances one second).
 */
static void put_rows(struct fx *f, const char *type, const char *id, int64_t lu,
		     const char *patient, const struct store_ix_row *ix, size_t nix)
{
	struct ctx c = CTX_INIT;
	int64_t cur = 0;
	char json[256];
	const char *pats[1] = {patient};
	struct store_put p;

	assert_int_equal(store_current_version(f->s, type, id, &cur, NULL, &c), ERR_OK);
	if (!lu) {
		lu = f->clock;
		f->clock += 1000;
	}
	snprintf(json, sizeof(json), "{\"resourceType\":\"%s\",\"id\":\"%s\",\"v\":%lld}", type,
		 id, (long long)cur + 1);
	p = (struct store_put){.op = STORE_PUT, .type = type, .id = id, .expect_version = cur,
			       .version = cur + 1, .last_updated = lu, .json = json,
			       .json_len = strlen(json), .ix = ix, .nix = nix,
			       .patients = pats, .npatients = patient ? 1 : 0};
	if (store_put(f->s, &p, &c))
		fail_msg("put %s/%s: %s", type, id, c.msg);
}

#define PUT(f, type, id, ...) do { \
	const struct store_ix_row rows_[] = {__VA_ARGS__}; \
	put_rows((f), (type), (id), 0, NULL, rows_, sizeof(rows_) / sizeof(rows_[0])); \
} while (0)

#define PUTP(f, type, id, pat, ...) do { \
	const struct store_ix_row rows_[] = {__VA_ARGS__}; \
	put_rows((f), (type), (id), 0, (pat), rows_, sizeof(rows_) / sizeof(rows_[0])); \
} while (0)

static void put_none(struct fx *f, const char *type, const char *id, const char *patient)
{
	put_rows(f, type, id, 0, patient, NULL, 0);
}

static void del(struct fx *f, const char *type, const char *id)
{
	struct ctx c = CTX_INIT;
	int64_t cur = 0;
	struct store_put p;

	assert_int_equal(store_current_version(f->s, type, id, &cur, NULL, &c), ERR_OK);
	p = (struct store_put){.op = STORE_DELETE, .type = type, .id = id, .expect_version = cur,
			       .version = cur + 1, .last_updated = f->clock};
	if (store_put(f->s, &p, &c))
		fail_msg("delete %s/%s: %s", type, id, c.msg);
}

/* ---- running searches ---- */

#define MAXHITS 1024

struct got {
	int n;
	char ids[MAXHITS][72];
	int64_t rids[MAXHITS];
	struct store_cursor pos[MAXHITS];
	char list[MAXHITS * 16];
};

static int collect(void *arg, const struct store_hit *h)
{
	struct got *g = arg;

	assert_true(g->n < MAXHITS);
	assert_non_null(strstr(h->res->json.data, h->res->id));
	str_copy(g->ids[g->n], h->res->id, sizeof(g->ids[0]));
	g->rids[g->n] = h->rid;
	g->pos[g->n] = h->pos;
	g->n++;
	return 0;
}

static void got_list(struct got *g)
{
	size_t len = 0;

	g->list[0] = '\0';
	for (int i = 0; i < g->n; i++)
		len += (size_t)snprintf(g->list + len, sizeof(g->list) - len, "%s%s", i ? "," : "",
					g->ids[i]);
}

/* Run q (all on one page) and return the ids, comma separated (static buffer). */
static const char *run(struct fx *f, const struct store_query *q)
{
	static struct got g;
	struct ctx c = CTX_INIT;
	bool more = false;
	int64_t total = 0;

	memset(&g, 0, sizeof(g));
	if (store_search(f->s, q, collect, &g, &more, &total, &c))
		fail_msg("search: %s", c.msg);
	got_list(&g);
	return g.list;
}

/* ids of 'type' matching the single cond 'cd' (rid order). */
static const char *find1(struct fx *f, const char *type, struct store_cond cd)
{
	struct store_query q = {.type = type, .conds = &cd, .nconds = 1, .limit = 500};

	return run(f, &q);
}

#define MATCHES(...) (struct store_match[]){__VA_ARGS__}
#define NMATCHES(...) (sizeof((struct store_match[]){__VA_ARGS__}) / sizeof(struct store_match))
#define COND(k, p, md, ...) \
	((struct store_cond){.kind = (k), .param = (p), .mod = (md), .m = MATCHES(__VA_ARGS__), \
			     .nm = NMATCHES(__VA_ARGS__)})
#define MISSING(k, p, yes) \
	((struct store_cond){.kind = (k), .param = (p), \
			     .mod = (yes) ? STORE_MOD_MISSING : STORE_MOD_PRESENT})

#define EXPECT(f, type, cd, want) assert_string_equal(find1((f), (type), (cd)), (want))

/* ---- tokens ---- */

static void test_token(void **state)
{
	struct fx *f = *state;
	const char *v2 = "http://terminology.hl7.org/CodeSystem/v2-0203";

	PUT(f, "Observation", "o1", TOK("category", "http://cat", "lab", "Laboratory"),
	    TOK("code", "http://loinc.org", "1234-5", "Glucose Blood"),
	    TOK("identifier:of-type", v2, "MR", "12345"), TOK("active", NULL, "true", NULL));
	PUT(f, "Observation", "o2", TOK("category", "http://cat", "vital", "Vital Signs"),
	    TOK("code", "http://snomed", "1234-5", NULL), TOK("identifier", "", "abc", NULL),
	    TOK("active", NULL, "false", NULL));
	PUT(f, "Observation", "o3", TOK("code", "http://loinc.org", "999", "Hemoglobin"),
	    TOK("code", NULL, NULL, "Blood count"), TOK("identifier", "http://ids", "abc", NULL));

	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "category", 0, {.a = "http://cat", .b = "lab"}),
	       "o1");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "category", 0, {.b = "lab"}), "o1");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "code", 0, {.b = "1234-5"}), "o1,o2");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "code", 0, {.a = "http://loinc.org", .b = "1234-5"}),
	       "o1");
	/* system| : any code of that system */
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "code", 0, {.a = "http://loinc.org"}), "o1,o3");
	/* |code : no system */
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "identifier", 0, {.a = "", .b = "abc"}), "o2");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "identifier", 0, {.b = "abc"}), "o2,o3");
	/* OR within a cond, AND across conds */
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "category", 0, {.b = "lab"}, {.b = "vital"}),
	       "o1,o2");
	{
		struct store_cond two[2] = {COND(STORE_IX_TOKEN, "category", 0, {.b = "vital"}),
					    COND(STORE_IX_TOKEN, "code", 0, {.b = "1234-5"})};
		struct store_query q = {.type = "Observation", .conds = two, .nconds = 2, .limit = 10};
		assert_string_equal(run(f, &q), "o2");
	}
	/* :not also matches resources without any value */
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "category", STORE_MOD_NOT, {.b = "lab"}),
	       "o2,o3");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "category", STORE_MOD_NOT, {.b = "lab"}, {.b = "vital"}),
	       "o3");
	EXPECT(f, "Observation", MISSING(STORE_IX_TOKEN, "category", true), "o3");
	EXPECT(f, "Observation", MISSING(STORE_IX_TOKEN, "category", false), "o1,o2");
	/* :text: prefix of the display or text, compared lowercased */
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "code", STORE_MOD_TEXT, {.a = "glu"}), "o1");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "code", STORE_MOD_TEXT, {.a = "blood"}), "o3");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "code", STORE_MOD_TEXT, {.a = "xyz"}), "");
	/* :of-type rows: a,b = type system,code; c = value */
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "identifier:of-type", STORE_MOD_OF_TYPE,
				      {.a = v2, .b = "MR", .c = "12345"}), "o1");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "identifier:of-type", STORE_MOD_OF_TYPE,
				      {.a = v2, .b = "MR", .c = "999"}), "");
	/* booleans are tokens */
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "active", 0, {.b = "false"}), "o2");
	/* _id is the resource id */
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "_id", 0, {.b = "o3"}, {.b = "o1"}), "o1,o3");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "_id", STORE_MOD_NOT, {.b = "o1"}), "o2,o3");
	EXPECT(f, "Observation", COND(STORE_IX_TOKEN, "_id", 0, {.b = "nope"}), "");
	EXPECT(f, "Patient", COND(STORE_IX_TOKEN, "_id", 0, {.b = "o1"}), "");
}

/* ---- strings ---- */

static void test_string(void **state)
{
	struct fx *f = *state;

	PUT(f, "Patient", "p1", STR("name", "smith", "Smith"), STR("name", "john", "John"));
	PUT(f, "Patient", "p2", STR("name", "smithson", "Smithson"), STR("name", "jose", "José"));
	PUT(f, "Patient", "p3", STR("name", "nesmith", "Nesmith"), STR("name", "李小龙", "李小龙"));
	put_none(f, "Patient", "p4", NULL);

	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "smi"}), "p1,p2");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "smith"}), "p1,p2");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "smithsonian"}), "");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "jose"}), "p2");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "李"}), "p3");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "李小"}), "p3");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "jo"}, {.a = "ne"}), "p1,p2,p3");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", STORE_MOD_EXACT, {.b = "Smith"}), "p1");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", STORE_MOD_EXACT, {.b = "smith"}), "");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", STORE_MOD_EXACT, {.b = "José"}), "p2");
	/* with the normalized value too, :exact narrows by the norm index */
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", STORE_MOD_EXACT, {.a = "jose", .b = "José"}),
	       "p2");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", STORE_MOD_CONTAINS, {.a = "smith"}),
	       "p1,p2,p3");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", STORE_MOD_CONTAINS, {.a = "小"}), "p3");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", STORE_MOD_CONTAINS, {.a = "%"}), "");
	EXPECT(f, "Patient", MISSING(STORE_IX_STRING, "name", true), "p4");
	/* LIKE/GLOB characters are not patterns */
	PUT(f, "Patient", "p5", STR("name", "a%b_c*d", "A%b_c*d"));
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "a%"}), "p5");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "a_"}), "");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "a%b_c*"}), "p5");
	/* three characters or more read ix_string_pre, counted as UTF-8 characters */
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "李小龙"}), "p3");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "李小龙x"}), "");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "nes"}), "p3");
	/* two names of one patient that match come once */
	PUT(f, "Patient", "p6", STR("name", "adams", "Adams"), STR("name", "ada", "Ada"));
	PUT(f, "Patient", "p7", STR("name", "adamson", "Adamson"));
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "ada"}), "p6,p7");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "adam"}), "p6,p7");
	EXPECT(f, "Patient", COND(STORE_IX_STRING, "name", 0, {.a = "adamso"}), "p7");
}

/* ---- dates ---- */

static const char *date_find(struct fx *f, enum store_cmp cmp, int64_t lo, int64_t hi)
{
	return find1(f, "Observation",
		     COND(STORE_IX_DATE, "date", 0, {.cmp = cmp, .lo = lo, .hi = hi}));
}

static void test_date(void **state)
{
	struct fx *f = *state;
	int64_t vlo = T0, vhi = T0 + DAY - 1;   /* the search value: one day */

	PUT(f, "Observation", "d1", DATE("date", T0, T0 + 999));                /* inside */
	PUT(f, "Observation", "d2", DATE("date", T0 + DAY, T0 + 2 * DAY - 1));  /* the next day */
	PUT(f, "Observation", "d3", DATE("date", T0 - 10 * DAY, INT64_MAX));    /* open end */
	put_none(f, "Observation", "d4", NULL);
	PUT(f, "Observation", "d5", DATE("date", T0 - 5 * DAY, T0 - 4 * DAY));  /* before */
	PUT(f, "Observation", "d6", DATE("date", T0 - 30 * DAY, T0 - 29 * DAY));

	assert_string_equal(date_find(f, STORE_CMP_EQ, vlo, vhi), "d1");
	assert_string_equal(date_find(f, STORE_CMP_NE, vlo, vhi), "d2,d3,d5,d6");
	assert_string_equal(date_find(f, STORE_CMP_GT, vlo, vhi), "d2,d3");
	assert_string_equal(date_find(f, STORE_CMP_LT, vlo, vhi), "d3,d5,d6");
	assert_string_equal(date_find(f, STORE_CMP_GE, vlo, vhi), "d1,d2,d3");
	assert_string_equal(date_find(f, STORE_CMP_LE, vlo, vhi), "d1,d3,d5,d6");
	assert_string_equal(date_find(f, STORE_CMP_SA, vlo, vhi), "d2");
	assert_string_equal(date_find(f, STORE_CMP_EB, vlo, vhi), "d5,d6");
	/* ap: 100 days ago, so ~9.9 days of slack each side */
	clock_set_fixed(T0 + 100 * DAY);
	assert_string_equal(date_find(f, STORE_CMP_AP, vlo, vhi), "d1,d2,d3,d5");
	/* ap on today: one day of slack */
	clock_set_fixed(T0 + 3600000);
	assert_string_equal(date_find(f, STORE_CMP_AP, vlo, vhi), "d1,d2,d3");
	clock_set_fixed(0);
	/* a period row that overlaps but is not inside */
	assert_string_equal(date_find(f, STORE_CMP_EQ, T0 - 10 * DAY, INT64_MAX), "d1,d2,d3,d5");
	/* OR of two values */
	EXPECT(f, "Observation", COND(STORE_IX_DATE, "date", 0, {.cmp = STORE_CMP_EQ, .lo = vlo, .hi = vhi},
				      {.cmp = STORE_CMP_SA, .lo = vlo, .hi = vhi + DAY}), "d1");
	EXPECT(f, "Observation", MISSING(STORE_IX_DATE, "date", true), "d4");

	/* _lastUpdated is the resource column */
	put_rows(f, "Encounter", "e1", T0, NULL, NULL, 0);
	put_rows(f, "Encounter", "e2", T0 + DAY, NULL, NULL, 0);
	put_rows(f, "Encounter", "e3", T0 + 2 * DAY + 5, NULL, NULL, 0);
	EXPECT(f, "Encounter", COND(STORE_IX_DATE, "_lastUpdated", 0,
				    {.cmp = STORE_CMP_GE, .lo = T0 + DAY, .hi = T0 + 2 * DAY - 1}),
	       "e2,e3");
	EXPECT(f, "Encounter", COND(STORE_IX_DATE, "_lastUpdated", 0,
				    {.cmp = STORE_CMP_EQ, .lo = T0 + 2 * DAY, .hi = T0 + 3 * DAY - 1}),
	       "e3");
	EXPECT(f, "Encounter", COND(STORE_IX_DATE, "_lastUpdated", 0,
				    {.cmp = STORE_CMP_LT, .lo = T0 + DAY, .hi = T0 + DAY}), "e1");
	EXPECT(f, "Encounter", COND(STORE_IX_DATE, "_lastUpdated", 0,
				    {.cmp = STORE_CMP_NE, .lo = T0 + DAY, .hi = T0 + DAY}), "e1,e3");
}

/* ---- numbers and quantities ---- */

static const char *num_find(struct fx *f, enum store_cmp cmp, double v, double lo, double hi)
{
	return find1(f, "RiskAssessment", COND(STORE_IX_NUMBER, "probability", 0,
					       {.cmp = cmp, .num = v, .nlo = lo, .nhi = hi}));
}

static void test_number_quantity(void **state)
{
	struct fx *f = *state;
	const char *ucum = "http://unitsofmeasure.org";

	PUT(f, "RiskAssessment", "n1", NUM("probability", 5.4, 5.35, 5.45));
	PUT(f, "RiskAssessment", "n2", NUM("probability", 5.0, 4.95, 5.05));
	PUT(f, "RiskAssessment", "n3", NUM("probability", 100, 99.5, 100.5));
	put_none(f, "RiskAssessment", "n4", NULL);

	assert_string_equal(num_find(f, STORE_CMP_EQ, 5.4, 5.35, 5.45), "n1");
	assert_string_equal(num_find(f, STORE_CMP_EQ, 5, 4.5, 5.5), "n1,n2");
	assert_string_equal(num_find(f, STORE_CMP_NE, 5, 4.5, 5.5), "n3");
	assert_string_equal(num_find(f, STORE_CMP_LT, 5.4, 5.35, 5.45), "n2");
	assert_string_equal(num_find(f, STORE_CMP_LE, 5.4, 5.35, 5.45), "n1,n2");
	assert_string_equal(num_find(f, STORE_CMP_GT, 5.4, 5.35, 5.45), "n3");
	assert_string_equal(num_find(f, STORE_CMP_GE, 5.4, 5.35, 5.45), "n1,n3");
	assert_string_equal(num_find(f, STORE_CMP_SA, 5, 4.5, 5.5), "n1,n3");
	assert_string_equal(num_find(f, STORE_CMP_EB, 100, 99.5, 100.5), "n1,n2");
	assert_string_equal(num_find(f, STORE_CMP_AP, 100, 99.5, 100.5), "n3");
	assert_string_equal(num_find(f, STORE_CMP_AP, 5, 4.5, 5.5), "n1,n2");
	/* a coarse value: its precision range is wider than 10% */
	assert_string_equal(num_find(f, STORE_CMP_AP, 7, 6.5, 7.5), "");
	assert_string_equal(num_find(f, STORE_CMP_AP, 1e1, 5, 15), "n1,n2");
	EXPECT(f, "RiskAssessment", MISSING(STORE_IX_NUMBER, "probability", true), "n4");

	PUT(f, "Observation", "q1", QTY("value-quantity", 5.4, 5.35, 5.45, ucum, "mg"));
	PUT(f, "Observation", "q2", QTY("value-quantity", 5.4, 5.35, 5.45, ucum, "kg"));
	PUT(f, "Observation", "q3", QTY("value-quantity", 7, 6.5, 7.5, "http://other", "mg"));
	EXPECT(f, "Observation", COND(STORE_IX_QUANTITY, "value-quantity", 0,
				      {.num = 5.4, .nlo = 5.35, .nhi = 5.45, .a = ucum, .b = "mg"}), "q1");
	EXPECT(f, "Observation", COND(STORE_IX_QUANTITY, "value-quantity", 0,
				      {.num = 5.4, .nlo = 5.35, .nhi = 5.45}), "q1,q2");
	EXPECT(f, "Observation", COND(STORE_IX_QUANTITY, "value-quantity", 0,
				      {.cmp = STORE_CMP_GT, .num = 5, .nlo = 4.5, .nhi = 5.5, .b = "mg"}),
	       "q1,q3");
	EXPECT(f, "Observation", COND(STORE_IX_QUANTITY, "value-quantity", 0,
				      {.cmp = STORE_CMP_GT, .num = 5, .nlo = 4.5, .nhi = 5.5, .a = ucum}),
	       "q1,q2");
	EXPECT(f, "Observation", COND(STORE_IX_QUANTITY, "value-quantity", 0,
				      {.cmp = STORE_CMP_NE, .num = 5.4, .nlo = 5.35, .nhi = 5.45, .b = "mg"}),
	       "q3");
}

/* ---- references and uris ---- */

static void test_reference_uri(void **state)
{
	struct fx *f = *state;

	PUT(f, "Observation", "r1", REF("subject", "Patient", "p1", "Patient/p1"));
	PUT(f, "Observation", "r2", REF("subject", "Group", "p1", "Group/p1"));
	PUT(f, "Observation", "r3", REF("subject", NULL, NULL, "urn:uuid:abc"));
	PUT(f, "Observation", "r4", REF("subject", "Patient", "p2", "http://other/fhir/Patient/p2"));
	put_none(f, "Observation", "r5", NULL);

	EXPECT(f, "Observation", COND(STORE_IX_REFERENCE, "subject", 0, {.a = "Patient", .b = "p1"}), "r1");
	EXPECT(f, "Observation", COND(STORE_IX_REFERENCE, "subject", 0, {.b = "p1"}), "r1,r2");
	EXPECT(f, "Observation", COND(STORE_IX_REFERENCE, "subject", 0, {.c = "urn:uuid:abc"}), "r3");
	EXPECT(f, "Observation", COND(STORE_IX_REFERENCE, "subject", 0,
				      {.a = "Patient", .b = "p1"}, {.a = "Patient", .b = "p2"}), "r1,r4");
	EXPECT(f, "Observation", COND(STORE_IX_REFERENCE, "subject", 0, {.a = "Patient", .b = "p9"}), "");
	EXPECT(f, "Observation", MISSING(STORE_IX_REFERENCE, "subject", true), "r5");
	EXPECT(f, "Observation", MISSING(STORE_IX_REFERENCE, "subject", false), "r1,r2,r3,r4");

	PUT(f, "ValueSet", "u1", URI("url", "http://ex.org/fhir/ValueSet/a"));
	PUT(f, "ValueSet", "u2", URI("url", "http://ex.org/fhir/ValueSet/a/b"));
	PUT(f, "ValueSet", "u3", URI("url", "http://ex.org/other"));
	PUT(f, "ValueSet", "u4", URI("url", "http://ex.org/fhir/ValueSet/ab"));
	EXPECT(f, "ValueSet", COND(STORE_IX_URI, "url", 0, {.a = "http://ex.org/fhir/ValueSet/a"}), "u1");
	EXPECT(f, "ValueSet", COND(STORE_IX_URI, "url", STORE_MOD_BELOW, {.a = "http://ex.org/fhir/ValueSet/a"}),
	       "u1,u2,u4");
	EXPECT(f, "ValueSet", COND(STORE_IX_URI, "url", STORE_MOD_ABOVE, {.a = "http://ex.org/fhir/ValueSet/a/b/c"}),
	       "u1,u2");
	EXPECT(f, "ValueSet", COND(STORE_IX_URI, "url", STORE_MOD_ABOVE, {.a = "http://ex.org/fhir/ValueSet/a"}),
	       "u1");
	EXPECT(f, "ValueSet", COND(STORE_IX_URI, "url", STORE_MOD_ABOVE, {.a = "h"}), "");
}

/* ---- chains and _has ---- */

static void test_chain_has(void **state)
{
	struct fx *f = *state;
	struct store_cond name_smi = COND(STORE_IX_STRING, "name", 0, {.a = "smi"});
	struct store_cond code = COND(STORE_IX_TOKEN, "code", 0, {.b = "1234-5"});
	struct store_cond no_name = MISSING(STORE_IX_STRING, "name", true);
	struct store_cond id_p3 = COND(STORE_IX_TOKEN, "_id", 0, {.b = "p3"});

	PUT(f, "Patient", "p1", STR("name", "smith", "Smith"));
	PUT(f, "Patient", "p2", STR("name", "smithson", "Smithson"));
	PUT(f, "Patient", "p3", STR("name", "jones", "Jones"));
	put_none(f, "Patient", "p4", NULL);
	PUT(f, "Group", "p1", STR("name", "smith group", "Smith group"));
	PUT(f, "Observation", "o1", REF("subject", "Patient", "p1", "Patient/p1"),
	    TOK("code", NULL, "1234-5", NULL));
	PUT(f, "Observation", "o2", REF("subject", "Patient", "p2", "Patient/p2"),
	    TOK("code", NULL, "999", NULL));
	PUT(f, "Observation", "o3", REF("subject", "Patient", "p3", "Patient/p3"),
	    TOK("code", NULL, "1234-5", NULL));
	PUT(f, "Observation", "o4", REF("subject", "Patient", "p4", "Patient/p4"));
	PUT(f, "Observation", "o5", REF("subject", "Group", "p1", "Group/p1"),
	    TOK("code", NULL, "1234-5", NULL));

	/* Observation?subject:Patient.name=smi */
	EXPECT(f, "Observation", ((struct store_cond){.kind = STORE_IX_REFERENCE, .param = "subject",
						      .chain_type = "Patient", .chain = &name_smi}),
	       "o1,o2");
	EXPECT(f, "Observation", ((struct store_cond){.kind = STORE_IX_REFERENCE, .param = "subject",
						      .chain_type = "Group", .chain = &name_smi}),
	       "o5");
	/* a chain whose inner cond cannot drive (:missing) and one on _id */
	EXPECT(f, "Observation", ((struct store_cond){.kind = STORE_IX_REFERENCE, .param = "subject",
						      .chain_type = "Patient", .chain = &no_name}),
	       "o4");
	EXPECT(f, "Observation", ((struct store_cond){.kind = STORE_IX_REFERENCE, .param = "subject",
						      .chain_type = "Patient", .chain = &id_p3}),
	       "o3");
	/* Patient?_has:Observation:subject:code=1234-5 */
	EXPECT(f, "Patient", ((struct store_cond){.has_type = "Observation", .has_param = "subject",
						  .has = &code}), "p1,p3");
	EXPECT(f, "Group", ((struct store_cond){.has_type = "Observation", .has_param = "subject",
						.has = &code}), "p1");
	/* a deleted target no longer satisfies a chain; a deleted referrer no _has */
	del(f, "Patient", "p2");
	EXPECT(f, "Observation", ((struct store_cond){.kind = STORE_IX_REFERENCE, .param = "subject",
						      .chain_type = "Patient", .chain = &name_smi}),
	       "o1");
	del(f, "Observation", "o3");
	EXPECT(f, "Patient", ((struct store_cond){.has_type = "Observation", .has_param = "subject",
						  .has = &code}), "p1");
	/* both as filters behind a more selective driver (_id) */
	{
		struct store_cond two[2] = {
			COND(STORE_IX_TOKEN, "_id", 0, {.b = "p1"}, {.b = "p3"}),
			{.has_type = "Observation", .has_param = "subject", .has = &code}};
		struct store_query q = {.type = "Patient", .conds = two, .nconds = 2, .limit = 10};
		assert_string_equal(run(f, &q), "p1");
	}
	{
		struct store_cond two[2] = {
			COND(STORE_IX_TOKEN, "_id", 0, {.b = "o1"}, {.b = "o2"}, {.b = "o4"}),
			{.kind = STORE_IX_REFERENCE, .param = "subject", .chain_type = "Patient",
			 .chain = &no_name}};
		struct store_query q = {.type = "Observation", .conds = two, .nconds = 2, .limit = 10};
		assert_string_equal(run(f, &q), "o4");
	}
}

/* ---- compartment and $everything ---- */

static void test_compartment(void **state)
{
	struct fx *f = *state;
	const char *only[] = {"Observation", "Patient"};

	put_none(f, "Patient", "alice", "alice");
	put_none(f, "Patient", "bob", "bob");
	PUTP(f, "Observation", "a1", "alice", TOK("code", NULL, "x", NULL));
	PUTP(f, "Observation", "b1", "bob", TOK("code", NULL, "x", NULL));
	PUTP(f, "Condition", "a2", "alice", TOK("code", NULL, "x", NULL));
	PUTP(f, "Observation", "a3", "alice", TOK("code", NULL, "y", NULL));
	put_none(f, "Observation", "none", NULL);

	{
		struct store_query q = {.type = "Observation", .patient = "alice", .limit = 10};
		assert_string_equal(run(f, &q), "a1,a3");
	}
	{
		struct store_cond cd = COND(STORE_IX_TOKEN, "code", 0, {.b = "x"});
		struct store_query q = {.type = "Observation", .patient = "alice", .conds = &cd,
					.nconds = 1, .limit = 10};
		assert_string_equal(run(f, &q), "a1");
		cd = COND(STORE_IX_TOKEN, "_id", 0, {.b = "b1"}, {.b = "a3"});
		assert_string_equal(run(f, &q), "a3");
	}
	{
		/* $everything: every type; a type list; since */
		struct store_query q = {.patient = "alice", .limit = 10};
		assert_string_equal(run(f, &q), "alice,a1,a2,a3");
		q.types = only;
		q.ntypes = 2;
		assert_string_equal(run(f, &q), "alice,a1,a3");
		q.types = NULL;
		q.ntypes = 0;
		q.since = T0 + 3000;   /* a2 was written at T0 + 4000 */
		assert_string_equal(run(f, &q), "a2,a3");
	}
	/* a deleted resource leaves the compartment */
	del(f, "Observation", "a1");
	{
		struct store_query q = {.patient = "alice", .limit = 10};
		assert_string_equal(run(f, &q), "alice,a2,a3");
	}
}

/*
 * store_get_in() and store_get_compartment(): the read and its compartment
 * in one statement agree with store_get(), store_in_compartment() and
 * store_compartment_of() -- current and older versions, a resource in two
 * records, in none, deleted, unknown, and a list cut short.
 */
static void test_get_compartment(void **state)
{
	struct fx *f = *state;
	char pats[4][STORE_PATIENT_ID_SIZE], ref[4][STORE_PATIENT_ID_SIZE];
	const char *two[] = {"zoe", "alice"};
	const char *json = "{\"resourceType\":\"Encounter\",\"id\":\"shared\"}";
	struct store_resource r;
	struct ctx c = CTX_INIT;
	size_t n = 9, nref = 0;
	bool in = true, yes;
	struct store_put p;

	put_none(f, "Patient", "alice", "alice");
	PUTP(f, "Observation", "a1", "alice", TOK("code", NULL, "x", NULL));
	PUTP(f, "Observation", "a1", "alice", TOK("code", NULL, "y", NULL)); /* version 2 */
	put_none(f, "Observation", "none", NULL);
	p = (struct store_put){.op = STORE_PUT, .type = "Encounter", .id = "shared", .version = 1,
			       .last_updated = f->clock, .json = json, .json_len = strlen(json),
			       .patients = two, .npatients = 2};
	assert_int_equal(store_put(f->s, &p, &c), ERR_OK);
	store_resource_init(&r);

	/* in alice's record, current and first version */
	assert_int_equal(store_get_in(f->s, "Observation", "a1", 0, "alice", &r, &in, &c), ERR_OK);
	assert_true(in);
	assert_int_equal(r.version, 2);
	assert_non_null(strstr(r.json.data, "\"v\":2"));
	assert_int_equal(store_get_in(f->s, "Observation", "a1", 1, "alice", &r, &in, &c), ERR_OK);
	assert_true(in);
	assert_int_equal(r.version, 1);
	assert_int_equal(store_get_in(f->s, "Observation", "a1", 0, "bob", &r, &in, &c), ERR_OK);
	assert_false(in);
	assert_int_equal(store_get_in(f->s, "Observation", "none", 0, "alice", &r, &in, &c), ERR_OK);
	assert_false(in);
	assert_int_equal(store_get_compartment(f->s, "Observation", "a1", 0, &r, pats, 4, &n, &c),
			 ERR_OK);
	assert_int_equal(n, 1);
	assert_string_equal(pats[0], "alice");
	assert_int_equal(store_get_compartment(f->s, "Observation", "none", 0, &r, pats, 4, &n, &c),
			 ERR_OK);
	assert_int_equal(n, 0);

	/* two records, listed in id order as store_compartment_of() lists them; cut at max */
	assert_int_equal(store_get_compartment(f->s, "Encounter", "shared", 0, &r, pats, 4, &n, &c),
			 ERR_OK);
	assert_int_equal(store_compartment_of(f->s, "Encounter", "shared", ref, 4, &nref, &c), ERR_OK);
	assert_int_equal(n, 2);
	assert_int_equal(nref, 2);
	assert_string_equal(pats[0], "alice");
	assert_string_equal(pats[1], "zoe");
	assert_string_equal(ref[0], pats[0]);
	assert_string_equal(ref[1], pats[1]);
	assert_int_equal(store_get_compartment(f->s, "Encounter", "shared", 0, &r, pats, 1, &n, &c),
			 ERR_OK);
	assert_int_equal(n, 1);
	assert_string_equal(pats[0], "alice");
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(store_get_in(f->s, "Encounter", "shared", 0, two[i], &r, &in, &c),
				 ERR_OK);
		assert_int_equal(store_in_compartment(f->s, two[i], "Encounter", "shared", &yes, &c),
				 ERR_OK);
		assert_true(in);
		assert_true(yes);
	}

	/* deleted: read as deleted, in nobody's record */
	del(f, "Observation", "a1");
	assert_int_equal(store_get_in(f->s, "Observation", "a1", 0, "alice", &r, &in, &c), ERR_OK);
	assert_true(r.deleted);
	assert_false(in);
	assert_int_equal(store_get_compartment(f->s, "Observation", "a1", 0, &r, pats, 4, &n, &c),
			 ERR_OK);
	assert_int_equal(n, 0);

	/* unknown resource or version: not found, nothing claimed */
	in = true;
	assert_int_equal(store_get_in(f->s, "Observation", "nope", 0, "alice", &r, &in, &c),
			 ERR_NOTFOUND);
	assert_false(in);
	ctx_clear(&c);
	assert_int_equal(store_get_in(f->s, "Observation", "a1", 7, "alice", &r, &in, &c),
			 ERR_NOTFOUND);
	ctx_clear(&c);
	n = 9;
	assert_int_equal(store_get_compartment(f->s, "Observation", "nope", 0, &r, pats, 4, &n, &c),
			 ERR_NOTFOUND);
	assert_int_equal(n, 0);
	ctx_clear(&c);
	assert_int_equal(store_get_in(f->s, "Observation", "a1", 0, "", &r, &in, &c), ERR_INVALID);
	ctx_clear(&c);
	store_resource_release(&r);
}

/* ---- sorting ---- */

static const char *sorted(struct fx *f, const char *type, const struct store_sort *keys,
			  size_t n)
{
	struct store_query q = {.type = type, .sort = keys, .nsort = n, .limit = 100};

	return run(f, &q);
}

#define SORT_P(k, p, d) ((struct store_sort){.by = STORE_SORT_PARAM, .kind = (k), .param = (p), .desc = (d)})

static void test_sort(void **state)
{
	struct fx *f = *state;

	/* rids 1..5 in this order */
	PUT(f, "Patient", "a", STR("family", "baker", "Baker"), DATE("birthdate", 10, 19),
	    NUM("score", 3, 2.5, 3.5), TOK("gender", NULL, "male", NULL));
	PUT(f, "Patient", "b", STR("family", "adams", "Adams"), DATE("birthdate", 5, 30),
	    TOK("gender", NULL, "female", NULL));
	PUT(f, "Patient", "c", DATE("birthdate", 1, 2), NUM("score", 1, 0.5, 1.5));
	PUT(f, "Patient", "d", STR("family", "adams", "Adams"), NUM("score", 3, 2.5, 3.5),
	    TOK("gender", NULL, "female", NULL));
	PUT(f, "Patient", "e", STR("family", "carter", "Carter"), STR("family", "aaron", "Aaron"),
	    DATE("birthdate", 50, 60), DATE("birthdate", 0, 0), TOK("gender", NULL, "other", NULL));

	/* ascending by the lowest value, descending by the highest, no value last */
	assert_string_equal(sorted(f, "Patient", &SORT_P(STORE_IX_STRING, "family", false), 1),
			    "e,b,d,a,c");
	assert_string_equal(sorted(f, "Patient", &SORT_P(STORE_IX_STRING, "family", true), 1),
			    "e,a,d,b,c");
	assert_string_equal(sorted(f, "Patient", &SORT_P(STORE_IX_DATE, "birthdate", false), 1),
			    "e,c,b,a,d");
	assert_string_equal(sorted(f, "Patient", &SORT_P(STORE_IX_DATE, "birthdate", true), 1),
			    "e,b,a,c,d");
	assert_string_equal(sorted(f, "Patient", &SORT_P(STORE_IX_NUMBER, "score", false), 1),
			    "c,a,d,b,e");
	assert_string_equal(sorted(f, "Patient", &SORT_P(STORE_IX_NUMBER, "score", true), 1),
			    "d,a,c,e,b");
	assert_string_equal(sorted(f, "Patient", &SORT_P(STORE_IX_TOKEN, "gender", false), 1),
			    "b,d,a,e,c");
	{
		const struct store_sort two[2] = {SORT_P(STORE_IX_NUMBER, "score", true),
						  SORT_P(STORE_IX_STRING, "family", false)};
		assert_string_equal(sorted(f, "Patient", two, 2), "d,a,c,e,b");
	}
	{
		const struct store_sort two[2] = {SORT_P(STORE_IX_TOKEN, "gender", false),
						  SORT_P(STORE_IX_DATE, "birthdate", true)};
		assert_string_equal(sorted(f, "Patient", two, 2), "b,d,a,e,c");
	}
	{
		const struct store_sort k = {.by = STORE_SORT_ID, .desc = true};
		assert_string_equal(sorted(f, "Patient", &k, 1), "e,d,c,b,a");
	}
	/* _lastUpdated: d is updated last, so it comes first descending */
	PUT(f, "Patient", "d", STR("family", "adams", "Adams"), NUM("score", 3, 2.5, 3.5),
	    TOK("gender", NULL, "female", NULL));
	{
		const struct store_sort k = {.by = STORE_SORT_LAST_UPDATED, .desc = true};
		assert_string_equal(sorted(f, "Patient", &k, 1), "d,e,c,b,a");
	}
	{
		const struct store_sort k = {.by = STORE_SORT_LAST_UPDATED, .desc = false};
		assert_string_equal(sorted(f, "Patient", &k, 1), "a,b,c,e,d");
	}
	/* default order: rid */
	assert_string_equal(sorted(f, "Patient", NULL, 0), "a,b,c,d,e");
}

/* ---- paging ---- */

/*
 * Walk every page of 'q' forward with page size 'limit', calling
 * between() after each page; then walk back from the last page to the
 * first.  Both walks must give 'want' exactly.
 */
static void walk_pages(struct fx *f, struct store_query q, int limit, const char *want,
		       void (*between)(struct fx *, int))
{
	static struct got all, page;
	struct ctx c = CTX_INIT;
	bool more = true;
	int pages = 0;

	memset(&all, 0, sizeof(all));
	q.limit = limit;
	q.cursor.set = false;
	q.backward = false;
	while (more) {
		memset(&page, 0, sizeof(page));
		more = false;
		if (store_search(f->s, &q, collect, &page, &more, NULL, &c))
			fail_msg("page %d: %s", pages, c.msg);
		assert_true(page.n <= limit);
		if (more)
			assert_int_equal(page.n, limit);
		for (int i = 0; i < page.n; i++) {
			assert_true(page.pos[i].set);
			assert_int_equal(page.pos[i].rid, page.rids[i]);
			if (pages || i)
				assert_int_equal(page.pos[i].snapshot_rid, all.pos[0].snapshot_rid);
			all.pos[all.n] = page.pos[i];
			all.rids[all.n] = page.rids[i];
			str_copy(all.ids[all.n++], page.ids[i], sizeof(all.ids[0]));
		}
		pages++;
		if (!page.n)
			break;
		q.cursor = page.pos[page.n - 1];
		if (between)
			between(f, pages);
	}
	got_list(&all);
	assert_string_equal(all.list, want);

	/* backward from the first row of the last page */
	if (all.n <= limit)
		return;
	{
		int first = ((all.n - 1) / limit) * limit;   /* index of the last page's first row */
		char ids[MAXHITS][72];
		int n = 0, at = first;

		q.cursor = all.pos[first];
		q.backward = true;
		more = true;
		while (more) {
			memset(&page, 0, sizeof(page));
			more = false;
			if (store_search(f->s, &q, collect, &page, &more, NULL, &c))
				fail_msg("backward page: %s", c.msg);
			assert_true(page.n <= limit);
			/* nearest first */
			for (int i = 0; i < page.n; i++)
				str_copy(ids[n++], page.ids[i], sizeof(ids[0]));
			if (!page.n)
				break;
			at -= page.n;
			q.cursor = page.pos[page.n - 1];
		}
		assert_int_equal(at, 0);
		assert_int_equal(n, first);
		for (int i = 0; i < n; i++)
			assert_string_equal(ids[i], all.ids[first - 1 - i]);
	}
}

/* Put paging resource o<i>: dates with ties, every 5th without one, two names. */
static void put_o(struct fx *f, int i)
{
	char id[16];

	snprintf(id, sizeof(id), "o%02d", i);
	if (i % 5 == 4) {
		PUT(f, "Observation", id, TOK("code", NULL, "c", NULL),
		    STR("name", i % 4 ? "same" : "other", "x"));
	} else {
		PUT(f, "Observation", id, TOK("code", NULL, "c", NULL),
		    DATE("date", i % 6 * DAY, i % 6 * DAY), STR("name", i % 4 ? "same" : "other", "x"));
	}
}

/* Between pages: add resources (not to be seen) and update seen and unseen ones. */
static void churn(struct fx *f, int page)
{
	char id[32];

	snprintf(id, sizeof(id), "late%d", page);
	PUT(f, "Observation", id, TOK("code", NULL, "c", NULL), DATE("date", 0, 0),
	    STR("name", "zzz", "zzz"));
	/* updates keep each resource's sort values: the keyset holds */
	put_o(f, (page * 7) % 40);
	put_o(f, (page * 13 + 5) % 40);
}

static void test_paging(void **state)
{
	struct fx *f = *state;
	struct store_cond code = COND(STORE_IX_TOKEN, "code", 0, {.b = "c"});
	struct store_query q = {.type = "Observation", .conds = &code, .nconds = 1};
	static char want[MAXHITS * 16];
	struct store_sort keys[2];
	int64_t total = 0;
	struct ctx c = CTX_INIT;
	bool more;

	/* 40 matches, each followed by a resource that does not match */
	for (int i = 0; i < 40; i++) {
		char id[16];
		put_o(f, i);
		snprintf(id, sizeof(id), "noise%02d", i);
		PUT(f, "Observation", id, TOK("code", NULL, "n", NULL), DATE("date", 0, 0));
	}
	/* the default order */
	q.limit = 100;
	str_copy(want, run(f, &q), sizeof(want));
	walk_pages(f, q, 7, want, NULL);
	walk_pages(f, q, 40, want, NULL);
	walk_pages(f, q, 1, want, NULL);
	walk_pages(f, q, 7, want, churn);

	/* one key each way, and two keys with mixed directions */
	for (int round = 0; round < 6; round++) {
		keys[0] = SORT_P(STORE_IX_DATE, "date", round & 1);
		keys[1] = SORT_P(STORE_IX_STRING, "name", (round & 2) != 0);
		q.sort = keys;
		q.nsort = round < 4 ? 2 : 1;
		if (round >= 4)
			keys[0] = round == 4 ? (struct store_sort){.by = STORE_SORT_ID, .desc = true}
					     : (struct store_sort){.by = STORE_SORT_LAST_UPDATED};
		q.limit = 100;
		q.cursor.set = false;
		str_copy(want, run(f, &q), sizeof(want));
		walk_pages(f, q, 3, want, NULL);
		walk_pages(f, q, 8, want, round < 4 ? churn : NULL);
		/* what churn added is in the next search, not in the walk above */
		str_copy(want, run(f, &q), sizeof(want));
		walk_pages(f, q, 5, want, NULL);
	}

	/* totals: accurate, estimate (may be accurate), none */
	q.sort = NULL;
	q.nsort = 0;
	q.cursor.set = false;
	q.limit = 5;
	q.total = STORE_TOTAL_ACCURATE;
	assert_int_equal(store_search(f->s, &q, NULL, NULL, &more, &total, &c), ERR_OK);
	assert_true(total >= 40);
	assert_true(more);
	{
		int64_t accurate = total;
		q.total = STORE_TOTAL_ESTIMATE;
		assert_int_equal(store_search(f->s, &q, NULL, NULL, &more, &total, &c), ERR_OK);
		assert_int_equal(total, accurate);
		q.total = STORE_TOTAL_NONE;
		assert_int_equal(store_search(f->s, &q, NULL, NULL, &more, &total, &c), ERR_OK);
		assert_int_equal(total, -1);
		/* limit 0: count only */
		{
			struct got g;
			memset(&g, 0, sizeof(g));
			q.limit = 0;
			q.total = STORE_TOTAL_ACCURATE;
			assert_int_equal(store_search(f->s, &q, collect, &g, &more, &total, &c), ERR_OK);
			assert_int_equal(g.n, 0);
			assert_int_equal(total, accurate);
			assert_true(more);
		}
	}
}

/*
 * A patient's resources of one category or code, newest first: the walk
 * reads ix_patient_token (schema 6).  Its rows must follow every write:
 * an update that changes the category or the date, a delete, a resource
 * of another patient, a second coding with the same code, and paging.
 */
static void plan_ok(struct fx *f, const char *what, const struct store_query *q,
		    const char *index);

static void test_patient_token_walk(void **state)
{
	struct fx *f = *state;
	struct store_sort newest = SORT_P(STORE_IX_DATE, "date", true);
	struct store_cond two[2] = {COND(STORE_IX_REFERENCE, "subject", 0, {.a = "Patient", .b = "p1"}),
				    COND(STORE_IX_TOKEN, "category", 0, {.b = "lab"})};
	struct store_query q = {.type = "Observation", .conds = two, .nconds = 2,
				.sort = &newest, .nsort = 1, .limit = 100};
	struct store_match since = {.cmp = STORE_CMP_GE, .lo = 25, .hi = 25};

#define OBS(id, pat, cat, day) \
	PUTP(f, "Observation", id, pat, REF("subject", "Patient", pat, "Patient/" pat), \
	     TOK("category", "http://c", cat, NULL), TOK("code", "http://loinc.org", "1-1", NULL), \
	     DATE("date", day, day))
	OBS("a", "p1", "lab", 10);
	OBS("b", "p1", "vital", 40);
	OBS("c", "p1", "lab", 30);
	OBS("d", "p2", "lab", 50);
	OBS("e", "p1", "lab", 20);
	/* two codings of one category: one hit, not two */
	PUTP(f, "Observation", "g", "p1", REF("subject", "Patient", "p1", "Patient/p1"),
	     TOK("category", "http://c", "lab", NULL), TOK("category", "http://other", "lab", NULL),
	     DATE("date", 25, 25));
	/* no date: last */
	PUTP(f, "Observation", "h", "p1", REF("subject", "Patient", "p1", "Patient/p1"),
	     TOK("category", "http://c", "lab", NULL));
	assert_string_equal(run(f, &q), "c,g,e,a,h");
	walk_pages(f, q, 2, "c,g,e,a,h", NULL);

	/* with the system; "|code" (no system) matches none of them */
	two[1] = COND(STORE_IX_TOKEN, "category", 0, {.a = "http://other", .b = "lab"});
	assert_string_equal(run(f, &q), "g");
	two[1] = COND(STORE_IX_TOKEN, "category", 0, {.a = "", .b = "lab"});
	assert_string_equal(run(f, &q), "");
	/* by code, and by code with date=ge: a range of the same rows */
	two[1] = COND(STORE_IX_TOKEN, "code", 0, {.a = "http://loinc.org", .b = "1-1"});
	assert_string_equal(run(f, &q), "b,c,e,a");
	{
		struct store_cond three[3] = {two[0], two[1],
					      {.kind = STORE_IX_DATE, .param = "date", .m = &since, .nm = 1}};
		struct store_query q3 = q;

		q3.conds = three;
		q3.nconds = 3;
		assert_string_equal(run(f, &q3), "b,c");
		plan_ok(f, "patient+code+date", &q3,
			"ix_patient_token_key (type=? AND rparam=? AND patient=? AND param=? AND code=? AND sort_hi>?)");
	}

	/* updates move a resource between categories and dates; deletes remove it */
	two[1] = COND(STORE_IX_TOKEN, "category", 0, {.b = "lab"});
	OBS("b", "p1", "lab", 5);
	OBS("c", "p1", "vital", 30);
	OBS("a", "p1", "lab", 60);
	del(f, "Observation", "e");
	assert_string_equal(run(f, &q), "a,g,b,h");
	two[0] = COND(STORE_IX_REFERENCE, "subject", 0, {.a = "Patient", .b = "p2"});
	assert_string_equal(run(f, &q), "d");
	/* another reference parameter to the same patient is not 'subject' */
	two[0] = COND(STORE_IX_REFERENCE, "performer", 0, {.a = "Patient", .b = "p1"});
	assert_string_equal(run(f, &q), "");
#undef OBS
}

/* Each hit's version and JSON, "id:version:json;..." (static buffer). */
static int collect_versions(void *arg, const struct store_hit *h)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 4096 - n, "%s:%lld:%.*s;", h->res->id, (long long)h->res->version,
		 (int)h->res->json.len, h->res->json.data);
	return 0;
}

static const char *versions(struct fx *f, const struct store_query *q)
{
	static char out[4096];
	struct ctx c = CTX_INIT;
	bool more;

	out[0] = '\0';
	if (store_search(f->s, q, collect_versions, out, &more, NULL, &c))
		fail_msg("search: %s", c.msg);
	return out;
}

/*
 * Pages read each resource's JSON through the seq its index or compartment
 * row carries (schema 7), not through the resource row: after updates
 * every shape must still serve the current version, and nothing of an
 * older one.
 */
static void test_pages_read_current_version(void **state)
{
	struct fx *f = *state;
	struct store_sort newest = SORT_P(STORE_IX_DATE, "date", true);
	struct store_sort by_code = SORT_P(STORE_IX_TOKEN, "code", false);
	struct store_cond pat = COND(STORE_IX_REFERENCE, "subject", 0, {.a = "Patient", .b = "p1"});
	struct store_cond two[2] = {pat, COND(STORE_IX_TOKEN, "category", 0, {.b = "lab"})};
	struct store_cond code = COND(STORE_IX_TOKEN, "code", 0, {.b = "c"});
	struct store_cond smi = COND(STORE_IX_STRING, "name", 0, {.a = "smi"});
	const char *want_o = "o1:3:{\"resourceType\":\"Observation\",\"id\":\"o1\",\"v\":3};";

	for (int v = 0; v < 3; v++) {
		PUTP(f, "Observation", "o1", "p1", REF("subject", "Patient", "p1", "Patient/p1"),
		     TOK("category", NULL, "lab", NULL), TOK("code", NULL, "c", NULL), DATE("date", 5, 5));
		PUTP(f, "Patient", "p1", "p1", STR("name", "smith", "Smith"));
	}
	/* lean, keyed walk (patient + category, newest first) */
	{
		struct store_query q = {.type = "Observation", .conds = two, .nconds = 2,
					.sort = &newest, .nsort = 1, .limit = 10};
		assert_string_equal(versions(f, &q), want_o);
	}
	/* lean, keyed by the patient alone, sorted */
	{
		struct store_query q = {.type = "Observation", .conds = &pat, .nconds = 1,
					.sort = &newest, .nsort = 1, .limit = 10};
		assert_string_equal(versions(f, &q), want_o);
	}
	/* lean, sorted by a parameter with a token driver (DISTINCT shape) */
	{
		struct store_query q = {.type = "Observation", .conds = &code, .nconds = 1,
					.sort = &by_code, .nsort = 1, .limit = 10};
		assert_string_equal(versions(f, &q), want_o);
	}
	/* lean, unsorted, string driver */
	{
		struct store_query q = {.type = "Patient", .conds = &smi, .nconds = 1, .limit = 10};
		assert_string_equal(versions(f, &q),
				    "p1:3:{\"resourceType\":\"Patient\",\"id\":\"p1\",\"v\":3};");
	}
	/* the compartment, typed (lean when sorted) and $everything */
	{
		struct store_query q = {.type = "Observation", .patient = "p1", .sort = &newest,
					.nsort = 1, .limit = 10};
		assert_string_equal(versions(f, &q), want_o);
		q = (struct store_query){.patient = "p1", .limit = 10};
		assert_string_equal(versions(f, &q),
				    "o1:3:{\"resourceType\":\"Observation\",\"id\":\"o1\",\"v\":3};"
				    "p1:3:{\"resourceType\":\"Patient\",\"id\":\"p1\",\"v\":3};");
	}
	/* a deleted resource is in no page */
	del(f, "Observation", "o1");
	{
		struct store_query q = {.type = "Observation", .conds = two, .nconds = 2,
					.sort = &newest, .nsort = 1, .limit = 10};
		assert_string_equal(versions(f, &q), "");
		q = (struct store_query){.patient = "p1", .limit = 10};
		assert_string_equal(versions(f, &q),
				    "p1:3:{\"resourceType\":\"Patient\",\"id\":\"p1\",\"v\":3};");
	}
}

/* A text sort key past 255 bytes is cut at a UTF-8 boundary; paging stays exact. */
static void test_long_text_key(void **state)
{
	struct fx *f = *state;
	struct store_cond code = COND(STORE_IX_TOKEN, "code", 0, {.b = "c"});
	struct store_sort key = SORT_P(STORE_IX_STRING, "name", false);
	struct store_query q = {.type = "Observation", .conds = &code, .nconds = 1, .sort = &key,
				.nsort = 1};
	static char want[MAXHITS * 16];
	char name[400];
	struct got g;
	struct ctx c = CTX_INIT;
	bool more;

	for (int i = 0; i < 12; i++) {
		char id[16];
		size_t n = 0;

		/* 254 bytes of 'a' then "é" (2 bytes) crosses byte 255; then a tail */
		memset(name, 'a', 254);
		n = 254;
		memcpy(name + n, "\xc3\xa9", 2);
		n += 2;
		n += (size_t)snprintf(name + n, sizeof(name) - n, "tail%02d", (i * 5) % 12);
		snprintf(id, sizeof(id), "L%02d", i);
		PUT(f, "Observation", id, TOK("code", NULL, "c", NULL), STR("name", name, name));
	}
	memset(&g, 0, sizeof(g));
	q.limit = 3;
	assert_int_equal(store_search(f->s, &q, collect, &g, &more, NULL, &c), ERR_OK);
	assert_int_equal(strlen(g.pos[0].key[0].s), 254);
	assert_true(str_utf8_valid(g.pos[0].key[0].s, strlen(g.pos[0].key[0].s)));
	q.limit = 100;
	str_copy(want, run(f, &q), sizeof(want));
	/* all values share the cut key: ordered by rid */
	assert_string_equal(want, "L00,L01,L02,L03,L04,L05,L06,L07,L08,L09,L10,L11");
	walk_pages(f, q, 5, want, NULL);
	key.desc = true;
	q.limit = 100;
	str_copy(want, run(f, &q), sizeof(want));
	assert_string_equal(want, "L11,L10,L09,L08,L07,L06,L05,L04,L03,L02,L01,L00");
	walk_pages(f, q, 5, want, NULL);
}

/* ---- include / revinclude ---- */

static void test_include(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct store_cond cd = COND(STORE_IX_TOKEN, "code", 0, {.b = "c"});
	struct store_query q = {.type = "Observation", .conds = &cd, .nconds = 1, .limit = 10};
	static struct got page, inc;
	const char *ids[2] = {"p1", "p2"};

	put_none(f, "Patient", "p1", NULL);
	put_none(f, "Patient", "p2", NULL);
	put_none(f, "Practitioner", "dr", NULL);
	put_none(f, "Practitioner", "gone", NULL);
	PUT(f, "Observation", "o1", TOK("code", NULL, "c", NULL),
	    REF("subject", "Patient", "p1", "Patient/p1"),
	    REF("performer", "Practitioner", "dr", "Practitioner/dr"));
	PUT(f, "Observation", "o2", TOK("code", NULL, "c", NULL),
	    REF("subject", "Patient", "p1", "Patient/p1"),
	    REF("performer", "Practitioner", "gone", "Practitioner/gone"),
	    REF("performer", "Practitioner", "nowhere", "Practitioner/nowhere"));
	PUT(f, "Observation", "o3", TOK("code", NULL, "d", NULL),
	    REF("subject", "Patient", "p2", "Patient/p2"));
	del(f, "Practitioner", "gone");

	memset(&page, 0, sizeof(page));
	assert_int_equal(store_search(f->s, &q, collect, &page, NULL, NULL, &c), ERR_OK);
	assert_int_equal(page.n, 2);

	/* every reference: distinct current targets */
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_include(f->s, page.rids, 2, "Observation", NULL, NULL, NULL, collect, &inc,
				       &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "p1,dr");
	assert_false(inc.pos[0].set);
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_include(f->s, page.rids, 2, "Observation", "subject", NULL, NULL, collect,
				       &inc, &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "p1");
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_include(f->s, page.rids, 2, NULL, NULL, "Practitioner", NULL, collect,
				       &inc, &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "dr");

	/* revinclude: Observations whose subject is p1 or p2, at most 'limit' */
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_revinclude(f->s, "Patient", ids, 2, "Observation", "subject", 10, NULL,
					  collect, &inc, &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "o1,o2,o3");
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_revinclude(f->s, "Patient", ids, 2, "Observation", "subject", 2, NULL,
					  collect, &inc, &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "o1,o2");
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_revinclude(f->s, "Practitioner", (const char *[]){"dr"}, 1,
					  "Observation", NULL, 10, NULL, collect, &inc, &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "o1");
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_revinclude(f->s, "Patient", ids, 2, "Encounter", "subject", 10, NULL,
					  collect, &inc, &c), ERR_OK);
	assert_int_equal(inc.n, 0);
}

/*
 * Includes confined to one patient's record: confined types only from that
 * patient's compartment (not another patient's, not from no one's), other
 * types as shared data; the revinclude limit counts what is delivered.
 */
static void test_include_confined(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	static const char *const in_record[] = {"Encounter", "Observation", "Patient"};
	const struct store_confine p1 = {"p1", in_record, 3}, none = {NULL, in_record, 3};
	const char *ids[2] = {"p1", "p2"};
	static struct got inc;
	int64_t rids[2];
	struct store_resource r;
	bool in;

	put_none(f, "Patient", "p1", "p1");
	put_none(f, "Patient", "p2", "p2");
	put_none(f, "Practitioner", "dr", NULL);
	put_none(f, "Encounter", "e2", "p2");
	put_none(f, "Observation", "orphan", NULL);
	PUTP(f, "Observation", "o1", "p1", REF("subject", "Patient", "p1", "Patient/p1"),
	     REF("encounter", "Encounter", "e2", "Encounter/e2"),
	     REF("has-member", "Observation", "orphan", "Observation/orphan"),
	     REF("performer", "Practitioner", "dr", "Practitioner/dr"),
	     REF("performer", "Patient", "p2", "Patient/p2"));
	PUTP(f, "Observation", "o2", "p1", REF("subject", "Patient", "p1", "Patient/p1"));
	PUTP(f, "Observation", "o3", "p2", REF("subject", "Patient", "p2", "Patient/p2"));
	store_resource_init(&r);
	assert_int_equal(store_get_in(f->s, "Observation", "o1", 0, "p1", &r, &in, &c), ERR_OK);
	assert_true(in);
	store_resource_release(&r);
	/* the rids of o1 and o2, from an unconfined revinclude */
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_revinclude(f->s, "Patient", ids, 1, "Observation", "subject", 10, NULL,
					  collect, &inc, &c), ERR_OK);
	assert_int_equal(inc.n, 2);
	rids[0] = inc.rids[0];
	rids[1] = inc.rids[1];

	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_include(f->s, rids, 2, "Observation", NULL, NULL, NULL, collect, &inc,
				       &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "p1,p2,dr,e2,orphan");
	/* a confinement without a patient confines nothing */
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_include(f->s, rids, 2, "Observation", NULL, NULL, &none, collect, &inc,
				       &c), ERR_OK);
	assert_int_equal(inc.n, 5);
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_include(f->s, rids, 2, "Observation", NULL, NULL, &p1, collect, &inc,
				       &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "p1,dr");

	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_revinclude(f->s, "Patient", ids, 2, "Observation", "subject", 10, &p1,
					  collect, &inc, &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "o1,o2");
	/*
	 * o1 (p1's, a performer p2) and o3 (p2's) point at p2: confined to p2,
	 * the limit of one counts o3 only, what is delivered
	 */
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_revinclude(f->s, "Patient", (const char *[]){"p2"}, 1, "Observation",
					  NULL, 1, &(struct store_confine){"p2", in_record, 3}, collect,
					  &inc, &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "o3");
	/* shared types are not confined */
	memset(&inc, 0, sizeof(inc));
	assert_int_equal(store_include(f->s, rids, 2, NULL, "performer", "Practitioner", &p1, collect,
				       &inc, &c), ERR_OK);
	got_list(&inc);
	assert_string_equal(inc.list, "dr");
	/* a bad confinement is refused */
	assert_int_equal(store_include(f->s, rids, 2, NULL, NULL, NULL,
				       &(struct store_confine){"", in_record, 3}, collect, &inc, &c),
			 ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_revinclude(f->s, "Patient", ids, 2, "Observation", NULL, 5,
					  &(struct store_confine){"p1", NULL, 2}, collect, &inc, &c),
			 ERR_INVALID);
}

/* ---- plans ---- */

/*
 * The plan of q must seek every table it reads (SEARCH ... USING ...) and
 * name 'index' (a substring of one of its lines); the only SCANs allowed
 * are of the page subquery 'p' (at most a page of rows) and of constant
 * lists.
 */
static void plan_ok(struct fx *f, const char *what, const struct store_query *q,
		    const char *index)
{
	struct buf out = BUF_INIT(1 << 20), sql = BUF_INIT(1 << 20);
	struct ctx c = CTX_INIT;
	const char *line;

	static char why[1 << 16];

	if (store_search_explain(f->s, q, &out, &sql, &c))
		fail_msg("%s: %s", what, c.msg);
	why[0] = '\0';
	for (line = out.data; *line && !why[0];) {
		const char *end = strchr(line, '\n');
		char l[512];
		size_t n = end ? (size_t)(end - line) : strlen(line);
		const char *t;

		snprintf(l, sizeof(l), "%.*s", (int)n, line);
		for (t = l; *t == ' '; t++)
			;
		if (strstr(t, "SCAN ") && strcmp(t, "SCAN p") && !strstr(t, "json_each") &&
		    !strstr(t, "CONSTANT ROW"))
			snprintf(why, sizeof(why), "%s: plan scans: '%s'", what, t);
		/* "SEARCH resource" alone is max(rid): a seek to the end of the table */
		if (strstr(t, "SEARCH ") && !strstr(t, " USING ") && strcmp(t, "SEARCH resource"))
			snprintf(why, sizeof(why), "%s: plan searches without an index: '%s'", what, t);
		line += n + (end ? 1 : 0);
	}
	if (!why[0] && !strstr(out.data, index))
		snprintf(why, sizeof(why), "%s: plan does not use '%s'", what, index);
	if (!why[0] && !strstr(out.data, "USING INDEX") && !strstr(out.data, "USING COVERING INDEX") &&
	    !strstr(out.data, "USING PRIMARY KEY") && !strstr(out.data, "USING INTEGER PRIMARY KEY"))
		snprintf(why, sizeof(why), "%s: no index in the plan", what);
	if (why[0])
		print_error("%s\nplan:\n%s\nsql: %s\n", why, out.data, sql.data);
	buf_release(&out);
	buf_release(&sql);
	if (why[0])
		fail();
}

static void plan1(struct fx *f, const char *what, const char *type, struct store_cond cd,
		  const char *index)
{
	struct store_query q = {.type = type, .conds = &cd, .nconds = 1, .limit = 20,
				.total = STORE_TOTAL_ACCURATE};

	plan_ok(f, what, &q, index);
}

static void test_explain_uses_indexes(void **state)
{
	struct fx *f = *state;
	struct store_cond name = COND(STORE_IX_STRING, "name", 0, {.a = "smi"});
	struct store_cond code = COND(STORE_IX_TOKEN, "code", 0, {.b = "1234-5"});
	struct store_sort date_desc = SORT_P(STORE_IX_DATE, "date", true);

	/* some data, so that plans are not about empty tables (no ANALYZE either way) */
	PUTP(f, "Observation", "o1", "p1", REF("subject", "Patient", "p1", "Patient/p1"),
	     TOK("code", NULL, "1234-5", NULL), DATE("date", T0, T0));
	PUT(f, "Patient", "p1", STR("name", "smith", "Smith"));

	plan1(f, "token", "Observation", COND(STORE_IX_TOKEN, "code", 0, {.a = "http://loinc.org", .b = "1234-5"}),
	      "ix_token_code (type=? AND param=? AND code=? AND system=?)");
	plan1(f, "token system only", "Observation", COND(STORE_IX_TOKEN, "code", 0, {.a = "http://loinc.org"}),
	      "ix_token_code (type=? AND param=?)");
	plan1(f, "token two codes", "Observation", COND(STORE_IX_TOKEN, "code", 0, {.b = "a"}, {.b = "b"}),
	      "ix_token_code (type=? AND param=? AND code=?)");
	plan1(f, "of-type", "Patient", COND(STORE_IX_TOKEN, "identifier:of-type", STORE_MOD_OF_TYPE,
					     {.a = "s", .b = "MR", .c = "1"}),
	      "ix_token_code (type=? AND param=? AND code=? AND system=?)");
	plan1(f, "string", "Patient", name, "ix_string_pre (type=? AND param=? AND <expr>=?)");
	plan1(f, "string exact", "Patient", COND(STORE_IX_STRING, "name", STORE_MOD_EXACT, {.a = "smith", .b = "Smith"}),
	      "ix_string_norm (type=? AND param=? AND norm=?)");
	plan1(f, "date eq", "Observation", COND(STORE_IX_DATE, "date", 0, {.cmp = STORE_CMP_EQ, .lo = T0, .hi = T0 + DAY}),
	      "ix_date_range (type=? AND param=? AND lo>? AND lo<?)");
	plan1(f, "date ge", "Observation", COND(STORE_IX_DATE, "date", 0, {.cmp = STORE_CMP_GE, .lo = T0, .hi = T0 + DAY}),
	      "ix_date_hi (type=? AND param=? AND hi>?)");
	plan1(f, "date lt", "Observation", COND(STORE_IX_DATE, "date", 0, {.cmp = STORE_CMP_LT, .lo = T0, .hi = T0 + DAY}),
	      "ix_date_range (type=? AND param=? AND lo<?)");
	plan1(f, "reference", "Observation", COND(STORE_IX_REFERENCE, "subject", 0, {.a = "Patient", .b = "p1"}),
	      "COVERING INDEX ix_reference_patient_rid (type=? AND param=? AND target_id=?)");
	plan1(f, "reference to another type", "Observation",
	      COND(STORE_IX_REFERENCE, "performer", 0, {.a = "Practitioner", .b = "dr"}),
	      "ix_reference_target (type=? AND param=? AND target_id=? AND target_type=?)");
	plan1(f, "quantity", "Observation", COND(STORE_IX_QUANTITY, "value-quantity", 0,
						 {.num = 5.4, .nlo = 5.35, .nhi = 5.45, .b = "mg"}),
	      "ix_quantity_value (type=? AND param=? AND code=? AND value>? AND value<?)");
	plan1(f, "quantity no unit", "Observation", COND(STORE_IX_QUANTITY, "value-quantity", 0,
							 {.cmp = STORE_CMP_GT, .num = 5.4, .nlo = 5.35, .nhi = 5.45}),
	      "ix_quantity_value (type=? AND param=?)");
	plan1(f, "number", "RiskAssessment", COND(STORE_IX_NUMBER, "probability", 0,
						  {.cmp = STORE_CMP_GT, .num = 0.5, .nlo = 0.45, .nhi = 0.55}),
	      "ix_number_value (type=? AND param=? AND value>?)");
	plan1(f, "uri", "ValueSet", COND(STORE_IX_URI, "url", 0, {.a = "http://x"}),
	      "ix_uri_uri (type=? AND param=? AND uri=?)");
	plan1(f, "uri below", "ValueSet", COND(STORE_IX_URI, "url", STORE_MOD_BELOW, {.a = "http://x"}),
	      "ix_uri_uri (type=? AND param=? AND uri>? AND uri<?)");
	plan1(f, "uri above", "ValueSet", COND(STORE_IX_URI, "url", STORE_MOD_ABOVE, {.a = "http://x/y"}),
	      "ix_uri_uri (type=? AND param=? AND uri>? AND uri<?)");
	plan1(f, "_id", "Observation", COND(STORE_IX_TOKEN, "_id", 0, {.b = "o1"}),
	      "sqlite_autoindex_resource_1 (type=? AND id=?)");
	plan1(f, "_lastUpdated", "Observation", COND(STORE_IX_DATE, "_lastUpdated", 0,
						     {.cmp = STORE_CMP_GE, .lo = T0, .hi = T0}),
	      "resource_type_updated (type=? AND deleted=? AND last_updated>?)");
	plan1(f, "chain", "Observation", ((struct store_cond){.kind = STORE_IX_REFERENCE, .param = "subject",
							      .chain_type = "Patient", .chain = &name}),
	      "ix_reference_target (type=? AND param=? AND target_id=? AND target_type=?)");
	plan1(f, "chain inner", "Observation", ((struct store_cond){.kind = STORE_IX_REFERENCE, .param = "subject",
								    .chain_type = "Patient", .chain = &name}),
	      "ix_string_norm (type=? AND param=? AND norm>? AND norm<?)");
	plan1(f, "_has", "Patient", ((struct store_cond){.has_type = "Observation", .has_param = "subject",
							 .has = &code}),
	      "ix_token_code (type=? AND param=? AND code=?)");
	plan1(f, "_has target", "Patient", ((struct store_cond){.has_type = "Observation", .has_param = "subject",
								.has = &code}),
	      "sqlite_autoindex_resource_1 (type=? AND id=?)");

	/* the compartment, with and without a type; $everything with a type list */
	{
		struct store_query q = {.type = "Observation", .patient = "p1", .limit = 20};
		plan_ok(f, "compartment", &q, "SEARCH c USING PRIMARY KEY (patient=? AND type=?)");
	}
	{
		const char *types[] = {"Observation", "Condition"};
		struct store_query q = {.patient = "p1", .limit = 50, .since = T0};
		plan_ok(f, "$everything", &q, "SEARCH c USING PRIMARY KEY (patient=?)");
		q.types = types;
		q.ntypes = 2;
		plan_ok(f, "$everything types", &q, "SEARCH c USING PRIMARY KEY (patient=? AND type=?)");
	}
	/* the queries: patient first, then probes by rid */
	{
		struct store_cond two[2] = {COND(STORE_IX_REFERENCE, "subject", 0, {.a = "Patient", .b = "p1"}),
					    COND(STORE_IX_TOKEN, "category", 0, {.b = "laboratory"})};
		struct store_query q = {.type = "Observation", .conds = two, .nconds = 2,
					.sort = &date_desc, .nsort = 1, .limit = 20};
		plan_ok(f, "patient+category sorted", &q,
			"ix_patient_token_key (type=? AND rparam=? AND patient=? AND param=? AND code=?)");
		/* other tokens are probes of the patient's references */
		two[1] = COND(STORE_IX_TOKEN, "status", 0, {.b = "final"});
		plan_ok(f, "patient+status sorted", &q,
			"ix_reference_target (type=? AND param=? AND target_id=? AND target_type=?)");
		plan_ok(f, "status probe", &q, "SEARCH x3 USING PRIMARY KEY (rid=?)");
		/* every filter kind behind the patient driver is a probe by rid */
		two[1] = COND(STORE_IX_DATE, "date", 0, {.cmp = STORE_CMP_GE, .lo = T0, .hi = T0});
		plan_ok(f, "date probe", &q, "USING PRIMARY KEY (rid=?)");
		two[1] = MISSING(STORE_IX_QUANTITY, "value-quantity", true);
		plan_ok(f, "missing probe", &q, "USING PRIMARY KEY (rid=?)");
		two[1] = ((struct store_cond){.kind = STORE_IX_REFERENCE, .param = "subject",
					      .chain_type = "Patient", .chain = &name});
		plan_ok(f, "chain probe", &q, "sqlite_autoindex_resource_1 (type=? AND id=?)");
		/* a later page: the cursor does not change the plan's shape */
		q.cursor = (struct store_cursor){.set = true, .snapshot_rid = 10, .rid = 1};
		plan_ok(f, "second page", &q, "ix_reference_target");
	}
	/*
	 * a name prefix of three characters or more: rid order from
	 * ix_string_pre, no sort; shorter, the norm range and a sort
	 */
	{
		struct store_cond two = COND(STORE_IX_STRING, "name", 0, {.a = "sm"});
		struct store_cond cjk = COND(STORE_IX_STRING, "name", 0, {.a = "李小龙"});
		struct store_query q = {.type = "Patient", .conds = &name, .nconds = 1, .limit = 20};
		struct buf out = BUF_INIT(1 << 16), sql = BUF_INIT(1 << 16);
		struct ctx c = CTX_INIT;

		plan_ok(f, "Patient?name=smi", &q, "COVERING INDEX ix_string_pre (type=? AND param=? AND <expr>=?)");
		assert_int_equal(store_search_explain(f->s, &q, &out, &sql, &c), ERR_OK);
		assert_null(strstr(out.data, "TEMP B-TREE"));
		q.conds = &cjk;
		plan_ok(f, "Patient?name=李小龙", &q, "COVERING INDEX ix_string_pre (type=? AND param=? AND <expr>=?)");
		q.conds = &two;
		plan_ok(f, "Patient?name=sm", &q, "ix_string_norm (type=? AND param=? AND norm>? AND norm<?)");
		buf_release(&out);
		buf_release(&sql);
	}
	/* a patient's appointments from a day on, unsorted: rid order from the index, no sort */
	{
		struct store_cond two[2] = {COND(STORE_IX_REFERENCE, "actor", 0, {.a = "Patient", .b = "p1"}),
					    COND(STORE_IX_DATE, "date", 0, {.cmp = STORE_CMP_GE, .lo = T0, .hi = T0})};
		struct store_query q = {.type = "Appointment", .conds = two, .nconds = 2, .limit = 20};
		struct buf out = BUF_INIT(1 << 16), sql = BUF_INIT(1 << 16);
		struct ctx c = CTX_INIT;

		plan_ok(f, "appointments from a day", &q,
			"COVERING INDEX ix_reference_patient_rid (type=? AND param=? AND target_id=?)");
		assert_int_equal(store_search_explain(f->s, &q, &out, &sql, &c), ERR_OK);
		assert_null(strstr(out.data, "TEMP B-TREE"));
		buf_release(&out);
		buf_release(&sql);
	}
	/* no condition at all: the type index, in rid order */
	{
		struct store_query q = {.type = "Observation", .limit = 20};
		plan_ok(f, "type only", &q, "resource_type_live (type=? AND deleted=?)");
	}
}

/* ---- bad queries ---- */

static void test_invalid(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct store_cond ok = COND(STORE_IX_TOKEN, "code", 0, {.b = "x"});
	struct store_sort by_ref = SORT_P(STORE_IX_REFERENCE, "subject", false);
	static struct store_cond many[129];
	static struct store_match alts[1024];
	static char longs[1024][64];
	bool more = true;
	int64_t total = 7;

#define BAD(q_) do { \
	ctx_clear(&c); \
	assert_int_equal(store_search(f->s, &(q_), collect, NULL, &more, &total, &c), ERR_INVALID); \
	assert_false(more); \
	assert_int_equal(total, -1); \
} while (0)
	BAD(((struct store_query){.limit = 10}));
	BAD(((struct store_query){.type = "", .limit = 10}));
	BAD(((struct store_query){.type = "Observation", .limit = -1}));
	BAD(((struct store_query){.type = "Observation", .limit = 10, .backward = true}));
	BAD(((struct store_query){.patient = "p1", .conds = &ok, .nconds = 1, .limit = 10}));
	BAD(((struct store_query){.type = "Observation", .conds = &ok, .nconds = 1, .sort = &by_ref,
				  .nsort = 1, .limit = 10}));
	BAD(((struct store_query){.type = "Observation", .limit = 10,
				  .conds = &(struct store_cond){.kind = STORE_IX_TOKEN, .param = "code"},
				  .nconds = 1}));
	BAD(((struct store_query){.type = "Observation", .limit = 10,
				  .conds = &COND(STORE_IX_STRING, "name", STORE_MOD_NOT, {.a = "x"}),
				  .nconds = 1}));
	BAD(((struct store_query){.type = "Observation", .limit = 10,
				  .conds = &COND(STORE_IX_DATE, "date", 0, {.lo = 5, .hi = 4}),
				  .nconds = 1}));
	BAD(((struct store_query){.type = "Observation", .limit = 10,
				  .conds = &COND(STORE_IX_NUMBER, "n", 0, {.num = NAN}), .nconds = 1}));
	for (int i = 0; i < 129; i++)
		many[i] = ok;
	BAD(((struct store_query){.type = "Observation", .conds = many, .nconds = 129, .limit = 10}));
	assert_non_null(strstr(c.msg, "too complex"));
	/* too much SQL: 64 conds of 1024 long alternatives */
	for (int i = 0; i < 1024; i++) {
		snprintf(longs[i], sizeof(longs[i]), "code-%04d-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		alts[i] = (struct store_match){.a = "http://loinc.org", .b = longs[i]};
	}
	for (int i = 0; i < 64; i++)
		many[i] = (struct store_cond){.kind = STORE_IX_TOKEN, .param = "code", .m = alts, .nm = 1024};
	BAD(((struct store_query){.type = "Observation", .conds = many, .nconds = 64, .limit = 10}));
	assert_non_null(strstr(c.msg, "search too complex"));
	/* many alternatives within the caps still work */
	many[0].nm = 200;
	{
		struct store_query q = {.type = "Observation", .conds = many, .nconds = 1, .limit = 10};
		ctx_clear(&c);
		assert_int_equal(store_search(f->s, &q, collect, NULL, &more, NULL, &c), ERR_OK);
	}
	ctx_clear(&c);
	assert_int_equal(store_include(f->s, NULL, 1, NULL, NULL, NULL, NULL, collect, NULL, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_revinclude(f->s, "Patient", (const char *[]){""}, 1, "Observation",
					  NULL, 10, NULL, collect, NULL, &c), ERR_INVALID);
#undef BAD
}

/* ---- failures and callbacks ---- */

/* The first hit takes 5 ms (as a slow disk or a busy machine would); count them all. */
static int slow_first(void *arg, const struct store_hit *h)
{
	int *n = arg;

	(void)h;
	if ((*n)++ == 0)
		usleep(5000);
	return 0;
}

/*
 * store_search_time_max(): a search past its time limit stops with
 * ERR_TOOBIG, whatever it had delivered; without a limit, or with a
 * generous one, the same search completes.  Includes are limited too.
 */
static void test_time_limit(void **state)
{
	struct fx *f = *state;
	struct store_query q = {.type = "Observation", .limit = 1000, .total = STORE_TOTAL_ACCURATE};
	struct ctx c = CTX_INIT;
	bool more = false;
	int64_t total = 0;
	int n = 0;

	for (int i = 0; i < 600; i++) {
		char id[16];
		snprintf(id, sizeof(id), "slow%03d", i);
		PUT(f, "Observation", id, TOK("code", NULL, "c", NULL), STR("name", "slow", "slow"));
	}
	store_search_time_max(f->s, 1);
	assert_int_equal(store_search(f->s, &q, slow_first, &n, &more, &total, &c), ERR_TOOBIG);
	assert_non_null(strstr(c.msg, "longer than the search time limit (1 ms)"));
	assert_true(n >= 1 && n < 600);
	/* the connection is fine afterwards, and the limit ends with the search */
	ctx_clear(&c);
	n = 0;
	store_search_time_max(f->s, 60000);
	assert_int_equal(store_search(f->s, &q, slow_first, &n, &more, &total, &c), ERR_OK);
	assert_int_equal(n, 600);
	assert_int_equal(total, 600);
	n = 0;
	store_search_time_max(f->s, 0);
	assert_int_equal(store_search(f->s, &q, slow_first, &n, &more, &total, &c), ERR_OK);
	assert_int_equal(n, 600);
	/* a write after an interrupted search works (SELECTs roll nothing back) */
	store_search_time_max(f->s, 1);
	n = 0;
	assert_int_equal(store_search(f->s, &q, slow_first, &n, &more, &total, &c), ERR_TOOBIG);
	ctx_clear(&c);
	PUT(f, "Observation", "after", TOK("code", NULL, "c", NULL));
	store_search_time_max(f->s, 0);
}

static int stop_fn(void *arg, const struct store_hit *h)
{
	(void)arg;
	(void)h;
	return ERR_CONFLICT;
}

static int nested_fn(void *arg, const struct store_hit *h)
{
	struct fx *f = arg;
	struct store_query q = {.type = "Observation", .limit = 1};
	struct store_resource r;
	struct ctx c = CTX_INIT;

	/* reading is fine, writing and searching again are not */
	store_resource_init(&r);
	assert_int_equal(store_get(f->s, h->res->type, h->res->id, 0, &r, &c), ERR_OK);
	store_resource_release(&r);
	assert_int_equal(store_search(f->s, &q, collect, NULL, NULL, NULL, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(store_begin(f->s, &c), ERR_INVALID);
	return 0;
}

static void test_faults_and_callbacks(void **state)
{
	struct fx *f = *state;
	struct store_query q = {.type = "Observation", .limit = 2, .total = STORE_TOTAL_ACCURATE};
	struct ctx c = CTX_INIT;
	bool more;
	int64_t total;

	for (int i = 0; i < 5; i++) {
		char id[8];
		snprintf(id, sizeof(id), "o%d", i);
		PUT(f, "Observation", id, TOK("code", NULL, "c", NULL));
	}
	assert_int_equal(store_search(f->s, &q, stop_fn, NULL, &more, &total, &c), ERR_CONFLICT);
	ctx_clear(&c);
	assert_int_equal(store_search(f->s, &q, nested_fn, f, &more, &total, &c), ERR_OK);

	/*
	 * Each statement step of a search fails in turn (begin, count, the
	 * page's three steps: two rows and the one that says more exist):
	 * a clean error, also after rows were delivered.
	 */
	for (long n = 1; n <= 6; n++) {
		struct got g;
		enum err e;

		memset(&g, 0, sizeof(g));
		ctx_clear(&c);
		store_test_fault(f->s, n, STORE_FAULT_BUSY);
		e = store_search(f->s, &q, collect, &g, &more, &total, &c);
		store_test_fault(f->s, 0, STORE_FAULT_NONE);
		assert_int_equal(e, n <= 5 ? ERR_BUSY : ERR_OK);
		/* and the next search works */
		ctx_clear(&c);
		memset(&g, 0, sizeof(g));
		assert_int_equal(store_search(f->s, &q, collect, &g, &more, &total, &c), ERR_OK);
		assert_int_equal(g.n, 2);
		assert_int_equal(total, 5);
	}
	/* more distinct statements than the cache holds: evictions are clean */
	for (int i = 0; i < 150; i++) {
		struct store_match ms[8];
		struct store_cond cd = {.kind = STORE_IX_TOKEN, .param = "code", .m = ms,
					.nm = (size_t)(i % 8) + 1};
		struct store_query qq = {.type = "Observation", .conds = &cd, .nconds = 1,
					 .limit = 1 + i / 8};
		memset(ms, 0, sizeof(ms));
		for (int k = 0; k < 8; k++)
			ms[k].b = "c";
		if (i % 3 == 0)
			cd.mod = STORE_MOD_NOT;
		assert_int_equal(store_search(f->s, &qq, NULL, NULL, &more, NULL, &c), ERR_OK);
	}
	/* include and revinclude fail cleanly too */
	{
		int64_t rid = 1;
		const char *id = "o1";

		store_test_fault(f->s, 1, STORE_FAULT_BUSY);
		assert_int_equal(store_include(f->s, &rid, 1, NULL, NULL, NULL, NULL, collect, NULL, &c),
				 ERR_BUSY);
		store_test_fault(f->s, 1, STORE_FAULT_BUSY);
		assert_int_equal(store_revinclude(f->s, "Patient", &id, 1, "Observation", NULL, 5, NULL,
						  collect, NULL, &c), ERR_BUSY);
		store_test_fault(f->s, 0, STORE_FAULT_NONE);
	}
	/* a search inside the caller's write transaction sees its writes */
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	PUT(f, "Observation", "tx", TOK("code", NULL, "c", NULL));
	{
		struct got g;
		memset(&g, 0, sizeof(g));
		q.limit = 10;
		assert_int_equal(store_search(f->s, &q, collect, &g, &more, &total, &c), ERR_OK);
		assert_int_equal(total, 6);
	}
	store_rollback(f->s);
}

/* ---- the version cache ---- */

struct jsons {
	int n;
	char json[8][256];
};

static int collect_json(void *arg, const struct store_hit *h)
{
	struct jsons *j = arg;

	assert_true(j->n < 8);
	str_copy(j->json[j->n++], h->res->json.data, sizeof(j->json[0]));
	return 0;
}

static void search_json(struct fx *f, const struct store_query *q, struct jsons *j)
{
	struct ctx c = CTX_INIT;
	bool more = false;

	memset(j, 0, sizeof(*j));
	if (store_search(f->s, q, collect_json, j, &more, NULL, &c))
		fail_msg("search: %s", c.msg);
}

static void test_version_cache(void **state)
{
	struct fx *f = *state;
	struct store_cond car = COND(STORE_IX_STRING, "name", 0, {.a = "car"});
	struct store_query q = {.type = "Patient", .conds = &car, .nconds = 1, .limit = 10};
	struct store_query comp = {.type = "Patient", .patient = "c1", .limit = 10};
	struct store_cache_stats st;
	struct buf out = BUF_INIT(1 << 16), sql = BUF_INIT(1 << 16);
	struct ctx c = CTX_INIT;
	struct jsons j;

	store_version_cache(f->s, 1 << 20);
	PUTP(f, "Patient", "c1", "c1", STR("name", "carter", "Carter"));
	PUT(f, "Patient", "c2", STR("name", "carson", "Carson"));

	/*
	 * The first page offers its versions, the second fills the cache
	 * (the second offer admits), the third is served from it, alike.
	 */
	search_json(f, &q, &j);
	assert_int_equal(j.n, 2);
	assert_string_equal(j.json[0], "{\"resourceType\":\"Patient\",\"id\":\"c1\",\"v\":1}");
	store_version_cache_stats(f->s, &st);
	assert_int_equal(st.puts, 0);
	search_json(f, &q, &j);
	store_version_cache_stats(f->s, &st);
	assert_int_equal(st.puts, 2);
	assert_int_equal(st.hits, 0);
	search_json(f, &q, &j);
	assert_int_equal(j.n, 2);
	assert_string_equal(j.json[0], "{\"resourceType\":\"Patient\",\"id\":\"c1\",\"v\":1}");
	assert_string_equal(j.json[1], "{\"resourceType\":\"Patient\",\"id\":\"c2\",\"v\":1}");
	store_version_cache_stats(f->s, &st);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.entries, 2);

	/* an update is a new version (a new seq): the page shows it */
	PUTP(f, "Patient", "c1", "c1", STR("name", "carter", "Carter"));
	search_json(f, &q, &j);
	assert_string_equal(j.json[0], "{\"resourceType\":\"Patient\",\"id\":\"c1\",\"v\":2}");
	del(f, "Patient", "c2");
	search_json(f, &q, &j);
	assert_int_equal(j.n, 1);

	/*
	 * A version read inside the caller's own transaction is not cached:
	 * rolled back, its seq goes to the next version written, which the
	 * page must show instead.
	 */
	store_version_cache_stats(f->s, &st);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	PUT(f, "Patient", "c3", STR("name", "carla", "Carla"));
	search_json(f, &q, &j); /* twice: offered twice, it would be admitted */
	search_json(f, &q, &j);
	assert_int_equal(j.n, 2);
	assert_string_equal(j.json[1], "{\"resourceType\":\"Patient\",\"id\":\"c3\",\"v\":1}");
	{
		struct store_cache_stats in_tx;

		store_version_cache_stats(f->s, &in_tx);
		assert_int_equal(in_tx.puts, st.puts);
	}
	store_rollback(f->s);
	PUT(f, "Patient", "c4", STR("name", "carmen", "Carmen"));
	search_json(f, &q, &j);
	assert_int_equal(j.n, 2);
	assert_string_equal(j.json[1], "{\"resourceType\":\"Patient\",\"id\":\"c4\",\"v\":1}");
	search_json(f, &q, &j);
	assert_string_equal(j.json[1], "{\"resourceType\":\"Patient\",\"id\":\"c4\",\"v\":1}");

	/* searches across patients use it; a patient's own pages do not */
	assert_int_equal(store_search_explain(f->s, &q, &out, &sql, &c), ERR_OK);
	assert_non_null(strstr(sql.data, "veranda_cached"));
	buf_reset(&sql);
	assert_int_equal(store_search_explain(f->s, &comp, &out, &sql, &c), ERR_OK);
	assert_null(strstr(sql.data, "veranda_cached"));
	store_version_cache_stats(f->s, &st);
	search_json(f, &comp, &j);
	assert_int_equal(j.n, 1);
	{
		struct store_cache_stats after;

		store_version_cache_stats(f->s, &after);
		assert_int_equal(after.hits + after.misses, st.hits + st.misses);
		assert_int_equal(after.puts, st.puts);
	}
	buf_release(&out);
	buf_release(&sql);
}

/* ---- concurrency: writers queue on the write lock, readers search meanwhile ---- */

struct worker {
	struct fx *f;
	int no;
	int errors;
	char msg[512];
	int64_t worst_us;
};

static void *writer_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 40; i++) {
		struct store_ix_row ix[1] = {TOK("code", NULL, "w", NULL)};
		char id[32], json[128];
		struct ctx c = CTX_INIT;
		struct store_put p;
		int64_t t0 = clock_mono_us(), dt;

		snprintf(id, sizeof(id), "w%d-%d", w->no, i);
		snprintf(json, sizeof(json), "{\"resourceType\":\"Observation\",\"id\":\"%s\"}", id);
		p = (struct store_put){.op = STORE_PUT, .type = "Observation", .id = id,
				       .expect_version = 0, .version = 1, .last_updated = T0,
				       .json = json, .json_len = strlen(json), .ix = ix, .nix = 1};
		if (i % 10 == 9) {
			/* some writes inside explicit transactions */
			if (store_begin(w->f->s, &c) || store_put(w->f->s, &p, &c) ||
			    store_commit(w->f->s, &c)) {
				w->errors++;
				str_copy(w->msg, c.msg, sizeof(w->msg));
				store_rollback(w->f->s);
			}
		} else if (store_put(w->f->s, &p, &c)) {
			w->errors++;
			str_copy(w->msg, c.msg, sizeof(w->msg));
		}
		dt = clock_mono_us() - t0;
		if (dt > w->worst_us)
			w->worst_us = dt;
	}
	store_thread_done(w->f->s);
	return NULL;
}

static void *reader_main(void *arg)
{
	struct worker *w = arg;
	struct store_cond cd = COND(STORE_IX_TOKEN, "code", 0, {.b = "w"});
	struct store_query q = {.type = "Observation", .conds = &cd, .nconds = 1, .limit = 5,
				.total = STORE_TOTAL_ACCURATE};

	for (int i = 0; i < 60; i++) {
		struct ctx c = CTX_INIT;
		bool more;
		int64_t total;

		if (store_search(w->f->s, &q, NULL, NULL, &more, &total, &c)) {
			w->errors++;
			str_copy(w->msg, c.msg, sizeof(w->msg));
		}
	}
	store_thread_done(w->f->s);
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	struct ctx c = CTX_INIT;
	struct worker w[6];
	pthread_t t[6];
	int64_t n = 0;

	/*
	 * A short busy timeout: writers that met SQLite's busy handler would
	 * fail with ERR_BUSY under this load; queued on the write lock they
	 * wait their turn instead.
	 */
	assert_int_equal(store_open(&s, f->url, 2000, &c), ERR_OK);
	store_close(f->s);
	f->s = s;
	for (int i = 0; i < 6; i++) {
		w[i] = (struct worker){.f = f, .no = i};
		assert_int_equal(pthread_create(&t[i], NULL, i < 4 ? writer_main : reader_main, &w[i]),
				 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		if (w[i].errors)
			fail_msg("worker %d: %d errors, last: %s", i, w[i].errors, w[i].msg);
	}
	assert_int_equal(store_count(f->s, "Observation", &n, &c), ERR_OK);
	assert_int_equal(n, 160);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_string, setup, teardown),
		cmocka_unit_test_setup_teardown(test_date, setup, teardown),
		cmocka_unit_test_setup_teardown(test_number_quantity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reference_uri, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_has, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compartment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_compartment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patient_token_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages_read_current_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_text_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include_confined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_explain_uses_indexes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults_and_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
