/*
 * mustache.h - logic-less templates (mustache spec v1.x) for the
 * server-rendered pages: login, the authorization screen, the portal.
 *
 * A set holds named templates, each compiled once into a flat list of
 * nodes; partials ({{>name}}) resolve by name within the set.  Building a
 * set (new, add, max_steps) is not thread-safe.  Once built, a set is
 * read-only: any number of threads may render it at the same time, each
 * into its own buffer, with no locking and no allocation beyond the
 * output buffer's growth.
 *
 * Tags: {{name}} (HTML-escaped), {{{name}}} and {{&name}} (raw),
 * {{#name}}...{{/name}}, {{^name}}...{{/name}}, {{! comment}},
 * {{>partial}}, {{=<% %>=}}.  Names are "." (the current value) or
 * dot-separated keys ("person.name"): the first key is looked up from the
 * innermost context outwards, the others only inside what it found.
 * Lambdas, dynamic names ({{>*name}}) and inheritance ({{<p}}, {{$b}}) are
 * not supported: the last two fail to compile.
 *
 * Values render as: strings as they are; integers in decimal; reals in
 * the shortest form that reads back as the same double (1.21, 0.1, and
 * 2.0 as "2"); true and false as "true" and "false"; null, missing names,
 * arrays and objects as nothing.  Escaping turns & < > " ' into &amp;
 * &lt; &gt; &quot; &#39; (safe in text and in quoted attributes).
 *
 * Sections: missing, null, false and the empty array are falsy; anything
 * else is truthy, including 0, "" and {}.  An array repeats the section
 * once per element with the element as the context; any other truthy
 * value renders the section once with that value as the context.
 */
#ifndef VERANDA_CORE_MUSTACHE_H
#define VERANDA_CORE_MUSTACHE_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* Sections and partials may nest this deep while rendering. */
#define MUSTACHE_DEPTH_MAX 64
/* Largest template source accepted by mustache_set_add(). */
#define MUSTACHE_SRC_MAX ((size_t)1 << 24)
/* Default work budget of one render (nodes visited, see max_steps). */
#define MUSTACHE_STEPS_DEFAULT ((size_t)1 << 24)

struct mustache_set;

/* An empty set.  Never NULL (out of memory aborts). */
struct mustache_set *mustache_set_new(void);

/* Free the set and every template in it.  NULL is fine. */
void mustache_set_free(struct mustache_set *set);

/*
 * Compile src[0..n) (copied; the caller keeps src) and store it under
 * 'name', replacing a template of that name.  Partials are linked by name
 * afterwards, so templates may be added in any order.  Failures leave the
 * set as it was and put "NAME:LINE: message" on 'c':
 * ERR_INVALID for an unclosed tag or section, a section closed under
 * another name, a closing tag with no section, a bad name or delimiter
 * tag, or an unsupported tag; ERR_TOOBIG for a source over
 * MUSTACHE_SRC_MAX bytes or sections nested deeper than
 * MUSTACHE_DEPTH_MAX.
 */
enum err mustache_set_add(struct mustache_set *set, const char *name, const char *src, size_t n,
			  struct ctx *c);

/*
 * Cap the work of one render at 'steps' node visits (each section
 * iteration counts), so that a template including itself twice or
 * nested sections over large arrays end with ERR_TOOBIG instead of
 * running for hours.  Default MUSTACHE_STEPS_DEFAULT; 0 restores it.
 */
void mustache_set_max_steps(struct mustache_set *set, size_t steps);

/*
 * Render template 'name' with the view 'view' (usually an object; NULL
 * is an empty context), appending to 'out'.  Does not modify the set or
 * the view.  A partial that is not in the set renders as nothing.
 * Failures put a message on 'c' and truncate 'out' back to its length on
 * entry: ERR_NOTFOUND for an unknown template name; ERR_TOOBIG when
 * sections and partials nest deeper than MUSTACHE_DEPTH_MAX, when the
 * output would pass out->max (out->err stays set, as buf.h says), or
 * when the work budget runs out.  A buffer that already holds an error
 * returns that error.
 */
enum err mustache_set_render(const struct mustache_set *set, const char *name, const json_t *view,
			     struct buf *out, struct ctx *c);

#endif
