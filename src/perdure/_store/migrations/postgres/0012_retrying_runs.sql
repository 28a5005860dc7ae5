-- v12: runs_retrying lists the runs whose latest workflow task failed.
--
-- `perdure list --retrying` (the UI's "Retrying only", an operator's first
-- look when runs stall) asks for them newest first. With no index of their
-- own, that walked every run by age to find the few with last_error set: on
-- a database of millions of runs and none retrying, all of them. A partial
-- index holds only those runs, so it costs a write only when a turn fails
-- or a failed one recovers.
CREATE INDEX runs_retrying ON runs (created_at, id) WHERE last_error IS NOT NULL;
