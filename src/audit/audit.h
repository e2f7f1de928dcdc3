/*
 * audit.h - the tamper-evident audit log: who accessed what, when, from
 * where and under what authority.  docs/audit.md is the long form.
 *
 * Records.  A struct audit_event names an event of a fixed catalogue
 * (enum audit_type) and its agent, patient, entities, source, authority
 * and correlation ids: identifiers only, never clinical content,
 * passwords, tokens or secrets.  Session and token ids enter only as
 * hashes (audit_hash_id()); search queries only in the normalized form of
 * audit_query_normalize(), which hashes values that could identify a
 * person.  Each event becomes one canonical JSON record (fixed member
 * order, no whitespace; see audit_event_serialize()) and those exact
 * bytes are a leaf of the node's RFC 9162 Merkle tree.
 *
 * Storage.  DATA/audit.db, a SQLite file of its own (WAL,
 * synchronous=FULL) that only this module opens; schema versioned with
 * PRAGMA user_version.  Each node (server process) appends to its own
 * stream: records numbered 0, 1, 2 ... (the leaf index) and signed
 * checkpoints (tree size, root hash, time) as compact JWS.  Two writers
 * must never use the same node id at the same time.
 *
 * Writer.  audit_record() validates and serializes on the caller's
 * thread and enqueues; one writer thread per struct audit appends queued
 * records in group commits (one transaction and one fsync for many
 * records), keeps the Merkle compact range and writes checkpoints.
 * audit_wait() blocks until a record is durable.  A disclosure of patient
 * data must not be sent before audit_wait() returned ERR_OK for its record
 * (in AUDIT_SYNC mode); ERR_BUSY from audit_record() (the queue is full)
 * or any error from either means: answer 503 with Retry-After and send
 * nothing ("fail closed").
 *
 * Threads.  audit_record(), audit_wait() and audit_query_normalize() may be
 * called from any number of threads at once.  audit_open() and
 * audit_close() belong to one owner.  A struct audit_reader serializes its
 * own calls (one connection behind a mutex); open one per thread that
 * needs parallel queries.  Everything else is reentrant.
 *
 * Errors: ERR_INVALID malformed input (message names the field);
 * ERR_TOOBIG over a size limit; ERR_BUSY queue full; ERR_IO storage
 * failure (after which the writer accepts nothing more: the log must be
 * looked at, not papered over); ERR_NOTFOUND no audit log, record or
 * checkpoint; ERR_UNAUTHORIZED a signature that does not verify.
 */
#ifndef VERANDA_AUDIT_AUDIT_H
#define VERANDA_AUDIT_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct jose_key;
struct jose_jwks;

/* ---- the event catalogue ------------------------------------------------ */

/*
 * Every kind of event the log records.  The names (audit_type_name()) are
 * the wire and storage form and never change meaning; new types are only
 * ever appended.  The default action of each type is in docs/audit.md.
 */
