/* routes.c - /healthz and /readyz.  See ops.h. */
#include "ops/ops.h"

#include <string.h>

#include "audit/audit.h"
#include "core/buf.h"
#include "http/http.h"
#include "store/store.h"

#define JSON_TYPE "application/json"

static void handle_healthz(struct http_req *q, void *arg)
{
	static const char body[] = "{\"status\":\"ok\"}";

	(void)arg;
	http_resp_bytes(q, 200, JSON_TYPE, body, sizeof(body) - 1);
}

struct ops {
	struct store *store;
	struct audit *audit;
};

static struct ops ops;

/*
 * Not ready when the store does not answer, or when the audit log has
 * failed for good (a failed sync: every disclosure gets 503 until a
 * restart).  A log that is only behind (full queue, locked audit.db)
 * recovers by itself and does not count.
 */
static enum err ready(const struct ops *o, struct ctx *c)
{
	struct audit_stats st;

	if (o->audit) {
		audit_stats(o->audit, &st);
		if (st.failed)
			return ctx_errorf(c, ERR_IO,
					  "the audit log has failed: see the server log; restart"
					  " once the disk is checked");
	}
	return store_ping(o->store, c);
}

static void handle_readyz(struct http_req *q, void *arg)
{
	const struct ops *o = arg;
	struct ctx c = CTX_INIT;
	struct buf b = BUF_INIT(4096);

	if (ready(o, &c)) {
		buf_adds(&b, "{\"status\":\"unavailable\",\"reason\":\"");
		buf_add_json_str(&b, c.msg, strlen(c.msg));
		buf_adds(&b, "\"}");
		http_resp_header(q, "Retry-After", "5");
		http_resp_buf(q, 503, JSON_TYPE, &b);
	} else {
		buf_adds(&b, "{\"status\":\"ready\"}");
		http_resp_buf(q, 200, JSON_TYPE, &b);
	}
	buf_release(&b);
}

void ops_routes_register(struct http_router *r, struct store *s, struct audit *au)
{
	ops = (struct ops){s, au};
	http_route(r, HTTP_GET, "/healthz", HTTP_BODY_NONE, handle_healthz, NULL);
	http_route(r, HTTP_GET, "/readyz", HTTP_BODY_NONE, handle_readyz, &ops);
}
