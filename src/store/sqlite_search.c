/*
 * sqlite_search.c - FHIR search on the SQLite backend: a struct store_query
 * (query.h) becomes one SELECT per page (plus one count(*) when a total is
 * asked for), built as text with bound values only, prepared once per
 * connection and kept in a small per-connection LRU keyed by the SQL text.
 *
 * Shape of a page statement (every value is a bound parameter):
 *
 *   SELECT p.type, p.id, p.version, p.last_updated, p.deleted, p.seq,
 *          v.json, p.rid, p.snap, p.k0 ...
 *   FROM (SELECT r.rid, ..., <snapshot> AS snap, <key 0> AS k0, ...
 *         FROM resource r
 *         WHERE [+]r.type = ? AND r.deleted = 0
 *           AND r.rid IN (<driver>)            -- the most selective cond
 *           AND EXISTS (SELECT 1 FROM ix_<kind> x WHERE x.rid = r.rid
 *                       AND x.param = ? AND (<match> OR <match>))   -- others
 *           AND r.rid <= ? AND (<keyset: rows after the cursor>)
 *         ORDER BY <keys> NULLS LAST, r.rid LIMIT ?) p
 *   CROSS JOIN resource_version v ON v.seq = p.seq
 *
 * The planner is steered, not trusted: one cond is chosen as the driver by
 * a fixed selectivity rank (drive_rank(): _id, then the patient compartment
 * and references by id, then tokens with a code and uri equality, then
 * ranges and prefixes) and written as "r.rid IN (subquery)" whose
 * subquery seeks an index on (type, param, value...); the others become
 * EXISTS probes keyed by rid (the ix_* primary keys start with rid, and
 * they carry no "type =" so their value indexes cannot be picked).  When a
 * driver exists the type test is written "+r.type" so that SQLite cannot
 * walk the type index instead.  The resource JSON is joined only to the
 * rows of the page (the CROSS JOIN keeps the subquery's order).
 *
 * Lean shape, for pages sorted by parameters (every match is evaluated
 * before the first row comes out, so a resource row read per match would
 * be wasted) with a driver that is one index range (or the compartment of
 * a typed compartment search):
 *
 *   SELECT v.type, ..., v.json, p.rid, p.snap, p.k0 ...
 *   FROM (SELECT DISTINCT x.rid AS rid, x.seq AS seq, <snapshot> AS snap,
 *                <key 0> AS k0 ...
 *         FROM ix_<kind> x WHERE x.type = ? AND x.param = ? AND <match>
 *           AND <filters on x.rid> AND <keyset>
 *         ORDER BY <keys> NULLS LAST, x.rid LIMIT ?) p
 *   CROSS JOIN resource_version v ON v.seq = p.seq
 *
 * It relies on index and compartment rows existing for current, not
 * deleted resources only, each carrying the current version's seq
 * (store_put() replaces them with each version; schema 7): the page reads
 * one version row per resource and never the resource row.
 *
 * Keyed driver: one reference to Patient/id ("this patient's ...").  Its
 * ix_reference rows carry sort_hi, the newest end of the resource's 'date'
 * values (kept by a trigger of 0005_sort_key.sql), and the index
 * (type, param, target_id, target_type, sort_hi) lists them in that order:
 *  - sorted by -date only, the statement walks that index in page order
 *    (key 0 is the column; no sort, no lookup per match but the other
 *    conds' probes) and stops after a page;
 *  - "date=ge|gt v" is "sort_hi >= v" (> v), a range of the same index:
 *    it narrows the walk (the probe stays, and then runs on matches only);
 *  - unsorted, when the index answers every cond (at most such date conds
 *    besides), the statement is lean too and probes nothing: a patient's
 *    appointments from today are one index range.
 * An unsorted page is lean when nothing is left to probe (no other cond,
 * or only those date conds of a keyed driver): Patient?name=smi and
 * $everything read their driver's range and sort it by rid.  Otherwise an
 * unsorted page stays in the first shape, which stops probing after a page.
 * A resource with two matching rows (two name parts that start alike, a
 * reference written two ways) would come twice: keyed and unsorted lean
 * statements are not DISTINCT (that costs a temporary b-tree per search)
 * but order such rows next to each other (same keys, same rid), and
 * sqlite_search() skips the second; their LIMIT is -1 (it keeps the
 * subquery's ORDER BY in force) and stepping stops after a page.
 *
 * Sorting: a key on _id or _lastUpdated is the resource column; a key on a
 * parameter is a correlated subquery over the resource's index rows of that
 * parameter: ascending takes the lowest value (date: min(lo)), descending
 * the highest (date: max(hi)).  Resources without a value sort last in both
 * directions.  The final tie-breaker is rid, ascending, or descending when
 * the last sort key is descending.  Text keys go through veranda_key(),
 * which cuts values longer than 255 bytes at a UTF-8 boundary so that they
 * fit the cursor: ordering and paging use the cut value consistently, so
 * paging never repeats or skips a row, but resources whose values agree on
 * their first ~255 bytes are ordered among themselves by rid.
 *
 * Keyset paging: the cursor holds the last row's key values and rid and a
 * snapshot rid (max(rid) when the first page was read); later pages take
 * rows strictly after the cursor in the sort order (an OR of row-value
 * steps, NULL-aware) with rid <= snapshot.  A resource whose sort key
 * changes between pages moves: it can then be seen twice or not at all
 * (a resource's key values are those of its current version).
 *
 * Threading and ownership: everything runs on the calling thread's
 * connection; statements live in the connection's cache until evicted or
 * the connection closes (sq_search_free()).  Strings in the query are
 * borrowed for the call.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/sqlite_int.h"
#include "store/vcache.h"

/* Caps on one generated statement (ERR_INVALID "search too complex" beyond). */
#define SQL_MAX ((size_t)64 << 10)
#define BINDS_MAX 2000
/* Bytes of the database file each connection maps (1 TiB: all of it). */
#define MMAP_SIZE_TEXT "1099511627776"
/* Room for a typical statement's text, so that it is not grown piecemeal. */
#define SQL_INITIAL 4096
/* Bound values a statement holds before its list moves to the heap. */
#define BINDS_INLINE 48
/* Alternatives of one cond that may drive as a UNION ALL (SQLite allows 500). */
#define DRIVE_ARMS_MAX 64
/* Cached search statements per connection. */
#define CACHE_SLOTS 64
/* Longest text sort key (the cursor's key.s holds it with its NUL). */
#define KEY_TEXT_MAX (sizeof(((struct store_cursor *)0)->key[0].s) - 1)
/* Selectivity ranks (drive_rank()); conds ranked above DRIVE_MAX never drive. */
#define RANK_NONE 100
#define DRIVE_MAX 4
/* "ap" on dates: at least a day of slack. */
#define DAY_MS ((int64_t)86400000)

static const char *const ix_table[STORE_IX_KINDS] = {
	[STORE_IX_TOKEN] = "ix_token",
	[STORE_IX_STRING] = "ix_string",
	[STORE_IX_DATE] = "ix_date",
	[STORE_IX_REFERENCE] = "ix_reference",
	[STORE_IX_QUANTITY] = "ix_quantity",
	[STORE_IX_NUMBER] = "ix_number",
	[STORE_IX_URI] = "ix_uri",
};

/* ---- the statement cache ---- */

struct slot {
	char *sql;
	uint64_t hash;
	uint64_t used;          /* tick of the last use; 0: empty */
	sqlite3_stmt *st;
};

struct sq_search {
	uint64_t tick;
	struct slot slot[CACHE_SLOTS];
	/*
	 * The version cache: veranda_cached(seq) pins the entry of the row
	 * it is asked about here, for the loop that reads the row next.
	 */
	struct vcache *vc;
	struct vc_entry *pin;
};

void sq_search_free(struct sq_search *ss)
{
	if (!ss)
		return;
	vcache_unpin(ss->pin);
	for (int i = 0; i < CACHE_SLOTS; i++) {
		sqlite3_finalize(ss->slot[i].st);
		free(ss->slot[i].sql);
	}
	free(ss);
}

static uint64_t hash_sql(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211u;
	return h;
}

/*
 * veranda_key(x): x itself, except that text longer than KEY_TEXT_MAX
 * bytes is cut to at most that many bytes at a UTF-8 boundary.
 */
static void key_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char *t;
	int n, cut;

	(void)argc;
	if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
		sqlite3_result_value(ctx, argv[0]);
		return;
	}
	t = sqlite3_value_text(argv[0]);
	n = sqlite3_value_bytes(argv[0]);
	if (!t || n <= (int)KEY_TEXT_MAX) {
		sqlite3_result_value(ctx, argv[0]);
		return;
	}
	cut = (int)KEY_TEXT_MAX;
	while (cut > 0 && (t[cut] & 0xC0) == 0x80)
		cut--;
	sqlite3_result_text(ctx, (const char *)t, cut, SQLITE_TRANSIENT);
}

/*
 * The connection's search state, made on first use together with the
 * veranda_key() function.  ERR_IO when the function cannot be registered.
 */
/*
 * veranda_cached(seq): 1 when the version cache holds version 'seq', which
 * it then pins for the row being built; 0 otherwise.  Page statements
 * join the version row only when this says 0.
 */
static void cached_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct sq_search *ss = sqlite3_user_data(ctx);

	(void)argc;
	vcache_unpin(ss->pin);
	ss->pin = vcache_get(ss->vc, sqlite3_value_int64(argv[0]));
	sqlite3_result_int(ctx, ss->pin != NULL);
}

static enum err search_state(struct conn *cn, struct sq_search **out, struct ctx *c)
{
	struct sq_search **slot = sq_conn_search(cn);
	int rc;

