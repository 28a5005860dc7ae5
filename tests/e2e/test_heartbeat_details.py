"""``describe()`` shows a pending activity's latest heartbeat details
(``PendingActivityInfo.heartbeat_details``), as Temporal's description
does: how far a long step got, read from the database. They are kept
across attempts (the retry reads them as ``activity.info().heartbeat_details``
and the description still shows them while it runs), and with payload
codecs they are sealed at rest and shown opened. Both backends.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
import perdure._converter
from perdure import RetryPolicy, activity, workflow
from perdure.codecs import ZlibCodec

gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
read: defaultdict[str, list[Any]] = defaultdict(list)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    gates.clear()  # (an Event is bound to the loop of its first wait: one per test)
    read.clear()


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=50), max_attempts=2))
async def copy_pages(tag: str) -> int:
    """Attempt 1 says it copied 5 pages, then fails; attempt 2 waits before
    its first heartbeat, then returns what attempt 1 said."""
    info = activity.info()
    read[tag].append(info.heartbeat_details)
    if info.attempt == 1:
        activity.heartbeat({"pages": 5})
    await gates[tag].wait()
    gates[tag].clear()
    if info.attempt == 1:
        raise RuntimeError("disk full")
    return int(info.heartbeat_details["pages"])


@workflow.defn
async def copy_book(tag: str) -> int:
    return await copy_pages(tag)


async def pending(handle: perdure.WorkflowHandle) -> perdure.PendingActivityInfo | None:
    found = (await handle.describe()).pending_activities
    return found[0] if found else None


async def wait_for_attempt(handle: perdure.WorkflowHandle, attempt: int, details: Any) -> None:
    async def there() -> bool:
        a = await pending(handle)
        return (
            a is not None and a.running and a.attempt == attempt and a.heartbeat_details == details
        )

    await wait_until(there, 10, what=f"attempt {attempt} to run, showing {details}")


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "zlib"])
async def test_the_description_shows_the_latest_heartbeat_across_attempts(
    db_url: str, sealed: bool
) -> None:
    tag = f"book-{sealed}"
    converter = perdure.DataConverter([ZlibCodec(min_size=0)]) if sealed else None
    async with await perdure.Client.connect(db_url, converter=converter) as client:
        client.poll_interval = 0.02
        async with fast_worker(client, [copy_book], [copy_pages]):
            handle = await client.start(copy_book, tag, id=tag)
            await wait_for_attempt(handle, 1, {"pages": 5})
            if sealed:  # (at rest the details are sealed; shown opened)
                assert handle.run_id is not None
                [stored] = (await client.store.pending_work(handle.run_id)).activities
                assert perdure._converter.ENVELOPE_KEY in stored.heartbeat, stored.heartbeat
            gates[tag].set()
            await wait_for_attempt(handle, 2, {"pages": 5})  # (kept for the retry)
            gates[tag].set()
            assert await handle.result(timeout=10) == 5
        assert read[tag] == [None, {"pages": 5}]
        assert await pending(handle) is None


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20), max_attempts=3))
async def checkpoint_then_fail(tag: str) -> int:
    """Each attempt saves how far it got, then fails at once (before the
    throttled write of that heartbeat may run); the third returns what the
    second saved."""
    info = activity.info()
    read[tag].append(info.heartbeat_details)
    if info.attempt < 3:
        activity.heartbeat({"pages": info.attempt * 10})
        raise RuntimeError("disk full")
    return int(info.heartbeat_details["pages"])


@workflow.defn
async def checkpointed(tag: str) -> int:
    return await checkpoint_then_fail(tag)


async def test_a_heartbeat_given_just_before_a_failure_reaches_the_retry(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [checkpointed], [checkpoint_then_fail]):
        handle = await client.start(checkpointed, "fast", id="checkpoint-fail")
        assert await handle.result(timeout=10) == 20
    assert read["fast"] == [None, {"pages": 10}, {"pages": 20}]
