/*
 * tests/unit/core/json.c - bounded JSON parsing and our serializer:
 * the byte-level depth scan, the depth/duplicate/UTF-8/trailing-garbage
 * rules, compact output that keeps key order and writes decimals in their
 * shortest exact form (or as the source wrote them, json_dump_buf_src),
 * and nst/JSONTestSuite (../shared/testdata, read
 * from the repository root; skipped with a message when absent).
 */
#include "unit.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "core/rand.h"

#define SUITE_DIR "../shared/testdata/json-test-suite/test_parsing"

/* ---- helpers ---- */

static json_t *parse_ok(const char *s)
{
	struct ctx c = CTX_INIT;
	json_t *v = json_parse_bounded(s, strlen(s), 64, &c);

	if (!v)
		fail_msg("'%s' rejected: %s", s, c.msg);
	assert_int_equal(c.code, ERR_OK);
	return v;
}

static void parse_bad(const char *s, size_t n, int depth, enum err want, const char *msg_part)
{
	struct ctx c = CTX_INIT;
	json_t *v = json_parse_bounded(s, n, depth, &c);

	if (v) {
		json_decref(v);
		fail_msg("'%.*s' accepted", (int)n, s);
	}
	if (c.code != want)
		fail_msg("'%.*s': code %d, want %d (%s)", (int)n, s, c.code, want, c.msg);
	if (msg_part && !strstr(c.msg, msg_part))
		fail_msg("'%.*s': message '%s' lacks '%s'", (int)n, s, c.msg, msg_part);
}

#define BAD(lit, want, part) parse_bad(lit, sizeof(lit) - 1, 64, want, part)

/* Dump 'v' compactly; the caller frees the result. */
static char *dump(const json_t *v)
{
	struct buf b = BUF_INIT(1 << 24);

	assert_int_equal(json_dump_buf(v, &b), ERR_OK);
	return buf_take(&b, NULL);
}

/* Parse 'in', dump it, compare with 'want' byte for byte, and re-parse. */
static void dump_is(const char *in, const char *want)
{
	json_t *v = parse_ok(in), *again;
	char *out = dump(v);

	if (strcmp(out, want) != 0)
		fail_msg("'%s' dumped as '%s', want '%s'", in, out, want);
	again = parse_ok(out);
	assert_true(json_equal(v, again));
	json_decref(again);
	json_decref(v);
	free(out);
}

/* ---- json_text_depth ---- */

static void depth_is(const char *s, int want)
{
	int got = json_text_depth(s, strlen(s));

	if (got != want)
		fail_msg("depth of '%s' is %d, want %d", s, got, want);
}

static void test_text_depth(void **state)
{
	(void)state;
	depth_is("", 0);
	depth_is("42", 0);
	depth_is("\"str\"", 0);
	depth_is("[]", 1);
	depth_is("{}", 1);
	depth_is("[[]]", 2);
	depth_is("[[],[[]],[]]", 3);
	depth_is("{\"a\":[{\"b\":[1]}],\"c\":{}}", 4);
	/* brackets inside strings do not count */
	depth_is("[\"]]]\"]", 1);
	depth_is("[\"[[[[\"]", 1);
	depth_is("{\"{[\":\"]}\"}", 1);
	/* an escaped quote does not end the string */
	depth_is("[\"a\\\"[[\"]", 1);
	depth_is("[\"\\\"\",[\"\\\"]\"]]", 2);
	/* an escaped backslash does not escape the closing quote */
	depth_is("[\"\\\\\",[1]]", 2);
	depth_is("[\"\\\\\\\"]\"]", 1);
	/* unbalanced: the parser will say why */
	depth_is("[", -1);
	depth_is("]", -1);
	depth_is("[]]", -1);
	depth_is("][", -1);
	depth_is("[\"]", -1);
	depth_is("{\"a\":\"}", -1);
	/* only n bytes are scanned */
	assert_int_equal(json_text_depth("[[]]]]]", 4), 2);
	assert_int_equal(json_text_depth("[[[", 0), 0);
}

