/*
 * main.c - the veranda command line: init, serve, seed, import, user, version.
 *
 * Configuration, lowest precedence first: built-in defaults, the
 * configuration file (--config FILE, else DATA/veranda.conf when present),
 * VERANDA_* environment variables, command-line flags.  Errors are one line
 * on stderr ("veranda: ...") and a non-zero exit status:
 *   1  runtime failure (store, port in use, bad data directory)
 *   2  usage error (unknown command or flag, bad value)
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/cli.h"
#include "audit/routes.h"
#include "auth/cli.h"
#include "auth/clients.h"
#include "auth/endpoints.h"
#include "auth/keys.h"
#include "auth/oauth.h"
#include "auth/users.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "fhir/fhir.h"
#include "fhir/model.h"
#include "http/http.h"
#include "ops/ops.h"
#include "seed/seed.h"
#include "store/store.h"

#define VERANDA_VERSION "0.1.0"
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

struct command {
	const char *name;
	int (*run)(struct config *cfg, int argc, char **argv);
	const char *summary;
	const char *usage;
	const char *const *options;   /* configuration options it takes as flags */
	const char *extra_help;       /* command-specific flags */
};

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("veranda: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see 'veranda --help')\n", stderr);
	exit(EXIT_USAGE);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("veranda: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_RUNTIME;
}

/* ---- configuration from file, environment and flags ---- */

/*
 * Split argv into configuration flags (applied to cfg in precedence order)
 * and the rest (returned in place in argv, count in *rest).  Command-
 * specific flags listed in 'own' (e.g. "patients") are left in the rest
 * with their values.
 */
static void load_config(struct config *cfg, const char *const *allowed, const char *const *own,
			int argc, char **argv, int *rest)
{
	struct ctx c = CTX_INIT;
	const char *config_file = NULL;
	char path[CONFIG_PATH_MAX + 32];
	int i, n = 0;
	struct {
		const char *name, *value;
	} flags[64];
	size_t nflags = 0;

	config_defaults(cfg);
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *eq, *val;
		char name[64];
		bool is_own = false;

		if (strncmp(a, "--", 2) || !a[2]) {
			argv[n++] = argv[i];
			continue;
		}
		eq = strchr(a + 2, '=');
		snprintf(name, sizeof(name), "%.*s", (int)(eq ? (size_t)(eq - a - 2) : strlen(a + 2)), a + 2);
		for (const char *const *o = own; o && *o; o++)
			if (!strcmp(*o, name))
				is_own = true;
		if (is_own) {
			argv[n++] = argv[i];
			if (!eq && i + 1 < argc && strncmp(argv[i + 1], "--", 2))
				argv[n++] = argv[++i];
			continue;
		}
		if (!strcmp(name, "config")) {
			if (!eq && i + 1 >= argc)
				die_usage("--config needs a file");
			config_file = eq ? eq + 1 : argv[++i];
			continue;
		}
		{
			const struct config_option *o = config_find(name);
			bool ok = false;

			if (o)
				for (const char *const *al = allowed; al && *al; al++)
					if (!strcmp(*al, o->name))
						ok = true;
			if (!o || !ok)
				die_usage("unknown flag '--%s'", name);
			if (eq)
				val = eq + 1;
			else if (o->type == CONFIG_BOOL &&
				 (i + 1 >= argc || (strcmp(argv[i + 1], "true") && strcmp(argv[i + 1], "false"))))
				val = "true";
			else if (i + 1 < argc)
				val = argv[++i];
			else
				die_usage("flag '--%s' needs a value", name);
			if (nflags == sizeof(flags) / sizeof(flags[0]))
				die_usage("too many flags");
			flags[nflags].name = o->name;
			flags[nflags].value = val;
			nflags++;
		}
	}
	*rest = n;

	/* the data directory decides where the default configuration file is */
	if (!config_file) {
		const char *data = getenv("VERANDA_DATA");
		for (size_t k = 0; k < nflags; k++)
			if (!strcmp(flags[k].name, "data"))
				data = flags[k].value;
		snprintf(path, sizeof(path), "%s/veranda.conf", data ? data : cfg->data);
		if (access(path, F_OK) == 0)
			config_file = path;
	}
	if (config_file && config_load_file(cfg, config_file, &c)) {
		fprintf(stderr, "veranda: %s\n", c.msg);
		exit(EXIT_USAGE);
	}
	if (config_load_env(cfg, &c)) {
		fprintf(stderr, "veranda: %s\n", c.msg);
		exit(EXIT_USAGE);
	}
	for (size_t k = 0; k < nflags; k++) {
		if (config_set(cfg, flags[k].name, flags[k].value, &c)) {
			fprintf(stderr, "veranda: %s\n", c.msg);
			exit(EXIT_USAGE);
		}
	}
	if (log_level_parse(cfg->log_level) < 0)
		die_usage("log level must be debug, info, warn, error or off, not '%s'", cfg->log_level);
	log_set_level((enum log_level)log_level_parse(cfg->log_level));
}

/* ---- data directory and store ---- */

static void db_url(const struct config *cfg, char *out, size_t size)
{
	if (!strcmp(cfg->store, "sqlite"))
		snprintf(out, size, "sqlite:%s/veranda.db", cfg->data);
	else
		snprintf(out, size, "%s", cfg->store);
}

