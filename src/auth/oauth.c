/*
 * oauth.c - the authorization server's shared parts: construction, the
 * auth-item helpers, grants and their revocation, and the discovery
 * documents (SMART configuration, OpenID Provider metadata, RFC 8414
 * authorization-server metadata), built once with one issuer string.
 */
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oauth_int.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rand.h"
#include "core/str.h"

void oauth_hash(const char *s, char out[OAUTH_HASH_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;

	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

void oauth_random(char out[OAUTH_ID_SIZE])
{
	unsigned char raw[32];
	struct buf b = BUF_INIT(OAUTH_ID_SIZE);

	rand_bytes(raw, sizeof(raw));
	base64url_encode(raw, sizeof(raw), &b);
	str_copy(out, b.data, OAUTH_ID_SIZE);
	buf_release(&b);
	mem_wipe(raw, sizeof(raw));
}

void oauth_text_clean(const char *s, char *out, size_t size)
{
	size_t i = 0;

	if (!size)
		return;
	for (; s && *s && i + 1 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		/* RFC 6749 5.2: %x20-21 / %x23-5B / %x5D-7E */
		out[i++] = ch >= 0x20 && ch <= 0x7e && ch != '"' && ch != '\\' ? (char)ch : '?';
	}
	out[i] = '\0';
}

void oauth_seterr(struct oauth_err *err, int status, const char *error, const char *fmt, ...)
{
	va_list ap;

	err->error = error;
	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->description, sizeof(err->description), fmt, ap);
	va_end(ap);
}

enum err oauth_put(struct oauth *o, const char *ns, const char *key, int64_t uid,
		   const char *grp, json_t *data, int64_t expires, bool replace, struct ctx *c)
{
	struct store_item it;
	enum err e;

	store_item_init(&it);
	str_copy(it.ns, ns, sizeof(it.ns));
	str_copy(it.key, key, sizeof(it.key));
	str_copy(it.grp, grp ? grp : "", sizeof(it.grp));
	it.uid = uid;
	it.created = clock_now_ms();
	it.expires = expires;
	e = json_dump_buf(data, &it.data);
	json_decref(data);
	if (!e)
		e = store_item_put(o->s, &it, replace, c);
	else
		e = ctx_errorf(c, e, "cannot encode a %s item", ns);
	store_item_release(&it);
	return e;
}

json_t *oauth_item_json(const struct store_item *it)
{
	json_t *j = json_loadb(it->data.data, it->data.len, 0, NULL);

	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

void oauth_jstr(const json_t *obj, const char *key, char *dst, size_t size)
{
	const char *s = json_string_value(json_object_get(obj, key));

	str_copy(dst, s ? s : "", size);
}

const char *oauth_bearer(const char *h, char *buf, size_t size)
{
	size_t n;

	if (!h || strncasecmp(h, "Bearer ", 7))
		return NULL;
	for (h += 7; *h == ' ';)
		h++;
	for (n = strlen(h); n && (h[n - 1] == ' ' || h[n - 1] == '\t');)
		n--;
	if (!n)
		return NULL;
	if (!h[n])
		return h; /* nothing after the token: no copy */
	if (n >= size)
		return NULL;
	memcpy(buf, h, n);
	buf[n] = '\0';
	return buf;
}

void oauth_maintain(struct oauth *o)
{
	int64_t now = clock_now_ms(), last = atomic_load(&o->purged_at);
	struct ctx c = CTX_INIT;
	int64_t n = 0;

	if (now - last < 60 * 1000 || !atomic_compare_exchange_strong(&o->purged_at, &last, now))
		return;
	/*
	 * Sessions past their limits end on record before the purge drops
	 * them unseen: while some may be left, no purge this time.
	 */
	if (!oauth_sessions_sweep(o, 0, now))
		return;
	if (store_item_purge(o->s, now, &n, &c))
		log_msg(LOG_WARN, "cannot purge expired sign-in state: %s", c.msg);
}

void oauth_epoch_bump(struct oauth *o)
{
	store_epoch_bump(o->s);
}

enum err oauth_grant_kill(struct oauth *o, const char *grant_id, struct ctx *c)
{
	return user_grant_end(o->us, grant_id, NULL, c);
}

enum err oauth_grant_revoke(struct oauth *o, const char *grant_id, struct ctx *c)
{
	return oauth_grant_kill(o, grant_id, c);
}

const char *oauth_issuer(const struct oauth *o)
{
	return o->issuer;
}

const char *oauth_fhir_base(const struct oauth *o)
{
	return o->fhir_base;
}

struct clients *oauth_clients(struct oauth *o)
{
	return o->cs;
}

struct users *oauth_users(struct oauth *o)
{
	return o->us;
}

const struct keys *oauth_keys(const struct oauth *o)
{
	return o->keys;
}

void oauth_set_audit(struct oauth *o, struct audit *a)
{
	o->audit = a;
}

struct audit *oauth_audit(const struct oauth *o)
{
	return o->audit;
}

/* ---- discovery ---- */

static json_t *strs(const char *const *v)
{
	json_t *a = json_array();

	for (; *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static void url(json_t *doc, const struct oauth *o, const char *key, const char *path)
{
	char u[700];

	snprintf(u, sizeof(u), "%s%s", o->issuer, path);
	json_object_set_new(doc, key, json_string(u));
}

static const char *const capabilities[] = {
	"launch-standalone", "launch-ehr", "authorize-post", "client-public",
	"client-confidential-symmetric", "client-confidential-asymmetric", "sso-openid-connect",
	"context-standalone-patient", "context-ehr-patient", "context-ehr-encounter",
	"context-banner", "context-style", "permission-offline", "permission-online",
	"permission-patient", "permission-user", "permission-v1", "permission-v2", NULL};
static const char *const grant_types[] = {"authorization_code", "refresh_token",
					  "client_credentials", NULL};
/* "none": a public client names itself with client_id and proves nothing (RFC 7591 2) */
static const char *const auth_methods[] = {"client_secret_basic", "client_secret_post",
					   "private_key_jwt", "none", NULL};
/* introspection: confidential clients only (or a bearer token, endpoints.c) */
static const char *const introspect_methods[] = {"client_secret_basic", "client_secret_post",
						 "private_key_jwt", "bearer", NULL};
static const char *const assertion_algs[] = {"RS384", "ES384", NULL};
static const char *const s256[] = {"S256", NULL};
static const char *const code_only[] = {"code", NULL};
static const char *const scopes[] = {
	"openid", "fhirUser", "profile", "offline_access", "online_access", "launch",
	"launch/patient", "launch/encounter", "patient/*.cruds", "patient/*.rs", "user/*.cruds",
	"user/*.rs", "system/*.rs", "patient/*.read", "patient/*.write", "user/*.read",
	"user/*.write", "system/*.read", NULL};

/* Members shared by the three documents. */
static json_t *common(const struct oauth *o)
{
	json_t *d = json_object();

	json_object_set_new(d, "issuer", json_string(o->issuer));
	url(d, o, "jwks_uri", "/oauth/jwks");
	url(d, o, "authorization_endpoint", "/oauth/authorize");
	url(d, o, "token_endpoint", "/oauth/token");
	url(d, o, "introspection_endpoint", "/oauth/introspect");
	url(d, o, "revocation_endpoint", "/oauth/revoke");
	url(d, o, "userinfo_endpoint", "/oauth/userinfo");
	url(d, o, "registration_endpoint", "/oauth/register");
	json_object_set_new(d, "grant_types_supported", strs(grant_types));
	json_object_set_new(d, "response_types_supported", strs(code_only));
	json_object_set_new(d, "response_modes_supported", json_pack("[s]", "query"));
	json_object_set_new(d, "code_challenge_methods_supported", strs(s256));
	json_object_set_new(d, "token_endpoint_auth_methods_supported", strs(auth_methods));
	json_object_set_new(d, "token_endpoint_auth_signing_alg_values_supported",
			    strs(assertion_algs));
	json_object_set_new(d, "scopes_supported", strs(scopes));
	json_object_set_new(d, "authorization_response_iss_parameter_supported", json_true());
	json_object_set_new(d, "introspection_endpoint_auth_methods_supported",
			    strs(introspect_methods));
	json_object_set_new(d, "revocation_endpoint_auth_methods_supported",
			    json_pack("[s,s,s,s]", "none", "client_secret_basic",
				      "client_secret_post", "private_key_jwt"));
	/* RFC 8414 2: required wherever private_key_jwt is listed; one client_authenticate() */
	json_object_set_new(d, "introspection_endpoint_auth_signing_alg_values_supported",
			    strs(assertion_algs));
	json_object_set_new(d, "revocation_endpoint_auth_signing_alg_values_supported",
			    strs(assertion_algs));
	/* OpenID Connect Discovery 3: an absent member means true; request objects are not read */
	json_object_set_new(d, "request_uri_parameter_supported", json_false());
	return d;
}

static void finish(json_t *d, struct buf *b)
{
	json_dump_buf(d, b);
	json_decref(d);
}

static void build_discovery(struct oauth *o)
{
	json_t *d = common(o);

	json_object_set_new(d, "capabilities", strs(capabilities));
	url(d, o, "management_endpoint", "/account");
	finish(d, &o->smart_conf);

	d = common(o);
	json_object_set_new(d, "subject_types_supported", json_pack("[s]", "public"));
	json_object_set_new(d, "id_token_signing_alg_values_supported", json_pack("[s]", "RS256"));
	json_object_set_new(d, "claims_supported",
			    json_pack("[s,s,s,s,s,s,s,s,s]", "iss", "sub", "aud", "exp", "iat",
				      "auth_time", "nonce", "fhirUser", "preferred_username"));
	json_object_set_new(d, "prompt_values_supported", json_pack("[s,s]", "none", "login"));
	url(d, o, "end_session_endpoint", "/signout");
	finish(d, &o->oidc_conf);

	d = common(o);
	finish(d, &o->as_meta);
}

const struct buf *oauth_smart_configuration(const struct oauth *o)
{
	return &o->smart_conf;
}

const struct buf *oauth_openid_configuration(const struct oauth *o)
{
	return &o->oidc_conf;
}

const struct buf *oauth_as_metadata(const struct oauth *o)
{
	return &o->as_meta;
}

/* ---- life cycle ---- */

enum err oauth_new(struct oauth **out, struct store *s, struct users *us, struct clients *cs,
		   const struct keys *k, const struct oauth_opts *opts, struct ctx *c)
{
	struct oauth *o = xcalloc(1, sizeof(*o));

	o->s = s;
	o->us = us;
	o->cs = cs;
	o->keys = k;
	o->o = *opts;
	str_copy(o->issuer, opts->base_url, sizeof(o->issuer));
	snprintf(o->fhir_base, sizeof(o->fhir_base), "%s/fhir", o->issuer);
	snprintf(o->token_url, sizeof(o->token_url), "%s/oauth/token", o->issuer);
	atomic_init(&o->purged_at, 0);
	buf_init(&o->smart_conf, 1 << 16);
	buf_init(&o->oidc_conf, 1 << 16);
	buf_init(&o->as_meta, 1 << 16);
	if (!(o->cache = token_cache_new())) {
		oauth_free(o);
		*out = NULL;
		return ctx_errorf(c, ERR_NOMEM, "cannot make the token cache");
	}
	build_discovery(o);
	*out = o;
	return ERR_OK;
}

void oauth_free(struct oauth *o)
{
	if (!o)
		return;
	token_cache_free(o->cache);
	buf_release(&o->smart_conf);
	buf_release(&o->oidc_conf);
	buf_release(&o->as_meta);
	free(o);
}
