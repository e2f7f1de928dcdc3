/*
 * limit.h - failures counted per key in fixed windows, in memory.
 *
 * A key (a client address, a client id) that reaches 'max' failures
 * within one window is refused until that window ends; the next window
 * starts from zero.  The table has a fixed number of slots: a key looks
 * at a few of them (where, depends on a random seed), and when all are
 * held by live windows the one with the fewest failures gives way — never
 * one that is refusing — so many keys can push a partial count out early,
 * or go uncounted, but never lift a refusal or make the table grow.
 * Times are the caller's, from a clock that does not step (monotonic).
 * Counts live in this process only.
 *
 * Threading: every function may be called from any thread at once.
 */
#ifndef VERANDA_CORE_LIMIT_H
#define VERANDA_CORE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct limit;

/* 'max' failures per 'window_ms'; max 0: nothing is ever refused. */
struct limit *limit_new(int64_t max, int64_t window_ms);
void limit_free(struct limit *l);
/* Milliseconds for which 'key' is still refused at 'now_ms' (0: it is not). */
int64_t limit_refused_ms(struct limit *l, const char *key, int64_t now_ms);
/* Count one failure of 'key'; true when it is the one that reaches the limit. */
bool limit_fail(struct limit *l, const char *key, int64_t now_ms);

#endif
