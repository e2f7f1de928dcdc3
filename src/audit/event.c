/*
 * event.c - the event catalogue, validation of struct audit_event, the
 * canonical record serialization, hashed ids and normalized queries, and
 * the parser that reads a stored record back (for the verifier, queries
 * and the FHIR mapping).
 *
 * Everything here is reentrant; nothing keeps state.  The canonical form
 * is documented in audit.h and docs/audit.md: change it only together
 * with AUDIT_RECORD_VERSION, because stored leaves hash these bytes.
 */
#include "audit/audit.h"
#include "audit/audit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"

const struct audit_type_info audit_types[AUDIT_TYPE_COUNT] = {
	[AUDIT_TYPE_NONE] = {NULL, 0},
	[AUDIT_SIGNIN] = {"session.signin", 'E'},
	[AUDIT_SIGNIN_FAILED] = {"session.signin-failed", 'E'},
	[AUDIT_SIGNOUT] = {"session.signout", 'E'},
	[AUDIT_SESSION_EXPIRED] = {"session.expired", 'E'},
	[AUDIT_MFA_ENROL] = {"session.mfa-enrol", 'C'},
	[AUDIT_MFA_USE] = {"session.mfa-use", 'E'},
	[AUDIT_AUTHZ_GRANTED] = {"oauth.authorize-granted", 'E'},
	[AUDIT_AUTHZ_DENIED] = {"oauth.authorize-denied", 'E'},
	[AUDIT_TOKEN_ISSUED] = {"oauth.token-issued", 'C'},
	[AUDIT_TOKEN_REFRESHED] = {"oauth.token-refreshed", 'C'},
	[AUDIT_TOKEN_INTROSPECTED] = {"oauth.token-introspected", 'R'},
	[AUDIT_TOKEN_REVOKED] = {"oauth.token-revoked", 'D'},
	[AUDIT_FHIR_READ] = {"fhir.read", 'R'},
	[AUDIT_FHIR_VREAD] = {"fhir.vread", 'R'},
	[AUDIT_FHIR_SEARCH] = {"fhir.search", 'E'},
	[AUDIT_FHIR_HISTORY] = {"fhir.history", 'R'},
	[AUDIT_FHIR_CREATE] = {"fhir.create", 'C'},
	[AUDIT_FHIR_UPDATE] = {"fhir.update", 'U'},
	[AUDIT_FHIR_DELETE] = {"fhir.delete", 'D'},
	[AUDIT_FHIR_EVERYTHING] = {"fhir.everything", 'E'},
	[AUDIT_FHIR_EXPORT] = {"fhir.export", 'E'},
	[AUDIT_CONSENT_GRANTED] = {"consent.granted", 'C'},
	[AUDIT_CONSENT_REVOKED] = {"consent.revoked", 'U'},
	[AUDIT_CONSENT_RENEWED] = {"consent.renewed", 'U'},
	[AUDIT_CONSENT_EXPIRED] = {"consent.expired", 'U'},
	[AUDIT_PROXY_INVITED] = {"proxy.invited", 'C'},
	[AUDIT_PROXY_ACCEPTED] = {"proxy.accepted", 'U'},
	[AUDIT_PROXY_APPROVED] = {"proxy.approved", 'U'},
	[AUDIT_PROXY_REVOKED] = {"proxy.revoked", 'U'},
	[AUDIT_PROXY_EXPIRED] = {"proxy.expired", 'U'},
	[AUDIT_POLICY_DENIED] = {"policy.denied", 'E'},
	[AUDIT_BREAKGLASS_START] = {"access.breakglass-start", 'E'},
	[AUDIT_BREAKGLASS_END] = {"access.breakglass-end", 'E'},
	[AUDIT_ELEVATION_START] = {"access.elevation-start", 'E'},
	[AUDIT_ELEVATION_END] = {"access.elevation-end", 'E'},
	[AUDIT_ADMIN_CLIENT] = {"admin.client", 'U'},
	[AUDIT_ADMIN_USER] = {"admin.user", 'U'},
	[AUDIT_ADMIN_CONFIG] = {"admin.config", 'U'},
	[AUDIT_ADMIN_KEY] = {"admin.key", 'U'},
	[AUDIT_SYSTEM_START] = {"system.start", 'E'},
	[AUDIT_SYSTEM_STOP] = {"system.stop", 'E'},
	[AUDIT_SYSTEM_STORE_ERROR] = {"system.store-error", 'E'},
	[AUDIT_SYSTEM_BACKLOG] = {"system.audit-backlog", 'E'},
	[AUDIT_SYSTEM_PRUNE] = {"system.audit-prune", 'D'},
	[AUDIT_PASSWORD_CHANGE] = {"session.password-change", 'U'},
};

