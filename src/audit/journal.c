/*
 * journal.c - the audit log's intake journal: where a record is durable
 * before the database has it.
 *
 * The writer appends each batch of queued records here with one write and
 * one fdatasync, answers the requests waiting for them, and hands the
 * records to the thread that inserts them into audit.db in batches as big
 * as have accumulated (writer.c).  The journal is two preallocated files
 * per node, DATA/audit-journal/NODE.0 and NODE.1, written in turn: a file
 * is written again from its start only once every entry in it is in
 * audit.db.  Overwriting blocks that already exist leaves the file's size
 * and allocation alone, so the fdatasync writes the data and nothing else.
 *
 * An entry is a 32-byte header (magic, payload length, journal sequence
 * number, round, checksum of the three and the payload) and the payload,
 * padded to 8 bytes.  The round is a random number drawn at each start and
 * each turn to a file: all entries of a file's run share it, so entries
 * left from an earlier round behind the current one never pass for its
 * continuation, even where a torn write left them intact.  Journal sequence numbers count entries from 1 across both
 * files and every run; audit.db keeps the last one it holds (meta row
 * "journal:NODE", in the same transaction as the records).  At open, the
 * entries after that one are inserted before anything else is written.
 * A file is read from its start until an entry that is torn, damaged, or
 * not the successor of the one before: what follows it is an older round
 * of that file or was never acknowledged (a batch is answered only after
 * its fdatasync).
 *
 * An exclusive lock on NODE.0 keeps a second process off the stream.
 */
#include "audit/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/rand.h"

