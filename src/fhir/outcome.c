/* outcome.c - OperationOutcome documents for errors and notes. */
#include <string.h>

#include "fhir/fhir.h"

const char *fhir_issue_code(enum err e)
{
	switch (e) {
	case ERR_OK: return "informational";
	case ERR_INVALID: return "invalid";
	case ERR_UNPROCESSABLE: return "processing";
	case ERR_NOTFOUND: return "not-found";
	case ERR_GONE: return "deleted";
	case ERR_CONFLICT: return "conflict";
	case ERR_PRECONDITION: return "conflict";
	case ERR_FORBIDDEN: return "forbidden";
	case ERR_UNAUTHORIZED: return "login";
	case ERR_TOOBIG: return "too-costly";
	case ERR_BUSY: return "transient";
	case ERR_UNSUPPORTED: return "not-supported";
	case ERR_IO:
	case ERR_NOMEM: return "exception";
	}
	return "exception";
}

enum err fhir_outcome(struct buf *out, const char *severity, const char *issue_code,
		      const char *msg, const char *expr)
{
	buf_addf(out, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"%s\",\"code\":\"%s\",\"diagnostics\":\"",
		 severity, issue_code);
	buf_add_json_str(out, msg, strlen(msg));
	buf_addch(out, '"');
	if (expr && *expr) {
		buf_adds(out, ",\"expression\":[\"");
		buf_add_json_str(out, expr, strlen(expr));
		buf_adds(out, "\"]");
	}
	buf_adds(out, "}]}");
	return out->err;
}
