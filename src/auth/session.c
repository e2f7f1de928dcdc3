/*
 * session.c - sign-in with throttling, and browser sessions.
 *
 * Throttling keeps two counters of failed sign-ins as auth items: one per
 * account name (known or not, so that the answer never tells whether an
 * account exists) and one per client address.  From the fourth failure
 * on, the next attempt must wait 1 s, 2 s, 4 s ... (at most 60 s) after
 * the last failure; 'lock_after' failures lock for 'lock_time'.  A waiting
 * attempt is refused before any password hashing, so a flood costs no
 * Argon2id work.  Attempts sent at once must not all pass the check of
 * the delays before any of them has failed: a gate in the process lets
 * one password check at a time run for an account and GATE_ADDR_MAX for
 * an address, the others waiting their turn (at most GATE_WAIT_MS), so
 * each attempt sees the failures before it and a burst gets no more
 * guesses than attempts made one by one.  Right passwords sent at once
 * only wait, they are never counted.  A failure is counted in a
 * transaction of its own.  Counters expire on their own after twice the
 * lock time.
 *
 * A session is an auth item keyed by the SHA-256 of the cookie value,
 * owned by the user; it ends after 'session_idle' without use or
 * 'session_max' after sign-in, and with sign-out.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "auth/oauth_int.h"
#include "auth/totp.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"

#define THROTTLE_FREE 3      /* failures without delay */
#define THROTTLE_DELAY_MAX 60

struct counter {
	char key[STORE_ITEM_KEY_SIZE];
	int64_t failures, last;
};

static void counter_load(struct oauth *o, struct counter *k)
{
	struct store_item it;
	struct ctx c = CTX_INIT;
	json_t *j;

	k->failures = k->last = 0;
	store_item_init(&it);
	if (!store_item_get(o->s, NS_THROTTLE, k->key, &it, &c) && (j = oauth_item_json(&it))) {
		k->failures = json_integer_value(json_object_get(j, "failures"));
		k->last = json_integer_value(json_object_get(j, "last"));
		json_decref(j);
	}
	store_item_release(&it);
}

/*
 * Seconds this counter makes the next attempt wait (0: go ahead).  An
 * address counter locks only after five times as many failures as an
 * account's: many people may share one address (a clinic behind NAT).
 */
static int64_t counter_wait(const struct oauth *o, const struct counter *k, int64_t now)
{
	int64_t until, lock_after = o->o.lock_after * (str_starts(k->key, "addr:") ? 5 : 1);

	if (k->failures >= lock_after)
		until = k->last + o->o.lock_time * MS;
	else if (k->failures > THROTTLE_FREE) {
		int64_t d = (int64_t)1 << (k->failures - THROTTLE_FREE - 1 < 6 ? k->failures - THROTTLE_FREE - 1 : 6);
		until = k->last + (d < THROTTLE_DELAY_MAX ? d : THROTTLE_DELAY_MAX) * MS;
	} else {
		return 0;
	}
	return until > now ? (until - now + 999) / MS : 0;
}

/* Count one more failure on 'k' (as loaded), made at 'now'. */
static enum err counter_fail(struct oauth *o, struct counter *k, int64_t now, struct ctx *c)
{
	return oauth_put(o, NS_THROTTLE, k->key, 0, NULL,
			 json_pack("{s:I, s:I}", "failures", (json_int_t)(k->failures + 1), "last",
				   (json_int_t)now),
			 now + 2 * o->o.lock_time * MS, true, c);
}

/* Count a wrong password on 'ku' and 'ka' at 'now', as one transaction: no increment is lost. */
static void counters_fail(struct oauth *o, struct counter *ku, struct counter *ka, int64_t now)
{
	struct ctx ig = CTX_INIT;

	if (store_begin(o->s, &ig)) {
		log_msg(LOG_WARN, "sign-in throttling: cannot count a failure: %s", ig.msg);
		return;
	}
	counter_load(o, ku);
	counter_load(o, ka);
	if (counter_fail(o, ku, now, &ig) || counter_fail(o, ka, now, &ig) ||
	    store_commit(o->s, &ig)) {
		store_rollback(o->s);
		log_msg(LOG_WARN, "sign-in throttling: cannot count a failure: %s", ig.msg);
	}
}

/* ---- the gate: password checks in flight, per account and per address ---- */

#define GATE_ADDR_MAX 4      /* checks at once from one address (a clinic behind one) */
#define GATE_WAIT_MS 5000
#define GATE_SLOTS 64        /* keys in flight at once, all accounts and addresses */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static struct {
	char key[STORE_ITEM_KEY_SIZE];
	unsigned n;
} gate[GATE_SLOTS];

/* The slot of 'key', or a free one when 'take'; NULL when none (call with gate_mu held). */
static unsigned *gate_slot(const char *key, bool take)
{
	size_t free_at = GATE_SLOTS;

	for (size_t i = 0; i < GATE_SLOTS; i++) {
		if (gate[i].n && !strcmp(gate[i].key, key))
			return &gate[i].n;
		if (!gate[i].n && free_at == GATE_SLOTS)
			free_at = i;
	}
	if (!take || free_at == GATE_SLOTS)
		return NULL;
	str_copy(gate[free_at].key, key, sizeof(gate[free_at].key));
	return &gate[free_at].n;
}

