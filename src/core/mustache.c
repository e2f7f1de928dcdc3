/*
 * mustache.c - compiled mustache templates.  See mustache.h.
 *
 * A template compiles to a flat array of nodes.  A section node holds the
 * index just past its body, so rendering walks the array with recursion
 * only into sections and partials (bounded by MUSTACHE_DEPTH_MAX).  Text,
 * names and partial indentation point into the template's own copy of its
 * source, kept in the template's arena with the split name keys; the node
 * array is one allocation.  Partial nodes hold the slot of their target in
 * the set, linked again after every mustache_set_add(), so a render never
 * looks a partial up by name.
 *
 * Standalone lines (a section, inverted, closing, comment, partial or
 * delimiter tag alone on its line with only spaces and tabs around it)
 * are removed at compile time.  Partial indentation follows the spec by
 * behaving as if the partial's source had the indentation inserted at the
 * start of each non-empty line: a text node indents the line starts in
 * it, and an INDENT node stands for the start of a line that begins with
 * a tag.  Both write the current indentation, which is empty outside
 * standalone partials.
 *
 * A render keeps its state (context stack, indentation, budget) in one
 * struct on the caller's stack and writes only to the caller's buffer.
 */
#include "core/mustache.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/mem.h"

/* Longest delimiter accepted by a {{=a b=}} tag. */
#define DELIM_MAX 16
/* How much of an offending name or tag a message quotes. */
#define QUOTE_MAX 64

enum node_type {
	NODE_TEXT,     /* s[0..len) */
	NODE_INDENT,   /* a line of the source starts here with a tag */
	NODE_ESCAPED,  /* {{name}} */
	NODE_RAW,      /* {{{name}}}, {{&name}} */
	NODE_SECTION,  /* {{#name}}: body is [this + 1, end) */
	NODE_INVERTED, /* {{^name}} */
	NODE_PARTIAL,  /* {{>partial}}: s[0..len) is its indentation when standalone */
};

/* A name: "." (nseg 0) or keys split at the dots, each NUL-terminated. */
struct name {
	const char **seg;
	size_t nseg;
};

struct node {
	enum node_type type;
	bool bol;            /* text: starts a non-empty line of the source */
	bool standalone;     /* partial: alone on its line (then indented) */
	unsigned line;       /* of the tag, for messages */
	const char *s;
	size_t len;
	struct name name;    /* variables and sections */
	const char *partial; /* partial: the template's name */
	long target;         /* partial: slot in the set, or -1 */
	size_t end;          /* sections: index just past the body */
};

struct tpl {
	char *name;
	struct arena mem; /* source copy, keys, partial names */
	struct node *nodes;
	size_t n;
};

struct mustache_set {
	struct tpl **tpls;
	size_t n, cap;
	size_t max_steps;
};

/* ---- the set ---- */

static void tpl_free(struct tpl *t)
{
	if (!t)
		return;
	arena_release(&t->mem);
	free(t->nodes);
	free(t->name);
	free(t);
}

static long find_slot(const struct mustache_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->tpls[i]->name, name) == 0)
			return (long)i;
	return -1;
}

/* Point every partial node of every template at its target's slot. */
static void relink(struct mustache_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		struct tpl *t = set->tpls[i];

		for (size_t k = 0; k < t->n; k++)
			if (t->nodes[k].type == NODE_PARTIAL)
				t->nodes[k].target = find_slot(set, t->nodes[k].partial);
	}
}

struct mustache_set *mustache_set_new(void)
{
	struct mustache_set *set = xcalloc(1, sizeof(*set));

	set->max_steps = MUSTACHE_STEPS_DEFAULT;
	return set;
}

void mustache_set_free(struct mustache_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		tpl_free(set->tpls[i]);
	free(set->tpls);
	free(set);
}

void mustache_set_max_steps(struct mustache_set *set, size_t steps)
{
	set->max_steps = steps ? steps : MUSTACHE_STEPS_DEFAULT;
}

/* ---- compiling ---- */

struct open_section {
	size_t node;
	const char *name; /* as written, for matching the closing tag */
	size_t len;
};

