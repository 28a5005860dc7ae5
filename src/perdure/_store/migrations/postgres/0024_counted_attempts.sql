-- v24: the attempts a limited queue's claims count, in an index of their
-- own (docs/queues.md "How it works"). A claim of a queue with limits sets
-- limited = 1 on the task rows it leases; setting a queue's limits sets it
-- on the attempts already running there. tasks_limited holds those rows
-- while they are leased, so a claim counts the queue's attempts running
-- (by key, for a limit per key) by reading them only, not the queue's
-- backlog as it did from tasks_due. Inline attempts (never on a limited
-- queue) keep limited = 0 and add nothing to the index.
ALTER TABLE tasks ADD COLUMN limited INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET limited = 1 WHERE kind = 'activity' AND lease_owner IS NOT NULL
    AND queue IN (SELECT queue FROM queue_limits);
CREATE INDEX tasks_limited ON tasks (queue, fairness_key, visible_at)
    WHERE limited = 1 AND lease_owner IS NOT NULL;