static unsigned gate_count(const char *key)
{
	unsigned *n = gate_slot(key, false);

	return n ? *n : 0;
}

/*
 * Wait until an attempt for account key 'ku' and address key 'ka' may
 * check its password, and count it in: false when that took longer than
 * GATE_WAIT_MS (or the gate is full).
 */
static bool gate_enter(const char *ku, const char *ka)
{
	struct timespec until;
	bool ok = false;

	clock_after_ms(CLOCK_REALTIME, GATE_WAIT_MS, &until);
	pthread_mutex_lock(&gate_mu);
	for (;;) {
		if (gate_count(ku) == 0 && gate_count(ka) < GATE_ADDR_MAX) {
			unsigned *u = gate_slot(ku, true), *a;

			if (u) {
				(*u)++; /* before the address's slot is looked for: never the same free one */
				if ((a = gate_slot(ka, true))) {
					(*a)++;
					ok = true;
					break;
				}
				(*u)--;
			}
		}
		if (pthread_cond_timedwait(&gate_cv, &gate_mu, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&gate_mu);
	return ok;
}

static void gate_leave(const char *ku, const char *ka)
{
	unsigned *n;

	pthread_mutex_lock(&gate_mu);
	if ((n = gate_slot(ku, false)))
		(*n)--;
	if ((n = gate_slot(ka, false)))
		(*n)--;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

enum err oauth_signin(struct oauth *o, const char *username, const char *password,
		      const char *addr, struct user *out, int64_t *retry_after, struct ctx *c)
{
	struct counter ku, ka;
	char name[USER_NAME_MAX + 1];
	int64_t now = clock_now_ms(), w;
	struct ctx ig = CTX_INIT;
	enum err e;

	*retry_after = 0;
	oauth_maintain(o);
	if (!username || !password)
		return ctx_errorf(c, ERR_UNAUTHORIZED, "wrong username or password");
	if (user_name_normalize(username, name, &ig))
		str_copy(name, "?invalid", sizeof(name));
	snprintf(ku.key, sizeof(ku.key), "user:%s", name);
	snprintf(ka.key, sizeof(ka.key), "addr:%.150s", addr ? addr : "-");
	if (!gate_enter(ku.key, ka.key)) {
		*retry_after = 1;
		return ctx_errorf(c, ERR_BUSY, "too many sign-ins at once; try again shortly");
	}
	/* in the gate: the failures of every attempt before this one are counted */
	now = clock_now_ms();
	counter_load(o, &ku);
	counter_load(o, &ka);
	w = counter_wait(o, &ku, now);
	if (counter_wait(o, &ka, now) > w)
		w = counter_wait(o, &ka, now);
	if (w > 0) {
		gate_leave(ku.key, ka.key);
		*retry_after = w;
		return ctx_errorf(c, ERR_BUSY, "too many failed sign-ins: try again in %lld seconds",
				  (long long)w);
	}
	e = user_verify_password(o->us, username, password, strlen(password), out, c);
	if (e == ERR_UNAUTHORIZED)
		counters_fail(o, &ku, &ka, now);
	else if (e == ERR_OK && ku.failures)
		store_item_delete(o->s, NS_THROTTLE, ku.key, &ig);
	gate_leave(ku.key, ka.key);
	return e;
}

static json_t *session_json(const struct session *se)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:s}", "username", se->username, "role",
			 user_role_name(se->role), "fhirUser", se->fhir_user, "strong_auth",
			 (json_int_t)se->strong_auth, "last_seen", (json_int_t)se->last_seen,
			 "mfa_pending", se->mfa_pending, "csrf", se->csrf);
}

/*
 * Store 'se' under a new random id (*cookie; its hash in se->id_hash) and
 * a new CSRF token, used 'now'; when it signed in (its absolute timeout)
 * and last authenticated strongly are kept from 'se'.
 */
static enum err session_store(struct oauth *o, struct session *se, int64_t now,
			      char cookie[OAUTH_ID_SIZE], struct ctx *c)
{
	struct store_item it;
	json_t *j;
	enum err e;

	oauth_random(cookie);
	oauth_hash(cookie, se->id_hash);
	oauth_random(se->csrf);
	se->last_seen = now;
	/* not oauth_put(): the item's creation time is the session's sign-in */
	store_item_init(&it);
	str_copy(it.ns, NS_SESSION, sizeof(it.ns));
	str_copy(it.key, se->id_hash, sizeof(it.key));
	it.uid = se->uid;
	it.created = se->created;
	it.expires = se->created + o->o.session_max * MS;
	j = session_json(se);
	if (!(e = json_dump_buf(j, &it.data)))
		e = store_item_put(o->s, &it, false, c);
	else
		e = ctx_errorf(c, e, "cannot encode a session");
	json_decref(j);
	store_item_release(&it);
	if (e)
		mem_wipe(cookie, OAUTH_ID_SIZE);
	return e;
}

