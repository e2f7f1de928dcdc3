/*
 * items.c - the storage front for auth items (store.h, "auth items"):
 * argument checks, the sticky failure state for writes, and dispatch to
 * the backend's item_* entries.
 *
 * Threading: as store.c; every function may be called from any thread.
 */
#include <string.h>

#include "store/store_int.h"

void store_item_init(struct store_item *it)
{
	memset(it, 0, sizeof(*it));
	buf_init(&it->data, STORE_ITEM_DATA_MAX);
}

void store_item_release(struct store_item *it)
{
	if (it)
		buf_release(&it->data);
}

/* Is 's' a non-empty string shorter than 'size' bytes? */
static bool name_ok(const char *s, size_t size)
{
	return s && *s && strnlen(s, size) < size;
}

static enum err check_key(const char *ns, const char *key, struct ctx *c)
{
	if (!name_ok(ns, STORE_ITEM_NS_SIZE))
		return ctx_errorf(c, ERR_INVALID, "auth item namespace is missing or too long");
	if (key && !name_ok(key, STORE_ITEM_KEY_SIZE))
		return ctx_errorf(c, ERR_INVALID, "auth item key is missing or too long");
	return ERR_OK;
}

/* A backend without auth items. */
static enum err no_items(struct store *s, struct ctx *c)
{
	return ctx_errorf(c, ERR_UNSUPPORTED, "the %s store does not keep auth items",
			  s->ops->name);
}

enum err store_item_put(struct store *s, const struct store_item *it, bool replace,
			struct ctx *c)
{
	enum err e;

	if ((e = check_key(it->ns, it->key, c)) || (e = store_check_healthy(s, c)))
		return e;
	if (strnlen(it->grp, sizeof(it->grp)) >= sizeof(it->grp))
		return ctx_errorf(c, ERR_INVALID, "auth item group is too long");
	if (it->data.len > STORE_ITEM_DATA_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "auth item is larger than %zu bytes",
				  STORE_ITEM_DATA_MAX);
	if (!s->ops->item_put)
		return no_items(s, c);
	return s->ops->item_put(s, it, replace, c);
}

enum err store_item_get(struct store *s, const char *ns, const char *key,
			struct store_item *out, struct ctx *c)
{
	enum err e;

	if ((e = check_key(ns, key, c)))
		return e;
	if (!s->ops->item_get)
		return no_items(s, c);
	return s->ops->item_get(s, ns, key, out, c);
}

enum err store_item_take(struct store *s, const char *ns, const char *key, int from, int to,
			 struct store_item *out, struct ctx *c)
{
	enum err e;

	if ((e = check_key(ns, key, c)) || (e = store_check_healthy(s, c)))
		return e;
	if (!s->ops->item_take)
		return no_items(s, c);
	return s->ops->item_take(s, ns, key, from, to, out, c);
}

enum err store_item_update(struct store *s, const char *ns, const char *key,
			   const char *data, int64_t expires, struct ctx *c)
{
	enum err e;

	if ((e = check_key(ns, key, c)) || (e = store_check_healthy(s, c)))
		return e;
	if (data && strlen(data) > STORE_ITEM_DATA_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "auth item is larger than %zu bytes",
				  STORE_ITEM_DATA_MAX);
	if (!s->ops->item_update)
		return no_items(s, c);
	return s->ops->item_update(s, ns, key, data, expires, c);
}

enum err store_item_set_state_uid(struct store *s, const char *ns, int64_t uid, int to,
				  int64_t *n, struct ctx *c)
{
	enum err e;

	if (n)
		*n = 0;
	if ((ns && (e = check_key(ns, NULL, c))) || (e = store_check_healthy(s, c)))
		return e;
	if (!s->ops->item_set_state)
		return no_items(s, c);
	return s->ops->item_set_state(s, ns, uid, NULL, to, n, c);
}

enum err store_item_set_state_grp(struct store *s, const char *ns, const char *grp, int to,
				  int64_t *n, struct ctx *c)
{
	enum err e;

	if (n)
		*n = 0;
	if ((ns && (e = check_key(ns, NULL, c))) || (e = store_check_healthy(s, c)))
		return e;
	if (!name_ok(grp, STORE_ITEM_KEY_SIZE))
		return ctx_errorf(c, ERR_INVALID, "auth item group is missing or too long");
	if (!s->ops->item_set_state)
		return no_items(s, c);
	return s->ops->item_set_state(s, ns, 0, grp, to, n, c);
}

enum err store_item_delete(struct store *s, const char *ns, const char *key, struct ctx *c)
{
	enum err e;

	if ((e = check_key(ns, key, c)) || (e = store_check_healthy(s, c)))
		return e;
	if (!s->ops->item_delete)
		return no_items(s, c);
	return s->ops->item_delete(s, ns, key, 0, NULL, c);
}

enum err store_item_delete_uid(struct store *s, const char *ns, int64_t uid, int64_t *n,
			       struct ctx *c)
{
	enum err e;

	if (n)
		*n = 0;
	if ((e = check_key(ns, NULL, c)) || (e = store_check_healthy(s, c)))
		return e;
	if (!s->ops->item_delete)
		return no_items(s, c);
	return s->ops->item_delete(s, ns, NULL, uid, n, c);
}

enum err store_item_list(struct store *s, const char *ns, int64_t uid, const char *grp,
			 store_item_fn fn, void *arg, struct ctx *c)
{
	enum err e;

	if ((e = check_key(ns, NULL, c)))
		return e;
	if (!s->ops->item_list)
		return no_items(s, c);
	return s->ops->item_list(s, ns, uid, grp, fn, arg, c);
}

enum err store_item_purge(struct store *s, int64_t now, int64_t *n, struct ctx *c)
{
	enum err e;

	if (n)
		*n = 0;
	if ((e = store_check_healthy(s, c)))
		return e;
	if (!s->ops->item_purge)
		return no_items(s, c);
	return s->ops->item_purge(s, now, n, c);
}
