/*
 * tests/unit/store/users.c - the account rows of the store (store.h,
 * "user accounts") on the SQLite backend.
 *
 * Each test gets a fresh temporary directory with a migrated store.
 * Failure injection: the store's fault hook makes each statement of an
 * account write fail in turn; every failure must be a clean error that
 * leaves no partial row behind.
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

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-users-XXXXXX", tmp && *tmp ? tmp : "/tmp");
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

/* An account row with made-up values. */
static void make_user(struct store_user *u, const char *name, const char *role,
		      const char *fhir)
{
	memset(u, 0, sizeof(*u));
	str_copy(u->username, name, sizeof(u->username));
	str_copy(u->role, role, sizeof(u->role));
	str_copy(u->fhir_user, fhir ? fhir : "", sizeof(u->fhir_user));
	str_copy(u->password_hash, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
		 sizeof(u->password_hash));
	u->created = u->updated = 1700000000000;
}

static void test_insert_get(void **state)
{
	struct fx *f = *state;
	struct store_user u, got;
	struct ctx c = CTX_INIT;
	int64_t uid = 0, uid2 = 0;

	make_user(&u, "alice", "patient", "Patient/alice");
	u.mfa_secret_len = 20;
	memset(u.mfa_secret, 0x5a, 20);
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_OK);
	assert_true(uid > 0);

	assert_int_equal(store_user_get(f->s, "alice", &got, &c), ERR_OK);
	assert_int_equal(got.uid, uid);
	assert_string_equal(got.role, "patient");
	assert_string_equal(got.fhir_user, "Patient/alice");
	assert_string_equal(got.password_hash, u.password_hash);
	assert_int_equal(got.mfa_secret_len, 20);
	assert_memory_equal(got.mfa_secret, u.mfa_secret, 20);
	assert_false(got.disabled);
	assert_int_equal(got.created, 1700000000000);

	assert_int_equal(store_user_get_uid(f->s, uid, &got, &c), ERR_OK);
	assert_string_equal(got.username, "alice");

	/* staff without a FHIR person: "" in, "" out (stored as NULL) */
	make_user(&u, "sam", "support", NULL);
	assert_int_equal(store_user_insert(f->s, &u, &uid2, &c), ERR_OK);
	assert_int_equal(store_user_get(f->s, "sam", &got, &c), ERR_OK);
	assert_string_equal(got.fhir_user, "");
	assert_true(uid2 > uid);

	/* the store compares exact bytes: the service lowercases */
	assert_int_equal(store_user_get(f->s, "Alice", &got, &c), ERR_NOTFOUND);
	assert_non_null(strstr(c.msg, "not found"));
	ctx_clear(&c);
	assert_int_equal(store_user_get_uid(f->s, 999, &got, &c), ERR_NOTFOUND);
	store_user_wipe(&got);
	store_user_wipe(&u);
}

static void test_duplicate_and_invalid(void **state)
{
	struct fx *f = *state;
	struct store_user u;
	struct ctx c = CTX_INIT;
	int64_t uid = 0;

	make_user(&u, "bob", "caregiver", "Patient/bob-self");
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_OK);
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_CONFLICT);
	assert_int_equal(uid, 0);
	assert_non_null(strstr(c.msg, "already exists"));

	ctx_clear(&c);
	make_user(&u, "", "patient", NULL);
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_INVALID);
	ctx_clear(&c);
	make_user(&u, "x", "", NULL);
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_INVALID);
	/* the table's CHECK constraint refuses an unknown role */
	ctx_clear(&c);
	make_user(&u, "x", "emperor", NULL);
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_INVALID);
	assert_non_null(strstr(c.msg, "emperor"));
	ctx_clear(&c);
	make_user(&u, "x", "patient", NULL);
	u.password_hash[0] = '\0';
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_INVALID);
}

static int collect(void *arg, const struct store_user *u)
{
	char *names = arg;
	size_t len = strlen(names);

	/* listing never reads hashes: '#' would show one */
	snprintf(names + len, 256 - len, "%s%s", u->username, u->password_hash[0] ? "#" : ",");
	return 0;
}

static int stop_at_first(void *arg, const struct store_user *u)
{
	(void)u;
	(*(int *)arg)++;
	return 42;
}

static void test_update_list(void **state)
{
	struct fx *f = *state;
	struct store_user u, got;
	struct ctx c = CTX_INIT;
	char names[256] = "";
	int64_t uid = 0, uid2 = 0;
	int calls = 0;

	make_user(&u, "carol", "compliance", NULL);
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_OK);
	make_user(&u, "admin", "admin", NULL);
	assert_int_equal(store_user_insert(f->s, &u, &uid2, &c), ERR_OK);

	assert_int_equal(store_user_get(f->s, "carol", &got, &c), ERR_OK);
	got.disabled = true;
	got.failed_logins = 3;
	got.locked_until = 5;
	got.updated = 1800000000000;
	got.created = 1;                 /* not written by an update */
	assert_int_equal(store_user_update(f->s, &got, &c), ERR_OK);
	assert_int_equal(store_user_get(f->s, "carol", &got, &c), ERR_OK);
	assert_true(got.disabled);
	assert_int_equal(got.failed_logins, 3);
	assert_int_equal(got.locked_until, 5);
	assert_int_equal(got.updated, 1800000000000);
	assert_int_equal(got.created, 1700000000000);

	got.uid = 999;
	assert_int_equal(store_user_update(f->s, &got, &c), ERR_NOTFOUND);

	ctx_clear(&c);
	assert_int_equal(store_user_list(f->s, collect, names, &c), ERR_OK);
	assert_string_equal(names, "admin,carol,");
	assert_int_equal(store_user_list(f->s, stop_at_first, &calls, &c), 42);
	assert_int_equal(calls, 1);
	store_user_wipe(&got);
	store_user_wipe(&u);
}

