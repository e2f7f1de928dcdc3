-- 0005_sort_key.sql - indexes that let patient-scoped searches read their
-- page in order: the newest 'date' of a resource on its references to
-- patients, so that the commonest one ("this patient's results, newest
-- first": Observation?patient=X&_sort=-date) walks one index instead of
-- sorting every match by a value looked up per match; and the patient's
-- compartment by rid, for $everything.  Run by the migrator inside one
-- transaction, like 0001.
--
-- ix_reference.sort_hi, on rows whose target_type is 'Patient': max(hi) of
-- the resource's ix_date rows whose param is 'date' (NULL when it has
-- none); NULL on every other row.  src/store/sqlite_search.c sorts and
-- filters by it ("keyed driver") only for references to a Patient.
--
-- The trigger keeps it on every write path (FHIR writes, transactions,
-- import, seed): a put replaces all index rows of a resource, and the store
-- inserts them kind by kind in the order of enum store_ix, dates before
-- references (src/store/sqlite.c insert_ix_rows()), so a reference row gets
-- its value as it is inserted: the BEFORE trigger inserts the row itself,
-- with sort_hi, and skips the original (an UPDATE after the insert would
-- write the row and its index entry twice).  That order is relied on: a
-- trigger on ix_date for the other order cost as much again on every
-- write (about 20,000 instructions per date row) for a case that does not
-- occur.
ALTER TABLE ix_reference ADD COLUMN sort_hi INTEGER;

UPDATE ix_reference SET sort_hi = (SELECT max(d.hi) FROM ix_date d
				   WHERE d.rid = ix_reference.rid AND d.param = 'date')
WHERE target_type = 'Patient';

-- The same index as before with the sort key last: for one patient, the
-- referring resources of a type in sort_hi order, then rid (which every
-- index carries last).  Lookups by target alone use its first four columns.
DROP INDEX ix_reference_target;
CREATE INDEX ix_reference_target ON ix_reference (type, param, target_id, target_type, sort_hi);

-- The inner INSERT comes back here with sort_hi set, which ends the
-- recursion (recursive_triggers may be on).
CREATE TRIGGER ix_reference_sort_hi BEFORE INSERT ON ix_reference
WHEN NEW.sort_hi IS NULL AND NEW.target_type = 'Patient'
     AND EXISTS (SELECT 1 FROM ix_date d WHERE d.rid = NEW.rid AND d.param = 'date')
BEGIN
	INSERT INTO ix_reference (rid, n, type, param, target_type, target_id, url, sort_hi)
	VALUES (NEW.rid, NEW.n, NEW.type, NEW.param, NEW.target_type, NEW.target_id, NEW.url,
		(SELECT max(d.hi) FROM ix_date d WHERE d.rid = NEW.rid AND d.param = 'date'));
	SELECT RAISE(IGNORE);
END;

-- A patient's compartment in rid order, the order of $everything: its first
-- page reads that many rows instead of sorting the whole record.
CREATE INDEX compartment_patient_rid ON compartment (patient, rid);
