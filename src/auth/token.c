/*
 * token.c - the token endpoint (authorization_code, refresh_token,
 * client_credentials), access and id tokens, the verified-token cache,
 * introspection (RFC 7662), revocation (RFC 7009) and userinfo.
 *
 * Access tokens are ES256 JWTs (typ at+jwt, RFC 9068 claims plus SMART's
 * patient/encounter/fhirUser and the grant id); id tokens are RS256 (what
 * SMART test kits require).  A verified access token is cached by its
 * text until it expires; a cached entry remembers the store's change epoch
 * (store_epoch(), shared by every process on the same data) it was last
 * checked at, and re-checks its grant and jti in the store when the epoch
 * has moved, so a revocation, here or from the command line, is seen by
 * the very next request.
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oauth_int.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"

/* ---- the verified-token cache ---- */

#define TC_SHARDS 16
#define TC_BUCKETS 1024
#define TC_SHARD_MAX 8192

struct tc_entry {
	struct tc_entry *next;
	uint64_t h;
	char *token;
	int64_t exp_ms;
	uint64_t epoch;
	int64_t checked_ms;          /* when the grant was last checked in the store */
	int refs;
	bool linked;
	struct principal p;
	char *scope;
	struct scope_set *scopes;
};

struct tc_shard {
	pthread_mutex_t mu;
	struct tc_entry *b[TC_BUCKETS];
	size_t n;
};

struct token_cache {
	struct tc_shard sh[TC_SHARDS];
	struct jose_jwks *verify;     /* our public keys */
};

/*
 * The cache's hash of a token of 'len' bytes: FNV-1a of its length and its
 * last 48 bytes.  A JWS ends with its signature, which differs from token
 * to token, so the tail spreads as well as the whole would at an eighth of
 * the cost; lookups compare the whole token, and only verified tokens are
 * cached, so a crafted tail gains an attacker nothing.
 */
