/*
 * merkle.h - the RFC 9162 (Certificate Transparency 2.0) Merkle tree that
 * makes the audit log tamper-evident: tree hashes, inclusion and
 * consistency proofs (generation and verification) and a compact range
 * ("frontier") that appends leaves in O(log n) memory.
 *
 * Hashes are SHA-256 through OpenSSL EVP, MERKLE_HASH_LEN bytes:
 *   leaf hash = SHA-256(0x00 || entry)
 *   node hash = SHA-256(0x01 || left || right)
 * The tree of n leaves splits at the largest power of two smaller than n
 * (RFC 9162 section 2.1.1); the tree of no leaves hashes to SHA-256("").
 *
 * Arrays of hashes (leaf hashes, proofs) are flat: hash i occupies bytes
 * [i * MERKLE_HASH_LEN, (i + 1) * MERKLE_HASH_LEN).  Tree sizes are below
 * MERKLE_SIZE_LIMIT (2^62) and proofs hold at most MERKLE_PROOF_MAX hashes;
 * verifiers reject anything outside those bounds with ERR_INVALID before
 * looking at it, so untrusted input (a proof from a client, a checkpoint
 * file) can be passed straight in.
 *
 * Nothing here allocates except the struct buf that
 * merkle_compact_serialize() appends to.  All functions are thread-safe
 * on distinct objects; a struct merkle_compact belongs to one thread at a
 * time (the audit writer).  A failure of the SHA-256 primitive itself (an
 * OpenSSL that cannot allocate a context) aborts with a message, as out of
 * memory does everywhere in Veranda.
 */
#ifndef VERANDA_AUDIT_MERKLE_H
#define VERANDA_AUDIT_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define MERKLE_HASH_LEN 32
/* Most hashes in any proof accepted or produced here. */
#define MERKLE_PROOF_MAX 64
/* Tree sizes and leaf indexes are strictly below this. */
#define MERKLE_SIZE_LIMIT ((uint64_t)1 << 62)
/* Bytes of the largest serialized compact range (version, size, 62 hashes). */
#define MERKLE_COMPACT_SERIAL_MAX (1 + 8 + 62 * MERKLE_HASH_LEN)

/* out = SHA-256(0x00 || entry[0..n)).  'entry' may be NULL when n is 0. */
void merkle_leaf_hash(const void *entry, size_t n, uint8_t out[MERKLE_HASH_LEN]);

/* out = SHA-256(0x01 || left || right).  'out' may alias either input. */
void merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
		      uint8_t out[MERKLE_HASH_LEN]);

/*
 * The Merkle Tree Hash MTH of the n leaf hashes at 'leaf_hashes' (flat,
 * n * MERKLE_HASH_LEN bytes; NULL allowed when n is 0) into 'out'.
 * O(n) time, O(log n) stack.  ERR_INVALID when n >= MERKLE_SIZE_LIMIT or
 * leaf_hashes is NULL with n > 0; 'out' is then untouched.
 */
enum err merkle_root(const uint8_t *leaf_hashes, uint64_t n, uint8_t out[MERKLE_HASH_LEN]);

/*
 * The inclusion proof PATH(index, D[n]) of RFC 9162 section 2.1.3.1 for the
 * leaf at 'index' in the tree of the n leaf hashes at 'leaf_hashes'.
 * 'proof' receives up to MERKLE_PROOF_MAX hashes (the caller provides
 * MERKLE_PROOF_MAX * MERKLE_HASH_LEN bytes), deepest sibling first;
 * '*len' receives their count.  ERR_INVALID (with *len = 0) when n is 0,
 * index >= n, n >= MERKLE_SIZE_LIMIT or a pointer is NULL.
 */
enum err merkle_inclusion_proof(const uint8_t *leaf_hashes, uint64_t n, uint64_t index,
				uint8_t *proof, size_t *len);

