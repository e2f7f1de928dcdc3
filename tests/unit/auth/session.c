/*
 * tests/unit/auth/session.c - sign-in sessions (auth/session.c) over a
 * real SQLite store and real keys in a temporary directory: a sign-in whose
 * account changed between the password check and the session, a change of
 * password that renews the session making it (times kept, a new id, online
 * grants following it, revoked ones left revoked, every other session
 * ended), and one whose session ended meanwhile.
 *
 * Hashes use the default (OWASP) parameters, ~20 ms each.
 */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/clients.h"
#include "auth/keys.h"
#include "auth/oauth.h"
#include "auth/oauth_int.h"
#include "auth/users.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/str.h"
#include "store/store.h"

#define PW "first password"

struct fx {
	char dir[256];
	char url[320];
	struct store *s;
	struct users *us;
	struct clients *cs;
	struct keys *keys;
	struct oauth *o;
	struct user u;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	struct oauth_opts oo = {.base_url = "https://ehr.example", .access_ttl = 900, .backend_ttl = 300,
				.code_ttl = 60, .refresh_ttl = 86400, .session_idle = 900,
				.session_max = 43200, .launch_ttl = 300, .lock_after = 10, .lock_time = 900};
	struct user_spec sp = {"dana", USER_SUPPORT, NULL, PW, strlen(PW), NULL, 0};
	struct ctx c = CTX_INIT;

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-auth-session-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->url, sizeof(f->url), "sqlite:%s/t.db", f->dir);
	if (store_open(&f->s, f->url, 5000, &c) || store_migrate(f->s, &c) ||
	    users_new(&f->us, f->s, NULL, &c) || clients_new(&f->cs, f->s, &c) ||
	    keys_init(f->dir, &c) || keys_load(f->dir, &f->keys, &c) ||
	    oauth_new(&f->o, f->s, f->us, f->cs, f->keys, &oo, &c) || user_add(f->us, &sp, NULL, &c) ||
	    user_get_by_name(f->us, "dana", &f->u, &c)) {
		fprintf(stderr, "setup: %s\n", c.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	oauth_free(f->o);
	keys_free(f->keys);
	clients_free(f->cs);
	users_free(f->us);
	store_close(f->s);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* A signed-in session of dana: its cookie in cookie[], itself in *se. */
static void sign_in(struct fx *f, char cookie[OAUTH_ID_SIZE], struct session *se)
{
	struct user u;
	int64_t retry = 0;
	struct ctx c = CTX_INIT;

	assert_int_equal(oauth_signin(f->o, "dana", PW, "192.0.2.1", &u, &retry, &c), ERR_OK);
	assert_int_equal(oauth_session_start(f->o, &u, false, cookie, se, &c), ERR_OK);
	assert_int_equal(oauth_session_get(f->o, cookie, se, &c), ERR_OK);
}

/* A grant of dana's made in session 'session_hash', in state 'state'. */
static void put_grant(struct fx *f, const char *key, const char *session_hash, int state)
{
	struct store_item it;
	struct ctx c = CTX_INIT;

	store_item_init(&it);
	str_copy(it.ns, "grant", sizeof(it.ns));
	str_copy(it.key, key, sizeof(it.key));
	str_copy(it.grp, "app", sizeof(it.grp));
	it.uid = f->u.uid;
	it.state = state;
	it.created = 1700000000000;
	it.expires = clock_now_ms() + 86400000;
	buf_reset(&it.data);
	buf_addf(&it.data, "{\"scope\":\"online_access user/Patient.rs\",\"session\":\"%s\"}", session_hash);
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	store_item_release(&it);
}

/* The grant's item: its session field in out[], its state and creation time. */
static void grant_of(struct fx *f, const char *key, char *out, size_t n, int *state, int64_t *created)
{
	struct store_item it;
	struct ctx c = CTX_INIT;
	const char *p;

	store_item_init(&it);
	assert_int_equal(store_item_get(f->s, "grant", key, &it, &c), ERR_OK);
	*state = it.state;
	*created = it.created;
	p = strstr(it.data.data, "\"session\":\"");
	assert_non_null(p);
	p += 11;
	snprintf(out, n, "%.*s", (int)(strchr(p, '"') - p), p);
	store_item_release(&it);
}

static void test_signin_straddling_a_change(void **state)
{
	struct fx *f = *state;
	char cookie[OAUTH_ID_SIZE], phc[PASSWORD_PHC_MAX];
	struct session se;
	struct user before;
	int64_t retry = 0;
	struct ctx c = CTX_INIT;

	/* the password is checked ... */
	assert_int_equal(oauth_signin(f->o, "dana", PW, "192.0.2.1", &before, &retry, &c), ERR_OK);
	/* ... the password changes and every session ends ... */
	assert_int_equal(user_password_hash(f->us, "dana", "second password", 15, phc, &c), ERR_OK);
	assert_int_equal(user_password_store(f->us, "dana", phc, &c), ERR_OK);
	/* ... so the session the first check would open is refused */
	assert_int_equal(oauth_session_start(f->o, &before, false, cookie, &se, &c), ERR_CONFLICT);
	ctx_clear(&c);
	/* and one whose check comes after the change opens */
	assert_int_equal(oauth_signin(f->o, "dana", "second password", "192.0.2.1", &before, &retry, &c),
			 ERR_OK);
	assert_int_equal(oauth_session_start(f->o, &before, false, cookie, &se, &c), ERR_OK);
	assert_int_equal(oauth_session_get(f->o, cookie, &se, &c), ERR_OK);
	/* a disabling in between is refused the same way */
	assert_int_equal(oauth_signin(f->o, "dana", "second password", "192.0.2.1", &before, &retry, &c),
			 ERR_OK);
	assert_int_equal(user_disable(f->us, "dana", &c), ERR_OK);
	assert_int_equal(oauth_session_start(f->o, &before, false, cookie, &se, &c), ERR_CONFLICT);
}

static void test_password_change_renews_the_session(void **state)
{
	struct fx *f = *state;
	char mine[OAUTH_ID_SIZE], other[OAUTH_ID_SIZE], fresh[OAUTH_ID_SIZE], sess[OAUTH_HASH_SIZE + 8];
	struct session se, so, now;
	int64_t retry = 0, ended = -1, created_before, created;
	int st;
	struct ctx c = CTX_INIT;

	sign_in(f, other, &so);
	sign_in(f, mine, &se);
	created_before = se.created;
	put_grant(f, "g-online", se.id_hash, STORE_ITEM_LIVE);
	put_grant(f, "g-revoked", se.id_hash, STORE_ITEM_REVOKED);
	put_grant(f, "g-other", so.id_hash, STORE_ITEM_LIVE);

	assert_int_equal(oauth_password_change(f->o, &se, PW, "second password", false, "192.0.2.1", &retry, fresh, &ended, &c),
			 ERR_OK);
	assert_int_equal(ended, 1);
	/* the old ids are gone; the new one is this session, its times kept */
	assert_int_equal(oauth_session_get(f->o, mine, &now, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(oauth_session_get(f->o, other, &now, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_string_not_equal(fresh, mine);
	assert_int_equal(oauth_session_get(f->o, fresh, &now, &c), ERR_OK);
	assert_string_equal(now.id_hash, se.id_hash);
	assert_string_equal(now.csrf, se.csrf);
	assert_int_equal(now.created, created_before);
	assert_int_equal(now.uid, f->u.uid);
	assert_false(now.mfa_pending);
	/* the live online grant follows; the revoked one and the other session's do not */
	grant_of(f, "g-online", sess, sizeof(sess), &st, &created);
	assert_string_equal(sess, se.id_hash);
	assert_int_equal(st, STORE_ITEM_LIVE);
	assert_int_equal(created, 1700000000000);
	grant_of(f, "g-revoked", sess, sizeof(sess), &st, &created);
	assert_string_not_equal(sess, se.id_hash);
	assert_int_equal(st, STORE_ITEM_REVOKED);
	grant_of(f, "g-other", sess, sizeof(sess), &st, &created);
	assert_string_equal(sess, so.id_hash);
}

/* Session 'hash' as last used 'ago_ms' before now. */
static void age_session(struct fx *f, const char *hash, int64_t ago_ms)
{
	struct store_item it;
	struct ctx c = CTX_INIT;
	json_t *j;
	char *text;

	store_item_init(&it);
	assert_int_equal(store_item_get(f->s, "session", hash, &it, &c), ERR_OK);
	j = json_loadb(it.data.data, it.data.len, 0, NULL);
	assert_non_null(j);
	json_object_set_new(j, "last_seen", json_integer(clock_now_ms() - ago_ms));
	text = json_dumps(j, JSON_COMPACT);
	assert_int_equal(store_item_update(f->s, "session", hash, text, -1, &c), ERR_OK);
	free(text);
	json_decref(j);
	store_item_release(&it);
}

static void test_renewal_counts_only_sessions_in_use(void **state)
{
	struct fx *f = *state;
	char mine[OAUTH_ID_SIZE], live[OAUTH_ID_SIZE], idle[OAUTH_ID_SIZE], fresh[OAUTH_ID_SIZE];
	struct session se, sl, si, now;
	int64_t retry = 0, ended = -1;
	struct ctx c = CTX_INIT;

	sign_in(f, idle, &si);
	sign_in(f, live, &sl);
	sign_in(f, mine, &se);
	/* one other session timed out 16 minutes ago (idle limit 15) and is not yet noticed */
	age_session(f, si.id_hash, 16 * 60 * 1000);
	age_session(f, sl.id_hash, 14 * 60 * 1000);
	assert_int_equal(oauth_password_change(f->o, &se, PW, "second password", false, "192.0.2.1", &retry, fresh, &ended, &c),
			 ERR_OK);
	assert_int_equal(ended, 1); /* the one still in use; this one is not counted */
	assert_int_equal(oauth_session_get(f->o, live, &now, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(oauth_session_get(f->o, idle, &now, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(oauth_session_get(f->o, fresh, &now, &c), ERR_OK);
}

static bool session_stored(struct fx *f, const char *hash)
{
	struct store_item it;
	struct ctx c = CTX_INIT;
	enum err e;

	store_item_init(&it);
	e = store_item_get(f->s, "session", hash, &it, &c);
	store_item_release(&it);
	return e == ERR_OK;
}

static void test_sweep_ends_lapsed_sessions(void **state)
{
	struct fx *f = *state;
	char live[OAUTH_ID_SIZE], idle[OAUTH_ID_SIZE], old[OAUTH_HASH_SIZE];
	struct session sl, si, now;
	struct store_item it;
	struct ctx c = CTX_INIT;
	int64_t t = clock_now_ms();

	sign_in(f, idle, &si);
	sign_in(f, live, &sl);
	age_session(f, si.id_hash, 16 * 60 * 1000);        /* idle limit 15 minutes */
	age_session(f, sl.id_hash, 14 * 60 * 1000);
	/* one signed in 13 hours ago (absolute limit 12), used a minute ago */
	oauth_hash("a-session-id-that-is-43-characters-long-xx", old);
	store_item_init(&it);
	str_copy(it.ns, "session", sizeof(it.ns));
	str_copy(it.key, old, sizeof(it.key));
	it.uid = f->u.uid;
	it.created = t - 13 * 3600 * 1000LL;
	it.expires = t + 3600 * 1000; /* not yet purged by its item expiry */
	buf_addf(&it.data, "{\"username\":\"dana\",\"role\":\"support\",\"last_seen\":%lld,\"csrf\":\"x\"}",
		 (long long)(t - 60000));
	assert_int_equal(store_item_put(f->s, &it, false, &c), ERR_OK);
	store_item_release(&it);

	assert_true(oauth_sessions_sweep(f->o, 0, clock_now_ms()));
	assert_false(session_stored(f, si.id_hash));
	assert_false(session_stored(f, old));
	assert_true(session_stored(f, sl.id_hash));
	assert_int_equal(oauth_session_get(f->o, live, &now, &c), ERR_OK);
	/* a second sweep finds nothing more to end */
	assert_true(oauth_sessions_sweep(f->o, 0, clock_now_ms()));
	assert_true(session_stored(f, sl.id_hash));
}

static void test_password_change_ending_the_apps(void **state)
{
	struct fx *f = *state;
	char mine[OAUTH_ID_SIZE], fresh[OAUTH_ID_SIZE], sess[OAUTH_HASH_SIZE + 8];
	struct session se, now;
	int64_t retry = 0, ended = -1, created;
	int st;
	struct ctx c = CTX_INIT;

	sign_in(f, mine, &se);
	put_grant(f, "g-online", se.id_hash, STORE_ITEM_LIVE);
	put_grant(f, "g-offline", "", STORE_ITEM_LIVE);
	assert_int_equal(oauth_password_change(f->o, &se, PW, "second password", true, "192.0.2.1", &retry, fresh,
					       &ended, &c),
			 ERR_OK);
	/* every grant is revoked in the same transaction; this session goes on */
	grant_of(f, "g-online", sess, sizeof(sess), &st, &created);
	assert_int_equal(st, STORE_ITEM_REVOKED);
	grant_of(f, "g-offline", sess, sizeof(sess), &st, &created);
	assert_int_equal(st, STORE_ITEM_REVOKED);
	assert_int_equal(oauth_session_get(f->o, fresh, &now, &c), ERR_OK);
}

static void test_password_change_of_an_ended_session(void **state)
{
	struct fx *f = *state;
	char mine[OAUTH_ID_SIZE], fresh[OAUTH_ID_SIZE];
	struct session se, kept;
	int64_t retry = 0, ended = -1;
	struct ctx c = CTX_INIT;
	struct user u;

	sign_in(f, mine, &se);
	kept = se;
	/* signed out everywhere after the form was shown */
	assert_int_equal(oauth_session_end(f->o, mine, true, &c), ERR_OK);
	assert_int_equal(oauth_password_change(f->o, &se, PW, "second password", false, "192.0.2.1", &retry, fresh, &ended, &c),
			 ERR_GONE);
	ctx_clear(&c);
	assert_int_equal(ended, 0);
	assert_memory_equal(&se, &kept, sizeof(se));
	/* nothing changed: the old password still signs in */
	assert_int_equal(oauth_signin(f->o, "dana", PW, "192.0.2.1", &u, &retry, &c), ERR_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_signin_straddling_a_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_password_change_renews_the_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_password_change_of_an_ended_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewal_counts_only_sessions_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_ends_lapsed_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_password_change_ending_the_apps, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