const char *audit_type_name(enum audit_type t)
{
	if ((int)t <= AUDIT_TYPE_NONE || t >= AUDIT_TYPE_COUNT)
		return NULL;
	return audit_types[t].name;
}

enum audit_type audit_type_parse(const char *name)
{
	if (!name)
		return AUDIT_TYPE_NONE;
	for (int t = 1; t < AUDIT_TYPE_COUNT; t++)
		if (strcmp(audit_types[t].name, name) == 0)
			return (enum audit_type)t;
	return AUDIT_TYPE_NONE;
}

char audit_type_action(enum audit_type t)
{
	if ((int)t <= AUDIT_TYPE_NONE || t >= AUDIT_TYPE_COUNT)
		return 0;
	return audit_types[t].action;
}

bool audit_ref_parse(const char *s, char node[AUDIT_NODE_MAX + 1], uint64_t *n)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	int64_t v;

	if (!colon || colon == s || (size_t)(colon - s) > AUDIT_NODE_MAX || colon[1] < '0' ||
	    colon[1] > '9' || str_to_i64(colon + 1, 0, INT64_MAX, &v))
		return false;
	memcpy(node, s, (size_t)(colon - s));
	node[colon - s] = '\0';
	if (!audit_node_valid(node))
		return false;
	*n = (uint64_t)v;
	return true;
}

bool audit_cursor_parse(const char *s, struct audit_cursor *out)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	char num[24];
	int64_t t;

	if (!colon || (size_t)(colon - s) >= sizeof(num))
		return false;
	memcpy(num, s, (size_t)(colon - s));
	num[colon - s] = '\0';
	if (str_to_i64(num, 0, INT64_MAX, &t) || !audit_ref_parse(colon + 1, out->node, &out->seq))
		return false;
	out->time_ms = t;
	return true;
}

bool audit_node_valid(const char *node)
{
	size_t n;

	if (!node)
		return false;
	n = strlen(node);
	if (n == 0 || n > AUDIT_NODE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = node[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

void audit_add_u64(struct buf *b, uint64_t v)
{
	char d[24];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_add(b, d + i, sizeof(d) - i);
}

void audit_record_prefix(struct buf *b, uint64_t seq)
{
	static const char head[] = "{\"v\":1,\"seq\":";

	_Static_assert(AUDIT_RECORD_VERSION == 1, "the prefix spells the version");
	buf_add(b, head, sizeof(head) - 1);
	audit_add_u64(b, seq);
	buf_addch(b, ',');
}

/* ---- hashes ------------------------------------------------------------ */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding of n bytes into out (4n/3 rounded up + NUL). */
static void b64url_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
	}
	out[o] = '\0';
}

static int b64url_val(char ch)
{
	const char *p = ch ? strchr(b64url, ch) : NULL;
	return p ? (int)(p - b64url) : -1;
}

void hash_b64(const uint8_t h[MERKLE_HASH_LEN], char out[44])
{
	b64url_encode(h, MERKLE_HASH_LEN, out);
}

bool hash_unb64(const char *s, uint8_t out[MERKLE_HASH_LEN])
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	if (!s || strlen(s) != 43)
		return false;
	for (size_t i = 0; i < 43; i++) {
		int v = b64url_val(s[i]);
		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* 43 characters carry 258 bits: the last two must be zero (canonical) */
	return o == MERKLE_HASH_LEN && acc == 0;
}

json_t *hashes_json(const uint8_t *h, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		char s[44];
		hash_b64(h + i * MERKLE_HASH_LEN, s);
		json_array_append_new(a, json_string(s));
	}
	return a;
}

