/*
 * clock.h - the one source of wall-clock time.  Tests (and the test-only
 * environment variable VERANDA_CLOCK_OFFSET, seconds added to real time)
 * can move it so expiry and age rules are testable.  Thread-safe.
 */
#ifndef VERANDA_CORE_CLOCK_H
#define VERANDA_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/err.h"

/* Milliseconds since the Unix epoch. */
int64_t clock_now_ms(void);
/* Monotonic microseconds, for durations only. */
int64_t clock_mono_us(void);
/* The time 'ms' from now on clock 'id', as pthread_cond_timedwait() takes a deadline. */
void clock_after_ms(clockid_t id, int64_t ms, struct timespec *out);
/* Fix the wall clock at 'ms' (0 returns to real time plus offset). */
void clock_set_fixed(int64_t ms);
/* Add 'ms' to every later reading. */
void clock_set_offset(int64_t ms);

/* Format 'ms' as an FHIR instant "YYYY-MM-DDThh:mm:ss.sssZ" (25 bytes). */
void clock_format_instant(int64_t ms, char out[32]);
/* Format 'ms' as an RFC 7231 HTTP date. */
void clock_format_http(int64_t ms, char out[40]);
/* Parse an RFC 7231 HTTP date; ERR_INVALID when it is not one. */
enum err clock_parse_http(const char *s, int64_t *ms);

#endif
