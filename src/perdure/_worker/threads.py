"""Plain ``def`` activities in threads, and how an attempt that has ended is
stopped in its thread.

A thread cannot be killed. When an attempt ends while its function still
runs (its start_to_close_timeout passed, its workflow cancelled it, its lease
was lost, the worker stops), the function had run on, holding one of the
worker's threads: a few hung calls (an HTTP request with no timeout) and no
plain ``def`` activity ran on that worker again, each new attempt timing out
while it waited for a thread. Now the worker raises ``AttemptEnded`` in the
function's thread (a CancelledError, as Temporal's Python SDK raises its
cancellation there): a function busy in Python stops at its next line, one
blocked in a call stops as the call returns (rather than going on to its
next side effect, which the attempt that replaced it may be doing too). And the pool keeps
``SPARE_THREADS`` threads beyond the worker's slots for such functions, so
that new attempts still find a thread while they finish. CPython only
(``PyThreadState_SetAsyncExc``); elsewhere the function runs on, as before.

The pool's threads are daemons (``ActivityThreads``): a function blocked in
a call past its worker's stop does not keep the process alive, as
``ThreadPoolExecutor``'s threads did (the interpreter joins them at exit,
so ``perdure worker`` had not exited on SIGTERM until the call returned).
Its attempt is retried elsewhere once its lease runs out, as after a crash.
``in_thread`` runs the function there, and carries a BaseException of the
code's own back to the loop as ``Escaped``. Imports the standard library
and ``perdure.activity``'s CompleteAsyncError.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from perdure._worker.asyncexc import AVAILABLE, absorb, send
from perdure.activity import CompleteAsyncError

__all__ = [
    "SPARE_THREADS",
    "ActivityThreads",
    "AttemptEnded",
    "Escaped",
    "ThreadedCall",
    "in_thread",
]

# Threads that functions whose attempt ended may hold, beyond the worker's
# activity slots, before new attempts wait for a thread.
SPARE_THREADS = 64


class AttemptEnded(asyncio.CancelledError):
    """Raised in the thread of a plain ``def`` activity whose attempt has
    ended while it ran: its outcome is no longer wanted (another attempt may
    be running). A CancelledError, as ``heartbeat()`` raises for a stopped
    attempt, so a BaseException: ``except Exception`` in the function does
    not swallow it; ``finally`` blocks run."""


class ThreadedCall:
    """One call of a plain ``def`` activity in a pool thread. ``run`` runs in
    the thread; ``stop`` (from the loop) raises AttemptEnded there, once, if
    the function still runs. Both hold the lock while they look, so the
    exception never reaches the thread after ``run`` has let go of it (where
    the thread may already run another attempt)."""

    __slots__ = ("_ident", "_lock", "_sent", "on_end")

    def __init__(self, on_end: Callable[[ThreadedCall], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._ident: int | None = None
        self._sent = False
        self.on_end = on_end  # told, in the thread, when a stopped call ends

    def run(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        try:
            with self._lock:
                self._ident = threading.get_ident()
            return fn(*args, **kwargs)
        finally:  # (also if AttemptEnded lands before fn's first line)
            with self._lock:
                self._ident = None
            if self._sent:
                absorb(AttemptEnded)  # (sent, not raised yet: raised and dropped here)
            if self._sent and self.on_end is not None:
                self.on_end(self)

    def stop(self) -> bool:
        """Raise AttemptEnded in the call's thread if its function still
        runs (and this was not done before); True if the function still runs."""
        with self._lock:
            if self._ident is None:
                return False
            if not self._sent and AVAILABLE:
                self._sent = True
                send(self._ident, AttemptEnded)
            return True


_Item = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ActivityThreads(Executor):
    """A pool of at most ``max_threads`` daemon threads, made as work finds
    none free (as ThreadPoolExecutor's are, whose threads the interpreter
    joins at exit). A thread says it is free before it hands back its
    result, so work submitted one item after another takes the same thread."""

    def __init__(self, max_threads: int, name: str) -> None:
        self._max = max_threads
        self._name = name
        self._work: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._free = 0  # threads done with their work and no item owed to them
        self._owed = 0  # items queued while every thread was busy
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the activity threads are shut down")
            self._work.put((future, fn, args, kwargs))
            if self._free:
                self._free -= 1  # (one of them takes it)
            elif len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._owed += 1  # (the next thread to finish takes it)
        return future

    def _serve(self) -> None:
        item = self._work.get()
        while item is not None:
            future, fn, args, kwargs = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # (the future carries it, as ThreadPoolExecutor's)
                    self._done()
                    future.set_exception(exc)
                    del exc
                else:
                    self._done()
                    future.set_result(result)
                    del result
            else:
                self._done()
            del future, fn, args, kwargs
            item = self._work.get()

    def _done(self) -> None:
        with self._lock:
            if self._owed:
                self._owed -= 1
            else:
                self._free += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()


class Escaped(Exception):
    """A BaseException that a plain ``def`` activity's code raised in its pool
    thread (SystemExit, KeyboardInterrupt): signals reach only the main
    thread, so there it is the code's own, and the attempt's failure, carried
    to the loop as an Exception."""

    def __init__(self, inner: BaseException) -> None:
        super().__init__(inner)
        self.inner = inner


def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (Exception, asyncio.CancelledError, CompleteAsyncError):
        raise  # (CancelledError: heartbeat() stopping the attempt)
    except BaseException as exc:
        raise Escaped(exc) from None
