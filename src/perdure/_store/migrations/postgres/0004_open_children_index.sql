-- v4: a run's open children, found by (parent_run_id, status).
--
-- Closing a run looks up its open children (WHERE parent_run_id = ? AND
-- status = 'running'). With an index on parent_run_id alone, the planner
-- preferred runs_by_status and walked every running run: with 100,000
-- sleeping workflows, each close cost milliseconds. Two equality columns in
-- one index make the choice obvious; parent_ref keeps children in order.
DROP INDEX runs_by_parent;
CREATE INDEX runs_by_parent ON runs (parent_run_id, status, parent_ref);