/* Check that the data directory exists, is a directory and is writable. */
static int check_data_dir(const struct config *cfg, bool create)
{
	struct stat st;

	if (stat(cfg->data, &st) != 0) {
		if (errno == ENOENT && create) {
			if (mkdir(cfg->data, 0700) != 0)
				return fail("cannot create data directory '%s': %s", cfg->data, strerror(errno));
			return 0;
		}
		if (errno == ENOENT)
			return fail("data directory '%s' does not exist; run 'veranda init --data %s' first",
				    cfg->data, cfg->data);
		return fail("cannot use data directory '%s': %s", cfg->data, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return fail("data directory '%s' is not a directory", cfg->data);
	if (access(cfg->data, W_OK | X_OK) != 0)
		return fail("data directory '%s' is not writable: %s", cfg->data, strerror(errno));
	return 0;
}

/* Open the store and bring its schema up to date. */
static int open_store(const struct config *cfg, bool must_exist, struct store **out)
{
	char url[CONFIG_PATH_MAX + 32];
	struct ctx c = CTX_INIT;
	int version = 0;

	db_url(cfg, url, sizeof(url));
	if (must_exist && !strcmp(cfg->store, "sqlite")) {
		char path[CONFIG_PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s/veranda.db", cfg->data);
		if (access(path, F_OK) != 0)
			return fail("'%s' has no database; run 'veranda init --data %s' first", cfg->data,
				    cfg->data);
	}
	if (store_open(out, url, (int)cfg->sqlite_busy_timeout, &c))
		return fail("%s", c.msg);
	store_version_cache(*out, (size_t)cfg->resource_cache_mb << 20);
	store_search_time_max(*out, (int)cfg->search_time_max);
	if (store_schema_version(*out, &version, &c) || store_migrate(*out, &c) ||
	    store_refold(*out, FHIR_FOLD_VERSION, fhir_str_normalize, &c)) {
		store_close(*out);
		*out = NULL;
		return fail("%s", c.msg);
	}
	return 0;
}

static struct fhir *make_fhir(const struct config *cfg, struct store *s)
{
	struct fhir_opts o;

	memset(&o, 0, sizeof(o));
	o.base_url = cfg->base_url;
	o.page_size = cfg->page_size;
	o.page_max = cfg->page_max;
	o.json_depth_max = (int)cfg->json_depth_max;
	o.body_max = cfg->fhir_body_max;
	o.software_version = VERANDA_VERSION;
	return fhir_new(s, &o);
}

/*
 * Open the audit log of DATA with the options of 'cfg', checkpoints
 * signed with the server's ES256 key ('keys' NULL: loaded here for the
 * duration of the call).  Prints the failure.
 */
static int open_audit(const struct config *cfg, const struct keys *keys, struct audit **out)
{
	struct audit_opts o;
	struct keys *own = NULL;
	struct ctx c = CTX_INIT;
	enum err e;

	*out = NULL;
	if (!keys && keys_load(cfg->data, &own, &c))
		return fail("%s", c.msg);
	memset(&o, 0, sizeof(o));
	o.data_dir = cfg->data;
	o.node = cfg->node_id;
	o.durability = !strcmp(cfg->audit, "async") ? AUDIT_ASYNC : AUDIT_SYNC;
	o.queue_max = (size_t)cfg->audit_queue;
	o.journal_bytes = (size_t)cfg->audit_journal_kib << 10;
	o.checkpoint_records = (uint32_t)cfg->audit_checkpoint_records;
	o.checkpoint_ms = (uint32_t)(cfg->audit_checkpoint_seconds * 1000);
	o.key = keys_signing(keys ? keys : own, JOSE_ES256);
	o.retention_days = (uint32_t)cfg->audit_retention_days;
	e = audit_open(&o, out, &c);
	if (own && e) {
		keys_free(own);
		return fail("%s", c.msg);
	}
	if (own) {
		/* the writer borrows the key: close before freeing (init only opens to create) */
		struct ctx c2 = CTX_INIT;
		audit_close(*out, &c2);
		*out = NULL;
		keys_free(own);
	}
	return e ? fail("%s", c.msg) : 0;
}

/*
 * Record an administrative change made from the command line (a user, an
 * app or the keys): one record in the audit log's "cli" stream, durable
 * before the command reports success.  An exclusive lock on
 * DATA/audit-cli.lock keeps two commands off that stream at once.  The
 * agent is the operating-system account that ran the command.  The change
 * is already made when this runs: a failure says so and fails the command.
 * 'more' (may be NULL) adds to each record its patient and entities after
 * the one named by 'etype' and ids[i] (none when 'etype' is NULL).
 */
static int audit_admin_more(const struct config *cfg, enum audit_type type, const char *actions,
			    const char *etype, const char *const *ids, size_t n,
			    const struct audit_event *more)
{
	struct config cc = *cfg;
	struct passwd *pw = getpwuid(geteuid());
	char lock[4096], agent[96];
	struct audit_entity en[AUDIT_ENTITIES_MAX] = {{.type = etype}};
	size_t ne = etype ? 1 : 0;
	struct audit_event ev;
	struct keys *keys = NULL;
	struct audit *au = NULL;
	struct ctx c = CTX_INIT;
	int fd, rc;

	snprintf(lock, sizeof(lock), "%s/audit-cli.lock", cfg->data);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX)) {
		rc = fail("the change was made, but it could not be recorded in the audit log: '%s': %s",
			  lock, strerror(errno));
		goto out;
	}
	if (keys_load(cfg->data, &keys, &c)) {
		rc = fail("the change was made, but it could not be recorded in the audit log: %s",
			  c.msg);
		goto out;
	}
	str_copy(cc.node_id, "cli", sizeof(cc.node_id));
	cc.audit_journal_kib = AUDIT_JOURNAL_MIN >> 10; /* a record per command: the smallest journal */
	str_copy(cc.audit, "sync", sizeof(cc.audit));
	if ((rc = open_audit(&cc, keys, &au))) {
		fprintf(stderr, "veranda: the change above was made but not recorded in the audit log\n");
		goto out;
	}
	if (pw && pw->pw_name)
		snprintf(agent, sizeof(agent), "os:%s", pw->pw_name);
	else
		snprintf(agent, sizeof(agent), "os:uid-%u", (unsigned)geteuid());
	for (size_t i = 0; more && i < more->n_entities && ne < sizeof(en) / sizeof(en[0]); i++)
		en[ne++] = more->entities[i];
	for (size_t i = 0; i < n && !rc; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.type = type;
		ev.action = actions[i];
		ev.agent.user_id = agent;
		ev.agent.role = "operator";
		ev.patient = more ? more->patient : NULL;
		if (etype)
			en[0].id = ids[i];
		ev.entities = en;
		ev.n_entities = ne;
		if (audit_record_sync(au, &ev, &c))
			rc = fail("the change was made, but it could not be recorded in the audit log: %s",
				  c.msg);
	}
	if (audit_close(au, &c) && !rc)
		rc = fail("the change was made, but the audit log did not close cleanly: %s", c.msg);
out:
	keys_free(keys);
	if (fd >= 0)
		close(fd); /* and the lock with it */
	return rc;
}

static int audit_admin(const struct config *cfg, enum audit_type type, char action,
		       const char *etype, const char *eid)
{
	char actions[2] = {action, '\0'};

	return audit_admin_more(cfg, type, actions, etype, &eid, 1, NULL);
}

/* The value of flag 'name' (--name V or --name=V) in argv[0..argc), or NULL. */
static const char *flag_value(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);

	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], name, n))
			continue;
		if (argv[i][n] == '=')
			return argv[i] + n + 1;
		if (!argv[i][n] && i + 1 < argc)
			return argv[i + 1];
	}
	return NULL;
}

/* ---- commands ---- */

static const char *const opts_common[] = {"data", "store", "log_level", "sqlite_busy_timeout", NULL};
static const char *const opts_init[] = {"data", "store", "log_level", "sqlite_busy_timeout",
					"node_id", NULL};