enum audit_type {
	AUDIT_TYPE_NONE = 0,
	/* sessions */
	AUDIT_SIGNIN,            /* session.signin          E */
	AUDIT_SIGNIN_FAILED,     /* session.signin-failed   E */
	AUDIT_SIGNOUT,           /* session.signout         E */
	AUDIT_SESSION_EXPIRED,   /* session.expired         E */
	AUDIT_MFA_ENROL,         /* session.mfa-enrol       C */
	AUDIT_MFA_USE,           /* session.mfa-use         E */
	/* OAuth */
	AUDIT_AUTHZ_GRANTED,     /* oauth.authorize-granted E */
	AUDIT_AUTHZ_DENIED,      /* oauth.authorize-denied  E */
	AUDIT_TOKEN_ISSUED,      /* oauth.token-issued      C */
	AUDIT_TOKEN_REFRESHED,   /* oauth.token-refreshed   C */
	AUDIT_TOKEN_INTROSPECTED,/* oauth.token-introspected R */
	AUDIT_TOKEN_REVOKED,     /* oauth.token-revoked     D */
	/* FHIR REST */
	AUDIT_FHIR_READ,         /* fhir.read               R */
	AUDIT_FHIR_VREAD,        /* fhir.vread              R */
	AUDIT_FHIR_SEARCH,       /* fhir.search             E */
	AUDIT_FHIR_HISTORY,      /* fhir.history            R */
	AUDIT_FHIR_CREATE,       /* fhir.create             C */
	AUDIT_FHIR_UPDATE,       /* fhir.update             U */
	AUDIT_FHIR_DELETE,       /* fhir.delete             D */
	AUDIT_FHIR_EVERYTHING,   /* fhir.everything         E */
	AUDIT_FHIR_EXPORT,       /* fhir.export             E */
	/* consent */
	AUDIT_CONSENT_GRANTED,   /* consent.granted         C */
	AUDIT_CONSENT_REVOKED,   /* consent.revoked         U */
	AUDIT_CONSENT_RENEWED,   /* consent.renewed         U */
	AUDIT_CONSENT_EXPIRED,   /* consent.expired         U */
	/* proxy (caregiver) access */
	AUDIT_PROXY_INVITED,     /* proxy.invited           C */
	AUDIT_PROXY_ACCEPTED,    /* proxy.accepted          U */
	AUDIT_PROXY_APPROVED,    /* proxy.approved          U */
	AUDIT_PROXY_REVOKED,     /* proxy.revoked           U */
	AUDIT_PROXY_EXPIRED,     /* proxy.expired           U */
	/* policy and special access */
	AUDIT_POLICY_DENIED,     /* policy.denied           E */
	AUDIT_BREAKGLASS_START,  /* access.breakglass-start E */
	AUDIT_BREAKGLASS_END,    /* access.breakglass-end   E */
	AUDIT_ELEVATION_START,   /* access.elevation-start  E */
	AUDIT_ELEVATION_END,     /* access.elevation-end    E */
	/* administration (action C, U or D as the change was) */
	AUDIT_ADMIN_CLIENT,      /* admin.client            U */
	AUDIT_ADMIN_USER,        /* admin.user              U */
	AUDIT_ADMIN_CONFIG,      /* admin.config            U */
	AUDIT_ADMIN_KEY,         /* admin.key               U */
	/* system */
	AUDIT_SYSTEM_START,      /* system.start            E */
	AUDIT_SYSTEM_STOP,       /* system.stop             E */
	AUDIT_SYSTEM_STORE_ERROR,/* system.store-error      E */
	AUDIT_SYSTEM_BACKLOG,    /* system.audit-backlog    E  (written by the writer itself) */
	AUDIT_SYSTEM_PRUNE,      /* system.audit-prune      D  (written by the writer itself) */
	/* appended later: numbers are kept, so new types go last */
	AUDIT_PASSWORD_CHANGE,   /* session.password-change U */
	AUDIT_TYPE_COUNT
};

/* "fhir.read" etc.; NULL for AUDIT_TYPE_NONE and out-of-range values. */
const char *audit_type_name(enum audit_type t);
/* The type named 'name', or AUDIT_TYPE_NONE. */
enum audit_type audit_type_parse(const char *name);
/* The type's default action: 'C', 'R', 'U', 'D' or 'E'. */
char audit_type_action(enum audit_type t);

/* Outcome codes (FHIR AuditEvent.outcome). */
enum audit_outcome {
	AUDIT_OK = 0,
	AUDIT_MINOR = 4,   /* minor failure: the request was refused or invalid */
	AUDIT_SERIOUS = 8, /* serious failure: the request failed */
	AUDIT_MAJOR = 12,  /* major failure: the system is not available */
};

/* ---- limits --------------------------------------------------------------- */

/* Longest identifier-like field (user id, patient id, resource id...). */
#define AUDIT_ID_MAX 256
/* Longest query or scope string. */
#define AUDIT_TEXT_MAX 2048
/* Longest node id: [A-Za-z0-9._-], 1..64 bytes. */
#define AUDIT_NODE_MAX 64
/* Most entities and reason codes per event. */
#define AUDIT_ENTITIES_MAX 32
#define AUDIT_REASONS_MAX 16
/* Largest canonical record, in bytes. */
#define AUDIT_RECORD_MAX 16384
/* A hashed id: "sha256:" and 43 base64url characters, plus a NUL. */
#define AUDIT_HASH_SIZE 51
/* Largest receipt or proof document we parse. */
#define AUDIT_RECEIPT_MAX 65536

/* ---- events ----------------------------------------------------------------- */

