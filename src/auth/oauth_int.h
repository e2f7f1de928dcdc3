/*
 * oauth_int.h - inside the authorization server only: struct oauth and
 * the helpers its files share (auth items as JSON, token minting).
 */
#ifndef VERANDA_AUTH_OAUTH_INT_H
#define VERANDA_AUTH_OAUTH_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "auth/oauth.h"

struct token_cache;

struct oauth {
	struct store *s;
	struct users *us;
	struct clients *cs;
	const struct keys *keys;
	struct oauth_opts o;
	char issuer[512];
	char fhir_base[560];
	char token_url[600];
	atomic_int_fast64_t purged_at;    /* ms: last purge of expired items */
	struct token_cache *cache;
	struct audit *audit;              /* NULL: not audited */
	struct buf smart_conf, oidc_conf, as_meta;
};

/* Milliseconds per second, for the *_ttl options. */
#define MS 1000

/* Namespaces of auth items. */
#define NS_SESSION "session"
#define NS_AUTHZ "authz"
#define NS_CODE "code"
#define NS_GRANT "grant"
#define NS_REFRESH "refresh"
#define NS_JTI "jti"
#define NS_LAUNCH "launch"
#define NS_THROTTLE "throttle"

/*
 * Store 'data' (a JSON object; the reference is stolen) as item (ns, key)
 * with owner uid (0: none), group grp (NULL: none) and expiry (ms, 0 never).
 */
enum err oauth_put(struct oauth *o, const char *ns, const char *key, int64_t uid,
		   const char *grp, json_t *data, int64_t expires, bool replace, struct ctx *c);
/* Parse an item's data: a new reference, or NULL when it is not a JSON object. */
json_t *oauth_item_json(const struct store_item *it);

/* Copy a string member of 'obj' into dst[size] ("" when absent). */
void oauth_jstr(const json_t *obj, const char *key, char *dst, size_t size);

/*
 * Bump the store's change epoch (store_epoch_bump()): cached tokens, in this
 * process and in every other on the same store, re-check their grant.
 */
void oauth_epoch_bump(struct oauth *o);

/*
 * Delete expired auth items (codes, sessions, tokens, assertion ids...)
 * at most once a minute, after ending lapsed sessions on record; called
 * on the token and sign-in paths and wherever a session is looked up.
 */
void oauth_maintain(struct oauth *o);
/*
 * End every session past its idle or absolute limit that no request has
 * noticed (of account 'uid', or of all when 0), each with a
 * session.expired record (idle-timeout or absolute-timeout): before a
 * change that ends every session of an account, so that none of them goes
 * unrecorded, and once a minute for all.  At most a few thousand a call;
 * false when some may be left (or the store failed), or when called
 * inside a transaction, which it leaves alone (session.c).
 */
bool oauth_sessions_sweep(struct oauth *o, int64_t uid, int64_t now);

/* Revoke grant 'grant_id' and every refresh token of it. */
enum err oauth_grant_kill(struct oauth *o, const char *grant_id, struct ctx *c);

/* Token cache (token.c). */
struct token_cache *token_cache_new(void);
void token_cache_free(struct token_cache *tc);

/* Set an oauth_err. */
void oauth_seterr(struct oauth_err *err, int status, const char *error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
