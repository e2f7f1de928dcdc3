/*
 * cli.h - `veranda audit …`: verify, query, export, proof, consistency,
 * checkpoints, check-receipt.
 *
 * main.c parses the common flags (--data, --config, …), leaves the flags
 * named in audit_cli_flags[] (and their values) in argv in order, and
 * calls audit_cli() with argv[0] the subcommand.  Output goes to stdout
 * (records, proofs, the verification result); errors are one line on
 * stderr ("veranda: …").  Exit status: 0 success (the log verifies),
 * 1 the log does not verify / a receipt does not check / runtime failure
 * (no log, unreadable file), 2 usage error.
 */
#ifndef VERANDA_AUDIT_CLI_H
#define VERANDA_AUDIT_CLI_H

#include "core/buf.h"

struct jose_key;

/* "audit verify|query|export|proof|consistency|checkpoints|check-receipt [FLAGS]". */
extern const char audit_cli_usage[];
/* The subcommands and their flags, described, for `veranda audit --help`. */
extern const char audit_cli_help[];
/* Flag names (without "--") that audit_cli() takes, NULL-terminated. */
extern const char *const audit_cli_flags[];

/*
 * Run one audit subcommand on the log in 'data_dir' (may be NULL for
 * check-receipt).  'server_jwks' is the server's public JWK Set (JSON
 * text, every key it still publishes: checkpoints signed before a key
 * rotation verify too), borrowed; NULL makes verify use the keys the log
 * recorded itself and say so.  --jwks FILE overrides it.
 */
int audit_cli(const char *data_dir, const struct buf *server_jwks, int argc, char **argv);

#endif
