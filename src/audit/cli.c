/*
 * cli.c - `veranda audit …`, on the public API of audit.h only.  See
 * cli.h for the contract with main.c.
 */
#include "audit/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "auth/jose.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/str.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

const char audit_cli_usage[] =
	"veranda audit verify|query|export|proof|consistency|checkpoints|check-receipt [FLAGS]";

const char audit_cli_help[] =
	"subcommands:\n"
	"  verify [--checkpoint FILE] [--jwks FILE]\n"
	"      recompute every record's hash, every tree root and checkpoint signature;\n"
	"      exit 0 when the log verifies, 1 naming the first record that does not.\n"
	"      --checkpoint: also check that the log still extends a checkpoint saved\n"
	"      earlier (a compact JWS, e.g. from a receipt or /audit/checkpoints)\n"
	"  query [FILTERS] [--format ndjson|fhir|text] [--limit N] [--newest-first]\n"
	"      matching records, one per line (ndjson: the canonical record; fhir: its\n"
	"      AuditEvent; text: one readable line)\n"
	"  export [FILTERS]\n"
	"      NDJSON with proofs on stdout: a checkpoint line per stream, then each\n"
	"      record with its inclusion proof against that checkpoint\n"
	"  proof --seq N [--node NODE]\n"
	"      a receipt for record N: the record, its inclusion proof and the signed\n"
	"      checkpoint, checkable offline with check-receipt\n"
	"  consistency --from N --to M [--node NODE]\n"
	"      the consistency proof between the signed checkpoints of N and M records\n"
	"  checkpoints [--node NODE] [--all]\n"
	"      the latest signed checkpoint of each stream (--all: every one)\n"
	"  check-receipt FILE [--jwks FILE]\n"
	"      check a receipt offline against the server's public key(s)\n"
	"filters:\n"
	"  --patient ID  --agent USER  --client ID  --type TYPE|CATEGORY\n"
	"  --outcome 0|4|8|12  --request-id ID  --trace-id ID  --node NODE\n"
	"  --since TIME  --until TIME   (2026-11-28, 2026-11-28T10:00:00Z, ...+01:00)\n"
	"  (request and trace ids are not indexed: give a time range with them)\n";

const char *const audit_cli_flags[] = {
	"checkpoint", "jwks",	    "format",	  "limit",   "newest-first", "seq",
	"node",	      "from",	    "to",	  "all",     "patient",	     "agent",
	"client",     "type",	    "outcome",	  "request-id", "trace-id",  "since",
	"until",      NULL,
};

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	va_list ap;

	fputs("veranda: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	return EXIT_USAGE;
}

static int failed(const struct ctx *c)
{
	fprintf(stderr, "veranda: %s\n", c->msg[0] ? c->msg : err_str(c->code));
	return EXIT_FAIL;
}

struct args {
	const char *checkpoint, *jwks, *format, *node, *file;
	bool newest_first, all;
	int64_t limit, seq, from, to;
	struct audit_filter f;
};

static int days_in_month(int y, int mo)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return mo == 2 && leap ? 29 : days[mo - 1];
}

/*
 * A time as ms since the epoch: YYYY-MM-DD (midnight UTC), or
 * YYYY-MM-DDThh:mm[:ss[.fff]] followed by Z or +hh:mm / -hh:mm.
 */
