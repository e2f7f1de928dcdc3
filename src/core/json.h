/*
 * json.h - helpers around jansson: bounded parsing (size, nesting depth,
 * UTF-8, duplicate keys) and small accessors.  Returned json_t references
 * belong to the caller (json_decref).
 */
#ifndef VERANDA_CORE_JSON_H
#define VERANDA_CORE_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * Nesting depth of the JSON text (arrays and objects), scanning bytes only.
 * Returns -1 when brackets do not balance (the parser will say why).
 */
int json_text_depth(const char *s, size_t n);

/*
 * Parse one JSON value from s[0..n): well-formed UTF-8, no duplicate
 * object keys, at most 'max_depth' levels.  On failure returns NULL with
 * ERR_INVALID (or ERR_TOOBIG for depth) and a message naming the line and
 * column on 'c'.
 */
json_t *json_parse_bounded(const char *s, size_t n, int max_depth, struct ctx *c);

/*
 * Serialize compactly into 'b' (appends).  Decimals are written in the
 * shortest form that reads back as the same double.
 */
enum err json_dump_buf(const json_t *v, struct buf *b);
/*
 * Like json_dump_buf(), but numbers are written exactly as in the source
 * text src[0..n) that 'v' was parsed from ("1.50" stays "1.50"; FHIR
 * decimals keep their precision), as long as the tree's numbers still
 * match the source's in order; other numbers fall back to the shortest
 * form.  src may be NULL.
 */
enum err json_dump_buf_src(const json_t *v, struct buf *b, const char *src, size_t n);
/*
 * For a document 'root' parsed from src[0..n) whose array member 'akey'
 * holds objects with a member 'key' (a Bundle's entry[].resource): sets
 * offs[i], for the first 'count' elements, to the offset in src from which
 * json_dump_buf_src(element's key, b, src + offs[i], n - offs[i]) finds
 * that member's numbers first.  Elements without it get the offset where
 * the next element's numbers start.  One pass over root and src.
 */
void json_src_offsets(const json_t *root, const char *akey, const char *key, const char *src,
		      size_t n, size_t *offs, size_t count);

/* Convenience getters: NULL or 0 when missing or of another type. */
const char *json_get_str(const json_t *obj, const char *key);

#endif
