/*
 * clients.c - the registry of apps and client authentication (see
 * clients.h): registration rules, the stored record, redirect URI and
 * origin matching, private_key_jwt with registered or fetched JWK Sets.
 *
 * JWK Sets registered by URL are fetched with libcurl (GET, Accept:
 * application/json, http(s) only, no redirects, 5 s, 256 KiB) and cached
 * per URL as Cache-Control allows.  The cache is a small array under one
 * mutex; a fetch runs without the lock, one per URL at a time: a thread
 * that needs the same URL meanwhile waits for it on a condition variable,
 * but no longer than CLIENT_JWKS_WAIT_MS after the fetch began, and a
 * fetch that failed is not tried again for CLIENT_JWKS_REFETCH_MS, so a
 * slow or broken key host holds one worker, not all of them.  A cached
 * set is shared by reference count, so a thread verifying with it keeps
 * it alive while another replaces it.
 *
 * Secrets: client secrets are read in place and hashed (SHA-256); the
 * stored hex hash is compared in constant time.  No message ever holds a
 * secret or an assertion.
 */
#include "auth/clients.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "auth/users.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/url.h"

#define NS_CLIENT "client"
#define NS_CJTI "cjti"
#define RECORD_VERSION 1
#define JSON_DEPTH 16
#define JTI_MAX 255
#define AUTH_HEADER_MAX 4096
#define SHA256_HEX 65

/* A shared, immutable JWK Set (reference counted under the cache lock). */
struct jwks_ref {
	int refs;
	struct jose_jwks *set;
};

struct cache_entry {
	char url[CLIENT_URI_MAX + 1];
	struct jwks_ref *doc;       /* NULL: nothing cached (not fetched, or no-store) */
	int64_t expires;            /* ms; the cached doc is used before this */
	int64_t last_fetch;         /* ms of the last fetch started */
	int64_t failed;             /* ms of the start of the last fetch, if it failed; else 0 */
	int64_t last_use;           /* ms; the least recently used entry is evicted */
	bool fetching;              /* a thread is fetching this URL now */
	struct timespec wait_until; /* CLOCK_REALTIME: others wait for that fetch until then */
};

struct clients {
	struct store *s;
	pthread_mutex_t mu;
	pthread_cond_t fetched;     /* a fetch ended (signalled under mu) */
	struct cache_entry *cache;  /* CLIENT_JWKS_CACHE_URLS entries; url "" = free */
};

static const char *const kind_names[] = {"public", "symmetric", "asymmetric"};
static const char *const kind_smart[] = {"public", "confidential-symmetric",
					 "confidential-asymmetric"};

const char *client_kind_name(enum client_kind k)
{
	return (unsigned)k < 3 ? kind_names[k] : NULL;
}

const char *client_kind_smart(enum client_kind k)
{
	return (unsigned)k < 3 ? kind_smart[k] : NULL;
}

/* ---- struct client ---- */

void client_init(struct client *cl)
{
	memset(cl, 0, sizeof(*cl));
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void client_release(struct client *cl)
{
	if (!cl)
		return;
	strv_free(cl->redirect_uris, cl->nredirect);
	strv_free(cl->origins, cl->norigins);
	jose_jwks_free(cl->jwks);
	client_init(cl);
}

/* ---- validation ---- */

static bool id_ok(const char *id)
{
	size_t n = id ? strnlen(id, CLIENT_ID_MAX + 1) : 0;

	if (n == 0 || n > CLIENT_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)id[i];

		if (!(isalnum(ch) || ch == '.' || ch == '_' || ch == '~' || ch == '-'))
			return false;
	}
	return true;
}

/* The parts of an absolute http(s) URL. */
struct url_parts {
	const char *scheme;
	size_t scheme_len;
	const char *host;           /* with the brackets of an IPv6 literal */
	size_t host_len;
	const char *port;           /* NULL when absent */
	size_t port_len;
	const char *rest;           /* path, query and fragment ("" when none) */
};

/* Split 'u'; false when it is not scheme://authority[rest] with a sane authority. */
static bool url_split(const char *u, struct url_parts *p)
{
	const char *a, *end, *h;

	memset(p, 0, sizeof(*p));
	if (!isalpha((unsigned char)u[0]))
		return false;
	for (a = u; isalnum((unsigned char)*a) || *a == '+' || *a == '-' || *a == '.'; a++)
		;
	if (strncmp(a, "://", 3))
		return false;
	p->scheme = u;
	p->scheme_len = (size_t)(a - u);
	a += 3;
	end = a + strcspn(a, "/?#");
	p->rest = end;
	if (memchr(a, '@', (size_t)(end - a)))
		return false;   /* user info */
	h = a;
	if (*h == '[') {
		const char *close = memchr(h, ']', (size_t)(end - h));

		if (!close || close == h + 1)
			return false;
		for (const char *q = h + 1; q < close; q++)
			if (!(isxdigit((unsigned char)*q) || *q == ':' || *q == '.'))
				return false;
		p->host = h;
		p->host_len = (size_t)(close + 1 - h);
		a = close + 1;
	} else {
		const char *colon = memchr(h, ':', (size_t)(end - h));
		const char *hend = colon ? colon : end;

		for (const char *q = h; q < hend; q++)
			if (!(isalnum((unsigned char)*q) || *q == '.' || *q == '-'))
				return false;
		p->host = h;
		p->host_len = (size_t)(hend - h);
		a = hend;
	}
	if (p->host_len == 0)
		return false;
	if (a < end) {
		int64_t port;
		char digits[8];

		if (*a != ':' || end - a - 1 < 1 || end - a - 1 > 5)
			return false;
		p->port = a + 1;
		p->port_len = (size_t)(end - a - 1);
		for (size_t i = 0; i < p->port_len; i++)
			if (!isdigit((unsigned char)p->port[i]))
				return false;
		memcpy(digits, p->port, p->port_len);
		digits[p->port_len] = '\0';
		if (str_to_i64(digits, 1, 65535, &port))
			return false;
	}
	return true;
}

static bool part_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && !memcmp(s, lit, n);
}

static bool host_is_loopback(const struct url_parts *p)
{
	return part_is(p->host, p->host_len, "127.0.0.1") ||
	       part_is(p->host, p->host_len, "[::1]") || part_is(p->host, p->host_len, "localhost");
}

/* RFC 3986 characters (unreserved, reserved and '%'). */
static bool uri_char(unsigned char ch)
{
	return isalnum(ch) || strchr("-._~:/?#[]@!$&'()*+,;=%", ch) != NULL;
}

/*
 * Check an absolute https URL (http on a loopback host) for 'what' ("redirect
 * URI", "launch URL", "JWKS URL"): no fragment, wildcard or user info.
 */
static enum err url_check(const char *u, const char *what, struct ctx *c)
{
	struct url_parts p;
	size_t n = u ? strnlen(u, CLIENT_URI_MAX + 1) : 0;

	if (n == 0)
		return ctx_errorf(c, ERR_INVALID, "%s is empty", what);
	if (n > CLIENT_URI_MAX)
		return ctx_errorf(c, ERR_INVALID, "%s is longer than %d bytes", what, CLIENT_URI_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)u[i];

