/* Placeholder until the SQLite search lands: every search call is refused. */
#include "store/query.h"

enum err store_search(struct store *s, const struct store_query *q, store_hit_fn fn,
		      void *arg, bool *more, int64_t *total, struct ctx *c)
{
	(void)s, (void)q, (void)fn, (void)arg, (void)more, (void)total;
	return ctx_errorf(c, ERR_UNSUPPORTED, "search is not available yet");
}

enum err store_search_explain(struct store *s, const struct store_query *q, struct buf *out,
			      struct buf *sql, struct ctx *c)
{
	(void)s, (void)q, (void)out, (void)sql;
	return ctx_errorf(c, ERR_UNSUPPORTED, "search is not available yet");
}

enum err store_include(struct store *s, const int64_t *rids, size_t n, const char *src_type,
		       const char *param, const char *target_type, store_hit_fn fn, void *arg,
		       struct ctx *c)
{
	(void)s, (void)rids, (void)n, (void)src_type, (void)param, (void)target_type, (void)fn, (void)arg;
	return ctx_errorf(c, ERR_UNSUPPORTED, "search is not available yet");
}

enum err store_revinclude(struct store *s, const char *target_type, const char *const *ids,
			  size_t n, const char *src_type, const char *param, int64_t limit,
			  store_hit_fn fn, void *arg, struct ctx *c)
{
	(void)s, (void)target_type, (void)ids, (void)n, (void)src_type, (void)param, (void)limit, (void)fn, (void)arg;
	return ctx_errorf(c, ERR_UNSUPPORTED, "search is not available yet");
}
