/*
 * oauth.h - the authorization server: sign-in sessions, authorization
 * requests, codes, grants, access/refresh/id tokens, introspection,
 * revocation and EHR launches (OAuth 2, OpenID Connect, SMART App Launch
 * 2.x).  No HTTP here: src/auth/endpoints.c turns requests into these
 * calls and struct oauth_err into RFC 6749 answers or pages.
 *
 * State lives in the store as auth items (store.h): namespaces session,
 * authz, code, grant, refresh, jti, launch, throttle.  Values handed out
 * (session ids, codes, refresh tokens, launch ids, request ids) are 256
 * random bits, base64url; only their SHA-256 is stored.
 *
 * Every access and refresh token belongs to a grant.  Revoking the grant
 * (user revocation, refresh-token replay, code replay, sign out
 * everywhere) ends every token of it at once: verified access tokens are
 * cached until they expire, and each revocation bumps an epoch that makes
 * the cache re-check the grant before its next use.
 *
 * Threading: one struct oauth is shared by every thread; all functions
 * are thread-safe.
 */
#ifndef VERANDA_AUTH_OAUTH_H
#define VERANDA_AUTH_OAUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/clients.h"
#include "auth/keys.h"
#include "auth/totp.h"
#include "auth/users.h"
#include "core/buf.h"
#include "core/err.h"
#include "policy/scope.h"
#include "store/store.h"

#define OAUTH_ID_SIZE 48      /* a handed-out random value, base64url, with NUL */
#define OAUTH_HASH_SIZE 65    /* hex SHA-256 with NUL */
#define OAUTH_REF_SIZE 80     /* a FHIR id with NUL */

struct oauth_opts {
	const char *base_url;          /* public base, no trailing slash: the issuer */
	int64_t access_ttl;            /* seconds */
	int64_t backend_ttl;
	int64_t code_ttl;
	int64_t refresh_ttl;
	int64_t session_idle;
	int64_t session_max;
	int64_t launch_ttl;
	int64_t lock_after;            /* failed sign-ins before a temporary lock */
	int64_t lock_time;             /* seconds */
	int64_t token_fail_limit;      /* failed token requests a minute per address or client (0: no limit) */
};

/* An OAuth error: RFC 6749 code, description, HTTP status for direct answers. */
struct oauth_err {
	const char *error;             /* "invalid_request", "invalid_grant", ... */
	char description[256];
	int status;                    /* 400, 401, ... */
	bool redirect;                 /* authorize: may be sent to the redirect URI */
	bool www_basic;                /* answer 401 with WWW-Authenticate: Basic */
};

/*
 * Copy 's' into out[size] with every byte RFC 6749 (5.2) does not allow
 * in error_description (outside %x20-21 / %x23-5B / %x5D-7E: control
 * characters, '"', '\\', non-ASCII) replaced by '?'.  A description may
 * quote what the client sent.
 */
void oauth_text_clean(const char *s, char *out, size_t size);

struct oauth;

enum err oauth_new(struct oauth **out, struct store *s, struct users *us, struct clients *cs,
		   const struct keys *k, const struct oauth_opts *o, struct ctx *c);
void oauth_free(struct oauth *o);

const char *oauth_issuer(const struct oauth *o);     /* base_url */
const char *oauth_fhir_base(const struct oauth *o);  /* base_url + "/fhir" */
struct clients *oauth_clients(struct oauth *o);
struct users *oauth_users(struct oauth *o);
const struct keys *oauth_keys(const struct oauth *o);
/* Record sign-in, token and revocation events in 'a' (borrowed; NULL: none). */
struct audit;
void oauth_set_audit(struct oauth *o, struct audit *a);
struct audit *oauth_audit(const struct oauth *o);

/* Hex SHA-256 of s (NUL-terminated). */
void oauth_hash(const char *s, char out[OAUTH_HASH_SIZE]);
/* A new random value: 32 bytes, base64url (43 characters). */
void oauth_random(char out[OAUTH_ID_SIZE]);

/* ---- sessions and sign-in (session.c) ---- */

struct session {
	char id_hash[OAUTH_HASH_SIZE];
	int64_t uid;
	char username[USER_NAME_MAX + 1];
	enum user_role role;
	char fhir_user[STORE_FHIR_USER_SIZE];
	int64_t created, last_seen, strong_auth;   /* ms */
	bool mfa_pending;                          /* password checked, TOTP still due */
	char csrf[OAUTH_ID_SIZE];                  /* the session's anti-forgery token */
};