/*
 * Store 'se' as a new session, signed in 'now', under a new random id
 * (*cookie; its hash in se->id_hash) and a new CSRF token.
 */
static enum err session_new(struct oauth *o, struct session *se, int64_t now,
			    char cookie[OAUTH_ID_SIZE], struct ctx *c)
{
	se->created = se->strong_auth = now;
	return session_store(o, se, now, cookie, c);
}

enum err oauth_session_start(struct oauth *o, const struct user *u, bool mfa_pending,
			     char cookie[OAUTH_ID_SIZE], struct session *out, struct ctx *c)
{
	struct user now;
	enum err e;

	memset(out, 0, sizeof(*out));
	out->uid = u->uid;
	str_copy(out->username, u->username, sizeof(out->username));
	out->role = u->role;
	str_copy(out->fhir_user, u->fhir_user, sizeof(out->fhir_user));
	out->mfa_pending = mfa_pending;
	/*
	 * The account as it is when the session is stored, not as it was when
	 * the password was checked: a change of password or authenticator, or
	 * a disabling, committed in between ended every session of the account
	 * and must end this one too.
	 */
	if ((e = store_begin(o->s, c)))
		return e;
	if (!(e = user_get_by_name(o->us, u->username, &now, c)) &&
	    (now.uid != u->uid || strcmp(now.credentials, u->credentials) ||
	     now.mfa_enrolled != u->mfa_enrolled || now.disabled))
		e = ctx_errorf(c, ERR_CONFLICT, "the account changed while signing in: sign in again");
	if (!e && !(e = session_new(o, out, clock_now_ms(), cookie, c)))
		e = store_commit(o->s, c);
	else
		store_rollback(o->s);
	if (e)
		mem_wipe(cookie, OAUTH_ID_SIZE);
	return e;
}

/* Why a session with these times has ended, or NULL while it lasts. */
static const char *lapse_reason(const struct oauth *o, int64_t now, int64_t created,
				int64_t last_seen)
{
	if (now - created >= o->o.session_max * MS)
		return "absolute-timeout";
	if (now - last_seen >= o->o.session_idle * MS)
		return "idle-timeout";
	return NULL;
}

/* A session found over (lapsed, or its account disabled), to end on record. */
struct lapsed {
	char key[OAUTH_HASH_SIZE];
	char username[USER_NAME_MAX + 1], role[16], fhir_user[STORE_FHIR_USER_SIZE];
	char audit_hash[AUDIT_HASH_SIZE]; /* its audit_hash_id(), "" when unknown */
	const char *why;
	bool claimed;
};

/*
 * End sessions v[0..n) in a transaction of their own: each is claimed
 * (LIVE to REVOKED, so that of a request and the sweep, or two processes,
 * noticing it at once only one claims it) and deleted; after the commit
 * each claimed one gets its session.expired record.  When the transaction
 * fails nothing is deleted or recorded, and the next sweep tries again.
 * Not inside a caller's transaction (a rollback there would leave records
 * of sessions that still exist): then nothing is done.
 */
static enum err lapses_end(struct oauth *o, struct lapsed *v, size_t n, struct ctx *c)
{
	struct ctx ig = CTX_INIT;
	enum err e = ERR_OK;

	if (!n || store_in_tx(o->s))
		return ERR_OK;
	if ((e = store_begin(o->s, c)))
		return e;
	for (size_t i = 0; i < n && !e; i++) {
		enum err t = store_item_take(o->s, NS_SESSION, v[i].key, STORE_ITEM_LIVE,
					     STORE_ITEM_REVOKED, NULL, &ig);
		v[i].claimed = t == ERR_OK;
		if (t == ERR_OK)
			e = store_item_delete(o->s, NS_SESSION, v[i].key, c);
		else if (t != ERR_CONFLICT && t != ERR_NOTFOUND)
			e = ctx_errorf(c, t, "%s", ig.msg);
		ctx_clear(&ig);
	}
	if (e) {
		store_rollback(o->s);
		return e;
	}
	if ((e = store_commit(o->s, c)))
		return e;
	for (size_t i = 0; i < n && o->audit; i++) {
		struct audit_event ev;

		if (!v[i].claimed)
			continue;
		/* the session's end, as it is noticed (not waited for) */
		memset(&ev, 0, sizeof(ev));
		ev.type = AUDIT_SESSION_EXPIRED;
		ev.outcome_code = v[i].why;
		ev.agent.username = v[i].username;
		ev.agent.role = v[i].role;
		ev.agent.fhir_user = v[i].fhir_user;
		ev.source.session_hash = v[i].audit_hash[0] ? v[i].audit_hash : NULL;
		if (audit_record(o->audit, &ev, NULL, &ig))
			log_msg(LOG_WARN, "audit: a session's end was not recorded: %s", ig.msg);
		ctx_clear(&ig);
	}
	return ERR_OK;
}

