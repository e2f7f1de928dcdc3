-- 0006_patient_token.sql - a patient's resources by category or code, in
-- the order of their newest date: "this patient's laboratory results,
-- newest first" (Observation?patient=X&category=laboratory&_sort=-date)
-- and "this patient's heart rates, newest first" (…&code=8867-4).  Run by
-- the migrator inside one transaction, like 0001.
--
-- Before this table such a search walked the patient's references in
-- sort_hi order (0005) and probed each resource's category or code in
-- ix_token, one b-tree descent per resource of the type, matching or
-- not; a patient with 40 observations of which 15 are labs paid 40
-- probes.  Here the matching rows are one range, already in page order.
--
-- A row per pair of (reference row to a Patient, token row whose param
-- is 'category' or 'code' and which has a code) of one resource: the
-- reference parameter (subject, patient, actor, ...) and its target id,
-- the token's param, system and code, and the reference row's sort_hi.
-- src/store/sqlite.c inserts them after the resource's other index rows
-- (so that sort_hi is set) and deletes them with the others;
-- src/store/sqlite_search.c walks ix_patient_token_key when a search is
-- keyed by a patient, sorted by -date and filters on one such code.
CREATE TABLE ix_patient_token (
	rid INTEGER NOT NULL,
	ref INTEGER NOT NULL,                -- n of the ix_reference row
	n INTEGER NOT NULL,                  -- n of the ix_token row
	type TEXT NOT NULL,
	rparam TEXT NOT NULL,                -- the reference parameter
	patient TEXT NOT NULL,               -- its target id (a Patient)
	param TEXT NOT NULL,                 -- 'category' or 'code'
	system TEXT,
	code TEXT NOT NULL,
	sort_hi INTEGER,
	PRIMARY KEY (rid, ref, n)
) STRICT, WITHOUT ROWID;

INSERT INTO ix_patient_token (rid, ref, n, type, rparam, patient, param, system, code, sort_hi)
SELECT r.rid, r.n, t.n, r.type, r.param, r.target_id, t.param, t.system, t.code, r.sort_hi
FROM ix_reference r JOIN ix_token t ON t.rid = r.rid
WHERE r.target_type = 'Patient' AND r.target_id IS NOT NULL
  AND t.param IN ('category', 'code') AND t.code IS NOT NULL;

CREATE INDEX ix_patient_token_key ON ix_patient_token (type, rparam, patient, param, code, sort_hi);
