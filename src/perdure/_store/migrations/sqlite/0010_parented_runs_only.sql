-- v10: runs_by_parent holds only runs that have a parent.
--
-- The index serves one question: a run's children (WHERE parent_run_id = ?),
-- open ones by status. A top-level run has no parent, yet it had an entry,
-- written when the run started and rewritten when its status changed at the
-- end: two index writes per run for no reader. An equality on parent_run_id
-- implies it is not null, so both planners still use the partial index.
DROP INDEX runs_by_parent;
CREATE INDEX runs_by_parent ON runs (parent_run_id, status, parent_ref)
    WHERE parent_run_id IS NOT NULL;
