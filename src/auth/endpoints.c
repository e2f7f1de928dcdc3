/*
 * endpoints.c - the authorization server's HTTP edge: discovery, JWKS,
 * the sign-in, patient-picker and consent pages, the authorization,
 * token, introspection, revocation and userinfo endpoints, sign-out, the
 * account page (apps with access, remove access) and the EHR launch form.
 *
 * Pages are server-rendered mustache templates (web/templates), work
 * without JavaScript, and carry a strict CSP (no scripts; forms post to
 * this server, and the consent form may end in a redirect to the app).
 * Every state-changing form carries a CSRF token: the session's for
 * signed-in forms, a double-submit cookie for the sign-in form; a
 * cross-origin Origin header is refused on them as well.
 *
 * Cookies: the session cookie is "__Host-veranda" (Secure, Path=/,
 * HttpOnly, SameSite=Lax) when the base URL is https; over plain http
 * (loopback development) it is "veranda" without Secure, since browsers
 * drop Secure cookies there.
 *
 * OAuth errors are RFC 6749 JSON with Cache-Control: no-store.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "auth/endpoints.h"
#include "auth/oauth_int.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/embedded.h"
#include "core/json.h"
#include "core/limit.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/mustache.h"
#include "core/str.h"
#include "core/url.h"
#include "fhir/model.h"
#include "http/http.h"

#define JSON_CT "application/json"
#define HTML_CT "text/html; charset=utf-8"

struct auth_edge {
	struct oauth *o;
	struct mustache_set *tmpl;
	bool https;                  /* base URL is https: Secure cookies */
	const char *sid_name;        /* session cookie name */
	const char *csrf_name;       /* sign-in CSRF cookie name */
	char origin[512];            /* scheme://host[:port] of the base URL */
	/* browser origins of registered apps (CORS), refreshed now and then */
	pthread_mutex_t mu;
	char **origins;
	size_t norigins;
	int64_t origins_at;
	/* failed token-endpoint style requests a minute, per address and per client */
	struct limit *addr_fails, *client_fails;
};

#define FAIL_WINDOW_MS 60000
/* an app may fail this many times the limit of one address (from many) */
#define CLIENT_FAIL_FACTOR 10

static struct auth_edge edge_static;
static const char *audit_dir;

void auth_routes_set_audit_dir(const char *data_dir)
{
	audit_dir = data_dir;
}

/* ---- small helpers ---- */

/*
 * The value of cookie 'name' from the Cookie header into out[size]; false
 * when absent, too long or sent more than once.
 */
static bool cookie(struct http_req *q, const char *name, char *out, size_t size)
{
	const char *h = http_req_header(q, "Cookie");
	size_t nl = strlen(name);
	bool found = false;

	for (const char *p = h; p && *p;) {
		while (*p == ' ' || *p == ';')
			p++;
		size_t n = strcspn(p, ";");
		if (n > nl && !strncmp(p, name, nl) && p[nl] == '=') {
			size_t vl = n - nl - 1;
			/* a name sent twice: one of them was planted, and which is unknown */
			if (found || vl >= size)
				return false;
			memcpy(out, p + nl + 1, vl);
			out[vl] = '\0';
			found = true;
		}
		p += n;
	}
	return found;
}

static void set_cookie(struct http_req *q, struct auth_edge *ed, const char *name,
		       const char *value, int64_t max_age)
{
	char h[512];

	snprintf(h, sizeof(h), "%s=%s; Path=/; HttpOnly; SameSite=Lax%s%s%lld", name, value,
		 ed->https ? "; Secure" : "", max_age >= 0 ? "; Max-Age=" : "",
		 max_age >= 0 ? (long long)max_age : 0LL);
	if (max_age < 0) /* a session cookie: no Max-Age */
		snprintf(h, sizeof(h), "%s=%s; Path=/; HttpOnly; SameSite=Lax%s", name, value,
			 ed->https ? "; Secure" : "");
	http_resp_header(q, "Set-Cookie", h);
}

static void no_store(struct http_req *q)
{
	http_resp_header(q, "Cache-Control", "no-store");
	http_resp_header(q, "Pragma", "no-cache");
}

/* Count how many times form field 'name' appears. */
static size_t form_count_of(struct http_req *q, const char *name)
{
	size_t k = 0;

	for (size_t i = 0; i < http_req_form_count(q); i++) {
		const char *n, *v;
		http_req_form_at(q, i, &n, &v);
		if (!strcmp(n, name))
			k++;
	}
	return k;
}

/* RFC 6749 5.2 error body. */
static void oauth_error(struct http_req *q, const struct oauth_err *err)
{
	struct buf b = BUF_INIT(4096);
	json_t *j = json_pack("{s:s}", "error", err->error ? err->error : "server_error");

	if (err->description[0]) {
		char d[sizeof(err->description)];
		oauth_text_clean(err->description, d, sizeof(d));
		json_object_set_new(j, "error_description", json_string(d));
	}
	json_dump_buf(j, &b);
	json_decref(j);
	no_store(q);
	if (err->status == 401)
		http_resp_header(q, "WWW-Authenticate",
				 err->www_basic || (err->error && !strcmp(err->error, "invalid_client"))
					 ? "Basic realm=\"veranda\""
					 : "Bearer realm=\"veranda\"");
	http_resp_buf(q, err->status ? err->status : 500, JSON_CT, &b);
	buf_release(&b);
}

static void server_error(struct http_req *q, const struct ctx *c)
{
	struct oauth_err err = {.error = c->code == ERR_BUSY ? "temporarily_unavailable" : "server_error",
				.status = c->code == ERR_BUSY ? 503 : 500};

	log_msg(LOG_ERROR, "authorization server: %s", c->msg);
	str_copy(err.description, c->code == ERR_BUSY ? "the server is busy: try again" : "internal error",
		 sizeof(err.description));
	if (c->code == ERR_BUSY)
		http_resp_header(q, "Retry-After", "1");
	oauth_error(q, &err);
}

/* The HTTP layer's own errors under /oauth (no route, 405, 413, ...). */
static void render_http_error(struct http_req *q, int status, const char *msg)
{
	struct oauth_err err = {.error = status == 405 ? "invalid_request" : status >= 500 ? "server_error" : "invalid_request",
				.status = status};

	str_copy(err.description, msg, sizeof(err.description));
	oauth_error(q, &err);
}

/* Page headers: no caching, a CSP that allows our stylesheet and forms to us (and 'extra'). */
static void page_headers(struct http_req *q, struct auth_edge *ed, const char *form_extra)
{
	char csp[1400];

	snprintf(csp, sizeof(csp),
		 "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none';"
		 " form-action 'self' %s%s; frame-ancestors 'none'",
		 ed->origin, form_extra ? form_extra : "");
	http_resp_header(q, "Content-Security-Policy", csp);
	http_resp_header(q, "Cache-Control", "no-store");
}

/* Render template 'name' with 'view' (stolen) as the response. */
static void page(struct http_req *q, struct auth_edge *ed, int status, const char *name,
		 json_t *view, const char *form_extra)
{
	struct buf b = BUF_INIT(1 << 20);
	struct ctx c = CTX_INIT;

	if (mustache_set_render(ed->tmpl, name, view, &b, &c)) {
		log_msg(LOG_ERROR, "page %s: %s", name, c.msg);
		buf_reset(&b);
		buf_adds(&b, "<!doctype html><title>Error</title><p>Something went wrong. Please try again.</p>");
		status = 500;
	}
	json_decref(view);
	page_headers(q, ed, form_extra);
	http_resp_buf(q, status, HTML_CT, &b);
	buf_release(&b);
}

static void error_page(struct http_req *q, struct auth_edge *ed, int status, const char *heading,
		       const char *message, const char *hint)
{
	page(q, ed, status, "error",
	     json_pack("{s:s, s:s, s:s, s:s*}", "title", heading, "heading", heading, "message",
		       message, "hint", hint),
	     NULL);
}

/* error_page() with a link back to the account page, for its forms. */
static void account_error(struct http_req *q, struct auth_edge *ed, int status, const char *heading,
			  const char *message)
{
	page(q, ed, status, "error",
	     json_pack("{s:s, s:s, s:s, s:s, s:s}", "title", heading, "heading", heading, "message",
		       message, "back", "/account", "back_text", "Back to your account"),
	     NULL);
}

static void redirect(struct http_req *q, const char *url)
{
	http_resp_header(q, "Location", url);
	http_resp_header(q, "Cache-Control", "no-store");
	http_resp_empty(q, 303);
}

/* The origin (scheme://host[:port]) of an absolute URL into out[size]. */
static void origin_of(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://");
	size_t n;

	if (!p) {
		out[0] = '\0';
		return;
	}
	n = (size_t)(p + 3 - url) + strcspn(p + 3, "/?#");
	if (n >= size)
		n = size - 1;
	memcpy(out, url, n);
	out[n] = '\0';
}

/*
 * Refuse a cross-origin form post (defence in depth next to CSRF tokens):
 * an Origin other than ours, or a browser's Sec-Fetch-Site saying the post
 * came from another site.
 */
static bool same_origin(struct http_req *q, struct auth_edge *ed)
{
	const char *o = http_req_header(q, "Origin");
	const char *site = http_req_header(q, "Sec-Fetch-Site");

	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return false;
	return !o || !strcmp(o, "null") ? true : !strcmp(o, ed->origin);
}

/* ---- audit ---- */

/* What an authorization-server event says (strings may be NULL). */
struct aud {
	enum audit_type type;
	char action;
	int outcome;
	const char *code;          /* why it failed */
	const char *username, *role, *fhir_user, *client_id, *patient, *scopes, *grant;
	const char *session_id;    /* raw: hashed here */
	bool request_session;      /* or the session of the request's cookie */
	const char *token_id;      /* an access token's jti, raw: hashed here */
	const char *renewed_id;    /* the session's new id after a renewal, raw: hashed here */
	const char *entity_type, *entity_id; /* what an administrative change touched */
};

/* The user and grant a token request or revocation touched (oauth_who). */
static void aud_who(struct aud *a, const struct oauth_who *w)
{
	a->username = w->username[0] ? w->username : NULL;
	a->role = w->role[0] ? w->role : NULL;
	a->fhir_user = w->fhir_user[0] ? w->fhir_user : NULL;
	a->patient = w->patient[0] ? w->patient : NULL;
	a->grant = w->grant[0] ? w->grant : NULL;
	a->token_id = w->jti[0] ? w->jti : NULL;
}

/*
 * Queue an event (not waited for: these disclose no patient data).  A
 * full queue or a failed writer is logged, never shown to the user.
 */
static void auth_event(struct http_req *q, struct auth_edge *ed, const struct aud *a)
{
	struct audit *au = oauth_audit(ed->o);
	struct audit_event ev;
	struct audit_entity ents[2] = {{.type = "Session"}};
	char sh[AUDIT_HASH_SIZE], th[AUDIT_HASH_SIZE], nh[AUDIT_HASH_SIZE], sid[OAUTH_ID_SIZE] = "";
	const char *session_id = a->session_id;
	struct ctx c = CTX_INIT;

	if (!au)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = a->type;
	ev.action = a->action;
	ev.outcome = a->outcome;
	ev.outcome_code = a->code;
	ev.agent.username = a->username;
	ev.agent.role = a->role;
	ev.agent.fhir_user = a->fhir_user;
	ev.agent.client_id = a->client_id;
	ev.patient = a->patient;
	ev.source.client_addr = http_req_client_addr(q);
	if (a->request_session && cookie(q, ed->sid_name, sid, sizeof(sid)))
		session_id = sid;
	if (session_id && *session_id) {
		audit_hash_id(session_id, sh);
		ev.source.session_hash = sh;
	}
	mem_wipe(sid, sizeof(sid));
	if (a->token_id && *a->token_id) {
		audit_hash_id(a->token_id, th);
		ev.source.token_hash = th;
	}
	if (a->renewed_id && *a->renewed_id) {
		/* links the session's records under its old id to those under its new one */
		audit_hash_id(a->renewed_id, nh);
		ents[ev.n_entities++].id = nh;
	}
	if (a->entity_type && a->entity_id)
		ents[ev.n_entities++] = (struct audit_entity){.type = a->entity_type, .id = a->entity_id};
	ev.entities = ev.n_entities ? ents : NULL;
	ev.authority.scopes = a->scopes;
	ev.authority.grant_id = a->grant;
	ev.correlation.request_id = http_req_id(q);
	ev.correlation.trace_id = http_req_trace_id(q);
	if (audit_record(au, &ev, NULL, &c))
		log_msg(LOG_WARN, "audit: %s", c.msg);
}

/* Record a code of 'se''s authenticator entered: 'e' its outcome (ERR_BUSY: throttled). */
static void mfa_used(struct http_req *q, struct auth_edge *ed, const struct session *se, enum err e,
		     const char *session_id)
{
	struct aud ae = {.type = AUDIT_MFA_USE, .outcome = e ? AUDIT_MINOR : AUDIT_OK,
			 .code = e == ERR_BUSY ? "throttled" : e ? "wrong-code" : NULL,
			 .username = se->username, .role = user_role_name(se->role),
			 .fhir_user = se->fhir_user, .session_id = session_id};

	auth_event(q, ed, &ae);
}

/* ---- CORS ---- */

