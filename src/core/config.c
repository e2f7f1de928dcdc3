/* config.c - the configuration table and its readers.  See config.h. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"

#define STR(field, def, help) \
	{#field, CONFIG_STR, offsetof(struct config, field), \
	 sizeof(((struct config *)0)->field), def, 0, 0, help}
#define INT(field, def, min, max, help) \
	{#field, CONFIG_INT, offsetof(struct config, field), 0, def, min, max, help}
#define BOOL(field, def, help) \
	{#field, CONFIG_BOOL, offsetof(struct config, field), 0, def, 0, 1, help}

const struct config_option config_options[] = {
	STR(data, "var", "data directory (database, keys, audit log)"),
	STR(listen, "127.0.0.1:8080", "address and port to listen on"),
	STR(base_url, "", "public base URL (default: http://LISTEN)"),
	STR(store, "sqlite", "storage backend: 'sqlite' (DATA/veranda.db); a PostgreSQL backend is planned"),
	STR(log_level, "info", "log level: debug, info, warn, error or off"),
	INT(workers, "0", 0, 256, "HTTP worker threads (0: one per core, or 16 per core with audit sync, whose disclosures wait for the log)"),
	INT(max_connections, "1024", 1, 65536, "maximum simultaneous connections"),
	INT(connection_timeout, "30", 1, 3600, "seconds a connection may stay idle, and a request's headers may take to arrive (its body: as long again, plus 1 s per 64 KiB)"),
	INT(header_max, "16384", 4096, 1048576, "maximum bytes of request line and headers"),
	INT(fhir_body_max, "16777216", 1024, 268435456, "maximum bytes of a FHIR request body"),
	INT(form_body_max, "65536", 1024, 16777216, "maximum bytes of a form request body"),
	INT(json_depth_max, "64", 4, 1024, "maximum nesting depth of a JSON body"),
	INT(page_size, "50", 1, 1000, "default number of entries in a search or history page"),
	INT(page_max, "1000", 1, 10000, "maximum number of entries in a page (_count)"),
	INT(search_time_max, "5000", 0, 600000, "milliseconds a search may run before it is stopped as too costly (0: no limit)"),
	INT(sqlite_busy_timeout, "5000", 0, 600000, "milliseconds SQLite waits for a lock"),
	INT(resource_cache_mb, "64", 0, 65536, "MiB of stored resource versions kept in memory for search pages (0: none)"),
	STR(tls_cert, "", "PEM certificate chain for built-in TLS"),
	STR(tls_key, "", "PEM private key for built-in TLS"),
	BOOL(trust_proxy, "false", "trust X-Forwarded-For/-Proto from a reverse proxy"),
	BOOL(allow_remote, "false", "allow listening on a non-loopback address"),
	BOOL(fhir_auth, "true", "require an access token on the FHIR API (false: only on loopback, for benchmarks)"),
	INT(access_token_ttl, "900", 60, 3600, "seconds an access token for an app lasts"),
	INT(backend_token_ttl, "300", 60, 3600, "seconds an access token for a backend service lasts"),
	INT(code_ttl, "60", 10, 600, "seconds an authorization code may wait to be redeemed"),
	INT(refresh_token_ttl, "7776000", 3600, 315360000, "seconds a refresh token lasts unused (each refresh starts a new period; never beyond the grant's end)"),
	INT(session_idle, "900", 60, 86400, "seconds a sign-in session may stay idle"),
	INT(session_max, "43200", 300, 604800, "seconds a sign-in session lasts at most"),
	INT(launch_ttl, "300", 30, 3600, "seconds an EHR launch context may wait to be used"),
	INT(signin_lock_after, "10", 3, 1000, "failed sign-ins to one account or from one address before a temporary lock"),
	INT(signin_lock_time, "900", 60, 86400, "seconds of that temporary lock"),
	INT(token_fail_limit, "300", 0, 1000000, "failed token, introspection and revocation requests a minute from one address (an IPv6 /64), or ten times as many failures of one app with a secret; then 429 until the minute ends (0: no limit)"),
	STR(audit, "sync", "audit durability: 'sync' (patient data is sent only once its audit record is on disk), 'async', or 'off' (loopback benchmarks only)"),
	STR(node_id, "node-1", "this node's name in the audit log (each node writes its own stream)"),
	INT(audit_queue, "65536", 64, 4194304, "audit records that may wait for the writer; beyond, disclosures get 503"),
	INT(audit_journal_kib, "2048", 64, 1048576, "size of each of the audit journal's two files, in KiB: how far records may run ahead of audit.db"),
	INT(audit_checkpoint_records, "1000", 1, 1000000, "sign an audit checkpoint after this many records"),
	INT(audit_checkpoint_seconds, "5", 1, 3600, "or this many seconds after the first unsigned record"),
	INT(audit_retention_days, "2192", 1, 36500, "days audit records are kept (then archived and pruned; the log stays verifiable)"),
	{NULL, CONFIG_STR, 0, 0, NULL, 0, 0, NULL},
};

/* "base-url", "base_url" and "BASE_URL" all name base_url. */
static void canon(const char *in, char *out, size_t size)
{
	size_t i;

	for (i = 0; in[i] && i + 1 < size; i++)
		out[i] = in[i] == '-' ? '_' : (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
}

const struct config_option *config_find(const char *name)
{
	char key[64];

	canon(name, key, sizeof(key));
	for (const struct config_option *o = config_options; o->name; o++)
		if (strcmp(o->name, key) == 0)
			return o;
	return NULL;
}

static enum err set_opt(struct config *cfg, const struct config_option *o,
			const char *value, struct ctx *c)
{
	char *field = (char *)cfg + o->offset;
	int64_t v;

	switch (o->type) {
	case CONFIG_STR:
		if (strlen(value) >= o->size)
			return ctx_errorf(c, ERR_INVALID, "value of '%s' is too long (at most %zu bytes)",
					  o->name, o->size - 1);
		str_copy(field, value, o->size);
		return ERR_OK;
	case CONFIG_INT:
		if (str_to_i64(value, o->min, o->max, &v))
			return ctx_errorf(c, ERR_INVALID, "'%s' must be an integer from %lld to %lld, not '%s'",
					  o->name, (long long)o->min, (long long)o->max, value);
		*(int64_t *)(void *)field = v;
		return ERR_OK;
	case CONFIG_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "on"))
			*(bool *)(void *)field = true;
		else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no") || !strcmp(value, "off"))
			*(bool *)(void *)field = false;
		else
			return ctx_errorf(c, ERR_INVALID, "'%s' must be true or false, not '%s'", o->name, value);
		return ERR_OK;
	}
	return ERR_INVALID;
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (const struct config_option *o = config_options; o->name; o++)
		set_opt(cfg, o, o->def, NULL);
}