/* audit_hash_id() of the cookie whose oauth_hash() is 'hex' into out ("" if 'hex' is not one). */
static void audit_hash_of(const char *hex, char out[AUDIT_HASH_SIZE])
{
	unsigned char md[32];
	struct buf b = BUF_INIT(64);

	out[0] = '\0';
	for (size_t i = 0; i < 64; i++) {
		char ch = hex[i];
		unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0')
			     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
						       : 16;
		if (d == 16)
			return;
		if (i % 2 == 0)
			md[i / 2] = (unsigned char)(d << 4);
		else
			md[i / 2] |= (unsigned char)d;
	}
	if (base64url_encode(md, sizeof(md), &b) == ERR_OK && b.len + 8 <= AUDIT_HASH_SIZE)
		snprintf(out, AUDIT_HASH_SIZE, "sha256:%s", b.data);
	buf_release(&b);
}

#define SWEEP_BATCH 512 /* sessions ended in one transaction */
#define SWEEP_ROUNDS 8  /* batches in one sweep: the rest wait for the next */

struct sweep {
	const struct oauth *o;
	int64_t now;
	struct lapsed *v;
	size_t n;
};

static int sweep_one(void *arg, const struct store_item *it)
{
	struct sweep *sw = arg;
	struct lapsed *l = &sw->v[sw->n];
	json_t *j;

	if (it->state != STORE_ITEM_LIVE || strlen(it->key) != OAUTH_HASH_SIZE - 1 ||
	    !(j = oauth_item_json(it)))
		return 0;
	l->why = lapse_reason(sw->o, sw->now, it->created,
			      json_integer_value(json_object_get(j, "last_seen")));
	if (l->why) {
		str_copy(l->key, it->key, sizeof(l->key));
		oauth_jstr(j, "username", l->username, sizeof(l->username));
		oauth_jstr(j, "role", l->role, sizeof(l->role));
		oauth_jstr(j, "fhirUser", l->fhir_user, sizeof(l->fhir_user));
		audit_hash_of(l->key, l->audit_hash);
		sw->n++;
	}
	json_decref(j);
	return sw->n == SWEEP_BATCH;
}

bool oauth_sessions_sweep(struct oauth *o, int64_t uid, int64_t now)
{
	struct sweep sw = {.o = o, .now = now, .v = xcalloc(SWEEP_BATCH, sizeof(struct lapsed))};
	struct ctx c = CTX_INIT;
	bool done = false;

	for (int round = 0; round < SWEEP_ROUNDS && !store_in_tx(o->s); round++) {
		enum err e;

		sw.n = 0;
		e = store_item_list(o->s, NS_SESSION, uid, NULL, sweep_one, &sw, &c);
		if (e && c.code != ERR_OK) {
			log_msg(LOG_WARN, "cannot look for ended sessions: %s", c.msg);
			break;
		}
		if (lapses_end(o, sw.v, sw.n, &c)) {
			log_msg(LOG_WARN, "cannot end lapsed sessions: %s", c.msg);
			break;
		}
		if (sw.n < SWEEP_BATCH) {
			done = true;
			break;
		}
	}
	free(sw.v);
	return done;
}

enum err oauth_session_get(struct oauth *o, const char *cookie, struct session *out,
			   struct ctx *c)
{
	struct store_item it;
	struct user u;
	int64_t now;
	struct ctx ig = CTX_INIT;
	const char *why = NULL;
	json_t *j = NULL;
	char role[16];
	enum err e;

	memset(out, 0, sizeof(*out));
	oauth_maintain(o);
	now = clock_now_ms();
	if (!cookie || strlen(cookie) != 43)
		return ctx_errorf(c, ERR_NOTFOUND, "not signed in");
	store_item_init(&it);
	oauth_hash(cookie, out->id_hash);
	if ((e = store_item_get(o->s, NS_SESSION, out->id_hash, &it, c))) {
		if (e == ERR_NOTFOUND) {
			ctx_clear(c);
			e = ctx_errorf(c, ERR_NOTFOUND, "not signed in");
		}
		goto out;
	}
	if (!(j = oauth_item_json(&it))) {
		e = ctx_errorf(c, ERR_NOTFOUND, "not signed in");
		goto out;
	}
	out->uid = it.uid;
	out->created = it.created;
	oauth_jstr(j, "username", out->username, sizeof(out->username));
	oauth_jstr(j, "role", role, sizeof(role));
	oauth_jstr(j, "fhirUser", out->fhir_user, sizeof(out->fhir_user));
	oauth_jstr(j, "csrf", out->csrf, sizeof(out->csrf));
	out->strong_auth = json_integer_value(json_object_get(j, "strong_auth"));
	out->last_seen = json_integer_value(json_object_get(j, "last_seen"));
	out->mfa_pending = json_is_true(json_object_get(j, "mfa_pending"));
	if (user_role_parse(role, &out->role, &ig) || it.state != STORE_ITEM_LIVE ||
	    (why = lapse_reason(o, now, out->created, out->last_seen)) ||
	    user_get_by_name(o->us, out->username, &u, &ig) || u.disabled) {
		struct lapsed l = {.why = why ? why : "account-disabled"};

		str_copy(l.key, out->id_hash, sizeof(l.key));
		str_copy(l.username, out->username, sizeof(l.username));
		str_copy(l.role, role, sizeof(l.role));
		str_copy(l.fhir_user, out->fhir_user, sizeof(l.fhir_user));
		audit_hash_id(cookie, l.audit_hash);
		if (lapses_end(o, &l, 1, &ig))
			log_msg(LOG_WARN, "cannot end a lapsed session: %s", ig.msg);
		e = ctx_errorf(c, ERR_NOTFOUND, "your session has ended: please sign in again");
		goto out;
	}
	if (now - out->last_seen > 30 * MS) {
		out->last_seen = now;
		json_decref(j);
		j = session_json(out);
		{
			struct buf b = BUF_INIT(STORE_ITEM_DATA_MAX);
			json_dump_buf(j, &b);
			store_item_update(o->s, NS_SESSION, out->id_hash, b.data, -1, &ig);
			buf_release(&b);
		}
	}
out:
	json_decref(j);
	store_item_release(&it);
	if (e)
		memset(out, 0, sizeof(*out));
	return e;
}

