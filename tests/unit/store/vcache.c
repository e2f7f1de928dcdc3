/*
 * tests/unit/store/vcache.c - the version cache: lookups, the byte budget,
 * eviction order (FIFO with a second chance), pinned entries outliving
 * their eviction, and the table staying consistent through many inserts
 * and evictions (checked against a plain array).
 */
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/buf.h"
#include "store/vcache.h"

/* A resource of seq 'seq' whose JSON is 'len' bytes naming it. */
static void res_of(struct store_resource *r, int64_t seq, size_t len)
{
	char head[64];
	size_t n;

	store_resource_init(r);
	r->seq = seq;
	r->version = seq % 7 + 1;
	r->last_updated = 1000 * seq;
	snprintf(r->type, sizeof(r->type), "Patient");
	snprintf(r->id, sizeof(r->id), "p%lld", (long long)seq);
	n = (size_t)snprintf(head, sizeof(head), "{\"seq\":%lld}", (long long)seq);
	assert_int_equal(buf_add(&r->json, head, n), ERR_OK);
	while (r->json.len < len)
		assert_int_equal(buf_addch(&r->json, ' '), ERR_OK);
}

/* Offer a resource twice: the second offer admits it. */
static void put(struct vcache *vc, int64_t seq, size_t len)
{
	struct store_resource r;

	res_of(&r, seq, len);
	vcache_put(vc, &r);
	vcache_put(vc, &r);
	store_resource_release(&r);
}

static bool has(struct vcache *vc, int64_t seq)
{
	struct vc_entry *e = vcache_get(vc, seq);
	bool yes = e != NULL;

	if (e) {
		char want[64];

		snprintf(want, sizeof(want), "{\"seq\":%lld}", (long long)seq);
		assert_int_equal(e->seq, seq);
		assert_memory_equal(e->json, want, strlen(want));
	}
	vcache_unpin(e);
	return yes;
}

static void test_get_put_copy(void **state)
{
	struct vcache *vc = vcache_new(1 << 20);
	struct store_resource r, out;
	struct store_cache_stats st;
	struct vc_entry *e;

	(void)state;
	assert_null(vcache_new(0));
	assert_null(vcache_get(NULL, 1));
	assert_null(vcache_get(vc, 7));
	res_of(&r, 7, 300);
	vcache_put(vc, &r);
	/* offered once: remembered, not taken */
	assert_null(vcache_get(vc, 7));
	vcache_put(vc, &r);
	vcache_put(vc, &r); /* a third time: kept once */
	e = vcache_get(vc, 7);
	assert_non_null(e);
	store_resource_init(&out);
	assert_int_equal(vcache_copy(e, &out), ERR_OK);
	assert_string_equal(out.type, "Patient");
	assert_string_equal(out.id, "p7");
	assert_int_equal(out.seq, 7);
	assert_int_equal(out.version, r.version);
	assert_int_equal(out.last_updated, 7000);
	assert_false(out.deleted);
	assert_int_equal(out.json.len, 300);
	assert_memory_equal(out.json.data, r.json.data, 300);
	vcache_unpin(e);
	vcache_stats(vc, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.puts, 1);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 2);
	/* seq 0 is never a version */
	r.seq = 0;
	vcache_put(vc, &r);
	assert_null(vcache_get(vc, 0));
	store_resource_release(&r);
	store_resource_release(&out);
	vcache_free(vc);
}

/* One shard holds budget / 16: seqs that are multiples of 16 share one. */
static void test_budget_and_second_chance(void **state)
{
	/* 16 shards of 16 KiB: about twelve 1 KiB entries each */
	struct vcache *vc = vcache_new(16 * 16384);
	struct store_cache_stats st;
	int64_t kept = 0;

	(void)state;
	for (int64_t i = 1; i <= 12; i++)
		put(vc, i * 16, 1000);
	vcache_stats(vc, &st);
	assert_true(st.bytes <= 16384);
	/* read the first one: it is spared once when the shard is full */
	assert_true(has(vc, 16));
	for (int64_t i = 13; i <= 40; i++) {
		put(vc, i * 16, 1000);
		vcache_stats(vc, &st);
		assert_true(st.bytes <= 16384);
	}
	assert_true(st.evictions > 0);
	/* the newest are there, the oldest unread ones are not */
	assert_true(has(vc, 40 * 16));
	assert_false(has(vc, 2 * 16));
	for (int64_t i = 1; i <= 40; i++)
		kept += has(vc, i * 16);
	assert_int_equal((size_t)kept, st.entries);
	/* a resource larger than an eighth of a shard is not cached */
	put(vc, 41 * 16, 4000);
	assert_false(has(vc, 41 * 16));
	vcache_free(vc);
}