void audit_hash_id(const char *id, char out[AUDIT_HASH_SIZE])
{
	uint8_t h[32];
	unsigned int hl = 0;

	if (!id)
		id = "";
	if (!EVP_Digest(id, strlen(id), h, &hl, EVP_sha256(), NULL) || hl != 32) {
		fputs("fatal: SHA-256 failed\n", stderr);
		abort();
	}
	memcpy(out, "sha256:", 7);
	b64url_encode(h, 32, out + 7);
}

static bool is_hashed_id(const char *s)
{
	if (strlen(s) != AUDIT_HASH_SIZE - 1 || !str_starts(s, "sha256:"))
		return false;
	for (size_t i = 7; s[i]; i++)
		if (b64url_val(s[i]) < 0)
			return false;
	return true;
}

/* ---- validation and serialization -------------------------------------------- */

static bool present(const char *s)
{
	return s && *s;
}

static enum err check_text(const char *field, const char *s, size_t max, struct ctx *c)
{
	size_t n;

	if (!present(s))
		return ERR_OK;
	n = strlen(s);
	if (n > max)
		return ctx_errorx(c, ERR_TOOBIG, field, "audit field '%s' is longer than %zu bytes",
				  field, max);
	if (!str_utf8_valid(s, n))
		return ctx_errorx(c, ERR_INVALID, field, "audit field '%s' is not valid UTF-8", field);
	return ERR_OK;
}

/* A code: 1..64 bytes of [a-z0-9_.:-] (plus A-Z and '/' with 'wide'). */
static bool code_valid(const char *s, bool wide)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
		    ch == ':' || ch == '-')
			continue;
		if (wide && ((ch >= 'A' && ch <= 'Z') || ch == '/'))
			continue;
		return false;
	}
	return true;
}

static enum err validate(const struct audit_event *ev, int64_t time_ms, struct ctx *c)
{
	enum err e = ERR_OK;
	char action;