/* ---- two-step verification (TOTP, RFC 6238) ---- */

#define NS_MFA "mfa"         /* per account: last accepted step, recovery-code hashes */
#define NS_MFA_NEW "mfanew"  /* per session: a secret being enrolled */
#define MFA_ENROL_MS (10 * 60 * 1000)

static enum err mfa_use_code(struct oauth *o, const char *username, const char *code,
			     int64_t *retry_after, struct ctx *c);

/*
 * A fingerprint of 'username''s authenticator: the hex SHA-256 of its
 * secret in base32, "" when it has none.
 */
static enum err mfa_fingerprint(struct oauth *o, const char *username, char fp[OAUTH_HASH_SIZE],
				struct ctx *c)
{
	unsigned char secret[STORE_MFA_SECRET_MAX];
	struct buf b = BUF_INIT(256);
	size_t n = 0;
	enum err e;

	fp[0] = '\0';
	if (!(e = user_mfa_secret(o->us, username, secret, &n, c)) && n &&
	    !(e = totp_base32_encode(secret, n, &b)))
		oauth_hash(b.data, fp);
	mem_wipe(secret, sizeof(secret));
	if (b.data)
		mem_wipe(b.data, b.len);
	buf_release(&b);
	return e;
}

/*
 * Is the session stored under 'id_hash' still there?  ERR_GONE when a
 * change that ends every session of the account (or a sign-out) came
 * first: what was about to build on it must not go through.
 */
static enum err session_alive(struct oauth *o, const char *id_hash, struct ctx *c)
{
	struct store_item it;
	enum err e;

	store_item_init(&it);
	e = store_item_get(o->s, NS_SESSION, id_hash, &it, c);
	store_item_release(&it);
	if (e == ERR_NOTFOUND) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_GONE, "this sign-in ended or changed meanwhile: sign in again");
	}
	return e;
}

/*
 * The password of se's account, checked as at sign-in (its throttle, its
 * counters, its lock; oauth_signin()) before a change of credentials.
 */
static enum err password_again(struct oauth *o, const struct session *se, const char *password,
			       const char *addr, int64_t *retry_after, struct ctx *c)
{
	struct user u;
	enum err e = oauth_signin(o, se->username, password ? password : "", addr, &u, retry_after, c);

	if (!e && u.uid != se->uid)
		e = ctx_errorf(c, ERR_UNAUTHORIZED, "wrong username or password");
	return e;
}

/* The keys of the grants tied to one session (gathered before any is rewritten). */
struct tied {
	const char *session;
	char (*key)[STORE_ITEM_KEY_SIZE];
	size_t n, cap;
};

static int gather_tied(void *arg, const struct store_item *it)
{
	struct tied *t = arg;
	char needle[OAUTH_HASH_SIZE + 16];

	snprintf(needle, sizeof(needle), "\"session\":\"%s\"", t->session);
	if (it->state != STORE_ITEM_LIVE || !it->data.len || !memmem(it->data.data, it->data.len, needle, strlen(needle)))
		return 0;
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 4;
		t->key = xrealloc(t->key, t->cap * sizeof(*t->key));
	}
	str_copy(t->key[t->n++], it->key, STORE_ITEM_KEY_SIZE);
	return 0;
}

/* Tie the live grants of se->uid that name session 'old' to session 'now_id' instead. */
static enum err grants_follow(struct oauth *o, int64_t uid, const char *old, const char *now_id,
			      struct ctx *c)
{
	struct tied t = {.session = old};
	enum err e = store_item_list(o->s, NS_GRANT, uid, NULL, gather_tied, &t, c);

	for (size_t i = 0; i < t.n && !e; i++) {
		struct store_item it;
		json_t *j = NULL;

		store_item_init(&it);
		if (!(e = store_item_get(o->s, NS_GRANT, t.key[i], &it, c)) && (j = oauth_item_json(&it)) &&
		    json_get_str(j, "session") && !strcmp(json_get_str(j, "session"), old)) {
			json_object_set_new(j, "session", json_string(now_id));
			buf_reset(&it.data);
			if (!(e = json_dump_buf(j, &it.data)))
				e = store_item_put(o->s, &it, true, c);
			else
				e = ctx_errorf(c, e, "cannot encode a grant");
		}
		json_decref(j);
		store_item_release(&it);
	}
	free(t.key);
	return e;
}

