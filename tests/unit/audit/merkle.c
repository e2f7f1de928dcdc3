/*
 * Unit tests of src/audit/merkle.c: the RFC 9162 Merkle tree.
 *
 * - Every vector of transparency-dev/merkle (../shared/testdata/merkle-
 *   vectors/testdata, read from the repository root or found from the
 *   binary) must verify or fail exactly as it says; skips, saying so, when
 *   the data is not there (a clone outside this workplace).
 * - Roots of the RFC 6962 reference tree of 8 leaves, and the vectors'
 *   proofs over that tree regenerated with our own generators.
 * - Trees of 1..64 leaves: generated proofs verify against the compact
 *   range's root, and every flipped byte, changed index or truncated or
 *   extended proof fails.
 * - Bounds: oversize proofs and sizes, NULL pointers, compact range
 *   serialization round trips and malformed checkpoints.
 *
 * How vectors map onto a 32-byte API: a leaf hash or proof element that is
 * not 32 bytes long cannot be passed in at all (a caller rejects it when
 * decoding), so such a vector must expect failure.  Roots are opaque values
 * that are only compared; a root of the wrong length is mapped injectively
 * onto a 32-byte value no honest computation gives (SHA-256 of a marker and
 * its bytes), so equal roots stay equal and different ones different.
 */
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/merkle.h"
#include "core/base64.h"
#include "core/buf.h"

#define VECTORS_DIR "../shared/testdata/merkle-vectors/testdata"
#define HL MERKLE_HASH_LEN

/* ---------------------------------------------------------------- helpers */

