-- 0007_index_seq.sql - index and compartment rows carry the seq of their
-- resource's current version, and the indexes a search reads its page
-- from cover it.  Run by the migrator inside one transaction, like 0001.
--
-- A page of a search used to read, for each resource on it, the resource
-- row (for seq, its current version) and then that version's row (for the
-- JSON): two b-tree lookups on pages spread over the whole file.  The
-- driving index row now carries seq, so a page reads the version row
-- directly: one lookup per resource instead of two (on the benchmark's
-- 2.8 GB database a Patient?name page of 50 costs about a sixth less
-- CPU).  Index rows are replaced with every version of their resource
-- (src/store/sqlite.c write_rows()), so seq stays the current version's.
--
-- The indexes list rid before seq: their order (values, then rid) is the
-- order the planner relies on for walks and keyset pages.
ALTER TABLE ix_token ADD COLUMN seq INTEGER;
ALTER TABLE ix_string ADD COLUMN seq INTEGER;
ALTER TABLE ix_date ADD COLUMN seq INTEGER;
ALTER TABLE ix_reference ADD COLUMN seq INTEGER;
ALTER TABLE ix_quantity ADD COLUMN seq INTEGER;
ALTER TABLE ix_number ADD COLUMN seq INTEGER;
ALTER TABLE ix_uri ADD COLUMN seq INTEGER;
ALTER TABLE compartment ADD COLUMN seq INTEGER;
ALTER TABLE ix_patient_token ADD COLUMN seq INTEGER;

UPDATE ix_token SET seq = (SELECT r.seq FROM resource r WHERE r.rid = ix_token.rid);
UPDATE ix_string SET seq = (SELECT r.seq FROM resource r WHERE r.rid = ix_string.rid);
UPDATE ix_date SET seq = (SELECT r.seq FROM resource r WHERE r.rid = ix_date.rid);
UPDATE ix_reference SET seq = (SELECT r.seq FROM resource r WHERE r.rid = ix_reference.rid);
UPDATE ix_quantity SET seq = (SELECT r.seq FROM resource r WHERE r.rid = ix_quantity.rid);
UPDATE ix_number SET seq = (SELECT r.seq FROM resource r WHERE r.rid = ix_number.rid);
UPDATE ix_uri SET seq = (SELECT r.seq FROM resource r WHERE r.rid = ix_uri.rid);
UPDATE compartment SET seq = (SELECT r.seq FROM resource r WHERE r.rid = compartment.rid);
UPDATE ix_patient_token SET seq = (SELECT r.seq FROM resource r WHERE r.rid = ix_patient_token.rid);

DROP INDEX ix_token_code;
CREATE INDEX ix_token_code ON ix_token (type, param, code, system, rid, seq);
DROP INDEX ix_string_norm;
CREATE INDEX ix_string_norm ON ix_string (type, param, norm, rid, seq);
DROP INDEX ix_date_range;
CREATE INDEX ix_date_range ON ix_date (type, param, lo, hi, rid, seq);
DROP INDEX ix_date_hi;
CREATE INDEX ix_date_hi ON ix_date (type, param, hi, lo, rid, seq);
DROP INDEX ix_reference_target;
CREATE INDEX ix_reference_target ON ix_reference (type, param, target_id, target_type, sort_hi, rid, seq);
DROP INDEX ix_quantity_value;
CREATE INDEX ix_quantity_value ON ix_quantity (type, param, code, value, rid, seq);
DROP INDEX ix_number_value;
CREATE INDEX ix_number_value ON ix_number (type, param, value, rid, seq);
DROP INDEX ix_uri_uri;
CREATE INDEX ix_uri_uri ON ix_uri (type, param, uri, rid, seq);
DROP INDEX compartment_patient_rid;
CREATE INDEX compartment_patient_rid ON compartment (patient, rid, seq);
DROP INDEX ix_patient_token_key;
CREATE INDEX ix_patient_token_key ON ix_patient_token (type, rparam, patient, param, code, sort_hi, rid, seq);

-- 0005's trigger re-inserts a reference row with its sort key: with seq now.
DROP TRIGGER ix_reference_sort_hi;
CREATE TRIGGER ix_reference_sort_hi BEFORE INSERT ON ix_reference
WHEN NEW.sort_hi IS NULL AND NEW.target_type = 'Patient'
     AND EXISTS (SELECT 1 FROM ix_date d WHERE d.rid = NEW.rid AND d.param = 'date')
BEGIN
	INSERT INTO ix_reference (rid, n, type, param, target_type, target_id, url, sort_hi, seq)
	VALUES (NEW.rid, NEW.n, NEW.type, NEW.param, NEW.target_type, NEW.target_id, NEW.url,
		(SELECT max(d.hi) FROM ix_date d WHERE d.rid = NEW.rid AND d.param = 'date'), NEW.seq);
	SELECT RAISE(IGNORE);
END;
