/*
 * tests/unit/core/test_mustache.c - the template engine: every case of the
 * required mustache spec files (../shared/testdata/mustache-spec, skipped
 * with a message when absent), then what the spec leaves to us: escaping
 * of ', number and boolean forms, truthiness, compile errors with line
 * numbers, the nesting limit on self-including partials, the work budget,
 * the output cap, partial linking and replacement, and one set rendered
 * from several threads at once.
 */
#include "unit.h"

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/mustache.h"

#define SPEC_DIR "../shared/testdata/mustache-spec"
#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static json_t *view_of(const char *text)
{
	struct ctx c = CTX_INIT;
	json_t *v;

	if (!text)
		return NULL;
	v = json_parse_bounded(text, strlen(text), 64, &c);
	if (!v)
		fail_msg("bad view '%s': %s", text, c.msg);
	return v;
}

static void add_ok(struct mustache_set *set, const char *name, const char *src)
{
	struct ctx c = CTX_INIT;

	if (mustache_set_add(set, name, src, strlen(src), &c) != ERR_OK)
		fail_msg("'%s' did not compile: %s", src, c.msg);
}

/* Render 'name' against the JSON text 'view'; the caller frees the result. */
static char *render(const struct mustache_set *set, const char *name, const char *view)
{
	struct buf out = BUF_INIT(1 << 20);
	struct ctx c = CTX_INIT;
	json_t *v = view_of(view);

	if (mustache_set_render(set, name, v, &out, &c) != ERR_OK)
		fail_msg("rendering '%s' failed: %s", name, c.msg);
	json_decref(v);
	return buf_take(&out, NULL);
}

/* Compile 'tpl' alone and check that it renders 'want' against 'view'. */
static void renders(const char *tpl, const char *view, const char *want)
{
	struct mustache_set *set = mustache_set_new();
	char *got;

	add_ok(set, "t", tpl);
	got = render(set, "t", view);
	if (strcmp(got, want) != 0)
		fail_msg("'%s' with %s gave '%s', want '%s'", tpl, view ? view : "NULL", got, want);
	free(got);
	mustache_set_free(set);
}

/* Compiling 'tpl' as "t" fails with 'want' and a message holding 'part'. */
static void bad(const char *tpl, enum err want, const char *part)
{
	struct mustache_set *set = mustache_set_new();
	struct ctx c = CTX_INIT;
	enum err rc = mustache_set_add(set, "t", tpl, strlen(tpl), &c);

	if (rc != want)
		fail_msg("'%s': code %d, want %d (%s)", tpl, rc, want, c.msg);
	if (!strstr(c.msg, part))
		fail_msg("'%s': message '%s' lacks '%s'", tpl, c.msg, part);
	mustache_set_free(set);
}

/* ---- the spec ---- */

/*
 * Optional spec files ("~name.json") that we skip, and why.  Unknown
 * optional files are skipped too; every other file must pass in full.
 */
static const struct {
	const char *file, *why;
} optional_skips[] = {
	/* lambdas are code in the view; our views are JSON data */
	{"~lambdas.json", "lambdas need code in the view, and views are JSON data"},
	/* {{>*name}} fails to compile: partial names are fixed in the template */
	{"~dynamic-names.json", "dynamic partial names are not supported"},
	/* {{<parent}} and {{$block}} fail to compile */
	{"~inheritance.json", "template inheritance is not supported"},
};

static const char *const required_files[] = {
	"comments.json", "delimiters.json", "interpolation.json",
	"inverted.json", "partials.json",   "sections.json",
};