static uint64_t token_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ len;

	for (s += len > 48 ? len - 48 : 0; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct token_cache *token_cache_new(void)
{
	struct token_cache *tc = xcalloc(1, sizeof(*tc));

	for (int i = 0; i < TC_SHARDS; i++)
		pthread_mutex_init(&tc->sh[i].mu, NULL);
	return tc;
}

static void entry_free(struct tc_entry *e)
{
	free(e->token);
	free(e->scope);
	scope_set_free(e->scopes);
	free(e);
}

void token_cache_free(struct token_cache *tc)
{
	if (!tc)
		return;
	for (int i = 0; i < TC_SHARDS; i++) {
		for (int j = 0; j < TC_BUCKETS; j++) {
			struct tc_entry *e = tc->sh[i].b[j], *next;
			for (; e; e = next) {
				next = e->next;
				entry_free(e);
			}
		}
		pthread_mutex_destroy(&tc->sh[i].mu);
	}
	jose_jwks_free(tc->verify);
	free(tc);
}

/* Unlink every entry of shard 'sh' that is expired (or every one when 'all'); lock held. */
static void shard_evict(struct tc_shard *sh, int64_t now, bool all)
{
	for (int j = 0; j < TC_BUCKETS; j++) {
		struct tc_entry **pp = &sh->b[j];
		while (*pp) {
			struct tc_entry *e = *pp;
			if (all || e->exp_ms <= now) {
				*pp = e->next;
				e->linked = false;
				sh->n--;
				if (e->refs == 0)
					entry_free(e);
			} else {
				pp = &e->next;
			}
		}
	}
}

void oauth_principal_release(struct oauth *o, struct principal *p)
{
	struct tc_entry *e = p->ref;
	struct tc_shard *sh;

	if (!e)
		return;
	sh = &o->cache->sh[e->h % TC_SHARDS];
	pthread_mutex_lock(&sh->mu);
	if (--e->refs == 0 && !e->linked)
		entry_free(e);
	pthread_mutex_unlock(&sh->mu);
	p->ref = NULL;
}

/* ---- minting ---- */

static const struct jose_key *signer(const struct oauth *o, enum jose_alg alg, struct ctx *c)
{
	const struct jose_key *k = keys_signing(o->keys, alg);

	if (!k)
		ctx_errorf(c, ERR_IO, "no %s signing key: run 'veranda init'", jose_alg_name(alg));
	return k;
}

/* Everything a grant says, read from its item data. */
struct grant {
	char id[OAUTH_ID_SIZE];
	char client_id[128];
	int64_t uid;
	char username[USER_NAME_MAX + 1];
	char role[16];
	char fhir_user[STORE_FHIR_USER_SIZE];
	char patient[OAUTH_REF_SIZE];
	char encounter[OAUTH_REF_SIZE];
	char nonce[256];
	char session[OAUTH_HASH_SIZE];
	char *scope;
	int64_t auth_time;
	int64_t expires;     /* ms, 0: until revoked */
	bool ehr;
	int state;
};

static void grant_release(struct grant *g)
{
	free(g->scope);
	g->scope = NULL;
}

static enum err grant_load(struct oauth *o, const char *id, struct grant *g, struct ctx *c)
{
	struct store_item it;
	json_t *j;
	enum err e;

	memset(g, 0, sizeof(*g));
	store_item_init(&it);
	if ((e = store_item_get(o->s, NS_GRANT, id, &it, c)))
		goto out;
	if (!(j = oauth_item_json(&it))) {
		e = ctx_errorf(c, ERR_IO, "grant record is damaged");
		goto out;
	}
	str_copy(g->id, id, sizeof(g->id));
	str_copy(g->client_id, it.grp, sizeof(g->client_id));
	g->uid = it.uid;
	g->expires = it.expires;
	g->state = it.state;
	oauth_jstr(j, "username", g->username, sizeof(g->username));
	oauth_jstr(j, "role", g->role, sizeof(g->role));
	oauth_jstr(j, "fhirUser", g->fhir_user, sizeof(g->fhir_user));
	oauth_jstr(j, "patient", g->patient, sizeof(g->patient));
	oauth_jstr(j, "encounter", g->encounter, sizeof(g->encounter));
	oauth_jstr(j, "nonce", g->nonce, sizeof(g->nonce));
	oauth_jstr(j, "session", g->session, sizeof(g->session));
	g->scope = xstrdup(json_string_value(json_object_get(j, "scope")) ?: "");
	g->auth_time = json_integer_value(json_object_get(j, "auth_time"));
	g->ehr = json_is_true(json_object_get(j, "ehr"));
	json_decref(j);
out:
	store_item_release(&it);
	return e;
}

/* 'who' from grant 'g', already loaded (NULL is fine). */
static void who_from(struct oauth_who *who, const struct grant *g)
{
	if (!who)
		return;
	memset(who, 0, sizeof(*who));
	str_copy(who->grant, g->id, sizeof(who->grant));
	str_copy(who->username, g->username, sizeof(who->username));
	str_copy(who->role, g->role, sizeof(who->role));
	str_copy(who->fhir_user, g->fhir_user, sizeof(who->fhir_user));
	str_copy(who->patient, g->patient, sizeof(who->patient));
}

/* Describe grant 'id' into 'who' (NULL is fine); nothing but the id when it cannot be read. */
static void who_of(struct oauth *o, const char *id, bool revoked, struct oauth_who *who)
{
	struct grant g;
	struct ctx ig = CTX_INIT;

	if (!who || !id)
		return;
	if (grant_load(o, id, &g, &ig) == ERR_OK) {
		who_from(who, &g);
	} else {
		memset(who, 0, sizeof(*who));
		str_copy(who->grant, id, sizeof(who->grant));
	}
	who->revoked = revoked;
	grant_release(&g);
}

/*
 * May the grant's user still act for its patient (*linked)?  Staff who may
 * act for anyone (clinician, admin) and grants without a user or a
 * patient: yes.  Otherwise the patient must still be one of the account's
 * linked records (its own, or one it cares for): a withdrawn link ends the
 * app's access.  Fails only when the links cannot be read.
 */
static enum err grant_patient_linked(struct oauth *o, const struct grant *g, bool *linked,
				     struct ctx *c)
{
	*linked = true;
	if (!g->uid || !g->patient[0] || !strcmp(g->role, "clinician") || !strcmp(g->role, "admin"))
		return ERR_OK;
	return user_linked(o->us, g->uid, g->patient, linked, c);
}

/* Is grant 'g' usable now? */
static bool grant_live(const struct grant *g, int64_t now)
{
	return g->state == STORE_ITEM_LIVE && (g->expires == 0 || g->expires > now);
}

static int64_t min_pos(int64_t a, int64_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

/* Sign an access token for grant 'g' with 'scope'; *exp_s gets its expiry, jti[] its id. */
static enum err mint_access(struct oauth *o, const struct grant *g, const char *scope,
			    int64_t ttl_s, struct buf *out, int64_t *exp_s, char jti[OAUTH_ID_SIZE],
			    struct ctx *c)
{
	const struct jose_key *k = signer(o, JOSE_ES256, c);
	int64_t now = clock_now_ms() / 1000, exp = now + ttl_s;
	json_t *cl, *hdr;
	enum err e;

	if (!k)
		return c->code;
	if (g->expires && exp > g->expires / 1000)
		exp = g->expires / 1000;
	oauth_random(jti);
	jti[22] = '\0'; /* 128 bits are plenty for an id */
	cl = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s}", "iss", o->issuer, "sub",
		       g->uid ? g->username : g->client_id, "aud", o->fhir_base, "exp",
		       (json_int_t)exp, "iat", (json_int_t)now, "jti", jti, "client_id",
		       g->client_id, "scope", scope, "grant", g->id);
	if (g->uid) {
		json_object_set_new(cl, "uid", json_integer(g->uid));
		json_object_set_new(cl, "role", json_string(g->role));
	}
	if (g->patient[0])
		json_object_set_new(cl, "patient", json_string(g->patient));
	if (g->encounter[0])
		json_object_set_new(cl, "encounter", json_string(g->encounter));
	if (g->fhir_user[0])
		json_object_set_new(cl, "fhirUser", json_string(g->fhir_user));
	hdr = json_pack("{s:s}", "typ", "at+jwt");
	e = jose_jws_sign(k, hdr, cl, out, c);
	json_decref(hdr);
	json_decref(cl);
	*exp_s = exp;
	return e;
}

static enum err mint_id_token(struct oauth *o, const struct grant *g, const struct scope_set *ss,
			      struct buf *out, struct ctx *c)
{
	const struct jose_key *k = signer(o, JOSE_RS256, c);
	int64_t now = clock_now_ms() / 1000;
	json_t *cl, *hdr;
	enum err e;

	if (!k)
		return c->code;
	cl = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "iss", o->issuer, "sub", g->username,
		       "aud", g->client_id, "exp", (json_int_t)(now + o->o.access_ttl), "iat",
		       (json_int_t)now, "auth_time", (json_int_t)(g->auth_time / 1000));
	if (g->nonce[0])
		json_object_set_new(cl, "nonce", json_string(g->nonce));
	if ((scope_flags(ss) & SCOPE_FHIRUSER) && g->fhir_user[0]) {
		char u[800];
		snprintf(u, sizeof(u), "%s/%s", o->fhir_base, g->fhir_user);
		json_object_set_new(cl, "fhirUser", json_string(u));
	}
	if (scope_flags(ss) & SCOPE_PROFILE)
		json_object_set_new(cl, "preferred_username", json_string(g->username));
	hdr = json_pack("{s:s}", "typ", "JWT");
	e = jose_jws_sign(k, hdr, cl, out, c);
	json_decref(hdr);
	json_decref(cl);
	return e;
}

