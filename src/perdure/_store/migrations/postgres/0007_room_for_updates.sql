-- v7: room on each page of runs and tasks for their rows' next versions.
--
-- PostgreSQL writes an UPDATE as a new version of the row. When the new
-- version fits on the old one's page and no indexed column changed, it is
-- heap-only (HOT): no index entry is written. A run's row is updated at every
-- step without touching its eight indexes, but with full pages (the default
-- fillfactor of 100) four updates in ten left their page and wrote an entry in
-- each of them. A task row's take-over changes indexed columns, so it is never
-- HOT; with room on its page its new version stays beside the old one and
-- the table stays small. Measured by benchmarks/pgwal.py (3,000 concurrent
-- workflows of 10 steps): 59% -> 82% of the runs' updates HOT (nine in ten of
-- those that leave the run open; a close changes the indexed status), index
-- entries per step 9.2 -> 7.5, WAL per step 2,832 -> 2,556 bytes, the tasks
-- table 11 MB -> 5 MB.
-- Only pages written from now on keep the room; existing pages fill as before.
ALTER TABLE runs SET (fillfactor = 70);
ALTER TABLE tasks SET (fillfactor = 70);
