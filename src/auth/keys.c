/*
 * keys.c - the signing keys of the authorization server (see keys.h):
 * the key directory, file names as the keys' history, loading the
 * published set and building its JWKS document once, and rotation.
 *
 * Key material is read and written only through auth/jose.h; this file
 * handles names, times and permissions.
 */
#include "auth/keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"

/* The JWKS document's cap: 64 keys of RSA 8192 bits fit easily. */
#define KEYS_JWKS_MAX ((size_t)256 << 10)
/* Digits of a time in a file name (ms since epoch; 15 covers 30,000 years). */
#define TIME_DIGITS_MAX 15

static const struct key_alg {
	enum jose_alg alg;
	const char *prefix;   /* file name prefix, before '-' */
	enum jose_keygen gen;
} key_algs[] = {
	{JOSE_RS256, "rs256", JOSE_GEN_RSA2048},
	{JOSE_ES256, "es256", JOSE_GEN_P256},
};
#define NALGS (sizeof(key_algs) / sizeof(key_algs[0]))

/* One key file. */
struct entry {
	char name[96];
	size_t ai;              /* index into key_algs */
	int64_t created;
	int64_t superseded;     /* 0: a current file */
	int64_t retire;         /* 0: a current file */
	struct jose_key *key;   /* NULL unless loaded */
	enum key_status status;
};

struct keys {
	struct jose_key *signing[NALGS];
	struct jose_key **published;   /* signing keys first; one reference each */
	size_t npublished;
	struct buf jwks;
};

const char *key_status_name(enum key_status s)
{
	switch (s) {
	case KEY_SIGNING:
		return "signing";
	case KEY_PUBLISHED:
		return "published";
	case KEY_RETIRED:
		return "retired";
	}
	return "unknown";
}

/* ---- the directory ---- */

/*
 * Check data_dir and DATA/keys (creating it with 'create') and put the
 * key directory's path in dir[PATH_MAX].
 */
static enum err key_dir(const char *data_dir, bool create, char dir[PATH_MAX], struct ctx *c)
{
	struct stat st;

	if (!data_dir || !*data_dir)
		return ctx_errorf(c, ERR_INVALID, "no data directory given");
	if (snprintf(dir, PATH_MAX, "%s/keys", data_dir) >= PATH_MAX)
		return ctx_errorf(c, ERR_INVALID, "data directory path too long");
	if (stat(data_dir, &st) != 0)
		return ctx_errorf(c, errno == ENOENT ? ERR_NOTFOUND : ERR_IO,
				  "cannot use data directory '%s': %s", data_dir, strerror(errno));
	if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
		return ctx_errorf(c, ERR_IO, "cannot create '%s': %s", dir, strerror(errno));
	if (lstat(dir, &st) != 0) {
		if (errno == ENOENT)
			return ctx_errorf(c, ERR_NOTFOUND,
					  "no signing keys in '%s'; run 'veranda init --data %s'",
					  data_dir, data_dir);
		return ctx_errorf(c, ERR_IO, "cannot use '%s': %s", dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return ctx_errorf(c, ERR_FORBIDDEN, "'%s' is not a directory", dir);
	if (st.st_mode & 077)
		return ctx_errorf(c, ERR_FORBIDDEN,
				  "'%s' may be read by group or others; run 'chmod 700 %s'", dir, dir);
	return ERR_OK;
}

static enum err sync_dir(const char *dir, struct ctx *c)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return ctx_errorf(c, ERR_IO, "cannot sync '%s': %s", dir, strerror(e));
	}
	close(fd);
	return ERR_OK;
}

/* Parse a run of digits at *p into *out and advance; false when there is none. */
static bool parse_time(const char **p, int64_t *out)
{
	char digits[TIME_DIGITS_MAX + 1];
	size_t n = 0;

	while ((*p)[n] >= '0' && (*p)[n] <= '9') {
		if (n == TIME_DIGITS_MAX)
			return false;
		digits[n] = (*p)[n];
		n++;
	}
	if (n == 0)
		return false;
	digits[n] = '\0';
	if (str_to_i64(digits, 0, INT64_MAX, out))
		return false;
	*p += n;
	return true;
}

