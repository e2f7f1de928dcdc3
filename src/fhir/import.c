/*
 * import.c - `veranda import`: FHIR NDJSON files and Bundles into the store.
 *
 * Resources are written in batch transactions committed every 'batch'
 * resources, so a kill -9 loses at most the uncommitted batch and never
 * leaves half a resource.  A rejected resource writes nothing (validation
 * and indexing happen before the store is touched, and store_put checks
 * everything before it writes), so no savepoint per resource is needed; a
 * store failure in the middle of a put is fatal for the import.  Lines are read with
 * getline(), bounded by the resource size limit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/json.h"
#include "core/mem.h"
#include "fhir/fhir.h"
#include "fhir/fhir_int.h"

static void count_type(struct fhir_import_stats *st, const char *type)
{
	int64_t i;

	for (i = 0; i < st->per_type_n; i++)
		if (!strcmp(st->per_type[i].type, type)) {
			st->per_type[i].n++;
			return;
		}
	if (st->per_type_n < (int64_t)(sizeof(st->per_type) / sizeof(st->per_type[0]))) {
		snprintf(st->per_type[i].type, sizeof(st->per_type[i].type), "%s", type);
		st->per_type[i].n = 1;
		st->per_type_n++;
	}
}

struct batch {
	struct fhir *f;
	int size;
	int pending;
	bool open;
};

static enum err batch_flush(struct batch *b, struct ctx *c)
{
	enum err e = ERR_OK;

	if (b->open) {
		e = store_commit(b->f->store, c);
		b->open = false;
		b->pending = 0;
	}
	return e;
}

/*
 * Import one parsed resource.  Returns ERR_OK, a rejection (any error
 * except ERR_IO/ERR_BUSY, with the reason on 'rc'), or a fatal store error.
 */
static enum err import_one(struct batch *b, json_t *res, const char *src, size_t srclen,
			   struct fhir_import_stats *st, struct ctx *rc, struct ctx *c)
{
	struct fhir_result out;
	enum err e;

	if (!b->open) {
		if ((e = store_begin(b->f->store, c)))
			return e;
		b->open = true;
	}
	fhir_result_init(&out);
	e = fhir_put_json(b->f, res, src, srclen, &out, rc);
	fhir_result_release(&out);
	if (e == ERR_IO || e == ERR_BUSY) {
		*c = *rc;
		return e;
	}
	if (e == ERR_OK) {
		count_type(st, json_get_str(res, "resourceType"));
		st->imported++;
		if (++b->pending >= b->size)
			return batch_flush(b, c);
	}
	return e == ERR_OK ? ERR_OK : ERR_INVALID;
}

/*
 * Import the entries of a Bundle parsed from src[0..srclen) (NULL: no
 * text); 'line' locates it for messages.
 */
static enum err import_entries(struct batch *b, const char *path, int64_t line, json_t *doc,
			       const char *src, size_t srclen, fhir_import_reject_fn reject,
			       void *arg, struct fhir_import_stats *st, struct ctx *c)
{
	json_t *entries = json_object_get(doc, "entry"), *entry;
	size_t i, n = json_array_size(entries), *offs = xcalloc(n ? n : 1, sizeof(*offs));
	enum err e = ERR_OK;

	/* each resource's numbers keep their written form, as on an NDJSON line */
	json_src_offsets(doc, "entry", "resource", src, srclen, offs, n);
	json_array_foreach(entries, i, entry) {
		json_t *res = json_object_get(entry, "resource");
		struct ctx rc = CTX_INIT;
		char why[sizeof(rc.msg) + 40];

		st->lines++;
		if (!json_is_object(res)) {
			ctx_errorf(&rc, ERR_INVALID, "Bundle entry has no resource");
			e = ERR_INVALID;
		} else {
			e = import_one(b, res, src ? src + offs[i] : NULL, src ? srclen - offs[i] : 0, st,
				       &rc, c);
			if (e == ERR_IO || e == ERR_BUSY)
				break;
		}
		if (e) {
			st->rejected++;
			snprintf(why, sizeof(why), "entry %zu: %s", i + 1, rc.msg);
			if (reject)
				reject(arg, path, line, why);
			e = ERR_OK;
		}
	}
	free(offs);
	return e;
}

/* A UTF-8 byte order mark is not part of the JSON: files may start with one. */
static bool has_bom(const char *s, size_t n)
{
	return n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3);
}

/*
 * A file whose first line is not a complete JSON value is one JSON document
 * (a pretty-printed Bundle or resource) rather than NDJSON.
 */
