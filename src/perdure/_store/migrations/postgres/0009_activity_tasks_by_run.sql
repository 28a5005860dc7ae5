-- v9: a run's activity tasks are found by run_id alone; ref is in no index.
--
-- An inline step's next activity takes over the finished one's task row,
-- which then names another activity (ref) and, until now, got a new lease
-- expiry (visible_at). Both were indexed (the unique tasks_one_per_activity
-- on run_id and ref; tasks_due), so each take-over rewrote two index entries:
-- two of a sequential step's six WAL pages on SQLite, and on PostgreSQL an
-- update that could never be heap-only. The take-over now keeps the expiry
-- while most of a lease is left (docs/decisions.md, session 35), and a run's
-- activity tasks are looked up by run_id, then ref among its few rows.
DROP INDEX IF EXISTS tasks_one_per_activity;
CREATE INDEX tasks_activities_by_run ON tasks (run_id) WHERE kind = 'activity';
