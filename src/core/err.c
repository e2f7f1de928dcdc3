/* err.c - error names and the error context.  See err.h. */
#include "core/err.h"

#include <stdio.h>
#include <string.h>

const char *err_str(enum err e)
{
	switch (e) {
	case ERR_OK: return "ok";
	case ERR_INVALID: return "invalid";
	case ERR_NOTFOUND: return "not found";
	case ERR_CONFLICT: return "conflict";
	case ERR_FORBIDDEN: return "forbidden";
	case ERR_TOOBIG: return "too big";
	case ERR_IO: return "i/o error";
	case ERR_BUSY: return "busy";
	case ERR_UNPROCESSABLE: return "unprocessable";
	case ERR_GONE: return "gone";
	case ERR_UNSUPPORTED: return "unsupported";
	case ERR_PRECONDITION: return "precondition failed";
	case ERR_UNAUTHORIZED: return "unauthorized";
	case ERR_NOMEM: return "out of memory";
	}
	return "unknown error";
}

/*
 * After a truncating snprintf into s[size]: when the output was cut
 * ('full' is the length it wanted), drop a UTF-8 character left incomplete
 * at the end, so a message put on the wire stays valid UTF-8.
 */
static void cut_clean(char *s, size_t size, int full)
{
	size_t len, i, tail = 0, need;
	unsigned char lead;

	if (full < 0 || (size_t)full < size)
		return;
	len = strlen(s);
	for (i = len; i > 0 && tail < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80; i--)
		tail++;
	if (i == 0)
		return;
	lead = (unsigned char)s[i - 1];
	need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if (tail + 1 < need)
		s[i - 1] = '\0';
}

static enum err vset(struct ctx *c, enum err code, const char *expr,
		     const char *fmt, va_list ap)
{
	if (!c || c->code != ERR_OK)
		return code;
	c->code = code;
	cut_clean(c->msg, sizeof(c->msg), vsnprintf(c->msg, sizeof(c->msg), fmt, ap));
	if (expr)
		cut_clean(c->expr, sizeof(c->expr), snprintf(c->expr, sizeof(c->expr), "%s", expr));
	else
		c->expr[0] = '\0';
	return code;
}

enum err ctx_errorf(struct ctx *c, enum err code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(c, code, NULL, fmt, ap);
	va_end(ap);
	return code;
}

enum err ctx_errorx(struct ctx *c, enum err code, const char *expr,
		    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(c, code, expr, fmt, ap);
	va_end(ap);
	return code;
}

void ctx_clear(struct ctx *c)
{
	if (!c)
		return;
	c->code = ERR_OK;
	c->msg[0] = '\0';
	c->expr[0] = '\0';
}