static int collect_origin(void *arg, const struct client *cl)
{
	struct auth_edge *ed = arg;

	if (cl->disabled)
		return 0; /* its tokens are refused: its pages get no cross-origin grant either */
	for (size_t i = 0; i < cl->norigins; i++) {
		ed->origins = xrealloc(ed->origins, (ed->norigins + 1) * sizeof(char *));
		ed->origins[ed->norigins++] = xstrdup(cl->origins[i]);
	}
	return 0;
}

/* Is 'origin' a registered app's browser origin?  The list is re-read every 10 s. */
static bool origin_registered(struct auth_edge *ed, const char *origin)
{
	int64_t now = clock_now_ms();
	bool ok = false;

	pthread_mutex_lock(&ed->mu);
	if (now - ed->origins_at > 10000) {
		struct ctx c = CTX_INIT;
		for (size_t i = 0; i < ed->norigins; i++)
			free(ed->origins[i]);
		ed->norigins = 0;
		client_list(oauth_clients(ed->o), collect_origin, ed, &c);
		ed->origins_at = now;
	}
	for (size_t i = 0; i < ed->norigins && !ok; i++)
		ok = !strcmp(ed->origins[i], origin);
	pthread_mutex_unlock(&ed->mu);
	return ok;
}

/*
 * CORS headers: 'any' for public documents (sent whether or not the
 * request has an Origin, so that a cached copy serves every origin), else
 * registered origins only.
 */
static void cors(struct http_req *q, struct auth_edge *ed, bool any)
{
	const char *origin = http_req_header(q, "Origin");

	if (any) {
		http_resp_header(q, "Access-Control-Allow-Origin", "*");
		return;
	}
	if (!origin)
		return;
	if (origin_registered(ed, origin)) {
		http_resp_header(q, "Access-Control-Allow-Origin", origin);
		http_resp_header(q, "Vary", "Origin");
	}
}

bool auth_cors_origin_ok(const char *origin)
{
	return origin && edge_static.o && origin_registered(&edge_static, origin);
}

/*
 * CORS preflight: only the endpoints a browser app calls from script (the
 * token, revocation, introspection and userinfo endpoints, the JWKS) answer
 * a registered origin; the pages people navigate to (authorize, sign-in,
 * consent) never do.
 */
static void handle_preflight(struct http_req *q, void *arg)
{
	static const char *const scripted[] = {"token", "revoke", "introspect", "userinfo", "jwks"};
	struct auth_edge *ed = arg;
	const char *origin = http_req_header(q, "Origin"), *what = http_req_param(q, "what");
	bool api = false;

	for (size_t i = 0; what && i < sizeof(scripted) / sizeof(scripted[0]); i++)
		api |= !strcmp(what, scripted[i]);
	if (api && origin && origin_registered(ed, origin)) {
		http_resp_header(q, "Access-Control-Allow-Origin", origin);
		http_resp_header(q, "Vary", "Origin");
		http_resp_header(q, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
		http_resp_header(q, "Access-Control-Allow-Headers",
				 "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match");
		http_resp_header(q, "Access-Control-Max-Age", "600");
	}
	http_resp_empty(q, 204);
}

/* ---- discovery ---- */

static void send_doc(struct http_req *q, const struct buf *b, bool cache)
{
	cors(q, &edge_static, true);
	http_resp_header(q, "Cache-Control", cache ? "public, max-age=300" : "no-store");
	http_resp_bytes(q, 200, JSON_CT, b->data, b->len);
}

static void handle_smart_conf(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;

	send_doc(q, oauth_smart_configuration(ed->o), true);
}

static void handle_oidc_conf(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;

	send_doc(q, oauth_openid_configuration(ed->o), true);
}

static void handle_as_meta(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;

	send_doc(q, oauth_as_metadata(ed->o), true);
}

static void handle_jwks(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;

	send_doc(q, keys_jwks(oauth_keys(ed->o)), true);
}

static void handle_style(struct http_req *q, void *arg)
{
	static const char style[] =
		"{\"color_background\":\"#f6f8fa\",\"color_error\":\"#a4262c\",\"color_highlight\":\"#0b5c8e\","
		"\"color_modal_backdrop\":\"\",\"color_success\":\"#1e7e34\",\"color_text\":\"#1d2733\","
		"\"dim_border_radius\":\"6px\",\"dim_font_size\":\"16px\",\"dim_spacing_size\":\"16px\","
		"\"font_family_body\":\"system-ui, sans-serif\",\"font_family_heading\":\"system-ui, sans-serif\"}";
	(void)arg;
	cors(q, &edge_static, true);
	http_resp_header(q, "Cache-Control", "public, max-age=3600");
	http_resp_bytes(q, 200, JSON_CT, style, sizeof(style) - 1);
}

static void handle_static(struct http_req *q, void *arg)
{
	char path[256];
	const unsigned char *data;
	size_t n;
	const char *name = http_req_param(q, "name");

	(void)arg;
	if (strchr(name, '/') || strstr(name, "..")) {
		http_resp_bytes(q, 404, "text/plain; charset=utf-8", "not found\n", 10);
		return;
	}
	snprintf(path, sizeof(path), "web/static/%s", name);
	if (!(data = embedded_find(path, &n))) {
		http_resp_bytes(q, 404, "text/plain; charset=utf-8", "not found\n", 10);
		return;
	}
	http_resp_header(q, "Cache-Control", "public, max-age=3600");
	http_resp_bytes(q, 200, str_ends(name, ".css") ? "text/css; charset=utf-8" : "application/octet-stream",
			data, n);
}

/* No icon: answer 204 (cached) instead of a 404 in every browser console. */
static void handle_favicon(struct http_req *q, void *arg)
{
	(void)arg;
	http_resp_header(q, "Cache-Control", "public, max-age=86400");
	http_resp_empty(q, 204);
}

/* ---- sessions in requests ---- */

/* The live session of this request (false when none). */
static bool current_session(struct http_req *q, struct auth_edge *ed, struct session *se)
{
	char sid[OAUTH_ID_SIZE];
	struct ctx c = CTX_INIT;

	return cookie(q, ed->sid_name, sid, sizeof(sid)) && !oauth_session_get(ed->o, sid, se, &c) &&
	       !se->mfa_pending;
}

/* A session whose password was checked but which still owes a TOTP code. */
static bool pending_session(struct http_req *q, struct auth_edge *ed, struct session *se)
{
	char sid[OAUTH_ID_SIZE];
	struct ctx c = CTX_INIT;

	return cookie(q, ed->sid_name, sid, sizeof(sid)) && !oauth_session_get(ed->o, sid, se, &c) &&
	       se->mfa_pending;
}

/* Does the form's csrf field match the session's? */
static bool csrf_ok(struct http_req *q, struct auth_edge *ed, const struct session *se)
{
	const char *t = http_req_form(q, "csrf");

	return same_origin(q, ed) && t && str_eq_ct(t, strlen(t), se->csrf, strlen(se->csrf));
}

/* ---- the sign-in page ---- */

static void login_page(struct http_req *q, struct auth_edge *ed, int status, const char *req,
		       const char *app, const char *username, const char *error)
{
	char tok[OAUTH_ID_SIZE];

	oauth_random(tok);
	set_cookie(q, ed, ed->csrf_name, tok, 1800);
	page(q, ed, status, "login",
	     json_pack("{s:s, s:s, s:s*, s:s*, s:s*, s:s*}", "title", "Sign in", "csrf", tok, "req", req,
		       "app", app, "username", username, "error", error),
	     NULL);
}

static void handle_signin_page(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;

	if (current_session(q, ed, &se)) {
		redirect(q, "/account");
		return;
	}
	login_page(q, ed, 200, NULL, NULL, NULL, NULL);
}

/* ---- authorization ---- */

static void continue_request(struct http_req *q, struct auth_edge *ed, struct oauth_authz *a);

/* Answer an authorization error: to the app when allowed, else a page. */
static void authz_fail(struct http_req *q, struct auth_edge *ed, const char *redirect_uri,
		       const char *state, const struct oauth_err *err)
{
	if (err->redirect && redirect_uri && *redirect_uri) {
		char *u = oauth_authz_error_url(ed->o, redirect_uri, state, err->error, err->description);
		redirect(q, u);
		free(u);
		return;
	}
	error_page(q, ed, 400, "This app cannot sign you in", err->description,
		   "Nothing was shared. Go back to the app and try again, or tell its developer.");
}

/*
 * A signed-in user refused by a rule outside the FHIR API: on record as
 * policy.denied with 'code'.  'asked' is the patient id the request named
 * (kept only when well-formed): the record's patient when 'theirs' (it
 * then shows in that patient's access history), else only an entity
 * Patient/ for the compliance log, so that a request anyone can make over
 * and over does not write lines into a stranger's history.  'client_id'
 * is kept only when it names a registered app.  A request another site
 * started (a link followed) is refused without a record in the user's
 * name.
 */
static void session_denied(struct http_req *q, struct auth_edge *ed, const struct session *se,
			   const char *client_id, const char *asked, bool theirs, const char *code)
{
	const char *site = http_req_header(q, "Sec-Fetch-Site");
	bool valid = asked && fhir_id_valid(asked);
	struct client cl;
	struct ctx ig = CTX_INIT;
	struct aud ae = {.type = AUDIT_POLICY_DENIED, .outcome = AUDIT_MINOR, .code = code,
			 .username = se->username, .role = user_role_name(se->role),
			 .fhir_user = se->fhir_user, .patient = valid && theirs ? asked : NULL,
			 .entity_type = valid && !theirs ? "Patient" : NULL,
			 .entity_id = valid && !theirs ? asked : NULL, .request_session = true};

	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return;
	client_init(&cl);
	if (client_id && !client_get(oauth_clients(ed->o), client_id, &cl, &ig))
		ae.client_id = client_id;
	auth_event(q, ed, &ae);
	client_release(&cl);
}

/* A request with a valid access token ('p') refused by such a rule. */
static void token_denied(struct http_req *q, struct auth_edge *ed, const struct principal *p,
			 const char *code)
{
	/* no patient: nothing of a record was asked for */
	struct aud ae = {.type = AUDIT_POLICY_DENIED, .outcome = AUDIT_MINOR, .code = code,
			 .username = p->username[0] ? p->username : NULL,
			 .role = p->uid ? user_role_name(p->role) : "system",
			 .fhir_user = p->fhir_user[0] ? p->fhir_user : NULL, .client_id = p->client_id,
			 .scopes = p->scope, .grant = p->grant_id[0] ? p->grant_id : NULL,
			 .token_id = p->jti};

	auth_event(q, ed, &ae);
}

/*
 * A signed-in user's authorization refused by a rule (an EHR launch made
 * for another user, a prompt=none that would need a question): on record
 * as oauth.authorize-denied with 'code', then the error to the app.
 */
static void authz_refuse(struct http_req *q, struct auth_edge *ed, const struct session *se,
			 const struct oauth_authz *a, const char *code, const struct oauth_err *err)
{
	struct aud ae = {.type = AUDIT_AUTHZ_DENIED, .outcome = AUDIT_MINOR, .code = code,
			 .username = se->username, .role = user_role_name(se->role),
			 .fhir_user = se->fhir_user, .client_id = a->client.client_id,
			 .patient = a->patient[0] ? a->patient : NULL, .scopes = a->scope,
			 .request_session = true};

	auth_event(q, ed, &ae);
	authz_fail(q, ed, a->redirect_uri, a->state, err);
}

/* A signed-in user's authorization granted, as asked or without a question (prompt=none). */
static void authz_granted(struct http_req *q, struct auth_edge *ed, const struct session *se,
			  const struct oauth_authz *a, const struct scope_set *granted)
{
	struct buf gs = BUF_INIT(8192);
	struct ctx ig = CTX_INIT;
	struct aud ae = {.type = AUDIT_AUTHZ_GRANTED, .username = se->username,
			 .role = user_role_name(se->role), .fhir_user = se->fhir_user,
			 .client_id = a->client.client_id, .patient = a->patient[0] ? a->patient : NULL,
			 .request_session = true};

	scope_format(granted, &gs, &ig);
	ae.scopes = gs.data;
	auth_event(q, ed, &ae);
	buf_release(&gs);
}

/* prompt=none that cannot be answered without the signed-in user: on record, then the error. */
static void silent_refuse(struct http_req *q, struct auth_edge *ed, const struct session *se,
			  struct oauth_authz *a, const char *error, const char *why)
{
	struct oauth_err err = {.redirect = true, .status = 400};

	oauth_seterr(&err, 400, error, "%s", why);
	authz_refuse(q, ed, se, a, error, &err);
	oauth_authz_drop(ed->o, a->id);
}

static void handle_authorize(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	bool post = http_req_method(q) == HTTP_POST;
	size_t n = post ? http_req_form_count(q) : http_req_query_count(q);
	const char **names = arena_zalloc(http_req_arena(q), (n + 1) * sizeof(char *));
	const char **values = arena_zalloc(http_req_arena(q), (n + 1) * sizeof(char *));
	struct oauth_authz a;
	struct oauth_err err;
	struct ctx c = CTX_INIT;

	for (size_t i = 0; i < n; i++) {
		if (post)
			http_req_form_at(q, i, &names[i], &values[i]);
		else
			http_req_query_at(q, i, &names[i], &values[i]);
	}
	if (oauth_authz_begin(ed->o, names, values, n, &a, &err, &c)) {
		if (!err.error) {
			server_error(q, &c);
			return;
		}
		authz_fail(q, ed, a.redirect_uri, a.state, &err);
		return;
	}
	continue_request(q, ed, &a);
	oauth_authz_release(&a);
}

/* Is 'patient' one of the records linked to the signed-in user (theirs, or one they care for)? */
static bool linked_to(struct auth_edge *ed, const struct session *se, const char *patient)
{
	struct ctx c = CTX_INIT;
	bool linked = false;

	return !user_linked(oauth_users(ed->o), se->uid, patient, &linked, &c) && linked;
}

/* May the signed-in user act for 'patient' in this request? */
static bool may_act_for(struct auth_edge *ed, const struct session *se, const char *patient)
{
	return se->role == USER_CLINICIAN || se->role == USER_ADMIN || linked_to(ed, se, patient);
}

/* "Given Family" of Patient/'id' into out[size] (the id when the record has no name). */
static void patient_name(struct auth_edge *ed, const char *id, char *out, size_t size)
{
	struct store_resource r;
	struct ctx c = CTX_INIT;
	json_t *p = NULL, *nm;

	str_copy(out, id, size);
	store_resource_init(&r);
	if (!store_get(ed->o->s, "Patient", id, 0, &r, &c) && !r.deleted &&
	    (p = json_loadb(r.json.data, r.json.len, 0, NULL)) &&
	    (nm = json_array_get(json_object_get(p, "name"), 0))) {
		const char *given = json_string_value(json_array_get(json_object_get(nm, "given"), 0));
		const char *family = json_string_value(json_object_get(nm, "family"));
		if (given || family)
			snprintf(out, size, "%s%s%s", given ? given : "", given && family ? " " : "",
				 family ? family : "");
	}
	json_decref(p);
	store_resource_release(&r);
}

static void picker_page(struct http_req *q, struct auth_edge *ed, struct oauth_authz *a,
			const struct session *se)
{
	struct store_user_patient links[USER_PATIENTS_MAX];
	struct ctx c = CTX_INIT;
	size_t n = 0;
	json_t *list = json_array();
	bool staff = se->role == USER_CLINICIAN || se->role == USER_ADMIN;
	char form_extra[1100];

	user_patients(oauth_users(ed->o), se->uid, links, USER_PATIENTS_MAX, &n, &c);
	for (size_t i = 0; i < n && i < USER_PATIENTS_MAX; i++) {
		char name[160];
		patient_name(ed, links[i].patient_id, name, sizeof(name));
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:b}", "id", links[i].patient_id,
						      "name", name, "relationship",
						      !strcmp(links[i].relationship, "self") ? "your own record" : "you act for them",
						      "first", i == 0));
	}
	origin_of(a->redirect_uri, form_extra + 1, sizeof(form_extra) - 1);
	form_extra[0] = ' ';
	page(q, ed, 200, "picker",
	     json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:b, s:s}", "title", "Whose record?", "app",
		       a->client.name, "csrf", se->csrf, "req", a->id, "patients", list, "staff",
		       staff, "signed_in", 1, "username", se->username),
	     form_extra);
}

