"""Fairness keys (docs/queues.md "Fairness"): within a priority, a queue
serves the keys with due work in turn, so one tenant's backlog does not hold
back another's; a run's key reaches its activities and children (unless
given their own), workflow.info() and activity.info() tell it, describe()
shows it; a bad key is refused before anything is written."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure.cli._summaries import summarize
from perdure.testing import Replayer

ran: list[str] = []


@activity.defn(task_queue="model")
async def summarise(tenant: str, doc: int) -> str:
    ran.append(f"{tenant}/{doc}")
    return f"{tenant}/{doc}"


@workflow.defn
async def digest(tenant: str, docs: int) -> list[str]:
    return list(await asyncio.gather(*(summarise(tenant, i) for i in range(docs))))


async def test_one_tenants_backlog_does_not_hold_back_another(client: perdure.Client) -> None:
    ran.clear()
    async with fast_worker(client, [digest], []):
        # The big tenant's thirty calls are queued first, then the small
        # one's three; no worker serves the model's queue yet.
        big = await client.start(digest, "big", 30, fairness_key="big")
        small = await client.start(digest, "small", 3, fairness_key="small")

        async def all_queued() -> bool:
            return (await client.describe_queue("model")).waiting == 33

        await wait_until(all_queued, what="the 33 calls queued")
        one_at_a_time = fast_worker(
            client, [], [summarise], task_queue="model", max_concurrent_activities=1
        )
        async with one_at_a_time:
            assert len(await small.result(timeout=30)) == 3
            assert len(await big.result(timeout=60)) == 30
    # In turn: the small tenant's three went among the big one's first,
    # not after its thirty (as they would without keys: they came last).
    assert ran[:6] == ["big/0", "small/0", "big/1", "small/1", "big/2", "small/2"], ran
    assert ran[6:] == [f"big/{i}" for i in range(3, 30)]


async def test_a_heavier_tenant_takes_its_weight_in_each_turn(client: perdure.Client) -> None:
    """Weights (docs/queues.md "Weights"): with both tenants' calls queued,
    one of weight 3 takes three for each one of weight 1."""
    ran.clear()
    assert await client.set_fairness_weight("model", "gold", 3) == 1
    async with fast_worker(client, [digest], []):
        gold = await client.start(digest, "gold", 12, fairness_key="gold")
        basic = await client.start(digest, "basic", 12, fairness_key="basic")

        async def all_queued() -> bool:
            return (await client.describe_queue("model")).waiting == 24

        await wait_until(all_queued, what="the 24 calls queued")
        assert (await client.describe_queue("model")).fairness_weights == {"gold": 3}
        one_at_a_time = fast_worker(
            client, [], [summarise], task_queue="model", max_concurrent_activities=1
        )
        async with one_at_a_time:
            assert len(await gold.result(timeout=60)) == 12
            assert len(await basic.result(timeout=60)) == 12
    # The keys' turn goes by name (basic, then gold); once gold's twelve are
    # done, basic takes every slot.
    assert "".join(run[0] for run in ran) == "bggg" * 4 + "b" * 8, ran


@activity.defn
async def whose() -> str | None:
    return activity.info().fairness_key


@workflow.defn
async def keyed_child() -> str | None:
    return workflow.info().fairness_key


@workflow.defn
async def keyed_parent() -> dict[str, str | None]:
    return {
        "run": workflow.info().fairness_key,
        "activity": await whose(),
        "activity_own": await whose.options(fairness_key="tenant-9")(),
        "child": await workflow.execute_child(keyed_child),
        "child_own": await workflow.execute_child(keyed_child, fairness_key="tenant-8"),
    }


async def test_a_runs_key_reaches_its_activities_and_children(client: perdure.Client) -> None:
    async with fast_worker(client, [keyed_parent, keyed_child], [whose]):
        handle = await client.start(keyed_parent, fairness_key="tenant-7")
        assert await handle.result(timeout=30) == {
            "run": "tenant-7",
            "activity": "tenant-7",
            "activity_own": "tenant-9",
            "child": "tenant-7",
            "child_own": "tenant-8",
        }
        assert (await handle.describe()).fairness_key == "tenant-7"
        unkeyed = await client.start(keyed_parent)
        assert (await unkeyed.result(timeout=30))["run"] is None
        assert (await unkeyed.describe()).fairness_key is None


@workflow.defn
async def rekeyed() -> dict[str, str | None]:
    """Its key before and after a change made while it waits for "go", and
    the key an activity and a child it starts after the change inherit."""
    before = workflow.info().fairness_key
    await workflow.wait_signal("go")
    return {
        "before": before,
        "after": workflow.info().fairness_key,
        "activity": await whose(),
        "child": await workflow.execute_child(keyed_child),
    }


async def _waits_for_go(handle: perdure.WorkflowHandle) -> bool:
    return (await handle.describe()).waiting_signals == ["go"]


@pytest.mark.parametrize(("first", "then"), [("acme", "globex"), ("acme", None), (None, "acme")])
async def test_a_runs_key_changes_in_flight(
    client: perdure.Client, first: str | None, then: str | None
) -> None:
    async with fast_worker(client, [rekeyed, keyed_child], [whose]):
        handle = await client.start(rekeyed, fairness_key=first)
        await wait_until(lambda: _waits_for_go(handle), what="the run to wait for its signal")
        await handle.set_fairness_key(then)
        assert (await handle.describe()).fairness_key == then
        await handle.signal("go")
        assert await handle.result(timeout=30) == {
            "before": first,
            "after": then,
            "activity": then,
            "child": then,
        }
    events = await handle.history()
    [changed] = [e for e in events if e["type"] == "FairnessKeyChanged"]
    assert changed["fairness_key"] == (then or "")
    assert summarize(changed) == (f"to {then}" if then else "to no key")  # (perdure history)
    assert Replayer([rekeyed, keyed_child]).replay(events).ok
    with pytest.raises(perdure.WorkflowClosedError):
        await handle.set_fairness_key("late")
    with pytest.raises(perdure.WorkflowNotFoundError):
        await client.get_handle("nobody").set_fairness_key("acme")


@pytest.mark.parametrize("bad", ["", "a\x00b", 7])
async def test_a_bad_new_key_is_refused_and_changes_nothing(
    client: perdure.Client, bad: object
) -> None:
    handle = await client.start(keyed_parent, id="waiting", fairness_key="acme")  # (no worker)
    with pytest.raises(ValueError, match="fairness_key"):
        await handle.set_fairness_key(bad)  # type: ignore[arg-type]
    assert (await handle.describe()).fairness_key == "acme"
    assert await handle.history() == []


@pytest.mark.parametrize("bad", ["", "a\x00b", 7])
async def test_a_bad_key_is_refused_and_nothing_is_written(
    client: perdure.Client, bad: object
) -> None:
    with pytest.raises(ValueError, match="fairness_key"):
        await client.start(keyed_parent, fairness_key=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fairness_key"):
        whose.options(fairness_key=bad)  # type: ignore[arg-type]
    assert await client.list() == []


async def test_every_start_takes_a_key(client: perdure.Client) -> None:
    """The starts that make a run take its key as start does: signal_with_start,
    a debounced start (no worker here: the runs wait)."""
    signalled = await client.signal_with_start(
        keyed_parent, signal="go", id="signalled", fairness_key="acme"
    )
    debounced = await client.debounce(
        keyed_parent, key="d-1", delay=timedelta(minutes=5), fairness_key="globex"
    )
    assert (await signalled.describe()).fairness_key == "acme"
    assert (await debounced.describe()).fairness_key == "globex"


async def test_bad_weights_are_refused_and_change_nothing(
    client: perdure.Client, db_url: str
) -> None:
    await client.set_fairness_weight("model", "gold", 3)
    refused: dict[tuple[object, object, object], tuple[type[Exception], str]] = {
        ("model", "gold", 0): (ValueError, "weight must be between 1 and 1,000"),
        ("model", "gold", 1001): (ValueError, "weight must be between 1 and 1,000"),
        ("model", "gold", 2.5): (TypeError, "weight must be an int, not float"),
        ("model", "gold", True): (TypeError, "weight must be an int, not bool"),
        ("model", "", 2): (ValueError, "fairness_key must be a non-empty string"),
        ("model", "a\x00b", 2): (ValueError, "fairness_key"),
        ("", "gold", 2): (ValueError, "task_queue"),
    }
    for args, (error, says) in refused.items():
        with pytest.raises(error, match=says):
            await client.set_fairness_weight(*args)  # type: ignore[arg-type]
    assert (await client.describe_queue("model")).fairness_weights == {"gold": 3}
    with perdure.SyncClient.connect(db_url) as sync:  # (the same through the sync client)
        assert sync.set_fairness_weight("model", "gold", 1) == 3
        assert sync.describe_queue("model").fairness_weights == {}
