/*
 * base64.h - base64url without padding (RFC 4648 section 5), as JOSE and
 * page cursors use it, and standard base64.  Appends to a struct buf.
 */
#ifndef VERANDA_CORE_BASE64_H
#define VERANDA_CORE_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

enum err base64url_encode(const void *data, size_t n, struct buf *out);
/* ERR_INVALID for characters outside the alphabet, padding, or a bad length. */
enum err base64url_decode(const char *s, size_t n, struct buf *out);
/* Standard alphabet with padding. */
enum err base64_encode(const void *data, size_t n, struct buf *out);
/* Standard alphabet; padding optional; whitespace not allowed. */
enum err base64_decode(const char *s, size_t n, struct buf *out);

#endif
