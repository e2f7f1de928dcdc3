/*
 * vcache.c - the version cache (see vcache.h).
 *
 * SHARDS independent shards, chosen by seq, each with its own mutex, hash
 * table and share of the byte budget.  The table is open addressing over
 * (seq, entry, used) slots, so a lookup, hit or miss, reads the table and
 * not the entries (each a separate allocation, rarely in the CPU's
 * caches).  Admission on the second offer (vcache_put()), eviction FIFO
 * with a second chance (make_room()).
 *
 * An entry's bytes count its JSON, ids and header; the table and ring
 * arrays are small beside them and not counted.
 */
#include "store/vcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/store_int.h"

#define SHARDS 16
/* Seqs each shard remembers having been offered once (GHOSTS * 8 bytes). */
#define GHOSTS 4096

/* A table slot: seq 0 is empty (AUTOINCREMENT starts at 1). */
struct slot {
	int64_t seq;
	struct vc_entry *e;
	bool used;               /* read since it last came up for eviction */
};

struct shard {
	pthread_mutex_t mu;
	struct slot *tab;        /* open addressing, linear probing */
	size_t cap;              /* a power of two, at least twice count */
	int64_t *ring;           /* seqs in the order they came up (FIFO) */
	size_t ring_cap, ring_head, ring_len;
	size_t count, bytes, budget;
	uint64_t hits, misses, puts, evictions;
	int64_t ghost[GHOSTS];   /* offered once, not taken: direct-mapped by hash */
};

struct vcache {
	struct shard shard[SHARDS];
};

static uint64_t mix(int64_t seq)
{
	uint64_t x = (uint64_t)seq;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static struct shard *shard_of(struct vcache *vc, int64_t seq)
{
	return &vc->shard[(uint64_t)seq % SHARDS];
}

struct vcache *vcache_new(size_t budget)
{
	struct vcache *vc;

	if (budget == 0)
		return NULL;
	vc = xcalloc(1, sizeof(*vc));
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &vc->shard[i];

		pthread_mutex_init(&sh->mu, NULL);
		sh->cap = 256;
		sh->tab = xcalloc(sh->cap, sizeof(*sh->tab));
		sh->budget = budget / SHARDS;
	}
	return vc;
}

void vcache_unpin(struct vc_entry *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1)
		free(e);
}

void vcache_free(struct vcache *vc)
{
	if (!vc)
		return;
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &vc->shard[i];

		for (size_t j = 0; j < sh->cap; j++)
			if (sh->tab[j].seq)
				vcache_unpin(sh->tab[j].e);
		free(sh->tab);
		free(sh->ring);
		pthread_mutex_destroy(&sh->mu);
	}
	free(vc);
}

/* The slot of 'seq', or the empty slot where it would go. */
static size_t probe(const struct shard *sh, int64_t seq)
{
	size_t m = sh->cap - 1, i = mix(seq) & m;

	while (sh->tab[i].seq && sh->tab[i].seq != seq)
		i = (i + 1) & m;
	return i;
}