		if (ch == '#')
			return ctx_errorf(c, ERR_INVALID, "%s '%s' has a fragment", what, u);
		if (ch == '*')
			return ctx_errorf(c, ERR_INVALID, "%s '%s' has a wildcard: register exact URIs",
					  what, u);
		if (!uri_char(ch))
			return ctx_errorf(c, ERR_INVALID, "%s has a character not allowed in a URI "
					  "(byte %zu)", what, i + 1);
		if (ch == '%' && !(isxdigit((unsigned char)u[i + 1]) && isxdigit((unsigned char)u[i + 2])))
			return ctx_errorf(c, ERR_INVALID, "%s '%s' has a malformed percent escape", what, u);
	}
	if (!url_split(u, &p))
		return ctx_errorf(c, ERR_INVALID, "%s '%s' is not an absolute URL with a valid host",
				  what, u);
	if (part_is(p.scheme, p.scheme_len, "https"))
		return ERR_OK;
	if (part_is(p.scheme, p.scheme_len, "http")) {
		if (host_is_loopback(&p))
			return ERR_OK;
		return ctx_errorf(c, ERR_INVALID, "%s '%s' must use https (http is only allowed for "
				  "127.0.0.1, [::1] and localhost)", what, u);
	}
	return ctx_errorf(c, ERR_INVALID, "%s '%s' must use https", what, u);
}

/*
 * Normalize an origin (scheme://host[:port], no path) into out[size]:
 * lowercase, default port dropped.  'strict' applies the registration
 * rule (https, or http on loopback).  False when it is not an origin.
 */
static bool origin_normalize(const char *in, bool strict, char *out, size_t size)
{
	char low[CLIENT_URI_MAX + 1];
	struct url_parts p;
	size_t n = in ? strnlen(in, sizeof(low)) : 0;
	bool https;

	if (n == 0 || n >= sizeof(low))
		return false;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)in[i]);
	low[n] = '\0';
	if (!url_split(low, &p) || *p.rest)
		return false;
	https = part_is(p.scheme, p.scheme_len, "https");
	if (!https && !part_is(p.scheme, p.scheme_len, "http"))
		return false;
	if (strict && !https && !host_is_loopback(&p))
		return false;
	if (p.port && part_is(p.port, p.port_len, https ? "443" : "80"))
		p.port = NULL;
	return snprintf(out, size, "%.*s://%.*s%s%.*s", (int)p.scheme_len, p.scheme,
			(int)p.host_len, p.host, p.port ? ":" : "", (int)(p.port ? p.port_len : 0),
			p.port ? p.port : "") < (int)size;
}

