/*
 * tests/unit/core/config.c - the configuration table and its readers:
 * defaults, both spellings of a name, integer bounds, boolean spellings,
 * the file format and its error locations, VERANDA_* variables, the
 * precedence file < environment < flag, and the generated reference.
 */
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/str.h"

extern char **environ;

static char tmpdir[] = "/tmp/veranda-config-XXXXXX";

/* Remove every VERANDA_* variable so the host environment cannot leak in. */
static void clear_env(void)
{
	for (const struct config_option *o = config_options; o->name; o++) {
		char var[80];
		size_t i;

		snprintf(var, sizeof(var), "VERANDA_%s", o->name);
		for (i = 8; var[i]; i++)
			var[i] = (char)(var[i] >= 'a' && var[i] <= 'z' ? var[i] - 32 : var[i]);
		unsetenv(var);
	}
}

static int group_setup(void **state)
{
	(void)state;
	clear_env();
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int test_teardown(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

/* Write 'text' to a file in the temporary directory; returns its path. */
static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void test_defaults(void **state)
{
	struct config cfg;
	int n = 0;

	(void)state;
	memset(&cfg, 0x5a, sizeof(cfg));
	config_defaults(&cfg);
	assert_string_equal(cfg.data, "var");
	assert_string_equal(cfg.listen, "127.0.0.1:8080");
	assert_string_equal(cfg.base_url, "");
	assert_string_equal(cfg.store, "sqlite");
	assert_string_equal(cfg.log_level, "info");
	assert_int_equal(cfg.workers, 0);
	assert_int_equal(cfg.max_connections, 1024);
	assert_int_equal(cfg.json_depth_max, 64);
	assert_int_equal(cfg.page_size, 50);
	assert_int_equal(cfg.page_max, 1000);
	assert_int_equal(cfg.search_time_max, 5000);
	assert_int_equal(cfg.fhir_body_max, 16777216);
	assert_string_equal(cfg.tls_cert, "");
	assert_false(cfg.trust_proxy);
	assert_false(cfg.allow_remote);

	/* every default in the table is itself a valid value within the bounds */
	for (const struct config_option *o = config_options; o->name; o++, n++) {
		struct config tmp;
		struct ctx c = CTX_INIT;

		config_defaults(&tmp);
		if (config_set(&tmp, o->name, o->def, &c) != ERR_OK)
			fail_msg("default of '%s' rejected: %s", o->name, c.msg);
		assert_memory_equal(&tmp, &cfg, sizeof(cfg));
		assert_ptr_equal(config_find(o->name), o);
		assert_non_null(o->help);
		assert_true(o->help[0] != '\0');
		if (o->type == CONFIG_STR)
			assert_true(o->size > 1 && strlen(o->def) < o->size);
		else
			assert_true(o->min <= o->max);
	}
	assert_int_equal(n, 39); /* keep in step with config_options[] (docs/configuration.md) */
}

static void test_find_spellings(void **state)
{
	const struct config_option *o = config_find("base_url");

	(void)state;
	assert_non_null(o);
	assert_string_equal(o->name, "base_url");
	assert_ptr_equal(config_find("base-url"), o);
	assert_ptr_equal(config_find("BASE_URL"), o);
	assert_ptr_equal(config_find("Base-Url"), o);
	assert_null(config_find("base url"));
	assert_null(config_find("base_ur"));
	assert_null(config_find("base_urls"));
	assert_null(config_find(""));
	assert_null(config_find("--base-url"));
}

static void test_set(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_set(&cfg, "base_url", "https://a.example", &c), ERR_OK);
	assert_string_equal(cfg.base_url, "https://a.example");
	assert_int_equal(config_set(&cfg, "base-url", "https://b.example", &c), ERR_OK);
	assert_string_equal(cfg.base_url, "https://b.example");
	assert_int_equal(config_set(&cfg, "page-size", "7", &c), ERR_OK);
	assert_int_equal(cfg.page_size, 7);
	assert_int_equal(config_set(&cfg, "tls_cert", "", &c), ERR_OK);
	assert_string_equal(cfg.tls_cert, "");
	assert_int_equal(c.code, ERR_OK);

	assert_int_equal(config_set(&cfg, "no-such-option", "1", &c), ERR_INVALID);
	assert_non_null(strstr(c.msg, "unknown option 'no-such-option'"));
	/* other fields untouched */
	assert_int_equal(cfg.page_size, 7);
}

static void test_set_string_length(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	char v[sizeof(cfg.listen) + 1];

	(void)state;
	config_defaults(&cfg);
	memset(v, 'a', sizeof(v));
	/* the longest value that fits */
	v[sizeof(cfg.listen) - 1] = '\0';
	assert_int_equal(config_set(&cfg, "listen", v, &c), ERR_OK);
	assert_string_equal(cfg.listen, v);
	/* one byte more is an error, not a silent truncation */
	v[sizeof(cfg.listen) - 1] = 'a';
	v[sizeof(cfg.listen)] = '\0';
	assert_int_equal(config_set(&cfg, "listen", v, &c), ERR_INVALID);
	assert_non_null(strstr(c.msg, "'listen' is too long"));
	v[sizeof(cfg.listen) - 1] = '\0';
	assert_string_equal(cfg.listen, v);
}

static void int_bad(const char *name, const char *value)
{
	struct config cfg, before;
	struct ctx c = CTX_INIT;

	config_defaults(&cfg);
	before = cfg;
	if (config_set(&cfg, name, value, &c) != ERR_INVALID)
		fail_msg("%s = '%s' accepted", name, value);
	assert_memory_equal(&cfg, &before, sizeof(cfg));
	assert_non_null(strstr(c.msg, "must be an integer from"));
	assert_non_null(strstr(c.msg, value));
}

static void test_int_bounds(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_set(&cfg, "page_size", "1", &c), ERR_OK);
	assert_int_equal(cfg.page_size, 1);
	assert_int_equal(config_set(&cfg, "page_size", "1000", &c), ERR_OK);
	assert_int_equal(cfg.page_size, 1000);
	assert_int_equal(config_set(&cfg, "workers", "0", &c), ERR_OK);
	assert_int_equal(cfg.workers, 0);
	assert_int_equal(config_set(&cfg, "fhir-body-max", "268435456", &c), ERR_OK);
	assert_int_equal(cfg.fhir_body_max, 268435456);
	int_bad("page_size", "0");
	int_bad("page_size", "1001");
	int_bad("page_size", "-1");
	int_bad("page_size", "");
	int_bad("page_size", "12abc");
	int_bad("page_size", " 12");
	int_bad("page_size", "+12");
	int_bad("page_size", "1e3");
	int_bad("page_size", "99999999999999999999");
	int_bad("json_depth_max", "3");
	int_bad("json_depth_max", "1025");
	int_bad("header_max", "4095");
	int_bad("workers", "257");
}