static void hex_to_hash(const char *hex, uint8_t out[HL])
{
	assert_int_equal(strlen(hex), 2 * HL);
	for (size_t i = 0; i < HL; i++) {
		unsigned v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* The RFC 6962 reference leaves (the tree of CT's and transparency-dev's tests). */
static const struct {
	const char *data;
	size_t n;
} rfc_leaves[8] = {
	{"", 0},
	{"\x00", 1},
	{"\x10", 1},
	{"\x20\x21", 2},
	{"\x30\x31", 2},
	{"\x40\x41\x42\x43", 4},
	{"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
	{"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

/* MTH of the first 1..8 reference leaves (RFC 6962 test data). */
static const char *const rfc_roots[9] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static uint8_t rfc_leaf_hashes[8 * HL];

static void rfc_init(void)
{
	for (size_t i = 0; i < 8; i++)
		merkle_leaf_hash(rfc_leaves[i].data, rfc_leaves[i].n, rfc_leaf_hashes + i * HL);
}

/* Leaf hashes of a synthetic tree: leaf i is the entry "entry <i>". */
static void synth_leaves(uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char e[32];
		int k = snprintf(e, sizeof(e), "entry %zu", i);
		merkle_leaf_hash(e, (size_t)k, out + i * HL);
	}
}

/* ---------------------------------------------------------------- vectors */

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT(1 << 20);
	char chunk[4096];
	size_t n;

	if (!f)
		fail_msg("cannot open '%s'", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	assert_int_equal(ferror(f), 0);
	fclose(f);
	assert_int_equal(b.err, ERR_OK);
	return buf_take(&b, len);
}

/*
 * Reads the unsigned integer member 'key' straight from the JSON text
 * (jansson cannot hold 2^64 - 1, which some vectors use), then blanks its
 * digits to a single 0 so that jansson can parse the rest.  False when the
 * key is absent.
 */
static bool take_u64(char *text, const char *key, uint64_t *out)
{
	char pat[64];
	char *p, *end;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(text, pat);
	if (!p)
		return false;
	p += strlen(pat);
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
		p++;
	if (*p < '0' || *p > '9')
		fail_msg("'%s' is not an unsigned integer", key);
	errno = 0;
	*out = strtoull(p, &end, 10);
	assert_int_equal(errno, 0);
	*p++ = '0';
	while (p < end)
		*p++ = ' ';
	return true;
}

/* Decodes base64 member 'key' of 'o' into 'out'; returns the decoded length. */
static size_t get_b64(const json_t *o, const char *key, struct buf *out)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (!s)
		fail_msg("no string member '%s'", key);
	buf_reset(out);
	assert_int_equal(base64_decode(s, strlen(s), out), ERR_OK);
	return out->len;
}

/* A root as the 32-byte API sees it (see the file comment). */
static void map_root(const struct buf *b, uint8_t out[HL])
{
	struct buf m = BUF_INIT(4096);

	if (b->len == HL) {
		memcpy(out, b->data, HL);
		return;
	}
	buf_adds(&m, "not a 32-byte root:");
	buf_add(&m, b->data, b->len);
	merkle_leaf_hash(m.data, m.len, out);
	buf_release(&m);
}

/* The proof array of 'o' into 'proof'; false when an element is not 32 bytes or there are too many. */
static bool get_proof(const json_t *o, uint8_t *proof, size_t *len)
{
	const json_t *arr = json_object_get(o, "proof");
	struct buf b = BUF_INIT(4096);
	bool ok = true;
	size_t i;
	json_t *v;

	/* a null proof (Go's nil slice) is the empty proof */
	assert_true(json_is_array(arr) || json_is_null(arr));
	*len = json_array_size(arr);
	if (*len > MERKLE_PROOF_MAX + 1)
		ok = false;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);

		assert_non_null(s);
		buf_reset(&b);
		assert_int_equal(base64_decode(s, strlen(s), &b), ERR_OK);
		if (b.len != HL) {
			ok = false;
			continue;
		}
		if (i < MERKLE_PROOF_MAX + 1)
			memcpy(proof + i * HL, b.data, HL);
	}
	buf_release(&b);
	return ok;
}

struct tally {
	int files, inclusion, consistency, ok, failed, undecodable, regenerated;
};

static void check_inclusion(const char *path, const json_t *o, uint64_t idx, uint64_t size,
			    bool want_err, struct tally *t)
{
	uint8_t leaf[HL], root[HL], proof[(MERKLE_PROOF_MAX + 1) * HL];
	struct buf b = BUF_INIT(4096);
	size_t len;
	bool decodable;
	enum err e;

	t->inclusion++;
	decodable = get_b64(o, "leafHash", &b) == HL;
	if (decodable)
		memcpy(leaf, b.data, HL);
	get_b64(o, "root", &b);
	map_root(&b, root);
	decodable = get_proof(o, proof, &len) && decodable;
	buf_release(&b);
	if (!decodable) {
		if (!want_err)
			fail_msg("%s: a hash of the wrong length, but the vector expects success", path);
		t->undecodable++;
		return;
	}
	e = merkle_inclusion_verify(leaf, idx, size, proof, len, root);
	if (want_err && e == ERR_OK)
		fail_msg("%s: verified, but the vector expects failure", path);
	if (!want_err && e != ERR_OK)
		fail_msg("%s: failed (%s), but the vector expects success", path, err_str(e));
	if (e != ERR_OK && e != ERR_INVALID)
		fail_msg("%s: failure is not ERR_INVALID", path);
	e == ERR_OK ? t->ok++ : t->failed++;

	/* a valid proof over the reference tree: our generator gives the same proof */
	if (!want_err && size >= 1 && size <= 8 && idx < size &&
	    memcmp(leaf, rfc_leaf_hashes + idx * HL, HL) == 0) {
		uint8_t mine[MERKLE_PROOF_MAX * HL], r[HL];
		size_t mlen;

		assert_int_equal(merkle_root(rfc_leaf_hashes, size, r), ERR_OK);
		assert_memory_equal(r, root, HL);
		assert_int_equal(merkle_inclusion_proof(rfc_leaf_hashes, size, idx, mine, &mlen), ERR_OK);
		assert_int_equal(mlen, len);
		assert_memory_equal(mine, proof, len * HL);
		t->regenerated++;
	}
}

static void check_consistency(const char *path, const json_t *o, uint64_t size1, uint64_t size2,
			      bool want_err, struct tally *t)
{
	uint8_t root1[HL], root2[HL], proof[(MERKLE_PROOF_MAX + 1) * HL];
	struct buf b = BUF_INIT(4096);
	size_t len;
	enum err e;

	t->consistency++;
	get_b64(o, "root1", &b);
	map_root(&b, root1);
	get_b64(o, "root2", &b);
	map_root(&b, root2);
	buf_release(&b);
	if (!get_proof(o, proof, &len)) {
		if (!want_err)
			fail_msg("%s: a hash of the wrong length, but the vector expects success", path);
		t->undecodable++;
		return;
	}
	e = merkle_consistency_verify(size1, size2, root1, root2, proof, len);
	if (want_err && e == ERR_OK)
		fail_msg("%s: verified, but the vector expects failure", path);
	if (!want_err && e != ERR_OK)
		fail_msg("%s: failed (%s), but the vector expects success", path, err_str(e));
	if (e != ERR_OK && e != ERR_INVALID)
		fail_msg("%s: failure is not ERR_INVALID", path);
	e == ERR_OK ? t->ok++ : t->failed++;

	/* a valid proof between reference trees: our generator gives the same proof */
	if (!want_err && size1 >= 1 && size1 < size2 && size2 <= 8) {
		uint8_t mine[MERKLE_PROOF_MAX * HL], r1[HL], r2[HL];
		size_t mlen;

		hex_to_hash(rfc_roots[size1], r1);
		hex_to_hash(rfc_roots[size2], r2);
		if (memcmp(r1, root1, HL) == 0 && memcmp(r2, root2, HL) == 0) {
			assert_int_equal(merkle_consistency_proof(rfc_leaf_hashes, size1, size2, mine,
								  &mlen),
					 ERR_OK);
			assert_int_equal(mlen, len);
			assert_memory_equal(mine, proof, len * HL);
			t->regenerated++;
		}
	}
}

static void check_file(const char *path, struct tally *t)
{
	size_t n;
	char *text = read_all(path, &n);
	uint64_t a, z;
	json_error_t jerr;
	json_t *o, *want;
	bool inclusion;

	if (take_u64(text, "leafIdx", &a)) {
		inclusion = true;
		if (!take_u64(text, "treeSize", &z))
			fail_msg("%s: leafIdx without treeSize", path);
	} else if (take_u64(text, "size1", &a)) {
		inclusion = false;
		if (!take_u64(text, "size2", &z))
			fail_msg("%s: size1 without size2", path);
	} else {
		fail_msg("%s: neither an inclusion nor a consistency vector", path);
		return;
	}
	o = json_loads(text, 0, &jerr);
	if (!o)
		fail_msg("%s: %s", path, jerr.text);
	want = json_object_get(o, "wantErr");
	assert_true(json_is_boolean(want));
	if (inclusion)
		check_inclusion(path, o, a, z, json_is_true(want), t);
	else
		check_consistency(path, o, a, z, json_is_true(want), t);
	t->files++;
	json_decref(o);
	free(text);
}

static void walk(const char *dir, struct tally *t)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[PATH_MAX];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			walk(path, t);
		else if (strstr(de->d_name, ".json"))
			check_file(path, t);
	}
	closedir(d);
}