/*
 * 'text' with each "your " turned into "their " (the record is someone
 * else's), into out[size]; cut short, never overrun, when it grows too long.
 */
static void their_words(const char *text, char *out, size_t size)
{
	struct buf b = BUF_INIT(4096);

	for (const char *p = text, *y; *p; p = y + 5) {
		if (!(y = strstr(p, "your "))) {
			buf_adds(&b, p);
			break;
		}
		buf_add(&b, p, (size_t)(y - p));
		buf_adds(&b, "their ");
	}
	str_copy(out, b.data, size);
	buf_release(&b);
}

/* The consent screen for request 'a'. */
static void consent_page(struct http_req *q, struct auth_edge *ed, struct oauth_authz *a,
			 const struct session *se)
{
	struct scope_set *ss = NULL;
	struct ctx c = CTX_INIT;
	json_t *items = json_array(), *flags = json_array();
	bool wildcard = false;
	char form_extra[1100];
	static const unsigned flag_list[] = {SCOPE_OPENID, SCOPE_FHIRUSER, SCOPE_PROFILE,
					     SCOPE_LAUNCH, SCOPE_LAUNCH_PATIENT,
					     SCOPE_LAUNCH_ENCOUNTER, SCOPE_OFFLINE, SCOPE_ONLINE};

	if (scope_parse(a->scope, &ss, &c)) {
		server_error(q, &c);
		json_decref(items);
		json_decref(flags);
		return;
	}
	bool other = a->patient[0] && strcmp(a->patient, se->fhir_user + (str_starts(se->fhir_user, "Patient/") ? 8 : 0));
	char pname[160] = "";

	if (other)
		patient_name(ed, a->patient, pname, sizeof(pname));
	for (size_t i = 0; i < scope_count(ss); i++) {
		const struct scope_res *r = scope_at(ss, i);
		char text[512], their[512];
		size_t ncat = 0, same = 0;
		const struct scope_category *cats = r->nq ? NULL : scope_categories(r->type, &ncat);
		json_t *cl = json_array();
		struct buf val = BUF_INIT(SCOPE_STRING_MAX);

		scope_describe(r, text, sizeof(text));
		if (other) { /* someone else's record: "your" is theirs */
			their_words(text, their, sizeof(their));
			str_copy(text, their, sizeof(text));
		}
		/* one type, several scopes: each box names its own scope */
		for (size_t k = 0; k < scope_count(ss); k++)
			same += !strcmp(scope_at(ss, k)->type, r->type);
		if (same > 1)
			scope_res_format(r, &val);
		else
			buf_adds(&val, r->type);
		for (size_t k = 0; k < ncat; k++)
			json_array_append_new(cl, json_pack("{s:s, s:s, s:s}", "type", r->type, "value",
							    cats[k].value, "label", cats[k].label));
		if (!strcmp(r->type, "*"))
			wildcard = true;
		json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:o, s:b}", "type", r->type,
						       "value", val.err ? r->type : val.data, "text", text,
						       "categories", cl, "has_categories", ncat > 0));
		buf_release(&val);
	}
	for (size_t k = 0; k < sizeof(flag_list) / sizeof(flag_list[0]); k++)
		if ((scope_flags(ss) & flag_list[k]) && scope_describe_flag(flag_list[k]))
			json_array_append_new(flags, json_string(scope_describe_flag(flag_list[k])));
	origin_of(a->redirect_uri, form_extra + 1, sizeof(form_extra) - 1);
	form_extra[0] = ' ';
	page(q, ed, 200, "consent",
	     json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:o, s:b, s:b, s:b, s:s*, s:b, s:s}", "title",
		       "Allow this app?", "app", a->client.name, "csrf", se->csrf, "req", a->id,
		       "items", items, "has_flags", json_array_size(flags) > 0, "flags", flags,
		       "wildcard", wildcard, "offline",
		       (scope_flags(ss) & (SCOPE_OFFLINE | SCOPE_ONLINE)) != 0, "online_only",
		       (scope_flags(ss) & (SCOPE_OFFLINE | SCOPE_ONLINE)) == SCOPE_ONLINE,
		       "patient_name",
		       other ? pname : NULL,
		       "signed_in", 1, "username", se->username),
	     form_extra);
	scope_set_free(ss);
}

/* Carry a stored request on: sign-in, then patient, then consent. */
static void continue_request(struct http_req *q, struct auth_edge *ed, struct oauth_authz *a)
{
	struct session se;
	bool have = current_session(q, ed, &se);
	int64_t now = clock_now_ms();
	struct oauth_err err = {.redirect = true, .status = 400};

	if (have && a->max_age >= 0 && now - se.strong_auth > a->max_age * 1000)
		have = false;
	if (have && a->prompt_login && se.strong_auth < a->created)
		have = false;
	if (!have) {
		if (a->prompt_none) {
			oauth_seterr(&err, 400, "login_required", "the user is not signed in");
			err.redirect = true;
			authz_fail(q, ed, a->redirect_uri, a->state, &err);
			oauth_authz_drop(ed->o, a->id);
			return;
		}
		login_page(q, ed, 200, a->id, a->client.name, NULL, NULL);
		return;
	}
	if (a->launch_uid && a->launch_uid != se.uid) {
		oauth_seterr(&err, 400, "invalid_request", "the launch was made for another user");
		authz_refuse(q, ed, &se, a, "launch-other-user", &err);
		oauth_authz_drop(ed->o, a->id);
		return;
	}
	if (a->patient[0] && !a->launch_hash[0] && !may_act_for(ed, &se, a->patient))
		a->patient[0] = '\0'; /* chosen in another session: this user chooses anew */
	if (a->prompt_none) {
		/* silent: only what the user already allowed this app, and still allows */
		struct scope_set *granted = NULL;
		struct ctx c = CTX_INIT;
		int64_t dur = 0;
		char *url = NULL;
		bool had_patient = a->patient[0] != '\0';

		if (!oauth_authz_prior(ed->o, a, &se, &granted, &dur, &c) && !had_patient &&
		    a->patient[0] && !may_act_for(ed, &se, a->patient)) {
			/* the earlier grant's patient: not one this user may act for any more */
			a->patient[0] = '\0';
			scope_set_free(granted);
			granted = NULL;
		} else if (granted && !oauth_authz_approve(ed->o, a, &se, granted, dur, &url, &c)) {
			authz_granted(q, ed, &se, a, granted);
			scope_set_free(granted);
			redirect(q, url);
			free(url);
			return;
		}
		scope_set_free(granted);
	}
	if (oauth_authz_needs_patient(a)) {
		struct store_user_patient links[2];
		struct ctx c = CTX_INIT;
		size_t n = 0;

		if (se.role == USER_PATIENT && !user_patients(oauth_users(ed->o), se.uid, links, 2, &n, &c) &&
		    n == 1) {
			/* one record only: no question to ask */
			oauth_authz_set_patient(ed->o, a, links[0].patient_id, &c);
		} else if (a->prompt_none) {
			silent_refuse(q, ed, &se, a, "interaction_required", "a patient must be chosen");
			return;
		} else {
			picker_page(q, ed, a, &se);
			return;
		}
	}
	if (a->prompt_none) {
		silent_refuse(q, ed, &se, a, "consent_required", "the user has not yet allowed this app");
		return;
	}
	consent_page(q, ed, a, &se);
}

static void handle_continue(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct oauth_authz a;
	struct ctx c = CTX_INIT;

	if (oauth_authz_load(ed->o, http_req_query(q, "req"), &a, &c)) {
		error_page(q, ed, 400, "This request has expired", c.msg, NULL);
		return;
	}
	continue_request(q, ed, &a);
	oauth_authz_release(&a);
}

static void handle_login(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	const char *req = http_req_form(q, "req"), *user = http_req_form(q, "username");
	const char *pw = http_req_form(q, "password"), *tok = http_req_form(q, "csrf");
	char want[OAUTH_ID_SIZE], sid[OAUTH_ID_SIZE];
	struct oauth_authz a;
	struct session se;
	struct user u;
	struct ctx c = CTX_INIT;
	int64_t retry = 0;
	const char *app = NULL;
	enum err e;

	memset(&a, 0, sizeof(a));
	if (req && *req && !oauth_authz_load(ed->o, req, &a, &c))
		app = a.client.name;
	else if (req && *req) {
		error_page(q, ed, 400, "This sign-in has expired", c.msg,
			   "Go back to the app and start again.");
		return;
	}
	if (!same_origin(q, ed) || !tok || !cookie(q, ed->csrf_name, want, sizeof(want)) ||
	    !str_eq_ct(tok, strlen(tok), want, strlen(want))) {
		login_page(q, ed, 403, req, app, NULL,
			   "This form has expired or was sent from another site. Please sign in again.");
		goto out;
	}
	ctx_clear(&c);
	e = oauth_signin(ed->o, user, pw, http_req_client_addr(q), &u, &retry, &c);
	if (e) {
		char norm[USER_NAME_MAX + 1];
		struct ctx ig = CTX_INIT;
		struct aud ae = {.type = AUDIT_SIGNIN_FAILED, .outcome = AUDIT_MINOR,
				 .code = e == ERR_BUSY ? "throttled" : e == ERR_FORBIDDEN ? "account-locked-or-disabled"
					 : e == ERR_UNAUTHORIZED ? "wrong-credentials" : "error",
				 .client_id = app ? a.client.client_id : NULL};
		char hashed[AUDIT_VALUE_HASH_SIZE];
		struct user who;
		if (user && !user_name_normalize(user, norm, &ig)) {
			/*
			 * A name that is no account's may be a password typed in the
			 * wrong field: the record keeps a keyed hash of it, equal for
			 * equal names, so that repeated tries still show
			 */
			if (!user_get_by_name(oauth_users(ed->o), norm, &who, &ig))
				ae.username = norm;
			else if (!audit_hash_value(oauth_audit(ed->o), "signin-name", norm, hashed, &ig))
				ae.username = hashed;
		}
		auth_event(q, ed, &ae);
	}
	if (e == ERR_BUSY && retry > 0) {
		char ra[24];
		snprintf(ra, sizeof(ra), "%lld", (long long)retry);
		http_resp_header(q, "Retry-After", ra);
		login_page(q, ed, 429, req, app, user, c.msg);
		goto out;
	}
	if (e == ERR_UNAUTHORIZED || e == ERR_FORBIDDEN) {
		login_page(q, ed, 401, req, app, user,
			   e == ERR_FORBIDDEN ? "This account cannot sign in right now. Contact support."
					      : "Wrong username or password.");
		goto out;
	}
	if (e) {
		error_page(q, ed, 503, "Sign-in is not available", "Please try again in a moment.", NULL);
		goto out;
	}
	ctx_clear(&c);
	if ((e = oauth_session_start(ed->o, &u, u.mfa_enrolled, sid, &se, &c))) {
		struct aud ae = {.type = AUDIT_SIGNIN_FAILED, .outcome = AUDIT_MINOR,
				 .code = e == ERR_CONFLICT ? "account-changed" : "error", .username = u.username,
				 .role = user_role_name(u.role), .fhir_user = u.fhir_user,
				 .client_id = app ? a.client.client_id : NULL};
		auth_event(q, ed, &ae);
		if (e == ERR_CONFLICT) {
			login_page(q, ed, 409, req, app, user,
				   "Your account changed while you were signing in. Please sign in again.");
		} else {
			log_msg(LOG_ERROR, "sign-in: %s", c.msg);
			error_page(q, ed, 503, "Sign-in is not available", "Please try again in a moment.", NULL);
		}
		goto out;
	}
	{
		struct aud ae = {.type = AUDIT_SIGNIN, .code = u.mfa_enrolled ? "mfa-pending" : NULL,
				 .username = u.username, .role = user_role_name(u.role),
				 .fhir_user = u.fhir_user, .client_id = app ? a.client.client_id : NULL,
				 .session_id = sid};
		auth_event(q, ed, &ae);
	}
	set_cookie(q, ed, ed->sid_name, sid, -1);
	set_cookie(q, ed, ed->csrf_name, "", 0);
	if (u.mfa_enrolled) {
		char url[256];
		snprintf(url, sizeof(url), "/oauth/mfa%s%s", app ? "?req=" : "", app ? a.id : "");
		redirect(q, url);
	} else if (app) {
		char url[256];
		snprintf(url, sizeof(url), "/oauth/continue?req=%s", a.id);
		redirect(q, url);
	} else {
		redirect(q, "/account");
	}
out:
	oauth_authz_release(&a);
}