static void test_bool_spellings(void **state)
{
	static const char *const yes[] = {"true", "1", "yes", "on", NULL};
	static const char *const no[] = {"false", "0", "no", "off", NULL};
	static const char *const junk[] = {"", "2", "y", "n", "TRUE", "True", " true", "enabled", NULL};
	struct config cfg;
	struct ctx c = CTX_INIT;

	(void)state;
	config_defaults(&cfg);
	for (int i = 0; yes[i]; i++) {
		cfg.trust_proxy = false;
		assert_int_equal(config_set(&cfg, "trust-proxy", yes[i], &c), ERR_OK);
		assert_true(cfg.trust_proxy);
	}
	for (int i = 0; no[i]; i++) {
		cfg.trust_proxy = true;
		assert_int_equal(config_set(&cfg, "trust_proxy", no[i], &c), ERR_OK);
		assert_false(cfg.trust_proxy);
	}
	assert_int_equal(c.code, ERR_OK);
	for (int i = 0; junk[i]; i++) {
		ctx_clear(&c);
		cfg.allow_remote = true;
		if (config_set(&cfg, "allow_remote", junk[i], &c) != ERR_INVALID)
			fail_msg("allow_remote = '%s' accepted", junk[i]);
		assert_true(cfg.allow_remote);
		assert_non_null(strstr(c.msg, "must be true or false"));
	}
}

