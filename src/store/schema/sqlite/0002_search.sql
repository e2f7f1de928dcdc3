-- 0002_search.sql - indexes the search planner (src/store/sqlite_search.c)
-- relies on.  Run by the migrator inside one transaction, like 0001.
--
-- resource (type, deleted): the current resources of a type in rid order,
-- so a search with no selective condition pages by the default order
-- (rid) without sorting and stops after one page.
CREATE INDEX resource_type_live ON resource (type, deleted);

-- resource (type, deleted, last_updated): _lastUpdated conditions and
-- _sort=_lastUpdated (ties by rid, which every index carries last).
CREATE INDEX resource_type_updated ON resource (type, deleted, last_updated);

-- ix_date by its upper end: gt, ge and eb compare a row's hi, which the
-- (type, param, lo, hi) index cannot seek.
CREATE INDEX ix_date_hi ON ix_date (type, param, hi, lo);
