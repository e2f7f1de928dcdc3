/* rand.c - secure random bytes.  See rand.h. */
#include "core/rand.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void rand_bytes(void *out, size_t n)
{
	unsigned char *p = out;

	while (n) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "veranda: getrandom failed\n");
			abort();
		}
		p += r;
		n -= (size_t)r;
	}
}

void rand_id_bytes(void *out, size_t n)
{
	static _Thread_local unsigned char pool[4096];
	static _Thread_local size_t left;
	unsigned char *p = out;

	while (n) {
		size_t k;

		if (!left) {
			rand_bytes(pool, sizeof(pool));
			left = sizeof(pool);
		}
		k = n < left ? n : left;
		memcpy(p, pool + sizeof(pool) - left, k);
		/* used bytes are not kept */
		memset(pool + sizeof(pool) - left, 0, k);
		left -= k;
		p += k;
		n -= k;
	}
}

void rand_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[64];
	size_t i, k;

	for (i = 0; i < n; i += k) {
		k = n - i < sizeof(b) ? n - i : sizeof(b);
		rand_bytes(b, k);
		for (size_t j = 0; j < k; j++) {
			out[2 * (i + j)] = hex[b[j] >> 4];
			out[2 * (i + j) + 1] = hex[b[j] & 15];
		}
	}
	out[2 * n] = '\0';
}

void rand_uuid(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	int i, o = 0;

	rand_bytes(b, sizeof(b));
	b[6] = (b[6] & 0x0F) | 0x40;
	b[8] = (b[8] & 0x3F) | 0x80;
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

uint64_t rand_u64(void)
{
	uint64_t v;

	rand_bytes(&v, sizeof(v));
	return v;
}
