/*
 * url.c - pure helpers for the edges: percent-decoding and -encoding,
 * application/x-www-form-urlencoded parsing, request-id validation and
 * W3C traceparent parsing.  No global state; every function is bounded by
 * its input length and safe on any bytes (a fuzz target covers them).
 */
#include "http/http.h"

#include <string.h>

#include "core/str.h"
#include "core/url.h"
#include "http/http_int.h"

long http_pct_decode_mem(const char *s, size_t n, bool form, char *dst)
{
	return url_pct_decode_mem(s, n, form, dst);
}

/*
 * Appends the decoded bytes.  On failure 'out' keeps its earlier content
 * (an ERR_TOOBIG also stays recorded on the buffer, as for any append).
 */
enum err http_pct_decode(const char *s, size_t n, bool form, struct buf *out)
{
	long k;

	if (buf_grow(out, n))
		return out->err;
	k = http_pct_decode_mem(s, n, form, out->data + out->len);
	if (k < 0) {
		out->data[out->len] = '\0';
		return ERR_INVALID;
	}
	out->len += (size_t)k;
	out->data[out->len] = '\0';
	return ERR_OK;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends; ERR_TOOBIG (recorded on 'out') when the result passes its cap. */
enum err http_pct_encode(const char *s, size_t n, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, need = 0;
	char *p;

	for (i = 0; i < n; i++)
		need += unreserved((unsigned char)s[i]) ? 1 : 3;
	if (buf_grow(out, need))
		return out->err;
	p = out->data + out->len;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c)) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	out->len += need;
	out->data[out->len] = '\0';
	return ERR_OK;
}

/*
 * Decode s[0..n) into a fresh NUL-terminated arena string; NULL when
 * malformed or when the decoded bytes are not UTF-8.
 */
static char *decode_dup(struct arena *a, const char *s, size_t n)
{
	char *d = arena_alloc(a, n + 1);
	long k = http_pct_decode_mem(s, n, true, d);

	if (k < 0 || !str_utf8_valid(d, (size_t)k))
		return NULL;
	d[k] = '\0';
	return d;
}

/*
 * Empty pieces ("a=1&&b=2", a trailing '&') are skipped; a piece without
 * '=' is a name with an empty value.  On failure *pairs is NULL, *n is 0,
 * and 'c' says why (ERR_TOOBIG: too many pairs; ERR_INVALID: a malformed
 * escape, an encoded NUL or a name or value that is not UTF-8).  Memory already taken from 'a' stays there.
 */
enum err http_form_parse(struct arena *a, const char *s, size_t len, size_t max_pairs,
			 struct http_pair **pairs, size_t *n, struct ctx *c)
{
	struct http_pair *p = NULL;
	size_t count = 0, k = 0, i, start;
	enum err e = ERR_OK;

	*pairs = NULL;
	*n = 0;
	for (start = 0, i = 0; i <= len; i++) {
		if (i == len || s[i] == '&') {
			if (i > start)
				count++;
			start = i + 1;
		}
	}
	if (count == 0)
		goto out;
	if (count > max_pairs) {
		e = ctx_errorf(c, ERR_TOOBIG, "more than %zu parameters", max_pairs);
		goto out;
	}
	p = arena_alloc(a, count * sizeof(*p));
	for (start = 0, i = 0; i <= len; i++) {
		const char *piece, *eq;
		size_t plen;

		if (i < len && s[i] != '&')
			continue;
		piece = s + start;
		plen = i - start;
		start = i + 1;
		if (plen == 0)
			continue;
		eq = memchr(piece, '=', plen);
		if (eq) {
			p[k].name = decode_dup(a, piece, (size_t)(eq - piece));
			p[k].value = decode_dup(a, eq + 1, plen - (size_t)(eq - piece) - 1);
		} else {
			p[k].name = decode_dup(a, piece, plen);
			p[k].value = "";
		}
		if (!p[k].name || !p[k].value) {
			e = ctx_errorf(c, ERR_INVALID, "malformed percent-encoding or invalid UTF-8 in parameters");
			goto out;
		}
		k++;
	}
	*pairs = p;
	*n = k;
out:
	return e;
}

bool http_request_id_valid(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= 64)
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return i > 0;
}

/* Are s[0..n) lowercase hex digits, and (when 'nonzero') not all zero? */
static bool lower_hex(const char *s, size_t n, bool nonzero)
{
	bool any = false;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		if (s[i] != '0')
			any = true;
	}
	return any || !nonzero;
}

/*
 * W3C Trace Context: version "ff" is invalid; version "00" is exactly 55
 * characters; a later version may carry more fields after a '-'.  Hex must
 * be lowercase.  On failure trace_id and parent_id are empty strings.
 */
enum err http_traceparent_parse(const char *s, char trace_id[33], char parent_id[17])
{
	size_t len;

	trace_id[0] = '\0';
	parent_id[0] = '\0';
	if (!s)
		return ERR_INVALID;
	len = strnlen(s, 56);
	if (len < 55)
		return ERR_INVALID;
	if (!lower_hex(s, 2, false) || (s[0] == 'f' && s[1] == 'f'))
		return ERR_INVALID;
	if (s[2] != '-' || s[35] != '-' || s[52] != '-')
		return ERR_INVALID;
	if (!lower_hex(s + 3, 32, true) || !lower_hex(s + 36, 16, true) ||
	    !lower_hex(s + 53, 2, false))
		return ERR_INVALID;
	if (s[0] == '0' && s[1] == '0' && len != 55)
		return ERR_INVALID;
	if (len > 55 && s[55] != '-')
		return ERR_INVALID;
	memcpy(trace_id, s + 3, 32);
	trace_id[32] = '\0';
	memcpy(parent_id, s + 36, 16);
	parent_id[16] = '\0';
	return ERR_OK;
}
