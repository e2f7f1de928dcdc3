/*
 * tests/unit/http/server.c - the HTTP server over real sockets: a server on
 * 127.0.0.1 port 0 with test routes, spoken to with hand-written requests
 * so that exactly what goes over the wire is checked (routing, errors,
 * bodies, headers, keep-alive, slow clients, graceful stop, TLS).
 */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "http/http.h"

/* ---- a tiny HTTP/1.1 client ---- */

struct resp {
	char raw[262144];
	size_t len;
	size_t hdr_len; /* through the blank line */
	int status;
	const char *body;
	size_t body_len;
};

static int dial_from(int family, int port, const char *src)
{
	struct timeval tv = {5, 0};
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (family == AF_INET) {
		struct sockaddr_in a;

		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		if (src) {
			inet_pton(AF_INET, src, &a.sin_addr);
			if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
				goto fail;
		}
		a.sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
			goto fail;
	} else {
		struct sockaddr_in6 a;

		memset(&a, 0, sizeof(a));
		a.sin6_family = AF_INET6;
		a.sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, "::1", &a.sin6_addr);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static int dial(int port)
{
	return dial_from(AF_INET, port, NULL);
}

static bool send_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

		if (k <= 0)
			return false;
		s += k;
		n -= (size_t)k;
	}
	return true;
}

static bool send_str(int fd, const char *s)
{
	return send_all(fd, s, strlen(s));
}

/* Value of header 'name' (the n-th occurrence) into out; false when absent. */
static bool hdr_nth(const struct resp *r, const char *name, int nth, char *out, size_t n)
{
	const char *p = r->raw, *end = r->raw + r->hdr_len;
	size_t nl = strlen(name);

	p = memchr(p, '\n', (size_t)(end - p)); /* skip the status line */
	while (p && ++p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':' &&
		    nth-- == 0) {
			const char *v = p + nl + 1;
			size_t len;

			while (*v == ' ')
				v++;
			len = (size_t)(eol - v);
			if (len && v[len - 1] == '\r')
				len--;
			if (len >= n)
				len = n - 1;
			memcpy(out, v, len);
			out[len] = '\0';
			return true;
		}
		p = eol;
	}
	return false;
}

static bool hdr(const struct resp *r, const char *name, char *out, size_t n)
{
	return hdr_nth(r, name, 0, out, n);
}

static bool has_hdr(const struct resp *r, const char *name)
{
	char v[512];

	return hdr(r, name, v, sizeof(v));
}

/* Read one response (no body for HEAD); 0 when complete, -1 on EOF or error. */
static int read_resp(int fd, struct resp *r, bool head)
{
	char cl[32];
	char *eoh = NULL;
	size_t want;

	memset(r, 0, offsetof(struct resp, raw) + 1);
	r->len = 0;
	r->hdr_len = 0;
	r->status = 0;
	r->body = NULL;
	r->body_len = 0;
	while (!eoh) {
		ssize_t k = recv(fd, r->raw + r->len, sizeof(r->raw) - 1 - r->len, 0);

		if (k <= 0)
			return -1;
		r->len += (size_t)k;
		r->raw[r->len] = '\0';
		eoh = strstr(r->raw, "\r\n\r\n");
		if (!eoh && r->len >= sizeof(r->raw) - 1)
			return -1;
	}
	r->hdr_len = (size_t)(eoh - r->raw) + 4;
	if (sscanf(r->raw, "HTTP/1.%*d %d", &r->status) != 1)
		return -1;
	want = 0;
	if (!head && hdr(r, "Content-Length", cl, sizeof(cl)))
		want = (size_t)strtoul(cl, NULL, 10);
	while (r->len < r->hdr_len + want) {
		ssize_t k = recv(fd, r->raw + r->len, sizeof(r->raw) - 1 - r->len, 0);

		if (k <= 0)
			return -1;
		r->len += (size_t)k;
	}
	r->raw[r->len] = '\0';
	r->body = r->raw + r->hdr_len;
	r->body_len = want;
	return 0;
}

