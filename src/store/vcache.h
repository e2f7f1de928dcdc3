/*
 * vcache.h - inside the SQLite backend only: a bounded in-memory cache of
 * stored versions (resource_version rows) keyed by their seq.
 *
 * A version row never changes once committed, and its seq is never given
 * to another row (AUTOINCREMENT; 0001_init.sql), so a cached copy is
 * valid for as long as the process runs: no invalidation.  The one rule
 * is on the writer's side: put only rows read outside the caller's own
 * transaction, which are committed (a row written by an open transaction
 * may be rolled back, and its seq used again).
 *
 * What it saves: a page of search results joins one version row per match
 * by seq.  Matches spread over a large file (a page of patients found by
 * name) cost a b-tree descent each, through pages that are rarely in the
 * CPU's caches; a hit costs one hash lookup.
 *
 * Thread-safe.  Entries are reference-counted: vcache_get() pins one, so
 * eviction by another thread never frees it under its reader.
 */
#ifndef VERANDA_STORE_VCACHE_H
#define VERANDA_STORE_VCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct vcache;

/* One cached version; read-only once published. */
struct vc_entry {
	atomic_int refs;
	int64_t seq;
	int64_t version;
	int64_t last_updated;
	bool deleted;
	char type[64];
	char id[72];
	size_t len;
	unsigned char json[];
};

/* A cache holding at most about 'budget' bytes; NULL when budget is 0. */
struct vcache *vcache_new(size_t budget);
void vcache_free(struct vcache *vc);

/* The entry for 'seq', pinned (release it with vcache_unpin()), or NULL. */
struct vc_entry *vcache_get(struct vcache *vc, int64_t seq);
void vcache_unpin(struct vc_entry *e);

/*
 * Offer 'r' (a committed version): it is copied in, evicting as needed,
 * the second time it is offered while the cache remembers the first; a
 * no-op when present.
 */
void vcache_put(struct vcache *vc, const struct store_resource *r);

/* Copy a pinned entry into 'r'; ERR_TOOBIG when its JSON does not fit. */
enum err vcache_copy(const struct vc_entry *e, struct store_resource *r);

void vcache_stats(struct vcache *vc, struct store_cache_stats *out);

#endif
