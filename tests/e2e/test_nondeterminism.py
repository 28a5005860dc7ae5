"""Changing workflow code under a running history is detected, reported, and
recoverable: the run is untouched and resumes once compatible code returns."""

from __future__ import annotations

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow


@activity.defn
async def reserve(item: str) -> str:
    return f"reserved {item}"


@activity.defn
async def audit(item: str) -> str:
    return f"audited {item}"


@workflow.defn(name="shop")
async def shop_v1(item: str) -> str:
    r = await reserve(item)
    ok = await workflow.wait_signal("pay")
    return f"{r}, paid={ok}"


@workflow.defn(name="shop")
async def shop_v2(item: str) -> str:
    await audit(item)  # inserted before an already-recorded step: incompatible
    r = await reserve(item)
    ok = await workflow.wait_signal("pay")
    return f"{r}, paid={ok}"


async def test_incompatible_change_is_reported_and_fixed_by_redeploying(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [shop_v1], [reserve, audit]):
        handle = await client.start(shop_v1, "lamp", id="shop-1")

        async def waiting() -> bool:
            return (await handle.describe()).waiting_signals == ["pay"]

        await wait_until(waiting, what="the pay signal wait")
    before = await handle.history()

    await handle.signal("pay", True)
    async with fast_worker(client, [shop_v2], [reserve, audit]):

        async def reported() -> bool:
            return (await handle.describe()).last_error is not None

        await wait_until(reported, what="the non-determinism report")
    desc = await handle.describe()
    error = desc.last_error or ""
    assert "non-determinism in workflow 'shop'" in error
    assert "recorded ScheduleActivity 'reserve'" in error
    assert "issued ScheduleActivity 'audit'" in error
    assert "test_nondeterminism.py" in error  # points at the line that diverged
    assert desc.status == "running"
    assert await handle.history() == before  # nothing was written

    async with fast_worker(client, [shop_v1], [reserve, audit]):
        assert await handle.result(timeout=15) == "reserved lamp, paid=True"


PREFIX = {"value": "x"}


@activity.defn
async def flips(tag: str) -> str:
    PREFIX["value"] = "y"  # what the workflow reads next: a global, not its history
    return tag


@workflow.defn
async def drifting() -> list[str]:
    return [await flips(PREFIX["value"] + "1"), await flips(PREFIX["value"] + "2")]


async def test_a_replay_with_other_activity_arguments_is_logged(
    client: perdure.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Passing other arguments on replay is allowed, but the activity gets the
    result recorded for the old ones: silently wrong if not meant. The worker
    names the run, the activity, both argument lists and the line."""
    PREFIX["value"] = "x"
    with caplog.at_level("WARNING", logger="perdure.worker"):
        async with fast_worker(client, [drifting], [flips], cache_size=0):  # every turn replays
            assert await client.execute(drifting, timeout=20) == ["x1", "y2"]
    said = [r.getMessage() for r in caplog.records if "other arguments" in r.getMessage()]
    assert said, "no warning"
    assert "recorded with ('x1',), replayed with ('y1',)" in said[0]
    assert "ScheduleActivity 'flips' (ref 1)" in said[0] and "test_nondeterminism.py" in said[0]