/* Load the request named by the form and the session that acts on it (answers on failure). */
static bool form_request(struct http_req *q, struct auth_edge *ed, struct oauth_authz *a,
			 struct session *se)
{
	struct ctx c = CTX_INIT;

	memset(a, 0, sizeof(*a));
	if (!current_session(q, ed, se)) {
		error_page(q, ed, 401, "You are signed out", "Your session has ended.",
			   "Go back to the app and start again.");
		return false;
	}
	if (!csrf_ok(q, ed, se)) {
		error_page(q, ed, 403, "This form has expired",
			   "The form was sent from another site or is too old.",
			   "Go back to the app and start again.");
		return false;
	}
	if (oauth_authz_load(ed->o, http_req_form(q, "req"), a, &c)) {
		error_page(q, ed, 400, "This request has expired", c.msg, NULL);
		return false;
	}
	return true;
}

static void handle_patient(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct oauth_authz a;
	struct session se;
	struct ctx c = CTX_INIT;
	const char *p = http_req_form(q, "patient_id");

	if (!form_request(q, ed, &a, &se))
		return;
	if (a.launch_hash[0]) {
		/* an EHR launch fixed the patient (and encounter): nothing to pick */
		continue_request(q, ed, &a);
		goto out;
	}
	if (!p || !*p)
		p = http_req_form(q, "patient");
	if (!p || !*p || strlen(p) >= OAUTH_REF_SIZE || !may_act_for(ed, &se, p)) {
		if (p && *p)
			session_denied(q, ed, &se, a.client.client_id, p, true, "not-linked");
		picker_page(q, ed, &a, &se);
		goto out;
	}
	if (oauth_authz_set_patient(ed->o, &a, p, &c)) {
		server_error(q, &c);
		goto out;
	}
	consent_page(q, ed, &a, &se);
out:
	oauth_authz_release(&a);
}

/* Was the box of record scope 'r' ('written' as a scope) left ticked? */
static bool ticked(struct http_req *q, const struct scope_res *r, const char *written)
{
	for (size_t k = 0; k < http_req_form_count(q); k++) {
		const char *n, *v;

		http_req_form_at(q, k, &n, &v);
		/* the resource type covers every scope of that type; a scope, itself */
		if (!strcmp(n, "type") && (!strcmp(v, r->type) || !strcmp(v, written)))
			return true;
	}
	return false;
}

/*
 * Narrow *set to the record scopes whose boxes the consent form left
 * ticked (flags are decided elsewhere).  Each scope is judged on its own,
 * so withholding one scope of a type keeps the others only if ticked.
 */
static enum err ticked_scopes(struct http_req *q, struct scope_set **set, struct ctx *c)
{
	struct buf all = BUF_INIT(SCOPE_STRING_MAX), kept = BUF_INIT(SCOPE_STRING_MAX);
	struct scope_set *out = NULL;
	enum err e;

	if ((e = scope_format(*set, &all, c)))
		goto out;
	for (char *tok = all.data, *end; *tok; tok = end) {
		struct scope_set *one = NULL;
		struct ctx ig = CTX_INIT;
		bool keep = true;

		end = tok + strcspn(tok, " ");
		if (*end)
			*end++ = '\0';
		if (!*tok)
			continue;
		if (!scope_parse(tok, &one, &ig) && scope_count(one) == 1)
			keep = ticked(q, scope_at(one, 0), tok);
		scope_set_free(one);
		if (keep) {
			if (kept.len)
				buf_addch(&kept, ' ');
			buf_adds(&kept, tok);
		}
	}
	if (kept.err) {
		e = ctx_errorf(c, kept.err, "the allowed scopes are too long");
		goto out;
	}
	if ((e = scope_parse(kept.data, &out, c)))
		goto out;
	scope_set_free(*set);
	*set = out;
out:
	buf_release(&all);
	buf_release(&kept);
	return e;
}

static void handle_decide(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct oauth_authz a;
	struct session se;
	struct ctx c = CTX_INIT;
	struct scope_set *asked = NULL, *granted = NULL;
	const char *action = http_req_form(q, "action"), *dur = http_req_form(q, "duration");
	size_t nf = http_req_form_count(q), nc = 0;
	struct scope_choice *choices = arena_zalloc(http_req_arena(q), (nf + 8) * sizeof(*choices));
	const char **catv = arena_zalloc(http_req_arena(q), (nf + 8) * sizeof(char *));
	int64_t duration = 0;
	unsigned drop = 0;
	char *url = NULL;
	struct oauth_err err = {.redirect = true, .status = 400};

	if (!form_request(q, ed, &a, &se))
		return;
	if (a.launch_uid && a.launch_uid != se.uid) {
		oauth_seterr(&err, 400, "invalid_request", "the launch was made for another user");
		authz_refuse(q, ed, &se, &a, "launch-other-user", &err);
		goto out;
	}
	if (!action || strcmp(action, "allow")) {
		struct aud ae = {.type = AUDIT_AUTHZ_DENIED, .outcome = AUDIT_MINOR, .code = "access_denied",
				 .username = se.username, .role = user_role_name(se.role),
				 .fhir_user = se.fhir_user, .client_id = a.client.client_id,
				 .patient = a.patient[0] ? a.patient : NULL, .scopes = a.scope,
				 .request_session = true};
		auth_event(q, ed, &ae);
		oauth_seterr(&err, 400, "access_denied", "the user denied access");
		oauth_authz_drop(ed->o, a.id);
		authz_fail(q, ed, a.redirect_uri, a.state, &err);
		goto out;
	}
	if (oauth_authz_needs_patient(&a) || (a.patient[0] && !a.launch_hash[0] && !may_act_for(ed, &se, a.patient))) {
		picker_page(q, ed, &a, &se);
		goto out;
	}
	if (scope_parse(a.scope, &asked, &c) || ticked_scopes(q, &asked, &c))
		goto fail;
	/* category choices: "Type system|code" */
	for (size_t k = 0; k < nf; k++) {
		const char *n, *v, *sp;
		size_t j;
		http_req_form_at(q, k, &n, &v);
		if (strcmp(n, "cat") || !(sp = strchr(v, ' ')))
			continue;
		char *type = arena_strndup(http_req_arena(q), v, (size_t)(sp - v));
		for (j = 0; j < nc; j++)
			if (!strcmp(choices[j].type, type))
				break;
		if (j == nc)
			choices[nc++].type = type;
	}
	{
		/* gather each chosen type's categories contiguously in catv */
		size_t off = 0;
		for (size_t j = 0; j < nc; j++) {
			choices[j].categories = catv + off;
			choices[j].n = 0;
			for (size_t k = 0; k < nf; k++) {
				const char *n, *v, *sp;
				http_req_form_at(q, k, &n, &v);
				if (strcmp(n, "cat") || !(sp = strchr(v, ' ')))
					continue;
				if ((size_t)(sp - v) == strlen(choices[j].type) &&
				    !strncmp(v, choices[j].type, (size_t)(sp - v))) {
					catv[off++] = sp + 1;
					choices[j].n++;
				}
			}
		}
	}
	if (!http_req_form(q, "offline"))
		drop |= SCOPE_OFFLINE | SCOPE_ONLINE;
	if (dur && str_to_i64(dur, 0, 10LL * 366 * 86400, &duration))
		duration = 31536000;
	if (!dur)
		duration = (scope_flags(asked) & (SCOPE_OFFLINE | SCOPE_ONLINE)) ? 31536000 : 0;
	if (drop)
		duration = 0;
	if (!(drop & SCOPE_OFFLINE) && !(scope_flags(asked) & (SCOPE_OFFLINE | SCOPE_ONLINE)))
		duration = 0;
	if (scope_restrict(asked, drop, NULL, 0, choices, nc, &granted, &c))
		goto fail;
	/* a grant without offline access ends with its session's tokens: one day at most */
	if (!(scope_flags(granted) & (SCOPE_OFFLINE | SCOPE_ONLINE)))
		duration = 86400;
	if (oauth_authz_approve(ed->o, &a, &se, granted, duration, &url, &c))
		goto fail;
	authz_granted(q, ed, &se, &a, granted);
	redirect(q, url);
	free(url);
	goto out;
fail:
	server_error(q, &c);
out:
	scope_set_free(asked);
	scope_set_free(granted);
	oauth_authz_release(&a);
}

/* ---- token, introspection, revocation, userinfo ---- */

/*
 * Failed requests to the token, introspection and revocation endpoints
 * are counted per client address (an IPv6 address by its /64, which one
 * host usually holds whole) and, for the apps that have a secret, per app:
 * an address with token_fail_limit failures in the current minute, or an
 * app with ten times as many (which takes several addresses, since an
 * address is refused before it can fail more), is refused with 429 until
 * the minute ends.  A public app's id is not counted: anyone may send it,
 * and its users would be locked out.
 */
static void addr_key(struct http_req *q, char *out, size_t size)
{
	const char *a = http_req_client_addr(q);
	unsigned char v6[16];

	if (a && strchr(a, ':') && inet_pton(AF_INET6, a, v6) == 1)
		snprintf(out, size, "%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", v6[0], v6[1], v6[2],
			 v6[3], v6[4], v6[5], v6[6], v6[7]);
	else
		str_copy(out, a ? a : "", size);
}

static int64_t fail_now(void)
{
	return clock_mono_us() / 1000;
}

/*
 * Answer 429 (and return true) while 'client' is refused, or, with
 * client NULL, the request's address (checked once, on entry: client_of()
 * asks only about the app).
 */
static bool refused(struct http_req *q, struct auth_edge *ed, const char *client)
{
	struct oauth_err err = {.error = "temporarily_unavailable", .status = 429};
	char key[64], ra[24];
	int64_t wait;

	if (client) {
		wait = *client ? limit_refused_ms(ed->client_fails, client, fail_now()) : 0;
	} else {
		addr_key(q, key, sizeof(key));
		wait = limit_refused_ms(ed->addr_fails, key, fail_now());
	}
	if (wait <= 0)
		return false;
	snprintf(ra, sizeof(ra), "%lld", (long long)((wait + 999) / 1000));
	snprintf(err.description, sizeof(err.description),
		 "too many failed requests: try again in %s s", ra);
	http_resp_header(q, "Retry-After", ra);
	oauth_error(q, &err);
	return true;
}

/* Count a failure of the address (and of 'client'); the one that reaches a limit is audited. */
static void failed(struct http_req *q, struct auth_edge *ed, const char *client)
{
	char key[64];
	int64_t now = fail_now();

	addr_key(q, key, sizeof(key));
	if (limit_fail(ed->addr_fails, key, now)) {
		struct aud ae = {.type = AUDIT_POLICY_DENIED, .outcome = AUDIT_MINOR,
				 .code = "address-throttled"};
		auth_event(q, ed, &ae);
	}
	if (client && *client && limit_fail(ed->client_fails, client, now)) {
		struct aud ae = {.type = AUDIT_POLICY_DENIED, .outcome = AUDIT_MINOR,
				 .code = "client-throttled", .client_id = client};
		auth_event(q, ed, &ae);
	}
}

/*
 * Authenticate the client of a token-endpoint style request (answers on
 * failure).  While its id is refused (its address was checked on entry),
 * a right secret gets the same 429 as a wrong one: the answer tells a
 * guesser nothing.
 */
