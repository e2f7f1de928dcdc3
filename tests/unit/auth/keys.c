/*
 * tests/unit/auth/keys.c - the authorization server's signing keys
 * (auth/keys.h) in a temporary data directory: init is idempotent and
 * private, the JWKS holds public members only, signatures verify against
 * the published set, rotation keeps replaced keys published until their
 * retire time and deletes them afterwards, and loose permissions or a
 * missing directory are refused.
 */
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/keys.h"
#include "core/clock.h"
#include "core/json.h"

#define T0 INT64_C(1700000000000)
#define HOUR INT64_C(3600000)

struct fx {
	char dir[256];
	char keydir[300];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-auth-keys-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->keydir, sizeof(f->keydir), "%s/keys", f->dir);
	clock_set_fixed(T0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	clock_set_fixed(0);
	chmod(f->keydir, 0700);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* Names of the files in the key directory, sorted, joined by spaces. */
static void dir_names(const char *dir, char *out, size_t size)
{
	struct dirent **list = NULL;
	int n = scandir(dir, &list, NULL, alphasort);
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.')
			len += (size_t)snprintf(out + len, size - len, "%s%s", len ? " " : "",
						list[i]->d_name);
		free(list[i]);
	}
	free(list);
}

static size_t count_files(const char *dir)
{
	char names[4096];
	size_t n = 0;

	dir_names(dir, names, sizeof(names));
	if (!names[0])
		return 0;
	for (const char *p = names; p; p = strchr(p + 1, ' '))
		n++;
	return n;
}

/* The JWKS document of loaded keys, parsed. */
static json_t *jwks_doc(const struct keys *k)
{
	const struct buf *b = keys_jwks(k);
	json_t *doc = json_loadb(b->data, b->len, 0, NULL);

	assert_non_null(doc);
	return doc;
}

/* Is there a key with this kid in the JWKS document? */
static bool doc_has_kid(const json_t *doc, const char *kid)
{
	size_t i;
	json_t *k;

	json_array_foreach(json_object_get(doc, "keys"), i, k)
		if (!strcmp(json_string_value(json_object_get(k, "kid")), kid))
			return true;
	return false;
}

static void test_init_idempotent_private(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	char names1[4096], names2[4096], path[600];
	struct stat st;
	struct dirent **list = NULL;
	int n;

	assert_int_equal(keys_init(f->dir, &c), ERR_OK);
	assert_int_equal(stat(f->keydir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	dir_names(f->keydir, names1, sizeof(names1));
	assert_string_equal(names1, "es256-1700000000000.pem rs256-1700000000000.pem");
	n = scandir(f->keydir, &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", f->keydir, list[i]->d_name);
			assert_int_equal(stat(path, &st), 0);
			assert_int_equal(st.st_mode & 0777, 0600);
		}
		free(list[i]);
	}
	free(list);

	/* a second init, later, keeps the keys */
	clock_set_fixed(T0 + HOUR);
	assert_int_equal(keys_init(f->dir, &c), ERR_OK);
	dir_names(f->keydir, names2, sizeof(names2));
	assert_string_equal(names1, names2);
}

static void test_load_jwks_public(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct keys *k = NULL;
	json_t *doc, *key;
	char tp[JOSE_THUMBPRINT_SIZE];
	size_t i;
	static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

	assert_int_equal(keys_init(f->dir, &c), ERR_OK);
	assert_int_equal(keys_load(f->dir, &k, &c), ERR_OK);
	assert_non_null(keys_signing(k, JOSE_RS256));
	assert_non_null(keys_signing(k, JOSE_ES256));
	assert_null(keys_signing(k, JOSE_RS384));
	assert_null(keys_signing(k, JOSE_HS256));
	assert_int_equal(jose_key_kty(keys_signing(k, JOSE_RS256)), JOSE_KTY_RSA);
	assert_int_equal(jose_key_bits(keys_signing(k, JOSE_RS256)), 2048);
	assert_int_equal(jose_key_kty(keys_signing(k, JOSE_ES256)), JOSE_KTY_EC);
	assert_int_equal(jose_key_bits(keys_signing(k, JOSE_ES256)), 256);

	/* kid is the RFC 7638 thumbprint */
	assert_int_equal(jose_key_thumbprint(keys_signing(k, JOSE_RS256), tp, &c), ERR_OK);
	assert_string_equal(jose_key_kid(keys_signing(k, JOSE_RS256)), tp);

	doc = jwks_doc(k);
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 2);
	json_array_foreach(json_object_get(doc, "keys"), i, key) {
		assert_string_equal(json_string_value(json_object_get(key, "use")), "sig");
		assert_non_null(json_string_value(json_object_get(key, "kid")));
		assert_non_null(json_string_value(json_object_get(key, "alg")));
		for (size_t m = 0; m < sizeof(private_members) / sizeof(private_members[0]); m++)
			assert_null(json_object_get(key, private_members[m]));
	}
	/* signing keys come first, RS256 then ES256 */
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(doc, "keys"), 0), "alg")),
			    "RS256");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(doc, "keys"), 1), "alg")),
			    "ES256");
	assert_true(doc_has_kid(doc, jose_key_kid(keys_signing(k, JOSE_ES256))));
	json_decref(doc);
	keys_free(k);
}

