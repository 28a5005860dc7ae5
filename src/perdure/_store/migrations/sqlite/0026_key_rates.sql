-- v26: a rate limit per fairness key (docs/queues.md "A rate limit per key"): at
-- most max_starts_per_key attempts of one key of the queue started in any
-- window of per (NULL: no such limit). Each start in queue_starts now names
-- its key ('' for the unkeyed, and for the starts recorded before), so that
-- one row serves the queue's rate limit and its key's; a claim counts the
-- window's starts by key (sqlqueues.gate) from the index by key, which
-- holds the columns it reads (SQLite reads no row) and finds a key's latest
-- starts in one search.
ALTER TABLE queue_limits ADD COLUMN max_starts_per_key INTEGER;
ALTER TABLE queue_starts ADD COLUMN fairness_key TEXT NOT NULL DEFAULT '';
CREATE INDEX queue_starts_by_key ON queue_starts (queue, fairness_key, started_at);
