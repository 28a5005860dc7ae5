-- v6: a feed of the runs that ended, for result waiters in other processes.
--
-- A client whose result() waiters wait on runs that other processes end
-- learns from SQLite only that something was committed (PRAGMA
-- data_version). It then asked about every run it waited on: with 5,000
-- waiters, 5,000 index probes up to 20 times a second, about a quarter of a
-- core. Each end of a run now appends the run's id here, and the client asks
-- only for the ends after the last one it saw. A trigger, so that every way
-- a run ends (its workflow's last turn, terminate, an execution timeout, a
-- replacement) is covered by construction. The feed keeps the latest 10,000
-- ends (ids never go back: only the oldest rows are deleted); a client that
-- fell further behind asks about every run it waits on, as before.
CREATE TABLE ended_runs (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL
);
CREATE TRIGGER runs_ended AFTER UPDATE OF status ON runs
WHEN OLD.status = 'running' AND NEW.status <> 'running'
BEGIN
    INSERT INTO ended_runs (run_id) VALUES (NEW.run_id);
    DELETE FROM ended_runs WHERE id <= last_insert_rowid() - 10000;
END;