static int cmd_init(struct config *cfg, int argc, char **argv)
{
	struct audit *a = NULL;
	struct ctx c = CTX_INIT;
	struct store *s = NULL;
	int rc;

	if (argc > 0)
		die_usage("init takes no arguments, got '%s'", argv[0]);
	if ((rc = check_data_dir(cfg, true)))
		return rc;
	if ((rc = open_store(cfg, false, &s)))
		return rc;
	store_close(s);
	if (keys_init(cfg->data, &c) || open_audit(cfg, NULL, &a))
		return fail("%s", c.msg[0] ? c.msg : "cannot create the audit log");
	printf("initialized '%s' (schema version %d)\n", cfg->data, store_schema_supported());
	return 0;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* Is 'listen' of the form HOST:PORT ([v6]:PORT) with a port from 0 to 65535? */
static bool listen_valid(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	int64_t port;

	if (!colon || colon == listen || str_to_i64(colon + 1, 0, 65535, &port))
		return false;
	if (listen[0] == '[')
		return colon[-1] == ']' && colon - listen > 2;
	return memchr(listen, ':', (size_t)(colon - listen)) == NULL;
}

static bool is_loopback(const char *listen)
{
	return str_starts(listen, "127.") || str_starts(listen, "[::1]") ||
	       str_starts(listen, "localhost:");
}

static const char *const opts_serve[] = {"data", "store", "log_level", "sqlite_busy_timeout", "resource_cache_mb",
					 "listen", "base_url", "workers", "max_connections",
					 "connection_timeout", "header_max", "fhir_body_max",
					 "form_body_max", "json_depth_max", "page_size", "page_max", "search_time_max",
					 "tls_cert", "tls_key", "trust_proxy", "allow_remote",
					 "fhir_auth", "access_token_ttl", "backend_token_ttl", "code_ttl",
					 "refresh_token_ttl", "session_idle", "session_max", "launch_ttl",
					 "signin_lock_after", "signin_lock_time", "token_fail_limit", "audit", "node_id",
					 "audit_queue", "audit_journal_kib", "audit_checkpoint_records",
					 "audit_checkpoint_seconds", "audit_retention_days", NULL};

/* A system event in the audit log (start, stop), waited for; 'code' says why it failed. */
static void system_event(struct audit *au, enum audit_type t, const char *code)
{
	struct audit_event ev;
	struct ctx c = CTX_INIT;

	if (!au)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = t;
	ev.agent.user_id = "veranda";
	ev.outcome = code ? AUDIT_MAJOR : AUDIT_OK;
	ev.outcome_code = code;
	if (audit_record_sync(au, &ev, &c))
		log_msg(LOG_ERROR, "audit log: %s", c.msg);
}

/* Remember the first admin.config record a query finds: its entity id. */
static enum err last_config_row(void *arg, const char *node, uint64_t seq, int64_t time_ms,
				const char *rec, size_t n)
{
	char *out = arg;
	json_t *doc = json_loadb(rec, n, 0, NULL);
	const char *id = json_string_value(json_object_get(
		json_array_get(json_object_get(doc, "entity"), 0), "id"));

	(void)node, (void)seq, (void)time_ms;
	str_copy(out, id ? id : "", AUDIT_HASH_SIZE);
	json_decref(doc);
	return ERR_OK;
}

/*
 * Record the configuration this server runs with when it is not the one
 * its stream last recorded: admin.config with the SHA-256 of every
 * option's effective value (none of them a secret) as the entity id, C for
 * a stream's first, U for a change.  So a change made in the file, the
 * environment or on the command line between two starts is on record.
 */
static void config_event(const struct config *cfg, struct audit *au)
{
	struct buf text = BUF_INIT(64 * 1024);
	struct audit_filter f = AUDIT_FILTER_INIT;
	struct audit_reader *rd = NULL;
	char fp[AUDIT_HASH_SIZE], last[AUDIT_HASH_SIZE] = "";
	struct audit_entity en = {.type = "Configuration", .id = fp};
	struct audit_event ev;
	struct ctx c = CTX_INIT;

	if (!au)
		return;
	for (const struct config_option *o = config_options; o->name; o++) {
		const char *p = (const char *)cfg + o->offset;

		if (o->type == CONFIG_STR)
			buf_addf(&text, "%s=%s\n", o->name, p);
		else if (o->type == CONFIG_INT)
			buf_addf(&text, "%s=%lld\n", o->name, (long long)*(const int64_t *)(const void *)p);
		else
			buf_addf(&text, "%s=%s\n", o->name, *(const bool *)(const void *)p ? "true" : "false");
	}
	audit_hash_id(text.data ? text.data : "", fp);
	buf_release(&text);
	f.node = cfg->node_id;
	f.type = "admin.config";
	f.newest_first = true;
	f.limit = 1;
	if (audit_reader_open(cfg->data, &rd, &c) ||
	    audit_query(rd, &f, last_config_row, last, &c)) {
		log_msg(LOG_WARN, "audit log: cannot read the last configuration record: %s", c.msg);
		ctx_clear(&c);
	}
	audit_reader_free(rd);
	if (!strcmp(last, fp))
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = AUDIT_ADMIN_CONFIG;
	ev.action = last[0] ? 'U' : 'C';
	ev.agent.user_id = "veranda";
	ev.entities = &en;
	ev.n_entities = 1;
	if (audit_record_sync(au, &ev, &c))
		log_msg(LOG_ERROR, "audit log: %s", c.msg);
}

/*
 * Give large blocks back to the system when they are freed.  Making a
 * password hash (user add, reset-password) takes 19 MiB for a moment; with
 * glibc's adaptive mmap threshold the first such free raises the threshold
 * above it, later hashes come from the calling thread's heap arena, and
 * each of the server's arenas (up to eight per core) would keep its 19 MiB
 * for good.  A fixed threshold of 4 MiB keeps such blocks in their own
 * mappings.  (Sign-ins verify in blocks of their own: auth/password.c.)
 *
 * It must stay well above what one request allocates and frees: at
 * 128 KiB every search page of more than a few dozen resources mapped,
 * faulted in and unmapped its buffers, and a fixed mmap threshold also
 * fixes the trim threshold (128 KiB by default), so each arena gave its
 * top back after every request and faulted it in again: a search of 50
 * patients cost three times the CPU.  The trim threshold is set to twice
 * the mmap threshold, the ratio glibc's adaptive rule keeps.
 */
enum {
	MMAP_THRESHOLD = 4 * 1024 * 1024,
	TRIM_THRESHOLD = 2 * MMAP_THRESHOLD,
};

static void memory_policy(void)
{
#if defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
#endif
}

/*
 * SQLite keeps statistics of its memory use by default, behind one global
 * mutex taken on every allocation and free.  Veranda reads none of them,
 * and with a request thread per core each row read contended for that
 * lock: most of the server's futex calls during a search, and the lock's
 * cache line moving between cores on every allocation.  It must be set
 * before SQLite initialises, so first thing in main().
 */
static void sqlite_policy(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int cmd_serve(struct config *cfg, int argc, char **argv)
{
	struct store *s = NULL;
	struct fhir *f = NULL;
	struct users *us = NULL;
	struct clients *cs = NULL;
	struct keys *keys = NULL;
	struct oauth *oa = NULL;
	struct audit *au = NULL;
	struct oauth_opts oo;
	struct http_router *r = NULL;
	struct http_server *srv = NULL;
	struct ctx c = CTX_INIT;
	struct sigaction sa;
	int rc;

	if (argc > 0)
		die_usage("serve takes no arguments, got '%s'", argv[0]);
	memory_policy();
	if (!listen_valid(cfg->listen))
		die_usage("invalid --listen '%s': use ADDRESS:PORT such as 127.0.0.1:8080 or [::1]:8080",
			  cfg->listen);
	if (!is_loopback(cfg->listen) && !cfg->allow_remote)
		return fail("refusing to listen on '%s': pass --allow-remote to serve other addresses "
			    "(and put TLS in front: --tls-cert/--tls-key or a reverse proxy)", cfg->listen);
	if (strcmp(cfg->audit, "sync") && strcmp(cfg->audit, "async") && strcmp(cfg->audit, "off"))
		die_usage("--audit must be sync, async or off, not '%s'", cfg->audit);
	if (!strcmp(cfg->audit, "off") && (!is_loopback(cfg->listen) || cfg->allow_remote))
		return fail("--audit=off serves patient data without an audit trail: "
			    "allowed on loopback addresses only, for benchmarks");
	if (!cfg->fhir_auth && (!is_loopback(cfg->listen) || cfg->allow_remote))
		return fail("--fhir-auth=false serves patient data without authorization: "
			    "allowed on loopback addresses only, for benchmarks");
	if (!cfg->base_url[0])
		snprintf(cfg->base_url, sizeof(cfg->base_url), "%s://%s",
			 cfg->tls_cert[0] ? "https" : "http", cfg->listen);
	while (str_ends(cfg->base_url, "/"))
		cfg->base_url[strlen(cfg->base_url) - 1] = '\0';
	if ((rc = check_data_dir(cfg, false)) || (rc = open_store(cfg, true, &s)))
		return rc;

	if (keys_init(cfg->data, &c) || keys_load(cfg->data, &keys, &c) ||
	    users_new(&us, s, NULL, &c) || clients_new(&cs, s, &c)) {
		rc = fail("%s", c.msg);
		goto out;
	}
	memset(&oo, 0, sizeof(oo));
	oo.base_url = cfg->base_url;
	oo.access_ttl = cfg->access_token_ttl;
	oo.backend_ttl = cfg->backend_token_ttl;
	oo.code_ttl = cfg->code_ttl;
	oo.refresh_ttl = cfg->refresh_token_ttl;
	oo.session_idle = cfg->session_idle;
	oo.session_max = cfg->session_max;
	oo.launch_ttl = cfg->launch_ttl;
	oo.lock_after = cfg->signin_lock_after;
	oo.lock_time = cfg->signin_lock_time;
	oo.token_fail_limit = cfg->token_fail_limit;
	if (oauth_new(&oa, s, us, cs, keys, &oo, &c)) {
		rc = fail("%s", c.msg);
		goto out;
	}
	if (strcmp(cfg->audit, "off") && (rc = open_audit(cfg, keys, &au)))
		goto out;
	oauth_set_audit(oa, au);
	if (cfg->workers == 0 && au && !strcmp(cfg->audit, "sync")) {
		/*
		 * A disclosing request waits for its audit record's group commit:
		 * with one worker per core the pool would sit idle in those waits
		 * and batches would stay tiny, so run more workers than cores.
		 */
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->workers = cores > 0 ? (cores * 16 > 256 ? 256 : cores * 16) : 16;
	}
	f = make_fhir(cfg, s);
	r = http_router_new();
	ops_routes_register(r, s, au);
	auth_routes_register(oa, r);
	fhir_rest_register(f, r, cfg->fhir_auth ? oa : NULL);
	fhir_rest_set_audit(au, au ? cfg->data : NULL);
	audit_routes_register(r, cfg->data);
	auth_routes_set_audit_dir(au ? cfg->data : NULL);
	srv = http_server_new(cfg, r);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* on record before the first request can be */
	system_event(au, AUDIT_SYSTEM_START, NULL);
	config_event(cfg, au);
	if (http_server_start(srv, &c)) {
		rc = fail("%s", c.msg);
		system_event(au, AUDIT_SYSTEM_STOP, "listen-failed");
		goto out;
	}
	log_info("veranda %s listening on %s (%s), FHIR base %s/fhir", VERANDA_VERSION, cfg->listen,
		 is_loopback(cfg->listen) ? "loopback only" : "remote allowed", cfg->base_url);
	while (!stop_signal)
		pause();
	log_info("received signal %d: finishing in-flight requests", (int)stop_signal);
	http_server_stop(srv, 10000);
	system_event(au, AUDIT_SYSTEM_STOP, NULL);
	log_info("stopped");
	rc = 0;
out:
	http_server_free(srv);
	http_router_free(r);
	if (oa)
		auth_routes_free();
	audit_routes_free();
	if (au && audit_close(au, &c))
		log_msg(LOG_ERROR, "audit log: %s", c.msg);
	fhir_free(f);
	oauth_free(oa);
	clients_free(cs);
	users_free(us);
	keys_free(keys);
	store_close(s);
	return rc;
}

/* ---- seed ---- */

struct seed_state {
	struct fhir *f;
	struct store *s;
	int64_t n, pending;
	struct ctx *c;
};

static enum err seed_emit(void *arg, json_t *res)
{
	struct seed_state *st = arg;
	struct fhir_result out;
	enum err e;
	json_t *copy = json_deep_copy(res);

	if (st->pending == 0 && (e = store_begin(st->s, st->c)))
		return e;
	fhir_result_init(&out);
	e = fhir_put_json(st->f, copy, NULL, 0, &out, st->c);
	fhir_result_release(&out);
	json_decref(copy);
	if (e)
		return e;
	st->n++;
	if (++st->pending >= 2000) {
		st->pending = 0;
		return store_commit(st->s, st->c);
	}
	return ERR_OK;
}

/* The demo accounts (DESIGN.md, "Fixed interfaces"); their FHIR people come from seed.h. */
static const struct store_user_patient demo_links_bob[] = {
	{SEED_PATIENT_BOB_CHILD, "proxy", SEED_RELATED_BOB_CHILD},
	{SEED_PATIENT_BOB_MOTHER, "proxy", SEED_RELATED_BOB_MOTHER},
};
static const struct store_user_patient demo_links_frank[] = {
	{SEED_PATIENT_ERIN, "proxy", SEED_RELATED_FRANK},
};
static const struct {
	const char *username;
	enum user_role role;
	const char *fhir_user;
	const struct store_user_patient *links;
	size_t nlinks;
} demo_accounts[] = {
	{"alice", USER_PATIENT, "Patient/" SEED_PATIENT_ALICE, NULL, 0},
	{"bob", USER_CAREGIVER, "Patient/" SEED_PATIENT_BOB, demo_links_bob, 2},
	{"erin", USER_PATIENT, "Patient/" SEED_PATIENT_ERIN, NULL, 0},
	{"frank", USER_CAREGIVER, "Patient/" SEED_PATIENT_FRANK, demo_links_frank, 1},
	{"drsmith", USER_CLINICIAN, "Practitioner/" SEED_PRACTITIONER_DRSMITH, NULL, 0},
	{"sam", USER_SUPPORT, NULL, NULL, 0},
	{"carol", USER_COMPLIANCE, NULL, NULL, 0},
	{"admin", USER_ADMIN, NULL, NULL, 0},
};

/*
 * Create the demo accounts, or bring existing ones back to their demo
 * state (role, links, 'password', enabled): seeding twice is harmless.
 */
static int seed_accounts(const struct config *cfg, struct store *s, const char *password)
{
	enum { N = sizeof(demo_accounts) / sizeof(demo_accounts[0]) };
	const char *names[N];
	char actions[N + 1] = "";
	struct users *us = NULL;
	struct ctx c = CTX_INIT;
	int created = 0, updated = 0;

	if (users_new(&us, s, NULL, &c))
		return fail("cannot create the demo accounts: %s", c.msg);
	for (size_t i = 0; i < sizeof(demo_accounts) / sizeof(demo_accounts[0]); i++) {
		struct user_spec spec = {demo_accounts[i].username, demo_accounts[i].role,
					 demo_accounts[i].fhir_user, password, strlen(password),
					 demo_accounts[i].links, demo_accounts[i].nlinks};
		bool made = false;

		if (user_put(us, &spec, NULL, &made, &c)) {
			users_free(us);
			return fail("cannot create demo account '%s': %s", spec.username, c.msg);
		}
		made ? created++ : updated++;
		names[i] = demo_accounts[i].username;
		actions[i] = made ? 'C' : 'U';
	}
	users_free(us);
	printf("demo accounts: %d created, %d updated (alice, bob, erin, frank, drsmith, sam, carol, admin)\n",
	       created, updated);
	/* accounts with a known password: on record like any other account change */
	return audit_admin_more(cfg, AUDIT_ADMIN_USER, actions, "User", names, N, NULL);
}

static int cmd_seed(struct config *cfg, int argc, char **argv)
{
	struct seed_opts o = {0, 1, 0};
	struct store *s = NULL;
	struct fhir *f = NULL;
	struct ctx c = CTX_INIT;
	struct seed_state st;
	int64_t v, t0;
	const char *password = "veranda-demo";
	int rc, i;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		const char *eq = strchr(a, '=');
		char name[32];

		snprintf(name, sizeof(name), "%.*s", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
		if (eq)
			val = eq + 1;
		else
			i++;
		if (!val)
			die_usage("flag '%s' needs a value", name);
		if (!strcmp(name, "--patients")) {
			if (str_to_i64(val, 0, 1000000, &v))
				die_usage("--patients must be an integer from 0 to 1000000, not '%s'", val);
			o.patients = (unsigned)v;
		} else if (!strcmp(name, "--seed")) {
			if (str_to_i64(val, 0, INT64_MAX, &v))
				die_usage("--seed must be a non-negative integer, not '%s'", val);
			o.seed = (uint64_t)v;
		} else if (!strcmp(name, "--demo-password")) {
			struct ctx pc = CTX_INIT;

			if (user_password_check(val, strlen(val), &pc))
				die_usage("--demo-password: %s", pc.msg);
			password = val;
		} else {
			die_usage("unknown argument '%s' for seed", a);
		}
	}
	o.today_ms = clock_now_ms();
	if ((rc = check_data_dir(cfg, false)) || (rc = open_store(cfg, true, &s)))
		return rc;
	f = make_fhir(cfg, s);
	memset(&st, 0, sizeof(st));
	st.f = f;
	st.s = s;
	st.c = &c;
	t0 = clock_mono_us();
	if (seed_generate(&o, seed_emit, &st, &c) || (st.pending && store_commit(s, &c))) {
		store_rollback(s);
		rc = fail("seeding failed: %s", c.msg);
	} else {
		double secs = (double)(clock_mono_us() - t0) / 1e6;
		printf("seeded %lld resources (%u generated patients plus the demo people) in %.1f s (%.0f resources/s)\n",
		       (long long)st.n, o.patients, secs, secs > 0 ? (double)st.n / secs : 0.0);
		rc = seed_accounts(cfg, s, password);
	}
	fhir_free(f);
	store_close(s);
	return rc;
}

/* ---- import ---- */

struct import_ui {
	bool tty;
	int64_t files_done, files_total;
	int64_t t0;
};

static void import_reject(void *arg, const char *file, int64_t line, const char *reason)
{
	struct import_ui *ui = arg;

	if (ui->tty)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "rejected %s:%lld: %s\n", file, (long long)line, reason);
}

static void import_progress(void *arg, const char *file, int64_t done, int64_t total,
			    const struct fhir_import_stats *st)
{
	struct import_ui *ui = arg;
	double secs = (double)(clock_mono_us() - ui->t0) / 1e6;
	int width = 30, fill;
	char bar[64];
	const char *base = strrchr(file, '/');

	if (!ui->tty)
		return;
	fill = total > 0 ? (int)((double)done / (double)total * width) : width;
	if (fill > width)
		fill = width;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(width - fill));
	bar[width] = '\0';
	fprintf(stderr, "\r\033[K[%s] file %lld/%lld %s  %lld resources  %.0f/s", bar,
		(long long)ui->files_done + 1, (long long)ui->files_total, base ? base + 1 : file,
		(long long)st->imported, secs > 0 ? (double)st->imported / secs : 0.0);
}

