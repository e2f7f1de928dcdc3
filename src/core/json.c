/* json.c - bounded JSON parsing on jansson.  See json.h. */
#include "core/json.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/*
 * The shortest decimal form that reads back as the same double: FHIR
 * decimals such as 36.9 stay 36.9 (jansson's fixed 17 digits would give
 * 36.899999999999999), and 17-digit values keep every digit.
 */
static void add_real(struct buf *b, double v)
{
	char tmp[40];

	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* keep it a JSON number that still reads as a real */
	buf_adds(b, tmp);
	if (!strpbrk(tmp, ".eEn"))
		buf_adds(b, ".0");
}

static void dump(const json_t *v, struct buf *b, int depth)
{
	const char *key;
	json_t *val;
	size_t i;
	bool first = true;

	if (depth > 10000) {
		b->err = ERR_TOOBIG;
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		buf_addch(b, '{');
		json_object_foreach((json_t *)v, key, val) {
			if (!first)
				buf_addch(b, ',');
			first = false;
			buf_addch(b, '"');
			buf_add_json_str(b, key, strlen(key));
			buf_adds(b, "\":");
			dump(val, b, depth + 1);
		}
		buf_addch(b, '}');
		break;
	case JSON_ARRAY:
		buf_addch(b, '[');
		json_array_foreach(v, i, val) {
			if (i)
				buf_addch(b, ',');
			dump(val, b, depth + 1);
		}
		buf_addch(b, ']');
		break;
	case JSON_STRING:
		buf_addch(b, '"');
		buf_add_json_str(b, json_string_value(v), json_string_length(v));
		buf_addch(b, '"');
		break;
	case JSON_INTEGER:
		buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		add_real(b, json_real_value(v));
		break;
	case JSON_TRUE:
		buf_adds(b, "true");
		break;
	case JSON_FALSE:
		buf_adds(b, "false");
		break;
	case JSON_NULL:
		buf_adds(b, "null");
		break;
	}
}

enum err json_dump_buf(const json_t *v, struct buf *b)
{
	dump(v, b, 0);
	return b->err;
}

const char *json_get_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}
