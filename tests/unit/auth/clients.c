/*
 * tests/unit/auth/clients.c - the app registry and client authentication
 * (auth/clients.h) over a real SQLite store in a temporary directory:
 * every registration rule accepted and refused, secrets stored only as
 * hashes, exact redirect URI matching with the loopback port rule,
 * origins, and client_authenticate() for Basic, client_secret_post,
 * public clients and private_key_jwt (registered JWK Set and JWKS URL,
 * the URL served by a small HTTP server on 127.0.0.1 inside this test,
 * with its Cache-Control honoured).
 */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/clients.h"
#include "auth/jose.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/json.h"
#include "store/store.h"

#define NOW INT64_C(1700000000000)
#define TOKEN_URL "https://ehr.example/oauth/token"
#define SECRET "correct horse:battery+staple%"
#define SECRET_FORM "correct+horse%3Abattery%2Bstaple%25"

/* ---- keys shared by every test (RSA generation is slow) ---- */

static struct jose_key *rsa_key;      /* RS384, kid "rsa-1" */
static struct jose_key *ec_key;       /* ES384 (P-384), kid "ec-1" */
static struct jose_key *rsa_other;    /* RS384, kid "rsa-1": another key with the same kid */
static struct jose_key *ec_new;       /* ES384, kid "ec-2": a rotated key */
static struct jose_key *p256_key;     /* ES256, kid "p256": not usable for assertions */

static struct jose_key *gen(enum jose_keygen type, enum jose_alg alg, const char *kid)
{
	struct jose_key *k = NULL;
	struct ctx c = CTX_INIT;

	if (jose_key_generate(type, &k, &c) || jose_key_set_alg(k, alg, &c) ||
	    jose_key_set_kid(k, kid, &c)) {
		fprintf(stderr, "key: %s\n", c.msg);
		abort();
	}
	return k;
}

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);   /* the test server writes to clients that hang up */
	rsa_key = gen(JOSE_GEN_RSA2048, JOSE_RS384, "rsa-1");
	ec_key = gen(JOSE_GEN_P384, JOSE_ES384, "ec-1");
	rsa_other = gen(JOSE_GEN_RSA2048, JOSE_RS384, "rsa-1");
	ec_new = gen(JOSE_GEN_P384, JOSE_ES384, "ec-2");
	p256_key = gen(JOSE_GEN_P256, JOSE_ES256, "p256");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	jose_key_free(rsa_key);
	jose_key_free(ec_key);
	jose_key_free(rsa_other);
	jose_key_free(ec_new);
	jose_key_free(p256_key);
	return 0;
}

/* The public JWK Set of keys[0..n) as JSON text (free()). */
static char *jwks_text(struct jose_key *const *keys, size_t n)
{
	struct jose_jwks *set = jose_jwks_new();
	struct ctx c = CTX_INIT;
	json_t *doc = NULL;
	char *s;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(jose_jwks_add(set, jose_key_ref(keys[i]), &c), ERR_OK);
	assert_int_equal(jose_jwks_to_json(set, &doc, &c), ERR_OK);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	jose_jwks_free(set);
	return s;
}

/* ---- a tiny HTTP server for JWKS URLs ---- */

struct httpd {
	int fd;
	int port;
	pthread_t th;
	pthread_mutex_t mu;
	bool stop;
	/* what to answer */
	int status;
	char cache_control[128];    /* "" for no header */
	char *body;                 /* owned */
	size_t body_len;
	char location[128];
	/* what was asked */
	int requests;
	bool accept_json;           /* the last request had Accept: application/json */
};

