/*
 * history.c - history Bundles (instance, type, system), assembled from the
 * stored bytes without re-parsing them.  Paging is a keyset cursor on the
 * global write sequence, so a page link never skips or repeats a version
 * while other writes happen.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"
#include "fhir/model.h"

/* A non-zero return of a walk's callback that is not an error: stop here. */
#define WALK_STOP 1

struct hist_walk {
	struct fhir *f;
	struct buf *out;
	int n;
	int64_t last_seq;
	/* set when only kept versions are listed: the query, whether another kept one follows, how many */
	const struct fhir_history_q *keep;
	bool more, count_all;
	int64_t kept;
};

/* Is there any version q->keep() keeps?  (Stops at the first.) */
static int keep_any(void *arg, const struct store_resource *r)
{
	const struct fhir_history_q *q = arg;

	return q->keep(q->keep_arg, r) ? WALK_STOP : 0;
}

static int add_entry(void *arg, const struct store_resource *r)
{
	struct hist_walk *w = arg;
	struct buf *b = w->out;
	char ts[32];

	if (w->keep) {
		if (!w->keep->keep(w->keep->keep_arg, r))
			return 0;
		w->kept++;
		if (w->n == w->keep->count) {
			/* the page is full: this one only says that more follow, and counts */
			w->more = true;
			return w->count_all ? 0 : WALK_STOP;
		}
	}

	clock_format_instant(r->last_updated, ts);
	if (w->n++)
		buf_addch(b, ',');
	buf_addf(b, "{\"fullUrl\":\"%s/%s/%s\"", w->f->base, r->type, r->id);
	if (!r->deleted) {
		buf_adds(b, ",\"resource\":");
		buf_add(b, r->json.data, r->json.len);
	}
	if (r->deleted)
		buf_addf(b, ",\"request\":{\"method\":\"DELETE\",\"url\":\"%s/%s\"}", r->type, r->id);
	else if (r->version == 1)
		buf_addf(b, ",\"request\":{\"method\":\"POST\",\"url\":\"%s\"}", r->type);
	else
		buf_addf(b, ",\"request\":{\"method\":\"PUT\",\"url\":\"%s/%s\"}", r->type, r->id);
	buf_addf(b, ",\"response\":{\"status\":\"%s\",\"etag\":\"W/\\\"%lld\\\"\",\"lastModified\":\"%s\"}}",
		 r->deleted ? "204" : r->version == 1 ? "201" : "200", (long long)r->version, ts);
	w->last_seq = r->seq;
	return 0;
}

static void add_link(struct buf *b, const struct fhir *f, const struct fhir_history_q *q,
		     const char *rel, int64_t cursor, bool first)
{
	char ts[32];

	buf_addf(b, "%s{\"relation\":\"%s\",\"url\":\"%s", first ? "" : ",", rel, f->base);
	if (q->type)
		buf_addf(b, "/%s", q->type);
	if (q->id)
		buf_addf(b, "/%s", q->id);
	buf_addf(b, "/_history?_count=%lld", (long long)q->count);
	if (q->since) {
		clock_format_instant(q->since, ts);
		buf_addf(b, "&_since=%s", ts);
	}
	if (q->at_most) {
		clock_format_instant(q->at_most, ts);
		buf_addf(b, "&_at=%s", ts);
	}
	if (cursor)
		buf_addf(b, "&_cursor=%lld", (long long)cursor);
	buf_adds(b, "\"}");
}

enum err fhir_history(struct fhir *f, const struct fhir_history_q *q, struct buf *out,
		      struct ctx *c)
{
	struct store_history_q sq;
	struct hist_walk w = {f, out, 0, 0, NULL, false, false, 0};
	struct buf entries = BUF_INIT(out->max);
	bool more = false;
	int64_t total = -1;
	enum err e;
	char now[32];

	if (q->type && !fhir_type_find(q->type))
		return ctx_errorf(c, ERR_NOTFOUND, "resource type '%s' is not supported by this server", q->type);
	if (q->id) {
		int64_t v = 0;
		bool del = false;
		if (!fhir_id_valid(q->id))
			return ctx_errorf(c, ERR_NOTFOUND, "%s/%s is not known", q->type, q->id);
		if ((e = store_current_version(f->store, q->type, q->id, &v, &del, c)))
			return e;
		if (v == 0)
			return ctx_errorf(c, ERR_NOTFOUND, "%s/%s is not known", q->type, q->id);
	}
	memset(&sq, 0, sizeof(sq));
	sq.type = q->type;
	sq.id = q->id;
	sq.since = q->since;
	sq.at_most = q->at_most;
	sq.before_seq = q->cursor;
	sq.limit = q->count;
	w.out = &entries;
	if (q->keep && q->id) {
		/*
		 * Only some versions are listed: a resource none of which is
		 * kept is not known; total and the next link count kept
		 * versions only, so that they say nothing of the others.
		 */
		struct store_history_q all;
		/* a first page without a time window walks every version anyway */
		bool whole = !q->cursor && !sq.since && !sq.at_most;

		if (!whole) {
			memset(&all, 0, sizeof(all));
			all.type = q->type;
			all.id = q->id;
			all.limit = FHIR_HISTORY_WALK_MAX;
			e = store_history(f->store, &all, keep_any, (void *)q, NULL, NULL, c);
			if (e != (enum err)WALK_STOP) {
				if (!e)
					e = ctx_errorf(c, ERR_NOTFOUND, "%s/%s is not known", q->type, q->id);
				goto out;
			}
		}
		sq.limit = FHIR_HISTORY_WALK_MAX;
		w.keep = q;
		w.count_all = !q->cursor;
		e = store_history(f->store, &sq, add_entry, &w, NULL, NULL, c);
		if (e && e != (enum err)WALK_STOP)
			goto out;
		e = ERR_OK;
		if (whole && !w.kept) {
			e = ctx_errorf(c, ERR_NOTFOUND, "%s/%s is not known", q->type, q->id);
			goto out;
		}
		more = w.more;
		if (!q->cursor)
			total = w.kept;
	} else {
		e = store_history(f->store, &sq, add_entry, &w, &more, q->cursor ? NULL : &total, c);
		if (e)
			goto out;
	}
	clock_format_instant(clock_now_ms(), now);
	buf_addf(out, "{\"resourceType\":\"Bundle\",\"type\":\"history\",\"timestamp\":\"%s\"", now);
	if (total >= 0)
		buf_addf(out, ",\"total\":%lld", (long long)total);
	buf_adds(out, ",\"link\":[");
	add_link(out, f, q, "self", q->cursor, true);
	if (more)
		add_link(out, f, q, "next", w.last_seq, false);
	buf_adds(out, "],\"entry\":[");
	buf_add(out, entries.data, entries.len);
	buf_adds(out, "]}");
	if (out->err || entries.err)
		e = ctx_errorf(c, ERR_TOOBIG, "history page is too large; use a smaller _count");
out:
	buf_release(&entries);
	return e;
}
