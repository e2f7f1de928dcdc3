/*
 * url.h - percent-decoding and -encoding shared by the HTTP layer and the services that
 * read URLs from documents (Bundle entry request URLs).  Pure functions.
 */
#ifndef VERANDA_CORE_URL_H
#define VERANDA_CORE_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/*
 * Decode s[0..n) into dst (at least n bytes; not NUL-terminated); '+'
 * becomes a space when 'form' is true.  Returns the decoded length, or -1
 * for a malformed escape or a decoded NUL byte.
 */
long url_pct_decode_mem(const char *s, size_t n, bool form, char *dst);

/*
 * Append "name=value" to the URL in 'b' as a query parameter: '?' when
 * the URL has no query yet, else '&'; both percent-encoded (RFC 3986
 * unreserved characters kept).  Returns b's error state.
 */
enum err url_add_param(struct buf *b, const char *name, const char *value);

#endif
