/*
 * password.c - Argon2id password hashes in PHC form, with a global cap on
 * concurrent hashes.  See password.h.
 *
 * The cap is a counting semaphore made of a mutex and a condition variable
 * on CLOCK_MONOTONIC (so a wall-clock step does not stretch or cut the
 * wait).  A slot is held only around the libargon2 call.
 */
#include "auth/password.h"

#include <argon2.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/rand.h"
#include "core/str.h"

/* ---- the cap ---------------------------------------------------------------- */

static pthread_once_t lim_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lim_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lim_cv;
static unsigned lim_max;          /* 0: the number of cores */
static unsigned lim_wait_ms = 5000;
static unsigned lim_used;

static void lim_init(void)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&lim_cv, &a);
	pthread_condattr_destroy(&a);
}

/* The cap in force; call with lim_mu held. */
static unsigned lim_current(void)
{
	long n;

	if (lim_max)
		return lim_max;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

void password_limit_set(unsigned max_concurrent, unsigned wait_ms)
{
	pthread_once(&lim_once, lim_init);
	pthread_mutex_lock(&lim_mu);
	lim_max = max_concurrent;
	lim_wait_ms = wait_ms;
	pthread_cond_broadcast(&lim_cv);
	pthread_mutex_unlock(&lim_mu);
}

unsigned password_limit_in_use(void)
{
	unsigned n;

	pthread_mutex_lock(&lim_mu);
	n = lim_used;
	pthread_mutex_unlock(&lim_mu);
	return n;
}

/* Take a slot, waiting at most the configured time: ERR_OK or ERR_BUSY. */
static enum err slot_take(struct ctx *c)
{
	struct timespec deadline;
	enum err rc = ERR_OK;

	pthread_once(&lim_once, lim_init);
	pthread_mutex_lock(&lim_mu);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += lim_wait_ms / 1000;
	deadline.tv_nsec += (long)(lim_wait_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	while (lim_used >= lim_current()) {
		int r = pthread_cond_timedwait(&lim_cv, &lim_mu, &deadline);

		if (r == ETIMEDOUT && lim_used >= lim_current()) {
			rc = ctx_errorf(c, ERR_BUSY, "too many sign-ins at once; try again shortly");
			goto out;
		}
	}
	lim_used++;
out:
	pthread_mutex_unlock(&lim_mu);
	return rc;
}

static void slot_give(void)
{
	pthread_mutex_lock(&lim_mu);
	lim_used--;
	pthread_cond_signal(&lim_cv);
	pthread_mutex_unlock(&lim_mu);
}

/* ---- PHC strings ------------------------------------------------------------- */

struct phc {
	uint32_t m, t, p;
	size_t salt_len, hash_len;
};

/* "<prefix><decimal>" at *s, no leading zeros, within uint32; advances *s. */
static bool take_u32(const char **s, const char *prefix, uint32_t *out)
{
	const char *q = *s;
	uint64_t v = 0;
	size_t digits = 0;

	if (!str_starts(q, prefix))
		return false;
	q += strlen(prefix);
	if (q[0] == '0' && q[1] >= '0' && q[1] <= '9')
		return false;
	while (*q >= '0' && *q <= '9' && digits < 11) {
		v = v * 10 + (uint64_t)(*q - '0');
		q++;
		digits++;
	}
	if (!digits || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	*s = q;
	return true;
}

static bool is_b64(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/';
}

/* Unpadded standard base64 at *s up to 'stop': its decoded length; advances *s. */
static bool take_b64(const char **s, char stop, size_t *bytes)
{
	const char *q = *s;
	size_t n = 0;

	while (is_b64(q[n]))
		n++;
	if (q[n] != stop || n == 0 || n % 4 == 1)
		return false;
	*bytes = n * 3 / 4;
	*s = q + n;
	return true;
}

/* Parse "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH". */
static bool phc_parse(const char *s, struct phc *ph)
{
	static const char head[] = "$argon2id$v=19$";

	if (!s || !str_starts(s, head))
		return false;
	s += sizeof(head) - 1;
	if (!take_u32(&s, "m=", &ph->m) || !take_u32(&s, ",t=", &ph->t) ||
	    !take_u32(&s, ",p=", &ph->p) || *s++ != '$')
		return false;
	if (!take_b64(&s, '$', &ph->salt_len))
		return false;
	s++;
	return take_b64(&s, '\0', &ph->hash_len);
}

/* A stored string we are willing to spend memory and time on. */
static enum err phc_check(const char *phc, struct phc *ph, struct ctx *c)
{
	if (!phc_parse(phc, ph))
		return ctx_errorf(c, ERR_INVALID, "the stored password hash is not an argon2id PHC string");
	if (ph->m > PASSWORD_M_MAX || ph->t > PASSWORD_T_MAX || ph->p > PASSWORD_P_MAX ||
	    ph->t < 1 || ph->p < 1 || ph->m < 8 * ph->p ||
	    ph->salt_len < ARGON2_MIN_SALT_LENGTH || ph->hash_len < ARGON2_MIN_OUTLEN ||
	    ph->hash_len > 128)
		return ctx_errorf(c, ERR_INVALID, "the stored password hash has parameters out of range");
	return ERR_OK;
}

/* ---- hashing ------------------------------------------------------------------ */

static const struct password_params defaults = PASSWORD_PARAMS_DEFAULT;

enum err password_params_check(const struct password_params *p, struct ctx *c)
{
	if (p->m_kib < PASSWORD_M_DEFAULT || p->m_kib > PASSWORD_M_MAX)
		return ctx_errorf(c, ERR_INVALID, "password memory cost must be %d to %d KiB",
				  PASSWORD_M_DEFAULT, PASSWORD_M_MAX);
	if (p->t < PASSWORD_T_DEFAULT || p->t > PASSWORD_T_MAX)
		return ctx_errorf(c, ERR_INVALID, "password time cost must be %d to %d",
				  PASSWORD_T_DEFAULT, PASSWORD_T_MAX);
	if (p->p < 1 || p->p > PASSWORD_P_MAX)
		return ctx_errorf(c, ERR_INVALID, "password parallelism must be 1 to %d",
				  PASSWORD_P_MAX);
	return ERR_OK;
}

static enum err argon2_err(int r, struct ctx *c)
{
	if (r == ARGON2_MEMORY_ALLOCATION_ERROR || r == ARGON2_THREAD_FAIL)
		return ctx_errorf(c, ERR_IO, "password hashing failed: %s", argon2_error_message(r));
	return ctx_errorf(c, ERR_INVALID, "password hashing failed: %s", argon2_error_message(r));
}

static enum err hash_salted(const char *pw, size_t n, const struct password_params *p,
			    const void *salt, size_t salt_len, char out[PASSWORD_PHC_MAX],
			    struct ctx *c)
{
	enum err rc;
	int r;

	out[0] = '\0';
	if (n > PASSWORD_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "a password has at most %d bytes", PASSWORD_MAX);
	if (salt_len < ARGON2_MIN_SALT_LENGTH || salt_len > 64 ||
	    argon2_encodedlen(p->t, p->m_kib, p->p, (uint32_t)salt_len, PASSWORD_HASH_LEN,
			      Argon2_id) > PASSWORD_PHC_MAX)
		return ctx_errorf(c, ERR_INVALID, "password hash parameters out of range");
	if ((rc = slot_take(c)) != ERR_OK)
		return rc;
	/* hash == NULL: libargon2 keeps the raw hash in its own buffer and wipes it */
	r = argon2_hash(p->t, p->m_kib, p->p, n ? pw : "", n, salt, salt_len, NULL,
			PASSWORD_HASH_LEN, out, PASSWORD_PHC_MAX, Argon2_id, ARGON2_VERSION_13);
	slot_give();
	if (r != ARGON2_OK) {
		out[0] = '\0';
		return argon2_err(r, c);
	}
	return ERR_OK;
}

enum err password_hash_with_salt(const char *pw, size_t n, const struct password_params *params,
				 const void *salt, size_t salt_len, char out[PASSWORD_PHC_MAX],
				 struct ctx *c)
{
	return hash_salted(pw, n, params ? params : &defaults, salt, salt_len, out, c);
}

enum err password_hash(const char *pw, size_t n, const struct password_params *params,
		       char out[PASSWORD_PHC_MAX], struct ctx *c)
{
	unsigned char salt[PASSWORD_SALT_LEN];
	enum err rc;

	out[0] = '\0';
	if (!params)
		params = &defaults;
	if ((rc = password_params_check(params, c)) != ERR_OK)
		return rc;
	rand_bytes(salt, sizeof(salt));
	return hash_salted(pw, n, params, salt, sizeof(salt), out, c);
}

enum err password_verify(const char *phc, const char *pw, size_t n, struct ctx *c)
{
	struct phc ph;
	enum err rc;
	int r;

	if ((rc = phc_check(phc, &ph, c)) != ERR_OK)
		return rc;
	if (n > PASSWORD_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "a password has at most %d bytes", PASSWORD_MAX);
	if ((rc = slot_take(c)) != ERR_OK)
		return rc;
	/* argon2_verify recomputes and compares in constant time */
	r = argon2id_verify(phc, n ? pw : "", n);
	slot_give();
	if (r == ARGON2_OK)
		return ERR_OK;
	if (r == ARGON2_VERIFY_MISMATCH)
		return ctx_errorf(c, ERR_UNAUTHORIZED, "the password does not match");
	return argon2_err(r, c);
}

/*
 * The dummy for the default parameters: a real Argon2id hash of a random
 * password nobody knows, so verifying against it costs what a real
 * verification costs.
 */
static const char dummy_default[] =
	"$argon2id$v=19$m=19456,t=2,p=1$hb3RUnpvBt7h8IJZtrzHdQ"
	"$AO9aDYd77z3TFLfL77le75QJBiJquo9d0E28H8PdxvI";

/* Dummies for other parameters, made on first use. */
static pthread_mutex_t dummy_mu = PTHREAD_MUTEX_INITIALIZER;
static struct password_params dummy_params;
static char dummy_phc[PASSWORD_PHC_MAX];

static bool params_equal(const struct password_params *a, const struct password_params *b)
{
	return a->m_kib == b->m_kib && a->t == b->t && a->p == b->p;
}

enum err password_dummy_verify(const char *pw, size_t n, const struct password_params *params,
			       struct ctx *c)
{
	char phc[PASSWORD_PHC_MAX];
	struct ctx vc = CTX_INIT;
	enum err rc;

	if (!params || params_equal(params, &defaults)) {
		str_copy(phc, dummy_default, sizeof(phc));
	} else {
		pthread_mutex_lock(&dummy_mu);
		if (!dummy_phc[0] || !params_equal(params, &dummy_params)) {
			char secret[33];

			rand_hex(secret, 16);
			rc = password_hash(secret, strlen(secret), params, dummy_phc, c);
			mem_wipe(secret, sizeof(secret));
			if (rc != ERR_OK) {
				dummy_phc[0] = '\0';
				pthread_mutex_unlock(&dummy_mu);
				return rc;
			}
			dummy_params = *params;
		}
		str_copy(phc, dummy_phc, sizeof(phc));
		pthread_mutex_unlock(&dummy_mu);
	}
	rc = password_verify(phc, pw, n, &vc);
	if (rc != ERR_OK && rc != ERR_UNAUTHORIZED)
		return ctx_errorf(c, rc, "%s", vc.msg);
	/* even if someone typed the dummy's password: there is no user */
	return ctx_errorf(c, ERR_UNAUTHORIZED, "the password does not match");
}

bool password_needs_rehash(const char *phc, const struct password_params *params)
{
	struct phc ph;

	if (!params)
		params = &defaults;
	if (!phc_parse(phc, &ph))
		return true;
	return ph.m != params->m_kib || ph.t != params->t || ph.p != params->p ||
	       ph.salt_len != PASSWORD_SALT_LEN || ph.hash_len != PASSWORD_HASH_LEN;
}
