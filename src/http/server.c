/*
 * server.c - the HTTP server on libmicrohttpd 0.9.75.
 *
 * Threading: libmicrohttpd runs a pool of worker threads (cfg->workers, or
 * one per core), each with its own epoll set; a connection stays on the
 * worker that accepted it, and its access handler, handler and completion
 * callback all run there.  Workers are event-driven, so slow clients cost a
 * socket and a memory pool, never a thread; the connection timeout and the
 * per-address connection limit bound what one client can hold.
 *
 * One request, three kinds of access-handler call (the documented pattern,
 * which is also what keeps connections alive):
 *   1. headers received, *con_cls == NULL: create the struct http_req,
 *      route it, and return without a response.  Only a request that must
 *      be refused before its body is read (Content-Length over the cap,
 *      unsafe framing or header syntax) is answered here; libmicrohttpd
 *      then closes the connection.
 *   2. body data, *upload_data_size > 0: append to the request's buffer up
 *      to the route's cap; past it, drop the bytes (not into memory) and
 *      remember 413.  After dropping as much again as the cap (at least
 *      64 KiB) the body is not read further: the connection is closed
 *      without an answer.  The body of a request already refused (404,
 *      405, 400) is dropped the same way.
 *   3. *upload_data_size == 0 after the body: run the handler and queue its
 *      response.  Queued at any other moment, libmicrohttpd answers with
 *      "Connection: close" and keep-alive is lost.
 * The request-completed callback writes the access-log line and frees the
 * request (arena included).
 *
 * Deadlines: libmicrohttpd's connection timeout is an idle timeout, which
 * a client sending one byte a second never reaches.  Each connection is
 * watched from the moment it opens (or its last answer was sent) until its
 * request's headers are in, connection_timeout seconds at most, and from
 * then until its body is in, connection_timeout seconds plus one for every
 * 64 KiB it declares (BODY_RATE_MIN; a chunked body is allowed the route's
 * cap).  A watcher thread shuts the socket of a connection past its
 * deadline down, and libmicrohttpd then closes it as one the client left.
 * While a request runs or its answer is sent, nothing is timed here.
 *
 * Unescaping: an identity unescape callback leaves the path and the query
 * pieces as received; router.c splits the path on '/' before decoding each
 * segment ("%2F" stays inside its segment) and the query pairs are decoded
 * here, in order, repeats kept.
 *
 * Thread-exit hook: libmicrohttpd 0.9.75 has no per-worker exit callback.
 * The first time a worker thread runs a handler it stores the server in a
 * pthread key whose destructor calls the registered function; destructors
 * run when the worker thread returns, which happens inside
 * MHD_stop_daemon().  So the hook runs on every worker that ever served a
 * request (the only ones that can hold per-thread store connections),
 * before http_server_stop() returns.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rand.h"
#include "core/str.h"
#include "http/http_int.h"

/* Body bytes we are willing to read and drop after deciding an error. */
#define DISCARD_MIN (64 * 1024)
/* PEM files bigger than this are not certificates. */
#define PEM_MAX (1024 * 1024)
/* The slowest body accepted: bytes a second beyond the connection timeout. */
#define BODY_RATE_MIN (64 * 1024)
/* How often the watcher looks at the deadlines. */
#define WATCH_MS 250

/* A connection's deadline (see the file comment); 0: not timed now. */
struct watch {
	struct watch *prev, *next;
	int fd;
	struct sockaddr_storage peer;  /* to tell the socket from a later one on the same fd */
	socklen_t peer_len;
	_Atomic int64_t deadline_us;   /* monotonic */
	char addr[64];                 /* the peer's address as text, "" if unknown (set_client()) */
};

struct http_server {
	struct config cfg;
	struct http_router *router;
	struct MHD_Daemon *d;
	int port;
	bool tls;
	atomic_bool stopping;
	atomic_long in_flight;
	atomic_long held;           /* suspended by http_req_defer() */
	char *cert, *key;
	size_t key_len;
	pthread_key_t tkey;
	void (*exit_fn)(void *);
	void *exit_arg;

	/* deadlines: every open connection, and the thread that enforces them */
	pthread_mutex_t watch_mu;
	pthread_cond_t watch_cv;
	struct watch *watching;
	bool watcher_on, watcher_stop;
	pthread_t watcher;
};

static const struct http_hdr security_headers[] = {
	{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
	{"X-Content-Type-Options", "nosniff"},
	{"Referrer-Policy", "no-referrer"},
	{"X-Frame-Options", "DENY"},
	{"Cache-Control", "no-store"},
};

/* ---- per-request set-up ---- */

static enum http_method method_from(const char *m)
{
	static const struct {
		const char *name;
		enum http_method m;
	} names[] = {
		{"GET", HTTP_GET},       {"HEAD", HTTP_HEAD},   {"POST", HTTP_POST},
		{"PUT", HTTP_PUT},       {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH},
		{"OPTIONS", HTTP_OPTIONS},
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(m, names[i].name) == 0)
			return names[i].m;
	return 0;
}

struct hdr_last {
	const char *name;
	const char *value;
};

static enum MHD_Result last_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct hdr_last *l = cls;

	(void)kind;
	if (key && value && str_ieq(key, l->name))
		l->value = value;
	return MHD_YES;
}

