-- v15: priorities (perdure._history.priorities): a run's, from 1 (first)
-- to 5 (last), and each task's (a workflow task has its run's; an activity
-- task its own, its run's unless given). A claim takes a queue's due tasks
-- by priority, then by due time: tasks_due now orders by both, and a claim
-- reads one range of it per priority (sqlstore's _claim).
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 3;
ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 3;
DROP INDEX tasks_due;
CREATE INDEX tasks_due ON tasks (kind, queue, priority, visible_at);