/* A new refresh token for grant 'g' (value into tok[]). */
static enum err mint_refresh(struct oauth *o, const struct grant *g, char tok[OAUTH_ID_SIZE],
			     struct ctx *c)
{
	char h[OAUTH_HASH_SIZE];
	int64_t exp = min_pos(clock_now_ms() + o->o.refresh_ttl * MS, g->expires);

	oauth_random(tok);
	oauth_hash(tok, h);
	return oauth_put(o, NS_REFRESH, h, g->uid, g->id, json_pack("{s:s}", "client_id", g->client_id),
			 exp, false, c);
}

/*
 * The token response for grant 'g' with scope string 'scope': access
 * token, refresh token when 'refresh', id token when openid was granted.
 * who->jti (when 'who') gets the access token's id.
 */
static enum err respond(struct oauth *o, const struct grant *g, const char *scope,
			const char *refresh, bool id_token, bool launch_ctx, struct buf *out,
			struct oauth_who *who, struct ctx *c)
{
	struct buf at = BUF_INIT(16384), idt = BUF_INIT(16384);
	struct scope_set *ss = NULL;
	int64_t exp = 0, now = clock_now_ms() / 1000;
	char jti[OAUTH_ID_SIZE];
	json_t *r = NULL;
	enum err e;

	if ((e = scope_parse(scope, &ss, c)))
		goto out;
	if ((e = mint_access(o, g, scope, g->uid ? o->o.access_ttl : o->o.backend_ttl, &at, &exp, jti, c)))
		goto out;
	if (who)
		str_copy(who->jti, jti, sizeof(who->jti));
	r = json_pack("{s:s, s:s, s:I, s:s}", "access_token", at.data, "token_type", "Bearer",
		      "expires_in", (json_int_t)(exp - now), "scope", scope);
	if (refresh)
		json_object_set_new(r, "refresh_token", json_string(refresh));
	if (id_token && g->uid && (scope_flags(ss) & SCOPE_OPENID)) {
		if ((e = mint_id_token(o, g, ss, &idt, c)))
			goto out;
		json_object_set_new(r, "id_token", json_string(idt.data));
	}
	if (g->patient[0])
		json_object_set_new(r, "patient", json_string(g->patient));
	if (g->encounter[0])
		json_object_set_new(r, "encounter", json_string(g->encounter));
	if (g->uid && launch_ctx) {
		char u[700];
		/* an EHR launch replaces Veranda's page: nothing else shows whose record is open */
		json_object_set_new(r, "need_patient_banner", json_true());
		snprintf(u, sizeof(u), "%s/smart-style.json", o->issuer);
		json_object_set_new(r, "smart_style_url", json_string(u));
	}
	e = json_dump_buf(r, out);
out:
	json_decref(r);
	scope_set_free(ss);
	buf_release(&at);
	buf_release(&idt);
	return e;
}

/* Does 'scope' ask for a refresh token (offline_access or online_access)? */
static bool wants_refresh(const char *scope)
{
	struct scope_set *ss = NULL;
	struct ctx ig = CTX_INIT;
	bool yes = !scope_parse(scope, &ss, &ig) && (scope_flags(ss) & (SCOPE_OFFLINE | SCOPE_ONLINE));

	scope_set_free(ss);
	return yes;
}

/*
 * End the transaction of a token request: keep what it did (a consumed
 * code, a rotated or revoked token, a new refresh token) unless the store
 * itself failed.
 */
static enum err tx_end(struct oauth *o, enum err e, struct ctx *c)
{
	struct ctx cc = CTX_INIT;

	if (e && c->code && c->code != ERR_INVALID) {
		store_rollback(o->s);
	} else if (store_commit(o->s, &cc)) {
		*c = cc;
		e = cc.code;
	}
	/*
	 * No bump of the epoch here: a grant revoked in this transaction (a
	 * replay, a withdrawn link) bumped it, and the store bumps again as the
	 * transaction ends.  A bump makes every cached access token, in every
	 * process, check its grant again.
	 */
	return e;
}

/* ---- grant types ---- */

/* Is v a PKCE verifier (RFC 7636 4.1: 43-128 unreserved characters)? */
static bool verifier_ok(const char *v)
{
	size_t n = v ? strlen(v) : 0;

	if (n < 43 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)v[i]) || v[i] == '-' || v[i] == '.' || v[i] == '_' || v[i] == '~'))
			return false;
	return true;
}

/* base64url(SHA-256(verifier)) into out[64]. */
static void s256(const char *verifier, char out[64])
{
	unsigned char md[32];
	unsigned int n = 0;
	struct buf b = BUF_INIT(64);

	EVP_Digest(verifier, strlen(verifier), md, &n, EVP_sha256(), NULL);
	base64url_encode(md, sizeof(md), &b);
	str_copy(out, b.data, 64);
	buf_release(&b);
}

static enum err grant_code(struct oauth *o, const struct client *cl,
			   const struct oauth_token_req *r, struct buf *out, struct oauth_err *err,
			   struct oauth_who *who, struct ctx *c)
{
	struct store_item it;
	struct grant g;
	char h[OAUTH_HASH_SIZE], ruri[1024], chal[64], cid[128] = "", want[64], rt[OAUTH_ID_SIZE] = "";
	json_t *j = NULL;
	int64_t now = clock_now_ms();
	bool issue = false;
	enum err e;