static void *httpd_run(void *arg)
{
	struct httpd *h = arg;

	for (;;) {
		struct pollfd pfd = {h->fd, POLLIN, 0};
		char req[8192], head[512];
		size_t got = 0;
		int cfd;
		bool stop;

		pthread_mutex_lock(&h->mu);
		stop = h->stop;
		pthread_mutex_unlock(&h->mu);
		if (stop)
			break;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if ((cfd = accept(h->fd, NULL, NULL)) < 0)
			continue;
		while (got < sizeof(req) - 1) {
			ssize_t r = read(cfd, req + got, sizeof(req) - 1 - got);

			if (r <= 0)
				break;
			got += (size_t)r;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[got] = '\0';
		pthread_mutex_lock(&h->mu);
		h->requests++;
		h->accept_json = strcasestr(req, "\r\nAccept: application/json\r\n") != NULL;
		{
			int n = snprintf(head, sizeof(head),
					 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\nConnection: close\r\n%s%s%s%s%s%s\r\n",
					 h->status, h->body_len, h->cache_control[0] ? "Cache-Control: " : "",
					 h->cache_control, h->cache_control[0] ? "\r\n" : "",
					 h->location[0] ? "Location: " : "", h->location,
					 h->location[0] ? "\r\n" : "");
			size_t off = 0;

			if (write(cfd, head, (size_t)n) != n)
				goto done;
			while (off < h->body_len) {
				ssize_t w = write(cfd, h->body + off, h->body_len - off);

				if (w <= 0)
					break;
				off += (size_t)w;
			}
		}
done:
		pthread_mutex_unlock(&h->mu);
		close(cfd);
	}
	return NULL;
}

static struct httpd *httpd_start(void)
{
	struct httpd *h = calloc(1, sizeof(*h));
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int one = 1;

	h->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(h->fd >= 0);
	setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(h->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(h->fd, 16), 0);
	assert_int_equal(getsockname(h->fd, (struct sockaddr *)&sa, &len), 0);
	h->port = ntohs(sa.sin_port);
	h->status = 200;
	pthread_mutex_init(&h->mu, NULL);
	assert_int_equal(pthread_create(&h->th, NULL, httpd_run, h), 0);
	return h;
}

static void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	close(h->fd);
	free(h->body);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* Serve 'body' (taken) with 'cache_control' (NULL: none). */
static void httpd_serve(struct httpd *h, int status, const char *cache_control, char *body)
{
	pthread_mutex_lock(&h->mu);
	h->status = status;
	snprintf(h->cache_control, sizeof(h->cache_control), "%s", cache_control ? cache_control : "");
	free(h->body);
	h->body = body;
	h->body_len = body ? strlen(body) : 0;
	h->location[0] = '\0';
	pthread_mutex_unlock(&h->mu);
}

static int httpd_requests(struct httpd *h)
{
	int n;

	pthread_mutex_lock(&h->mu);
	n = h->requests;
	pthread_mutex_unlock(&h->mu);
	return n;
}

/* ---- fixture ---- */

struct fx {
	char dir[256];
	char url[320];
	struct store *s;
	struct clients *cs;
	struct httpd *httpd;
	char jwks_url[128];
};

static const char *const REDIRECT1[] = {"https://app.example/callback"};

static void add_ok(struct fx *f, const struct client_spec *sp)
{
	struct ctx c = CTX_INIT;

	if (client_add(f->cs, sp, &c) != ERR_OK)
		fail_msg("client_add(%s): %s", sp->client_id, c.msg);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	struct ctx c = CTX_INIT;

	snprintf(f->dir, sizeof(f->dir), "%s/veranda-auth-clients-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->url, sizeof(f->url), "sqlite:%s/t.db", f->dir);
	if (store_open(&f->s, f->url, 5000, &c) || store_migrate(f->s, &c) ||
	    clients_new(&f->cs, f->s, &c)) {
		fprintf(stderr, "setup: %s\n", c.msg);
		return -1;
	}
	clock_set_fixed(NOW);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	clock_set_fixed(0);
	httpd_stop(f->httpd);
	clients_free(f->cs);
	store_close(f->s);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* A spec with the usual fields of 'kind'. */
static struct client_spec spec(const char *id, enum client_kind kind)
{
	struct client_spec s;

	memset(&s, 0, sizeof(s));
	s.client_id = id;
	s.kind = kind;
	s.redirect_uris = REDIRECT1;
	s.nredirect = 1;
	if (kind == CLIENT_SYMMETRIC)
		s.secret = SECRET;
	return s;
}

/* client_add() must fail with 'code' and a message containing 'msg'. */
static void add_refused(struct fx *f, const struct client_spec *sp, enum err code, const char *msg)
{
	struct ctx c = CTX_INIT;
	enum err rc = client_add(f->cs, sp, &c);

	if (rc != code || !strstr(c.msg, msg))
		fail_msg("client_add(%s): got %d '%s', want %d '%s'", sp->client_id, rc, c.msg, code, msg);
}

/* ---- registration ---- */

static void test_add_kinds(void **state)
{
	struct fx *f = *state;
	struct client_spec s;
	struct client cl;
	struct ctx c = CTX_INIT;
	char *jwks = jwks_text((struct jose_key *[]){rsa_key, ec_key}, 2);
	static const char *const two[] = {"https://app.example/cb", "http://127.0.0.1:8080/cb"};
	static const char *const origins[] = {"HTTPS://App.Example:443", "http://localhost:3000"};

	s = spec("pub-app", CLIENT_PUBLIC);
	s.name = "Pub App";
	s.redirect_uris = two;
	s.nredirect = 2;
	s.launch_url = "https://app.example/launch?x=1";
	s.scope = "launch/patient openid fhirUser patient/*.rs";
	s.origins = origins;
	s.norigins = 2;
	add_ok(f, &s);
	client_init(&cl);
	assert_int_equal(client_get(f->cs, "pub-app", &cl, &c), ERR_OK);
	assert_string_equal(cl.client_id, "pub-app");
	assert_string_equal(cl.name, "Pub App");
	assert_int_equal(cl.kind, CLIENT_PUBLIC);
	assert_int_equal(cl.nredirect, 2);
	assert_string_equal(cl.redirect_uris[1], "http://127.0.0.1:8080/cb");
	assert_string_equal(cl.launch_url, "https://app.example/launch?x=1");
	assert_string_equal(cl.scope, "launch/patient openid fhirUser patient/*.rs");
	assert_int_equal(cl.norigins, 2);
	assert_string_equal(cl.origins[0], "https://app.example");
	assert_string_equal(cl.origins[1], "http://localhost:3000");
	assert_false(cl.disabled);
	assert_int_equal(cl.created, NOW);
	assert_null(cl.jwks);
	assert_string_equal(cl.jwks_url, "");
	client_release(&cl);

	s = spec("sym-app", CLIENT_SYMMETRIC);
	add_ok(f, &s);
	assert_int_equal(client_get(f->cs, "sym-app", &cl, &c), ERR_OK);
	assert_int_equal(cl.kind, CLIENT_SYMMETRIC);
	assert_string_equal(cl.name, "sym-app");   /* the id when no name is given */
	client_release(&cl);

	s = spec("asym-app", CLIENT_ASYMMETRIC);
	s.jwks_json = jwks;
	add_ok(f, &s);
	assert_int_equal(client_get(f->cs, "asym-app", &cl, &c), ERR_OK);
	assert_int_equal(cl.kind, CLIENT_ASYMMETRIC);
	assert_non_null(cl.jwks);
	assert_int_equal(jose_jwks_count(cl.jwks), 2);
	assert_non_null(jose_jwks_find(cl.jwks, "ec-1"));
	client_release(&cl);

	/* a backend service: asymmetric without redirect URIs */
	s = spec("backend", CLIENT_ASYMMETRIC);
	s.nredirect = 0;
	s.redirect_uris = NULL;
	s.jwks_url = "https://backend.example/jwks.json";
	add_ok(f, &s);
	assert_int_equal(client_get(f->cs, "backend", &cl, &c), ERR_OK);
	assert_int_equal(cl.nredirect, 0);
	assert_string_equal(cl.jwks_url, "https://backend.example/jwks.json");
	assert_null(cl.jwks);
	client_release(&cl);

	/* ids are unique */
	s = spec("pub-app", CLIENT_PUBLIC);
	add_refused(f, &s, ERR_CONFLICT, "client 'pub-app' already exists");

	assert_int_equal(client_get(f->cs, "nobody", &cl, &c), ERR_NOTFOUND);
	client_release(&cl);
	assert_int_equal(client_get(f->cs, "bad id!", &cl, &c), ERR_NOTFOUND);
	client_release(&cl);
	free(jwks);
}

static void test_client_id_rules(void **state)
{
	struct fx *f = *state;
	char long_id[200];
	struct client_spec s;

	memset(long_id, 'a', 127);
	long_id[127] = '\0';
	s = spec(long_id, CLIENT_PUBLIC);
	add_ok(f, &s);
	s = spec("A.b_c~d-1", CLIENT_PUBLIC);
	add_ok(f, &s);
	long_id[127] = 'a';
	long_id[128] = '\0';
	s = spec(long_id, CLIENT_PUBLIC);
	add_refused(f, &s, ERR_INVALID, "client_id must be");
	s = spec("", CLIENT_PUBLIC);
	add_refused(f, &s, ERR_INVALID, "client_id must be");
	s = spec(NULL, CLIENT_PUBLIC);
	add_refused(f, &s, ERR_INVALID, "client_id must be");
	s = spec("has space", CLIENT_PUBLIC);
	add_refused(f, &s, ERR_INVALID, "client_id must be");
	s = spec("a/b", CLIENT_PUBLIC);
	add_refused(f, &s, ERR_INVALID, "client_id must be");
	s = spec("caf\xc3\xa9", CLIENT_PUBLIC);
	add_refused(f, &s, ERR_INVALID, "client_id must be");
	s = spec("ok", CLIENT_PUBLIC);
	s.name = "bad\nname";
	add_refused(f, &s, ERR_INVALID, "name must be");
}

/* Register a public client with one redirect URI: accepted or refused with 'msg'. */
static void redirect_case(struct fx *f, const char *uri, const char *msg)
{
	static int n;
	char id[32];
	const char *uris[1] = {uri};
	struct client_spec s;

	snprintf(id, sizeof(id), "r%d", n++);
	s = spec(id, CLIENT_PUBLIC);
	s.redirect_uris = uris;
	if (msg)
		add_refused(f, &s, ERR_INVALID, msg);
	else
		add_ok(f, &s);
}

static void test_redirect_rules(void **state)
{
	struct fx *f = *state;
	struct client_spec s;
	char big[700];

	redirect_case(f, "https://app.example/cb", NULL);
	redirect_case(f, "https://app.example:8443/cb?tenant=1", NULL);
	redirect_case(f, "http://127.0.0.1:8080/cb", NULL);
	redirect_case(f, "http://127.0.0.1/cb", NULL);
	redirect_case(f, "http://[::1]:5000/cb", NULL);
	redirect_case(f, "http://localhost:3000/cb", NULL);
	redirect_case(f, "https://[2001:db8::1]/cb", NULL);
	redirect_case(f, "http://app.example/cb", "must use https");
	redirect_case(f, "http://127.0.0.2/cb", "must use https");
	redirect_case(f, "http://localhost.evil.example/cb", "must use https");
	redirect_case(f, "https://app.example/cb#frag", "has a fragment");
	redirect_case(f, "https://app.example/cb#", "has a fragment");
	redirect_case(f, "https://*.example.com/cb", "wildcard");
	redirect_case(f, "https://app.example/*", "wildcard");
	redirect_case(f, "/relative/cb", "not an absolute URL");
	redirect_case(f, "app.example/cb", "not an absolute URL");
	redirect_case(f, "https:///cb", "not an absolute URL");
	redirect_case(f, "https://user:pw@app.example/cb", "not an absolute URL");
	redirect_case(f, "https://app.example:0/cb", "not an absolute URL");
	redirect_case(f, "https://app.example:99999/cb", "not an absolute URL");
	redirect_case(f, "com.example.app:/oauth2redirect", "not an absolute URL");
	redirect_case(f, "ftp://app.example/cb", "must use https");
	redirect_case(f, "javascript://app.example/%0aalert(1)", "must use https");
	redirect_case(f, "https://app.example/c b", "not allowed in a URI");
	redirect_case(f, "https://app.example/cb%zz", "malformed percent escape");
	redirect_case(f, "", "is empty");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "https://app.example/", 20);
	redirect_case(f, big, "longer than");

	/* at least one, except for backend services */
	s = spec("none-pub", CLIENT_PUBLIC);
	s.nredirect = 0;
	add_refused(f, &s, ERR_INVALID, "needs at least one redirect URI");
	s = spec("none-sym", CLIENT_SYMMETRIC);
	s.nredirect = 0;
	add_refused(f, &s, ERR_INVALID, "needs at least one redirect URI");
	{
		static const char *const twice[] = {"https://a.example/cb", "https://a.example/cb"};

		s = spec("twice", CLIENT_PUBLIC);
		s.redirect_uris = twice;
		s.nredirect = 2;
		add_refused(f, &s, ERR_INVALID, "given twice");
	}
	/* launch URL follows the same rules */
	s = spec("launch-http", CLIENT_PUBLIC);
	s.launch_url = "http://app.example/launch";
	add_refused(f, &s, ERR_INVALID, "launch URL");
}

static void test_credential_rules(void **state)
{
	struct fx *f = *state;
	struct client_spec s;
	char *good = jwks_text((struct jose_key *[]){rsa_key}, 1);
	char *p256_only = jwks_text((struct jose_key *[]){p256_key}, 1);
	char *dup_kid = jwks_text((struct jose_key *[]){rsa_key, rsa_other}, 2);
	char priv[8192];
	json_t *jwk = NULL;
	struct ctx c = CTX_INIT;

	/* symmetric: a secret of 16 characters or more */
	s = spec("sym-none", CLIENT_SYMMETRIC);
	s.secret = NULL;
	add_refused(f, &s, ERR_INVALID, "needs a secret");
	s.secret = "";
	add_refused(f, &s, ERR_INVALID, "needs a secret");
	s.secret = "fifteen-chars!!";
	add_refused(f, &s, ERR_INVALID, "at least 16 characters");
	s.secret = "sixteen-chars!!!";
	add_ok(f, &s);
	s = spec("sym-ctl", CLIENT_SYMMETRIC);
	s.secret = "sixteen-chars!!\t";
	add_refused(f, &s, ERR_INVALID, "printable");

	/* public: no credentials */
	s = spec("pub-secret", CLIENT_PUBLIC);
	s.secret = "sixteen-chars!!!";
	add_refused(f, &s, ERR_INVALID, "only a confidential-symmetric client has a secret");
	s = spec("pub-jwks", CLIENT_PUBLIC);
	s.jwks_json = good;
	add_refused(f, &s, ERR_INVALID, "only a confidential-asymmetric client");
	s = spec("sym-jwks", CLIENT_SYMMETRIC);
	s.jwks_url = "https://app.example/jwks";
	add_refused(f, &s, ERR_INVALID, "only a confidential-asymmetric client");

	/* asymmetric: exactly one of jwks and jwks_url */
	s = spec("asym-neither", CLIENT_ASYMMETRIC);
	add_refused(f, &s, ERR_INVALID, "exactly one");
	s.jwks_json = good;
	s.jwks_url = "https://app.example/jwks";
	add_refused(f, &s, ERR_INVALID, "exactly one");
	s = spec("asym-secret", CLIENT_ASYMMETRIC);
	s.jwks_json = good;
	s.secret = "sixteen-chars!!!";
	add_refused(f, &s, ERR_INVALID, "only a confidential-symmetric client has a secret");

	/* the JWKS URL: https, or http on loopback */
	s = spec("asym-url-http", CLIENT_ASYMMETRIC);
	s.jwks_url = "http://keys.example/jwks";
	add_refused(f, &s, ERR_INVALID, "JWKS URL");
	s.jwks_url = "http://127.0.0.1:9/jwks";
	add_ok(f, &s);
	s = spec("asym-url-frag", CLIENT_ASYMMETRIC);
	s.jwks_url = "https://keys.example/jwks#x";
	add_refused(f, &s, ERR_INVALID, "fragment");

	/* the JWK Set by value */
	s = spec("asym-bad", CLIENT_ASYMMETRIC);
	s.jwks_json = "{not json";
	add_refused(f, &s, ERR_INVALID, "not valid JSON");
	s.jwks_json = "{\"keys\":[]}";
	add_refused(f, &s, ERR_INVALID, "non-empty 'keys'");
	s.jwks_json = "[]";
	add_refused(f, &s, ERR_INVALID, "non-empty 'keys'");
	s.jwks_json = p256_only;
	add_refused(f, &s, ERR_INVALID, "no key usable with RS384");
	s.jwks_json = dup_kid;
	add_refused(f, &s, ERR_INVALID, "same kid");
	/* a key without kid */
	assert_int_equal(jose_key_to_jwk(rsa_key, false, &jwk, &c), ERR_OK);
	json_object_del(jwk, "kid");
	{
		json_t *doc = json_pack("{s:[O]}", "keys", jwk);
		char *t = json_dumps(doc, JSON_COMPACT);

		s.jwks_json = t;
		add_refused(f, &s, ERR_INVALID, "has no 'kid'");
		free(t);
		json_decref(doc);
	}
	json_decref(jwk);
	/* private keys are refused, whatever their type */
	assert_int_equal(jose_key_to_jwk(ec_key, true, &jwk, &c), ERR_OK);
	{
		json_t *doc = json_pack("{s:[O]}", "keys", jwk);
		char *t = json_dumps(doc, JSON_COMPACT);

		snprintf(priv, sizeof(priv), "%s", t);
		s.jwks_json = priv;
		add_refused(f, &s, ERR_INVALID, "private key material");
		free(t);
		json_decref(doc);
	}
	json_decref(jwk);
	s.jwks_json = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0c2VjcmV0c2VjcmV0\"}]}";
	add_refused(f, &s, ERR_INVALID, "private key material");
	/* an unknown key type beside a usable key is fine */
	{
		char *t = jwks_text((struct jose_key *[]){ec_key}, 1);
		char both[8192];

		snprintf(both, sizeof(both), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\","
			 "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},%s",
			 strstr(t, "[") + 1);
		s = spec("asym-mixed", CLIENT_ASYMMETRIC);
		s.jwks_json = both;
		add_ok(f, &s);
		free(t);
	}
	free(good);
	free(p256_only);
	free(dup_kid);
}

static void test_origin_scope_rules(void **state)
{
	struct fx *f = *state;
	struct client_spec s;
	struct client cl;
	struct ctx c = CTX_INIT;
	const char *o[1];
	static const char *const bad[] = {
		"https://app.example/", "https://app.example/path", "ftp://app.example",
		"http://app.example", "app.example", "https://app.example?x", "null", "",
	};

	s = spec("o1", CLIENT_PUBLIC);
	s.origins = o;
	s.norigins = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o[0] = bad[i];
		add_refused(f, &s, ERR_INVALID, "origin");
	}
	o[0] = "https://App.Example:8443";
	add_ok(f, &s);
	assert_int_equal(client_get(f->cs, "o1", &cl, &c), ERR_OK);
	assert_true(client_origin_ok(&cl, "https://app.example:8443"));
	assert_true(client_origin_ok(&cl, "https://APP.example:8443"));
	assert_false(client_origin_ok(&cl, "https://app.example"));
	assert_false(client_origin_ok(&cl, "http://app.example:8443"));
	assert_false(client_origin_ok(&cl, "https://app.example:8443/"));
	assert_false(client_origin_ok(&cl, "null"));
	assert_false(client_origin_ok(&cl, NULL));
	client_release(&cl);

	s = spec("sc", CLIENT_PUBLIC);
	s.scope = "patient/*.rs \"quoted\"";
	add_refused(f, &s, ERR_INVALID, "scope");
	s.scope = "patient/*.rs\\";
	add_refused(f, &s, ERR_INVALID, "scope");
	s.scope = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
	add_ok(f, &s);
}

/* The secret is stored as its SHA-256 only. */
static void test_secret_not_stored(void **state)
{
	struct fx *f = *state;
	struct client_spec s = spec("sym", CLIENT_SYMMETRIC);
	struct store_item it;
	struct ctx c = CTX_INIT;
	json_t *rec;
	const char *h;

	add_ok(f, &s);
	store_item_init(&it);
	assert_int_equal(store_item_get(f->s, "client", "sym", &it, &c), ERR_OK);
	assert_null(strstr(it.data.data, "correct horse"));
	assert_null(strstr(it.data.data, "battery"));
	rec = json_loads(it.data.data, 0, NULL);
	assert_non_null(rec);
	h = json_string_value(json_object_get(rec, "secret_sha256"));
	assert_non_null(h);
	assert_int_equal(strlen(h), 64);
	assert_int_equal(strspn(h, "0123456789abcdef"), 64);
	assert_string_equal(json_string_value(json_object_get(rec, "kind")), "symmetric");
	json_decref(rec);
	store_item_release(&it);
}

struct seen {
	int n;
	char ids[8][64];
};

static int collect(void *arg, const struct client *cl)
{
	struct seen *s = arg;

	if (s->n < 8)
		snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s:%s", cl->client_id,
			 client_kind_name(cl->kind));
	return 0;
}