/* Fill 'e' from a key file name; false for any other file. */
static bool parse_name(const char *name, struct entry *e)
{
	const char *p;

	memset(e, 0, sizeof(*e));
	if (str_copy(e->name, name, sizeof(e->name)) >= sizeof(e->name))
		return false;
	for (e->ai = 0; e->ai < NALGS; e->ai++)
		if (str_starts(name, key_algs[e->ai].prefix) &&
		    name[strlen(key_algs[e->ai].prefix)] == '-')
			break;
	if (e->ai == NALGS)
		return false;
	p = name + strlen(key_algs[e->ai].prefix) + 1;
	if (!parse_time(&p, &e->created))
		return false;
	if (*p == '-') {
		p++;
		if (!parse_time(&p, &e->superseded) || *p++ != '-' || !parse_time(&p, &e->retire) ||
		    e->superseded == 0)
			return false;
	}
	return !strcmp(p, ".pem");
}

static void entries_free(struct entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jose_key_free(v[i].key);
	free(v);
}

/* Algorithm order, then newest first. */
static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->ai != y->ai)
		return x->ai < y->ai ? -1 : 1;
	if (x->created != y->created)
		return x->created > y->created ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * Set each entry's status at 'now': per algorithm the newest current file
 * signs; older current files (a rotation interrupted before it renamed
 * them) stay published; replaced keys are published until their retire
 * time.  Entries must be sorted.
 */
static void entries_status(struct entry *v, size_t n, int64_t now)
{
	bool have[NALGS] = {false};

	for (size_t i = 0; i < n; i++) {
		if (!v[i].superseded && !have[v[i].ai]) {
			v[i].status = KEY_SIGNING;
			have[v[i].ai] = true;
		} else if (!v[i].superseded || v[i].retire > now) {
			v[i].status = KEY_PUBLISHED;
		} else {
			v[i].status = KEY_RETIRED;
		}
	}
}

/*
 * Read the key directory 'dir' into *out (sorted), loading each key with
 * 'load'.  The caller frees with entries_free().
 */
static enum err entries_scan(const char *dir, bool load, struct entry **out, size_t *n,
			     struct ctx *c)
{
	struct entry *v = xcalloc(KEYS_FILES_MAX, sizeof(*v));
	size_t count = 0;
	struct dirent *de;
	DIR *d = opendir(dir);
	enum err rc = ERR_OK;

	*out = NULL;
	*n = 0;
	if (!d) {
		free(v);
		return ctx_errorf(c, ERR_IO, "cannot read '%s': %s", dir, strerror(errno));
	}
	while ((de = readdir(d))) {
		struct entry e;

		if (!parse_name(de->d_name, &e))
			continue;
		if (count == KEYS_FILES_MAX) {
			rc = ctx_errorf(c, ERR_INVALID, "'%s' holds more than %d key files", dir,
					KEYS_FILES_MAX);
			goto out;
		}
		v[count++] = e;
	}
	qsort(v, count, sizeof(*v), entry_cmp);
	for (size_t i = 0; load && i < count; i++) {
		char path[PATH_MAX];

		if (snprintf(path, sizeof(path), "%s/%s", dir, v[i].name) >= (int)sizeof(path)) {
			rc = ctx_errorf(c, ERR_INVALID, "key file path too long");
			goto out;
		}
		if ((rc = jose_key_load(path, &v[i].key, c)) != ERR_OK)
			goto out;
		if (jose_key_alg(v[i].key) != key_algs[v[i].ai].alg) {
			rc = ctx_errorf(c, ERR_INVALID, "'%s' does not hold an %s key", path,
					jose_alg_name(key_algs[v[i].ai].alg));
			goto out;
		}
	}
out:
	closedir(d);
	if (rc != ERR_OK) {
		entries_free(v, count);
		return rc;
	}
	*out = v;
	*n = count;
	return ERR_OK;
}

/* Generate a key of key_algs[ai] and save it as current, created at or after 'now'. */
static enum err key_new(const char *dir, size_t ai, int64_t now, const struct entry *v, size_t n,
			struct ctx *c)
{
	struct jose_key *k = NULL;
	char path[PATH_MAX];
	int64_t created = now;
	enum err rc;