struct parser {
	const char *tname;
	const char *src; /* the template's copy */
	size_t n;
	size_t line_pos; /* src[line_pos] is on line 'line' */
	unsigned line;
	char open[DELIM_MAX], close[DELIM_MAX];
	char brace_close[DELIM_MAX + 1]; /* "}" + close: ends {{{name}}} */
	char eq_close[DELIM_MAX + 1];    /* "=" + close: ends {{=a b=}} */
	size_t olen, clen;
	struct tpl *t;
	size_t cap;
	struct open_section sections[MUSTACHE_DEPTH_MAX];
	size_t depth;
	struct ctx *c;
};

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Bytes allowed in names and delimiters: printable, no space. */
static bool is_name_byte(char ch)
{
	unsigned char u = (unsigned char)ch;

	return u > 0x20 && u != 0x7f;
}

/* Line number of src[pos]; positions asked for never go backwards. */
static unsigned line_at(struct parser *p, size_t pos)
{
	while (p->line_pos < pos) {
		const char *nl = memchr(p->src + p->line_pos, '\n', pos - p->line_pos);

		if (!nl) {
			p->line_pos = pos;
			break;
		}
		p->line++;
		p->line_pos = (size_t)(nl - p->src) + 1;
	}
	return p->line;
}

static enum err fail(struct parser *p, unsigned line, enum err code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum err fail(struct parser *p, unsigned line, enum err code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ctx_errorf(p->c, code, "%s:%u: %s", p->tname, line, msg);
}

static void set_delims(struct parser *p, const char *open, size_t olen, const char *close,
		       size_t clen)
{
	memcpy(p->open, open, olen);
	p->olen = olen;
	memcpy(p->close, close, clen);
	p->clen = clen;
	p->brace_close[0] = '}';
	memcpy(p->brace_close + 1, close, clen);
	p->eq_close[0] = '=';
	memcpy(p->eq_close + 1, close, clen);
}

static struct node *add_node(struct parser *p, enum node_type type, unsigned line)
{
	struct node *nd;

	if (p->t->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 32;
		p->t->nodes = xrealloc(p->t->nodes, p->cap * sizeof(*p->t->nodes));
	}
	nd = &p->t->nodes[p->t->n++];
	memset(nd, 0, sizeof(*nd));
	nd->type = type;
	nd->line = line;
	nd->target = -1;
	return nd;
}

/* Does src[pos] start a line of the source? */
static bool at_line_start(const struct parser *p, size_t pos)
{
	return pos == 0 || p->src[pos - 1] == '\n';
}

/* Is the line at s[0..left) empty (it starts with "\n" or "\r\n")? */
static bool empty_line(const char *s, size_t left)
{
	return left && (s[0] == '\n' || (left > 1 && s[0] == '\r' && s[1] == '\n'));
}

static void add_text(struct parser *p, size_t from, size_t to)
{
	struct node *nd;

	if (to <= from)
		return;
	nd = add_node(p, NODE_TEXT, 0);
	nd->s = p->src + from;
	nd->len = to - from;
	nd->bol = at_line_start(p, from) && !empty_line(nd->s, nd->len);
}

/* Parse the name s[0..n) (already trimmed) into 'nm'. */
static enum err parse_name(struct parser *p, unsigned line, const char *s, size_t n,
			   struct name *nm)
{
	size_t i, start, k;

	nm->seg = NULL;
	nm->nseg = 0;
	if (n == 0)
		return fail(p, line, ERR_INVALID, "tag without a name");
	if (n == 1 && s[0] == '.')
		return ERR_OK;
	nm->nseg = 1;
	for (i = 0; i < n; i++) {
		if (!is_name_byte(s[i]))
			return fail(p, line, ERR_INVALID, "bad name '%.*s'",
				    (int)(n < QUOTE_MAX ? n : QUOTE_MAX), s);
		if (s[i] == '.') {
			if (i == 0 || i == n - 1 || s[i - 1] == '.')
				return fail(p, line, ERR_INVALID, "bad name '%.*s'",
					    (int)(n < QUOTE_MAX ? n : QUOTE_MAX), s);
			nm->nseg++;
		}
	}
	nm->seg = arena_alloc(&p->t->mem, nm->nseg * sizeof(*nm->seg));
	for (i = 0, start = 0, k = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			nm->seg[k++] = arena_strndup(&p->t->mem, s + start, i - start);
			start = i + 1;
		}
	}
	return ERR_OK;
}

