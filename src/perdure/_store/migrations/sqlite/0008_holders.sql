-- v8: a run, and each timer it starts, name the worker that holds the run's
-- instance.
--
-- A worker keeps the instances of the runs it advanced in its cache, and
-- takes in itself the timers they wait for (inline timers). With several
-- worker processes, another process's claim of such a run's workflow task
-- (a signal came, a child ended) replayed the history the holder had in
-- memory, and another process's firing took the holder's timers as soon as
-- they were due, fencing the holder's turn in vain. Each turn now names its
-- worker in runs.holder and in the rows of the timers it starts; other
-- workers' claims and firings leave a held run's task and timers to their
-- holder for a short grace (base.HELD_GRACE; docs/decisions.md, session 32).
-- Both columns are nullable: rows written before, and by older workers, are
-- anyone's at once.
ALTER TABLE runs ADD COLUMN holder TEXT;
ALTER TABLE timers ADD COLUMN holder TEXT;
