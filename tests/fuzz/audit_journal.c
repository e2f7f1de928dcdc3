/*
 * tests/fuzz/audit_journal.c - libFuzzer target for the audit journal's
 * readers (src/audit/journal.c, writer.c): what audit_open() reads back
 * from DATA/audit-journal/ after a crash, torn or damaged.
 *
 * Input: byte 0 picks the reader (modulo 2), the rest is the bytes.
 *   0  journal_parse() over the bytes as a journal file, then the payload
 *      check on every entry of the run it accepts
 *   1  journal_payload_check() on the bytes as one entry's payload
 * Every call must return, never read out of bounds, crash or leak; the
 * run must lie within the input and its numbers run first..last.
 * The corpus in tests/fuzz/corpus/audit_journal holds a real entry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = CTX_INIT;
	uint8_t *copy;
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1;
	/* a copy of exactly the input's length, so that ASan sees any overrun */
	copy = malloc(n ? n : 1);
	memcpy(copy, data + 1, n);
	if (data[0] % 2 == 0) {
		uint64_t first, last, count = 0;
		size_t len = journal_parse(copy, n, &first, &last), at = 0;

		if (len > n || (first == 0) != (last == 0) || last < first)
			abort();
		while (at < len) {
			uint32_t plen = le32(copy + at + 4);
			journal_payload_check(copy + at + JOURNAL_HEADER, plen, &c);
			ctx_clear(&c);
			at += JOURNAL_HEADER + ((plen + 7) & ~7u);
			count++;
		}
		if (at != len || (count && count != last - first + 1))
			abort();
	} else {
		journal_payload_check(copy, n, &c);
	}
	free(copy);
	return 0;
}
