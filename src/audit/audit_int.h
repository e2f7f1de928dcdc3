/*
 * audit_int.h - shared inside src/audit/ only: the catalogue table, the
 * storage schema and connection set-up (db.c), the tree reader that
 * computes subtree hashes and proofs from stored leaves and cached
 * subtree roots (tree.c), the subtree tiers the writer and the verifier
 * keep while appending, checkpoint payloads, and small codecs.
 *
 * Nothing here is thread-safe by itself: each struct belongs to one
 * thread (the writer, a verifier, or a reader holding its mutex).
 */
#ifndef VERANDA_AUDIT_AUDIT_INT_H
#define VERANDA_AUDIT_AUDIT_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "audit/merkle.h"
#include "core/buf.h"
#include "core/err.h"

#define AUDIT_SCHEMA_VERSION 1
#define AUDIT_DB_NAME "audit.db"
#define AUDIT_FORMAT "veranda-audit"
#define AUDIT_RECORD_VERSION 1
#define AUDIT_PEPPER_LEN 32
/* Subtree roots are stored for every complete aligned block of 2^8,
 * 2^16, ... leaves: AUDIT_TIER_BITS bits per tier, AUDIT_TIERS tiers. */
#define AUDIT_TIER_BITS 8
#define AUDIT_TIER_SIZE (1u << AUDIT_TIER_BITS)
#define AUDIT_TIERS 7
/* The JWS "typ" of a checkpoint. */
#define AUDIT_CHECKPOINT_TYP "veranda-audit-checkpoint"
/*
 * A record's key: its stream's number << AUDIT_SEQ_BITS | its sequence.
 * Stream numbers run from 1 to AUDIT_STREAMS_MAX.
 */
#define AUDIT_SEQ_BITS 48
#define AUDIT_SEQ_LIMIT ((uint64_t)1 << AUDIT_SEQ_BITS)
#define AUDIT_STREAMS_MAX 32767
static inline int64_t audit_rid(int64_t no, uint64_t seq)
{
	return (int64_t)((uint64_t)no << AUDIT_SEQ_BITS | seq);
}
static inline uint64_t audit_rid_seq(int64_t id)
{
	return (uint64_t)id & (AUDIT_SEQ_LIMIT - 1);
}
/* The types that get an index of their own (all but the FHIR REST ones). */
#define AUDIT_SPECIAL_TYPES "type NOT LIKE 'fhir.%'"
/* Busy timeout of every audit connection. */
#define AUDIT_BUSY_MS 10000

/* ---- catalogue (event.c) ---- */

struct audit_type_info {
	const char *name;
	char action;
};
extern const struct audit_type_info audit_types[AUDIT_TYPE_COUNT];

/*
 * The record from "node" onwards (everything after `{"v":1,"seq":N,`),
 * for the writer, which adds the sequence when it appends.  Validates as
 * audit_event_serialize().  'time_ms' replaces ev->time_ms.
 */
enum err event_serialize_tail(const struct audit_event *ev, const char *node, int64_t time_ms,
			      struct buf *out, struct ctx *c);

/* Append v in decimal (no printf on the hot path). */
void audit_add_u64(struct buf *b, uint64_t v);
/* Append `{"v":1,"seq":SEQ,`: the start of every record. */
void audit_record_prefix(struct buf *b, uint64_t seq);

/* The writer's secret for audit_query_normalize() (writer.c). */
const uint8_t *audit_pepper(const struct audit *a);

/* The node id rule: [A-Za-z0-9._-], 1..AUDIT_NODE_MAX bytes. */
bool audit_node_valid(const char *node);

/* The indexed columns of a record, as the writer stores them and the
 * verifier derives them from the body (borrowed strings; NULL absent). */
struct rec_cols {
	int64_t time_ms;
	const char *type;
	int outcome;
	const char *patient;
	const char *agent;      /* agent.username, else agent.user */
	const char *client;
	const char *request_id;
	const char *trace_id;
};

/*
 * Parse a canonical record's body into 'root' (new reference) and its
 * columns (borrowed from *root), checking v, seq and node exist and have
 * the right types.  ERR_INVALID otherwise.
 */
enum err rec_parse(const char *body, size_t n, json_t **root, uint64_t *seq, const char **node,
		   struct rec_cols *cols, struct ctx *c);

/* "YYYY-MM-DDThh:mm:ss.sssZ" exactly (as clock_format_instant) to ms. */
enum err instant_parse_ms(const char *s, int64_t *ms);

/* ---- the intake journal (journal.c) ---- */

/* The largest payload of one entry, and the header before each. */
#define JOURNAL_ENTRY_MAX (2 * AUDIT_RECORD_MAX + 64)
#define JOURNAL_HEADER 32