static void test_vectors(void **state)
{
	char dir[PATH_MAX];
	struct tally t = {0};

	(void)state;
	if (!unit_data_dir(VECTORS_DIR, dir, sizeof(dir) - 64)) {
		print_message("skipping: %s not found (run from the repository root inside the "
			      "workplace; see ../shared/testdata/README.md)\n",
			      VECTORS_DIR);
		skip();
		return;
	}
	walk(dir, &t);
	print_message("merkle vectors: %d files (%d inclusion, %d consistency): %d verified, %d "
		      "rejected, %d with hashes of the wrong length; %d proofs regenerated\n",
		      t.files, t.inclusion, t.consistency, t.ok, t.failed, t.undecodable,
		      t.regenerated);
	/* the suite as stored holds 196 files, a few dozen of them happy paths */
	assert_true(t.files >= 190);
	assert_true(t.inclusion > 80 && t.consistency > 80);
	assert_true(t.ok >= 10);
	assert_true(t.regenerated >= 8);
}

/* ---------------------------------------------------------------- known trees */

static void test_rfc6962_roots(void **state)
{
	uint8_t want[HL], got[HL];
	struct merkle_compact mc;

	(void)state;
	/* the leaf hash of the empty entry is the first reference leaf hash */
	hex_to_hash(rfc_roots[1], want);
	merkle_leaf_hash(NULL, 0, got);
	assert_memory_equal(got, want, HL);

	merkle_compact_init(&mc);
	for (uint64_t n = 0; n <= 8; n++) {
		hex_to_hash(rfc_roots[n], want);
		assert_int_equal(merkle_root(rfc_leaf_hashes, n, got), ERR_OK);
		assert_memory_equal(got, want, HL);
		merkle_compact_root(&mc, got);
		assert_memory_equal(got, want, HL);
		if (n < 8)
			assert_int_equal(merkle_compact_append(&mc, rfc_leaf_hashes + n * HL), ERR_OK);
	}
}

