/*
 * epoch.c - the store's change epoch, shared by every process that opens
 * the same database.
 *
 * The epoch is a 64-bit counter in the first eight bytes of a small file
 * beside the database (for SQLite, "PATH-epoch"), mapped MAP_SHARED by
 * each process: an increment in one process is seen by the next load in
 * every other, with no system call on either side.  The authorization
 * server bumps it whenever access ends (a token or grant revoked, an
 * account or app disabled), so that a token cache in a serving process
 * notices a `veranda user disable` run from the command line at once.
 *
 * The file holds no data worth keeping: a lost or zeroed counter only
 * makes caches check again.  When the file cannot be opened or mapped
 * (a read-only directory, say), the store keeps a counter of its own,
 * which covers its own process; the caches' periodic re-check covers the
 * rest.
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

/* The mapping's length: one page, so that no access can pass its end. */
#define EPOCH_MAP_LEN 4096

_Atomic uint64_t *store_epoch_map(const char *path)
{
	struct stat st;
	void *m;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_msg(LOG_WARN, "store: cannot open the epoch file beside the database (%s); "
				  "other processes' revocations are seen at the next periodic check",
			strerror(errno));
		return NULL;
	}
	/*
	 * Give the page its disk blocks now: a store through a shared map to a
	 * block not yet allocated would need one later, and on a full disk
	 * that is SIGBUS.  Allocating changes no byte already there, so two
	 * processes racing here cannot zero a counter the other has moved.
	 */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log_msg(LOG_WARN, "store: the epoch file beside the database is not a regular file");
		close(fd);
		return NULL;
	}
	if ((errno = posix_fallocate(fd, 0, EPOCH_MAP_LEN)) != 0) {
		log_msg(LOG_WARN, "store: cannot allocate the epoch file beside the database (%s)",
			strerror(errno));
		close(fd);
		return NULL;
	}
	m = mmap(NULL, EPOCH_MAP_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd); /* the mapping keeps the file */
	if (m == MAP_FAILED) {
		log_msg(LOG_WARN, "store: cannot map the epoch file beside the database (%s)",
			strerror(errno));
		return NULL;
	}
	return m;
}

void store_epoch_unmap(_Atomic uint64_t *w)
{
	if (w)
		munmap((void *)w, EPOCH_MAP_LEN);
}

uint64_t store_epoch(struct store *s)
{
	return atomic_load_explicit(s->epoch, memory_order_acquire);
}

void store_epoch_bump(struct store *s)
{
	atomic_fetch_add_explicit(s->epoch, 1, memory_order_acq_rel);
	store_tx_note_bump(s);
}
