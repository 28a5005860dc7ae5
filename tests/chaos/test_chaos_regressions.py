"""Bugs the chaos fuzzer found, each pinned by a deterministic reproducer.

1. A lease renewal that raced with an activity retry stopped the *new* attempt as "lost":
   the renewal was sent with the failed attempt's token, the same task row had meanwhile
   been claimed again (new token) by the same worker, and the lost lease was matched by
   task id only. The healthy attempt was cancelled silently and the activity stalled for
   a whole lease timeout before another attempt ran (30 s with the default lease).
   Fixed in ``_worker.leases.keep_leases`` (lost leases are matched by task id and token).
2. ``async with Worker(...)`` whose body ends before the worker's task first ran (an
   exception right away) never returns: ``stop()`` found no ``_stopping`` event yet, and
   ``run()`` then created a fresh one and polled forever. Fixed.
3. A signal accepted while a closing turn is computed (its inbox row arrives between
   ``load_turn`` and ``commit_turn``) is deleted by ``close_run`` with the run's inbox:
   ``signal()`` returned, but no history records it. Fixed.
4. The default child workflow id, ``<workflow id>/child-<n>``, is the same in every run
   of a continue-as-new chain: the second run's child fails to start (id taken by the
   first run's child). Fixed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure import ApplicationError, RetryPolicy, activity, workflow

renewal_started = asyncio.Event()
second_attempt_running = asyncio.Event()
attempts: list[int] = []


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10)))
async def flaky_once() -> int:
    attempt = activity.info().attempt
    attempts.append(attempt)
    if attempt == 1:
        await renewal_started.wait()  # the renewal has taken attempt 1's token
        raise ApplicationError("first attempt fails")
    if attempt == 2:
        second_attempt_running.set()
        await asyncio.sleep(0.3)
    return attempt


@workflow.defn
async def retry_once() -> int:
    return await flaky_once()


async def test_a_renewal_racing_an_activity_retry_does_not_stop_the_new_attempt(
    tmp_path: Path,
) -> None:
    renewal_started.clear()
    second_attempt_running.clear()
    attempts.clear()
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'race.db'}")
    client.poll_interval = 0.02
    store: Any = client.store
    real_renew: Callable[..., Awaitable[list[int]]] = store.renew_leases

    async def renew_after_the_retry(leases: list[tuple[int, str]], lease: float) -> list[int]:
        # Hold this renewal (it carries attempt 1's token) until attempt 2 of the same
        # task has been claimed: exactly the interleaving the chaos run hit.
        if leases and not renewal_started.is_set():
            renewal_started.set()
            await asyncio.wait_for(second_attempt_running.wait(), 10)
        return await real_renew(leases, lease)

    store.renew_leases = renew_after_the_retry
    try:
        worker = perdure.Worker(
            client, [retry_once], [flaky_once], lease_timeout=0.9, poll_interval=0.02
        )
        async with worker:
            handle = await client.start(retry_once)
            result = await handle.result(timeout=10)
    finally:
        await client.close()
    if attempts != [1, 2]:
        pytest.fail(
            f"attempt 2 was stopped as 'lost' and the activity ran again after a lease "
            f"timeout: attempts {attempts}, result {result} (fix: _worker.leases.keep_leases must "
            f"match lost leases by task id *and* token)"
        )
    assert result == 2


@workflow.defn
async def idle() -> None:
    return None


async def test_leaving_async_with_at_once_stops_the_worker(tmp_path: Path) -> None:
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'quick.db'}")
    worker = perdure.Worker(client, [idle], [], poll_interval=0.02)
    try:

        async def enter_and_leave() -> None:
            async with worker:
                pass  # an exception here (a failed assertion) takes the same path

        await asyncio.wait_for(enter_and_leave(), 2)
    finally:
        worker.stop()  # the worker task has started by now: this one is heard
        if worker._background is not None:
            await asyncio.wait_for(worker._background, 10)
        await client.close()


@workflow.defn
async def entity(generation: int) -> str:
    item = await workflow.wait_signal("item")
    if generation == 0:
        workflow.continue_as_new(1)
    return str(item)


async def test_a_signal_accepted_during_a_closing_turn_is_not_lost(tmp_path: Path) -> None:
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'entity.db'}")
    client.poll_interval = 0.02
    store: Any = client.store
    real_commit: Callable[..., Awaitable[bool]] = store.commit_turn
    sent: list[str] = []

    async def signal_then_commit(commit: Any) -> bool:
        # The turn that continues-as-new has been computed; a client signals the
        # still-open run (accepted: signal() returns) before the turn commits.
        if commit.close_status == "continued_as_new" and not sent:
            sent.append("racing")
            await client.get_handle("entity-1").signal("item", "racing")
        return await real_commit(commit)

    store.commit_turn = signal_then_commit
    try:
        async with perdure.Worker(client, [entity], [], poll_interval=0.02):
            first = await client.start(entity, 0, id="entity-1")
            await first.signal("item", "first")
            # Run 1's closing turn is computed again with the racing signal,
            # which no wait of run 1 takes: it goes on to run 2, which takes it.
            assert await client.get_handle("entity-1").result(timeout=10) == "racing"
            runs = await client.list(workflow="entity")
            received = {}
            for run in runs:
                history = await client.get_handle("entity-1", run.run_id).history()
                received[run.status] = [
                    e["payload"] for e in history if e["type"] == "SignalReceived"
                ]
    finally:
        await client.close()
    assert sent == ["racing"]
    assert received == {"continued_as_new": ["first", "racing"], "completed": ["racing"]}


@workflow.defn
async def kid(n: int) -> int:
    return n


@workflow.defn
async def parent_rolls_over(generation: int) -> int:
    got = await workflow.execute_child(kid, generation)  # default child id
    if generation == 0:
        workflow.continue_as_new(1)
    return got


async def test_default_child_ids_do_not_collide_across_continue_as_new(tmp_path: Path) -> None:
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'kids.db'}")
    client.poll_interval = 0.02
    try:
        async with perdure.Worker(client, [parent_rolls_over, kid], [], poll_interval=0.02):
            handle = await client.start(parent_rolls_over, 0, id="parent")
            assert await handle.result(timeout=10) == 1
    finally:
        await client.close()