static void test_load_file(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	const char *path = write_file("ok.conf",
		"# Veranda test configuration\n"
		"\n"
		"   # indented comment\n"
		"data = /srv/veranda   # trailing comment\n"
		"listen=0.0.0.0:9090\n"
		"\tpage_size\t=\t25\t\n"
		"base-url = https://ehr.example/fhir\n"
		"trust_proxy = yes\n"
		"tls_key =\n"
		"log_level = debug\r\n"
		"page_max = 500");  /* no final newline */

	(void)state;
	config_defaults(&cfg);
	memcpy(cfg.tls_key, "old", 4);
	assert_int_equal(config_load_file(&cfg, path, &c), ERR_OK);
	assert_int_equal(c.code, ERR_OK);
	assert_string_equal(cfg.data, "/srv/veranda");
	assert_string_equal(cfg.listen, "0.0.0.0:9090");
	assert_int_equal(cfg.page_size, 25);
	assert_string_equal(cfg.base_url, "https://ehr.example/fhir");
	assert_true(cfg.trust_proxy);
	assert_string_equal(cfg.tls_key, "");
	assert_string_equal(cfg.log_level, "debug");
	assert_int_equal(cfg.page_max, 500);
	/* untouched options keep their defaults */
	assert_string_equal(cfg.store, "sqlite");
	assert_int_equal(cfg.max_connections, 1024);

	/* an empty file changes nothing */
	config_defaults(&cfg);
	assert_int_equal(config_load_file(&cfg, write_file("empty.conf", ""), &c), ERR_OK);
	assert_int_equal(cfg.page_size, 50);
}

static void file_error(const char *text, int line, const char *want)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	char loc[512];
	const char *path = write_file("bad.conf", text);

	config_defaults(&cfg);
	assert_int_equal(config_load_file(&cfg, path, &c), ERR_INVALID);
	assert_int_equal(c.code, ERR_INVALID);
	snprintf(loc, sizeof(loc), "%s:%d: ", path, line);
	if (!str_starts(c.msg, loc) || !strstr(c.msg, want))
		fail_msg("message '%s' lacks '%s' or '%s'", c.msg, loc, want);
}

static void test_load_file_errors(void **state)
{
	(void)state;
	file_error("# ok\npage_size = 10\ncolour = blue\n", 3, "unknown option 'colour'");
	file_error("\n\n\n\nwrkers = 4\n", 5, "unknown option 'wrkers'");
	file_error("page_size = 10\npage_size 20\n", 2, "expected 'key = value'");
	file_error("page_size = many\n", 1, "'page_size' must be an integer from 1 to 1000, not 'many'");
	file_error("data = x\ntrust_proxy = maybe\n", 2, "'trust_proxy' must be true or false");
	file_error("= 5\n", 1, "unknown option ''");
}

static void test_load_file_long_line(void **state)
{
	char text[6000];
	struct config cfg;
	struct ctx c = CTX_INIT;
	const char *path;

	(void)state;
	/* a long comment must not spill its tail into a second "line" */
	memset(text, 0, sizeof(text));
	text[0] = '#';
	memset(text + 1, 'x', 5000);
	memcpy(text + 5001, "\npage_size = 9\n", 16);
	path = write_file("long.conf", text);
	config_defaults(&cfg);
	assert_int_equal(config_load_file(&cfg, path, &c), ERR_INVALID);
	assert_non_null(strstr(c.msg, ":1: line longer than"));
	/* a last line of exactly the buffer size without a newline is fine */
	memset(text, 0, sizeof(text));
	memcpy(text, "data = ", 7);
	memset(text + 7, '#', 4095 - 7);
	path = write_file("edge.conf", text);
	ctx_clear(&c);
	config_defaults(&cfg);
	assert_int_equal(config_load_file(&cfg, path, &c), ERR_OK);
	assert_string_equal(cfg.data, "");
}