/* Empty slot i, moving later members of its run back (no tombstones). */
static void remove_at(struct shard *sh, size_t i)
{
	size_t m = sh->cap - 1, j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & m;
		if (!sh->tab[j].seq)
			break;
		home = mix(sh->tab[j].seq) & m;
		/* leave j where it is when its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		sh->tab[i] = sh->tab[j];
		i = j;
	}
	sh->tab[i] = (struct slot){0, NULL, false};
}

static void grow_table(struct shard *sh)
{
	struct slot *old = sh->tab;
	size_t n = sh->cap;

	sh->cap *= 2;
	sh->tab = xcalloc(sh->cap, sizeof(*sh->tab));
	for (size_t i = 0; i < n; i++)
		if (old[i].seq)
			sh->tab[probe(sh, old[i].seq)] = old[i];
	free(old);
}

static void ring_push(struct shard *sh, int64_t seq)
{
	if (sh->ring_len == sh->ring_cap) {
		size_t n = sh->ring_cap ? sh->ring_cap * 2 : 256;
		int64_t *r = xmalloc(n * sizeof(*r));

		for (size_t k = 0; k < sh->ring_len; k++)
			r[k] = sh->ring[(sh->ring_head + k) % sh->ring_cap];
		free(sh->ring);
		sh->ring = r;
		sh->ring_cap = n;
		sh->ring_head = 0;
	}
	sh->ring[(sh->ring_head + sh->ring_len++) % sh->ring_cap] = seq;
}

static int64_t ring_pop(struct shard *sh)
{
	int64_t seq = sh->ring[sh->ring_head];

	sh->ring_head = (sh->ring_head + 1) % sh->ring_cap;
	sh->ring_len--;
	return seq;
}

struct vc_entry *vcache_get(struct vcache *vc, int64_t seq)
{
	struct shard *sh;
	struct slot *sl;
	struct vc_entry *e = NULL;

	if (!vc || seq <= 0)
		return NULL;
	sh = shard_of(vc, seq);
	pthread_mutex_lock(&sh->mu);
	sl = &sh->tab[probe(sh, seq)];
	if (sl->seq) {
		e = sl->e;
		sl->used = true;
		atomic_fetch_add(&e->refs, 1);
		sh->hits++;
	} else {
		sh->misses++;
	}
	pthread_mutex_unlock(&sh->mu);
	return e;
}

/*
 * Evict until 'need' more bytes fit: the oldest entry first, except that
 * one read since it last came up goes round again (second chance), so a
 * page read again and again stays while a one-off scan goes.
 */
static void make_room(struct shard *sh, size_t need)
{
	size_t spared = 0;

	while (sh->bytes + need > sh->budget && sh->ring_len) {
		int64_t seq = ring_pop(sh);
		size_t i = probe(sh, seq);
		struct vc_entry *e = sh->tab[i].e;

		if (sh->tab[i].used && spared++ < sh->count) {
			sh->tab[i].used = false;
			ring_push(sh, seq);
			continue;
		}
		remove_at(sh, i);
		sh->count--;
		sh->bytes -= sizeof(*e) + e->len;
		sh->evictions++;
		vcache_unpin(e);
	}
}

void vcache_put(struct vcache *vc, const struct store_resource *r)
{
	struct shard *sh;
	struct vc_entry *e;
	size_t size, i;

	if (!vc || r->seq <= 0)
		return;
	sh = shard_of(vc, r->seq);
	size = sizeof(*e) + r->json.len;
	if (size > sh->budget / 8)
		return; /* one large resource must not empty the shard */
	/*
	 * Admission: a version comes in the second time it is offered while
	 * the shard still remembers the first, so a one-off scan (a search
	 * nobody repeats) costs a remembered seq, not an entry and an
	 * eviction.
	 */
	pthread_mutex_lock(&sh->mu);
	{
		int64_t *g = &sh->ghost[(mix(r->seq) >> 32) % GHOSTS];
		bool second = *g == r->seq;

		*g = second ? 0 : r->seq;
		if (!second || sh->tab[probe(sh, r->seq)].seq) {
			pthread_mutex_unlock(&sh->mu);
			return;
		}
	}
	pthread_mutex_unlock(&sh->mu);
	e = xmalloc(size);
	memset(e, 0, sizeof(*e));
	atomic_init(&e->refs, 1);
	e->seq = r->seq;
	e->version = r->version;
	e->last_updated = r->last_updated;
	e->deleted = r->deleted;
	str_copy(e->type, r->type, sizeof(e->type));
	str_copy(e->id, r->id, sizeof(e->id));
	e->len = r->json.len;
	if (e->len)
		memcpy(e->json, r->json.data, e->len);

	pthread_mutex_lock(&sh->mu);
	if (sh->tab[probe(sh, r->seq)].seq) {
		pthread_mutex_unlock(&sh->mu);
		free(e);
		return;
	}
	make_room(sh, size);
	if ((sh->count + 1) * 2 > sh->cap)
		grow_table(sh);
	i = probe(sh, r->seq);
	sh->tab[i] = (struct slot){r->seq, e, false};
	ring_push(sh, r->seq);
	sh->count++;
	sh->bytes += size;
	sh->puts++;
	pthread_mutex_unlock(&sh->mu);
}

enum err vcache_copy(const struct vc_entry *e, struct store_resource *r)
{
	str_copy(r->type, e->type, sizeof(r->type));
	str_copy(r->id, e->id, sizeof(r->id));
	r->version = e->version;
	r->last_updated = e->last_updated;
	r->deleted = e->deleted;
	r->seq = e->seq;
	return store_resource_set_json(r, e->json, e->len);
}

void vcache_stats(struct vcache *vc, struct store_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; vc && i < SHARDS; i++) {
		struct shard *sh = &vc->shard[i];

		pthread_mutex_lock(&sh->mu);
		out->hits += sh->hits;
		out->misses += sh->misses;
		out->puts += sh->puts;
		out->evictions += sh->evictions;
		out->bytes += sh->bytes;
		out->entries += sh->count;
		pthread_mutex_unlock(&sh->mu);
	}
}
