/* json.c - bounded JSON parsing on jansson.  See json.h. */
#include "core/json.h"

#include <float.h>
#include <math.h>
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

/*
 * A raw NUL byte is never valid JSON text (inside a string it must be
 * written \u0000), but jansson loses a NUL that ends a number or literal
 * ("[1\0,2]" loads as [1,2]), so reject it before parsing.
 */
static bool find_nul(const char *s, size_t n, struct ctx *c)
{
	const char *nul = n ? memchr(s, '\0', n) : NULL;
	int line = 1, col = 0;

	if (!nul)
		return false;
	for (const char *p = s; p <= nul; p++) {
		col++;
		if (*p == '\n') {
			line++;
			col = 0;
		}
	}
	ctx_errorf(c, ERR_INVALID, "invalid JSON at line %d column %d: NUL byte", line, col);
	return true;
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
	if (find_nul(s, n, c))
		return NULL;
	/* any value, as the contract says: RFC 8259 allows a scalar at the top */
	v = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
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

	/*
	 * For a normal double, a form of 15 digits or fewer that reads back is
	 * what %.15g prints; subnormals carry fewer digits, so start lower.
	 */
	for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* keep it a JSON number that still reads as a real */
	buf_adds(b, tmp);
	if (!strpbrk(tmp, ".eEn"))
		buf_adds(b, ".0");
}

/*
 * Number tokens of the source text, in order, for json_dump_buf_src(): a
 * parsed tree visits its numbers in source order (jansson keeps object key
 * order), so the dumper can take each number's text as the client wrote
 * it ("1.50" stays "1.50") after checking it denotes the same value.
 */
struct numsrc {
	const char *s;
	size_t n, pos;
};

/* The next number token at or after src->pos, or false. */
static bool next_number(struct numsrc *src, const char **tok, size_t *len)
{
	bool in_str = false;

	for (size_t i = src->pos; i < src->n; i++) {
		char ch = src->s[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		if (ch == '"') {
			in_str = true;
		} else if (ch == '-' || (ch >= '0' && ch <= '9')) {
			size_t j = i;
			while (j < src->n && strchr("+-.eE0123456789", src->s[j]) && src->s[j])
				j++;
			*tok = src->s + i;
			*len = j - i;
			return true;
		}
	}
	return false;
}

/* Print the number as the source wrote it when the next token denotes it. */
static bool add_source_number(struct buf *b, const json_t *v, struct numsrc *src)
{
	const char *tok;
	size_t len;
	char tmp[64];
	char *end;

	if (!src || !next_number(src, &tok, &len) || len >= sizeof(tmp))
		return false;
	memcpy(tmp, tok, len);
	tmp[len] = '\0';
	if (json_is_integer(v)) {
		long long x = strtoll(tmp, &end, 10);
		if (*end || x != json_integer_value(v))
			return false;
	} else {
		double x = strtod(tmp, &end);
		if (*end || x != json_real_value(v) || !strpbrk(tmp, ".eE"))
			return false;
	}
	buf_add(b, tok, len);
	src->pos = (size_t)(tok - src->s) + len;
	return true;
}

static void dump(const json_t *v, struct buf *b, int depth, struct numsrc *src)
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
			dump(val, b, depth + 1, src);
		}
		buf_addch(b, '}');
		break;
	case JSON_ARRAY:
		buf_addch(b, '[');
		json_array_foreach(v, i, val) {
			if (i)
				buf_addch(b, ',');
			dump(val, b, depth + 1, src);
		}
		buf_addch(b, ']');
		break;
	case JSON_STRING:
		buf_addch(b, '"');
		buf_add_json_str(b, json_string_value(v), json_string_length(v));
		buf_addch(b, '"');
		break;
	case JSON_INTEGER:
		if (!add_source_number(b, v, src))
			buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		if (!add_source_number(b, v, src))
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
	dump(v, b, 0, NULL);
	return b->err;
}

enum err json_dump_buf_src(const json_t *v, struct buf *b, const char *src, size_t n)
{
	struct numsrc ns = {src, n, 0};

	dump(v, b, 0, src ? &ns : NULL);
	return b->err;
}

/* The numbers in 'v', as dump() visits them. */
static size_t count_numbers(const json_t *v)
{
	const char *key;
	json_t *val;
	size_t i, k = 0;

	if (json_is_number(v))
		return 1;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, val)
			k += count_numbers(val);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, val)
			k += count_numbers(val);
	}
	return k;
}

/* The numbers in the members of 'obj' before member 'key'. */
static size_t count_before(const json_t *obj, const char *key)
{
	const char *k;
	json_t *val;
	size_t n = 0;

	json_object_foreach((json_t *)obj, k, val) {
		if (!strcmp(k, key))
			break;
		n += count_numbers(val);
	}
	return n;
}

void json_src_offsets(const json_t *root, const char *akey, const char *key, const char *src,
		      size_t n, size_t *offs, size_t count)
{
	const json_t *arr = json_object_get(root, akey), *el;
	struct numsrc ns = {src, n, 0};
	size_t i, k = json_is_object(root) ? count_before(root, akey) : 0, passed = 0;
	const char *tok;
	size_t len;

	json_array_foreach(arr, i, el) {
		size_t want = k + (json_is_object(el) ? count_before(el, key) : 0);

		if (i >= count)
			break;
		/* move past the number tokens before this element's member */
		for (; passed < want && src; passed++) {
			if (!next_number(&ns, &tok, &len)) {
				ns.pos = n; /* fewer than the tree: nothing left to match */
				break;
			}
			ns.pos = (size_t)(tok - src) + len;
		}
		offs[i] = src ? ns.pos : 0;
		k += count_numbers(el);
	}
}

const char *json_get_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}