	memset(&g, 0, sizeof(g));
	if (!r->code || !*r->code) {
		oauth_seterr(err, 400, "invalid_request", "code is required");
		return ERR_INVALID;
	}
	store_item_init(&it);
	oauth_hash(r->code, h);
	/* one transaction (one flush): consume the code, check it, write the refresh token */
	if ((e = store_begin(o->s, c)))
		goto out_notx;
	/* the first redemption attempt consumes the code, whatever happens next */
	e = store_item_take(o->s, NS_CODE, h, STORE_ITEM_LIVE, STORE_ITEM_USED, &it, c);
	if (e == ERR_NOTFOUND) {
		ctx_clear(c);
		oauth_seterr(err, 400, "invalid_grant", "the authorization code is not valid");
		e = ERR_INVALID;
		goto out;
	}
	if (e == ERR_CONFLICT) {
		/* a replayed code: end everything issued from it (RFC 6749 4.1.2) */
		ctx_clear(c);
		oauth_grant_kill(o, it.grp, c);
		ctx_clear(c);
		who_of(o, it.grp, true, who);
		oauth_seterr(err, 400, "invalid_grant",
			     "the authorization code was already used; its tokens are revoked");
		e = ERR_INVALID;
		goto out;
	}
	if (e)
		goto out;
	j = oauth_item_json(&it);
	oauth_jstr(j, "client_id", cid, sizeof(cid));
	oauth_jstr(j, "redirect_uri", ruri, sizeof(ruri));
	oauth_jstr(j, "challenge", chal, sizeof(chal));
	e = ERR_INVALID;
	if (it.expires && it.expires <= now) {
		oauth_seterr(err, 400, "invalid_grant", "the authorization code has expired");
	} else if (strcmp(cid, cl->client_id)) {
		oauth_seterr(err, 400, "invalid_grant", "the authorization code was issued to another client");
	} else if (!r->redirect_uri || strcmp(r->redirect_uri, ruri)) {
		oauth_seterr(err, 400, "invalid_grant",
			     "redirect_uri must be the one sent to the authorization endpoint");
	} else if (!r->code_verifier || !*r->code_verifier) {
		oauth_seterr(err, 400, "invalid_grant", "code_verifier is required (PKCE)");
	} else if (!verifier_ok(r->code_verifier)) {
		oauth_seterr(err, 400, "invalid_grant", "code_verifier is malformed");
	} else {
		s256(r->code_verifier, want);
		if (!str_eq_ct(want, strlen(want), chal, strlen(chal)))
			oauth_seterr(err, 400, "invalid_grant", "code_verifier does not match the code_challenge");
		else
			e = ERR_OK;
	}
	if (e)
		goto out;
	if ((e = grant_load(o, it.grp, &g, c)))
		goto out;
	who_from(who, &g);
	if (!grant_live(&g, now)) {
		oauth_seterr(err, 400, "invalid_grant", "the authorization was revoked");
		e = ERR_INVALID;
		goto out;
	}
	if (wants_refresh(g.scope) && (e = mint_refresh(o, &g, rt, c)))
		goto out;
	issue = true;
out:
	/* a refused exchange of this client's code: whose it was, for the record */
	if (e && who && !who->grant[0] && it.grp[0] && cid[0] && !strcmp(cid, cl->client_id))
		who_of(o, it.grp, false, who);
	e = tx_end(o, e, c);
	/* sign outside the transaction: the write lock is not held for the signatures */
	if (!e && issue)
		e = respond(o, &g, g.scope, rt[0] ? rt : NULL, true, true, out, who, c);
out_notx:
	mem_wipe(rt, sizeof(rt));
	json_decref(j);
	grant_release(&g);
	store_item_release(&it);
	return e;
}

static enum err grant_refresh(struct oauth *o, const struct client *cl,
			      const struct oauth_token_req *r, struct buf *out, struct oauth_err *err,
			      struct oauth_who *who, struct ctx *c)
{
	struct store_item it;
	struct grant g;
	struct scope_set *granted = NULL, *asked = NULL;
	struct buf narrowed = BUF_INIT(8192);
	char h[OAUTH_HASH_SIZE], cid[128] = "", rt[OAUTH_ID_SIZE] = "";
	int64_t now = clock_now_ms();
	json_t *j = NULL;
	bool in_tx = false, issue = false, linked = true;
	enum err e;

