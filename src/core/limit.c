/*
 * limit.c - failures counted per key in fixed windows (see limit.h).
 *
 * Open addressing over LIMIT_SLOTS slots; a key probes LIMIT_PROBE of
 * them from its hash, seeded at random per table so that no one can work
 * out offline which keys share slots.  A slot remembers the key's hash
 * and its first LIMIT_KEY - 1 bytes: two longer keys alike in both share a
 * count.  A key that has reached the limit keeps its slot until its window
 * ends: when a new key finds its slots all live, it takes the one with the
 * fewest failures among those not refused, or goes uncounted.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/limit.h"
#include "core/mem.h"
#include "core/rand.h"
#include "core/str.h"

#define LIMIT_SLOTS 4096
#define LIMIT_PROBE 8
#define LIMIT_KEY 136

struct slot {
	uint64_t hash;
	int64_t start;          /* ms: the window's start; 0: free */
	int64_t count;
	char key[LIMIT_KEY];
};

struct limit {
	pthread_mutex_t mu;
	int64_t max, window;
	uint64_t seed;
	struct slot slots[LIMIT_SLOTS];
};

struct limit *limit_new(int64_t max, int64_t window_ms)
{
	struct limit *l = xcalloc(1, sizeof(*l));

	pthread_mutex_init(&l->mu, NULL);
	l->max = max;
	l->window = window_ms > 0 ? window_ms : 1;
	l->seed = rand_u64();
	return l;
}

void limit_free(struct limit *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* FNV-1a from a random basis, then mixed (splitmix64's finalizer). */
static uint64_t key_hash(const struct limit *l, const char *s)
{
	uint64_t h = 1469598103934665603ULL ^ l->seed;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static bool live(const struct limit *l, const struct slot *s, int64_t now)
{
	return s->start && now - s->start < l->window;
}

static bool refusing(const struct limit *l, const struct slot *s, int64_t now)
{
	return live(l, s, now) && s->count >= l->max;
}

/*
 * The slot of 'key' (caller holds the lock): its own, else (when 'take')
 * a free or expired one, else the live one with the fewest failures that
 * is not refusing; NULL when there is none of those, or when the key has
 * no slot and 'take' is false.
 */
static struct slot *slot_of(struct limit *l, const char *key, int64_t now, bool take)
{
	uint64_t h = key_hash(l, key);
	struct slot *spare = NULL;

	for (size_t i = 0; i < LIMIT_PROBE; i++) {
		struct slot *s = &l->slots[(h + i) % LIMIT_SLOTS];

		if (s->start && s->hash == h && !strncmp(s->key, key, LIMIT_KEY - 1))
			return s;
		if (refusing(l, s, now))
			continue;
		if (!spare || (live(l, spare, now) && (!live(l, s, now) || s->count < spare->count)))
			spare = s;
	}
	if (!take || !spare)
		return NULL;
	spare->hash = h;
	spare->start = 0;
	spare->count = 0;
	str_copy(spare->key, key, sizeof(spare->key));
	return spare;
}

int64_t limit_refused_ms(struct limit *l, const char *key, int64_t now_ms)
{
	int64_t left = 0;
	struct slot *s;

	if (!l || l->max <= 0 || !key)
		return 0;
	pthread_mutex_lock(&l->mu);
	s = slot_of(l, key, now_ms, false);
	if (s && live(l, s, now_ms) && s->count >= l->max)
		left = s->start + l->window - now_ms;
	pthread_mutex_unlock(&l->mu);
	return left;
}

bool limit_fail(struct limit *l, const char *key, int64_t now_ms)
{
	bool reached;
	struct slot *s;

	if (!l || l->max <= 0 || !key)
		return false;
	pthread_mutex_lock(&l->mu);
	if (!(s = slot_of(l, key, now_ms, true))) {
		pthread_mutex_unlock(&l->mu);
		return false; /* every slot it could take is refusing another key */
	}
	if (!live(l, s, now_ms)) {
		s->start = now_ms > 0 ? now_ms : 1;
		s->count = 0;
	}
	s->count++;
	reached = s->count == l->max;
	pthread_mutex_unlock(&l->mu);
	return reached;
}