/*
 * Check a sign-in with throttling: per account and per client address,
 * failures beyond a few make the next attempt wait (1 s, 2 s, 4 s, ...,
 * at most 60 s) and 'lock_after' of them lock for 'lock_time' (ERR_BUSY
 * with *retry_after seconds, before any hashing).  Unknown accounts are
 * throttled like known ones.  The attempt is counted before the password
 * is checked and taken back unless the password was wrong, so concurrent
 * attempts throttle each other.  ERR_UNAUTHORIZED "wrong username or
 * password" for both an unknown user and a wrong password; ERR_FORBIDDEN
 * for a disabled or locked account; the store's error when the attempt
 * cannot be counted.  On success 'out' describes the user.
 */
enum err oauth_signin(struct oauth *o, const char *username, const char *password,
		      const char *addr, struct user *out, int64_t *retry_after, struct ctx *c);

/*
 * Start a session for 'u' (a new id every time): cookie[] receives the
 * value for the browser.  mfa_pending when the user still owes a TOTP code.
 * ERR_CONFLICT when the account's password or authenticator changed, or
 * it was disabled, since 'u' was read (the password check): a change
 * that ends every session must end this one too, so the sign-in starts
 * again.
 */
enum err oauth_session_start(struct oauth *o, const struct user *u, bool mfa_pending,
			     char cookie[OAUTH_ID_SIZE], struct session *out, struct ctx *c);
/*
 * The live session of cookie value 'cookie': ERR_NOTFOUND when unknown,
 * idle longer than session_idle or older than session_max (then it is
 * deleted), or its account is disabled.  Refreshes last_seen.
 */
enum err oauth_session_get(struct oauth *o, const char *cookie, struct session *out,
			   struct ctx *c);
/*
 * The TOTP step of a session whose password was checked: a 6-digit code
 * (each accepted once) or one of the recovery codes (each works once).
 * Then the session is fully signed in under a new id (*new_cookie; the
 * pending session is gone) with a new CSRF token, and its
 * strong-authentication time is now.  ERR_UNAUTHORIZED for a wrong code,
 * ERR_BUSY with *retry_after: wrong codes are counted per account with
 * the delays and lock-out of wrong passwords, on a counter of their own
 * that only a right code clears (signing in again with the password does
 * not).  The wait, the check and the use of a code are one transaction:
 * a code sent at once from several sessions works for one of them.
 * *new_cookie is "" unless a new session was made.
 */
enum err oauth_session_mfa(struct oauth *o, const char *cookie, const char *code,
			   const char *addr, char new_cookie[OAUTH_ID_SIZE], int64_t *retry_after,
			   struct ctx *c);

/* ---- enrolling two-step verification (session.c) ---- */

/*
 * The signed-in user's own change of password to 'fresh' (check it with
 * user_password_check() first: here an unacceptable one is ERR_INVALID
 * only after the current one was checked).  'current' must be the
 * account's password, checked on the sign-in throttle (ERR_UNAUTHORIZED,
 * ERR_BUSY with *retry_after, ERR_FORBIDDEN); a new password equal to
 * the current one is ERR_CONFLICT.  Then, in one
 * transaction, the new hash, the end of every session of the account,
 * and this one again under a new id (*cookie; se updated; its online
 * grants follow it): *ended other sessions ended.  With 'end_apps', the
 * same transaction revokes every grant and refresh token of the account
 * (user_end_grants()).  ERR_GONE when this session ended or was renewed
 * meanwhile.
 */
enum err oauth_password_change(struct oauth *o, struct session *se, const char *current,
			       const char *fresh, bool end_apps, const char *addr,
			       int64_t *retry_after, char cookie[OAUTH_ID_SIZE], int64_t *ended,
			       struct ctx *c);

#define OAUTH_RECOVERY_CODES 10

/*
 * Start enrolling a TOTP authenticator for the signed-in user: a new
 * secret, kept with the session for ten minutes; b32 gets it in base32
 * and uri the otpauth:// URI for authenticator apps.  A session alone
 * must not change the account's factors (*replacing says which case
 * this is): when the account has an authenticator, 'current' must be a
 * code of it (or a recovery code), checked and used as at sign-in (*used
 * says it was; without one: ERR_CONFLICT); when it has none, 'current'
 * must be the account's password, checked as at sign-in from 'addr'.
 * ERR_UNAUTHORIZED for a wrong one, ERR_BUSY with *retry_after when
 * throttled, ERR_FORBIDDEN for a locked account.
 */
enum err oauth_mfa_enrol_begin(struct oauth *o, const struct session *se, const char *current,
			       const char *addr, int64_t *retry_after, bool *used, bool *replacing,
			       struct buf *b32, struct buf *uri, struct ctx *c);