	memset(&g, 0, sizeof(g));
	store_item_init(&it);
	if (!r->refresh_token || !*r->refresh_token) {
		oauth_seterr(err, 400, "invalid_request", "refresh_token is required");
		e = ERR_INVALID;
		goto out;
	}
	oauth_hash(r->refresh_token, h);
	if ((e = store_item_get(o->s, NS_REFRESH, h, &it, c)) == ERR_NOTFOUND) {
		ctx_clear(c);
		oauth_seterr(err, 400, "invalid_grant", "the refresh token is not valid");
		e = ERR_INVALID;
		goto out;
	}
	if (e)
		goto out;
	j = oauth_item_json(&it);
	oauth_jstr(j, "client_id", cid, sizeof(cid));
	if (strcmp(cid, cl->client_id)) {
		oauth_seterr(err, 400, "invalid_grant", "the refresh token was issued to another client");
		e = ERR_INVALID;
		goto out;
	}
	/*
	 * A malformed or too wide scope is refused before the token is
	 * spent: otherwise the client's retry would look like a replay and
	 * end its grant.
	 */
	if (r->scope && *r->scope && scope_parse(r->scope, &asked, c)) {
		ctx_clear(c);
		oauth_seterr(err, 400, "invalid_scope", "scope is malformed");
		e = ERR_INVALID;
		goto out;
	}
	if (asked && it.state == STORE_ITEM_LIVE) {
		if ((e = grant_load(o, it.grp, &g, c)) || (e = scope_parse(g.scope, &granted, c)))
			goto out;
		if (!scope_covers(granted, asked)) {
			oauth_seterr(err, 400, "invalid_scope", "scope asks for more than was granted");
			e = ERR_INVALID;
			goto out;
		}
		scope_set_free(granted);
		granted = NULL;
		grant_release(&g);
	}
	/* one transaction (one flush): rotate the token, check the grant, write the next token */
	if ((e = store_begin(o->s, c)))
		goto out;
	in_tx = true;
	e = store_item_take(o->s, NS_REFRESH, h, STORE_ITEM_LIVE, STORE_ITEM_USED, &it, c);
	if (e == ERR_CONFLICT) {
		ctx_clear(c);
		if (it.state == STORE_ITEM_USED) { /* a rotated token came back: end the family */
			oauth_grant_kill(o, it.grp, c);
			who_of(o, it.grp, true, who);
		}
		ctx_clear(c);
		oauth_seterr(err, 400, "invalid_grant",
			     it.state == STORE_ITEM_USED
				     ? "the refresh token was already used; the grant is revoked"
				     : "the refresh token was revoked");
		e = ERR_INVALID;
		goto out;
	}
	if (e)
		goto out;
	if (it.expires && it.expires <= now) {
		oauth_seterr(err, 400, "invalid_grant", "the refresh token has expired");
		e = ERR_INVALID;
		goto out;
	}
	if ((e = grant_load(o, it.grp, &g, c)))
		goto out;
	who_from(who, &g);
	if (!grant_live(&g, now)) {
		oauth_seterr(err, 400, "invalid_grant", "the authorization was revoked or has ended");
		e = ERR_INVALID;
		goto out;
	}
	if ((e = grant_patient_linked(o, &g, &linked, c)))
		goto out;
	if (!linked) {
		/* the link was withdrawn: the grant ends with it (a new link needs a new consent) */
		oauth_grant_kill(o, g.id, c);
		ctx_clear(c);
		oauth_seterr(err, 400, "invalid_grant",
			     "the user may no longer act for this patient; the grant is revoked");
		e = ERR_INVALID;
		goto out;
	}
	if ((e = scope_parse(g.scope, &granted, c)))
		goto out;
	if ((scope_flags(granted) & SCOPE_ONLINE) && !(scope_flags(granted) & SCOPE_OFFLINE)) {
		/* online_access: only while the user's session lives */
		struct store_item si;
		store_item_init(&si);
		e = g.session[0] ? store_item_get(o->s, NS_SESSION, g.session, &si, c) : ERR_NOTFOUND;
		if (!e) {
			json_t *sj = oauth_item_json(&si);
			int64_t seen = json_integer_value(json_object_get(sj, "last_seen"));
			json_decref(sj);
			if ((si.expires && si.expires <= now) || now - seen >= o->o.session_idle * MS)
				e = ERR_NOTFOUND;
		}
		store_item_release(&si);
		if (e) {
			ctx_clear(c);
			oauth_seterr(err, 400, "invalid_grant", "the sign-in session of this online grant has ended");
			e = ERR_INVALID;
			goto out;
		}
	}
	if (asked) {
		if (!scope_covers(granted, asked)) {
			oauth_seterr(err, 400, "invalid_scope", "scope asks for more than was granted");
			e = ERR_INVALID;
			goto out;
		}
		if ((e = scope_format(asked, &narrowed, c)))
			goto out;
	} else {
		buf_adds(&narrowed, g.scope);
	}
	/*
	 * The spent token's successor carries the grant, not the narrowing
	 * (RFC 6749 section 6: the same scope as the token presented), so a
	 * narrowing without offline_access does not end offline access.
	 */
	if (wants_refresh(g.scope) && (e = mint_refresh(o, &g, rt, c)))
		goto out;
	issue = true;
out:
	/* a refused refresh of this client's token: whose it was, for the record */
	if (e && who && !who->grant[0] && it.grp[0] && cid[0] && !strcmp(cid, cl->client_id))
		who_of(o, it.grp, false, who);
	if (in_tx)
		e = tx_end(o, e, c);
	/*
	 * Signed outside the transaction.  No new id token: OIDC Core 12.2
	 * leaves it out of refresh responses, and it halves the signing.
	 */
	if (!e && issue)
		e = respond(o, &g, narrowed.data, rt[0] ? rt : NULL, false, true, out, who, c);
	mem_wipe(rt, sizeof(rt));
	json_decref(j);
	scope_set_free(granted);
	scope_set_free(asked);
	buf_release(&narrowed);
	grant_release(&g);
	store_item_release(&it);
	return e;
}

static enum err grant_backend(struct oauth *o, const struct client *cl,
			      const struct oauth_token_req *r, struct buf *out, struct oauth_err *err,
			      struct oauth_who *who, struct ctx *c)
{
	struct scope_set *asked = NULL, *allowed = NULL, *sys = NULL;
	struct buf s = BUF_INIT(8192);
	struct grant g;
	enum err e;

	memset(&g, 0, sizeof(g));
	if (cl->kind != CLIENT_ASYMMETRIC) {
		oauth_seterr(err, 400, "unauthorized_client",
			     "client_credentials is for backend services that authenticate with private_key_jwt");
		return ERR_INVALID;
	}
	if (!r->scope || !*r->scope) {
		oauth_seterr(err, 400, "invalid_scope", "scope is required (system/ scopes)");
		return ERR_INVALID;
	}
	if (scope_parse(r->scope, &asked, c)) {
		ctx_clear(c);
		oauth_seterr(err, 400, "invalid_scope", "scope is malformed");
		e = ERR_INVALID;
		goto out;
	}
	if (cl->scope[0]) {
		if ((e = scope_parse(cl->scope, &allowed, c)) ||
		    (e = scope_intersect(asked, allowed, &sys, c)))
			goto out;
	} else {
		sys = asked;
		asked = NULL;
	}
	if ((e = scope_format(sys, &s, c)))
		goto out;
	if (!scope_count(sys) || !s.len) {
		oauth_seterr(err, 400, "invalid_scope", "none of the requested scopes may be granted to this client");
		e = ERR_INVALID;
		goto out;
	}
	/* only system/ resource scopes make sense for a backend service */
	for (size_t i = 0; i < scope_count(sys); i++)
		if (scope_at(sys, i)->ctx != SCOPE_SYSTEM) {
			oauth_seterr(err, 400, "invalid_scope", "a backend service may only ask for system/ scopes");
			e = ERR_INVALID;
			goto out;
		}
	oauth_random(g.id);
	g.id[22] = '\0';
	str_copy(g.client_id, cl->client_id, sizeof(g.client_id));
	g.expires = clock_now_ms() + o->o.backend_ttl * MS;
	g.scope = s.data;
	if ((e = oauth_put(o, NS_GRANT, g.id, 0, cl->client_id, json_pack("{s:s}", "scope", s.data),
			   g.expires, false, c)))
		goto out;
	e = respond(o, &g, s.data, NULL, false, false, out, who, c);
	g.scope = NULL;
out:
	scope_set_free(asked);
	scope_set_free(allowed);
	scope_set_free(sys);
	buf_release(&s);
	return e;
}