static bool client_of(struct http_req *q, struct auth_edge *ed, struct client *cl)
{
	struct client_auth_in in = {
		.authorization = http_req_header(q, "Authorization"),
		.client_id = http_req_form(q, "client_id"),
		.client_secret = http_req_form(q, "client_secret"),
		.client_assertion_type = http_req_form(q, "client_assertion_type"),
		.client_assertion = http_req_form(q, "client_assertion"),
		.token_url = ed->o->token_url,
		.now_ms = clock_now_ms(),
	};
	struct client_auth_err cerr;
	struct oauth_err err;
	struct ctx c = CTX_INIT;

	memset(&cerr, 0, sizeof(cerr));
	if (client_authenticate(oauth_clients(ed->o), &in, cl, &cerr, &c)) {
		if (!cerr.error) {
			server_error(q, &c);
			return false;
		}
		if (refused(q, ed, cerr.secret_client))
			return false;
		if (cerr.status == 401)
			failed(q, ed, cerr.secret_client);
		memset(&err, 0, sizeof(err));
		err.error = cerr.error;
		err.status = cerr.status;
		err.www_basic = cerr.www_basic;
		str_copy(err.description, cerr.description, sizeof(err.description));
		oauth_error(q, &err);
		return false;
	}
	if (refused(q, ed, cl->kind == CLIENT_SYMMETRIC ? cl->client_id : "")) {
		client_release(cl);
		return false;
	}
	return true;
}

/* A token-endpoint style request must be a form POST. */
static bool form_post(struct http_req *q)
{
	struct oauth_err err = {.error = "invalid_request", .status = 400};

	if (http_req_is_form(q))
		return true;
	str_copy(err.description, "send the parameters as an application/x-www-form-urlencoded body",
		 sizeof(err.description));
	oauth_error(q, &err);
	return false;
}

static void handle_token(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct oauth_token_req r;
	struct oauth_err err;
	struct oauth_who who;
	struct client cl;
	struct buf out = BUF_INIT(1 << 16);
	struct ctx c = CTX_INIT;
	static const char *const once[] = {"grant_type", "code", "redirect_uri", "code_verifier",
					   "refresh_token", "scope", "client_id", "client_assertion",
					   NULL};

	cors(q, ed, false);
	if (!form_post(q) || refused(q, ed, NULL))
		return;
	client_init(&cl);
	if (!client_of(q, ed, &cl))
		goto out;
	memset(&r, 0, sizeof(r));
	memset(&err, 0, sizeof(err));
	r.grant_type = http_req_form(q, "grant_type");
	r.code = http_req_form(q, "code");
	r.redirect_uri = http_req_form(q, "redirect_uri");
	r.code_verifier = http_req_form(q, "code_verifier");
	r.refresh_token = http_req_form(q, "refresh_token");
	r.scope = http_req_form(q, "scope");
	r.client_id = http_req_form(q, "client_id");
	for (const char *const *p = once; *p; p++)
		if (form_count_of(q, *p) > 1)
			r.repeated = true;
	if (oauth_token(ed->o, &cl, &r, &out, &err, &who, &c)) {
		struct aud ae = {.type = r.grant_type && !strcmp(r.grant_type, "refresh_token") ? AUDIT_TOKEN_REFRESHED : AUDIT_TOKEN_ISSUED,
				 .outcome = AUDIT_MINOR, .code = err.error ? err.error : "server_error",
				 .client_id = cl.client_id};
		aud_who(&ae, &who);
		auth_event(q, ed, &ae);
		if (who.revoked) {
			/* a replayed code or refresh token ended its whole grant */
			struct aud rv = {.type = AUDIT_TOKEN_REVOKED, .code = "replay-detected",
					 .client_id = cl.client_id};
			aud_who(&rv, &who);
			auth_event(q, ed, &rv);
		}
		if (!err.error) {
			server_error(q, &c);
		} else {
			/* a wrong or spent code or refresh token: a guess, perhaps */
			if (!strcmp(err.error, "invalid_grant"))
				failed(q, ed, NULL);
			oauth_error(q, &err);
		}
		goto out;
	}
	{
		/* the access token issued: its id (jti, hashed) ties it to the FHIR records it makes */
		json_t *j = json_loadb(out.data, out.len, 0, NULL);
		struct aud ae = {.type = !strcmp(r.grant_type, "refresh_token") ? AUDIT_TOKEN_REFRESHED : AUDIT_TOKEN_ISSUED,
				 .client_id = cl.client_id};
		aud_who(&ae, &who);
		if (!strcmp(r.grant_type, "client_credentials"))
			ae.role = "system"; /* a backend service, as its FHIR records name it */
		ae.patient = json_string_value(json_object_get(j, "patient"));
		ae.scopes = json_string_value(json_object_get(j, "scope"));
		auth_event(q, ed, &ae);
		json_decref(j);
	}
	no_store(q);
	http_resp_buf(q, 200, JSON_CT, &out);
out:
	client_release(&cl);
	buf_release(&out);
}

static void handle_token_get(struct http_req *q, void *arg)
{
	struct oauth_err err = {.error = "invalid_request", .status = 400};

	(void)arg;
	str_copy(err.description, "the token endpoint takes POST", sizeof(err.description));
	oauth_error(q, &err);
}

/* The bearer token of the Authorization header (in buf when trimmed), or NULL. */
static const char *bearer(struct http_req *q, char *buf, size_t size)
{
	return oauth_bearer(http_req_header(q, "Authorization"), buf, size);
}

static void handle_introspect(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct buf out = BUF_INIT(1 << 16);
	struct ctx c = CTX_INIT;
	struct client cl;
	char tb[OAUTH_BEARER_MAX];
	const char *bt = bearer(q, tb, sizeof(tb));
	char cl_id[CLIENT_ID_MAX + 1] = "";
	bool ok = false, any = false;  /* any: may introspect every client's tokens */
	json_t *res;

	cors(q, ed, false);
	if (!form_post(q) || refused(q, ed, NULL))
		goto out;
	client_init(&cl);
	if (bt) {
		/* an active access token of a registered app may introspect */
		struct principal p;
		if (!oauth_verify(ed->o, bt, &p, &c)) {
			ok = true;
			/* a backend service's token may introspect any token; an app's user token only its own */
			any = p.uid == 0;
			str_copy(cl_id, p.client_id, sizeof(cl_id));
			oauth_principal_release(ed->o, &p);
		} else {
			struct oauth_err err = {.error = "invalid_token", .status = 401};
			failed(q, ed, NULL);
			str_copy(err.description, "the bearer token is not valid", sizeof(err.description));
			oauth_error(q, &err);
			goto out;
		}
	} else if (!client_of(q, ed, &cl)) {
		goto out;
	} else if (cl.kind == CLIENT_PUBLIC) {
		struct oauth_err err = {.error = "invalid_client", .status = 401};
		str_copy(err.description, "introspection needs a confidential client or a bearer token",
			 sizeof(err.description));
		oauth_error(q, &err);
		client_release(&cl);
		goto out;
	} else {
		ok = true;
		any = true; /* an authenticated confidential client (a resource server, RFC 7662) */
		str_copy(cl_id, cl.client_id, sizeof(cl_id));
	}
	client_release(&cl);
	ctx_clear(&c);
	if (ok && oauth_introspect(ed->o, http_req_form(q, "token"), &out, &c)) {
		server_error(q, &c);
		goto out;
	}
	/* an app's user token learns only about its own app's tokens */
	if (!any && (res = json_loadb(out.data, out.len, 0, NULL))) {
		const char *tc = json_string_value(json_object_get(res, "client_id"));
		if (json_is_true(json_object_get(res, "active")) && (!tc || strcmp(tc, cl_id))) {
			buf_reset(&out);
			buf_adds(&out, "{\"active\":false}");
		}
		json_decref(res);
	}
	{
		/* which token (its id hashed) and whose record it opens, as the answer told */
		json_t *j = json_loadb(out.data, out.len, 0, NULL);
		struct aud ae = {.type = AUDIT_TOKEN_INTROSPECTED,
				 .code = json_is_true(json_object_get(j, "active")) ? NULL : "inactive",
				 .client_id = cl_id[0] ? cl_id : NULL,
				 .patient = json_string_value(json_object_get(j, "patient")),
				 .token_id = json_string_value(json_object_get(j, "jti"))};
		auth_event(q, ed, &ae);
		json_decref(j);
	}
	no_store(q);
	http_resp_buf(q, 200, JSON_CT, &out);
out:
	buf_release(&out);
}

static void handle_revoke(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct client cl;
	struct oauth_who who;
	struct ctx c = CTX_INIT;
	enum err e;

	cors(q, ed, false);
	if (!form_post(q) || refused(q, ed, NULL))
		return;
	client_init(&cl);
	if (!client_of(q, ed, &cl))
		return;
	e = oauth_revoke(ed->o, &cl, http_req_form(q, "token"), &who, &c);
	{
		struct aud ae = {.type = AUDIT_TOKEN_REVOKED, .outcome = e ? AUDIT_MINOR : AUDIT_OK,
				 .code = e == ERR_FORBIDDEN ? "unauthorized_client" : e ? "error"
					 : !who.grant[0] ? "unknown-token" : who.revoked ? "grant" : "access-token",
				 .client_id = cl.client_id};
		aud_who(&ae, &who);
		auth_event(q, ed, &ae);
	}
	client_release(&cl);
	if (e == ERR_FORBIDDEN) {
		struct oauth_err err = {.error = "unauthorized_client", .status = 400};
		str_copy(err.description, c.msg, sizeof(err.description));
		oauth_error(q, &err);
		return;
	}
	if (e) {
		server_error(q, &c);
		return;
	}
	no_store(q);
	http_resp_bytes(q, 200, JSON_CT, "{}", 2);
}

static void handle_userinfo(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	char tb[OAUTH_BEARER_MAX];
	const char *bt = bearer(q, tb, sizeof(tb));
	struct principal p;
	struct buf out = BUF_INIT(1 << 14);
	struct ctx c = CTX_INIT;

	cors(q, ed, false);
	if (!bt || oauth_verify(ed->o, bt, &p, &c)) {
		no_store(q);
		http_resp_header(q, "WWW-Authenticate", bt ? "Bearer error=\"invalid_token\"" : "Bearer");
		http_resp_empty(q, 401);
		return;
	}
	if (oauth_userinfo(ed->o, &p, &out, &c)) {
		token_denied(q, ed, &p, "insufficient-scope");
		no_store(q);
		http_resp_header(q, "WWW-Authenticate", "Bearer error=\"insufficient_scope\", scope=\"openid\"");
		static const char b403[] = "{\"error\":\"insufficient_scope\"}";
		http_resp_bytes(q, 403, JSON_CT, b403, sizeof(b403) - 1);
	} else {
		no_store(q);
		http_resp_buf(q, 200, JSON_CT, &out);
	}
	oauth_principal_release(ed->o, &p);
	buf_release(&out);
}

/* ---- account, sign-out, launch ---- */

struct grants_view {
	json_t *list;
	const char *csrf;
	struct auth_edge *ed;
};

static int add_grant(void *arg, const struct store_item *it)
{
	struct grants_view *gv = arg;
	json_t *j = oauth_item_json(it);
	char until[64], when[32];
	int64_t now = clock_now_ms();

	if (!j)
		return 0;
	if (it->state == STORE_ITEM_LIVE && (it->expires == 0 || it->expires > now)) {
		if (it->expires) {
			clock_format_instant(it->expires, when);
			snprintf(until, sizeof(until), "until %.10s", when);
		} else {
			str_copy(until, "until you remove it", sizeof(until));
		}
		struct client cl;
		struct ctx ig = CTX_INIT;
		char cname[CLIENT_NAME_MAX + 1];

		str_copy(cname, it->grp, sizeof(cname));
		if (!client_get(oauth_clients(gv->ed->o), it->grp, &cl, &ig))
			str_copy(cname, cl.name, sizeof(cname));
		client_release(&cl);
		json_array_append_new(gv->list,
				      json_pack("{s:s, s:s, s:s, s:O?, s:O?, s:s}", "id", it->key, "client",
						cname, "until", until, "patient",
						json_object_get(j, "patient"), "scope",
						json_object_get(j, "scope"), "csrf", gv->csrf));
	}
	json_decref(j);
	return 0;
}

struct apps_view {
	json_t *list;
	struct buf origins;          /* launch URL origins, for the page's form-action */
};

static int add_app(void *arg, const struct client *cl)
{
	struct apps_view *av = arg;
	char o[600];

	if (cl->launch_url[0] && !cl->disabled) {
		json_array_append_new(av->list, json_pack("{s:s, s:s}", "id", cl->client_id, "name", cl->name));
		origin_of(cl->launch_url, o + 1, sizeof(o) - 1);
		o[0] = ' ';
		if (!strstr(av->origins.data, o))
			buf_adds(&av->origins, o);
	}
	return 0;
}

static const char password_changed[] =
	"Your password is changed. Everywhere else you were signed in, you are now signed out. "
	"Apps you allowed keep their access: remove any you do not recognise below.";
static const char password_changed_apps[] =
	"Your password is changed. Everywhere else you were signed in, you are now signed out, "
	"and every app you had allowed must ask for your permission again.";

