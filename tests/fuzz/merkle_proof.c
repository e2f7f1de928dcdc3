/*
 * tests/fuzz/merkle_proof.c - libFuzzer target for the verifiers of
 * src/audit/merkle.c, which take proofs and checkpoints from outside.
 *
 * Input layout (missing bytes read as zero):
 *   [0]       flags: bit 0 reduces both sizes modulo 256 (to reach the
 *             proof-walking paths more often), bit 1 runs the oracle below
 *   [1..9)    a: tree size (inclusion) / size1 (consistency), big-endian
 *   [9..17)   b: leaf index (inclusion) / size2 (consistency), big-endian
 *   [17..49)  root (inclusion) / root1 (consistency)
 *   [49..81)  leaf hash (inclusion) / root2 (consistency)
 *   [81..)    the proof: as many whole 32-byte hashes as there are, even
 *             more than MERKLE_PROOF_MAX
 * Both verifiers get the same bytes and must return ERR_OK or ERR_INVALID;
 * the whole input also goes to merkle_compact_parse(), whose successes must
 * serialize back to the same bytes.  The oracle builds a real tree of up
 * to 33 leaves from a and b, checks that generated proofs verify, and that
 * one flipped byte (placed by the input) makes them fail.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/merkle.h"
#include "core/buf.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HL MERKLE_HASH_LEN
#define ORACLE_MAX 33

static void take(const uint8_t *data, size_t size, size_t off, void *out, size_t n)
{
	memset(out, 0, n);
	if (off < size)
		memcpy(out, data + off, size - off < n ? size - off : n);
}

static uint64_t take_u64(const uint8_t *data, size_t size, size_t off)
{
	uint8_t b[8];
	uint64_t v = 0;

	take(data, size, off, b, sizeof(b));
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static void oracle(uint64_t a, uint64_t b, uint8_t flip)
{
	uint8_t leaves[ORACLE_MAX * HL], root[HL], root_old[HL], croot[HL];
	uint8_t proof[MERKLE_PROOF_MAX * HL];
	struct merkle_compact mc;
	uint64_t n = a % ORACLE_MAX + 1, idx = b % n, m = b % n + 1;
	size_t len, pos;

	merkle_compact_init(&mc);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t e[9] = {(uint8_t)i, (uint8_t)(a >> 8), (uint8_t)(a >> 16), (uint8_t)(b >> 8)};

		merkle_leaf_hash(e, sizeof(e), leaves + i * HL);
		if (merkle_compact_append(&mc, leaves + i * HL) != ERR_OK)
			abort();
	}
	if (merkle_root(leaves, n, root) != ERR_OK)
		abort();
	merkle_compact_root(&mc, croot);
	if (memcmp(root, croot, HL) != 0)
		abort();

	/* inclusion: verifies, and fails with one byte changed */
	if (merkle_inclusion_proof(leaves, n, idx, proof, &len) != ERR_OK ||
	    merkle_inclusion_verify(leaves + idx * HL, idx, n, proof, len, root) != ERR_OK)
		abort();
	if (len && flip) {
		pos = (size_t)(a >> 8) % (len * HL);
		proof[pos] ^= flip;
		if (merkle_inclusion_verify(leaves + idx * HL, idx, n, proof, len, root) != ERR_INVALID)
			abort();
	}

	/* consistency from the first m leaves, likewise */
	if (merkle_root(leaves, m, root_old) != ERR_OK ||
	    merkle_consistency_proof(leaves, m, n, proof, &len) != ERR_OK ||
	    merkle_consistency_verify(m, n, root_old, root, proof, len) != ERR_OK)
		abort();
	if (len && flip) {
		pos = (size_t)(b >> 8) % (len * HL);
		proof[pos] ^= flip;
		if (merkle_consistency_verify(m, n, root_old, root, proof, len) != ERR_INVALID)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t flags = size ? data[0] : 0;
	uint64_t a = take_u64(data, size, 1), b = take_u64(data, size, 9);
	uint8_t h1[HL], h2[HL];
	const uint8_t *proof = size > 81 ? data + 81 : NULL;
	size_t len = size > 81 ? (size - 81) / HL : 0;
	struct merkle_compact mc;
	enum err e;

	take(data, size, 17, h1, HL);
	take(data, size, 49, h2, HL);
	if (flags & 1) {
		a %= 256;
		b %= 256;
	}

	e = merkle_inclusion_verify(h2, b, a, proof, len, h1);
	if (e != ERR_OK && e != ERR_INVALID)
		abort();
	if (e == ERR_OK && (b >= a || len > MERKLE_PROOF_MAX))
		abort();
	e = merkle_consistency_verify(a, b, h1, h2, proof, len);
	if (e != ERR_OK && e != ERR_INVALID)
		abort();
	if (e == ERR_OK && (a == 0 || a > b || len > MERKLE_PROOF_MAX))
		abort();

	/* checkpoints: a successful parse serializes back to the same bytes */
	if (merkle_compact_parse(&mc, data, size) == ERR_OK) {
		struct buf out = BUF_INIT(MERKLE_COMPACT_SERIAL_MAX);

		if (merkle_compact_serialize(&mc, &out) != ERR_OK || out.len != size ||
		    memcmp(out.data, data, size) != 0)
			abort();
		merkle_compact_root(&mc, h1);
		buf_release(&out);
	} else if (mc.size != 0) {
		abort();
	}

	if (flags & 2)
		oracle(a, b, size ? data[size - 1] : 0);
	return 0;
}
