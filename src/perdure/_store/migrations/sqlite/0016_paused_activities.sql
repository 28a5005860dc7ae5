-- v16: an operator may pause an activity (AsyncActivityHandle.pause, by
-- id): no attempt of it starts until it is unpaused. paused is 1 while it
-- is; a paused activity's task that no attempt holds is due at NEVER_DUE
-- (the year 3000), so claims never reach it and the due index needs no
-- other column. An attempt running when it was paused runs on; if it does
-- not complete, its task is parked so (sqlstore's retry_activity and
-- hand_back, and a claim that finds its lease run out: sqlleases.claimed).
ALTER TABLE tasks ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
