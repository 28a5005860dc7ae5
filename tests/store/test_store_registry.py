"""The worker registry: what every backend must do with it."""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock

from perdure._store.base import Store


async def register(store: Store, identity: str, **changes: Any) -> None:
    fields: dict[str, Any] = {
        "host": "box-1",
        "pid": 42,
        "task_queue": "q",
        "workflows": ["b_flow", "a_flow"],
        "activities": ["charge"],
        "lease_timeout": 10.0,
    }
    fields.update(changes)
    await store.register_worker(identity, **fields)


async def test_a_registered_worker_is_listed_with_what_it_serves(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await register(store, "w-1")
    [w] = await store.list_workers()
    assert (w.identity, w.host, w.pid, w.task_queue) == ("w-1", "box-1", 42, "q")
    assert (w.workflows, w.activities, w.lease_timeout) == (["a_flow", "b_flow"], ["charge"], 10)
    assert w.started_at == w.heartbeat_at == clock.now


async def test_heartbeats_refresh_and_unknown_workers_are_reported(
    open_store: Any, clock: FakeClock
) -> None:
    a, b = await open_store(), await open_store()
    await register(a, "w-1")
    clock.advance(7)
    assert await b.heartbeat_worker("w-1") is True
    assert await b.heartbeat_worker("nobody") is False
    [w] = await a.list_workers()
    assert w.heartbeat_at == clock.now and w.started_at == clock.now - 7


async def test_registering_again_takes_the_row_over_and_unregister_removes_it(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await register(store, "w-1")
    await register(store, "w-2", host="box-2")
    clock.advance(1)
    await register(store, "w-1", pid=43, task_queue="other")  # a restart, same identity
    workers = {w.identity: w for w in await store.list_workers()}
    assert set(workers) == {"w-1", "w-2"}
    assert (workers["w-1"].pid, workers["w-1"].task_queue) == (43, "other")
    await store.unregister_worker("w-1")
    await store.unregister_worker("w-1")  # idempotent
    assert [w.identity for w in await store.list_workers()] == ["w-2"]


async def test_workers_dead_for_a_day_are_forgotten(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await register(store, "killed")
    clock.advance(3600)
    await register(store, "recent-but-silent")
    clock.advance(86_400 - 1800)  # "killed" is silent for more than a day now
    await register(store, "new")
    assert {w.identity for w in await store.list_workers()} == {"recent-but-silent", "new"}