/* {{=open close=}}: s[0..n) is "open close", trimmed. */
static enum err parse_delims(struct parser *p, unsigned line, const char *s, size_t n)
{
	size_t a = 0, b, c;

	while (a < n && !is_space(s[a]))
		a++;
	b = a;
	while (b < n && is_space(s[b]))
		b++;
	for (c = b; c < n && !is_space(s[c]); c++)
		;
	if (a == 0 || b == a || b == n || c != n || a > DELIM_MAX || n - b > DELIM_MAX)
		goto bad;
	for (size_t i = 0; i < n; i++)
		if ((i < a || i >= b) && (!is_name_byte(s[i]) || s[i] == '='))
			goto bad;
	set_delims(p, s, a, s + b, n - b);
	return ERR_OK;
bad:
	return fail(p, line, ERR_INVALID, "bad delimiters '%.*s'",
		    (int)(n < QUOTE_MAX ? n : QUOTE_MAX), s);
}

static const char *find(const char *hay, size_t n, const char *needle, size_t len)
{
	return len <= n ? memmem(hay, n, needle, len) : NULL;
}

/* One tag: src[ts..te) with its trimmed content src[a..b) and sigil 'kind'. */
struct tag {
	size_t ts, te, a, b;
	char kind;
	unsigned line;
};

static enum err compile_tag(struct parser *p, const struct tag *g, size_t indent_from)
{
	const char *s = p->src + g->a;
	size_t n = g->b - g->a;
	struct node *nd;
	struct name nm;
	enum err rc;

	switch (g->kind) {
	case '!':
		return ERR_OK;
	case '=':
		return parse_delims(p, g->line, s, n);
	case '<':
	case '$':
		return fail(p, g->line, ERR_INVALID,
			    "template inheritance ('%c' tags) is not supported", g->kind);
	case '#':
	case '^':
		if (p->depth == MUSTACHE_DEPTH_MAX)
			return fail(p, g->line, ERR_TOOBIG, "sections nest deeper than %d",
				    MUSTACHE_DEPTH_MAX);
		if ((rc = parse_name(p, g->line, s, n, &nm)))
			return rc;
		nd = add_node(p, g->kind == '#' ? NODE_SECTION : NODE_INVERTED, g->line);
		nd->name = nm;
		p->sections[p->depth].node = p->t->n - 1;
		p->sections[p->depth].name = s;
		p->sections[p->depth].len = n;
		p->depth++;
		return ERR_OK;
	case '/': {
		const struct open_section *o;

		if (p->depth == 0)
			return fail(p, g->line, ERR_INVALID, "closing tag '%.*s' without a section",
				    (int)(n < QUOTE_MAX ? n : QUOTE_MAX), s);
		o = &p->sections[p->depth - 1];
		if (o->len != n || memcmp(o->name, s, n) != 0)
			return fail(p, g->line, ERR_INVALID,
				    "section '%.*s' (line %u) closed by '%.*s'",
				    (int)(o->len < QUOTE_MAX ? o->len : QUOTE_MAX), o->name,
				    p->t->nodes[o->node].line, (int)(n < QUOTE_MAX ? n : QUOTE_MAX),
				    s);
		p->t->nodes[o->node].end = p->t->n;
		p->depth--;
		return ERR_OK;
	}
	case '>':
		if (n && s[0] == '*')
			return fail(p, g->line, ERR_INVALID,
				    "dynamic partial names are not supported");
		if (n == 0)
			return fail(p, g->line, ERR_INVALID, "partial without a name");
		for (size_t i = 0; i < n; i++)
			if (!is_name_byte(s[i]))
				return fail(p, g->line, ERR_INVALID, "bad partial name '%.*s'",
					    (int)(n < QUOTE_MAX ? n : QUOTE_MAX), s);
		nd = add_node(p, NODE_PARTIAL, g->line);
		nd->partial = arena_strndup(&p->t->mem, s, n);
		if (indent_from != (size_t)-1) {
			nd->standalone = true;
			nd->s = p->src + indent_from;
			nd->len = g->ts - indent_from;
		}
		return ERR_OK;
	default:
		if ((rc = parse_name(p, g->line, s, n, &nm)))
			return rc;
		nd = add_node(p, g->kind == 0 ? NODE_ESCAPED : NODE_RAW, g->line);
		nd->name = nm;
		return ERR_OK;
	}
}

