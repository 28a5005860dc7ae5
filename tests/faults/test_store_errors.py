"""One StoreError from each store call a worker makes: the worker must survive it.

Each parametrized case makes one store method fail once (the database was locked,
full, or its connection dropped at that moment) under a workflow that uses an
activity, a retry, a timer and a signal. The worker must keep running (its
``run()`` task does not end), the workflow must finish with the right result, and
nothing may be recorded twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure import ApplicationError, RetryPolicy, activity, workflow
from perdure.errors import StoreError

attempts: Counter[str] = Counter()


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20)))
async def flaky(tag: str) -> str:
    attempts[tag] += 1
    activity.heartbeat(tag)
    if attempts[tag] == 1:
        raise ApplicationError("first attempt fails")
    return f"{tag}!"


@workflow.defn
async def uses_everything(tag: str) -> list[str]:
    first = await flaky(tag)
    await workflow.sleep(0.05)
    signal = await workflow.wait_signal("go")
    return [first, str(signal)]


WORKER_CALLS = [
    "fire_due_timers",
    "claim_workflow_tasks",
    "claim_activity_tasks",
    "next_due",
    "load_turn",
    "commit_turn",
    "fail_turn",
    "complete_activity",
    "retry_activity",
    "renew_leases",
    "record_heartbeat",
]


@pytest.mark.parametrize("method", WORKER_CALLS)
async def test_the_worker_survives_a_store_error_in(method: str, tmp_path: Path) -> None:
    attempts.clear()
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'errors.db'}")
    client.poll_interval = 0.02
    store: Any = client.store
    real = getattr(store, method)
    failed: list[str] = []

    async def fail_once(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(method)
            raise StoreError(f"injected: {method} failed (database is locked)")
        return await real(*args, **kwargs)

    setattr(store, method, fail_once)
    # Without a cache every turn loads its run (a cached instance needs no read).
    cache = {"cache_size": 0} if method == "load_turn" else {}
    worker = perdure.Worker(
        client, [uses_everything], [flaky], poll_interval=0.02, lease_timeout=0.6, **cache
    )
    try:
        async with worker:
            handle = await client.start(uses_everything, "t", id="wf")
            for _ in range(500):
                if (await handle.describe()).waiting_signals == ["go"]:
                    break
                assert worker._background is not None and not worker._background.done(), (
                    f"the worker stopped after a StoreError in {method}"
                )
                await asyncio.sleep(0.02)
            await handle.signal("go", 1)
            assert await handle.result(timeout=20) == ["t!", "1"]
            assert not worker._background.done(), f"the worker stopped after {method} failed"
    finally:
        await client.close()
    history = await _history(tmp_path, handle.run_id)
    types = Counter(e["type"] for e in history)
    assert types["ActivityCompleted"] == 1 and types["TimerFired"] == 1, types
    assert types["SignalReceived"] == 1 and types["WorkflowCompleted"] == 1, types
    if method in ("fire_due_timers", "claim_workflow_tasks", "next_due", "load_turn"):
        assert failed == [method]  # every worker hits these
    for name in failed:
        assert name == method


async def _history(path: Path, run_id: str | None) -> list[dict[str, Any]]:
    client = await perdure.Client.connect(f"sqlite:///{path / 'errors.db'}")
    try:
        return await client.get_handle("wf", run_id).history()
    finally:
        await client.close()


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20)))
async def counted(tag: str) -> str:
    attempts[tag] += 1
    return tag


@workflow.defn
async def two_steps(tag: str) -> list[str]:
    return [await counted(f"{tag}-1"), await counted(f"{tag}-2")]


async def test_a_turn_the_database_keeps_refusing_is_said_on_the_run(tmp_path: Path) -> None:
    """A turn whose commit the database refuses, time after time (a value it
    cannot hold): the run says why in ``last_error``, the activity whose
    outcome that turn carried is not run again, and once the database takes
    the turn the run goes on. (Before, the task stayed leased with no word on
    the run, and the activity ran again each time its lease ran out.)"""
    attempts.clear()
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'errors.db'}")
    client.poll_interval = 0.02
    store: Any = client.store
    real = store.commit_turn
    refusing = [True]
    refused: list[str] = []

    async def refuse(commit: Any) -> Any:
        if refusing[0]:
            refused.append(commit.run_id)
            raise StoreError("injected: PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return await real(commit)

    store.commit_turn = refuse
    worker = perdure.Worker(client, [two_steps], [counted], poll_interval=0.02, lease_timeout=0.3)
    try:
        async with worker:
            handle = await client.start(two_steps, "t", id="wf")
            for _ in range(500):
                error = (await handle.describe()).last_error or ""
                if "cannot contain NUL" in error:
                    break
                await asyncio.sleep(0.02)
            assert "the database refused this turn's commit" in error, error
            await asyncio.sleep(1.0)  # three lease timeouts: nothing runs again meanwhile
            assert attempts == {"t-1": 1}, attempts
            assert worker._background is not None and not worker._background.done()
            refusing[0] = False
            assert await handle.result(timeout=20) == ["t-1", "t-2"]
    finally:
        await client.close()
    assert attempts == {"t-1": 1, "t-2": 1}, attempts
    assert refused and set(refused) == {handle.run_id}
    types = Counter(e["type"] for e in await _history(tmp_path, handle.run_id))
    assert types["ActivityCompleted"] == 2 and types["WorkflowCompleted"] == 1, types
