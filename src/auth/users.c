/*
 * users.c - the accounts service (see users.h): validation, Argon2id
 * hashing through auth/password.h, and the account rows of the store.
 *
 * Hashing happens before any store write, so the store's write lock is
 * never held across the ~20 ms of a hash unless the caller holds a
 * transaction open itself.  A user_add() or user_put() writes the account
 * and its patient links in one transaction (a savepoint in the caller's).
 *
 * Secrets: passwords are only read in place; every struct store_user (it
 * holds the hash and maybe the MFA secret) is wiped before it goes out of
 * scope.
 */
#include "auth/users.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"

struct users {
	struct store *s;
	struct password_params params;
};

static const char *const role_names[USER_ROLES] = {
	[USER_PATIENT] = "patient",     [USER_CAREGIVER] = "caregiver",
	[USER_CLINICIAN] = "clinician", [USER_SUPPORT] = "support",
	[USER_COMPLIANCE] = "compliance", [USER_ADMIN] = "admin",
};

/* The message of every failed sign-in, whatever the cause. */
#define BAD_SIGNIN "wrong username or password"

const char *user_role_name(enum user_role r)
{
	return (unsigned)r < USER_ROLES ? role_names[r] : NULL;
}

enum err user_role_parse(const char *s, enum user_role *out, struct ctx *c)
{
	for (int i = 0; i < USER_ROLES; i++)
		if (s && !strcmp(s, role_names[i])) {
			*out = (enum user_role)i;
			return ERR_OK;
		}
	return ctx_errorf(c, ERR_INVALID,
			  "unknown role '%.32s': use patient, caregiver, clinician, support,"
			  " compliance or admin", s ? s : "");
}

enum err user_name_normalize(const char *in, char out[USER_NAME_MAX + 1], struct ctx *c)
{
	size_t n = in ? strnlen(in, USER_NAME_MAX + 1) : 0;

	out[0] = '\0';
	if (n == 0)
		return ctx_errorf(c, ERR_INVALID, "username is empty");
	if (n > USER_NAME_MAX)
		return ctx_errorf(c, ERR_INVALID, "username is longer than %d characters",
				  USER_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		char ch = in[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-')) {
			out[0] = '\0';
			return ctx_errorf(c, ERR_INVALID,
					  "username may only hold letters a-z, digits, '.', '_'"
					  " and '-'");
		}
		out[i] = ch;
	}
	out[n] = '\0';
	return ERR_OK;
}

enum err user_password_check(const char *pw, size_t n, struct ctx *c)
{
	size_t chars = 0;

	if (!pw)
		return ctx_errorf(c, ERR_INVALID, "no password given");
	if (n > PASSWORD_MAX)
		return ctx_errorf(c, ERR_INVALID, "password is longer than %d characters",
				  USER_PASSWORD_MAX);
	if (memchr(pw, '\0', n) || !str_utf8_valid(pw, n))
		return ctx_errorf(c, ERR_INVALID, "password is not valid UTF-8 text");
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)pw[i] & 0xc0) != 0x80)
			chars++;
	if (chars < USER_PASSWORD_MIN)
		return ctx_errorf(c, ERR_INVALID, "password must have at least %d characters",
				  USER_PASSWORD_MIN);
	if (chars > USER_PASSWORD_MAX)
		return ctx_errorf(c, ERR_INVALID, "password is longer than %d characters",
				  USER_PASSWORD_MAX);
	return ERR_OK;
}

enum err users_new(struct users **out, struct store *s, const struct password_params *params,
		   struct ctx *c)
{
	struct password_params p = PASSWORD_PARAMS_DEFAULT;
	enum err e;

	*out = NULL;
	if (params)
		p = *params;
	if ((e = password_params_check(&p, c)))
		return e;
	*out = xcalloc(1, sizeof(**out));
	(*out)->s = s;
	(*out)->params = p;
	return ERR_OK;
}

void users_free(struct users *us)
{
	free(us);
}

/* Copy the public part of a row into 'out'. */
/*
 * 16 hex digits of SHA-256(password hash, 0, TOTP secret): equal for two
 * readings of an account exactly when neither credential changed between
 * them.  A fingerprint, not a secret's stand-in: it is never stored.
 */
