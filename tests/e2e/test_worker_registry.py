"""The worker registry, seen from a client: live workers are listed with what
they serve; a worker that stops leaves the list, one that went silent drops off."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow


@activity.defn
async def shout(x: str) -> str:
    return x.upper()


@workflow.defn
async def loud(x: str) -> str:
    return await shout(x)


async def test_a_running_worker_is_listed_until_it_stops(client: perdure.Client) -> None:
    assert await client.list_workers() == []
    async with fast_worker(client, [loud], [shout], task_queue="reg-q", identity="reg-1"):

        async def listed() -> bool:
            return bool(await client.list_workers())

        await wait_until(listed, what="the worker to register")
        [info] = await client.list_workers()
        assert (info.identity, info.task_queue, info.pid) == ("reg-1", "reg-q", os.getpid())
        assert info.host == socket.gethostname()
        # (With the built-ins every worker serves: schedules', the retention job's.)
        assert (info.workflows, info.activities) == (
            ["loud", "perdure.delete_closed", "perdure.schedule"],
            ["perdure.delete_closed", "perdure.schedule.start", "shout"],
        )
        assert info.heartbeat_at >= info.started_at
        assert await client.execute(loud, "hi", task_queue="reg-q") == "HI"
    assert await client.list_workers() == []  # a graceful stop unregisters


async def test_a_silent_worker_drops_off_the_list(client: perdure.Client) -> None:
    # As a SIGKILLed worker would: registered, then never heard of again.
    await client.store.register_worker(
        "ghost",
        host="elsewhere",
        pid=1,
        task_queue="q",
        workflows=[],
        activities=[],
        lease_timeout=0.05,
    )
    assert [w.identity for w in await client.list_workers()] == ["ghost"]

    async def gone() -> bool:
        return await client.list_workers() == []

    await wait_until(gone, timeout=5, what="the silent worker to drop off (3 leases)")
    assert [w.identity for w in await client.store.list_workers()] == ["ghost"]  # still a row


async def test_the_sync_client_lists_workers_too(db_url: str) -> None:
    import asyncio

    client = await perdure.Client.connect(db_url)
    sync = await asyncio.to_thread(perdure.SyncClient.connect, db_url)
    try:
        assert await asyncio.to_thread(sync.list_workers) == []
        async with fast_worker(client, [loud], [shout], task_queue="sync-q", identity="sync-1"):

            async def listed() -> bool:
                return bool(await asyncio.to_thread(sync.list_workers))

            await wait_until(listed, what="the worker to be listed")
            [info] = await asyncio.to_thread(sync.list_workers)
            assert (info.identity, info.task_queue) == ("sync-1", "sync-q")
    finally:
        await asyncio.to_thread(sync.close)
        await client.close()


@pytest.mark.parametrize(
    ("host", "pid", "lease", "takes_back"),
    [
        ("elsewhere", 4242, 60.0, False),  # another host: it cannot be told, so no
        ("this", "live", 60.0, False),  # a process of this host that still runs
        ("this", "gone", 60.0, True),  # one that has exited
        ("elsewhere", 4242, 0.01, True),  # silent for longer than its leases last
    ],
)
async def test_a_worker_takes_back_leases_only_from_a_predecessor_surely_gone(
    client: perdure.Client,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    pid: object,
    lease: float,
    takes_back: bool,
) -> None:
    if pid == "live":
        pid = os.getppid()  # (runs, and is not this process)
    elif pid == "gone":
        done = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            check=True,
            capture_output=True,
            text=True,
        )
        pid = int(done.stdout)
    await client.store.register_worker(
        "shared",
        host=socket.gethostname() if host == "this" else host,
        pid=int(pid),  # type: ignore[call-overload]
        task_queue="q",
        workflows=[],
        activities=[],
        lease_timeout=lease,
    )
    await asyncio.sleep(0.02)  # (past the shortest lease)
    asked: list[str] = []
    real = client.store.reclaim_leases

    async def reclaim(owner: str) -> int:
        asked.append(owner)
        return await real(owner)

    monkeypatch.setattr(client.store, "reclaim_leases", reclaim)
    async with fast_worker(client, [loud], [shout], identity="shared"):
        pass
    assert asked == (["shared"] if takes_back else [])
