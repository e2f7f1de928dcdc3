/*
 * cli.c - `veranda client …` and `veranda keys …` (see cli.h): flag
 * parsing, then one call into auth/clients.h or auth/keys.h, and plain
 * text output.  Values are checked before anything is written.
 */
#include "auth/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/clients.h"
#include "auth/keys.h"
#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
/* One year: the longest a replaced key may stay published. */
#define RETIRE_MAX_S INT64_C(31536000)

const char auth_cli_client_usage[] =
	"veranda client add --data DIR --client-id ID --redirect-uri URI [--redirect-uri URI...]\n"
	"           (--public | --secret S | --jwks FILE | --jwks-url URL) [--scope \"...\"]\n"
	"           [--launch-url URL] [--origin ORIGIN]... [--name NAME]\n"
	"       veranda client list --data DIR\n"
	"       veranda client remove|disable|enable --data DIR --client-id ID";

const char auth_cli_client_help[] =
	"  --client-id ID               the app's client_id: letters, digits, '.', '_', '~', '-'\n"
	"                               (at most 127)\n"
	"  --redirect-uri URI           an exact redirect URI (repeat for more): https, or http on\n"
	"                               127.0.0.1, [::1] or localhost; no fragment, no wildcard.\n"
	"                               On 127.0.0.1 and [::1] any port matches (native apps).\n"
	"                               Optional for --jwks/--jwks-url apps (backend services)\n"
	"  --public                     a public app (browser or native): no client secret\n"
	"  --secret S                   a confidential app authenticating with this secret\n"
	"                               (client_secret_basic or _post; at least 16 characters;\n"
	"                               only its SHA-256 is stored)\n"
	"  --jwks FILE                  a confidential app authenticating with private_key_jwt\n"
	"                               (RS384 or ES384) under the public keys of this JWK Set\n"
	"  --jwks-url URL               the same, the JWK Set fetched from URL when needed\n"
	"                               (cached as its Cache-Control allows)\n"
	"  --scope \"...\"                the most the app may be granted (default: no limit beyond\n"
	"                               server policy)\n"
	"  --launch-url URL             where the portal launches the app (EHR launch)\n"
	"  --origin ORIGIN              a browser origin (https://host[:port]) allowed to call the\n"
	"                               token endpoint and the FHIR API (repeat for more)\n"
	"  --name NAME                  the name users see (default: the client id)\n"
	"  list prints one line per app: id, kind, status and redirect URIs (never secrets)\n";

const char auth_cli_keys_usage[] =
	"veranda keys rotate --data DIR [--retire-after SECONDS]\n"
	"       veranda keys list --data DIR";

const char auth_cli_keys_help[] =
	"  --retire-after SECONDS       how long the replaced keys stay published, so that tokens\n"
	"                               they signed still verify (default: 86400; 0 removes them\n"
	"                               at once, for a leaked key)\n"
	"  rotate makes a new RS256 and a new ES256 signing key; a running 'veranda serve' uses\n"
	"  them after it restarts.  list prints each key's kid, algorithm, creation time, status\n"
	"  (signing, published or retired) and when it leaves the published set\n";

const char *const auth_cli_client_flags[] = {"client-id", "redirect-uri", "public", "secret",
					     "jwks", "jwks-url", "scope", "launch-url",
					     "origin", "name", NULL};
const char *const auth_cli_keys_flags[] = {"retire-after", NULL};

static int usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("veranda: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'veranda %s --help')\n", cmd);
	return EXIT_USAGE;
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

/* Exit status for a failed service call: 2 for a bad value, else 1. */
static int service_fail(const struct ctx *c)
{
	fprintf(stderr, "veranda: %s\n", c->msg);
	return c->code == ERR_INVALID ? EXIT_USAGE : EXIT_RUNTIME;
}

/* ---- client ---- */