	/* the new key must be the newest of its algorithm, whatever the clock says */
	for (size_t i = 0; i < n; i++)
		if (v[i].ai == ai && v[i].created >= created)
			created = v[i].created + 1;
	if ((rc = jose_key_generate(key_algs[ai].gen, &k, c)) != ERR_OK)
		return rc;
	for (int tries = 0; tries < 8; tries++, created++) {
		struct ctx sc = CTX_INIT;

		if (snprintf(path, sizeof(path), "%s/%s-%lld.pem", dir, key_algs[ai].prefix,
			     (long long)created) >= (int)sizeof(path)) {
			rc = ctx_errorf(c, ERR_INVALID, "key directory path too long");
			break;
		}
		rc = jose_key_save(k, path, &sc);
		if (rc != ERR_CONFLICT) {
			if (rc != ERR_OK)
				ctx_errorf(c, rc, "%s", sc.msg);
			break;
		}
	}
	if (rc == ERR_CONFLICT)
		ctx_errorf(c, rc, "cannot find a free key file name in '%s'", dir);
	jose_key_free(k);
	return rc;
}

/* ---- public functions ---- */

enum err keys_init(const char *data_dir, struct ctx *c)
{
	char dir[PATH_MAX];
	struct entry *v = NULL;
	size_t n = 0;
	bool made = false;
	enum err rc;

	if ((rc = key_dir(data_dir, true, dir, c)) != ERR_OK ||
	    (rc = entries_scan(dir, false, &v, &n, c)) != ERR_OK)
		return rc;
	for (size_t ai = 0; ai < NALGS; ai++) {
		bool have = false;

		for (size_t i = 0; i < n; i++)
			if (v[i].ai == ai && !v[i].superseded)
				have = true;
		if (have)
			continue;
		if ((rc = key_new(dir, ai, clock_now_ms(), v, n, c)) != ERR_OK)
			goto out;
		made = true;
	}
	if (made)
		rc = sync_dir(dir, c);
out:
	entries_free(v, n);
	return rc;
}

void keys_free(struct keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->npublished; i++)
		jose_key_free(k->published[i]);
	free(k->published);
	buf_release(&k->jwks);
	free(k);
}

enum err keys_load(const char *data_dir, struct keys **out, struct ctx *c)
{
	char dir[PATH_MAX];
	struct entry *v = NULL;
	struct keys *k = NULL;
	struct jose_jwks *set = NULL;
	json_t *doc = NULL;
	size_t n = 0;
	enum err rc;

	*out = NULL;
	if ((rc = key_dir(data_dir, false, dir, c)) != ERR_OK ||
	    (rc = entries_scan(dir, true, &v, &n, c)) != ERR_OK)
		return rc;
	entries_status(v, n, clock_now_ms());
	k = xcalloc(1, sizeof(*k));
	buf_init(&k->jwks, KEYS_JWKS_MAX);
	k->published = xcalloc(n ? n : 1, sizeof(*k->published));
	for (size_t ai = 0; ai < NALGS; ai++) {
		for (size_t i = 0; i < n; i++)
			if (v[i].ai == ai && v[i].status == KEY_SIGNING)
				k->signing[ai] = v[i].key;
		if (!k->signing[ai]) {
			rc = ctx_errorf(c, ERR_NOTFOUND,
					"no current %s key in '%s'; run 'veranda init --data %s'",
					jose_alg_name(key_algs[ai].alg), dir, data_dir);
			goto out;
		}
		k->published[k->npublished++] = jose_key_ref(k->signing[ai]);
	}
	for (size_t i = 0; i < n; i++)
		if (v[i].status == KEY_PUBLISHED)
			k->published[k->npublished++] = jose_key_ref(v[i].key);

	set = jose_jwks_new();
	for (size_t i = 0; i < k->npublished; i++)
		if ((rc = jose_jwks_add(set, jose_key_ref(k->published[i]), c)) != ERR_OK)
			goto out;
	if ((rc = jose_jwks_to_json(set, &doc, c)) != ERR_OK)
		goto out;
	if (json_dump_buf(doc, &k->jwks) != ERR_OK) {
		rc = ctx_errorf(c, ERR_TOOBIG, "the JWK Set is larger than %zu bytes", KEYS_JWKS_MAX);
		goto out;
	}
	*out = k;
	k = NULL;
out:
	json_decref(doc);
	jose_jwks_free(set);
	keys_free(k);
	entries_free(v, n);
	return rc;
}

