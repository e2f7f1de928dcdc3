-- 0008_reference_rid.sql - a patient's references of one type and
-- parameter in rid order, for unsorted pages: "this patient's appointments
-- from today" (Appointment?patient=X&date=ge…) and "this patient's
-- observations" (Observation?patient=X) read their page in the default
-- order (rid) and stop after it, with the date test answered by the same
-- index row (sort_hi), instead of reading every match in date order and
-- sorting it in a temporary b-tree (about 25,000 instructions a search
-- for SQLite to set up and tear down, even for one match).  Partial: only
-- references to patients (src/store/sqlite_search.c writes the literal
-- target_type = 'Patient' that lets SQLite use it).  Run by the migrator
-- inside one transaction, like 0001.
-- target_type is listed (last: it is the same in every row) so that the
-- index covers the literal test.
CREATE INDEX ix_reference_patient_rid ON ix_reference (type, param, target_id, rid, sort_hi, seq, target_type)
WHERE target_type = 'Patient';