static bool parse_time(const char *s, int64_t *ms)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, used = 0, oh = 0, om = 0;
	int64_t frac = 0;
	struct tm tm = {0};
	const char *p;
	char sign;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
		return false;
	p = s + 10;
	if (*p) {
		if (*p++ != 'T' || sscanf(p, "%2d:%2d%n", &h, &mi, &used) != 2 || used != 5)
			return false;
		p += 5;
		if (*p == ':') {
			if (sscanf(p + 1, "%2d%n", &sec, &used) != 1 || used != 2)
				return false;
			p += 3;
			if (*p == '.') {
				int digits = 0;
				for (p++; *p >= '0' && *p <= '9'; p++, digits++)
					if (digits < 3)
						frac = frac * 10 + (*p - '0');
				if (!digits)
					return false;
				for (; digits < 3; digits++)
					frac *= 10;
			}
		}
		if (*p == 'Z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p;
			if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &used) != 2 || used != 5 || oh > 23 ||
			    om > 59)
				return false;
			p += 6;
			if (sign == '-') {
				oh = -oh;
				om = -om;
			}
		} else {
			return false;
		}
		if (*p)
			return false;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    sec > 59 || y < 1970)
		return false; /* timegm() would move 2026-02-30 to March: refuse it */
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*ms = ((int64_t)timegm(&tm) - oh * 3600 - om * 60) * 1000 + frac;
	return true;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	struct audit_filter init = AUDIT_FILTER_INIT;

	memset(a, 0, sizeof(*a));
	a->f = init;
	a->seq = a->from = a->to = -1;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq, *val;
		char flag[32];

		if (strncmp(arg, "--", 2) != 0) {
			if (a->file)
				return usage("unexpected argument '%s'", arg);
			a->file = arg;
			continue;
		}
		eq = strchr(arg, '=');
		snprintf(flag, sizeof(flag), "%.*s", (int)(eq ? (size_t)(eq - arg) : strlen(arg)), arg);
		if (!strcmp(flag, "--newest-first") || !strcmp(flag, "--all")) {
			if (eq)
				return usage("%s takes no value", flag);
			if (flag[2] == 'n')
				a->newest_first = true;
			else
				a->all = true;
			continue;
		}
		val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!val)
			return usage("flag '%s' needs a value", flag);
		if (!strcmp(flag, "--checkpoint"))
			a->checkpoint = val;
		else if (!strcmp(flag, "--jwks"))
			a->jwks = val;
		else if (!strcmp(flag, "--format"))
			a->format = val;
		else if (!strcmp(flag, "--node"))
			a->node = a->f.node = val;
		else if (!strcmp(flag, "--limit") || !strcmp(flag, "--seq") || !strcmp(flag, "--from") ||
			 !strcmp(flag, "--to")) {
			int64_t v;
			if (str_to_i64(val, flag[2] == 'l' ? 1 : 0, INT64_MAX / 2, &v))
				return usage("%s must be a %s integer, not '%s'", flag,
					     flag[2] == 'l' ? "positive" : "non-negative", val);
			if (flag[2] == 'l')
				a->limit = v;
			else if (flag[2] == 's')
				a->seq = v;
			else if (flag[2] == 'f')
				a->from = v;
			else
				a->to = v;
		} else if (!strcmp(flag, "--patient"))
			a->f.patient = val;
		else if (!strcmp(flag, "--agent"))
			a->f.agent = val;
		else if (!strcmp(flag, "--client"))
			a->f.client = val;
		else if (!strcmp(flag, "--type"))
			a->f.type = val;
		else if (!strcmp(flag, "--request-id"))
			a->f.request_id = val;
		else if (!strcmp(flag, "--trace-id"))
			a->f.trace_id = val;
		else if (!strcmp(flag, "--outcome")) {
			int64_t v;
			if (str_to_i64(val, 0, 12, &v) || v % 4)
				return usage("--outcome must be 0, 4, 8 or 12, not '%s'", val);
			a->f.outcome = (int)v;
		} else if (!strcmp(flag, "--since") || !strcmp(flag, "--until")) {
			int64_t ms;
			if (!parse_time(val, &ms))
				return usage("%s must be a date or time such as 2026-11-28 or"
					     " 2026-11-28T10:00:00Z, not '%s'",
					     flag, val);
			if (flag[2] == 's')
				a->f.since_ms = ms ? ms : 1;
			else
				a->f.until_ms = ms ? ms : 1;
		} else
			return usage("unknown flag '%s' for audit %s", flag, argv[0]);
	}
	return 0;
}

/* Which flags each subcommand takes. */
static int check_allowed(const struct args *a, const char *sub)
{
	bool filters = a->f.patient || a->f.agent || a->f.client || a->f.type || a->f.outcome >= 0 ||
		       a->f.request_id || a->f.trace_id || a->f.since_ms || a->f.until_ms;
	bool is_query = !strcmp(sub, "query"), is_export = !strcmp(sub, "export");

	if (filters && !is_query && !is_export)
		return usage("audit %s takes no filters", sub);
	if ((a->format || a->limit || a->newest_first) && !is_query)
		return usage("--format, --limit and --newest-first are for audit query");
	if (a->checkpoint && strcmp(sub, "verify"))
		return usage("--checkpoint is for audit verify");
	if (a->jwks && strcmp(sub, "verify") && strcmp(sub, "check-receipt"))
		return usage("--jwks is for audit verify and check-receipt");
	if (a->seq >= 0 && strcmp(sub, "proof"))
		return usage("--seq is for audit proof");
	if ((a->from >= 0 || a->to >= 0) && strcmp(sub, "consistency"))
		return usage("--from and --to are for audit consistency");
	if (a->all && strcmp(sub, "checkpoints"))
		return usage("--all is for audit checkpoints");
	if (a->file && strcmp(sub, "check-receipt"))
		return usage("unexpected argument '%s' for audit %s", a->file, sub);
	if (a->node && !is_query && !is_export && strcmp(sub, "proof") &&
	    strcmp(sub, "consistency") && strcmp(sub, "checkpoints"))
		return usage("--node is not for audit %s", sub);
	return 0;
}

