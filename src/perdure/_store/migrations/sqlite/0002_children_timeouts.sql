-- v2: child workflows, continue-as-new, execution timeouts, activity cancellation.

-- A child run names its parent run and the parent's command ref, so its
-- closing can be reported to the parent's inbox.
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_ref INTEGER;
ALTER TABLE runs ADD COLUMN parent_close_policy TEXT;
-- Execution deadline (UNIX time) across continue-as-new; NULL for none.
ALTER TABLE runs ADD COLUMN deadline REAL;
CREATE INDEX runs_by_parent ON runs (parent_run_id, parent_ref);
-- At most one open run per workflow id, whatever races the callers have.
CREATE UNIQUE INDEX runs_one_open_per_workflow_id ON runs (workflow_id) WHERE status = 'running';

-- Set when the workflow cancels an activity whose attempt is running: the
-- attempt learns it at its next heartbeat.
ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