/* Sign with the signing key of 'alg' and verify with the published set only. */
static void sign_verify(const struct keys *k, enum jose_alg alg)
{
	struct ctx c = CTX_INIT;
	struct jose_jwks *set = NULL;
	const struct buf *jwks = keys_jwks(k);
	const struct jose_key *used = NULL;
	struct buf tok = BUF_INIT(JOSE_JWS_MAX);
	json_t *payload = json_pack("{s:s,s:i}", "sub", "alice", "exp", 2000000000);
	json_t *got = NULL, *hdr = NULL;

	assert_int_equal(jose_jwks_parse(jwks->data, jwks->len, JOSE_JWK_PUBLIC_ONLY, &set, &c), ERR_OK);
	assert_int_equal(jose_jws_sign(keys_signing(k, alg), NULL, payload, &tok, &c), ERR_OK);
	assert_int_equal(jose_jws_verify_jwks(tok.data, tok.len, set, &hdr, &got, &used, &c), ERR_OK);
	assert_string_equal(json_string_value(json_object_get(got, "sub")), "alice");
	assert_string_equal(json_string_value(json_object_get(hdr, "alg")), jose_alg_name(alg));
	assert_string_equal(jose_key_kid(used), jose_key_kid(keys_signing(k, alg)));
	assert_false(jose_key_has_private(used));
	json_decref(got);
	json_decref(hdr);
	json_decref(payload);
	buf_release(&tok);
	jose_jwks_free(set);
}

static void test_sign_verify(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct keys *k = NULL;

	assert_int_equal(keys_init(f->dir, &c), ERR_OK);
	assert_int_equal(keys_load(f->dir, &k, &c), ERR_OK);
	sign_verify(k, JOSE_RS256);
	sign_verify(k, JOSE_ES256);
	keys_free(k);
}

struct listed {
	int n;
	char line[8][200];
};

static int collect(void *arg, const struct key_info *ki)
{
	struct listed *l = arg;

	if (l->n < 8)
		snprintf(l->line[l->n++], sizeof(l->line[0]), "%s %lld %lld %lld %s",
			 jose_alg_name(ki->alg), (long long)(ki->created - T0),
			 (long long)(ki->superseded ? ki->superseded - T0 : -1),
			 (long long)(ki->retire ? ki->retire - T0 : -1), key_status_name(ki->status));
	return 0;
}

