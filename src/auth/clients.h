/*
 * clients.h - the registry of apps (OAuth clients) and client
 * authentication at the token, introspection and revocation endpoints.
 *
 * A client is an auth item in namespace "client" (key: client_id) whose
 * data is a JSON object:
 *
 *   {"v":1, "name":"…", "kind":"public"|"symmetric"|"asymmetric",
 *    "redirect_uris":["…"], "launch_url":"…", "scope":"…", "origins":["…"],
 *    "secret_sha256":"<hex>"          symmetric only
 *    "jwks":{"keys":[…]}              asymmetric, registered by value
 *    "jwks_url":"https://…"           asymmetric, registered by URL
 *    "disabled":false}
 *
 * Client secrets are never stored: only the hex SHA-256 of the secret,
 * compared in constant time.  (Secrets are at least 16 characters and
 * meant to be random; a fast hash is the norm for such machine secrets.)
 *
 * Registration rules (client_add()):
 *   - client_id: [A-Za-z0-9._~-]{1,127};
 *   - redirect URIs: absolute, https, or http on a loopback host
 *     (127.0.0.1, [::1], localhost) (RFC 9700 section 2.6); no fragment,
 *     no wildcard, no user info; at most CLIENT_REDIRECT_MAX of at most
 *     CLIENT_URI_MAX bytes.  At least one, except for an asymmetric client
 *     without a user-facing flow (a backend service);
 *   - symmetric clients: a secret of at least CLIENT_SECRET_MIN characters;
 *   - asymmetric clients: exactly one of a JWK Set (public keys only, each
 *     with a unique kid, at least one usable with RS384 or ES384) or a
 *     JWKS URL (https, or http on loopback);
 *   - public clients: neither a secret nor keys;
 *   - launch URL: as a redirect URI (a query is allowed), optional;
 *   - origins: scheme://host[:port] with no path; stored lowercased and
 *     without a default port, as browsers send the Origin header;
 *   - scope: at most CLIENT_SCOPE_MAX bytes of RFC 6749 scope characters;
 *     not parsed here.
 *
 * Client authentication (client_authenticate()): see its comment.  The
 * JWK Sets of clients registered by URL are fetched with libcurl and
 * cached in memory per URL (see CLIENT_JWKS_* below).
 *
 * No HTTP here: the endpoints map struct client_auth_err to the wire.
 * Ownership: struct clients borrows the store (which must outlive it).
 * Threading: every function may be called from any thread at once; the
 * JWKS cache has its own lock.
 */
#ifndef VERANDA_AUTH_CLIENTS_H
#define VERANDA_AUTH_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jose.h"
#include "core/err.h"
#include "store/store.h"

#define CLIENT_ID_MAX 127         /* bytes of a client_id */
#define CLIENT_NAME_MAX 127       /* bytes of a display name */
#define CLIENT_URI_MAX 511        /* bytes of a redirect, launch or JWKS URL */
#define CLIENT_REDIRECT_MAX 16    /* redirect URIs per client */
#define CLIENT_ORIGIN_MAX 16      /* origins per client */
#define CLIENT_SCOPE_MAX 2047     /* bytes of the scope limit */
#define CLIENT_SECRET_MIN 16      /* characters of a client secret */
#define CLIENT_SECRET_MAX 256     /* bytes of a client secret */
#define CLIENT_JWKS_TEXT_MAX ((size_t)32 << 10)   /* a JWK Set registered by value */

/* The client assertion type of RFC 7523 (private_key_jwt). */
#define CLIENT_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
/* Clock skew allowed on assertion times, in ms. */
#define CLIENT_ASSERTION_SKEW_MS 60000
/* The latest an assertion may expire, after now (plus the skew), and the longest it
 * may live (exp - iat, when iat is given), in ms. */
