/*
 * users.h - the accounts service: who may sign in, with which role, as
 * which FHIR person, and for which patients they may act.
 *
 * An account has a username ([a-z0-9._-]{1,64}; input is lowercased, so
 * names are case-insensitive), a role, an optional fhirUser reference
 * ("Patient/alice", "RelatedPerson/bob-for-child", "Practitioner/drsmith")
 * and an Argon2id password hash (auth/password.h).  The patients a user
 * may act for are listed with the relationship that allows it: "self" for
 * their own record, "proxy" (with the RelatedPerson that represents the
 * user in that record) for a caregiver.
 *
 * Passwords follow NIST SP 800-63B: 8 to 256 characters (Unicode code
 * points of valid UTF-8), no composition rules.  They are read in place,
 * never copied into messages, never logged.
 *
 * No HTTP here: sign-in pages and endpoints map these enum err codes.
 *
 * Ownership: struct users borrows the store (which must outlive it).
 * Threading: every function may be called from any thread.
 */
#ifndef VERANDA_AUTH_USERS_H
#define VERANDA_AUTH_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/password.h"
#include "core/err.h"
#include "store/store.h"

#define USER_NAME_MAX 64          /* bytes of a username */
#define USER_PASSWORD_MIN 8       /* characters */
#define USER_PASSWORD_MAX 256     /* characters */
#define USER_PATIENTS_MAX 64      /* patients one account may act for */

enum user_role {
	USER_PATIENT,
	USER_CAREGIVER,
	USER_CLINICIAN,
	USER_SUPPORT,
	USER_COMPLIANCE,
	USER_ADMIN,
};
#define USER_ROLES 6

/* "patient", "caregiver", ...; NULL for a value outside the enum. */
const char *user_role_name(enum user_role r);
/* Parse a role name (exact, lowercase).  ERR_INVALID listing the valid ones. */
enum err user_role_parse(const char *s, enum user_role *out, struct ctx *c);

/*
 * Lowercase 'in' into out[USER_NAME_MAX + 1] and check it is
 * [a-z0-9._-]{1,64}.  ERR_INVALID otherwise.
 */
enum err user_name_normalize(const char *in, char out[USER_NAME_MAX + 1], struct ctx *c);

/* ERR_INVALID unless pw[0..n) is an acceptable password (see the file comment). */
enum err user_password_check(const char *pw, size_t n, struct ctx *c);

/* An account as callers see it: no hash, no MFA secret. */
struct user {
	int64_t uid;
	char username[USER_NAME_MAX + 1];
	enum user_role role;
	char fhir_user[STORE_FHIR_USER_SIZE];    /* "" when none */
	bool disabled;
	bool mfa_enrolled;
	int64_t created, updated;                /* ms since epoch */
	int64_t failed_logins;
	int64_t locked_until;                    /* ms since epoch; 0: not locked */
	int64_t last_strong_auth;                /* ms since epoch; 0: never */
	/* a fingerprint of the password's hash and the TOTP secret: it changes with either */
	char credentials[17];
};

/* What an account is made of (user_add(), user_put()). */
struct user_spec {
	const char *username;
	enum user_role role;
	const char *fhir_user;                   /* NULL or "" for none */
	const char *password;                    /* borrowed; not kept */
	size_t password_len;
	/*
	 * Patients the user acts for besides their own record (which is
	 * linked as "self" when fhir_user is a Patient).
	 */
	const struct store_user_patient *links;
	size_t nlinks;
};

struct users;

/*
 * A service over store 's' hashing with 'params' (NULL: the defaults).
 * ERR_INVALID (and *out NULL) for params below the floors.
 */
enum err users_new(struct users **out, struct store *s, const struct password_params *params,
		   struct ctx *c);
void users_free(struct users *us);

/*
 * Create an account.  Checks the username, role, password and that
 * fhir_user fits the role (patient: Patient/…; caregiver: Patient/… or
 * RelatedPerson/…; clinician: Practitioner/…; support, compliance, admin:
 * none or Practitioner/…) and exists in the store, as do the linked
 * patients; then hashes and writes the account and its patient links in
 * one transaction (the caller's when open).  *uid (may be NULL) gets the
 * new id.  ERR_INVALID (bad value), ERR_NOTFOUND (a FHIR resource named
 * does not exist), ERR_CONFLICT (username taken, by an account or as an
 * app's client_id: tokens carry both in "sub"), ERR_BUSY (no hashing
 * slot), ERR_IO (storage).
 */
enum err user_add(struct users *us, const struct user_spec *spec, int64_t *uid, struct ctx *c);

/*
 * Create the account, or make an existing one with that username match
 * 'spec' (role, fhir_user, password, links; enabled, unlocked): seeding
 * demo accounts twice gives the same accounts.  *created (may be NULL)
 * says which happened.  Errors as user_add() but ERR_CONFLICT only for a
 * username that is an app's client_id.
 */
enum err user_put(struct users *us, const struct user_spec *spec, int64_t *uid, bool *created,
		  struct ctx *c);

/* Read an account by username (any case).  ERR_NOTFOUND, ERR_INVALID for a bad name. */
enum err user_get_by_name(struct users *us, const char *username, struct user *out,
			  struct ctx *c);

/*
 * Every account in username order; 'fn' gets a struct reused for the next
 * one and must not call the store; a non-zero return stops the walk.
 */
