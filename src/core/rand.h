/*
 * rand.h - cryptographically secure randomness (getrandom(2)).
 * Thread-safe.  Failure to get entropy is fatal: there is no safe fallback.
 */
#ifndef VERANDA_CORE_RAND_H
#define VERANDA_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

void rand_bytes(void *out, size_t n);
/*
 * Random bytes for identifiers that must be unique and unguessable but
 * guard nothing (request and trace ids): taken from a per-thread pool of
 * getrandom(2) output refilled 4 KiB at a time, so that a request does
 * not pay a system call for its ids.  Never for keys, tokens or secrets:
 * the pool sits in memory until used.
 */
void rand_id_bytes(void *out, size_t n);
/* A random RFC 4122 version-4 UUID, lowercase, 36 chars + NUL. */
void rand_uuid(char out[37]);
/* 'n' random bytes as lowercase hex into out[2n+1]. */
void rand_hex(char *out, size_t n);
uint64_t rand_u64(void);

#endif