static void test_load_file_missing(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	config_defaults(&cfg);
	assert_int_equal(config_load_file(&cfg, path, &c), ERR_NOTFOUND);
	assert_int_equal(c.code, ERR_NOTFOUND);
	assert_non_null(strstr(c.msg, "does-not-exist.conf"));
	/* a directory is not a readable configuration file */
	ctx_clear(&c);
	assert_int_equal(config_load_file(&cfg, tmpdir, &c), ERR_IO);
	assert_non_null(strstr(c.msg, "cannot read"));
	assert_int_equal(cfg.page_size, 50);
}

static void test_first_error_kept(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;

	(void)state;
	/* an earlier failure on the context is neither replaced nor prefixed */
	ctx_errorf(&c, ERR_IO, "earlier");
	config_defaults(&cfg);
	assert_int_equal(config_load_file(&cfg, write_file("e.conf", "page_size = x\n"), &c), ERR_INVALID);
	assert_int_equal(c.code, ERR_IO);
	assert_string_equal(c.msg, "earlier");
	setenv("VERANDA_PAGE_SIZE", "x", 1);
	assert_int_equal(config_load_env(&cfg, &c), ERR_INVALID);
	assert_string_equal(c.msg, "earlier");
	/* a NULL context is allowed */
	assert_int_equal(config_load_env(&cfg, NULL), ERR_INVALID);
	assert_int_equal(config_load_file(&cfg, write_file("e.conf", "x = 1\n"), NULL), ERR_INVALID);
	assert_int_equal(config_set(&cfg, "page_size", "0", NULL), ERR_INVALID);
}

static void test_load_env(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_load_env(&cfg, &c), ERR_OK);
	assert_int_equal(cfg.page_size, 50);

	setenv("VERANDA_PAGE_SIZE", "17", 1);
	setenv("VERANDA_BASE_URL", "https://env.example", 1);
	setenv("VERANDA_ALLOW_REMOTE", "on", 1);
	setenv("veranda_page_max", "3", 1); /* only the upper-case spelling counts */
	assert_int_equal(config_load_env(&cfg, &c), ERR_OK);
	unsetenv("veranda_page_max");
	assert_int_equal(cfg.page_size, 17);
	assert_string_equal(cfg.base_url, "https://env.example");
	assert_true(cfg.allow_remote);
	assert_int_equal(cfg.page_max, 1000);

	/* a bad value names the variable */
	setenv("VERANDA_PAGE_SIZE", "0", 1);
	assert_int_equal(config_load_env(&cfg, &c), ERR_INVALID);
	assert_int_equal(c.code, ERR_INVALID);
	if (!str_starts(c.msg, "VERANDA_PAGE_SIZE: ") || !strstr(c.msg, "'page_size' must be an integer"))
		fail_msg("message '%s'", c.msg);
	assert_int_equal(cfg.page_size, 17);
}

static void test_precedence(void **state)
{
	struct config cfg;
	struct ctx c = CTX_INIT;
	const char *path = write_file("prec.conf",
		"page_size = 10\npage_max = 100\nlisten = 127.0.0.1:1\ndata = from-file\n");

	(void)state;
	/* the order in which the command line applies them */
	config_defaults(&cfg);
	assert_int_equal(config_load_file(&cfg, path, &c), ERR_OK);
	setenv("VERANDA_PAGE_SIZE", "20", 1);
	setenv("VERANDA_PAGE_MAX", "200", 1);
	setenv("VERANDA_WORKERS", "3", 1);
	assert_int_equal(config_load_env(&cfg, &c), ERR_OK);
	assert_int_equal(config_set(&cfg, "page-size", "30", &c), ERR_OK);
	assert_int_equal(c.code, ERR_OK);

	assert_int_equal(cfg.page_size, 30);                /* flag over env over file */
	assert_int_equal(cfg.page_max, 200);                /* env over file */
	assert_string_equal(cfg.listen, "127.0.0.1:1");     /* file over default */
	assert_string_equal(cfg.data, "from-file");
	assert_int_equal(cfg.workers, 3);                   /* env over default */
	assert_int_equal(cfg.max_connections, 1024);        /* default */
}

