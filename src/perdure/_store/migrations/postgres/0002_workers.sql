-- v2: the worker registry (SQLite's 0003_workers.sql).

-- One row per worker process that announced itself. A worker registers when it
-- starts, refreshes heartbeat_at with its lease renewals, and deletes its row
-- when it stops gracefully; a killed worker's row simply stops being refreshed.
-- `workflows` and `activities` are JSON lists of the names it serves.
CREATE TABLE workers (
    identity      TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    task_queue    TEXT NOT NULL,
    workflows     TEXT NOT NULL,
    activities    TEXT NOT NULL,
    lease_timeout DOUBLE PRECISION NOT NULL,
    started_at    DOUBLE PRECISION NOT NULL,
    heartbeat_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX workers_by_heartbeat ON workers (heartbeat_at);
