-- v21: debounced starts (Client.debounce, docs/workflows.md "Debouncing").
-- A run started by a debounce call holds its key; while its first turn has
-- not been taken, a later call with the same key and workflow type pushes
-- its start back and gives it that call's arguments instead of starting
-- another run. NULL for every other run. The index holds the open debounced
-- runs only: a key's ended runs, however many, are never read by a call.
ALTER TABLE runs ADD COLUMN debounce_key TEXT;
CREATE INDEX runs_by_debounce_key ON runs (debounce_key, workflow_type, id)
    WHERE debounce_key IS NOT NULL AND status = 'running';
