/*
 * password.c - Argon2id password hashes in PHC form, with a global cap on
 * concurrent hashes.  See password.h.
 *
 * The cap is a counting semaphore made of a mutex and a condition variable
 * on CLOCK_MONOTONIC (so a wall-clock step does not stretch or cut the
 * wait).  A slot is held only around the libargon2 call.
 *
 * Verification, the hash every sign-in runs, takes its memory (19 MiB with
 * the defaults) from a block that belongs to the slot: mapped the first
 * time, wiped by libargon2 after each use, and kept.  From malloc, it came
 * either from a heap arena that then kept it (one 19 MiB block for each
 * arena a sign-in had run in) or, with a fixed mmap threshold, from a new
 * mapping every time, whose 4,864 page faults and zeroing by the kernel
 * cost a third more CPU than the hash.  Blocks bound the memory at one per
 * slot.  Making a new hash (password_hash) is rare and uses malloc.
 */
#include "auth/password.h"

#include <argon2.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/clock.h"
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

/* One slot's memory for libargon2; guarded by lim_mu except while its slot is held. */
struct block {
	uint8_t *mem;
	size_t len;
	bool busy;
};

static struct block **blocks;
static size_t nblocks;

/* A block not in use, made when there is none; call with lim_mu held. */
static struct block *block_claim(void)
{
	struct block *b;
	size_t i;

	for (i = 0; i < nblocks; i++) {
		if (!blocks[i]->busy) {
			blocks[i]->busy = true;
			return blocks[i];
		}
	}
	blocks = xrealloc(blocks, (nblocks + 1) * sizeof(*blocks));
	b = xcalloc(1, sizeof(*b));
	b->busy = true;
	blocks[nblocks++] = b;
	return b;
}

unsigned password_blocks(void)
{
	unsigned n;

	pthread_mutex_lock(&lim_mu);
	n = (unsigned)nblocks;
	pthread_mutex_unlock(&lim_mu);
	return n;
}

/*
 * Take a slot, waiting at most the configured time: ERR_OK or ERR_BUSY.
 * With 'blk', also the slot's block.
 */
static enum err slot_take(struct block **blk, struct ctx *c)
{
	struct timespec deadline;
	enum err rc = ERR_OK;

	pthread_once(&lim_once, lim_init);
	pthread_mutex_lock(&lim_mu);
	clock_after_ms(CLOCK_MONOTONIC, lim_wait_ms, &deadline);
	while (lim_used >= lim_current()) {
		int r = pthread_cond_timedwait(&lim_cv, &lim_mu, &deadline);

		if (r == ETIMEDOUT && lim_used >= lim_current()) {
			rc = ctx_errorf(c, ERR_BUSY, "too many sign-ins at once; try again shortly");
			goto out;
		}
	}
	lim_used++;
	if (blk)
		*blk = block_claim();
out:
	pthread_mutex_unlock(&lim_mu);
	return rc;
}

static void slot_give(struct block *blk)
{
	pthread_mutex_lock(&lim_mu);
	if (blk)
		blk->busy = false;
	lim_used--;
	pthread_cond_signal(&lim_cv);
	pthread_mutex_unlock(&lim_mu);
}

/* The block of the hash running on this thread, for libargon2's callbacks. */
static _Thread_local struct block *tl_block;

/* libargon2's allocate_cbk: the thread's block, grown when too small. */
static int block_alloc(uint8_t **memory, size_t bytes)
{
	struct block *b = tl_block;
	void *m;

	*memory = NULL;
	if (!b)
		return ARGON2_MEMORY_ALLOCATION_ERROR;
	if (b->len < bytes) {
		if (b->mem)
			munmap(b->mem, b->len);
		b->mem = NULL;
		b->len = 0;
		m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return ARGON2_MEMORY_ALLOCATION_ERROR;
		/* password-derived state stays out of core dumps */
		(void)madvise(m, bytes, MADV_DONTDUMP);
		b->mem = m;
		b->len = bytes;
	}
	*memory = b->mem;
	return ARGON2_OK;
}

