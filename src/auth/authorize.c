/*
 * authorize.c - authorization requests (RFC 6749 4.1.1 with PKCE, RFC
 * 9207 iss, OIDC nonce/prompt/max_age, SMART aud and launch), the user's
 * decision turned into a grant and a single-use code, and EHR launches.
 *
 * A validated request is stored for ten minutes as an auth item so the
 * sign-in, patient-picker and consent pages can refer to it by a random
 * id; nothing of it is trusted from the browser afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oauth_int.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/url.h"
#include "fhir/model.h"

#define AUTHZ_TTL_MS (10 * 60 * 1000)

char *oauth_authz_error_url(const struct oauth *o, const char *redirect_uri, const char *state,
			    const char *error, const char *description)
{
	struct buf b = BUF_INIT(8192);
	char *s;

	buf_adds(&b, redirect_uri);
	url_add_param(&b, "error", error);
	if (description && *description) {
		char d[512];
		oauth_text_clean(description, d, sizeof(d));
		url_add_param(&b, "error_description", d);
	}
	if (state && *state)
		url_add_param(&b, "state", state);
	url_add_param(&b, "iss", o->issuer);
	s = xstrdup(b.data);
	buf_release(&b);
	return s;
}

/* The value of parameter 'name' (first one) and whether it was repeated. */
static const char *param(const char *const *names, const char *const *values, size_t n,
			 const char *name, bool *repeated)
{
	const char *v = NULL;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name)) {
			if (v && repeated)
				*repeated = true;
			if (!v)
				v = values[i];
		}
	return v;
}

static bool challenge_ok(const char *s)
{
	size_t n = strlen(s);

	if (n != 43)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '_'))
			return false;
	}
	return true;
}

/*
 * Is every constraint of granular scope 'r' a search parameter of its
 * type (modifiers allowed)?  An unknown one would be ignored by search
 * and so grant more than it says: such scopes are not granted.
 */
static bool constraints_known(const struct scope_res *r)
{
	for (size_t i = 0; i < r->nq; i++) {
		char base[SCOPE_KV_NAME_MAX];
		size_t n = strcspn(r->q[i].name, ":");

		if (n >= sizeof(base))
			return false;
		memcpy(base, r->q[i].name, n);
		base[n] = '\0';
		if (!fhir_param_find(strcmp(r->type, "*") ? r->type : "Patient", base) ||
		    (!strcmp(r->type, "*") && base[0] != '_') || !strcmp(base, "_count") ||
		    !strcmp(base, "_sort") || !strcmp(base, "_include") || !strcmp(base, "_revinclude"))
			return false;
	}
	return true;
}

/* The scope string of 'set' without granular scopes whose constraints are unknown. */
static enum err drop_unknown_constraints(const struct scope_set *set, struct buf *out, struct ctx *c)
{
	struct buf all = BUF_INIT(16384);
	enum err e;

	if ((e = scope_format(set, &all, c)))
		goto out;
	for (char *tok = all.data, *end; *tok; tok = end) {
		struct scope_set *one = NULL;
		bool keep = true;

		end = tok + strcspn(tok, " ");
		if (*end)
			*end++ = '\0';
		if (!*tok)
			continue;
		if (!scope_parse(tok, &one, c) && scope_count(one) == 1 && scope_at(one, 0)->nq)
			keep = constraints_known(scope_at(one, 0));
		ctx_clear(c);
		scope_set_free(one);
		if (keep) {
			if (out->len)
				buf_addch(out, ' ');
			buf_adds(out, tok);
		}
	}
	e = out->err;
out:
	buf_release(&all);
	return e;
}

/* Does 'aud' name this server's FHIR base (an exact match; one trailing slash allowed)? */
static bool aud_ok(const struct oauth *o, const char *aud)
{
	size_t n = strlen(o->fhir_base);

	return aud && !strncmp(aud, o->fhir_base, n) && (aud[n] == '\0' || !strcmp(aud + n, "/"));
}