static void test_list_remove_disable(void **state)
{
	struct fx *f = *state;
	struct client_spec s;
	struct seen seen;
	struct client cl;
	struct ctx c = CTX_INIT;

	s = spec("b-sym", CLIENT_SYMMETRIC);
	add_ok(f, &s);
	s = spec("a-pub", CLIENT_PUBLIC);
	add_ok(f, &s);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(client_list(f->cs, collect, &seen, &c), ERR_OK);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.ids[0], "a-pub:public");
	assert_string_equal(seen.ids[1], "b-sym:symmetric");

	assert_int_equal(client_set_disabled(f->cs, "a-pub", true, &c), ERR_OK);
	assert_int_equal(client_get(f->cs, "a-pub", &cl, &c), ERR_OK);
	assert_true(cl.disabled);
	client_release(&cl);
	assert_int_equal(client_set_disabled(f->cs, "a-pub", false, &c), ERR_OK);
	assert_int_equal(client_get(f->cs, "a-pub", &cl, &c), ERR_OK);
	assert_false(cl.disabled);
	client_release(&cl);
	assert_int_equal(client_set_disabled(f->cs, "ghost", true, &c), ERR_NOTFOUND);

	assert_int_equal(client_remove(f->cs, "a-pub", &c), ERR_OK);
	assert_int_equal(client_get(f->cs, "a-pub", &cl, &c), ERR_NOTFOUND);
	client_release(&cl);
	ctx_clear(&c);
	assert_int_equal(client_remove(f->cs, "a-pub", &c), ERR_NOTFOUND);
	assert_non_null(strstr(c.msg, "no client 'a-pub'"));
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(client_list(f->cs, collect, &seen, &c), ERR_OK);
	assert_int_equal(seen.n, 1);
}

