/*
 * str.h - small string helpers: bounded copies, strtonum-style integer
 * parsing, constant-time comparison, ASCII case helpers.  No allocation
 * unless the name says so.
 */
#ifndef VERANDA_CORE_STR_H
#define VERANDA_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Copy at most size-1 bytes and NUL-terminate; returns strlen(src). */
size_t str_copy(char *dst, const char *src, size_t size);

/*
 * Parse a whole decimal integer in [min, max] (like OpenBSD strtonum).
 * Leading/trailing space, signs beyond one '-', and trailing junk fail
 * with ERR_INVALID; out of range fails with ERR_INVALID too.
 */
enum err str_to_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Constant-time comparison of two byte strings (length leaks, content not). */
bool str_eq_ct(const void *a, size_t alen, const void *b, size_t blen);

bool str_starts(const char *s, const char *prefix);
bool str_ends(const char *s, const char *suffix);
/* ASCII case-insensitive equality. */
bool str_ieq(const char *a, const char *b);

/* Is every byte of s[0..n) a valid UTF-8 sequence (no overlongs/surrogates)? */
bool str_utf8_valid(const char *s, size_t n);

#endif
