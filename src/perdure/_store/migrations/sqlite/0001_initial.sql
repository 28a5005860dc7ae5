-- perdure schema v1 (SQLite). Times are UNIX epoch seconds (REAL).

-- One row per workflow run. `version` is the fencing counter: every turn
-- commit and every terminate bumps it, guarded by the version it read.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL UNIQUE,
    workflow_id   TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    task_queue    TEXT NOT NULL,
    status        TEXT NOT NULL,
    input         TEXT NOT NULL,
    result        TEXT,
    failure       TEXT,
    state         TEXT NOT NULL DEFAULT '{}',
    waiting       TEXT NOT NULL DEFAULT '{}',
    last_error    TEXT,
    version       INTEGER NOT NULL DEFAULT 0,
    last_seq      INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    closed_at     REAL
);
CREATE INDEX runs_by_workflow_id ON runs (workflow_id, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_type ON runs (workflow_type, id);

-- The history: append-only, written only by the holder of the run's
-- workflow-task lease (or by terminate, which bumps the run's version).
CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    type   TEXT NOT NULL,
    time   REAL NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Everything that reaches a run from outside (start, signals, cancel requests,
-- activity results, fired timers) waits here until a turn moves it into the history.
CREATE TABLE inbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX inbox_by_run ON inbox (run_id, id);

-- Workflow tasks (at most one per run) and activity tasks (one per scheduled
-- activity). A claimed task's visible_at is its lease expiry: claiming is
-- "visible_at <= now", so an expired lease is simply claimable again.
CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    queue        TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    ref          INTEGER,
    visible_at   REAL NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_token  TEXT,
    payload      TEXT,
    last_failure TEXT,
    heartbeat    TEXT,
    created_at   REAL NOT NULL
);
CREATE UNIQUE INDEX tasks_one_workflow_task ON tasks (run_id) WHERE kind = 'workflow';
CREATE UNIQUE INDEX tasks_one_per_activity ON tasks (run_id, ref) WHERE kind = 'activity';
CREATE INDEX tasks_due ON tasks (kind, queue, visible_at);

CREATE TABLE timers (
    run_id  TEXT NOT NULL,
    ref     INTEGER NOT NULL,
    fire_at REAL NOT NULL,
    PRIMARY KEY (run_id, ref)
) WITHOUT ROWID;
CREATE INDEX timers_due ON timers (fire_at);