static void test_redirect_match(void **state)
{
	struct fx *f = *state;
	static const char *const uris[] = {"https://app.example/cb", "http://127.0.0.1:8080/cb?x=1",
					   "http://[::1]/native", "http://localhost:3000/cb"};
	struct client_spec s = spec("m", CLIENT_PUBLIC);
	struct client cl;
	struct ctx c = CTX_INIT;

	s.redirect_uris = uris;
	s.nredirect = 4;
	add_ok(f, &s);
	assert_int_equal(client_get(f->cs, "m", &cl, &c), ERR_OK);
	/* exact bytes */
	assert_true(client_redirect_ok(&cl, "https://app.example/cb"));
	assert_false(client_redirect_ok(&cl, "https://app.example/cb/"));
	assert_false(client_redirect_ok(&cl, "https://app.example/cb?x=1"));
	assert_false(client_redirect_ok(&cl, "https://APP.example/cb"));
	assert_false(client_redirect_ok(&cl, "https://app.example/CB"));
	assert_false(client_redirect_ok(&cl, "https://app.example:443/cb"));
	assert_false(client_redirect_ok(&cl, "https://app.example/cb#x"));
	assert_false(client_redirect_ok(&cl, "https://app.example.evil/cb"));
	assert_false(client_redirect_ok(&cl, ""));
	assert_false(client_redirect_ok(&cl, NULL));
	/* loopback IPs: any port */
	assert_true(client_redirect_ok(&cl, "http://127.0.0.1:8080/cb?x=1"));
	assert_true(client_redirect_ok(&cl, "http://127.0.0.1:51234/cb?x=1"));
	assert_true(client_redirect_ok(&cl, "http://127.0.0.1/cb?x=1"));
	assert_false(client_redirect_ok(&cl, "http://127.0.0.1:51234/cb?x=2"));
	assert_false(client_redirect_ok(&cl, "http://127.0.0.1:51234/cb"));
	assert_false(client_redirect_ok(&cl, "http://127.0.0.1:0/cb?x=1"));
	assert_false(client_redirect_ok(&cl, "http://127.0.0.1:99999/cb?x=1"));
	assert_false(client_redirect_ok(&cl, "http://127.0.0.1:80a/cb?x=1"));
	assert_false(client_redirect_ok(&cl, "http://127.0.0.1.evil.example/cb?x=1"));
	assert_false(client_redirect_ok(&cl, "https://127.0.0.1:51234/cb?x=1"));
	assert_true(client_redirect_ok(&cl, "http://[::1]:61000/native"));
	assert_true(client_redirect_ok(&cl, "http://[::1]/native"));
	assert_false(client_redirect_ok(&cl, "http://[::1]:61000/native/x"));
	/* localhost is not an IP literal: exact match only */
	assert_true(client_redirect_ok(&cl, "http://localhost:3000/cb"));
	assert_false(client_redirect_ok(&cl, "http://localhost:4000/cb"));
	client_release(&cl);
}