/* Run every case of one spec file; returns the number that passed. */
static int run_spec_file(const char *dir, const char *file)
{
	char path[PATH_MAX];
	json_error_t je;
	json_t *doc, *tests, *tc;
	size_t i;
	int passed = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	doc = json_load_file(path, 0, &je);
	if (!doc)
		fail_msg("%s: %s (line %d)", path, je.text, je.line);
	tests = json_object_get(doc, "tests");
	assert_true(json_is_array(tests) && json_array_size(tests) > 0);

	json_array_foreach(tests, i, tc) {
		const char *name = json_string_value(json_object_get(tc, "name"));
		const json_t *tpl = json_object_get(tc, "template");
		const json_t *want = json_object_get(tc, "expected");
		json_t *partials = json_object_get(tc, "partials");
		struct mustache_set *set = mustache_set_new();
		struct buf out = BUF_INIT(1 << 20);
		struct ctx c = CTX_INIT;
		const char *pname;
		json_t *psrc;

		assert_non_null(name);
		assert_true(json_is_string(tpl) && json_is_string(want));
		json_object_foreach(partials, pname, psrc) {
			if (mustache_set_add(set, pname, json_string_value(psrc),
					     json_string_length(psrc), &c) != ERR_OK)
				fail_msg("%s: '%s': partial '%s' did not compile: %s", file, name,
					 pname, c.msg);
		}
		/* a space keeps the name apart from every partial name */
		if (mustache_set_add(set, "spec test", json_string_value(tpl),
				     json_string_length(tpl), &c) != ERR_OK)
			fail_msg("%s: '%s' did not compile: %s", file, name, c.msg);
		if (mustache_set_render(set, "spec test", json_object_get(tc, "data"), &out, &c) !=
		    ERR_OK)
			fail_msg("%s: '%s' failed: %s", file, name, c.msg);
		if (out.len != json_string_length(want) ||
		    memcmp(out.data, json_string_value(want), out.len) != 0)
			fail_msg("%s: '%s'\ntemplate: %s\ngot:      %s\nexpected: %s", file, name,
				 json_string_value(tpl), out.data, json_string_value(want));
		passed++;
		buf_release(&out);
		mustache_set_free(set);
	}
	json_decref(doc);
	return passed;
}

static void test_spec(void **state)
{
	char dir[PATH_MAX];
	struct dirent **ents;
	int n, passed = 0, files = 0, skipped = 0;
	bool seen[LEN(required_files)] = {false};

	(void)state;
	if (!unit_data_dir(SPEC_DIR, dir, sizeof(dir))) {
		print_message("skipping: %s not found (run from the repository root inside the "
			      "workplace; see ../shared/testdata/README.md)\n", SPEC_DIR);
		skip();
		return;
	}
	n = scandir(dir, &ents, NULL, alphasort);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		const char *f = ents[i]->d_name;
		size_t len = strlen(f);

		if (len < 6 || strcmp(f + len - 5, ".json") != 0) {
			free(ents[i]);
			continue;
		}
		if (f[0] == '~') {
			const char *why = "optional, not implemented";

			for (size_t k = 0; k < LEN(optional_skips); k++)
				if (strcmp(f, optional_skips[k].file) == 0)
					why = optional_skips[k].why;
			print_message("mustache spec: skipping %s: %s\n", f, why);
			skipped++;
			free(ents[i]);
			continue;
		}
		for (size_t k = 0; k < LEN(required_files); k++)
			if (strcmp(f, required_files[k]) == 0)
				seen[k] = true;
		passed += run_spec_file(dir, f);
		files++;
		free(ents[i]);
	}
	free(ents);
	for (size_t k = 0; k < LEN(required_files); k++)
		if (!seen[k])
			fail_msg("required spec file %s/%s is missing", dir, required_files[k]);
	print_message("mustache spec: %d cases passed in %d files, %d optional files skipped\n",
		      passed, files, skipped);
	assert_true(passed >= 136);
}

/* ---- what the spec leaves open ---- */

