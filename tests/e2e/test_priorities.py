"""Priorities with real workers, on every backend: a queue's backlog is
handed out by priority (1 first, 5 last), then oldest first; a run's
activities and children inherit its priority unless given their own; the
priority survives continue-as-new, reset and signal-with-start; bad values
are refused with nothing started. The claims themselves (every order and
cap) are in tests/store/test_store_priorities.py; that every task row a
workload writes carries the right priority, in test_priority_rows.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure.testing import Replayer

order: list[str] = []
gate: dict[str, asyncio.Event] = {}


@activity.defn
async def record(tag: str) -> str:
    """Notes when it ran; the one tagged "blocker" first waits for the
    test's gate (holding the queue's only slot)."""
    if tag == "blocker":
        gate["running"].set()
        await gate["open"].wait()
    order.append(tag)
    return tag


@activity.defn(priority=1)
async def urgent(tag: str) -> str:
    order.append(tag)
    return tag


@workflow.defn
async def one_step(tag: str) -> str:
    return await record(tag)


@workflow.defn
async def urgent_step(tag: str) -> str:
    """A run's activity of its own priority (1), whatever the run's."""
    return await urgent(tag)


@workflow.defn
async def urgent_by_options(tag: str) -> str:
    return await record.options(priority=1)(tag)


@workflow.defn
async def what_am_i() -> dict[str, Any]:
    return {"priority": workflow.info().priority}


@workflow.defn
async def parent(child_priority: int | None) -> list[int]:
    inherited = await workflow.execute_child(what_am_i)
    given = await workflow.execute_child(what_am_i, priority=child_priority)
    return [inherited["priority"], given["priority"]]


@workflow.defn
async def twice(round: int) -> int:
    if round == 0:
        workflow.continue_as_new(1)
    return workflow.info().priority


@activity.defn
async def my_priority() -> int:
    return activity.info().priority


@workflow.defn
async def asks_its_activity() -> int:
    return await my_priority()


@workflow.defn
async def waits_then_reports() -> int:
    await workflow.wait_signal("go")
    return workflow.info().priority


@pytest.fixture(autouse=True)
def _fresh() -> None:
    order.clear()
    gate["open"], gate["running"] = asyncio.Event(), asyncio.Event()


async def _pending(handle: perdure.WorkflowHandle) -> bool:
    return bool((await handle.describe()).pending_activities)


async def test_a_limited_queues_backlog_runs_by_priority_then_age(
    client: perdure.Client,
) -> None:
    # One attempt at a time (and a limited queue's activities are claimed,
    # never run inline): the blocker holds the slot while the others queue,
    # started in an order that is neither their priorities' nor its reverse.
    await client.set_queue_limits("default", max_running=1)
    async with fast_worker(client, [one_step], [record]):
        blocker = await client.start(one_step, "blocker")
        await asyncio.wait_for(gate["running"].wait(), 20)  # (holding the one slot)
        handles = []
        for tag, priority in [("p5", 5), ("p1-a", 1), ("p4", 4), ("p3", None), ("p1-b", 1)]:
            handle = await client.start(one_step, tag, priority=priority)
            await wait_until(lambda h=handle: _pending(h), what=f"{tag}'s activity queued")
            handles.append(handle)
        gate["open"].set()
        for handle in [blocker, *handles]:
            await handle.result(timeout=20)
    # By priority, and within one by age; a start without one has 3.
    assert order == ["blocker", "p1-a", "p1-b", "p3", "p4", "p5"]
    assert [(await h.describe()).priority for h in handles] == [5, 1, 4, 3, 1]


async def test_an_activitys_own_priority_goes_before_its_runs(client: perdure.Client) -> None:
    await client.set_queue_limits("default", max_running=1)
    async with fast_worker(client, [one_step, urgent_step, urgent_by_options], [record, urgent]):
        blocker = await client.start(one_step, "blocker")
        await asyncio.wait_for(gate["running"].wait(), 20)  # (holding the one slot)
        late = []
        for fn, tag in [
            (one_step, "run-p2"),
            (urgent_step, "defn-p1"),
            (urgent_by_options, "opt-p1"),
        ]:
            handle = await client.start(fn, tag, priority=2 if tag == "run-p2" else 5)
            await wait_until(lambda h=handle: _pending(h), what=f"{tag}'s activity queued")
            late.append(handle)
        gate["open"].set()
        for handle in [blocker, *late]:
            await handle.result(timeout=20)
    # The runs of priority 5 whose activities say 1 go before the run of 2.
    assert order == ["blocker", "defn-p1", "opt-p1", "run-p2"]
    scheduled = [e for e in await late[2].history() if e["type"] == "ActivityScheduled"]
    assert scheduled[0]["options"]["priority"] == 1  # recorded with the activity
    plain = [e for e in await late[0].history() if e["type"] == "ActivityScheduled"]
    assert "priority" not in plain[0]["options"]  # (its run's: nothing recorded)


async def test_a_runs_priority_reaches_its_code_children_and_activities(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [what_am_i, parent, asks_its_activity], [my_priority]):
        default = await client.start(what_am_i)
        second = await client.start(what_am_i, priority=2)
        assert await default.result(timeout=10) == {"priority": 3}
        assert await second.result(timeout=10) == {"priority": 2}
        # A child inherits its parent's priority unless given its own.
        assert await client.execute(parent, None, priority=4) == [4, 4]
        assert await client.execute(parent, 1, priority=4) == [4, 1]
        assert await client.execute(asks_its_activity, priority=5) == 5
        assert await client.execute(asks_its_activity) == 3
    # Recorded in WorkflowStarted when given (so replay sees it); a run of
    # the default records none, as runs did before priorities.
    assert (await second.history())[0]["priority"] == 2
    assert "priority" not in (await default.history())[0]
    listed = {r.run_id: r.priority for r in await client.list(workflow="what_am_i")}
    assert listed[default.run_id] == 3 and listed[second.run_id] == 2


async def test_the_priority_survives_continue_as_new_reset_and_signal_with_start(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [twice, waits_then_reports], []):
        chain = await client.start(twice, 0, priority=1)
        assert await chain.result(timeout=10) == 1
        assert (await client.get_handle(chain.id).describe()).priority == 1

        waiting = await client.signal_with_start(
            waits_then_reports, signal="other", id="sws", priority=5
        )
        assert (await waiting.describe()).priority == 5
        await waiting.signal("go")
        assert await waiting.result(timeout=10) == 5
        again = await client.get_handle("sws").reset()
        assert (await again.describe()).priority == 5
        assert await again.result(timeout=10) == 5  # ("go" is sent again to the new run)


@pytest.mark.parametrize("bad", [0, 6, -1, 2.0, "1", True])
async def test_a_bad_priority_is_refused_and_nothing_starts(
    client: perdure.Client, bad: Any
) -> None:
    error = ValueError if type(bad) is int else TypeError
    with pytest.raises(error, match=r"priority must be an int from 1 \(first\) to 5 \(last\)"):
        await client.start(what_am_i, id="refused", priority=bad)
    with pytest.raises(error, match="priority must be an int from 1"):
        record.options(priority=bad)
    with pytest.raises(error, match="priority must be an int from 1"):
        activity.defn(priority=bad)
    assert await client.list() == []


@workflow.defn
async def two_steps(tag: str) -> list[Any]:
    """A step, a signal, then a step with its own priority and one without:
    its priority as its code saw it before and after the change."""
    before = workflow.info().priority
    await record(tag)
    await workflow.wait_signal("go")
    await urgent(f"{tag}-own")
    await record(f"{tag}-after")
    return [before, workflow.info().priority]


async def test_set_priority_moves_a_waiting_run_ahead(client: perdure.Client) -> None:
    await client.set_queue_limits("default", max_running=1)
    async with fast_worker(client, [one_step, two_steps], [record, urgent]):
        blocker = await client.start(one_step, "blocker")
        await asyncio.wait_for(gate["running"].wait(), 20)
        late = [await client.start(one_step, f"p3-{i}") for i in range(3)]
        bumped = await client.start(two_steps, "bumped", priority=5)
        for handle in [*late, bumped]:
            await wait_until(lambda h=handle: _pending(h), what="its activity queued")
        # Its queued activity (the run's priority, 5) moves to 1 with it.
        await bumped.set_priority(1)
        assert (await bumped.describe()).priority == 1
        gate["open"].set()
        for handle in [blocker, *late]:
            await handle.result(timeout=20)
        await bumped.signal("go")
        assert await bumped.result(timeout=20) == [5, 1]
    assert order[:5] == ["blocker", "bumped", "p3-0", "p3-1", "p3-2"]
    events = await bumped.history()
    changed = [e for e in events if e["type"] == "PriorityChanged"]
    assert [e["priority"] for e in changed] == [1]
    # The activity given its own priority keeps it; the next one takes the new.
    scheduled = [e for e in events if e["type"] == "ActivityScheduled"]
    assert [e["options"].get("priority") for e in scheduled] == [None, 1, None]
    assert Replayer([two_steps]).replay(events).ok


async def test_set_priority_refuses_an_ended_run_and_bad_values(client: perdure.Client) -> None:
    async with fast_worker(client, [what_am_i], []):
        done = await client.start(what_am_i, id="done")
        await done.result(timeout=10)
    with pytest.raises(perdure.WorkflowClosedError):
        await done.set_priority(1)
    with pytest.raises(perdure.WorkflowNotFoundError):
        await client.get_handle("nobody").set_priority(1)
    waiting = await client.start(what_am_i, id="waiting")  # (no worker: it waits)
    for bad, error in [(0, ValueError), (6, ValueError), (True, TypeError), (None, TypeError)]:
        with pytest.raises(error, match="priority must be an int from 1"):
            await waiting.set_priority(bad)
    assert (await waiting.describe()).priority == 3
    assert [e["type"] for e in await waiting.history()] == []  # (nothing recorded yet)


async def _waits_for_go(handle: perdure.WorkflowHandle) -> bool:
    return (await handle.describe()).waiting_signals == ["go"]


@workflow.defn
async def waits_for_go() -> int:
    await workflow.wait_signal("go")
    return workflow.info().priority


async def test_a_turn_fenced_by_a_change_of_priority_is_not_a_lost_attempt(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change of priority while a turn is computed fences the turn out;
    the worker hands its task back as a claim that did not count (a failed
    attempt would wipe the run's last error and lengthen a later failure's
    backoff), and the next claim, the same attempt, commits the change."""
    original = client.store.commit_turn
    attempts: list[tuple[int, bool]] = []
    changes: list[Any] = []

    async def changed_meanwhile(commit: Any) -> bool:
        if commit.task is not None and not changes:
            changes.append(await client.store.set_priority("fenced", None, 2))
        committed = await original(commit)
        if commit.task is not None:
            attempts.append((commit.task.attempt, committed))
        return committed

    async with fast_worker(client, [waits_for_go], []):
        handle = await client.start(waits_for_go, id="fenced")
        await wait_until(lambda: _waits_for_go(handle), what="the run to wait for its signal")
        monkeypatch.setattr(client.store, "commit_turn", changed_meanwhile)
        await handle.signal("go")
        assert await handle.result(timeout=20) == 2
    assert len(changes) == 1
    [(first, fenced), (again, committed)] = attempts
    assert (fenced, committed) == (False, True)
    assert again == first