struct audit_entity {
	const char *type;     /* resource type ("Observation") or other object type */
	const char *id;       /* logical id */
	const char *version;  /* version id */
	const char *category; /* data category code ("laboratory", "vital-signs"...) */
	const char *query;    /* searches: audit_query_normalize() output */
};

/*
 * One event.  Strings are borrowed for the duration of the call; NULL or
 * "" means absent.  Every string must be valid UTF-8 within its limit.
 */
struct audit_event {
	enum audit_type type;
	char action;            /* 'C','R','U','D','E'; 0 for the type's default */
	int64_t time_ms;        /* when it happened; 0: now (at audit_record) */
	int outcome;            /* enum audit_outcome */
	const char *outcome_code; /* why it failed, a code: [a-z0-9_.:-], at most 64 */
	struct {
		const char *user_id;
		const char *username;
		const char *role;         /* "patient", "clinician", ... */
		const char *fhir_user;    /* "Patient/123", "Practitioner/9" */
		const char *client_id;    /* the OAuth client (app or portal) */
		const char *on_behalf_of; /* whom a proxy or an elevated user acts for */
	} agent;
	const char *patient;    /* the patient whose record was touched (logical id) */
	const struct audit_entity *entities;
	size_t n_entities;
	struct {
		const char *client_addr;  /* the peer's IP address */
		const char *session_hash; /* audit_hash_id() of the session id */
		const char *token_hash;   /* audit_hash_id() of the token id (jti) */
	} source;
	struct {
		const char *scopes;       /* granted scopes, space separated */
		const char *consent_id;
		const char *grant_id;     /* proxy grant or OAuth grant */
		const char *breakglass_id;
		const char *const *reasons; /* policy reason codes: [A-Za-z0-9_.:/-], at most 64 each */
		size_t n_reasons;
	} authority;
	struct {
		const char *request_id;
		const char *trace_id;
	} correlation;
};

/*
 * out = "sha256:" + base64url(SHA-256(id)): how session ids, token ids
 * and other high-entropy secrets enter a record.  Unkeyed, so any module
 * (and a compliance officer holding a token) can compute it to correlate;
 * do not use it for low-entropy values such as names (see
 * audit_query_normalize()).
 */
void audit_hash_id(const char *id, char out[AUDIT_HASH_SIZE]);

/* A keyed hash of a value: "~" and 22 base64url characters, plus a NUL. */
#define AUDIT_VALUE_HASH_SIZE 24

struct audit;

/*
 * out = "~" and 22 base64url characters of HMAC-SHA-256 of 'purpose', a
 * NUL and 's' under the log's secret key: for a guessable value that must
 * not be readable in the log but should still compare equal (a username
 * that names no account: perhaps a password typed in the wrong field).
 * The purpose keeps these hashes apart from those of search values
 * (audit_query_normalize()), which anyone whose search is recorded can
 * have made for a value of their choice.  ERR_INVALID when 'a' is NULL or
 * the purpose empty, ERR_TOOBIG for a value past 4 * AUDIT_TEXT_MAX.
 */
enum err audit_hash_value(const struct audit *a, const char *purpose, const char *s,
			  char out[AUDIT_VALUE_HASH_SIZE], struct ctx *c);

/* One search parameter as received: name (with modifiers) and raw value. */
struct audit_param {
	const char *name;
	const char *value;
	bool hash;       /* hash the value whatever the name (a parameter the search ignored) */
};

/*
 * Append to 'out' the normalized form of a search on 'type' (NULL or ""
 * for a system-wide search): "Type?name=value&...", parameters sorted by
 * name then value, names and values percent-encoded (RFC 3986 unreserved
 * characters kept).  The values of parameters that identify a person
 * (name, family, given, phonetic, identifier, birthdate, death-date,
 * address and address-*, phone, email, telecom, _content, _text, also
 * inside chains) are replaced by "~" and 22 base64url characters of an
 * HMAC-SHA-256 under the log's secret key, so equal values still compare
 * equal but cannot be read or guessed from the log.  A reference to a
 * patient other than 'patient' (patient=, subject=Patient/.., _id on
 * Patient) is hashed the same way, and so is the value of a parameter
 * marked 'hash'; 'patient' (may be NULL) itself stays readable.  ERR_INVALID for a NULL name or invalid UTF-8, ERR_TOOBIG past
 * AUDIT_TEXT_MAX (out is then as it was).
 */