/* Read a JWK Set file into a NUL-terminated string (free()); NULL with a message. */
static char *read_jwks_file(const char *path)
{
	struct buf b = BUF_INIT(CLIENT_JWKS_TEXT_MAX);
	char chunk[4096];
	size_t n;
	FILE *fp = fopen(path, "rb");

	if (!fp) {
		fail("cannot read '%s': %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (buf_add(&b, chunk, n) != ERR_OK)
			break;
	if (ferror(fp)) {
		fail("cannot read '%s': %s", path, strerror(errno));
		fclose(fp);
		buf_release(&b);
		return NULL;
	}
	fclose(fp);
	if (b.err != ERR_OK) {
		fail("'%s' is larger than %zu bytes", path, CLIENT_JWKS_TEXT_MAX);
		buf_release(&b);
		return NULL;
	}
	if (memchr(b.data, '\0', b.len)) {
		fail("'%s' is not a JSON text", path);
		buf_release(&b);
		return NULL;
	}
	return buf_take(&b, NULL);
}

static int print_client(void *arg, const struct client *cl)
{
	(void)arg;
	printf("%-32s %-24s %-8s", cl->client_id, client_kind_smart(cl->kind),
	       cl->disabled ? "disabled" : "enabled");
	for (size_t i = 0; i < cl->nredirect; i++)
		printf(" %s", cl->redirect_uris[i]);
	if (cl->nredirect == 0)
		printf(" -");
	putchar('\n');
	return 0;
}

int auth_cli_client(struct store *s, const char *data_dir, int argc, char **argv)
{
	const char *redirects[CLIENT_REDIRECT_MAX + 1], *origins[CLIENT_ORIGIN_MAX + 1];
	const char *sub, *id = NULL, *jwks_file = NULL;
	char *secret = NULL, *jwks = NULL;
	struct client_spec sp;
	struct clients *cs = NULL;
	struct ctx c = CTX_INIT;
	int methods = 0, rc = 0;
	bool add;

	(void)data_dir;
	memset(&sp, 0, sizeof(sp));
	if (argc < 1 || !strncmp(argv[0], "--", 2))
		return usage("client", "client needs a subcommand: add, list, remove, disable or enable");
	sub = argv[0];
	if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "remove") &&
	    strcmp(sub, "disable") && strcmp(sub, "enable"))
		return usage("client", "unknown client subcommand '%s'", sub);
	add = !strcmp(sub, "add");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *val;
		char flag[32];

		if (strncmp(a, "--", 2)) {
			rc = usage("client", "unexpected argument '%s' for client %s", a, sub);
			goto out;
		}
		snprintf(flag, sizeof(flag), "%.*s", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
		if (!strcmp(flag, "--public")) {
			if (!add) {
				rc = usage("client", "unknown flag '--public' for client %s", sub);
				goto out;
			}
			if (eq) {
				rc = usage("client", "--public takes no value");
				goto out;
			}
			sp.kind = CLIENT_PUBLIC;
			methods++;
			continue;
		}
		val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!val) {
			rc = usage("client", "flag '%s' needs a value", flag);
			goto out;
		}
		if (!strcmp(flag, "--client-id") && strcmp(sub, "list")) {
			id = val;
		} else if (!add) {
			rc = usage("client", "unknown flag '%s' for client %s", flag, sub);
			goto out;
		} else if (!strcmp(flag, "--redirect-uri")) {
			if (sp.nredirect == CLIENT_REDIRECT_MAX) {
				rc = usage("client", "at most %d redirect URIs", CLIENT_REDIRECT_MAX);
				goto out;
			}
			redirects[sp.nredirect++] = val;
		} else if (!strcmp(flag, "--origin")) {
			if (sp.norigins == CLIENT_ORIGIN_MAX) {
				rc = usage("client", "at most %d origins", CLIENT_ORIGIN_MAX);
				goto out;
			}
			origins[sp.norigins++] = val;
		} else if (!strcmp(flag, "--secret")) {
			if (secret) {
				rc = usage("client", "--secret is given twice");
				goto out;
			}
			secret = xstrdup(val);
			mem_wipe((char *)val, strlen(val));   /* off the process's argument list */
			sp.kind = CLIENT_SYMMETRIC;
			methods++;
		} else if (!strcmp(flag, "--jwks")) {
			jwks_file = val;
			sp.kind = CLIENT_ASYMMETRIC;
			methods++;
		} else if (!strcmp(flag, "--jwks-url")) {
			sp.jwks_url = val;
			sp.kind = CLIENT_ASYMMETRIC;
			methods++;
		} else if (!strcmp(flag, "--scope")) {
			sp.scope = val;
		} else if (!strcmp(flag, "--launch-url")) {
			sp.launch_url = val;
		} else if (!strcmp(flag, "--name")) {
			sp.name = val;
		} else {
			rc = usage("client", "unknown flag '%s' for client %s", flag, sub);
			goto out;
		}
	}
	if (strcmp(sub, "list") && !id) {
		rc = usage("client", "client %s needs --client-id", sub);
		goto out;
	}
	if (add && methods != 1) {
		rc = usage("client", "client add needs exactly one of --public, --secret, --jwks and "
			   "--jwks-url");
		goto out;
	}
	if (add && jwks_file && !(jwks = read_jwks_file(jwks_file))) {
		rc = EXIT_RUNTIME;
		goto out;
	}

	if (clients_new(&cs, s, &c) != ERR_OK) {
		rc = fail("%s", c.msg);
		goto out;
	}
	if (add) {
		sp.client_id = id;
		sp.secret = secret;
		sp.redirect_uris = redirects;
		sp.origins = origins;
		sp.jwks_json = jwks;
		if (client_add(cs, &sp, &c) != ERR_OK) {
			rc = service_fail(&c);
			goto out;
		}
		printf("added client '%s' (%s)\n", id, client_kind_smart(sp.kind));
	} else if (!strcmp(sub, "list")) {
		printf("%-32s %-24s %-8s %s\n", "CLIENT ID", "KIND", "STATUS", "REDIRECT URIS");
		if (client_list(cs, print_client, NULL, &c) != ERR_OK) {
			rc = fail("%s", c.msg);
			goto out;
		}
	} else if (!strcmp(sub, "remove")) {
		if (client_remove(cs, id, &c) != ERR_OK) {
			rc = fail("%s", c.msg);
			goto out;
		}
		printf("removed client '%s'\n", id);
	} else {
		bool dis = !strcmp(sub, "disable");

		if (client_set_disabled(cs, id, dis, &c) != ERR_OK) {
			rc = fail("%s", c.msg);
			goto out;
		}
		printf("%s client '%s'\n", dis ? "disabled" : "enabled", id);
	}
	rc = 0;