/* Is the peer closed (EOF or reset) within 'ms'? */
static bool peer_closed(int fd, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	char c;

	if (poll(&p, 1, ms) <= 0)
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

/* One request on a fresh connection. */
static int roundtrip(int port, const char *req, struct resp *r)
{
	int fd = dial(port), rc;

	if (fd < 0)
		return -1;
	rc = send_str(fd, req) ? read_resp(fd, r, strncmp(req, "HEAD ", 5) == 0) : -1;
	close(fd);
	return rc;
}

static bool body_is(const struct resp *r, const char *s)
{
	return r->body_len == strlen(s) && memcmp(r->body, s, r->body_len) == 0;
}

static int64_t now_ms(void)
{
	return clock_mono_us() / 1000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- test handlers ---- */

static void reply(struct http_req *q, const char *s)
{
	http_resp_bytes(q, 200, "text/plain", s, strlen(s));
}

static void h_text(struct http_req *q, void *arg)
{
	reply(q, arg);
}

static void h_item(struct http_req *q, void *arg)
{
	(void)arg;
	reply(q, arena_printf(http_req_arena(q), "item:%s", http_req_param(q, "id")));
}

static void h_part(struct http_req *q, void *arg)
{
	(void)arg;
	reply(q, arena_printf(http_req_arena(q), "%s/%s route=%s", http_req_param(q, "id"),
			      http_req_param(q, "part"), http_req_route(q)));
}

static void h_files(struct http_req *q, void *arg)
{
	(void)arg;
	reply(q, arena_printf(http_req_arena(q), "path:%s", http_req_param(q, "path")));
}

static void h_put(struct http_req *q, void *arg)
{
	(void)arg;
	http_resp_empty(q, 204);
}

static void h_echo(struct http_req *q, void *arg)
{
	const struct buf *b = http_req_body(q);
	const char *ct = http_req_header(q, "content-type");

	(void)arg;
	http_resp_bytes(q, 200, ct ? ct : "application/octet-stream", b->data, b->len);
}

static void h_form(struct http_req *q, void *arg)
{
	const char *a = http_req_form(q, "a"), *x = http_req_query(q, "x");
	const char *b = http_req_query(q, "b");

	(void)arg;
	reply(q, arena_printf(http_req_arena(q), "a=%s;b=%s;x=%s;form=%zu;all=%zu",
			      a ? a : "(null)", b ? b : "(null)", x ? x : "(null)",
			      http_req_form_count(q), http_req_query_count(q)));
}

static void h_query(struct http_req *q, void *arg)
{
	struct arena *a = http_req_arena(q);
	const char *out = "";
	size_t i;

	(void)arg;
	for (i = 0; i < http_req_query_count(q); i++) {
		const char *n, *v;

		http_req_query_at(q, i, &n, &v);
		out = arena_printf(a, "%s%s=%s;", out, n, v);
	}
	reply(q, out);
}

static void h_ids(struct http_req *q, void *arg)
{
	(void)arg;
	reply(q, arena_printf(http_req_arena(q), "%s|%s", http_req_id(q), http_req_trace_id(q)));
}

static void h_headers(struct http_req *q, void *arg)
{
	(void)arg;
	http_resp_header(q, "Cache-Control", "private, max-age=10");
	http_resp_header(q, "Set-Cookie", "a=1; HttpOnly");
	http_resp_header(q, "Set-Cookie", "b=2; HttpOnly");
	http_resp_header(q, "X-Bad", "evil\r\nInjected: yes");
	reply(q, "ok");
}

static void h_client(struct http_req *q, void *arg)
{
	(void)arg;
	reply(q, arena_printf(http_req_arena(q), "%s %s", http_req_client_addr(q),
			      http_req_is_https(q) ? "https" : "http"));
}

static atomic_int slow_started;

static void h_slow(struct http_req *q, void *arg)
{
	atomic_fetch_add(&slow_started, 1);
	sleep_ms((int)(intptr_t)arg);
	reply(q, "slow done");
}

static void h_noresp(struct http_req *q, void *arg)
{
	(void)q;
	(void)arg;
}

static void api_error(struct http_req *q, int status, const char *msg)
{
	const char *s = arena_printf(http_req_arena(q), "api error %d: %s", status, msg);

	http_resp_bytes(q, status, "text/plain", s, strlen(s));
}

static struct http_router *make_router(void)
{
	struct http_router *r = http_router_new();

	http_route(r, HTTP_GET, "/hello", HTTP_BODY_NONE, h_text, "hello");
	http_route(r, HTTP_GET, "/", HTTP_BODY_NONE, h_text, "root");
	http_route(r, HTTP_GET, "/items/{id}", HTTP_BODY_NONE, h_item, NULL);
	http_route(r, HTTP_PUT, "/items/{id}", HTTP_BODY_NONE, h_put, NULL);
	http_route(r, HTTP_GET, "/items/new", HTTP_BODY_NONE, h_text, "new item");
	http_route(r, HTTP_GET, "/items/{id}/parts/{part}", HTTP_BODY_NONE, h_part, NULL);
	http_route(r, HTTP_GET, "/files/{path*}", HTTP_BODY_NONE, h_files, NULL);
	http_route(r, HTTP_GET, "/files/special", HTTP_BODY_NONE, h_text, "special");
	http_route(r, HTTP_POST, "/echo", HTTP_BODY_FHIR, h_echo, NULL);
	http_route(r, HTTP_POST, "/form", HTTP_BODY_FORM, h_form, NULL);
	http_route(r, HTTP_POST, "/nobody", HTTP_BODY_NONE, h_text, "nobody");
	http_route(r, HTTP_GET, "/query", HTTP_BODY_NONE, h_query, NULL);
	http_route(r, HTTP_GET, "/ids", HTTP_BODY_NONE, h_ids, NULL);
	http_route(r, HTTP_GET, "/headers", HTTP_BODY_NONE, h_headers, NULL);
	http_route(r, HTTP_GET, "/client", HTTP_BODY_NONE, h_client, NULL);
	http_route(r, HTTP_GET, "/slow", HTTP_BODY_NONE, h_slow, (void *)(intptr_t)400);
	http_route(r, HTTP_GET, "/noresp", HTTP_BODY_NONE, h_noresp, NULL);
	http_route(r, HTTP_GET, "/api/thing", HTTP_BODY_NONE, h_text, "thing");
	http_router_on_error(r, "/api", api_error);
	return r;
}

/* ---- fixture: one server for most tests ---- */

struct fixture {
	struct config cfg;
	struct http_router *r;
	struct http_server *s;
	int port;
};

static struct fixture fx;
static struct resp R; /* large: not on the stack */

static void test_config(struct config *cfg)
{
	config_defaults(cfg);
	str_copy(cfg->listen, "127.0.0.1:0", sizeof(cfg->listen));
	cfg->workers = 2;
	cfg->fhir_body_max = 1024;
	cfg->form_body_max = 1024;
	cfg->header_max = 4096;
}

static int setup(void **state)
{
	struct ctx c = CTX_INIT;

	(void)state;
	log_set_level(LOG_WARN);
	test_config(&fx.cfg);
	fx.r = make_router();
	fx.s = http_server_new(&fx.cfg, fx.r);
	if (http_server_start(fx.s, &c) != ERR_OK) {
		fprintf(stderr, "start: %s\n", c.msg);
		return -1;
	}
	fx.port = http_server_port(fx.s);
	return fx.port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	http_server_stop(fx.s, 1000);
	http_server_free(fx.s);
	http_router_free(fx.r);
	return 0;
}

/* ---- tests ---- */

static void test_routing_params(void **state)
{
	(void)state;
	assert_int_equal(roundtrip(fx.port, "GET /items/42 HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "item:42"));

	/* %2F stays inside its segment: still /items/{id}, not a deeper route */
	assert_int_equal(roundtrip(fx.port, "GET /items/a%2Fb%20c HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "item:a/b c"));

	/* '+' is not a space in a path */
	assert_int_equal(roundtrip(fx.port, "GET /items/a+b HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_true(body_is(&R, "item:a+b"));

	assert_int_equal(roundtrip(fx.port, "GET /items/7/parts/x HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "7/x route=/items/{id}/parts/{part}"));

	assert_int_equal(roundtrip(fx.port, "GET /files/a/b%20c.txt HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "path:a/b c.txt"));

	assert_int_equal(roundtrip(fx.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_true(body_is(&R, "root"));

	/* a parameter never matches an empty segment */
	assert_int_equal(roundtrip(fx.port, "GET /items/ HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 404);
}

static void test_literal_wins(void **state)
{
	(void)state;
	assert_int_equal(roundtrip(fx.port, "GET /items/new HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "new item"));
	/* even when registered after the {rest*} route */
	assert_int_equal(roundtrip(fx.port, "GET /files/special HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_true(body_is(&R, "special"));
	/* a literal compared decoded */
	assert_int_equal(roundtrip(fx.port, "GET /items/%6Eew HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_true(body_is(&R, "new item"));
}

static void test_not_found(void **state)
{
	char v[256];

	(void)state;
	assert_int_equal(roundtrip(fx.port, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 404);
	assert_true(hdr(&R, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json");
	assert_true(body_is(&R, "{\"error\":\"no such endpoint\"}"));
	assert_true(has_hdr(&R, "X-Request-Id"));
	assert_true(has_hdr(&R, "Content-Security-Policy"));

	/* the renderer registered for the prefix */
	assert_int_equal(roundtrip(fx.port, "GET /api/missing HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 404);
	assert_true(body_is(&R, "api error 404: no such endpoint"));
	/* a prefix is matched on a segment boundary */
	assert_int_equal(roundtrip(fx.port, "GET /apix HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_true(body_is(&R, "{\"error\":\"no such endpoint\"}"));

	/* malformed escapes in the path or query: 400 */
	assert_int_equal(roundtrip(fx.port, "GET /items/%zz HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 400);
	assert_int_equal(roundtrip(fx.port, "GET /items/a%00 HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 400);
	assert_int_equal(roundtrip(fx.port, "GET /query?a=%zz HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 400);
}

static void test_method_not_allowed(void **state)
{
	char v[256];

	(void)state;
	assert_int_equal(roundtrip(fx.port, "DELETE /items/42 HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 405);
	assert_true(hdr(&R, "Allow", v, sizeof(v)));
	assert_string_equal(v, "GET, HEAD, PUT");

	assert_int_equal(roundtrip(fx.port, "PUT /items/42 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 204);

	assert_int_equal(roundtrip(fx.port, "POST /api/thing HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 405);
	assert_true(body_is(&R, "api error 405: method not allowed"));
	assert_true(hdr(&R, "Allow", v, sizeof(v)));
	assert_string_equal(v, "GET, HEAD");

	/* a method we do not know at all */
	assert_int_equal(roundtrip(fx.port, "BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 405);
}

static void test_head(void **state)
{
	char v[64];
	int fd = dial(fx.port);

	(void)state;
	assert_true(fd >= 0);
	assert_true(send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, true), 0);
	assert_int_equal(R.status, 200);
	assert_true(hdr(&R, "Content-Length", v, sizeof(v)));
	assert_string_equal(v, "5");
	/* no body bytes followed: the next response on the socket parses cleanly */
	assert_true(send_str(fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "hello"));
	close(fd);
}

static void test_body_echo(void **state)
{
	char body[1024], req[2048];
	int fd, n, i;

	(void)state;
	for (i = 0; i < (int)sizeof(body); i++)
		body[i] = (char)(i * 7 + 3);
	body[10] = '\0';
	fd = dial(fx.port);
	n = snprintf(req, sizeof(req),
		     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-test\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     sizeof(body));
	assert_true(send_all(fd, req, (size_t)n));
	assert_true(send_all(fd, body, sizeof(body)));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 200);
	assert_int_equal(R.body_len, sizeof(body));
	assert_memory_equal(R.body, body, sizeof(body));

	/* chunked, within the cap, split across chunks */
	assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
				 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "hello world"));

	/* empty body */
	assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 200);
	assert_int_equal(R.body_len, 0);
	close(fd);
}

static void test_body_too_big(void **state)
{
	char chunk[600];
	char v[64];
	int fd, i;

	(void)state;
	/* Content-Length over the cap: refused before the body is sent */
	fd = dial(fx.port);
	assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 413);
	assert_true(hdr(&R, "Connection", v, sizeof(v)));
	assert_string_equal(v, "close");
	assert_true(peer_closed(fd, 2000));
	close(fd);

	/* chunked over the cap: 413, nothing kept, connection closed */
	memset(chunk, 'x', sizeof(chunk));
	fd = dial(fx.port);
	assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
	for (i = 0; i < 3; i++) {
		assert_true(send_str(fd, "258\r\n"));
		assert_true(send_all(fd, chunk, sizeof(chunk)));
		assert_true(send_str(fd, "\r\n"));
	}
	assert_true(send_str(fd, "0\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 413);
	assert_true(peer_closed(fd, 2000));
	close(fd);

	/* a cap above the 64 KiB minimum: a body somewhat over it still gets its 413 */
	{
		struct config cfg;
		struct ctx c = CTX_INIT;
		struct http_server *s;
		static char big[8192];

		test_config(&cfg);
		cfg.fhir_body_max = 100000;
		s = http_server_new(&cfg, fx.r);
		assert_int_equal(http_server_start(s, &c), ERR_OK);
		memset(big, 'z', sizeof(big));
		fd = dial(http_server_port(s));
		assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
		for (i = 0; i < 20; i++) { /* 160 KiB */
			assert_true(send_str(fd, "2000\r\n"));
			assert_true(send_all(fd, big, sizeof(big)));
			assert_true(send_str(fd, "\r\n"));
		}
		assert_true(send_str(fd, "0\r\n\r\n"));
		assert_int_equal(read_resp(fd, &R, false), 0);
		assert_int_equal(R.status, 413);
		close(fd);
		/* and within it, exact */
		fd = dial(http_server_port(s));
		assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 98304\r\n\r\n"));
		for (i = 0; i < 12; i++)
			assert_true(send_all(fd, big, sizeof(big)));
		assert_int_equal(read_resp(fd, &R, false), 0);
		assert_int_equal(R.status, 200);
		assert_int_equal(R.body_len, 98304);
		close(fd);
		http_server_stop(s, 1000);
		http_server_free(s);
	}

	/* the error renderer's format */
	assert_int_equal(roundtrip(fx.port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", &R), 0);
	assert_true(body_is(&R, "{\"error\":\"request body too large\"}"));

	/* a route that takes no body */
	assert_int_equal(roundtrip(fx.port, "POST /nobody HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx", &R), 0);
	assert_int_equal(R.status, 413);
	assert_int_equal(roundtrip(fx.port, "POST /nobody HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 413);
	assert_int_equal(roundtrip(fx.port, "POST /nobody HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 200);
}

static void test_endless_body_cut_off(void **state)
{
	char chunk[8192];
	int fd, i;
	bool cut = false;

	(void)state;
	/* far past the cap the server stops reading and closes */
	memset(chunk, 'y', sizeof(chunk));
	fd = dial(fx.port);
	assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
	for (i = 0; i < 1000 && !cut; i++) {
		cut = !send_str(fd, "2000\r\n") || !send_all(fd, chunk, sizeof(chunk)) ||
		      !send_str(fd, "\r\n");
	}
	assert_true(cut || peer_closed(fd, 2000));
	close(fd);
	/* and keeps serving */
	assert_int_equal(roundtrip(fx.port, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 200);
}

static void test_form_and_query(void **state)
{
	(void)state;
	assert_int_equal(roundtrip(fx.port,
				   "POST /form?x=q1&b=fromquery HTTP/1.1\r\nHost: t\r\n"
				   "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
				   "Content-Length: 20\r\n\r\na=hello+world%21&b=2",
				   &R),
			 0);
	assert_int_equal(R.status, 200);
	/* query pairs come first, then the form's */
	assert_true(body_is(&R, "a=hello world!;b=fromquery;x=q1;form=2;all=4"));

	/* a form body that is not well-formed */
	assert_int_equal(roundtrip(fx.port,
				   "POST /form HTTP/1.1\r\nHost: t\r\n"
				   "Content-Type: application/x-www-form-urlencoded\r\n"
				   "Content-Length: 4\r\n\r\na=%z",
				   &R),
			 0);
	assert_int_equal(R.status, 400);

	/* another content type: the body is not parsed as a form */
	assert_int_equal(roundtrip(fx.port,
				   "POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 3\r\n\r\na=1",
				   &R),
			 0);
	assert_true(body_is(&R, "a=(null);b=(null);x=(null);form=0;all=0"));

	/* query: order and repeats kept, '+' and escapes decoded */
	assert_int_equal(roundtrip(fx.port,
				   "GET /query?a=1&b=2&a=3&c&d=%2B+x&e=%26%3D HTTP/1.1\r\nHost: t\r\n\r\n",
				   &R),
			 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "a=1;b=2;a=3;c=;d=+ x;e=&=;"));
}

static void test_request_id(void **state)
{
	char v[128], trace[64];

	(void)state;
	assert_int_equal(roundtrip(fx.port,
				   "GET /ids HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123.X:9\r\n"
				   "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n",
				   &R),
			 0);
	assert_true(hdr(&R, "X-Request-Id", v, sizeof(v)));
	assert_string_equal(v, "abc-123.X:9");
	assert_true(body_is(&R, "abc-123.X:9|0af7651916cd43dd8448eb211c80319c"));

	/* malformed id and traceparent: generated ones */
	assert_int_equal(roundtrip(fx.port,
				   "GET /ids HTTP/1.1\r\nHost: t\r\nX-Request-Id: bad id!\r\n"
				   "traceparent: 00-00000000000000000000000000000000-b7ad6b7169203331-01\r\n\r\n",
				   &R),
			 0);
	assert_true(hdr(&R, "X-Request-Id", v, sizeof(v)));
	assert_int_equal(strlen(v), 16);
	assert_int_equal(strspn(v, "0123456789abcdef"), 16);
	assert_int_equal(R.body_len, 16 + 1 + 32);
	assert_memory_equal(R.body, v, 16);
	memcpy(trace, R.body + 17, 32);
	trace[32] = '\0';
	assert_int_equal(strspn(trace, "0123456789abcdef"), 32);

	/* none given: generated, and different each time */
	assert_int_equal(roundtrip(fx.port, "GET /ids HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	{
		char first[128];

		assert_true(hdr(&R, "X-Request-Id", first, sizeof(first)));
		assert_int_equal(roundtrip(fx.port, "GET /ids HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
		assert_true(hdr(&R, "X-Request-Id", v, sizeof(v)));
		assert_string_not_equal(first, v);
	}
}

static void test_security_headers(void **state)
{
	char v[256];

	(void)state;
	assert_int_equal(roundtrip(fx.port, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_true(hdr(&R, "Content-Security-Policy", v, sizeof(v)));
	assert_string_equal(v, "default-src 'none'; frame-ancestors 'none'");
	assert_true(hdr(&R, "X-Content-Type-Options", v, sizeof(v)));
	assert_string_equal(v, "nosniff");
	assert_true(hdr(&R, "Referrer-Policy", v, sizeof(v)));
	assert_string_equal(v, "no-referrer");
	assert_true(hdr(&R, "X-Frame-Options", v, sizeof(v)));
	assert_string_equal(v, "DENY");
	assert_true(hdr(&R, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "no-store");
	assert_true(hdr(&R, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "text/plain");
	/* plain http: no HSTS */
	assert_false(has_hdr(&R, "Strict-Transport-Security"));

	/* a handler overrides a default by name; repeated headers all sent */
	assert_int_equal(roundtrip(fx.port, "GET /headers HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 200);
	assert_true(hdr(&R, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "private, max-age=10");
	assert_false(hdr_nth(&R, "Cache-Control", 1, v, sizeof(v)));
	assert_true(hdr_nth(&R, "Set-Cookie", 0, v, sizeof(v)));
	assert_string_equal(v, "a=1; HttpOnly");
	assert_true(hdr_nth(&R, "Set-Cookie", 1, v, sizeof(v)));
	assert_string_equal(v, "b=2; HttpOnly");
	/* a value with CR/LF is dropped, never injected */
	assert_false(has_hdr(&R, "X-Bad"));
	assert_false(has_hdr(&R, "Injected"));
	assert_true(has_hdr(&R, "X-Frame-Options"));
}

static void test_handler_without_response(void **state)
{
	(void)state;
	assert_int_equal(roundtrip(fx.port, "GET /noresp HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
	assert_int_equal(R.status, 500);
	assert_true(body_is(&R, "{\"error\":\"handler set no response\"}"));
}

static void test_keep_alive(void **state)
{
	struct sockaddr_in before, after;
	socklen_t len = sizeof(before);
	int fd = dial(fx.port);

	(void)state;
	assert_true(fd >= 0);
	getsockname(fd, (struct sockaddr *)&before, &len);
	assert_true(send_str(fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 200);
	assert_false(has_hdr(&R, "Connection"));
	assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "abc"));
	assert_false(has_hdr(&R, "Connection"));
	/* errors without a body keep the connection too */
	assert_true(send_str(fd, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 404);
	assert_true(send_str(fd, "GET /items/9 HTTP/1.1\r\nHost: t\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_int_equal(R.status, 200);
	assert_true(body_is(&R, "item:9"));
	assert_false(has_hdr(&R, "Connection"));
	/* the same socket, still open */
	len = sizeof(after);
	getsockname(fd, (struct sockaddr *)&after, &len);
	assert_int_equal(before.sin_port, after.sin_port);
	assert_false(peer_closed(fd, 100));

	/* pipelined: two requests in one write, two responses in order */
	assert_true(send_str(fd, "GET /items/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: t\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	if (R.len > R.hdr_len + R.body_len) {
		/* the second response arrived in the same read; parse it from the leftovers */
		assert_true(strstr(R.raw + R.hdr_len + R.body_len, "item:2") != NULL);
	} else {
		assert_true(body_is(&R, "item:1"));
		assert_int_equal(read_resp(fd, &R, false), 0);
		assert_true(body_is(&R, "item:2"));
	}
	close(fd);
}

static void test_header_too_big(void **state)
{
	static char req[40000], pad[32000];
	char v[64];

	(void)state;
	/* header_max is 4096 here */
	memset(pad, 'a', 3000);
	pad[3000] = '\0';
	snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n", pad);
	assert_int_equal(roundtrip(fx.port, req, &R), 0);
	assert_int_equal(R.status, 200);

	memset(pad, 'a', 6000);
	pad[6000] = '\0';
	snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n", pad);
	assert_int_equal(roundtrip(fx.port, req, &R), 0);
	assert_int_equal(R.status, 431);
	assert_true(hdr(&R, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json");

	/* far past it: 431 or the connection closed, never served */
	memset(pad, 'a', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n", pad);
	if (roundtrip(fx.port, req, &R) == 0)
		assert_int_equal(R.status, 431);
}

/* Capture what the server logs (fd 2) while 'fn' runs. */
static void test_access_log(void **state)
{
	char path[] = "/tmp/veranda-http-log-XXXXXX";
	char logbuf[16384];
	int fd = mkstemp(path), saved;
	ssize_t n = 0;
	int64_t deadline;

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_set_level(LOG_INFO);
	roundtrip(fx.port, "GET /items/secret-id-42?token=hunter2 HTTP/1.1\r\nHost: t\r\n"
			   "X-Request-Id: logtest-1\r\n\r\n",
		  &R);
	/* the line is written when the request completes, just after the response */
	deadline = now_ms() + 2000;
	do {
		sleep_ms(20);
		n = pread(fd, logbuf, sizeof(logbuf) - 1, 0);
	} while ((n <= 0 || !strstr(logbuf, "logtest-1")) && now_ms() < deadline);
	log_set_level(LOG_WARN);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	assert_true(n > 0);
	logbuf[n] = '\0';
	assert_non_null(strstr(logbuf, "\"msg\":\"request\""));
	assert_non_null(strstr(logbuf, "\"request_id\":\"logtest-1\""));
	assert_non_null(strstr(logbuf, "\"trace_id\":\""));
	assert_non_null(strstr(logbuf, "\"method\":\"GET\""));
	assert_non_null(strstr(logbuf, "\"route\":\"/items/{id}\""));
	assert_non_null(strstr(logbuf, "\"status\":200"));
	assert_non_null(strstr(logbuf, "\"duration_ms\":"));
	assert_non_null(strstr(logbuf, "\"bytes\":17"));
	assert_non_null(strstr(logbuf, "\"client\":\"127.0.0.1\""));
	/* never the raw path or query values */
	assert_null(strstr(logbuf, "secret-id-42"));
	assert_null(strstr(logbuf, "hunter2"));
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

static void test_listen_errors(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	struct http_server *s;
	char want[160];

	(void)state;
	test_config(&cfg);
	snprintf(cfg.listen, sizeof(cfg.listen), "127.0.0.1:%d", fx.port);
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_BUSY);
	snprintf(want, sizeof(want), "address '127.0.0.1:%d' is already in use", fx.port);
	assert_string_equal(c.msg, want);
	http_server_free(s);

	static const char *const bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
					  ":8080", "::1:8080", "[::1]8080", "[::1",
					  "127.0.0.1:80x", "no such host name.invalid:80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ctx_clear(&c);
		str_copy(cfg.listen, bad[i], sizeof(cfg.listen));
		s = http_server_new(&cfg, fx.r);
		assert_int_equal(http_server_start(s, &c), ERR_INVALID);
		http_server_free(s);
	}

	/* not loopback without allow_remote */
	ctx_clear(&c);
	str_copy(cfg.listen, "0.0.0.0:0", sizeof(cfg.listen));
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_INVALID);
	assert_non_null(strstr(c.msg, "allow_remote"));
	http_server_free(s);

	/* TLS files that are not a certificate and key: no socket left behind */
	{
		char cert[] = "/tmp/veranda-badcert-XXXXXX", key[] = "/tmp/veranda-badkey-XXXXXX";
		int cf = mkstemp(cert), kf = mkstemp(key), before;

		assert_true(cf >= 0 && kf >= 0);
		assert_int_equal(write(cf, "not a certificate\n", 18), 18);
		assert_int_equal(write(kf, "not a key\n", 10), 10);
		close(cf);
		close(kf);
		before = count_fds();
		ctx_clear(&c);
		str_copy(cfg.listen, "127.0.0.1:0", sizeof(cfg.listen));
		str_copy(cfg.tls_cert, cert, sizeof(cfg.tls_cert));
		str_copy(cfg.tls_key, key, sizeof(cfg.tls_key));
		s = http_server_new(&cfg, fx.r);
		assert_int_equal(http_server_start(s, &c), ERR_IO);
		http_server_free(s);
		assert_int_equal(count_fds(), before);
		unlink(cert);
		unlink(key);
	}

	/* TLS files that cannot be read */
	ctx_clear(&c);
	str_copy(cfg.listen, "127.0.0.1:0", sizeof(cfg.listen));
	str_copy(cfg.tls_cert, "/nonexistent/cert.pem", sizeof(cfg.tls_cert));
	str_copy(cfg.tls_key, "/nonexistent/key.pem", sizeof(cfg.tls_key));
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_IO);
	http_server_free(s);
}

static void test_ipv6(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	struct http_server *s;
	int fd;

	(void)state;
	test_config(&cfg);
	str_copy(cfg.listen, "[::1]:0", sizeof(cfg.listen));
	s = http_server_new(&cfg, fx.r);
	if (http_server_start(s, &c) != ERR_OK) {
		http_server_free(s);
		skip(); /* no IPv6 loopback here */
	}
	fd = dial_from(AF_INET6, http_server_port(s), NULL);
	assert_true(fd >= 0);
	assert_true(send_str(fd, "GET /client HTTP/1.1\r\nHost: t\r\n\r\n"));
	assert_int_equal(read_resp(fd, &R, false), 0);
	assert_true(body_is(&R, "::1 http"));
	close(fd);
	http_server_stop(s, 1000);
	http_server_free(s);
}

static void test_trust_proxy(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	struct http_server *s;
	static const char req[] = "GET /client HTTP/1.1\r\nHost: t\r\n"
				  "X-Forwarded-For: 203.0.113.9, 198.51.100.7\r\n"
				  "X-Forwarded-Proto: https\r\n\r\n";

	(void)state;
	/* without trust_proxy the forwarded headers are ignored */
	assert_int_equal(roundtrip(fx.port, req, &R), 0);
	assert_true(body_is(&R, "127.0.0.1 http"));
	assert_false(has_hdr(&R, "Strict-Transport-Security"));

	test_config(&cfg);
	cfg.trust_proxy = true;
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_OK);
	assert_int_equal(roundtrip(http_server_port(s), req, &R), 0);
	assert_true(body_is(&R, "198.51.100.7 https"));
	assert_true(has_hdr(&R, "Strict-Transport-Security"));
	/* a forwarded hop that is not an address is not believed */
	assert_int_equal(roundtrip(http_server_port(s),
				   "GET /client HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: evil\r\n\r\n", &R),
			 0);
	assert_true(body_is(&R, "127.0.0.1 http"));
	http_server_stop(s, 1000);
	http_server_free(s);
}

/* ---- slow clients ---- */

#define SLOW_MAX 64

struct trickle {
	atomic_int fds[SLOW_MAX];
	int n;
	atomic_bool stop;
};

/* Send one more header byte to every slow connection every 200 ms. */
static void *trickle_main(void *p)
{
	struct trickle *t = p;
	static const char slow[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ";
	size_t pos = 0;

	while (!atomic_load(&t->stop)) {
		for (int i = 0; i < t->n; i++) {
			char c = pos < sizeof(slow) - 1 ? slow[pos] : 'a';

			if (t->fds[i] >= 0)
				send(t->fds[i], &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		pos++;
		sleep_ms(200);
	}
	return NULL;
}

/* Time a normal request from 'src'; -1 when refused. */
static int64_t timed_request(int port, const char *src)
{
	int64_t t0 = now_ms();
	int fd = dial_from(AF_INET, port, src);
	int rc;

	if (fd < 0)
		return -1;
	rc = send_str(fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") ? read_resp(fd, &R, false) : -1;
	close(fd);
	if (rc != 0 || R.status != 200)
		return -1;
	return now_ms() - t0;
}

static void test_slow_loris(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	struct http_server *s;
	static struct trickle t;
	pthread_t th;
	int port, i;
	int64_t ms;

	(void)state;
	test_config(&cfg);
	cfg.workers = 1;          /* one worker: a blocked thread would show at once */
	cfg.max_connections = 40; /* 20 per address */
	cfg.connection_timeout = 30;
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_OK);
	port = http_server_port(s);

	memset(&t, 0, sizeof(t));
	atomic_init(&t.stop, false);
	for (i = 0; i < SLOW_MAX; i++)
		t.fds[i] = -1;
	for (i = 0; i < 17; i++) {
		t.fds[i] = dial(port);
		assert_true(t.fds[i] >= 0);
	}
	t.n = 20;
	assert_int_equal(pthread_create(&th, NULL, trickle_main, &t), 0);
	sleep_ms(500);

	/* 17 slow connections from this address: a normal request is still prompt */
	for (i = 0; i < 3; i++) {
		ms = timed_request(port, NULL);
		assert_true(ms >= 0);
		assert_true(ms < 500);
	}

	/* three more slow ones reach the per-address share: the next is refused */
	sleep_ms(300); /* let the server notice the closed normal connections */
	for (i = 17; i < 20; i++) {
		t.fds[i] = dial(port);
		assert_true(t.fds[i] >= 0);
	}
	sleep_ms(200);
	assert_int_equal(timed_request(port, NULL), -1);

	/* another address is still served promptly */
	{
		int probe = dial_from(AF_INET, port, "127.0.0.2");

		if (probe >= 0) {
			close(probe);
			sleep_ms(100);
			ms = timed_request(port, "127.0.0.2");
			assert_true(ms >= 0);
			assert_true(ms < 500);
		}
	}

	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	for (i = 0; i < 20; i++)
		close(t.fds[i]);
	/* the share frees up as the slow ones go */
	{
		int64_t deadline = now_ms() + 2000;

		do {
			sleep_ms(50);
			ms = timed_request(port, NULL);
		} while (ms < 0 && now_ms() < deadline);
		assert_true(ms >= 0);
	}
	http_server_stop(s, 1000);
	http_server_free(s);
}

static void test_idle_timeout(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	struct http_server *s;
	int fd;
	int64_t t0;

	(void)state;
	test_config(&cfg);
	cfg.connection_timeout = 1;
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_OK);
	fd = dial(http_server_port(s));
	assert_true(send_str(fd, "GET /hel"));
	t0 = now_ms();
	assert_true(peer_closed(fd, 5000));
	assert_true(now_ms() - t0 < 4000);
	close(fd);
	http_server_stop(s, 1000);
	http_server_free(s);
}

/*
 * Send s[0..n) one byte every 'every_ms' until the peer closes or 'max_ms'
 * passes; the milliseconds until the close, or -1 if the peer never did.
 */
static int64_t drip(int fd, const char *s, int every_ms, int max_ms)
{
	int64_t t0 = now_ms();

	for (size_t i = 0; now_ms() - t0 < max_ms; i++) {
		if (peer_closed(fd, every_ms))
			return now_ms() - t0;
		if (s[i % strlen(s)] && !send_all(fd, &s[i % strlen(s)], 1))
			return now_ms() - t0;
	}
	return -1;
}

/* A client that keeps a connection busy with one byte at a time is cut off at its deadline. */
static void test_request_deadlines(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	struct http_server *s;
	struct resp r;
	int fd, port;
	int64_t ms;

	(void)state;
	test_config(&cfg);
	cfg.connection_timeout = 1;
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_OK);
	port = http_server_port(s);

	/* headers, a byte every 300 ms: the idle timeout never fires, the deadline does */
	fd = dial(port);
	assert_true(send_str(fd, "GET /hello HTTP/1.1\r\n"));
	ms = drip(fd, "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 300, 6000);
	assert_true(ms >= 0);
	assert_true(ms < 3000);
	close(fd);

	/* a body of 100 bytes at the same pace: 1 s, plus nothing for so small a body */
	fd = dial(port);
	assert_true(send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
				 "Content-Length: 100\r\n\r\n"));
	ms = drip(fd, "{\"a\":1}", 300, 6000);
	assert_true(ms >= 0);
	assert_true(ms < 3000);
	close(fd);

	/* a keep-alive connection that asks again after each answer is not cut */
	fd = dial(port);
	for (int i = 0; i < 4; i++) {
		assert_true(send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
		assert_int_equal(read_resp(fd, &r, false), 0);
		assert_int_equal(r.status, 200);
		sleep_ms(600); /* 2.4 s in all, past one deadline, within each */
	}
	close(fd);

	/* and the server still answers */
	assert_int_equal(roundtrip(port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
	assert_int_equal(r.status, 200);
	http_server_stop(s, 1000);
	http_server_free(s);
}

/* ---- graceful stop ---- */

struct slow_client {
	int port;
	int rc;
	int status;
	char body[64];
};

static void *slow_client_main(void *p)
{
	struct slow_client *sc = p;
	static struct resp r;
	int fd = dial(sc->port);

	sc->rc = -1;
	if (fd < 0)
		return NULL;
	if (send_str(fd, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n") && read_resp(fd, &r, false) == 0) {
		sc->rc = 0;
		sc->status = r.status;
		snprintf(sc->body, sizeof(sc->body), "%.*s", (int)r.body_len, r.body);
	}
	close(fd);
	return NULL;
}

static atomic_int thread_exits;

static void on_exit_hook(void *arg)
{
	assert_ptr_equal(arg, &thread_exits);
	atomic_fetch_add(&thread_exits, 1);
}

static void test_graceful_stop(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	struct http_server *s;
	struct slow_client sc;
	pthread_t th;
	int idle, port;
	int64_t t0, took;

	(void)state;
	test_config(&cfg);
	s = http_server_new(&cfg, fx.r);
	http_server_on_thread_exit(s, on_exit_hook, &thread_exits);
	assert_int_equal(http_server_start(s, &c), ERR_OK);
	port = http_server_port(s);
	atomic_store(&slow_started, 0);
	atomic_store(&thread_exits, 0);

	/* an idle keep-alive connection must not hold the stop up */
	idle = dial(port);
	assert_true(send_str(idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
	assert_int_equal(read_resp(idle, &R, false), 0);

	memset(&sc, 0, sizeof(sc));
	sc.port = port;
	assert_int_equal(pthread_create(&th, NULL, slow_client_main, &sc), 0);
	while (atomic_load(&slow_started) == 0)
		sleep_ms(5);
	t0 = now_ms();
	http_server_stop(s, 5000);
	took = now_ms() - t0;
	pthread_join(th, NULL);

	/* the in-flight request finished with its full response */
	assert_int_equal(sc.rc, 0);
	assert_int_equal(sc.status, 200);
	assert_string_equal(sc.body, "slow done");
	/* stop waited for it, not for the whole grace period */
	assert_true(took >= 200);
	assert_true(took < 3000);
	/* no longer listening; the idle connection was closed */
	assert_int_equal(dial(port), -1);
	assert_true(peer_closed(idle, 1000));
	close(idle);
	/* the thread-exit hook ran on the workers that served requests */
	assert_true(atomic_load(&thread_exits) >= 1);
	http_server_free(s);

	/* a grace period that runs out: stop still returns, promptly */
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_OK);
	atomic_store(&slow_started, 0);
	sc.port = http_server_port(s);
	assert_int_equal(pthread_create(&th, NULL, slow_client_main, &sc), 0);
	while (atomic_load(&slow_started) == 0)
		sleep_ms(5);
	t0 = now_ms();
	http_server_stop(s, 50);
	took = now_ms() - t0;
	pthread_join(th, NULL);
	assert_true(took < 2000);
	http_server_free(s);
}

/* ---- TLS (needs the openssl and curl programs) ---- */

static void test_tls(void **state)
{
	char dir[] = "/tmp/veranda-tls-XXXXXX", cmd[1024], line[512];
	struct config cfg;
	struct ctx c = CTX_INIT;
	struct http_server *s;
	FILE *p;
	bool ok = false, hsts = false;
	int rc;

	(void)state;
	if (system("command -v openssl >/dev/null && command -v curl >/dev/null") != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
		 "-subj /CN=localhost -keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
		 dir, dir);
	assert_int_equal(system(cmd), 0);
	test_config(&cfg);
	snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s/cert.pem", dir);
	snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s/key.pem", dir);
	s = http_server_new(&cfg, fx.r);
	assert_int_equal(http_server_start(s, &c), ERR_OK);
	assert_true(http_server_tls(s));

	snprintf(cmd, sizeof(cmd), "curl -sk -D - -o /dev/null https://127.0.0.1:%d/client",
		 http_server_port(s));
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		if (strncmp(line, "HTTP/", 5) == 0 && strstr(line, " 200"))
			ok = true;
		if (strncasecmp(line, "strict-transport-security: max-age=31536000; includeSubDomains",
				62) == 0)
			hsts = true;
	}
	pclose(p);
	assert_true(ok);
	assert_true(hsts);

	/* TLS 1.1 and below are refused */
	snprintf(cmd, sizeof(cmd),
		 "curl -sk --tlsv1.0 --tls-max 1.1 -o /dev/null https://127.0.0.1:%d/hello 2>/dev/null",
		 http_server_port(s));
	rc = system(cmd);
	assert_int_not_equal(rc, 0);

	http_server_stop(s, 1000);
	http_server_free(s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing_params),
		cmocka_unit_test(test_literal_wins),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_body_echo),
		cmocka_unit_test(test_body_too_big),
		cmocka_unit_test(test_endless_body_cut_off),
		cmocka_unit_test(test_form_and_query),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_security_headers),
		cmocka_unit_test(test_handler_without_response),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_header_too_big),
		cmocka_unit_test(test_access_log),
		cmocka_unit_test(test_listen_errors),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_trust_proxy),
		cmocka_unit_test(test_slow_loris),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_request_deadlines),
		cmocka_unit_test(test_graceful_stop),
		cmocka_unit_test(test_tls),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
