"""An operator settles an activity by hand, by its workflow id and activity
id (``client.get_async_activity_handle(workflow_id=, activity_id=)``, as
Temporal's by-id handle and ``temporal activity complete|fail``): whatever
the activity waits for (its next attempt after a failure, a worker that
never comes, its running attempt, a completion by token), ``complete``
gives the workflow a result and ``fail`` an ActivityError now, with no
retry. An attempt that was running finds its outcome refused, and the run
sees one outcome. ``heartbeat`` and ``report_cancellation`` by id act on an
attempt awaiting completion only. Names that name nothing, a closed run or
a second end raise AsyncActivityNotFoundError; malformed names raise where
they are given. Both backends.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import ActivityError, ApplicationError, RetryPolicy, activity, workflow

calls: Counter[str] = Counter()
returned: Counter[str] = Counter()
gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
tokens: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    calls.clear()
    returned.clear()
    gates.clear()  # (an Event is bound to the loop of its first wait)
    tokens.clear()


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20), backoff=1.0))
async def down_for_ever(tag: str) -> str:
    calls[tag] += 1
    raise RuntimeError(f"the shipping API is down ({calls[tag]})")


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(hours=1)))
async def down_then_an_hour(tag: str) -> str:
    calls[tag] += 1
    raise RuntimeError("the shipping API is down")


@activity.defn
async def at_its_gate(tag: str) -> str:
    calls[tag] += 1
    await gates[tag].wait()
    returned[tag] += 1
    return "from the attempt"


@activity.defn(task_queue="nobody-serves-this")
async def never_claimed(tag: str) -> str:
    calls[tag] += 1
    return "never"


@activity.defn
async def hands_out(tag: str) -> Any:
    calls[tag] += 1
    tokens[tag] = activity.info().task_token
    activity.raise_complete_async()


STEPS = {
    "down": down_for_ever,
    "hour": down_then_an_hour,
    "gate": at_its_gate,
    "nobody": never_claimed,
    "token": hands_out,
}


@workflow.defn
async def settle(kind: str, tag: str) -> dict[str, Any]:
    try:
        return {"result": await STEPS[kind](tag)}
    except ActivityError as exc:
        cause = exc.cause
        return {"failed": cause.type, "message": cause.message, "attempt": exc.attempt}


def worker(client: perdure.Client) -> perdure.Worker:
    return fast_worker(client, [settle], list(STEPS.values()))


async def the_activity(
    handle: perdure.WorkflowHandle, what: str, holds: Any
) -> perdure.PendingActivityInfo:
    """The run's pending activity, once ``holds(it)``."""
    found: list[perdure.PendingActivityInfo] = []

    async def there() -> bool:
        pending = (await handle.describe()).pending_activities
        found[:] = [a for a in pending if holds(a)]
        return bool(found)

    await wait_until(there, 10, what=what)
    return found[0]


def ended(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in history if e["type"] in ("ActivityCompleted", "ActivityFailed")]


async def test_fail_by_id_ends_an_activity_that_retries_for_ever(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(settle, "down", "d", id="by-id-down")
        await the_activity(handle, "a few attempts", lambda a: a.attempt >= 3)
        by_id = client.get_async_activity_handle(workflow_id="by-id-down", activity_id=1)
        await by_id.fail(ApplicationError("settled by hand", type="GaveUp"))
        result = await handle.result(timeout=10)
    assert result["failed"] == "GaveUp" and result["message"] == "settled by hand"
    tried = calls["d"]
    [final] = ended(await handle.history())
    assert final["type"] == "ActivityFailed" and final["failure"]["non_retryable"] is True
    assert final["attempt"] == result["attempt"] >= 3
    assert [r["attempt"] for r in final["attempts"]][-1] == final["attempt"]
    await asyncio.sleep(0.1)  # (a retry would have run by now: 20 ms apart)
    assert calls["d"] == tried
    with pytest.raises(perdure.AsyncActivityNotFoundError, match="the run has ended"):
        await by_id.complete("late")


async def test_complete_by_id_between_attempts_and_before_any(client: perdure.Client) -> None:
    async with worker(client):
        waiting = await client.start(settle, "hour", "h", id="by-id-hour")
        await the_activity(waiting, "the hour's wait", lambda a: a.attempt == 1 and not a.running)
        await client.get_async_activity_handle(
            workflow_id="by-id-hour", activity_id=1, run_id=waiting.run_id
        ).complete("shipped by hand")
        assert await waiting.result(timeout=10) == {"result": "shipped by hand"}
        [final] = ended(await waiting.history())
        assert (final["type"], final["attempt"]) == ("ActivityCompleted", 1)
        assert [r["error"]["type"] for r in final["attempts"]] == ["RuntimeError"]

        unserved = await client.start(settle, "nobody", "n", id="by-id-nobody")
        await the_activity(unserved, "the scheduled activity", lambda a: a.attempt == 0)
        handle = client.get_async_activity_handle(workflow_id="by-id-nobody", activity_id=1)
        await handle.complete("done elsewhere")
        assert await unserved.result(timeout=10) == {"result": "done elsewhere"}
        [final] = ended(await unserved.history())
        assert (final["attempt"], final["attempts"]) == (0, [])  # (no attempt ran)
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="the run has ended"):
            await handle.complete("twice")
    assert calls["h"] == 1 and calls["n"] == 0