/* Read a whole small file into 'out' (at most max bytes). */
static enum err read_file(const char *path, size_t max, struct buf *out, struct ctx *c)
{
	char chunk[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	enum err e = ERR_OK;

	if (fd < 0)
		return ctx_errorf(c, ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = ctx_errorf(c, ERR_IO, "cannot read '%s': %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > max) {
			e = ctx_errorf(c, ERR_TOOBIG, "'%s' is larger than %zu bytes", path, max);
			break;
		}
		buf_add(out, chunk, (size_t)n);
	}
	close(fd);
	return e;
}

/* The keys to check signatures with: --jwks FILE, else the server's JWK Set, else NULL. */
static enum err load_keys(const char *jwks, const struct buf *server_jwks, struct jose_jwks **out,
			  struct ctx *c)
{
	struct buf b = BUF_INIT(256 * 1024);
	enum err e = ERR_OK;

	*out = NULL;
	if (jwks) {
		if (!(e = read_file(jwks, 256 * 1024, &b, c))) {
			/* a JWK Set, or a single JWK */
			json_t *doc = json_parse_bounded(b.data, b.len, 16, c);
			if (!doc)
				e = ERR_INVALID;
			else if (json_object_get(doc, "keys"))
				e = jose_jwks_from_json(doc, JOSE_JWK_PUBLIC_ONLY, out, c);
			else {
				struct jose_key *k = NULL;
				if (!(e = jose_key_from_jwk(doc, JOSE_JWK_PUBLIC_ONLY, &k, c))) {
					*out = jose_jwks_new();
					e = jose_jwks_add(*out, k, c);
				}
			}
			json_decref(doc);
		}
	} else if (server_jwks) {
		e = jose_jwks_parse(server_jwks->data, server_jwks->len, JOSE_JWK_PUBLIC_ONLY, out, c);
	}
	if (e) {
		jose_jwks_free(*out);
		*out = NULL;
	}
	buf_release(&b);
	return e;
}

static void print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
	}
	free(s);
}

static int cmd_verify(const char *dir, const struct buf *server_jwks, const struct args *a)
{
	struct audit_verify_report r;
	struct jose_jwks *keys = NULL;
	struct ctx c = CTX_INIT;
	struct buf ck = BUF_INIT(64 * 1024);
	enum err e;
	int rc = 0;

	if ((e = load_keys(a->jwks, server_jwks, &keys, &c)))
		return failed(&c);
	e = audit_verify(dir, keys, &r, &c);
	if (e && e != ERR_INVALID) {
		rc = failed(&c);
		goto out;
	}
	if (!r.ok) {
		printf("audit log does NOT verify\n");
		printf("stream: %s\n", r.node);
		if (r.first_bad >= 0) {
			if (r.bad_end == r.first_bad + 1)
				printf("first bad record: %lld\n", (long long)r.first_bad);
			else
				printf("first bad record: one of %lld to %lld\n",
				       (long long)r.first_bad, (long long)r.bad_end - 1);
		}
		printf("reason: %s\n", r.reason);
		rc = EXIT_FAIL;
		goto out;
	}
	if (a->checkpoint) {
		struct ctx c2 = CTX_INIT;
		size_t n;
		if ((e = read_file(a->checkpoint, 64 * 1024, &ck, &c2))) {
			rc = failed(&c2);
			goto out;
		}
		n = ck.len;
		while (n && (ck.data[n - 1] == '\n' || ck.data[n - 1] == '\r' || ck.data[n - 1] == ' '))
			ck.data[--n] = '\0';
		if ((e = audit_verify_extends(dir, keys, ck.data, &c2))) {
			printf("audit log does NOT verify\nreason: %s\n", c2.msg);
			rc = EXIT_FAIL;
			goto out;
		}
	}
	printf("audit log verified: %llu stream%s, %llu records (%llu pruned), %llu signed"
	       " checkpoints\n",
	       (unsigned long long)r.streams, r.streams == 1 ? "" : "s",
	       (unsigned long long)r.records, (unsigned long long)r.pruned,
	       (unsigned long long)r.checkpoints);
	if (a->checkpoint)
		printf("it extends the checkpoint in '%s'\n", a->checkpoint);
	if (r.unsigned_tail)
		printf("note: the last %llu records are not yet covered by a signed checkpoint"
		       " (a running server signs them within seconds; a stopped one at its next"
		       " start)\n",
		       (unsigned long long)r.unsigned_tail);
	if (r.keys_from_log)
		printf("note: checked with the public keys recorded in the log itself; this proves"
		       " the log is consistent, not who signed it: pass the server's keys (--jwks)\n");
out:
	buf_release(&ck);
	jose_jwks_free(keys);
	return rc;
}

