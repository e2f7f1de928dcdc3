-- 0001_init.sql - resources, every version of them, the search index
-- tables and the patient compartment.
--
-- The migrator (src/store/sqlite.c) runs this file inside one transaction
-- and then sets PRAGMA user_version = 1: no BEGIN or COMMIT here.
-- Times are milliseconds since the Unix epoch.
--
-- Index tables: one row per (resource, parameter, value) of the current
-- version only.  They are clustered on (rid, n) -- n numbers the rows of
-- one resource -- so replacing a resource's rows is a range delete, and
-- every secondary index carries rid at its end, so a lookup by value
-- returns rids without touching the table.

-- The current state of each resource.
CREATE TABLE resource (
	rid INTEGER PRIMARY KEY,
	type TEXT NOT NULL,
	id TEXT NOT NULL,
	version INTEGER NOT NULL,
	last_updated INTEGER NOT NULL,
	deleted INTEGER NOT NULL DEFAULT 0,
	seq INTEGER NOT NULL DEFAULT 0,      -- resource_version.seq of the current version
	UNIQUE (type, id)
) STRICT;

-- Every version ever written; seq is the global write sequence.
CREATE TABLE resource_version (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	rid INTEGER NOT NULL,
	type TEXT NOT NULL,
	id TEXT NOT NULL,
	version INTEGER NOT NULL,
	last_updated INTEGER NOT NULL,
	deleted INTEGER NOT NULL DEFAULT 0,
	json BLOB NOT NULL,                  -- empty for a delete
	UNIQUE (rid, version)
) STRICT;
CREATE INDEX resource_version_type ON resource_version (type, seq);

CREATE TABLE ix_token (
	rid INTEGER NOT NULL,
	n INTEGER NOT NULL,
	type TEXT NOT NULL,
	param TEXT NOT NULL,
	system TEXT,
	code TEXT,
	text TEXT,                           -- display / text, for :text
	PRIMARY KEY (rid, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX ix_token_code ON ix_token (type, param, code, system);

CREATE TABLE ix_string (
	rid INTEGER NOT NULL,
	n INTEGER NOT NULL,
	type TEXT NOT NULL,
	param TEXT NOT NULL,
	norm TEXT NOT NULL,                  -- lowercase, accents removed
	exact TEXT,
	PRIMARY KEY (rid, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX ix_string_norm ON ix_string (type, param, norm);

CREATE TABLE ix_date (
	rid INTEGER NOT NULL,
	n INTEGER NOT NULL,
	type TEXT NOT NULL,
	param TEXT NOT NULL,
	lo INTEGER NOT NULL,                 -- inclusive range
	hi INTEGER NOT NULL,
	PRIMARY KEY (rid, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX ix_date_range ON ix_date (type, param, lo, hi);

CREATE TABLE ix_reference (
	rid INTEGER NOT NULL,
	n INTEGER NOT NULL,
	type TEXT NOT NULL,
	param TEXT NOT NULL,
	target_type TEXT,
	target_id TEXT,
	url TEXT,                            -- the reference as written
	PRIMARY KEY (rid, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX ix_reference_target ON ix_reference (type, param, target_id, target_type);
CREATE INDEX ix_reference_reverse ON ix_reference (target_type, target_id);

CREATE TABLE ix_quantity (
	rid INTEGER NOT NULL,
	n INTEGER NOT NULL,
	type TEXT NOT NULL,
	param TEXT NOT NULL,
	value REAL NOT NULL,
	lo REAL,                             -- implicit precision range
	hi REAL,
	system TEXT,
	code TEXT,
	PRIMARY KEY (rid, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX ix_quantity_value ON ix_quantity (type, param, code, value);

CREATE TABLE ix_number (
	rid INTEGER NOT NULL,
	n INTEGER NOT NULL,
	type TEXT NOT NULL,
	param TEXT NOT NULL,
	value REAL NOT NULL,
	lo REAL,
	hi REAL,
	PRIMARY KEY (rid, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX ix_number_value ON ix_number (type, param, value);

CREATE TABLE ix_uri (
	rid INTEGER NOT NULL,
	n INTEGER NOT NULL,
	type TEXT NOT NULL,
	param TEXT NOT NULL,
	uri TEXT NOT NULL,
	PRIMARY KEY (rid, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX ix_uri_uri ON ix_uri (type, param, uri);

-- The patients whose record each current resource belongs to.
CREATE TABLE compartment (
	patient TEXT NOT NULL,
	type TEXT NOT NULL,
	rid INTEGER NOT NULL,
	PRIMARY KEY (patient, type, rid)
) STRICT, WITHOUT ROWID;
CREATE INDEX compartment_rid ON compartment (rid);