enum err oauth_token(struct oauth *o, const struct client *cl, const struct oauth_token_req *r,
		     struct buf *out, struct oauth_err *err, struct oauth_who *who,
		     struct ctx *c)
{
	if (who)
		memset(who, 0, sizeof(*who));
	oauth_maintain(o);
	if (r->repeated) {
		oauth_seterr(err, 400, "invalid_request", "a parameter was sent more than once");
		return ERR_INVALID;
	}
	if (!r->grant_type || !*r->grant_type) {
		oauth_seterr(err, 400, "invalid_request", "grant_type is required");
		return ERR_INVALID;
	}
	if (!strcmp(r->grant_type, "authorization_code"))
		return grant_code(o, cl, r, out, err, who, c);
	if (!strcmp(r->grant_type, "refresh_token"))
		return grant_refresh(o, cl, r, out, err, who, c);
	if (!strcmp(r->grant_type, "client_credentials"))
		return grant_backend(o, cl, r, out, err, who, c);
	oauth_seterr(err, 400, "unsupported_grant_type", "grant_type '%.64s' is not supported",
		     r->grant_type);
	return ERR_INVALID;
}

/* ---- verification ---- */

/*
 * Clock skew forgiven on 'nbf' (RFC 7519 4.1.5): our own tokens carry
 * none, but one that does is refused before its time, give or take this.
 */
#define NBF_LEEWAY_S 60

static struct jose_jwks *verify_keys(struct oauth *o, struct ctx *c)
{
	struct token_cache *tc = o->cache;
	const struct buf *doc;

	if (tc->verify)
		return tc->verify;
	/* built once; races only build it twice */
	doc = keys_jwks(o->keys);
	{
		struct jose_jwks *set = NULL;
		if (jose_jwks_parse(doc->data, doc->len, JOSE_JWK_PUBLIC_ONLY, &set, c))
			return NULL;
		struct jose_jwks *expected = NULL;
		if (!__atomic_compare_exchange_n(&tc->verify, &expected, set, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			jose_jwks_free(set);
	}
	return tc->verify;
}

/*
 * Were the app 'client_id' or the account of a grant (uid, 'username';
 * uid 0: a backend service's) disabled or removed since the grant was
 * made?  Its tokens are then not active, whatever the grant's state.
 */
static bool holders_gone(struct oauth *o, const char *client_id, int64_t uid,
			 const char *username)
{
	struct client cl;
	struct user u;
	struct ctx ig = CTX_INIT;
	bool gone;

	gone = client_get(o->cs, client_id, &cl, &ig) || cl.disabled;
	client_release(&cl);
	if (!gone && uid)
		gone = !username[0] || user_get_by_name(o->us, username, &u, &ig) || u.disabled;
	return gone;
}

/*
 * Is the token (jti) or its grant revoked, has the grant ended, or were
 * its user or app disabled or removed since?  ERR_UNAUTHORIZED when so.
 */
static enum err check_revoked(struct oauth *o, const char *jti, const char *grant, struct ctx *c)
{
	struct store_item it;
	int64_t now = clock_now_ms();
	enum err e;
	json_t *j;

	store_item_init(&it);
	e = store_item_get(o->s, NS_JTI, jti, NULL, c);
	if (e == ERR_OK) {
		e = ctx_errorf(c, ERR_UNAUTHORIZED, "the access token was revoked");
		goto out;
	}
	if (e != ERR_NOTFOUND)
		goto out;
	ctx_clear(c);
	e = store_item_get(o->s, NS_GRANT, grant, &it, c);
	if (e == ERR_NOTFOUND || (!e && (it.state != STORE_ITEM_LIVE ||
					 (it.expires && it.expires <= now)))) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_UNAUTHORIZED, "the access token's authorization was revoked");
		goto out;
	}
	if (e)
		goto out;
	{
		char name[USER_NAME_MAX + 1] = "";

		if (it.uid && (j = oauth_item_json(&it))) {
			oauth_jstr(j, "username", name, sizeof(name));
			json_decref(j);
		}
		if (holders_gone(o, it.grp, it.uid, name))
			e = ctx_errorf(c, ERR_UNAUTHORIZED,
				       "the access token's app or account is no longer active");
	}
out:
	store_item_release(&it);
	return e;
}

/* Verify 'token' from scratch into a new cache entry. */
static enum err verify_new(struct oauth *o, const char *token, struct tc_entry **out,
			   struct ctx *c)
{
	struct jose_jwks *set = verify_keys(o, c);
	json_t *hdr = NULL, *cl = NULL;
	struct tc_entry *e = NULL;
	const char *typ;
	int64_t now = clock_now_ms() / 1000, exp;
	enum err rc;