/* The last value of a (possibly repeated) request header, or NULL. */
static const char *header_last(struct MHD_Connection *conn, const char *name)
{
	struct hdr_last l = {name, NULL};

	MHD_get_connection_values(conn, MHD_HEADER_KIND, last_header, &l);
	return l.value;
}

/* RFC 9110 5.6.2: may 'c' appear in a token (a field name)? */
static bool tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* What one pass over the headers learns for framing_fault(). */
struct hdr_check {
	size_t hosts, lengths;  /* Host and Content-Length headers */
	bool bad;               /* a name that is not a token, a control character in a value */
};

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    size_t key_size, const char *value, size_t value_size)
{
	struct hdr_check *x = cls;
	size_t i;

	(void)kind;
	if (!key || !key_size)
		x->bad = true;
	for (i = 0; !x->bad && i < key_size; i++)
		x->bad = !tchar((unsigned char)key[i]);
	for (i = 0; !x->bad && value && i < value_size; i++) {
		unsigned char c = (unsigned char)value[i];

		x->bad = (c < 0x20 && c != '\t') || c == 0x7f;
	}
	if (!x->bad) {
		x->hosts += str_ieq(key, MHD_HTTP_HEADER_HOST);
		x->lengths += str_ieq(key, MHD_HTTP_HEADER_CONTENT_LENGTH);
	}
	return x->bad ? MHD_NO : MHD_YES;
}

/*
 * Refuse a request whose framing or header syntax is unsafe to act on:
 * a field name that is not a token, a control character (CR, LF, NUL...)
 * in a value, Host repeated (RFC 9112 3.2), Content-Length repeated (6.3),
 * Transfer-Encoding beside Content-Length (6.1) or a transfer coding other
 * than chunked (501).  Returns the status with *msg set, or 0.  The caller
 * answers at once and closes the connection: the body cannot be trusted to
 * end where the headers say.
 */
static int framing_fault(struct http_req *q, const char **msg)
{
	struct hdr_check x = {0, 0, false};
	const char *te;

	MHD_get_connection_values_n(q->conn, MHD_HEADER_KIND, check_header, &x);
	if (x.bad) {
		*msg = "malformed request header";
		return 400;
	}
	if (x.hosts > 1) {
		*msg = "more than one Host";
		return 400;
	}
	if (x.lengths > 1) {
		/* a proxy in front might read the other one */
		*msg = "more than one Content-Length";
		return 400;
	}
	te = http_req_header(q, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (!te)
		return 0;
	if (x.lengths) {
		*msg = "Transfer-Encoding and Content-Length together";
		return 400;
	}
	if (http_req_header_count(q, MHD_HTTP_HEADER_TRANSFER_ENCODING) > 1 || !str_ieq(te, "chunked")) {
		*msg = "transfer coding not supported (only chunked)";
		return 501;
	}
	return 0;
}

/* The last comma-separated element of 'v', trimmed, into out[0..n). */
static void last_element(const char *v, char *out, size_t n)
{
	const char *p = strrchr(v, ',');
	size_t len;

	p = p ? p + 1 : v;
	while (*p == ' ' || *p == '\t')
		p++;
	len = strlen(p);
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len >= n)
		len = 0;
	memcpy(out, p, len);
	out[len] = '\0';
}

/* The address of 'sa' as text into out[size]; "-" when not IPv4 or IPv6. */
static void peer_text(const struct sockaddr *sa, char *out, size_t size)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
			  (socklen_t)size);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
			  (socklen_t)size);
	else
		str_copy(out, "-", size);
}

static void set_client(const struct http_server *s, struct http_req *q)
{
	const union MHD_ConnectionInfo *ci;
	const char *xff;

	str_copy(q->client, "-", sizeof(q->client));
	if (s->cfg.trust_proxy && (xff = header_last(q->conn, "X-Forwarded-For"))) {
		char hop[64], *h = hop;
		unsigned char tmp[sizeof(struct in6_addr)];
		size_t len;

		last_element(xff, hop, sizeof(hop));
		len = strlen(h);
		if (len > 2 && h[0] == '[' && h[len - 1] == ']') {
			h[len - 1] = '\0';
			h++;
		}
		if (inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1) {
			str_copy(q->client, h, sizeof(q->client));
			return;
		}
	}
	/* the same on every request of a connection: formatted once (peer_text()) */
	if (q->watch && q->watch->addr[0]) {
		str_copy(q->client, q->watch->addr, sizeof(q->client));
		return;
	}
	ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr)
		peer_text(ci->client_addr, q->client, sizeof(q->client));
}

static void set_https(const struct http_server *s, struct http_req *q)
{
	const char *proto;

	q->https = s->tls;
	if (!q->https && s->cfg.trust_proxy && (proto = header_last(q->conn, "X-Forwarded-Proto"))) {
		char last[16];

		last_element(proto, last, sizeof(last));
		q->https = str_ieq(last, "https");
	}
}