/*
 * Read the tag whose opening delimiter starts at src[ts] into 'g'; the
 * end of the tag is the first closing delimiter (after a '}' for a triple
 * mustache, after a '=' for a delimiter tag).
 */
static enum err read_tag(struct parser *p, size_t ts, struct tag *g)
{
	const char *src = p->src, *e, *term = p->close;
	size_t k = ts + p->olen, tlen = p->clen;

	g->ts = ts;
	g->line = line_at(p, ts);
	g->kind = 0;
	if (k < p->n && src[k] == '{') {
		g->kind = '{';
		term = p->brace_close;
		tlen = p->clen + 1;
		k++;
	} else {
		while (k < p->n && is_space(src[k]))
			k++;
		if (k < p->n && src[k] != '\0' && strchr("#^/!>=&<$", src[k])) {
			g->kind = src[k++];
			if (g->kind == '=') {
				term = p->eq_close;
				tlen = p->clen + 1;
			}
		}
	}
	e = find(src + k, p->n - k, term, tlen);
	if (!e)
		return fail(p, g->line, ERR_INVALID, "unclosed tag");
	g->a = k;
	g->b = (size_t)(e - src);
	g->te = g->b + tlen;
	if (g->kind != '!') {
		while (g->a < g->b && is_space(src[g->a]))
			g->a++;
		while (g->b > g->a && is_space(src[g->b - 1]))
			g->b--;
	}
	return ERR_OK;
}

static enum err compile(struct parser *p)
{
	const char *src = p->src;
	size_t pos = 0, text = 0;
	enum err rc;

	for (;;) {
		const char *o = find(src + pos, p->n - pos, p->open, p->olen);
		size_t j, after, indent_from = (size_t)-1;
		bool standalone = false;
		struct tag g = {0};

		if (!o)
			break;
		if ((rc = read_tag(p, (size_t)(o - src), &g)))
			return rc;
		/* standalone: only blanks between it and the line's start and end */
		after = g.te;
		j = g.ts;
		while (j > text && is_blank(src[j - 1]))
			j--;
		if (g.kind && strchr("#^/!>=<$", g.kind) && at_line_start(p, j)) {
			size_t q = g.te;

			while (q < p->n && is_blank(src[q]))
				q++;
			standalone = true;
			if (q == p->n)
				after = q;
			else if (src[q] == '\n')
				after = q + 1;
			else if (src[q] == '\r' && q + 1 < p->n && src[q + 1] == '\n')
				after = q + 2;
			else
				standalone = false;
		}
		if (standalone) {
			add_text(p, text, j);
			indent_from = j;
		} else {
			add_text(p, text, g.ts);
			if (at_line_start(p, g.ts))
				add_node(p, NODE_INDENT, 0);
		}
		if ((rc = compile_tag(p, &g, indent_from)))
			return rc;
		pos = text = after;
	}
	add_text(p, text, p->n);
	if (p->depth) {
		const struct open_section *s = &p->sections[p->depth - 1];

		return fail(p, p->t->nodes[s->node].line, ERR_INVALID, "unclosed section '%.*s'",
			    (int)(s->len < QUOTE_MAX ? s->len : QUOTE_MAX), s->name);
	}
	return ERR_OK;
}

enum err mustache_set_add(struct mustache_set *set, const char *name, const char *src, size_t n,
			  struct ctx *c)
{
	struct parser p;
	struct tpl *t;
	char *copy;
	long slot;
	enum err rc;

	if (!name || !name[0])
		return ctx_errorf(c, ERR_INVALID, "template without a name");
	if (n > MUSTACHE_SRC_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "%s:1: template larger than %zu bytes", name,
				  MUSTACHE_SRC_MAX);
	t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	copy = arena_alloc(&t->mem, n + 1);
	if (n)
		memcpy(copy, src, n);
	copy[n] = '\0';