/*
 * After a change of the account's credentials, inside the caller's
 * transaction: every session of the account ends, and this one goes on
 * under a new id and CSRF token (*cookie), keeping its sign-in times, so
 * that no copy of any old cookie survives the change.  The grants for
 * online access tied to this session follow it.  *others: how many other
 * sessions ended.  ERR_GONE when this session ended or was renewed
 * meanwhile (signed out everywhere, another change at the same time):
 * the change must not go through then.  *se changes only on success.
 */
struct live_count {
	const struct oauth *o;
	const char *self;       /* the renewed session's key: not counted */
	int64_t now, n;
};

/* Count a session that current_session() would still accept. */
static int count_live(void *arg, const struct store_item *it)
{
	struct live_count *lc = arg;
	json_t *j;

	if (it->state != STORE_ITEM_LIVE || !strcmp(it->key, lc->self) || !(j = oauth_item_json(it)))
		return 0;
	if (!lapse_reason(lc->o, lc->now, it->created,
			  json_integer_value(json_object_get(j, "last_seen"))))
		lc->n++;
	json_decref(j);
	return 0;
}

static enum err session_renew(struct oauth *o, struct session *se, char cookie[OAUTH_ID_SIZE],
			      int64_t *others, struct ctx *c)
{
	struct session next = *se;
	struct live_count lc = {.o = o, .self = se->id_hash, .now = clock_now_ms()};
	enum err e;

	*others = 0;
	/*
	 * The others counted are those still in use: one that has timed out
	 * but not yet been noticed (and deleted) is ended too, not counted.
	 * A set-up of an authenticator begun in this session is tied to its
	 * old id: it ends too.
	 */
	if ((e = session_alive(o, se->id_hash, c)) ||
	    (e = store_item_list(o->s, NS_SESSION, se->uid, NULL, count_live, &lc, c)) ||
	    (e = user_end_sessions(o->us, se->uid, NULL, c)) ||
	    (e = store_item_delete(o->s, NS_MFA_NEW, se->id_hash, c)) ||
	    (e = session_store(o, &next, clock_now_ms(), cookie, c)) ||
	    (e = grants_follow(o, se->uid, se->id_hash, next.id_hash, c)))
		return e;
	*se = next;
	*others = lc.n;
	return ERR_OK;
}

static const char mfa_on_msg[] = "Two-step verification is already on for this account. To use another"
				 " authenticator, enter a code from your current one (or a recovery code)"
				 " on your account page.";

/*
 * ERR_CONFLICT unless the session's account has the authenticator the
 * set-up found: none ("" fingerprint), or the one it replaces.
 */
static enum err mfa_unchanged(struct oauth *o, const struct session *se, const char *found,
			      struct ctx *c)
{
	char fp[OAUTH_HASH_SIZE];
	enum err e = mfa_fingerprint(o, se->username, fp, c);

	if (!e && strcmp(fp, found))
		e = found[0] ? ctx_errorf(c, ERR_CONFLICT, "Your authenticator changed after this set-up"
					  " began: start again from your account page.")
			     : ctx_errorf(c, ERR_CONFLICT, "%s", mfa_on_msg);
	return e;
}

enum err oauth_mfa_enrol_begin(struct oauth *o, const struct session *se, const char *current,
			       const char *addr, int64_t *retry_after, bool *used, bool *replacing,
			       struct buf *b32, struct buf *uri, struct ctx *c)
{
	unsigned char secret[TOTP_SECRET_LEN];
	char fp[OAUTH_HASH_SIZE];
	enum err e;

	*retry_after = 0;
	*used = false;
	if ((e = mfa_fingerprint(o, se->username, fp, c)))
		return e;
	*replacing = fp[0] != '\0';
	if (fp[0] && !(current && *current))
		return ctx_errorf(c, ERR_CONFLICT, "%s", mfa_on_msg);
	/*
	 * A session alone must not change the account's factors: replacing
	 * the authenticator takes a code of it, checked and used as at
	 * sign-in; turning it on takes the password, checked as at sign-in
	 * (otherwise a stolen session could add its own authenticator, and
	 * the sessions it then ends would include the owner's)
	 */
	if (fp[0]) {
		if ((e = mfa_use_code(o, se->username, current, retry_after, c)))
			return e;
		*used = true;
	} else if ((e = password_again(o, se, current, addr, retry_after, c))) {
		return e;
	}
	totp_secret_generate(secret);
	if ((e = totp_base32_encode(secret, sizeof(secret), b32)) ||
	    (e = totp_uri("Veranda", se->username, secret, sizeof(secret), uri, c)))
		goto out;
	/* 'replaces': the authenticator the confirmation must still find */
	e = oauth_put(o, NS_MFA_NEW, se->id_hash, se->uid, NULL,
		      json_pack("{s:s, s:s}", "secret", b32->data, "replaces", fp),
		      clock_now_ms() + MFA_ENROL_MS, true, c);
out:
	mem_wipe(secret, sizeof(secret));
	return e;
}