/* ---------------------------------------------------------------- generated trees */

#define TREE_MAX 64

static void flip_fails_inclusion(const uint8_t *leaf, uint64_t idx, uint64_t size,
				 const uint8_t *proof, size_t len, const uint8_t *root)
{
	uint8_t p[MERKLE_PROOF_MAX * HL + HL], l[HL], r[HL];

	memcpy(p, proof, len * HL);
	memcpy(l, leaf, HL);
	memcpy(r, root, HL);
	for (size_t i = 0; i < len * HL; i++) {
		p[i] ^= 0x01;
		assert_int_equal(merkle_inclusion_verify(l, idx, size, p, len, r), ERR_INVALID);
		p[i] ^= 0x01;
	}
	for (size_t i = 0; i < HL; i++) {
		l[i] ^= 0x80;
		assert_int_equal(merkle_inclusion_verify(l, idx, size, p, len, r), ERR_INVALID);
		l[i] ^= 0x80;
		r[i] ^= 0x80;
		assert_int_equal(merkle_inclusion_verify(l, idx, size, p, len, r), ERR_INVALID);
		r[i] ^= 0x80;
	}
	/* every other index, and indexes past the end */
	for (uint64_t j = 0; j < size + 2; j++)
		if (j != idx)
			assert_int_equal(merkle_inclusion_verify(l, j, size, p, len, r), ERR_INVALID);
	assert_int_equal(merkle_inclusion_verify(l, idx ^ ((uint64_t)1 << 40), size, p, len, r),
			 ERR_INVALID);
	/* truncated, extended by a copy of the root or of the leaf */
	if (len)
		assert_int_equal(merkle_inclusion_verify(l, idx, size, p, len - 1, r), ERR_INVALID);
	memcpy(p + len * HL, r, HL);
	assert_int_equal(merkle_inclusion_verify(l, idx, size, p, len + 1, r), ERR_INVALID);
	memcpy(p + len * HL, l, HL);
	assert_int_equal(merkle_inclusion_verify(l, idx, size, p, len + 1, r), ERR_INVALID);
	/* sizes that cannot hold the index */
	assert_int_equal(merkle_inclusion_verify(l, idx, idx, p, len, r), ERR_INVALID);
	assert_int_equal(merkle_inclusion_verify(l, idx, 0, p, len, r), ERR_INVALID);
}