struct qout {
	const char *format;
	struct buf line;
};

static enum err print_row(void *arg, const char *node, uint64_t seq, int64_t time_ms,
			  const char *record, size_t len)
{
	struct qout *q = arg;
	struct ctx c = CTX_INIT;

	(void)time_ms;
	if (!q->format || !strcmp(q->format, "ndjson")) {
		fwrite(record, 1, len, stdout);
		fputc('\n', stdout);
	} else if (!strcmp(q->format, "fhir")) {
		json_t *ae = NULL;
		char *s;
		if (audit_event_to_fhir(record, len, NULL, &ae, &c)) {
			fprintf(stderr, "veranda: record %llu of '%s': %s\n", (unsigned long long)seq,
				node, c.msg);
			return ERR_OK;
		}
		s = json_dumps(ae, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
		json_decref(ae);
	} else {
		json_t *r = json_loadb(record, len, 0, NULL);
		const json_t *agent = json_object_get(r, "agent");
		const json_t *en = json_array_get(json_object_get(r, "entity"), 0);
		const char *who = json_get_str(agent, "username");
		const char *what = json_get_str(en, "query");
		char ent[600];

		if (!who)
			who = json_get_str(agent, "user");
		if (!what && json_get_str(en, "id"))
			snprintf(ent, sizeof(ent), "%s/%s", json_get_str(en, "type") ? json_get_str(en, "type") : "",
				 json_get_str(en, "id"));
		else
			snprintf(ent, sizeof(ent), "%s", what ? what : json_get_str(en, "type") ? json_get_str(en, "type") : "-");
		printf("%s %s:%llu %-24s %2lld %-16s %-10s patient=%s %s\n",
		       json_get_str(r, "time") ? json_get_str(r, "time") : "?", node,
		       (unsigned long long)seq, json_get_str(r, "type") ? json_get_str(r, "type") : "?",
		       (long long)json_integer_value(json_object_get(r, "outcome")), who ? who : "-",
		       json_get_str(agent, "client") ? json_get_str(agent, "client") : "-",
		       json_get_str(r, "patient") ? json_get_str(r, "patient") : "-", ent);
		json_decref(r);
	}
	return ferror(stdout) ? ERR_IO : ERR_OK;
}

static int cmd_query(const char *dir, struct args *a, bool export)
{
	struct audit_reader *r = NULL;
	struct ctx c = CTX_INIT;
	struct qout q = {a->format, BUF_INIT(1 << 20)};
	uint64_t n = 0;
	enum err e;

	if (a->format && strcmp(a->format, "ndjson") && strcmp(a->format, "fhir") &&
	    strcmp(a->format, "text"))
		return usage("--format must be ndjson, fhir or text, not '%s'", a->format);
	a->f.limit = (size_t)a->limit;
	a->f.newest_first = a->newest_first;
	if ((e = audit_reader_open(dir, &r, &c)))
		return failed(&c);
	if (export) {
		fflush(stdout);
		e = audit_export(r, &a->f, STDOUT_FILENO, &n, &c);
	} else {
		e = audit_query(r, &a->f, print_row, &q, &c);
	}
	audit_reader_free(r);
	buf_release(&q.line);
	fflush(stdout);
	if (e == ERR_INVALID)
		return usage("%s", c.msg);
	if (e)
		return failed(&c);
	if (export)
		fprintf(stderr, "veranda: exported %llu records\n", (unsigned long long)n);
	return 0;
}

static int cmd_proof(const char *dir, const struct args *a, const char *sub)
{
	struct audit_reader *r = NULL;
	struct ctx c = CTX_INIT;
	json_t *out = NULL;
	enum err e;

	if (!strcmp(sub, "proof") && a->seq < 0)
		return usage("audit proof needs --seq N");
	if (!strcmp(sub, "consistency") && (a->from < 1 || a->to < 1))
		return usage("audit consistency needs --from N and --to M (sizes of signed checkpoints)");
	if (!strcmp(sub, "consistency") && a->from > a->to)
		return usage("audit consistency needs --from N no larger than --to M");
	if ((e = audit_reader_open(dir, &r, &c)))
		return failed(&c);
	if (!strcmp(sub, "proof"))
		e = audit_receipt(r, a->node, (uint64_t)a->seq, &out, &c);
	else if (!strcmp(sub, "consistency"))
		e = audit_consistency_proof(r, a->node, (uint64_t)a->from, (uint64_t)a->to, &out, &c);
	else
		e = audit_checkpoints(r, a->node, a->all, 0, &out, &c);
	audit_reader_free(r);
	if (e)
		return failed(&c);
	print_json(out);
	json_decref(out);
	return 0;
}

static int cmd_check_receipt(const struct buf *server_jwks, const struct args *a)
{
	struct buf b = BUF_INIT(AUDIT_RECEIPT_MAX + 1);
	struct jose_jwks *keys = NULL;
	struct ctx c = CTX_INIT;
	json_t *rec = NULL;
	bool embedded = false;
	char thumb[JOSE_THUMBPRINT_SIZE] = "";
	enum err e;
	int rc = 0;

	if (!a->file)
		return usage("audit check-receipt needs a receipt file");
	if ((e = read_file(a->file, AUDIT_RECEIPT_MAX, &b, &c)) ||
	    (e = load_keys(a->jwks, server_jwks, &keys, &c))) {
		rc = failed(&c);
		goto out;
	}
	if (!keys) {
		/* no key given: the one inside the receipt, and say which */
		json_t *doc = json_loadb(b.data, b.len, 0, NULL);
		struct jose_key *k = NULL;
		const json_t *jwk = json_object_get(doc, "jwk");
		if (!jwk || jose_key_from_jwk(jwk, JOSE_JWK_PUBLIC_ONLY, &k, &c) ||
		    jose_key_thumbprint(k, thumb, &c)) {
			json_decref(doc);
			jose_key_free(k);
			fprintf(stderr, "veranda: no key to check the receipt with: give --jwks FILE"
					" (the server's published keys)\n");
			rc = EXIT_USAGE;
			goto out;
		}
		json_decref(doc);
		keys = jose_jwks_new();
		jose_jwks_add(keys, k, &c);
		embedded = true;
	}
	if ((e = audit_receipt_verify(b.data, b.len, keys, &rec, &c))) {
		printf("receipt does NOT check: %s\n", c.msg);
		rc = EXIT_FAIL;
		goto out;
	}
	printf("receipt checks: record %lld of stream '%s' (%s, %s) is in the signed log\n",
	       (long long)json_integer_value(json_object_get(rec, "seq")),
	       json_get_str(rec, "node"), json_get_str(rec, "type"), json_get_str(rec, "time"));
	if (embedded)
		printf("note: checked with the key inside the receipt (thumbprint %s); compare it"
		       " with the server's published keys, or pass them with --jwks\n",
		       thumb);
out:
	json_decref(rec);
	jose_jwks_free(keys);
	buf_release(&b);
	return rc;
}

int audit_cli(const char *data_dir, const struct buf *server_jwks, int argc, char **argv)
{
	struct args a;
	const char *sub;
	int rc;

	if (argc < 1 || !strncmp(argv[0], "--", 2))
		return usage("audit needs a subcommand: verify, query, export, proof, consistency,"
			     " checkpoints or check-receipt");
	sub = argv[0];
	if (strcmp(sub, "verify") && strcmp(sub, "query") && strcmp(sub, "export") &&
	    strcmp(sub, "proof") && strcmp(sub, "consistency") && strcmp(sub, "checkpoints") &&
	    strcmp(sub, "check-receipt"))
		return usage("unknown audit subcommand '%s'", sub);
	if ((rc = parse_args(argc, argv, &a)) || (rc = check_allowed(&a, sub)))
		return rc;
	if (!strcmp(sub, "check-receipt"))
		return cmd_check_receipt(server_jwks, &a);
	if (!data_dir || !*data_dir)
		return usage("audit %s needs --data DIR", sub);
	if (!strcmp(sub, "verify"))
		return cmd_verify(data_dir, server_jwks, &a);
	if (!strcmp(sub, "query") || !strcmp(sub, "export"))
		return cmd_query(data_dir, &a, !strcmp(sub, "export"));
	return cmd_proof(data_dir, &a, sub);
}
