-- v3: the worker registry.

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
    lease_timeout REAL NOT NULL,
    started_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX workers_by_heartbeat ON workers (heartbeat_at);