enum err config_set(struct config *cfg, const char *name, const char *value, struct ctx *c)
{
	const struct config_option *o = config_find(name);

	if (!o)
		return ctx_errorf(c, ERR_INVALID, "unknown option '%s'", name);
	return set_opt(cfg, o, value, c);
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * Put "where: " in front of the message set_opt() or config_set() just
 * recorded on 'c'; an earlier failure already on 'c' ('had_error') is left
 * as it was, since the first error wins.
 */
static void prefix_msg(struct ctx *c, bool had_error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void prefix_msg(struct ctx *c, bool had_error, const char *fmt, ...)
{
	char where[CONFIG_PATH_MAX + 32], msg[sizeof(c->msg)];
	va_list ap;

	if (!c || had_error)
		return;
	va_start(ap, fmt);
	vsnprintf(where, sizeof(where), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s: %s", where, c->msg);
	str_copy(c->msg, msg, sizeof(c->msg));
}

enum err config_load_file(struct config *cfg, const char *path, struct ctx *c)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int lineno = 0;
	enum err e = ERR_OK;
	bool had_error = c && c->code != ERR_OK;

	if (!f) {
		if (errno == ENOENT)
			return ctx_errorf(c, ERR_NOTFOUND, "cannot open '%s'", path);
		return ctx_errorf(c, ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f)) {
		char *hash, *eq, *key, *val;
		size_t len = strlen(line);

		lineno++;
		/* a longer line would be read as two: its tail as the next line */
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			int next = getc(f);
			if (next != EOF) {
				e = ctx_errorf(c, ERR_INVALID, "%s:%d: line longer than %zu bytes", path,
					       lineno, sizeof(line) - 2);
				break;
			}
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		key = trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			e = ctx_errorf(c, ERR_INVALID, "%s:%d: expected 'key = value'", path, lineno);
			break;
		}
		*eq = '\0';
		val = trim(eq + 1);
		key = trim(key);
		if (!config_find(key)) {
			e = ctx_errorf(c, ERR_INVALID, "%s:%d: unknown option '%s'", path, lineno, key);
			break;
		}
		if ((e = config_set(cfg, key, val, c)) != ERR_OK) {
			prefix_msg(c, had_error, "%s:%d", path, lineno);
			break;
		}
	}
	/* a read error (a directory gives EISDIR) is not an empty file */
	if (e == ERR_OK && ferror(f))
		e = ctx_errorf(c, ERR_IO, "cannot read '%s': %s", path, strerror(errno));
	fclose(f);
	return e;
}

enum err config_load_env(struct config *cfg, struct ctx *c)
{
	bool had_error = c && c->code != ERR_OK;

