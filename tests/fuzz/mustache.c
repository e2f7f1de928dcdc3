/*
 * tests/fuzz/mustache.c - libFuzzer target for the template engine:
 * compile arbitrary bytes as a template and, when that succeeds, render
 * it against a fixed view (strings to escape, numbers, nested objects and
 * lists, partials that include each other and the input itself).  A
 * rejection must carry a code and a "NAME:LINE: " message; a render must
 * succeed or fail with ERR_TOOBIG (nesting, work budget, output cap) and
 * leave the buffer as it found it; the same render twice must give the
 * same bytes; text without "{{" renders as itself.  Any crash, leak or
 * sanitizer report is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/mustache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX ((size_t)1 << 16)

static const char VIEW[] =
	"{\"name\":\"<Alice & 'Bob'>\",\"n\":0,\"x\":1.5,\"big\":-9007199254740993,"
	"\"t\":true,\"f\":false,\"z\":null,\"e\":\"\",\"empty\":[],"
	"\"list\":[1,\"two\",{\"name\":\"three\",\"list\":[]},[4,5],null,false,2.25],"
	"\"obj\":{\"a\":{\"b\":{\"c\":\"deep\"}},\"name\":\"inner\"},"
	"\"tree\":{\"c\":\"0\",\"n\":[{\"c\":\"1\",\"n\":[{\"c\":\"2\",\"n\":[]}]}]}}";

static const struct {
	const char *name, *src;
} PARTIALS[] = {
	{"p", "<{{.}}>"},
	{"row", "  {{#list}}\n  [{{>p}}]\n  {{/list}}\n"},
	{"node", "{{c}}({{#n}}{{>node}}{{/n}})"},
	{"back", "{{#obj}}{{>in}}{{/obj}}"},
};

static json_t *view(void)
{
	static json_t *v;

	if (!v) {
		struct ctx c = CTX_INIT;

		v = json_parse_bounded(VIEW, sizeof(VIEW) - 1, 16, &c);
		if (!v)
			abort();
	}
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *)data;
	struct mustache_set *set = mustache_set_new();
	struct buf out = BUF_INIT(OUT_MAX), again = BUF_INIT(OUT_MAX);
	struct ctx c = CTX_INIT;
	enum err rc;

	mustache_set_max_steps(set, (size_t)1 << 16);
	for (size_t i = 0; i < sizeof(PARTIALS) / sizeof(PARTIALS[0]); i++)
		if (mustache_set_add(set, PARTIALS[i].name, PARTIALS[i].src,
				     strlen(PARTIALS[i].src), &c) != ERR_OK)
			abort();

	rc = mustache_set_add(set, "in", src, size, &c);
	if (rc != ERR_OK) {
		if ((rc != ERR_INVALID && rc != ERR_TOOBIG) || strncmp(c.msg, "in:", 3) != 0)
			abort();
		/* without an opening delimiter there is nothing to reject */
		if (!memmem(src, size, "{{", 2))
			abort();
		goto out;
	}

	buf_adds(&out, "pre");
	rc = mustache_set_render(set, "in", view(), &out, &c);
	if (rc == ERR_OK) {
		if (out.len < 3 || memcmp(out.data, "pre", 3) != 0)
			abort();
		if (!memmem(src, size, "{{", 2) &&
		    (out.len != size + 3 || memcmp(out.data + 3, src, size) != 0))
			abort();
		buf_adds(&again, "pre");
		if (mustache_set_render(set, "in", view(), &again, &c) != ERR_OK ||
		    again.len != out.len || memcmp(again.data, out.data, out.len) != 0)
			abort();
	} else if (rc != ERR_TOOBIG || !c.msg[0] || out.len != 3) {
		abort();
	}

out:
	buf_release(&out);
	buf_release(&again);
	mustache_set_free(set);
	return 0;
}