	if (!*slot) {
		rc = sqlite3_create_function_v2(sq_conn_db(cn), "veranda_key", 1,
						SQLITE_UTF8 | SQLITE_DETERMINISTIC |
							SQLITE_INNOCUOUS,
						NULL, key_fn, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			sq_note_error(cn, rc);
			return sq_fail(cn, rc, c, "cannot set up search");
		}
		/*
		 * Read the database through a memory map: a search touches many
		 * pages spread over the file, and pread() copies each of them
		 * into the connection's page cache (SQLite caps the map at its
		 * SQLITE_MAX_MMAP_SIZE; pages past it are still read).  Failure
		 * is not an error: reads then go through pread() as before.
		 */
		sqlite3_exec(sq_conn_db(cn), "PRAGMA mmap_size = " MMAP_SIZE_TEXT, NULL, NULL, NULL);
		*slot = xcalloc(1, sizeof(**slot));
		(*slot)->vc = sq_conn_vcache(cn);
		if ((*slot)->vc) {
			rc = sqlite3_create_function_v2(sq_conn_db(cn), "veranda_cached", 1,
							SQLITE_UTF8 | SQLITE_INNOCUOUS, *slot,
							cached_fn, NULL, NULL, NULL);
			if (rc != SQLITE_OK)
				(*slot)->vc = NULL; /* search without it */
		}
	}
	*out = *slot;
	return ERR_OK;
}

/*
 * The prepared statement for 'sql' from the cache, preparing it (and
 * evicting the least recently used one) on a miss.  SQLite's result code;
 * on failure the error is noted on the connection.
 */