enum err audit_query_normalize(const struct audit *a, const char *type,
			       const struct audit_param *params, size_t n, const char *patient,
			       struct buf *out, struct ctx *c);

/*
 * The canonical record of 'ev' as stream 'node', sequence 'seq' (the
 * writer does this itself; exposed for tests and tools): appended to
 * 'out'.  Members in this order, absent ones omitted, no whitespace:
 *   v seq node time type action outcome outcomeCode
 *   agent{user username role fhirUser client onBehalfOf} patient
 *   entity[{type id version category query}]
 *   source{addr session token}
 *   authority{scopes consent grant breakglass reasons[]}
 *   correlation{request trace}
 * Strings escape only '"', '\\' and control characters (\b \f \n \r \t,
 * else \u00xx in lower case); numbers are plain decimal integers.
 * ERR_INVALID (naming the field) for a bad event, ERR_TOOBIG past
 * AUDIT_RECORD_MAX; 'out' is then as it was.
 */
enum err audit_event_serialize(const struct audit_event *ev, const char *node, uint64_t seq,
			       struct buf *out, struct ctx *c);

/* ---- the writer ------------------------------------------------------------ */

enum audit_durability {
	AUDIT_SYNC = 0, /* audit_wait() returns once the record is on disk */
	AUDIT_ASYNC,    /* audit_wait() returns at once; records still group-commit */
};

#define AUDIT_QUEUE_DEFAULT 65536
#define AUDIT_JOURNAL_DEFAULT (2u << 20)
#define AUDIT_WRITER_LINGER_MS_DEFAULT 20
#define AUDIT_WRITER_BUSY_RECORDS_DEFAULT 16
#define AUDIT_JOURNAL_MIN (64u << 10) /* holds the largest record with room to spare */
#define AUDIT_WAIT_MS 5000 /* audit_wait() gives up after this long */
#define AUDIT_CHECKPOINT_RECORDS_DEFAULT 1000
#define AUDIT_CHECKPOINT_MS_DEFAULT 5000
#define AUDIT_RETENTION_DAYS_DEFAULT 2192 /* six years, leap days included */
#define AUDIT_RETAIN_FOREVER UINT32_MAX

struct audit_opts {
	const char *data_dir;   /* holds audit.db (created when missing) */
	const char *node;       /* this process's stream; NULL: "node-1" */
	enum audit_durability durability;
	size_t queue_max;       /* records waiting for the writer; 0: AUDIT_QUEUE_DEFAULT */
	size_t journal_bytes;   /* each journal file (>= AUDIT_JOURNAL_MIN); 0: AUDIT_JOURNAL_DEFAULT */
	uint32_t checkpoint_records; /* sign after this many records; 0: default */
	uint32_t checkpoint_ms;      /* ... or this long after the first unsigned one; 0: default */
	/*
	 * The private key that signs checkpoints (ES256 expected; any
	 * asymmetric JOSE alg works), borrowed until audit_close().  NULL
	 * writes unsigned checkpoints, which audit_verify() reports as a
	 * failure: only for tests and tools.
	 */
	const struct jose_key *key;
	uint32_t retention_days;     /* 0: AUDIT_RETENTION_DAYS_DEFAULT */
	/* Pruned records are first written here as NDJSON with proofs;
	 * NULL: DATA/audit-archive; "": pruned without an archive. */
	const char *archive_dir;
	/* Prune at start and every this many ms; 0: once a day. */
	uint32_t prune_interval_ms;
	/*
	 * How long journaled records may gather before a busy writer inserts
	 * them into audit.db (they are durable meanwhile; audit_settle() ends
	 * the wait); 0: AUDIT_WRITER_LINGER_MS_DEFAULT.  The writer is busy
	 * when its last transaction held at least writer_busy_records; 0:
	 * AUDIT_WRITER_BUSY_RECORDS_DEFAULT.
	 */
	uint32_t writer_linger_ms;
	uint32_t writer_busy_records;
};

