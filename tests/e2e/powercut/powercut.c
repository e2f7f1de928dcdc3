/*
 * powercut.so - what a power cut would leave of the files a process writes,
 * for tests/e2e/powercut.test.mjs.  Preloaded into `veranda serve`
 * (LD_PRELOAD), it keeps an undo log of every write to a regular file under
 * $POWERCUT_DIR that no sync has made durable yet: before each write or
 * truncation it appends the bytes about to be overwritten or cut (and the
 * file's size) to $POWERCUT_LOG; fsync() or fdatasync() of a file marks
 * everything written to it so far as durable, whichever descriptor wrote it.
 * After the process is killed, tests/e2e/lib/powercut.mjs undoes, newest
 * first, every write that no later sync of its file covered: the files are
 * then as a machine that lost its power at that instant could have left
 * them, in the worst case (nothing unsynced reached the disk).
 *
 * Not modelled: creating, renaming and removing files (taken as durable at
 * once: SQLite and the audit journal sync their directory where it
 * matters), memory-mapped writes (only SQLite's -shm index, which the test
 * removes, as a restart after a power cut finds it rebuilt), and writes that
 * reached the disk in part.
 *
 * Log record: struct rec, then the path (path_len bytes), then n_old bytes
 * of the file's content before the change.  kind 'W': a write at 'off';
 * 'T': a truncation to 'off' (the old bytes are those past it); 'S': a
 * sync, which covers the file's records before record number 'off'.
 * Writes to the log go straight to the kernel (syscall()), never through
 * the functions this library replaces.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

struct rec {
	uint32_t magic; /* 0x50435554, "PCUT" */
	uint32_t kind;
	uint64_t dev, ino;
	int64_t off, old_size;
	uint64_t n_old;
	uint32_t path_len, pad;
};

#define MAGIC 0x50435554u

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int log_fd = -1;
static char dir[4096];
static size_t dir_len;
static int64_t nrec; /* records in the log, under mu */

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void init(void)
{
	const char *d = getenv("POWERCUT_DIR"), *l = getenv("POWERCUT_LOG");

	real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	real_writev = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
	real_ftruncate = (int (*)(int, off_t))dlsym(RTLD_NEXT, "ftruncate");
	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (!d || !l || !realpath(d, dir))
		return;
	dir_len = strlen(dir);
	log_fd = (int)syscall(SYS_openat, AT_FDCWD, l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void put(const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		long w = syscall(SYS_write, log_fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			abort(); /* a test that cannot keep its undo log must not go on */
		c += w;
		n -= (size_t)w;
	}
}

/* The path of 'fd' when it is a regular file under POWERCUT_DIR (else 0), and its stat. */
static size_t tracked(int fd, char *path, size_t cap, struct stat *sb)
{
	char link[64];
	ssize_t n;
	int fl;

	pthread_once(&once, init);
	if (log_fd < 0 || fd == log_fd || fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode))
		return 0;
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & (O_DSYNC | O_SYNC)))
		return 0; /* every write is durable when it returns */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, cap - 1);
	if (n <= 0 || (size_t)n <= dir_len || strncmp(path, dir, dir_len) != 0 || path[dir_len] != '/')
		return 0;
	path[n] = '\0';
	return (size_t)n;
}

static void record(char kind, const struct stat *sb, const char *path, size_t plen, int64_t off,
		   const void *old, size_t n_old)
{
	struct rec r = { .magic = MAGIC, .kind = (uint32_t)kind, .dev = sb->st_dev, .ino = sb->st_ino,
			 .off = off, .old_size = sb->st_size, .n_old = n_old,
			 .path_len = (uint32_t)plen };

	put(&r, sizeof(r));
	put(path, plen);
	if (n_old)
		put(old, n_old);
	nrec++;
}

/* Log the bytes [off, off + n) hold now (those inside the file), before they are written. */
static void before_write(int fd, int64_t off, size_t n, const struct stat *sb, const char *path,
			 size_t plen)
{
	size_t have = off < sb->st_size ? (size_t)(sb->st_size - off) : 0;
	char *old = NULL;

	if (have > n)
		have = n;
	if (have) {
		old = malloc(have);
		if (!old || pread(fd, old, have, off) != (ssize_t)have)
			abort();
	}
	record('W', sb, path, plen, off, old, have);
	free(old);
}

/* Where a write() on 'fd' lands: the end of the file with O_APPEND, else the file offset. */
static int64_t write_at(int fd, const struct stat *sb)
{
	int fl = fcntl(fd, F_GETFL);

	return (fl >= 0 && (fl & O_APPEND)) ? sb->st_size : lseek(fd, 0, SEEK_CUR);
}

/*
 * Under mu: log what n bytes written at 'off' (-1: where write() lands) will
 * overwrite.  Called before the real function: tracked() loads them.
 */
static void logged(int fd, int64_t off, size_t n)
{
	char path[4096];
	struct stat sb;
	size_t plen;

	if ((plen = tracked(fd, path, sizeof(path), &sb)))
		before_write(fd, off < 0 ? write_at(fd, &sb) : off, n, &sb, path, plen);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t w;

	pthread_mutex_lock(&mu);
	logged(fd, off, n);
	w = real_pwrite(fd, buf, n, off);
	pthread_mutex_unlock(&mu);
	return w;
}

/* on a 64-bit system the two are one function, as in the C library */
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) __attribute__((alias("pwrite")));

ssize_t write(int fd, const void *buf, size_t n)
{
	ssize_t w;

	pthread_mutex_lock(&mu);
	logged(fd, -1, n);
	w = real_write(fd, buf, n);
	pthread_mutex_unlock(&mu);
	return w;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	size_t n = 0;
	ssize_t w;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	pthread_mutex_lock(&mu);
	logged(fd, -1, n);
	w = real_writev(fd, iov, cnt);
	pthread_mutex_unlock(&mu);
	return w;
}

int ftruncate(int fd, off_t len)
{
	char path[4096];
	struct stat sb;
	size_t plen;
	int r;

	pthread_mutex_lock(&mu);
	if ((plen = tracked(fd, path, sizeof(path), &sb))) {
		size_t cut = sb.st_size > len ? (size_t)(sb.st_size - len) : 0;
		char *old = cut ? malloc(cut) : NULL;
		if (cut && (!old || pread(fd, old, cut, len) != (ssize_t)cut))
			abort();
		record('T', &sb, path, plen, len, old, cut);
		free(old);
	}
	r = real_ftruncate(fd, len);
	pthread_mutex_unlock(&mu);
	return r;
}

int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

/*
 * A sync covers what was written to the file before it began; writes that
 * land while it runs may or may not be covered, so they are taken as not:
 * its record says how many records the log held when it began ('off').
 */
static int do_sync(int (*fn)(int), int fd)
{
	char path[4096];
	struct stat sb;
	size_t plen;
	int64_t cover;
	int r;

	pthread_mutex_lock(&mu);
	plen = tracked(fd, path, sizeof(path), &sb);
	cover = nrec;
	pthread_mutex_unlock(&mu);
	r = fn(fd);
	if (r == 0 && plen) {
		pthread_mutex_lock(&mu);
		record('S', &sb, path, plen, cover, NULL, 0);
		pthread_mutex_unlock(&mu);
	}
	return r;
}

int fsync(int fd)
{
	pthread_once(&once, init);
	return do_sync(real_fsync, fd);
}

int fdatasync(int fd)
{
	pthread_once(&once, init);
	return do_sync(real_fdatasync, fd);
}