	if (!ev)
		return ctx_errorf(c, ERR_INVALID, "no audit event");
	if (!audit_type_name(ev->type))
		return ctx_errorx(c, ERR_INVALID, "type", "unknown audit event type %d", (int)ev->type);
	action = ev->action ? ev->action : audit_type_action(ev->type);
	if (action == 0 || !strchr("CRUDE", action))
		return ctx_errorx(c, ERR_INVALID, "action", "audit action must be C, R, U, D or E");
	if (ev->outcome != 0 && ev->outcome != 4 && ev->outcome != 8 && ev->outcome != 12)
		return ctx_errorx(c, ERR_INVALID, "outcome",
				  "audit outcome must be 0, 4, 8 or 12, not %d", ev->outcome);
	if (time_ms < 0 || time_ms >= 253402300800000LL)
		return ctx_errorx(c, ERR_INVALID, "time", "audit time out of range");
	if (present(ev->outcome_code) && !code_valid(ev->outcome_code, false))
		return ctx_errorx(c, ERR_INVALID, "outcomeCode",
				  "audit outcome code must be 1 to 64 of [a-z0-9_.:-]");
	{
		const struct {
			const char *name, *value;
			size_t max;
		} texts[] = {
			{"agent.user", ev->agent.user_id, AUDIT_ID_MAX},
			{"agent.username", ev->agent.username, AUDIT_ID_MAX},
			{"agent.role", ev->agent.role, AUDIT_ID_MAX},
			{"agent.fhirUser", ev->agent.fhir_user, AUDIT_ID_MAX},
			{"agent.client", ev->agent.client_id, AUDIT_ID_MAX},
			{"agent.onBehalfOf", ev->agent.on_behalf_of, AUDIT_ID_MAX},
			{"patient", ev->patient, AUDIT_ID_MAX},
			{"source.addr", ev->source.client_addr, AUDIT_ID_MAX},
			{"authority.scopes", ev->authority.scopes, AUDIT_TEXT_MAX},
			{"authority.consent", ev->authority.consent_id, AUDIT_ID_MAX},
			{"authority.grant", ev->authority.grant_id, AUDIT_ID_MAX},
			{"authority.breakglass", ev->authority.breakglass_id, AUDIT_ID_MAX},
			{"correlation.request", ev->correlation.request_id, AUDIT_ID_MAX},
			{"correlation.trace", ev->correlation.trace_id, AUDIT_ID_MAX},
		};
		for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]) && !e; i++)
			e = check_text(texts[i].name, texts[i].value, texts[i].max, c);
		if (e)
			return e;
	}
	if (present(ev->source.session_hash) && !is_hashed_id(ev->source.session_hash))
		return ctx_errorx(c, ERR_INVALID, "source.session",
				  "audit session id must be hashed with audit_hash_id()");
	if (present(ev->source.token_hash) && !is_hashed_id(ev->source.token_hash))
		return ctx_errorx(c, ERR_INVALID, "source.token",
				  "audit token id must be hashed with audit_hash_id()");
	if (ev->n_entities > AUDIT_ENTITIES_MAX || (ev->n_entities && !ev->entities))
		return ctx_errorx(c, ERR_TOOBIG, "entity", "at most %d audit entities",
				  AUDIT_ENTITIES_MAX);
	for (size_t i = 0; i < ev->n_entities; i++) {
		const struct audit_entity *en = &ev->entities[i];
		if (!present(en->type) && !present(en->id) && !present(en->query))
			return ctx_errorx(c, ERR_INVALID, "entity", "audit entity %zu is empty", i);
		if ((e = check_text("entity.type", en->type, 64, c)) ||
		    (e = check_text("entity.id", en->id, AUDIT_ID_MAX, c)) ||
		    (e = check_text("entity.version", en->version, 64, c)) ||
		    (e = check_text("entity.category", en->category, 64, c)) ||
		    (e = check_text("entity.query", en->query, AUDIT_TEXT_MAX, c)))
			return e;
	}
	if (ev->authority.n_reasons > AUDIT_REASONS_MAX ||
	    (ev->authority.n_reasons && !ev->authority.reasons))
		return ctx_errorx(c, ERR_TOOBIG, "authority.reasons", "at most %d reason codes",
				  AUDIT_REASONS_MAX);
	for (size_t i = 0; i < ev->authority.n_reasons; i++)
		if (!ev->authority.reasons[i] || !code_valid(ev->authority.reasons[i], true))
			return ctx_errorx(c, ERR_INVALID, "authority.reasons",
					  "reason code %zu must be 1 to 64 of [A-Za-z0-9_.:/-]", i);
	return ERR_OK;
}

/* A canonical JSON string (RFC 8785 escaping). */
static void jstr(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0, i;

	buf_addch(b, '"');
	for (i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		switch (ch) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			u[0] = '\\';
			u[1] = 'u';
			u[2] = '0';
			u[3] = '0';
			u[4] = hex[ch >> 4];
			u[5] = hex[ch & 15];
			u[6] = '\0';
			esc = u;
		}
		buf_add(b, s + run, i - run);
		buf_adds(b, esc);
		run = i + 1;
	}
	buf_add(b, s + run, i - run);
	buf_addch(b, '"');
}

/* ,"name":"value" (or without the comma first) when value is present. */
static void member(struct buf *b, bool *first, const char *name, const char *value)
{
	if (!present(value))
		return;
	if (!*first)
		buf_addch(b, ',');
	*first = false;
	buf_addch(b, '"');
	buf_adds(b, name);
	buf_add(b, "\":", 2);
	jstr(b, value);
}

/* ,"name":{...} with the present members, or nothing when none is. */
static void object(struct buf *b, const char *name, const char *const names[],
		   const char *const values[], size_t n)
{
	bool any = false, first = true;

	for (size_t i = 0; i < n; i++)
		any = any || present(values[i]);
	if (!any)
		return;
	buf_add(b, ",\"", 2);
	buf_adds(b, name);
	buf_add(b, "\":{", 3);
	for (size_t i = 0; i < n; i++)
		member(b, &first, names[i], values[i]);
	buf_addch(b, '}');
}

