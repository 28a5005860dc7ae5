-- perdure schema v1 (PostgreSQL): the SQLite schema after its migrations 0001
-- and 0002, in PostgreSQL types. Times are UNIX epoch seconds (DOUBLE PRECISION,
-- like SQLite's REAL); JSON documents are TEXT, written and read by perdure only.

-- One row per workflow run. `version` is the fencing counter: every turn
-- commit and every terminate bumps it, guarded by the version it read. The row
-- is also the run's lock: every writer that touches the run's inbox or tasks
-- locks it first (SELECT ... FOR UPDATE), see _store/sqlrows.py.
CREATE TABLE runs (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id              TEXT NOT NULL UNIQUE,
    workflow_id         TEXT NOT NULL,
    workflow_type       TEXT NOT NULL,
    task_queue          TEXT NOT NULL,
    status              TEXT NOT NULL,
    input               TEXT NOT NULL,
    result              TEXT,
    failure             TEXT,
    state               TEXT NOT NULL DEFAULT '{}',
    waiting             TEXT NOT NULL DEFAULT '{}',
    last_error          TEXT,
    version             BIGINT NOT NULL DEFAULT 0,
    last_seq            BIGINT NOT NULL DEFAULT 0,
    created_at          DOUBLE PRECISION NOT NULL,
    updated_at          DOUBLE PRECISION NOT NULL,
    closed_at           DOUBLE PRECISION,
    parent_run_id       TEXT,
    parent_ref          INTEGER,
    parent_close_policy TEXT,
    deadline            DOUBLE PRECISION
);
CREATE INDEX runs_by_workflow_id ON runs (workflow_id, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_type ON runs (workflow_type, id);
CREATE INDEX runs_by_parent ON runs (parent_run_id, parent_ref);
-- At most one open run per workflow id, whatever races the callers have.
CREATE UNIQUE INDEX runs_one_open_per_workflow_id ON runs (workflow_id) WHERE status = 'running';

-- The history: append-only, written only by the holder of the run's
-- workflow-task lease (or by terminate, which bumps the run's version).
CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    type   TEXT NOT NULL,
    time   DOUBLE PRECISION NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Everything that reaches a run from outside waits here until a turn moves it
-- into the history; the identity is the acceptance order.
CREATE TABLE inbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX inbox_by_run ON inbox (run_id, id);

-- Workflow tasks (at most one per run) and activity tasks (one per scheduled
-- activity). A claimed task's visible_at is its lease expiry: claiming is
-- "visible_at <= now ... FOR UPDATE SKIP LOCKED".
CREATE TABLE tasks (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT NOT NULL,
    queue            TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    ref              INTEGER,
    visible_at       DOUBLE PRECISION NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_token      TEXT,
    payload          TEXT,
    last_failure     TEXT,
    heartbeat        TEXT,
    created_at       DOUBLE PRECISION NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX tasks_one_workflow_task ON tasks (run_id) WHERE kind = 'workflow';
CREATE UNIQUE INDEX tasks_one_per_activity ON tasks (run_id, ref) WHERE kind = 'activity';
CREATE INDEX tasks_due ON tasks (kind, queue, visible_at);
-- Closing a run deletes all of its tasks: find them without a scan.
CREATE INDEX tasks_by_run ON tasks (run_id);

CREATE TABLE timers (
    run_id  TEXT NOT NULL,
    ref     INTEGER NOT NULL,
    fire_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, ref)
);
CREATE INDEX timers_due ON timers (fire_at);

-- tasks, inbox and timers are queues: rows are inserted and deleted all day.
-- Vacuum them after 1% of their rows changed instead of the default 20%, so
-- dead rows do not pile up in front of the "next due" index scans.
ALTER TABLE tasks SET (autovacuum_vacuum_scale_factor = 0.01);
ALTER TABLE inbox SET (autovacuum_vacuum_scale_factor = 0.01);
ALTER TABLE timers SET (autovacuum_vacuum_scale_factor = 0.01);
