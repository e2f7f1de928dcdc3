/*
 * tests/unit/core/log.c - structured logging: level names and filtering,
 * and the line format: exactly one JSON object per line on stderr, with the
 * thread's request_id and trace_id when set.  stderr is redirected to a
 * temporary file with dup2() and every line is parsed with jansson.
 */
#include "unit.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

struct capture {
	char path[64];
	int fd;        /* the temporary file */
	int saved;     /* the real stderr */
};

static void capture_start(struct capture *cap)
{
	snprintf(cap->path, sizeof(cap->path), "/tmp/veranda-log-XXXXXX");
	cap->fd = mkstemp(cap->path);
	assert_true(cap->fd >= 0);
	cap->saved = dup(STDERR_FILENO);
	assert_true(cap->saved >= 0);
	assert_int_equal(dup2(cap->fd, STDERR_FILENO), STDERR_FILENO);
}

/* Restore stderr; return everything written meanwhile (free() it) and its length. */
static char *capture_end(struct capture *cap, size_t *len)
{
	char *text;
	off_t n;

	assert_int_equal(dup2(cap->saved, STDERR_FILENO), STDERR_FILENO);
	close(cap->saved);
	n = lseek(cap->fd, 0, SEEK_END);
	assert_true(n >= 0);
	text = malloc((size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(pread(cap->fd, text, (size_t)n, 0), n);
	text[n] = '\0';
	close(cap->fd);
	unlink(cap->path);
	*len = (size_t)n;
	return text;
}

/*
 * Split captured text into lines, each a JSON object; returns a JSON array
 * of them.  Fails the test on a NUL byte, a missing final newline or a line
 * that is not exactly one JSON object.
 */
static json_t *parse_lines(const char *text, size_t len)
{
	json_t *lines = json_array();
	size_t start = 0;

	assert_int_equal(strlen(text), len);
	if (len)
		assert_int_equal(text[len - 1], '\n');
	for (size_t i = 0; i < len; i++) {
		json_error_t je;
		json_t *v;

		if (text[i] != '\n')
			continue;
		v = json_loadb(text + start, i - start, JSON_REJECT_DUPLICATES, &je);
		if (!v || !json_is_object(v))
			fail_msg("log line is not a JSON object (%s): %.*s", v ? "not an object" : je.text,
				 (int)(i - start), text + start);
		json_array_append_new(lines, v);
		start = i + 1;
	}
	return lines;
}

static const char *str_field(json_t *line, const char *key)
{
	return json_string_value(json_object_get(line, key));
}

static int reset(void **state)
{
	(void)state;
	log_set_level(LOG_INFO);
	log_set_request(NULL, NULL);
	clock_set_fixed(0);
	return 0;
}

static void test_level_parse(void **state)
{
	static const char *const bad[] = {"", "INFO", "Info", "warning", "err", "debug ", " off", "5", NULL};

	(void)state;
	assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(log_level_parse("info"), LOG_INFO);
	assert_int_equal(log_level_parse("warn"), LOG_WARN);
	assert_int_equal(log_level_parse("error"), LOG_ERROR);
	assert_int_equal(log_level_parse("off"), LOG_OFF);
	for (int i = 0; bad[i]; i++)
		if (log_level_parse(bad[i]) != -1)
			fail_msg("'%s' parsed as a level", bad[i]);
}

static void test_enabled(void **state)
{
	(void)state;
	log_set_level(LOG_WARN);
	assert_int_equal(log_get_level(), LOG_WARN);
	assert_false(log_enabled(LOG_DEBUG));
	assert_false(log_enabled(LOG_INFO));
	assert_true(log_enabled(LOG_WARN));
	assert_true(log_enabled(LOG_ERROR));
	assert_false(log_enabled(LOG_OFF));
	log_set_level(LOG_DEBUG);
	assert_true(log_enabled(LOG_DEBUG));
	assert_false(log_enabled(LOG_OFF));
	log_set_level(LOG_OFF);
	assert_false(log_enabled(LOG_ERROR));
}

static void test_line_format(void **state)
{
	struct capture cap;
	json_t *lines, *l;
	size_t len;
	char *text;

	(void)state;
	clock_set_fixed(784111777123LL);
	log_set_level(LOG_INFO);
	capture_start(&cap);
	log_info("started on port %d", 8080);
	log_set_request("req-1", "4bf92f3577b34da6a3ce929d0e0e4736");
	log_warn("slow \"query\" took %d ms\n\tsecond line", 1500);
	log_set_request("req-2", NULL);
	log_error("no trace");
	log_set_request(NULL, NULL);
	log_info("after clearing");
	text = capture_end(&cap, &len);
	lines = parse_lines(text, len);
	assert_int_equal(json_array_size(lines), 4);

	l = json_array_get(lines, 0);
	assert_string_equal(str_field(l, "ts"), "1994-11-06T08:49:37.123Z");
	assert_string_equal(str_field(l, "level"), "info");
	assert_string_equal(str_field(l, "msg"), "started on port 8080");
	assert_null(json_object_get(l, "request_id"));
	assert_null(json_object_get(l, "trace_id"));
	assert_int_equal(json_object_size(l), 3);

	l = json_array_get(lines, 1);
	assert_string_equal(str_field(l, "level"), "warn");
	assert_string_equal(str_field(l, "msg"), "slow \"query\" took 1500 ms\n\tsecond line");
	assert_string_equal(str_field(l, "request_id"), "req-1");
	assert_string_equal(str_field(l, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");

	l = json_array_get(lines, 2);
	assert_string_equal(str_field(l, "level"), "error");
	assert_string_equal(str_field(l, "request_id"), "req-2");
	assert_null(json_object_get(l, "trace_id"));

	l = json_array_get(lines, 3);
	assert_null(json_object_get(l, "request_id"));
	assert_null(json_object_get(l, "trace_id"));
	json_decref(lines);
	free(text);
}

static void test_filtering(void **state)
{
	struct capture cap;
	json_t *lines;
	size_t len;
	char *text;

	(void)state;
	capture_start(&cap);
	log_set_level(LOG_WARN);
	log_debug("hidden %d", 1);
	log_info("hidden %d", 2);
	log_fields(LOG_INFO, "hidden", "\"n\":3");
	log_warn("shown %d", 4);
	log_set_level(LOG_DEBUG);
	log_debug("shown %d", 5);
	log_set_level(LOG_OFF);
	log_error("hidden %d", 6);
	log_msg(LOG_OFF, "hidden %d", 7);
	text = capture_end(&cap, &len);
	lines = parse_lines(text, len);
	assert_int_equal(json_array_size(lines), 2);
	assert_string_equal(str_field(json_array_get(lines, 0), "msg"), "shown 4");
	assert_string_equal(str_field(json_array_get(lines, 1), "msg"), "shown 5");
	assert_string_equal(str_field(json_array_get(lines, 1), "level"), "debug");
	json_decref(lines);
	free(text);
}

static void test_fields(void **state)
{
	struct capture cap;
	json_t *lines, *l;
	size_t len;
	char *text;

	(void)state;
	capture_start(&cap);
	log_set_request("r-9", "0af7651916cd43dd8448eb211c80319c");
	log_fields(LOG_INFO, "request", "\"status\":200,\"route\":\"/Patient\",\"ms\":1.5");
	log_fields(LOG_INFO, "no fields", NULL);
	log_fields(LOG_INFO, "empty fields", "");
	text = capture_end(&cap, &len);
	lines = parse_lines(text, len);
	assert_int_equal(json_array_size(lines), 3);
	l = json_array_get(lines, 0);
	assert_string_equal(str_field(l, "msg"), "request");
	assert_int_equal(json_integer_value(json_object_get(l, "status")), 200);
	assert_string_equal(str_field(l, "route"), "/Patient");
	assert_string_equal(str_field(l, "request_id"), "r-9");
	assert_string_equal(str_field(l, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
	assert_int_equal(json_object_size(json_array_get(lines, 1)), 5);
	assert_int_equal(json_object_size(json_array_get(lines, 2)), 5);
	json_decref(lines);
	free(text);
}

static void test_ids_escaped(void **state)
{
	struct capture cap;
	json_t *lines, *l;
	size_t len;
	char *text;

	(void)state;
	/* ids are the caller's strings: they must not be able to break the line */
	capture_start(&cap);
	log_set_request("a\"b\\c\nd", "t\",\"level\":\"debug");
	log_info("x");
	text = capture_end(&cap, &len);
	lines = parse_lines(text, len);
	assert_int_equal(json_array_size(lines), 1);
	l = json_array_get(lines, 0);
	assert_string_equal(str_field(l, "request_id"), "a\"b\\c\nd");
	assert_string_equal(str_field(l, "trace_id"), "t\",\"level\":\"debug");
	assert_string_equal(str_field(l, "level"), "info");
	json_decref(lines);
	free(text);
}

static void test_long_lines(void **state)
{
	struct capture cap;
	json_t *lines;
	size_t len;
	char *text, *big, *fields;
	const char *m;

	(void)state;
	big = malloc(3000);
	assert_non_null(big);
	/* a 2-byte character straddles the 1023-byte message limit */
	memset(big, 'a', 1022);
	memcpy(big + 1022, "\xc3\xa9", 2);
	memset(big + 1024, 'z', 1000);
	big[2024] = '\0';
	fields = malloc(20000);
	assert_non_null(fields);
	memcpy(fields, "\"pad\":\"", 7);
	memset(fields + 7, 'p', 17000);
	memcpy(fields + 17007, "\"", 2);

	capture_start(&cap);
	log_info("%s", big);
	log_fields(LOG_WARN, "huge", fields);
	log_info("next");
	text = capture_end(&cap, &len);
	lines = parse_lines(text, len);
	assert_int_equal(json_array_size(lines), 3);
	/* the message is cut at 1023 bytes and still valid JSON and UTF-8 */
	m = str_field(json_array_get(lines, 0), "msg");
	assert_non_null(m);
	assert_int_equal(strncmp(m, big, 1022), 0);
	assert_string_equal(m + 1022, "\xef\xbf\xbd");
	/* a line over the line cap is replaced by a short complaint */
	assert_string_equal(str_field(json_array_get(lines, 1), "msg"), "log line too long");
	assert_string_equal(str_field(json_array_get(lines, 1), "level"), "error");
	assert_string_equal(str_field(json_array_get(lines, 2), "msg"), "next");
	json_decref(lines);
	free(text);
	free(big);
	free(fields);
}

static void *other_thread(void *arg)
{
	(void)arg;
	log_info("from the other thread");
	log_set_request("thread-b", NULL);
	log_info("with its own id");
	return NULL;
}

static void test_ids_per_thread(void **state)
{
	struct capture cap;
	pthread_t t;
	json_t *lines;
	size_t len;
	char *text;

	(void)state;
	capture_start(&cap);
	log_set_request("thread-a", "aaaa");
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	log_info("main again");
	text = capture_end(&cap, &len);
	lines = parse_lines(text, len);
	assert_int_equal(json_array_size(lines), 3);
	assert_null(json_object_get(json_array_get(lines, 0), "request_id"));
	assert_string_equal(str_field(json_array_get(lines, 1), "request_id"), "thread-b");
	assert_string_equal(str_field(json_array_get(lines, 2), "request_id"), "thread-a");
	assert_string_equal(str_field(json_array_get(lines, 2), "trace_id"), "aaaa");
	json_decref(lines);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_level_parse, reset),
		cmocka_unit_test_teardown(test_enabled, reset),
		cmocka_unit_test_teardown(test_line_format, reset),
		cmocka_unit_test_teardown(test_filtering, reset),
		cmocka_unit_test_teardown(test_fields, reset),
		cmocka_unit_test_teardown(test_ids_escaped, reset),
		cmocka_unit_test_teardown(test_long_lines, reset),
		cmocka_unit_test_teardown(test_ids_per_thread, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
