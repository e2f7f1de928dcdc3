/*
 * seed.h - the deterministic synthetic population generator.
 *
 * seed_generate() calls 'emit' once per FHIR resource (a jansson object
 * with resourceType and id set; borrowed: emit must not keep it without
 * json_incref).  The same options give the same resources in the same
 * order, byte for byte.  Resources only reference resources emitted
 * earlier.  Dates are relative to 'today_ms' so that "upcoming" stays
 * upcoming.  No I/O.
 */
#ifndef VERANDA_SEED_SEED_H
#define VERANDA_SEED_SEED_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"

/* The demo people's FHIR ids (the login accounts link to these). */
#define SEED_PATIENT_ALICE   "alice"        /* adult patient */
#define SEED_PATIENT_BOB     "bob-self"     /* bob as a patient of his own */
#define SEED_PATIENT_BOB_CHILD  "bob-child" /* bob's child, age 8 */
#define SEED_PATIENT_BOB_MOTHER "bob-mother" /* bob's elderly mother */
#define SEED_PATIENT_ERIN    "erin"         /* adolescent, 15 */
#define SEED_PATIENT_FRANK   "frank"        /* erin's parent, as a patient */
#define SEED_RELATED_FRANK   "frank-erin"   /* RelatedPerson: frank for erin */
#define SEED_RELATED_BOB_CHILD  "bob-for-child"
#define SEED_RELATED_BOB_MOTHER "bob-for-mother"
#define SEED_PRACTITIONER_DRSMITH "drsmith"

struct seed_opts {
	unsigned patients;   /* generated patients besides the demo people */
	uint64_t seed;       /* PRNG seed */
	int64_t today_ms;    /* "now" for relative dates */
};

typedef enum err (*seed_emit_fn)(void *arg, json_t *resource);

/*
 * Generate the demo people with full records, then 'patients' more.
 * Stops at the first non-zero return of 'emit' and returns it (and records
 * a message on 'c' unless emit already did).  Only the UTC day of today_ms
 * matters: every run on the same day gives the same bytes.  ERR_INVALID
 * when 'o' or 'emit' is NULL or today_ms is outside the years 2000-9000.
 * A generated patient has about 40-110 resources (75 on average); the
 * shared directory (organizations, locations, practitioners) and the six
 * demo people come first, about 800 resources together.
 */
enum err seed_generate(const struct seed_opts *o, seed_emit_fn emit, void *arg, struct ctx *c);

#endif
