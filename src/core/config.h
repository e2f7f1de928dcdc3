/*
 * config.h - Veranda's configuration as one declarative table.
 *
 * Every option has a name ("listen"), a type, a default, bounds and a help
 * line.  The table drives parsing of the configuration file, of VERANDA_*
 * environment variables and of command-line flags, and generates --help and
 * docs/configuration.md.  Precedence, lowest first: built-in default <
 * configuration file < environment < command-line flag.
 * A struct config is filled once at start-up and then only read.
 */
#ifndef VERANDA_CORE_CONFIG_H
#define VERANDA_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/err.h"

#define CONFIG_PATH_MAX 1024

struct config {
	char data[CONFIG_PATH_MAX];     /* data directory */
	char listen[128];               /* ADDR:PORT */
	char base_url[512];             /* public base URL, no trailing slash */
	char store[CONFIG_PATH_MAX];    /* "sqlite" or a postgresql:// URL */
	char log_level[16];
	int64_t workers;                /* 0 = number of cores */
	int64_t max_connections;
	int64_t connection_timeout;     /* seconds of inactivity */
	int64_t header_max;             /* bytes of request line + headers */
	int64_t fhir_body_max;          /* bytes */
	int64_t form_body_max;          /* bytes */
	int64_t json_depth_max;
	int64_t page_size;              /* default _count */
	int64_t page_max;               /* maximum _count */
	int64_t search_time_max;        /* ms a search may run; 0: no limit */
	int64_t sqlite_busy_timeout;    /* milliseconds */
	int64_t resource_cache_mb;      /* the store's version cache, MiB */
	char tls_cert[CONFIG_PATH_MAX];
	char tls_key[CONFIG_PATH_MAX];
	bool trust_proxy;
	bool allow_remote;              /* listen on non-loopback addresses */
	bool fhir_auth;                 /* the FHIR API needs access tokens */
	/* authorization server (seconds) */
	int64_t access_token_ttl;
	int64_t backend_token_ttl;
	int64_t code_ttl;
	int64_t refresh_token_ttl;
	int64_t session_idle;
	int64_t session_max;
	int64_t launch_ttl;
	int64_t signin_lock_after;      /* failed sign-ins before a temporary lock */
	int64_t token_fail_limit;       /* failed token-endpoint requests a minute per address or client */
	int64_t signin_lock_time;       /* seconds */
	/* audit log */
	char audit[16];                 /* "sync", "async" or "off" */
	char node_id[65];               /* this node's audit stream */
	int64_t audit_queue;
	int64_t audit_journal_kib;
	int64_t audit_checkpoint_records;
	int64_t audit_checkpoint_seconds;
	int64_t audit_retention_days;
};

enum config_type { CONFIG_STR, CONFIG_INT, CONFIG_BOOL };

struct config_option {
	const char *name;        /* file key and --flag name (with '-' for '_') */
	enum config_type type;
	size_t offset;
	size_t size;             /* for strings */
	const char *def;
	int64_t min, max;
	const char *help;
};

extern const struct config_option config_options[];

/* Fill 'cfg' with the built-in defaults. */
void config_defaults(struct config *cfg);
/* Set option 'name' (file spelling or flag spelling) from text. */
enum err config_set(struct config *cfg, const char *name, const char *value, struct ctx *c);
/* Read "key = value" lines; '#' starts a comment.  A missing file is ERR_NOTFOUND. */
enum err config_load_file(struct config *cfg, const char *path, struct ctx *c);
/* Apply every VERANDA_<NAME> variable of the environment. */
enum err config_load_env(struct config *cfg, struct ctx *c);
/* Find an option by file or flag spelling; NULL when unknown. */
const struct config_option *config_find(const char *name);
/* Print "  --name VALUE   help (default: x)" for each option in 'names' (NULL-terminated; NULL = all). */
void config_print_help(FILE *f, const char *const *names);
/* Markdown reference (docs/configuration.md) and example file. */
void config_write_markdown(struct buf *b);
void config_write_example(struct buf *b);

#endif