static json_t *authz_json(const struct oauth_authz *a)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:b}",
			 "client_id", a->client.client_id, "redirect_uri", a->redirect_uri, "state",
			 a->state, "nonce", a->nonce, "challenge", a->challenge, "scope", a->scope,
			 "launch", a->launch_hash, "patient", a->patient, "encounter", a->encounter,
			 "launch_uid", (json_int_t)a->launch_uid, "max_age", (json_int_t)a->max_age,
			 "prompt_none", a->prompt_none, "prompt_login", a->prompt_login);
}

#define FAIL(st, code, ...)                                                   \
	do {                                                                  \
		oauth_seterr(err, st, code, __VA_ARGS__);                     \
		e = ERR_INVALID;                                              \
		goto out;                                                     \
	} while (0)

enum err oauth_authz_begin(struct oauth *o, const char *const *names, const char *const *values,
			   size_t n, struct oauth_authz *out, struct oauth_err *err, struct ctx *c)
{
	static const char *const single[] = {"response_type", "scope", "state", "code_challenge",
					     "code_challenge_method", "aud", "nonce", "launch",
					     "prompt", "max_age", "resource", NULL};
	bool dup = false, have_client = false;
	const char *cid, *ruri, *rt, *scope, *chal, *meth, *aud, *prompt, *max_age, *launch, *v;
	struct scope_set *asked = NULL, *allowed = NULL, *eff = NULL;
	struct buf sb = BUF_INIT(sizeof(out->scope));
	char h[OAUTH_HASH_SIZE];
	enum err e = ERR_OK;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	out->max_age = -1;
	/* 1. who is asking and where the answer goes: errors here never redirect */
	cid = param(names, values, n, "client_id", &dup);
	if (!cid || !*cid || dup)
		FAIL(400, "invalid_request", dup ? "client_id was sent more than once" : "client_id is missing");
	if (client_get(o->cs, cid, &out->client, c)) {
		ctx_clear(c);
		FAIL(400, "invalid_client", "this app is not registered here");
	}
	have_client = true;
	if (out->client.disabled)
		FAIL(400, "invalid_client", "this app is disabled");
	ruri = param(names, values, n, "redirect_uri", &dup);
	if (dup)
		FAIL(400, "invalid_request", "redirect_uri was sent more than once");
	if (!ruri || !*ruri) {
		if (out->client.nredirect != 1)
			FAIL(400, "invalid_request", "redirect_uri is missing");
		ruri = out->client.redirect_uris[0];
	}
	if (!client_redirect_ok(&out->client, ruri))
		FAIL(400, "invalid_request", "redirect_uri is not registered for this app");
	str_copy(out->redirect_uri, ruri, sizeof(out->redirect_uri));
	v = param(names, values, n, "state", &dup);
	if (dup) /* which one to echo is unknowable: no redirect */
		FAIL(400, "invalid_request", "state was sent more than once");
	if (v && strlen(v) >= sizeof(out->state))
		FAIL(400, "invalid_request", "state is too long");
	str_copy(out->state, v ? v : "", sizeof(out->state));
	/* 2. from here on errors go back to the app */
	err->redirect = true;
	rt = param(names, values, n, "response_type", NULL);
	if (!rt || !*rt)
		FAIL(400, "invalid_request", "response_type is missing");
	if (strcmp(rt, "code"))
		FAIL(400, "unsupported_response_type", "only response_type=code is supported");
	for (const char *const *p = single; *p; p++) {
		bool d = false;
		param(names, values, n, *p, &d);
		if (d)
			FAIL(400, "invalid_request", "%s was sent more than once", *p);
	}
	scope = param(names, values, n, "scope", NULL);
	if (!scope || !*scope)
		FAIL(400, "invalid_request", "scope is missing");
	chal = param(names, values, n, "code_challenge", NULL);
	meth = param(names, values, n, "code_challenge_method", NULL);
	if (!chal || !*chal)
		FAIL(400, "invalid_request", "code_challenge is required (PKCE with S256)");
	if (!meth || strcmp(meth, "S256"))
		FAIL(400, "invalid_request", "code_challenge_method must be S256");
	if (!challenge_ok(chal))
		FAIL(400, "invalid_request", "code_challenge must be 43 base64url characters");
	str_copy(out->challenge, chal, sizeof(out->challenge));
	aud = param(names, values, n, "aud", NULL);
	v = param(names, values, n, "resource", NULL);
	if (!aud_ok(o, aud ? aud : v))
		FAIL(400, "invalid_request", "aud must be this server's FHIR base URL");
	/* RFC 8707 2: a resource this server cannot issue for, beside a good aud */
	if (aud && v && !aud_ok(o, v))
		FAIL(400, "invalid_target", "resource must be this server's FHIR base URL");
	v = param(names, values, n, "nonce", NULL);
	if (v && strlen(v) >= sizeof(out->nonce))
		FAIL(400, "invalid_request", "nonce is too long");
	str_copy(out->nonce, v ? v : "", sizeof(out->nonce));
	prompt = param(names, values, n, "prompt", NULL);
	if (prompt) {
		/* a space-separated list (OIDC Core 3.1.2.1): none stands alone */
		size_t nvals = 0;

		for (const char *p = prompt; *p;) {
			size_t k = strcspn(p, " ");

			if (k) {
				nvals++;
				out->prompt_none |= k == 4 && !memcmp(p, "none", 4);
				out->prompt_login |= k == 5 && !memcmp(p, "login", 5);
			}
			p += k + (p[k] == ' ');
		}
		if (out->prompt_none && nvals > 1)
			FAIL(400, "invalid_request", "prompt=none cannot be combined with other values");
	}
	max_age = param(names, values, n, "max_age", NULL);
	if (max_age && str_to_i64(max_age, 0, INT32_MAX, &out->max_age))
		FAIL(400, "invalid_request", "max_age must be a non-negative integer");
	if (out->max_age == 0) {
		/*
		 * OIDC Core 3.1.2.1: max_age=0 asks for a fresh sign-in, like
		 * prompt=login.  Kept as an age it would also refuse the
		 * sign-in just made for this request, and loop.
		 */
		out->prompt_login = true;
		out->max_age = -1;
	}
	/* 3. scopes: never more than the app's registration allows */
	if (scope_parse(scope, &asked, c)) {
		ctx_clear(c);
		FAIL(400, "invalid_scope", "scope is malformed");
	}
	if (out->client.scope[0]) {
		if ((e = scope_parse(out->client.scope, &allowed, c)) ||
		    (e = scope_intersect(asked, allowed, &eff, c)))
			goto out;
	} else {
		eff = asked;
		asked = NULL;
	}
	if (drop_unknown_constraints(eff, &sb, c) || sb.len >= sizeof(out->scope)) {
		ctx_clear(c);
		FAIL(400, "invalid_scope", "the requested scopes come to more than %zu bytes",
		     sizeof(out->scope) - 1);
	}
	if (!sb.len)
		FAIL(400, "invalid_scope", "none of the requested scopes can be granted to this app");
	str_copy(out->scope, sb.data, sizeof(out->scope));
	/* 4. an EHR launch brings its context (single use) */
	launch = param(names, values, n, "launch", NULL);
	if (scope_flags(eff) & SCOPE_LAUNCH) {
		struct store_item it;
		char lcid[128];
		json_t *j;

		if (!launch || !*launch)
			FAIL(400, "invalid_request", "the launch scope needs the launch parameter from the EHR");
		oauth_hash(launch, h);
		store_item_init(&it);
		e = store_item_take(o->s, NS_LAUNCH, h, STORE_ITEM_LIVE, STORE_ITEM_USED, &it, c);
		j = e ? NULL : oauth_item_json(&it);
		oauth_jstr(j, "client_id", lcid, sizeof(lcid));
		if (e || !j || strcmp(lcid, out->client.client_id) ||
		    (it.expires && it.expires <= clock_now_ms())) {
			json_decref(j);
			store_item_release(&it);
			ctx_clear(c);
			FAIL(400, "invalid_request", "the launch is unknown, expired, used or for another app");
		}
		str_copy(out->launch_hash, h, sizeof(out->launch_hash));
		oauth_jstr(j, "patient", out->patient, sizeof(out->patient));
		oauth_jstr(j, "encounter", out->encounter, sizeof(out->encounter));
		out->launch_uid = it.uid;
		json_decref(j);
		store_item_release(&it);
	}
	/* 5. keep it for the pages */
	oauth_random(out->id);
	out->created = clock_now_ms();
	oauth_hash(out->id, h);
	e = oauth_put(o, NS_AUTHZ, h, 0, out->client.client_id, authz_json(out),
		      out->created + AUTHZ_TTL_MS, false, c);
out:
	scope_set_free(asked);
	scope_set_free(allowed);
	scope_set_free(eff);
	buf_release(&sb);
	if (e && !err->error)
		err->redirect = false; /* a server failure, not the request's fault */
	if (e && have_client)
		client_release(&out->client);
	return e;
}

