/*
 * cli.h - the command-line faces of the authorization server's registry
 * of apps and of its signing keys: `veranda client …` and `veranda keys …`.
 *
 * main.c parses the common configuration flags (--data, --config, …),
 * leaves the flags named in auth_cli_*_flags[] (and their values) in argv
 * in order, and calls these with argv[0] the subcommand.  Output goes to
 * stdout; errors are one line on stderr ("veranda: …").  Exit status:
 * 0 success, 1 runtime failure (store, files, unknown client), 2 usage
 * error (unknown subcommand or flag, missing or invalid value).
 * Secrets given on the command line are wiped from argv once read and
 * never printed.
 */
#ifndef VERANDA_AUTH_CLI_H
#define VERANDA_AUTH_CLI_H

#include "store/store.h"

/* Usage lines ("veranda client add …"), for the command table. */
extern const char auth_cli_client_usage[];
extern const char auth_cli_keys_usage[];
/* The command-specific flags, described, for `veranda client|keys --help`. */
extern const char auth_cli_client_help[];
extern const char auth_cli_keys_help[];
/*
 * The command-specific flag names (without "--"), NULL-terminated: the
 * "own" list for main's configuration parser.
 */
extern const char *const auth_cli_client_flags[];
extern const char *const auth_cli_keys_flags[];

/*
 * veranda client add|list|remove|disable|enable on store 's' (open,
 * migrated; borrowed).  'data_dir' is the data directory (unused by the
 * client commands today; relative --jwks files are read from the working
 * directory).
 */
int auth_cli_client(struct store *s, const char *data_dir, int argc, char **argv);

/* veranda keys rotate|list on DATA/keys. */
int auth_cli_keys(const char *data_dir, int argc, char **argv);

#endif
