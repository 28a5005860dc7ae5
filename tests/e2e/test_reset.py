"""Resetting a run (WorkflowHandle.reset): a new run of the same id keeps the
history before a point, runs on from there with the code deployed now, and
keeps its activities' idempotency keys; on every backend."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import RetryPolicy, activity, workflow
from perdure.testing import Replayer

attempts: dict[str, list[str]] = {}  # step -> the idempotency key of each attempt
broken: dict[str, bool] = {}  # step -> whether it fails (the outage, then its fix)


@activity.defn(retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10)))
async def step(name: str) -> str:
    attempts.setdefault(name, []).append(activity.info().idempotency_key)
    if broken.get(name):
        raise ConnectionError(f"{name}: the API is down")
    return f"{name} done"


@workflow.defn
async def order(n: int) -> list[str]:
    out = []
    for i in range(n):
        workflow.set_state("step", i)
        out.append(await step(f"s{i}"))
    return out


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=50), backoff=1.0))
async def ship(item: str) -> str:
    attempts.setdefault("ship", []).append(activity.info().idempotency_key)
    if broken.get("ship"):
        raise ConnectionError("the carrier is down")
    return f"shipped {item}"


@workflow.defn
async def picker() -> list[str]:
    await step("s0")
    items = [await workflow.wait_signal("item")]
    items.append(await ship(items[0]))
    items.append(await workflow.wait_signal("item"))
    return items


@workflow.defn
async def parent_of_order() -> list[str]:
    return await workflow.execute_child(order, 1, id="the-child")


@workflow.defn
async def with_a_child() -> list[str]:
    first = await step("p0")
    return [first, *await workflow.execute_child(order, 2, id=f"{workflow.info().workflow_id}/c")]


@workflow.defn
async def waits_for_go() -> str:
    await step("w0")
    return str(await workflow.wait_signal("go"))


@workflow.defn
async def with_a_waiting_child() -> str:
    await step("p0")
    return await workflow.execute_child(waits_for_go, id=f"{workflow.info().workflow_id}/c")


ALL = [step, ship]


def calls() -> Counter[str]:
    return Counter({name: len(keys) for name, keys in attempts.items()})


@pytest.fixture(autouse=True)
def _fresh() -> None:
    broken.clear()


async def test_a_failed_run_goes_on_from_the_step_that_failed(client: perdure.Client) -> None:
    broken["s2"] = True
    async with fast_worker(client, [order], ALL):
        old = await client.start(order, 4, id="order-1")
        with pytest.raises(perdure.WorkflowFailedError, match="the API is down"):
            await old.result(timeout=20)
        assert calls() == {"s0": 1, "s1": 1, "s2": 2}
    # Each step's turn (its result, its state, the next step) is a point; by
    # default, the turn that scheduled s2 (it took s1's result at event 7).
    found = await old.reset_points()
    assert (found.points, found.default) == ([1, 4, 7, 10], 7)
    history = {e["seq"]: e["type"] for e in await old.history()}
    assert found.types == {seq: history[seq] for seq in (1, 4, 7, 10)}
    assert found.types[1] == "WorkflowStarted"
    broken["s2"] = False  # the outage is over
    new = await old.reset(reason="API back")
    assert new.id == "order-1" and new.run_id != old.run_id
    # Before any worker takes it: the state the kept turns published.
    assert (await new.describe()).status == "running"
    assert await new.state("step") == 1
    async with fast_worker(client, [order], ALL):  # (a new worker: a cold replay)
        assert await new.result(timeout=20) == ["s0 done", "s1 done", "s2 done", "s3 done"]
    # s0 and s1 were not run again; s2 was scheduled again, with its key.
    assert calls() == {"s0": 1, "s1": 1, "s2": 3, "s3": 1}
    assert len(set(attempts["s2"])) == 1
    assert attempts["s2"][0] == f"order-1/{old.run_id}/3"
    events = await new.history()
    reset = [e for e in events if e["type"] == "WorkflowReset"]
    assert len(reset) == 1 and reset[0]["from_run_id"] == old.run_id
    assert reset[0]["reason"] == "API back"
    # The kept events are the old run's, but its start names the new run.
    old_events = await old.history()
    kept = events[: reset[0]["at_seq"] - 1]
    assert kept[0]["run_id"] == new.run_id
    assert kept[1:] == old_events[1 : len(kept)]
    assert (await old.describe()).status == "failed"  # the old run is left as it ended
    # Each id's latest run only: the failed run the reset replaced is not listed.
    assert [r.run_id for r in await client.list(status="failed")] == [old.run_id]
    assert await client.list(status="failed", latest=True) == []
    assert [r.run_id for r in await client.list(latest=True)] == [new.run_id]
    assert (await client.get_handle("order-1").describe()).run_id == new.run_id
    assert await new.state("step") == 3
    # The reset run's history replays, its WorkflowReset included.
    assert Replayer([order]).replay(events).ok


async def test_reset_to_an_event_runs_again_from_the_turn_that_recorded_it(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [order], ALL):
        first = await client.start(order, 3, id="order-2")
        assert len(await first.result(timeout=20)) == 3
        events = await first.history()
        s1 = next(e for e in events if e["type"] == "ActivityScheduled" and e["args"] == ["s1"])
        second = await first.reset(to_event=s1["seq"])
        assert len(await second.result(timeout=20)) == 3
        # A reset of the reset: back to the start; the keys stay the first run's.
        third = await second.reset(to_event=1)
        assert len(await third.result(timeout=20)) == 3
    assert calls() == {"s0": 2, "s1": 3, "s2": 3}
    assert all(len(set(keys)) == 1 for keys in attempts.values())
    assert attempts["s1"][0].split("/")[1] == first.run_id


async def test_an_open_run_is_terminated_and_its_later_signals_sent_again(
    client: perdure.Client,
) -> None:
    broken["ship"] = True
    async with fast_worker(client, [picker], ALL):
        old = await client.start(picker, id="pick-1")
        await old.signal("item", "a")

        async def shipping() -> bool:
            return len(attempts.get("ship", [])) >= 2

        await wait_until(shipping, what="the shipment to be retried")
        await old.signal("item", "b")  # waits behind the shipment
        taken: list[dict[str, object]] = []

        async def b_taken() -> bool:
            taken[:] = [e for e in await old.history() if e.get("payload") == "b"]
            return bool(taken)

        await wait_until(b_taken, what="signal b in the old run's history")
        # The turn that took b still waited on the shipment: not a usable point.
        with pytest.raises(perdure.WorkflowResetError, match=r"activity 'ship' \(ref 2\)"):
            await old.reset(to_event=int(str(taken[0]["seq"])))
        new = await old.reset(reason="carrier back")
        broken["ship"] = False
        assert await new.result(timeout=20) == ["a", "shipped a", "b"]
    described = await old.describe()
    assert described.status == "terminated"
    assert new.run_id in (described.failure or {}).get("message", "")
    assert calls()["s0"] == 1
    assert len(set(attempts["ship"])) == 1  # the new run's shipment kept its key


async def test_what_cannot_be_reset_says_why(client: perdure.Client) -> None:
    async with fast_worker(client, [order, parent_of_order], ALL):
        first = await client.start(order, 1, id="order-3")
        await first.result(timeout=20)
        second = await first.reset()
        await second.result(timeout=20)
        with pytest.raises(perdure.WorkflowResetError, match="not the latest run"):
            await first.reset()
        with pytest.raises(perdure.WorkflowResetError, match="no event 99"):
            await second.reset(to_event=99)
        with pytest.raises(TypeError, match="to_event is an event's seq"):
            await second.reset(to_event=True)  # type: ignore[arg-type]
        with pytest.raises(perdure.WorkflowNotFoundError):
            await client.get_handle("no-such-order").reset()
        with pytest.raises(perdure.WorkflowNotFoundError):
            await client.get_handle("order-3", run_id="no-such-run").reset()
        parent = await client.start(parent_of_order, id="parent-1")
        await parent.result(timeout=20)
        with pytest.raises(perdure.WorkflowResetError, match="is a child of run"):
            await client.get_handle("the-child").reset()
        # Nothing was made by the refusals.
        listed = await client.list(workflow="order", limit=100)
        assert sorted(r.id for r in listed) == ["order-3", "order-3", "the-child"]


async def test_a_second_reset_before_the_new_run_ran_needs_a_point(client: perdure.Client) -> None:
    """A double click (or a retried request) must not go back a turn further."""
    broken["s1"] = True
    async with fast_worker(client, [order], ALL):
        old = await client.start(order, 3, id="order-4")
        with pytest.raises(perdure.WorkflowFailedError):
            await old.result(timeout=20)
    broken["s1"] = False
    new = await client.get_handle("order-4").reset()
    with pytest.raises(perdure.WorkflowResetError, match="has not run its first turn yet"):
        await client.get_handle("order-4").reset()
    with pytest.raises(perdure.WorkflowResetError, match="not the latest run"):
        await client.get_handle("order-4", old.run_id).reset()
    again = await new.reset(to_event=1)
    async with fast_worker(client, [order], ALL):
        assert len(await again.result(timeout=20)) == 3
    assert calls() == {"s0": 2, "s1": 3, "s2": 1}


async def test_a_parent_reset_before_its_child_starts_the_child_again_with_its_keys(
    client: perdure.Client,
) -> None:
    broken["s1"] = True  # the child's second step
    async with fast_worker(client, [with_a_child, order], ALL):
        old = await client.start(with_a_child, id="parent-2")
        with pytest.raises(perdure.WorkflowFailedError, match="the API is down"):
            await old.result(timeout=20)
        old_child = await client.get_handle("parent-2/c").describe()
        broken["s1"] = False
        new = await old.reset()
        assert await new.result(timeout=20) == ["p0 done", "s0 done", "s1 done"]
        new_child = await client.get_handle("parent-2/c").describe()
        assert new_child.run_id != old_child.run_id and new_child.status == "completed"
        # The parent's first step is kept; the child ran again from its start,
        # its activities under the old child's keys.
        assert calls() == {"p0": 1, "s0": 2, "s1": 3}
        child_events = await client.get_handle("parent-2/c").history()
        marker = next(e for e in child_events if e["type"] == "WorkflowReset")
        assert marker["from_run_id"] == old_child.run_id and marker["at_seq"] == 1
        # Reset again, from the start: a third child run, still on the first one's keys.
        third = await new.reset(to_event=1)
        assert await third.result(timeout=20) == ["p0 done", "s0 done", "s1 done"]
    assert calls() == {"p0": 2, "s0": 3, "s1": 4}
    for name in ("s0", "s1"):
        assert {key.split("/")[2] for key in attempts[name]} == {old_child.run_id}, name


async def test_a_child_id_that_another_workflow_used_stays_taken(client: perdure.Client) -> None:
    async with fast_worker(client, [with_a_child, order], ALL):
        taken = await client.start(order, 1, id="parent-3/c")  # not a child of parent-3
        await taken.result(timeout=20)
        old = await client.start(with_a_child, id="parent-3")
        with pytest.raises(perdure.WorkflowFailedError, match="already used"):
            await old.result(timeout=20)
        new = await old.reset(to_event=1)
        with pytest.raises(perdure.WorkflowFailedError, match="already used"):
            await new.result(timeout=20)


async def test_an_open_parents_reset_ends_its_open_child_and_starts_it_again(
    client: perdure.Client,
) -> None:
    flows = [with_a_waiting_child, waits_for_go]
    async with fast_worker(client, flows, ALL):
        old = await client.start(with_a_waiting_child, id="parent-4")
        child = client.get_handle("parent-4/c")

        async def child_waits() -> bool:
            try:
                return (await child.describe()).waiting_signals == ["go"]
            except perdure.WorkflowNotFoundError:
                return False

        await wait_until(child_waits, what="the child to wait for its signal")
        old_child = (await child.describe()).run_id
        new = await old.reset(to_event=1)
        ended = await client.get_handle("parent-4/c", old_child).describe()
        assert ended.status == "terminated"
        assert "its parent was reset" in (ended.failure or {}).get("message", "")

        async def child_again() -> bool:
            d = await child.describe()
            return d.run_id != old_child and d.waiting_signals == ["go"]

        await wait_until(child_again, what="the child to start again")
        await child.signal("go", "now")
        assert await new.result(timeout=20) == "now"
    assert calls() == {"p0": 2, "w0": 2}
    assert len(set(attempts["w0"])) == 1  # the child's step kept its key


async def test_a_timed_out_run_reset_gets_its_time_allowed_again(client: perdure.Client) -> None:
    async with fast_worker(client, [waits_for_go], ALL):
        old = await client.start(
            waits_for_go, id="slow-1", execution_timeout=timedelta(seconds=0.5)
        )
        with pytest.raises(perdure.WorkflowTimedOutError):
            await old.result(timeout=20)
        new = await old.reset()
        with pytest.raises(perdure.WorkflowTimedOutError):  # half a second again, from the reset
            await new.result(timeout=20)
        last = await new.reset()
        await last.signal("go", "in time")
        assert await last.result(timeout=20) == "in time"
    assert calls() == {"w0": 1}


@pytest.mark.sqlite_only
async def test_a_history_that_cannot_be_read_is_refused_and_left_alone(
    client: perdure.Client, db_url: str
) -> None:
    import sqlite3
    from contextlib import closing

    async with fast_worker(client, [order], ALL):
        old = await client.start(order, 2, id="order-5")
        await old.result(timeout=20)
    path = db_url[len("sqlite:///") :]
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute('UPDATE events SET data = \'{"type": "Bogus"}\' WHERE seq = 2')
    with pytest.raises(perdure.WorkflowResetError, match=r"its history cannot be read.*Bogus"):
        await old.reset()
    assert [r.run_id for r in await client.list(workflow="order")] == [old.run_id]
