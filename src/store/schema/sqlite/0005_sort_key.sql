-- 0005_sort_key.sql - the newest 'date' of a resource on its reference rows,
-- so that the commonest patient-scoped search ("this patient's results,
-- newest first": Observation?patient=X&_sort=-date) walks one index in
-- page order instead of sorting every match by a value looked up per
-- match.  Run by the migrator inside one transaction, like 0001.
--
-- ix_reference.sort_hi: max(hi) of the resource's ix_date rows whose param
-- is 'date' (NULL when it has none) -- the value the planner sorts by for
-- _sort=-date (src/store/sqlite_search.c, "walk shape").  The triggers
-- below keep it on every write path (FHIR writes, transactions, import,
-- seed): a put replaces all of a resource's index rows, and the store
-- inserts them kind by kind (dates before references, src/store/sqlite.c
-- insert_ix_rows()); the second trigger covers the other order too.
ALTER TABLE ix_reference ADD COLUMN sort_hi INTEGER;

UPDATE ix_reference SET sort_hi = (SELECT max(d.hi) FROM ix_date d
				   WHERE d.rid = ix_reference.rid AND d.param = 'date');

-- The same index as before with the sort key last: for one target, the
-- referring resources of a type in sort_hi order, then rid (which every
-- index carries last).  Lookups by target alone use its first four columns.
DROP INDEX ix_reference_target;
CREATE INDEX ix_reference_target ON ix_reference (type, param, target_id, target_type, sort_hi);

CREATE TRIGGER ix_reference_sort_hi AFTER INSERT ON ix_reference
WHEN EXISTS (SELECT 1 FROM ix_date d WHERE d.rid = NEW.rid AND d.param = 'date')
BEGIN
	UPDATE ix_reference SET sort_hi = (SELECT max(d.hi) FROM ix_date d
					   WHERE d.rid = NEW.rid AND d.param = 'date')
	WHERE rid = NEW.rid AND n = NEW.n;
END;

CREATE TRIGGER ix_date_sort_hi AFTER INSERT ON ix_date
WHEN NEW.param = 'date'
BEGIN
	UPDATE ix_reference SET sort_hi = NEW.hi
	WHERE rid = NEW.rid AND (sort_hi IS NULL OR sort_hi < NEW.hi);
END;