static void handle_account(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct ctx c = CTX_INIT;
	struct grants_view gv;
	struct apps_view av = {json_array(), BUF_INIT(1 << 14)};
	json_t *apps = av.list;
	const char *done;
	bool staff, mfa = false;

	if (!current_session(q, ed, &se)) {
		json_decref(apps);
		buf_release(&av.origins);
		redirect(q, "/signin");
		return;
	}
	staff = se.role == USER_CLINICIAN || se.role == USER_ADMIN;
	{
		struct user u;
		struct ctx ig = CTX_INIT;
		mfa = !user_get_by_name(oauth_users(ed->o), se.username, &u, &ig) && u.mfa_enrolled;
	}
	gv.list = json_array();
	gv.csrf = se.csrf;
	gv.ed = ed;
	store_item_list(ed->o->s, NS_GRANT, se.uid, NULL, add_grant, &gv, &c);
	if (staff)
		client_list(oauth_clients(ed->o), add_app, &av, &c);
	/* after POST /account/password (a fixed text: nothing of the query is shown) */
	done = http_req_query(q, "changed");
	page(q, ed, 200, "account",
	     json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:b, s:b, s:b, s:b, s:s*}", "title", "Your account",
		       "username", se.username, "role", user_role_name(se.role), "csrf", se.csrf,
		       "grants", gv.list, "apps", apps, "staff", staff, "signed_in", 1, "mfa", mfa,
		       "record", audit_dir && (se.role == USER_PATIENT || se.role == USER_CAREGIVER),
		       "notice", !done ? NULL
				 : !strcmp(done, "password")	 ? password_changed
				 : !strcmp(done, "password-apps") ? password_changed_apps
								   : NULL),
	     /* "Open app" ends in a redirect to the app's launch URL */
	     av.origins.len ? av.origins.data : NULL);
	buf_release(&av.origins);
}

static void handle_account_revoke(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct store_item it;
	struct ctx c = CTX_INIT;
	const char *gid = http_req_form(q, "grant");

	if (!current_session(q, ed, &se) || !csrf_ok(q, ed, &se)) {
		error_page(q, ed, 403, "This form has expired", "Please sign in and try again.", NULL);
		return;
	}
	store_item_init(&it);
	/* only the user's own grants */
	if (gid && !store_item_get(ed->o->s, NS_GRANT, gid, &it, &c) && it.uid == se.uid &&
	    !oauth_grant_revoke(ed->o, gid, &c)) {
		struct aud ae = {.type = AUDIT_TOKEN_REVOKED, .code = "removed-by-user",
				 .username = se.username, .role = user_role_name(se.role),
				 .fhir_user = se.fhir_user, .client_id = it.grp, .grant = gid};
		auth_event(q, ed, &ae);
	}
	store_item_release(&it);
	redirect(q, "/account");
}

static void handle_signout(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct ctx c = CTX_INIT;
	char sid[OAUTH_ID_SIZE];
	const char *every = http_req_form(q, "everywhere");

	if (current_session(q, ed, &se)) {
		if (!csrf_ok(q, ed, &se)) {
			error_page(q, ed, 403, "This form has expired", "Please try again.", NULL);
			return;
		}
		cookie(q, ed->sid_name, sid, sizeof(sid));
		{
			struct aud ae = {.type = AUDIT_SIGNOUT,
					 .code = every && !strcmp(every, "1") ? "everywhere" : NULL,
					 .username = se.username, .role = user_role_name(se.role),
					 .fhir_user = se.fhir_user, .session_id = sid};
			auth_event(q, ed, &ae);
		}
		if (oauth_session_end(ed->o, sid, every && !strcmp(every, "1"), &c)) {
			server_error(q, &c);
			return;
		}
	}
	set_cookie(q, ed, ed->sid_name, "", 0);
	error_page(q, ed, 200, "Signed out", "You are signed out.",
		   every && !strcmp(every, "1") ? "Every session and every app's access was ended." : NULL);
}

/* GET /signout (OIDC end_session_endpoint): a page whose button signs out (POST, CSRF-checked). */
static void handle_signout_page(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;

	if (!current_session(q, ed, &se)) {
		error_page(q, ed, 200, "Signed out", "You are not signed in.", NULL);
		return;
	}
	page(q, ed, 200, "signout",
	     json_pack("{s:s, s:s, s:b, s:s}", "title", "Sign out", "csrf", se.csrf, "signed_in", 1,
		       "username", se.username),
	     NULL);
}

static void handle_launch(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct ctx c = CTX_INIT;
	const char *cid = http_req_form(q, "client_id"), *pat = http_req_form(q, "patient");
	const char *enc = http_req_form(q, "encounter");
	char *url = NULL;

	if (!current_session(q, ed, &se) || !csrf_ok(q, ed, &se)) {
		error_page(q, ed, 403, "This form has expired", "Please sign in and try again.", NULL);
		return;
	}
	if (se.role != USER_CLINICIAN && se.role != USER_ADMIN) {
		session_denied(q, ed, &se, cid, pat, false, "launch-needs-clinician");
		error_page(q, ed, 403, "Not allowed", "Only clinicians can open apps for a patient.", NULL);
		return;
	}
	if (!cid || !pat || !*pat || strlen(pat) >= OAUTH_REF_SIZE ||
	    (enc && strlen(enc) >= OAUTH_REF_SIZE)) {
		error_page(q, ed, 400, "Missing details", "Choose an app and a patient.", NULL);
		return;
	}
	if (oauth_launch_create(ed->o, se.uid, cid, pat, enc && *enc ? enc : NULL, &url, &c)) {
		error_page(q, ed, 400, "Cannot open this app", c.msg, NULL);
		return;
	}
	redirect(q, url);
	free(url);
}

/* ---- the patient's access history ---- */

/* The last app named on a page: its lines mostly come from one or two apps. */
struct app_names {
	struct auth_edge *ed;
	char id[CLIENT_ID_MAX + 1];
	char name[CLIENT_NAME_MAX + 1];
};

/* audit_view_q.app_name: the name an app was registered with ("" when unknown). */
static void app_name(void *arg, const char *client_id, char *buf, size_t n)
{
	struct app_names *an = arg;

	if (strcmp(an->id, client_id)) {
		struct client cl;
		struct ctx ig = CTX_INIT;

		client_init(&cl);
		an->name[0] = '\0';
		if (client_get(oauth_clients(an->ed->o), client_id, &cl, &ig) == ERR_OK)
			str_copy(an->name, cl.name, sizeof(an->name));
		client_release(&cl);
		str_copy(an->id, client_id, sizeof(an->id));
	}
	str_copy(buf, an->name, n);
}

/*
 * GET /account/access[?patient=ID&kind=all|staff|apps|refused&before=CURSOR]:
 * who accessed the record of a patient the signed-in user may act for
 * (their own, or one they are caregiver for), in plain language, newest
 * first, 25 per page.
 */
static void handle_access(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct store_user_patient links[USER_PATIENTS_MAX];
	struct audit_reader *rd = NULL;
	struct audit_cursor after, next;
	struct audit_view_q vq = {0};
	struct app_names names = {.ed = ed};
	struct ctx c = CTX_INIT;
	const char *want = http_req_query(q, "patient"), *kind = http_req_query(q, "kind");
	const char *before = http_req_query(q, "before"), *patient = NULL;
	json_t *list = json_array(), *lines = NULL;
	size_t n = 0;
	bool more = false;
	char older[512] = "", whose[120], self_ref[160];

	if (!current_session(q, ed, &se)) {
		json_decref(list);
		redirect(q, "/signin");
		return;
	}
	user_patients(oauth_users(ed->o), se.uid, links, USER_PATIENTS_MAX, &n, &c);
	for (size_t i = 0; i < n && i < USER_PATIENTS_MAX; i++) {
		bool sel = want ? !strcmp(want, links[i].patient_id) : i == 0;
		if (sel)
			patient = links[i].patient_id;
		json_array_append_new(list, json_pack("{s:s, s:s, s:b}", "id", links[i].patient_id, "label",
						      !strcmp(links[i].relationship, "self") ? "My record" : links[i].patient_id,
						      "selected", sel));
	}
	if (!patient && want && *want)
		session_denied(q, ed, &se, NULL, want, false, "not-linked");
	if (!patient || !audit_dir) {
		json_decref(list);
		error_page(q, ed, patient ? 404 : 403, "Nothing to show",
			   patient ? "This server keeps no access history." : "You cannot see this record's access history.",
			   NULL);
		return;
	}
	if (kind && strcmp(kind, "all") && strcmp(kind, "staff") && strcmp(kind, "apps") && strcmp(kind, "refused"))
		kind = NULL;
	memset(&after, 0, sizeof(after));
	/* as the page's "Older" link writes it; anything else: the first page */
	if (before && !audit_cursor_parse(before, &after))
		before = NULL;
	vq.patient = patient;
	vq.self = se.username;
	snprintf(self_ref, sizeof(self_ref), "Patient/%s", patient);
	vq.own = !strcmp(se.fhir_user, self_ref); /* the viewer's own record */
	vq.kind = kind;
	vq.after = before ? &after : NULL;
	vq.limit = 25;
	vq.app_name = app_name;
	vq.arg = &names;
	audit_settle(oauth_audit(ed->o), AUDIT_SETTLE_READ_MS, &c); /* what was just recorded, too */
	c = (struct ctx)CTX_INIT;
	if (audit_reader_open(audit_dir, &rd, &c) ||
	    audit_patient_view(rd, &vq, &lines, &next, &more, &c)) {
		audit_reader_free(rd);
		json_decref(list);
		log_msg(LOG_ERROR, "access history: %s", c.msg);
		error_page(q, ed, 503, "Not available", "The access history cannot be shown right now.", NULL);
		return;
	}
	audit_reader_free(rd);
	if (more)
		snprintf(older, sizeof(older), "/account/access?patient=%s&kind=%s&before=%lld:%s:%llu", patient,
			 kind ? kind : "all", (long long)next.time_ms, next.node, (unsigned long long)next.seq);
	snprintf(whose, sizeof(whose), "%s", vq.own ? "your" : "this");
	page(q, ed, 200, "access",
	     json_pack("{s:s, s:s, s:s, s:o, s:o, s:b, s:s*, s:b, s:s}", "title", "Who saw my record", "whose",
		       whose, "patient", patient, "patients", list, "lines", lines, "several", n > 1,
		       "older", older[0] ? older : NULL, "signed_in", 1, "username", se.username),
	     NULL);
}

/*
 * GET /account/access/receipt?patient=ID&record=NODE:SEQ: the receipt of
 * one line of the access page (audit_receipt(): the record, its inclusion
 * proof and the signed checkpoint), as a file to keep and check offline.
 * Only for lines the page offers one for (audit_view_receipt_ok()); any
 * other record, of this patient or another, answers as a missing one.
 */
static void handle_access_receipt(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct audit_reader *rd = NULL;
	struct audit_view_q vq = {0};
	struct ctx c = CTX_INIT;
	const char *patient = http_req_query(q, "patient");
	char node[AUDIT_NODE_MAX + 1], self_ref[160], disp[160];
	json_t *out = NULL, *rec = NULL;
	struct buf body = BUF_INIT(AUDIT_RECEIPT_MAX);
	uint64_t seq = 0;
	enum err e;

	if (!current_session(q, ed, &se)) {
		redirect(q, "/signin");
		return;
	}
	if (!linked_to(ed, &se, patient) || !audit_dir) {
		if (audit_dir)
			session_denied(q, ed, &se, NULL, patient, false, "not-linked");
		error_page(q, ed, 403, "Nothing to show", "You cannot see this record's access history.", NULL);
		return;
	}
	if (!audit_ref_parse(http_req_query(q, "record"), node, &seq)) {
		error_page(q, ed, 400, "No such receipt", "This link does not name a line of the access history.",
			   NULL);
		return;
	}
	vq.patient = patient;
	vq.self = se.username;
	snprintf(self_ref, sizeof(self_ref), "Patient/%s", patient);
	vq.own = !strcmp(se.fhir_user, self_ref);
	e = audit_reader_open(audit_dir, &rd, &c);
	if (!e)
		e = audit_receipt(rd, node, seq, &out, &c);
	audit_reader_free(rd);
	if (!e) {
		const char *bytes = json_string_value(json_object_get(out, "record"));

		rec = bytes ? json_loads(bytes, 0, NULL) : NULL;
		if (!rec || !audit_view_receipt_ok(&vq, rec))
			e = ERR_NOTFOUND;
	}
	if (e == ERR_NOTFOUND || e == ERR_GONE || e == ERR_INVALID) {
		/* not (yet) covered by a signed checkpoint, pruned, or not this viewer's to have */
		error_page(q, ed, 404, "No receipt for this line",
			   "There is no receipt for this line. A new line gets one once the log has signed it,"
			   " within a few seconds: try again shortly.",
			   NULL);
		goto out;
	}
	if (e) {
		log_msg(LOG_ERROR, "access receipt: %s", c.msg);
		error_page(q, ed, 503, "Not available", "The receipt cannot be made right now.", NULL);
		goto out;
	}
	if (json_dump_buf(out, &body)) {
		error_page(q, ed, 503, "Not available", "The receipt cannot be made right now.", NULL);
		goto out;
	}
	snprintf(disp, sizeof(disp), "attachment; filename=\"veranda-receipt-%s-%llu.json\"", node,
		 (unsigned long long)seq);
	http_resp_header(q, "Content-Disposition", disp);
	http_resp_header(q, "Cache-Control", "no-store");
	http_resp_buf(q, 200, "application/json", &body);
out:
	json_decref(rec);
	json_decref(out);
	buf_release(&body);
}