static void set_ids(struct http_req *q)
{
	static const char hex[] = "0123456789abcdef";
	const char *rid = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "X-Request-Id");
	const char *tp = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "traceparent");
	char parent[17];
	unsigned char rnd[24];
	size_t i, need = 0;
	bool have_rid = http_request_id_valid(rid);
	bool have_trace = http_traceparent_parse(tp, q->trace_id, parent) == ERR_OK;

	if (!have_rid)
		need = 8;
	if (!have_trace)
		need += 16;
	if (need)
		rand_id_bytes(rnd, need);
	if (have_rid) {
		str_copy(q->id, rid, sizeof(q->id));
	} else {
		for (i = 0; i < 8; i++) {
			q->id[2 * i] = hex[rnd[i] >> 4];
			q->id[2 * i + 1] = hex[rnd[i] & 15];
		}
		q->id[16] = '\0';
	}
	if (!have_trace) {
		const unsigned char *t = rnd + (have_rid ? 0 : 8);

		for (i = 0; i < 16; i++) {
			q->trace_id[2 * i] = hex[t[i] >> 4];
			q->trace_id[2 * i + 1] = hex[t[i] & 15];
		}
		q->trace_id[32] = '\0';
	}
}

struct query_ctx {
	struct http_req *q;
	size_t cap;
	bool bad;
};

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key,
				 size_t key_size, const char *value, size_t value_size)
{
	struct query_ctx *x = cls;
	struct http_req *q = x->q;
	char *k, *v;
	long kl, vl = 0;

	(void)kind;
	if (!key || (key_size == 0 && !value))
		return MHD_YES;
	if (q->nquery >= x->cap) {
		x->bad = true;
		return MHD_NO;
	}
	k = arena_alloc(&q->arena, key_size + 1);
	v = arena_alloc(&q->arena, (value ? value_size : 0) + 1);
	kl = http_pct_decode_mem(key, key_size, true, k);
	if (value)
		vl = http_pct_decode_mem(value, value_size, true, v);
	/* parameters are text: a name or value that is not UTF-8 is malformed */
	if (kl < 0 || vl < 0 || !str_utf8_valid(k, (size_t)kl) || !str_utf8_valid(v, (size_t)vl)) {
		x->bad = true;
		return MHD_NO;
	}
	k[kl] = '\0';
	v[vl] = '\0';
	q->query[q->nquery].name = k;
	q->query[q->nquery].value = v;
	q->nquery++;
	return MHD_YES;
}

/* Collect the query pairs; false when malformed or too many. */
static bool collect_query(struct http_req *q)
{
	struct query_ctx x = {q, 0, false};
	int n = MHD_get_connection_values(q->conn, MHD_GET_ARGUMENT_KIND, NULL, NULL);

	if (n <= 0)
		return true;
	if (n > HTTP_PAIRS_MAX)
		return false;
	x.cap = (size_t)n;
	q->query = arena_alloc(&q->arena, (size_t)n * sizeof(*q->query));
	MHD_get_connection_values_n(q->conn, MHD_GET_ARGUMENT_KIND, add_query, &x);
	return !x.bad;
}

static size_t body_cap(const struct http_server *s, const struct http_route_ent *e)
{
	if (!e)
		return 0;
	switch (e->body) {
	case HTTP_BODY_FHIR: return (size_t)s->cfg.fhir_body_max;
	case HTTP_BODY_FORM: return (size_t)s->cfg.form_body_max;
	case HTTP_BODY_NONE: break;
	}
	return 0;
}

/* Declared Content-Length: -1 when absent or unreadable. */
static int64_t content_length(struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t n;

	if (!v || str_to_i64(v, 0, INT64_MAX, &n))
		return -1;
	return n;
}

static struct http_req *req_new(struct http_server *s, struct MHD_Connection *conn,
				const char *url, const char *method)
{
	struct http_req *q = xcalloc(1, sizeof(*q));
	const union MHD_ConnectionInfo *hs;

	q->start_us = clock_mono_us();
	q->conn = conn;
	{
		const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

		q->watch = sc ? sc->socket_context : NULL;
	}
	buf_init(&q->body, 0);
	q->method = method_from(method);
	q->method_name = arena_strndup(&q->arena, method, strnlen(method, 32));
	q->raw_path = arena_strdup(&q->arena, url);
	set_ids(q);
	set_client(s, q);
	set_https(s, q);
	http_router_match(s->router, &q->arena, q->raw_path, q->method, &q->match);
	hs = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	if (hs && hs->header_size > (size_t)s->cfg.header_max) {
		q->pending = 431;
		q->pending_msg = "request headers too large";
	} else if (q->match.status) {
		q->pending = q->match.status;
		q->pending_msg = q->match.msg;
	} else if (!collect_query(q)) {
		q->pending = 400;
		q->pending_msg = "malformed or too many query parameters";
	}
	q->cap = body_cap(s, q->match.route);
	q->discard_max = q->cap > DISCARD_MIN ? q->cap : DISCARD_MIN;
	buf_init(&q->body, q->cap);
	atomic_fetch_add(&s->in_flight, 1);
	return q;
}