struct journal {
	uint64_t cap;         /* bytes of each file used (the files may be longer) */
	int fd[2];
	int cur;              /* the file being written */
	uint64_t off;         /* where its next entry goes */
	uint64_t last[2];     /* the last sequence number written in each this run; 0: none */
	uint64_t next;        /* the next entry's sequence number */
	uint64_t round;       /* random, new at each start and turn: every entry of a file's run has it */
};

/*
 * Open (creating and preallocating to 'cap' bytes each) DATA/audit-journal/
 * NODE.0 and .1 and lock the stream.  ERR_CONFLICT when another process
 * holds it.
 */
enum err journal_open(const char *data_dir, const char *node, uint64_t cap, struct journal *j,
		      struct ctx *c);
void journal_close(struct journal *j);

/* Bytes an entry with an 'n'-byte payload takes. */
size_t journal_entry_size(size_t n);

/* Append an entry to 'b' (ERR_TOOBIG past JOURNAL_ENTRY_MAX or b's limit). */
enum err journal_put(struct buf *b, uint64_t round, uint64_t jseq, const void *payload, size_t n);

/* Go on in the other file, from its start, in a new round (its entries must be in audit.db). */
void journal_next_file(struct journal *j);

typedef enum err (*journal_entry_fn)(void *arg, uint64_t jseq, const uint8_t *payload, size_t n,
				     struct ctx *c);

/*
 * The run of valid entries at the start of d[0, n): its length in bytes;
 * *first and *last get its first and last sequence numbers (0: none).
 */
size_t journal_parse(const uint8_t *d, size_t n, uint64_t *first, uint64_t *last);

/*
 * Check a journal entry's payload as the writer decodes it (writer.c):
 * ERR_OK when it is a well-formed record, ERR_IO when not.
 */
enum err journal_payload_check(const uint8_t *d, size_t n, struct ctx *c);

/*
 * Call fn, in order, for every entry after 'applied' (the last one
 * audit.db holds); *count gets how many.  ERR_IO when entries are missing
 * between 'applied' and the journal's.  Afterwards the journal writes
 * from the start of its first file, numbering on from the last entry.
 */
enum err journal_replay(struct journal *j, uint64_t applied, journal_entry_fn fn, void *arg,
			uint64_t *count, struct ctx *c);

/* Write 'n' bytes of entries at the current place and fdatasync them. */
enum err journal_write(struct journal *j, const void *data, size_t n, struct ctx *c);

/* ---- storage (db.c) ---- */

/*
 * Open DATA/audit.db with the audit settings (WAL, synchronous=FULL,
 * busy timeout).  'create': make and migrate the schema when missing;
 * else ERR_NOTFOUND when there is no log, and the connection is
 * query-only.  *out is the caller's (sqlite3_close).
 */
enum err adb_open(const char *data_dir, bool create, sqlite3 **out, struct ctx *c);

/*
 * The number of stream 'node' into *no; with 'create', registered first
 * when new.  ERR_NOTFOUND when there is no such stream (and !create).
 */
enum err adb_stream_no(sqlite3 *db, const char *node, bool create, int64_t *no, struct ctx *c);

/* The log's secret for hashing identifying query values. */
enum err adb_pepper(sqlite3 *db, uint8_t out[AUDIT_PEPPER_LEN], struct ctx *c);

/* ctx_errorf(c, code, "<what>: <sqlite message>"). */
enum err adb_fail(struct ctx *c, enum err code, sqlite3 *db, const char *what);

/* Prepare 'sql' (ERR_IO on failure). */
enum err adb_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct ctx *c);

/* Run a statement without results. */
enum err adb_exec(sqlite3 *db, const char *sql, struct ctx *c);

/* Bind a string or NULL when s is NULL or "". */
int adb_bind_text(sqlite3_stmt *st, int i, const char *s);

/* A stored checkpoint. */
struct ckpt {
	char node[AUDIT_NODE_MAX + 1];
	uint64_t size;
	int64_t time_ms;
	uint8_t root[MERKLE_HASH_LEN];
	char *jws;      /* NULL when unsigned; owned */
	char *kid;      /* owned; may be NULL */
};
void ckpt_release(struct ckpt *k);

/*
 * The checkpoint of 'node': with size 0 the latest signed one, else the
 * one of exactly that size (signed or not).  ERR_NOTFOUND when none.
 */
enum err ckpt_load(sqlite3 *db, const char *node, uint64_t size, struct ckpt *out,
		   struct ctx *c);

/*
 * The canonical checkpoint payload (what the JWS signs):
 * {"log":"veranda-audit","node":..,"size":..,"root":..,"time":..[,"final":true]}
 * "final" marks the checkpoint a writer signs when it closes its stream.
 */