enum err event_serialize_tail(const struct audit_event *ev, const char *node, int64_t time_ms,
			      struct buf *out, struct ctx *c)
{
	size_t start = out->len;
	char instant[32];
	bool first = true;
	enum err e;

	if (!audit_node_valid(node))
		return ctx_errorf(c, ERR_INVALID, "invalid audit node id");
	if ((e = validate(ev, time_ms, c)))
		return e;
	clock_format_instant(time_ms, instant);
	member(out, &first, "node", node);
	member(out, &first, "time", instant);
	member(out, &first, "type", audit_type_name(ev->type));
	{
		char tail[40] = ",\"action\":\"X\",\"outcome\":";
		size_t n = strlen(tail);
		tail[11] = ev->action ? ev->action : audit_type_action(ev->type);
		buf_add(out, tail, n);
		audit_add_u64(out, (uint64_t)ev->outcome);
	}
	member(out, &first, "outcomeCode", ev->outcome_code);
	{
		const char *const names[] = {"user", "username", "role",
					     "fhirUser", "client", "onBehalfOf"};
		const char *const values[] = {ev->agent.user_id,   ev->agent.username,
					      ev->agent.role,      ev->agent.fhir_user,
					      ev->agent.client_id, ev->agent.on_behalf_of};
		object(out, "agent", names, values, 6);
	}
	member(out, &first, "patient", ev->patient);
	if (ev->n_entities) {
		buf_adds(out, ",\"entity\":[");
		for (size_t i = 0; i < ev->n_entities; i++) {
			const struct audit_entity *en = &ev->entities[i];
			bool f2 = true;
			if (i)
				buf_addch(out, ',');
			buf_addch(out, '{');
			member(out, &f2, "type", en->type);
			member(out, &f2, "id", en->id);
			member(out, &f2, "version", en->version);
			member(out, &f2, "category", en->category);
			member(out, &f2, "query", en->query);
			buf_addch(out, '}');
		}
		buf_addch(out, ']');
	}
	{
		const char *const names[] = {"addr", "session", "token"};
		const char *const values[] = {ev->source.client_addr, ev->source.session_hash,
					      ev->source.token_hash};
		object(out, "source", names, values, 3);
	}
	{
		const struct audit_event *v = ev;
		bool any = present(v->authority.scopes) || present(v->authority.consent_id) ||
			   present(v->authority.grant_id) || present(v->authority.breakglass_id) ||
			   v->authority.n_reasons;
		if (any) {
			bool f2 = true;
			buf_adds(out, ",\"authority\":{");
			member(out, &f2, "scopes", v->authority.scopes);
			member(out, &f2, "consent", v->authority.consent_id);
			member(out, &f2, "grant", v->authority.grant_id);
			member(out, &f2, "breakglass", v->authority.breakglass_id);
			if (v->authority.n_reasons) {
				buf_adds(out, f2 ? "\"reasons\":[" : ",\"reasons\":[");
				for (size_t i = 0; i < v->authority.n_reasons; i++) {
					if (i)
						buf_addch(out, ',');
					jstr(out, v->authority.reasons[i]);
				}
				buf_addch(out, ']');
			}
			buf_addch(out, '}');
		}
	}
	{
		const char *const names[] = {"request", "trace"};
		const char *const values[] = {ev->correlation.request_id, ev->correlation.trace_id};
		object(out, "correlation", names, values, 2);
	}
	buf_addch(out, '}');
	if (out->err || out->len - start > AUDIT_RECORD_MAX - 64) {
		e = out->err ? out->err : ERR_TOOBIG;
		buf_truncate(out, start);
		out->err = ERR_OK;
		return ctx_errorf(c, e, "audit record is larger than %d bytes", AUDIT_RECORD_MAX);
	}
	return ERR_OK;
}

