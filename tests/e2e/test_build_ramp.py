"""A ramping build (docs/versioning.md, "Ramping a new build"): beside the
queue's current build, a new build takes a share of the queue's new runs,
chosen by their workflow ids (records.in_ramp), before an operator makes
it current. The current build's workers hand the share over: a new run
they claim, or one started beside them, whose id falls in the share is
pinned to the ramping build, whose workers run it from its first turn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until
from test_builds import QUEUE, approval_v1, approval_v2, build_worker, pinned_to, ticket_v1

import perdure
from perdure._store.records import in_ramp


def ramp_seen(worker: perdure.Worker, ramp: tuple[str, float] | None) -> Any:
    """Whether ``worker`` (of the current build) has read ``ramp``."""

    async def check() -> bool:
        return worker.turns.ramp == ramp

    return check


async def test_a_ramping_build_takes_its_share_of_new_runs(
    client: perdure.Client, db_url: str
) -> None:
    ids = [f"order-{i}" for i in range(24)]
    ramped = {i for i in ids if in_ramp(i, 40)}
    assert 0 < len(ramped) < len(ids)  # (both sides are met)
    one = fast_worker(client, [approval_v1], [], task_queue=QUEUE, build_id="build-1",
                      lease_timeout=1.5)  # fmt: skip
    async with one:
        # The canary's share is set before its workers start: their start
        # does not make it current.
        await client.set_ramping_build(QUEUE, "build-2", 40)
        await wait_until(ramp_seen(one, ("build-2", 40.0)), what="build 1 to see the ramp")
        async with build_worker(db_url, "build-2", [approval_v2]):
            builds = await client.builds(QUEUE)
            assert [(b.build_id, b.current, b.ramp) for b in builds] == [
                ("build-1", True, None),
                ("build-2", False, 40.0),
            ]
            # Half started beside build 1's worker (their first turns are
            # computed as they start), half by another process's client.
            other = await perdure.Client.connect(db_url)
            try:
                await asyncio.gather(
                    *(
                        (client if n % 2 else other).start(approval_v1, i, id=i, task_queue=QUEUE)
                        for n, i in enumerate(ids)
                    )
                )
            finally:
                await other.close()
            handles = [client.get_handle(i) for i in ids]
            for handle in handles:
                await pinned_to(handle, "build-2" if handle.id in ramped else "build-1")
            for handle in handles:
                await handle.signal("decision", "yes")
            for handle in handles:
                said = await handle.result(timeout=20)
                want = (
                    f"v2 {handle.id}:in-stock yes"
                    if handle.id in ramped
                    else (f"v1 {handle.id} yes")
                )
                assert said == want
                assert (await handle.describe()).last_error is None
            # Made current, build 2 stops ramping and takes every new run.
            await client.set_current_build(QUEUE, "build-2")
            assert [(b.build_id, b.ramp) for b in await client.builds(QUEUE)] == [
                ("build-2", None),
                ("build-1", None),
            ]


async def test_the_whole_share_and_none(client: perdure.Client, db_url: str) -> None:
    """At 100% every new run of a pinned type goes to the ramping build,
    but not a run of an auto-upgrade type (never pinned: it follows the
    current build); stopped, the ramp sends nothing more."""
    async with (
        build_worker(db_url, "build-1", [approval_v1, ticket_v1]) as one,
        build_worker(db_url, "build-2", [approval_v2, ticket_v1]),
    ):
        await client.set_current_build(QUEUE, "build-1")
        await client.set_ramping_build(QUEUE, "build-2", 100)
        await wait_until(ramp_seen(one, ("build-2", 100.0)), what="build 1 to see the ramp")
        all_in = await client.start(approval_v1, "A", id="all-in", task_queue=QUEUE)
        await pinned_to(all_in, "build-2")
        ticket = await client.start(ticket_v1, 7, id="ticket-7", task_queue=QUEUE)

        async def waiting() -> bool:
            return (await ticket.describe()).waiting_signals == ["go"]

        await wait_until(waiting, what="the ticket's first turn")
        assert (await ticket.describe()).build_id is None
        await client.set_ramping_build(QUEUE, None)
        await wait_until(ramp_seen(one, None), what="build 1 to see the ramp stopped")
        after = await client.start(approval_v1, "B", id="all-in-after", task_queue=QUEUE)
        await pinned_to(after, "build-1")
        for handle in (all_in, after):
            await handle.signal("decision", "ok")
        await ticket.signal("go")
        assert await all_in.result(timeout=20) == "v2 A:in-stock ok"
        assert await after.result(timeout=20) == "v1 B ok"
        assert await ticket.result(timeout=20) == "v1 ticket 7"


async def test_a_ramp_refuses_bad_input_and_changes_nothing(client: perdure.Client) -> None:
    with pytest.raises(ValueError, match="no current build for 'build-2' to ramp beside"):
        await client.set_ramping_build(QUEUE, "build-2", 10)
    await client.set_current_build(QUEUE, "build-1")
    await client.set_ramping_build(QUEUE, "build-2", 10)
    for percent in (101, -1, True, "10", None, float("nan")):
        with pytest.raises(ValueError, match=r"percent must be a number from 0 to 100, not "):
            await client.set_ramping_build(QUEUE, "build-3", percent)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no share without a build"):
        await client.set_ramping_build(QUEUE, None, 5)
    with pytest.raises(ValueError, match="build_id must be a non-empty string"):
        await client.set_ramping_build(QUEUE, "", 5)
    with pytest.raises(ValueError, match="'build-1' is the current build of task queue"):
        await client.set_ramping_build(QUEUE, "build-1", 5)
    assert [(b.build_id, b.current, b.ramp) for b in await client.builds(QUEUE)] == [
        ("build-1", True, None),
        ("build-2", False, 10.0),
    ]
    [_, ramping] = await client.builds(QUEUE)
    assert ramping.promoted_at is None  # (never current)