static void test_generated_inclusion(void **state)
{
	static uint8_t leaves[TREE_MAX * HL];
	struct merkle_compact mc;

	(void)state;
	synth_leaves(leaves, TREE_MAX);
	merkle_compact_init(&mc);
	for (uint64_t n = 1; n <= TREE_MAX; n++) {
		uint8_t root[HL], root2[HL];

		assert_int_equal(merkle_compact_append(&mc, leaves + (n - 1) * HL), ERR_OK);
		assert_int_equal(mc.size, n);
		merkle_compact_root(&mc, root);
		assert_int_equal(merkle_root(leaves, n, root2), ERR_OK);
		assert_memory_equal(root, root2, HL);
		for (uint64_t i = 0; i < n; i++) {
			uint8_t proof[MERKLE_PROOF_MAX * HL];
			size_t len;

			assert_int_equal(merkle_inclusion_proof(leaves, n, i, proof, &len), ERR_OK);
			assert_true(len <= 6);
			assert_int_equal(merkle_inclusion_verify(leaves + i * HL, i, n, proof, len, root),
					 ERR_OK);
			flip_fails_inclusion(leaves + i * HL, i, n, proof, len, root);
		}
	}
}

static void test_generated_consistency(void **state)
{
	static uint8_t leaves[TREE_MAX * HL];
	uint8_t roots[TREE_MAX + 1][HL];

	(void)state;
	synth_leaves(leaves, TREE_MAX);
	for (uint64_t n = 0; n <= TREE_MAX; n++)
		assert_int_equal(merkle_root(leaves, n, roots[n]), ERR_OK);
	for (uint64_t n2 = 1; n2 <= TREE_MAX; n2++) {
		for (uint64_t n1 = 1; n1 <= n2; n1++) {
			uint8_t p[(MERKLE_PROOF_MAX + 1) * HL], r1[HL], r2[HL];
			size_t len;

			assert_int_equal(merkle_consistency_proof(leaves, n1, n2, p, &len), ERR_OK);
			assert_true(len <= 7);
			assert_true(n1 != n2 || len == 0);
			memcpy(r1, roots[n1], HL);
			memcpy(r2, roots[n2], HL);
			assert_int_equal(merkle_consistency_verify(n1, n2, r1, r2, p, len), ERR_OK);
			for (size_t i = 0; i < len * HL; i++) {
				p[i] ^= 0x04;
				assert_int_equal(merkle_consistency_verify(n1, n2, r1, r2, p, len),
						 ERR_INVALID);
				p[i] ^= 0x04;
			}
			for (size_t i = 0; i < HL; i++) {
				r1[i] ^= 0x10;
				assert_int_equal(merkle_consistency_verify(n1, n2, r1, r2, p, len),
						 ERR_INVALID);
				r1[i] ^= 0x10;
				r2[i] ^= 0x10;
				assert_int_equal(merkle_consistency_verify(n1, n2, r1, r2, p, len),
						 ERR_INVALID);
				r2[i] ^= 0x10;
			}
			/* the right roots for other old sizes do not pass with this proof */
			for (uint64_t m = 1; m <= n2; m++)
				if (m != n1)
					assert_int_equal(merkle_consistency_verify(m, n2, roots[m], r2, p,
										   len),
							 ERR_INVALID);
			/* swapped roots, truncated and extended proofs */
			if (memcmp(r1, r2, HL) != 0)
				assert_int_equal(merkle_consistency_verify(n1, n2, r2, r1, p, len),
						 ERR_INVALID);
			if (len)
				assert_int_equal(merkle_consistency_verify(n1, n2, r1, r2, p, len - 1),
						 ERR_INVALID);
			memcpy(p + len * HL, r2, HL);
			assert_int_equal(merkle_consistency_verify(n1, n2, r1, r2, p, len + 1),
					 ERR_INVALID);
			/* the size order matters; the empty tree is not a starting point */
			if (n1 != n2)
				assert_int_equal(merkle_consistency_verify(n2, n1, r2, r1, p, len),
						 ERR_INVALID);
			assert_int_equal(merkle_consistency_verify(0, n2, roots[0], r2, p, 0),
					 ERR_INVALID);
		}
	}
}

/* ---------------------------------------------------------------- bounds */

