/*
 * log.h - structured operational logging: one JSON object per line on
 * stderr.  Every line carries the calling thread's request id and trace id
 * when one is set (log_set_request()).  Logs hold identifiers, never
 * request bodies, query values, secrets or clinical content.
 * Thread-safe; a line is written with one write(2).
 */
#ifndef VERANDA_CORE_LOG_H
#define VERANDA_CORE_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

void log_set_level(enum log_level l);
enum log_level log_get_level(void);
/* Parse "debug|info|warn|error|off"; returns -1 for anything else. */
int log_level_parse(const char *s);
bool log_enabled(enum log_level l);

/* Set (or clear with NULLs) the correlation ids for this thread's lines. */
void log_set_request(const char *request_id, const char *trace_id);

/* A free-text event: {"ts":..,"level":..,"msg":..,"request_id":..}. */
void log_msg(enum log_level l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * A line with extra fields: 'json_fields' is a fragment of already-escaped
 * JSON members without braces ("\"status\":200,\"route\":\"/x\"").
 */
void log_fields(enum log_level l, const char *msg, const char *json_fields);

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