typedef int (*user_fn)(void *arg, const struct user *u);
enum err user_list(struct users *us, user_fn fn, void *arg, struct ctx *c);

/*
 * End everything account 'uid' holds: its sign-in sessions, and its apps'
 * grants (so their refresh and access tokens stop working, in every
 * process on the store: the change epoch is bumped).
 */
enum err user_end_access(struct users *us, int64_t uid, struct ctx *c);
/*
 * Revoke every grant and refresh token of account 'uid' (its apps must
 * ask again; their access tokens stop at once): user_end_access()
 * without the sessions.
 */
enum err user_end_grants(struct users *us, int64_t uid, struct ctx *c);

/*
 * End every sign-in session of account 'uid' (its apps' grants stay);
 * *n (may be NULL) gets how many ended.  Inside the caller's transaction
 * when there is one.
 */
enum err user_end_sessions(struct users *us, int64_t uid, int64_t *n, struct ctx *c);

/* Disable (or enable again) an account.  ERR_NOTFOUND when there is none. */
enum err user_disable(struct users *us, const char *username, struct ctx *c);
enum err user_enable(struct users *us, const char *username, struct ctx *c);

/*
 * Replace an account's password (also clears failed sign-ins and any
 * lock).  ERR_INVALID for an unacceptable password, ERR_NOTFOUND, ERR_BUSY.
 */
enum err user_set_password(struct users *us, const char *username, const char *pw, size_t n,
			   struct ctx *c);

/*
 * A new password for 'username' in two steps, for a change made inside
 * the caller's transaction: user_password_hash() checks it and computes
 * the Argon2id hash into phc[] (slow: before the transaction; the caller
 * wipes phc), user_password_store() writes it (also clearing failed
 * sign-ins and any lock).  ERR_INVALID for an unacceptable password,
 * ERR_NOTFOUND, ERR_BUSY.
 */
enum err user_password_hash(struct users *us, const char *username, const char *pw, size_t n,
			    char phc[PASSWORD_PHC_MAX], struct ctx *c);
enum err user_password_store(struct users *us, const char *username, const char *phc,
			     struct ctx *c);

/*
 * Check a sign-in.  ERR_OK when the account exists, is enabled, is not
 * locked and pw matches; then 'out' (may be NULL) describes it, failed
 * sign-ins are reset and an outdated hash is replaced.  ERR_UNAUTHORIZED
 * ("wrong username or password") for an unknown user, a bad name or a
 * wrong password, which also counts a failed sign-in; an unknown user
 * costs the same Argon2id work as a known one, so timing does not tell
 * whether an account exists.  ERR_FORBIDDEN when the password is right
 * but the account is disabled or locked.  ERR_BUSY, ERR_IO.
 */
enum err user_verify_password(struct users *us, const char *username, const char *pw, size_t n,
			      struct user *out, struct ctx *c);

/*
 * Enrol the account's TOTP secret (secret[0..n), n <= STORE_MFA_SECRET_MAX)
 * or remove it (secret NULL: "reset-mfa").  ERR_NOTFOUND for no account.
 */
enum err user_mfa_set(struct users *us, const char *username, const unsigned char *secret,
		      size_t n, struct ctx *c);
/* The account's TOTP secret into out[]; *n = 0 when none is enrolled.  Wipe it after use. */
enum err user_mfa_secret(struct users *us, const char *username,
			 unsigned char out[STORE_MFA_SECRET_MAX], size_t *n, struct ctx *c);

/*
 * The patients account 'uid' may act for, by patient id, into
 * out[0..max); *n is how many exist (may exceed max).
 */
enum err user_patients(struct users *us, int64_t uid, struct store_user_patient *out,
		       size_t max, size_t *n, struct ctx *c);
/* Is 'patient' one of them (*linked)?  Fails only when the links cannot be read. */
enum err user_linked(struct users *us, int64_t uid, const char *patient, bool *linked,
		     struct ctx *c);

/*
 * Let patient or caregiver account 'username' act for 'patient' as the
 * proxy that RelatedPerson 'related_person' describes (both must exist;
 * an existing link to the patient is replaced), or stop it.  The
 * account's own record ("self") is neither.  ERR_NOTFOUND: no such
 * account, resource or link; ERR_CONFLICT: the own record; ERR_INVALID:
 * a staff account or a bad id; ERR_TOOBIG: USER_PATIENTS_MAX links.
 * user_unlink() also ends, in the same transaction, every authorization
 * the account holds for that patient and their refresh tokens (*ended, may
 * be NULL, gets how many), and bumps the store's epoch so that access
 * tokens already issued under them are refused from the next request on,
 * in every process.
 */
/*
 * End grant 'grant_id' (an app's authorization) if it is live, and every
 * refresh token of it, and bump the store's epoch so that its access tokens
 * are checked again (again as the caller's transaction ends, if one is
 * open).  *was_live (may be NULL) says whether it was live.
 */
enum err user_grant_end(struct users *us, const char *grant_id, bool *was_live, struct ctx *c);
enum err user_link(struct users *us, const char *username, const char *patient,
		   const char *related_person, struct ctx *c);
enum err user_unlink(struct users *us, const char *username, const char *patient, size_t *ended,
		     struct ctx *c);

#endif
