/*
 * password_phc - libFuzzer target for the PHC strings of src/auth/password.c.
 *
 * Input: a stored password hash string (up to the first NUL).  Every input
 * goes through password_needs_rehash(), which parses it.  Inputs whose
 * memory cost is small enough to hash quickly (m=1..1024 KiB, t=1..4,
 * p=1..4, read here with sscanf only to keep each run short) also go
 * through password_verify() with the password "password": the answer must
 * be ERR_OK, ERR_UNAUTHORIZED or ERR_INVALID with a message, and an
 * accepted string must verify the same way twice (the memory block of the
 * first call is reused by the second).
 *
 * Findings: a crash, a leak, a sanitizer report, or a broken property
 * above (abort()).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/password.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cheap(const char *s)
{
	unsigned m, t, p;
	const char *at = strstr(s, "$m=");

	if (!at || sscanf(at, "$m=%u,t=%u,p=%u", &m, &t, &p) != 3)
		return 0;
	return m >= 1 && m <= 1024 && t >= 1 && t <= 4 && p >= 1 && p <= 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = CTX_INIT, c2 = CTX_INIT;
	enum err first, second;
	char *s;

	if (size > 512)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)password_needs_rehash(s, NULL);
	if (cheap(s)) {
		first = password_verify(s, "password", 8, &c);
		if (first != ERR_OK && first != ERR_UNAUTHORIZED && first != ERR_INVALID)
			abort();
		if (first != ERR_OK && !c.msg[0])
			abort();
		second = password_verify(s, "password", 8, &c2);
		if (second != first)
			abort();
	}
	free(s);
	return 0;
}
