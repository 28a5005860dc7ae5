"""An activity's schedule_to_close_timeout passes even when no worker takes
the activity (its queue unserved, its workers gone): the store fires the
deadline as a timer (ref -activity's ref) and fails the activity. It had
been checked only by a worker claiming the task, so with none the workflow
waited for ever, where Temporal's server fails the activity on time."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from e2e_helpers import fast_worker, pending_activity, wait_until

import perdure
from perdure import RetryPolicy, activity, workflow


@activity.defn(schedule_to_close_timeout=timedelta(seconds=0.5))
async def bounded(x: str) -> str:
    return x


@workflow.defn
async def asks_nobody() -> str:
    try:
        await bounded.options(task_queue="nobody-serves-this")("x")
    except perdure.ActivityError as exc:
        assert exc.cause is not None
        return f"{exc.cause.type}: {exc.cause.message}"
    return "completed"


@workflow.defn
async def asks_in_time() -> str:
    done = await bounded("in time")
    await asyncio.sleep(1.0)  # past the deadline: it must not fire into anything
    return done


async def test_the_deadline_passes_with_no_worker_for_the_activity(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [asks_nobody], []):
        handle = await client.start(asks_nobody)
        said = await handle.result(timeout=20)
    assert said == (
        "ActivityTimeoutError: activity 'bounded' exceeded its schedule_to_close_timeout"
        " of 0.5s (no worker took it)"
    )
    history = await handle.history()
    [failed] = [e for e in history if e["type"] == "ActivityFailed"]
    assert failed["attempt"] == 0 and failed["failure"]["non_retryable"] is True
    assert failed["time"] - history[0]["time"] >= 0.5
    assert (await handle.describe()).pending_timers == []


async def test_an_activity_done_in_time_is_left_alone_by_its_deadline(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [asks_in_time], [bounded]):
        handle = await client.start(asks_in_time)
        # The deadline is kept as a timer under the activity's negated ref,
        # which is not one of the run's timers. (The run's own sleep may
        # already be pending if its first turns were quick.)
        timers = (await handle.describe()).pending_timers
        assert all(t.timer_id > 0 for t in timers), timers
        assert await handle.result(timeout=20) == "in time"
    types = [e["type"] for e in await handle.history()]
    assert types.count("ActivityCompleted") == 1 and "ActivityFailed" not in types


async def test_an_attempt_holding_a_lease_is_its_workers_until_the_lease_runs_out(
    tmp_path: Path,
) -> None:
    """At the deadline a leased attempt is left to its worker (which stops it
    then); if that worker is gone, the deadline is looked at again when the
    lease runs out, and the activity fails then."""
    path = tmp_path / "leased.db"
    client = await perdure.Client.connect(f"sqlite:///{path}")
    client.poll_interval = 0.02
    try:
        async with fast_worker(client, [asks_nobody], []):
            handle = await client.start(asks_nobody)
            lease_until = time.time() + 1.2  # past the 0.5 s deadline
            with sqlite3.connect(path) as db:  # a worker took it, then died
                taken = db.execute(
                    "UPDATE tasks SET lease_token = 'gone', lease_owner = 'dead-worker',"
                    " attempt = 1, visible_at = ? WHERE kind = 'activity'",
                    (lease_until,),
                ).rowcount
            assert taken == 1
            said = await handle.result(timeout=20)
            ended = time.time()
    finally:
        await client.close()
    assert said.endswith("(its attempt 1 was lost: its worker stopped or lost its lease)")
    assert ended >= lease_until - 0.05  # not at the deadline: when the lease ran out


@activity.defn
async def unbounded(x: str) -> str:
    return x


@workflow.defn
async def asks_a_typo() -> str:
    return await unbounded.options(task_queue="paymnets")("x")


async def test_describe_says_which_queue_an_untaken_activity_waits_on(
    client: perdure.Client,
) -> None:
    """An activity no worker takes (a queue's name misspelt) had shown only
    "scheduled, not started": now its queue, and that nobody takes it."""
    async with fast_worker(client, [asks_a_typo], [unbounded]):
        handle = await client.start(asks_a_typo)

        async def untaken() -> bool:
            pending = (await handle.describe()).pending_activities
            return bool(pending) and pending[0].waiting_for_worker

        await wait_until(untaken, 10, "the activity to be reported as untaken")
        [pending] = (await handle.describe()).pending_activities
        assert (pending.task_queue, pending.attempt, pending.running) == ("paymnets", 0, False)
        async with fast_worker(client, [], [unbounded], task_queue="paymnets"):
            assert await handle.result(timeout=20) == "x"


# The first attempt must fail within 2.5 s of the schedule (or its retry
# could not start in time, and its own error would end the activity), and
# its worker must stop within 2.5 s of that (before the retry is due).
@activity.defn(
    retry=RetryPolicy(initial_interval=timedelta(seconds=2.5)),
    schedule_to_close_timeout=timedelta(seconds=5),
)
async def flaky_service() -> str:
    raise ConnectionError("still down")


@workflow.defn
async def retries_a_service() -> str:
    try:
        return await flaky_service.options(task_queue="flaky")()
    except perdure.ActivityError as exc:
        return f"{exc.cause.type}: {exc.cause.message}"


async def test_a_deadline_between_retries_names_the_failure_being_retried(
    client: perdure.Client,
) -> None:
    """The first attempt failed and was to be retried; its worker went away
    and the retry was never taken: the deadline's timeout says so, and says
    how the last attempt failed, which is why the activity was retrying
    (Temporal's timeout carries the last failure as its cause)."""
    async with fast_worker(client, [retries_a_service], []):
        handle = await client.start(retries_a_service)
        async with fast_worker(client, [], [flaky_service], task_queue="flaky"):
            await pending_activity(
                handle, lambda a: a.last_failure is not None, "the first attempt's failure"
            )
        said = await handle.result(timeout=20)
    assert said == (
        "ActivityTimeoutError: activity 'flaky_service' exceeded its schedule_to_close_timeout"
        " of 5s (no worker took its attempt 2 in time; attempt 1 failed: ConnectionError:"
        " still down)"
    )
    [failed] = [e for e in await handle.history() if e["type"] == "ActivityFailed"]
    assert [a["error"]["type"] for a in failed["attempts"]] == ["ConnectionError"]


async def test_an_attempt_claimed_past_the_deadline_is_not_run(tmp_path: Path) -> None:
    """A worker that claims an attempt after the activity's deadline (its
    timer not fired yet: here it is gone) fails the activity without
    running it, and says why."""
    path = tmp_path / "late.db"
    client = await perdure.Client.connect(f"sqlite:///{path}")
    client.poll_interval = 0.02
    try:
        async with fast_worker(client, [asks_nobody], []):
            handle = await client.start(asks_nobody)
            await pending_activity(handle, lambda a: True, "the activity")
            with sqlite3.connect(path) as db:
                dropped = db.execute("DELETE FROM timers WHERE ref < 0").rowcount
            assert dropped == 1
            await asyncio.sleep(0.6)  # past the 0.5 s deadline, which nobody fires now
            async with fast_worker(client, [], [bounded], task_queue="nobody-serves-this"):
                said = await handle.result(timeout=20)
    finally:
        await client.close()
    assert said == (
        "ActivityTimeoutError: activity 'bounded' exceeded its schedule_to_close_timeout"
        " of 0.5s (its attempt 1 did not start in time)"
    )