/* ---- dynamic client registration (RFC 7591) ---- */

static void reg_error(struct http_req *q, const char *error, const char *desc)
{
	struct oauth_err err = {.error = error, .status = 400};

	str_copy(err.description, desc, sizeof(err.description));
	oauth_error(q, &err);
}

/* Strings of a JSON array member into an arena array; false when it is not an array of strings. */
static bool str_array(struct http_req *q, const json_t *a, const char ***out, size_t *n)
{
	size_t i;
	json_t *v;

	*out = NULL;
	*n = 0;
	if (!a)
		return true;
	if (!json_is_array(a) || json_array_size(a) > 32)
		return false;
	*out = arena_zalloc(http_req_arena(q), (json_array_size(a) + 1) * sizeof(char *));
	json_array_foreach(a, i, v) {
		if (!json_is_string(v))
			return false;
		(*out)[(*n)++] = json_string_value(v);
	}
	return true;
}

/*
 * POST /oauth/register: an administrator's access token (Authorization:
 * Bearer, role admin) registers an app from RFC 7591 metadata:
 * client_name, redirect_uris, token_endpoint_auth_method ("none",
 * "client_secret_basic" or "client_secret_post" for a generated secret,
 * "private_key_jwt" with jwks or jwks_uri), scope, launch_uri (SMART's
 * launch URL) and browser_origins.  The same rules as `veranda client
 * add` apply.  201 with the client's metadata, its client_id and (for a
 * symmetric client, once) its client_secret.
 */
static void handle_register(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	char tb[OAUTH_BEARER_MAX];
	const char *bt = bearer(q, tb, sizeof(tb)), *method;
	const struct buf *body = http_req_body(q);
	struct principal p;
	struct ctx c = CTX_INIT;
	struct client_spec spec;
	char id[OAUTH_ID_SIZE], secret[OAUTH_ID_SIZE];
	json_t *md = NULL, *jwks, *out;
	char *jwks_text = NULL;
	struct buf ob = BUF_INIT(1 << 16);
	bool verified = false;

	no_store(q);
	if (!bt || oauth_verify(ed->o, bt, &p, &c)) {
		http_resp_header(q, "WWW-Authenticate", bt ? "Bearer error=\"invalid_token\"" : "Bearer");
		static const char body401[] = "{\"error\":\"invalid_token\"}";
		http_resp_bytes(q, 401, JSON_CT, body401, sizeof(body401) - 1);
		return;
	}
	verified = true;
	if (!p.uid || p.role != USER_ADMIN) {
		token_denied(q, ed, &p, "register-needs-admin");
		http_resp_header(q, "WWW-Authenticate", "Bearer error=\"insufficient_scope\"");
		static const char body403[] = "{\"error\":\"insufficient_scope\",\"error_description\":"
					      "\"registering apps needs an administrator's token\"}";
		http_resp_bytes(q, 403, JSON_CT, body403, sizeof(body403) - 1);
		goto out;
	}
	if (!(md = json_parse_bounded(body->data, body->len, 16, &c)) || !json_is_object(md)) {
		reg_error(q, "invalid_client_metadata", "the body must be a JSON object of client metadata");
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	oauth_random(id);
	id[22] = '\0';
	spec.client_id = id;
	spec.name = json_string_value(json_object_get(md, "client_name"));
	spec.scope = json_string_value(json_object_get(md, "scope"));
	spec.launch_url = json_string_value(json_object_get(md, "launch_uri"));
	spec.jwks_url = json_string_value(json_object_get(md, "jwks_uri"));
	method = json_string_value(json_object_get(md, "token_endpoint_auth_method"));
	if (!method)
		method = "client_secret_basic"; /* RFC 7591 2 */
	if (!str_array(q, json_object_get(md, "redirect_uris"), (const char ***)&spec.redirect_uris, &spec.nredirect) ||
	    !str_array(q, json_object_get(md, "browser_origins"), (const char ***)&spec.origins, &spec.norigins)) {
		reg_error(q, "invalid_client_metadata", "redirect_uris and browser_origins are arrays of strings");
		goto out;
	}
	if ((jwks = json_object_get(md, "jwks")))
		spec.jwks_json = jwks_text = json_dumps(jwks, JSON_COMPACT);
	if (!strcmp(method, "none")) {
		spec.kind = CLIENT_PUBLIC;
	} else if (!strcmp(method, "client_secret_basic") || !strcmp(method, "client_secret_post")) {
		spec.kind = CLIENT_SYMMETRIC;
		oauth_random(secret);
		spec.secret = secret;
	} else if (!strcmp(method, "private_key_jwt")) {
		spec.kind = CLIENT_ASYMMETRIC;
	} else {
		reg_error(q, "invalid_client_metadata", "token_endpoint_auth_method must be none, client_secret_basic, client_secret_post or private_key_jwt");
		goto out;
	}
	if (client_add(oauth_clients(ed->o), &spec, &c)) {
		if (c.code == ERR_INVALID)
			reg_error(q, strstr(c.msg, "redirect") ? "invalid_redirect_uri" : "invalid_client_metadata", c.msg);
		else
			server_error(q, &c);
		goto out;
	}
	log_msg(LOG_INFO, "registered app %s (%s) for %s", id, method, p.username);
	{
		struct aud ae = {.type = AUDIT_ADMIN_CLIENT, .action = 'C', .username = p.username,
				 .role = user_role_name(p.role), .fhir_user = p.fhir_user,
				 .client_id = p.client_id, .entity_type = "Client", .entity_id = id,
				 .token_id = p.jti};
		auth_event(q, ed, &ae);
	}
	out = json_deep_copy(md);
	json_object_set_new(out, "client_id", json_string(id));
	json_object_set_new(out, "client_id_issued_at", json_integer(clock_now_ms() / 1000));
	json_object_set_new(out, "token_endpoint_auth_method", json_string(method));
	if (spec.secret) {
		json_object_set_new(out, "client_secret", json_string(secret));
		json_object_set_new(out, "client_secret_expires_at", json_integer(0));
	}
	json_dump_buf(out, &ob);
	json_decref(out);
	http_resp_buf(q, 201, JSON_CT, &ob);
out:
	mem_wipe(secret, sizeof(secret));
	free(jwks_text);
	json_decref(md);
	buf_release(&ob);
	if (verified)
		oauth_principal_release(ed->o, &p);
}

/* ---- two-step verification ---- */

static void mfa_page(struct http_req *q, struct auth_edge *ed, int status, const struct session *se,
		     const char *req, const char *error)
{
	page(q, ed, status, "mfa",
	     json_pack("{s:s, s:s, s:s*, s:s*}", "title", "Two-step verification", "csrf", se->csrf,
		       "req", req && *req ? req : NULL, "error", error),
	     NULL);
}

static void handle_mfa_page(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;

	if (!pending_session(q, ed, &se)) {
		redirect(q, "/signin");
		return;
	}
	mfa_page(q, ed, 200, &se, http_req_query(q, "req"), NULL);
}

static void handle_mfa(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct ctx c = CTX_INIT;
	const char *req = http_req_form(q, "req"), *code = http_req_form(q, "code");
	char sid[OAUTH_ID_SIZE], fresh[OAUTH_ID_SIZE];
	int64_t retry = 0;
	enum err e;

	if (!pending_session(q, ed, &se)) {
		redirect(q, "/signin");
		return;
	}
	if (!csrf_ok(q, ed, &se)) {
		mfa_page(q, ed, 403, &se, req, "This form has expired. Please enter the code again.");
		return;
	}
	cookie(q, ed->sid_name, sid, sizeof(sid));
	e = oauth_session_mfa(ed->o, sid, code, http_req_client_addr(q), fresh, &retry, &c);
	/* ERR_GONE: the code was right, and used */
	mfa_used(q, ed, &se, e == ERR_GONE ? ERR_OK : e, sid);
	if (e == ERR_BUSY && retry > 0) {
		char ra[24];
		snprintf(ra, sizeof(ra), "%lld", (long long)retry);
		http_resp_header(q, "Retry-After", ra);
		mfa_page(q, ed, 429, &se, req, c.msg);
		return;
	}
	if (e == ERR_UNAUTHORIZED) {
		mfa_page(q, ed, 401, &se, req, "That code is not right.");
		return;
	}
	if (e == ERR_GONE) {
		/* the half-open session ended while the code was checked */
		login_page(q, ed, 409, req, NULL, NULL,
			   "Your account changed while you were signing in. Please sign in again.");
		return;
	}
	if (e) {
		server_error(q, &c);
		return;
	}
	if (fresh[0])
		set_cookie(q, ed, ed->sid_name, fresh, -1);
	mem_wipe(fresh, sizeof(fresh));
	if (req && *req) {
		char url[256];
		snprintf(url, sizeof(url), "/oauth/continue?req=%.64s", req);
		redirect(q, url);
	} else {
		redirect(q, "/account");
	}
}

static const char session_changed[] =
	"Your sign-in changed while this was being done (you signed out, or made another change, "
	"in another window). Nothing was changed. Go back to your account page and try again.";

/*
 * A failure of the store or the server behind an account form: an HTML
 * page (the form is a browser's), 503 with Retry-After when it is busy.
 */
static void account_failed(struct http_req *q, struct auth_edge *ed, const struct ctx *c)
{
	bool busy = c->code == ERR_BUSY;

	log_msg(LOG_ERROR, "account page: %s", c->msg);
	if (busy)
		http_resp_header(q, "Retry-After", "1");
	account_error(q, ed, busy ? 503 : 500, busy ? "The server is busy" : "Something went wrong",
		      busy ? "Nothing was changed. Try again in a moment."
			   : "Nothing was changed. Try again; if it happens again, ask for help.");
}

/*
 * Was 'e' a refusal for wrong passwords or codes tried before (429 with
 * *retry seconds), rather than a busy store or the sign-in gate ("too
 * many sign-ins at once": ERR_BUSY with a retry too)?
 */
static bool throttled(enum err e, int64_t retry, const struct ctx *c)
{
	return e == ERR_BUSY && retry > 0 && str_starts(c->msg, "too many ") &&
	       !str_starts(c->msg, "too many sign-ins at once");
}

/*
 * POST /account/password: current, password, again, and apps=end (the
 * box, ticked on the page) to revoke every app's access as well.  The new
 * password is checked first, then the current one as at sign-in (its
 * throttle counts wrong ones); a change ends every session of the account
 * and renews this one under a new id (oauth_password_change()).  Every
 * attempt with a live session and a valid form is recorded, never a
 * password.
 */
static void handle_password(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct ctx c = CTX_INIT;
	const char *fresh = http_req_form(q, "password"), *again = http_req_form(q, "again");
	const char *apps = http_req_form(q, "apps"), *code = NULL;
	bool end_apps = apps && !strcmp(apps, "end");
	char sid[OAUTH_ID_SIZE] = "", fresh_sid[OAUTH_ID_SIZE] = "", msg[300] = "";
	int64_t retry = 0, ended = 0; /* the page says it in words */
	int status = 400, outcome = AUDIT_MINOR;
	enum err e;

	if (!current_session(q, ed, &se) || !csrf_ok(q, ed, &se)) {
		error_page(q, ed, 403, "This form has expired", "Please sign in and try again.", NULL);
		return;
	}
	cookie(q, ed->sid_name, sid, sizeof(sid));
	/* what is wrong with the new password, said here in the user's words */
	if (!fresh || !again || strcmp(fresh, again)) {
		e = ERR_INVALID;
		str_copy(msg, "The two new passwords are not the same. Type the new password twice, the same way.",
			 sizeof(msg));
	} else if ((e = user_password_check(fresh, strlen(fresh), &c))) {
		snprintf(msg, sizeof(msg), "The new %s.", c.msg);
	} else {
		e = oauth_password_change(ed->o, &se, http_req_form(q, "current"), fresh, end_apps,
					  http_req_client_addr(q), &retry, fresh_sid, &ended, &c);
	}
	switch (e) {
	case ERR_OK:
		outcome = AUDIT_OK;
		code = end_apps ? "apps-ended" : NULL; /* what else the change did */
		break;
	case ERR_INVALID:
		code = msg[0] ? "unacceptable-password" : "error"; /* else not the form's fault */
		break;
	case ERR_CONFLICT:
		code = "unacceptable-password";
		str_copy(msg, "The new password is the one you use now. Choose another one.", sizeof(msg));
		break;
	case ERR_GONE:
		code = "session-ended";
		status = 409;
		str_copy(msg, session_changed, sizeof(msg));
		break;
	case ERR_UNAUTHORIZED:
		code = "wrong-password";
		str_copy(msg, "The current password you entered is not right.", sizeof(msg));
		break;
	case ERR_FORBIDDEN:
		code = "locked";
		status = 403;
		str_copy(msg, "This account is locked or disabled. Try again later, or ask for help.", sizeof(msg));
		break;
	default:
		if (throttled(e, retry, &c)) {
			code = "throttled";
			status = 429;
			snprintf(msg, sizeof(msg), "Too many wrong passwords were tried. Try again in %lld second%s.",
				 (long long)retry, retry == 1 ? "" : "s");
		} else {
			code = "error";
		}
	}
	if (e && !msg[0])
		outcome = AUDIT_SERIOUS; /* the server failed, not the form */
	{
		/* the session that asked (its old id: the one its earlier records name) */
		struct aud ae = {.type = AUDIT_PASSWORD_CHANGE, .outcome = outcome, .code = code,
				 .username = se.username, .role = user_role_name(se.role),
				 .fhir_user = se.fhir_user, .session_id = sid,
				 .renewed_id = e ? NULL : fresh_sid};
		auth_event(q, ed, &ae);
	}
	mem_wipe(sid, sizeof(sid));
	if (!e) {
		/* this browser goes on under the session's new id */
		set_cookie(q, ed, ed->sid_name, fresh_sid, -1);
		mem_wipe(fresh_sid, sizeof(fresh_sid));
		redirect(q, end_apps ? "/account?changed=password-apps" : "/account?changed=password");
	} else if (!msg[0]) {
		account_failed(q, ed, &c);
	} else {
		if (status == 429) {
			char ra[24];
			snprintf(ra, sizeof(ra), "%lld", (long long)retry);
			http_resp_header(q, "Retry-After", ra);
		}
		account_error(q, ed, status, "Your password is not changed", msg);
	}
}

static void handle_mfa_setup(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct ctx c = CTX_INIT;
	struct buf b32 = BUF_INIT(256), uri = BUF_INIT(2048);
	const char *current = http_req_form(q, "current");
	int64_t retry = 0;
	bool used = false, replacing = false, held;
	enum err e;

	if (!current_session(q, ed, &se) || !csrf_ok(q, ed, &se)) {
		error_page(q, ed, 403, "This form has expired", "Please sign in and try again.", NULL);
		return;
	}
	e = oauth_mfa_enrol_begin(ed->o, &se, current, http_req_client_addr(q), &retry, &used, &replacing,
				  &b32, &uri, &c);
	held = throttled(e, retry, &c);
	if (replacing) {
		/* a code of the current authenticator, recorded as at sign-in */
		if (used || (current && *current && (e == ERR_UNAUTHORIZED || e == ERR_BUSY)))
			mfa_used(q, ed, &se, used ? ERR_OK : e, NULL);
	} else if (e == ERR_UNAUTHORIZED || held || e == ERR_FORBIDDEN) {
		/* the password asked before turning it on, refused */
		struct aud ae = {.type = AUDIT_MFA_ENROL, .outcome = AUDIT_MINOR,
				 .code = e == ERR_UNAUTHORIZED ? "wrong-password" : held ? "throttled" : "locked",
				 .username = se.username, .role = user_role_name(se.role), .fhir_user = se.fhir_user,
				 .request_session = true};
		auth_event(q, ed, &ae);
	}
	if (e) {
		if (c.code == ERR_CONFLICT) {
			account_error(q, ed, 409, "Two-step verification is already on", c.msg);
		} else if (c.code == ERR_UNAUTHORIZED && !replacing) {
			account_error(q, ed, 400, "That password is not right",
				      "To turn on two-step verification, enter the password you sign in with.");
		} else if (c.code == ERR_UNAUTHORIZED) {
			account_error(q, ed, 400, "That code is not right",
				      "Enter a code from the authenticator app you use now, or one of your recovery codes.");
		} else if (c.code == ERR_FORBIDDEN) {
			account_error(q, ed, 403, "Two-step verification is not on",
				      "This account is locked or disabled. Try again later, or ask for help.");
		} else if (held) {
			char ra[24];
			snprintf(ra, sizeof(ra), "%lld", (long long)retry);
			http_resp_header(q, "Retry-After", ra);
			account_error(q, ed, 429, replacing ? "Too many wrong codes" : "Too many wrong passwords",
				      c.msg);
		} else {
			account_failed(q, ed, &c);
		}
	} else {
		page(q, ed, 200, "mfa_setup",
		     json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "title", "Set up two-step verification",
			       "secret", b32.data, "uri", uri.data, "csrf", se.csrf, "signed_in", 1,
			       "username", se.username),
		     NULL);
	}
	mem_wipe(b32.data, b32.len);
	mem_wipe(uri.data, uri.len);
	buf_release(&b32);
	buf_release(&uri);
}