static int cmd_import(struct config *cfg, int argc, char **argv)
{
	struct store *s = NULL;
	struct fhir *f = NULL;
	struct fhir_import_stats st;
	struct import_ui ui;
	int rc, i;
	double secs;

	if (argc == 0)
		die_usage("import needs one or more FHIR NDJSON or Bundle files");
	for (i = 0; i < argc; i++)
		if (!strncmp(argv[i], "--", 2))
			die_usage("unknown flag '%s' for import", argv[i]);
	if ((rc = check_data_dir(cfg, false)) || (rc = open_store(cfg, true, &s)))
		return rc;
	f = make_fhir(cfg, s);
	memset(&st, 0, sizeof(st));
	memset(&ui, 0, sizeof(ui));
	ui.tty = isatty(STDERR_FILENO);
	ui.files_total = argc;
	ui.t0 = clock_mono_us();
	for (i = 0; i < argc; i++) {
		struct ctx c = CTX_INIT;

		if (fhir_import_file(f, argv[i], 5000, import_reject, import_progress, &ui, &st, &c)) {
			if (ui.tty)
				fputs("\n", stderr);
			rc = fail("import of '%s' stopped: %s", argv[i], c.msg);
			break;
		}
		ui.files_done++;
	}
	if (ui.tty)
		fputs("\n", stderr);
	secs = (double)(clock_mono_us() - ui.t0) / 1e6;
	printf("imported %lld of %lld resources from %lld file(s) in %.2f s (%.0f resources/s); %lld rejected\n",
	       (long long)st.imported, (long long)st.lines, (long long)ui.files_done, secs,
	       secs > 0 ? (double)st.imported / secs : 0.0, (long long)st.rejected);
	for (int64_t k = 0; k < st.per_type_n; k++)
		printf("  %-24s %lld\n", st.per_type[k].type, (long long)st.per_type[k].n);
	fhir_free(f);
	store_close(s);
	if (st.imported) {
		/* written past the FHIR API: one record of the whole import, as for a Bundle */
		char q[64];
		struct audit_entity b = {.type = "Bundle", .query = q};
		struct audit_event more = {.entities = &b, .n_entities = 1};
		int arc;
		snprintf(q, sizeof(q), "import=%lld", (long long)st.imported);
		if ((arc = audit_admin_more(cfg, AUDIT_FHIR_UPDATE, "U", NULL, NULL, 1, &more)) && !rc)
			rc = arc;
	}
	if (!rc && st.rejected)
		rc = 3;
	return rc;
}

