/*
 * arena.h - a bump allocator for one request (or one command).  Memory is
 * released all at once by arena_release(), which first runs the registered
 * cleanups in reverse order (json_t references, statements, files).
 * Allocation never fails (abort on OOM, see mem.h); callers cap sizes.
 * Not thread-safe: an arena belongs to one request.
 */
#ifndef VERANDA_CORE_ARENA_H
#define VERANDA_CORE_ARENA_H

#include <stddef.h>

struct arena_block;
struct arena_cleanup;

struct arena {
	struct arena_block *blocks;
	struct arena_cleanup *cleanups;
};

#define ARENA_INIT {NULL, NULL}

void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Run fn(arg) when the arena is released. */
void arena_on_release(struct arena *a, void (*fn)(void *), void *arg);
void arena_release(struct arena *a);

#endif