static void test_markdown(void **state)
{
	struct buf b = BUF_INIT(1 << 16);
	int rows = 0, options = 0;

	(void)state;
	config_write_markdown(&b);
	assert_int_equal(b.err, ERR_OK);
	assert_true(str_starts(b.data, "| option | flag | environment | default | range | meaning |\n"));
	for (const char *p = b.data; (p = strstr(p, "\n| `")) != NULL; p++)
		rows++;
	for (const struct config_option *o = config_options; o->name; o++) {
		char want[256], flag[64], env[80];
		size_t i;

		options++;
		for (i = 0; o->name[i]; i++) {
			flag[i] = o->name[i] == '_' ? '-' : o->name[i];
			env[i] = (char)(o->name[i] >= 'a' && o->name[i] <= 'z' ? o->name[i] - 32 : o->name[i]);
		}
		flag[i] = env[i] = '\0';
		snprintf(want, sizeof(want), "| `%s` | `--%s` | `VERANDA_%s` | `%s` | ", o->name, flag, env,
			 o->def[0] ? o->def : "(empty)");
		if (!strstr(b.data, want))
			fail_msg("markdown lacks a row starting '%s'", want);
		assert_non_null(strstr(b.data, o->help));
		if (o->type == CONFIG_INT) {
			snprintf(want, sizeof(want), "%lld to %lld", (long long)o->min, (long long)o->max);
			assert_non_null(strstr(b.data, want));
		}
	}
	assert_int_equal(rows, options);
	buf_release(&b);

	/* the example file names every option, commented out */
	config_write_example(&b);
	for (const struct config_option *o = config_options; o->name; o++) {
		char want[256];
		snprintf(want, sizeof(want), "\n# %s = %s\n", o->name, o->def);
		assert_non_null(strstr(b.data, want));
	}
	buf_release(&b);
}

static void test_help(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	static const char *const some[] = {"page_size", "base_url", NULL};

	(void)state;
	f = open_memstream(&text, &len);
	assert_non_null(f);
	config_print_help(f, NULL);
	fclose(f);
	for (const struct config_option *o = config_options; o->name; o++)
		assert_non_null(strstr(text, o->help));
	assert_non_null(strstr(text, "--base-url VALUE"));
	assert_non_null(strstr(text, "--page-size N"));
	assert_non_null(strstr(text, "--trust-proxy BOOL"));
	assert_non_null(strstr(text, "(default: 50)"));
	free(text);

	f = open_memstream(&text, &len);
	config_print_help(f, some);
	fclose(f);
	assert_non_null(strstr(text, "--page-size"));
	assert_non_null(strstr(text, "--base-url"));
	assert_null(strstr(text, "--listen"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_defaults, test_teardown),
		cmocka_unit_test_teardown(test_find_spellings, test_teardown),
		cmocka_unit_test_teardown(test_set, test_teardown),
		cmocka_unit_test_teardown(test_set_string_length, test_teardown),
		cmocka_unit_test_teardown(test_int_bounds, test_teardown),
		cmocka_unit_test_teardown(test_bool_spellings, test_teardown),
		cmocka_unit_test_teardown(test_load_file, test_teardown),
		cmocka_unit_test_teardown(test_load_file_errors, test_teardown),
		cmocka_unit_test_teardown(test_load_file_long_line, test_teardown),
		cmocka_unit_test_teardown(test_load_file_missing, test_teardown),
		cmocka_unit_test_teardown(test_first_error_kept, test_teardown),
		cmocka_unit_test_teardown(test_load_env, test_teardown),
		cmocka_unit_test_teardown(test_precedence, test_teardown),
		cmocka_unit_test_teardown(test_markdown, test_teardown),
		cmocka_unit_test_teardown(test_help, test_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
