/*
 * fhir_int.h - shared inside src/fhir only: the service struct.
 */
#ifndef VERANDA_FHIR_INT_H
#define VERANDA_FHIR_INT_H

#include "core/buf.h"
#include "fhir/fhir.h"

struct fhir {
	struct store *store;
	struct fhir_opts opts;
	char base[600];          /* {base_url}/fhir */
	struct buf capability;   /* CapabilityStatement bytes */
};

/* Build the CapabilityStatement into f->capability (capability.c). */
void fhir_capability_build(struct fhir *f);

#endif