enum err ckpt_payload(const char *node, uint64_t size, const uint8_t root[MERKLE_HASH_LEN],
		      int64_t time_ms, bool final, struct buf *out);

/* What a verified checkpoint says. */
struct ckpt_claim {
	char node[AUDIT_NODE_MAX + 1];
	uint64_t size;
	uint8_t root[MERKLE_HASH_LEN];
	int64_t time_ms;
	bool final;
};

/*
 * Check a checkpoint JWS with 'keys' (typ, signature, payload form) and
 * read what it says into *out.  ERR_UNAUTHORIZED: unsigned, bad
 * signature or unknown key; ERR_INVALID: not a checkpoint payload.
 */
enum err ckpt_verify_jws(const char *jws, const struct jose_jwks *keys, struct ckpt_claim *out,
			 struct ctx *c);

/* The public keys the log recorded (signer table); *out is the caller's. */
enum err adb_log_keys(sqlite3 *db, struct jose_jwks **out, struct ctx *c);

/* ---- trees (tree.c) ---- */

/*
 * Reads one stream's tree from the database: leaves from `record`,
 * cached block roots from `subtree`.  Keeps a small memo of perfect
 * subtree hashes and the last block of leaves it read (valid as long as
 * the stored log is append-only, which the verifier checks).
 */
struct tree_src;

struct tree_src *tree_src_new(sqlite3 *db, const char *node);
void tree_src_free(struct tree_src *t);
/* Switch to another stream (drops the memo). */
void tree_src_set_node(struct tree_src *t, const char *node);

/* The Merkle tree hash of leaves [lo, hi).  ERR_IO when a leaf or cached root is missing. */
enum err tree_range_hash(struct tree_src *t, uint64_t lo, uint64_t hi,
			 uint8_t out[MERKLE_HASH_LEN], struct ctx *c);
/* The stored leaf hash of 'seq' (ERR_NOTFOUND when absent). */
enum err tree_leaf(struct tree_src *t, uint64_t seq, uint8_t out[MERKLE_HASH_LEN],
		   struct ctx *c);
/* RFC 9162 PATH(index, D[size]) into proof[MERKLE_PROOF_MAX * 32]. */
enum err tree_inclusion(struct tree_src *t, uint64_t index, uint64_t size, uint8_t *proof,
			size_t *len, struct ctx *c);
/* RFC 9162 PROOF(size1, D[size2]). */
enum err tree_consistency(struct tree_src *t, uint64_t size1, uint64_t size2, uint8_t *proof,
			  size_t *len, struct ctx *c);
/* The compact range of the first 'size' leaves. */
enum err tree_compact(struct tree_src *t, uint64_t size, struct merkle_compact *out,
		      struct ctx *c);

/*
 * Tiers of compact ranges that produce the root of every complete
 * aligned block of 2^8, 2^16, ... leaves as leaves are appended.
 */
struct tiers {
	struct merkle_compact t[AUDIT_TIERS];
};
/* A finished block: level (8, 16, ...), its index at that level, root. */
typedef enum err (*tier_emit_fn)(void *arg, int level, uint64_t idx,
				 const uint8_t hash[MERKLE_HASH_LEN]);
void tiers_init(struct tiers *tr);
/* Append leaf number 'index' (the tiers must hold exactly 'index' leaves). */
enum err tiers_append(struct tiers *tr, uint64_t index, const uint8_t leaf[MERKLE_HASH_LEN],
		      tier_emit_fn emit, void *arg);
/* Rebuild the tiers of a tree of 'size' leaves from the database. */
enum err tiers_load(struct tiers *tr, struct tree_src *t, uint64_t size, struct ctx *c);

/* ---- codecs ---- */

/* base64url of a hash into out[44]. */
void hash_b64(const uint8_t h[MERKLE_HASH_LEN], char out[44]);
/* Decode a 43-character base64url hash; false when it is not one. */
bool hash_unb64(const char *s, uint8_t out[MERKLE_HASH_LEN]);
/* A JSON array of base64url hashes (new reference). */
json_t *hashes_json(const uint8_t *h, size_t n);

/* Write all of buf to fd (ERR_IO on failure). */
enum err adb_write_all(int fd, const char *p, size_t n, struct ctx *c);

/* Open 'path' with 'flags' (O_RDONLY | O_DIRECTORY for a directory) and fsync it. */
enum err adb_fsync_path(const char *path, int flags, struct ctx *c);

/*
 * Export the records of 'f' (plus optional seq bounds, used by the
 * archiver: [seq_lo, seq_hi) of f->node) to fd; shared by audit_export()
 * and the writer's archive.
 */
enum err adb_export(sqlite3 *db, struct tree_src *t, const struct audit_filter *f,
		   uint64_t seq_lo, uint64_t seq_hi, int fd, uint64_t *count, struct ctx *c);

#endif