/* ---- client authentication: secrets and public clients ---- */

static struct client_auth_in auth_in(void)
{
	struct client_auth_in in;

	memset(&in, 0, sizeof(in));
	in.token_url = TOKEN_URL;
	in.now_ms = NOW;
	return in;
}

/* "Basic base64(id:secret)" (both already form-encoded) into out. */
static void basic(char *out, size_t size, const char *id, const char *secret)
{
	char raw[512];
	struct buf b = BUF_INIT(1024);

	snprintf(raw, sizeof(raw), "%s:%s", id, secret);
	assert_int_equal(base64_encode(raw, strlen(raw), &b), ERR_OK);
	snprintf(out, size, "Basic %s", b.data);
	buf_release(&b);
}

/* Run client_authenticate and check the outcome. */
static void expect_auth(struct fx *f, const struct client_auth_in *in, enum err want,
			const char *error, int status, bool www_basic, const char *msg)
{
	struct client cl;
	struct client_auth_err err;
	struct ctx c = CTX_INIT;
	enum err rc = client_authenticate(f->cs, in, &cl, &err, &c);

	if (rc != want)
		fail_msg("client_authenticate: got %d (%s), want %d", rc, c.msg, want);
	if (want == ERR_OK) {
		assert_true(cl.client_id[0] != '\0');
	} else {
		assert_string_equal(err.error, error);
		assert_int_equal(err.status, status);
		assert_int_equal(err.www_basic, www_basic);
		if (msg && !strstr(err.description, msg))
			fail_msg("description '%s' lacks '%s'", err.description, msg);
		assert_null(strstr(err.description, "battery"));
		assert_string_equal(c.msg, err.description);
	}
	client_release(&cl);
}

static void setup_secret_clients(struct fx *f)
{
	struct client_spec s;

	s = spec("app.sym", CLIENT_SYMMETRIC);
	add_ok(f, &s);
	s = spec("pub", CLIENT_PUBLIC);
	add_ok(f, &s);
	s = spec("off.sym", CLIENT_SYMMETRIC);
	add_ok(f, &s);
	{
		struct ctx c = CTX_INIT;

		assert_int_equal(client_set_disabled(f->cs, "off.sym", true, &c), ERR_OK);
	}
}

static void test_auth_basic(void **state)
{
	struct fx *f = *state;
	struct client_auth_in in = auth_in();
	char h[512];
	struct client cl;
	struct client_auth_err err;
	struct ctx c = CTX_INIT;

	setup_secret_clients(f);
	/* RFC 6749 2.3.1: id and secret form-url-encoded inside Basic */
	basic(h, sizeof(h), "app.sym", SECRET_FORM);
	in.authorization = h;
	assert_int_equal(client_authenticate(f->cs, &in, &cl, &err, &c), ERR_OK);
	assert_string_equal(cl.client_id, "app.sym");
	assert_int_equal(cl.kind, CLIENT_SYMMETRIC);
	client_release(&cl);
	/* the same with the body's client_id and any case of the scheme */
	in.client_id = "app.sym";
	h[0] = 'b', h[1] = 'A';
	expect_auth(f, &in, ERR_OK, NULL, 0, false, NULL);
	in.client_id = NULL;

	/* the raw secret (not form-encoded) is a different secret */
	basic(h, sizeof(h), "app.sym", "wrong-secret-of-some-length");
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "wrong secret");
	basic(h, sizeof(h), "app.sym", "");
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "must authenticate");
	basic(h, sizeof(h), "ghost", SECRET_FORM);
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "unknown client");
	basic(h, sizeof(h), "off.sym", SECRET_FORM);
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "disabled");
	/* malformed headers */
	in.authorization = "Basic !!!";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "malformed");
	in.authorization = "Basic YXBwLnN5bQ==";   /* "app.sym" without a colon */
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "malformed");
	in.authorization = "Basic";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "malformed");
	in.authorization = "Bearer abc.def.ghi";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "only Basic");
	in.authorization = "Basicx";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "only Basic");
	/* a body client_id that differs */
	basic(h, sizeof(h), "app.sym", SECRET_FORM);
	in.authorization = h;
	in.client_id = "pub";
	expect_auth(f, &in, ERR_INVALID, "invalid_request", 400, false, "differs");
}

static void test_auth_post_and_public(void **state)
{
	struct fx *f = *state;
	struct client_auth_in in = auth_in();
	char h[512];

	setup_secret_clients(f);
	/* client_secret_post */
	in.client_id = "app.sym";
	in.client_secret = SECRET;
	expect_auth(f, &in, ERR_OK, NULL, 0, false, NULL);
	in.client_secret = "wrong-secret-of-some-length";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, false, "wrong secret");
	in.client_id = NULL;
	expect_auth(f, &in, ERR_INVALID, "invalid_request", 400, false, "needs a client_id");

	/* a confidential client that sends no credentials */
	in = auth_in();
	in.client_id = "app.sym";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "must authenticate");
	in.client_secret = "";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, true, "must authenticate");

	/* a public client: client_id only, an empty secret is no secret */
	in = auth_in();
	in.client_id = "pub";
	expect_auth(f, &in, ERR_OK, NULL, 0, false, NULL);
	in.client_secret = "";
	expect_auth(f, &in, ERR_OK, NULL, 0, false, NULL);
	in.client_secret = "some-secret-it-does-not-have";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, false, "public");
	in = auth_in();
	basic(h, sizeof(h), "pub", "");
	in.authorization = h;
	expect_auth(f, &in, ERR_OK, NULL, 0, false, NULL);
	in = auth_in();
	in.client_id = "ghost";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, false, "unknown client");
	in.client_id = NULL;
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, false, "required");

	/* more than one method */
	in = auth_in();
	basic(h, sizeof(h), "app.sym", SECRET_FORM);
	in.authorization = h;
	in.client_id = "app.sym";
	in.client_secret = SECRET;
	expect_auth(f, &in, ERR_INVALID, "invalid_request", 400, false, "one client authentication method");
	in.authorization = NULL;
	in.client_assertion_type = CLIENT_ASSERTION_TYPE;
	in.client_assertion = "a.b.c";
	expect_auth(f, &in, ERR_INVALID, "invalid_request", 400, false, "one client authentication method");
	in.client_secret = NULL;
	in.authorization = h;
	expect_auth(f, &in, ERR_INVALID, "invalid_request", 400, false, "one client authentication method");
}

/* ---- private_key_jwt ---- */

/* Claims of a good assertion by 'id' at NOW; 'jti' unique per test. */
static json_t *claims(const char *id, const char *jti)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "iss", id, "sub", id, "aud", TOKEN_URL, "exp",
			 (json_int_t)(NOW / 1000 + 240), "iat", (json_int_t)(NOW / 1000), "jti", jti);
}

/*
 * A compact JWS of 'cl' (taken) signed by 'k' with the header
 * {"alg":alg[,"kid":kid][,extra]}; 'alg' need not be the key's (then the
 * signature is a dummy, for checks made before verification).
 */