@pytest.mark.parametrize("queue", ["inline", "claimed"])
async def test_complete_by_id_while_an_attempt_runs_refuses_that_attempts_outcome(
    client: perdure.Client, queue: str
) -> None:
    """The attempt keeps running (its code cannot be stopped from outside),
    but the workflow has the operator's result, once."""
    tag = f"g-{queue}"
    step = at_its_gate if queue == "inline" else at_its_gate.options(task_queue="elsewhere")

    @workflow.defn(name=f"settle_running_{queue}")
    async def settle_running(tag: str) -> str:
        return await step(tag)

    others = fast_worker(client, [], [at_its_gate], task_queue="elsewhere")
    async with fast_worker(client, [settle_running], [at_its_gate]), others:
        handle = await client.start(settle_running, tag, id=f"by-id-{queue}")
        await the_activity(handle, "the running attempt", lambda a: a.running)
        assert calls[tag] == 1
        await client.get_async_activity_handle(
            workflow_id=f"by-id-{queue}", activity_id=1
        ).complete("by hand")
        assert await handle.result(timeout=10) == "by hand"
        gates[tag].set()  # the attempt returns now: its outcome is refused
    # (A stopping worker lets its attempts end: this one returned and its
    # outcome's write was tried.)
    assert (calls[tag], returned[tag]) == (1, 1)
    history = await handle.history()
    assert [e["result"] for e in ended(history)] == ["by hand"]
    assert history[-1]["type"] == "WorkflowCompleted"


async def test_heartbeat_and_report_cancellation_by_id_need_an_attempt_awaiting_completion(
    client: perdure.Client,
) -> None:
    async with worker(client):
        handed = await client.start(settle, "token", "t", id="by-id-token")
        await the_activity(handed, "the attempt to await", lambda a: a.awaiting_completion)
        by_id = client.get_async_activity_handle(workflow_id="by-id-token", activity_id=1)
        await by_id.heartbeat({"step": 2})
        pending = await the_activity(handed, "the heartbeat", lambda a: a.heartbeat_details)
        assert pending.heartbeat_details == {"step": 2}
        await by_id.complete({"approved": True})
        assert await handed.result(timeout=10) == {"result": {"approved": True}}
        stale = client.get_async_activity_handle(tokens["t"])
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="can no longer end"):
            await stale.complete("late")  # (the token's attempt ended with the id's end)

        waiting = await client.start(settle, "hour", "w", id="by-id-waiting")
        await the_activity(waiting, "the hour's wait", lambda a: a.attempt == 1 and not a.running)
        between = client.get_async_activity_handle(workflow_id="by-id-waiting", activity_id=1)
        for call in (between.heartbeat(), between.report_cancellation()):
            with pytest.raises(perdure.AsyncActivityNotFoundError, match="next one"):
                await call
        running = await client.start(settle, "gate", "r", id="by-id-running")
        await the_activity(running, "the running attempt", lambda a: a.running)
        on_worker = client.get_async_activity_handle(workflow_id="by-id-running", activity_id=1)
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="running on a worker"):
            await on_worker.heartbeat()
        gates["r"].set()
        assert await running.result(timeout=10) == {"result": "from the attempt"}
        await waiting.terminate("done")