/*
 * Open (creating or migrating) DATA/audit.db, recover this node's tree
 * from it, sign a checkpoint over records a previous run left unsigned,
 * and start the writer thread.  The caller owns *out (audit_close()).
 * ERR_INVALID for bad options (node id, key without a private part);
 * ERR_IO when the file cannot be opened or is not a Veranda audit log,
 * ERR_UNSUPPORTED when its schema is newer than this program's.
 */
enum err audit_open(const struct audit_opts *o, struct audit **out, struct ctx *c);

/*
 * Validate and serialize 'ev', then queue it.  '*ticket' (may be NULL)
 * receives a number for audit_wait().  Returns at once: ERR_OK queued;
 * ERR_BUSY the queue is full (the writer also records the backlog);
 * ERR_INVALID / ERR_TOOBIG a bad event (a caller bug: nothing queued);
 * ERR_IO the writer has failed or is closing.
 */
enum err audit_record(struct audit *a, const struct audit_event *ev, uint64_t *ticket,
		      struct ctx *c);

/*
 * Block until the record with 'ticket' is durable (committed and synced),
 * at most AUDIT_WAIT_MS: ERR_BUSY after that (the log is locked by another
 * connection or stalled; the record stays queued and may still be
 * written).  In AUDIT_ASYNC mode returns ERR_OK at once unless the writer
 * failed.  ERR_IO when the writer failed before the record was durable.
 */
enum err audit_wait(struct audit *a, uint64_t ticket, struct ctx *c);

/*
 * Block until every record queued before the call is in audit.db, where
 * readers (audit_query(), the views) find it: a record is durable once in
 * the journal, and inserted up to writer_linger_ms later (a call ends
 * that wait).  At most 'timeout_ms': ERR_BUSY after that; ERR_IO when the
 * log failed.
 */
enum err audit_settle(struct audit *a, int timeout_ms, struct ctx *c);
/*
 * How long a request that reads the log waits for it (audit_settle()):
 * an insert takes milliseconds; a log that cannot catch up within this is
 * read as it is, rather than hold a server thread that serves others.
 */
#define AUDIT_SETTLE_READ_MS 250

/*
 * audit_wait() for a caller that must not block (a request whose answer
 * waits while its thread serves others).  The caller fills fn and arg and
 * keeps 'n' valid until fn has run.
 */
struct audit_notice {
	void (*fn)(struct audit_notice *n, enum err e);
	void *arg;
	/* the audit's own */
	uint64_t ticket;
	int64_t deadline;         /* monotonic us */
	enum err result;
	struct audit_notice *next;
};

/*
 * When the answer for 'ticket' is known at once (durable, AUDIT_ASYNC, or
 * the writer has failed), return it as audit_wait() would, with *pending
 * false: nothing is registered and fn is not called.  Otherwise register
 * 'n', set *pending and return ERR_OK: n->fn(n, e) is then called exactly
 * once, with what audit_wait() would have returned: ERR_OK once durable
 * (on the journal thread, right after the write that made it so), ERR_BUSY
 * after AUDIT_WAIT_MS, ERR_IO when the log fails or closes first (on the
 * notifier thread).  fn runs with no lock held, but must be short and must
 * not block: above all it must not wait on the audit log (audit_wait(),
 * audit_settle()), which would stall the journal it runs on.  With 'n' NULL
 * nothing is registered: *pending only tells whether it would have been.
 */
enum err audit_notify(struct audit *a, uint64_t ticket, struct audit_notice *n, bool *pending,
		      struct ctx *c);

/* audit_record() then audit_wait() (in sync mode). */
enum err audit_record_sync(struct audit *a, const struct audit_event *ev, struct ctx *c);

/*
 * Run retention now (the writer also does this at start and every
 * prune_interval_ms): records older than retention_days are archived,
 * then their bodies removed, keeping their leaf hashes so every root
 * still verifies; a signed system.audit-prune record says up to where.
 * Blocks until done.  '*pruned' (may be NULL) receives the count.
 */
enum err audit_prune(struct audit *a, uint64_t *pruned, struct ctx *c);

/* This writer's node id (borrowed). */
const char *audit_node(const struct audit *a);