static char *assertion(const struct jose_key *k, const char *alg, const char *kid,
		       const char *extra, json_t *cl)
{
	char hdr[512];
	char *payload = json_dumps(cl, JSON_COMPACT);
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	struct ctx c = CTX_INIT;
	char *s;

	snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"%s%s%s%s%s}", alg, kid ? ",\"kid\":\"" : "",
		 kid ? kid : "", kid ? "\"" : "", extra ? "," : "", extra ? extra : "");
	if (k && jose_key_alg(k) == jose_alg_parse(alg)) {
		assert_int_equal(jose_jws_sign_raw(k, hdr, strlen(hdr), payload, strlen(payload), &out, &c),
				 ERR_OK);
	} else {
		assert_int_equal(base64url_encode(hdr, strlen(hdr), &out), ERR_OK);
		buf_addch(&out, '.');
		assert_int_equal(base64url_encode(payload, strlen(payload), &out), ERR_OK);
		buf_adds(&out, ".c2lnbmF0dXJl");
	}
	s = strdup(out.data);
	buf_release(&out);
	free(payload);
	json_decref(cl);
	return s;
}

/* Authenticate with 'tok' (freed) and expect 'want' / 'msg'. */
static void expect_assertion(struct fx *f, char *tok, int64_t now, enum err want, const char *msg)
{
	struct client_auth_in in = auth_in();

	in.client_assertion_type = CLIENT_ASSERTION_TYPE;
	in.client_assertion = tok;
	in.now_ms = now;
	if (want == ERR_OK)
		expect_auth(f, &in, ERR_OK, NULL, 0, false, NULL);
	else
		expect_auth(f, &in, want, "invalid_client", 401, false, msg);
	free(tok);
}

static void setup_asym(struct fx *f)
{
	char *jwks = jwks_text((struct jose_key *[]){rsa_key, ec_key}, 2);
	struct client_spec s = spec("asym", CLIENT_ASYMMETRIC);

	s.jwks_json = jwks;
	add_ok(f, &s);
	free(jwks);
	s = spec("app.sym", CLIENT_SYMMETRIC);
	add_ok(f, &s);
}

static int count_items(void *arg, const struct store_item *it)
{
	int *n = arg;

	assert_true(it->expires > NOW);
	assert_int_equal(strlen(it->key), 64);
	(*n)++;
	return 0;
}

static void test_assertion_good(void **state)
{
	int n = 0;
	struct fx *f = *state;
	struct client_auth_in in = auth_in();
	struct client cl;
	struct client_auth_err err;
	struct ctx c = CTX_INIT;
	json_t *cm;
	char *tok;

	setup_asym(f);
	/* RS384 with typ JWT */
	tok = assertion(rsa_key, "RS384", "rsa-1", "\"typ\":\"JWT\"", claims("asym", "j-1"));
	in.client_assertion_type = CLIENT_ASSERTION_TYPE;
	in.client_assertion = tok;
	in.client_id = "asym";
	assert_int_equal(client_authenticate(f->cs, &in, &cl, &err, &c), ERR_OK);
	assert_string_equal(cl.client_id, "asym");
	assert_int_equal(cl.kind, CLIENT_ASYMMETRIC);
	client_release(&cl);
	free(tok);
	/* ES384 without typ, aud as an array, no iat */
	cm = claims("asym", "j-2");
	json_object_set_new(cm, "aud", json_pack("[s,s]", "https://other.example", TOKEN_URL));
	json_object_del(cm, "iat");
	expect_assertion(f, assertion(ec_key, "ES384", "ec-1", NULL, cm), NOW, ERR_OK, NULL);
	/* exp within the skew is still accepted; nbf now is fine */
	cm = claims("asym", "j-3");
	json_object_set_new(cm, "exp", json_integer(NOW / 1000 - 30));
	json_object_set_new(cm, "nbf", json_integer(NOW / 1000));
	expect_assertion(f, assertion(ec_key, "ES384", "ec-1", "\"typ\":\"jwt\"", cm), NOW, ERR_OK, NULL);

	/* each jti is recorded against replay, in namespace cjti with the client as group */
	assert_int_equal(store_item_list(f->s, "cjti", 0, "asym", count_items, &n, &c), ERR_OK);
	assert_int_equal(n, 3);
}