enum err oauth_mfa_enrol_finish(struct oauth *o, struct session *se, const char *code,
				struct totp_recovery codes[OAUTH_RECOVERY_CODES],
				char cookie[OAUTH_ID_SIZE], int64_t *ended, struct ctx *c)
{
	struct store_item it;
	unsigned char secret[TOTP_SECRET_MAX];
	char b32[128];
	size_t n = 0;
	int64_t step = 0;
	json_t *j = NULL, *hashes, *data = NULL;
	enum err e;

	store_item_init(&it);
	if ((e = store_item_get(o->s, NS_MFA_NEW, se->id_hash, &it, c)) || !(j = oauth_item_json(&it)) ||
	    it.expires <= clock_now_ms()) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_NOTFOUND, "the set-up has expired: start again");
		goto out;
	}
	oauth_jstr(j, "secret", b32, sizeof(b32));
	if ((e = totp_base32_decode(b32, strlen(b32), secret, sizeof(secret), &n, c)))
		goto out;
	if ((e = totp_verify(secret, n, code ? code : "", TOTP_NO_STEP, &step, c))) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_UNAUTHORIZED, "that code is not right: check the time on your phone and try again");
		goto out;
	}
	if ((e = totp_recovery_generate(se->username, codes, OAUTH_RECOVERY_CODES, c)))
		goto out;
	hashes = json_array();
	for (size_t i = 0; i < OAUTH_RECOVERY_CODES; i++)
		json_array_append_new(hashes, json_string(codes[i].hash));
	data = json_pack("{s:I, s:o}", "last_step", (json_int_t)step, "recovery", hashes);
	/* sessions already over end on record first; the renewal ends the rest */
	oauth_sessions_sweep(o, se->uid, clock_now_ms());
	if ((e = store_begin(o->s, c)))
		goto out;
	/*
	 * Checked again inside the transaction: of two set-ups begun side by
	 * side (first ones, or replacements of the same authenticator) the
	 * first confirmed takes effect and the other finds it changed.
	 */
	if (!(e = mfa_unchanged(o, se, json_get_str(j, "replaces") ? json_get_str(j, "replaces") : "", c)) &&
	    !(e = user_mfa_set(o->us, se->username, secret, n, c))) {
		e = oauth_put(o, NS_MFA, se->username, se->uid, NULL, data, 0, true, c);
		data = NULL; /* oauth_put() took it */
		if (!e)
			e = store_item_delete(o->s, NS_MFA_NEW, se->id_hash, c);
		if (!e)
			e = session_renew(o, se, cookie, ended, c);
	}
	if (!e)
		e = store_commit(o->s, c);
	else
		store_rollback(o->s);
	if (e) {
		*ended = 0;
		mem_wipe(cookie, OAUTH_ID_SIZE);
	}
out:
	json_decref(data);
	json_decref(j);
	mem_wipe(secret, sizeof(secret));
	mem_wipe(b32, sizeof(b32));
	store_item_release(&it);
	return e;
}

/*
 * Check and use a code of 'username''s authenticator: a TOTP code (each
 * step once) or a recovery code (each once).  ERR_UNAUTHORIZED for a wrong
 * one, ERR_BUSY with *retry_after when wrong codes are throttled.  Wrong
 * codes are counted per account with the delays and lock-out of wrong
 * passwords, on a counter of their own that only a right code clears.
 * The wait, the check and the use are one transaction: a code sent at
 * once from several sessions works for one of them.
 */
static enum err mfa_use_code(struct oauth *o, const char *username, const char *code,
			     int64_t *retry_after, struct ctx *c)
{
	struct store_item it;
	struct counter ku;
	unsigned char secret[STORE_MFA_SECRET_MAX];
	size_t n = 0, used = 0;
	int64_t step = 0, last, now = clock_now_ms(), w;
	json_t *j = NULL, *hashes;
	const char *hv[TOTP_RECOVERY_MAX];
	size_t nh = 0;
	bool totp;
	enum err e;

	*retry_after = 0;
	store_item_init(&it);
	if ((e = user_mfa_secret(o->us, username, secret, &n, c)))
		goto out;
	if ((e = store_begin(o->s, c)))
		goto out;
	/* not the password's counter, which a right password clears */
	snprintf(ku.key, sizeof(ku.key), "mfa:%s", username);
	counter_load(o, &ku);
	if ((w = counter_wait(o, &ku, now)) > 0) {
		store_rollback(o->s);
		*retry_after = w;
		e = ctx_errorf(c, ERR_BUSY, "too many wrong codes: try again in %lld seconds", (long long)w);
		goto out;
	}
	if ((e = store_item_get(o->s, NS_MFA, username, &it, c)) || !(j = oauth_item_json(&it))) {
		store_rollback(o->s);
		if (!e)
			e = ctx_errorf(c, ERR_IO, "two-step verification record is damaged");
		goto out;
	}
	last = json_integer_value(json_object_get(j, "last_step"));
	hashes = json_object_get(j, "recovery");
	for (size_t i = 0; i < json_array_size(hashes) && nh < TOTP_RECOVERY_MAX; i++)
		if (json_is_string(json_array_get(hashes, i)))
			hv[nh++] = json_string_value(json_array_get(hashes, i));
	totp = code && strlen(code) == TOTP_DIGITS;
	if (totp)
		e = totp_verify(secret, n, code, last, &step, c);
	else
		e = totp_recovery_verify(username, code ? code : "", hv, nh, &used, c);
	if (e) {
		ctx_clear(c);
		if ((e = counter_fail(o, &ku, now, c)) || (e = store_commit(o->s, c))) {
			store_rollback(o->s);
			goto out;
		}
		e = ctx_errorf(c, ERR_UNAUTHORIZED, "that code is not right");
		goto out;
	}
	if (totp) {
		json_object_set_new(j, "last_step", json_integer(step));
	} else {
		json_array_remove(hashes, used); /* each recovery code works once */
	}
	{
		struct buf b = BUF_INIT(STORE_ITEM_DATA_MAX);
		json_dump_buf(j, &b);
		e = store_item_update(o->s, NS_MFA, username, b.data, -1, c);
		buf_release(&b);
	}
	if (!e && ku.failures)
		e = store_item_delete(o->s, NS_THROTTLE, ku.key, c);
	if (e || (e = store_commit(o->s, c)))
		store_rollback(o->s);
out:
	json_decref(j);
	mem_wipe(secret, sizeof(secret));
	store_item_release(&it);
	return e;
}