/*
 * Finish with the first code from the app: the secret becomes the
 * account's (replacing the old one, and its recovery codes, when the
 * set-up began with a code of it), every other session of the account
 * ends (*ended: how many; they did not prove this factor), this one goes
 * on under a new id (*cookie; se updated) and codes[] receives the
 * recovery codes to show once.  ERR_GONE when this session ended or was
 * renewed meanwhile.  ERR_UNAUTHORIZED for a wrong code, ERR_NOTFOUND when no
 * set-up is pending, ERR_CONFLICT when the account's authenticator
 * changed since the set-up began.
 */
enum err oauth_mfa_enrol_finish(struct oauth *o, struct session *se, const char *code,
				struct totp_recovery codes[OAUTH_RECOVERY_CODES],
				char cookie[OAUTH_ID_SIZE], int64_t *ended, struct ctx *c);
/* Forget an account's TOTP state (with user_mfa_set(NULL): "reset-mfa"). */
enum err oauth_mfa_reset(struct store *s, const char *username, struct ctx *c);
/* End one session; 'everywhere': every session and every grant of its user. */
enum err oauth_session_end(struct oauth *o, const char *cookie, bool everywhere, struct ctx *c);

/* ---- authorization requests (authorize.c) ---- */

/* A validated authorization request, waiting for the user. */
struct oauth_authz {
	char id[OAUTH_ID_SIZE];             /* handed to the pages (hidden field) */
	struct client client;
	char redirect_uri[1024];
	char state[512];
	char nonce[256];
	char challenge[64];
	char scope[4096];                   /* requested, narrowed to the client's */
	char launch_hash[OAUTH_HASH_SIZE];  /* EHR launch, "" for standalone */
	char patient[OAUTH_REF_SIZE];       /* chosen or from the launch */
	char encounter[OAUTH_REF_SIZE];
	int64_t launch_uid;                 /* the user the launch was made for */
	int64_t max_age;                    /* seconds; -1 none */
	bool prompt_none, prompt_login;
	int64_t created;
};

/*
 * Validate the parameters of an authorization request (GET query or POST
 * form; pairs in order).  Errors that must not redirect (unknown client,
 * redirect URI not registered, repeated client_id/redirect_uri) have
 * err->redirect false; the rest true.  On success 'out' is filled (its
 * client must be released with client_release) and stored for 10
 * minutes under out->id.
 */
enum err oauth_authz_begin(struct oauth *o, const char *const *names, const char *const *values,
			   size_t n, struct oauth_authz *out, struct oauth_err *err, struct ctx *c);
/* Read a stored request by its id.  ERR_NOTFOUND when unknown or expired. */
enum err oauth_authz_load(struct oauth *o, const char *id, struct oauth_authz *out,
			  struct ctx *c);
/* Record the patient chosen on the picker. */
enum err oauth_authz_set_patient(struct oauth *o, struct oauth_authz *a, const char *patient,
				 struct ctx *c);
void oauth_authz_release(struct oauth_authz *a);
void oauth_authz_drop(struct oauth *o, const char *id);

/* Does the request need a patient the user must pick (and may the user act for 'patient')? */
bool oauth_authz_needs_patient(const struct oauth_authz *a);

/*
 * The user's decision: 'granted' is the scope set the user allowed (the
 * request restricted by the consent screen; never more than requested);
 * duration_s the grant's lifetime (0: until revoked).  Issues a code:
 * *redirect (caller frees) receives the full redirect URL with code,
 * state and iss.
 */
enum err oauth_authz_approve(struct oauth *o, struct oauth_authz *a, const struct session *se,
			     const struct scope_set *granted, int64_t duration_s, char **redirect,
			     struct ctx *c);
/*
 * prompt=none: the user's earlier, still live grant to this app that
 * covers everything request 'a' asks for (and its patient, when the
 * request names one).  On ERR_OK *granted is the requested set, the
 * request's patient is the grant's and *duration_s what is left of it.
 * ERR_NOTFOUND when there is none.
 */
enum err oauth_authz_prior(struct oauth *o, struct oauth_authz *a, const struct session *se,
			   struct scope_set **granted, int64_t *duration_s, struct ctx *c);

/* An error redirect for request 'a' (error, description, state, iss); caller frees. */
char *oauth_authz_error_url(const struct oauth *o, const char *redirect_uri, const char *state,
			    const char *error, const char *description);

/* ---- EHR launch (authorize.c) ---- */

