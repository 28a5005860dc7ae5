-- v18: an activity reset while an attempt holds its task (Store.reset_activity)
-- has reset_requested = 1 until the claim after that attempt takes it as
-- attempt 1 (sqlleases.claimed), as its options' reset_requested says. The
-- attempt's heartbeat reads this column, not the options in the payload,
-- to stop the attempt: a payload may be megabytes of arguments, and a
-- heartbeat is written every second.
ALTER TABLE tasks ADD COLUMN reset_requested INTEGER NOT NULL DEFAULT 0;