enum err oauth_authz_load(struct oauth *o, const char *id, struct oauth_authz *out,
			  struct ctx *c)
{
	struct store_item it;
	char h[OAUTH_HASH_SIZE], cid[128];
	json_t *j = NULL;
	enum err e;

	memset(out, 0, sizeof(*out));
	if (!id || strlen(id) != 43)
		return ctx_errorf(c, ERR_NOTFOUND, "this sign-in request has expired: start again from the app");
	store_item_init(&it);
	oauth_hash(id, h);
	e = store_item_get(o->s, NS_AUTHZ, h, &it, c);
	if (!e && (it.state != STORE_ITEM_LIVE || it.expires <= clock_now_ms()))
		e = ERR_NOTFOUND;
	if (e || !(j = oauth_item_json(&it))) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_NOTFOUND, "this sign-in request has expired: start again from the app");
		goto out;
	}
	str_copy(out->id, id, sizeof(out->id));
	oauth_jstr(j, "client_id", cid, sizeof(cid));
	oauth_jstr(j, "redirect_uri", out->redirect_uri, sizeof(out->redirect_uri));
	oauth_jstr(j, "state", out->state, sizeof(out->state));
	oauth_jstr(j, "nonce", out->nonce, sizeof(out->nonce));
	oauth_jstr(j, "challenge", out->challenge, sizeof(out->challenge));
	oauth_jstr(j, "scope", out->scope, sizeof(out->scope));
	oauth_jstr(j, "launch", out->launch_hash, sizeof(out->launch_hash));
	oauth_jstr(j, "patient", out->patient, sizeof(out->patient));
	oauth_jstr(j, "encounter", out->encounter, sizeof(out->encounter));
	out->launch_uid = json_integer_value(json_object_get(j, "launch_uid"));
	out->max_age = json_integer_value(json_object_get(j, "max_age"));
	out->prompt_none = json_is_true(json_object_get(j, "prompt_none"));
	out->prompt_login = json_is_true(json_object_get(j, "prompt_login"));
	out->created = it.created;
	if ((e = client_get(o->cs, cid, &out->client, c))) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_NOTFOUND, "this app is no longer registered");
	}