/* ---- user ---- */

/* Where a user command's password comes from. */
struct pw_source {
	const char *arg;     /* --password P (argv memory, wiped after use) */
	bool from_stdin;     /* --password-stdin */
};

/*
 * Read one line (without its end of line) from standard input into
 * out[size]; with a terminal, prompt on stderr without echo.  Returns the
 * length, or -1 with a message when the line is missing or too long.
 */
static ssize_t read_password_line(char *out, size_t size, const char *prompt)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO), echo_off = false;
	size_t n;
	char *got;

	if (tty) {
		fputs(prompt, stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	got = fgets(out, (int)size, stdin);
	if (echo_off) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!got) {
		out[0] = '\0';
		fail("no password on standard input");
		return -1;
	}
	n = strlen(out);
	if (n && out[n - 1] == '\n')
		out[--n] = '\0';
	else if (!feof(stdin)) {
		int ch;

		while ((ch = getchar()) != EOF && ch != '\n')
			;
		mem_wipe(out, size);
		fail("the password on standard input is too long");
		return -1;
	}
	if (n && out[n - 1] == '\r')
		out[--n] = '\0';
	return (ssize_t)n;
}

/*
 * Fill pw[size] from the source (standard input when neither flag was
 * given).  Returns the length or -1 (message printed).
 */
