/*
 * tests/unit/store/items.c - the auth items of the store (store.h, "auth
 * items") on the SQLite backend.
 *
 * Each test gets a fresh temporary directory with a migrated store.
 * Covers put/get/replace, the atomic take (exactly one of two takes wins),
 * state changes by owner and group, deletes, listing, purging, and the
 * argument checks.
 */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/str.h"
#include "store/store.h"
#include "store/store_int.h"

struct fx {
	char dir[256];
	char url[320];
	struct store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	struct ctx c = CTX_INIT;

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-items-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->url, sizeof(f->url), "sqlite:%s/t.db", f->dir);
	if (store_open(&f->s, f->url, 5000, &c) || store_migrate(f->s, &c)) {
		fprintf(stderr, "setup: %s\n", c.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}


static void make_item(struct store_item *it, const char *ns, const char *key, int64_t uid,
		      const char *grp, const char *data, int64_t expires)
{
	store_item_release(it);
	store_item_init(it);
	str_copy(it->ns, ns, sizeof(it->ns));
	str_copy(it->key, key, sizeof(it->key));
	str_copy(it->grp, grp ? grp : "", sizeof(it->grp));
	it->uid = uid;
	buf_adds(&it->data, data);
	it->created = 1000;
	it->expires = expires;
}

static void test_put_get(void **state)
{
	struct fx *f = *state;
	struct store_item it, out;
	struct ctx c = CTX_INIT;

	store_item_init(&it);
	store_item_init(&out);
	make_item(&it, "session", "abc", 7, NULL, "{\"a\":1}", 5000);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	assert_int_equal(store_item_get(f->s, "session", "abc", &out, &c), ERR_OK);
	assert_string_equal(out.ns, "session");
	assert_string_equal(out.key, "abc");
	assert_int_equal(out.uid, 7);
	assert_string_equal(out.grp, "");
	assert_int_equal(out.data.len, 7);
	assert_memory_equal(out.data.data, "{\"a\":1}", 7);
	assert_int_equal(out.created, 1000);
	assert_int_equal(out.expires, 5000);
	assert_int_equal(out.state, STORE_ITEM_LIVE);

	/* the same key again: a conflict unless replacing */
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_CONFLICT);
	make_item(&it, "session", "abc", 0, "g", "", 0);
	assert_int_equal(store_item_put(f->s, &it, true, &c), ERR_OK);
	assert_int_equal(store_item_get(f->s, "session", "abc", &out, &c), ERR_OK);
	assert_int_equal(out.uid, 0);
	assert_string_equal(out.grp, "g");
	assert_int_equal(out.data.len, 2); /* empty data is stored as {} */

	/* namespaces are separate */
	assert_int_equal(store_item_get(f->s, "code", "abc", &out, &c), ERR_NOTFOUND);

	/* bad arguments */
	make_item(&it, "", "k", 0, NULL, "{}", 0);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_INVALID);
	make_item(&it, "ns", "", 0, NULL, "{}", 0);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_INVALID);
	assert_int_equal(store_item_get(f->s, "averyveryverylongnamespace", "k", &out, &c),
			 ERR_INVALID);

	/* update: data and expiry, or keep either */
	assert_int_equal(store_item_update(f->s, "session", "abc", "{\"b\":2}", -1, &c), ERR_OK);
	assert_int_equal(store_item_get(f->s, "session", "abc", &out, &c), ERR_OK);
	assert_memory_equal(out.data.data, "{\"b\":2}", 7);
	assert_int_equal(out.expires, 0);
	assert_int_equal(store_item_update(f->s, "session", "abc", NULL, 99, &c), ERR_OK);
	assert_int_equal(store_item_get(f->s, "session", "abc", &out, &c), ERR_OK);
	assert_memory_equal(out.data.data, "{\"b\":2}", 7);
	assert_int_equal(out.expires, 99);
	assert_int_equal(store_item_update(f->s, "session", "nope", NULL, 1, &c), ERR_NOTFOUND);
	store_item_release(&it);
	store_item_release(&out);
}

static void test_take(void **state)
{
	struct fx *f = *state;
	struct store_item it, out;
	struct ctx c = CTX_INIT;

	store_item_init(&it);
	store_item_init(&out);
	make_item(&it, "code", "h1", 3, "grant-1", "{\"x\":true}", 0);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	assert_int_equal(store_item_take(f->s, "code", "h1", STORE_ITEM_LIVE, STORE_ITEM_USED,
					 &out, &c), ERR_OK);
	assert_int_equal(out.state, STORE_ITEM_LIVE); /* as it was before */
	assert_string_equal(out.grp, "grant-1");
	/* a second take is refused but still reads the item */
	ctx_clear(&c);
	assert_int_equal(store_item_take(f->s, "code", "h1", STORE_ITEM_LIVE, STORE_ITEM_USED,
					 &out, &c), ERR_CONFLICT);
	assert_true(c.msg[0] != '\0');
	assert_int_equal(out.state, STORE_ITEM_USED);
	assert_string_equal(out.grp, "grant-1");
	assert_int_equal(store_item_take(f->s, "code", "zz", STORE_ITEM_LIVE, STORE_ITEM_USED,
					 NULL, &c), ERR_NOTFOUND);
	/* a refused take leaves the store usable and a caller's transaction intact */
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	make_item(&it, "code", "h2", 3, "grant-2", "{}", 0);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	assert_int_equal(store_item_take(f->s, "code", "h1", STORE_ITEM_LIVE, STORE_ITEM_USED,
					 NULL, &c), ERR_CONFLICT);
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	assert_int_equal(store_item_get(f->s, "code", "h2", &out, &c), ERR_OK);
	store_item_release(&it);
	store_item_release(&out);
}

