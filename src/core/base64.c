/* base64.c - base64 and base64url.  See base64.h. */
#include "core/base64.h"

#include <pthread.h>
#include <stdint.h>

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static enum err encode(const char *alpha, bool pad, const void *data, size_t n, struct buf *out)
{
	const unsigned char *p = data;
	size_t i;

	if (buf_grow(out, (n + 2) / 3 * 4))
		return out->err;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		char q[4] = {alpha[v >> 18], alpha[(v >> 12) & 63], alpha[(v >> 6) & 63], alpha[v & 63]};
		buf_add(out, q, 4);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		char q[4] = {alpha[v >> 18], alpha[(v >> 12) & 63], '=', '='};
		buf_add(out, q, pad ? 4 : 2);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		char q[4] = {alpha[v >> 18], alpha[(v >> 12) & 63], alpha[(v >> 6) & 63], '='};
		buf_add(out, q, pad ? 4 : 3);
	}
	return out->err;
}

/*
 * Decoding tables (value + 1; 0 = not in the alphabet), so a character
 * costs one load: tokens are decoded on every authorized request.
 */
static signed char std_tab[256], url_tab[256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_init(void)
{
	for (int i = 0; i < 64; i++) {
		std_tab[(unsigned char)std_alpha[i]] = (signed char)(i + 1);
		url_tab[(unsigned char)url_alpha[i]] = (signed char)(i + 1);
	}
}

/* tab_init() must have run (decode() makes sure). */
static int value_of(const char *alpha, char ch)
{
	return (alpha == url_alpha ? url_tab : std_tab)[(unsigned char)ch] - 1;
}

/*
 * On failure nothing is appended: 'out' is cut back to its length on entry
 * (when the cap was hit, its ERR_TOOBIG stays set).
 */
static enum err decode(const char *alpha, bool allow_pad, const char *s, size_t n, struct buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t i, start = out->len;

	pthread_once(&tab_once, tab_init);
	/* padding is optional, but when present it completes the last quantum */
	if (allow_pad && n % 4 == 0 && n >= 1 && s[n - 1] == '=') {
		n--;
		if (s[n - 1] == '=')
			n--;
	}
	if (n % 4 == 1)
		return ERR_INVALID;
	for (i = 0; i < n; i++) {
		int v = value_of(alpha, s[i]);
		if (v < 0)
			goto bad;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_addch(out, (char)((acc >> bits) & 0xFF));
		}
	}
	/* leftover bits must be zero (canonical encoding) */
	if (bits && (acc & ((1u << bits) - 1)))
		goto bad;
	if (out->err)
		buf_truncate(out, start);
	return out->err;
bad:
	buf_truncate(out, start);
	return ERR_INVALID;
}

enum err base64url_encode(const void *data, size_t n, struct buf *out)
{
	return encode(url_alpha, false, data, n, out);
}

enum err base64url_decode(const char *s, size_t n, struct buf *out)
{
	return decode(url_alpha, false, s, n, out);
}

enum err base64_encode(const void *data, size_t n, struct buf *out)
{
	return encode(std_alpha, true, data, n, out);
}

enum err base64_decode(const char *s, size_t n, struct buf *out)
{
	return decode(std_alpha, true, s, n, out);
}