	for (const struct config_option *o = config_options; o->name; o++) {
		char var[80];
		const char *v;
		enum err e;
		size_t i;

		snprintf(var, sizeof(var), "VERANDA_%s", o->name);
		for (i = 8; var[i]; i++)
			var[i] = (char)toupper((unsigned char)var[i]);
		v = getenv(var);
		if (v && (e = set_opt(cfg, o, v, c)) != ERR_OK) {
			/* the message names the variable, not only the option */
			prefix_msg(c, had_error, "%s", var);
			return e;
		}
	}
	return ERR_OK;
}

static void flag_name(const char *name, char *out, size_t size)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < size; i++)
		out[i] = name[i] == '_' ? '-' : name[i];
	out[i] = '\0';
}

void config_print_help(FILE *f, const char *const *names)
{
	for (const struct config_option *o = config_options; o->name; o++) {
		char flag[64], left[96];

		if (names) {
			const char *const *n;
			for (n = names; *n && strcmp(*n, o->name); n++)
				;
			if (!*n)
				continue;
		}
		flag_name(o->name, flag, sizeof(flag));
		snprintf(left, sizeof(left), "--%s %s", flag,
			 o->type == CONFIG_INT ? "N" : o->type == CONFIG_BOOL ? "BOOL" : "VALUE");
		fprintf(f, "  %-28s %s", left, o->help);
		if (o->def[0])
			fprintf(f, " (default: %s)", o->def);
		fputc('\n', f);
	}
}

void config_write_markdown(struct buf *b)
{
	buf_adds(b, "| option | flag | environment | default | range | meaning |\n"
		    "|---|---|---|---|---|---|\n");
	for (const struct config_option *o = config_options; o->name; o++) {
		char flag[64], env[80];
		size_t i;

		flag_name(o->name, flag, sizeof(flag));
		snprintf(env, sizeof(env), "VERANDA_%s", o->name);
		for (i = 8; env[i]; i++)
			env[i] = (char)toupper((unsigned char)env[i]);
		buf_addf(b, "| `%s` | `--%s` | `%s` | `%s` | ", o->name, flag, env,
			 o->def[0] ? o->def : "(empty)");
		if (o->type == CONFIG_INT)
			buf_addf(b, "%lld to %lld", (long long)o->min, (long long)o->max);
		else if (o->type == CONFIG_BOOL)
			buf_adds(b, "true/false");
		buf_addf(b, " | %s |\n", o->help);
	}
}

void config_write_example(struct buf *b)
{
	buf_adds(b, "# Veranda configuration file: 'key = value', '#' starts a comment.\n"
		    "# Environment variables VERANDA_<KEY> override these; flags override both.\n\n");
	for (const struct config_option *o = config_options; o->name; o++)
		buf_addf(b, "# %s\n# %s = %s\n\n", o->help, o->name, o->def);
}