static bool is_document(FILE *fp, int depth)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, fp);
	json_t *v = NULL;
	bool doc = false;

	if (n > 0) {
		struct ctx c = CTX_INIT;
		size_t bom = has_bom(line, (size_t)n) ? 3 : 0;

		v = json_parse_bounded(line + bom, (size_t)n - bom, depth, &c);
		doc = v == NULL && strchr(line, '{') != NULL;
	}
	json_decref(v);
	free(line);
	rewind(fp);
	return doc;
}

enum err fhir_import_file(struct fhir *f, const char *path, int batch_size,
			  fhir_import_reject_fn reject, fhir_import_progress_fn progress,
			  void *arg, struct fhir_import_stats *st, struct ctx *c)
{
	struct batch b = {f, batch_size > 0 ? batch_size : 1000, 0, false};
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int64_t lineno = 0, total = 0, done = 0;
	struct stat sb;
	enum err e = ERR_OK;

	if (!fp)
		return ctx_errorf(c, ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fileno(fp), &sb) == 0)
		total = sb.st_size;
	if (is_document(fp, f->opts.json_depth_max)) {
		json_error_t je;
		struct buf text = BUF_INIT(SIZE_MAX / 2); /* as large as the file */
		char bom[3], chunk[65536];
		size_t got;
		json_t *doc;

		if (fread(bom, 1, sizeof(bom), fp) != sizeof(bom) || !has_bom(bom, sizeof(bom)))
			rewind(fp);
		/* the text is kept so that numbers keep their written form */
		while ((got = fread(chunk, 1, sizeof(chunk), fp)) > 0)
			buf_add(&text, chunk, got);
		doc = json_loadb(text.data, text.len, JSON_REJECT_DUPLICATES, &je);

		if (!doc) {
			char why[300];
			snprintf(why, sizeof(why), "invalid JSON at line %d column %d: %s", je.line,
				 je.column, je.text);
			st->lines++;
			st->rejected++;
			if (reject)
				reject(arg, path, je.line, why);
		} else if (!strcmp(json_get_str(doc, "resourceType") ? json_get_str(doc, "resourceType") : "", "Bundle")) {
			e = import_entries(&b, path, 1, doc, text.data, text.len, reject, arg, st, c);
		} else {
			struct ctx rc = CTX_INIT;
			st->lines++;
			e = import_one(&b, doc, text.data, text.len, st, &rc, c);
			if (e && e != ERR_IO && e != ERR_BUSY) {
				st->rejected++;
				if (reject)
					reject(arg, path, 1, rc.msg);
				e = ERR_OK;
			}
		}
		json_decref(doc);
		buf_release(&text);
		goto out;
	}
	while ((n = getline(&line, &cap, fp)) >= 0) {
		struct ctx rc = CTX_INIT;
		json_t *res;

		lineno++;
		done += n;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
			     line[n - 1] == '\t'))
			line[--n] = '\0';
		if (lineno == 1 && has_bom(line, (size_t)n)) {
			memmove(line, line + 3, (size_t)n - 2);
			n -= 3;
		}
		if (strspn(line, " \t") == (size_t)n)
			continue;
		st->lines++;
		if (n > f->opts.body_max) {
			ctx_errorf(&rc, ERR_TOOBIG, "resource of %zd bytes exceeds the limit of %lld", n,
				   (long long)f->opts.body_max);
			res = NULL;
		} else {
			res = json_parse_bounded(line, (size_t)n, f->opts.json_depth_max, &rc);
		}
		if (res && !json_is_object(res))
			ctx_errorf(&rc, ERR_INVALID, "line is not a JSON object");
		if (!res || rc.code) {
			st->rejected++;
			if (reject)
				reject(arg, path, lineno, rc.msg);
			json_decref(res);
			continue;
		}
		if (json_is_string(json_object_get(res, "resourceType")) &&
		    !strcmp(json_get_str(res, "resourceType"), "Bundle")) {
			st->lines--; /* counted per entry instead */
			e = import_entries(&b, path, lineno, res, line, (size_t)n, reject, arg, st, c);
			json_decref(res);
			if (e)
				goto out;
			continue;
		}
		e = import_one(&b, res, line, (size_t)n, st, &rc, c);
		json_decref(res);
		if (e == ERR_IO || e == ERR_BUSY)
			goto out;
		if (e) {
			st->rejected++;
			if (reject)
				reject(arg, path, lineno, rc.msg);
			e = ERR_OK;
		}
		if (progress && b.pending == 0)
			progress(arg, path, done, total, st);
	}
out:
	if (e == ERR_OK)
		e = batch_flush(&b, c);
	else if (b.open)
		store_rollback(f->store);
	if (progress)
		progress(arg, path, total, total, st);
	free(line);
	fclose(fp);
	return e;
}