enum err audit_event_serialize(const struct audit_event *ev, const char *node, uint64_t seq,
			       struct buf *out, struct ctx *c)
{
	size_t start = out->len;
	enum err e;

	audit_record_prefix(out, seq);
	e = event_serialize_tail(ev, node, ev && ev->time_ms ? ev->time_ms : clock_now_ms(), out, c);
	if (!e && out->err)
		e = ctx_errorf(c, out->err, "audit record too large");
	if (e) {
		buf_truncate(out, start);
		out->err = ERR_OK;
	}
	return e;
}

/* ---- normalized queries ---------------------------------------------------- */

static const char *const identity_params[] = {
	"name",	     "family", "given",	 "phonetic", "identifier", "birthdate", "death-date",
	"address",   "phone",  "email",	 "telecom",  "_content",   "_text",
};

static bool identity_param(const char *p, size_t n)
{
	for (size_t i = 0; i < sizeof(identity_params) / sizeof(identity_params[0]); i++)
		if (strlen(identity_params[i]) == n && memcmp(identity_params[i], p, n) == 0)
			return true;
	/* address-city, address-postalcode ... but not address-use (a code) */
	if (n > 8 && memcmp(p, "address-", 8) == 0 && !(n == 11 && memcmp(p, "address-use", 11) == 0))
		return true;
	return false;
}

/*
 * Does parameter 'name' (with chains and modifiers) name a person?
 * Segments are split at '.', each reduced to its part before ':'; for
 * _has:Type:ref:param the last component is the parameter.
 */
static bool identity_name(const char *name)
{
	const char *p = name;

	if (str_starts(name, "_has:")) {
		const char *last = strrchr(name, ':');
		return identity_param(last + 1, strlen(last + 1));
	}
	while (*p) {
		size_t seg = strcspn(p, ".");
		size_t base = strcspn(p, ":.");
		if (base > seg)
			base = seg;
		if (identity_param(p, base))
			return true;
		p += seg;
		if (*p == '.')
			p++;
	}
	return false;
}

/* Is 'item' a reference to a patient other than 'patient'? */
static bool other_patient_ref(const char *base, size_t base_len, const char *type,
			      const char *item, size_t n, const char *patient)
{
	const char *id = item;
	size_t idn = n;
	bool typed = false;

	for (size_t i = n; i > 0; i--) {
		if (item[i - 1] == '/') {
			/* the segment before must be "Patient" */
			size_t j = i - 1;
			size_t k = j;
			while (k > 0 && item[k - 1] != '/')
				k--;
			if (j - k != 7 || memcmp(item + k, "Patient", 7) != 0)
				return false;
			id = item + i;
			idn = n - i;
			typed = true;
			break;
		}
	}
	if (!typed) {
		bool patient_param = (base_len == 7 && memcmp(base, "patient", 7) == 0) ||
				     (base_len == 7 && memcmp(base, "subject", 7) == 0) ||
				     (base_len == 11 && memcmp(base, "beneficiary", 11) == 0) ||
				     (base_len == 3 && memcmp(base, "_id", 3) == 0 && type &&
				      strcmp(type, "Patient") == 0) ||
				     (base_len == 4 && memcmp(base, "link", 4) == 0 && type &&
				      strcmp(type, "Patient") == 0);
		if (!patient_param)
			return false;
	}
	if (idn == 0)
		return false;
	return !(patient && strlen(patient) == idn && memcmp(patient, id, idn) == 0);
}

static bool patient_ref_hidden(const char *name, const char *type, const char *value,
			       const char *patient)
{
	size_t base_len = strcspn(name, ":.");
	const char *p = value;

	/* a chained parameter (subject.name) is about what it chains to */
	if (name[strcspn(name, ".")] == '.')
		return false;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (other_patient_ref(name, base_len, type, p, n, patient))
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

static bool keep_char(unsigned char ch, bool is_name)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	if (strchr("-._", ch) && ch)
		return true;
	if (is_name)
		return ch == ':';
	return ch && strchr(":/|,$@*!'();", ch) != NULL;
}