/* ---- json_parse_bounded ---- */

static char *nested(int depth, const char *open, const char *inner, const char *close)
{
	size_t lo = strlen(open), lc = strlen(close), li = strlen(inner);
	char *s = malloc((size_t)depth * (lo + lc) + li + 1), *p = s;

	assert_non_null(s);
	for (int i = 0; i < depth; i++, p += lo)
		memcpy(p, open, lo);
	memcpy(p, inner, li);
	p += li;
	for (int i = 0; i < depth; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	return s;
}

static void test_depth_limit(void **state)
{
	struct ctx c = CTX_INIT;
	char *s;
	json_t *v;

	(void)state;
	/* exactly at the limit parses */
	s = nested(10, "[", "1", "]");
	v = json_parse_bounded(s, strlen(s), 10, &c);
	assert_non_null(v);
	json_decref(v);
	/* one over is ERR_TOOBIG, before any parsing */
	parse_bad(s, strlen(s), 9, ERR_TOOBIG, "depth 10 exceeds the limit of 9");
	free(s);

	s = nested(65, "{\"a\":", "{}", "}");
	parse_bad(s, strlen(s), 64, ERR_TOOBIG, "exceeds the limit of 64");
	v = json_parse_bounded(s, strlen(s), 66, &c);
	assert_non_null(v);
	json_decref(v);
	free(s);

	/* brackets inside strings are not nesting */
	s = "[\"[[[[[[[[[[[[[[[[[[[[[[[[\"]";
	v = json_parse_bounded(s, strlen(s), 1, &c);
	assert_non_null(v);
	json_decref(v);
	assert_int_equal(c.code, ERR_OK);

	/* very deep unbalanced input is rejected without exhausting the stack */
	s = nested(200000, "[", "", "");
	parse_bad(s, strlen(s), 64, ERR_INVALID, NULL);
	parse_bad(s, strlen(s), INT_MAX, ERR_INVALID, NULL);
	free(s);
	s = nested(100000, "[", "", "]");
	parse_bad(s, strlen(s), 64, ERR_TOOBIG, NULL);
	free(s);
}

static void test_rejects(void **state)
{
	(void)state;
	/* duplicate keys, at any level */
	BAD("{\"a\":1,\"a\":2}", ERR_INVALID, "duplicate");
	BAD("{\"a\":1,\"b\":{\"c\":1,\"c\":1}}", ERR_INVALID, "duplicate");
	BAD("[{\"x\":null,\"y\":0,\"x\":null}]", ERR_INVALID, "duplicate");
	/* the same key in different objects is fine */
	json_decref(parse_ok("[{\"a\":1},{\"a\":2}]"));
	/* keys differing only by escape spelling are the same key */
	BAD("{\"a\":1,\"\\u0061\":2}", ERR_INVALID, "duplicate");

	/* invalid UTF-8 in strings and keys */
	BAD("[\"\xff\"]", ERR_INVALID, NULL);
	BAD("[\"\xc0\xaf\"]", ERR_INVALID, NULL);            /* overlong */
	BAD("[\"\xed\xa0\x80\"]", ERR_INVALID, NULL);        /* surrogate */
	BAD("[\"\xf4\x90\x80\x80\"]", ERR_INVALID, NULL);    /* > U+10FFFF */
	BAD("[\"\xe2\x82\"]", ERR_INVALID, NULL);            /* truncated */
	BAD("{\"\xe9\":1}", ERR_INVALID, NULL);              /* Latin-1 key */
	BAD("[\"\\ud800\"]", ERR_INVALID, NULL);             /* lone surrogate escape */
	BAD("[\"\\udc00\\ud800\"]", ERR_INVALID, NULL);

	/* trailing garbage */
	BAD("{} x", ERR_INVALID, NULL);
	BAD("{}{}", ERR_INVALID, NULL);
	BAD("[1]]", ERR_INVALID, NULL);
	BAD("[1],", ERR_INVALID, NULL);
	BAD("1 2", ERR_INVALID, NULL);
	BAD("{}\0", ERR_INVALID, NULL);
	/* trailing whitespace is not garbage */
	json_decref(parse_ok("{} \n\t\r "));

	/* assorted malformed text */
	BAD("", ERR_INVALID, NULL);
	BAD(" ", ERR_INVALID, NULL);
	BAD("[1,]", ERR_INVALID, NULL);
	BAD("{\"a\"}", ERR_INVALID, NULL);
	BAD("{'a':1}", ERR_INVALID, NULL);
	BAD("[01]", ERR_INVALID, NULL);
	BAD("[NaN]", ERR_INVALID, NULL);
	BAD("[\"a\nb\"]", ERR_INVALID, NULL);
	BAD("[\"a\0b\"]", ERR_INVALID, NULL);
	/* a raw NUL byte anywhere, even where jansson would drop it */
	BAD("[1\0,2]", ERR_INVALID, "line 1 column 3: NUL byte");
	BAD("123\0", ERR_INVALID, "NUL byte");
	BAD("{\"a\":true\0}", ERR_INVALID, "NUL byte");
	BAD("[\n1,\n2\0]", ERR_INVALID, "line 3 column 2: NUL byte");
	/* \u0000 is refused: C strings downstream would cut the value short */
	BAD("[\"a\\u0000b\"]", ERR_INVALID, NULL);
	BAD("{\"a\\u0000\":1}", ERR_INVALID, NULL);

	/* the message names the line and column */
	BAD("{\n  \"a\": 1,\n  \"b\": tru\n}", ERR_INVALID, "line 3");
}

static void test_accepts(void **state)
{
	json_t *v;

	(void)state;
	/* any JSON value at the top level (RFC 8259) */
	v = parse_ok("42");
	assert_true(json_is_integer(v) && json_integer_value(v) == 42);
	json_decref(v);
	v = parse_ok("\"text\"");
	assert_string_equal(json_string_value(v), "text");
	json_decref(v);
	v = parse_ok(" null ");
	assert_true(json_is_null(v));
	json_decref(v);
	v = parse_ok("-0.5");
	assert_true(json_is_real(v));
	json_decref(v);

	/* only n bytes are read */
	{
		struct ctx c = CTX_INIT;
		v = json_parse_bounded("[1]garbage", 3, 8, &c);
		assert_non_null(v);
		assert_int_equal(json_array_size(v), 1);
		json_decref(v);
	}

	v = parse_ok("{\"name\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\",\"esc\":\"\\u00e9\\ud83d\\ude00\"}");
	assert_string_equal(json_get_str(v, "name"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
	assert_string_equal(json_get_str(v, "esc"), "\xc3\xa9\xf0\x9f\x98\x80");
	/* json_get_str: NULL when missing, of another type, or not an object */
	assert_null(json_get_str(v, "missing"));
	json_decref(v);
	v = parse_ok("{\"n\":1,\"a\":[\"x\"]}");
	assert_null(json_get_str(v, "n"));
	assert_null(json_get_str(v, "a"));
	assert_null(json_get_str(json_object_get(v, "a"), "x"));
	assert_null(json_get_str(NULL, "x"));
	json_decref(v);
}

/* ---- json_dump_buf ---- */

static void test_dump_compact(void **state)
{
	(void)state;
	dump_is(" { \"resourceType\" : \"Patient\" ,\n \"active\" : true , \"deceased\": false,"
		"\n\t\"x\" : null , \"name\" : [ { \"given\" : [ \"A\" , \"B\" ] } ] , \"e\":{},\"a\":[] } ",
		"{\"resourceType\":\"Patient\",\"active\":true,\"deceased\":false,\"x\":null,"
		"\"name\":[{\"given\":[\"A\",\"B\"]}],\"e\":{},\"a\":[]}");
	dump_is("[]", "[]");
	dump_is("{}", "{}");
	dump_is("\"s\"", "\"s\"");
	dump_is("[[[[]]],{\"a\":{\"b\":{}}}]", "[[[[]]],{\"a\":{\"b\":{}}}]");
}

static void test_dump_key_order(void **state)
{
	json_t *v;
	char *out;

	(void)state;
	dump_is("{\"z\":1,\"a\":2,\"m\":3,\"b\":{\"y\":1,\"c\":2}}",
		"{\"z\":1,\"a\":2,\"m\":3,\"b\":{\"y\":1,\"c\":2}}");
	/* and of objects built in code */
	v = json_object();
	for (int i = 30; i > 0; i--) {
		char key[8];
		snprintf(key, sizeof(key), "k%02d", i);
		json_object_set_new(v, key, json_integer(i));
	}
	out = dump(v);
	assert_true(strncmp(out, "{\"k30\":30,\"k29\":29,\"k28\":28,", 28) == 0);
	assert_non_null(strstr(out, ",\"k01\":1}"));
	free(out);
	json_decref(v);
}

static void test_dump_numbers(void **state)
{
	(void)state;
	/* FHIR decimals keep the form they were written in when it is exact */
	dump_is("[36.9]", "[36.9]");
	dump_is("[39.840390445227904]", "[39.840390445227904]");
	dump_is("[-104.98481047409584]", "[-104.98481047409584]");
	dump_is("[0.1,0.2,0.3]", "[0.1,0.2,0.3]");
	dump_is("[98.6,1.1,2.675]", "[98.6,1.1,2.675]");
	dump_is("[0.30000000000000004]", "[0.30000000000000004]");
	/* a real stays a real */
	dump_is("[5.0]", "[5.0]");
	dump_is("[-5.0]", "[-5.0]");
	dump_is("[0.0]", "[0.0]");
	dump_is("[-0.0]", "[-0.0]");
	dump_is("[100.0]", "[100.0]");
	dump_is("[5e0]", "[5.0]");
	dump_is("[1E2]", "[100.0]");
	/* integers stay integers */
	dump_is("[5,-5,0,-0]", "[5,-5,0,0]");
	dump_is("[9223372036854775807,-9223372036854775808]", "[9223372036854775807,-9223372036854775808]");
	/* exponents where %g uses them; still JSON numbers that read back */
	dump_is("[1e300]", "[1e+300]");
	dump_is("[1.5e-300]", "[1.5e-300]");
	dump_is("[1e-7]", "[1e-07]");
	dump_is("[1.7976931348623157e308]", "[1.7976931348623157e+308]");
	/* subnormals carry fewer digits: still the shortest form */
	dump_is("[5e-324]", "[5e-324]");
	dump_is("[-1e-320]", "[-1e-320]");
	dump_is("[2.225e-311]", "[2.225e-311]");
	dump_is("[123456789012345678901234567890.0]", "[1.2345678901234568e+29]");
	/* integers beyond 64 bits are refused rather than rounded */
	BAD("[123456789012345678901234567890]", ERR_INVALID, "too big integer");
}

/* Random doubles: the output reads back to the very same bits. */
static void test_dump_reals_exact(void **state)
{
	struct ctx c = CTX_INIT;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		uint64_t bits = rand_u64();
		double d, back;
		json_t *v, *again;
		char *out;

		memcpy(&d, &bits, sizeof(d));
		if (!isfinite(d))
			continue;
		v = json_real(d);
		out = dump(v);
		again = json_parse_bounded(out, strlen(out), 4, &c);
		if (!again || !json_is_real(again))
			fail_msg("%.17g dumped as '%s' which does not read back as a real", d, out);
		back = json_real_value(again);
		if (memcmp(&back, &d, sizeof(d)) != 0)
			fail_msg("%.17g dumped as '%s', read back as %.17g", d, out, back);
		json_decref(again);
		json_decref(v);
		free(out);
	}
}

/* Short decimals come back in at most as many significant digits. */
static void test_dump_reals_shortest(void **state)
{
	(void)state;
	for (int i = 0; i < 20000; i++) {
		int digits = 1 + (int)(rand_u64() % 15);
		int exp10 = (int)(rand_u64() % 40) - 20;
		uint64_t mant = rand_u64() % 1000000000000000ULL;
		char in[64], *out;
		double d;
		json_t *v;
		int sig = 0;
		const char *p;

		snprintf(in, sizeof(in), "%.*e", digits - 1, (double)mant * pow(10, exp10 - 15));
		d = strtod(in, NULL);
		v = json_real(d);
		out = dump(v);
		/* significant digits: the mantissa without leading or trailing zeros */
		{
			char m[64];
			size_t k = 0, first, last;
			for (p = out; *p && *p != 'e'; p++)
				if (*p >= '0' && *p <= '9')
					m[k++] = *p;
			for (first = 0; first < k && m[first] == '0'; first++)
				;
			for (last = k; last > first && m[last - 1] == '0'; last--)
				;
			sig = (int)(last - first);
		}
		if (sig > digits && d != 0)
			fail_msg("'%s' (%.17g) dumped with %d digits: '%s'", in, d, sig, out);
		json_decref(v);
		free(out);
	}
}

static void test_dump_strings(void **state)
{
	json_t *v;
	char *out;

	(void)state;
	/* control characters are escaped, everything else passes */
	dump_is("[\"tab\\there\\nnew\\r\\u0001\\u001f\\b\\f\"]",
		"[\"tab\\there\\nnew\\r\\u0001\\u001f\\u0008\\u000c\"]");
	dump_is("[\"q\\\"b\\\\s\\/\"]", "[\"q\\\"b\\\\s/\"]");
	dump_is("[\"\\u007f\\u00e9\\u2028\"]", "[\"\x7f\xc3\xa9\xe2\x80\xa8\"]");
	dump_is("{\"k\\ney\\\"\":\"v\"}", "{\"k\\ney\\\"\":\"v\"}");
	dump_is("[\"\xf0\x9f\x98\x80\"]", "[\"\xf0\x9f\x98\x80\"]");

	/* every control character in a built value */
	v = json_array();
	for (int ch = 1; ch < 0x20; ch++) {
		char s[2] = {(char)ch, 0};
		json_array_append_new(v, json_string(s));
	}
	out = dump(v);
	for (const char *p = out; *p; p++)
		assert_true((unsigned char)*p >= 0x20);
	{
		struct ctx c = CTX_INIT;
		json_t *again = json_parse_bounded(out, strlen(out), 4, &c);
		assert_non_null(again);
		assert_true(json_equal(v, again));
		json_decref(again);
	}
	free(out);
	json_decref(v);
}

static void test_dump_cap(void **state)
{
	struct buf b = BUF_INIT(10);
	json_t *v = parse_ok("{\"long key\":\"long value\"}");

	(void)state;
	assert_int_equal(json_dump_buf(v, &b), ERR_TOOBIG);
	assert_true(b.len <= 10);
	buf_release(&b);
	/* json_dump_buf appends */
	buf_init(&b, 100);
	buf_adds(&b, "x=");
	assert_int_equal(json_dump_buf(v, &b), ERR_OK);
	assert_string_equal(b.data, "x={\"long key\":\"long value\"}");
	buf_release(&b);
	json_decref(v);
}

/* json_dump_buf_src(): numbers as the source wrote them, when they still match. */
static void src_dump_is(const char *in, json_t *v, const char *want)
{
	struct buf b = BUF_INIT(4096);
	struct ctx c = CTX_INIT;
	json_t *again;

	assert_int_equal(json_dump_buf_src(v, &b, in, in ? strlen(in) : 0), ERR_OK);
	if (strcmp(b.data, want) != 0)
		fail_msg("'%s' dumped as '%s', want '%s'", in ? in : "(null)", b.data, want);
	again = json_parse_bounded(b.data, b.len, 64, &c);
	assert_non_null(again);
	assert_true(json_equal(v, again));
	json_decref(again);
	buf_release(&b);
}

static void src_dump_prefix(const char *in, json_t *v, const char *want)
{
	struct buf b = BUF_INIT(4096);
	struct ctx c = CTX_INIT;
	json_t *again;

	assert_int_equal(json_dump_buf_src(v, &b, in, strlen(in)), ERR_OK);
	if (strncmp(b.data, want, strlen(want)) != 0)
		fail_msg("'%s' dumped as '%s', want it to start '%s'", in, b.data, want);
	again = json_parse_bounded(b.data, b.len, 64, &c);
	assert_non_null(again);
	assert_true(json_equal(v, again));
	json_decref(again);
	buf_release(&b);
}

static void test_dump_src(void **state)
{
	static const char in[] =
		"{ \"v\" : 1.50, \"t\":36.90,\"e\":1E2,\"i\":[-0, 7, 1.0e-3],\"s\":\"9.9\"}";
	json_t *v = parse_ok(in);

	(void)state;
	src_dump_is(in, v, "{\"v\":1.50,\"t\":36.90,\"e\":1E2,\"i\":[-0,7,1.0e-3],\"s\":\"9.9\"}");
	/* without a source: the shortest forms */
	src_dump_is(NULL, v, "{\"v\":1.5,\"t\":36.9,\"e\":100.0,\"i\":[0,7,0.001],\"s\":\"9.9\"}");
	/*
	 * Once the tree's numbers stop matching the source (a number changed
	 * or added in code), the dump stays correct: numbers before keep their
	 * text, the changed one is written in its shortest form, and nothing
	 * takes a source token of another value.
	 */
	json_object_set_new(v, "t", json_real(37.25));
	src_dump_prefix(in, v, "{\"v\":1.50,\"t\":37.25,");
	json_object_set_new(v, "t", json_real(36.9));
	json_array_insert_new(json_object_get(v, "i"), 0, json_integer(5));
	src_dump_prefix(in, v, "{\"v\":1.50,\"t\":36.90,\"e\":1E2,\"i\":[5,");
	json_decref(v);
}

/* json_src_offsets(): each Bundle entry's resource dumps with its own source numbers. */
static void test_src_offsets(void **state)
{
	static const char in[] =
		"{\"total\":3,\"entry\":[{\"n\":1.0,\"resource\":{\"a\":1.50,\"b\":[2.0E1]}},"
		"{\"request\":{\"url\":\"x?v=9.90\"}},{\"search\":{\"score\":0.50},\"resource\":{\"c\":0.010}}]}";
	json_t *v = parse_ok(in), *entries = json_object_get(v, "entry");
	size_t offs[3];

	(void)state;
	json_src_offsets(v, "entry", "resource", in, strlen(in), offs, 3);
	src_dump_is(in + offs[0], json_object_get(json_array_get(entries, 0), "resource"),
		    "{\"a\":1.50,\"b\":[2.0E1]}");
	src_dump_is(in + offs[2], json_object_get(json_array_get(entries, 2), "resource"), "{\"c\":0.010}");
	/* no source: offsets 0, and the dump falls back to the shortest forms */
	json_src_offsets(v, "entry", "resource", NULL, 0, offs, 3);
	assert_int_equal(offs[2], 0);
	json_decref(v);
}

/* ---- JSONTestSuite ---- */

/*
 * y_* files we reject on purpose, each for a stated rule.  They are
 * checked to stay rejected, so a change of rule is noticed here.
 */
static const struct {
	const char *name, *why;
} policy_rejects[] = {
	{"y_object_duplicated_key.json", "duplicate"},
	{"y_object_duplicated_key_and_value.json", "duplicate"},
	{"y_string_null_escape.json", "\\u0000"},
	{"y_object_escaped_null_in_key.json", "NUL"},
};

static const char *policy_reason(const char *name)
{
	for (size_t i = 0; i < sizeof(policy_rejects) / sizeof(policy_rejects[0]); i++)
		if (strcmp(policy_rejects[i].name, name) == 0)
			return policy_rejects[i].why;
	return NULL;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT(1 << 24);
	char chunk[8192];
	size_t n;

	assert_non_null(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	assert_int_equal(ferror(f), 0);
	fclose(f);
	assert_int_equal(b.err, ERR_OK);
	return buf_take(&b, len);
}

static void test_suite(void **state)
{
	char dir[PATH_MAX + 64];
	DIR *d;
	struct dirent *de;
	int y = 0, n = 0, i = 0, policy = 0, i_accepted = 0;

	(void)state;
	if (!unit_data_dir(SUITE_DIR, dir, sizeof(dir))) {
		print_message("skipping: %s not found (run from the repository root inside the "
			      "workplace; see ../shared/testdata/README.md)\n", SUITE_DIR);
		skip();
		return;
	}
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[sizeof(dir) + 300];
		struct ctx c = CTX_INIT;
		size_t len;
		char *text;
		json_t *v;
		char kind = de->d_name[0];

		if (!strstr(de->d_name, ".json") || (kind != 'y' && kind != 'n' && kind != 'i'))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		text = read_all(path, &len);
		v = json_parse_bounded(text, len, 64, &c);
		/* a failure always carries a code and a message */
		if (!v && (c.code == ERR_OK || !c.msg[0]))
			fail_msg("%s: rejected without an error", de->d_name);
		if (v && c.code != ERR_OK)
			fail_msg("%s: accepted but an error was recorded", de->d_name);

		if (kind == 'y') {
			const char *why = policy_reason(de->d_name);
			y++;
			if (why) {
				policy++;
				if (v || !strstr(c.msg, why))
					fail_msg("%s: expected rejection for '%s', got %s", de->d_name, why,
						 v ? "acceptance" : c.msg);
			} else if (!v) {
				fail_msg("%s must parse: %s", de->d_name, c.msg);
			}
		} else if (kind == 'n') {
			n++;
			if (v)
				fail_msg("%s must be rejected", de->d_name);
		} else {
			i++;
			i_accepted += v != NULL;
		}

		/* whatever parses survives a dump and re-parse unchanged */
		if (v) {
			struct buf b = BUF_INIT(1 << 24);
			struct ctx c2 = CTX_INIT;
			json_t *again;

			if (json_dump_buf(v, &b) != ERR_OK)
				fail_msg("%s: dump failed", de->d_name);
			again = json_parse_bounded(b.data, b.len, 64, &c2);
			if (!again)
				fail_msg("%s: dump '%s' does not re-parse: %s", de->d_name, b.data, c2.msg);
			if (!json_equal(v, again))
				fail_msg("%s: dump '%s' differs from the input", de->d_name, b.data);
			json_decref(again);
			/* and with the numbers copied from the source */
			buf_reset(&b);
			if (json_dump_buf_src(v, &b, text, len) != ERR_OK)
				fail_msg("%s: source dump failed", de->d_name);
			again = json_parse_bounded(b.data, b.len, 64, &c2);
			if (!again || !json_equal(v, again))
				fail_msg("%s: source dump '%s' differs from the input", de->d_name, b.data);
			json_decref(again);
			buf_release(&b);
		}
		json_decref(v);
		free(text);
	}
	closedir(d);
	print_message("json-test-suite: %d y (%d rejected by rule), %d n, %d i (%d accepted)\n",
		      y, policy, n, i, i_accepted);
	assert_int_equal(policy, (int)(sizeof(policy_rejects) / sizeof(policy_rejects[0])));
	assert_true(y > 90 && n > 150 && i > 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_depth),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_dump_compact),
		cmocka_unit_test(test_dump_key_order),
		cmocka_unit_test(test_dump_numbers),
		cmocka_unit_test(test_dump_reals_exact),
		cmocka_unit_test(test_dump_reals_shortest),
		cmocka_unit_test(test_dump_strings),
		cmocka_unit_test(test_dump_cap),
		cmocka_unit_test(test_dump_src),
		cmocka_unit_test(test_src_offsets),
		cmocka_unit_test(test_suite),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