	*out = NULL;
	if (!set)
		return c->code ? c->code : ERR_IO;
	if (jose_jws_verify_jwks(token, strlen(token), set, &hdr, &cl, NULL, c)) {
		ctx_clear(c);
		return ctx_errorf(c, ERR_UNAUTHORIZED, "the access token is not valid");
	}
	typ = json_string_value(json_object_get(hdr, "typ"));
	exp = json_integer_value(json_object_get(cl, "exp"));
	rc = ERR_UNAUTHORIZED;
	if (!typ || strcmp(typ, "at+jwt"))
		ctx_errorf(c, rc, "the token is not an access token");
	else if (!json_is_string(json_object_get(cl, "iss")) ||
		 strcmp(json_string_value(json_object_get(cl, "iss")), o->issuer))
		ctx_errorf(c, rc, "the access token was issued by another server");
	else if (!json_is_string(json_object_get(cl, "aud")) ||
		 strcmp(json_string_value(json_object_get(cl, "aud")), o->fhir_base))
		ctx_errorf(c, rc, "the access token is for another audience");
	else if (exp <= now)
		ctx_errorf(c, rc, "the access token has expired");
	else if (json_is_integer(json_object_get(cl, "nbf")) &&
		 json_integer_value(json_object_get(cl, "nbf")) > now + NBF_LEEWAY_S)
		ctx_errorf(c, rc, "the access token is not valid yet");
	else if (json_object_get(cl, "nbf") && !json_is_integer(json_object_get(cl, "nbf")))
		ctx_errorf(c, rc, "the access token's nbf is not a number");
	else
		rc = ERR_OK;
	if (rc)
		goto out;
	e = xcalloc(1, sizeof(*e));
	e->token = xstrdup(token);
	e->exp_ms = exp * 1000;
	oauth_jstr(cl, "jti", e->p.jti, sizeof(e->p.jti));
	oauth_jstr(cl, "grant", e->p.grant_id, sizeof(e->p.grant_id));
	oauth_jstr(cl, "client_id", e->p.client_id, sizeof(e->p.client_id));
	e->p.uid = json_integer_value(json_object_get(cl, "uid"));
	if (e->p.uid)
		oauth_jstr(cl, "sub", e->p.username, sizeof(e->p.username));
	{
		struct ctx ig = CTX_INIT;
		const char *role = json_string_value(json_object_get(cl, "role"));
		if (!role || user_role_parse(role, &e->p.role, &ig))
			e->p.role = USER_PATIENT;
	}
	oauth_jstr(cl, "fhirUser", e->p.fhir_user, sizeof(e->p.fhir_user));
	oauth_jstr(cl, "patient", e->p.patient, sizeof(e->p.patient));
	oauth_jstr(cl, "encounter", e->p.encounter, sizeof(e->p.encounter));
	e->scope = xstrdup(json_string_value(json_object_get(cl, "scope")) ?: "");
	e->p.exp = exp;
	e->p.iat = json_integer_value(json_object_get(cl, "iat"));
	if (!e->p.jti[0] || !e->p.grant_id[0]) {
		rc = ctx_errorf(c, ERR_UNAUTHORIZED, "the access token lacks jti or grant");
		goto out;
	}
	if ((rc = scope_parse(e->scope, &e->scopes, c))) {
		ctx_clear(c);
		rc = ctx_errorf(c, ERR_UNAUTHORIZED, "the access token's scope is malformed");
		goto out;
	}
	e->epoch = store_epoch(o->s);
	e->checked_ms = clock_now_ms();
	if ((rc = check_revoked(o, e->p.jti, e->p.grant_id, c)))
		goto out;
	e->p.scope = e->scope;
	e->p.scopes = e->scopes;
	*out = e;
	e = NULL;
out:
	if (e)
		entry_free(e);
	json_decref(hdr);
	json_decref(cl);
	return rc;
}

enum err oauth_verify(struct oauth *o, const char *token, struct principal *p, struct ctx *c)
{
	struct token_cache *tc = o->cache;
	size_t len = strlen(token);
	uint64_t h = token_hash(token, len), epoch;
	struct tc_shard *sh = &tc->sh[h % TC_SHARDS];
	struct tc_entry *e, *fresh = NULL;
	int64_t now = clock_now_ms();
	enum err rc;

	memset(p, 0, sizeof(*p));
	if (!len || len > 8192)
		return ctx_errorf(c, ERR_UNAUTHORIZED, "the access token is not valid");
	pthread_mutex_lock(&sh->mu);
	for (e = sh->b[(h / TC_SHARDS) % TC_BUCKETS]; e; e = e->next)
		if (e->h == h && !strcmp(e->token, token))
			break;
	if (e && e->exp_ms > now) {
		e->refs++;
		pthread_mutex_unlock(&sh->mu);
		epoch = store_epoch(o->s);
		/*
		 * Re-check after a revocation by any process on this store, and
		 * every 30 s (a process that could not map the shared epoch).
		 */
		if (e->epoch != epoch || now - e->checked_ms > 30 * 1000) {
			/* something was revoked since: check this token again */
			if ((rc = check_revoked(o, e->p.jti, e->p.grant_id, c))) {
				struct principal tmp = {.ref = e};
				oauth_principal_release(o, &tmp);
				return rc;
			}
			e->epoch = epoch; /* benign race: another thread may store the same */
			e->checked_ms = now;
		}
		*p = e->p;
		p->ref = e;
		return ERR_OK;
	}
	pthread_mutex_unlock(&sh->mu);
	if (e && e->exp_ms <= now)
		return ctx_errorf(c, ERR_UNAUTHORIZED, "the access token has expired");
	if ((rc = verify_new(o, token, &fresh, c)))
		return rc;
	fresh->h = h;
	fresh->refs = 1;
	pthread_mutex_lock(&sh->mu);
	if (sh->n >= TC_SHARD_MAX)
		shard_evict(sh, now, false);
	if (sh->n >= TC_SHARD_MAX)
		shard_evict(sh, now, true);
	fresh->next = sh->b[(h / TC_SHARDS) % TC_BUCKETS];
	sh->b[(h / TC_SHARDS) % TC_BUCKETS] = fresh;
	fresh->linked = true;
	sh->n++;
	pthread_mutex_unlock(&sh->mu);
	*p = fresh->p;
	p->ref = fresh;
	return ERR_OK;
}

