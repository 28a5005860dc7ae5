-- v18: worker builds (docs/versioning.md, "Pinning runs to a build").
-- A run of a pinned workflow type that a worker with a build id ran is
-- pinned to that build: build_id names it, and the run's workflow tasks
-- go to the queue "<task_queue>\x1f<build_id>" (records.turn_queue), which
-- only that build's workers claim. NULL: not pinned (its tasks are in
-- task_queue, for any worker of the queue's current build).
ALTER TABLE runs ADD COLUMN build_id TEXT;
CREATE INDEX runs_by_build ON runs (build_id, status) WHERE build_id IS NOT NULL;
-- The build a worker registered with (NULL: none).
ALTER TABLE workers ADD COLUMN build_id TEXT;
-- The builds each queue's workers have had. The current build of a queue
-- (the one whose workers take its new runs) is the one promoted last: a
-- build is promoted when its first worker registers, or by
-- Client.set_current_build.
CREATE TABLE queue_builds (
    queue       TEXT NOT NULL,
    build_id    TEXT NOT NULL,
    promoted_at REAL NOT NULL,
    PRIMARY KEY (queue, build_id)
) WITHOUT ROWID;
