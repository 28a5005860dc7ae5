"""The garbage-collection policy (perdure._gcpolicy): raised thresholds while
a worker runs or a client is connected, restored by the last of them to stop,
and never imposed on a program that chose its own."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import perdure
from perdure import activity, workflow


@activity.defn
async def noop() -> int:
    return 1


@workflow.defn
async def one_step() -> int:
    return await noop()


@pytest.fixture(autouse=True)
def _default_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    yield
    gc.set_threshold(*saved)


async def connect(tmp_path: Path, tune_gc: bool = False) -> perdure.Client:
    # (A client leaves the thresholds alone here unless asked: these tests
    # watch what the workers do.)
    return await perdure.Client.connect(f"sqlite:///{tmp_path / 'gc.db'}", tune_gc=tune_gc)


async def test_a_running_worker_raises_the_thresholds_and_restores_them(tmp_path: Path) -> None:
    client = await connect(tmp_path)
    try:
        worker = perdure.Worker(client, [one_step], [noop])
        async with worker:
            assert await client.execute(one_step) == 1
            assert gc.get_threshold() == (20_000, 100, 10)
            second = perdure.Worker(client, [one_step], [noop])
            async with second:
                assert await client.execute(one_step) == 1
            # Another worker still runs: the policy stays.
            assert gc.get_threshold() == (20_000, 100, 10)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        await client.close()


async def test_tune_gc_false_leaves_the_thresholds_alone(tmp_path: Path) -> None:
    client = await connect(tmp_path)
    try:
        async with perdure.Worker(client, [one_step], [noop], tune_gc=False):
            assert await client.execute(one_step) == 1
            assert gc.get_threshold() == (700, 10, 10)
    finally:
        await client.close()


async def test_a_program_s_own_choices_are_kept(tmp_path: Path) -> None:
    client = await connect(tmp_path)
    try:
        gc.set_threshold(50_000, 5, 10)  # higher young, lower middle: only middle is raised
        async with perdure.Worker(client, [one_step], [noop]):
            assert await client.execute(one_step) == 1
            assert gc.get_threshold() == (50_000, 100, 10)
        assert gc.get_threshold() == (50_000, 5, 10)
        # Changed while the worker ran: the program's change wins over the restore.
        async with perdure.Worker(client, [one_step], [noop]):
            assert await client.execute(one_step) == 1
            gc.set_threshold(1_000, 10, 10)
        assert gc.get_threshold() == (1_000, 10, 10)
    finally:
        await client.close()


async def test_a_connected_client_raises_the_thresholds_until_it_closes(tmp_path: Path) -> None:
    client = await connect(tmp_path, tune_gc=True)
    try:
        assert gc.get_threshold() == (20_000, 100, 10)
        async with perdure.Worker(client, [one_step], [noop]):
            assert await client.execute(one_step) == 1
        # The worker stopped, the client still holds the policy.
        assert gc.get_threshold() == (20_000, 100, 10)
    finally:
        await client.close()
    assert gc.get_threshold() == (700, 10, 10)
    await client.close()  # a second close gives nothing back twice
    assert gc.get_threshold() == (700, 10, 10)


def test_a_sync_client_holds_the_policy_too_unless_told_not_to(tmp_path: Path) -> None:
    with perdure.SyncClient.connect(f"sqlite:///{tmp_path / 'sync.db'}"):
        assert gc.get_threshold() == (20_000, 100, 10)
    assert gc.get_threshold() == (700, 10, 10)
    with perdure.SyncClient.connect(f"sqlite:///{tmp_path / 'sync.db'}", tune_gc=False):
        assert gc.get_threshold() == (700, 10, 10)


def test_a_client_that_cannot_connect_leaves_the_thresholds_alone(tmp_path: Path) -> None:
    with pytest.raises(perdure.StoreError):
        perdure.SyncClient.connect(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    assert gc.get_threshold() == (700, 10, 10)


@activity.defn
async def beating() -> int:
    activity.heartbeat("alive")
    return 2


@activity.defn
def threaded() -> int:
    return 3


@workflow.defn
async def steps_of_every_kind() -> int:
    total = 0
    for _ in range(5):
        total += await noop() + await beating() + await threaded()
    return total


async def test_steps_leave_no_cyclic_garbage(tmp_path: Path) -> None:
    # With raised thresholds, garbage that only the cyclic collector can free
    # piles up between collections and then costs a walk: a step must free
    # what it made by reference counting alone. (An attempt's task once held
    # its context, whose heartbeat callback held the attempt, which held the
    # task: 17 objects per activity, every step.)
    client = await connect(tmp_path)
    try:
        async with perdure.Worker(
            client, [steps_of_every_kind], [noop, beating, threaded], poll_interval=0.02
        ):
            assert await client.execute(steps_of_every_kind) == 30  # warm: imports, caches
            gc.collect()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                assert await client.execute(steps_of_every_kind) == 30
                gc.collect()
                # Perdure's own objects only: anything else in the process
                # (pytest, other tests' leftovers) is not this test's subject.
                leaked = [
                    type(o).__qualname__
                    for o in gc.garbage
                    if type(o).__module__.startswith("perdure")
                ]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
    finally:
        await client.close()
    assert not leaked, sorted(set(leaked))


gate: list[asyncio.Event] = []
at_gate = [0]  # attempts of held waiting at the gate now


@activity.defn
async def held(i: int) -> int:
    at_gate[0] += 1
    try:
        await gate[0].wait()
    finally:
        at_gate[0] -= 1
    return i


@workflow.defn
async def holding(k: int) -> int:
    total = 0
    for i in range(k):
        total += await held(i)
    return total


# What a workflow in flight keeps alive for the collector to walk (its
# instance, loop, task and coroutines; its activity's task, coroutines and
# attempt; its waiter's coroutines and event): 70 objects in session 25 on
# CPython 3.11, 87 before closures made at each step or wait became
# functions with partials and an attempt's record became its own context
# for activity.info() and heartbeat(); 78 in session 65 (79 until a
# run's waits on conditions kept no list before the first). In a burst of thousands of
# workflows these are what the middle collections walk (docs/decisions.md,
# session 25). Room is left for interpreters that count a few more.
MAX_TRACKED_PER_WORKFLOW = 80


async def test_a_workflow_in_flight_keeps_few_objects_for_the_collector(tmp_path: Path) -> None:
    gate[:] = [asyncio.Event()]
    client = await connect(tmp_path)
    try:
        async with perdure.Worker(client, [holding], [held], max_concurrent_activities=1000):
            gate[0].set()
            assert await client.execute(holding, 2) == 1  # (warm: caches, statements)
            gate[0].clear()
            gc.collect()
            before = len(gc.get_objects())
            n = 300
            handles = [await client.start(holding, 2) for _ in range(n)]
            waiters = [asyncio.ensure_future(h.result()) for h in handles]
            await wait_until_at_gate(n)
            gc.collect()
            per_workflow = (len(gc.get_objects()) - before) / n
            gate[0].set()
            assert await asyncio.gather(*waiters) == [1] * n
        assert per_workflow <= MAX_TRACKED_PER_WORKFLOW, per_workflow
    finally:
        await client.close()


async def wait_until_at_gate(n: int) -> None:
    """Until ``n`` attempts of ``held`` wait at the gate (each workflow's first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while at_gate[0] < n:
        assert loop.time() < deadline, f"{at_gate[0]} of {n} attempts started"
        await asyncio.sleep(0.01)
