-- v14: streams, the values a run appends for clients to read as they come
-- (workflow.write_stream, activity.write_stream; see perdure._store.sqlstreams).
--
-- A stream's values are its rows in streams, numbered from 0 by position
-- under (run, key); its head in stream_heads holds how many there are and
-- whether the workflow closed it. source: NULL for the workflow's own
-- writes, else the activity attempt that wrote the value.
CREATE TABLE streams (
    run_id     TEXT NOT NULL,
    key        TEXT NOT NULL,
    position   INTEGER NOT NULL,
    data       TEXT NOT NULL,
    source     TEXT,
    written_at REAL NOT NULL,
    PRIMARY KEY (run_id, key, position)
) WITHOUT ROWID;
CREATE TABLE stream_heads (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    length INTEGER NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
