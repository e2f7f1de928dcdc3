/*
 * fhir_json - libFuzzer target for the FHIR model: bounded JSON parsing,
 * write validation and index extraction (every path walker, every
 * primitive parser), plus the date parser and the string normalizer on the
 * raw input.  Any crash, leak, sanitizer report or inconsistent result
 * (a row with lo > hi, an error without a message) is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/str.h"
#include "fhir/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_index(const char *type, const char *id, const json_t *res)
{
	struct arena a = ARENA_INIT;
	struct fhir_index ix;
	struct ctx c = CTX_INIT;
	enum err e = fhir_index_resource(&a, type, id, res, &ix, &c);

	if (e != ERR_OK && !c.msg[0])
		abort();
	if (e == ERR_OK) {
		for (size_t i = 0; i < ix.n; i++) {
			const struct store_ix_row *r = &ix.rows[i];
			if (!r->param || (r->kind == STORE_IX_DATE && r->lo > r->hi))
				abort();
		}
		for (size_t i = 0; i < ix.npatients; i++)
			if (!fhir_id_valid(ix.patients[i]))
				abort();
	}
	arena_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = CTX_INIT;
	json_t *res;
	char *s;

	/* the primitives on the raw bytes */
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	{
		int64_t lo, hi;
		if (fhir_date_parse(s, &lo, &hi) == ERR_OK && lo > hi)
			abort();
	}
	if (strlen(s) == size && str_utf8_valid(s, size)) {
		struct buf b = BUF_INIT(4096);
		fhir_str_normalize(s, &b);
		buf_release(&b);
	}
	free(s);

	res = json_parse_bounded((const char *)data, size, 64, &c);
	if (!res)
		return 0;
	{
		const char *rt = json_get_str(res, "resourceType");
		const char *id = json_get_str(res, "id");
		const struct fhir_type *t = fhir_type_find(rt);
		struct ctx vc = CTX_INIT;

		if (!t) {    /* still walk it as some type, chosen by the input */
			size_t ntypes = 0;
			while (fhir_types[ntypes].name)
				ntypes++;
			t = &fhir_types[size % ntypes];
		}
		if (fhir_validate(t->name, NULL, res, &vc) != ERR_OK && !vc.msg[0])
			abort();
		ctx_clear(&vc);
		if (fhir_validate(t->name, id ? id : "x", res, &vc) != ERR_OK && !vc.msg[0])
			abort();
		check_index(t->name, fhir_id_valid(id) ? id : "x", res);
	}
	json_decref(res);
	return 0;
}