static void test_bounds(void **state)
{
	static uint8_t big[(MERKLE_PROOF_MAX + 2) * HL];
	uint8_t leaf[HL] = {0}, root[HL] = {0}, out[MERKLE_PROOF_MAX * HL];
	size_t len = 99;

	(void)state;
	/* generators */
	assert_int_equal(merkle_inclusion_proof(leaf, 0, 0, out, &len), ERR_INVALID);
	assert_int_equal(len, 0);
	assert_int_equal(merkle_inclusion_proof(leaf, 1, 1, out, &len), ERR_INVALID);
	assert_int_equal(merkle_inclusion_proof(NULL, 1, 0, out, &len), ERR_INVALID);
	assert_int_equal(merkle_inclusion_proof(leaf, 1, 0, NULL, &len), ERR_INVALID);
	assert_int_equal(merkle_inclusion_proof(leaf, 1, 0, out, NULL), ERR_INVALID);
	assert_int_equal(merkle_inclusion_proof(leaf, MERKLE_SIZE_LIMIT, 0, out, &len), ERR_INVALID);
	assert_int_equal(merkle_inclusion_proof(leaf, 1, 0, out, &len), ERR_OK);
	assert_int_equal(len, 0);
	assert_int_equal(merkle_consistency_proof(leaf, 0, 1, out, &len), ERR_INVALID);
	assert_int_equal(merkle_consistency_proof(leaf, 2, 1, out, &len), ERR_INVALID);
	assert_int_equal(merkle_consistency_proof(leaf, 1, MERKLE_SIZE_LIMIT, out, &len), ERR_INVALID);
	assert_int_equal(merkle_consistency_proof(leaf, 1, 1, out, &len), ERR_OK);
	assert_int_equal(len, 0);
	assert_int_equal(merkle_root(NULL, 1, root), ERR_INVALID);
	assert_int_equal(merkle_root(leaf, MERKLE_SIZE_LIMIT, root), ERR_INVALID);
	assert_int_equal(merkle_root(NULL, 0, root), ERR_OK);

	/* verifiers: NULLs, oversize proofs, huge sizes */
	memcpy(root, leaf, HL);
	assert_int_equal(merkle_inclusion_verify(leaf, 0, 1, NULL, 0, root), ERR_OK);
	assert_int_equal(merkle_inclusion_verify(NULL, 0, 1, NULL, 0, root), ERR_INVALID);
	assert_int_equal(merkle_inclusion_verify(leaf, 0, 1, NULL, 0, NULL), ERR_INVALID);
	assert_int_equal(merkle_inclusion_verify(leaf, 0, 1, NULL, 1, root), ERR_INVALID);
	assert_int_equal(merkle_inclusion_verify(leaf, 0, UINT64_MAX, big, MERKLE_PROOF_MAX + 1,
						 root),
			 ERR_INVALID);
	assert_int_equal(merkle_inclusion_verify(leaf, 0, MERKLE_SIZE_LIMIT, big, 62, root),
			 ERR_INVALID);
	assert_int_equal(merkle_inclusion_verify(leaf, MERKLE_SIZE_LIMIT - 2,
						 MERKLE_SIZE_LIMIT - 1, big, 62, root),
			 ERR_INVALID);
	assert_int_equal(merkle_inclusion_verify(leaf, UINT64_MAX, UINT64_MAX, big, 0, root),
			 ERR_INVALID);
	assert_int_equal(merkle_consistency_verify(1, 1, root, root, NULL, 0), ERR_OK);
	assert_int_equal(merkle_consistency_verify(0, 0, root, root, NULL, 0), ERR_INVALID);
	assert_int_equal(merkle_consistency_verify(1, 1, NULL, root, NULL, 0), ERR_INVALID);
	assert_int_equal(merkle_consistency_verify(1, 1, root, NULL, NULL, 0), ERR_INVALID);
	assert_int_equal(merkle_consistency_verify(1, 2, root, root, NULL, 1), ERR_INVALID);
	assert_int_equal(merkle_consistency_verify(1, UINT64_MAX, root, root, big, 63), ERR_INVALID);
	assert_int_equal(merkle_consistency_verify(3, MERKLE_SIZE_LIMIT - 1, root, root, big,
						   MERKLE_PROOF_MAX),
			 ERR_INVALID);
	assert_int_equal(merkle_consistency_verify(3, 5, root, root, big, MERKLE_PROOF_MAX + 1),
			 ERR_INVALID);
}

