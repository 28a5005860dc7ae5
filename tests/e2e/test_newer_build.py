"""workflow.newer_build() (docs/versioning.md, "Moving a long-lived run to a
new build"): a pinned run learns that new runs of its id would start on
another build (a newer one made current, or a ramping one whose share its
id falls in), and continues as new onto it at a point of its choosing.
What a turn saw is recorded: a worker that replays the run later (its
cache lost, the facts changed) makes the same decisions, and the
Replayer, which knows no builds, too."""

from __future__ import annotations

import pytest
from e2e_helpers import wait_until
from test_builds import QUEUE, build_worker, pinned_only, pinned_to

import perdure
from perdure import workflow
from perdure._store.records import in_ramp
from perdure.errors import WorkflowFailedError
from perdure.testing import Replayer, WorkflowEnvironment

MARKER = "perdure.newer_build:"


async def account(release: str, total: int) -> str:
    """An entity that lives on: each deposit adds to the total; at a deposit
    seen while a newer build waits, it continues as new to move there."""
    while True:
        amount = await workflow.wait_signal("deposit")
        if amount is None:
            return f"{release} {total}"
        total += amount
        if workflow.newer_build() is not None:
            workflow.continue_as_new(total)


@workflow.defn(name="account")
async def account_v1(total: int) -> str:
    return await account("v1", total)


@workflow.defn(name="account")
async def account_v2(total: int) -> str:
    return await account("v2", total)


async def latest_on(client: perdure.Client, workflow_id: str, build: str) -> None:
    async def there() -> bool:
        return (await client.get_handle(workflow_id).describe()).build_id == build

    await wait_until(there, what=f"{workflow_id}'s latest run on {build}")


async def test_a_pinned_run_moves_to_the_newer_build_when_it_chooses(
    client: perdure.Client, db_url: str
) -> None:
    async with build_worker(db_url, "build-1", [account_v1]):
        first = await client.start(account_v1, 0, id="acct", task_queue=QUEUE)
        await pinned_to(first, "build-1")
        await first.signal("deposit", 5)  # (build 1 is current: it stays)

        async def taken() -> bool:
            events = await first.history()
            return any(e["type"] == "SignalReceived" for e in events)

        await wait_until(taken, what="the first deposit's turn")
    # Build 2 is made current; a new worker of build 1 (no cache: it replays
    # the first deposit, seen while build 1 was current, as it was) sees the
    # next deposit, seen now, move the account.
    async with (
        build_worker(db_url, "build-2", [account_v2]),
        build_worker(db_url, "build-1", [account_v1]) as again,
    ):
        await wait_until(pinned_only(again), what="build 1's worker to see build 2 current")
        await first.signal("deposit", 7)
        await latest_on(client, "acct", "build-2")
        await client.get_handle("acct").signal("deposit", None)
        assert await client.get_handle("acct").result(timeout=20) == "v2 12"
    history = await first.history()
    markers = [e["patch_id"] for e in history if e["type"] == "PatchRecorded"]
    assert markers == [MARKER + "build-2"]  # (the first deposit recorded none)
    assert history[-1]["type"] == "WorkflowContinuedAsNew"
    # The Replayer (no builds, no worker) takes the recorded answer.
    replayed = Replayer([account_v1]).replay(history)
    assert replayed.ok, replayed


async def test_a_run_in_the_ramping_builds_share_is_told_of_it(
    client: perdure.Client, db_url: str
) -> None:
    inside = next(f"acct-{i}" for i in range(100) if in_ramp(f"acct-{i}", 50))
    outside = next(f"acct-{i}" for i in range(100) if not in_ramp(f"acct-{i}", 50))
    async with build_worker(db_url, "build-1", [account_v1]) as one:
        runs = {
            wid: await client.start(account_v1, 0, id=wid, task_queue=QUEUE)
            for wid in (inside, outside)
        }
        for run in runs.values():
            await pinned_to(run, "build-1")
        await client.set_ramping_build(QUEUE, "build-2", 50)

        async def knows() -> bool:
            return one.turns.ramp is not None

        await wait_until(knows, what="build 1's worker to read the ramp")
        async with build_worker(db_url, "build-2", [account_v2]):
            for run in runs.values():
                await run.signal("deposit", 1)
            await latest_on(client, inside, "build-2")
            for wid in runs:
                await client.get_handle(wid).signal("deposit", None)
            results = {wid: await client.get_handle(wid).result(timeout=20) for wid in runs}
    assert results == {inside: "v2 1", outside: "v1 1"}


@workflow.defn
async def borrows_the_marker() -> bool:
    return workflow.patched(MARKER + "x")


async def test_newer_builds_marker_is_not_a_change_id() -> None:
    async with WorkflowEnvironment(workflows=[borrows_the_marker]) as env:
        with pytest.raises(WorkflowFailedError, match="change ids starting with"):
            await env.execute(borrows_the_marker)