static void test_rotate(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct keys *k0 = NULL, *k1 = NULL, *k2 = NULL;
	char old_rs[JOSE_KID_MAX + 1], old_es[JOSE_KID_MAX + 1], names[4096];
	struct listed l;
	json_t *doc;

	assert_int_equal(keys_init(f->dir, &c), ERR_OK);
	assert_int_equal(keys_load(f->dir, &k0, &c), ERR_OK);
	snprintf(old_rs, sizeof(old_rs), "%s", jose_key_kid(keys_signing(k0, JOSE_RS256)));
	snprintf(old_es, sizeof(old_es), "%s", jose_key_kid(keys_signing(k0, JOSE_ES256)));

	/* rotate ten minutes later; replaced keys stay published for an hour */
	clock_set_fixed(T0 + 600000);
	assert_int_equal(keys_rotate(f->dir, HOUR, &c), ERR_OK);
	dir_names(f->keydir, names, sizeof(names));
	assert_string_equal(names, "es256-1700000000000-1700000600000-1700004200000.pem "
				   "es256-1700000600000.pem "
				   "rs256-1700000000000-1700000600000-1700004200000.pem "
				   "rs256-1700000600000.pem");
	assert_int_equal(keys_load(f->dir, &k1, &c), ERR_OK);
	assert_string_not_equal(jose_key_kid(keys_signing(k1, JOSE_RS256)), old_rs);
	assert_string_not_equal(jose_key_kid(keys_signing(k1, JOSE_ES256)), old_es);
	doc = jwks_doc(k1);
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 4);
	assert_true(doc_has_kid(doc, old_rs));
	assert_true(doc_has_kid(doc, old_es));
	json_decref(doc);
	/* a token signed before the rotation still verifies against the new set */
	sign_verify(k1, JOSE_RS256);
	{
		struct jose_jwks *set = NULL;
		struct buf tok = BUF_INIT(JOSE_JWS_MAX);
		json_t *p = json_pack("{s:s}", "sub", "x");

		assert_int_equal(jose_jwks_parse(keys_jwks(k1)->data, keys_jwks(k1)->len, 0, &set, &c), ERR_OK);
		assert_int_equal(jose_jws_sign(keys_signing(k0, JOSE_ES256), NULL, p, &tok, &c), ERR_OK);
		assert_int_equal(jose_jws_verify_jwks(tok.data, tok.len, set, NULL, NULL, NULL, &c), ERR_OK);
		json_decref(p);
		buf_release(&tok);
		jose_jwks_free(set);
	}

	memset(&l, 0, sizeof(l));
	assert_int_equal(keys_list(f->dir, T0 + 600000, collect, &l, &c), ERR_OK);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.line[0], "RS256 600000 -1 -1 signing");
	assert_string_equal(l.line[1], "RS256 0 600000 4200000 published");
	assert_string_equal(l.line[2], "ES256 600000 -1 -1 signing");
	assert_string_equal(l.line[3], "ES256 0 600000 4200000 published");

	/* two hours later the old keys are no longer published, still on disk */
	clock_set_fixed(T0 + 2 * HOUR);
	assert_int_equal(keys_load(f->dir, &k2, &c), ERR_OK);
	doc = jwks_doc(k2);
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 2);
	assert_false(doc_has_kid(doc, old_rs));
	json_decref(doc);
	keys_free(k2);
	k2 = NULL;
	memset(&l, 0, sizeof(l));
	assert_int_equal(keys_list(f->dir, T0 + 2 * HOUR, collect, &l, &c), ERR_OK);
	assert_string_equal(l.line[1], "RS256 0 600000 4200000 retired");
	assert_int_equal(count_files(f->keydir), 4);

	/* the next rotation deletes them and publishes the keys it replaces */
	assert_int_equal(keys_rotate(f->dir, HOUR, &c), ERR_OK);
	assert_int_equal(count_files(f->keydir), 4);
	assert_int_equal(keys_load(f->dir, &k2, &c), ERR_OK);
	doc = jwks_doc(k2);
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 4);
	assert_false(doc_has_kid(doc, old_rs));
	assert_true(doc_has_kid(doc, jose_key_kid(keys_signing(k1, JOSE_RS256))));
	json_decref(doc);

	/* retire 0: an emergency rotation drops the keys it replaces at once */
	clock_set_fixed(T0 + 3 * HOUR);
	assert_int_equal(keys_rotate(f->dir, 0, &c), ERR_OK);
	assert_int_equal(count_files(f->keydir), 2);
	assert_int_equal(keys_rotate(f->dir, -1, &c), ERR_INVALID);

	/*
	 * Keys replaced earlier keep the retire time they were given: a
	 * rotation with a shorter one does not cut it short
	 */
	clock_set_fixed(T0 + 4 * HOUR);
	assert_int_equal(keys_rotate(f->dir, HOUR, &c), ERR_OK);
	assert_int_equal(count_files(f->keydir), 4);
	clock_set_fixed(T0 + 4 * HOUR + 60000);
	assert_int_equal(keys_rotate(f->dir, 60000, &c), ERR_OK);
	dir_names(f->keydir, names, sizeof(names));
	/* replaced at 4 h until 5 h, replaced now for a minute, the new ones */
	assert_string_equal(names, "es256-1700010800000-1700014400000-1700018000000.pem "
				   "es256-1700014400000-1700014460000-1700014520000.pem "
				   "es256-1700014460000.pem "
				   "rs256-1700010800000-1700014400000-1700018000000.pem "
				   "rs256-1700014400000-1700014460000-1700014520000.pem "
				   "rs256-1700014460000.pem");
	/* and an emergency rotation drops all of them */
	assert_int_equal(keys_rotate(f->dir, 0, &c), ERR_OK);
	assert_int_equal(count_files(f->keydir), 2);

	keys_free(k0);
	keys_free(k1);
	keys_free(k2);
}