static void test_escaping(void **state)
{
	(void)state;
	renders("{{x}}", "{\"x\":\"<a href=\\\"x\\\" title='y'>&amp;</a>\"}",
		"&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;");
	renders("{{{x}}}|{{&x}}", "{\"x\":\"<'&\\\">\"}", "<'&\">|<'&\">");
	renders("<input value='{{v}}'>", "{\"v\":\"' onfocus='alert(1)\"}",
		"<input value='&#39; onfocus=&#39;alert(1)'>");
	/* UTF-8 and a NUL inside a string go through as they are */
	renders("{{x}}", "{\"x\":\"caf\\u00e9 \\u2603\"}", "caf\xc3\xa9 \xe2\x98\x83");
	{
		struct mustache_set *set = mustache_set_new();
		struct buf out = BUF_INIT(64);
		struct ctx c = CTX_INIT;
		json_t *v = json_pack("{s:s#}", "x", "a\0<", (size_t)3);

		add_ok(set, "t", "[{{x}}]");
		assert_int_equal(mustache_set_render(set, "t", v, &out, &c), ERR_OK);
		assert_int_equal(out.len, 8);
		assert_memory_equal(out.data, "[a\0&lt;]", 8);
		buf_release(&out);
		json_decref(v);
		mustache_set_free(set);
	}
}

static void test_values(void **state)
{
	(void)state;
	renders("{{a}} {{b}} {{c}} {{d}}", "{\"a\":0,\"b\":-42,\"c\":9007199254740993,\"d\":-0}",
		"0 -42 9007199254740993 0");
	renders("{{a}} {{b}} {{c}} {{d}} {{e}} {{f}}",
		"{\"a\":1.21,\"b\":0.1,\"c\":2.0,\"d\":-1.5e-7,\"e\":1e300,\"f\":36.9}",
		"1.21 0.1 2 -1.5e-07 1e+300 36.9");
	renders("{{t}} {{f}} [{{n}}] [{{a}}] [{{o}}] [{{missing}}]",
		"{\"t\":true,\"f\":false,\"n\":null,\"a\":[1,2],\"o\":{\"k\":1}}",
		"true false [] [] [] []");
	/* a NULL view is an empty context */
	renders("[{{x}}{{#x}}y{{/x}}{{^x}}z{{/x}}{{.}}]", NULL, "[z]");
}

static void test_truthiness(void **state)
{
	(void)state;
	renders("{{#v}}T{{/v}}{{^v}}F{{/v}}", "{\"v\":false}", "F");
	renders("{{#v}}T{{/v}}{{^v}}F{{/v}}", "{\"v\":null}", "F");
	renders("{{#v}}T{{/v}}{{^v}}F{{/v}}", "{\"v\":[]}", "F");
	renders("{{#v}}T{{/v}}{{^v}}F{{/v}}", "{}", "F");
	/* everything else is truthy, 0, "" and {} included */
	renders("{{#v}}T{{/v}}{{^v}}F{{/v}}", "{\"v\":0}", "T");
	renders("{{#v}}T{{/v}}{{^v}}F{{/v}}", "{\"v\":\"\"}", "T");
	renders("{{#v}}T{{/v}}{{^v}}F{{/v}}", "{\"v\":{}}", "T");
	renders("{{#v}}T{{/v}}{{^v}}F{{/v}}", "{\"v\":0.0}", "T");
	renders("{{#v}}[{{.}}]{{/v}}", "{\"v\":[0,\"\",null,false]}", "[0][][][false]");
	/* a scalar section pushes the scalar; names still reach outer objects */
	renders("{{#v}}{{.}}/{{w}}{{/v}}", "{\"v\":7,\"w\":\"x\"}", "7/x");
	/* dotted names through arrays find nothing */
	renders("[{{a.0}}]", "{\"a\":[\"x\"]}", "[]");
}

static void test_partial_indentation(void **state)
{
	struct mustache_set *set = mustache_set_new();
	char *got;

	(void)state;
	/* nested standalone partials add up; empty lines stay empty */
	add_ok(set, "top", "begin\n  {{>inner}}\nend\n");
	add_ok(set, "inner", "a\n  {{>leaf}}\nb\n");
	add_ok(set, "leaf", "x\n\ny\n");
	got = render(set, "top", "{}");
	assert_string_equal(got, "begin\n  a\n    x\n\n    y\n  b\nend\n");
	free(got);

	/* every iteration of a standalone section is indented */
	add_ok(set, "list", "{{#l}}\n<{{.}}>\n{{/l}}\n");
	add_ok(set, "page", "<ul>\n  {{>list}}\n</ul>\n");
	got = render(set, "page", "{\"l\":[1,2]}");
	assert_string_equal(got, "<ul>\n  <1>\n  <2>\n</ul>\n");
	free(got);

	/* an inline partial is not indented, nor are the partials inside it */
	add_ok(set, "inline", "  x {{>leaf}}|\n");
	got = render(set, "inline", "{}");
	assert_string_equal(got, "  x x\n\ny\n|\n");
	free(got);

	/* interpolated text is never indented */
	add_ok(set, "v", "{{v}}\n");
	add_ok(set, "w", "\t{{>v}}\n");
	got = render(set, "w", "{\"v\":\"1\\n2\"}");
	assert_string_equal(got, "\t1\n2\n");
	free(got);
	mustache_set_free(set);
}

