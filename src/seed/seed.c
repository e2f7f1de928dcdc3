/*
 * seed.c - seed_generate(): the shared directory, the demo people, then the
 * generated population.  See seed.h for the contract and people.c for who
 * the demo people are.
 *
 * Each person draws from their own PRNG stream (demo person i: stream i+1;
 * generated person k: stream 1000+k), so a person's record depends only on
 * the seed, today_ms and their number, not on how many came before.
 */
#include "seed/seed.h"

#include "seed/seed_int.h"

/* today_ms must fall in [2000-01-01, 9000-01-01): ages and history stay in four-digit years. */
#define TODAY_MIN_MS INT64_C(946684800000)
#define TODAY_MAX_MS INT64_C(221845392000000)

enum err seed_generate(const struct seed_opts *o, seed_emit_fn emit, void *arg, struct ctx *c)
{
	struct gen g = {0};

	if (!o || !emit)
		return ctx_errorf(c, ERR_INVALID, "seed: no options or no emit callback");
	if (o->today_ms < TODAY_MIN_MS || o->today_ms >= TODAY_MAX_MS)
		return ctx_errorf(c, ERR_INVALID, "seed: today_ms %lld is outside 2000-9000",
				  (long long)o->today_ms);
	g.o = o;
	g.fn = emit;
	g.arg = arg;
	g.c = c;
	g.today = day_of_ms(o->today_ms);
	g.now_ms = g.today * DAY_MS;

	if (seed_emit_directory(&g))
		goto out;
	for (size_t i = 0; i < seed_demo_count; i++)
		if (seed_emit_person(&g, &seed_demo_personas[i], (unsigned)i, i + 1))
			goto out;
	for (unsigned k = 1; k <= o->patients && k != 0; k++)
		if (seed_emit_person(&g, NULL, k, 1000 + (uint64_t)k))
			goto out;
out:
	return g.err;
}
