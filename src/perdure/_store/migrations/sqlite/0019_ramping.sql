-- v19: a ramping build (docs/versioning.md, "Ramping a new build"). A
-- build of a queue other than its current one may take a share of the
-- queue's new runs: ramp is that share in percent (0 to 100), NULL for a
-- build that does not ramp. At most one build of a queue ramps; a build
-- made current stops ramping.
ALTER TABLE queue_builds ADD COLUMN ramp REAL;