/* Counters for metrics (a consistent snapshot). */
struct audit_stats {
	uint64_t records;      /* this node's stream size */
	uint64_t checkpoints;  /* signed by this process */
	uint64_t commits;      /* group commits to the journal by this process */
	uint64_t inserts;      /* transactions that moved them into audit.db */
	uint64_t write_us;     /* time the writer spent inserting them (CPU, mostly) */
	uint64_t sync_us;      /* time it spent in COMMIT (writing the WAL, fsync) */
	uint64_t journal_us;   /* time the journal thread spent writing and syncing */
	size_t unapplied;      /* durable in the journal, not yet in audit.db */
	uint64_t rejected;     /* ERR_BUSY answers */
	uint64_t notifier_wakes; /* times the notifier thread woke (audit_notify()) */
	size_t queued;         /* waiting now */
	bool failed;
};
void audit_stats(struct audit *a, struct audit_stats *out);

/*
 * Drain the queue, sign a final checkpoint, stop the writer and free
 * everything.  Returns the writer's failure if it had one.  No other call
 * on 'a' may run at the same time or after.  NULL is fine.
 */
enum err audit_close(struct audit *a, struct ctx *c);

/* ---- verification ----------------------------------------------------------- */

struct audit_verify_report {
	bool ok;
	uint64_t streams;
	uint64_t records;        /* rows seen */
	uint64_t pruned;         /* of which without a body */
	uint64_t checkpoints;    /* verified signatures */
	uint64_t unsigned_tail;  /* records after each stream's last checkpoint */
	bool keys_from_log;      /* no keys given: verified with the log's own keys */
	/* The first failure (when !ok): stream, the first record that does
	 * not match, and the end (exclusive) of the range it lies in;
	 * bad_end == first_bad + 1 when it is known exactly.  first_bad is
	 * -1 when the failure is not about one place (no key). */
	char node[AUDIT_NODE_MAX + 1];
	int64_t first_bad;
	int64_t bad_end;
	char reason[256];
};

/*
 * Verify the whole log in DATA/audit.db, every stream: each record's leaf
 * hash recomputed from its stored bytes, its sequence, stream and indexed
 * columns; no gaps; every checkpoint's root recomputed from the leaves and
 * its signature checked with 'keys' (NULL: the public keys the log
 * recorded, which proves consistency but not origin: pass the server's
 * keys); bodies missing only where a signed prune record allows.  Stops
 * at the first failure.  ERR_OK when the log verifies; ERR_INVALID when it
 * does not ('*r' says where and why, and so does the message); ERR_NOTFOUND
 * / ERR_IO when there is no log or it cannot be read.
 */
enum err audit_verify(const char *data_dir, const struct jose_jwks *keys,
		      struct audit_verify_report *r, struct ctx *c);

/*
 * Check that the log still extends a checkpoint saved earlier (the compact
 * JWS 'checkpoint', e.g. from a receipt or /audit/checkpoints), signed by
 * one of 'keys' (NULL: the log's own keys): the stream's first
 * checkpoint.size leaves must hash to its root.  Catches a log cut back or
 * rewritten together with its checkpoints.  ERR_OK, ERR_INVALID (does not
 * extend it; message says why), ERR_UNAUTHORIZED (bad signature).
 */
enum err audit_verify_extends(const char *data_dir, const struct jose_jwks *keys,
			      const char *checkpoint, struct ctx *c);

/* ---- reading: queries, proofs, receipts ---------------------------------------- */

struct audit_reader;

/*
 * A read-only handle on DATA/audit.db (the writer may be running).  The
 * caller owns *out (audit_reader_free()).  ERR_NOTFOUND when there is no
 * log, ERR_IO otherwise.
 */
enum err audit_reader_open(const char *data_dir, struct audit_reader **out, struct ctx *c);
void audit_reader_free(struct audit_reader *r);

/* Where a page ended, for keyset paging. */
struct audit_cursor {
	int64_t time_ms;
	char node[AUDIT_NODE_MAX + 1];
	uint64_t seq;
};

struct audit_filter {
	const char *node;
	const char *patient;
	const char *agent;       /* the username (the user id for records without one) */
	const char *client;      /* client_id */
	const char *type;        /* a type name, or a category: "fhir", "session"... */
	int outcome;             /* -1: any; else exactly this code */
	const char *request_id;  /* correlation.request (not indexed: add a time range) */
	const char *trace_id;    /* correlation.trace (not indexed either) */
	int64_t since_ms;        /* time >= since (0: no bound) */
	int64_t until_ms;        /* time < until (0: no bound) */
	bool newest_first;
	size_t limit;            /* 0: no limit */
	const struct audit_cursor *after; /* continue after this row (NULL: from the start) */
};
#define AUDIT_FILTER_INIT {NULL, NULL, NULL, NULL, NULL, -1, NULL, NULL, 0, 0, false, 0, NULL}

