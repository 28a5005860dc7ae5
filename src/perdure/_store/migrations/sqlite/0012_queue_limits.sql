-- v12: limits on a task queue's activity attempts, shared by every worker.
--
-- queue_limits holds a queue's limits (a NULL column: no such limit); a
-- claim of the queue's activity tasks reads its row (on PostgreSQL, locks
-- it: two workers' claims of one limited queue take turns) and takes at
-- most the room the limits leave. The attempts running are the queue's
-- leased task rows; the starts of the rate limit's window are kept in
-- queue_starts, one row per attempt started, pruned by the claims (so it
-- holds at most about max_starts rows per queue). A queue without a row
-- here costs its claims one read of the primary key.
CREATE TABLE queue_limits (
    queue       TEXT PRIMARY KEY,
    max_running INTEGER,
    max_starts  INTEGER,
    per         REAL,
    updated_at  REAL NOT NULL
);
CREATE TABLE queue_starts (
    queue      TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE INDEX queue_starts_by_time ON queue_starts (queue, started_at);