#define CLIENT_ASSERTION_LIFETIME_MS 300000
/* JWKS URL fetching: */
#define CLIENT_JWKS_FETCH_MAX ((size_t)256 << 10)   /* bytes of a fetched JWK Set */
#define CLIENT_JWKS_TIMEOUT_MS 5000                  /* whole transfer */
#define CLIENT_JWKS_CACHE_DEFAULT_MS 300000          /* without Cache-Control max-age */
#define CLIENT_JWKS_CACHE_MAX_MS 86400000            /* a longer max-age is cut to this */
#define CLIENT_JWKS_REFETCH_MS 30000                 /* unknown kid: refetch at most this often;
							 a failed fetch: not retried sooner */
#define CLIENT_JWKS_WAIT_MS 1000                     /* wait for another thread's fetch of the URL */
#define CLIENT_JWKS_CACHE_URLS 256                   /* URLs cached at once */

enum client_kind { CLIENT_PUBLIC, CLIENT_SYMMETRIC, CLIENT_ASYMMETRIC };

/* "public", "symmetric", "asymmetric" (the stored names); NULL outside the enum. */
const char *client_kind_name(enum client_kind k);
/*
 * The SMART name of the profile: "public", "confidential-symmetric",
 * "confidential-asymmetric".
 */
const char *client_kind_smart(enum client_kind k);

/* A registered app as callers see it: no secret. */
struct client {
	char client_id[CLIENT_ID_MAX + 1];
	char name[CLIENT_NAME_MAX + 1];
	enum client_kind kind;
	char **redirect_uris;           /* exact strings */
	size_t nredirect;
	char launch_url[CLIENT_URI_MAX + 1];   /* "" when none */
	char scope[CLIENT_SCOPE_MAX + 1];      /* the most this app may be granted; "": no limit beyond server policy */
	char **origins;                 /* browser origins allowed for CORS (normalized) */
	size_t norigins;
	bool disabled;
	int64_t created;                /* ms since epoch */
	/* asymmetric: the registered keys (public), or the URL they are fetched from */
	struct jose_jwks *jwks;         /* NULL unless registered by value */
	char jwks_url[CLIENT_URI_MAX + 1];     /* "" unless registered by URL */
};

/* Zero 'cl' (an empty client that client_release() accepts). */
void client_init(struct client *cl);
/* Free what 'cl' holds; it is then empty.  An empty client is fine. */
void client_release(struct client *cl);

struct clients;

/* A registry over store 's' (borrowed).  Never fails but for bad arguments. */
enum err clients_new(struct clients **out, struct store *s, struct ctx *c);
void clients_free(struct clients *cs);

/* What a client is made of (client_add()); every pointer may be NULL when unused. */
struct client_spec {
	const char *client_id, *name;          /* name NULL or "": the client_id */
	enum client_kind kind;
	const char *secret;                    /* symmetric only; borrowed, not kept */
	const char *const *redirect_uris;
	size_t nredirect;
	const char *launch_url, *scope;
	const char *jwks_json;                 /* asymmetric: a JWK Set document, or */
	const char *jwks_url;                  /* asymmetric: where to fetch it */
	const char *const *origins;
	size_t norigins;
};

/*
 * Register a client after checking every rule of the file comment.
 * ERR_INVALID with a message naming the rule; ERR_CONFLICT when the
 * client_id is taken; ERR_IO for the store.
 */
enum err client_add(struct clients *cs, const struct client_spec *spec, struct ctx *c);

/* Delete a client.  ERR_NOTFOUND when there is none. */
enum err client_remove(struct clients *cs, const char *client_id, struct ctx *c);

/*
 * Disable (or enable again) a client: a disabled client cannot
 * authenticate or be authorized.  ERR_NOTFOUND when there is none.
 */
enum err client_set_disabled(struct clients *cs, const char *client_id, bool disabled,
			     struct ctx *c);

/*
 * Read a client into 'out', which the call initialises first (release
 * any earlier contents before) and the caller releases with
 * client_release(), also after a failure.  ERR_NOTFOUND when there is
 * none (or the id is not a valid client_id); ERR_IO when the stored
 * record is unreadable.
 */