static void test_assertion_refusals(void **state)
{
	struct fx *f = *state;
	struct client_auth_in in = auth_in();
	json_t *cm;
	int n = 0;
	struct ctx c = CTX_INIT;
	char *tok;

	setup_asym(f);

	/* replay: the second use of a jti fails */
	tok = assertion(rsa_key, "RS384", "rsa-1", NULL, claims("asym", "once"));
	expect_assertion(f, strdup(tok), NOW, ERR_OK, NULL);
	expect_assertion(f, tok, NOW + 1000, ERR_UNAUTHORIZED, "already used");
	assert_int_equal(store_item_list(f->s, "cjti", 0, "asym", count_items, &n, &c), ERR_OK);
	assert_int_equal(n, 1);
	/* the same jti from another client is another pair (here: a different key) */

	/* wrong aud */
	cm = claims("asym", "aud");
	json_object_set_new(cm, "aud", json_string("https://ehr.example/oauth/token/"));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "aud");
	cm = claims("asym", "aud2");
	json_object_set_new(cm, "aud", json_pack("[s]", "https://other.example"));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "aud");
	cm = claims("asym", "aud3");
	json_object_del(cm, "aud");
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "aud");
	/* expired (beyond the minute of skew) */
	cm = claims("asym", "exp1");
	json_object_set_new(cm, "exp", json_integer(NOW / 1000 - 61));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "expired");
	/* exp too far: more than 5 minutes (plus skew) */
	cm = claims("asym", "exp2");
	json_object_set_new(cm, "exp", json_integer(NOW / 1000 + 361));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "5 minutes");
	/* a client clock 60 s ahead: exp 6 minutes away, 5 minutes after iat */
	cm = claims("asym", "exp3");
	json_object_set_new(cm, "exp", json_integer(NOW / 1000 + 360));
	json_object_set_new(cm, "iat", json_integer(NOW / 1000 + 60));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_OK, NULL);
	/* exp more than 5 minutes after iat: refused, however near exp is */
	cm = claims("asym", "life1");
	json_object_set_new(cm, "exp", json_integer(NOW / 1000 + 301));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED,
			 "exp - iat");
	cm = claims("asym", "life2");
	json_object_set_new(cm, "iat", json_integer(NOW / 1000 - 600));
	json_object_set_new(cm, "exp", json_integer(NOW / 1000 + 60));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED,
			 "exp - iat");
	cm = claims("asym", "life3");
	json_object_set_new(cm, "exp", json_integer(NOW / 1000 + 300));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_OK, NULL);
	/* exp missing or not a number */
	cm = claims("asym", "exp4");
	json_object_del(cm, "exp");
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "no exp");
	cm = claims("asym", "exp5");
	json_object_set_new(cm, "exp", json_string("soon"));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "no exp");
	/* iat / nbf in the future */
	cm = claims("asym", "iat");
	json_object_set_new(cm, "iat", json_integer(NOW / 1000 + 120));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "iat");
	cm = claims("asym", "nbf");
	json_object_set_new(cm, "nbf", json_integer(NOW / 1000 + 120));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "nbf");
	/* jti missing or empty */
	cm = claims("asym", "x");
	json_object_del(cm, "jti");
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "jti");
	cm = claims("asym", "");
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "jti");
	/* iss != sub, or not the client */
	cm = claims("asym", "iss1");
	json_object_set_new(cm, "sub", json_string("someone"));
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "iss and sub");
	cm = claims("asym", "iss2");
	json_object_del(cm, "iss");
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, cm), NOW, ERR_UNAUTHORIZED, "iss and sub");
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, claims("ghost", "g")), NOW,
			 ERR_UNAUTHORIZED, "unknown client");
	/* a client registered with a secret cannot use an assertion */
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, claims("app.sym", "s")), NOW,
			 ERR_UNAUTHORIZED, "not registered for private_key_jwt");
	/* body client_id must match */
	in.client_assertion_type = CLIENT_ASSERTION_TYPE;
	in.client_assertion = tok = assertion(rsa_key, "RS384", "rsa-1", NULL, claims("asym", "body"));
	in.client_id = "app.sym";
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 401, false, "client_id does not match");
	free(tok);
	/* unknown kid; a key of the wrong type for alg */
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-9", NULL, claims("asym", "k1")), NOW,
			 ERR_UNAUTHORIZED, "no key of the client matches");
	expect_assertion(f, assertion(NULL, "ES384", "rsa-1", NULL, claims("asym", "k2")), NOW,
			 ERR_UNAUTHORIZED, "no key of the client matches");
	/* kid missing */
	expect_assertion(f, assertion(rsa_key, "RS384", NULL, NULL, claims("asym", "k3")), NOW,
			 ERR_UNAUTHORIZED, "no kid");
	/* signed by another key with the registered kid */
	expect_assertion(f, assertion(rsa_other, "RS384", "rsa-1", NULL, claims("asym", "k4")), NOW,
			 ERR_UNAUTHORIZED, "signature does not verify");
	/* algorithms: RS256, ES256, HS256, none refused */
	expect_assertion(f, assertion(NULL, "RS256", "rsa-1", NULL, claims("asym", "a1")), NOW,
			 ERR_UNAUTHORIZED, "RS384 or ES384");
	expect_assertion(f, assertion(NULL, "ES256", "ec-1", NULL, claims("asym", "a2")), NOW,
			 ERR_UNAUTHORIZED, "RS384 or ES384");
	expect_assertion(f, assertion(NULL, "HS256", "rsa-1", NULL, claims("asym", "a3")), NOW,
			 ERR_UNAUTHORIZED, "RS384 or ES384");
	expect_assertion(f, assertion(NULL, "none", "rsa-1", NULL, claims("asym", "a4")), NOW,
			 ERR_UNAUTHORIZED, "RS384 or ES384");
	/* typ other than JWT */
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", "\"typ\":\"at+jwt\"", claims("asym", "t1")),
			 NOW, ERR_UNAUTHORIZED, "typ");
	/* jku with a client registered by value */
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", "\"jku\":\"https://evil.example/jwks\"",
				      claims("asym", "u1")), NOW, ERR_UNAUTHORIZED, "jku");
	/* not a JWT at all */
	expect_assertion(f, strdup("not-a-jwt"), NOW, ERR_UNAUTHORIZED, "well-formed");

	/* the assertion type: exactly the RFC 7523 URN, else 400 invalid_client */
	in = auth_in();
	in.client_assertion_type = "not_an_assertion_type";
	in.client_assertion = tok = assertion(rsa_key, "RS384", "rsa-1", NULL, claims("asym", "ty"));
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 400, false, "client_assertion_type");
	in.client_assertion_type = NULL;
	expect_auth(f, &in, ERR_UNAUTHORIZED, "invalid_client", 400, false, "client_assertion_type");
	free(tok);
	in.client_assertion_type = CLIENT_ASSERTION_TYPE;
	in.client_assertion = NULL;
	expect_auth(f, &in, ERR_INVALID, "invalid_request", 400, false, "missing");

	/* a disabled client */
	assert_int_equal(client_set_disabled(f->cs, "asym", true, &c), ERR_OK);
	expect_assertion(f, assertion(rsa_key, "RS384", "rsa-1", NULL, claims("asym", "d")), NOW,
			 ERR_UNAUTHORIZED, "disabled");
}

/* ---- JWKS URL ---- */

static void setup_url_client(struct fx *f, const char *path)
{
	struct client_spec s = spec("remote", CLIENT_ASYMMETRIC);

	f->httpd = httpd_start();
	snprintf(f->jwks_url, sizeof(f->jwks_url), "http://127.0.0.1:%d%s", f->httpd->port, path);
	s.jwks_url = f->jwks_url;
	s.nredirect = 0;
	add_ok(f, &s);
}

static char *remote_token(const struct jose_key *k, const char *kid, const char *jti, int64_t now,
			  const char *extra)
{
	json_t *cm = json_pack("{s:s,s:s,s:s,s:I,s:s}", "iss", "remote", "sub", "remote", "aud",
			       TOKEN_URL, "exp", (json_int_t)(now / 1000 + 120), "jti", jti);

	return assertion(k, jose_alg_name(jose_key_alg(k)), kid, extra, cm);
}

static void test_jwks_url_cache(void **state)
{
	struct fx *f = *state;
	int64_t t = NOW;

	setup_url_client(f, "/jwks.json");
	httpd_serve(f->httpd, 200, "public, max-age=600", jwks_text((struct jose_key *[]){ec_key}, 1));
	expect_assertion(f, remote_token(ec_key, "ec-1", "c1", t, NULL), t, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 1);
	assert_true(f->httpd->accept_json);
	/* cached while max-age allows */
	t += 599000;
	expect_assertion(f, remote_token(ec_key, "ec-1", "c2", t, NULL), t, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 1);
	/* fetched again once it is older than max-age */
	t += 2000;
	expect_assertion(f, remote_token(ec_key, "ec-1", "c3", t, NULL), t, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 2);

	/* jku: equal to the registered URL is fine, any other is refused */
	{
		char extra[256];

		snprintf(extra, sizeof(extra), "\"jku\":\"%s\"", f->jwks_url);
		expect_assertion(f, remote_token(ec_key, "ec-1", "c4", t, extra), t, ERR_OK, NULL);
		snprintf(extra, sizeof(extra), "\"jku\":\"http://127.0.0.1:%d/other.json\"", f->httpd->port);
		expect_assertion(f, remote_token(ec_key, "ec-1", "c5", t, extra), t, ERR_UNAUTHORIZED, "jku");
	}
	assert_int_equal(httpd_requests(f->httpd), 2);
}

static void test_jwks_url_no_store_default(void **state)
{
	struct fx *f = *state;
	int64_t t = NOW;

	setup_url_client(f, "/k");
	/* no-store: every authentication fetches */
	httpd_serve(f->httpd, 200, "no-store", jwks_text((struct jose_key *[]){rsa_key}, 1));
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "n1", t, NULL), t, ERR_OK, NULL);
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "n2", t + 1, NULL), t + 1, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 2);
	/* no-cache too */
	httpd_serve(f->httpd, 200, "no-cache", jwks_text((struct jose_key *[]){rsa_key}, 1));
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "n3", t + 2, NULL), t + 2, ERR_OK, NULL);
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "n4", t + 3, NULL), t + 3, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 4);
	/* max-age=0 */
	httpd_serve(f->httpd, 200, "max-age=0", jwks_text((struct jose_key *[]){rsa_key}, 1));
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "n5", t + 4, NULL), t + 4, ERR_OK, NULL);
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "n6", t + 5, NULL), t + 5, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 6);
	/* no Cache-Control: five minutes */
	httpd_serve(f->httpd, 200, NULL, jwks_text((struct jose_key *[]){rsa_key}, 1));
	t += 10;
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "d1", t, NULL), t, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 7);
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "d2", t + 299000, NULL), t + 299000, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 7);
	expect_assertion(f, remote_token(rsa_key, "rsa-1", "d3", t + 301000, NULL), t + 301000, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 8);
}

