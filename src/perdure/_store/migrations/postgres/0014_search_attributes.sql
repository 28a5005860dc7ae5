-- v14: search attributes, the named values Client.list finds runs by.
--
-- A run's attributes are kept whole in runs.search_attributes (a JSON
-- object; NULL: none) and indexed in run_attributes, one row per name, by
-- the text the value matches as (perdure._attributes.attribute_text). The
-- row carries its run's place in the listing order (created_at, id), so a
-- listing filtered by an attribute walks that attribute's rows newest first
-- and reads each run by its id; run_row (runs.id) finds a run's rows when
-- they change. (A name and a value together are at most 2,000 bytes: the
-- primary key's index holds them.)
ALTER TABLE runs ADD COLUMN search_attributes TEXT;
CREATE TABLE run_attributes (
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    run_created DOUBLE PRECISION NOT NULL,
    run_row     BIGINT NOT NULL,
    PRIMARY KEY (name, value, run_created, run_row)
);
CREATE INDEX run_attributes_by_run ON run_attributes (run_row);