enum err client_get(struct clients *cs, const char *client_id, struct client *out,
		    struct ctx *c);

/*
 * Every client in client_id order.  'fn' gets a client valid during the
 * call only; a non-zero return stops the walk.  fn must not call the
 * store.
 */
typedef int (*client_fn)(void *arg, const struct client *cl);
enum err client_list(struct clients *cs, client_fn fn, void *arg, struct ctx *c);

/*
 * Is 'redirect_uri' registered for 'cl'?  Exact byte match, except that a
 * registered http URI on 127.0.0.1 or [::1] matches the same URI with any
 * port (RFC 8252 section 7.3).  NULL is never registered.
 */
bool client_redirect_ok(const struct client *cl, const char *redirect_uri);

/* Is 'origin' (an Origin header value) registered for 'cl'?  Exact match after normalizing. */
bool client_origin_ok(const struct client *cl, const char *origin);

/* ---- client authentication ---- */

struct client_auth_in {
	const char *authorization;        /* the Authorization header or NULL */
	const char *client_id;            /* form fields, NULL when absent */
	const char *client_secret;
	const char *client_assertion_type;
	const char *client_assertion;
	const char *token_url;            /* the exact token endpoint URL (the assertion's aud) */
	int64_t now_ms;
};

struct client_auth_err {
	const char *error;                /* "invalid_client", "invalid_request" or "server_error" */
	char description[256];            /* error_description: names the reason, never a secret */
	int status;                       /* 400, 401 (500 or 503 for server_error) */
	bool www_basic;                   /* answer with WWW-Authenticate: Basic */
	/* a registered client with a secret that failed (a wrong secret, disabled...): its id, else "" */
	char secret_client[CLIENT_ID_MAX + 1];
};

/*
 * Authenticate the client of a token, introspection or revocation request
 * and read it into 'out' (initialised by the call; release it with
 * client_release() in any case).
 *
 * Exactly one method per request: HTTP Basic (RFC 6749 section 2.3.1,
 * id and secret form-url-decoded), client_secret in the body
 * (client_secret_post, with client_id), or client_assertion (RFC 7523
 * private_key_jwt as SMART's client-confidential-asymmetric profile).
 * An empty client_secret counts as absent.  With no method, client_id
 * alone identifies a public client.  An Authorization header with
 * another scheme than Basic is refused (401): an endpoint that accepts
 * bearer tokens (introspection) handles those itself and passes NULL.
 *
 * Assertions: client_assertion_type exactly CLIENT_ASSERTION_TYPE; header
 * alg RS384 or ES384, kid required, typ "JWT" when present, jku when
 * present equal to the registered jwks_url; the one key with that kid
 * whose type suits alg verifies it; iss == sub == client_id (and the
 * body's client_id when given); aud the token_url (or an array holding
 * it); exp required, after now - skew and at most now + 5 min + skew;
 * iat and nbf, when present, not after now + skew; exp at most 5 min
 * after iat, when iat is present; jti required (at most
 * 255 bytes) and used once: (client_id, jti) is recorded in namespace
 * "cjti" (key: hex SHA-256 of client_id, NUL, jti; group: client_id)
 * until exp + skew, and a second use fails.
 *
 * Results: ERR_OK; ERR_UNAUTHORIZED (err: invalid_client, 401; or 400 for
 * a wrong client_assertion_type; www_basic when Basic was used or
 * expected); ERR_INVALID (err: invalid_request, 400: more than one
 * method, a malformed header, a missing parameter); ERR_IO / ERR_BUSY
 * (err: server_error, 500 / 503; the cause is on 'c').  'err' is always
 * filled on failure; on ERR_UNAUTHORIZED and ERR_INVALID 'c' holds the
 * same description.
 */
enum err client_authenticate(struct clients *cs, const struct client_auth_in *in,
			     struct client *out, struct client_auth_err *err, struct ctx *c);

#endif
