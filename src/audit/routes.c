/*
 * routes.c - the audit log's public HTTP edge: the latest signed
 * checkpoint of each stream (or a stream's history), inclusion proofs of
 * one record and consistency proofs between two tree sizes.  They hold
 * hashes and signatures only, never record contents, so they need no
 * token: a patient holding a receipt, or an auditor, checks them offline.
 *
 * One reader, opened on first use, serves every thread under a mutex:
 * these are rare requests.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/routes.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "http/http.h"

#define JSON_CT "application/json"

/* At most this many checkpoints in one page of the history. */
#define CHECKPOINT_PAGE_MAX 1000

static struct {
	pthread_mutex_t mu;
	const char *dir;
	struct audit_reader *rd;
} edge = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL};

static void send_error(struct http_req *q, int status, const char *msg)
{
	struct buf b = BUF_INIT(1024);
	json_t *j = json_pack("{s:s}", "error", msg);

	json_dump_buf(j, &b);
	json_decref(j);
	http_resp_header(q, "Cache-Control", "no-store");
	http_resp_buf(q, status, JSON_CT, &b);
	buf_release(&b);
}

static void send_json(struct http_req *q, json_t *j)
{
	struct buf b = BUF_INIT(1 << 22);

	json_dump_buf(j, &b);
	json_decref(j);
	http_resp_header(q, "Cache-Control", "no-cache");
	http_resp_header(q, "Access-Control-Allow-Origin", "*");
	http_resp_buf(q, 200, JSON_CT, &b);
	buf_release(&b);
}

/* Parse query parameter 'name' as a non-negative integer (absent: 'def'). */
static bool num(struct http_req *q, const char *name, int64_t def, int64_t *out)
{
	const char *v = http_req_query(q, name);

	*out = def;
	return !v || !str_to_i64(v, 0, INT64_MAX, out);
}

/* Take the lock and open the reader if needed (false, lock released, 503 sent when it cannot be). */
static bool with_reader(struct http_req *q, struct ctx *c)
{
	pthread_mutex_lock(&edge.mu);
	if (!edge.rd && audit_reader_open(edge.dir, &edge.rd, c)) {
		pthread_mutex_unlock(&edge.mu);
		log_msg(LOG_ERROR, "audit log: %s", c->msg);
		send_error(q, 503, "the audit log cannot be read now");
		return false;
	}
	return true;
}

static void answer(struct http_req *q, enum err e, json_t *j, const struct ctx *c)
{
	pthread_mutex_unlock(&edge.mu);
	if (e == ERR_NOTFOUND || e == ERR_INVALID)
		send_error(q, e == ERR_NOTFOUND ? 404 : 400, c->msg);
	else if (e)
		send_error(q, 500, "the audit log cannot be read now");
	else
		send_json(q, j);
}

/*
 * GET /audit/checkpoints[?node=NODE]: the latest signed checkpoint of each
 * stream.  With history=1, every checkpoint, oldest first, in pages of at
 * most 'limit' (CHECKPOINT_PAGE_MAX, the default); a "next" link, carrying
 * the cursor after=NODE:SIZE, is given when another page follows.
 */
static void handle_checkpoints(struct http_req *q, void *arg)
{
	struct ctx c = CTX_INIT;
	json_t *j = NULL;
	int64_t limit;
	const char *h = http_req_query(q, "history"), *node = http_req_query(q, "node");
	const char *after = http_req_query(q, "after");
	bool history = h && (!strcmp(h, "1") || !strcmp(h, "true")), more = false;
	char after_node[AUDIT_NODE_MAX + 1] = "";
	uint64_t after_size = 0;
	enum err e;

	(void)arg;
	if (h && !history && strcmp(h, "0") && strcmp(h, "false")) {
		send_error(q, 400, "history is 1 (true) or 0 (false)");
		return;
	}
	if (!num(q, "limit", 0, &limit)) {
		send_error(q, 400, "limit must be a non-negative integer");
		return;
	}
	if (after && (!history || !audit_ref_parse(after, after_node, &after_size))) {
		send_error(q, 400, "after is a cursor NODE:SIZE of history=1");
		return;
	}
	if (history && (limit == 0 || limit > CHECKPOINT_PAGE_MAX))
		limit = CHECKPOINT_PAGE_MAX;
	if (!with_reader(q, &c))
		return;
	if (!history) {
		e = audit_checkpoints(edge.rd, node, false, (size_t)limit, &j, &c);
	} else {
		e = audit_checkpoints_page(edge.rd, node, after ? after_node : NULL, after_size,
					   (size_t)limit, &j, &more, &c);
		if (!e && more) {
			/* the cursor is the last checkpoint of this page */
			const json_t *list = json_object_get(j, "checkpoints");
			const json_t *last = json_array_get(list, json_array_size(list) - 1);
			char next[256];

			snprintf(next, sizeof(next),
				 "/audit/checkpoints?history=1%s%s&after=%s:%lld&limit=%lld",
				 node && *node ? "&node=" : "", node && *node ? node : "",
				 json_string_value(json_object_get(last, "node")),
				 (long long)json_integer_value(json_object_get(last, "size")),
				 (long long)limit);
			json_object_set_new(j, "next", json_string(next));
		}
	}
	answer(q, e, j, &c);
}

static void handle_proof(struct http_req *q, void *arg)
{
	struct ctx c = CTX_INIT;
	json_t *j = NULL;
	int64_t seq, size;
	enum err e;

	(void)arg;
	if (!http_req_query(q, "seq") || !num(q, "seq", 0, &seq) || !num(q, "size", 0, &size)) {
		send_error(q, 400, "seq (and size, if given) must be non-negative integers");
		return;
	}
	if (!with_reader(q, &c))
		return;
	e = audit_inclusion_proof(edge.rd, http_req_query(q, "node"), (uint64_t)seq, (uint64_t)size,
				  &j, &c);
	answer(q, e, j, &c);
}

static void handle_consistency(struct http_req *q, void *arg)
{
	struct ctx c = CTX_INIT;
	json_t *j = NULL;
	int64_t from, to;
	enum err e;

	(void)arg;
	if (!http_req_query(q, "from") || !http_req_query(q, "to") || !num(q, "from", 0, &from) ||
	    !num(q, "to", 0, &to)) {
		send_error(q, 400, "from and to must be non-negative integers");
		return;
	}
	if (!with_reader(q, &c))
		return;
	e = audit_consistency_proof(edge.rd, http_req_query(q, "node"), (uint64_t)from, (uint64_t)to,
				    &j, &c);
	answer(q, e, j, &c);
}

void audit_routes_register(struct http_router *r, const char *data_dir)
{
	edge.dir = data_dir;
	http_route(r, HTTP_GET, "/audit/checkpoints", HTTP_BODY_NONE, handle_checkpoints, NULL);
	http_route(r, HTTP_GET, "/audit/proof", HTTP_BODY_NONE, handle_proof, NULL);
	http_route(r, HTTP_GET, "/audit/consistency", HTTP_BODY_NONE, handle_consistency, NULL);
}

void audit_routes_free(void)
{
	pthread_mutex_lock(&edge.mu);
	audit_reader_free(edge.rd);
	edge.rd = NULL;
	pthread_mutex_unlock(&edge.mu);
}