const struct jose_key *keys_signing(const struct keys *k, enum jose_alg alg)
{
	for (size_t ai = 0; k && ai < NALGS; ai++)
		if (key_algs[ai].alg == alg)
			return k->signing[ai];
	return NULL;
}

const struct buf *keys_jwks(const struct keys *k)
{
	return &k->jwks;
}

enum err keys_rotate(const char *data_dir, int64_t retire_ms, struct ctx *c)
{
	char dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	struct entry *v = NULL;
	size_t n = 0;
	int64_t now = clock_now_ms();
	enum err rc;

	if (retire_ms < 0 || retire_ms > INT64_MAX / 4)
		return ctx_errorf(c, ERR_INVALID, "the retire time must be zero or more");
	if ((rc = key_dir(data_dir, true, dir, c)) != ERR_OK ||
	    (rc = entries_scan(dir, false, &v, &n, c)) != ERR_OK)
		return rc;
	/* 1. the new keys, so that a crash from here on leaves signing keys */
	for (size_t ai = 0; ai < NALGS; ai++)
		if ((rc = key_new(dir, ai, now, v, n, c)) != ERR_OK)
			goto out;
	if ((rc = sync_dir(dir, c)) != ERR_OK)
		goto out;
	/* 2. the keys they replace get their supersession and retire times */
	for (size_t i = 0; i < n; i++) {
		if (v[i].superseded)
			continue;
		v[i].superseded = now;
		v[i].retire = now + retire_ms;
		snprintf(from, sizeof(from), "%s/%s", dir, v[i].name);
		if (snprintf(to, sizeof(to), "%s/%s-%lld-%lld-%lld.pem", dir,
			     key_algs[v[i].ai].prefix, (long long)v[i].created,
			     (long long)v[i].superseded,
			     (long long)v[i].retire) >= (int)sizeof(to)) {
			rc = ctx_errorf(c, ERR_INVALID, "key directory path too long");
			goto out;
		}
		if (rename(from, to) != 0) {
			rc = ctx_errorf(c, ERR_IO, "cannot rename '%s': %s", from, strerror(errno));
			goto out;
		}
		snprintf(v[i].name, sizeof(v[i].name), "%s", strrchr(to, '/') + 1);
	}
	/*
	 * 3. keys past their retire time go, at the time each was given; an
	 * emergency rotation ('retire_ms' 0, for a leaked key) drops every
	 * replaced key, also those an earlier rotation left published
	 */
	for (size_t i = 0; i < n; i++) {
		if (retire_ms > 0 && v[i].retire > now)
			continue;
		snprintf(from, sizeof(from), "%s/%s", dir, v[i].name);
		if (unlink(from) != 0 && errno != ENOENT) {
			rc = ctx_errorf(c, ERR_IO, "cannot delete '%s': %s", from, strerror(errno));
			goto out;
		}
	}
	rc = sync_dir(dir, c);
out:
	entries_free(v, n);
	return rc;
}

enum err keys_list(const char *data_dir, int64_t now_ms, key_fn fn, void *arg, struct ctx *c)
{
	char dir[PATH_MAX];
	struct entry *v = NULL;
	size_t n = 0;
	enum err rc;

	if ((rc = key_dir(data_dir, false, dir, c)) != ERR_OK ||
	    (rc = entries_scan(dir, true, &v, &n, c)) != ERR_OK)
		return rc;
	entries_status(v, n, now_ms);
	for (size_t i = 0; i < n; i++) {
		struct key_info ki;

		memset(&ki, 0, sizeof(ki));
		str_copy(ki.kid, jose_key_kid(v[i].key), sizeof(ki.kid));
		ki.alg = key_algs[v[i].ai].alg;
		ki.created = v[i].created;
		ki.superseded = v[i].superseded;
		ki.retire = v[i].retire;
		ki.status = v[i].status;
		if (fn(arg, &ki))
			break;
	}
	entries_free(v, n);
	return ERR_OK;
}