static ssize_t get_password(struct pw_source *src, char *pw, size_t size, const char *prompt)
{
	size_t n;

	if (src->arg) {
		n = strlen(src->arg);
		if (n >= size) {
			fail("the password is too long");
			return -1;
		}
		memcpy(pw, src->arg, n + 1);
		mem_wipe((char *)src->arg, n);   /* off the process's argument list */
		return (ssize_t)n;
	}
	return read_password_line(pw, size, prompt);
}

/* Exit status for a failed service call: 2 for a bad value, else 1. */
static int user_fail(const struct ctx *c)
{
	fprintf(stderr, "veranda: %s\n", c->msg);
	return c->code == ERR_INVALID ? EXIT_USAGE : EXIT_RUNTIME;
}

static int print_user(void *arg, const struct user *u)
{
	(void)arg;
	printf("%-24s %-11s %-36s %s\n", u->username, user_role_name(u->role),
	       u->fhir_user[0] ? u->fhir_user : "-", u->disabled ? "yes" : "no");
	return 0;
}

static const char *const opts_user[] = {"data", "store", "log_level", "sqlite_busy_timeout", NULL};
static const char *const user_own[] = {"username", "role", "fhir-user", "password",
				       "password-stdin", "patient", "related-person", NULL};

/*
 * veranda user add|list|disable|enable|reset-password|reset-mfa|check-password|link|unlink.
 * Values are checked before the store is opened (exit 2); passwords are
 * never printed.
 */
static int cmd_user(struct config *cfg, int argc, char **argv)
{
	const char *sub, *username = NULL, *role_s = NULL, *fhir_user = NULL;
	const char *patient = NULL, *related = NULL;
	char name[USER_NAME_MAX + 1], pw[PASSWORD_MAX + 2];
	struct pw_source src = {NULL, false};
	enum user_role role = USER_PATIENT;
	struct users *us = NULL;
	struct store *s = NULL;
	struct ctx c = CTX_INIT;
	ssize_t n = -1;
	int rc, i;

	pw[0] = '\0';
	if (argc < 1 || !strncmp(argv[0], "--", 2))
		die_usage("user needs a subcommand: add, list, disable, enable, reset-password, reset-mfa, check-password, link or unlink");
	sub = argv[0];
	if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "disable") &&
	    strcmp(sub, "enable") && strcmp(sub, "reset-password") && strcmp(sub, "check-password") &&
	    strcmp(sub, "reset-mfa") && strcmp(sub, "link") && strcmp(sub, "unlink"))
		die_usage("unknown user subcommand '%s'", sub);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *val = NULL;
		char flag[32];

		snprintf(flag, sizeof(flag), "%.*s", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
		if (!strcmp(flag, "--password-stdin")) {
			if (eq)
				die_usage("--password-stdin takes no value");
			src.from_stdin = true;
			continue;
		}
		if (strncmp(a, "--", 2))
			die_usage("unexpected argument '%s' for user %s", a, sub);
		val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!val)
			die_usage("flag '%s' needs a value", flag);
		if (!strcmp(flag, "--username"))
			username = val;
		else if (!strcmp(flag, "--role") && !strcmp(sub, "add"))
			role_s = val;
		else if (!strcmp(flag, "--fhir-user") && !strcmp(sub, "add"))
			fhir_user = val;
		else if (!strcmp(flag, "--patient") && (!strcmp(sub, "link") || !strcmp(sub, "unlink")))
			patient = val;
		else if (!strcmp(flag, "--related-person") && !strcmp(sub, "link"))
			related = val;
		else if (!strcmp(flag, "--password") && (!strcmp(sub, "add") ||
							   !strcmp(sub, "reset-password") ||
							   !strcmp(sub, "check-password")))
			src.arg = val;
		else
			die_usage("unknown flag '%s' for user %s", flag, sub);
	}
	if (src.arg && src.from_stdin)
		die_usage("give --password or --password-stdin, not both");
	if (src.from_stdin && strcmp(sub, "add") && strcmp(sub, "reset-password") &&
	    strcmp(sub, "check-password"))
		die_usage("user %s takes no password", sub);
	if ((!strcmp(sub, "link") || !strcmp(sub, "unlink")) && !patient)
		die_usage("user %s needs --patient ID", sub);
	if (!strcmp(sub, "link") && !related)
		die_usage("user link needs --related-person ID (the RelatedPerson that describes the link)");
	if (strcmp(sub, "list")) {
		if (!username)
			die_usage("user %s needs --username", sub);
		if (user_name_normalize(username, name, &c))
			die_usage("%s", c.msg);
	} else if (username) {
		die_usage("user list takes no --username");
	}
	if (!strcmp(sub, "add")) {
		if (!role_s)
			die_usage("user add needs --role (patient, caregiver, clinician, support, compliance or admin)");
		if (user_role_parse(role_s, &role, &c))
			die_usage("%s", c.msg);
		if (!src.arg && !src.from_stdin)
			die_usage("user add needs --password-stdin (or --password)");
	}
	if (!strcmp(sub, "add") || !strcmp(sub, "reset-password") ||
	    !strcmp(sub, "check-password")) {
		n = get_password(&src, pw, sizeof(pw), "password: ");
		if (n < 0)
			return EXIT_RUNTIME;
		/* a sign-in check takes any input; a new password must be acceptable */
		if (strcmp(sub, "check-password") && user_password_check(pw, (size_t)n, &c)) {
			mem_wipe(pw, sizeof(pw));
			die_usage("%s", c.msg);
		}
	}

	if ((rc = check_data_dir(cfg, false)) || (rc = open_store(cfg, true, &s)))
		goto out;
	if (users_new(&us, s, NULL, &c)) {
		rc = fail("%s", c.msg);
		goto out;
	}
	if (!strcmp(sub, "add")) {
		struct user_spec spec = {name, role, fhir_user, pw, (size_t)n, NULL, 0};
		int64_t uid = 0;

		if (user_add(us, &spec, &uid, &c)) {
			rc = user_fail(&c);
			goto out;
		}
		printf("added user '%s' (%s)\n", name, user_role_name(role));
	} else if (!strcmp(sub, "list")) {
		printf("%-24s %-11s %-36s %s\n", "USERNAME", "ROLE", "FHIR USER", "DISABLED");
		if (user_list(us, print_user, NULL, &c)) {
			rc = user_fail(&c);
			goto out;
		}
	} else if (!strcmp(sub, "disable") || !strcmp(sub, "enable")) {
		bool dis = !strcmp(sub, "disable");

		if ((dis ? user_disable : user_enable)(us, name, &c)) {
			rc = user_fail(&c);
			goto out;
		}
		printf("%s user '%s'\n", dis ? "disabled" : "enabled", name);
	} else if (!strcmp(sub, "reset-password")) {
		if (user_set_password(us, name, pw, (size_t)n, &c)) {
			rc = user_fail(&c);
			goto out;
		}
		printf("password of user '%s' changed\n", name);
	} else if (!strcmp(sub, "reset-mfa")) {
		/*
		 * The authenticator and its recovery codes are forgotten; the next
		 * sign-in is password only.  A lost authenticator is a suspected
		 * compromise, as a forgotten password is: the account's sessions
		 * (half-open ones too) and app access end with it.
		 */
		struct user u;

		if (user_mfa_set(us, name, NULL, 0, &c) || oauth_mfa_reset(s, name, &c) ||
		    user_get_by_name(us, name, &u, &c) || user_end_access(us, u.uid, &c)) {
			rc = user_fail(&c);
			goto out;
		}
		printf("two-step verification of user '%s' removed\n", name);
	} else if (!strcmp(sub, "link")) {
		if (user_link(us, name, patient, related, &c)) {
			rc = user_fail(&c);
			goto out;
		}
		printf("user '%s' acts for Patient/%s as RelatedPerson/%s\n", name, patient, related);
	} else if (!strcmp(sub, "unlink")) {
		size_t ended = 0;

		if (user_unlink(us, name, patient, &ended, &c)) {
			rc = user_fail(&c);
			goto out;
		}
		printf("user '%s' no longer acts for Patient/%s (%zu app authorization%s for that patient ended)\n",
		       name, patient, ended, ended == 1 ? "" : "s");
	} else {
		struct user u;

		if (user_verify_password(us, name, pw, (size_t)n, &u, &c)) {
			rc = fail("%s", c.msg);
			goto out;
		}
		printf("password of user '%s' is correct\n", name);
	}
	rc = 0;
	if (!strcmp(sub, "link") || !strcmp(sub, "unlink")) {
		/* caregiver access given or taken by an operator: in the patient's record */
		struct audit_entity rp = {.type = "RelatedPerson", .id = related};
		struct audit_event more = {.patient = patient, .entities = &rp, .n_entities = related ? 1 : 0};
		const char *const ids[1] = {name};
		rc = audit_admin_more(cfg, !strcmp(sub, "link") ? AUDIT_PROXY_APPROVED : AUDIT_PROXY_REVOKED,
				      "U", "User", ids, 1, &more);
	} else if (strcmp(sub, "list") && strcmp(sub, "check-password")) {
		rc = audit_admin(cfg, AUDIT_ADMIN_USER, !strcmp(sub, "add") ? 'C' : 'U', "User", name);
	}
