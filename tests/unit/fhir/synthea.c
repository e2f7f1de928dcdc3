/*
 * Every resource of the Synthea sample (../shared/testdata/synthea-10, read
 * from the repository root) validates and indexes without error, with a
 * plausible number of rows and compartment entries.  Skips, saying so,
 * when the data is not there (a clone outside this workplace).
 */
#include "unit.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "fhir/model.h"

#define DATA_DIR "../shared/testdata/synthea-10"
#define LINE_MAX_BYTES ((size_t)64 << 20)

struct totals {
	size_t resources, rows, patients, files;
	size_t ref_rows, date_rows, string_rows, token_rows;
};

static void check_line(const char *file, size_t lineno, const char *line, size_t n,
		       struct totals *t)
{
	struct ctx c = CTX_INIT;
	struct arena a = ARENA_INIT;
	struct fhir_index ix;
	json_t *res = json_parse_bounded(line, n, 100, &c);
	const char *type, *id;
	enum err e;

	if (!res)
		fail_msg("%s:%zu: does not parse: %s", file, lineno, c.msg);
	type = json_get_str(res, "resourceType");
	id = json_get_str(res, "id");
	if (!type || !id)
		fail_msg("%s:%zu: no resourceType or id", file, lineno);
	if ((e = fhir_validate(type, id, res, &c)))
		fail_msg("%s:%zu: %s/%s does not validate: %s (%s)", file, lineno, type, id, c.msg,
			 c.expr);
	memset(&ix, 0, sizeof(ix));
	if ((e = fhir_index_resource(&a, type, id, res, &ix, &c)))
		fail_msg("%s:%zu: %s/%s does not index: %s (%s)", file, lineno, type, id, c.msg,
			 c.expr);
	/* every resource has at least _id, _profile, a status or name, and a category */
	if (ix.n < 3)
		fail_msg("%s:%zu: %s/%s gave only %zu rows", file, lineno, type, id, ix.n);
	for (size_t i = 0; i < ix.n; i++) {
		switch (ix.rows[i].kind) {
		case STORE_IX_REFERENCE: t->ref_rows++; break;
		case STORE_IX_DATE:
			t->date_rows++;
			if (ix.rows[i].lo > ix.rows[i].hi)
				fail_msg("%s:%zu: date row %s has lo > hi", file, lineno, ix.rows[i].param);
			break;
		case STORE_IX_STRING: t->string_rows++; break;
		case STORE_IX_TOKEN: t->token_rows++; break;
		default: break;
		}
	}
	/* clinical resources of Synthea all point at their patient */
	if (fhir_compartment_params(type)[0] || !strcmp(type, "Patient")) {
		if (ix.npatients != 1)
			fail_msg("%s:%zu: %s/%s has %zu compartment patients, want 1", file, lineno, type,
				 id, ix.npatients);
	} else if (ix.npatients != 0) {
		fail_msg("%s:%zu: %s/%s is in a patient compartment", file, lineno, type, id);
	}
	t->resources++;
	t->rows += ix.n;
	t->patients += ix.npatients;
	arena_release(&a);
	json_decref(res);
}

static void check_file(const char *path, struct totals *t)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;

	if (!fp)
		fail_msg("cannot open '%s'", path);
	while ((n = getline(&line, &cap, fp)) > 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if ((size_t)n > LINE_MAX_BYTES)
			fail_msg("%s:%zu: line too long", path, lineno);
		check_line(path, lineno, line, (size_t)n, t);
	}
	free(line);
	fclose(fp);
	t->files++;
}

static void test_synthea(void **state)
{
	struct totals t;
	DIR *d = opendir(DATA_DIR);
	struct dirent *de;
	(void)state;

	memset(&t, 0, sizeof(t));
	if (!d) {
		print_message("skipping: %s not found (run from the repository root inside the "
			      "workplace; see ../shared/testdata/README.md)\n", DATA_DIR);
		skip();
		return;
	}
	while ((de = readdir(d))) {
		char path[512];
		if (!strstr(de->d_name, ".ndjson"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", DATA_DIR, de->d_name);
		check_file(path, &t);
	}
	closedir(d);
	print_message("synthea: %zu files, %zu resources, %zu rows (%zu token, %zu string, %zu date, "
		      "%zu reference), %zu compartment entries\n", t.files, t.resources, t.rows,
		      t.token_rows, t.string_rows, t.date_rows, t.ref_rows, t.patients);
	assert_true(t.files >= 10);
	assert_true(t.resources > 5000);
	assert_true(t.rows > 20 * t.resources / 2);
	assert_true(t.ref_rows > t.resources);
	assert_true(t.date_rows > t.resources / 2);
	assert_true(t.string_rows > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_synthea),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