/* ---- introspection, revocation, userinfo ---- */

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_set_new(o, k, json_string(v));
}

enum err oauth_introspect(struct oauth *o, const char *token, struct buf *out, struct ctx *c)
{
	struct principal p;
	json_t *r = NULL;
	enum err e;

	if (!token || !*token)
		return buf_adds(out, "{\"active\":false}");
	if (strchr(token, '.')) {
		e = oauth_verify(o, token, &p, c);
		if (e == ERR_UNAUTHORIZED) {
			ctx_clear(c);
			return buf_adds(out, "{\"active\":false}");
		}
		if (e)
			return e;
		r = json_pack("{s:b, s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "active", 1, "scope", p.scope,
			      "client_id", p.client_id, "exp", (json_int_t)p.exp, "iat",
			      (json_int_t)p.iat, "iss", o->issuer, "aud", o->fhir_base, "token_type",
			      "Bearer");
		set_str(r, "sub", p.uid ? p.username : p.client_id);
		set_str(r, "username", p.username);
		set_str(r, "patient", p.patient);
		set_str(r, "encounter", p.encounter);
		if (p.fhir_user[0]) {
			char u[800];
			snprintf(u, sizeof(u), "%s/%s", o->fhir_base, p.fhir_user);
			set_str(r, "fhirUser", u);
		}
		set_str(r, "jti", p.jti);
		oauth_principal_release(o, &p);
	} else {
		/* a refresh token */
		struct store_item it;
		struct grant g;
		char h[OAUTH_HASH_SIZE];
		int64_t now = clock_now_ms();

		memset(&g, 0, sizeof(g));
		store_item_init(&it);
		oauth_hash(token, h);
		e = store_item_get(o->s, NS_REFRESH, h, &it, c);
		if (!e && it.state == STORE_ITEM_LIVE && (!it.expires || it.expires > now) &&
		    !grant_load(o, it.grp, &g, c) && grant_live(&g, now) &&
		    !holders_gone(o, g.client_id, g.uid, g.username)) {
			r = json_pack("{s:b, s:s, s:s, s:s, s:s}", "active", 1, "scope", g.scope,
				      "client_id", g.client_id, "iss", o->issuer, "token_type",
				      "refresh_token");
			if (it.expires)
				json_object_set_new(r, "exp", json_integer(it.expires / 1000));
			set_str(r, "sub", g.username);
			set_str(r, "patient", g.patient);
		}
		ctx_clear(c);
		grant_release(&g);
		store_item_release(&it);
		if (!r)
			return buf_adds(out, "{\"active\":false}");
	}
	e = json_dump_buf(r, out);
	json_decref(r);
	return e;
}

enum err oauth_revoke(struct oauth *o, const struct client *cl, const char *token,
		      struct oauth_who *who, struct ctx *c)
{
	enum err e;

	if (who)
		memset(who, 0, sizeof(*who));
	if (!token || !*token)
		return ERR_OK;
	if (strchr(token, '.')) {
		struct principal p;

		e = oauth_verify(o, token, &p, c);
		if (e == ERR_UNAUTHORIZED) { /* unknown, expired or already revoked */
			ctx_clear(c);
			return ERR_OK;
		}
		if (e)
			return e;
		if (strcmp(p.client_id, cl->client_id)) {
			oauth_principal_release(o, &p);
			return ctx_errorf(c, ERR_FORBIDDEN, "the token was issued to another client");
		}
		who_of(o, p.grant_id, false, who); /* one token ends, not its grant */
		e = oauth_put(o, NS_JTI, p.jti, 0, NULL, json_object(), p.exp * 1000, true, c);
		oauth_principal_release(o, &p);
		oauth_epoch_bump(o);
		return e;
	} else {
		struct store_item it;
		char h[OAUTH_HASH_SIZE], cid[128];
		json_t *j;

		store_item_init(&it);
		oauth_hash(token, h);
		e = store_item_get(o->s, NS_REFRESH, h, &it, c);
		if (e == ERR_NOTFOUND) {
			ctx_clear(c);
			e = ERR_OK;
		} else if (!e) {
			j = oauth_item_json(&it);
			oauth_jstr(j, "client_id", cid, sizeof(cid));
			json_decref(j);
			if (strcmp(cid, cl->client_id))
				e = ctx_errorf(c, ERR_FORBIDDEN, "the token was issued to another client");
			else if (!(e = oauth_grant_kill(o, it.grp, c))) /* RFC 7009 2.1: its grant ends */
				who_of(o, it.grp, true, who);
		}
		store_item_release(&it);
		return e;
	}
}

enum err oauth_userinfo(struct oauth *o, const struct principal *p, struct buf *out,
			struct ctx *c)
{
	json_t *r;
	enum err e;

	if (!p->uid || !(scope_flags(p->scopes) & SCOPE_OPENID))
		return ctx_errorf(c, ERR_FORBIDDEN, "userinfo needs a token granted the openid scope");
	r = json_pack("{s:s}", "sub", p->username);
	if (p->fhir_user[0] && (scope_flags(p->scopes) & SCOPE_FHIRUSER)) {
		char u[800];
		snprintf(u, sizeof(u), "%s/%s", o->fhir_base, p->fhir_user);
		json_object_set_new(r, "fhirUser", json_string(u));
	}
	if (scope_flags(p->scopes) & SCOPE_PROFILE)
		json_object_set_new(r, "preferred_username", json_string(p->username));
	e = json_dump_buf(r, out);
	json_decref(r);
	return e;
}