out:
	mem_wipe(pw, sizeof(pw));
	users_free(us);
	store_close(s);
	return rc;
}

static int cmd_version(struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argv;
	if (argc > 0)
		die_usage("version takes no arguments");
	printf("veranda %s (FHIR R4 4.0.1, schema %d)\n", VERANDA_VERSION, store_schema_supported());
	return 0;
}

/* The search parameter table as JSON (documentation and test oracles). */
static int cmd_params(struct config *cfg, int argc, char **argv)
{
	static const char *const kinds[] = {"token", "string", "date", "reference", "quantity",
					    "number", "uri"};
	json_t *out = json_array();
	struct buf b = BUF_INIT(16 << 20);

	(void)cfg, (void)argv;
	if (argc > 0)
		die_usage("params takes no arguments");
	for (const struct fhir_param *p = fhir_params; p->code; p++) {
		const char *tt = NULL;
		const struct fhir_param *base = fhir_param_base(p, &tt);
		json_t *targets = json_array();

		for (const char *const *t = p->targets; t && *t; t++)
			json_array_append_new(targets, json_string(*t));
		json_array_append_new(out, json_pack("{s:s?,s:s,s:s,s:s,s:s,s:o,s:s?,s:s?}",
						     "type", p->type, "code", p->code,
						     "kind", kinds[p->kind], "expression", p->expression,
						     "path", p->path, "targets", targets,
						     "description", p->description,
						     "rowsOf", base != p ? base->code : NULL));
	}
	json_dump_buf(out, &b);
	json_decref(out);
	fwrite(b.data, 1, b.len, stdout);
	fputc('\n', stdout);
	buf_release(&b);
	return 0;
}

static int cmd_config_doc(struct config *cfg, int argc, char **argv)
{
	struct buf b = BUF_INIT(1 << 20);

	(void)cfg, (void)argc, (void)argv;
	config_write_markdown(&b);
	fwrite(b.data, 1, b.len, stdout);
	buf_release(&b);
	return 0;
}

static int cmd_config_example(struct config *cfg, int argc, char **argv)
{
	struct buf b = BUF_INIT(1 << 20);

	(void)cfg, (void)argc, (void)argv;
	config_write_example(&b);
	fwrite(b.data, 1, b.len, stdout);
	buf_release(&b);
	return 0;
}

static const char *const opts_client[] = {"data", "store", "log_level", "sqlite_busy_timeout",
					  NULL};

static int cmd_client(struct config *cfg, int argc, char **argv)
{
	struct store *s = NULL;
	int rc;

	if ((rc = check_data_dir(cfg, false)) || (rc = open_store(cfg, true, &s)))
		return rc;
	rc = auth_cli_client(s, cfg->data, argc, argv);
	store_close(s);
	if (!rc && argc > 0 && strcmp(argv[0], "list")) {
		const char *id = flag_value(argc - 1, argv + 1, "--client-id");
		char action = !strcmp(argv[0], "add") ? 'C' : !strcmp(argv[0], "remove") ? 'D' : 'U';

		rc = audit_admin(cfg, AUDIT_ADMIN_CLIENT, action, "Client", id ? id : "");
	}
	return rc;
}

static int cmd_audit(struct config *cfg, int argc, char **argv)
{
	struct keys *keys = NULL;
	struct ctx c = CTX_INIT;
	int rc;

	/* a receipt is checked offline, with the keys given: no data directory needed */
	if (argc > 0 && !strcmp(argv[0], "check-receipt"))
		return audit_cli(cfg->data, NULL, argc, argv);
	if ((rc = check_data_dir(cfg, false)))
		return rc;
	/* the server's own keys are the trusted ones for checkpoint signatures */
	if (keys_load(cfg->data, &keys, &c))
		return fail("%s", c.msg);
	rc = audit_cli(cfg->data, keys_jwks(keys), argc, argv);
	keys_free(keys);
	return rc;
}