static void pct(struct buf *b, const char *s, bool is_name)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (keep_char(ch, is_name)) {
			buf_addch(b, (char)ch);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			buf_add(b, e, 3);
		}
	}
}

struct qpart {
	char *name;  /* encoded */
	char *value; /* encoded or hashed */
};

static int qpart_cmp(const void *a, const void *b)
{
	const struct qpart *x = a, *y = b;
	int r = strcmp(x->name, y->name);
	return r ? r : strcmp(x->value, y->value);
}

/* out = "~" and 22 base64url characters of HMAC-SHA-256(pepper, d[0..n)), truncated to 128 bits. */
static void keyed_hash(const uint8_t *pepper, const void *d, size_t n, char out[AUDIT_VALUE_HASH_SIZE])
{
	uint8_t mac[32];
	unsigned int ml = 0;
	char enc[44];

	if (!HMAC(EVP_sha256(), pepper, AUDIT_PEPPER_LEN, d, n, mac, &ml) || ml != 32) {
		fputs("fatal: HMAC-SHA-256 failed\n", stderr);
		abort();
	}
	b64url_encode(mac, 16, enc);
	out[0] = '~';
	memcpy(out + 1, enc, 22);
	out[23] = '\0';
}

enum err audit_hash_value(const struct audit *a, const char *purpose, const char *s,
			  char out[AUDIT_VALUE_HASH_SIZE], struct ctx *c)
{
	const uint8_t *pepper = a ? audit_pepper(a) : NULL;
	struct buf in = BUF_INIT(AUDIT_TEXT_MAX * 4);

	out[0] = '\0';
	if (!pepper)
		return ctx_errorf(c, ERR_INVALID, "no audit log to hash a value for");
	if (!purpose || !*purpose)
		return ctx_errorf(c, ERR_INVALID, "a hashed value needs a purpose");
	/* the purpose and its NUL first: these never equal a search value's hash */
	buf_add(&in, purpose, strlen(purpose) + 1);
	if (buf_adds(&in, s ? s : "")) {
		buf_release(&in);
		return ctx_errorf(c, ERR_TOOBIG, "value too long to hash");
	}
	keyed_hash(pepper, in.data, in.len, out);
	buf_release(&in);
	return ERR_OK;
}

enum err audit_query_normalize(const struct audit *a, const char *type,
			       const struct audit_param *params, size_t n, const char *patient,
			       struct buf *out, struct ctx *c)
{
	struct qpart *parts = NULL;
	size_t start = out->len, total = 0;
	enum err e = ERR_OK;
	const uint8_t *pepper = a ? audit_pepper(a) : NULL;

	if (!pepper)
		return ctx_errorf(c, ERR_INVALID, "no audit log to normalize a query for");
	if (n > 1024)
		return ctx_errorf(c, ERR_TOOBIG, "too many search parameters to audit");
	if (type && *type && (e = check_text("type", type, 64, c)))
		return e;
	parts = xcalloc(n ? n : 1, sizeof(*parts));
	for (size_t i = 0; i < n; i++) {
		const char *name = params[i].name, *value = params[i].value ? params[i].value : "";
		struct buf nb = BUF_INIT(AUDIT_TEXT_MAX * 3), vb = BUF_INIT(AUDIT_TEXT_MAX * 3);

		if (!name || !*name) {
			e = ctx_errorf(c, ERR_INVALID, "search parameter %zu has no name", i);
			goto out;
		}
		total += strlen(name) + strlen(value);
		if (total > AUDIT_TEXT_MAX * 4) {
			e = ctx_errorf(c, ERR_TOOBIG, "search too long to audit");
			goto out;
		}
		if (!str_utf8_valid(name, strlen(name)) || !str_utf8_valid(value, strlen(value))) {
			e = ctx_errorf(c, ERR_INVALID, "search parameter %zu is not valid UTF-8", i);
			goto out;
		}
		pct(&nb, name, true);
		if (*value && (params[i].hash || identity_name(name) ||
			       patient_ref_hidden(name, type, value, patient))) {
			char enc[AUDIT_VALUE_HASH_SIZE];
			keyed_hash(pepper, value, strlen(value), enc);
			buf_adds(&vb, enc);
		} else {
			for (const char *v = value; *v; v++) {
				if (*v == '~')
					buf_adds(&vb, "%7E");
				else {
					char one[2] = {*v, 0};
					pct(&vb, one, false);
				}
			}
		}
		if (nb.err || vb.err) {
			buf_release(&nb);
			buf_release(&vb);
			e = ctx_errorf(c, ERR_TOOBIG, "search too long to audit");
			goto out;
		}
		parts[i].name = buf_take(&nb, NULL);
		parts[i].value = buf_take(&vb, NULL);
	}
	qsort(parts, n, sizeof(*parts), qpart_cmp);
	if (type && *type)
		pct(out, type, true);
	buf_addch(out, '?');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_addch(out, '&');
		buf_adds(out, parts[i].name);
		buf_addch(out, '=');
		buf_adds(out, parts[i].value);
	}
	if (out->err || out->len - start > AUDIT_TEXT_MAX) {
		e = ctx_errorf(c, ERR_TOOBIG, "normalized search is longer than %d bytes",
			       AUDIT_TEXT_MAX);
		buf_truncate(out, start);
		out->err = ERR_OK;
	}
