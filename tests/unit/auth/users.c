/*
 * tests/unit/auth/users.c - the accounts service (auth/users.h) over a
 * real SQLite store in a temporary directory: add, duplicates,
 * case-insensitive names, validation, disable, password checks (right,
 * wrong, unknown, disabled), reset, the holder's own change (the new hash
 * and the end of the account's sessions in one transaction, or neither),
 * patient links and idempotent put.
 *
 * Hashes use the default (OWASP) parameters, ~20 ms each.
 */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/users.h"
#include "core/clock.h"
#include "core/str.h"
#include "store/store.h"

struct fx {
	char dir[256];
	char url[320];
	struct store *s;
	struct users *us;
};

/* A minimal current resource type/id (the service only checks existence). */
static int put_resource(struct store *s, const char *type, const char *id)
{
	struct store_put p;
	struct ctx c = CTX_INIT;

	memset(&p, 0, sizeof(p));
	p.op = STORE_PUT;
	p.type = type;
	p.id = id;
	p.expect_version = 0;
	p.version = 1;
	p.last_updated = 1700000000000;
	p.json = "{}";
	p.json_len = 2;
	return store_put(s, &p, &c);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	struct ctx c = CTX_INIT;

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-auth-users-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->url, sizeof(f->url), "sqlite:%s/t.db", f->dir);
	if (store_open(&f->s, f->url, 5000, &c) || store_migrate(f->s, &c) ||
	    users_new(&f->us, f->s, NULL, &c)) {
		fprintf(stderr, "setup: %s\n", c.msg);
		return -1;
	}
	if (put_resource(f->s, "Patient", "alice") || put_resource(f->s, "Patient", "bob-self") ||
	    put_resource(f->s, "Patient", "bob-child") ||
	    put_resource(f->s, "RelatedPerson", "bob-for-child") ||
	    put_resource(f->s, "Practitioner", "drsmith"))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	users_free(f->us);
	store_close(f->s);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

static struct user_spec spec_of(const char *name, enum user_role role, const char *fhir,
				const char *pw)
{
	struct user_spec s = {name, role, fhir, pw, strlen(pw), NULL, 0};

	return s;
}