async def test_names_that_name_nothing(client: perdure.Client) -> None:
    for kwargs, error, says in [
        ({}, TypeError, "give a task token, or workflow_id and activity_id"),
        ({"workflow_id": "w"}, TypeError, "activity_id must be an int"),
        ({"activity_id": 1}, TypeError, "workflow_id must be a non-empty str"),
        ({"workflow_id": "", "activity_id": 1}, TypeError, "workflow_id must be a non-empty"),
        ({"workflow_id": "w", "activity_id": "1"}, TypeError, "not str '1'"),
        ({"workflow_id": "w", "activity_id": True}, TypeError, "not bool True"),
        ({"workflow_id": "w", "activity_id": 0}, ValueError, "from 1 to 2\\*\\*31 - 1, not 0"),
        ({"workflow_id": "w", "activity_id": 2**31}, ValueError, "from 1 to"),
        ({"workflow_id": "w", "activity_id": 1, "run_id": ""}, TypeError, "run_id must be"),
        ({"task_token": "pt1.x", "workflow_id": "w"}, TypeError, "not both"),
    ]:
        with pytest.raises(error, match=says):
            client.get_async_activity_handle(**kwargs)
    async with worker(client):
        handle = await client.start(settle, "hour", "x", id="by-id-names")
        await the_activity(handle, "the hour's wait", lambda a: a.attempt == 1)
        for workflow_id, activity_id, run_id, says in [
            ("nope", 1, None, "activity 1 of workflow 'nope' \\(its latest run\\): no such run"),
            ("by-id-names", 2, None, "is not pending in run .*: it ended, or the run has no"),
            ("by-id-names", 1, "no-such-run", "\\(run no-such-run\\): no such run"),
        ]:
            named = client.get_async_activity_handle(
                workflow_id=workflow_id, activity_id=activity_id, run_id=run_id
            )
            for call in (named.complete(1), named.fail(RuntimeError("x")), named.heartbeat()):
                with pytest.raises(perdure.AsyncActivityNotFoundError, match=says):
                    await call
        named = client.get_async_activity_handle(workflow_id="by-id-names", activity_id=1)
        with pytest.raises(TypeError, match="takes the exception"):
            await named.fail("no")  # type: ignore[arg-type]
        with pytest.raises(perdure.PayloadError):
            await named.complete(object())
        assert (await handle.describe()).pending_activities[0].attempt == 1  # (unchanged)
        await handle.terminate("done")


def test_the_blocking_client_has_the_by_id_handle(db_url: str) -> None:
    async def scheduled() -> None:
        async with await perdure.Client.connect(db_url) as client:
            client.poll_interval = 0.02
            async with worker(client):
                handle = await client.start(settle, "nobody", "s", id="by-id-sync")
                await the_activity(handle, "the scheduled activity", lambda a: a.attempt == 0)

    async def finished() -> Any:
        async with await perdure.Client.connect(db_url) as client:
            client.poll_interval = 0.02
            async with worker(client):
                return await client.get_handle("by-id-sync").result(timeout=10)

    asyncio.run(scheduled())
    with perdure.SyncClient.connect(db_url) as sync:
        named = sync.get_async_activity_handle(workflow_id="by-id-sync", activity_id=1)
        assert named.task_token is None
        named.complete("from a script")
        assert sync.get_handle("by-id-sync").describe().pending_activities == []
    assert asyncio.run(finished()) == {"result": "from a script"}


async def test_settling_activities_that_race_their_own_attempts(client: perdure.Client) -> None:
    """Thirty activities failing and retried every 20 ms, each settled by id
    at once: whatever state each end meets (between attempts, an attempt
    claimed or failing meanwhile), each run gets its own result, once."""
    async with worker(client):
        handles = [
            await client.start(settle, "down", f"race-{i}", id=f"by-id-race-{i}") for i in range(30)
        ]
        for handle in handles:
            await the_activity(handle, "a retry", lambda a: a.attempt >= 2)
        await asyncio.gather(
            *(
                client.get_async_activity_handle(workflow_id=h.id, activity_id=1).complete(f"{i}")
                for i, h in enumerate(handles)
            )
        )
        results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
    assert results == [{"result": f"{i}"} for i in range(30)]
    for handle in handles:
        [final] = ended(await handle.history())
        assert final["type"] == "ActivityCompleted"
