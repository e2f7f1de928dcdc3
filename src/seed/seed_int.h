/*
 * seed_int.h - private to src/seed/: the generator's PRNG, calendar
 * arithmetic, jansson builders, the emit wrapper and the shared directory
 * (organizations, locations, practitioners) that patient records refer to.
 *
 * Everything here is deterministic: no clock, no rand(), no locale, no
 * floating-point function whose result differs between libm versions
 * (only sqrt and round, which IEEE 754 fixes).  JSON builders abort on
 * out-of-memory (mem.h policy): a generator has no client input to blame.
 * Single-threaded: one struct gen per seed_generate() call.
 */
#ifndef VERANDA_SEED_SEED_INT_H
#define VERANDA_SEED_SEED_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "seed/seed.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- code systems ---- */

#define SYS_LOINC     "http://loinc.org"
#define SYS_SNOMED    "http://snomed.info/sct"
#define SYS_RXNORM    "http://www.nlm.nih.gov/research/umls/rxnorm"
#define SYS_CVX       "http://hl7.org/fhir/sid/cvx"
#define SYS_UCUM      "http://unitsofmeasure.org"
#define SYS_NPI       "http://hl7.org/fhir/sid/us-npi"
#define SYS_MRN       "https://riverside-health.example.org/fhir/sid/mrn"
#define SYS_ACTCODE   "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define SYS_CONFID    "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#define SYS_ROLECODE  "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
#define SYS_INTERP    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
#define SYS_OBSCAT    "http://terminology.hl7.org/CodeSystem/observation-category"
#define SYS_V2_0074   "http://terminology.hl7.org/CodeSystem/v2-0074"
#define SYS_V2_0203   "http://terminology.hl7.org/CodeSystem/v2-0203"
#define SYS_TERM      "http://terminology.hl7.org/CodeSystem/"

/* ---- sensitivity labels (meta.security, v3-ActCode) ---- */

enum {
	SENS_PSY = 1 << 0, /* mental health */
	SENS_SEX = 1 << 1, /* sexual and reproductive health */
	SENS_HIV = 1 << 2, /* HIV/AIDS */
	SENS_ETH = 1 << 3, /* substance use */
	SENS_STD = 1 << 4, /* sexually transmitted disease */
};

/* ---- PRNG: xoshiro256** seeded through splitmix64 ---- */

struct rng {
	uint64_t s[4];
};

