-- v23: a limit per fairness key (docs/queues.md "A limit per key"): at
-- most max_running_per_key attempts of one key of the queue running at once
-- (NULL: no such limit). A claim counts each key's running attempts with
-- the queue's (sqlqueues.gate), from tasks_due, as it counts the queue's.
ALTER TABLE queue_limits ADD COLUMN max_running_per_key INTEGER;
