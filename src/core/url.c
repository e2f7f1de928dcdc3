/* url.c - percent-decoding and -encoding.  See url.h. */
#include "core/url.h"

#include <string.h>

#include "core/buf.h"

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long url_pct_decode_mem(const char *s, size_t n, bool form, char *dst)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && form) {
			c = ' ';
		}
		if (c == '\0')
			return -1;
		dst[k++] = (char)c;
	}
	return (long)k;
}

static void pct(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			buf_addch(b, (char)ch);
		} else {
			buf_addch(b, '%');
			buf_addch(b, hex[ch >> 4]);
			buf_addch(b, hex[ch & 15]);
		}
	}
}

enum err url_add_param(struct buf *b, const char *name, const char *value)
{
	const char *q = b->len ? memchr(b->data, '?', b->len) : NULL;

	buf_addch(b, q ? '&' : '?');
	pct(b, name);
	buf_addch(b, '=');
	pct(b, value);
	return b->err;
}
