"""The activity thread pool and the stop of a call in its thread
(``perdure._worker.threads``), without a worker around them."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import CancelledError, Future

import pytest

from perdure._worker.threads import ActivityThreads, AttemptEnded, ThreadedCall


def _wait(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_results_exceptions_and_reuse_of_idle_threads() -> None:
    pool = ActivityThreads(4, "t")
    try:
        assert pool.submit(pow, 2, 10).result(5) == 1024
        failed = pool.submit(int, "x")
        with pytest.raises(ValueError):
            failed.result(5)
        for i in range(20):  # one after another: the idle thread takes each
            assert pool.submit(str, i).result(5) == str(i)
        assert len(pool._threads) == 1
        assert all(t.daemon for t in pool._threads)
    finally:
        pool.shutdown()


def test_at_most_max_threads_and_the_rest_queue() -> None:
    pool = ActivityThreads(2, "t")
    gate = threading.Event()
    try:
        held = [pool.submit(gate.wait, 5) for _ in range(2)]
        queued = [pool.submit(str, i) for i in range(3)]
        assert len(pool._threads) == 2
        assert not any(f.done() for f in queued)
        gate.set()
        assert [f.result(5) for f in queued] == ["0", "1", "2"]
        assert all(f.result(5) for f in held)
        # The count of free threads came out right: each later item finds one.
        assert [pool.submit(str, i).result(5) for i in range(10)] == [str(i) for i in range(10)]
        assert len(pool._threads) == 2
    finally:
        pool.shutdown()


def test_shutdown_cancels_what_waits_and_refuses_more() -> None:
    pool = ActivityThreads(1, "t")
    gate = threading.Event()
    running = pool.submit(gate.wait, 5)
    waiting = pool.submit(str, "never")
    pool.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(CancelledError):
        waiting.result(5)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(str, 1)
    gate.set()
    assert running.result(5) is True
    _wait(lambda: not pool._threads[0].is_alive())


def test_a_stopped_call_gets_attempt_ended_in_its_thread() -> None:
    ended: list[ThreadedCall] = []
    call = ThreadedCall(ended.append)
    seen: list[str] = []
    started = threading.Event()

    def spins() -> None:
        started.set()
        try:
            while True:
                time.sleep(0.001)
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    future: Future[object] = Future()

    def run() -> None:
        try:
            future.set_result(call.run(spins, (), {}))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    started.wait(5)
    assert call.stop() is True
    with pytest.raises(AttemptEnded):
        future.result(5)
    assert seen == ["AttemptEnded"] and ended == [call]
    assert call.stop() is False  # it has ended: nothing more is raised anywhere


def test_a_call_that_returned_is_not_stopped_and_its_thread_is_left_alone() -> None:
    call = ThreadedCall()
    assert call.run(sum, ([1, 2],), {}) == 3
    assert call.stop() is False
    time.sleep(0.01)  # (a stray exception would land in this thread now)
    assert sum([1]) == 1


def _traced_call_returns_in(thread_work: object) -> bool:
    """Run ``thread_work`` and then a function call under a trace function,
    in a thread of their own: whether that call returned within 5 s."""
    returned = threading.Event()

    def tracer(frame: object, event: str, arg: object) -> object:
        return tracer

    def one() -> int:
        return 1

    def body() -> None:
        thread_work()  # type: ignore[operator]
        sys.settrace(tracer)
        try:
            one()
        finally:
            sys.settrace(None)
        returned.set()

    threading.Thread(target=body, daemon=True).start()
    return returned.wait(5)


def test_a_stopped_call_leaves_its_thread_fit_for_a_debugger() -> None:
    """After a call was stopped (its AttemptEnded raised in it), its thread
    runs on normally, traced calls included. The exception had then been
    "taken back" by sending NULL, which left CPython 3.11's
    asynchronous-exception signal set: the thread's next call under a trace
    function (a debugger, coverage) looped for ever."""

    def stopped_call() -> None:
        call = ThreadedCall()
        began = threading.Event()

        def work() -> str:
            began.set()
            end = time.monotonic() + 5.0
            while time.monotonic() < end:
                pass
            return "ran"

        threading.Thread(target=lambda: (began.wait(5), call.stop()), daemon=True).start()
        with pytest.raises(AttemptEnded):
            call.run(work, (), {})

    assert _traced_call_returns_in(stopped_call)
