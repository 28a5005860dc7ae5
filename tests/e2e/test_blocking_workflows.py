"""Workflow code that never gives the worker's loop back (``_worker/watchdog.py``).

A busy loop or a blocking call in workflow code held the worker's event
loop for good: every other run on it stood still, its leases went
unrenewed, and once they ran out the next worker froze on the same code.
Now the worker interrupts such code after ``deadlock_timeout`` seconds; the
turn fails with where the code was (``last_error``), is tried again with
backoff, and the run goes on once fixed code is deployed."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow

LIMIT = 0.3  # the tests' deadlock_timeout, in seconds
caught: list[str] = []


@activity.defn
async def step(i: int) -> int:
    return i


@workflow.defn(name="spinner")
async def spinner(n: int) -> int:
    await step(n)
    while True:  # a busy loop: what `while not ready: pass` does
        pass


@workflow.defn(name="spinner")
async def spinner_fixed(n: int) -> int:  # the fix, deployed under the same name
    await step(n)
    return n * 10


@workflow.defn
async def spins_at_once(n: int) -> int:
    while n:  # before its first await: in the turn that starts the run
        pass
    return n


@workflow.defn
async def sleeps_blocking(seconds: float) -> str:
    time.sleep(seconds)  # blocks in C: interrupted when the call returns
    return "slept"


@workflow.defn
async def swallows(n: int) -> str:
    await step(n)
    for _ in range(2):  # catches the interruption, and spins on: it comes again
        began = time.monotonic()
        try:
            while time.monotonic() - began < 5:
                pass
        except BaseException as exc:
            caught.append(type(exc).__name__)
    return "finished anyway"


@activity.defn
async def blocks_the_loop(seconds: float) -> str:
    time.sleep(seconds)  # blocking work in an async activity
    return "done"


@workflow.defn
async def calls_a_blocking_activity(seconds: float) -> str:
    return await blocks_the_loop(seconds)


@workflow.defn
async def fine(n: int) -> int:
    await workflow.sleep(0.05)
    return await step(n) + 1


async def _last_error(handle: perdure.WorkflowHandle, needle: str) -> str:
    found: list[str] = []

    async def has_it() -> bool:
        error = (await handle.describe()).last_error or ""
        found[:] = [error]
        return needle in error

    await wait_until(has_it, timeout=20, what=f"last_error to mention {needle!r}")
    return found[0]


async def test_a_busy_loop_is_interrupted_and_the_fixed_code_goes_on(
    client: perdure.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "perdure.worker")
    workflows = [spinner, fine]
    async with fast_worker(client, workflows, [step], deadlock_timeout=LIMIT):
        stuck = await client.start(spinner, 4)
        # The worker still serves: other runs start and end meanwhile.
        for i in range(3):
            assert await client.execute(fine, i) == i + 1
        error = await _last_error(stuck, "without awaiting")
        assert f"{__file__}:" in error and "in spinner" in error, error
        assert "deadlock_timeout is 0.3 s" in error
        description = await stuck.describe()
        assert description.status == "running"  # not failed: the code may be fixed
    types = [e["type"] for e in await stuck.history()]
    assert "WorkflowFailed" not in types and "WorkflowCompleted" not in types, types
    assert "has run" in caplog.text and "interrupting it" in caplog.text
    assert f"{__file__}:" in caplog.text
    async with fast_worker(client, [spinner_fixed], [step], deadlock_timeout=LIMIT):
        assert await stuck.result(timeout=30) == 40
    assert [e["type"] for e in await stuck.history()].count("ActivityCompleted") == 1


async def test_code_that_spins_before_its_first_await_is_interrupted(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [spins_at_once, fine], [step], deadlock_timeout=LIMIT):
        stuck = await client.start(spins_at_once, 1)
        assert await client.execute(fine, 5) == 6
        error = await _last_error(stuck, "without awaiting")
        assert "in spins_at_once" in error, error
        # A terminate is the store's alone (no turn runs the code): it ends it.
        await stuck.terminate("stuck in a busy loop")
        with pytest.raises(perdure.WorkflowTerminatedError):
            await stuck.result(timeout=10)


@pytest.mark.sqlite_only
async def test_a_blocking_call_is_interrupted_as_it_returns(client: perdure.Client) -> None:
    async with fast_worker(client, [sleeps_blocking, fine], [step], deadlock_timeout=LIMIT):
        stuck = await client.start(sleeps_blocking, 0.6)
        error = await _last_error(stuck, "without awaiting")
        assert "in sleeps_blocking" in error, error
        assert await client.execute(fine, 1) == 2
        assert (await stuck.describe()).status == "running"


@pytest.mark.sqlite_only
async def test_code_that_catches_the_interruption_still_fails_its_turn(
    client: perdure.Client,
) -> None:
    """Code that catches the interruption and spins on gets it again a limit
    later; what it does after is not committed: the turn ran past the limit,
    whatever it returned."""
    caught.clear()
    async with fast_worker(client, [swallows], [step], deadlock_timeout=LIMIT):
        handle = await client.start(swallows, 1)
        await _last_error(handle, "without awaiting")
        assert caught[:2] == ["TurnInterrupted", "TurnInterrupted"], caught
        assert (await handle.describe()).status == "running"
    assert "WorkflowCompleted" not in [e["type"] for e in await handle.history()]


@pytest.mark.sqlite_only
async def test_a_worker_without_a_deadlock_timeout_lets_slow_code_finish(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [sleeps_blocking], [step], deadlock_timeout=None):
        assert await client.execute(sleeps_blocking, 0.4) == "slept"


def test_the_interruption_never_lands_after_the_code_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race the lock closes: code that ends about when the watchdog
    fires. Hundreds of turns that straddle a 2-ms limit, while the watchdog
    takes its time to find where the code is (as with a deep stack): each
    either ran to its end or was interrupted, and no TurnInterrupted ever
    reaches the code after run() (here, this test), where it would fail
    the test."""
    from perdure._worker import watchdog
    from perdure._worker.watchdog import TurnBlocked, TurnInterrupted, Watchdog

    place = watchdog._place

    def slow_place(ident: int) -> str | None:
        time.sleep(0.0005)  # meanwhile the code may end, and the test go on
        return place(ident)

    monkeypatch.setattr(watchdog, "_place", slow_place)
    dog = Watchdog(0.002)
    dog.start()
    switching = sys.getswitchinterval()
    sys.setswitchinterval(0.00005)  # the two threads take turns often: the race is met
    outcomes = {"ended": 0, "blocked": 0, "interrupted inside": 0}

    def busy(seconds: float) -> None:
        began = time.monotonic()
        try:
            while time.monotonic() - began < seconds:
                pass
        except TurnInterrupted:
            outcomes["interrupted inside"] += 1
            raise

    try:
        deadline = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                dog.run(None, busy, 0.0015 + (i % 11) * 0.00025)
                outcomes["ended"] += 1
            except TurnBlocked:
                outcomes["blocked"] += 1
            # Code after the turn: a stray interruption would land here.
            for _ in range(200):
                pass
    finally:
        dog.stop()
        sys.setswitchinterval(switching)
    assert outcomes["blocked"] > 0 and outcomes["ended"] > 0, outcomes
    assert outcomes["interrupted inside"] <= outcomes["blocked"], outcomes
    assert dog.armed is None and dog.fired is None