static void test_jwks_url_unknown_kid(void **state)
{
	struct fx *f = *state;
	int64_t t = NOW;

	setup_url_client(f, "/rotating");
	httpd_serve(f->httpd, 200, "max-age=3600", jwks_text((struct jose_key *[]){ec_key}, 1));
	expect_assertion(f, remote_token(ec_key, "ec-1", "u1", t, NULL), t, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 1);
	/* the client rotates its key; the cached set lacks the new kid */
	httpd_serve(f->httpd, 200, "max-age=3600", jwks_text((struct jose_key *[]){ec_key, ec_new}, 2));
	t += 10000;
	/* within 30 s of the last fetch: no refetch, refused */
	expect_assertion(f, remote_token(ec_new, "ec-2", "u2", t, NULL), t, ERR_UNAUTHORIZED,
			 "no key of the client matches");
	assert_int_equal(httpd_requests(f->httpd), 1);
	/* later: one refetch finds it */
	t += 25000;
	expect_assertion(f, remote_token(ec_new, "ec-2", "u3", t, NULL), t, ERR_OK, NULL);
	assert_int_equal(httpd_requests(f->httpd), 2);
	/* a kid nobody has: one refetch at most per 30 s */
	expect_assertion(f, remote_token(ec_new, "ec-9", "u4", t + 1000, NULL), t + 1000, ERR_UNAUTHORIZED,
			 "no key");
	expect_assertion(f, remote_token(ec_new, "ec-9", "u5", t + 2000, NULL), t + 2000, ERR_UNAUTHORIZED,
			 "no key");
	assert_int_equal(httpd_requests(f->httpd), 2);
	expect_assertion(f, remote_token(ec_new, "ec-9", "u6", t + 31000, NULL), t + 31000,
			 ERR_UNAUTHORIZED, "no key");
	assert_int_equal(httpd_requests(f->httpd), 3);
}

static void test_jwks_url_failures(void **state)
{
	struct fx *f = *state;
	int64_t t = NOW;
	char *big;
	struct jose_key *k2[] = {ec_key};

	setup_url_client(f, "/bad");
	/* an HTTP error */
	httpd_serve(f->httpd, 404, NULL, strdup("{}"));
	expect_assertion(f, remote_token(ec_key, "ec-1", "f1", t, NULL), t, ERR_UNAUTHORIZED, "HTTP 404");
	/* a failed fetch is not tried again for 30 s, even when the host is fixed */
	httpd_serve(f->httpd, 200, NULL, jwks_text(k2, 1));
	expect_assertion(f, remote_token(ec_key, "ec-1", "f1b", t + 29000, NULL), t + 29000,
			 ERR_UNAUTHORIZED, "could not be fetched");
	assert_int_equal(httpd_requests(f->httpd), 1);
	t += CLIENT_JWKS_REFETCH_MS;
	/* redirects are not followed */
	httpd_serve(f->httpd, 302, NULL, strdup(""));
	pthread_mutex_lock(&f->httpd->mu);
	snprintf(f->httpd->location, sizeof(f->httpd->location), "http://127.0.0.1:%d/elsewhere",
		 f->httpd->port);
	pthread_mutex_unlock(&f->httpd->mu);
	expect_assertion(f, remote_token(ec_key, "ec-1", "f2", t, NULL), t, ERR_UNAUTHORIZED, "HTTP 302");
	assert_int_equal(httpd_requests(f->httpd), 2);
	t += CLIENT_JWKS_REFETCH_MS;
	/* not JSON */
	httpd_serve(f->httpd, 200, NULL, strdup("<html>"));
	expect_assertion(f, remote_token(ec_key, "ec-1", "f3", t, NULL), t, ERR_UNAUTHORIZED, "JSON");
	t += CLIENT_JWKS_REFETCH_MS;
	/* too large */
	big = malloc(300 << 10);
	memset(big, ' ', (300 << 10) - 1);
	big[(300 << 10) - 1] = '\0';
	big[0] = '{';
	big[(300 << 10) - 2] = '}';
	httpd_serve(f->httpd, 200, NULL, big);
	expect_assertion(f, remote_token(ec_key, "ec-1", "f4", t, NULL), t, ERR_UNAUTHORIZED, "larger");
	t += CLIENT_JWKS_REFETCH_MS;
	/* private keys published at the URL */
	{
		json_t *jwk = NULL, *doc;
		struct ctx c = CTX_INIT;

		assert_int_equal(jose_key_to_jwk(ec_key, true, &jwk, &c), ERR_OK);
		doc = json_pack("{s:[o]}", "keys", jwk);
		httpd_serve(f->httpd, 200, NULL, json_dumps(doc, JSON_COMPACT));
		json_decref(doc);
	}
	expect_assertion(f, remote_token(ec_key, "ec-1", "f5", t, NULL), t, ERR_UNAUTHORIZED, "private");
	t += CLIENT_JWKS_REFETCH_MS;
	/* and once it serves its keys, it works */
	httpd_serve(f->httpd, 200, NULL, jwks_text(k2, 1));
	expect_assertion(f, remote_token(ec_key, "ec-1", "f6", t, NULL), t, ERR_OK, NULL);
	/* nothing listens: refused, not hung */
	httpd_stop(f->httpd);
	f->httpd = NULL;
	expect_assertion(f, remote_token(ec_key, "ec-1", "f7", t + 600000, NULL), t + 600000,
			 ERR_UNAUTHORIZED, "cannot fetch");
}

/* Concurrent authentications share the cache safely. */
struct par {
	struct fx *f;
	int idx;
	int ok;
};

static void *par_run(void *arg)
{
	struct par *p = arg;

	for (int i = 0; i < 20; i++) {
		char jti[32];
		char *tok;
		struct client_auth_in in = auth_in();
		struct client cl;
		struct client_auth_err err;
		struct ctx c = CTX_INIT;

		snprintf(jti, sizeof(jti), "p%d-%d", p->idx, i);
		tok = remote_token(ec_key, "ec-1", jti, NOW + i * 10000, NULL);
		in.client_assertion_type = CLIENT_ASSERTION_TYPE;
		in.client_assertion = tok;
		in.now_ms = NOW + i * 10000;
		if (client_authenticate(p->f->cs, &in, &cl, &err, &c) == ERR_OK)
			p->ok++;
		client_release(&cl);
		free(tok);
	}
	return NULL;
}

static void test_jwks_url_threads(void **state)
{
	struct fx *f = *state;
	struct par p[4];
	pthread_t th[4];

	setup_url_client(f, "/par");
	httpd_serve(f->httpd, 200, "max-age=60", jwks_text((struct jose_key *[]){ec_key}, 1));
	for (int i = 0; i < 4; i++) {
		p[i].f = f;
		p[i].idx = i;
		p[i].ok = 0;
		assert_int_equal(pthread_create(&th[i], NULL, par_run, &p[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].ok, 20);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_id_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credential_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_origin_scope_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_not_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_remove_disable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_post_and_public, setup, teardown),
		cmocka_unit_test_setup_teardown(test_assertion_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_assertion_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jwks_url_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jwks_url_no_store_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jwks_url_unknown_kid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jwks_url_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jwks_url_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