/* A rotation on a fresh data directory creates the keys. */
static void test_rotate_empty(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct keys *k = NULL;

	assert_int_equal(keys_rotate(f->dir, HOUR, &c), ERR_OK);
	assert_int_equal(count_files(f->keydir), 2);
	assert_int_equal(keys_load(f->dir, &k, &c), ERR_OK);
	keys_free(k);
}

/* Two current files of one algorithm (a rotation interrupted before the rename). */
static void test_interrupted_rotation(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct keys *k = NULL;
	struct jose_key *extra = NULL;
	char path[600];
	json_t *doc;
	int fd;

	assert_int_equal(keys_init(f->dir, &c), ERR_OK);
	assert_int_equal(jose_key_generate(JOSE_GEN_P256, &extra, &c), ERR_OK);
	snprintf(path, sizeof(path), "%s/es256-1700000000500.pem", f->keydir);
	assert_int_equal(jose_key_save(extra, path, &c), ERR_OK);
	/* leftovers of an interrupted write and foreign files are ignored */
	snprintf(path, sizeof(path), "%s/es256-1700000000900.pem.tmp-abcdef", f->keydir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/README", f->keydir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);

	assert_int_equal(keys_load(f->dir, &k, &c), ERR_OK);
	assert_string_equal(jose_key_kid(keys_signing(k, JOSE_ES256)), jose_key_kid(extra));
	doc = jwks_doc(k);
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 3);
	json_decref(doc);
	keys_free(k);

	/* the next rotation marks both replaced */
	clock_set_fixed(T0 + 1000);
	assert_int_equal(keys_rotate(f->dir, HOUR, &c), ERR_OK);
	assert_int_equal(count_files(f->keydir), 2 + 5);
	jose_key_free(extra);
}

static void test_refusals(void **state)
{
	struct fx *f = *state;
	struct ctx c = CTX_INIT;
	struct keys *k = NULL;
	char path[600], names[4096], *sp;

	/* no directory yet */
	assert_int_equal(keys_load(f->dir, &k, &c), ERR_NOTFOUND);
	assert_non_null(strstr(c.msg, "veranda init"));
	assert_null(k);
	ctx_clear(&c);
	assert_int_equal(keys_init("/nonexistent/veranda-data", &c), ERR_NOTFOUND);
	ctx_clear(&c);

	assert_int_equal(keys_init(f->dir, &c), ERR_OK);
	/* a directory others may read */
	assert_int_equal(chmod(f->keydir, 0750), 0);
	assert_int_equal(keys_load(f->dir, &k, &c), ERR_FORBIDDEN);
	assert_non_null(strstr(c.msg, "chmod 700"));
	ctx_clear(&c);
	assert_int_equal(keys_init(f->dir, &c), ERR_FORBIDDEN);
	ctx_clear(&c);
	assert_int_equal(chmod(f->keydir, 0700), 0);

	/* a key file others may read */
	dir_names(f->keydir, names, sizeof(names));
	sp = strchr(names, ' ');
	*sp = '\0';
	snprintf(path, sizeof(path), "%s/%s", f->keydir, names);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(keys_load(f->dir, &k, &c), ERR_FORBIDDEN);
	ctx_clear(&c);
	assert_int_equal(chmod(path, 0600), 0);

	/* an algorithm without a current key */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(keys_load(f->dir, &k, &c), ERR_NOTFOUND);
	assert_non_null(strstr(c.msg, "ES256"));
	ctx_clear(&c);
	/* init restores it */
	assert_int_equal(keys_init(f->dir, &c), ERR_OK);
	assert_int_equal(keys_load(f->dir, &k, &c), ERR_OK);
	keys_free(k);
	k = NULL;

	/* an RSA key in a file named for ES256 */
	{
		struct jose_key *rsa = NULL;

		assert_int_equal(jose_key_generate(JOSE_GEN_RSA2048, &rsa, &c), ERR_OK);
		snprintf(path, sizeof(path), "%s/es256-1800000000000.pem", f->keydir);
		assert_int_equal(jose_key_save(rsa, path, &c), ERR_OK);
		assert_int_equal(keys_load(f->dir, &k, &c), ERR_INVALID);
		jose_key_free(rsa);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_idempotent_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_jwks_public, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
