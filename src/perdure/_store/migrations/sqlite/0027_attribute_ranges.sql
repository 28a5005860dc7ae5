-- v27: range filters on search attributes (perdure.AttributeRange, docs/
-- workflows.md "Search attributes"). Each index row says how its value
-- orders: kind 'n' for an int or a float (number holds it as a float), 's'
-- for a string (value holds it; SQLite's BINARY collation is code point
-- order), 'b' for a bool (in no range). A numeric range walks
-- run_attributes_by_number; a string range the primary key (name, value,
-- ...), passing over the rows of other kinds. The rows written before are
-- typed from their runs' attributes kept whole (runs.search_attributes).
ALTER TABLE run_attributes ADD COLUMN kind TEXT NOT NULL DEFAULT 's';
ALTER TABLE run_attributes ADD COLUMN number REAL;
UPDATE run_attributes SET
    kind = COALESCE((
        SELECT CASE WHEN e.type IN ('integer', 'real') THEN 'n'
                    WHEN e.type IN ('true', 'false') THEN 'b' ELSE 's' END
        FROM runs, json_each(runs.search_attributes) AS e
        WHERE runs.id = run_attributes.run_row AND e.key = run_attributes.name
    ), 's'),
    number = (
        SELECT CASE WHEN e.type IN ('integer', 'real') THEN CAST(e.value AS REAL) END
        FROM runs, json_each(runs.search_attributes) AS e
        WHERE runs.id = run_attributes.run_row AND e.key = run_attributes.name
    );
CREATE INDEX run_attributes_by_number ON run_attributes (name, number, run_created, run_row)
    WHERE number IS NOT NULL;
