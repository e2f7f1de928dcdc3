/* log.c - JSON lines on stderr.  See log.h. */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/str.h"

static _Atomic int level = LOG_INFO;
static _Thread_local char t_request_id[72];
static _Thread_local char t_trace_id[40];

static const char *const names[] = {"debug", "info", "warn", "error", "off"};

void log_set_level(enum log_level l)
{
	atomic_store(&level, (int)l);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&level);
}

int log_level_parse(const char *s)
{
	for (int i = 0; i <= LOG_OFF; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

bool log_enabled(enum log_level l)
{
	return (int)l >= atomic_load(&level) && l != LOG_OFF;
}

void log_set_request(const char *request_id, const char *trace_id)
{
	str_copy(t_request_id, request_id ? request_id : "", sizeof(t_request_id));
	str_copy(t_trace_id, trace_id ? trace_id : "", sizeof(t_trace_id));
}

static void emit(enum log_level l, const char *msg, size_t msglen,
		 const char *fields)
{
	static const char too_long[] = "{\"level\":\"error\",\"msg\":\"log line too long\"}\n";
	struct buf b = BUF_INIT(16384);
	char ts[32];
	ssize_t unused;

	clock_format_instant(clock_now_ms(), ts);
	buf_addf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, names[l]);
	buf_add_json_str(&b, msg, msglen);
	buf_addch(&b, '"');
	if (t_request_id[0]) {
		buf_adds(&b, ",\"request_id\":\"");
		buf_add_json_str(&b, t_request_id, strlen(t_request_id));
		buf_addch(&b, '"');
	}
	if (t_trace_id[0]) {
		buf_adds(&b, ",\"trace_id\":\"");
		buf_add_json_str(&b, t_trace_id, strlen(t_trace_id));
		buf_addch(&b, '"');
	}
	if (fields && *fields)
		buf_addf(&b, ",%s", fields);
	buf_adds(&b, "}\n");
	if (b.err == ERR_OK)
		unused = write(STDERR_FILENO, b.data, b.len);
	else
		unused = write(STDERR_FILENO, too_long, sizeof(too_long) - 1);
	(void)unused;
	buf_release(&b);
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (!log_enabled(l))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	emit(l, msg, strlen(msg), NULL);
}

void log_fields(enum log_level l, const char *msg, const char *json_fields)
{
	if (!log_enabled(l))
		return;
	emit(l, msg, strlen(msg), json_fields);
}
