"""The Store contract for listing runs: every filter is applied by the store, newest
first by (created_at, row id), with keyset paging that neither repeats nor skips."""

from __future__ import annotations

import dataclasses
from typing import Any

from store_helpers import FakeClock, new_run

from perdure._store.base import RunFilter, RunRecord, Store


async def start(store: Store, wid: str, workflow_type: str = "t") -> RunRecord:
    new = dataclasses.replace(new_run(wid, f"{wid}-run"), workflow_type=workflow_type)
    run, created = await store.create_run(new, "fail")
    assert created
    return run


async def ids(store: Store, **query: Any) -> list[str]:
    return [r.workflow_id for r in await store.list_runs(RunFilter(**query))]


async def test_each_filter(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    t0 = clock.now
    for i, (wid, kind) in enumerate(
        [("Order-1", "order"), ("order-2", "order"), ("refund-1", "refund"), ("ORDER-3", "x")]
    ):
        clock.now = t0 + i * 10
        await start(store, wid, kind)
    await store.terminate("order-2", None, "test")
    assert await ids(store) == ["ORDER-3", "refund-1", "order-2", "Order-1"]
    assert await ids(store, status="terminated") == ["order-2"]
    assert await ids(store, status="running", workflow_type="order") == ["Order-1"]
    assert await ids(store, workflow_type="refund") == ["refund-1"]
    assert await ids(store, since=t0 + 10) == ["ORDER-3", "refund-1", "order-2"]  # inclusive
    assert await ids(store, until=t0 + 10) == ["order-2", "Order-1"]  # inclusive
    assert await ids(store, since=t0 + 5, until=t0 + 25) == ["refund-1", "order-2"]
    assert await ids(store, since=t0 + 31) == []
    assert await ids(store, id_contains="order") == ["ORDER-3", "order-2", "Order-1"]
    assert await ids(store, id_contains="DER-") == ["ORDER-3", "order-2", "Order-1"]
    assert await ids(store, id_contains="order", status="running") == ["ORDER-3", "Order-1"]
    assert await ids(store, id_contains="nothing") == []
    assert await ids(store, limit=2) == ["ORDER-3", "refund-1"]
    assert await ids(store, limit=2, offset=2) == ["order-2", "Order-1"]
    assert await ids(store, offset=9) == []


async def test_the_id_search_is_a_plain_substring(open_store: Any) -> None:
    store = await open_store()
    for wid in ("a%b", "a_b", "axb", "a\\b", "a\\%b", "AB"):
        await start(store, wid)
    assert await ids(store, id_contains="%") == ["a\\%b", "a%b"]
    assert await ids(store, id_contains="a_b") == ["a_b"]
    assert await ids(store, id_contains="A_B") == ["a_b"]
    assert await ids(store, id_contains="\\") == ["a\\%b", "a\\b"]
    assert await ids(store, id_contains="\\%") == ["a\\%b"]
    assert sorted(await ids(store, id_contains="")) == sorted(await ids(store))


async def test_the_id_search_folds_the_case_of_every_letter(open_store: Any) -> None:
    store = await open_store()
    for wid in ("ÉTÉ-1", "été-2", "Ünïcode-3", "ete-4"):
        await start(store, wid)
    assert sorted(await ids(store, id_contains="été")) == ["ÉTÉ-1", "été-2"]
    assert sorted(await ids(store, id_contains="ÉTÉ")) == ["ÉTÉ-1", "été-2"]
    assert await ids(store, id_contains="üNÏ") == ["Ünïcode-3"]


async def test_keyset_paging_has_no_duplicates_or_gaps(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    # Runs in bursts that share a creation time: ties are ordered by creation order.
    for i in range(23):
        if i % 4 == 0:
            clock.advance(1)
        await start(store, f"wf-{i:02}", "even" if i % 2 == 0 else "odd")
    everything = await ids(store, limit=1000)
    assert everything == [f"wf-{i:02}" for i in reversed(range(23))]
    for query in ({}, {"workflow_type": "odd"}, {"id_contains": "wf-1"}):
        expected = await ids(store, limit=1000, **query)
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            page = await store.list_runs(RunFilter(limit=5, after=after, **query))
            pages += 1
            seen += [r.workflow_id for r in page]
            if len(page) < 5:
                break
            after = (page[-1].created_at, page[-1].row_id)
            if pages == 1:
                # New runs arriving meanwhile do not shift the pages that follow.
                clock.advance(1)
                await start(store, f"new-{len(expected)}", "odd")
        assert seen == expected, query
        assert pages > 1


async def test_paging_through_another_connection(open_store: Any, clock: FakeClock) -> None:
    writer, reader = await open_store(), await open_store()
    for i in range(12):
        clock.advance(0.5)
        await start(writer, f"w{i}")
    first = await reader.list_runs(RunFilter(limit=6))
    rest = await reader.list_runs(
        RunFilter(limit=100, after=(first[-1].created_at, first[-1].row_id))
    )
    assert [r.workflow_id for r in first + rest] == [f"w{i}" for i in reversed(range(12))]