static void test_patients(void **state)
{
	struct fx *f = *state;
	struct store_user u;
	struct ctx c = CTX_INIT;
	struct store_user_patient links[3] = {
		{"bob-self", "self", ""},
		{"bob-mother", "proxy", "bob-for-mother"},
		{"bob-child", "proxy", "bob-for-child"},
	}, out[4];
	size_t n = 0;
	int64_t uid = 0;

	make_user(&u, "bob", "caregiver", "Patient/bob-self");
	assert_int_equal(store_user_insert(f->s, &u, &uid, &c), ERR_OK);
	assert_int_equal(store_user_patients(f->s, uid, out, 4, &n, &c), ERR_OK);
	assert_int_equal(n, 0);

	assert_int_equal(store_user_patients_set(f->s, uid, links, 3, &c), ERR_OK);
	assert_int_equal(store_user_patients(f->s, uid, out, 4, &n, &c), ERR_OK);
	assert_int_equal(n, 3);
	assert_string_equal(out[0].patient_id, "bob-child");
	assert_string_equal(out[0].related_person, "bob-for-child");
	assert_string_equal(out[2].patient_id, "bob-self");
	assert_string_equal(out[2].relationship, "self");
	assert_string_equal(out[2].related_person, "");

	/* fewer slots than links: *n still counts all */
	assert_int_equal(store_user_patients(f->s, uid, out, 1, &n, &c), ERR_OK);
	assert_int_equal(n, 3);

	/* a patient twice: refused, the old links stay */
	links[1] = links[0];
	assert_int_equal(store_user_patients_set(f->s, uid, links, 3, &c), ERR_CONFLICT);
	assert_int_equal(store_user_patients(f->s, uid, out, 4, &n, &c), ERR_OK);
	assert_int_equal(n, 3);

	/* replaced, not added to */
	ctx_clear(&c);
	assert_int_equal(store_user_patients_set(f->s, uid, links, 1, &c), ERR_OK);
	assert_int_equal(store_user_patients(f->s, uid, out, 4, &n, &c), ERR_OK);
	assert_int_equal(n, 1);

	/* inside the caller's transaction, undone with it */
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	assert_int_equal(store_user_patients_set(f->s, uid, NULL, 0, &c), ERR_OK);
	store_rollback(f->s);
	assert_int_equal(store_user_patients(f->s, uid, out, 4, &n, &c), ERR_OK);
	assert_int_equal(n, 1);

	links[0].patient_id[0] = '\0';
	assert_int_equal(store_user_patients_set(f->s, uid, links, 1, &c), ERR_INVALID);
	store_user_wipe(&u);
}

/*
 * Each statement of an account write fails in turn: a clean ERR_BUSY with
 * a message, and the links are written all or not at all.
 */
static void test_fault_loop(void **state)
{
	struct fx *f = *state;
	struct store_user u;
	struct store_user_patient links[2] = {{"p1", "self", ""}, {"p2", "proxy", "rp"}}, out[2];
	bool done = false;

	for (long k = 1; k < 50 && !done; k++) {
		struct ctx c = CTX_INIT, c2 = CTX_INIT;
		int64_t uid = 0;
		size_t n = 0;
		char name[32];
		enum err e;

		snprintf(name, sizeof(name), "frank%ld", k);
		make_user(&u, name, "caregiver", "Patient/p1");
		store_test_fault(f->s, k, STORE_FAULT_BUSY);
		e = store_user_insert(f->s, &u, &uid, &c);
		if (e == ERR_OK)
			e = store_user_patients_set(f->s, uid, links, 2, &c);
		store_test_fault(f->s, 0, STORE_FAULT_NONE);
		if (e == ERR_OK) {
			done = true;
			assert_int_equal(store_user_patients(f->s, uid, out, 2, &n, &c2), ERR_OK);
			assert_int_equal(n, 2);
			break;
		}
		assert_int_equal(e, ERR_BUSY);
		assert_true(c.msg[0] != '\0');
		if (uid) {
			assert_int_equal(store_user_patients(f->s, uid, out, 2, &n, &c2), ERR_OK);
			assert_int_equal(n, 0);
		} else {
			struct store_user none;
			assert_int_equal(store_user_get(f->s, name, &none, &c2), ERR_NOTFOUND);
		}
		/* the store works on afterwards */
		assert_int_equal(store_begin(f->s, &c2), ERR_OK);
		assert_int_equal(store_commit(f->s, &c2), ERR_OK);
	}
	assert_true(done);
	store_user_wipe(&u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_insert_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_and_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_loop, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