static void test_partials_linking(void **state)
{
	struct mustache_set *set = mustache_set_new();
	struct buf out = BUF_INIT(1024);
	struct ctx c = CTX_INIT;
	char *got;

	(void)state;
	/* a partial added after the template that uses it is found */
	add_ok(set, "page", "<{{>head}}|{{>nope}}>");
	got = render(set, "page", "{}");
	assert_string_equal(got, "<|>");
	free(got);
	add_ok(set, "head", "H{{x}}");
	got = render(set, "page", "{\"x\":1}");
	assert_string_equal(got, "<H1|>");
	free(got);
	/* replacing a template changes what includes it */
	add_ok(set, "head", "h");
	got = render(set, "page", "{}");
	assert_string_equal(got, "<h|>");
	free(got);
	/* a failed replacement keeps the old template */
	assert_int_equal(mustache_set_add(set, "head", "{{#x}}", 6, &c), ERR_INVALID);
	got = render(set, "page", "{}");
	assert_string_equal(got, "<h|>");
	free(got);

	/* unknown names */
	ctx_clear(&c);
	buf_adds(&out, "kept");
	assert_int_equal(mustache_set_render(set, "nope", NULL, &out, &c), ERR_NOTFOUND);
	assert_string_equal(c.msg, "unknown template 'nope'");
	assert_string_equal(out.data, "kept");
	/* rendering appends */
	ctx_clear(&c);
	assert_int_equal(mustache_set_render(set, "page", NULL, &out, &c), ERR_OK);
	assert_string_equal(out.data, "kept<h|>");
	buf_release(&out);

	/* a template with no tags, and an empty one */
	add_ok(set, "plain", "just { text } here\n");
	add_ok(set, "empty", "");
	got = render(set, "plain", NULL);
	assert_string_equal(got, "just { text } here\n");
	free(got);
	got = render(set, "empty", "{}");
	assert_string_equal(got, "");
	free(got);
	mustache_set_free(set);
	mustache_set_free(NULL);
}

static void test_syntax(void **state)
{
	(void)state;
	/* padding before the sigil, custom delimiters with triple mustache */
	renders("{{ #a }}{{ a.b }}{{ /a }}{{ &c }}", "{\"a\":{\"b\":\"<\"},\"c\":\"<\"}", "&lt;<");
	renders("{{=<% %>=}}<%{x}%>|<%x%>|{{x}}", "{\"x\":\"&\"}", "&|&amp;|{{x}}");
	renders("{{=[[ ]]=}}[[#a]]([[.]])[[/a]][[={{ }}=]]{{a.length}}", "{\"a\":[1,2]}",
		"(1)(2)");
	/* an unmatched closing brace is text */
	renders("{{x}}}", "{\"x\":1}", "1}");
	renders("}}{{!}}{ {", NULL, "}}{ {");
	/* a comment ends at the first closing delimiter */
	renders("a{{! {{x}} }}b", "{\"x\":1}", "a }}b");
}