static int cmd_keys(struct config *cfg, int argc, char **argv)
{
	int rc;

	if ((rc = check_data_dir(cfg, false)))
		return rc;
	rc = auth_cli_keys(cfg->data, argc, argv);
	if (!rc && argc > 0 && !strcmp(argv[0], "rotate"))
		rc = audit_admin(cfg, AUDIT_ADMIN_KEY, 'U', "SigningKeys", "rotate");
	return rc;
}

static const struct command commands[] = {
	{"init", cmd_init, "create a data directory, its database, signing keys and audit log (or migrate them)",
	 "veranda init --data DIR", opts_init, NULL},
	{"serve", cmd_serve, "serve the FHIR API over HTTP",
	 "veranda serve --data DIR --listen ADDR:PORT --base-url URL", opts_serve, NULL},
	{"seed", cmd_seed, "add a deterministic synthetic population with demo people",
	 "veranda seed --data DIR --patients N [--seed S] [--demo-password P]", opts_common,
	 "  --patients N                 generated patients besides the demo people (default: 0)\n"
	 "  --seed S                     random seed; the same seed gives the same data (default: 1)\n"
	 "  --demo-password P            password of the demo accounts (default: veranda-demo)\n"},
	{"import", cmd_import, "import FHIR NDJSON files or Bundles, keeping ids",
	 "veranda import --data DIR FILE...", opts_common,
	 "  exit status 3 when some resources were rejected (each is listed on stderr)\n"},
	{"user", cmd_user, "manage sign-in accounts: add, list, disable, enable, reset-password, reset-mfa, link, unlink",
	 "veranda user add --data DIR --username U --role R [--fhir-user Type/id] [--password-stdin | --password P]\n"
	 "       veranda user list --data DIR\n"
	 "       veranda user disable|enable --data DIR --username U\n"
	 "       veranda user reset-password --data DIR --username U [--password-stdin | --password P]\n"
	 "       veranda user reset-mfa --data DIR --username U\n"
	 "       veranda user check-password --data DIR --username U [--password-stdin | --password P]\n"
	 "       veranda user link --data DIR --username U --patient ID --related-person ID\n"
	 "       veranda user unlink --data DIR --username U --patient ID",
	 opts_user,
	 "  --username U                 account name: letters a-z, digits, '.', '_', '-' (any case)\n"
	 "  --role R                     patient, caregiver, clinician, support, compliance or admin\n"
	 "  --fhir-user Type/id          the account's FHIR person: Patient/ID (patient, caregiver),\n"
	 "                               RelatedPerson/ID (caregiver), Practitioner/ID (staff)\n"
	 "  --password-stdin             read the password as one line from standard input\n"
	 "                               (the default; prompts without echo on a terminal)\n"
	 "  --password P                 the password on the command line (visible to other users\n"
	 "                               of this machine while it runs: prefer --password-stdin)\n"
	 "  passwords: 8 to 256 characters, no other rules; they are never printed\n"
	 "  check-password exits 0 when the password is right, 1 when it is not\n"
	 "  --patient ID                 link/unlink: the patient a caregiver (or a patient account)\n"
	 "                               acts for, or stops acting for\n"
	 "  --related-person ID          link: the RelatedPerson that describes that relationship\n"
	 "  an account's own record (its Patient fhir user) is neither linked nor unlinked;\n"
	 "  after unlink, the account's apps lose that patient at their next refresh\n"},
	{"client", cmd_client, "register apps: add, list, remove, disable, enable", auth_cli_client_usage,
	 opts_client, auth_cli_client_help},
	{"keys", cmd_keys, "signing keys: list, rotate", auth_cli_keys_usage, opts_common,
	 auth_cli_keys_help},
	{"audit", cmd_audit, "the audit log: verify, query, export, proofs, receipts", audit_cli_usage,
	 opts_common, audit_cli_help},
	{"version", cmd_version, "print the version", "veranda version", NULL, NULL},
	{"params", cmd_params, "print the FHIR search parameters as JSON", "veranda params", NULL, NULL},
	{"config-doc", cmd_config_doc, NULL, "veranda config-doc", NULL, NULL},
	{"config-example", cmd_config_example, NULL, "veranda config-example", NULL, NULL},
	{NULL, NULL, NULL, NULL, NULL, NULL},
};

static void main_help(FILE *out)
{
	fputs("usage: veranda COMMAND [FLAGS]\n\n"
	      "Veranda: patient-centric access to health records (FHIR R4).\n\ncommands:\n", out);
	for (const struct command *cmd = commands; cmd->name; cmd++)
		if (cmd->summary)
			fprintf(out, "  %-10s %s\n", cmd->name, cmd->summary);
	fputs("\nRun 'veranda COMMAND --help' for a command's flags.  Every flag can also be set\n"
	      "in DATA/veranda.conf (or --config FILE) and as VERANDA_<NAME> in the environment;\n"
	      "flags win over the environment, which wins over the file.\n", out);
}

static void command_help(const struct command *cmd)
{
	printf("usage: %s\n\n%s\n\nflags:\n", cmd->usage, cmd->summary ? cmd->summary : "");
	if (cmd->options) {
		printf("  --config FILE                configuration file (default: DATA/veranda.conf)\n");
		config_print_help(stdout, cmd->options);
	}
	if (cmd->extra_help)
		fputs(cmd->extra_help, stdout);
}

int main(int argc, char **argv)
{
	static const char *const seed_own[] = {"patients", "seed", "demo-password", NULL};
	struct config cfg;
	const struct command *cmd;
	int rest = 0;

	sqlite_policy();
	if (argc < 2) {
		main_help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		main_help(stdout);
		return 0;
	}
	{
		/* test hook (documented in clock.h): seconds added to the wall clock */
		const char *off = getenv("VERANDA_CLOCK_OFFSET");
		int64_t secs;

		if (off && *off) {
			if (str_to_i64(off, -(INT64_C(1) << 40), INT64_C(1) << 40, &secs))
				die_usage("VERANDA_CLOCK_OFFSET must be an integer number of seconds, not '%s'", off);
			clock_set_offset(secs * 1000);
		}
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(&cfg, 0, NULL);
	for (cmd = commands; cmd->name; cmd++)
		if (!strcmp(cmd->name, argv[1]))
			break;
	if (!cmd->name)
		die_usage("unknown command '%s'", argv[1]);
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			command_help(cmd);
			return 0;
		}
	load_config(&cfg, cmd->options,
		    cmd->run == cmd_seed     ? seed_own
		    : cmd->run == cmd_user   ? user_own
		    : cmd->run == cmd_client ? auth_cli_client_flags
		    : cmd->run == cmd_keys   ? auth_cli_keys_flags
		    : cmd->run == cmd_audit  ? audit_cli_flags
					     : NULL,
		    argc - 2, argv + 2, &rest);
	return cmd->run(&cfg, rest, argv + 2);
}