	memset(&p, 0, sizeof(p));
	p.tname = name;
	p.src = copy;
	p.n = n;
	p.line = 1;
	p.t = t;
	p.c = c;
	set_delims(&p, "{{", 2, "}}", 2);
	if ((rc = compile(&p))) {
		tpl_free(t);
		return rc;
	}

	slot = find_slot(set, name);
	if (slot >= 0) {
		tpl_free(set->tpls[slot]);
		set->tpls[slot] = t;
	} else {
		if (set->n == set->cap) {
			set->cap = set->cap ? set->cap * 2 : 16;
			set->tpls = xrealloc(set->tpls, set->cap * sizeof(*set->tpls));
		}
		set->tpls[set->n++] = t;
	}
	relink(set);
	return ERR_OK;
}

/* ---- rendering ---- */

/* Indentation of the standalone partials being rendered, innermost first. */
struct indent {
	const char *s;
	size_t n;
	size_t total; /* bytes of this and every outer level */
	const struct indent *up;
};

struct render {
	const struct mustache_set *set;
	struct buf *out;
	struct ctx *c;
	size_t steps; /* budget left */
	unsigned depth;
	const struct indent *indent;
	size_t sp;
	const json_t *stack[MUSTACHE_DEPTH_MAX + 1];
};

static const json_t *lookup(const struct render *r, const struct name *nm)
{
	const json_t *v = NULL;

	if (!nm->nseg)
		return r->sp ? r->stack[r->sp - 1] : NULL;
	for (size_t i = r->sp; i-- > 0;) {
		if (json_is_object(r->stack[i]) && (v = json_object_get(r->stack[i], nm->seg[0])))
			break;
	}
	for (size_t k = 1; v && k < nm->nseg; k++)
		v = json_is_object(v) ? json_object_get(v, nm->seg[k]) : NULL;
	return v;
}

static bool truthy(const json_t *v)
{
	if (!v || json_is_null(v) || json_is_false(v))
		return false;
	if (json_is_array(v))
		return json_array_size(v) > 0;
	return true;
}

static void add_indent(struct buf *out, const struct indent *ind)
{
	if (!ind || !ind->total)
		return;
	add_indent(out, ind->up);
	buf_add(out, ind->s, ind->n);
}

static void add_escaped(struct buf *out, const char *s, size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		const char *e;

		switch (s[i]) {
		case '&': e = "&amp;"; break;
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '"': e = "&quot;"; break;
		case '\'': e = "&#39;"; break;
		default: continue;
		}
		buf_add(out, s + run, i - run);
		buf_adds(out, e);
		run = i + 1;
	}
	buf_add(out, s + run, n - run);
}

/* The shortest decimal form that reads back as the same double. */
static void add_real(struct buf *out, double v)
{
	char tmp[40];

	for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	buf_adds(out, tmp);
}

static void add_value(struct buf *out, const json_t *v, bool escape)
{
	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_STRING:
		if (escape)
			add_escaped(out, json_string_value(v), json_string_length(v));
		else
			buf_add(out, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		buf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		add_real(out, json_real_value(v));
		break;
	case JSON_TRUE:
		buf_add(out, "true", 4);
		break;
	case JSON_FALSE:
		buf_add(out, "false", 5);
		break;
	default:
		break;
	}
}

/* Text, indenting the non-empty lines that start inside it. */
static void add_text_node(struct render *r, const struct node *nd)
{
	const char *s = nd->s, *end = nd->s + nd->len, *nl;

	if (!r->indent || !r->indent->total) {
		buf_add(r->out, s, nd->len);
		return;
	}
	if (nd->bol)
		add_indent(r->out, r->indent);
	while ((nl = memchr(s, '\n', (size_t)(end - s))) && nl + 1 < end) {
		buf_add(r->out, s, (size_t)(nl + 1 - s));
		s = nl + 1;
		if (!empty_line(s, (size_t)(end - s)))
			add_indent(r->out, r->indent);
	}
	buf_add(r->out, s, (size_t)(end - s));
}

static enum err render_nodes(struct render *r, const struct tpl *t, size_t from, size_t to);

/* Spend one step of the work budget. */
static enum err step(struct render *r, const struct tpl *t)
{
	if (r->steps == 0)
		return ctx_errorf(r->c, ERR_TOOBIG, "%s: rendering takes more than %zu steps",
				  t->name, r->set->max_steps);
	r->steps--;
	return ERR_OK;
}

