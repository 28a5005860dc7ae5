-- v4: per-attempt activity records, and indexes for the store-side list filters.

-- `attempts`: a JSON list of the activity's finished attempts, oldest first
-- (perdure._history.attempt_record: attempt, started_at, ended_at, error); NULL
-- while there are none. A retry appends the attempt that failed; a claim that
-- takes over an expired lease appends the attempt that was lost. The final
-- ActivityCompleted/ActivityFailed event carries the list plus the last attempt.
-- `attempt_started_at`: when the attempt holding the lease was claimed.
ALTER TABLE tasks ADD COLUMN attempts TEXT;
ALTER TABLE tasks ADD COLUMN attempt_started_at REAL;

-- Listing is newest first by (created_at, id), the keyset the store pages
-- by; each filter by status or type walks its own index in that order.
DROP INDEX runs_by_status;
DROP INDEX runs_by_type;
CREATE INDEX runs_newest ON runs (created_at, id);
CREATE INDEX runs_by_status ON runs (status, created_at, id);
CREATE INDEX runs_by_type ON runs (workflow_type, created_at, id);
