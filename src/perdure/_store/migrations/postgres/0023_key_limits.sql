-- v23: a limit per fairness key (docs/queues.md "A limit per key"): at
-- most max_running_per_key attempts of one key of the queue running at once
-- (NULL: no such limit). A claim of a limited queue counts its attempts
-- running (of a key, with this limit) first: tasks_running holds the leased
-- activity tasks only, so a count reads them, not the queue's backlog
-- (tasks_due's range of the queue: 20,000 entries for a backlog of 20,000).
-- Neither its columns nor its condition's change when a worker's next
-- activity takes over the finished one's row (sqlturn.REUSE_ACTIVITY): an
-- inline step's chain writes it once, when its row is inserted.
ALTER TABLE queue_limits ADD COLUMN max_running_per_key INTEGER;
CREATE INDEX tasks_running ON tasks (queue, fairness_key)
    WHERE kind = 'activity' AND lease_owner IS NOT NULL;