#define JOURNAL_MAGIC 0x324a4156u /* "VAJ2" little-endian */
#define HEADER JOURNAL_HEADER

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* FNV-1a, 64 bits: finds torn and damaged entries (not a defence against forgery). */
static uint64_t sum(const uint8_t *hdr, const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 4; i < 24; i++)
		h = (h ^ hdr[i]) * 0x100000001b3ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static size_t padded(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

size_t journal_entry_size(size_t payload)
{
	return HEADER + padded(payload);
}

enum err journal_put(struct buf *b, uint64_t round, uint64_t jseq, const void *payload, size_t n)
{
	static const uint8_t zero[8];
	uint8_t h[HEADER];

	if (n > JOURNAL_ENTRY_MAX)
		return ERR_TOOBIG;
	put_u32(h, JOURNAL_MAGIC);
	put_u32(h + 4, (uint32_t)n);
	put_u64(h + 8, jseq);
	put_u64(h + 16, round);
	put_u64(h + 24, sum(h, payload, n));
	buf_add(b, h, sizeof(h));
	buf_add(b, payload, n);
	buf_add(b, zero, padded(n) - n);
	return b->err ? ERR_TOOBIG : ERR_OK;
}

/* Grow the file to 'cap' bytes of written zeros (never shrinks or overwrites). */
static enum err preallocate(int fd, uint64_t cap, const char *path, struct ctx *c)
{
	struct stat sb;
	char *zero;
	off_t at;
	enum err e = ERR_OK;

	if (fstat(fd, &sb))
		return ctx_errorf(c, ERR_IO, "cannot read '%s': %s", path, strerror(errno));
	if (sb.st_size >= (off_t)cap)
		return ERR_OK;
	zero = xcalloc(1, 1 << 16);
	for (at = sb.st_size; at < (off_t)cap && !e;) {
		size_t n = (size_t)((off_t)cap - at);
		ssize_t w;
		if (n > 1 << 16)
			n = 1 << 16;
		w = pwrite(fd, zero, n, at);
		if (w > 0)
			at += w;
		else if (w < 0 && errno != EINTR)
			e = ctx_errorf(c, errno == ENOSPC ? ERR_TOOBIG : ERR_IO,
				       "cannot make the audit journal '%s': %s", path, strerror(errno));
	}
	free(zero);
	if (!e && fsync(fd))
		e = ctx_errorf(c, ERR_IO, "cannot sync '%s': %s", path, strerror(errno));
	return e;
}

enum err journal_open(const char *data_dir, const char *node, uint64_t cap, struct journal *j,
		      struct ctx *c)
{
	char dir[4096], path[4200];
	enum err e = ERR_OK;

	memset(j, 0, sizeof(*j));
	j->cap = cap;
	j->fd[0] = j->fd[1] = -1;
	j->next = 1;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/audit-journal", data_dir) >= sizeof(dir))
		return ctx_errorf(c, ERR_INVALID, "data directory path too long");
	if (mkdir(dir, 0700) == 0) {
		if ((e = adb_fsync_path(data_dir, O_RDONLY | O_DIRECTORY, c)))
			return e;
	} else if (errno != EEXIST) {
		return ctx_errorf(c, ERR_IO, "cannot create '%s': %s", dir, strerror(errno));
	}
	for (int i = 0; i < 2 && !e; i++) {
		snprintf(path, sizeof(path), "%s/%s.%d", dir, node, i);
		j->fd[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (j->fd[i] < 0) {
			e = ctx_errorf(c, ERR_IO, "cannot open the audit journal '%s': %s", path,
				       strerror(errno));
			break;
		}
		if (i == 0 && flock(j->fd[0], LOCK_EX | LOCK_NB)) {
			e = errno == EWOULDBLOCK
				    ? ctx_errorf(c, ERR_CONFLICT,
						 "audit stream '%s' is being written by another process"
						 " (its journal '%s' is locked)",
						 node, path)
				    : ctx_errorf(c, ERR_IO, "cannot lock '%s': %s", path,
						 strerror(errno));
			break;
		}
		e = preallocate(j->fd[i], cap, path, c);
	}
	if (!e)
		e = adb_fsync_path(dir, O_RDONLY | O_DIRECTORY, c);
	if (e)
		journal_close(j);
	return e;
}

void journal_close(struct journal *j)
{
	for (int i = 0; i < 2; i++) {
		if (j->fd[i] >= 0)
			close(j->fd[i]);
		j->fd[i] = -1;
	}
}

/* One file's entries from its start: the run of successive sequence numbers. */
struct run {
	uint8_t *data;
	size_t len;   /* bytes of valid entries */
	uint64_t first, last; /* 0 when none */
};

/* Read a whole file (it may be longer than the journal now uses: written with a larger size). */
size_t journal_parse(const uint8_t *d, size_t n, uint64_t *first, uint64_t *last)
{
	size_t at = 0;
	uint64_t round = 0;

	*first = *last = 0;
	while (n - at >= HEADER) {
		const uint8_t *h = d + at;
		uint32_t len = get_u32(h + 4);
		uint64_t jseq = get_u64(h + 8);

		if (get_u32(h) != JOURNAL_MAGIC || len > JOURNAL_ENTRY_MAX ||
		    padded(len) > n - at - HEADER || jseq == 0 || (*last && jseq != *last + 1) ||
		    (*last && get_u64(h + 16) != round) || get_u64(h + 24) != sum(h, h + HEADER, len))
			break;
		round = get_u64(h + 16);
		if (!*first)
			*first = jseq;
		*last = jseq;
		at += HEADER + padded(len);
	}
	return at;
}

static enum err read_run(int fd, struct run *r, struct ctx *c)
{
	size_t have = 0, size;
	struct stat sb;

	memset(r, 0, sizeof(*r));
	if (fstat(fd, &sb))
		return ctx_errorf(c, ERR_IO, "cannot read the audit journal: %s", strerror(errno));
	size = (size_t)sb.st_size;
	r->data = xmalloc(size ? size : 1);
	while (have < size) {
		ssize_t n = pread(fd, r->data + have, size - have, (off_t)have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ctx_errorf(c, ERR_IO, "cannot read the audit journal: %s",
					  strerror(errno));
		if (n == 0)
			break;
		have += (size_t)n;
	}
	r->len = journal_parse(r->data, have, &r->first, &r->last);
	return ERR_OK;
}

/* Call fn for each entry of 'r' with a sequence number in (after, ...]. */
static enum err run_entries(const struct run *r, uint64_t after, journal_entry_fn fn, void *arg,
			    uint64_t *last, struct ctx *c)
{
	enum err e = ERR_OK;

	for (size_t at = 0; at < r->len && !e;) {
		const uint8_t *h = r->data + at;
		uint32_t len = get_u32(h + 4);
		uint64_t jseq = get_u64(h + 8);

		if (jseq > after) {
			e = fn(arg, jseq, h + HEADER, len, c);
			*last = jseq;
		}
		at += HEADER + padded(len);
	}
	return e;
}

enum err journal_replay(struct journal *j, uint64_t applied, journal_entry_fn fn, void *arg,
			uint64_t *count, struct ctx *c)
{
	struct run r[2];
	enum err e = ERR_OK;
	uint64_t last = applied;
	int lo;

	*count = 0;
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 2 && !e; i++)
		e = read_run(j->fd[i], &r[i], c);
	if (e)
		goto out;
	/* the file whose run starts first goes first */
	lo = r[1].first && (!r[0].first || r[1].first < r[0].first) ? 1 : 0;
	for (int k = 0; k < 2 && !e; k++) {
		const struct run *x = &r[k ? !lo : lo];
		if (!x->first || x->last <= last)
			continue;
		if (x->first > last + 1) {
			e = ctx_errorf(c, ERR_IO,
				       "the audit journal holds entries %llu to %llu but the log has"
				       " only up to %llu: entries in between are missing (run 'veranda"
				       " audit verify')",
				       (unsigned long long)x->first, (unsigned long long)x->last,
				       (unsigned long long)last);
			break;
		}
		e = run_entries(x, last, fn, arg, &last, c);
	}
	*count = last - applied;
	/* write on after everything there is (the caller has it in audit.db), from file 0 */
	j->next = last + 1;
	j->cur = 1;
	j->last[0] = j->last[1] = 0;
	journal_next_file(j);
out:
	free(r[0].data);
	free(r[1].data);
	return e;
}

void journal_next_file(struct journal *j)
{
	j->cur = !j->cur;
	j->off = 0;
	j->last[j->cur] = 0;
	j->round = rand_u64();
}

enum err journal_write(struct journal *j, const void *data, size_t n, struct ctx *c)
{
	const char *p = data;
	size_t done = 0;

	if (j->off + n > j->cap)
		return ctx_errorf(c, ERR_TOOBIG, "audit journal batch does not fit");
	while (done < n) {
		ssize_t w = pwrite(j->fd[j->cur], p + done, n - done, (off_t)(j->off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return ctx_errorf(c, ERR_IO, "cannot write the audit journal: %s",
					  w < 0 ? strerror(errno) : "short write");
		done += (size_t)w;
	}
	if (fdatasync(j->fd[j->cur]))
		return ctx_errorf(c, ERR_IO, "cannot sync the audit journal: %s", strerror(errno));
	j->off += n;
	return ERR_OK;
}
