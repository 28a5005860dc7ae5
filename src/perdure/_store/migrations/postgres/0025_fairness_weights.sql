-- v25: fairness weights (docs/queues.md "Weights"): a key of a queue with
-- a weight w takes up to w tasks for each turn a key of weight 1 takes
-- (keys not listed weigh 1). A fair claim reads the weight of each key its
-- walk finds (one search of this table's key per key found).
CREATE TABLE queue_weights (
    queue        TEXT NOT NULL,
    fairness_key TEXT NOT NULL,
    weight       INTEGER NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (queue, fairness_key)
);