static void test_spared_entry_outlives_a_plain_one(void **state)
{
	struct vcache *vc = vcache_new(16 * 16384);

	/* as many 1,000-byte resources as one shard holds */
	int64_t fit = 16384 / (int64_t)(sizeof(struct vc_entry) + 1000);
	struct store_cache_stats st;

	(void)state;
	for (int64_t i = 1; i <= fit; i++)
		put(vc, i * 16, 1000);
	vcache_stats(vc, &st);
	assert_int_equal(st.evictions, 0);
	assert_true(has(vc, 1 * 16));
	put(vc, (fit + 1) * 16, 1000); /* evicts 2: 1 was read */
	vcache_stats(vc, &st);
	assert_int_equal(st.evictions, 1);
	assert_true(has(vc, 1 * 16));
	assert_false(has(vc, 2 * 16));
	assert_true(has(vc, 3 * 16));
	vcache_free(vc);
}

static void test_pinned_entry_survives_eviction(void **state)
{
	struct vcache *vc = vcache_new(16 * 16384);
	struct vc_entry *e;

	(void)state;
	put(vc, 16, 1000);
	e = vcache_get(vc, 16);
	assert_non_null(e);
	vcache_unpin(vcache_get(vc, 16)); /* read twice: spared once */
	for (int64_t i = 2; i <= 60; i++)
		put(vc, i * 16, 1000);
	assert_false(has(vc, 16));
	/* still readable (ASan would report a use after free) */
	assert_int_equal(e->seq, 16);
	assert_memory_equal(e->json, "{\"seq\":16}", 10);
	vcache_unpin(e);
	vcache_free(vc);
}

/*
 * Many inserts and evictions in one shard, with keys that collide in the
 * table: every seq the cache says it has is right, and exactly the ones
 * still counted are found.
 */
static void test_table_stays_consistent(void **state)
{
	struct vcache *vc = vcache_new(16 * 65536);
	struct store_cache_stats st;
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		int64_t seq = 16 * (1 + (int64_t)(rand_r(&seed) % 3000));

		if (rand_r(&seed) % 3 == 0)
			(void)has(vc, seq);
		else
			put(vc, seq, 200 + (size_t)(rand_r(&seed) % 600));
	}
	{
		size_t found = 0;

		for (int64_t s = 1; s <= 3000; s++)
			found += has(vc, 16 * s);
		vcache_stats(vc, &st);
		assert_int_equal(found, st.entries);
		assert_true(st.bytes <= 65536);
		assert_true(st.evictions > 1000);
	}
	vcache_free(vc);
}

/* Threads reading and filling the same shards; run under ASan and TSan-like checks. */
struct worker {
	struct vcache *vc;
	unsigned seed;
	int bad;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 20000; i++) {
		int64_t seq = 1 + (int64_t)(rand_r(&w->seed) % 4000);
		struct vc_entry *e = vcache_get(w->vc, seq);

		if (e) {
			char want[64];

			snprintf(want, sizeof(want), "{\"seq\":%lld}", (long long)seq);
			if (e->seq != seq || memcmp(e->json, want, strlen(want)))
				w->bad++;
			vcache_unpin(e);
		} else {
			struct store_resource r;

			res_of(&r, seq, 100 + (size_t)(seq % 900));
			vcache_put(w->vc, &r);
			store_resource_release(&r);
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct vcache *vc = vcache_new(256 * 1024);
	struct worker w[4];
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){vc, (unsigned)(i + 1) * 7919u, 0};
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	vcache_free(vc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_put_copy),
		cmocka_unit_test(test_budget_and_second_chance),
		cmocka_unit_test(test_spared_entry_outlives_a_plain_one),
		cmocka_unit_test(test_pinned_entry_survives_eviction),
		cmocka_unit_test(test_table_stays_consistent),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