enum err oauth_session_mfa(struct oauth *o, const char *cookie, const char *code,
			   const char *addr, char new_cookie[OAUTH_ID_SIZE], int64_t *retry_after,
			   struct ctx *c)
{
	struct session se;
	enum err e;

	(void)addr;
	*retry_after = 0;
	new_cookie[0] = '\0';
	if ((e = oauth_session_get(o, cookie, &se, c)))
		return e;
	if (!se.mfa_pending)
		return ERR_OK;
	if ((e = mfa_use_code(o, se.username, code, retry_after, c)))
		return e;
	/*
	 * Fully signed in: a new session id and CSRF token (a privilege
	 * change), and the pending session goes, in one transaction that
	 * first finds it still there: a change of password or authenticator
	 * since the code was checked ended it, and must end this sign-in too.
	 */
	{
		char old[OAUTH_HASH_SIZE];

		str_copy(old, se.id_hash, sizeof(old));
		se.mfa_pending = false;
		if ((e = store_begin(o->s, c)))
			return e;
		if (!(e = session_alive(o, old, c)) && !(e = session_new(o, &se, clock_now_ms(), new_cookie, c)) &&
		    !(e = store_item_delete(o->s, NS_SESSION, old, c)))
			e = store_commit(o->s, c);
		else
			store_rollback(o->s);
		if (e)
			mem_wipe(new_cookie, OAUTH_ID_SIZE);
	}
	return e;
}

enum err oauth_password_change(struct oauth *o, struct session *se, const char *current,
			       const char *fresh, bool end_apps, const char *addr,
			       int64_t *retry_after, char cookie[OAUTH_ID_SIZE], int64_t *ended,
			       struct ctx *c)
{
	char phc[PASSWORD_PHC_MAX] = "";
	enum err e;

	*retry_after = 0;
	*ended = 0;
	if (!fresh)
		return ctx_errorf(c, ERR_INVALID, "no new password given");
	if ((e = password_again(o, se, current, addr, retry_after, c)))
		return e;
	if (!strcmp(fresh, current))
		return ctx_errorf(c, ERR_CONFLICT, "the new password is the one in use now");
	/* the hash before the transaction: the write lock is not held for Argon2id */
	if (!(e = user_password_hash(o->us, se->username, fresh, strlen(fresh), phc, c))) {
		/* sessions already over end on record first; the renewal ends the rest */
		oauth_sessions_sweep(o, se->uid, clock_now_ms());
		if (!(e = store_begin(o->s, c))) {
			if (!(e = user_password_store(o->us, se->username, phc, c)) &&
			    !(e = end_apps ? user_end_grants(o->us, se->uid, c) : ERR_OK) &&
			    !(e = session_renew(o, se, cookie, ended, c)))
				e = store_commit(o->s, c);
			else
				store_rollback(o->s);
		}
	}
	if (e) {
		*ended = 0;
		mem_wipe(cookie, OAUTH_ID_SIZE);
	}
	mem_wipe(phc, sizeof(phc));
	return e;
}

enum err oauth_mfa_reset(struct store *s, const char *username, struct ctx *c)
{
	return store_item_delete(s, NS_MFA, username, c);
}

enum err oauth_session_end(struct oauth *o, const char *cookie, bool everywhere, struct ctx *c)
{
	struct session se;
	struct ctx ig = CTX_INIT;
	enum err e;

	if ((e = oauth_session_get(o, cookie, &se, &ig)))
		return ERR_OK; /* nothing to end */
	if (!everywhere)
		return store_item_delete(o->s, NS_SESSION, se.id_hash, c);
	/* sessions already over end on record first; the rest end with this sign-out */
	oauth_sessions_sweep(o, se.uid, clock_now_ms());
	return user_end_access(o->us, se.uid, c);
}
