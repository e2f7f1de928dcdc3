/*
 * unit.h - common includes for cmocka unit tests.  Each test file is one
 * program: it defines its tests and a main() that runs them with
 * cmocka_run_group_tests().
 */
#ifndef VERANDA_TESTS_UNIT_H
#define VERANDA_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static inline int unit_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

/* Remove the directory tree 'dir' (a test's temporary directory). */
static inline void unit_rmtree(const char *dir)
{
	nftw(dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Find shared test data: 'rel' ("../shared/testdata/...") from the
 * repository root (the usual working directory) or, failing that, from the
 * test binary's location (build/unit/<module>/<name>: the root is four
 * levels up).  Writes the directory to out[0..size); false when absent.
 */
static inline bool unit_data_dir(const char *rel, char *out, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n;
	DIR *d;

	snprintf(out, size, "%s", rel);
	if ((d = opendir(out))) {
		closedir(d);
		return true;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	for (int up = 0; up < 4; up++) {
		char *slash = strrchr(exe, '/');
		if (!slash)
			return false;
		*slash = '\0';
	}
	snprintf(out, size, "%s/%s", exe, rel);
	if ((d = opendir(out))) {
		closedir(d);
		return true;
	}
	return false;
}

#endif