static void credentials_of(const struct store_user *su, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int hl = 0;
	EVP_MD_CTX *x = EVP_MD_CTX_new();

	if (!x || !EVP_DigestInit_ex(x, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(x, su->password_hash, strlen(su->password_hash) + 1) ||
	    !EVP_DigestUpdate(x, su->mfa_secret, su->mfa_secret_len) || !EVP_DigestFinal_ex(x, h, &hl) ||
	    hl < 8) {
		EVP_MD_CTX_free(x);
		fputs("fatal: SHA-256 failed\n", stderr);
		abort();
	}
	EVP_MD_CTX_free(x);
	for (int i = 0; i < 8; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 15];
	}
	out[16] = '\0';
	mem_wipe(h, sizeof(h));
}

static void to_user(const struct store_user *su, struct user *out)
{
	enum user_role r = USER_PATIENT;

	memset(out, 0, sizeof(*out));
	out->uid = su->uid;
	str_copy(out->username, su->username, sizeof(out->username));
	if (user_role_parse(su->role, &r, NULL))
		r = USER_PATIENT;   /* cannot happen: the table's CHECK constraint */
	out->role = r;
	str_copy(out->fhir_user, su->fhir_user, sizeof(out->fhir_user));
	out->disabled = su->disabled;
	out->mfa_enrolled = su->mfa_secret_len > 0;
	out->created = su->created;
	out->updated = su->updated;
	out->failed_logins = su->failed_logins;
	out->locked_until = su->locked_until;
	out->last_strong_auth = su->last_strong_auth;
	credentials_of(su, out->credentials);
}