static void req_free(struct http_req *q)
{
	buf_release(&q->body);
	free(q->resp_body);
	arena_release(&q->arena);
	free(q);
}

/* ---- responses ---- */

static bool has_header(const struct http_req *q, const char *name)
{
	size_t i;

	for (i = 0; i < q->nhdrs; i++)
		if (str_ieq(q->hdrs[i].name, name))
			return true;
	return false;
}

static void add_header(struct MHD_Response *r, const char *name, const char *value)
{
	if (strpbrk(value, "\r\n") || MHD_add_response_header(r, name, value) != MHD_YES)
		log_error("http: response header '%s' refused", name);
}

/* Queue the request's response; the layer's error path if building it fails. */
static enum MHD_Result queue(struct http_server *s, struct http_req *q)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t i;

	r = MHD_create_response_from_buffer(q->resp_len, q->resp_body,
					    q->resp_body ? MHD_RESPMEM_MUST_FREE
							 : MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	q->resp_body = NULL; /* libmicrohttpd frees it */
	for (i = 0; i < sizeof(security_headers) / sizeof(security_headers[0]); i++)
		if (!has_header(q, security_headers[i].name))
			add_header(r, security_headers[i].name, security_headers[i].value);
	if (q->https && !has_header(q, "Strict-Transport-Security"))
		add_header(r, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
	if (q->content_type && !has_header(q, MHD_HTTP_HEADER_CONTENT_TYPE))
		add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, q->content_type);
	if (!has_header(q, "X-Request-Id"))
		add_header(r, "X-Request-Id", q->id);
	for (i = 0; i < q->nhdrs; i++)
		add_header(r, q->hdrs[i].name, q->hdrs[i].value);
	if ((q->close || atomic_load(&s->stopping)) && !has_header(q, "Connection"))
		add_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(q->conn, (unsigned)q->status, r);
	MHD_destroy_response(r);
	return ret;
}

static void render_error(struct http_server *s, struct http_req *q, int status, const char *msg)
{
	log_set_request(q->id, q->trace_id);
	http_render_error(s->router, q, status, msg);
	log_set_request(NULL, NULL);
	if (status == 413)
		q->close = true;
}

bool http_req_is_form(const struct http_req *q)
{
	const char *ct = http_req_header(q, MHD_HTTP_HEADER_CONTENT_TYPE);
	static const char form[] = "application/x-www-form-urlencoded";

	return ct && strncasecmp(ct, form, sizeof(form) - 1) == 0 &&
	       (ct[sizeof(form) - 1] == '\0' || ct[sizeof(form) - 1] == ';' ||
		ct[sizeof(form) - 1] == ' ');
}

/* Parse a form body and append its pairs after the query's; false on error (rendered). */
static bool parse_form(struct http_server *s, struct http_req *q)
{
	struct ctx c = CTX_INIT;
	struct http_pair *pairs, *all;
	size_t n;

	if (http_form_parse(&q->arena, q->body.data, q->body.len, HTTP_PAIRS_MAX, &pairs, &n, &c)) {
		render_error(s, q, c.code == ERR_TOOBIG ? 413 : 400, c.msg);
		return false;
	}
	if (!n)
		return true;
	all = arena_alloc(&q->arena, (q->nquery + n) * sizeof(*all));
	if (q->nquery)
		memcpy(all, q->query, q->nquery * sizeof(*all));
	memcpy(all + q->nquery, pairs, n * sizeof(*all));
	q->query = all;
	q->form = all + q->nquery;
	q->nform = n;
	q->nquery += n;
	return true;
}

static void thread_exit_hook(void *p)
{
	struct http_server *s = p;

	if (s->exit_fn)
		s->exit_fn(s->exit_arg);
}

static void dispatch(struct http_server *s, struct http_req *q)
{
	if (s->exit_fn && !pthread_getspecific(s->tkey))
		pthread_setspecific(s->tkey, s);
	if (q->body.len && http_req_is_form(q) && !parse_form(s, q))
		return;
	log_set_request(q->id, q->trace_id);
	q->match.route->fn(q, q->match.route->arg);
	log_set_request(NULL, NULL);
	if (!q->resp_done || q->resp_broken)
		render_error(s, q, 500, q->resp_done ? "internal error" : "handler set no response");
}

/* The libmicrohttpd access handler; see the file comment for the three calls. */
/*
 * A request line with more query parameters than HTTP_PAIRS_MAX:
 * libmicrohttpd keeps one record per argument in the connection's memory
 * pool, which is kept small because it is cleared on every request, and
 * would run out and close the connection without an answer.  on_uri() runs
 * before the arguments are parsed: it cuts the query off (the URI lies in
 * the connection's own read buffer) and leaves this marker, so the request
 * is answered 400 instead.
 */