async def test_a_turn_that_ends_in_time_is_not_touched(client: perdure.Client) -> None:
    async with fast_worker(client, [fine], [step], deadlock_timeout=LIMIT):
        results = await asyncio.gather(*(client.execute(fine, i) for i in range(20)))
    assert results == [i + 1 for i in range(20)]


def test_code_a_debugger_traces_is_not_interrupted() -> None:
    """Someone stopped at a breakpoint in workflow code (pdb, an IDE's
    debugger: a trace function on the thread's frames) is not interrupted."""
    from perdure._worker.watchdog import TurnBlocked, Watchdog

    def busy(seconds: float) -> str:
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            pass
        return "done"

    def tracer(frame: object, event: str, arg: object) -> object:
        return tracer

    dog = Watchdog(0.02)
    dog.start()
    try:
        with pytest.raises(TurnBlocked, match="without awaiting"):
            dog.run(None, busy, 0.2)
        sys.settrace(tracer)
        try:
            assert dog.run(None, busy, 0.2) == "done"
        finally:
            sys.settrace(None)
    finally:
        dog.stop()


async def test_an_async_activity_that_blocks_the_loop_is_named_not_stopped(
    client: perdure.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """An async activity that blocks holds the loop as blocking workflow
    code does, but it may be legitimate slow work: it is not interrupted.
    The worker says where the loop is held (leases are not renewed
    meanwhile), and when it runs again."""
    caplog.set_level(logging.WARNING, "perdure.worker")
    workflows, activities = [calls_a_blocking_activity], [blocks_the_loop]
    async with fast_worker(client, workflows, activities, deadlock_timeout=LIMIT):
        assert await client.execute(calls_a_blocking_activity, 1.2) == "done"
        await wait_until(_said(caplog, "runs again"), what="the end of the stall to be told")
    assert "event loop has run nothing for" in caplog.text
    assert f"in blocks_the_loop ({__file__}:" in caplog.text
    assert "make it a plain def activity" in caplog.text


def _said(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], Awaitable[bool]]:
    async def said() -> bool:
        return text in caplog.text

    return said


def test_a_pause_of_the_garbage_collector_is_not_the_code_s_time() -> None:
    """A full collection holds every thread up, a turn's included (with
    thousands of workflows in flight it took up to 1.5 s here): that time
    is not the code's, and does not count against the limit."""
    import gc

    from perdure._worker.watchdog import TurnBlocked, Watchdog

    junk: list[list[int]] = []
    took = 0.0
    while took < 0.3 and len(junk) < 12_000_000:  # a collection long enough to tell
        junk.extend([i] for i in range(1_500_000))
        began = time.monotonic()
        gc.collect()
        took = time.monotonic() - began
    dog = Watchdog(0.1)
    dog.start()
    try:
        dog.run(None, gc.collect)  # no TurnBlocked: the collector's time is not counted
        with pytest.raises(TurnBlocked):  # while code of its own that long is interrupted
            dog.run(None, _busy_for, took)
    finally:
        dog.stop()
        junk.clear()
    assert took >= 0.3, f"the collections here took only {took:.2f} s"


def _busy_for(seconds: float) -> None:
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        pass


def test_a_long_turn_of_short_callbacks_is_not_interrupted() -> None:
    """A turn that runs many callbacks (a large fan-out's, each to its next
    await) is long but does not hold the loop: its loop's count of callbacks
    moves, and the watchdog lets it be. One callback as long is
    interrupted."""
    from types import SimpleNamespace

    from perdure._worker.watchdog import TurnBlocked, Watchdog

    instance = SimpleNamespace(loop=SimpleNamespace(ran=0), info=None)

    def callbacks(count: int, seconds: float) -> str:
        for _ in range(count):
            _busy_for(seconds)
            instance.loop.ran += 1  # (as WorkflowLoop.run_one counts them)
        return "ran"

    dog = Watchdog(0.1)
    dog.start()
    try:
        assert dog.run(instance, callbacks, 40, 0.01) == "ran"  # 0.4 s in all
        with pytest.raises(TurnBlocked):
            dog.run(instance, callbacks, 1, 0.4)
    finally:
        dog.stop()