/*
 * Called for each matching record: its stream, sequence, time and
 * canonical bytes (valid during the call only).  A non-zero return stops
 * the query and is returned by audit_query().
 */
typedef enum err (*audit_row_fn)(void *arg, const char *node, uint64_t seq, int64_t time_ms,
				 const char *record, size_t len);

/*
 * Records matching every given filter, ordered by time (then stream and
 * sequence).  Pruned records are not returned.  ERR_INVALID for an
 * unknown type or category.
 */
enum err audit_query(struct audit_reader *r, const struct audit_filter *f, audit_row_fn fn,
		     void *arg, struct ctx *c);

/*
 * The record whose AuditEvent id (audit_event_to_fhir()) is 'id', given to
 * 'fn' as audit_query() gives rows.  ERR_NOTFOUND when no record has that
 * id (or it was pruned); else what 'fn' returned, or ERR_IO.
 */
enum err audit_read_fhir_id(struct audit_reader *r, const char *id, audit_row_fn fn, void *arg,
			    struct ctx *c);

/*
 * The size of stream 'node''s latest signed checkpoint: records below it
 * have receipts and inclusion proofs (0: none signed yet).
 */
enum err audit_signed_size(struct audit_reader *r, const char *node, uint64_t *size,
			   struct ctx *c);

/*
 * The latest signed checkpoint of each stream (or of 'node'), as
 * {"checkpoints":[{"node","size","root","time","jws"}...]}; with
 * 'history', every checkpoint of the stream(s), oldest first, at most
 * 'limit' (0: all).  ERR_INVALID for an invalid stream name.  *out is a
 * new reference.
 */
enum err audit_checkpoints(struct audit_reader *r, const char *node, bool history, size_t limit,
			   json_t **out, struct ctx *c);

/*
 * One page of the checkpoint history: the signed checkpoints of stream
 * 'node' (NULL: of every stream) that follow checkpoint 'after_size' of
 * stream 'after_node' in (stream, size) order (after_node NULL: from the
 * first), at most 'limit' (1 or more), as audit_checkpoints() gives them;
 * *more says whether another follows this page.  ERR_INVALID for an
 * invalid stream name, a size out of range or a limit of 0.  *out is a new
 * reference.
 */
enum err audit_checkpoints_page(struct audit_reader *r, const char *node, const char *after_node,
				uint64_t after_size, size_t limit, json_t **out, bool *more,
				struct ctx *c);

/*
 * The inclusion proof of record 'seq' of stream 'node' against the signed
 * checkpoint of 'size' leaves (0: the latest signed one):
 * {"node","seq","tree_size","leaf_hash","hashes":[...],"checkpoint":JWS}
 * (hashes base64url, deepest sibling first, RFC 9162).  ERR_NOTFOUND when
 * there is no such record or no signed checkpoint covers it.
 */
enum err audit_inclusion_proof(struct audit_reader *r, const char *node, uint64_t seq,
			       uint64_t size, json_t **out, struct ctx *c);

/*
 * The consistency proof between the signed checkpoints of size1 and size2
 * of 'node': {"node","size1","size2","hashes":[...],"checkpoint1","checkpoint2"}.
 * ERR_NOTFOUND when either is not a signed checkpoint; ERR_INVALID when
 * size1 is 0 or above size2.
 */
enum err audit_consistency_proof(struct audit_reader *r, const char *node, uint64_t size1,
				 uint64_t size2, json_t **out, struct ctx *c);

/*
 * A receipt for record 'seq' of 'node' (NULL: the only stream, or
 * ERR_INVALID when there are several): one JSON document a patient can
 * keep and check offline,
 *   {"receipt":"veranda-audit-receipt/1","record":"<canonical record>",
 *    "node","seq","tree_size","hashes":[...],"checkpoint":"<JWS>","jwk":{..}}
 * where "record" is the exact bytes of the leaf (a JSON string holding
 * JSON) and "jwk" the public key that signed the checkpoint, when the log
 * knows it (informative only: check it against the published keys).
 * Errors as audit_inclusion_proof(); ERR_GONE for a pruned record.
 */
