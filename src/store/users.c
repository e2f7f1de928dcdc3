/*
 * users.c - the storage front for accounts (store.h, "user accounts"):
 * argument checks, the sticky failure state for writes, and dispatch to
 * the backend's user_* entries.  Which usernames, roles and fhir users
 * are valid is the accounts service's business (auth/users.h); this layer
 * only checks that fields are present and fit.
 *
 * Threading: as store.c; every function may be called from any thread.
 */
#include <string.h>

#include "core/mem.h"
#include "store/store_int.h"

/* Is 's' a non-empty string shorter than 'size' bytes? */
static bool field_ok(const char *s, size_t size)
{
	return s && *s && strnlen(s, size) < size;
}

/* A backend without accounts support. */
static enum err no_users(struct store *s, struct ctx *c)
{
	return ctx_errorf(c, ERR_UNSUPPORTED, "the %s store does not keep user accounts",
			  s->ops->name);
}

void store_user_wipe(struct store_user *u)
{
	if (u)
		mem_wipe(u, sizeof(*u));
}

/* ERR_INVALID unless the fields of 'u' are present (where required) and fit. */
static enum err check_user(const struct store_user *u, struct ctx *c)
{
	if (!field_ok(u->username, sizeof(u->username)))
		return ctx_errorf(c, ERR_INVALID, "username is missing or too long");
	if (!field_ok(u->role, sizeof(u->role)))
		return ctx_errorf(c, ERR_INVALID, "role is missing or too long");
	if (strnlen(u->fhir_user, sizeof(u->fhir_user)) >= sizeof(u->fhir_user))
		return ctx_errorf(c, ERR_INVALID, "fhir user is too long");
	if (!field_ok(u->password_hash, sizeof(u->password_hash)))
		return ctx_errorf(c, ERR_INVALID, "password hash is missing or too long");
	if (u->mfa_secret_len > sizeof(u->mfa_secret))
		return ctx_errorf(c, ERR_INVALID, "mfa secret is too long");
	return ERR_OK;
}

enum err store_user_insert(struct store *s, const struct store_user *u, int64_t *uid,
			   struct ctx *c)
{
	enum err e;

	*uid = 0;
	if ((e = check_user(u, c)) || (e = store_check_healthy(s, c)))
		return e;
	if (!s->ops->user_insert)
		return no_users(s, c);
	return s->ops->user_insert(s, u, uid, c);
}

enum err store_user_update(struct store *s, const struct store_user *u, struct ctx *c)
{
	enum err e;

	if (u->uid <= 0)
		return ctx_errorf(c, ERR_INVALID, "user id %lld is invalid", (long long)u->uid);
	if ((e = check_user(u, c)) || (e = store_check_healthy(s, c)))
		return e;
	if (!s->ops->user_update)
		return no_users(s, c);
	return s->ops->user_update(s, u, c);
}

enum err store_user_get(struct store *s, const char *username, struct store_user *out,
			struct ctx *c)
{
	if (!field_ok(username, STORE_USERNAME_SIZE))
		return ctx_errorf(c, ERR_INVALID, "username is missing or too long");
	if (!s->ops->user_get)
		return no_users(s, c);
	return s->ops->user_get(s, username, 0, out, c);
}

enum err store_user_get_uid(struct store *s, int64_t uid, struct store_user *out,
			    struct ctx *c)
{
	if (uid <= 0)
		return ctx_errorf(c, ERR_INVALID, "user id %lld is invalid", (long long)uid);
	if (!s->ops->user_get)
		return no_users(s, c);
	return s->ops->user_get(s, NULL, uid, out, c);
}

enum err store_user_list(struct store *s, store_user_fn fn, void *arg, struct ctx *c)
{
	if (!fn)
		return ctx_errorf(c, ERR_INVALID, "no callback for the user list");
	if (!s->ops->user_list)
		return no_users(s, c);
	return s->ops->user_list(s, fn, arg, c);
}

enum err store_user_patients_set(struct store *s, int64_t uid,
				 const struct store_user_patient *links, size_t n,
				 struct ctx *c)
{
	enum err e;

	if (uid <= 0)
		return ctx_errorf(c, ERR_INVALID, "user id %lld is invalid", (long long)uid);
	if (n && !links)
		return ctx_errorf(c, ERR_INVALID, "patient links missing");
	for (size_t i = 0; i < n; i++) {
		const struct store_user_patient *l = &links[i];

		if (!field_ok(l->patient_id, sizeof(l->patient_id)))
			return ctx_errorf(c, ERR_INVALID, "patient link %zu has no patient id", i);
		if (!field_ok(l->relationship, sizeof(l->relationship)))
			return ctx_errorf(c, ERR_INVALID, "patient link %zu has no relationship", i);
		if (strnlen(l->related_person, sizeof(l->related_person)) >=
		    sizeof(l->related_person))
			return ctx_errorf(c, ERR_INVALID, "patient link %zu: related person too long",
					  i);
	}
	if ((e = store_check_healthy(s, c)))
		return e;
	if (!s->ops->user_patients_set)
		return no_users(s, c);
	return s->ops->user_patients_set(s, uid, links, n, c);
}

enum err store_user_patients(struct store *s, int64_t uid, struct store_user_patient *out,
			     size_t max, size_t *n, struct ctx *c)
{
	*n = 0;
	if (uid <= 0)
		return ctx_errorf(c, ERR_INVALID, "user id %lld is invalid", (long long)uid);
	if (max && !out)
		return ctx_errorf(c, ERR_INVALID, "no room for patient links");
	if (!s->ops->user_patients)
		return no_users(s, c);
	return s->ops->user_patients(s, uid, out, max, n, c);
}