static enum err enter(struct render *r, const struct tpl *t, const struct node *nd)
{
	if (r->depth == MUSTACHE_DEPTH_MAX)
		return ctx_errorf(r->c, ERR_TOOBIG,
				  "%s:%u: sections and partials nest deeper than %d", t->name,
				  nd->line, MUSTACHE_DEPTH_MAX);
	r->depth++;
	return ERR_OK;
}

static enum err render_section(struct render *r, const struct tpl *t, size_t i)
{
	const struct node *nd = &t->nodes[i];
	const json_t *v = lookup(r, &nd->name);
	enum err rc;

	if (truthy(v) == (nd->type == NODE_INVERTED))
		return ERR_OK;
	if ((rc = enter(r, t, nd)))
		return rc;
	if (nd->type == NODE_INVERTED) {
		rc = render_nodes(r, t, i + 1, nd->end);
	} else if (json_is_array(v)) {
		for (size_t k = 0; k < json_array_size(v) && !rc; k++) {
			if ((rc = step(r, t)))
				break;
			r->stack[r->sp++] = json_array_get(v, k);
			rc = render_nodes(r, t, i + 1, nd->end);
			r->sp--;
		}
	} else {
		r->stack[r->sp++] = v;
		rc = render_nodes(r, t, i + 1, nd->end);
		r->sp--;
	}
	r->depth--;
	return rc;
}

static enum err render_partial(struct render *r, const struct tpl *t, const struct node *nd)
{
	const struct indent *saved = r->indent;
	struct indent ind;
	enum err rc;

	if (nd->target < 0)
		return ERR_OK;
	if ((rc = enter(r, t, nd)))
		return rc;
	if (nd->standalone) {
		ind.s = nd->s;
		ind.n = nd->len;
		ind.total = nd->len + (saved ? saved->total : 0);
		ind.up = saved;
		r->indent = &ind;
	} else {
		/* an inline partial is not indented */
		r->indent = NULL;
	}
	t = r->set->tpls[nd->target];
	rc = render_nodes(r, t, 0, t->n);
	r->indent = saved;
	r->depth--;
	return rc;
}

static enum err render_nodes(struct render *r, const struct tpl *t, size_t from, size_t to)
{
	enum err rc = ERR_OK;

	for (size_t i = from; i < to && !rc;) {
		const struct node *nd = &t->nodes[i];

		if ((rc = step(r, t)))
			return rc;
		switch (nd->type) {
		case NODE_TEXT:
			add_text_node(r, nd);
			i++;
			break;
		case NODE_INDENT:
			add_indent(r->out, r->indent);
			i++;
			break;
		case NODE_ESCAPED:
		case NODE_RAW:
			add_value(r->out, lookup(r, &nd->name), nd->type == NODE_ESCAPED);
			i++;
			break;
		case NODE_SECTION:
		case NODE_INVERTED:
			rc = render_section(r, t, i);
			i = nd->end;
			break;
		case NODE_PARTIAL:
			rc = render_partial(r, t, nd);
			i++;
			break;
		}
		if (r->out->err)
			return r->out->err;
	}
	return rc;
}

enum err mustache_set_render(const struct mustache_set *set, const char *name, const json_t *view,
			     struct buf *out, struct ctx *c)
{
	struct render r;
	size_t start = out->len;
	long slot = name ? find_slot(set, name) : -1;
	enum err rc;

	if (out->err)
		return ctx_errorf(c, out->err, "output buffer already failed");
	if (slot < 0)
		return ctx_errorf(c, ERR_NOTFOUND, "unknown template '%s'", name ? name : "(null)");
	r.set = set;
	r.out = out;
	r.c = c;
	r.steps = set->max_steps;
	r.depth = 0;
	r.indent = NULL;
	r.sp = 0;
	if (view)
		r.stack[r.sp++] = view;
	rc = render_nodes(&r, set->tpls[slot], 0, set->tpls[slot]->n);
	if (out->err) {
		rc = out->err;
		ctx_errorf(c, rc, "%s: output larger than %zu bytes", name, out->max);
	}
	if (rc)
		buf_truncate(out, start);
	return rc;
}
