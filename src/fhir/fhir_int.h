/*
 * fhir_int.h - shared inside src/fhir only: the service struct.
 */
#ifndef VERANDA_FHIR_INT_H
#define VERANDA_FHIR_INT_H

#include <jansson.h>

#include "core/buf.h"
#include "fhir/fhir.h"

struct fhir {
	struct store *store;
	struct fhir_opts opts;
	char base[600];          /* {base_url}/fhir */
	struct buf capability;   /* CapabilityStatement bytes */
};

/*
 * Write a parsed resource of 'type': a create with a new server id when
 * 'id' is NULL, else an update (or create) of 'id' honouring if_match
 * (-1: none).  Validates first; 'res' is modified (id, meta).
 */
enum err fhir_write_json(struct fhir *f, const char *type, const char *id, json_t *res,
			 int64_t if_match, struct fhir_result *out, struct ctx *c);

/* Build the CapabilityStatement into f->capability (capability.c). */
void fhir_capability_build(struct fhir *f);

#endif