/*
 * Verifies that 'leaf_hash' is leaf number 'index' of the tree of 'size'
 * leaves whose root is 'root', given the 'len' hashes of 'proof' (RFC 9162
 * section 2.1.3.2).  ERR_OK when it is; ERR_INVALID for any other input:
 * index >= size, size >= MERKLE_SIZE_LIMIT, len > MERKLE_PROOF_MAX, a proof
 * of the wrong length for (index, size), a NULL pointer, or a root that
 * does not match.  Never reads more than len * MERKLE_HASH_LEN bytes of
 * 'proof' ('proof' may be NULL when len is 0).
 */
enum err merkle_inclusion_verify(const uint8_t leaf_hash[MERKLE_HASH_LEN], uint64_t index,
				 uint64_t size, const uint8_t *proof, size_t len,
				 const uint8_t root[MERKLE_HASH_LEN]);

/*
 * The consistency proof PROOF(n_old, D[n_new]) of RFC 9162 section 2.1.4.1
 * between the first n_old leaves and all n_new leaves at 'leaf_hashes'.
 * Output as for merkle_inclusion_proof(); the proof is empty when
 * n_old == n_new.  ERR_INVALID (with *len = 0) when n_old is 0,
 * n_old > n_new, n_new >= MERKLE_SIZE_LIMIT or a pointer is NULL.
 */
enum err merkle_consistency_proof(const uint8_t *leaf_hashes, uint64_t n_old, uint64_t n_new,
				  uint8_t *proof, size_t *len);

/*
 * Verifies that the tree of 'size2' leaves with root 'root2' extends the
 * tree of 'size1' leaves with root 'root1', given the 'len' hashes of
 * 'proof' (RFC 9162 section 2.1.4.2).  When size1 == size2 the proof must
 * be empty and the roots equal.  ERR_OK when consistent; ERR_INVALID for
 * anything else: size1 of 0 (a proof from the empty tree proves nothing),
 * size1 > size2, size2 >= MERKLE_SIZE_LIMIT, len > MERKLE_PROOF_MAX, a
 * proof of the wrong length, a NULL pointer or roots that do not match.
 */
enum err merkle_consistency_verify(uint64_t size1, uint64_t size2,
				   const uint8_t root1[MERKLE_HASH_LEN],
				   const uint8_t root2[MERKLE_HASH_LEN], const uint8_t *proof,
				   size_t len);

/*
 * A compact range over leaves [0, size): the roots of the perfect subtrees
 * that the binary digits of 'size' describe, which is all the audit writer
 * needs to append and to compute the current root.  Callers may read
 * 'size'; the hashes are private.  A plain value: copy it, keep it on the
 * stack, no release needed.
 */
struct merkle_compact {
	uint64_t size;
	/* level[i]: root of the subtree of 2^i leaves; meaningful when bit i of size is set */
	uint8_t level[64][MERKLE_HASH_LEN];
};

/* The empty range (size 0). */
void merkle_compact_init(struct merkle_compact *mc);

/*
 * Appends one leaf hash: O(log n) time, no allocation.  ERR_TOOBIG (range
 * unchanged) when the size would reach MERKLE_SIZE_LIMIT.
 */
enum err merkle_compact_append(struct merkle_compact *mc, const uint8_t leaf_hash[MERKLE_HASH_LEN]);

/* The root of the tree of the range's leaves into 'out' (SHA-256("") when empty). */
void merkle_compact_root(const struct merkle_compact *mc, uint8_t out[MERKLE_HASH_LEN]);

/*
 * Appends the checkpoint form of the range to 'out': one version byte
 * (0x01), the size as 8 bytes big-endian, then the subtree roots from the
 * largest (leftmost) to the smallest, MERKLE_HASH_LEN bytes each; at most
 * MERKLE_COMPACT_SERIAL_MAX bytes.  Returns out's error (ERR_TOOBIG when
 * its cap is reached, in which case 'out' holds a partial record).
 */
enum err merkle_compact_serialize(const struct merkle_compact *mc, struct buf *out);

/*
 * Reads the form merkle_compact_serialize() writes, all n bytes of it, into
 * '*mc'.  ERR_INVALID for any other input (unknown version, size at or above
 * MERKLE_SIZE_LIMIT, a length that does not match the size); '*mc' is then
 * the empty range.
 */
enum err merkle_compact_parse(struct merkle_compact *mc, const void *data, size_t n);

#endif