out:
	secret_free(secret);
	free(jwks);
	clients_free(cs);
	return rc;
}

/* ---- keys ---- */

struct key_print {
	char kids[2][JOSE_THUMBPRINT_SIZE];   /* of the signing RS256 and ES256 keys */
	bool table;
};

static int print_key(void *arg, const struct key_info *ki)
{
	struct key_print *kp = arg;
	char created[32], retire[32];

	if (!kp->table) {
		if (ki->status == KEY_SIGNING)
			str_copy(kp->kids[ki->alg == JOSE_RS256 ? 0 : 1], ki->kid, JOSE_THUMBPRINT_SIZE);
		return 0;
	}
	clock_format_instant(ki->created, created);
	if (ki->retire)
		clock_format_instant(ki->retire, retire);
	else
		str_copy(retire, "-", sizeof(retire));
	printf("%-44s %-6s %-25s %-10s %s\n", ki->kid, jose_alg_name(ki->alg), created,
	       key_status_name(ki->status), retire);
	return 0;
}

int auth_cli_keys(const char *data_dir, int argc, char **argv)
{
	const char *sub;
	int64_t retire_s = KEYS_RETIRE_DEFAULT_MS / 1000;
	struct key_print kp;
	struct ctx c = CTX_INIT;

	memset(&kp, 0, sizeof(kp));
	if (argc < 1 || !strncmp(argv[0], "--", 2))
		return usage("keys", "keys needs a subcommand: rotate or list");
	sub = argv[0];
	if (strcmp(sub, "rotate") && strcmp(sub, "list"))
		return usage("keys", "unknown keys subcommand '%s'", sub);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *val;
		char flag[32];

		if (strncmp(a, "--", 2))
			return usage("keys", "unexpected argument '%s' for keys %s", a, sub);
		snprintf(flag, sizeof(flag), "%.*s", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
		val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!val)
			return usage("keys", "flag '%s' needs a value", flag);
		if (!strcmp(flag, "--retire-after") && !strcmp(sub, "rotate")) {
			if (str_to_i64(val, 0, RETIRE_MAX_S, &retire_s))
				return usage("keys", "--retire-after must be a number of seconds from 0 to "
					     "%lld, not '%s'", (long long)RETIRE_MAX_S, val);
		} else {
			return usage("keys", "unknown flag '%s' for keys %s", flag, sub);
		}
	}

	if (!strcmp(sub, "list")) {
		kp.table = true;
		printf("%-44s %-6s %-25s %-10s %s\n", "KID", "ALG", "CREATED", "STATUS", "RETIRES");
		if (keys_list(data_dir, clock_now_ms(), print_key, &kp, &c) != ERR_OK)
			return fail("%s", c.msg);
		return 0;
	}
	if (keys_rotate(data_dir, retire_s * 1000, &c) != ERR_OK ||
	    keys_list(data_dir, clock_now_ms(), print_key, &kp, &c) != ERR_OK)
		return fail("%s", c.msg);
	printf("new signing keys: RS256 %s, ES256 %s\n", kp.kids[0], kp.kids[1]);
	if (retire_s)
		printf("the keys they replace stay published for %lld s\n", (long long)retire_s);
	else
		printf("the keys they replace were removed\n");
	printf("restart 'veranda serve' to sign with the new keys\n");
	return 0;
}