/* Printable text: valid UTF-8 without control characters. */
static bool text_ok(const char *s, size_t n)
{
	if (!str_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Unicode code points of valid UTF-8 s[0..n). */
static size_t utf8_chars(const char *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			k++;
	return k;
}

/* RFC 6749 section 3.3: scope tokens of %x21 / %x23-5B / %x5D-7E, separated by spaces. */
static enum err scope_check(const char *s, struct ctx *c)
{
	size_t n = strnlen(s, CLIENT_SCOPE_MAX + 1);

	if (n > CLIENT_SCOPE_MAX)
		return ctx_errorf(c, ERR_INVALID, "scope is longer than %d bytes", CLIENT_SCOPE_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
			return ctx_errorf(c, ERR_INVALID, "scope has a character scopes may not hold "
					  "(byte %zu)", i + 1);
	}
	return ERR_OK;
}

/* Members that only private (or symmetric) JWKs carry. */
static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

/* The index of the first key of 'doc' with a private member, or -1. */
static long jwks_private_index(const json_t *doc)
{
	const json_t *keys = json_object_get(doc, "keys"), *k;
	size_t i;

	json_array_foreach(keys, i, k)
		for (size_t m = 0; m < sizeof(private_members) / sizeof(private_members[0]); m++)
			if (json_object_get(k, private_members[m]))
				return (long)i;
	return -1;
}

/*
 * Import the signature keys of the JWK Set 'doc' (public only): keys with
 * a "use" other than "sig" and keys of unsupported types are skipped; a
 * malformed key fails the set.  The caller owns *out.
 */
static enum err jwks_import(const json_t *doc, struct jose_jwks **out, struct ctx *c)
{
	const json_t *keys = json_object_get(doc, "keys"), *v;
	struct jose_jwks *set;
	size_t i;

	*out = NULL;
	if (!json_is_object(doc) || !json_is_array(keys))
		return ctx_errorf(c, ERR_INVALID, "a JWK Set is an object with a 'keys' array");
	if (json_array_size(keys) > JOSE_JWKS_MAX_KEYS)
		return ctx_errorf(c, ERR_INVALID, "a JWK Set may hold at most %d keys",
				  JOSE_JWKS_MAX_KEYS);
	set = jose_jwks_new();
	json_array_foreach(keys, i, v) {
		const char *use = json_get_str(v, "use");
		struct jose_key *k = NULL;
		struct ctx kc = CTX_INIT;
		enum err rc;

		if (use && strcmp(use, "sig"))
			continue;
		rc = jose_key_from_jwk(v, JOSE_JWK_PUBLIC_ONLY, &k, &kc);
		if (rc == ERR_UNSUPPORTED)
			continue;
		if (rc == ERR_OK)
			rc = jose_jwks_add(set, k, &kc);
		if (rc != ERR_OK) {
			jose_jwks_free(set);
			return ctx_errorf(c, ERR_INVALID, "JWK Set key %zu: %s", i, kc.msg);
		}
	}
	*out = set;
	return ERR_OK;
}

/* May 'k' verify a client assertion signed with 'alg' (RS384 or ES384)? */
static bool key_fits(const struct jose_key *k, enum jose_alg alg)
{
	enum jose_alg ka = jose_key_alg(k);

	if (ka != JOSE_ALG_UNSET && ka != alg)
		return false;
	if (alg == JOSE_RS384)
		return jose_key_kty(k) == JOSE_KTY_RSA;
	if (alg == JOSE_ES384)
		return jose_key_kty(k) == JOSE_KTY_EC && jose_key_bits(k) == 384;
	return false;
}

/*
 * Check a JWK Set registered by value and put its parsed document in
 * *out (a new reference).
 */
static enum err jwks_registration(const char *text, json_t **out, struct ctx *c)
{
	size_t n = strnlen(text, CLIENT_JWKS_TEXT_MAX + 1), i;
	struct jose_jwks *set = NULL;
	json_t *doc, *k;
	long priv;
	size_t usable = 0;
	enum err rc = ERR_OK;

	*out = NULL;
	if (n > CLIENT_JWKS_TEXT_MAX)
		return ctx_errorf(c, ERR_INVALID, "the JWK Set is larger than %zu bytes",
				  CLIENT_JWKS_TEXT_MAX);
	{
		struct ctx pc = CTX_INIT;

		if (!(doc = json_parse_bounded(text, n, JSON_DEPTH, &pc)))
			return ctx_errorf(c, ERR_INVALID, "the JWK Set is not valid JSON: %s", pc.msg);
	}
	if (!json_is_object(doc) || !json_is_array(json_object_get(doc, "keys")) ||
	    json_array_size(json_object_get(doc, "keys")) == 0) {
		rc = ctx_errorf(c, ERR_INVALID, "a JWK Set is an object with a non-empty 'keys' array");
		goto out;
	}
	if ((priv = jwks_private_index(doc)) >= 0) {
		rc = ctx_errorf(c, ERR_INVALID, "JWK Set key %ld holds private key material: "
				"register the public keys only", priv);
		goto out;
	}
	json_array_foreach(json_object_get(doc, "keys"), i, k) {
		const char *kid = json_get_str(k, "kid");
		size_t j;
		json_t *other;

		if (!json_is_object(k)) {
			rc = ctx_errorf(c, ERR_INVALID, "JWK Set key %zu is not an object", i);
			goto out;
		}
		if (!kid || !*kid || strlen(kid) > JOSE_KID_MAX) {
			rc = ctx_errorf(c, ERR_INVALID, "JWK Set key %zu has no 'kid'", i);
			goto out;
		}
		json_array_foreach(json_object_get(doc, "keys"), j, other) {
			const char *okid = json_get_str(other, "kid");

			if (j < i && okid && !strcmp(okid, kid)) {
				rc = ctx_errorf(c, ERR_INVALID, "JWK Set keys %zu and %zu have the same kid",
						j, i);
				goto out;
			}
		}
	}
	if ((rc = jwks_import(doc, &set, c)) != ERR_OK)
		goto out;
	for (i = 0; i < jose_jwks_count(set); i++)
		if (key_fits(jose_jwks_get(set, i), JOSE_RS384) ||
		    key_fits(jose_jwks_get(set, i), JOSE_ES384))
			usable++;
	if (!usable) {
		rc = ctx_errorf(c, ERR_INVALID, "the JWK Set has no key usable with RS384 (RSA) or "
				"ES384 (EC P-384)");
		goto out;
	}
	*out = json_incref(doc);
out:
	jose_jwks_free(set);
	json_decref(doc);
	return rc;
}

/* Hex SHA-256 of s[0..n) into out[SHA256_HEX]. */
static void sha256_hex(const void *s, size_t n, char out[SHA256_HEX])
{
	unsigned char md[32];
	unsigned int len = 0;

	if (EVP_Digest(s, n, md, &len, EVP_sha256(), NULL) != 1 || len != sizeof(md)) {
		fputs("veranda: SHA-256 failed\n", stderr);
		abort();
	}
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	mem_wipe(md, sizeof(md));
}

/* ---- registry ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_start(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fputs("veranda: cannot initialise libcurl\n", stderr);
		abort();
	}
}

enum err clients_new(struct clients **out, struct store *s, struct ctx *c)
{
	struct clients *cs;

	*out = NULL;
	if (!s)
		return ctx_errorf(c, ERR_INVALID, "clients need a store");
	pthread_once(&curl_once, curl_start);
	cs = xcalloc(1, sizeof(*cs));
	cs->s = s;
	cs->cache = xcalloc(CLIENT_JWKS_CACHE_URLS, sizeof(*cs->cache));
	pthread_mutex_init(&cs->mu, NULL);
	pthread_cond_init(&cs->fetched, NULL);
	*out = cs;
	return ERR_OK;
}

static void jwks_unref(struct jwks_ref *d)
{
	if (d && --d->refs == 0) {
		jose_jwks_free(d->set);
		free(d);
	}
}

void clients_free(struct clients *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < CLIENT_JWKS_CACHE_URLS; i++)
		jwks_unref(cs->cache[i].doc);
	free(cs->cache);
	pthread_cond_destroy(&cs->fetched);
	pthread_mutex_destroy(&cs->mu);
	free(cs);
}

static json_t *strv_json(const char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/*
 * Users' tokens carry the username as "sub", apps' own the client_id: an
 * id that is an account's username is ERR_CONFLICT (RFC 9068 section 6).
 * Only an id that could be a username (as user_name_normalize() leaves
 * it) is looked up; a store without accounts has none to meet.
 */
static enum err not_a_username(struct clients *cs, const char *client_id, struct ctx *c)
{
	char name[USER_NAME_MAX + 1];
	struct store_user su;
	struct ctx ig = CTX_INIT;
	enum err e;

	if (user_name_normalize(client_id, name, &ig) || strcmp(name, client_id))
		return ERR_OK;
	memset(&su, 0, sizeof(su));
	e = store_user_get(cs->s, name, &su, &ig);
	store_user_wipe(&su);
	if (e == ERR_OK)
		return ctx_errorf(c, ERR_CONFLICT, "client_id '%s' is a user's username: choose another "
				  "(tokens name users and apps in the same \"sub\" claim)", client_id);
	if (e == ERR_NOTFOUND || e == ERR_UNSUPPORTED)
		return ERR_OK;
	return ctx_errorf(c, e, "%s", ig.msg);
}

enum err client_add(struct clients *cs, const struct client_spec *sp, struct ctx *c)
{
	char origins[CLIENT_ORIGIN_MAX][CLIENT_URI_MAX + 1];
	const char *origin_ptr[CLIENT_ORIGIN_MAX];
	char hash[SHA256_HEX] = "";
	const char *name = sp->name && *sp->name ? sp->name : sp->client_id;
	bool has_jwks = sp->jwks_json && *sp->jwks_json, has_url = sp->jwks_url && *sp->jwks_url;
	bool has_secret = sp->secret && *sp->secret;
	json_t *jwks = NULL, *rec = NULL;
	struct store_item it;
	enum err rc;

	store_item_init(&it);
	if (!id_ok(sp->client_id)) {
		rc = ctx_errorf(c, ERR_INVALID, "client_id must be 1 to %d of the characters A-Z, a-z, "
				"0-9, '.', '_', '~' and '-'", CLIENT_ID_MAX);
		goto out;
	}
	if (strlen(name) > CLIENT_NAME_MAX || !text_ok(name, strlen(name))) {
		rc = ctx_errorf(c, ERR_INVALID, "name must be printable text of at most %d bytes",
				CLIENT_NAME_MAX);
		goto out;
	}
	if ((unsigned)sp->kind > CLIENT_ASYMMETRIC) {
		rc = ctx_errorf(c, ERR_INVALID, "unknown client kind");
		goto out;
	}
	if ((rc = not_a_username(cs, sp->client_id, c)))
		goto out;
	/* credentials by kind */
	if (sp->kind != CLIENT_SYMMETRIC && has_secret) {
		rc = ctx_errorf(c, ERR_INVALID, "only a confidential-symmetric client has a secret");
		goto out;
	}
	if (sp->kind != CLIENT_ASYMMETRIC && (has_jwks || has_url)) {
		rc = ctx_errorf(c, ERR_INVALID, "only a confidential-asymmetric client has a JWK Set "
				"or JWKS URL");
		goto out;
	}
	if (sp->kind == CLIENT_SYMMETRIC) {
		size_t n = has_secret ? strnlen(sp->secret, CLIENT_SECRET_MAX + 1) : 0;

		if (!has_secret) {
			rc = ctx_errorf(c, ERR_INVALID, "a confidential-symmetric client needs a secret");
			goto out;
		}
		if (n > CLIENT_SECRET_MAX || !text_ok(sp->secret, n)) {
			rc = ctx_errorf(c, ERR_INVALID, "the client secret must be printable text of at "
					"most %d bytes", CLIENT_SECRET_MAX);
			goto out;
		}
		if (utf8_chars(sp->secret, n) < CLIENT_SECRET_MIN) {
			rc = ctx_errorf(c, ERR_INVALID, "the client secret must be at least %d characters",
					CLIENT_SECRET_MIN);
			goto out;
		}
		sha256_hex(sp->secret, n, hash);
	}
	if (sp->kind == CLIENT_ASYMMETRIC) {
		if (has_jwks == has_url) {
			rc = ctx_errorf(c, ERR_INVALID, "a confidential-asymmetric client needs exactly one "
					"of a JWK Set and a JWKS URL");
			goto out;
		}
		if (has_url && (rc = url_check(sp->jwks_url, "JWKS URL", c)) != ERR_OK)
			goto out;
		if (has_jwks && (rc = jwks_registration(sp->jwks_json, &jwks, c)) != ERR_OK)
			goto out;
	}
	/* redirect URIs */
	if (sp->nredirect > CLIENT_REDIRECT_MAX) {
		rc = ctx_errorf(c, ERR_INVALID, "at most %d redirect URIs", CLIENT_REDIRECT_MAX);
		goto out;
	}
	if (sp->nredirect == 0 && sp->kind != CLIENT_ASYMMETRIC) {
		rc = ctx_errorf(c, ERR_INVALID, "a %s client needs at least one redirect URI",
				client_kind_smart(sp->kind));
		goto out;
	}
	for (size_t i = 0; i < sp->nredirect; i++) {
		if ((rc = url_check(sp->redirect_uris[i], "redirect URI", c)) != ERR_OK)
			goto out;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(sp->redirect_uris[i], sp->redirect_uris[j])) {
				rc = ctx_errorf(c, ERR_INVALID, "redirect URI '%s' is given twice",
						sp->redirect_uris[i]);
				goto out;
			}
	}
	if (sp->launch_url && *sp->launch_url &&
	    (rc = url_check(sp->launch_url, "launch URL", c)) != ERR_OK)
		goto out;
	if (sp->scope && (rc = scope_check(sp->scope, c)) != ERR_OK)
		goto out;
	if (sp->norigins > CLIENT_ORIGIN_MAX) {
		rc = ctx_errorf(c, ERR_INVALID, "at most %d origins", CLIENT_ORIGIN_MAX);
		goto out;
	}
	for (size_t i = 0; i < sp->norigins; i++) {
		if (!origin_normalize(sp->origins[i], true, origins[i], sizeof(origins[i]))) {
			rc = ctx_errorf(c, ERR_INVALID, "origin '%.*s' must be https://host[:port] (or "
					"http on 127.0.0.1, [::1] or localhost) with no path",
					CLIENT_URI_MAX, sp->origins[i] ? sp->origins[i] : "");
			goto out;
		}
		origin_ptr[i] = origins[i];
	}

	rec = json_pack("{s:i,s:s,s:s,s:o,s:s,s:s,s:o,s:b}", "v", RECORD_VERSION, "name", name,
			"kind", client_kind_name(sp->kind), "redirect_uris",
			strv_json(sp->redirect_uris, sp->nredirect), "launch_url",
			sp->launch_url ? sp->launch_url : "", "scope", sp->scope ? sp->scope : "",
			"origins", strv_json(origin_ptr, sp->norigins), "disabled", 0);
	if (!rec) {
		rc = ctx_errorf(c, ERR_INVALID, "client fields must be valid UTF-8");
		goto out;
	}
	if (hash[0])
		json_object_set_new(rec, "secret_sha256", json_string(hash));
	if (jwks)
		json_object_set(rec, "jwks", jwks);
	if (has_url)
		json_object_set_new(rec, "jwks_url", json_string(sp->jwks_url));
	str_copy(it.ns, NS_CLIENT, sizeof(it.ns));
	str_copy(it.key, sp->client_id, sizeof(it.key));
	it.created = clock_now_ms();
	if (json_dump_buf(rec, &it.data) != ERR_OK) {
		rc = ctx_errorf(c, ERR_TOOBIG, "the client record is too large");
		goto out;
	}
	rc = store_item_put(cs->s, &it, false, c);
	if (rc == ERR_CONFLICT) {
		ctx_clear(c);
		rc = ctx_errorf(c, ERR_CONFLICT, "client '%s' already exists", sp->client_id);
	}
out:
	mem_wipe(hash, sizeof(hash));
	json_decref(rec);
	json_decref(jwks);
	store_item_release(&it);
	return rc;
}

enum err client_remove(struct clients *cs, const char *client_id, struct ctx *c)
{
	struct store_item it;
	enum err rc;

	if (!id_ok(client_id))
		return ctx_errorf(c, ERR_NOTFOUND, "no such client");
	store_item_init(&it);
	rc = store_item_get(cs->s, NS_CLIENT, client_id, &it, c);
	store_item_release(&it);
	if (rc == ERR_NOTFOUND) {
		ctx_clear(c);
		return ctx_errorf(c, ERR_NOTFOUND, "no client '%s'", client_id);
	}
	if (rc != ERR_OK)
		return rc;
	/*
	 * Every grant the app held ends with it (its refresh tokens and access
	 * tokens then fail), so an app registered later under the same id
	 * inherits nothing.
	 */
	if ((rc = store_begin(cs->s, c)))
		return rc;
	if ((rc = store_item_set_state_grp(cs->s, "grant", client_id, STORE_ITEM_REVOKED, NULL, c)) ||
	    (rc = store_item_delete(cs->s, NS_CLIENT, client_id, c))) {
		store_rollback(cs->s);
		return rc;
	}
	if ((rc = store_commit(cs->s, c)))
		return rc;
	store_epoch_bump(cs->s); /* cached tokens of the app, in every process, check again */
	return ERR_OK;
}

/*
 * Fill 'out' from the stored item; the secret hash (hex) goes to
 * secret[SHA256_HEX] when not NULL ("" when none).
 */
static enum err client_from_item(const struct store_item *it, struct client *out,
				 char secret[SHA256_HEX], struct ctx *c)
{
	json_t *rec = json_loadb(it->data.data, it->data.len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *a, *v;
	const char *kind, *s;
	size_t i;
	enum err rc = ERR_OK;

	client_init(out);
	if (secret)
		secret[0] = '\0';
	if (!json_is_object(rec) || !(kind = json_get_str(rec, "kind"))) {
		rc = ctx_errorf(c, ERR_IO, "the record of client '%s' is unreadable", it->key);
		goto out;
	}
	str_copy(out->client_id, it->key, sizeof(out->client_id));
	str_copy(out->name, (s = json_get_str(rec, "name")) ? s : it->key, sizeof(out->name));
	for (i = 0; i < 3 && strcmp(kind, kind_names[i]); i++)
		;
	if (i == 3) {
		rc = ctx_errorf(c, ERR_IO, "client '%s' has an unknown kind", it->key);
		goto out;
	}
	out->kind = (enum client_kind)i;
	a = json_object_get(rec, "redirect_uris");
	out->redirect_uris = xcalloc(json_array_size(a) + 1, sizeof(char *));
	json_array_foreach(a, i, v)
		if (json_is_string(v))
			out->redirect_uris[out->nredirect++] = xstrdup(json_string_value(v));
	a = json_object_get(rec, "origins");
	out->origins = xcalloc(json_array_size(a) + 1, sizeof(char *));
	json_array_foreach(a, i, v)
		if (json_is_string(v))
			out->origins[out->norigins++] = xstrdup(json_string_value(v));
	str_copy(out->launch_url, (s = json_get_str(rec, "launch_url")) ? s : "",
		 sizeof(out->launch_url));
	str_copy(out->scope, (s = json_get_str(rec, "scope")) ? s : "", sizeof(out->scope));
	str_copy(out->jwks_url, (s = json_get_str(rec, "jwks_url")) ? s : "",
		 sizeof(out->jwks_url));
	out->disabled = json_is_true(json_object_get(rec, "disabled"));
	out->created = it->created;
	if ((v = json_object_get(rec, "jwks")) && (rc = jwks_import(v, &out->jwks, c)) != ERR_OK) {
		ctx_clear(c);
		rc = ctx_errorf(c, ERR_IO, "the JWK Set of client '%s' is unreadable", it->key);
		goto out;
	}
	if (secret && (s = json_get_str(rec, "secret_sha256")))
		str_copy(secret, s, SHA256_HEX);
out:
	json_decref(rec);
	if (rc != ERR_OK)
		client_release(out);
	return rc;
}

/* client_get() with the secret hash. */
static enum err client_read(struct clients *cs, const char *client_id, struct client *out,
			    char secret[SHA256_HEX], struct ctx *c)
{
	struct store_item it;
	enum err rc;

	client_init(out);
	if (secret)
		secret[0] = '\0';
	if (!id_ok(client_id))
		return ctx_errorf(c, ERR_NOTFOUND, "no such client");
	store_item_init(&it);
	rc = store_item_get(cs->s, NS_CLIENT, client_id, &it, c);
	if (rc == ERR_NOTFOUND) {
		ctx_clear(c);
		rc = ctx_errorf(c, ERR_NOTFOUND, "no client '%s'", client_id);
	}
	if (rc == ERR_OK)
		rc = client_from_item(&it, out, secret, c);
	store_item_release(&it);
	return rc;
}

enum err client_get(struct clients *cs, const char *client_id, struct client *out,
		    struct ctx *c)
{
	return client_read(cs, client_id, out, NULL, c);
}

enum err client_set_disabled(struct clients *cs, const char *client_id, bool disabled,
			     struct ctx *c)
{
	struct store_item it;
	struct buf b = BUF_INIT(STORE_ITEM_DATA_MAX);
	json_t *rec = NULL;
	enum err rc;

	if (!id_ok(client_id))
		return ctx_errorf(c, ERR_NOTFOUND, "no such client");
	store_item_init(&it);
	rc = store_item_get(cs->s, NS_CLIENT, client_id, &it, c);
	if (rc == ERR_NOTFOUND) {
		ctx_clear(c);
		rc = ctx_errorf(c, ERR_NOTFOUND, "no client '%s'", client_id);
	}
	if (rc != ERR_OK)
		goto out;
	rec = json_loadb(it.data.data, it.data.len, 0, NULL);
	if (!json_is_object(rec)) {
		rc = ctx_errorf(c, ERR_IO, "the record of client '%s' is unreadable", client_id);
		goto out;
	}
	json_object_set_new(rec, "disabled", json_boolean(disabled));
	if (json_dump_buf(rec, &b) != ERR_OK) {
		rc = ctx_errorf(c, ERR_TOOBIG, "the client record is too large");
		goto out;
	}
	if ((rc = store_item_update(cs->s, NS_CLIENT, client_id, b.data, -1, c)) == ERR_OK)
		store_epoch_bump(cs->s); /* its cached tokens, in every process, check again */
out:
	json_decref(rec);
	buf_release(&b);
	store_item_release(&it);
	return rc;
}

struct list_state {
	client_fn fn;
	void *arg;
	struct ctx *c;
	enum err rc;
};

static int list_one(void *arg, const struct store_item *it)
{
	struct list_state *st = arg;
	struct client cl;
	int r;

	if ((st->rc = client_from_item(it, &cl, NULL, st->c)) != ERR_OK)
		return 1;
	r = st->fn(st->arg, &cl);
	client_release(&cl);
	return r;
}

enum err client_list(struct clients *cs, client_fn fn, void *arg, struct ctx *c)
{
	struct list_state st = {fn, arg, c, ERR_OK};
	enum err rc = store_item_list(cs->s, NS_CLIENT, 0, NULL, list_one, &st, c);

	if (st.rc != ERR_OK)
		return st.rc;
	return rc < 0 ? rc : ERR_OK;
}

/* ---- redirect URIs and origins ---- */

/*
 * The length of "http://127.0.0.1" or "http://[::1]" at the start of 'u'
 * when a port, a path, a query or the end follows; 0 otherwise.
 */
static size_t loopback_ip_prefix(const char *u)
{
	static const char *const pre[] = {"http://127.0.0.1", "http://[::1]"};

	for (size_t i = 0; i < 2; i++) {
		size_t n = strlen(pre[i]);

		if (!strncmp(u, pre[i], n) && (u[n] == ':' || u[n] == '/' || u[n] == '?' || !u[n]))
			return n;
	}
	return 0;
}

/* Skip ":port" (1 to 65535) at 'p'; NULL when malformed.  No port is fine. */
static const char *skip_port(const char *p)
{
	size_t n = 0;
	long v = 0;

	if (*p != ':')
		return p;
	p++;
	while (isdigit((unsigned char)p[n]) && n < 6)
		v = v * 10 + (p[n++] - '0');
	if (n == 0 || n > 5 || v < 1 || v > 65535)
		return NULL;
	return p + n;
}

bool client_redirect_ok(const struct client *cl, const char *redirect_uri)
{
	size_t pn;

	if (!cl || !redirect_uri)
		return false;
	for (size_t i = 0; i < cl->nredirect; i++) {
		const char *reg = cl->redirect_uris[i], *rest_reg, *rest_got;

		if (!strcmp(reg, redirect_uri))
			return true;
		/* RFC 8252 section 7.3: loopback IP redirects match on any port */
		pn = loopback_ip_prefix(reg);
		if (!pn || strncmp(reg, redirect_uri, pn))
			continue;
		rest_reg = skip_port(reg + pn);
		rest_got = skip_port(redirect_uri + pn);
		if (rest_reg && rest_got && !strcmp(rest_reg, rest_got))
			return true;
	}
	return false;
}

bool client_origin_ok(const struct client *cl, const char *origin)
{
	char norm[CLIENT_URI_MAX + 1];

	if (!cl || !origin_normalize(origin, false, norm, sizeof(norm)))
		return false;
	for (size_t i = 0; i < cl->norigins; i++)
		if (!strcmp(cl->origins[i], norm))
			return true;
	return false;
}

/* ---- JWKS URL fetching and cache ---- */

struct fetch {
	struct buf body;
	bool too_big;
	bool no_store;
	int64_t max_age_ms;         /* -1: none given */
};

static size_t fetch_write(char *p, size_t size, size_t n, void *arg)
{
	struct fetch *f = arg;

	if (buf_add(&f->body, p, size * n) != ERR_OK) {
		f->too_big = true;
		return 0;
	}
	return size * n;
}

/* Read Cache-Control directives (every Cache-Control header line counts). */
static size_t fetch_header(char *p, size_t size, size_t n, void *arg)
{
	struct fetch *f = arg;
	size_t len = size * n;
	char line[1024];
	char *v, *tok, *save = NULL;

	if (len < 14 || len >= sizeof(line) || strncasecmp(p, "cache-control:", 14))
		return len;
	memcpy(line, p + 14, len - 14);
	line[len - 14] = '\0';
	for (v = line; *v; v++)
		*v = (char)tolower((unsigned char)*v);
	for (tok = strtok_r(line, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *e;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		if (!strcmp(tok, "no-store") || !strcmp(tok, "no-cache"))
			f->no_store = true;
		else if (!strncmp(tok, "max-age=", 8)) {
			int64_t secs;
			char *num = tok + 8;

			if (*num == '"' && e > num + 1 && e[-1] == '"') {
				num++;
				e[-1] = '\0';
			}
			if (str_to_i64(num, 0, INT64_C(1) << 40, &secs) == ERR_OK) {
				int64_t ms = secs * 1000;

				if (f->max_age_ms < 0 || ms < f->max_age_ms)
					f->max_age_ms = ms;
			} else {
				f->no_store = true;   /* a max-age we cannot read: do not cache */
			}
		}
	}
	return len;
}

/*
 * GET 'url' and parse it as a JWK Set into *out; *ttl_ms is how long it
 * may be cached (0: not at all).
 */
static enum err jwks_fetch(const char *url, struct jose_jwks **out, int64_t *ttl_ms,
			   struct ctx *c)
{
	struct fetch f;
	struct curl_slist *hdrs = NULL;
	CURL *h = NULL;
	CURLcode cc;
	long status = 0;
	json_t *doc = NULL;
	enum err rc = ERR_OK;

	*out = NULL;
	*ttl_ms = 0;
	memset(&f, 0, sizeof(f));
	buf_init(&f.body, CLIENT_JWKS_FETCH_MAX);
	f.max_age_ms = -1;
	if (!(h = curl_easy_init()) ||
	    !(hdrs = curl_slist_append(NULL, "Accept: application/json"))) {
		rc = ctx_errorf(c, ERR_IO, "cannot start an HTTP request");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CLIENT_JWKS_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CLIENT_JWKS_FETCH_MAX);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "veranda");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fetch_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &f);
	cc = curl_easy_perform(h);
	if (f.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		rc = ctx_errorf(c, ERR_INVALID, "the client's JWK Set is larger than %zu bytes",
				CLIENT_JWKS_FETCH_MAX);
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = ctx_errorf(c, ERR_INVALID, "cannot fetch the client's JWK Set: %s",
				curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		rc = ctx_errorf(c, ERR_INVALID, "the client's JWKS URL answered HTTP %ld", status);
		goto out;
	}
	if (!(doc = json_parse_bounded(f.body.data, f.body.len, JSON_DEPTH, NULL))) {
		rc = ctx_errorf(c, ERR_INVALID, "the client's JWKS URL did not return JSON");
		goto out;
	}
	if (jwks_private_index(doc) >= 0) {
		rc = ctx_errorf(c, ERR_INVALID, "the client's JWK Set holds private keys");
		goto out;
	}
	if ((rc = jwks_import(doc, out, c)) != ERR_OK)
		goto out;
	if (f.no_store)
		*ttl_ms = 0;
	else if (f.max_age_ms >= 0)
		*ttl_ms = f.max_age_ms < CLIENT_JWKS_CACHE_MAX_MS ? f.max_age_ms : CLIENT_JWKS_CACHE_MAX_MS;
	else
		*ttl_ms = CLIENT_JWKS_CACHE_DEFAULT_MS;
out:
	json_decref(doc);
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
	buf_release(&f.body);
	return rc;
}

/* The cache entry of 'url', or a free / least recently used one for it.  Lock held. */
static struct cache_entry *cache_slot(struct clients *cs, const char *url, bool create)
{
	struct cache_entry *lru = NULL;

	for (size_t i = 0; i < CLIENT_JWKS_CACHE_URLS; i++) {
		struct cache_entry *e = &cs->cache[i];

		if (e->url[0] && !strcmp(e->url, url))
			return e;
		if (!lru || (!e->url[0] && lru->url[0]) ||
		    (e->url[0] && lru->url[0] && e->last_use < lru->last_use))
			lru = e;
	}
	if (!create)
		return NULL;
	jwks_unref(lru->doc);
	memset(lru, 0, sizeof(*lru));
	str_copy(lru->url, url, sizeof(lru->url));
	return lru;
}

/*
 * The JWK Set at 'url' (*out: a reference the caller drops with
 * jwks_release()).  From the cache while it is fresh, unless 'refetch'
 * (an unknown kid), which fetches again at most once per
 * CLIENT_JWKS_REFETCH_MS: ERR_NOTFOUND when it may not yet, or while
 * another thread fetches the URL.  Without 'refetch', a fetch of the URL
 * in progress is waited for until CLIENT_JWKS_WAIT_MS after it began;
 * ERR_BUSY when it takes longer, or when the last fetch failed less than
 * CLIENT_JWKS_REFETCH_MS ago.  Other failures: the fetch's (ERR_INVALID).
 */
static enum err jwks_get(struct clients *cs, const char *url, int64_t now, bool refetch,
			 struct jwks_ref **out, struct ctx *c)
{
	struct cache_entry *e;
	struct jose_jwks *set = NULL;
	struct jwks_ref *d;
	struct timespec until;
	int64_t ttl = 0;
	enum err rc;

	*out = NULL;
	pthread_mutex_lock(&cs->mu);
	for (;;) {
		e = cache_slot(cs, url, true);
		e->last_use = now;
		if (!refetch && e->doc && now < e->expires) {
			*out = e->doc;
			e->doc->refs++;
			pthread_mutex_unlock(&cs->mu);
			return ERR_OK;
		}
		if (!e->fetching)
			break;
		if (refetch) {
			pthread_mutex_unlock(&cs->mu);
			return ctx_errorf(c, ERR_NOTFOUND, "the client's JWK Set is being fetched");
		}
		until = e->wait_until;
		if (pthread_cond_timedwait(&cs->fetched, &cs->mu, &until) == ETIMEDOUT) {
			pthread_mutex_unlock(&cs->mu);
			return ctx_errorf(c, ERR_BUSY, "the client's JWK Set is slow to fetch: try again "
					  "later");
		}
	}
	if (refetch && e->last_fetch && now - e->last_fetch < CLIENT_JWKS_REFETCH_MS) {
		pthread_mutex_unlock(&cs->mu);
		return ctx_errorf(c, ERR_NOTFOUND, "the client's JWK Set was fetched less than %d s ago",
				  CLIENT_JWKS_REFETCH_MS / 1000);
	}
	if (e->failed && now - e->failed < CLIENT_JWKS_REFETCH_MS) {
		pthread_mutex_unlock(&cs->mu);
		return ctx_errorf(c, ERR_BUSY, "the client's JWK Set could not be fetched less than "
				  "%d s ago: try again later", CLIENT_JWKS_REFETCH_MS / 1000);
	}
	e->last_fetch = now;
	e->fetching = true;
	clock_after_ms(CLOCK_REALTIME, CLIENT_JWKS_WAIT_MS, &e->wait_until);
	pthread_mutex_unlock(&cs->mu);

	rc = jwks_fetch(url, &set, &ttl, c);

	pthread_mutex_lock(&cs->mu);
	e = cache_slot(cs, url, true);   /* it may have been evicted meanwhile */
	e->fetching = false;
	e->last_fetch = e->last_fetch ? e->last_fetch : now;
	pthread_cond_broadcast(&cs->fetched);
	if (rc != ERR_OK) {
		e->failed = now;
		pthread_mutex_unlock(&cs->mu);
		return rc;
	}
	e->failed = 0;
	d = xcalloc(1, sizeof(*d));
	d->set = set;
	d->refs = 1;   /* the caller's */
	jwks_unref(e->doc);
	e->doc = NULL;
	if (ttl > 0) {
		e->doc = d;
		d->refs++;
		e->expires = now + ttl;
	}
	pthread_mutex_unlock(&cs->mu);
	*out = d;
	return ERR_OK;
}

static void jwks_release(struct clients *cs, struct jwks_ref *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&cs->mu);
	jwks_unref(d);
	pthread_mutex_unlock(&cs->mu);
}

/* The one key of 'set' with 'kid' that suits 'alg'; *count says how many matched. */
static const struct jose_key *key_pick(const struct jose_jwks *set, const char *kid,
				       enum jose_alg alg, int *count)
{
	const struct jose_key *found = NULL;

	*count = 0;
	for (size_t i = 0; set && i < jose_jwks_count(set); i++) {
		const struct jose_key *k = jose_jwks_get(set, i);

		if (!strcmp(jose_key_kid(k), kid) && key_fits(k, alg)) {
			found = k;
			(*count)++;
		}
	}
	return *count == 1 ? found : NULL;
}

/* ---- client authentication ---- */

static enum err auth_fail(struct client_auth_err *err, struct ctx *c, enum err code,
			  const char *error, int status, bool basic, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
static enum err auth_fail(struct client_auth_err *err, struct ctx *c, enum err code,
			  const char *error, int status, bool basic, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->description, sizeof(err->description), fmt, ap);
	va_end(ap);
	err->error = error;
	err->status = status;
	err->www_basic = basic;
	ctx_clear(c);
	return ctx_errorf(c, code, "%s", err->description);
}

#define UNAUTH(basic, ...) \
	auth_fail(err, c, ERR_UNAUTHORIZED, "invalid_client", 401, (basic), __VA_ARGS__)
#define BADREQ(...) auth_fail(err, c, ERR_INVALID, "invalid_request", 400, false, __VA_ARGS__)

/* A store failure as server_error (the cause stays on 'c'). */
static enum err auth_server_error(struct client_auth_err *err, enum err rc)
{
	err->error = "server_error";
	err->status = rc == ERR_BUSY ? 503 : 500;
	err->www_basic = false;
	snprintf(err->description, sizeof(err->description), "client authentication is unavailable");
	return rc;
}

/*
 * Decode "Basic <base64(id:secret)>" into id[CLIENT_ID_MAX + 2] and
 * secret[CLIENT_SECRET_MAX + 2] (form-url-decoded).  False when malformed.
 */
static bool basic_decode(const char *h, char *id, size_t idsize, char *secret, size_t secsize)
{
	struct buf raw = BUF_INIT(AUTH_HEADER_MAX);
	const char *b64, *colon;
	size_t n;
	long k;
	bool ok = false;

	b64 = h + 5;
	while (*b64 == ' ')
		b64++;
	n = strlen(b64);
	while (n && (b64[n - 1] == ' ' || b64[n - 1] == '\t'))
		n--;
	if (n == 0 || base64_decode(b64, n, &raw) != ERR_OK || memchr(raw.data, '\0', raw.len))
		goto out;
	if (!(colon = memchr(raw.data, ':', raw.len)))
		goto out;
	n = (size_t)(colon - raw.data);
	if (n >= idsize || raw.len - n - 1 >= secsize)
		goto out;
	if ((k = url_pct_decode_mem(raw.data, n, true, id)) < 0)
		goto out;
	id[k] = '\0';
	if ((k = url_pct_decode_mem(colon + 1, raw.len - n - 1, true, secret)) < 0)
		goto out;
	secret[k] = '\0';
	ok = true;
out:
	mem_wipe(raw.data, raw.len);
	buf_release(&raw);
	return ok;
}

/* Is the hex SHA-256 of 'secret' equal to 'stored'?  Constant time in the contents. */
static bool secret_matches(const char *secret, const char *stored)
{
	char got[SHA256_HEX];
	bool ok;

	sha256_hex(secret, strlen(secret), got);
	ok = stored[0] && str_eq_ct(got, 64, stored, strnlen(stored, SHA256_HEX));
	mem_wipe(got, sizeof(got));
	return ok;
}

/* A JSON number member as ms since epoch; false when absent or not a number. */
static bool claim_time(const json_t *claims, const char *name, int64_t *ms)
{
	const json_t *v = json_object_get(claims, name);
	double d;

	if (!json_is_number(v))
		return false;
	d = json_number_value(v);
	if (!(d >= 0 && d < 1e13))
		return false;
	*ms = (int64_t)(d * 1000.0);
	return true;
}

static bool aud_ok(const json_t *aud, const char *token_url)
{
	const json_t *v;
	size_t i;

	if (!token_url)
		return false;
	if (json_is_string(aud))
		return !strcmp(json_string_value(aud), token_url);
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), token_url))
			return true;
	return false;
}

