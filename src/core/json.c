/* json.c - bounded JSON parsing on jansson.  See json.h. */
#include "core/json.h"

#include <string.h>

int json_text_depth(const char *s, size_t n)
{
	int depth = 0, max = 0;
	int in_str = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		switch (ch) {
		case '"': in_str = 1; break;
		case '[':
		case '{':
			if (++depth > max)
				max = depth;
			break;
		case ']':
		case '}':
			if (--depth < 0)
				return -1;
			break;
		default: break;
		}
	}
	return depth == 0 ? max : -1;
}

json_t *json_parse_bounded(const char *s, size_t n, int max_depth, struct ctx *c)
{
	json_error_t je;
	json_t *v;
	int d = json_text_depth(s, n);

	if (d > max_depth) {
		ctx_errorf(c, ERR_TOOBIG, "JSON nesting depth %d exceeds the limit of %d", d, max_depth);
		return NULL;
	}
	v = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!v) {
		ctx_errorf(c, ERR_INVALID, "invalid JSON at line %d column %d: %s",
			   je.line, je.column, je.text);
		return NULL;
	}
	return v;
}

static int dump_cb(const char *p, size_t n, void *arg)
{
	return buf_add(arg, p, n) == ERR_OK ? 0 : -1;
}

enum err json_dump_buf(const json_t *v, struct buf *b)
{
	if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
		return b->err ? b->err : ERR_INVALID;
	return ERR_OK;
}

const char *json_get_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}