/* Seed 'r' from (seed, stream): different streams are independent sequences. */
void rng_init(struct rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(struct rng *r);
/* Uniform in [0, n); n > 0. */
uint32_t rng_below(struct rng *r, uint32_t n);
/* Uniform in [lo, hi]; lo <= hi. */
int rng_range(struct rng *r, int lo, int hi);
/* Uniform in [0, 1). */
double rng_unit(struct rng *r);
bool rng_chance(struct rng *r, double p);
/* Approximately normal (sum of four uniforms): within mean +- 3.46 sd. */
double rng_normal(struct rng *r, double mean, double sd);

/* ---- calendar (proleptic Gregorian, UTC; days since 1970-01-01) ---- */

#define DAY_MS INT64_C(86400000)
#define HOUR_MS INT64_C(3600000)
#define MIN_MS INT64_C(60000)

int64_t days_from_civil(int y, int m, int d);
void civil_from_days(int64_t z, int *y, int *m, int *d);
/* The day of 'ms' (floor division). */
int64_t day_of_ms(int64_t ms);
/* Full years between 'birth' and 'day' (the age on that day). */
int age_on(int64_t birth, int64_t day);
/*
 * A birth day such that age_on(result, today) == age, 'back' days (1..360)
 * before the last birthday; never Feb 29.
 */
int64_t birth_for_age(int64_t today, int age, int back);
/* "YYYY-MM-DD". */
void fmt_date(int64_t day, char out[16]);
/* FHIR dateTime with an explicit offset: "YYYY-MM-DDThh:mm:ss+00:00". */
void fmt_datetime(int64_t ms, char out[32]);
/* FHIR instant: "YYYY-MM-DDThh:mm:ssZ". */
void fmt_instant(int64_t ms, char out[32]);

/* ---- JSON builders: never NULL (abort on out-of-memory) ---- */

json_t *j_str(const char *s);
json_t *j_int(int64_t v);
/* A number rounded to 'decimals' places; an integer when decimals == 0. */
json_t *j_num(double v, int decimals);
json_t *j_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_t *j_obj(void);
json_t *j_arr(void);
/* Set/append, stealing 'v'. */
void j_set(json_t *obj, const char *key, json_t *v);
void j_push(json_t *arr, json_t *v);
json_t *j_arr1(json_t *v);
json_t *j_coding(const char *system, const char *code, const char *display);
/* CodeableConcept: one coding, text = 'text' or the display. */
json_t *j_cc(const char *system, const char *code, const char *display, const char *text);
json_t *j_cc_text(const char *text);
/* Reference "type/id" with an optional display. */
json_t *j_ref(const char *type, const char *id, const char *display);
json_t *j_qty(double v, int decimals, const char *unit, const char *ucum);
json_t *j_date(int64_t day);
json_t *j_datetime(int64_t ms);
json_t *j_instant(int64_t ms);
/* Period of two dateTimes; end < 0 omits the end. */
json_t *j_period(int64_t start_ms, int64_t end_ms);
/* A base64 (RFC 4648, padded) string of 'text'. */
json_t *j_base64(const char *text);
/* {"resourceType": type, "id": id}. */
json_t *j_resource(const char *type, const char *id);
/* Add meta.security labels for 'sens' (no-op when 0). */
void j_security(json_t *res, unsigned sens);
/* The same labels as CodeableConcepts (DocumentReference.securityLabel). */
json_t *j_security_labels(unsigned sens);

/* ---- the generator and its emit wrapper ---- */

struct gen {
	const struct seed_opts *o;
	seed_emit_fn fn;
	void *arg;
	struct ctx *c;
	enum err err;       /* first emit failure; sticky */
	/*
	 * "Now" is the start of today's UTC day, not o->today_ms itself, so that
	 * every run on the same day produces the same bytes.
	 */
	int64_t now_ms;     /* today * DAY_MS */
	int64_t today;      /* day_of_ms(o->today_ms) */
	uint64_t emitted;
};

/*
 * Hand 'res' (consumed) to the callback unless an earlier call failed.
 * Returns the sticky error: the first non-zero return of the callback.
 */
enum err gen_emit(struct gen *g, json_t *res);

/* ---- the shared directory (shared.c) ---- */

enum org_ix { ORG_SYSTEM, ORG_HOSPITAL, ORG_CLINIC, ORG_LAB, ORG_COUNT };
enum loc_ix { LOC_CLINIC, LOC_PEDS, LOC_ED, LOC_WARD, LOC_LAB, LOC_BEHAV, LOC_COUNT };

enum pract_ix {
	PR_SMITH,      /* family medicine (drsmith) */
	PR_CHEN,       /* internal medicine */
	PR_RAMAN,      /* pediatrics */
	PR_ADEYEMI,    /* cardiology */
	PR_FERNANDEZ,  /* endocrinology */
	PR_BECKER,     /* psychiatry */
	PR_ROSSI,      /* obstetrics and gynecology */
	PR_JOHNSON,    /* emergency medicine */
	PR_TANAKA,     /* hospital medicine */
	PR_SCHRODER,   /* family medicine */
	PR_NGUYEN,     /* pediatrics */
	PR_HADDAD,     /* internal medicine, geriatrics */
	PR_DELGADO,    /* family nurse practitioner */
	PR_OCONNOR,    /* registered nurse, clinic */
	PR_RAHMAN,     /* registered nurse, hospital */
	PR_GOLDBERG,   /* clinical pharmacist */
	PR_LARSEN,     /* laboratory medicine */
	PR_WRIGHT,     /* physician assistant, emergency */
	PR_DUBOIS,     /* clinical social worker, behavioral health */
	PR_ORTEGA,     /* pulmonology */
	PR_COUNT
};

struct org_info {
	const char *id, *name;
};

struct loc_info {
	const char *id, *name;
	enum org_ix org;
};

struct pract_info {
	const char *id;
	const char *display;        /* "Dr. Jane Smith" */
	const char *signature;      /* "Jane Smith, MD" */
	const char *careteam_code;  /* SNOMED role in a care team */
	const char *careteam_display;
	enum loc_ix loc;
};

extern const struct org_info seed_orgs[ORG_COUNT];
extern const struct loc_info seed_locs[LOC_COUNT];
extern const struct pract_info seed_practs[PR_COUNT];

json_t *ref_org(enum org_ix o);
json_t *ref_loc(enum loc_ix l);
json_t *ref_pract(enum pract_ix p);

/* Emit the organizations, locations, practitioners and roles. */
enum err seed_emit_directory(struct gen *g);

/* ---- clinical vocabulary shared by the personas and the records ---- */

enum cond_ix {
	/* chronic */
	C_HTN, C_T2DM, C_HLD, C_ASTHMA, C_RHINITIS, C_ECZEMA, C_HYPOTHYROID,
	C_DEPRESSION, C_ANXIETY, C_MIGRAINE, C_GERD, C_OBESITY, C_OA, C_AFIB,
	C_CKD3, C_HF, C_COPD, C_OSTEOPOROSIS, C_ALZHEIMER, C_ALCOHOL, C_OPIOID,
	C_HIV, C_ACNE,
	/* acute */
	C_PHARYNGITIS, C_OTITIS, C_SINUSITIS, C_BRONCHITIS, C_SPRAIN, C_UTI,
	C_PNEUMONIA, C_CELLULITIS, C_LACERATION, C_CONCUSSION, C_CHLAMYDIA,
	C_COUNT,
	C_END = -1
};

enum allergy_ix {
	A_NONE = -1, A_PENICILLIN, A_ASPIRIN, A_IBUPROFEN, A_PEANUT, A_EGG, A_MILK,
	A_LATEX, A_POLLEN, A_DANDER, A_DUST_MITE, A_SHELLFISH, A_COUNT
};

/* Lab panels (bit mask). */
enum {
	P_CMP = 1 << 0, P_BMP = 1 << 1, P_CBC = 1 << 2, P_LIPID = 1 << 3,
	P_A1C = 1 << 4, P_TSH = 1 << 5, P_CT = 1 << 6,
};

enum vkind { V_WELL, V_FOLLOW, V_PROBLEM, V_ACUTE, V_ED, V_INPT, V_BEHAV, V_SEXH };

enum sex { SEX_F, SEX_M };

/* A fixed person of the demo (people.c documents each one). */
struct persona_rp {
	const char *id;               /* RelatedPerson id; NULL = none */
	const char *given, *family, *gender;
	int age;
	const char *rel_code, *rel_display; /* v3-RoleCode */
	const char *phone, *email;
};

struct persona {
	const char *id;
	const char *given, *middle, *family, *gender;
	enum sex sex;
	int age, back;                /* age today; days since the last birthday */
	const char *line, *city, *postal, *phone, *email, *marital;
	enum pract_ix pcp;
	enum cond_ix conds[8];        /* C_END-terminated */
	enum allergy_ix allergy;      /* A_NONE: "no known allergy" */
	unsigned sens_note;           /* a sensitive note (SENS_*) to write */
	enum vkind recent_kind;       /* a visit 2-4 days ago with preliminary results */
	const char *recent_code, *recent_display; /* its reason (SNOMED); NULL = first condition */
	unsigned recent_panels;
	unsigned early_panels;        /* an earlier visit whose labs hold a corrected result */
	struct persona_rp rp;         /* the RelatedPerson emitted with this record */
	const char *links[2];         /* RelatedPersons that are this patient (Patient.link) */
};

/* A person being generated: demographics plus physiology. */
struct person {
	const struct persona *demo;   /* NULL for a generated person */
	char id[32];                  /* Patient id */
	char stem[32];                /* middle part of this record's resource ids */
	char mrn[16];
	const char *given, *middle, *family;
	char email[96];
	char phone[24];
	char line[64];
	const char *city, *postal;
	const char *gender;           /* administrative gender */
	enum sex sex;                 /* physiology (reference ranges, growth) */
	const char *lang, *lang_display; /* preferred language (BCP 47) */
	const char *marital;          /* v3-MaritalStatus code or NULL */
	int64_t birth;                /* day */
	int age;
	enum pract_ix pcp;
	double height_z, weight_z, bmi;
};

/* Fill 'p' (people.c): a demo persona, or a generated person number 'index'. */
void person_init(struct person *p, const struct persona *demo, unsigned index,
		 struct rng *r, int64_t today);
/* The Patient resource of 'p'. */
json_t *person_patient(const struct person *p);
/*
 * Emit the RelatedPersons of 'p' (a persona's, or 0-2 generated relatives),
 * writing up to 'max' of their ids into ids[] and their count to *n.
 */
enum err person_emit_related(struct gen *g, const struct person *p, struct rng *r,
			     char ids[][48], size_t max, size_t *n);

/* ---- the record generator (record.c) ---- */

/* Emit one person's complete record; 'stream' seeds its PRNG. */
enum err seed_emit_person(struct gen *g, const struct persona *demo,
			  unsigned index, uint64_t stream);

/* The demo personas, in emission order (people.c). */
extern const struct persona seed_demo_personas[];
extern const size_t seed_demo_count;

#endif
