"""An idle worker's safety-net poll (Worker._idle_wait). On a store that
hears every other process's commit (SQLite: its data_version watch), each
idle poll in a row that slept its wait out doubles the next wait, up to
IDLE_POLL_MAX, and work written by another process still wakes the worker
at once. PostgreSQL, whose NOTIFY is lost if its sender dies between its
commit and the NOTIFY, keeps ``poll_interval``."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import wait_until

import perdure
from perdure import workflow
from perdure._worker import worker as worker_module


@workflow.defn
async def hello(name: str) -> str:
    return f"hello {name}"


async def test_the_wait_doubles_up_to_the_cap_only_where_every_commit_is_heard(
    client: perdure.Client,
) -> None:
    worker = perdure.Worker(client, [hello], [], poll_interval=0.2)
    waits = []
    for quiet in range(7):
        worker._quiet = quiet
        waits.append(worker._idle_wait())
    if client.store.hears_every_commit:  # SQLite
        assert waits == pytest.approx([0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])
    else:  # PostgreSQL
        assert waits == pytest.approx([0.2] * 7)
    # A poll interval above the cap is the user's: it is never lowered.
    slow = perdure.Worker(client, [hello], [], poll_interval=5.0)
    slow._quiet = 3
    assert slow._idle_wait() == 5.0


async def test_a_backed_off_worker_still_hears_another_process_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a wake-up can end the worker's sleep here: its next wait is the cap.
    monkeypatch.setattr(worker_module, "IDLE_POLL_MAX", 600.0)
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    client = await perdure.Client.connect(url)
    other = await perdure.Client.connect(url)  # its own connection: another process, to SQLite
    try:
        async with perdure.Worker(client, [hello], [], poll_interval=0.05) as worker:
            sleeps: list[float] = []
            sleep_or_wake = worker._sleep_or_wake

            async def recorded(delay: float) -> bool:
                sleeps.append(delay)
                return await sleep_or_wake(delay)

            worker._sleep_or_wake = recorded  # type: ignore[method-assign]

            async def backed_off() -> bool:
                return worker._quiet >= 4  # (waits of 0.05, 0.1, 0.2 and 0.4 s slept out)

            await wait_until(backed_off, what="the idle worker to back off")
            worker._quiet = 20  # from its next idle sleep on: the cap, 600 s

            async def in_long_sleep() -> bool:
                return bool(sleeps) and sleeps[-1] == 600.0 and worker.idle

            await wait_until(in_long_sleep, what="the worker's 600-s idle sleep")
            polls = worker.polls
            handle = await other.start(hello, "there")
            assert await handle.result(timeout=10) == "hello there"
            assert worker.polls > polls  # woken, it polled again at once
    finally:
        await other.close()
        await client.close()
