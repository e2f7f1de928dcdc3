/*
 * tests/unit/core/base64.c - RFC 4648 base64 (section 4, padded) and
 * base64url (section 5, unpadded): the RFC test vectors both ways, the
 * alphabet difference, and strict decoding (alphabet, length, padding,
 * canonical trailing bits).
 */
#include "unit.h"

#include <string.h>

#include "core/base64.h"

/* RFC 4648 section 10. */
static const struct {
	const char *plain, *std, *url;
} vectors[] = {
	{"", "", ""},
	{"f", "Zg==", "Zg"},
	{"fo", "Zm8=", "Zm8"},
	{"foo", "Zm9v", "Zm9v"},
	{"foob", "Zm9vYg==", "Zm9vYg"},
	{"fooba", "Zm9vYmE=", "Zm9vYmE"},
	{"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

#define NVEC (sizeof(vectors) / sizeof(vectors[0]))

static void test_rfc_vectors(void **state)
{
	struct buf b = BUF_INIT(256);

	(void)state;
	for (size_t i = 0; i < NVEC; i++) {
		size_t n = strlen(vectors[i].plain);

		buf_reset(&b);
		assert_int_equal(base64_encode(vectors[i].plain, n, &b), ERR_OK);
		assert_string_equal(b.data, vectors[i].std);
		buf_reset(&b);
		assert_int_equal(base64url_encode(vectors[i].plain, n, &b), ERR_OK);
		assert_string_equal(b.data, vectors[i].url);

		buf_reset(&b);
		assert_int_equal(base64_decode(vectors[i].std, strlen(vectors[i].std), &b), ERR_OK);
		assert_int_equal(b.len, n);
		assert_string_equal(b.data, vectors[i].plain);
		/* padding is optional for the standard decoder */
		buf_reset(&b);
		assert_int_equal(base64_decode(vectors[i].url, strlen(vectors[i].url), &b), ERR_OK);
		assert_string_equal(b.data, vectors[i].plain);
		buf_reset(&b);
		assert_int_equal(base64url_decode(vectors[i].url, strlen(vectors[i].url), &b), ERR_OK);
		assert_int_equal(b.len, n);
		assert_string_equal(b.data, vectors[i].plain);
	}
	buf_release(&b);
}

static void test_alphabets(void **state)
{
	static const unsigned char bytes[] = {0xfb, 0xff, 0xbf, 0x00, 0x3e, 0xfe};
	struct buf b = BUF_INIT(64);

	(void)state;
	assert_int_equal(base64_encode(bytes, sizeof(bytes), &b), ERR_OK);
	assert_string_equal(b.data, "+/+/AD7+");
	buf_reset(&b);
	assert_int_equal(base64url_encode(bytes, sizeof(bytes), &b), ERR_OK);
	assert_string_equal(b.data, "-_-_AD7-");
	buf_reset(&b);
	assert_int_equal(base64url_encode(bytes, 2, &b), ERR_OK);
	assert_string_equal(b.data, "-_8");
	buf_reset(&b);
	assert_int_equal(base64_encode(bytes, 2, &b), ERR_OK);
	assert_string_equal(b.data, "+/8=");

	/* each decoder takes only its own alphabet */
	buf_reset(&b);
	assert_int_equal(base64url_decode("-_-_AD7-", 8, &b), ERR_OK);
	assert_int_equal(b.len, sizeof(bytes));
	assert_memory_equal(b.data, bytes, sizeof(bytes));
	buf_reset(&b);
	assert_int_equal(base64_decode("+/+/AD7+", 8, &b), ERR_OK);
	assert_memory_equal(b.data, bytes, sizeof(bytes));
	buf_reset(&b);
	assert_int_equal(base64url_decode("+/+/AD7+", 8, &b), ERR_INVALID);
	buf_reset(&b);
	assert_int_equal(base64_decode("-_-_AD7-", 8, &b), ERR_INVALID);
	buf_release(&b);
}

static void test_all_bytes_round_trip(void **state)
{
	unsigned char in[256];
	struct buf enc = BUF_INIT(1024), dec = BUF_INIT(1024);

	(void)state;
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	for (size_t n = 0; n <= sizeof(in); n += (n < 10 ? 1 : 37)) {
		buf_reset(&enc);
		buf_reset(&dec);
		assert_int_equal(base64url_encode(in, n, &enc), ERR_OK);
		assert_null(strchr(enc.data, '='));
		assert_int_equal(enc.len, (n * 4 + 2) / 3);
		assert_int_equal(base64url_decode(enc.data, enc.len, &dec), ERR_OK);
		assert_int_equal(dec.len, n);
		assert_memory_equal(dec.data, in, n);

		buf_reset(&enc);
		buf_reset(&dec);
		assert_int_equal(base64_encode(in, n, &enc), ERR_OK);
		assert_int_equal(enc.len, (n + 2) / 3 * 4);
		assert_int_equal(base64_decode(enc.data, enc.len, &dec), ERR_OK);
		assert_int_equal(dec.len, n);
		assert_memory_equal(dec.data, in, n);
	}
	buf_release(&enc);
	buf_release(&dec);
}

static void test_appends(void **state)
{
	struct buf b = BUF_INIT(64);

	(void)state;
	buf_adds(&b, "x:");
	assert_int_equal(base64url_encode("foo", 3, &b), ERR_OK);
	assert_int_equal(base64url_decode("YmFy", 4, &b), ERR_OK);
	assert_string_equal(b.data, "x:Zm9vbar");
	buf_release(&b);
}

static void url_bad(const char *s)
{
	struct buf b = BUF_INIT(64);

	buf_adds(&b, "keep");
	if (base64url_decode(s, strlen(s), &b) != ERR_INVALID)
		fail_msg("base64url accepted '%s'", s);
	/* nothing of a rejected input is left in the buffer */
	assert_string_equal(b.data, "keep");
	buf_release(&b);
}

static void std_bad(const char *s)
{
	struct buf b = BUF_INIT(64);

	buf_adds(&b, "keep");
	if (base64_decode(s, strlen(s), &b) != ERR_INVALID)
		fail_msg("base64 accepted '%s'", s);
	assert_string_equal(b.data, "keep");
	buf_release(&b);
}

static void test_decode_rejects(void **state)
{
	struct buf b = BUF_INIT(64);

	(void)state;
	/* characters outside the alphabet */
	url_bad("Zm9v!");
	url_bad("Zm 9v");
	url_bad("Zm9v\n");
	url_bad("Zm9vYmFy=");
	url_bad("Zg==");        /* base64url has no padding */
	url_bad("Zm8=");
	url_bad("Zm9\xc3\xa9");
	std_bad("Zm9v YmFy");   /* whitespace is not allowed */
	std_bad("Zm9v\r\nYmFy");
	std_bad("Zm9v*mFy");
	std_bad("Zm9vYmFy_");
	/* bad lengths: 4k+1 characters never encode whole bytes */
	url_bad("Z");
	url_bad("Zm9vY");
	std_bad("Z");
	std_bad("Zm9vY");
	/* misplaced or incomplete padding */
	std_bad("=");
	std_bad("==");
	std_bad("====");
	std_bad("Z===");
	std_bad("Zg=");
	std_bad("Zg=x");
	std_bad("Zm8==");
	std_bad("Zm9v=");
	std_bad("Zm9v==");
	std_bad("Zg==Zm9v");
	std_bad("Zm=8");
	/* non-canonical: the unused trailing bits must be zero */
	url_bad("Zh");          /* "f" is Zg; Zh carries a stray bit */
	url_bad("Zm9");         /* "fo" is Zm8 */
	url_bad("Zm9vYf");
	std_bad("Zh==");
	std_bad("Zm9=");
	std_bad("Zh");
	/* the bytes NUL and length 0 */
	assert_int_equal(base64url_decode("", 0, &b), ERR_OK);
	assert_int_equal(b.len, 0);
	assert_int_equal(base64url_decode("AA", 2, &b), ERR_OK);
	assert_int_equal(b.len, 1);
	assert_int_equal(b.data[0], '\0');
	/* only n characters are read */
	buf_reset(&b);
	assert_int_equal(base64url_decode("Zm9v!!!", 4, &b), ERR_OK);
	assert_string_equal(b.data, "foo");
	buf_release(&b);
}

static void test_cap(void **state)
{
	struct buf b = BUF_INIT(7);

	(void)state;
	assert_int_equal(base64_encode("foobar", 6, &b), ERR_TOOBIG);
	assert_int_equal(b.len, 0);
	buf_release(&b);
	buf_init(&b, 8);
	assert_int_equal(base64_encode("foobar", 6, &b), ERR_OK);
	assert_string_equal(b.data, "Zm9vYmFy");
	buf_release(&b);
	buf_init(&b, 5);
	buf_adds(&b, "ab");
	assert_int_equal(base64url_decode("Zm9vYmFy", 8, &b), ERR_TOOBIG);
	assert_string_equal(b.data, "ab");
	assert_int_equal(b.err, ERR_TOOBIG);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_vectors),
		cmocka_unit_test(test_alphabets),
		cmocka_unit_test(test_all_bytes_round_trip),
		cmocka_unit_test(test_appends),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
