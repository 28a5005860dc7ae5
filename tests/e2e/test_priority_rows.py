"""Every task row carries the right priority, whichever path wrote it.

A trigger (installed in the test's database, on either backend) checks
each task row written or rewritten: a workflow task must have its run's
priority, an activity task its own (recorded in its options) or else its
run's. The workload takes every path that queues work for a run: a start
queued or computed at once, inline steps and their take-overs, an activity
of its own priority, one on a queue no worker runs inline, a retry, a
timer, signals from a client and from a workflow, an update, children
(inherited and given a priority; one cancelled), signal-with-start,
continue-as-new and a reset."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import timedelta
from typing import Any

import psycopg
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow
from perdure.retry import RetryPolicy

failed_once: set[str] = set()

CHECKS = "CREATE TABLE priority_checks (kind TEXT, run_id TEXT, got INTEGER, want INTEGER);"
SQLITE_CHECK = """
    INSERT INTO priority_checks SELECT NEW.kind, NEW.run_id, NEW.priority,
        CASE WHEN NEW.kind = 'workflow'
        THEN (SELECT priority FROM runs WHERE run_id = NEW.run_id)
        ELSE COALESCE(json_extract(NEW.payload, '$.options.priority'),
                      (SELECT priority FROM runs WHERE run_id = NEW.run_id)) END;
"""
SQLITE_TRIGGERS = f"""{CHECKS}
CREATE TRIGGER check_insert AFTER INSERT ON tasks BEGIN {SQLITE_CHECK} END;
CREATE TRIGGER check_update AFTER UPDATE OF priority, payload ON tasks BEGIN {SQLITE_CHECK} END;
"""
PG_TRIGGERS = f"""{CHECKS}
CREATE FUNCTION check_priority() RETURNS trigger AS $$
DECLARE want INTEGER;
BEGIN
    IF NEW.kind = 'activity' THEN
        want := (NEW.payload::jsonb -> 'options' ->> 'priority')::integer;
    END IF;
    IF want IS NULL THEN
        SELECT priority INTO want FROM runs WHERE run_id = NEW.run_id;
    END IF;
    INSERT INTO priority_checks VALUES (NEW.kind, NEW.run_id, NEW.priority, want);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER check_insert AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION check_priority();
CREATE TRIGGER check_update AFTER UPDATE OF priority, payload ON tasks
    FOR EACH ROW EXECUTE FUNCTION check_priority();
"""


def install_triggers(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            conn.executescript(SQLITE_TRIGGERS)
    else:
        with psycopg.connect(db_url, autocommit=True) as pg:
            pg.execute(PG_TRIGGERS)  # type: ignore[arg-type]


def checks(db_url: str) -> list[tuple[Any, ...]]:
    """What the triggers saw: (kind, run, the row's priority, the right one)."""
    sql = "SELECT kind, run_id, got, want FROM priority_checks"
    if db_url.startswith("sqlite"):
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(db_url) as pg:
        return pg.execute(sql).fetchall()


@activity.defn
async def step(tag: str) -> str:
    return tag


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10)))
async def flaky(tag: str) -> str:
    if tag not in failed_once:
        failed_once.add(tag)
        raise RuntimeError("once")
    return tag


@workflow.defn
async def child(tag: str) -> str:
    return await step(tag)


@workflow.defn
async def sleeper() -> str:
    await workflow.wait_signal("never")
    return "never"


@workflow.defn
async def receiver() -> Any:
    return await workflow.wait_signal("hello")


@workflow.defn
async def workload(rounds: int) -> str:
    await step("a")
    await step.options(priority=1)("own")  # (no take-over: another priority)
    await step("b")
    await step.options(task_queue="elsewhere")("far")
    await flaky(workflow.info().run_id)
    await workflow.sleep(timedelta(milliseconds=20))
    await workflow.wait_signal("poke")
    request = await workflow.wait_update("ask")
    request.reply("ok")
    await workflow.execute_child(child, "inherited")
    await workflow.execute_child(child, "given", priority=4)
    doomed = await workflow.start_child(sleeper)
    if rounds > 0:  # (the receiver ends with its first signal)
        await workflow.signal_workflow("receiver", "hello", "hi")
    task = asyncio.ensure_future(doomed.result())
    await workflow.sleep(timedelta(milliseconds=10))
    task.cancel()
    if rounds > 0:
        workflow.continue_as_new(rounds - 1)
    return "done"


async def test_every_task_row_has_its_priority(client: perdure.Client, db_url: str) -> None:
    failed_once.clear()
    install_triggers(db_url)
    workflows = [workload, child, sleeper, receiver]
    async with (
        fast_worker(client, workflows, [step, flaky]),
        fast_worker(client, [], [step], task_queue="elsewhere"),
    ):
        other = await client.start(receiver, id="receiver", priority=5)
        handle = await client.start(workload, 1, id="load", priority=2)
        # Round 1: its "poke" by signal-with-start (the run is open: a signal).
        await _until_waiting(handle, "poke")
        await client.signal_with_start(workload, 0, signal="poke", id="load", priority=2)
        await _until_updatable(handle)
        # A change of priority (2 -> 3 -> 2), with the run's update in flight.
        await handle.set_priority(3)
        asked = asyncio.ensure_future(handle.update("ask", None))
        await handle.set_priority(2)
        assert await asked == "ok"
        # Round 2, the run it continued as: a plain signal.
        current = client.get_handle("load")
        await _until_waiting(current, "poke")
        await current.signal("poke")
        await _until_updatable(current)
        assert await current.update("ask", None) == "ok"
        assert await current.result(timeout=30) == "done"
        assert await other.result(timeout=10) == "hi"
        # A new run by signal-with-start, and a reset of the finished chain.
        fresh = await client.signal_with_start(
            receiver, signal="hello", signal_payload="new", id="receiver-2", priority=4
        )
        assert await fresh.result(timeout=10) == "new"
        again = await current.reset()
        assert (await again.describe()).priority == 2
    found = checks(db_url)
    assert [row for row in found if row[2] != row[3]] == []
    # The paths were taken: each kind and priority seen.
    seen = {(kind, got) for kind, _, got, _ in found}
    want = {("workflow", p) for p in (2, 4, 5)} | {("activity", p) for p in (1, 2, 4)}
    assert want <= seen, want - seen
    assert (await handle.describe()).priority == 2


async def _until_waiting(handle: perdure.WorkflowHandle, name: str) -> None:
    for _ in range(1500):
        if name in (await handle.describe()).waiting_signals:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the run never waited for {name!r}")


async def _until_updatable(handle: perdure.WorkflowHandle) -> None:
    for _ in range(1500):
        if "ask" in (await handle.describe()).waiting_updates:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the run never waited for the update")