static void test_add_get(void **state)
{
	struct fx *f = *state;
	struct user_spec sp = spec_of("Alice", USER_PATIENT, "Patient/alice", "correct horse");
	struct ctx c = CTX_INIT;
	struct user u;
	int64_t uid = 0, uid2 = 0;

	assert_int_equal(user_add(f->us, &sp, &uid, &c), ERR_OK);
	assert_true(uid > 0);
	/* stored lowercased, found in any case */
	assert_int_equal(user_get_by_name(f->us, "ALICE", &u, &c), ERR_OK);
	assert_int_equal(u.uid, uid);
	assert_string_equal(u.username, "alice");
	assert_int_equal(u.role, USER_PATIENT);
	assert_string_equal(u.fhir_user, "Patient/alice");
	assert_false(u.disabled);
	assert_false(u.mfa_enrolled);

	/* the same name in another case is a duplicate */
	sp.username = "aLiCe";
	assert_int_equal(user_add(f->us, &sp, &uid2, &c), ERR_CONFLICT);
	assert_non_null(strstr(c.msg, "already exists"));
	assert_int_equal(uid2, 0);

	ctx_clear(&c);
	assert_int_equal(user_get_by_name(f->us, "nobody", &u, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	assert_int_equal(user_get_by_name(f->us, "bad name!", &u, &c), ERR_INVALID);
}

static void test_validation(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	char name[USER_NAME_MAX + 1], longname[80];
	enum user_role r;
	struct user_spec sp;
	struct {
		const char *name;
		enum user_role role;
		const char *fhir, *pw;
		enum err want;
		const char *msg;
	} cases[] = {
		{"", USER_SUPPORT, NULL, "long enough", ERR_INVALID, "empty"},
		{"a b", USER_SUPPORT, NULL, "long enough", ERR_INVALID, "letters"},
		{"émile", USER_SUPPORT, NULL, "long enough", ERR_INVALID, "letters"},
		{"sam", USER_SUPPORT, NULL, "short", ERR_INVALID, "at least 8"},
		{"sam", USER_SUPPORT, NULL, "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", ERR_INVALID, "UTF-8"},
		{"sam", (enum user_role)42, NULL, "long enough", ERR_INVALID, "role"},
		{"pat", USER_PATIENT, NULL, "long enough", ERR_INVALID, "needs a fhir user"},
		{"pat", USER_PATIENT, "Practitioner/drsmith", "long enough", ERR_INVALID, "cannot be"},
		{"pat", USER_PATIENT, "Patient/", "long enough", ERR_INVALID, "is not"},
		{"pat", USER_PATIENT, "Observation/x", "long enough", ERR_INVALID, "is not"},
		{"pat", USER_PATIENT, "Patient/ghost", "long enough", ERR_NOTFOUND, "does not exist"},
		{"doc", USER_CLINICIAN, NULL, "long enough", ERR_INVALID, "Practitioner"},
		{"doc", USER_CLINICIAN, "Patient/alice", "long enough", ERR_INVALID, "cannot be"},
		{"cg", USER_CAREGIVER, "Practitioner/drsmith", "long enough", ERR_INVALID, "cannot be"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ctx_clear(&c);
		sp = spec_of(cases[i].name, cases[i].role, cases[i].fhir, cases[i].pw);
		assert_int_equal(user_add(f->us, &sp, NULL, &c), cases[i].want);
		if (!strstr(c.msg, cases[i].msg))
			fail_msg("case %zu: message '%s' lacks '%s'", i, c.msg, cases[i].msg);
		/* a password never appears in a message */
		assert_null(strstr(c.msg, "long enough"));
	}
	memset(longname, 'a', 65);
	longname[65] = '\0';
	assert_int_equal(user_name_normalize(longname, name, &c), ERR_INVALID);
	longname[64] = '\0';
	assert_int_equal(user_name_normalize(longname, name, &c), ERR_OK);
	assert_int_equal(user_name_normalize("Dr.Who_2-x", name, &c), ERR_OK);
	assert_string_equal(name, "dr.who_2-x");

	/* 8 characters, not bytes; at most 256 */
	assert_int_equal(user_password_check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, &c), ERR_INVALID);
	assert_int_equal(user_password_check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9xxxx", 12, &c), ERR_OK);
	{
		char pw[258];
		memset(pw, 'p', sizeof(pw));
		assert_int_equal(user_password_check(pw, 256, &c), ERR_OK);
		assert_int_equal(user_password_check(pw, 257, &c), ERR_INVALID);
	}
	assert_int_equal(user_role_parse("admin", &r, &c), ERR_OK);
	assert_int_equal(r, USER_ADMIN);
	assert_int_equal(user_role_parse("root", &r, &c), ERR_INVALID);
	assert_string_equal(user_role_name(USER_COMPLIANCE), "compliance");
	assert_null(user_role_name((enum user_role)USER_ROLES));
}

static void test_verify(void **state)
{
	struct fx *f = *state;
	struct user_spec sp = spec_of("drsmith", USER_CLINICIAN, "Practitioner/drsmith",
				      "stethoscope");
	struct ctx c = CTX_INIT;
	struct user u;
	int64_t t0, t_known, t_unknown;

	assert_int_equal(user_add(f->us, &sp, NULL, &c), ERR_OK);
	assert_int_equal(user_verify_password(f->us, "DrSmith", "stethoscope", 11, &u, &c), ERR_OK);
	assert_string_equal(u.username, "drsmith");

	t0 = clock_mono_us();
	assert_int_equal(user_verify_password(f->us, "drsmith", "wrong-one", 9, &u, &c),
			 ERR_UNAUTHORIZED);
	t_known = clock_mono_us() - t0;
	assert_string_equal(c.msg, "wrong username or password");
	assert_int_equal(user_get_by_name(f->us, "drsmith", &u, &c), ERR_OK);
	assert_int_equal(u.failed_logins, 1);

	/* an unknown user: the same answer and an Argon2id's worth of work */
	ctx_clear(&c);
	t0 = clock_mono_us();
	assert_int_equal(user_verify_password(f->us, "ghost", "stethoscope", 11, &u, &c),
			 ERR_UNAUTHORIZED);
	t_unknown = clock_mono_us() - t0;
	assert_string_equal(c.msg, "wrong username or password");
	assert_true(t_unknown * 3 > t_known);
	ctx_clear(&c);
	assert_int_equal(user_verify_password(f->us, "not a name", "x", 1, NULL, &c),
			 ERR_UNAUTHORIZED);

	/* success resets the failure count */
	ctx_clear(&c);
	assert_int_equal(user_verify_password(f->us, "drsmith", "stethoscope", 11, NULL, &c), ERR_OK);
	assert_int_equal(user_get_by_name(f->us, "drsmith", &u, &c), ERR_OK);
	assert_int_equal(u.failed_logins, 0);

	/* disabled: the right password is refused as forbidden, a wrong one as usual */
	assert_int_equal(user_disable(f->us, "drsmith", &c), ERR_OK);
	assert_int_equal(user_get_by_name(f->us, "drsmith", &u, &c), ERR_OK);
	assert_true(u.disabled);
	assert_int_equal(user_verify_password(f->us, "drsmith", "stethoscope", 11, NULL, &c),
			 ERR_FORBIDDEN);
	assert_non_null(strstr(c.msg, "disabled"));
	ctx_clear(&c);
	assert_int_equal(user_verify_password(f->us, "drsmith", "wrong-one", 9, NULL, &c),
			 ERR_UNAUTHORIZED);
	ctx_clear(&c);
	assert_int_equal(user_enable(f->us, "drsmith", &c), ERR_OK);
	assert_int_equal(user_verify_password(f->us, "drsmith", "stethoscope", 11, NULL, &c), ERR_OK);
	assert_int_equal(user_disable(f->us, "ghost", &c), ERR_NOTFOUND);
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	struct user_spec sp = spec_of("carol", USER_COMPLIANCE, NULL, "first password");
	struct ctx c = CTX_INIT;

	assert_int_equal(user_add(f->us, &sp, NULL, &c), ERR_OK);
	assert_int_equal(user_set_password(f->us, "Carol", "second password", 15, &c), ERR_OK);
	assert_int_equal(user_verify_password(f->us, "carol", "first password", 14, NULL, &c),
			 ERR_UNAUTHORIZED);
	ctx_clear(&c);
	assert_int_equal(user_verify_password(f->us, "carol", "second password", 15, NULL, &c),
			 ERR_OK);
	assert_int_equal(user_set_password(f->us, "carol", "short", 5, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(user_set_password(f->us, "ghost", "long enough", 11, &c), ERR_NOTFOUND);
}

static void test_patients_and_put(void **state)
{
	struct fx *f = *state;
	struct store_user_patient links[] = {{"bob-child", "proxy", "bob-for-child"}}, out[4];
	struct user_spec sp = {"bob", USER_CAREGIVER, "Patient/bob-self", "veranda-demo", 12,
			       links, 1};
	struct ctx c = CTX_INIT;
	struct user u;
	int64_t uid = 0, uid2 = 0;
	bool created = false;
	size_t n = 0;

	assert_int_equal(user_put(f->us, &sp, &uid, &created, &c), ERR_OK);
	assert_true(created);
	assert_int_equal(user_patients(f->us, uid, out, 4, &n, &c), ERR_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].patient_id, "bob-child");
	assert_string_equal(out[0].relationship, "proxy");
	assert_string_equal(out[0].related_person, "bob-for-child");
	assert_string_equal(out[1].patient_id, "bob-self");
	assert_string_equal(out[1].relationship, "self");

	/* a second put updates the same account (new password, re-enabled) */
	assert_int_equal(user_disable(f->us, "bob", &c), ERR_OK);
	sp.password = "another-demo";
	sp.password_len = 12;
	assert_int_equal(user_put(f->us, &sp, &uid2, &created, &c), ERR_OK);
	assert_false(created);
	assert_int_equal(uid2, uid);
	assert_int_equal(user_get_by_name(f->us, "bob", &u, &c), ERR_OK);
	assert_false(u.disabled);
	assert_int_equal(user_verify_password(f->us, "bob", "another-demo", 12, NULL, &c), ERR_OK);
	assert_int_equal(user_patients(f->us, uid, out, 4, &n, &c), ERR_OK);
	assert_int_equal(n, 2);

	/* a link to a patient that does not exist: refused, nothing changes */
	str_copy(links[0].patient_id, "nobody", sizeof(links[0].patient_id));
	assert_int_equal(user_put(f->us, &sp, NULL, NULL, &c), ERR_NOTFOUND);
	assert_int_equal(user_patients(f->us, uid, out, 4, &n, NULL), ERR_OK);
	assert_int_equal(n, 2);
}

static int count_users(void *arg, const struct user *u)
{
	(void)u;
	(*(int *)arg)++;
	return 0;
}

/* An item of namespace 'ns' owned by 'uid' (a session or a grant, as auth stores them). */
static void put_item(struct store *s, const char *ns, const char *key, int64_t uid)
{
	struct store_item it;
	struct ctx c = CTX_INIT;

	store_item_init(&it);
	str_copy(it.ns, ns, sizeof(it.ns));
	str_copy(it.key, key, sizeof(it.key));
	it.uid = uid;
	it.state = STORE_ITEM_LIVE;
	assert_int_equal(store_item_put(s, &it, false, &c), ERR_OK);
	store_item_release(&it);
}

static bool has_item(struct store *s, const char *ns, const char *key)
{
	struct store_item it;
	struct ctx c = CTX_INIT;
	enum err e;

	store_item_init(&it);
	e = store_item_get(s, ns, key, &it, &c);
	store_item_release(&it);
	return e == ERR_OK;
}

static void test_change_password(void **state)
{
	struct fx *f = *state;
	struct user_spec sp = spec_of("dave", USER_SUPPORT, NULL, "first password");
	char phc[PASSWORD_PHC_MAX];
	struct user u;
	struct ctx c = CTX_INIT;
	int64_t ended = -1;

	assert_int_equal(user_add(f->us, &sp, NULL, &c), ERR_OK);
	assert_int_equal(user_get_by_name(f->us, "dave", &u, &c), ERR_OK);
	put_item(f->s, "session", "s-this", u.uid);
	put_item(f->s, "session", "s-phone", u.uid);
	put_item(f->s, "session", "s-laptop", u.uid);
	put_item(f->s, "session", "s-someone-else", u.uid + 1000);
	put_item(f->s, "grant", "g-app", u.uid);

	/* the checks come before the hash */
	assert_int_equal(user_password_hash(f->us, "dave", "short", 5, phc, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(user_password_hash(f->us, "ghost", "long enough", 11, phc, &c), ERR_NOTFOUND);
	ctx_clear(&c);

	/* a change in one transaction, as the account page makes it */
	assert_int_equal(user_password_hash(f->us, "Dave", "second password", 15, phc, &c), ERR_OK);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	assert_int_equal(user_password_store(f->us, "dave", phc, &c), ERR_OK);
	assert_int_equal(user_end_sessions(f->us, u.uid, &ended, &c), ERR_OK);
	put_item(f->s, "session", "s-this-renewed", u.uid);
	assert_int_equal(store_commit(f->s, &c), ERR_OK);
	assert_int_equal(ended, 3);
	assert_false(has_item(f->s, "session", "s-this"));
	assert_true(has_item(f->s, "session", "s-this-renewed"));
	assert_false(has_item(f->s, "session", "s-phone"));
	assert_false(has_item(f->s, "session", "s-laptop"));
	assert_true(has_item(f->s, "session", "s-someone-else"));
	assert_true(has_item(f->s, "grant", "g-app"));
	assert_int_equal(user_verify_password(f->us, "dave", "first password", 14, NULL, &c),
			 ERR_UNAUTHORIZED);
	ctx_clear(&c);
	assert_int_equal(user_verify_password(f->us, "dave", "second password", 15, NULL, &c), ERR_OK);

	/* rolled back, nothing of it stays */
	assert_int_equal(user_password_hash(f->us, "dave", "third password", 14, phc, &c), ERR_OK);
	assert_int_equal(store_begin(f->s, &c), ERR_OK);
	assert_int_equal(user_password_store(f->us, "dave", phc, &c), ERR_OK);
	assert_int_equal(user_end_sessions(f->us, u.uid, &ended, &c), ERR_OK);
	assert_int_equal(ended, 1);
	store_rollback(f->s);
	assert_true(has_item(f->s, "session", "s-this-renewed"));
	assert_int_equal(user_verify_password(f->us, "dave", "second password", 15, NULL, &c), ERR_OK);

	assert_int_equal(user_end_sessions(f->us, u.uid, &ended, &c), ERR_OK);
	assert_int_equal(ended, 1);
	assert_false(has_item(f->s, "session", "s-this-renewed"));
	assert_true(has_item(f->s, "session", "s-someone-else"));
}

static void test_list(void **state)
{
	struct fx *f = *state;
	struct user_spec a = spec_of("sam", USER_SUPPORT, NULL, "support-pw"),
			 b = spec_of("admin", USER_ADMIN, NULL, "admin-pw-1");
	struct ctx c = CTX_INIT;
	int n = 0;

	assert_int_equal(user_add(f->us, &a, NULL, &c), ERR_OK);
	assert_int_equal(user_add(f->us, &b, NULL, &c), ERR_OK);
	assert_int_equal(user_list(f->us, count_users, &n, &c), ERR_OK);
	assert_int_equal(n, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patients_and_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