/* private_key_jwt (RFC 7523 section 2.2 and 3, SMART client-confidential-asymmetric). */
static enum err auth_assertion(struct clients *cs, const struct client_auth_in *in,
			       struct client *out, struct client_auth_err *err, struct ctx *c)
{
	const char *tok = in->client_assertion, *alg_s, *kid, *typ, *iss, *sub, *jti;
	json_t *hdr = NULL, *claims = NULL, *vclaims = NULL;
	struct jwks_ref *fetched = NULL;
	const struct jose_key *key = NULL;
	enum jose_alg alg;
	int64_t exp, t, now = in->now_ms;
	int matches = 0;
	size_t n;
	struct ctx dc = CTX_INIT;
	enum err rc;

	if (!in->client_assertion_type || strcmp(in->client_assertion_type, CLIENT_ASSERTION_TYPE)) {
		rc = auth_fail(err, c, ERR_UNAUTHORIZED, "invalid_client", 400, false,
			       "client_assertion_type must be %s", CLIENT_ASSERTION_TYPE);
		goto out;
	}
	if (!tok || !*tok) {
		rc = BADREQ("client_assertion is missing");
		goto out;
	}
	n = strnlen(tok, JOSE_JWS_MAX + 1);
	if (n > JOSE_JWS_MAX) {
		rc = UNAUTH(false, "client_assertion is too long");
		goto out;
	}
	if (jose_jws_decode_unverified(tok, n, &hdr, &claims, &dc) != ERR_OK) {
		rc = UNAUTH(false, "client_assertion is not a well-formed signed JWT");
		goto out;
	}
	alg_s = json_get_str(hdr, "alg");
	alg = alg_s ? jose_alg_parse(alg_s) : JOSE_ALG_UNSET;
	if (alg != JOSE_RS384 && alg != JOSE_ES384) {
		rc = UNAUTH(false, "client_assertion must be signed with RS384 or ES384");
		goto out;
	}
	kid = json_get_str(hdr, "kid");
	if (!kid || !*kid) {
		rc = UNAUTH(false, "client_assertion header has no kid");
		goto out;
	}
	if (json_object_get(hdr, "typ") &&
	    (!(typ = json_get_str(hdr, "typ")) || !str_ieq(typ, "JWT"))) {
		rc = UNAUTH(false, "client_assertion header typ must be JWT");
		goto out;
	}
	iss = json_get_str(claims, "iss");
	sub = json_get_str(claims, "sub");
	if (!iss || !sub || strcmp(iss, sub)) {
		rc = UNAUTH(false, "client_assertion iss and sub must both be the client_id");
		goto out;
	}
	if (in->client_id && *in->client_id && strcmp(in->client_id, iss)) {
		rc = UNAUTH(false, "client_id does not match the client_assertion issuer");
		goto out;
	}
	rc = client_read(cs, iss, out, NULL, c);
	if (rc == ERR_NOTFOUND) {
		rc = UNAUTH(false, "unknown client");
		goto out;
	}
	if (rc != ERR_OK) {
		rc = auth_server_error(err, rc);
		goto out;
	}
	if (out->kind != CLIENT_ASYMMETRIC) {
		rc = UNAUTH(false, "the client is not registered for private_key_jwt");
		goto out;
	}
	if (out->disabled) {
		rc = UNAUTH(false, "the client is disabled");
		goto out;
	}
	if (json_object_get(hdr, "jku")) {
		const char *jku = json_get_str(hdr, "jku");

		if (!jku || !out->jwks_url[0] || strcmp(jku, out->jwks_url)) {
			rc = UNAUTH(false, "client_assertion jku is not the client's registered JWKS URL");
			goto out;
		}
	}
	/* the key: exactly one with that kid whose type suits alg */
	if (out->jwks) {
		key = key_pick(out->jwks, kid, alg, &matches);
	} else {
		struct ctx fc = CTX_INIT;

		if (jwks_get(cs, out->jwks_url, now, false, &fetched, &fc) != ERR_OK) {
			rc = UNAUTH(false, "%s", fc.msg);
			goto out;
		}
		key = key_pick(fetched->set, kid, alg, &matches);
		if (matches == 0) {
			/* maybe the client rotated its keys: fetch again, at most every 30 s */
			jwks_release(cs, fetched);
			fetched = NULL;
			ctx_clear(&fc);
			if (jwks_get(cs, out->jwks_url, now, true, &fetched, &fc) == ERR_OK)
				key = key_pick(fetched->set, kid, alg, &matches);
			else if (fc.code != ERR_NOTFOUND) {
				rc = UNAUTH(false, "%s", fc.msg);
				goto out;
			}
		}
	}
	if (matches > 1) {
		rc = UNAUTH(false, "several of the client's keys match the client_assertion kid");
		goto out;
	}
	if (!key) {
		rc = UNAUTH(false, "no key of the client matches the client_assertion kid and alg");
		goto out;
	}
	ctx_clear(&dc);
	if (jose_jws_verify(tok, n, key, NULL, &vclaims, &dc) != ERR_OK) {
		rc = UNAUTH(false, "client_assertion signature does not verify");
		goto out;
	}
	/* claims (from the verified payload) */
	if (!aud_ok(json_object_get(vclaims, "aud"), in->token_url)) {
		rc = UNAUTH(false, "client_assertion aud must be the token endpoint URL");
		goto out;
	}
	if (!claim_time(vclaims, "exp", &exp)) {
		rc = UNAUTH(false, "client_assertion has no exp");
		goto out;
	}
	if (exp <= now - CLIENT_ASSERTION_SKEW_MS) {
		rc = UNAUTH(false, "client_assertion has expired");
		goto out;
	}
	if (exp > now + CLIENT_ASSERTION_LIFETIME_MS + CLIENT_ASSERTION_SKEW_MS) {
		rc = UNAUTH(false, "client_assertion exp is more than 5 minutes away");
		goto out;
	}
	if (json_object_get(vclaims, "iat")) {
		if (!claim_time(vclaims, "iat", &t) || t > now + CLIENT_ASSERTION_SKEW_MS) {
			rc = UNAUTH(false, "client_assertion iat is in the future");
			goto out;
		}
		/* both from the client's clock: no skew */
		if (exp - t > CLIENT_ASSERTION_LIFETIME_MS) {
			rc = UNAUTH(false, "client_assertion lives more than 5 minutes (exp - iat)");
			goto out;
		}
	}
	if (json_object_get(vclaims, "nbf") &&
	    (!claim_time(vclaims, "nbf", &t) || t > now + CLIENT_ASSERTION_SKEW_MS)) {
		rc = UNAUTH(false, "client_assertion is not valid yet (nbf)");
		goto out;
	}
	jti = json_get_str(vclaims, "jti");
	if (!jti || !*jti || strlen(jti) > JTI_MAX) {
		rc = UNAUTH(false, "client_assertion needs a jti of 1 to %d bytes", JTI_MAX);
		goto out;
	}
	/* replay: (client_id, jti) is recorded once */
	{
		struct store_item it;
		struct buf pair = BUF_INIT(CLIENT_ID_MAX + JTI_MAX + 2);

		buf_adds(&pair, iss);
		buf_addch(&pair, '\0');
		buf_adds(&pair, jti);
		store_item_init(&it);
		str_copy(it.ns, NS_CJTI, sizeof(it.ns));
		sha256_hex(pair.data, pair.len, it.key);
		str_copy(it.grp, iss, sizeof(it.grp));
		it.created = now;
		it.expires = exp + CLIENT_ASSERTION_SKEW_MS;
		rc = store_item_put(cs->s, &it, false, c);
		store_item_release(&it);
		buf_release(&pair);
		if (rc == ERR_CONFLICT) {
			rc = UNAUTH(false, "client_assertion was already used (jti replayed)");
			goto out;
		}
		if (rc != ERR_OK) {
			rc = auth_server_error(err, rc);
			goto out;
		}
	}
	rc = ERR_OK;
out:
	jwks_release(cs, fetched);
	json_decref(hdr);
	json_decref(claims);
	json_decref(vclaims);
	return rc;
}

