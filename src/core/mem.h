/*
 * mem.h - allocation with one out-of-memory policy: print a message and
 * abort.  Veranda is an application; client-controlled sizes are capped
 * before they reach an allocator, so running out of memory is a fault of
 * the host, not of the request.
 */
#ifndef VERANDA_CORE_MEM_H
#define VERANDA_CORE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Wipe 'n' bytes at 'p' (secrets) in a way the compiler cannot drop. */
void mem_wipe(void *p, size_t n);
/* Wipe a NUL-terminated secret and free it.  NULL is fine. */
void secret_free(char *s);

#endif