out:
	json_decref(j);
	store_item_release(&it);
	return e;
}

enum err oauth_authz_set_patient(struct oauth *o, struct oauth_authz *a, const char *patient,
				 struct ctx *c)
{
	char h[OAUTH_HASH_SIZE];
	struct buf b = BUF_INIT(STORE_ITEM_DATA_MAX);
	json_t *j;
	enum err e;

	str_copy(a->patient, patient, sizeof(a->patient));
	oauth_hash(a->id, h);
	j = authz_json(a);
	e = json_dump_buf(j, &b);
	json_decref(j);
	if (!e)
		e = store_item_update(o->s, NS_AUTHZ, h, b.data, -1, c);
	buf_release(&b);
	return e;
}

void oauth_authz_release(struct oauth_authz *a)
{
	client_release(&a->client);
}

void oauth_authz_drop(struct oauth *o, const char *id)
{
	char h[OAUTH_HASH_SIZE];
	struct ctx ig = CTX_INIT;

	oauth_hash(id, h);
	store_item_delete(o->s, NS_AUTHZ, h, &ig);
}

bool oauth_authz_needs_patient(const struct oauth_authz *a)
{
	struct scope_set *ss = NULL;
	struct ctx ig = CTX_INIT;
	bool need = false;

	if (a->patient[0] || scope_parse(a->scope, &ss, &ig))
		return false;
	need = (scope_flags(ss) & SCOPE_LAUNCH_PATIENT) != 0;
	for (size_t i = 0; !need && i < scope_count(ss); i++)
		need = scope_at(ss, i)->ctx == SCOPE_PATIENT;
	scope_set_free(ss);
	return need;
}

