-- v22: fairness keys (docs/queues.md "Fairness"). A run's key ('' for
-- none), and each task's (a workflow task has its run's; an activity task
-- its own, its run's unless given). Within a priority, a claim serves the
-- keys with due tasks in turn: tasks_due orders a priority's tasks by key,
-- then by due time, so a key's due tasks are one range and the keys of a
-- queue are found one index search each (sqlfair). The partial index holds
-- the keyed tasks only: whether a queue has any is one search, and a queue
-- without keys adds nothing to it.
ALTER TABLE runs ADD COLUMN fairness_key TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN fairness_key TEXT NOT NULL DEFAULT '';
DROP INDEX tasks_due;
CREATE INDEX tasks_due ON tasks (kind, queue, priority, fairness_key, visible_at);
CREATE INDEX tasks_keyed ON tasks (kind, queue) WHERE fairness_key <> '';
