/*
 * util.c - the seed generator's primitives: PRNG, calendar, JSON builders
 * and the emit wrapper.  See seed_int.h.
 */
#include "seed/seed_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"

/* ---- PRNG ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

void rng_init(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed;
	uint64_t mix = splitmix64(&x);

	x = mix ^ (stream * UINT64_C(0xD1342543DE82EF95));
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
	if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
		r->s[0] = 1;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t rng_u64(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint32_t rng_below(struct rng *r, uint32_t n)
{
	/* Lemire's multiply-shift; the bias for our small n is negligible. */
	return (uint32_t)(((rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

int rng_range(struct rng *r, int lo, int hi)
{
	return lo + (int)rng_below(r, (uint32_t)(hi - lo + 1));
}

double rng_unit(struct rng *r)
{
	return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

bool rng_chance(struct rng *r, double p)
{
	return rng_unit(r) < p;
}

double rng_normal(struct rng *r, double mean, double sd)
{
	/*
	 * Irwin-Hall: the sum of 4 uniforms has variance 1/3.  One call per
	 * statement, so that the order of the draws is defined.
	 */
	double s = rng_unit(r);
	double z;

	s += rng_unit(r);
	s += rng_unit(r);
	s += rng_unit(r);
	z = (s - 2.0) * 1.7320508075688772;

	return mean + sd * z;
}

/* ---- calendar (H. Hinnant's civil-days algorithms) ---- */

int64_t days_from_civil(int y, int m, int d)
{
	int64_t era;
	int64_t yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

int64_t day_of_ms(int64_t ms)
{
	return ms >= 0 ? ms / DAY_MS : -((-ms + DAY_MS - 1) / DAY_MS);
}

int age_on(int64_t birth, int64_t day)
{
	int y1, m1, d1, y2, m2, d2;

	civil_from_days(birth, &y1, &m1, &d1);
	civil_from_days(day, &y2, &m2, &d2);
	return y2 - y1 - (m2 < m1 || (m2 == m1 && d2 < d1));
}

int64_t birth_for_age(int64_t today, int age, int back)
{
	int y, m, d;
	int64_t b;

	civil_from_days(today, &y, &m, &d);
	if (m == 2 && d == 29)
		d = 28;
	b = days_from_civil(y - age, m, d) - back;
	civil_from_days(b, &y, &m, &d);
	if (m == 2 && d == 29)
		b--;
	return b;
}

void fmt_date(int64_t day, char out[16])
{
	int y, m, d;

	civil_from_days(day, &y, &m, &d);
	snprintf(out, 16, "%04d-%02d-%02d", y % 10000, m, d);
}

static void fmt_time(int64_t ms, char out[32], const char *zone)
{
	int64_t day = day_of_ms(ms);
	int64_t rem = (ms - day * DAY_MS) / 1000;
	int y, m, d;

	civil_from_days(day, &y, &m, &d);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d%s", y % 10000, m, d,
		 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), zone);
}

void fmt_datetime(int64_t ms, char out[32])
{
	fmt_time(ms, out, "+00:00");
}

void fmt_instant(int64_t ms, char out[32])
{
	fmt_time(ms, out, "Z");
}

/* ---- JSON builders ---- */

static json_t *must(json_t *v)
{
	if (!v) {
		fprintf(stderr, "veranda: out of memory building seed data\n");
		abort();
	}
	return v;
}

json_t *j_str(const char *s)
{
	return must(json_string(s));
}

json_t *j_int(int64_t v)
{
	return must(json_integer((json_int_t)v));
}

json_t *j_num(double v, int decimals)
{
	double scale = 1.0;

	if (decimals <= 0)
		return j_int((int64_t)llround(v));
	for (int i = 0; i < decimals; i++)
		scale *= 10.0;
	return must(json_real(round(v * scale) / scale));
}

json_t *j_strf(const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	return j_str(tmp);
}

json_t *j_obj(void)
{
	return must(json_object());
}

json_t *j_arr(void)
{
	return must(json_array());
}

void j_set(json_t *obj, const char *key, json_t *v)
{
	if (json_object_set_new(obj, key, must(v)) != 0)
		must(NULL);
}

void j_push(json_t *arr, json_t *v)
{
	if (json_array_append_new(arr, must(v)) != 0)
		must(NULL);
}

json_t *j_arr1(json_t *v)
{
	json_t *a = j_arr();

	j_push(a, v);
	return a;
}

json_t *j_coding(const char *system, const char *code, const char *display)
{
	json_t *c = j_obj();

	j_set(c, "system", j_str(system));
	j_set(c, "code", j_str(code));
	if (display)
		j_set(c, "display", j_str(display));
	return c;
}

json_t *j_cc(const char *system, const char *code, const char *display, const char *text)
{
	json_t *cc = j_obj();

	j_set(cc, "coding", j_arr1(j_coding(system, code, display)));
	if (text || display)
		j_set(cc, "text", j_str(text ? text : display));
	return cc;
}

json_t *j_cc_text(const char *text)
{
	json_t *cc = j_obj();

	j_set(cc, "text", j_str(text));
	return cc;
}

json_t *j_ref(const char *type, const char *id, const char *display)
{
	json_t *r = j_obj();

	j_set(r, "reference", j_strf("%s/%s", type, id));
	if (display)
		j_set(r, "display", j_str(display));
	return r;
}

json_t *j_qty(double v, int decimals, const char *unit, const char *ucum)
{
	json_t *q = j_obj();

	j_set(q, "value", j_num(v, decimals));
	j_set(q, "unit", j_str(unit));
	j_set(q, "system", j_str(SYS_UCUM));
	j_set(q, "code", j_str(ucum));
	return q;
}

json_t *j_date(int64_t day)
{
	char b[16];

	fmt_date(day, b);
	return j_str(b);
}

json_t *j_datetime(int64_t ms)
{
	char b[32];

	fmt_datetime(ms, b);
	return j_str(b);
}

json_t *j_instant(int64_t ms)
{
	char b[32];

	fmt_instant(ms, b);
	return j_str(b);
}

json_t *j_period(int64_t start_ms, int64_t end_ms)
{
	json_t *p = j_obj();

	j_set(p, "start", j_datetime(start_ms));
	if (end_ms >= 0)
		j_set(p, "end", j_datetime(end_ms));
	return p;
}

json_t *j_base64(const char *text)
{
	size_t n = strlen(text);
	struct buf b = BUF_INIT(4 * (n / 3 + 1) + 16);
	json_t *v;

	if (base64_encode(text, n, &b) != ERR_OK)
		must(NULL);
	v = j_str(b.data);
	buf_release(&b);
	return v;
}

json_t *j_resource(const char *type, const char *id)
{
	json_t *r = j_obj();

	j_set(r, "resourceType", j_str(type));
	j_set(r, "id", j_str(id));
	return r;
}

static const struct {
	unsigned flag;
	const char *code, *display;
} sens_labels[] = {
	{SENS_PSY, "PSY", "psychiatry disorder information sensitivity"},
	{SENS_SEX, "SEX", "sexuality and reproductive health information sensitivity"},
	{SENS_HIV, "HIV", "HIV/AIDS information sensitivity"},
	{SENS_ETH, "ETH", "substance abuse information sensitivity"},
	{SENS_STD, "STD", "sexually transmitted disease information sensitivity"},
};

void j_security(json_t *res, unsigned sens)
{
	json_t *meta, *sec;

	if (!sens)
		return;
	meta = j_obj();
	sec = j_arr();
	for (size_t i = 0; i < NELEM(sens_labels); i++)
		if (sens & sens_labels[i].flag)
			j_push(sec, j_coding(SYS_ACTCODE, sens_labels[i].code,
					     sens_labels[i].display));
	j_push(sec, j_coding(SYS_CONFID, "R", "restricted"));
	j_set(meta, "security", sec);
	j_set(res, "meta", meta);
}

json_t *j_security_labels(unsigned sens)
{
	json_t *a = j_arr();

	for (size_t i = 0; i < NELEM(sens_labels); i++)
		if (sens & sens_labels[i].flag)
			j_push(a, j_cc(SYS_ACTCODE, sens_labels[i].code, sens_labels[i].display, NULL));
	j_push(a, j_cc(SYS_CONFID, "R", "restricted", NULL));
	return a;
}

/* ---- emit ---- */

enum err gen_emit(struct gen *g, json_t *res)
{
	enum err e;
	char what[160];

	if (g->err) {
		json_decref(res);
		return g->err;
	}
	{
		const char *type = json_string_value(json_object_get(res, "resourceType"));
		const char *id = json_string_value(json_object_get(res, "id"));
		snprintf(what, sizeof(what), "%s/%s", type ? type : "?", id ? id : "?");
	}
	e = g->fn(g->arg, res);
	json_decref(res);
	if (e != ERR_OK) {
		g->err = e;
		ctx_errorf(g->c, e, "cannot store seed resource '%s'", what);
		return e;
	}
	g->emitted++;
	return ERR_OK;
}