static char too_many_params;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	char *qm = strchr(uri, '?');
	size_t pairs = 1;

	(void)cls, (void)conn;
	if (!qm)
		return NULL;
	for (const char *p = qm + 1; *p; p++)
		if (*p == '&')
			pairs++;
	if (pairs <= HTTP_PAIRS_MAX)
		return NULL;
	/*
	 * libmicrohttpd has already found the '?' and will parse from the byte
	 * after it: empty both (older versions look for the '?' afterwards).
	 */
	qm[1] = '\0';
	qm[0] = '\0';
	return &too_many_params;
}

/* A held answer (http_req_defer()) is held no longer. */
static void unhold(struct http_server *s, struct http_req *q)
{
	q->held = false;
	atomic_fetch_sub(&s->held, 1);
}

/* ---- deadlines (see the file comment) ---- */

/* Time 'w' out 'secs' seconds from now; secs < 0: stop timing it. */
static void watch_set(struct watch *w, int64_t secs)
{
	if (w)
		atomic_store(&w->deadline_us, secs < 0 ? 0 : clock_mono_us() + secs * 1000000);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *s = cls;
	struct watch *w = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		w = xcalloc(1, sizeof(*w));
		w->fd = fd ? (int)fd->connect_fd : -1;
		w->peer_len = sizeof(w->peer);
		if (w->fd < 0 || getpeername(w->fd, (struct sockaddr *)&w->peer, &w->peer_len) != 0)
			w->peer_len = 0;
		else
			peer_text((const struct sockaddr *)&w->peer, w->addr, sizeof(w->addr));
		watch_set(w, s->cfg.connection_timeout);
		pthread_mutex_lock(&s->watch_mu);
		w->next = s->watching;
		if (w->next)
			w->next->prev = w;
		s->watching = w;
		pthread_mutex_unlock(&s->watch_mu);
		*socket_context = w;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && w) {
		pthread_mutex_lock(&s->watch_mu);
		if (w->prev)
			w->prev->next = w->next;
		else
			s->watching = w->next;
		if (w->next)
			w->next->prev = w->prev;
		pthread_mutex_unlock(&s->watch_mu);
		free(w);
		*socket_context = NULL;
	}
}

/* Is w->fd still the socket 'w' was made for (not a later one on the same number)? */
static bool same_peer(const struct watch *w)
{
	struct sockaddr_storage now;
	socklen_t len = sizeof(now);

	return w->peer_len && getpeername(w->fd, (struct sockaddr *)&now, &len) == 0 &&
	       len == w->peer_len && !memcmp(&now, &w->peer, len);
}

static void *watcher_main(void *arg)
{
	struct http_server *s = arg;

	pthread_mutex_lock(&s->watch_mu);
	while (!s->watcher_stop) {
		struct timespec ts;
		int64_t now = clock_mono_us();

		for (struct watch *w = s->watching; w; w = w->next) {
			int64_t d = atomic_load(&w->deadline_us);

			if (!d || now < d)
				continue;
			atomic_store(&w->deadline_us, 0);
			if (same_peer(w))
				shutdown(w->fd, SHUT_RDWR);
		}
		clock_after_ms(CLOCK_MONOTONIC, WATCH_MS, &ts);
		pthread_cond_timedwait(&s->watch_cv, &s->watch_mu, &ts);
	}
	pthread_mutex_unlock(&s->watch_mu);
	return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *s = cls;
	struct http_req *q = *con_cls;

	(void)version;
	if (!q || q == (void *)&too_many_params) {
		bool flood = q != NULL;
		const char *fault_msg = NULL;
		int64_t cl;
		int fault;

		q = req_new(s, conn, url, method);
		*con_cls = q;
		if (flood && !q->pending) {
			q->pending = 400;
			q->pending_msg = "too many query parameters (at most " HTTP_PAIRS_MAX_STR ")";
		}
		cl = content_length(conn);
		fault = framing_fault(q, &fault_msg);
		if (fault) {
			render_error(s, q, fault, fault_msg);
			q->close = true;
			return queue(s, q);
		}
		if (q->pending && cl > (int64_t)DISCARD_MIN) {
			render_error(s, q, q->pending, q->pending_msg);
			q->close = true;
			return queue(s, q);
		}
		if (!q->pending && cl > (int64_t)q->cap) {
			render_error(s, q, 413, "request body too large");
			return queue(s, q);
		}
		if (!q->pending && cl > 0)
			buf_grow(&q->body, (size_t)cl);
		if (cl > 0 || http_req_header(q, MHD_HTTP_HEADER_TRANSFER_ENCODING))
			watch_set(q->watch, s->cfg.connection_timeout +
					    (int64_t)((cl > 0 ? (size_t)cl : q->cap) / BODY_RATE_MIN));
		else
			watch_set(q->watch, -1);
		return MHD_YES;
	}
	if (q->held) {
		/* resumed: the wait is over */
		unhold(s, q);
		if (!q->resume_ok) {
			http_resp_reset(q);
			q->defer_fail(q, q->defer_arg);
			if (!q->resp_done || q->resp_broken)
				render_error(s, q, 503, "try again shortly");
		}
		return queue(s, q);
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (!q->pending) {
			if (buf_add(&q->body, upload_data, n) == ERR_OK)
				return MHD_YES;
			q->pending = 413;
			q->pending_msg = "request body too large";
			buf_release(&q->body);
		}
		q->discarded += n;
		if (q->discarded > q->discard_max) {
			q->status = q->pending;
			return MHD_NO;
		}
		return MHD_YES;
	}
	watch_set(q->watch, -1); /* the request is in: no deadline while it runs */
	if (q->pending)
		render_error(s, q, q->pending, q->pending_msg);
	else
		dispatch(s, q);
	if (q->defer_arm) {
		void (*arm)(struct http_req *, void *) = q->defer_arm;

		q->defer_arm = NULL;
		q->held = true;
		atomic_fetch_add(&s->held, 1);
		MHD_suspend_connection(conn);
		arm(q, q->defer_arg); /* may resume at once, from here or elsewhere */
		return MHD_YES;
	}
	return queue(s, q);
}