static int cache_get(struct conn *cn, struct sq_search *ss, const char *sql, size_t len,
		     sqlite3_stmt **out)
{
	uint64_t h = hash_sql(sql, len);
	struct slot *victim = &ss->slot[0];
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	ss->tick++;
	for (int i = 0; i < CACHE_SLOTS; i++) {
		struct slot *sl = &ss->slot[i];

		if (sl->used && sl->hash == h && !strcmp(sl->sql, sql)) {
			sl->used = ss->tick;
			*out = sl->st;
			return SQLITE_OK;
		}
		if (sl->used < victim->used)
			victim = sl;
	}
	rc = sqlite3_prepare_v3(sq_conn_db(cn), sql, (int)len + 1, SQLITE_PREPARE_PERSISTENT, &st,
				NULL);
	if (rc != SQLITE_OK) {
		sq_note_error(cn, rc);
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(victim->st);
	free(victim->sql);
	victim->sql = xstrndup(sql, len);
	victim->hash = h;
	victim->used = ss->tick;
	victim->st = st;
	*out = st;
	return SQLITE_OK;
}

/* ---- the SQL builder ---- */

enum bind_kind { B_TEXT, B_INT, B_REAL };

struct bindv {
	enum bind_kind kind;
	const char *s;
	int64_t i;
	double r;
};

/*
 * A statement being built: its text, its bound values in order (each
 * "?" in the text is the next one), and an arena for generated names
 * and values.  Overflow of either cap sets 'complex' once.
 */
struct gen {
	struct buf sql;
	struct bindv *b;         /* 'inline' until it outgrows it, then the heap */
	int nb, cap;
	struct bindv inline_b[BINDS_INLINE];
	bool complex;
	int alias;
	int64_t now;
	struct arena a;
	/*
	 * The page's resources: the SQL expression of their rid ("r.rid" over
	 * the resource table; the driver's rid in the lean shape), and in the
	 * walk shape the driver column that holds sort key 0 (else NULL).
	 */
	const char *rid;
	const char *key0_col;
	const struct store_sort *key0;
	bool vcache;             /* join versions through veranda_cached() */
};

static void gen_init(struct gen *g)
{
	g->sql = (struct buf)BUF_INIT(SQL_MAX);
	g->b = g->inline_b;
	g->nb = 0;
	g->cap = BINDS_INLINE;
	g->complex = false;
	g->alias = 0;
	g->now = clock_now_ms();
	g->a = (struct arena)ARENA_INIT;
	g->rid = "r.rid";
	g->key0_col = NULL;
	g->key0 = NULL;
	buf_grow(&g->sql, SQL_INITIAL);
}

static void gen_release(struct gen *g)
{
	buf_release(&g->sql);
	if (g->b != g->inline_b)
		free(g->b);
	arena_release(&g->a);
}

/* Append the decimal digits of 'v'. */
static void emit_num(struct gen *g, size_t v)
{
	char d[24];
	int n = 0;

	do {
		d[sizeof(d) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_add(&g->sql, d + sizeof(d) - n, (size_t)n);
}

/*
 * Append 'fmt' with its arguments.  The statement text is built anew for
 * every search, from a few hundred pieces: the formats used here are only
 * %s and %zu, which this expands itself (vsnprintf costs more than the
 * rest of the builder); any other conversion goes to buf_vaddf().
 */
static void emit(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct gen *g, const char *fmt, ...)
{
	const char *p = fmt, *pct;
	va_list ap;

	va_start(ap, fmt);
	while ((pct = strchr(p, '%')) != NULL) {
		buf_add(&g->sql, p, (size_t)(pct - p));
		if (pct[1] == 's') {
			buf_adds(&g->sql, va_arg(ap, const char *));
			p = pct + 2;
		} else if (pct[1] == 'z' && pct[2] == 'u') {
			emit_num(g, va_arg(ap, size_t));
			p = pct + 3;
		} else {
			buf_vaddf(&g->sql, pct, ap);
			p = "";
			break;
		}
	}
	buf_adds(&g->sql, p);
	va_end(ap);
	if (g->sql.err)
		g->complex = true;
}

/* Append "?" bound to the next value. */
static struct bindv *push(struct gen *g)
{
	if (g->nb == BINDS_MAX) {
		/* the statement is refused: the last slot is scratch from now on */
		g->complex = true;
		return &g->b[BINDS_MAX - 1];
	}
	if (g->nb == g->cap) {
		int ncap = g->cap * 4 < BINDS_MAX ? g->cap * 4 : BINDS_MAX;
		struct bindv *nb = xmalloc((size_t)ncap * sizeof(*nb));

		memcpy(nb, g->b, (size_t)g->nb * sizeof(*nb));
		if (g->b != g->inline_b)
			free(g->b);
		g->b = nb;
		g->cap = ncap;
	}
	if (buf_addch(&g->sql, '?'))
		g->complex = true;
	return &g->b[g->nb++];
}

static void bind_text(struct gen *g, const char *s)
{
	struct bindv *v = push(g);

	v->kind = B_TEXT;
	v->s = s;
}

static void bind_int(struct gen *g, int64_t i)
{
	struct bindv *v = push(g);

	v->kind = B_INT;
	v->i = i;
}

static void bind_real(struct gen *g, double r)
{
	struct bindv *v = push(g);

	v->kind = B_REAL;
	v->r = r;
}

/* A fresh table alias "<prefix><n>" (arena-owned). */
static const char *alias(struct gen *g, const char *prefix)
{
	size_t n = strlen(prefix), v = (size_t)++g->alias;
	char *out = arena_alloc(&g->a, n + 24), *d = out + n + 23;

	memcpy(out, prefix, n);
	*d = '\0';
	do {
		*--d = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memmove(out + n, d, (size_t)(out + n + 23 - d) + 1);
	return out;
}

/* "<a><b>" in the statement's arena. */
static const char *cat(struct gen *g, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	char *out = arena_alloc(&g->a, na + nb + 1);

	memcpy(out, a, na);
	memcpy(out + na, b, nb + 1);
	return out;
}

/* Bind every value of 'g' to 'q' (which starts unbound). */
static void bind_all(const struct gen *g, struct q *q)
{
	for (int i = 0; i < g->nb; i++) {
		const struct bindv *v = &g->b[i];

		switch (v->kind) {
		case B_TEXT:
			sq_bind_text(q, i + 1, v->s);
			break;
		case B_INT:
			sq_bind_int(q, i + 1, v->i);
			break;
		case B_REAL:
			sq_bind_real(q, i + 1, v->r);
			break;
		}
	}
}

/* ---- matches: one index row against one search value ---- */

/*
 * The smallest string greater than every string that starts with 'p'
 * (bytewise, as SQLite's BINARY collation compares): 'p' with its last
 * byte below 0xFF incremented.  NULL when there is none (p empty or all
 * 0xFF bytes).  The result may not be valid UTF-8; it is only compared.
 */
static const char *prefix_end(struct gen *g, const char *p)
{
	size_t n = strlen(p);
	char *e;

	while (n > 0 && (unsigned char)p[n - 1] == 0xFF)
		n--;
	if (n == 0)
		return NULL;
	e = arena_strndup(&g->a, p, n);
	e[n - 1] = (char)((unsigned char)e[n - 1] + 1);
	return e;
}

/* "col starts with p" as a range the index on col can seek. */
static void emit_prefix(struct gen *g, const char *col, const char *p)
{
	const char *end = prefix_end(g, p);

	emit(g, "%s >= ", col);
	bind_text(g, p);
	if (end) {
		emit(g, " AND %s < ", col);
		bind_text(g, end);
	}
}

/* Token system: NULL any, "" none (NULL or empty), else equal. */
static void emit_system(struct gen *g, const char *x, const char *sys, bool *and)
{
	if (!sys)
		return;
	if (*and)
		emit(g, " AND ");
	if (!*sys) {
		emit(g, "(%s.system IS NULL OR %s.system = '')", x, x);
	} else {
		emit(g, "%s.system = ", x);
		bind_text(g, sys);
	}
	*and = true;
}

static void emit_eq(struct gen *g, const char *x, const char *col, const char *v, bool *and)
{
	if (!v)
		return;
	if (*and)
		emit(g, " AND ");
	emit(g, "%s.%s = ", x, col);
	bind_text(g, v);
	*and = true;
}

static int64_t sat_add(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

/*
 * A date row [lo, hi] (inclusive ms) against the search range [vlo, vhi]
 * with FHIR prefix 'cmp':
 *   eq  row inside the value            ne  not so
 *   gt  row.hi > vhi    lt  row.lo < vlo    ge  row.hi >= vlo    le  row.lo <= vhi
 *   sa  row.lo > vhi    eb  row.hi < vlo
 *   ap  the row overlaps the value widened on both sides by a tenth of the
 *       gap between the value and now (0 when now falls inside it), and by
 *       at least one day.
 * eq adds the implied "lo <= vhi" so that an index on lo gives a range.
 */
static void emit_date(struct gen *g, enum store_cmp cmp, const char *lo, const char *hi,
		      int64_t vlo, int64_t vhi)
{
	int64_t gap, w;

	switch (cmp) {
	case STORE_CMP_EQ:
		emit(g, "%s >= ", lo);
		bind_int(g, vlo);
		emit(g, " AND %s <= ", lo);
		bind_int(g, vhi);
		emit(g, " AND %s <= ", hi);
		bind_int(g, vhi);
		break;
	case STORE_CMP_NE:
		emit(g, "(%s < ", lo);
		bind_int(g, vlo);
		emit(g, " OR %s > ", hi);
		bind_int(g, vhi);
		emit(g, ")");
		break;
	case STORE_CMP_GT:
		emit(g, "%s > ", hi);
		bind_int(g, vhi);
		break;
	case STORE_CMP_LT:
		emit(g, "%s < ", lo);
		bind_int(g, vlo);
		break;
	case STORE_CMP_GE:
		emit(g, "%s >= ", hi);
		bind_int(g, vlo);
		break;
	case STORE_CMP_LE:
		emit(g, "%s <= ", lo);
		bind_int(g, vhi);
		break;
	case STORE_CMP_SA:
		emit(g, "%s > ", lo);
		bind_int(g, vhi);
		break;
	case STORE_CMP_EB:
		emit(g, "%s < ", hi);
		bind_int(g, vlo);
		break;
	case STORE_CMP_AP:
		if (g->now > vhi)
			gap = sat_add(g->now, -vhi);
		else if (g->now < vlo)
			gap = sat_add(vlo, -g->now);
		else
			gap = 0;
		w = gap / 10 > DAY_MS ? gap / 10 : DAY_MS;
		emit(g, "%s <= ", lo);
		bind_int(g, sat_add(vhi, w));
		emit(g, " AND %s >= ", hi);
		bind_int(g, sat_add(vlo, -w));
		break;
	}
}

/*
 * A number or quantity row value 'col' against search value 'num' with
 * precision range [nlo, nhi):
 *   eq  nlo <= value < nhi       ne  not so
 *   lt, eb  value < num          gt, sa  value > num
 *   le  value <= num             ge  value >= num
 *   ap  within 10% of num, or within the precision range when that is
 *       wider (ap1 is 0.5 .. 1.5, ap100 is 90 .. 110)
 */
static void emit_number(struct gen *g, const struct store_match *m, const char *col)
{
	double d, lo, hi;

	switch (m->cmp) {
	case STORE_CMP_EQ:
		emit(g, "%s >= ", col);
		bind_real(g, m->nlo);
		emit(g, " AND %s < ", col);
		bind_real(g, m->nhi);
		break;
	case STORE_CMP_NE:
		emit(g, "(%s < ", col);
		bind_real(g, m->nlo);
		emit(g, " OR %s >= ", col);
		bind_real(g, m->nhi);
		emit(g, ")");
		break;
	case STORE_CMP_LT:
	case STORE_CMP_EB:
		emit(g, "%s < ", col);
		bind_real(g, m->num);
		break;
	case STORE_CMP_GT:
	case STORE_CMP_SA:
		emit(g, "%s > ", col);
		bind_real(g, m->num);
		break;
	case STORE_CMP_LE:
		emit(g, "%s <= ", col);
		bind_real(g, m->num);
		break;
	case STORE_CMP_GE:
		emit(g, "%s >= ", col);
		bind_real(g, m->num);
		break;
	case STORE_CMP_AP:
		d = fabs(m->num) * 0.1;
		lo = fmin(m->num - d, m->nlo);
		hi = fmax(m->num + d, m->nhi);
		emit(g, "%s >= ", col);
		bind_real(g, lo);
		emit(g, " AND %s <= ", col);
		bind_real(g, hi);
		break;
	}
}

/* Match 'm' of cond 'cd' against the index row aliased 'x' (query.h semantics). */
static void emit_match(struct gen *g, const struct store_cond *cd, const struct store_match *m,
		       const char *x)
{
	char col[64], col2[64];
	bool and = false;

	switch (cd->kind) {
	case STORE_IX_TOKEN:
		if (cd->mod == STORE_MOD_TEXT) {
			/* Rows keep display/text as written: ASCII-lowercase it here. */
			snprintf(col, sizeof(col), "lower(%s.text)", x);
			emit_prefix(g, col, m->a);
			return;
		}
		emit_eq(g, x, "code", m->b, &and);
		emit_system(g, x, m->a, &and);
		if (cd->mod == STORE_MOD_OF_TYPE)
			emit_eq(g, x, "text", m->c, &and);
		if (!and)
			emit(g, "1");
		return;
	case STORE_IX_STRING:
		snprintf(col, sizeof(col), "%s.norm", x);
		if (cd->mod == STORE_MOD_EXACT) {
			emit_eq(g, x, "exact", m->b, &and);
			emit_eq(g, x, "norm", m->a, &and);
		} else if (cd->mod == STORE_MOD_CONTAINS) {
			emit(g, "instr(%s, ", col);
			bind_text(g, m->a);
			emit(g, ") > 0");
		} else {
			emit_prefix(g, col, m->a);
		}
		return;
	case STORE_IX_DATE:
		snprintf(col, sizeof(col), "%s.lo", x);
		snprintf(col2, sizeof(col2), "%s.hi", x);
		emit_date(g, m->cmp, col, col2, m->lo, m->hi);
		return;
	case STORE_IX_REFERENCE:
		if (m->b) {
			emit_eq(g, x, "target_id", m->b, &and);
			emit_eq(g, x, "target_type", m->a, &and);
		} else if (m->c) {
			emit_eq(g, x, "url", m->c, &and);
		} else {
			/* rows that keep only the URL (another server's) may be to that type */
			emit(g, "(%s.target_type = ", x);
			bind_text(g, m->a);
			emit(g, " OR %s.target_type IS NULL)", x);
		}
		return;
	case STORE_IX_QUANTITY:
	case STORE_IX_NUMBER:
		snprintf(col, sizeof(col), "%s.value", x);
		emit_number(g, m, col);
		if (cd->kind == STORE_IX_QUANTITY) {
			and = true;
			emit_eq(g, x, "code", m->b, &and);
			emit_eq(g, x, "system", m->a, &and);
		}
		return;
	case STORE_IX_URI:
		snprintf(col, sizeof(col), "%s.uri", x);
		if (cd->mod == STORE_MOD_BELOW) {
			emit_prefix(g, col, m->a);
		} else if (cd->mod == STORE_MOD_ABOVE) {
			/* every prefix of the value lies in [its first character, value] */
			size_t first = 1;
			while (((unsigned char)m->a[first] & 0xC0) == 0x80)
				first++;
			emit(g, "%s <= ", col);
			bind_text(g, m->a);
			emit(g, " AND %s >= ", col);
			bind_text(g, arena_strndup(&g->a, m->a, first));
			emit(g, " AND substr(");
			bind_text(g, m->a);
			emit(g, ", 1, length(%s)) = %s", col, col);
		} else {
			emit_eq(g, x, "uri", m->a, &and);
		}
		return;
	}
}

/* ---- conds ---- */

/* One level of a (possibly nested) search: the resources a cond is about. */
struct lvl {
	const char *type;       /* their resource type (bound as a value) */
	const char *rid;        /* SQL expression of their rid */
	const char *res;        /* alias of their resource row, or NULL */
};

static bool is_id(const struct store_cond *cd)
{
	return cd->kind == STORE_IX_TOKEN && !strcmp(cd->param, "_id") &&
	       (cd->mod == STORE_MOD_NONE || cd->mod == STORE_MOD_NOT ||
		cd->mod == STORE_MOD_MISSING || cd->mod == STORE_MOD_PRESENT);
}

static bool is_updated(const struct store_cond *cd)
{
	return cd->kind == STORE_IX_DATE && !strcmp(cd->param, "_lastUpdated");
}

static bool is_special(const struct store_cond *cd)
{
	return !cd->has && !cd->chain && (is_id(cd) || is_updated(cd));
}

static int max_rank(int a, int b)
{
	return a > b ? a : b;
}

/*
 * How selective the driver form of 'cd' is (lower is better), RANK_NONE
 * when it has none (negations, "ne", too many alternatives):
 *   0 _id;  1 reference to an id, patient compartment;  2 token with a
 *   code, uri equality;  3 string prefix, date, number, quantity with a
 *   code, uri below;  4 token with a system only, reference by url,
 *   quantity without a code, uri above;  5 text, contains, :missing=false,
 *   reference to a type only.
 * A chain or _has ranks as its inner cond, but never better than 2.
 */
static int drive_rank(const struct store_cond *cd)
{
	int rank = 0, r;

	if (cd->has || cd->chain) {
		r = drive_rank(cd->has ? cd->has : cd->chain);
		return r == RANK_NONE ? RANK_NONE : max_rank(2, r);
	}
	if (cd->mod == STORE_MOD_NOT || cd->mod == STORE_MOD_MISSING)
		return RANK_NONE;
	if (cd->mod == STORE_MOD_PRESENT)
		return is_special(cd) ? RANK_NONE : 5;
	if (cd->nm > DRIVE_ARMS_MAX)
		return RANK_NONE;
	if (is_id(cd))
		return 0;
	for (size_t i = 0; i < cd->nm; i++) {
		const struct store_match *m = &cd->m[i];

		if (m->cmp == STORE_CMP_NE && (cd->kind == STORE_IX_DATE ||
					       cd->kind == STORE_IX_NUMBER ||
					       cd->kind == STORE_IX_QUANTITY))
			return RANK_NONE;
		switch (cd->kind) {
		case STORE_IX_TOKEN:
			r = cd->mod == STORE_MOD_TEXT ? 5 : m->b ? 2 : 4;
			break;
		case STORE_IX_STRING:
			r = cd->mod == STORE_MOD_CONTAINS ? 5
			    : cd->mod == STORE_MOD_EXACT  ? (m->a ? 3 : 5)
							  : 3;
			break;
		case STORE_IX_REFERENCE:
			r = m->b ? 1 : m->c ? 4 : 5;
			break;
		case STORE_IX_QUANTITY:
			r = m->b ? 3 : 4;
			break;
		case STORE_IX_URI:
			r = cd->mod == STORE_MOD_ABOVE ? 4 : cd->mod == STORE_MOD_BELOW ? 3 : 2;
			break;
		default:
			r = 3;
			break;
		}
		rank = max_rank(rank, r);
	}
	return rank;
}

static void emit_filter(struct gen *g, const struct store_cond *cd, const struct lvl *L);

/* A filter that needs the resource row, at a level that has only its rid. */
static void emit_with_resource(struct gen *g, const struct store_cond *cd, const struct lvl *L)
{
	const char *s = alias(g, "s");
	struct lvl sub = {L->type, cat(g, s, ".rid"), s};

	emit(g, "EXISTS (SELECT 1 FROM resource %s WHERE %s.rid = %s AND ", s, s, L->rid);
	emit_filter(g, cd, &sub);
	emit(g, ")");
}

/* _id and _lastUpdated: tests on the resource row itself. */
static void emit_special(struct gen *g, const struct store_cond *cd, const struct lvl *L)
{
	char col[64];

	if (cd->mod == STORE_MOD_MISSING) {
		emit(g, "0");
		return;
	}
	if (cd->mod == STORE_MOD_PRESENT) {
		emit(g, "1");
		return;
	}
	if (is_id(cd)) {
		emit(g, "%s.id %sIN (", L->res, cd->mod == STORE_MOD_NOT ? "NOT " : "");
		for (size_t i = 0; i < cd->nm; i++) {
			if (i)
				emit(g, ", ");
			bind_text(g, cd->m[i].b);
		}
		emit(g, ")");
		return;
	}
	snprintf(col, sizeof(col), "%s.last_updated", L->res);
	emit(g, "(");
	for (size_t i = 0; i < cd->nm; i++) {
		emit(g, i ? " OR (" : "(");
		emit_date(g, cd->m[i].cmp, col, col, cd->m[i].lo, cd->m[i].hi);
		emit(g, ")");
	}
	emit(g, ")");
}

/*
 * The filter form of 'cd' for the resources of level L: a boolean
 * expression probing their index rows by rid (EXISTS), or for a chain the
 * referenced resources, or for _has the resources that point at them.
 */
static void emit_filter(struct gen *g, const struct store_cond *cd, const struct lvl *L)
{
	const char *x, *t;
	struct lvl sub;

	if (cd->has) {
		if (!L->res) {
			emit_with_resource(g, cd, L);
			return;
		}
		x = alias(g, "x");
		sub = (struct lvl){cd->has_type, cat(g, x, ".rid"), NULL};
		emit(g, "EXISTS (SELECT 1 FROM ix_reference %s WHERE %s.type = ", x, x);
		bind_text(g, cd->has_type);
		emit(g, " AND %s.param = ", x);
		bind_text(g, cd->has_param);
		emit(g, " AND %s.target_id = %s.id AND %s.target_type = ", x, L->res, x);
		bind_text(g, L->type);
		emit(g, " AND ");
		emit_filter(g, cd->has, &sub);
		emit(g, ")");
		return;
	}
	if (cd->chain) {
		x = alias(g, "x");
		t = alias(g, "t");
		sub = (struct lvl){cd->chain_type, cat(g, t, ".rid"), t};
		emit(g, "EXISTS (SELECT 1 FROM ix_reference %s JOIN resource %s ON %s.type = ", x, t,
		     t);
		bind_text(g, cd->chain_type);
		emit(g, " AND %s.id = %s.target_id WHERE %s.rid = %s AND %s.param = ", t, x, x,
		     L->rid, x);
		bind_text(g, cd->param);
		emit(g, " AND %s.target_type = ", x);
		bind_text(g, cd->chain_type);
		emit(g, " AND %s.deleted = 0 AND ", t);
		emit_filter(g, cd->chain, &sub);
		emit(g, ")");
		return;
	}
	if (is_special(cd)) {
		if (!L->res)
			emit_with_resource(g, cd, L);
		else
			emit_special(g, cd, L);
		return;
	}
	x = alias(g, "x");
	emit(g, "%sEXISTS (SELECT 1 FROM %s %s WHERE %s.rid = %s AND %s.param = ",
	     cd->mod == STORE_MOD_NOT || cd->mod == STORE_MOD_MISSING ? "NOT " : "",
	     ix_table[cd->kind], x, x, L->rid, x);
	bind_text(g, cd->param);
	if (cd->mod != STORE_MOD_MISSING && cd->mod != STORE_MOD_PRESENT) {
		emit(g, " AND (");
		for (size_t i = 0; i < cd->nm; i++) {
			emit(g, i ? " OR (" : "(");
			emit_match(g, cd, &cd->m[i], x);
			emit(g, ")");
		}
		emit(g, ")");
	}
	emit(g, ")");
}

/*
 * The driver form of 'cd' (drive_rank() < RANK_NONE): a SELECT of the rids
 * of the resources of 'type' it matches, seeking a value index:
 *   ix_<kind> (type, param, value...) per alternative, joined by UNION ALL;
 *   resource (type, id) for _id, (type, deleted, last_updated) for
 *   _lastUpdated; a chain seeks the referenced resources first, then the
 *   references to them by (type, param, target_id); _has seeks the
 *   referring resources first, then their references' targets by
 *   (type, id).  Columns that would offer the planner a worse index are
 *   written "+col".
 */
static void emit_driver(struct gen *g, const struct store_cond *cd, const char *type)
{
	const char *x, *t;

	if (cd->has) {
		t = alias(g, "t");
		x = alias(g, "x");
		emit(g, "SELECT %s.rid FROM resource %s WHERE %s.type = ", t, t, t);
		bind_text(g, type);
		emit(g, " AND %s.id IN (SELECT %s.target_id FROM ix_reference %s WHERE %s.rid IN (",
		     t, x, x, x);
		emit_driver(g, cd->has, cd->has_type);
		emit(g, ") AND +%s.type = ", x);
		bind_text(g, cd->has_type);
		emit(g, " AND +%s.param = ", x);
		bind_text(g, cd->has_param);
		emit(g, " AND +%s.target_type = ", x);
		bind_text(g, type);
		emit(g, ")");
		return;
	}
	if (cd->chain) {
		x = alias(g, "x");
		t = alias(g, "t");
		emit(g, "SELECT %s.rid FROM ix_reference %s WHERE %s.type = ", x, x, x);
		bind_text(g, type);
		emit(g, " AND %s.param = ", x);
		bind_text(g, cd->param);
		emit(g, " AND %s.target_type = ", x);
		bind_text(g, cd->chain_type);
		emit(g, " AND %s.target_id IN (SELECT %s.id FROM resource %s WHERE %s.rid IN (", x, t,
		     t, t);
		emit_driver(g, cd->chain, cd->chain_type);
		emit(g, ") AND +%s.type = ", t);
		bind_text(g, cd->chain_type);
		emit(g, " AND %s.deleted = 0)", t);
		return;
	}
	if (is_id(cd)) {
		t = alias(g, "t");
		emit(g, "SELECT %s.rid FROM resource %s WHERE %s.type = ", t, t, t);
		bind_text(g, type);
		emit(g, " AND %s.id IN (", t);
		for (size_t i = 0; i < cd->nm; i++) {
			if (i)
				emit(g, ", ");
			bind_text(g, cd->m[i].b);
		}
		emit(g, ")");
		return;
	}
	if (is_updated(cd)) {
		for (size_t i = 0; i < cd->nm; i++) {
			char col[64];

			t = alias(g, "t");
			snprintf(col, sizeof(col), "%s.last_updated", t);
			emit(g, "%sSELECT %s.rid FROM resource %s WHERE %s.type = ",
			     i ? " UNION ALL " : "", t, t, t);
			bind_text(g, type);
			emit(g, " AND %s.deleted = 0 AND ", t);
			emit_date(g, cd->m[i].cmp, col, col, cd->m[i].lo, cd->m[i].hi);
		}
		return;
	}
	for (size_t i = 0; i < (cd->mod == STORE_MOD_PRESENT ? 1 : cd->nm); i++) {
		x = alias(g, "x");
		emit(g, "%sSELECT %s.rid FROM %s %s WHERE %s.type = ", i ? " UNION ALL " : "", x,
		     ix_table[cd->kind], x, x);
		bind_text(g, type);
		emit(g, " AND %s.param = ", x);
		bind_text(g, cd->param);
		if (cd->mod != STORE_MOD_PRESENT) {
			emit(g, " AND ");
			emit_match(g, cd, &cd->m[i], x);
		}
	}
}

/* ---- sort keys and the keyset ---- */

enum key_type { KEY_TEXT, KEY_INT, KEY_REAL };

static enum key_type key_type(const struct store_sort *k)
{
	if (k->by == STORE_SORT_ID)
		return KEY_TEXT;
	if (k->by == STORE_SORT_LAST_UPDATED)
		return KEY_INT;
	switch (k->kind) {
	case STORE_IX_DATE:
		return KEY_INT;
	case STORE_IX_NUMBER:
	case STORE_IX_QUANTITY:
		return KEY_REAL;
	default:
		return KEY_TEXT;
	}
}

/* Can the key be NULL (a parameter the resource may have no value for)? */
static bool key_nullable(const struct store_sort *k)
{
	return k->by == STORE_SORT_PARAM;
}

/*
 * The value expression of sort key 'k' for the page's resource (g->rid;
 * keys on _id and _lastUpdated need the resource row 'r').  In the walk
 * shape, key 0 is the driver's column g->key0_col.
 */
static void emit_key(struct gen *g, const struct store_sort *k)
{
	static const char *const col_asc[STORE_IX_KINDS] = {
		[STORE_IX_TOKEN] = "code", [STORE_IX_STRING] = "norm", [STORE_IX_DATE] = "lo",
		[STORE_IX_REFERENCE] = "target_id", [STORE_IX_QUANTITY] = "value",
		[STORE_IX_NUMBER] = "value", [STORE_IX_URI] = "uri",
	};
	const char *x, *col;
	bool text;

	if (k->by == STORE_SORT_ID) {
		emit(g, "r.id");
		return;
	}
	if (k->by == STORE_SORT_LAST_UPDATED) {
		emit(g, "r.last_updated");
		return;
	}
	if (g->key0_col && k == g->key0) {
		emit(g, "%s", g->key0_col);
		return;
	}
	x = alias(g, "x");
	col = k->kind == STORE_IX_DATE && k->desc ? "hi" : col_asc[k->kind];
	text = key_type(k) == KEY_TEXT;
	emit(g, "%s(SELECT %s(%s.%s) FROM %s %s WHERE %s.rid = %s AND %s.param = ",
	     text ? "veranda_key(" : "", k->desc ? "max" : "min", x, col, ix_table[k->kind], x, x,
	     g->rid, x);
	bind_text(g, k->param);
	emit(g, ")%s", text ? ")" : "");
}

/* Bind the cursor's value of key i. */
static void bind_key(struct gen *g, const struct store_sort *k, const struct store_cursor *cur,
		     int i)
{
	switch (key_type(k)) {
	case KEY_TEXT:
		bind_text(g, cur->key[i].s);
		break;
	case KEY_INT:
		bind_int(g, cur->key[i].i);
		break;
	case KEY_REAL:
		bind_real(g, cur->key[i].r);
		break;
	}
}

/*
 * Rows strictly after the cursor in the page order (before it, when
 * walking backward).  The order is key 0 .. key n-1 (each ascending or
 * descending, NULLs last in the forward order), then rid; the condition
 * is the OR over i of "keys 0..i-1 equal the cursor's and key i comes
 * after it", ending with "all keys equal and rid comes after".  When every
 * key is a column that cannot be NULL and goes the way rid goes, it is
 * one row-value comparison an index can seek.
 */
static void emit_keyset(struct gen *g, const struct store_query *q, bool rid_desc)
{
	const struct store_cursor *cur = &q->cursor;
	bool back = q->backward, simple = true, first = true;
	size_t n = q->nsort;

	for (size_t i = 0; i < n; i++)
		if (key_nullable(&q->sort[i]) || q->sort[i].desc != rid_desc)
			simple = false;
	if (simple) {
		emit(g, " AND (");
		for (size_t i = 0; i < n; i++) {
			emit_key(g, &q->sort[i]);
			emit(g, ", ");
		}
		emit(g, "%s) %s (", g->rid, rid_desc != back ? "<" : ">");
		for (size_t i = 0; i < n; i++) {
			bind_key(g, &q->sort[i], cur, (int)i);
			emit(g, ", ");
		}
		bind_int(g, cur->rid);
		emit(g, ")");
		return;
	}
	emit(g, " AND (");
	for (size_t i = 0; i <= n; i++) {
		const struct store_sort *k = i < n ? &q->sort[i] : NULL;

		/* nothing comes after NULL going forward: NULLs are last */
		if (k && cur->key[i].null && !back)
			continue;
		emit(g, first ? "(" : " OR (");
		first = false;
		for (size_t j = 0; j < i; j++) {
			emit_key(g, &q->sort[j]);
			if (key_nullable(&q->sort[j]) && cur->key[j].null) {
				emit(g, " IS NULL AND ");
			} else {
				emit(g, " = ");
				bind_key(g, &q->sort[j], cur, (int)j);
				emit(g, " AND ");
			}
		}
		if (!k) {
			emit(g, "%s %s ", g->rid, rid_desc != back ? "<" : ">");
			bind_int(g, cur->rid);
		} else if (cur->key[i].null) {
			/* backward from a NULL: every non-NULL value comes before */
			emit_key(g, k);
			emit(g, " IS NOT NULL");
		} else if (!back && key_nullable(k)) {
			emit(g, "(");
			emit_key(g, k);
			emit(g, " %s ", k->desc ? "<" : ">");
			bind_key(g, k, cur, (int)i);
			emit(g, " OR ");
			emit_key(g, k);
			emit(g, " IS NULL)");
		} else {
			emit_key(g, k);
			emit(g, " %s ", k->desc != back ? "<" : ">");
			bind_key(g, k, cur, (int)i);
		}
		emit(g, ")");
	}
	emit(g, ")");
}

/* ---- the statements ---- */

enum stmt_kind { S_PAGE, S_COUNT };

/* Is rid the tie-breaker in descending order (the last key is descending)? */
static bool rid_desc(const struct store_query *q)
{
	return q->nsort > 0 && q->sort[q->nsort - 1].desc;
}

/*
 * How a statement reads its rows.  'drv' is the driving cond (nconds:
 * none; the compartment drives when the query has a patient).  In the
 * lean shape the page query reads the driver's index rows only, and the
 * resource and its JSON are joined to the rows of the page.  'keyed': the
 * driver is one reference to Patient/id, whose index rows carry sort_hi (the
 * newest end of the resource's 'date' values, 0005_sort_key.sql) after
 * the target (a Patient): 'walk' sorts by that column in index order, and conds
 * "date=ge|gt..." become a range of the same index ('prefilter'; with
 * 'absorbed' they need no probe at all).
 */
struct plan {
	size_t drv;
	bool driven;              /* by a cond or the compartment */
	bool lean;
	bool keyed;
	bool walk;
	bool prefilter;
	bool absorbed;
	bool unsorted;            /* lean in rid order */
	size_t ptok;              /* walk: the cond read from ix_patient_token (nconds: none) */
};

/* Can 'cd' drive from the FROM clause of a lean statement (one index range, no join)? */
static bool simple_driver(const struct store_cond *cd)
{
	return !cd->has && !cd->chain && !is_special(cd) &&
	       (cd->nm == 1 || cd->mod == STORE_MOD_PRESENT);
}

/*
 * Is 'cd' one reference to Patient/id?  Its index rows then hold sort_hi
 * in order (0005_sort_key.sql keeps it on references to patients only).
 */
static bool keyed_driver(const struct store_cond *cd)
{
	return simple_driver(cd) && cd->kind == STORE_IX_REFERENCE && cd->mod == STORE_MOD_NONE &&
	       cd->nm == 1 && cd->m[0].a && !strcmp(cd->m[0].a, "Patient") && cd->m[0].b;
}

/*
 * Is 'cd' "date=ge|gt v[,...]": some 'date' value ends at or after v?
 * That holds exactly when the newest end, sort_hi, does.
 */
static bool sort_hi_cond(const struct store_cond *cd)
{
	if (cd->has || cd->chain || cd->kind != STORE_IX_DATE || cd->mod != STORE_MOD_NONE ||
	    strcmp(cd->param, "date") || cd->nm == 0)
		return false;
	for (size_t i = 0; i < cd->nm; i++)
		if (cd->m[i].cmp != STORE_CMP_GE && cd->m[i].cmp != STORE_CMP_GT)
			return false;
	return true;
}

/*
 * Can a walk read 'cd' from ix_patient_token (0006_patient_token.sql)
 * instead of probing ix_token per resource: one category or code, with or
 * without its system?
 */
static bool patient_token_cond(const struct store_cond *cd)
{
	return simple_driver(cd) && cd->kind == STORE_IX_TOKEN && cd->mod == STORE_MOD_NONE &&
	       cd->m[0].b && sq_patient_token_param(cd->param);
}

/* Is the page sorted by -date only (key 0 is then sort_hi)? */
static bool by_newest_date(const struct store_query *q)
{
	const struct store_sort *k = &q->sort[0];

	return q->nsort == 1 && k->by == STORE_SORT_PARAM && k->kind == STORE_IX_DATE &&
	       k->desc && !strcmp(k->param, "date");
}

static struct plan plan_of(const struct store_query *q, enum stmt_kind kind)
{
	struct plan pl = {q->nconds, false, false, false, false, false, false, false, q->nconds};
	int best = RANK_NONE;
	bool by_params = q->nsort > 0, all_sort_hi = true;

	for (size_t i = 0; i < q->nconds; i++) {
		int r = drive_rank(&q->conds[i]);

		if (r < best) {
			best = r;
			pl.drv = i;
		}
	}
	if (best > DRIVE_MAX)
		pl.drv = q->nconds;
	/* the compartment drives unless _id does */
	if (q->patient && best > 0)
		pl.drv = q->nconds;
	pl.driven = q->patient || pl.drv < q->nconds;
	if (kind != S_PAGE || q->since)
		return pl;

	for (size_t i = 0; i < q->nsort; i++)
		if (q->sort[i].by != STORE_SORT_PARAM)
			by_params = false;
	pl.keyed = pl.drv < q->nconds && keyed_driver(&q->conds[pl.drv]);
	for (size_t i = 0; i < q->nconds; i++) {
		if (i == pl.drv)
			continue;
		if (sort_hi_cond(&q->conds[i]))
			pl.prefilter = pl.keyed;
		else
			all_sort_hi = false;
	}
	/*
	 * Lean: a page sorted by parameters evaluates every match before the
	 * first row comes out, so a resource row read per match is wasted
	 * unless something needs it (_since, keys on _id or _lastUpdated).
	 * An unsorted page stops after limit rows in rid order, probing the
	 * other conds only until then, so it goes lean only when nothing is
	 * left to probe: no other cond (Patient?name=smi, $everything), or
	 * only "date=ge|gt" that a keyed driver's index answers (a patient's
	 * appointments from today).  Its matches are then read from one index
	 * range and sorted by rid, instead of being collected into a
	 * temporary b-tree for "rid IN (...)" and read back in order.
	 */
	if (by_params) {
		if (pl.drv < q->nconds)
			pl.lean = simple_driver(&q->conds[pl.drv]) && q->type != NULL;
		else
			pl.lean = q->patient != NULL && q->type != NULL;
	} else if (q->nsort == 0) {
		bool simple = pl.drv < q->nconds ? simple_driver(&q->conds[pl.drv]) : q->patient != NULL;
		bool others = q->nconds > (pl.drv < q->nconds ? 1u : 0u);

		pl.lean = simple && (!others || (pl.keyed && all_sort_hi));
		pl.absorbed = pl.lean && others;
		pl.unsorted = pl.lean;
	}
	pl.keyed = pl.keyed && pl.lean;
	pl.prefilter = pl.prefilter && pl.lean;
	pl.walk = pl.keyed && by_newest_date(q);
	for (size_t i = 0; pl.walk && i < q->nconds && pl.ptok == q->nconds; i++)
		if (i != pl.drv && patient_token_cond(&q->conds[i]))
			pl.ptok = i;
	return pl;
}

/* Conds other than the driver as filters of the resources at level L. */
static void emit_filters(struct gen *g, const struct store_query *q, const struct plan *pl,
			 const struct lvl *L)
{
	for (size_t i = 0; i < q->nconds; i++) {
		if (i == pl->drv || i == pl->ptok || (pl->absorbed && sort_hi_cond(&q->conds[i])))
			continue;
		emit(g, " AND ");
		emit_filter(g, &q->conds[i], L);
	}
}

/*
 * "date=ge|gt" conds as ranges of the keyed driver 'x' (the column sort_hi
 * of its rows): exactly the resources whose 'date' values match.
 */
static void emit_prefilter(struct gen *g, const struct store_query *q, const struct plan *pl,
			   const char *x)
{
	char col[64];

	snprintf(col, sizeof(col), "%s.sort_hi", x);
	for (size_t i = 0; i < q->nconds; i++) {
		const struct store_cond *cd = &q->conds[i];

		if (i == pl->drv || !sort_hi_cond(cd))
			continue;
		emit(g, " AND (");
		for (size_t k = 0; k < cd->nm; k++) {
			emit(g, k ? " OR (" : "(");
			emit_date(g, cd->m[k].cmp, col, col, cd->m[k].lo, cd->m[k].hi);
			emit(g, ")");
		}
		emit(g, ")");
	}
}


/* The compartment rows' type: the query's type or type list (none: every type). */
static void emit_compartment_types(struct gen *g, const struct store_query *q)
{
	if (q->type) {
		emit(g, " AND c.type = ");
		bind_text(g, q->type);
	} else if (q->ntypes) {
		emit(g, " AND c.type IN (");
		for (size_t i = 0; i < q->ntypes; i++) {
			if (i)
				emit(g, ", ");
			bind_text(g, q->types[i]);
		}
		emit(g, ")");
	}
}

/* WHERE of a page or count: type, compartment, since, conds (driver first). */
static void emit_where(struct gen *g, const struct store_query *q, const struct plan *pl,
		       bool page)
{
	const struct lvl top = {q->type, "r.rid", "r"};
	size_t drv = pl->drv;

	emit(g, " WHERE ");
	if (q->type) {
		emit(g, "%sr.type = ", pl->driven ? "+" : "");
		bind_text(g, q->type);
		emit(g, " AND ");
	}
	emit(g, "r.deleted = 0");
	if (q->patient) {
		if (drv == q->nconds) {
			/*
			 * Every compartment row of the patient is read here (IN sorts
			 * them): by the primary key, which also seeks the types of a
			 * type list, rather than by (patient, rid), which serves the
			 * lean shape's walk in rid order.
			 */
			emit(g, " AND r.rid IN (SELECT c.rid FROM compartment c INDEXED BY "
				"sqlite_autoindex_compartment_1 WHERE c.patient = ");
			bind_text(g, q->patient);
		} else {
			emit(g, " AND EXISTS (SELECT 1 FROM compartment c WHERE c.patient = ");
			bind_text(g, q->patient);
		}
		emit_compartment_types(g, q);
		emit(g, drv == q->nconds ? ")" : " AND c.rid = r.rid)");
	}
	if (q->since) {
		emit(g, " AND r.last_updated >= ");
		bind_int(g, q->since);
	}
	if (drv < q->nconds) {
		emit(g, " AND r.rid IN (");
		emit_driver(g, &q->conds[drv], q->type);
		emit(g, ")");
	}
	emit_filters(g, q, pl, &top);
	if (page && q->cursor.set) {
		emit(g, " AND r.rid <= ");
		bind_int(g, q->cursor.snapshot_rid);
		emit_keyset(g, q, rid_desc(q));
	}
}

/* The snapshot column of a page: the cursor's, or the newest rid now. */
static void emit_snap(struct gen *g, const struct store_query *q)
{
	if (q->cursor.set)
		bind_int(g, q->cursor.snapshot_rid);
	else
		emit(g, "(SELECT max(rid) FROM resource)");
	emit(g, " AS snap");
}

/*
 * ORDER BY ... LIMIT of a page whose resources' rid is g->rid.  Without
 * 'limited' the LIMIT is -1 (none): the caller stops stepping after a page
 * (the clause still keeps the ORDER BY of a subquery in force).
 */
static void emit_order(struct gen *g, const struct store_query *q, bool limited)
{
	bool rdesc = rid_desc(q), back = q->backward;

	emit(g, " ORDER BY ");
	for (size_t i = 0; i < q->nsort; i++) {
		const struct store_sort *k = &q->sort[i];
		bool desc = k->desc != back;

		if (k->by == STORE_SORT_PARAM)
			emit(g, "k%zu %s NULLS %s, ", i, desc ? "DESC" : "ASC",
			     back ? "FIRST" : "LAST");
		else
			emit(g, "%s %s, ", k->by == STORE_SORT_ID ? "r.id" : "r.last_updated",
			     desc ? "DESC" : "ASC");
	}
	emit(g, "%s %s LIMIT ", g->rid, rdesc != back ? "DESC" : "ASC");
	/* one more row than the page says whether another page exists */
	if (limited)
		bind_int(g, q->limit + 1);
	else
		emit(g, "-1");
}

/*
 * The version row of each page row, by seq, closing the page subquery.
 * With the version cache (g->vcache), a row the cache holds is not joined: the CASE
 * gives the seek a NULL key (SQLite then skips it and fills v with NULLs)
 * and veranda_cached() has pinned the entry for sqlite_search().  The
 * LEFT JOIN keeps that row, and the subquery's order as CROSS JOIN does.
 */
static void emit_version_join(struct gen *g)
{
	if (g->vcache)
		emit(g, ") p LEFT JOIN resource_version v ON v.seq ="
			" CASE WHEN veranda_cached(p.seq) THEN NULL ELSE p.seq END");
	else
		emit(g, ") p CROSS JOIN resource_version v ON v.seq = p.seq");
}

/*
 * The first three characters of a string driver's prefix, when the page
 * can read ix_string_pre (0009_string_prefix.sql): the plain (prefix)
 * match of one value of at least three characters.  Characters as
 * SQLite's substr() counts them in UTF-8 text; NULL otherwise.
 */
static const char *string_pre(struct gen *g, const struct store_cond *cd)
{
	const char *a, *p;

	if (cd->kind != STORE_IX_STRING || cd->mod != STORE_MOD_NONE || cd->nm != 1)
		return NULL;
	a = cd->m[0].a;
	p = a;
	for (int chars = 0; chars < 3; chars++) {
		if (!*p)
			return NULL;
		p++;
		while (((unsigned char)*p & 0xC0) == 0x80)
			p++;
	}
	return arena_strndup(&g->a, a, (size_t)(p - a));
}

/*
 * The lean page statement (struct plan): the driver's rows are the page's
 * candidates, each once (DISTINCT: a resource may have several rows that
 * match); the version row and its JSON are joined after the LIMIT, by the
 * seq the driver's row carries.  Index and compartment rows exist only
 * for current, not deleted resources (store_put() replaces or removes them
 * with the version), so the resource row is not needed at all.
 *
 * Aliases are numbered in the same order as in the full shape (sort keys,
 * then the driver, then the filters; the walk shape keeps key 0's number
 * unused), so that a query's plan names the same tables either way.
 */
static void emit_lean(struct gen *g, const struct store_query *q, const struct plan *pl)
{
	const struct store_cond *cd = pl->drv < q->nconds ? &q->conds[pl->drv] : NULL;
	/* a resource with two matching rows comes twice: see the file comment */
	bool distinct = !pl->keyed && !pl->unsorted;
	int keys = 0;
	const char *x;
	struct lvl top;

	if (pl->walk)
		alias(g, "x");
	for (size_t i = pl->walk ? 1 : 0; i < q->nsort; i++)
		keys++;
	if (cd) {
		char num[24];

		snprintf(num, sizeof(num), "%d", g->alias + keys + 1);
		x = cat(g, "x", num);
	} else {
		x = "c";
	}
	g->rid = cat(g, x, ".rid");
	if (pl->walk) {
		g->key0 = &q->sort[0];
		g->key0_col = cat(g, x, ".sort_hi");
	}
	top = (struct lvl){q->type, g->rid, NULL};

	emit(g, "SELECT v.type, v.id, v.version, v.last_updated, v.deleted, p.seq, v.json,"
		" p.rid, p.snap");
	for (size_t i = 0; i < q->nsort; i++)
		emit(g, ", p.k%zu", i);
	emit(g, " FROM (SELECT %s%s AS rid, %s.seq AS seq, ", distinct ? "DISTINCT " : "", g->rid, x);
	emit_snap(g, q);
	for (size_t i = 0; i < q->nsort; i++) {
		emit(g, ", ");
		emit_key(g, &q->sort[i]);
		emit(g, " AS k%zu", i);
	}
	if (cd) {
		/*
		 * The driver's rows, by its table's value index:
		 *  - one category or code of the patient's resources
		 *    (ix_patient_token, in sort_hi order);
		 *  - a reference, by ix_reference_target named: without
		 *    statistics SQLite may take ix_reference_reverse instead, for
		 *    its rid order, and then look up every row's seq;
		 *  - unsorted and keyed by a patient, ix_reference_patient_rid
		 *    (schema 8), in rid order already: a partial index that
		 *    SQLite uses only when it sees the literal 'Patient', so that
		 *    is written instead of a bound target type.
		 */
		const struct store_cond *tk = pl->ptok < q->nconds ? &q->conds[pl->ptok] : NULL;
		bool patient_rid = pl->keyed && pl->unsorted;
		const char *dx = alias(g, "x");
		const char *table = tk ? "ix_patient_token" : ix_table[cd->kind];
		const char *ix = "";

		const char *pre = pl->unsorted ? string_pre(g, cd) : NULL;

		assert(!strcmp(dx, x));
		if (!tk && cd->kind == STORE_IX_REFERENCE)
			ix = patient_rid ? " INDEXED BY ix_reference_patient_rid"
					 : " INDEXED BY ix_reference_target";
		else if (pre)
			ix = " INDEXED BY ix_string_pre";
		emit(g, " FROM %s %s%s WHERE %s.type = ", table, x, ix, x);
		bind_text(g, q->type);
		if (tk) {
			emit(g, " AND %s.rparam = ", x);
			bind_text(g, cd->param);
			emit(g, " AND %s.patient = ", x);
			bind_text(g, cd->m[0].b);
			emit(g, " AND %s.param = ", x);
			bind_text(g, tk->param);
			emit(g, " AND ");
			emit_match(g, tk, &tk->m[0], x);
		} else {
			emit(g, " AND %s.param = ", x);
			bind_text(g, cd->param);
			if (patient_rid) {
				emit(g, " AND %s.target_id = ", x);
				bind_text(g, cd->m[0].b);
				emit(g, " AND %s.target_type = 'Patient'", x);
			} else if (cd->mod != STORE_MOD_PRESENT) {
				if (pre) {
					emit(g, " AND substr(%s.norm, 1, 3) = ", x);
					bind_text(g, pre);
				}
				emit(g, " AND ");
				emit_match(g, cd, &cd->m[0], x);
			}
		}
		if (pl->prefilter)
			emit_prefilter(g, q, pl, x);
	} else {
		emit(g, " FROM compartment c WHERE c.patient = ");
		bind_text(g, q->patient);
		emit_compartment_types(g, q);
	}
	emit_filters(g, q, pl, &top);
	if (q->cursor.set) {
		emit(g, " AND %s <= ", g->rid);
		bind_int(g, q->cursor.snapshot_rid);
		emit_keyset(g, q, rid_desc(q));
	}
	emit_order(g, q, distinct);
	emit_version_join(g);
}

/*
 * The page statement of 'q' (see the file comment) or its count(*).
 * Columns of a page: 0-6 as sq_read_row() reads them, 7 rid, 8 the
 * snapshot rid, 9.. the sort key values.
 */
static void emit_statement(struct gen *g, const struct store_query *q, enum stmt_kind kind)
{
	struct plan pl = plan_of(q, kind);

	/*
	 * The version cache serves searches across patients (by name, by
	 * code...), whose matches lie anywhere in the file.  A patient's own
	 * versions lie together (written with the patient's other data, and
	 * read a page at a time), so their joins are cheap already, and with
	 * patients drawn from many, a cache sized for the hot ones would
	 * mostly churn: those searches join as before.
	 */
	if (q->patient || (pl.drv < q->nconds && keyed_driver(&q->conds[pl.drv])))
		g->vcache = false;

	if (kind == S_COUNT) {
		emit(g, "SELECT count(*) FROM resource r");
		emit_where(g, q, &pl, false);
		return;
	}
	if (pl.lean) {
		emit_lean(g, q, &pl);
		return;
	}
	emit(g, "SELECT p.type, p.id, p.version, p.last_updated, p.deleted, p.seq, v.json,"
		" p.rid, p.snap");
	for (size_t i = 0; i < q->nsort; i++)
		emit(g, ", p.k%zu", i);
	emit(g, " FROM (SELECT r.rid AS rid, r.type AS type, r.id AS id, r.version AS version,"
		" r.last_updated AS last_updated, r.deleted AS deleted, r.seq AS seq, ");
	emit_snap(g, q);
	for (size_t i = 0; i < q->nsort; i++) {
		emit(g, ", ");
		emit_key(g, &q->sort[i]);
		emit(g, " AS k%zu", i);
	}
	emit(g, " FROM resource r");
	emit_where(g, q, &pl, true);
	emit_order(g, q, true);
	emit_version_join(g);
}

/* Build the statement; ERR_INVALID "search too complex" past the caps. */
static enum err build(struct gen *g, const struct store_query *q, enum stmt_kind kind,
		      struct ctx *c)
{
	emit_statement(g, q, kind);
	if (g->complex || g->sql.err)
		return ctx_errorf(c, ERR_INVALID,
				  "search too complex: more than %zu bytes of SQL or %d values",
				  SQL_MAX, BINDS_MAX);
	return ERR_OK;
}

/*
 * Build and start a statement: on success *q is ready to step with every
 * value bound (sq_end() it).  ERR_INVALID when too complex, else the
 * connection's failure.
 */
static enum err start(struct conn *cn, struct sq_search *ss, struct gen *g, struct q *q,
		      struct ctx *c)
{
	sqlite3_stmt *st;
	int rc;

	rc = cache_get(cn, ss, g->sql.data, g->sql.len, &st);
	if (rc != SQLITE_OK)
		return sq_fail(cn, rc, c, "cannot prepare a search");
	*q = (struct q){cn, st, SQLITE_OK};
	bind_all(g, q);
	return ERR_OK;
}

/*
 * Fill the keyset position of a page row (columns 7.., see
 * emit_statement()).  Keys past q->nsort are empty (not null, zero, "");
 * the rest of each key's text array is left as it was: only the part up
 * to its NUL is meaningful, and clearing 1 KiB per row shows in profiles.
 */
static void read_pos(sqlite3_stmt *st, const struct store_query *q, struct store_cursor *pos)
{
	pos->set = true;
	pos->rid = sqlite3_column_int64(st, 7);
	pos->snapshot_rid = sqlite3_column_int64(st, 8);
	for (size_t i = 0; i < STORE_SORT_MAX; i++) {
		pos->key[i].null = false;
		pos->key[i].i = 0;
		pos->key[i].r = 0;
		pos->key[i].s[0] = '\0';
	}
	for (size_t i = 0; i < q->nsort; i++) {
		int col = 9 + (int)i;
		const unsigned char *t;

		if (sqlite3_column_type(st, col) == SQLITE_NULL) {
			pos->key[i].null = true;
			continue;
		}
		switch (key_type(&q->sort[i])) {
		case KEY_TEXT:
			t = sqlite3_column_text(st, col);
			str_copy(pos->key[i].s, t ? (const char *)t : "", sizeof(pos->key[i].s));
			break;
		case KEY_INT:
			pos->key[i].i = sqlite3_column_int64(st, col);
			break;
		case KEY_REAL:
			pos->key[i].r = sqlite3_column_double(st, col);
			break;
		}
	}
}

/* The calling thread's connection and search state, refusing nested walks. */
static enum err enter(struct store *s, struct conn **cn, struct sq_search **ss, struct ctx *c)
{
	enum err e = sq_conn_get(s, cn, c);

	if (e)
		return e;
	if (sq_conn_walk(*cn, 0) > 0)
		return ctx_errorf(c, ERR_INVALID,
				  "cannot search from inside a history or search callback");
	return search_state(*cn, ss, c);
}

/* Count the matches of 'q' (no cursor) into *total. */
static enum err run_count(struct conn *cn, struct sq_search *ss, const struct store_query *q,
			  int64_t *total, struct ctx *c)
{
	struct gen g;
	struct q st;
	enum err e;
	int rc;

	gen_init(&g);
	e = build(&g, q, S_COUNT, c);
	if (!e)
		e = start(cn, ss, &g, &st, c);
	if (!e) {
		rc = sq_step(&st);
		if (rc == SQLITE_ROW)
			*total = sqlite3_column_int64(st.st, 0);
		else
			e = sq_fail(cn, rc == SQLITE_DONE ? SQLITE_ERROR : rc, c,
				    "cannot count search results");
		sq_end(&st);
	}
	gen_release(&g);
	return e;
}

/*
 * store_ops.search.  The count (when asked for) and the page are read in
 * one read transaction so they agree.  'fn' runs while the page statement
 * is stepping: it may read (store_get) but not write or search.
 */
/*
 * The resource of a page row: from the version cache when the row's
 * version was not joined (emit_version_join()), else from the row, which
 * then goes into the cache.
 */
static enum err read_version(struct conn *cn, struct sq_search *ss, bool cached,
			     sqlite3_stmt *st, struct store_resource *res, struct ctx *c)
{
	enum err e;

	if (cached && sqlite3_column_type(st, 6) == SQLITE_NULL) {
		struct vc_entry *pin = ss->pin;

		if (!pin || pin->seq != sqlite3_column_int64(st, 5))
			return ctx_errorf(c, ERR_IO, "search: a cached version went missing");
		e = vcache_copy(pin, res);
		return e ? ctx_errorf(c, e, "stored resource '%s/%s' is too large to read",
				      pin->type, pin->id) : ERR_OK;
	}
	e = sq_read_row(st, res, c);
	if (!e && cached && sq_conn_may_cache(cn))
		vcache_put(ss->vc, res);
	return e;
}

enum err sqlite_search(struct store *s, const struct store_query *q, store_hit_fn fn, void *arg,
		       bool *more, int64_t *total, struct ctx *c)
{
	struct store_resource res;
	struct sq_search *ss;
	struct store_hit hit;
	struct conn *cn;
	bool began = false, walking = false, seen = false, timed = false;
	int64_t n = 0, last = 0;
	struct gen g;
	struct q st = {0};
	enum err e;
	int rc = SQLITE_DONE;

	store_resource_init(&res);
	memset(&hit, 0, sizeof(hit));
	gen_init(&g);
	e = enter(s, &cn, &ss, c);
	if (e)
		goto out;
	g.vcache = ss->vc != NULL;
	e = build(&g, q, S_PAGE, c);
	if (e)
		goto out;
	sq_conn_deadline(cn, true);
	timed = true;
	if (q->total != STORE_TOTAL_NONE) {
		e = sq_read_begin(cn, &began, c);
		if (!e)
			e = run_count(cn, ss, q, total, c);
		if (e)
			goto out;
	}
	e = start(cn, ss, &g, &st, c);
	if (e)
		goto out;
	sq_conn_walk(cn, +1);
	walking = true;
	while ((rc = sq_step(&st)) == SQLITE_ROW) {
		int64_t rid = sqlite3_column_int64(st.st, 7);
		int stop;

		/* the keyed shapes list a resource with two matching rows twice, in a row */
		if (seen && rid == last)
			continue;
		seen = true;
		last = rid;
		if (n == q->limit) {
			*more = true;
			break;
		}
		e = read_version(cn, ss, g.vcache, st.st, &res, c);
		if (e)
			break;
		hit.res = &res;
		read_pos(st.st, q, &hit.pos);
		hit.rid = hit.pos.rid;
		n++;
		if (fn && (stop = fn(arg, &hit)) != 0) {
			e = (enum err)stop;
			break;
		}
	}
	if (!e && rc != SQLITE_ROW && rc != SQLITE_DONE)
		e = sq_fail(cn, rc, c, "cannot search");
	sq_end(&st);
out:
	if (timed)
		sq_conn_deadline(cn, false);
	if (walking)
		sq_conn_walk(cn, -1);
	if (began)
		sq_read_end(cn, began);
	gen_release(&g);
	store_resource_release(&res);
	return e;
}

/* Append the EXPLAIN QUERY PLAN rows of statement 'g' to 'out', indented by depth. */
static enum err explain(struct conn *cn, struct gen *g, struct buf *out, struct ctx *c)
{
	struct buf sql = BUF_INIT(SQL_MAX + 64);
	sqlite3_stmt *st = NULL;
	struct plan_row {
		int id, depth;
	} seen[256];
	int nseen = 0, rc;
	struct q q;
	enum err e = ERR_OK;

	buf_adds(&sql, "EXPLAIN QUERY PLAN ");
	buf_add(&sql, g->sql.data, g->sql.len);
	rc = sqlite3_prepare_v2(sq_conn_db(cn), sql.data, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		sq_note_error(cn, rc);
		e = sq_fail(cn, rc, c, "cannot explain a search");
		goto out;
	}
	q = (struct q){cn, st, SQLITE_OK};
	bind_all(g, &q);
	while ((rc = sq_step(&q)) == SQLITE_ROW) {
		int id = sqlite3_column_int(st, 0), parent = sqlite3_column_int(st, 1);
		const unsigned char *detail = sqlite3_column_text(st, 3);
		int depth = 0;

		for (int i = 0; i < nseen; i++)
			if (seen[i].id == parent)
				depth = seen[i].depth + 1;
		if (nseen < (int)(sizeof(seen) / sizeof(seen[0])))
			seen[nseen++] = (struct plan_row){id, depth};
		for (int i = 0; i < depth; i++)
			buf_adds(out, "  ");
		buf_adds(out, detail ? (const char *)detail : "");
		buf_addch(out, '\n');
	}
	if (rc != SQLITE_DONE)
		e = sq_fail(cn, rc, c, "cannot explain a search");
	else if (out->err)
		e = ctx_errorf(c, ERR_TOOBIG, "the search plan does not fit its buffer");
out:
	sqlite3_finalize(st);
	buf_release(&sql);
	return e;
}

/* store_ops.search_explain: the page statement's plan and SQL text. */
enum err sqlite_search_explain(struct store *s, const struct store_query *q, struct buf *out,
			       struct buf *sql, struct ctx *c)
{
	struct sq_search *ss;
	struct conn *cn;
	struct gen g;
	enum err e;

	gen_init(&g);
	e = enter(s, &cn, &ss, c);
	if (!e) {
		g.vcache = ss->vc != NULL;
		e = build(&g, q, S_PAGE, c);
	}
	if (!e)
		e = explain(cn, &g, out, c);
	if (!e && sql && buf_add(sql, g.sql.data, g.sql.len))
		e = ctx_errorf(c, ERR_TOOBIG, "the search SQL does not fit its buffer");
	gen_release(&g);
	return e;
}

/* ---- _include and _revinclude ---- */

#define RES_COLS "t.type, t.id, t.version, t.last_updated, t.deleted, t.seq, v.json, t.rid"

/* Step a statement of RES_COLS rows, calling fn for each (at most 'limit'; <0: all). */
static enum err deliver(struct conn *cn, struct q *st, int64_t limit, store_hit_fn fn,
			void *arg, struct ctx *c)
{
	struct store_resource res;
	struct store_hit hit;
	int64_t n = 0;
	enum err e = ERR_OK;
	int rc;

	store_resource_init(&res);
	sq_conn_walk(cn, +1);
	while ((rc = sq_step(st)) == SQLITE_ROW) {
		int stop;

		if (limit >= 0 && n == limit)
			break;
		e = sq_read_row(st->st, &res, c);
		if (e)
			break;
		memset(&hit, 0, sizeof(hit));
		hit.res = &res;
		hit.rid = sqlite3_column_int64(st->st, 7);
		n++;
		stop = fn(arg, &hit);
		if (stop) {
			e = (enum err)stop;
			break;
		}
	}
	sq_conn_walk(cn, -1);
	if (!e && rc != SQLITE_ROW && rc != SQLITE_DONE)
		e = sq_fail(cn, rc, c, "cannot read included resources");
	sq_end(st);
	store_resource_release(&res);
	return e;
}

/*
 * The confinement of included rows (query.h): a row of a confined type
 * must have its patient's compartment row, found by the compartment's key.
 */
static void emit_confine(struct gen *g, const struct store_confine *cf)
{
	if (!cf || !cf->patient)
		return;
	emit(g, " AND (");
	if (cf->ntypes) {
		emit(g, "+t.type NOT IN (");
		for (size_t i = 0; i < cf->ntypes; i++) {
			emit(g, i ? ", " : "");
			bind_text(g, cf->types[i]);
		}
		emit(g, ") OR ");
	}
	emit(g, "EXISTS (SELECT 1 FROM compartment k WHERE k.patient = ");
	bind_text(g, cf->patient);
	emit(g, " AND k.type = t.type AND k.rid = t.rid))");
}

/*
 * store_ops.include: the distinct current targets of the reference rows of
 * the resources 'rids', in rid order.  The rids travel as one JSON array
 * (json_each), so the statement text does not depend on their number.
 */
enum err sqlite_include(struct store *s, const int64_t *rids, size_t n, const char *src_type,
			const char *param, const char *target_type, const struct store_confine *cf,
			store_hit_fn fn, void *arg, struct ctx *c)
{
	struct buf list = BUF_INIT((size_t)24 * 10001);
	struct sq_search *ss;
	struct conn *cn;
	struct gen g;
	struct q st;
	enum err e;

	gen_init(&g);
	e = enter(s, &cn, &ss, c);
	if (e)
		goto out;
	buf_addch(&list, '[');
	for (size_t i = 0; i < n; i++)
		buf_addf(&list, "%s%lld", i ? "," : "", (long long)rids[i]);
	buf_addch(&list, ']');
	if (list.err) {
		e = ctx_errorf(c, ERR_INVALID, "search too complex: too many resources to include from");
		goto out;
	}
	emit(&g, "SELECT " RES_COLS " FROM resource t CROSS JOIN resource_version v"
		 " ON v.seq = t.seq WHERE t.rid IN (SELECT u.rid FROM ix_reference x"
		 " JOIN resource u ON u.type = x.target_type AND u.id = x.target_id"
		 " WHERE x.rid IN (SELECT value FROM json_each(");
	bind_text(&g, list.data);
	emit(&g, "))");
	if (src_type) {
		emit(&g, " AND +x.type = ");
		bind_text(&g, src_type);
	}
	if (param) {
		emit(&g, " AND +x.param = ");
		bind_text(&g, param);
	}
	if (target_type) {
		emit(&g, " AND +x.target_type = ");
		bind_text(&g, target_type);
	}
	emit(&g, ") AND t.deleted = 0");
	emit_confine(&g, cf);
	emit(&g, " ORDER BY t.rid");
	if (g.complex) {
		e = ctx_errorf(c, ERR_INVALID, "search too complex");
		goto out;
	}
	sq_conn_deadline(cn, true);
	e = start(cn, ss, &g, &st, c);
	if (!e)
		e = deliver(cn, &st, -1, fn, arg, c);
	sq_conn_deadline(cn, false);
out:
	gen_release(&g);
	buf_release(&list);
	return e;
}

/*
 * store_ops.revinclude: current resources of 'src_type' whose reference
 * parameter 'param' (NULL: any) points at target_type/ids[i], in rid
 * order, at most 'limit'.  With a param the (type, param, target_id) index
 * is sought, without one the (target_type, target_id) index.
 */
enum err sqlite_revinclude(struct store *s, const char *target_type, const char *const *ids,
			   size_t n, const char *src_type, const char *param, int64_t limit,
			   const struct store_confine *cf, store_hit_fn fn, void *arg,
			   struct ctx *c)
{
	struct buf list = BUF_INIT((size_t)160 * 10001);
	struct sq_search *ss;
	struct conn *cn;
	struct gen g;
	struct q st;
	enum err e;

	gen_init(&g);
	e = enter(s, &cn, &ss, c);
	if (e)
		goto out;
	buf_addch(&list, '[');
	for (size_t i = 0; i < n; i++) {
		buf_adds(&list, i ? ",\"" : "\"");
		buf_add_json_str(&list, ids[i], strlen(ids[i]));
		buf_addch(&list, '"');
	}
	buf_addch(&list, ']');
	if (list.err) {
		e = ctx_errorf(c, ERR_INVALID, "search too complex: too many resources to include for");
		goto out;
	}
	emit(&g, "SELECT " RES_COLS " FROM resource t CROSS JOIN resource_version v"
		 " ON v.seq = t.seq WHERE t.rid IN (SELECT x.rid FROM ix_reference x WHERE ");
	if (param) {
		emit(&g, "x.type = ");
		bind_text(&g, src_type);
		emit(&g, " AND x.param = ");
		bind_text(&g, param);
		emit(&g, " AND x.target_id IN (SELECT value FROM json_each(");
		bind_text(&g, list.data);
		emit(&g, ")) AND x.target_type = ");
		bind_text(&g, target_type);
	} else {
		emit(&g, "x.target_type = ");
		bind_text(&g, target_type);
		emit(&g, " AND x.target_id IN (SELECT value FROM json_each(");
		bind_text(&g, list.data);
		emit(&g, ")) AND +x.type = ");
		bind_text(&g, src_type);
	}
	emit(&g, ") AND t.deleted = 0 AND +t.type = ");
	bind_text(&g, src_type);
	emit_confine(&g, cf);
	emit(&g, " ORDER BY t.rid LIMIT ");
	bind_int(&g, limit);
	if (g.complex) {
		e = ctx_errorf(c, ERR_INVALID, "search too complex");
		goto out;
	}
	sq_conn_deadline(cn, true);
	e = start(cn, ss, &g, &st, c);
	if (!e)
		e = deliver(cn, &st, limit, fn, arg, c);
	sq_conn_deadline(cn, false);
out:
	gen_release(&g);
	buf_release(&list);
	return e;
}