static void handle_mfa_confirm(struct http_req *q, void *arg)
{
	struct auth_edge *ed = arg;
	struct session se;
	struct ctx c = CTX_INIT;
	struct totp_recovery codes[OAUTH_RECOVERY_CODES];
	char fresh_sid[OAUTH_ID_SIZE] = "", old_sid[OAUTH_ID_SIZE] = "", others[64] = "";
	int64_t ended = 0;
	json_t *list;
	enum err e;

	if (!current_session(q, ed, &se) || !csrf_ok(q, ed, &se)) {
		error_page(q, ed, 403, "This form has expired", "Please sign in and try again.", NULL);
		return;
	}
	cookie(q, ed->sid_name, old_sid, sizeof(old_sid));
	e = oauth_mfa_enrol_finish(ed->o, &se, http_req_form(q, "code"), codes, fresh_sid, &ended, &c);
	if (!e) {
		/* the session that confirmed (its old id: the one its earlier records name) */
		struct aud ae = {.type = AUDIT_MFA_ENROL, .username = se.username,
				 .role = user_role_name(se.role), .fhir_user = se.fhir_user,
				 .session_id = old_sid, .renewed_id = fresh_sid};
		auth_event(q, ed, &ae);
	} else if (e == ERR_UNAUTHORIZED || e == ERR_NOTFOUND || e == ERR_INVALID) {
		/* a wrong code, none pending, or a stored set-up unreadable: it stays off */
		struct aud ae = {.type = AUDIT_MFA_ENROL,
				 .outcome = e == ERR_INVALID ? AUDIT_SERIOUS : AUDIT_MINOR,
				 .code = e == ERR_UNAUTHORIZED ? "wrong-code"
					 : e == ERR_NOTFOUND ? "not-started" : "error",
				 .username = se.username, .role = user_role_name(se.role),
				 .fhir_user = se.fhir_user, .session_id = old_sid};
		auth_event(q, ed, &ae);
	}
	mem_wipe(old_sid, sizeof(old_sid));
	if (e == ERR_CONFLICT) {
		account_error(q, ed, 409, "Two-step verification is already on", c.msg);
		return;
	}
	if (e == ERR_GONE) {
		account_error(q, ed, 409, "Two-step verification is not on", session_changed);
		return;
	}
	if (e == ERR_UNAUTHORIZED || e == ERR_NOTFOUND || e == ERR_INVALID) {
		error_page(q, ed, 400, "Two-step verification is not on yet", c.msg,
			   "Go back to your account page and start the set-up again.");
		return;
	}
	if (e) {
		account_failed(q, ed, &c);
		return;
	}
	/* this browser goes on under the session's new id */
	set_cookie(q, ed, ed->sid_name, fresh_sid, -1);
	mem_wipe(fresh_sid, sizeof(fresh_sid));
	if (ended > 0)
		snprintf(others, sizeof(others), "%lld other sign-in%s", (long long)ended, ended == 1 ? "" : "s");
	list = json_array();
	for (size_t i = 0; i < OAUTH_RECOVERY_CODES; i++)
		json_array_append_new(list, json_string(codes[i].code));
	mem_wipe(codes, sizeof(codes));
	page(q, ed, 200, "recovery",
	     json_pack("{s:s, s:o, s:b, s:s, s:s*}", "title", "Recovery codes", "codes", list, "signed_in", 1,
		       "username", se.username, "others", others[0] ? others : NULL),
	     NULL);
}

/* ---- registration ---- */

static void load_templates(struct auth_edge *ed)
{
	static const char prefix[] = "web/templates/";

	ed->tmpl = mustache_set_new();
	for (const struct embedded_file *f = embedded_files; f->path; f++) {
		char name[128];
		struct ctx c = CTX_INIT;
		size_t n;

		if (strncmp(f->path, prefix, sizeof(prefix) - 1) || !str_ends(f->path, ".mustache"))
			continue;
		n = strlen(f->path + sizeof(prefix) - 1) - strlen(".mustache");
		if (n >= sizeof(name))
			continue;
		memcpy(name, f->path + sizeof(prefix) - 1, n);
		name[n] = '\0';
		if (mustache_set_add(ed->tmpl, name, (const char *)f->data, f->len, &c))
			log_msg(LOG_ERROR, "template %s: %s", name, c.msg);
	}
}

void auth_routes_register(struct oauth *o, struct http_router *r)
{
	struct auth_edge *ed = &edge_static;

	memset(ed, 0, sizeof(*ed));
	ed->o = o;
	ed->addr_fails = limit_new(o->o.token_fail_limit, FAIL_WINDOW_MS);
	ed->client_fails = limit_new(o->o.token_fail_limit * CLIENT_FAIL_FACTOR, FAIL_WINDOW_MS);
	pthread_mutex_init(&ed->mu, NULL);
	ed->https = str_starts(oauth_issuer(o), "https://");
	ed->sid_name = ed->https ? "__Host-veranda" : "veranda";
	ed->csrf_name = ed->https ? "__Host-veranda-csrf" : "veranda-csrf";
	origin_of(oauth_issuer(o), ed->origin, sizeof(ed->origin));
	load_templates(ed);

	http_router_on_error(r, "/oauth", render_http_error);
	http_route(r, HTTP_GET, "/.well-known/openid-configuration", HTTP_BODY_NONE, handle_oidc_conf, ed);
	http_route(r, HTTP_GET, "/.well-known/oauth-authorization-server", HTTP_BODY_NONE, handle_as_meta, ed);
	http_route(r, HTTP_GET, "/fhir/.well-known/smart-configuration", HTTP_BODY_NONE, handle_smart_conf, ed);
	http_route(r, HTTP_GET, "/oauth/jwks", HTTP_BODY_NONE, handle_jwks, ed);
	http_route(r, HTTP_GET, "/smart-style.json", HTTP_BODY_NONE, handle_style, ed);
	http_route(r, HTTP_GET, "/static/{name}", HTTP_BODY_NONE, handle_static, ed);
	http_route(r, HTTP_GET, "/favicon.ico", HTTP_BODY_NONE, handle_favicon, ed);
	http_route(r, HTTP_GET | HTTP_POST, "/oauth/authorize", HTTP_BODY_FORM, handle_authorize, ed);
	http_route(r, HTTP_GET, "/oauth/continue", HTTP_BODY_NONE, handle_continue, ed);
	http_route(r, HTTP_POST, "/oauth/login", HTTP_BODY_FORM, handle_login, ed);
	http_route(r, HTTP_POST, "/oauth/patient", HTTP_BODY_FORM, handle_patient, ed);
	http_route(r, HTTP_POST, "/oauth/decide", HTTP_BODY_FORM, handle_decide, ed);
	http_route(r, HTTP_POST, "/oauth/token", HTTP_BODY_FORM, handle_token, ed);
	http_route(r, HTTP_GET, "/oauth/token", HTTP_BODY_NONE, handle_token_get, ed);
	http_route(r, HTTP_OPTIONS, "/oauth/{what}", HTTP_BODY_NONE, handle_preflight, ed);
	http_route(r, HTTP_POST, "/oauth/introspect", HTTP_BODY_FORM, handle_introspect, ed);
	http_route(r, HTTP_POST, "/oauth/revoke", HTTP_BODY_FORM, handle_revoke, ed);
	http_route(r, HTTP_GET | HTTP_POST, "/oauth/userinfo", HTTP_BODY_FORM, handle_userinfo, ed);
	http_route(r, HTTP_POST, "/oauth/launch", HTTP_BODY_FORM, handle_launch, ed);
	http_route(r, HTTP_POST, "/oauth/register", HTTP_BODY_FHIR, handle_register, ed);
	http_route(r, HTTP_GET, "/oauth/mfa", HTTP_BODY_NONE, handle_mfa_page, ed);
	http_route(r, HTTP_POST, "/oauth/mfa", HTTP_BODY_FORM, handle_mfa, ed);
	http_route(r, HTTP_POST, "/account/password", HTTP_BODY_FORM, handle_password, ed);
	http_route(r, HTTP_POST, "/account/mfa", HTTP_BODY_FORM, handle_mfa_setup, ed);
	http_route(r, HTTP_POST, "/account/mfa/confirm", HTTP_BODY_FORM, handle_mfa_confirm, ed);
	http_route(r, HTTP_GET, "/signin", HTTP_BODY_NONE, handle_signin_page, ed);
	http_route(r, HTTP_POST, "/signout", HTTP_BODY_FORM, handle_signout, ed);
	http_route(r, HTTP_GET, "/signout", HTTP_BODY_NONE, handle_signout_page, ed);
	http_route(r, HTTP_GET, "/account", HTTP_BODY_NONE, handle_account, ed);
	http_route(r, HTTP_GET, "/account/access", HTTP_BODY_NONE, handle_access, ed);
	http_route(r, HTTP_GET, "/account/access/receipt", HTTP_BODY_NONE, handle_access_receipt, ed);
	http_route(r, HTTP_POST, "/account/revoke", HTTP_BODY_FORM, handle_account_revoke, ed);
}

void auth_routes_free(void)
{
	struct auth_edge *ed = &edge_static;

	mustache_set_free(ed->tmpl);
	for (size_t i = 0; i < ed->norigins; i++)
		free(ed->origins[i]);
	free(ed->origins);
	limit_free(ed->addr_fails);
	limit_free(ed->client_fails);
	pthread_mutex_destroy(&ed->mu);
	memset(ed, 0, sizeof(*ed));
}