/* Is id[0..n) a FHIR id ([A-Za-z0-9.-]{1,64})? */
static bool fhir_id_ok(const char *id, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

/* ERR_NOTFOUND unless resource type/id exists (and is not deleted). */
static enum err must_exist(struct users *us, const char *type, const char *id, struct ctx *c)
{
	int64_t v = 0;
	bool deleted = false;
	enum err e = store_current_version(us->s, type, id, &v, &deleted, c);

	if (e)
		return e;
	if (v == 0 || deleted)
		return ctx_errorf(c, ERR_NOTFOUND, "%s/%s does not exist", type, id);
	return ERR_OK;
}

/*
 * Check 'fhir' against the role and the store; on success *self_patient
 * (size 72) holds the Patient id when fhir is Patient/…, else "".
 */
static enum err check_fhir_user(struct users *us, enum user_role role, const char *fhir,
				char *self_patient, struct ctx *c)
{
	static const char *const types[] = {"Patient", "RelatedPerson", "Practitioner"};
	const char *slash = fhir ? strchr(fhir, '/') : NULL;
	const char *type = NULL;
	char tbuf[16];
	bool ok;

	self_patient[0] = '\0';
	if (!fhir || !*fhir) {
		if (role == USER_PATIENT || role == USER_CAREGIVER || role == USER_CLINICIAN)
			return ctx_errorf(c, ERR_INVALID, "a %s account needs a fhir user (%s)",
					  role_names[role],
					  role == USER_CLINICIAN ? "Practitioner/ID"
					  : role == USER_PATIENT ? "Patient/ID"
								 : "Patient/ID or RelatedPerson/ID");
		return ERR_OK;
	}
	for (size_t i = 0; slash && i < sizeof(types) / sizeof(types[0]); i++)
		if ((size_t)(slash - fhir) == strlen(types[i]) &&
		    !strncmp(fhir, types[i], (size_t)(slash - fhir)))
			type = types[i];
	if (!type || !fhir_id_ok(slash + 1, strlen(slash + 1)))
		return ctx_errorf(c, ERR_INVALID,
				  "fhir user '%.80s' is not Patient/ID, RelatedPerson/ID or"
				  " Practitioner/ID", fhir);
	switch (role) {
	case USER_PATIENT:
		ok = !strcmp(type, "Patient");
		break;
	case USER_CAREGIVER:
		ok = strcmp(type, "Practitioner") != 0;
		break;
	default:
		ok = !strcmp(type, "Practitioner");
		break;
	}
	if (!ok)
		return ctx_errorf(c, ERR_INVALID, "a %s account cannot be %s", role_names[role], fhir);
	str_copy(tbuf, type, sizeof(tbuf));
	if (!strcmp(type, "Patient"))
		str_copy(self_patient, slash + 1, 72);
	return must_exist(us, tbuf, slash + 1, c);
}

/*
 * A user's tokens carry the username as "sub", an app's own tokens
 * (client_credentials) its client_id: the two must not meet, or a
 * resource server reading "sub" could take one for the other (RFC 9068
 * section 6).  ERR_CONFLICT when an app has 'name' as its client_id.
 */
static enum err name_free_of_apps(struct users *us, const char *name, struct ctx *c)
{
	struct store_item it;
	enum err e;

	store_item_init(&it);
	e = store_item_get(us->s, "client", name, &it, c); /* NS_CLIENT of clients.c */
	store_item_release(&it);
	if (e == ERR_NOTFOUND) {
		ctx_clear(c);
		return ERR_OK;
	}
	if (e == ERR_OK)
		return ctx_errorf(c, ERR_CONFLICT, "the username '%s' is an app's client_id: choose "
				  "another (tokens name users and apps in the same \"sub\" claim)", name);
	return e;
}

/* Everything user_add()/user_put() check before hashing. */
static enum err check_spec(struct users *us, const struct user_spec *spec,
			   char name[USER_NAME_MAX + 1], char *self_patient, struct ctx *c)
{
	enum err e;

	if ((e = user_name_normalize(spec->username, name, c)))
		return e;
	if ((e = name_free_of_apps(us, name, c)))
		return e;
	if (!user_role_name(spec->role))
		return ctx_errorf(c, ERR_INVALID, "unknown role %d", (int)spec->role);
	if ((e = user_password_check(spec->password, spec->password_len, c)))
		return e;
	if (spec->fhir_user && strlen(spec->fhir_user) >= STORE_FHIR_USER_SIZE)
		return ctx_errorf(c, ERR_INVALID, "fhir user is too long");
	if ((e = check_fhir_user(us, spec->role, spec->fhir_user, self_patient, c)))
		return e;
	if (spec->nlinks + 1 > USER_PATIENTS_MAX || (spec->nlinks && !spec->links))
		return ctx_errorf(c, ERR_INVALID, "too many patient links");
	for (size_t i = 0; i < spec->nlinks; i++) {
		const struct store_user_patient *l = &spec->links[i];

		if (!fhir_id_ok(l->patient_id, strnlen(l->patient_id, sizeof(l->patient_id))))
			return ctx_errorf(c, ERR_INVALID, "patient link %zu has a bad patient id", i);
		if ((e = must_exist(us, "Patient", l->patient_id, c)))
			return e;
		if (l->related_person[0] && (e = must_exist(us, "RelatedPerson",
							    l->related_person, c)))
			return e;
	}
	return ERR_OK;
}

/*
 * The full link list: "self" for self_patient (when set) then spec's,
 * into out[USER_PATIENTS_MAX]; returns the count.
 */
static size_t all_links(const struct user_spec *spec, const char *self_patient,
			struct store_user_patient *out)
{
	size_t n = 0;

	if (self_patient[0]) {
		memset(&out[n], 0, sizeof(out[n]));
		str_copy(out[n].patient_id, self_patient, sizeof(out[n].patient_id));
		str_copy(out[n].relationship, "self", sizeof(out[n].relationship));
		n++;
	}
	for (size_t i = 0; i < spec->nlinks; i++) {
		if (self_patient[0] && !strcmp(spec->links[i].patient_id, self_patient))
			continue;
		out[n++] = spec->links[i];
	}
	return n;
}

/* Shared body of user_add() and user_put(). */
static enum err add_or_put(struct users *us, const struct user_spec *spec, bool replace,
			   int64_t *uid, bool *created, struct ctx *c)
{
	struct store_user_patient links[USER_PATIENTS_MAX];
	char name[USER_NAME_MAX + 1], self_patient[72];
	struct store_user su, old;
	bool began = false, exists = false;
	int64_t id = 0, now = clock_now_ms();
	size_t nlinks;
	enum err e;

	memset(&su, 0, sizeof(su));
	memset(&old, 0, sizeof(old));
	if (uid)
		*uid = 0;
	if (created)
		*created = false;
	if ((e = check_spec(us, spec, name, self_patient, c)))
		goto out;
	nlinks = all_links(spec, self_patient, links);
	str_copy(su.username, name, sizeof(su.username));
	str_copy(su.role, role_names[spec->role], sizeof(su.role));
	str_copy(su.fhir_user, spec->fhir_user ? spec->fhir_user : "", sizeof(su.fhir_user));
	su.created = su.updated = now;
	if ((e = password_hash(spec->password, spec->password_len, &us->params, su.password_hash,
			       c)))
		goto out;

	if ((e = store_savepoint(us->s, NULL)) == ERR_OK) {
		began = false;          /* inside the caller's transaction */
	} else {
		if ((e = store_begin(us->s, c)))
			goto out;
		began = true;
	}
	if (replace) {
		e = store_user_get(us->s, name, &old, c);
		if (e == ERR_OK)
			exists = true;
		else if (e == ERR_NOTFOUND)
			ctx_clear(c);
		else
			goto undo;
	}
	if (exists) {
		id = su.uid = old.uid;
		su.created = old.created;
		su.last_strong_auth = old.last_strong_auth;
		memcpy(su.mfa_secret, old.mfa_secret, old.mfa_secret_len);
		su.mfa_secret_len = old.mfa_secret_len;
		e = store_user_update(us->s, &su, c);
	} else {
		e = store_user_insert(us->s, &su, &id, c);
	}
	if (e || (e = store_user_patients_set(us->s, id, links, nlinks, c)))
		goto undo;
	if (began)
		e = store_commit(us->s, c);
	else
		e = store_savepoint_end(us->s, true, c);
	if (e)
		goto out;
	if (uid)
		*uid = id;
	if (created)
		*created = !exists;
	goto out;
undo:
	if (began)
		store_rollback(us->s);
	else
		store_savepoint_end(us->s, false, NULL);
out:
	store_user_wipe(&su);
	store_user_wipe(&old);
	return e;
}

enum err user_add(struct users *us, const struct user_spec *spec, int64_t *uid, struct ctx *c)
{
	return add_or_put(us, spec, false, uid, NULL, c);
}

enum err user_put(struct users *us, const struct user_spec *spec, int64_t *uid, bool *created,
		  struct ctx *c)
{
	return add_or_put(us, spec, true, uid, created, c);
}

enum err user_get_by_name(struct users *us, const char *username, struct user *out,
			  struct ctx *c)
{
	char name[USER_NAME_MAX + 1];
	struct store_user su;
	enum err e;

	memset(&su, 0, sizeof(su));
	if ((e = user_name_normalize(username, name, c)))
		return e;
	e = store_user_get(us->s, name, &su, c);
	if (!e)
		to_user(&su, out);
	store_user_wipe(&su);
	return e;
}

struct list_walk {
	user_fn fn;
	void *arg;
	struct user u;
};

static int list_one(void *arg, const struct store_user *su)
{
	struct list_walk *w = arg;

	to_user(su, &w->u);
	return w->fn(w->arg, &w->u);
}

enum err user_list(struct users *us, user_fn fn, void *arg, struct ctx *c)
{
	struct list_walk w = {fn, arg, {0}};

	if (!fn)
		return ctx_errorf(c, ERR_INVALID, "no callback for the user list");
	return store_user_list(us->s, list_one, &w, c);
}

/*
 * Read account 'username', let 'change' edit the row, write it back with
 * 'updated' set to now.
 */
static enum err modify(struct users *us, const char *username,
		       void (*change)(struct store_user *su, void *arg), void *arg, struct ctx *c)
{
	char name[USER_NAME_MAX + 1];
	struct store_user su;
	enum err e;

	memset(&su, 0, sizeof(su));
	if ((e = user_name_normalize(username, name, c)))
		return e;
	if ((e = store_user_get(us->s, name, &su, c)))
		goto out;
	change(&su, arg);
	su.updated = clock_now_ms();
	e = store_user_update(us->s, &su, c);
out:
	store_user_wipe(&su);
	return e;
}

static void set_disabled(struct store_user *su, void *arg)
{
	su->disabled = *(const bool *)arg;
}

enum err user_end_grants(struct users *us, int64_t uid, struct ctx *c)
{
	enum err e;

	if (uid <= 0)
		return ctx_errorf(c, ERR_INVALID, "no account");
	if ((e = store_item_set_state_uid(us->s, "grant", uid, STORE_ITEM_REVOKED, NULL, c)) ||
	    (e = store_item_set_state_uid(us->s, "refresh", uid, STORE_ITEM_REVOKED, NULL, c)))
		return e;
	/* every process's cached access tokens of the account check again */
	store_epoch_bump(us->s);
	return ERR_OK;
}

enum err user_end_access(struct users *us, int64_t uid, struct ctx *c)
{
	enum err e = user_end_sessions(us, uid, NULL, c);

	return e ? e : user_end_grants(us, uid, c);
}

enum err user_end_sessions(struct users *us, int64_t uid, int64_t *n, struct ctx *c)
{
	if (n)
		*n = 0;
	if (uid <= 0)
		return ctx_errorf(c, ERR_INVALID, "no account");
	return store_item_delete_uid(us->s, "session", uid, n, c);
}

enum err user_grant_end(struct users *us, const char *grant_id, bool *was_live, struct ctx *c)
{
	enum err e = store_item_take(us->s, "grant", grant_id, STORE_ITEM_LIVE, STORE_ITEM_REVOKED, NULL, c);

	if (was_live)
		*was_live = e == ERR_OK;
	if (e == ERR_CONFLICT || e == ERR_NOTFOUND) {
		ctx_clear(c);
		e = ERR_OK;
	}
	if (!e)
		e = store_item_set_state_grp(us->s, "refresh", grant_id, STORE_ITEM_REVOKED, NULL, c);
	/* cached access tokens of the grant, in every process, check again */
	store_epoch_bump(us->s);
	return e;
}

/* user_end_access() of account 'username'. */
static enum err end_access(struct users *us, const char *username, struct ctx *c)
{
	struct user u;
	enum err e;

	if ((e = user_get_by_name(us, username, &u, c)))
		return e;
	return user_end_access(us, u.uid, c);
}

enum err user_disable(struct users *us, const char *username, struct ctx *c)
{
	bool v = true;
	enum err e;

	if ((e = modify(us, username, set_disabled, &v, c)))
		return e;
	return end_access(us, username, c);
}

enum err user_enable(struct users *us, const char *username, struct ctx *c)
{
	bool v = false;

	return modify(us, username, set_disabled, &v, c);
}

/* Install the new hash in 'arg'; a new password clears failures and locks. */
static void set_hash(struct store_user *su, void *arg)
{
	str_copy(su->password_hash, arg, sizeof(su->password_hash));
	su->failed_logins = 0;
	su->locked_until = 0;
}

/*
 * The checks and the Argon2id hash of a new password for 'username': its
 * normalized name in name[], its account in *u, the hash in phc[] (the
 * caller wipes it).  An unknown name fails before the hash is paid for.
 */
static enum err new_hash(struct users *us, const char *username, const char *pw, size_t n,
			 char name[USER_NAME_MAX + 1], struct user *u, char phc[PASSWORD_PHC_MAX],
			 struct ctx *c)
{
	enum err e;

	if ((e = user_name_normalize(username, name, c)) || (e = user_password_check(pw, n, c)) ||
	    (e = user_get_by_name(us, name, u, c)))
		return e;
	return password_hash(pw, n, &us->params, phc, c);
}

enum err user_set_password(struct users *us, const char *username, const char *pw, size_t n,
			   struct ctx *c)
{
	char name[USER_NAME_MAX + 1], phc[PASSWORD_PHC_MAX] = "";
	struct user u;
	enum err e;

	/* a new password (a suspected compromise) ends the old sessions and grants */
	if (!(e = new_hash(us, username, pw, n, name, &u, phc, c)) &&
	    !(e = modify(us, name, set_hash, phc, c)))
		e = end_access(us, name, c);
	mem_wipe(phc, sizeof(phc));
	return e;
}

enum err user_password_hash(struct users *us, const char *username, const char *pw, size_t n,
			    char phc[PASSWORD_PHC_MAX], struct ctx *c)
{
	char name[USER_NAME_MAX + 1];
	struct user u;

	return new_hash(us, username, pw, n, name, &u, phc, c);
}

enum err user_password_store(struct users *us, const char *username, const char *phc,
			     struct ctx *c)
{
	return modify(us, username, set_hash, (void *)phc, c);
}

static void count_failure(struct store_user *su, void *arg)
{
	(void)arg;
	su->failed_logins++;
}

static void signin_ok(struct store_user *su, void *arg)
{
	const char *phc = arg;

	su->failed_logins = 0;
	if (phc)
		str_copy(su->password_hash, phc, sizeof(su->password_hash));
}

enum err user_verify_password(struct users *us, const char *username, const char *pw, size_t n,
			      struct user *out, struct ctx *c)
{
	char name[USER_NAME_MAX + 1], phc[PASSWORD_PHC_MAX];
	struct store_user su;
	struct ctx ignore = CTX_INIT;
	bool found = false;
	enum err e;

	memset(&su, 0, sizeof(su));
	phc[0] = '\0';
	if (out)
		memset(out, 0, sizeof(*out));
	if (user_name_normalize(username, name, NULL) == ERR_OK) {
		e = store_user_get(us->s, name, &su, c);
		if (e == ERR_OK)
			found = true;
		else if (e != ERR_NOTFOUND)
			goto out;
		ctx_clear(c);
	}
	if (!found) {
		/* the same Argon2id work as for a real account */
		e = password_dummy_verify(pw, n, &us->params, c);
		if (e == ERR_UNAUTHORIZED || e == ERR_TOOBIG || e == ERR_INVALID) {
			ctx_clear(c);
			e = ctx_errorf(c, ERR_UNAUTHORIZED, BAD_SIGNIN);
		}
		goto out;
	}
	e = password_verify(su.password_hash, pw, n, c);
	if (e == ERR_UNAUTHORIZED || e == ERR_TOOBIG) {
		ctx_clear(c);
		modify(us, name, count_failure, NULL, &ignore);
		e = ctx_errorf(c, ERR_UNAUTHORIZED, BAD_SIGNIN);
		goto out;
	}
	if (e)
		goto out;
	if (su.disabled) {
		e = ctx_errorf(c, ERR_FORBIDDEN, "account '%s' is disabled", name);
		goto out;
	}
	if (su.locked_until > clock_now_ms()) {
		e = ctx_errorf(c, ERR_FORBIDDEN, "account '%s' is locked", name);
		goto out;
	}
	/* a hash made with older parameters is replaced while we hold the password */
	if (password_needs_rehash(su.password_hash, &us->params) &&
	    password_hash(pw, n, &us->params, phc, &ignore))
		phc[0] = '\0';
	/* a replaced hash is the account's from now on: 'out' describes it */
	if ((su.failed_logins || phc[0]) && !modify(us, name, signin_ok, phc[0] ? phc : NULL, &ignore) &&
	    phc[0])
		str_copy(su.password_hash, phc, sizeof(su.password_hash));
	if (out) {
		to_user(&su, out);
		out->failed_logins = 0;
	}
out:
	store_user_wipe(&su);
	mem_wipe(phc, sizeof(phc));
	return e;
}

struct secret {
	const unsigned char *p;
	size_t n;
};

static void set_mfa(struct store_user *su, void *arg)
{
	const struct secret *sec = arg;

	mem_wipe(su->mfa_secret, sizeof(su->mfa_secret));
	su->mfa_secret_len = 0;
	if (sec->p && sec->n && sec->n <= sizeof(su->mfa_secret)) {
		memcpy(su->mfa_secret, sec->p, sec->n);
		su->mfa_secret_len = sec->n;
		su->last_strong_auth = clock_now_ms();
	}
}

enum err user_mfa_set(struct users *us, const char *username, const unsigned char *secret,
		      size_t n, struct ctx *c)
{
	struct secret sec = {secret, n};

	if (secret && (n == 0 || n > STORE_MFA_SECRET_MAX))
		return ctx_errorf(c, ERR_INVALID, "a TOTP secret is 1 to %d bytes", STORE_MFA_SECRET_MAX);
	return modify(us, username, set_mfa, &sec, c);
}

enum err user_mfa_secret(struct users *us, const char *username,
			 unsigned char out[STORE_MFA_SECRET_MAX], size_t *n, struct ctx *c)
{
	char name[USER_NAME_MAX + 1];
	struct store_user su;
	enum err e;

	*n = 0;
	memset(&su, 0, sizeof(su));
	if ((e = user_name_normalize(username, name, c)) || (e = store_user_get(us->s, name, &su, c)))
		goto out;
	memcpy(out, su.mfa_secret, su.mfa_secret_len);
	*n = su.mfa_secret_len;
out:
	store_user_wipe(&su);
	return e;
}

enum err user_patients(struct users *us, int64_t uid, struct store_user_patient *out,
		       size_t max, size_t *n, struct ctx *c)
{
	return store_user_patients(us->s, uid, out, max, n, c);
}

enum err user_linked(struct users *us, int64_t uid, const char *patient, bool *linked,
		     struct ctx *c)
{
	struct store_user_patient links[USER_PATIENTS_MAX];
	size_t n = 0;
	enum err e;

	*linked = false;
	if (!patient || (e = user_patients(us, uid, links, USER_PATIENTS_MAX, &n, c)))
		return patient ? e : ERR_OK;
	for (size_t i = 0; i < n && i < USER_PATIENTS_MAX && !*linked; i++)
		*linked = !strcmp(links[i].patient_id, patient);
	return ERR_OK;
}

/* The keys of the live grants (authorizations) an account holds for one patient. */
struct patient_grants {
	const char *patient;
	char (*keys)[STORE_ITEM_KEY_SIZE];
	size_t n, cap;
};

static int grant_for_patient(void *arg, const struct store_item *it)
{
	struct patient_grants *pg = arg;
	json_t *j;

	if (it->state != STORE_ITEM_LIVE)
		return 0;
	j = json_loadb(it->data.data, it->data.len, 0, NULL);
	if (j && json_is_string(json_object_get(j, "patient")) &&
	    !strcmp(json_string_value(json_object_get(j, "patient")), pg->patient)) {
		if (pg->n == pg->cap) {
			pg->cap = pg->cap ? 2 * pg->cap : 8;
			pg->keys = xrealloc(pg->keys, pg->cap * sizeof(*pg->keys));
		}
		str_copy(pg->keys[pg->n++], it->key, sizeof(pg->keys[0]));
	}
	json_decref(j);
	return 0;
}

/*
 * End every authorization account 'uid' holds for 'patient', and the
 * refresh tokens of each (inside the caller's transaction); *ended gets how
 * many.
 */
static enum err end_patient_grants(struct users *us, int64_t uid, const char *patient,
				   size_t *ended, struct ctx *c)
{
	struct patient_grants pg = {.patient = patient};
	enum err e;

	*ended = 0;
	e = store_item_list(us->s, "grant", uid, NULL, grant_for_patient, &pg, c);
	for (size_t i = 0; !e && i < pg.n; i++) {
		bool was_live = false;

		if (!(e = user_grant_end(us, pg.keys[i], &was_live, c)) && was_live)
			(*ended)++;
	}
	free(pg.keys);
	return e;
}

/*
 * Read the links of 'username' (a patient or caregiver account), let
 * 'edit' change them, and store them, in one transaction; with 'end_for',
 * also end the account's grants for that patient (*ended: how many).
 */
static enum err edit_links(struct users *us, const char *username,
			   enum err (*edit)(struct store_user_patient *links, size_t *n, void *arg,
					    struct ctx *c),
			   void *arg, const char *end_for, size_t *ended, struct ctx *c)
{
	struct store_user_patient links[USER_PATIENTS_MAX];
	char name[USER_NAME_MAX + 1];
	struct user u;
	size_t n = 0;
	enum err e;

	if ((e = user_name_normalize(username, name, c)) ||
	    (e = user_get_by_name(us, name, &u, c)))
		return e;
	if (u.role != USER_PATIENT && u.role != USER_CAREGIVER)
		return ctx_errorf(c, ERR_INVALID, "'%s' is a %s account: only patient and caregiver"
				  " accounts act for patients", name, role_names[u.role]);
	if ((e = store_begin(us->s, c)))
		return e;
	if ((e = user_patients(us, u.uid, links, USER_PATIENTS_MAX, &n, c)) ||
	    (n > USER_PATIENTS_MAX &&
	     (e = ctx_errorf(c, ERR_TOOBIG, "'%s' has more than %d patient links", name,
			     USER_PATIENTS_MAX))) ||
	    (e = edit(links, &n, arg, c)) ||
	    (e = store_user_patients_set(us->s, u.uid, links, n, c)) ||
	    (end_for && (e = end_patient_grants(us, u.uid, end_for, ended, c))) ||
	    (e = store_commit(us->s, c)))
		store_rollback(us->s);
	return e;
}

struct link_arg {
	const char *patient, *related_person;
};

static enum err add_link(struct store_user_patient *links, size_t *n, void *arg, struct ctx *c)
{
	const struct link_arg *la = arg;
	size_t i;

	for (i = 0; i < *n && strcmp(links[i].patient_id, la->patient); i++)
		;
	if (i < *n && !strcmp(links[i].relationship, "self"))
		return ctx_errorf(c, ERR_CONFLICT, "Patient/%s is the account's own record",
				  la->patient);
	if (i == *n && *n >= USER_PATIENTS_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "an account acts for at most %d patients",
				  USER_PATIENTS_MAX);
	memset(&links[i], 0, sizeof(links[i]));
	str_copy(links[i].patient_id, la->patient, sizeof(links[i].patient_id));
	str_copy(links[i].relationship, "proxy", sizeof(links[i].relationship));
	str_copy(links[i].related_person, la->related_person, sizeof(links[i].related_person));
	if (i == *n)
		(*n)++;
	return ERR_OK;
}

static enum err drop_link(struct store_user_patient *links, size_t *n, void *arg, struct ctx *c)
{
	const struct link_arg *la = arg;

	for (size_t i = 0; i < *n; i++) {
		if (strcmp(links[i].patient_id, la->patient))
			continue;
		if (!strcmp(links[i].relationship, "self"))
			return ctx_errorf(c, ERR_CONFLICT,
					  "Patient/%s is the account's own record: it cannot be"
					  " unlinked", la->patient);
		memmove(&links[i], &links[i + 1], (*n - i - 1) * sizeof(links[0]));
		(*n)--;
		return ERR_OK;
	}
	return ctx_errorf(c, ERR_NOTFOUND, "the account does not act for Patient/%s", la->patient);
}

/* RelatedPerson 'id' must exist and be about Patient 'patient' (its 'patient' element). */
static enum err related_of(struct users *us, const char *id, const char *patient, struct ctx *c)
{
	struct store_resource r;
	char want[96];
	json_t *doc = NULL;
	enum err e;

	store_resource_init(&r);
	e = store_get(us->s, "RelatedPerson", id, 0, &r, c);
	if (e == ERR_NOTFOUND || (!e && r.deleted)) {
		ctx_clear(c);
		e = ctx_errorf(c, ERR_NOTFOUND, "RelatedPerson/%s does not exist", id);
	}
	else if (!e) {
		const char *ref;

		doc = json_loadb(r.json.data, r.json.len, 0, NULL);
		ref = json_get_str(json_object_get(doc, "patient"), "reference");
		snprintf(want, sizeof(want), "Patient/%s", patient);
		if (!ref || strcmp(ref, want))
			e = ctx_errorf(c, ERR_CONFLICT, "RelatedPerson/%s is not about %s", id, want);
	}
	json_decref(doc);
	store_resource_release(&r);
	return e;
}

enum err user_link(struct users *us, const char *username, const char *patient,
		   const char *related_person, struct ctx *c)
{
	struct link_arg la = {patient, related_person};
	enum err e;

	if (!patient || !fhir_id_ok(patient, strlen(patient)))
		return ctx_errorf(c, ERR_INVALID, "'%.80s' is not a patient id", patient ? patient : "");
	if (!related_person || !fhir_id_ok(related_person, strlen(related_person)))
		return ctx_errorf(c, ERR_INVALID, "a proxy link needs the RelatedPerson id that"
				  " describes it");
	if ((e = must_exist(us, "Patient", patient, c)) ||
	    (e = related_of(us, related_person, patient, c)))
		return e;
	return edit_links(us, username, add_link, &la, NULL, NULL, c);
}

enum err user_unlink(struct users *us, const char *username, const char *patient, size_t *ended,
		     struct ctx *c)
{
	struct link_arg la = {patient, NULL};
	size_t dummy;

	if (!patient || !*patient)
		return ctx_errorf(c, ERR_INVALID, "which patient?");
	return edit_links(us, username, drop_link, &la, patient, ended ? ended : &dummy, c);
}
