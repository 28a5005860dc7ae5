-- v26: the keyed tasks' index orders each queue's by due time. An idle
-- worker's next due time for a queue with keys is one search of it
-- (sqlwake._first_activity), where MIN(visible_at) read every keyed task of
-- the queue (18 ms for 100,000 backing off); with keys at their limit per
-- key, a read of the next keyed tasks in due order, a thousand at most,
-- from a second ago (sqlwake._first_uncapped), where it read the queue's
-- whole range (48 ms for a backlog of 100,000 behind 1,000 keys at their
-- limit), at each wait of each idle worker. Whether a queue has keyed
-- tasks is still one search of it.
DROP INDEX tasks_keyed;
CREATE INDEX tasks_keyed ON tasks (kind, queue, visible_at) WHERE fairness_key <> '';
