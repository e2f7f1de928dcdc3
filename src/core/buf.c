/* buf.c - growable byte buffer with a hard cap.  See buf.h. */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

char buf_empty[1];

void buf_init(struct buf *b, size_t max)
{
	b->data = buf_empty;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->err = ERR_OK;
}

void buf_release(struct buf *b)
{
	if (b->cap)
		free(b->data);
	b->data = buf_empty;
	b->len = 0;
	b->cap = 0;
	b->err = ERR_OK;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->data[0] = '\0';
	b->err = ERR_OK;
}

enum err buf_grow(struct buf *b, size_t extra)
{
	size_t want, ncap;
	char *p;

	if (b->err)
		return b->err;
	if (extra > b->max || b->len > b->max - extra) {
		b->err = ERR_TOOBIG;
		return b->err;
	}
	want = b->len + extra + 1;
	if (want <= b->cap)
		return ERR_OK;
	ncap = b->cap ? b->cap : 64;
	while (ncap < want)
		ncap = ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	if (b->cap) {
		p = xrealloc(b->data, ncap);
	} else {
		p = xmalloc(ncap);
		p[0] = '\0';
	}
	b->data = p;
	b->cap = ncap;
	return ERR_OK;
}

enum err buf_add_grow(struct buf *b, const void *p, size_t n)
{
	if (buf_grow(b, n))
		return b->err;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return ERR_OK;
}

enum err buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (b->err)
		return b->err;
	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0) {
		b->err = ERR_INVALID;
		return b->err;
	}
	if (buf_grow(b, (size_t)n))
		return b->err;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return ERR_OK;
}

enum err buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	enum err e;

	va_start(ap, fmt);
	e = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return e;
}

/*
 * Length of the well-formed UTF-8 sequence starting at s[0] (at most n
 * bytes available), or 0 when it is not one: a stray continuation byte, an
 * overlong form, a surrogate, a code point above U+10FFFF or a truncated
 * sequence (RFC 3629 table 3-7).
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t k;

	if (c >= 0xC2 && c <= 0xDF)
		k = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		k = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		k = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t j = 2; j < k; j++)
		if ((s[j] & 0xC0) != 0x80)
			return 0;
	return k;
}

/*
 * Valid UTF-8 passes through; each byte that does not start a well-formed
 * sequence becomes \ufffd, so the output is always valid JSON even when
 * the input was cut in the middle of a character (a truncated message).
 */
enum err buf_add_json_str(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i, run = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = u[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
			continue;
		if (c >= 0x80) {
			size_t k = utf8_seq(u + i, n - i);
			if (k) {
				i += k - 1;
				continue;
			}
		}
		buf_add(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': buf_add(b, "\\\"", 2); break;
		case '\\': buf_add(b, "\\\\", 2); break;
		case '\n': buf_add(b, "\\n", 2); break;
		case '\r': buf_add(b, "\\r", 2); break;
		case '\t': buf_add(b, "\\t", 2); break;
		default:
			if (c >= 0x80) {
				buf_add(b, "\\ufffd", 6);
			} else {
				char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				buf_add(b, e, 6);
			}
		}
	}
	buf_add(b, s + run, n - run);
	return b->err;
}

void buf_truncate(struct buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

char *buf_take(struct buf *b, size_t *len)
{
	char *p;

	if (len)
		*len = b->len;
	if (!b->cap) {
		p = xmalloc(1);
		p[0] = '\0';
	} else {
		p = b->data;
	}
	b->data = buf_empty;
	b->len = 0;
	b->cap = 0;
	b->err = ERR_OK;
	return p;
}