enum err audit_receipt(struct audit_reader *r, const char *node, uint64_t seq, json_t **out,
		       struct ctx *c);

/*
 * Check a receipt offline: the checkpoint's signature under one of 'keys',
 * the record's leaf hash, its inclusion proof against the checkpoint's
 * root, and that the record's node and seq are the proof's.  On success
 * '*record' (may be NULL) receives the parsed record (new reference).
 * ERR_OK; ERR_UNAUTHORIZED bad signature or unknown key; ERR_INVALID
 * anything else (message says what); ERR_TOOBIG past AUDIT_RECEIPT_MAX.
 */
enum err audit_receipt_verify(const char *json, size_t n, const struct jose_jwks *keys,
			      json_t **record, struct ctx *c);

/*
 * Write matching records to 'fd' as NDJSON with proofs: first one line
 * per stream {"checkpoint":JWS,"node","size"} (the latest signed one),
 * then per record {"node","seq","record":"<canonical>","hashes":[...]}
 * (its inclusion proof against that checkpoint; "hashes" is absent and
 * "unsigned":true for records after it).  '*count' (may be NULL)
 * receives the number of records.  ERR_IO when writing fails.
 */
enum err audit_export(struct audit_reader *r, const struct audit_filter *f, int fd,
		      uint64_t *count, struct ctx *c);

/* ---- FHIR ------------------------------------------------------------------------ */

/*
 * The FHIR R4 AuditEvent of one canonical record (IHE BALP for the RESTful
 * interactions, DICOM codes for sign-in and system events; docs/audit.md
 * has the table).  'base' is the server's FHIR base URL for references
 * (may be NULL: relative references).  *out is a new reference.
 * ERR_INVALID when 'record' is not a record this module wrote.
 */
enum err audit_event_to_fhir(const char *record, size_t n, const char *base, json_t **out,
			     struct ctx *c);

/*
 * The patient's view (view.c): who accessed a patient's record, newest
 * first, as plain-language lines {when, who, what, through, why, type,
 * refused}.
 */
struct audit_view_q {
	const char *patient;              /* whose record */
	const char *self;                 /* the viewer's username: their own accesses say "You" */
	bool own;                         /* the viewer is the patient: "your ...", else "the ..." */
	const char *kind;                 /* NULL or "all"; "apps" (anything done through an app),
					     "staff" (staff access) or "refused" */
	const struct audit_cursor *after; /* NULL: from the newest */
	size_t limit;                     /* lines a page; 0: 25 */
	/* the name people know app 'client_id' by, into buf[n]; NULL: the id */
	void (*app_name)(void *arg, const char *client_id, char *buf, size_t n);
	void *arg;
};

/*
 * At most q->limit lines of q->patient's record after q->after; *more
 * says whether older matching lines exist, *next (may be NULL) where to
 * continue.  *out is a new reference.
 */
enum err audit_patient_view(struct audit_reader *r, const struct audit_view_q *q, json_t **out,
			    struct audit_cursor *next, bool *more, struct ctx *c);

/*
 * A record or checkpoint named "NODE:N" (a stream id by the node rule,
 * [A-Za-z0-9._-] up to AUDIT_NODE_MAX bytes, and a decimal number), as
 * cursors and links write it; false for anything else.
 */
bool audit_ref_parse(const char *s, char node[AUDIT_NODE_MAX + 1], uint64_t *n);
/* A paging cursor "TIME:NODE:SEQ" (ms, then audit_ref_parse()); false for anything else. */
bool audit_cursor_parse(const char *s, struct audit_cursor *out);

/*
 * May the viewer of 'q' have a receipt for record 'rec' (parsed)?  The
 * record must be about q->patient, and done by the viewer (q->self) or by
 * staff or a connected service: a receipt holds the record's exact bytes,
 * which name whoever acted and their address, so records of other
 * patients' and caregivers' accounts are not handed out (they show in the
 * view without a name).  Lines of the view carry "receipt": "NODE:SEQ"
 * when this holds.
 */
bool audit_view_receipt_ok(const struct audit_view_q *q, const json_t *rec);

#endif
