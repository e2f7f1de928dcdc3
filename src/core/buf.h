/*
 * buf.h - the one growable byte buffer.
 *
 * Invariants: 'data' is never NULL and always NUL-terminated; 'len' never
 * exceeds 'max', the hard cap set at each use site.  Appending past the cap
 * (or failing to allocate) sets 'err' once and turns later appends into
 * no-ops, so builders check once at the end (like sqlite3_str).
 * Not thread-safe; a buffer belongs to one thread at a time.
 */
#ifndef VERANDA_CORE_BUF_H
#define VERANDA_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "core/err.h"

extern char buf_empty[1];

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
	enum err err;
};

#define BUF_INIT(m) {buf_empty, 0, 0, (m), ERR_OK}

void buf_init(struct buf *b, size_t max);
/* Free the contents; 'b' is then empty and reusable (same cap). */
void buf_release(struct buf *b);
/* Empty the buffer but keep its storage and clear the error. */
void buf_reset(struct buf *b);
/* Make room for 'extra' more bytes; ERR_TOOBIG past the cap. */
enum err buf_grow(struct buf *b, size_t extra);
/* buf_add() when the bytes do not fit: grow, then append. */
enum err buf_add_grow(struct buf *b, const void *p, size_t n);

/*
 * The appends are inline: responses are built from hundreds of small
 * pieces, and a call, a capacity check and a strlen() each per piece
 * showed in search profiles.  Only growing leaves the header.
 */
static inline enum err buf_add(struct buf *b, const void *p, size_t n)
{
	/* cap is 0 or above len (room for the NUL): this fits with its NUL */
	if (b->err == ERR_OK && n < b->cap - b->len) {
		if (n)
			memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = '\0';
		return ERR_OK;
	}
	return buf_add_grow(b, p, n);
}

static inline enum err buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

static inline enum err buf_addch(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}
enum err buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
enum err buf_vaddf(struct buf *b, const char *fmt, va_list ap);
/* Append 's' as the inside of a JSON string (no quotes added). */
enum err buf_add_json_str(struct buf *b, const char *s, size_t n);
/* Shorten to 'len' bytes (len <= b->len). */
void buf_truncate(struct buf *b, size_t len);
/*
 * Hand the bytes to the caller (free() them); the buffer is left empty.
 * Always returns an allocated, NUL-terminated string.
 */
char *buf_take(struct buf *b, size_t *len);

#endif
