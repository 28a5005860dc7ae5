"""Limits per fairness key with real workers (docs/queues.md, "A limit per
key", "A rate limit per key"): two workers (each with its own connection,
as two processes have) never run more of one key's attempts at once than
``max_running_per_key``, nor start more of them in a window than
``max_starts_per_key``, while the other keys' run alongside; the queue
shows who is at the limit; a bad limit is refused and changes nothing."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "crash"))
from crash_harness import attempt_spans, most_started, peak_running


@activity.defn
async def summarise(doc: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return doc


@workflow.defn
async def digest(docs: int, seconds: float) -> int:
    return sum(await asyncio.gather(*(summarise(i, seconds) for i in range(docs))))


async def test_each_key_runs_no_more_than_its_limit(client: perdure.Client, db_url: str) -> None:
    await client.set_queue_limits("default", max_running_per_key=2)
    other = await perdure.Client.connect(db_url)
    keys = ["acme", "globex", "initech"]
    try:
        # (Leases long enough that no attempt is lost to a loaded machine's
        # stall: a lease that runs out frees its slot, by design.)
        async with (
            fast_worker(client, [digest], [summarise], lease_timeout=60.0),
            fast_worker(other, [digest], [summarise], lease_timeout=60.0),
        ):
            handles = {key: await client.start(digest, 6, 0.05, fairness_key=key) for key in keys}
            for handle in handles.values():
                assert await handle.result(timeout=60) == sum(range(6))
    finally:
        await other.close()
    spans = {
        key: attempt_spans([await client.get_handle(h.id).history()]) for key, h in handles.items()
    }
    # Two of a key at once at most, and two indeed (the limit is not one);
    # and the keys ran alongside each other: it is no limit of the queue.
    assert {key: peak_running(s) for key, s in spans.items()} == dict.fromkeys(keys, 2)
    assert peak_running([span for s in spans.values() for span in s]) > 2


async def test_each_keys_starts_are_spaced_by_its_rate(client: perdure.Client, db_url: str) -> None:
    await client.set_queue_limits("default", max_starts_per_key=2, per=timedelta(seconds=0.4))
    other = await perdure.Client.connect(db_url)
    keys = ["acme", "globex"]
    try:
        # (Started before the workers: the keys' first steps are due together.)
        handles = {key: await client.start(digest, 6, 0.0, fairness_key=key) for key in keys}
        async with (
            fast_worker(client, [digest], [summarise]),
            fast_worker(other, [digest], [summarise]),
        ):
            for handle in handles.values():
                assert await handle.result(timeout=60) == sum(range(6))
    finally:
        await other.close()
    spans = {
        key: attempt_spans([await client.get_handle(h.id).history()]) for key, h in handles.items()
    }
    for key in keys:
        starts = sorted(start for start, _ in spans[key])
        assert most_started(spans[key], 0.4) == 2, key
        assert starts[-1] - starts[0] >= 0.8  # (six starts, two a window: three windows)
    # The keys started alongside each other: it is no rate of the queue
    # (which would let 2 start in any 0.4 s; both keys' first two start
    # together unless one key's steps come late on a loaded machine).
    assert most_started([span for s in spans.values() for span in s], 0.4) >= 3


release: dict[str, asyncio.Event] = {}  # (one a test: an event is of one loop)


@activity.defn
async def held(doc: int) -> int:
    await release["event"].wait()
    return doc


@workflow.defn
async def held_digest(docs: int) -> int:
    return sum(await asyncio.gather(*(held(i) for i in range(docs))))


async def test_the_queue_shows_the_keys_at_their_limit(client: perdure.Client) -> None:
    limits = await client.set_queue_limits("default", max_running=10, max_running_per_key=1)
    assert str(limits) == "at most 10 running, at most 1 running per fairness key"
    release["event"] = asyncio.Event()
    async with fast_worker(client, [held_digest], [held]):
        first = await client.start(held_digest, 3, fairness_key="acme")
        second = await client.start(held_digest, 2, fairness_key="globex")

        async def held_back() -> bool:
            q = await client.describe_queue("default")
            return (q.running, q.waiting) == (2, 3)

        await wait_until(held_back, what="one of each key running, the other three waiting")
        q = await client.describe_queue("default")
        assert q.running_by_key == {"acme": 1, "globex": 1}
        assert q.keys_at_limit == 2
        assert q.to_json()["limits"]["max_running_per_key"] == 1
        release["event"].set()
        assert await first.result(timeout=30) == 3
        assert await second.result(timeout=30) == 1


async def test_the_queue_shows_the_keys_at_their_rate(client: perdure.Client) -> None:
    limits = await client.set_queue_limits("default", max_starts_per_key=1, per=timedelta(days=1))
    assert str(limits) == "at most 1 of one fairness key started per 1d"
    async with fast_worker(client, [digest], [summarise]):
        first = await client.start(digest, 3, 0.0, fairness_key="acme")
        second = await client.start(digest, 2, 0.0, fairness_key="globex")

        async def held_back() -> bool:
            q = await client.describe_queue("default")
            return (q.started, q.waiting) == (2, 3)

        await wait_until(held_back, what="one of each key started, the other three waiting")
        q = await client.describe_queue("default")
        assert (q.started_by_key, q.keys_at_limit, q.held_until) == (
            {"acme": 1, "globex": 1},
            2,
            None,  # (the queue's own rate: none)
        )
        assert q.to_json()["limits"]["max_starts_per_key"] == 1
        assert q.to_json()["started_by_key"] == {"acme": 1, "globex": 1}
        # Raised, the limit lets the rest start at once: not after a day.
        await client.set_queue_limits("default", max_starts_per_key=3, per=timedelta(days=1))
        assert await first.result(timeout=30) == 3
        assert await second.result(timeout=30) == 1


@pytest.mark.parametrize(
    "given, message",
    [
        ({"max_running_per_key": 0}, "max_running_per_key must be between 1 and 1,000,000, not 0"),
        ({"max_running_per_key": 2.5}, "max_running_per_key must be an int or None, not float"),
        ({}, "give max_running, or max_starts and per, or max_running_per_key"),
        (
            {"max_starts_per_key": 0, "per": timedelta(1)},
            "max_starts_per_key must be between 1 and 1,000,000, not 0",
        ),
        ({"max_starts_per_key": 2}, "a rate limit needs both max_starts and per, or max_st"),
    ],
)
async def test_a_bad_limit_is_refused(
    client: perdure.Client, given: dict[str, object], message: str
) -> None:
    await client.set_queue_limits("default", max_running=4)
    with pytest.raises((TypeError, ValueError), match=message):
        await client.set_queue_limits("default", **given)  # type: ignore[arg-type]
    limits = (await client.describe_queue("default")).limits
    assert limits is not None and (limits.max_running, limits.max_running_per_key) == (4, None)