/* libargon2's free_cbk: it has wiped the memory already; the block stays for the next hash. */
static void block_free(uint8_t *memory, size_t bytes)
{
	(void)memory;
	(void)bytes;
}

/* ---- PHC strings ------------------------------------------------------------- */

struct phc {
	uint32_t m, t, p;
	size_t salt_len, hash_len;
	const char *salt, *hash; /* their base64 */
	size_t salt_b64, hash_b64;
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

/*
 * Unpadded standard base64 at *s up to 'stop': where it starts, its length
 * and its decoded length; advances *s.
 */
static bool take_b64(const char **s, char stop, const char **at, size_t *chars, size_t *bytes)
{
	const char *q = *s;
	size_t n = 0;

	while (is_b64(q[n]))
		n++;
	if (q[n] != stop || n == 0 || n % 4 == 1)
		return false;
	*at = q;
	*chars = n;
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
	if (!take_b64(&s, '$', &ph->salt, &ph->salt_b64, &ph->salt_len))
		return false;
	s++;
	return take_b64(&s, '\0', &ph->hash, &ph->hash_b64, &ph->hash_len);
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
	if ((rc = slot_take(NULL, c)) != ERR_OK)
		return rc;
	/* hash == NULL: libargon2 keeps the raw hash in its own buffer and wipes it */
	r = argon2_hash(p->t, p->m_kib, p->p, n ? pw : "", n, salt, salt_len, NULL,
			PASSWORD_HASH_LEN, out, PASSWORD_PHC_MAX, Argon2_id, ARGON2_VERSION_13);
	slot_give(NULL);
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

/* Recompute 'ph' for the password and compare in constant time (argon2_verify_ctx). */
static int verify_in_block(const struct phc *ph, const struct buf *salt, const struct buf *hash,
			   const char *pw, size_t n, struct block *blk)
{
	uint8_t out[128];
	argon2_context ax = {
		.out = out,
		.outlen = (uint32_t)hash->len,
		.pwd = (uint8_t *)(n ? pw : ""),
		.pwdlen = (uint32_t)n,
		.salt = (uint8_t *)salt->data,
		.saltlen = (uint32_t)salt->len,
		.t_cost = ph->t,
		.m_cost = ph->m,
		.lanes = ph->p,
		.threads = ph->p,
		.version = ARGON2_VERSION_13,
		.allocate_cbk = blk ? block_alloc : NULL,
		.free_cbk = blk ? block_free : NULL,
		.flags = ARGON2_DEFAULT_FLAGS,
	};
	int r;

	tl_block = blk;
	r = argon2_verify_ctx(&ax, hash->data, Argon2_id);
	tl_block = NULL;
	mem_wipe(out, sizeof(out));
	return r;
}

enum err password_verify(const char *phc, const char *pw, size_t n, struct ctx *c)
{
	struct buf salt = BUF_INIT(PASSWORD_PHC_MAX), hash = BUF_INIT(PASSWORD_PHC_MAX);
	struct block *blk = NULL;
	struct phc ph;
	enum err rc;
	int r;

	if ((rc = phc_check(phc, &ph, c)) != ERR_OK)
		return rc;
	if (n > PASSWORD_MAX)
		return ctx_errorf(c, ERR_TOOBIG, "a password has at most %d bytes", PASSWORD_MAX);
	if (base64_decode(ph.salt, ph.salt_b64, &salt) || base64_decode(ph.hash, ph.hash_b64, &hash) ||
	    salt.len != ph.salt_len || hash.len != ph.hash_len) {
		rc = ctx_errorf(c, ERR_INVALID, "the stored password hash is not an argon2id PHC string");
		goto out;
	}
	if ((rc = slot_take(&blk, c)) != ERR_OK)
		goto out;
	r = verify_in_block(&ph, &salt, &hash, pw, n, blk);
	slot_give(blk);
	if (r == ARGON2_OK)
		rc = ERR_OK;
	else if (r == ARGON2_VERIFY_MISMATCH)
		rc = ctx_errorf(c, ERR_UNAUTHORIZED, "the password does not match");
	else
		rc = argon2_err(r, c);
out:
	buf_release(&hash);
	buf_release(&salt);
	return rc;
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