static const char *termination(enum MHD_RequestTerminationCode toe)
{
	switch (toe) {
	case MHD_REQUEST_TERMINATED_COMPLETED_OK: return NULL;
	case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
	case MHD_REQUEST_TERMINATED_READ_ERROR: return "read error";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client abort";
	}
	return "unknown";
}

static void access_log(struct http_req *q, enum MHD_RequestTerminationCode toe)
{
	struct buf b = BUF_INIT(2048);
	const char *term = termination(toe);
	double ms = (double)(clock_mono_us() - q->start_us) / 1000.0;

	buf_adds(&b, "\"method\":\"");
	buf_add_json_str(&b, q->method_name, strlen(q->method_name));
	if (q->match.route) {
		buf_adds(&b, "\",\"route\":\"");
		buf_add_json_str(&b, q->match.route->pattern, strlen(q->match.route->pattern));
		buf_addch(&b, '"');
	} else {
		buf_adds(&b, "\",\"route\":null");
	}
	buf_addf(&b, ",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%zu,\"client\":\"%s\"",
		 q->status, ms, q->method == HTTP_HEAD ? 0 : q->resp_len, q->client);
	if (term)
		buf_addf(&b, ",\"termination\":\"%s\"", term);
	log_set_request(q->id, q->trace_id);
	log_fields(LOG_INFO, "request", b.data);
	log_set_request(NULL, NULL);
	buf_release(&b);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct http_req *q = *con_cls;

	(void)conn;
	if (!q || q == (void *)&too_many_params) {
		*con_cls = NULL;
		return;
	}
	*con_cls = NULL;
	watch_set(q->watch, s->cfg.connection_timeout); /* the next request's headers */
	if (q->held) /* resumed, but the client had gone: the handler was not called again */
		unhold(s, q);
	if (log_enabled(LOG_INFO))
		access_log(q, toe);
	req_free(q);
	atomic_fetch_sub(&s->in_flight, 1);
}

/* Leave the path and query pieces percent-encoded: we decode them ourselves. */
static size_t unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_msg(LOG_WARN, "http: %s", msg);
}

/* ---- lifecycle ---- */

/*
 * Copies the configuration; borrows the router.  Never fails (allocation
 * failure aborts).  Free with http_server_free().
 */
struct http_server *http_server_new(const struct config *cfg, struct http_router *r)
{
	struct http_server *s = xcalloc(1, sizeof(*s));

	s->cfg = *cfg;
	s->router = r;
	s->port = -1;
	atomic_init(&s->stopping, false);
	atomic_init(&s->in_flight, 0);
	atomic_init(&s->held, 0);
	pthread_mutex_init(&s->watch_mu, NULL);
	{
		pthread_condattr_t a;

		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&s->watch_cv, &a);
		pthread_condattr_destroy(&a);
	}
	if (pthread_key_create(&s->tkey, thread_exit_hook) != 0) {
		fprintf(stderr, "veranda: pthread_key_create failed\n");
		abort();
	}
	return s;
}

/*
 * Parse "HOST:PORT" or "[V6]:PORT" into 'ss'.  The host may be a name
 * (the first address it resolves to is used).
 */