out:
	for (size_t i = 0; i < n; i++) {
		free(parts[i].name);
		free(parts[i].value);
	}
	free(parts);
	return e;
}

/* ---- reading records back ---------------------------------------------------- */

enum err instant_parse_ms(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac;
	char z, back[32];
	struct tm tm = {0};
	time_t t;
	int used = 0;

	if (!s || strlen(s) != 24)
		return ERR_INVALID;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c%n", &y, &mo, &d, &h, &mi, &sec, &frac, &z,
		   &used) != 8 ||
	    used != 24 || z != 'Z')
		return ERR_INVALID;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*ms = (int64_t)t * 1000 + frac;
	/* only the exact canonical spelling: no normalized dates, no signs */
	clock_format_instant(*ms, back);
	return strcmp(back, s) == 0 ? ERR_OK : ERR_INVALID;
}

static const char *obj_str(const json_t *o, const char *k)
{
	const json_t *v = o ? json_object_get(o, k) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

enum err rec_parse(const char *body, size_t n, json_t **root, uint64_t *seq, const char **node,
		   struct rec_cols *cols, struct ctx *c)
{
	json_t *r = json_parse_bounded(body, n, 6, c);
	const json_t *v, *s, *o, *agent, *corr;
	const char *time;

	*root = NULL;
	if (!r)
		return ERR_INVALID;
	v = json_object_get(r, "v");
	s = json_object_get(r, "seq");
	o = json_object_get(r, "outcome");
	if (!json_is_object(r) || !json_is_integer(v) || json_integer_value(v) != AUDIT_RECORD_VERSION ||
	    !json_is_integer(s) || json_integer_value(s) < 0 || !obj_str(r, "node") ||
	    !json_is_integer(o) || !obj_str(r, "type")) {
		json_decref(r);
		return ctx_errorf(c, ERR_INVALID, "not an audit record of version %d",
				  AUDIT_RECORD_VERSION);
	}
	time = obj_str(r, "time");
	memset(cols, 0, sizeof(*cols));
	if (!time || instant_parse_ms(time, &cols->time_ms)) {
		json_decref(r);
		return ctx_errorf(c, ERR_INVALID, "audit record time is not an instant");
	}
	*seq = (uint64_t)json_integer_value(s);
	*node = obj_str(r, "node");
	cols->type = obj_str(r, "type");
	cols->outcome = (int)json_integer_value(o);
	agent = json_object_get(r, "agent");
	corr = json_object_get(r, "correlation");
	cols->patient = obj_str(r, "patient");
	cols->agent = obj_str(agent, "username") ? obj_str(agent, "username") : obj_str(agent, "user");
	cols->client = obj_str(agent, "client");
	cols->request_id = obj_str(corr, "request");
	cols->trace_id = obj_str(corr, "trace");
	*root = r;
	return ERR_OK;
}
