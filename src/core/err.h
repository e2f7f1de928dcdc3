/*
 * err.h - the one error vocabulary of Veranda.
 *
 * Every fallible function returns an enum err: zero is success, negative is
 * failure.  The human-readable message travels on a struct ctx that the
 * caller owns; the protocol edge (FHIR, OAuth, HTML) turns code + message
 * into its wire format.  Nothing here allocates.
 */
#ifndef VERANDA_CORE_ERR_H
#define VERANDA_CORE_ERR_H

#include <stdarg.h>

enum err {
	ERR_OK = 0,
	ERR_INVALID = -1,    /* bad input: 400 */
	ERR_NOTFOUND = -2,   /* no such thing: 404 */
	ERR_CONFLICT = -3,   /* version or uniqueness conflict: 409/412 */
	ERR_FORBIDDEN = -4,  /* not allowed: 403 */
	ERR_TOOBIG = -5,     /* over a size limit: 413 */
	ERR_IO = -6,         /* storage or system failure: 500 */
	ERR_BUSY = -7,       /* try again later: 503 */
	ERR_UNPROCESSABLE = -8, /* well-formed but semantically wrong: 422 */
	ERR_GONE = -9,       /* existed, now deleted: 410 */
	ERR_UNSUPPORTED = -10, /* not implemented by this server: 400/405/406/415 */
	ERR_PRECONDITION = -11, /* If-Match failed: 412 */
	ERR_UNAUTHORIZED = -12, /* missing or bad credentials: 401 */
	ERR_NOMEM = -13,
};

/* Short lowercase name of an error code ("invalid", "not found", ...). */
const char *err_str(enum err e);

/*
 * The error context: the first failure's code and message.  Later calls to
 * ctx_errorf() do not overwrite an earlier failure, so the root cause wins.
 * 'expr' optionally names the offending element or parameter (FHIR
 * OperationOutcome.issue.expression).
 */
struct ctx {
	enum err code;
	char msg[512];
	char expr[128];
};

#define CTX_INIT {ERR_OK, "", ""}

/* Record a failure on 'c' (may be NULL) and return 'code'. */
enum err ctx_errorf(struct ctx *c, enum err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like ctx_errorf(), also naming the offending element or parameter. */
enum err ctx_errorx(struct ctx *c, enum err code, const char *expr,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Forget any recorded failure. */
void ctx_clear(struct ctx *c);

#endif