static void test_errors(void **state)
{
	char deep[64 * 7 + 64 * 7 + 8];
	size_t n = 0;

	(void)state;
	bad("{{", ERR_INVALID, "t:1: unclosed tag");
	bad("a\nb\n{{x", ERR_INVALID, "t:3: unclosed tag");
	bad("a\n{{#x}}\nb", ERR_INVALID, "t:2: unclosed section 'x'");
	bad("{{#a}}\n{{#b}}\n{{/b}}\n", ERR_INVALID, "t:1: unclosed section 'a'");
	bad("a\n\n{{#x}}{{/y}}", ERR_INVALID, "t:3: section 'x' (line 3) closed by 'y'");
	bad("{{#x}}\n\n{{/ y }}", ERR_INVALID, "t:3: section 'x' (line 1) closed by 'y'");
	bad("ok\n{{/x}}", ERR_INVALID, "t:2: closing tag 'x' without a section");
	bad("{{!\n\n}}\n{{#a}}", ERR_INVALID, "t:4: unclosed section 'a'");
	bad("{{=<% %>=}}\n\n<%x", ERR_INVALID, "t:3: unclosed tag");
	bad("{{=<% %>=}}\n{{x}}<%/x%>", ERR_INVALID, "t:2: closing tag 'x' without a section");
	bad("{{= a =}}", ERR_INVALID, "t:1: bad delimiters 'a'");
	bad("{{=a b c=}}", ERR_INVALID, "bad delimiters 'a b c'");
	bad("{{=a= b=}}", ERR_INVALID, "bad delimiters");
	bad("{{=abcdefghijklmnopq b=}}", ERR_INVALID, "bad delimiters");
	bad("{{=<% %>}}", ERR_INVALID, "unclosed tag");
	bad("x\n{{}}", ERR_INVALID, "t:2: tag without a name");
	bad("{{#}}{{/}}", ERR_INVALID, "tag without a name");
	bad("{{a..b}}", ERR_INVALID, "bad name 'a..b'");
	bad("{{.a}}", ERR_INVALID, "bad name '.a'");
	bad("{{a.}}", ERR_INVALID, "bad name 'a.'");
	bad("{{a b}}", ERR_INVALID, "bad name 'a b'");
	bad("{{>}}", ERR_INVALID, "partial without a name");
	bad("{{>a b}}", ERR_INVALID, "bad partial name 'a b'");
	bad("{{>*name}}", ERR_INVALID, "dynamic partial names are not supported");
	bad("{{<parent}}{{/parent}}", ERR_INVALID, "template inheritance");
	bad("{{$block}}{{/block}}", ERR_INVALID, "template inheritance");

	/* 64 nested sections compile, 65 do not */
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{{#a}}");
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{{/a}}");
	renders(deep, "{\"a\":true}", "");
	n = 0;
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{{#a}}");
	snprintf(deep + n, sizeof(deep) - n, "\n{{^b}}");
	bad(deep, ERR_TOOBIG, "t:2: sections nest deeper than 64");

	/* too large a source; a nameless template */
	{
		struct mustache_set *set = mustache_set_new();
		struct ctx c = CTX_INIT;
		char *big = calloc(1, MUSTACHE_SRC_MAX + 1);

		assert_non_null(big);
		assert_int_equal(mustache_set_add(set, "big", big, MUSTACHE_SRC_MAX + 1, &c),
				 ERR_TOOBIG);
		assert_non_null(strstr(c.msg, "big:1: template larger than"));
		ctx_clear(&c);
		assert_int_equal(mustache_set_add(set, "", "x", 1, &c), ERR_INVALID);
		assert_int_equal(mustache_set_add(set, NULL, "x", 1, NULL), ERR_INVALID);
		free(big);
		mustache_set_free(set);
	}
}

/* Build {"c":"0","n":[{"c":"1","n":[ ... ]}]} with 'levels' nested nodes. */
static json_t *chain(int levels)
{
	json_t *root = NULL;

	for (int i = levels - 1; i >= 0; i--) {
		char label[16];
		json_t *node = json_object();

		snprintf(label, sizeof(label), "%d", i);
		json_object_set_new(node, "c", json_string(label));
		json_object_set_new(node, "n", root ? json_pack("[o]", root) : json_array());
		root = node;
	}
	return root;
}

static void test_recursion(void **state)
{
	struct mustache_set *set = mustache_set_new();
	struct buf out = BUF_INIT(1 << 20);
	struct ctx c = CTX_INIT;
	json_t *v;

	(void)state;
	/* a partial that includes itself with no data to stop it */
	add_ok(set, "self", "x{{>self}}");
	buf_adds(&out, "kept");
	assert_int_equal(mustache_set_render(set, "self", NULL, &out, &c), ERR_TOOBIG);
	assert_string_equal(c.msg, "self:1: sections and partials nest deeper than 64");
	assert_string_equal(out.data, "kept");

	/* two templates including each other through sections */
	add_ok(set, "ping", "{{#a}}\n{{>pong}}\n{{/a}}\n");
	add_ok(set, "pong", "{{>ping}}");
	ctx_clear(&c);
	v = view_of("{\"a\":true}");
	assert_int_equal(mustache_set_render(set, "ping", v, &out, &c), ERR_TOOBIG);
	assert_non_null(strstr(c.msg, "nest deeper than 64"));
	json_decref(v);

	/*
	 * A tree walk: each level is one section and one partial, so 33
	 * levels nest 64 deep (fine) and 34 nest 66 deep (too deep).
	 */
	add_ok(set, "node", "{{c}}<{{#n}}{{>node}}{{/n}}>");
	ctx_clear(&c);
	buf_reset(&out);
	v = chain(33);
	assert_int_equal(mustache_set_render(set, "node", v, &out, &c), ERR_OK);
	assert_true(strncmp(out.data, "0<1<2<", 6) == 0);
	assert_non_null(strstr(out.data, "32<>>>"));
	json_decref(v);
	buf_reset(&out);
	v = chain(34);
	assert_int_equal(mustache_set_render(set, "node", v, &out, &c), ERR_TOOBIG);
	assert_string_equal(c.msg, "node:1: sections and partials nest deeper than 64");
	assert_int_equal(out.len, 0);
	json_decref(v);
	buf_release(&out);
	mustache_set_free(set);
}

static void test_steps(void **state)
{
	struct mustache_set *set = mustache_set_new();
	struct buf out = BUF_INIT(1 << 20);
	struct ctx c = CTX_INIT;
	json_t *v = chain(30);

	(void)state;
	/* two self-inclusions per level: 2^30 renders without the budget */
	add_ok(set, "twice", "{{#n}}{{>twice}}{{>twice}}{{/n}}");
	assert_int_equal(mustache_set_render(set, "twice", v, &out, &c), ERR_TOOBIG);
	assert_string_equal(c.msg, "twice: rendering takes more than 16777216 steps");
	assert_int_equal(out.len, 0);
	json_decref(v);

	/* iterations count too, even over an empty body */
	add_ok(set, "loop", "x{{#l}}{{/l}}");
	v = view_of("{\"l\":[1,2,3,4,5,6,7,8,9,10]}");
	mustache_set_max_steps(set, 11);
	ctx_clear(&c);
	assert_int_equal(mustache_set_render(set, "loop", v, &out, &c), ERR_TOOBIG);
	assert_string_equal(c.msg, "loop: rendering takes more than 11 steps");
	/* the text, the section and its ten iterations */
	mustache_set_max_steps(set, 12);
	ctx_clear(&c);
	assert_int_equal(mustache_set_render(set, "loop", v, &out, &c), ERR_OK);
	mustache_set_max_steps(set, 0);
	ctx_clear(&c);
	assert_int_equal(mustache_set_render(set, "loop", v, &out, &c), ERR_OK);
	json_decref(v);
	buf_release(&out);
	mustache_set_free(set);
}

static void test_output_cap(void **state)
{
	struct mustache_set *set = mustache_set_new();
	struct buf out = BUF_INIT(16);
	struct ctx c = CTX_INIT;
	json_t *v = view_of("{\"l\":[1,2,3,4,5,6,7,8,9,10],\"s\":\"<<<<<\"}");

	(void)state;
	add_ok(set, "list", "{{#l}}[{{.}}]{{/l}}");
	add_ok(set, "esc", "{{s}}");
	add_ok(set, "fits", "0123456789abcdef");

	buf_adds(&out, "ab");
	assert_int_equal(mustache_set_render(set, "list", v, &out, &c), ERR_TOOBIG);
	assert_string_equal(c.msg, "list: output larger than 16 bytes");
	assert_string_equal(out.data, "ab");
	/* a failed buffer stays failed */
	ctx_clear(&c);
	assert_int_equal(mustache_set_render(set, "fits", v, &out, &c), ERR_TOOBIG);
	buf_release(&out);

	/* escaping counts against the cap: 5 x "&lt;" is 20 bytes */
	buf_init(&out, 16);
	ctx_clear(&c);
	assert_int_equal(mustache_set_render(set, "esc", v, &out, &c), ERR_TOOBIG);
	buf_release(&out);

	/* exactly at the cap is fine */
	buf_init(&out, 16);
	ctx_clear(&c);
	assert_int_equal(mustache_set_render(set, "fits", v, &out, &c), ERR_OK);
	assert_string_equal(out.data, "0123456789abcdef");
	buf_release(&out);
	json_decref(v);
	mustache_set_free(set);
}

/* ---- threads ---- */

#define THREADS 8
#define ROUNDS 200

struct job {
	const struct mustache_set *set;
	const json_t *view;
	const char *want;
	int mismatches;
};

static void *render_job(void *arg)
{
	struct job *j = arg;
	struct buf out = BUF_INIT(1 << 20);

	for (int i = 0; i < ROUNDS; i++) {
		struct ctx c = CTX_INIT;

		buf_reset(&out);
		if (mustache_set_render(j->set, "portal", j->view, &out, &c) != ERR_OK ||
		    strcmp(out.data, j->want) != 0)
			j->mismatches++;
	}
	buf_release(&out);
	return NULL;
}

static void test_threads(void **state)
{
	struct mustache_set *set = mustache_set_new();
	pthread_t th[THREADS];
	struct job jobs[THREADS];
	json_t *v;
	char *want;

	(void)state;
	add_ok(set, "layout-head", "<!doctype html>\n<title>{{title}}</title>\n");
	add_ok(set, "row",
	       "<tr><td>{{name}}</td><td>{{value}}{{#unit}} {{.}}{{/unit}}</td></tr>\n");
	add_ok(set, "portal",
	       "{{>layout-head}}\n"
	       "<h1>Hello, {{patient.name}}</h1>\n"
	       "<table>\n"
	       "  {{#results}}\n"
	       "  {{>row}}\n"
	       "  {{/results}}\n"
	       "  {{^results}}\n"
	       "  <tr><td>No results</td></tr>\n"
	       "  {{/results}}\n"
	       "</table>\n");
	v = view_of("{\"title\":\"Results & more\",\"patient\":{\"name\":\"O'Brien <Alice>\"},"
		    "\"results\":[{\"name\":\"Glucose\",\"value\":5.4,\"unit\":\"mmol/L\"},"
		    "{\"name\":\"HbA1c\",\"value\":48,\"unit\":\"mmol/mol\"},"
		    "{\"name\":\"Note\",\"value\":\"<i>see letter</i>\",\"unit\":null}]}");
	{
		struct buf out = BUF_INIT(1 << 20);
		struct ctx c = CTX_INIT;

		assert_int_equal(mustache_set_render(set, "portal", v, &out, &c), ERR_OK);
		want = buf_take(&out, NULL);
	}
	assert_non_null(strstr(want, "Hello, O&#39;Brien &lt;Alice&gt;"));
	assert_non_null(strstr(want, "\n  <tr><td>Glucose</td><td>5.4 mmol/L</td></tr>\n"));
	assert_non_null(strstr(want, "<td>&lt;i&gt;see letter&lt;/i&gt;</td>"));

	for (int i = 0; i < THREADS; i++) {
		jobs[i] = (struct job){set, v, want, 0};
		assert_int_equal(pthread_create(&th[i], NULL, render_job, &jobs[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(jobs[i].mismatches, 0);
	}
	free(want);
	json_decref(v);
	mustache_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_truthiness),
		cmocka_unit_test(test_partial_indentation),
		cmocka_unit_test(test_partials_linking),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_recursion),
		cmocka_unit_test(test_steps),
		cmocka_unit_test(test_output_cap),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