/*
 * Create a single-use launch for user 'uid' to open app 'client_id' on
 * 'patient' (and 'encounter', may be NULL).  *url (caller frees) is the
 * app's launch URL with iss and launch.
 */
enum err oauth_launch_create(struct oauth *o, int64_t uid, const char *client_id,
			     const char *patient, const char *encounter, char **url,
			     struct ctx *c);

/* ---- token endpoint (token.c) ---- */

/* The form fields of a token request, NULL when absent. */
struct oauth_token_req {
	const char *grant_type, *code, *redirect_uri, *code_verifier, *refresh_token, *scope;
	const char *client_id;
	bool repeated;                 /* a field was sent twice */
};

/*
 * Whose authorization a token request or a revocation touched, for its
 * audit record: the grant and its user ("" when none or unknown, as for a
 * backend service or an unknown token).  'revoked': the request ended the
 * grant (a replayed code or refresh token, a revoked refresh token).
 */
struct oauth_who {
	char grant[OAUTH_ID_SIZE];
	char username[USER_NAME_MAX + 1];
	char role[16];
	char fhir_user[STORE_FHIR_USER_SIZE];
	char patient[OAUTH_REF_SIZE];
	char jti[OAUTH_ID_SIZE];   /* the access token issued, "" when none */
	bool revoked;
};

/*
 * Run a token request for authenticated client 'cl'; 'out' gets the JSON
 * response body.  On failure 'err' says what to answer.  'who' (may be
 * NULL) is filled as far as the request got.
 */
enum err oauth_token(struct oauth *o, const struct client *cl, const struct oauth_token_req *r,
		     struct buf *out, struct oauth_err *err, struct oauth_who *who,
		     struct ctx *c);

/* ---- access tokens (token.c) ---- */

/* Who is calling, from a verified access token. */
struct principal {
	char jti[OAUTH_ID_SIZE];
	char grant_id[OAUTH_ID_SIZE];
	char client_id[128];
	int64_t uid;                           /* 0 for a backend service */
	char username[USER_NAME_MAX + 1];
	enum user_role role;
	char fhir_user[STORE_FHIR_USER_SIZE];
	char patient[OAUTH_REF_SIZE];          /* patient in context, "" none */
	char encounter[OAUTH_REF_SIZE];
	const char *scope;                     /* granted scope string */
	const struct scope_set *scopes;        /* parsed */
	int64_t exp, iat;                      /* seconds */
	void *ref;                             /* cache entry (oauth_principal_release) */
};

/*
 * Verify a bearer access token (signature, issuer, audience, expiry, and
 * that neither it nor its grant was revoked), from the cache when it was
 * verified before.  ERR_UNAUTHORIZED with a reason otherwise.
 * The principal borrows the cache entry: release it when done.
 */
enum err oauth_verify(struct oauth *o, const char *token, struct principal *p, struct ctx *c);

/*
 * The token of an Authorization header value "Bearer TOKEN" (RFC 6750
 * 2.1: the scheme in any case, one or more spaces), or NULL when it is
 * not one.  Whitespace after the token is not part of the value (RFC
 * 9110 5.5): then the token is copied into buf (size bytes; NULL when it
 * does not fit).
 */
const char *oauth_bearer(const char *authorization, char *buf, size_t size);
#define OAUTH_BEARER_MAX 8192 /* a buffer for oauth_bearer(): longer trimmed tokens are refused */
void oauth_principal_release(struct oauth *o, struct principal *p);

/* ---- introspection, revocation, userinfo (token.c) ---- */

/* RFC 7662: 'out' gets {"active":false} or the active token's claims. */
enum err oauth_introspect(struct oauth *o, const char *token, struct buf *out, struct ctx *c);
/*
 * RFC 7009: revoke an access or refresh token of client 'cl' (a refresh
 * token ends its whole grant).  Unknown tokens succeed; a token of
 * another client is ERR_FORBIDDEN.
 */
enum err oauth_revoke(struct oauth *o, const struct client *cl, const char *token,
		      struct oauth_who *who, struct ctx *c);
/* Revoke a grant by id (the patient's "remove this app"); bumps the epoch. */
enum err oauth_grant_revoke(struct oauth *o, const char *grant_id, struct ctx *c);
/* OpenID userinfo for principal 'p' (needs openid). */
enum err oauth_userinfo(struct oauth *o, const struct principal *p, struct buf *out,
			struct ctx *c);

/* ---- discovery (discovery.c) ---- */

const struct buf *oauth_smart_configuration(const struct oauth *o);
const struct buf *oauth_openid_configuration(const struct oauth *o);
const struct buf *oauth_as_metadata(const struct oauth *o);

#endif
