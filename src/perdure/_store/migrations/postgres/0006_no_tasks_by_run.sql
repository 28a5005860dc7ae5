-- v6: no index on tasks (run_id) alone.
--
-- Its one user, the delete of an ending run's tasks, now names the task's
-- kind and goes through the partial indexes tasks_one_workflow_task and
-- tasks_one_per_activity, as every other lookup of a run's tasks does (the
-- SQLite schema never had this index). Dropping it saves an index entry
-- written and deleted for every task: two per workflow step.
DROP INDEX IF EXISTS tasks_by_run;