/* ---------------------------------------------------------------- compact range */

static void test_compact_serialization(void **state)
{
	static uint8_t leaves[TREE_MAX * HL];
	struct merkle_compact mc, back;
	struct buf b = BUF_INIT(MERKLE_COMPACT_SERIAL_MAX);
	uint8_t r1[HL], r2[HL];

	(void)state;
	synth_leaves(leaves, TREE_MAX);
	merkle_compact_init(&mc);
	for (uint64_t n = 0; n <= TREE_MAX; n++) {
		buf_reset(&b);
		assert_int_equal(merkle_compact_serialize(&mc, &b), ERR_OK);
		assert_int_equal(b.len, 9 + (size_t)__builtin_popcountll(n) * HL);
		assert_int_equal(merkle_compact_parse(&back, b.data, b.len), ERR_OK);
		assert_int_equal(back.size, n);
		merkle_compact_root(&mc, r1);
		merkle_compact_root(&back, r2);
		assert_memory_equal(r1, r2, HL);
		/* a parsed range goes on appending like the original */
		if (n < TREE_MAX) {
			assert_int_equal(merkle_compact_append(&back, leaves + n * HL), ERR_OK);
			assert_int_equal(merkle_root(leaves, n + 1, r1), ERR_OK);
			merkle_compact_root(&back, r2);
			assert_memory_equal(r1, r2, HL);
		}
		/* every truncation and an extension are rejected, leaving the empty range */
		for (size_t k = 0; k < b.len; k++) {
			assert_int_equal(merkle_compact_parse(&back, b.data, k), ERR_INVALID);
			assert_int_equal(back.size, 0);
		}
		buf_addch(&b, 0);
		assert_int_equal(merkle_compact_parse(&back, b.data, b.len), ERR_INVALID);
		b.len--;
		b.data[0] = 0x02;
		assert_int_equal(merkle_compact_parse(&back, b.data, b.len), ERR_INVALID);
		if (n < TREE_MAX)
			assert_int_equal(merkle_compact_append(&mc, leaves + n * HL), ERR_OK);
	}
	assert_int_equal(merkle_compact_parse(&back, NULL, 0), ERR_INVALID);

	/* the largest size: 62 subtrees; the next append is refused */
	{
		uint8_t s[MERKLE_COMPACT_SERIAL_MAX] = {0};
		uint64_t max = MERKLE_SIZE_LIMIT - 1;

		s[0] = 0x01;
		for (int i = 0; i < 8; i++)
			s[1 + i] = (uint8_t)(max >> (56 - 8 * i));
		assert_int_equal(merkle_compact_parse(&back, s, sizeof(s)), ERR_OK);
		assert_int_equal(back.size, max);
		assert_int_equal(merkle_compact_append(&back, leaves), ERR_TOOBIG);
		assert_int_equal(back.size, max);
		buf_reset(&b);
		assert_int_equal(merkle_compact_serialize(&back, &b), ERR_OK);
		assert_int_equal(b.len, sizeof(s));
		assert_memory_equal(b.data, s, sizeof(s));
		/* 2^62 itself is out of range */
		s[1] = 0x40;
		memset(s + 2, 0, 7);
		assert_int_equal(merkle_compact_parse(&back, s, 9 + HL), ERR_INVALID);
	}
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6962_roots),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_generated_inclusion),
		cmocka_unit_test(test_generated_consistency),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_compact_serialization),
	};

	rfc_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
