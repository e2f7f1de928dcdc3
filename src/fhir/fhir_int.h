/*
 * fhir_int.h - shared inside src/fhir only: the service struct.
 */
#ifndef VERANDA_FHIR_INT_H
#define VERANDA_FHIR_INT_H

#include <jansson.h>

#include "core/buf.h"
#include "fhir/fhir.h"
#include "fhir/model.h"

struct fhir {
	struct store *store;
	struct fhir_opts opts;
	char base[600];          /* {base_url}/fhir */
	struct buf capability;   /* CapabilityStatement bytes */
};

/*
 * Write a parsed resource of 'type': a create with a new server id when
 * 'id' is NULL, else an update (or create) of 'id' honouring if_match
 * (-1: none).  Validates first; 'res' is modified (id, meta).  src[0..srclen)
 * is text whose number tokens start with the resource's, so that they keep
 * their written form (json_dump_buf_src(); NULL: none).
 */
enum err fhir_write_json(struct fhir *f, const char *type, const char *id, json_t *res,
			 const char *src, size_t srclen, int64_t if_match, struct fhir_result *out,
			 struct ctx *c);

/*
 * The parameters GET /fhir/AuditEvent applies, NULL-code terminated
 * (capability.c): the audit log is searched by the fields of its records,
 * not with the index of the FHIR store, so fhir_params[] does not describe
 * it.  The CapabilityStatement lists these; rest.c applies them.
 */
extern const struct fhir_param fhir_audit_params[];

/* Build the CapabilityStatement into f->capability (capability.c). */
void fhir_capability_build(struct fhir *f);

#endif
