-- v28: range filters on search attributes (perdure.AttributeRange, docs/
-- workflows.md "Search attributes"). Each index row says how its value
-- orders: kind 'n' for an int or a float (number holds it as a float; an
-- int past a float's range as an infinity of its sign), 's' for a string,
-- 'b' for a bool (in no range). Strings compare by code point, as on
-- SQLite, whatever the database's collation: the value column is collated
-- "C" (byte order, which for UTF-8 is code point order), and the primary
-- key rebuilt with it, so a string range walks it. A numeric range walks
-- run_attributes_by_number. The rows written before are typed from their
-- runs' attributes kept whole (runs.search_attributes).
ALTER TABLE run_attributes ADD COLUMN kind TEXT NOT NULL DEFAULT 's',
    ADD COLUMN number DOUBLE PRECISION;
ALTER TABLE run_attributes ALTER COLUMN value TYPE TEXT COLLATE "C";
UPDATE run_attributes AS a SET
    kind = CASE jsonb_typeof(e.value) WHEN 'number' THEN 'n' ELSE 'b' END,
    number = CASE
        WHEN jsonb_typeof(e.value) <> 'number' THEN NULL
        WHEN abs((e.value #>> '{}')::numeric) > 1.7976931348623157e308
            THEN sign((e.value #>> '{}')::numeric)::float8 * 'Infinity'::float8
        ELSE (e.value #>> '{}')::float8
    END
FROM runs AS r, jsonb_each(r.search_attributes::jsonb) AS e
WHERE r.id = a.run_row AND e.key = a.name AND jsonb_typeof(e.value) IN ('number', 'boolean');
CREATE INDEX run_attributes_by_number ON run_attributes (name, number, run_created, run_row)
    WHERE number IS NOT NULL;
