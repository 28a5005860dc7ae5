-- v5: fences the server enforces.
--
-- A write transaction's fences (the run's version, the task's lease token)
-- must stop the transaction before COMMIT when they find no row. The client
-- used to check their row counts between the statements and COMMIT, a round
-- trip of its own. Wrapped in perdure_fence(count(*)), a fence raises on the
-- server instead (SQLSTATE PDF01), which aborts the transaction there: the
-- statements and COMMIT travel together, and a tripped fence rolls back.
CREATE OR REPLACE FUNCTION perdure_fence(matched bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF matched < 1 THEN
        RAISE EXCEPTION 'perdure fence: the run or task moved on (fenced out)'
            USING ERRCODE = 'PDF01';
    END IF;
    RETURN matched;
END
$$;