enum err client_authenticate(struct clients *cs, const struct client_auth_in *in,
			     struct client *out, struct client_auth_err *err, struct ctx *c)
{
	char id[CLIENT_ID_MAX + 2], secret[CLIENT_SECRET_MAX + 2], stored[SHA256_HEX];
	bool basic = false, post, assertion;
	const char *cid, *sec = NULL;
	enum err rc;

	client_init(out);
	memset(err, 0, sizeof(*err));
	id[0] = secret[0] = stored[0] = '\0';

	if (in->authorization) {
		if (strlen(in->authorization) > AUTH_HEADER_MAX)
			return UNAUTH(true, "the Authorization header is too long");
		if (strncasecmp(in->authorization, "Basic", 5) ||
		    (in->authorization[5] != ' ' && in->authorization[5] != '\0'))
			return UNAUTH(true, "only Basic client authentication is accepted in the "
				      "Authorization header");
		basic = true;
	}
	post = in->client_secret && *in->client_secret;
	assertion = (in->client_assertion_type && *in->client_assertion_type) ||
		    (in->client_assertion && *in->client_assertion);
	if ((int)basic + (int)post + (int)assertion > 1)
		return BADREQ("use one client authentication method, not several");

	if (assertion) {
		rc = auth_assertion(cs, in, out, err, c);
		if (rc != ERR_OK)
			client_release(out);
		return rc;
	}

