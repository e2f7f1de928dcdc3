/*
 * search_int.h - inside src/fhir only: the parsed form of a FHIR search
 * request (parse.c) that search.c runs and turns into a Bundle.
 *
 * Everything is allocated from the arena passed to fhir_search_parse() and
 * lives until that arena is released.
 */
#ifndef VERANDA_FHIR_SEARCH_INT_H
#define VERANDA_FHIR_SEARCH_INT_H

#include <stdbool.h>

#include "core/arena.h"
#include "core/buf.h"
#include "fhir/fhir.h"
#include "store/query.h"

#define SEARCH_MAX_CONDS 64
#define SEARCH_MAX_INCLUDES 16
#define SEARCH_MAX_ELEMENTS 64

enum search_summary {
	SUMMARY_NONE = 0,
	SUMMARY_TRUE,
	SUMMARY_TEXT,
	SUMMARY_DATA,
	SUMMARY_COUNT,
};

struct search_include {
	const char *src_type;     /* resource type holding the reference */
	const char *param;        /* reference parameter; NULL for '*' */
	const char *target_type;  /* NULL: any */
	bool iterate;
	bool reverse;             /* _revinclude */
};

struct search_parsed {
	struct store_query q;
	struct store_cond conds[SEARCH_MAX_CONDS];
	size_t nconds;
	struct store_sort sort[STORE_SORT_MAX];
	int64_t count;
	char count_text[24];      /* count in decimal, for the links */
	bool count_given;
	enum search_summary summary;
	const char *elements[SEARCH_MAX_ELEMENTS];
	size_t nelements;
	struct search_include inc[SEARCH_MAX_INCLUDES];
	size_t ninc;
	struct buf applied;       /* query string of the parameters applied (no _page, no _count) */
	struct buf ignored;       /* names of ignored parameters, comma separated */
	bool has_cursor;
	bool total_given;         /* _total was in the request */
};

/*
 * Parse r->params into 'p' for the resource type r->type.  Unknown
 * parameters are listed in p->ignored, or rejected under r->strict.
 * ERR_INVALID with the parameter named (ctx expression) for bad values.
 */
enum err fhir_search_parse(struct fhir *f, struct arena *a, const struct fhir_search_req *r,
			   struct search_parsed *p, struct ctx *c);
void search_parsed_init(struct search_parsed *p);

/* Append name=value, percent-encoded, to the applied parameters (p->applied). */
void search_applied_add(struct search_parsed *p, const char *name, const char *value);
void search_parsed_release(struct search_parsed *p);

/* Cursor token <-> struct store_cursor (base64url of a small JSON). */
enum err search_cursor_encode(const struct store_cursor *cur, bool backward, struct buf *out);
enum err search_cursor_decode(const char *token, struct store_cursor *cur, bool *backward);

#endif