enum err oauth_authz_approve(struct oauth *o, struct oauth_authz *a, const struct session *se,
			     const struct scope_set *granted, int64_t duration_s, char **redirect,
			     struct ctx *c)
{
	struct buf sb = BUF_INIT(8192), u = BUF_INIT(8192);
	char gid[OAUTH_ID_SIZE], code[OAUTH_ID_SIZE], h[OAUTH_HASH_SIZE];
	int64_t now = clock_now_ms();
	json_t *g;
	enum err e;

	*redirect = NULL;
	if ((e = scope_format(granted, &sb, c)))
		goto out;
	oauth_random(gid);
	gid[22] = '\0';
	g = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "scope", sb.data, "username",
		      se->username, "role", user_role_name(se->role), "fhirUser", se->fhir_user,
		      "patient", a->patient, "encounter", a->encounter, "nonce", a->nonce,
		      "auth_time", (json_int_t)se->strong_auth, "ehr", a->launch_hash[0] != '\0');
	if (scope_flags(granted) & SCOPE_ONLINE)
		json_object_set_new(g, "session", json_string(se->id_hash));
	if ((e = store_begin(o->s, c))) {
		json_decref(g);
		goto out;
	}
	e = oauth_put(o, NS_GRANT, gid, se->uid, a->client.client_id, g,
		      duration_s > 0 ? now + duration_s * MS : 0, false, c);
	oauth_random(code);
	oauth_hash(code, h);
	if (!e)
		e = oauth_put(o, NS_CODE, h, se->uid, gid,
			      json_pack("{s:s, s:s, s:s}", "client_id", a->client.client_id,
					"redirect_uri", a->redirect_uri, "challenge", a->challenge),
			      now + o->o.code_ttl * MS, false, c);
	if (!e) {
		/* the decision is taken once: of posts of one form at the same moment, one takes it */
		char ah[OAUTH_HASH_SIZE];
		oauth_hash(a->id, ah);
		e = store_item_take(o->s, NS_AUTHZ, ah, STORE_ITEM_LIVE, STORE_ITEM_USED, NULL, c);
		if (e == ERR_NOTFOUND || e == ERR_CONFLICT) {
			ctx_clear(c);
			e = ctx_errorf(c, ERR_NOTFOUND,
				       "this sign-in request has expired: start again from the app");
		} else if (!e) {
			e = store_item_delete(o->s, NS_AUTHZ, ah, c);
		}
	}
	if (e) {
		store_rollback(o->s);
		goto out;
	}
	if ((e = store_commit(o->s, c)))
		goto out;
	buf_adds(&u, a->redirect_uri);
	url_add_param(&u, "code", code);
	if (a->state[0])
		url_add_param(&u, "state", a->state);
	url_add_param(&u, "iss", o->issuer);
	*redirect = xstrdup(u.data);