	if (basic) {
		if (!basic_decode(in->authorization, id, sizeof(id), secret, sizeof(secret))) {
			rc = UNAUTH(true, "malformed Basic credentials");
			goto out;
		}
		if (in->client_id && *in->client_id && strcmp(in->client_id, id)) {
			rc = BADREQ("client_id differs from the one in the Authorization header");
			goto out;
		}
		cid = id;
		sec = secret;
	} else {
		cid = in->client_id;
		sec = post ? in->client_secret : NULL;
		if (!cid || !*cid) {
			rc = post ? BADREQ("client_secret needs a client_id")
				  : UNAUTH(false, "client authentication is required");
			goto out;
		}
	}
	rc = client_read(cs, cid, out, stored, c);
	if (rc == ERR_NOTFOUND) {
		/* as much work as for a known client */
		if (sec && *sec)
			secret_matches(sec, "0000000000000000000000000000000000000000000000000000000000000000");
		rc = UNAUTH(basic, basic || post ? "unknown client or wrong secret" : "unknown client");
		goto out;
	}
	if (rc != ERR_OK) {
		rc = auth_server_error(err, rc);
		goto out;
	}
	switch (out->kind) {
	case CLIENT_PUBLIC:
		/* a public client identifies itself only; an empty secret is no secret */
		if (sec && *sec) {
			rc = UNAUTH(basic, "the client is public and has no secret");
			goto out;
		}
		break;
	case CLIENT_SYMMETRIC:
		if (!sec || !*sec) {
			rc = UNAUTH(true, "the client must authenticate (HTTP Basic with its secret)");
			goto out;
		}
		if (!secret_matches(sec, stored)) {
			rc = UNAUTH(basic, "unknown client or wrong secret");
			goto out;
		}
		break;
	case CLIENT_ASYMMETRIC:
		rc = UNAUTH(basic, "the client must authenticate with a client_assertion "
			    "(private_key_jwt)");
		goto out;
	}
	if (out->disabled) {
		rc = UNAUTH(basic, "the client is disabled");
		goto out;
	}
	rc = ERR_OK;
out:
	mem_wipe(secret, sizeof(secret));
	mem_wipe(stored, sizeof(stored));
	/* a registered client with a secret: its failures are its own (the endpoints count them) */
	if (rc != ERR_OK && err->error && out->kind == CLIENT_SYMMETRIC && out->client_id[0])
		str_copy(err->secret_client, out->client_id, sizeof(err->secret_client));
	if (rc != ERR_OK)
		client_release(out);
	return rc;
}
