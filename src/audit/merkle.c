/*
 * merkle.c - RFC 9162 Merkle tree hashes, proofs and compact ranges.
 * See merkle.h for the contracts.  Proof generation follows the recursive
 * definitions of RFC 9162 sections 2.1.3.1 and 2.1.4.1 (recursion depth is
 * at most 62, the bit length of a tree size); verification follows the
 * iterative algorithms of sections 2.1.3.2 and 2.1.4.2 step by step.
 */
#include "audit/merkle.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define HL MERKLE_HASH_LEN

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	if (!sha256_md) {
		fprintf(stderr, "veranda: openssl has no sha-256\n");
		abort();
	}
	return sha256_md;
}

/* out = SHA-256(prefix || a[0..an) || b[0..bn)); aborts if OpenSSL fails. */
static void hash3(uint8_t prefix, const void *a, size_t an, const void *b, size_t bn,
		  uint8_t out[HL])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int outlen = 0;

	if (!ctx || !EVP_DigestInit_ex(ctx, sha256(), NULL) || !EVP_DigestUpdate(ctx, &prefix, 1) ||
	    (an && !EVP_DigestUpdate(ctx, a, an)) || (bn && !EVP_DigestUpdate(ctx, b, bn)) ||
	    !EVP_DigestFinal_ex(ctx, out, &outlen) || outlen != HL) {
		fprintf(stderr, "veranda: sha-256 failed\n");
		abort();
	}
	EVP_MD_CTX_free(ctx);
}

static void empty_root(uint8_t out[HL])
{
	unsigned int outlen = 0;

	if (!EVP_Digest("", 0, out, &outlen, sha256(), NULL) || outlen != HL) {
		fprintf(stderr, "veranda: sha-256 failed\n");
		abort();
	}
}

void merkle_leaf_hash(const void *entry, size_t n, uint8_t out[MERKLE_HASH_LEN])
{
	hash3(0x00, entry, n, NULL, 0, out);
}

void merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
		      uint8_t out[MERKLE_HASH_LEN])
{
	uint8_t l[HL], r[HL];

	/* copies, so that 'out' may alias an input */
	memcpy(l, left, HL);
	memcpy(r, right, HL);
	hash3(0x01, l, HL, r, HL, out);
}

static bool hash_eq(const uint8_t a[HL], const uint8_t b[HL])
{
	return CRYPTO_memcmp(a, b, HL) == 0;
}

/* The largest power of two strictly smaller than n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/* MTH of the n (>= 1) leaf hashes at 'leaves'. */
static void mth(const uint8_t *leaves, uint64_t n, uint8_t out[HL])
{
	uint8_t l[HL], r[HL];
	uint64_t k;

	if (n == 1) {
		memcpy(out, leaves, HL);
		return;
	}
	k = split_point(n);
	mth(leaves, k, l);
	mth(leaves + k * HL, n - k, r);
	merkle_node_hash(l, r, out);
}

enum err merkle_root(const uint8_t *leaf_hashes, uint64_t n, uint8_t out[MERKLE_HASH_LEN])
{
	if (!out || n >= MERKLE_SIZE_LIMIT || (n && !leaf_hashes))
		return ERR_INVALID;
	if (n == 0)
		empty_root(out);
	else
		mth(leaf_hashes, n, out);
	return ERR_OK;
}

/* A proof under construction: the caller's array and the count so far. */
struct proof_out {
	uint8_t *hashes;
	size_t len;
};

static void proof_push_mth(struct proof_out *p, const uint8_t *leaves, uint64_t n)
{
	/* sizes below 2^62 give at most 62 (inclusion) or 63 (consistency) hashes */
	if (p->len >= MERKLE_PROOF_MAX) {
		fprintf(stderr, "veranda: merkle proof longer than %d hashes\n", MERKLE_PROOF_MAX);
		abort();
	}
	mth(leaves, n, p->hashes + p->len * HL);
	p->len++;
}

/* PATH(m, D[n]) of RFC 9162 section 2.1.3.1, appended to 'p'. */
static void path(uint64_t m, const uint8_t *leaves, uint64_t n, struct proof_out *p)
{
	uint64_t k;

	if (n <= 1)
		return;
	k = split_point(n);
	if (m < k) {
		path(m, leaves, k, p);
		proof_push_mth(p, leaves + k * HL, n - k);
	} else {
		path(m - k, leaves + k * HL, n - k, p);
		proof_push_mth(p, leaves, k);
	}
}

enum err merkle_inclusion_proof(const uint8_t *leaf_hashes, uint64_t n, uint64_t index,
				uint8_t *proof, size_t *len)
{
	struct proof_out p;

	if (len)
		*len = 0;
	if (!leaf_hashes || !proof || !len || n == 0 || n >= MERKLE_SIZE_LIMIT || index >= n)
		return ERR_INVALID;
	p.hashes = proof;
	p.len = 0;
	path(index, leaf_hashes, n, &p);
	*len = p.len;
	return ERR_OK;
}

/* SUBPROOF(m, D[n], b) of RFC 9162 section 2.1.4.1, appended to 'p'. */
static void subproof(uint64_t m, const uint8_t *leaves, uint64_t n, bool b, struct proof_out *p)
{
	uint64_t k;

	if (m == n) {
		if (!b)
			proof_push_mth(p, leaves, n);
		return;
	}
	k = split_point(n);
	if (m <= k) {
		subproof(m, leaves, k, b, p);
		proof_push_mth(p, leaves + k * HL, n - k);
	} else {
		subproof(m - k, leaves + k * HL, n - k, false, p);
		proof_push_mth(p, leaves, k);
	}
}