out:
	mem_wipe(code, sizeof(code));
	buf_release(&sb);
	buf_release(&u);
	return e;
}

struct prior {
	const struct scope_set *asked;
	const char *patient;
	int64_t now;
	bool found;
	char patient_out[OAUTH_REF_SIZE];
	int64_t expires;
};

static int prior_fn(void *arg, const struct store_item *it)
{
	struct prior *p = arg;
	struct scope_set *have = NULL;
	struct ctx ig = CTX_INIT;
	char pat[OAUTH_REF_SIZE], scope[8192];
	json_t *j;

	if (it->state != STORE_ITEM_LIVE || (it->expires && it->expires <= p->now) ||
	    !(j = oauth_item_json(it)))
		return 0;
	oauth_jstr(j, "patient", pat, sizeof(pat));
	oauth_jstr(j, "scope", scope, sizeof(scope));
	json_decref(j);
	if (p->patient && *p->patient && strcmp(p->patient, pat))
		return 0;
	if (!scope_parse(scope, &have, &ig) && scope_covers(have, p->asked)) {
		p->found = true;
		str_copy(p->patient_out, pat, sizeof(p->patient_out));
		p->expires = it->expires;
	}
	scope_set_free(have);
	return p->found;
}

enum err oauth_authz_prior(struct oauth *o, struct oauth_authz *a, const struct session *se,
			   struct scope_set **granted, int64_t *duration_s, struct ctx *c)
{
	struct prior p;
	struct scope_set *asked = NULL;
	enum err e;

	*granted = NULL;
	*duration_s = 0;
	if ((e = scope_parse(a->scope, &asked, c)))
		return e;
	memset(&p, 0, sizeof(p));
	p.asked = asked;
	p.patient = a->patient;
	p.now = clock_now_ms();
	e = store_item_list(o->s, NS_GRANT, se->uid, a->client.client_id, prior_fn, &p, c);
	if (e < 0 || !p.found) {
		scope_set_free(asked);
		if (e < 0)
			return e;
		return ctx_errorf(c, ERR_NOTFOUND, "no earlier grant covers this request");
	}
	if (!a->patient[0])
		str_copy(a->patient, p.patient_out, sizeof(a->patient));
	*granted = asked;
	*duration_s = p.expires ? (p.expires - p.now) / MS : 0;
	if (p.expires && *duration_s < 1)
		*duration_s = 1;
	return ERR_OK;
}

enum err oauth_launch_create(struct oauth *o, int64_t uid, const char *client_id,
			     const char *patient, const char *encounter, char **url,
			     struct ctx *c)
{
	struct client cl;
	struct buf u = BUF_INIT(8192);
	char id[OAUTH_ID_SIZE], h[OAUTH_HASH_SIZE];
	enum err e;

	*url = NULL;
	if ((e = client_get(o->cs, client_id, &cl, c)))
		return e;
	if (!cl.launch_url[0]) {
		e = ctx_errorf(c, ERR_INVALID, "app '%s' has no launch URL", client_id);
		goto out;
	}
	oauth_random(id);
	oauth_hash(id, h);
	e = oauth_put(o, NS_LAUNCH, h, uid, client_id,
		      json_pack("{s:s, s:s, s:s}", "client_id", client_id, "patient",
				patient ? patient : "", "encounter", encounter ? encounter : ""),
		      clock_now_ms() + o->o.launch_ttl * MS, false, c);
	if (e)
		goto out;
	buf_adds(&u, cl.launch_url);
	url_add_param(&u, "iss", o->fhir_base);
	url_add_param(&u, "launch", id);
	*url = xstrdup(u.data);
out:
	client_release(&cl);
	buf_release(&u);
	return e;
}