static enum err parse_listen(const char *listen_addr, struct sockaddr_storage *ss,
			     socklen_t *len, struct ctx *c)
{
	char host[128];
	const char *colon;
	size_t hlen;
	int64_t port;
	struct addrinfo hints, *res = NULL;
	enum err e = ERR_OK;

	if (listen_addr[0] == '[') {
		const char *close = strchr(listen_addr, ']');

		if (!close || close[1] != ':')
			goto bad;
		hlen = (size_t)(close - listen_addr - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad;
		memcpy(host, listen_addr + 1, hlen);
		colon = close + 1;
	} else {
		colon = strrchr(listen_addr, ':');
		if (!colon)
			goto bad;
		hlen = (size_t)(colon - listen_addr);
		if (hlen == 0 || hlen >= sizeof(host) || memchr(listen_addr, ':', hlen))
			goto bad;
		memcpy(host, listen_addr, hlen);
	}
	host[hlen] = '\0';
	if (str_to_i64(colon + 1, 0, 65535, &port))
		goto bad;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = listen_addr[0] == '[' ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res ||
	    res->ai_addrlen > sizeof(*ss))
		goto bad;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
	else
		goto bad;
	goto out;
bad:
	e = ctx_errorf(c, ERR_INVALID, "malformed listen address '%s' (want HOST:PORT or [V6]:PORT)",
		       listen_addr);
out:
	if (res)
		freeaddrinfo(res);
	return e;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

/* Read a whole (small) file into a fresh NUL-terminated string. */
static enum err read_pem(const char *path, char **out, size_t *len, struct ctx *c)
{
	struct buf b = BUF_INIT(PEM_MAX);
	char chunk[4096];
	FILE *f = fopen(path, "re");
	size_t n;
	enum err e = ERR_OK;

	*out = NULL;
	if (!f)
		return ctx_errorf(c, ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(&b, chunk, n))
			break;
	if (ferror(f) || b.err) {
		e = ctx_errorf(c, ERR_IO, "cannot read '%s'", path);
		mem_wipe(b.data, b.len);
		buf_release(&b);
		goto out;
	}
	*out = buf_take(&b, len);
out:
	fclose(f);
	return e;
}

static void drop_tls_material(struct http_server *s)
{
	free(s->cert);
	s->cert = NULL;
	if (s->key)
		mem_wipe(s->key, s->key_len);
	free(s->key);
	s->key = NULL;
	s->key_len = 0;
}

/*
 * Bind our own listening socket (precise "already in use" errors, port 0,
 * IPv6) and start libmicrohttpd on it.  ERR_BUSY when the address is in
 * use, ERR_INVALID for a malformed or (without allow_remote) non-loopback
 * address, ERR_IO for anything else (unreadable TLS files included).
 * Starting a started server is ERR_INVALID.
 */
enum err http_server_start(struct http_server *s, struct ctx *c)
{
	const struct config *cfg = &s->cfg;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned workers, max_conn, per_ip, timeout;
	size_t mem;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;
	struct MHD_OptionItem opts[8];
	size_t nopt = 0;
	int fd = -1, one = 1;
	enum err e = ERR_OK;
	sigset_t block, saved;
	struct stat st;
	size_t cert_len = 0;

	if (s->d)
		return ctx_errorf(c, ERR_INVALID, "server already started");
	if ((e = parse_listen(cfg->listen, &ss, &sslen, c)))
		goto out;
	if (!cfg->allow_remote && !is_loopback(&ss)) {
		e = ctx_errorf(c, ERR_INVALID,
			       "address '%s' is not a loopback address (set allow_remote to listen on it)",
			       cfg->listen);
		goto out;
	}

	memset(opts, 0, sizeof(opts));
	if (cfg->tls_cert[0] || cfg->tls_key[0]) {
		if (!cfg->tls_cert[0] || !cfg->tls_key[0]) {
			e = ctx_errorf(c, ERR_INVALID, "tls_cert and tls_key must be set together");
			goto out;
		}
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			e = ctx_errorf(c, ERR_IO, "this libmicrohttpd has no TLS support");
			goto out;
		}
		if ((e = read_pem(cfg->tls_cert, &s->cert, &cert_len, c)) ||
		    (e = read_pem(cfg->tls_key, &s->key, &s->key_len, c)))
			goto out;
		flags |= MHD_USE_TLS;
		opts[nopt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert};
		opts[nopt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->key};
		/* GnuTLS priorities: its defaults, TLS 1.2 and 1.3 only */
		opts[nopt++] = (struct MHD_OptionItem){
			MHD_OPTION_HTTPS_PRIORITIES, 0,
			(void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
	}

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = ctx_errorf(c, ERR_IO, "cannot create a socket for '%s': %s", cfg->listen,
			       strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
		if (errno == EADDRINUSE)
			e = ctx_errorf(c, ERR_BUSY, "address '%s' is already in use", cfg->listen);
		else if (errno == EADDRNOTAVAIL)
			e = ctx_errorf(c, ERR_INVALID, "address '%s' is not available on this host",
				       cfg->listen);
		else
			e = ctx_errorf(c, ERR_IO, "cannot bind '%s': %s", cfg->listen,
				       strerror(errno));
		goto out;
	}
	if (listen(fd, SOMAXCONN) != 0) {
		e = ctx_errorf(c, errno == EADDRINUSE ? ERR_BUSY : ERR_IO,
			       errno == EADDRINUSE ? "address '%s' is already in use"
						   : "cannot listen on '%s'",
			       cfg->listen);
		goto out;
	}
	sslen = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
		e = ctx_errorf(c, ERR_IO, "cannot read the bound address of '%s'", cfg->listen);
		goto out;
	}
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&ss)->sin6_port
						 : ((struct sockaddr_in *)(void *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;

	workers = (unsigned)(cfg->workers > 0 ? cfg->workers : (cores > 0 ? cores : 1));
	max_conn = (unsigned)cfg->max_connections;
	if (workers > max_conn)
		workers = max_conn;
	/*
	 * One address may hold half the connections: enough for a benchmark
	 * client or a busy NAT, not enough to lock everyone else out.  Behind a
	 * trusted proxy every connection comes from the proxy: no limit.
	 */
	per_ip = cfg->trust_proxy ? 0 : (max_conn / 2 ? max_conn / 2 : 1);
	timeout = (unsigned)cfg->connection_timeout;
	/*
	 * The pool holds the request line and headers (in the read buffer, plus
	 * libmicrohttpd's record of about 56 bytes per header and per query
	 * argument, at most HTTP_PAIRS_MAX of them, see on_uri()) and the
	 * response headers.  Headers over header_max get 431 from on_request().
	 * libmicrohttpd clears the whole pool between requests of a keep-alive
	 * connection, so its size is a cost on every request: keep it tight.
	 */
	mem = (size_t)cfg->header_max * 2 + HTTP_PAIRS_MAX * 56 + 8192;
	if (workers > 1)
		opts[nopt++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, workers, NULL};
	opts[nopt] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

	/*
	 * Worker threads inherit this thread's signal mask: block the
	 * termination signals while they are created so that those signals
	 * reach the program's own threads (main waits for SIGTERM), never a
	 * worker.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &block, &saved);
	if (fstat(fd, &st) != 0)
		memset(&st, 0, sizeof(st));
	s->d = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
		MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, NULL,
		MHD_OPTION_CONNECTION_LIMIT, max_conn,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, timeout,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
		/* HTTP/1.1 without Host, spaces in the request target: 400 */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_ARRAY, opts,
		MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (!s->d) {
		struct stat now;

		/*
		 * libmicrohttpd closes a listening socket it was given when it
		 * fails after taking it; close ours only if it is still ours.
		 */
		if (fstat(fd, &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev)
			fd = -1;
		e = ctx_errorf(c, ERR_IO, "cannot start the HTTP server on '%s'", cfg->listen);
		goto out;
	}
	fd = -1; /* libmicrohttpd owns it now */
	s->tls = (flags & MHD_USE_TLS) != 0;
	atomic_store(&s->stopping, false);
	s->watcher_stop = false;
	s->watcher_on = pthread_create(&s->watcher, NULL, watcher_main, s) == 0;
	if (!s->watcher_on)
		log_warn("http: cannot start the deadline watcher: requests are bounded by the idle timeout only");
	log_debug("http: serving %s on port %d with %u workers", s->tls ? "https" : "http",
		  s->port, workers);
out:
	if (fd >= 0)
		close(fd);
	if (e) {
		drop_tls_material(s);
		s->port = -1;
	}
	return e;
}

/*
 * Stop accepting (the listening socket is closed at once), let requests in
 * flight finish for up to 'grace_ms', then stop the workers (idle
 * keep-alive connections are closed; the thread-exit hook runs).  Responses
 * sent while stopping carry "Connection: close".  A stopped server is fine.
 */
/* Wait up to 'ms' for *n to reach zero, looking every 5 ms. */
static void wait_zero(atomic_long *n, int ms)
{
	int64_t deadline = clock_mono_us() + (int64_t)ms * 1000;

	while (atomic_load(n) > 0 && clock_mono_us() < deadline) {
		struct timespec ts = {0, 5 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
}

void http_server_stop(struct http_server *s, int grace_ms)
{
	MHD_socket fd;

	if (!s || !s->d)
		return;
	atomic_store(&s->stopping, true);
	fd = MHD_quiesce_daemon(s->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	wait_zero(&s->in_flight, grace_ms > 0 ? grace_ms : 0);
	/*
	 * libmicrohttpd must not be stopped with suspended connections; whoever
	 * holds them resumes them in bounded time (the audit log: 5 s).
	 */
	wait_zero(&s->held, 10 * 1000);
	if (atomic_load(&s->held) > 0) {
		log_error("http: %ld answers still held at shutdown; the server is left running",
			  (long)atomic_load(&s->held));
		return;
	}
	if (s->watcher_on) {
		pthread_mutex_lock(&s->watch_mu);
		s->watcher_stop = true;
		pthread_cond_signal(&s->watch_cv);
		pthread_mutex_unlock(&s->watch_mu);
		pthread_join(s->watcher, NULL);
		s->watcher_on = false;
	}
	MHD_stop_daemon(s->d);
	s->d = NULL;
	drop_tls_material(s);
}

/* Stops (without grace) if needed and frees the server; NULL is fine. */
void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	http_server_stop(s, 0);
	pthread_key_delete(s->tkey);
	drop_tls_material(s);
	pthread_cond_destroy(&s->watch_cv);
	pthread_mutex_destroy(&s->watch_mu);
	free(s);
}

int http_server_port(const struct http_server *s)
{
	return s->port;
}

bool http_server_tls(const struct http_server *s)
{
	return s->tls;
}

/*
 * Record 'fn' to run on each worker thread that served a request, as the
 * thread exits (see the file comment).  Call before http_server_start().
 */
void http_server_on_thread_exit(struct http_server *s, void (*fn)(void *), void *arg)
{
	s->exit_fn = fn;
	s->exit_arg = arg;
}
