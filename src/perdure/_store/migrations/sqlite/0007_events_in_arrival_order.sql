-- v7: the history stored in the order it is written, found by run through an index.
--
-- Until v6 the events table was keyed by (run_id, seq) WITHOUT ROWID: the
-- rows of one run lay together. But runs advance side by side, so each
-- turn of a group commit landed on its own run's page: a concurrent step
-- wrote 1.91 pages to the WAL, 1.79 of them the event table's, for about
-- 900 bytes of events; and two worker processes, whose runs share those
-- pages, each wrote as much as one process doing all the work. Rows now go
-- at the end of the table, in the order they are written (a rowid), and an
-- index on (run_id, seq) finds a run's history: 0.84 pages per step (0.40
-- of the table, 0.32 of the index), 1.10 times the steps per second at the
-- median of eight timed pairs in one process, 1.08-1.23 in two
-- (docs/decisions.md, session 17). PostgreSQL's events table already works
-- this way (a heap and its primary key).
--
-- The existing rows are copied run by run, so that each old history stays
-- together. The copy takes time in proportion to the history kept (10 s for
-- a million events of 450 MB on the benchmark machine), under the migration
-- lock; the old table's pages stay in the file as free pages, which later
-- writes reuse (VACUUM gives them back to the file system).
CREATE TABLE events_v7 (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    type   TEXT NOT NULL,
    time   REAL NOT NULL,
    data   TEXT NOT NULL
);
INSERT INTO events_v7 (run_id, seq, type, time, data)
    SELECT run_id, seq, type, time, data FROM events ORDER BY run_id, seq;
DROP TABLE events;
ALTER TABLE events_v7 RENAME TO events;
CREATE UNIQUE INDEX events_by_run ON events (run_id, seq);
