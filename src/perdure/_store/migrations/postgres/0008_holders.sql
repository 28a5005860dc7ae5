-- v8: a run, and each timer it starts, name the worker that holds the run's
-- instance (see the SQLite migration of the same number: other workers'
-- claims and firings leave a held run's workflow task and timers to their
-- holder for a short grace, base.HELD_GRACE). Nullable columns without a
-- default: adding them rewrites no row.
ALTER TABLE runs ADD COLUMN holder text;
ALTER TABLE timers ADD COLUMN holder text;