static int collect(void *arg, const struct store_item *it)
{
	struct buf *b = arg;

	buf_addf(b, "%s:%d;", it->key, it->state);
	return 0;
}

static void test_state_delete_list_purge(void **state)
{
	struct fx *f = *state;
	struct store_item it;
	struct ctx c = CTX_INIT;
	struct buf b = BUF_INIT(4096);
	int64_t n = -1;

	store_item_init(&it);
	make_item(&it, "grant", "g1", 5, "app", "{}", 0);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	make_item(&it, "grant", "g2", 5, "app", "{}", 2000);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	make_item(&it, "grant", "g3", 6, "other", "{}", 3000);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	make_item(&it, "refresh", "r1", 0, "g1", "{}", 0);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	make_item(&it, "refresh", "r2", 0, "g1", "{}", 0);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);

	/* revoke every grant of user 5 */
	assert_int_equal(store_item_set_state_uid(f->s, "grant", 5, STORE_ITEM_REVOKED, &n, &c),
			 ERR_OK);
	assert_int_equal(n, 2);
	/* again: nothing changes */
	assert_int_equal(store_item_set_state_uid(f->s, "grant", 5, STORE_ITEM_REVOKED, &n, &c),
			 ERR_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_item_list(f->s, "grant", 0, NULL, collect, &b, &c), ERR_OK);
	assert_string_equal(b.data, "g1:2;g2:2;g3:0;");

	/* the refresh tokens of grant g1 */
	assert_int_equal(store_item_set_state_grp(f->s, "refresh", "g1", STORE_ITEM_REVOKED, &n,
						  &c), ERR_OK);
	assert_int_equal(n, 2);
	buf_reset(&b);
	assert_int_equal(store_item_list(f->s, "refresh", 0, "g1", collect, &b, &c), ERR_OK);
	assert_string_equal(b.data, "r1:2;r2:2;");
	buf_reset(&b);
	assert_int_equal(store_item_list(f->s, "grant", 6, NULL, collect, &b, &c), ERR_OK);
	assert_string_equal(b.data, "g3:0;");

	/* purge: only expired items with an expiry */
	assert_int_equal(store_item_purge(f->s, 2500, &n, &c), ERR_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_item_get(f->s, "grant", "g2", NULL, &c), ERR_NOTFOUND);
	assert_int_equal(store_item_get(f->s, "grant", "g1", NULL, &c), ERR_OK);

	/* delete one, then all of an owner */
	assert_int_equal(store_item_delete(f->s, "grant", "g3", &c), ERR_OK);
	assert_int_equal(store_item_delete(f->s, "grant", "g3", &c), ERR_OK);
	assert_int_equal(store_item_delete_uid(f->s, "grant", 5, &n, &c), ERR_OK);
	assert_int_equal(n, 1);
	buf_reset(&b);
	assert_int_equal(store_item_list(f->s, "grant", 0, NULL, collect, &b, &c), ERR_OK);
	assert_int_equal(b.len, 0);
	buf_release(&b);
	store_item_release(&it);
}

/* A failing statement is a clean error, and the store works on. */
static void test_faults(void **state)
{
	struct fx *f = *state;
	struct store_item it;
	bool done = false;

	store_item_init(&it);
	for (long k = 1; k < 20 && !done; k++) {
		struct ctx c = CTX_INIT;
		char key[16];
		enum err e;

		snprintf(key, sizeof(key), "k%ld", k);
		make_item(&it, "code", key, 1, NULL, "{}", 0);
		store_test_fault(f->s, k, STORE_FAULT_BUSY);
		e = store_item_put(f->s, &it, false, &c);
		if (!e)
			e = store_item_take(f->s, "code", key, 0, 1, NULL, &c);
		store_test_fault(f->s, 0, STORE_FAULT_NONE);
		if (!e) {
			done = true;
			break;
		}
		assert_int_equal(e, ERR_BUSY);
		ctx_clear(&c);
		assert_int_equal(store_begin(f->s, &c), ERR_OK);
		assert_int_equal(store_commit(f->s, &c), ERR_OK);
	}
	assert_true(done);
	store_item_release(&it);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_delete_list_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