enum err merkle_consistency_proof(const uint8_t *leaf_hashes, uint64_t n_old, uint64_t n_new,
				  uint8_t *proof, size_t *len)
{
	struct proof_out p;

	if (len)
		*len = 0;
	if (!leaf_hashes || !proof || !len || n_old == 0 || n_old > n_new ||
	    n_new >= MERKLE_SIZE_LIMIT)
		return ERR_INVALID;
	p.hashes = proof;
	p.len = 0;
	subproof(n_old, leaf_hashes, n_new, true, &p);
	*len = p.len;
	return ERR_OK;
}

enum err merkle_inclusion_verify(const uint8_t leaf_hash[MERKLE_HASH_LEN], uint64_t index,
				 uint64_t size, const uint8_t *proof, size_t len,
				 const uint8_t root[MERKLE_HASH_LEN])
{
	uint8_t r[HL];
	uint64_t fn, sn;

	if (!leaf_hash || !root || (len && !proof) || len > MERKLE_PROOF_MAX ||
	    size >= MERKLE_SIZE_LIMIT || index >= size)
		return ERR_INVALID;
	fn = index;
	sn = size - 1;
	memcpy(r, leaf_hash, HL);
	for (size_t i = 0; i < len; i++) {
		const uint8_t *p = proof + i * HL;

		if (sn == 0)
			return ERR_INVALID;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(p, r, r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			merkle_node_hash(r, p, r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || !hash_eq(r, root))
		return ERR_INVALID;
	return ERR_OK;
}

enum err merkle_consistency_verify(uint64_t size1, uint64_t size2,
				   const uint8_t root1[MERKLE_HASH_LEN],
				   const uint8_t root2[MERKLE_HASH_LEN], const uint8_t *proof,
				   size_t len)
{
	uint8_t fr[HL], sr[HL];
	uint64_t fn, sn;
	size_t i;

	if (!root1 || !root2 || (len && !proof) || len > MERKLE_PROOF_MAX || size1 == 0 ||
	    size1 > size2 || size2 >= MERKLE_SIZE_LIMIT)
		return ERR_INVALID;
	if (size1 == size2)
		return len == 0 && hash_eq(root1, root2) ? ERR_OK : ERR_INVALID;
	/* 1. an empty path proves nothing */
	if (len == 0)
		return ERR_INVALID;
	/* 2. when size1 is a power of two, root1 is the path's implicit first element */
	if ((size1 & (size1 - 1)) == 0) {
		memcpy(fr, root1, HL);
		i = 0;
	} else {
		memcpy(fr, proof, HL);
		i = 1;
	}
	/* 3, 4 */
	fn = size1 - 1;
	sn = size2 - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	/* 5 */
	memcpy(sr, fr, HL);
	/* 6 */
	for (; i < len; i++) {
		const uint8_t *c = proof + i * HL;

		if (sn == 0)
			return ERR_INVALID;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(c, fr, fr);
			merkle_node_hash(c, sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			merkle_node_hash(sr, c, sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	/* 7 */
	if (sn != 0 || !hash_eq(fr, root1) || !hash_eq(sr, root2))
		return ERR_INVALID;
	return ERR_OK;
}

void merkle_compact_init(struct merkle_compact *mc)
{
	memset(mc, 0, sizeof(*mc));
}

enum err merkle_compact_append(struct merkle_compact *mc, const uint8_t leaf_hash[MERKLE_HASH_LEN])
{
	uint8_t h[HL];
	unsigned i;

	if (mc->size >= MERKLE_SIZE_LIMIT - 1)
		return ERR_TOOBIG;
	memcpy(h, leaf_hash, HL);
	/* a binary increment: every full level to the right merges into its left sibling */
	for (i = 0; mc->size >> i & 1; i++)
		merkle_node_hash(mc->level[i], h, h);
	memcpy(mc->level[i], h, HL);
	mc->size++;
	return ERR_OK;
}

void merkle_compact_root(const struct merkle_compact *mc, uint8_t out[MERKLE_HASH_LEN])
{
	uint8_t r[HL];
	unsigned i;

	if (mc->size == 0) {
		empty_root(out);
		return;
	}
	i = (unsigned)__builtin_ctzll(mc->size);
	memcpy(r, mc->level[i], HL);
	for (i++; i < 64; i++)
		if (mc->size >> i & 1)
			merkle_node_hash(mc->level[i], r, r);
	memcpy(out, r, HL);
}

enum err merkle_compact_serialize(const struct merkle_compact *mc, struct buf *out)
{
	uint8_t head[9];

	head[0] = 0x01;
	for (int i = 0; i < 8; i++)
		head[1 + i] = (uint8_t)(mc->size >> (56 - 8 * i));
	buf_add(out, head, sizeof(head));
	for (int i = 63; i >= 0; i--)
		if (mc->size >> i & 1)
			buf_add(out, mc->level[i], HL);
	return out->err;
}

enum err merkle_compact_parse(struct merkle_compact *mc, const void *data, size_t n)
{
	const uint8_t *p = data;
	uint64_t size = 0;

	merkle_compact_init(mc);
	if (!p || n < 9 || p[0] != 0x01)
		return ERR_INVALID;
	for (int i = 0; i < 8; i++)
		size = size << 8 | p[1 + i];
	if (size >= MERKLE_SIZE_LIMIT ||
	    n != 9 + (size_t)__builtin_popcountll(size) * HL)
		return ERR_INVALID;
	p += 9;
	for (int i = 63; i >= 0; i--) {
		if (size >> i & 1) {
			memcpy(mc->level[i], p, HL);
			p += HL;
		}
	}
	mc->size = size;
	return ERR_OK;
}
