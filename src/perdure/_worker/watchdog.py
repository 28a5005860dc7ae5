"""Workflow code that does not give the loop back, interrupted.

A turn runs workflow code on the worker's event loop. Code that never awaits
(a busy loop such as ``while not ready: pass``, a ``time.sleep``, a blocking
HTTP call) held that loop: every other run on the worker stood still, its
leases went unrenewed, SIGTERM was not heard, and once the leases ran out
another worker replayed the run and froze in turn, one worker after another.
Now a watchdog thread raises ``TurnInterrupted`` in the loop's thread when a
turn has run ``limit`` seconds (the worker's ``deadlock_timeout``, 2 s by
default as Temporal's deadlock detector): code busy in Python stops at its
next line, code blocked in a call as the call returns. The turn fails with
what was found and where (``TurnBlocked``, its ``last_error``), the
instance is dropped, and the workflow task backs off and is tried again, so
the run resumes once fixed code is deployed, as after a NonDeterminismError.

The loop's side costs a tuple and two attribute writes per turn; the lock is
taken only when the watchdog fired. The watchdog fires holding the lock, and
only while the arming is current (again each ``limit`` seconds while it
stays: code may catch it). The loop disarms before it looks whether the
watchdog fired, and if it did, takes the lock and lets an exception not
raised yet be raised there, and dropped (asyncexc.absorb): so
``TurnInterrupted`` is never raised after ``run`` has returned. Time the
garbage collector holds the interpreter does not count. Code that a debugger
traces (a breakpoint in it) is not interrupted. CPython only
(``PyThreadState_SetAsyncExc``); elsewhere turns are not interrupted.

While async activities run, the same thread also pings the loop, and says
where it is held when a ping goes unanswered for ``limit`` seconds
(watch_loop): blocking work in an activity, which is not interrupted.
The standard library and the runtime's frame locator only.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from perdure._runtime.locate import is_ours, user_frames
from perdure._worker.asyncexc import AVAILABLE, absorb, send

__all__ = ["DEFAULT_DEADLOCK_TIMEOUT", "TurnBlocked", "TurnInterrupted", "Watchdog"]

log = logging.getLogger("perdure.worker")

T = TypeVar("T")

# Seconds a turn's workflow code may run without awaiting (Temporal's default).
DEFAULT_DEADLOCK_TIMEOUT = 2.0


# The cyclic collector's pauses of 10 ms or more, (began, ended), latest
# last: a turn that a collection held up has not run its code meanwhile (a
# full collection with thousands of workflows in flight took 0.75-1.55 s on
# the project's machine). Recorded by _on_gc, in whichever thread collects.
_gc_pauses: deque[tuple[float, float]] = deque(maxlen=64)
_gc_began: float | None = None  # the collection under way


def _on_gc(phase: str, info: dict[str, int]) -> None:
    global _gc_began
    if phase == "start":
        _gc_began = time.monotonic()
    elif _gc_began is not None:
        if (ended := time.monotonic()) - _gc_began >= 0.01:
            _gc_pauses.append((_gc_began, ended))
        _gc_began = None


def _collecting_since(moment: float) -> float:
    """Seconds the collector has held the interpreter since ``moment``, the
    collection under way included (the watchdog may look while its "stop"
    callback begins)."""
    began = _gc_began
    now = time.monotonic()
    held = now - max(began, moment) if began is not None else 0.0
    return held + sum(e - max(b, moment) for b, e in list(_gc_pauses) if e > moment)


class TurnInterrupted(BaseException):
    """Raised in workflow code that ran past its worker's ``deadlock_timeout``
    without awaiting. A BaseException, so that ``except Exception`` does not
    swallow it; ``finally`` blocks run. The turn fails and is tried again."""


class TurnBlocked(Exception):
    """The turn's workflow code was interrupted (see the module docstring);
    the message is the run's ``last_error``. The worker's turn code treats
    it as TurnFailed."""


class Watchdog:
    """One per worker. ``run(instance, fn, *args)`` runs workflow code (a
    turn, or a replay whose turns call ``rearm``) under its eye, in the
    thread that called ``start`` (the worker's loop's)."""

    __slots__ = (
        "_answered_at", "_busy", "_fired_at", "_lock", "_loop", "_loop_ident", "_ping_at",
        "_seen", "_stalled", "_stopped", "_thread", "_where", "armed", "fired", "ident",
        "limit", "name",
    )  # fmt: skip

    def __init__(self, limit: float | None, name: str = "perdure-watchdog") -> None:
        self.limit = limit if AVAILABLE else None
        self.name = name
        # (time it began, instance) of the code running now, in thread ``ident``.
        self.armed: tuple[float, Any] | None = None
        self.fired: tuple[float, Any] | None = None  # set under _lock only
        self.ident = threading.get_ident()
        self._where = ""  # the code's place when it fired
        self._fired_at = 0.0
        # (armed, its loop's callback count, when that count was seen to move).
        self._seen: tuple[Any, int, float] | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        # The loop watch (watch_loop): the loop, whether it has work that
        # should keep it moving, its thread, and the last ping's fate.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy: Callable[[], bool] = bool
        self._loop_ident = 0
        self._ping_at: float | None = None
        self._answered_at: float | None = None
        self._stalled = False  # reported, and not yet over

    # ------------------------------------------------------ the loop's side

    def run(self, instance: Any, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``; TurnBlocked if the watchdog interrupted it."""
        self.armed = (time.monotonic(), instance)
        try:
            return fn(*args)
        finally:
            self.armed = None
            if self.fired is not None:
                self.settle()

    def rearm(self, instance: Any) -> None:
        """A replay's next turn begins: its time counts from now."""
        self.armed = (time.monotonic(), instance)

    def settle(self) -> None:
        """After code the watchdog fired at (or was about to), once disarmed:
        take back the exception if it was not raised yet, and raise
        TurnBlocked (nothing if it ended before the watchdog could fire)."""
        fired = None
        while True:
            try:
                with self._lock:  # (the watchdog is done with this code once we hold it)
                    if self.fired is not None:
                        fired, self.fired = self.fired, None
                if fired is not None:
                    absorb(TurnInterrupted)
                break
            except TurnInterrupted:
                continue  # raised just now, here: it is never raised twice
        if fired is None:
            return  # it ended before the watchdog could fire: not blocked
        began = self._seen[2] if self._seen is not None and self._seen[0] is fired else fired[0]
        raise TurnBlocked(
            f"workflow code ran {time.monotonic() - began:.2g} s without awaiting{self._where} "
            f"(the worker's deadlock_timeout is {self.limit:g} s): a busy loop, or blocking "
            f"work (I/O, time.sleep) that belongs in an activity. It was interrupted; the "
            f"turn is tried again with backoff, and the run goes on once the code is fixed"
        )

    def watch_loop(self, loop: asyncio.AbstractEventLoop, busy: Callable[[], bool]) -> None:
        """Also tell when ``loop`` (the caller's thread's) runs no callback for
        ``limit`` seconds while ``busy()`` (async activity attempts run on
        it): code on it blocks, and no lease is renewed meanwhile."""
        self._loop, self._busy, self._loop_ident = loop, busy, threading.get_ident()

    def _answer(self) -> None:  # on the loop
        self._answered_at = time.monotonic()

    # --------------------------------------------------- the watchdog thread

    def start(self) -> None:
        """Watch the calling thread's workflow code."""
        self.ident = threading.get_ident()
        if self.limit is None or self._thread is not None:
            return
        if _on_gc not in gc.callbacks:
            gc.callbacks.append(_on_gc)
        self._thread = threading.Thread(target=self._watch, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        limit = self.limit
        assert limit is not None
        while True:
            armed, seen = self.armed, self._seen
            since = seen[2] if seen is not None and seen[0] is armed else None
            if armed is not None and since is None:
                since = armed[0]
            wait = limit if since is None else since + limit - time.monotonic()
            if self._stopped.wait(max(wait, 0.001)):
                return
            self._check(limit)
            if self._loop is not None:
                self._check_loop(limit)

    def _still_since(self, armed: tuple[float, Any], now: float) -> float:
        """Since when the armed code has been in one callback, as far as the
        checks can tell: a turn's callbacks are counted by its loop (``ran``,
        0 as the turn begins), and a count that moved since the last check
        is progress (a fan-out of thousands of activities is a long turn of
        short callbacks, which all await). Code with no loop to count (a
        bare ``run``): since it was armed."""
        ran = getattr(getattr(armed[1], "loop", None), "ran", None)
        seen = self._seen
        if seen is None or seen[0] is not armed:
            seen = (armed, 0, armed[0])
        if ran is not None and ran != seen[1]:
            seen = (armed, ran, now)
        self._seen = seen
        return seen[2]

    def _check_loop(self, limit: float) -> None:
        """Ping the loop while it is busy; an answer not come ``limit``
        seconds later is a stall, said once with where the loop's thread is,
        and again when it ends. (A turn that runs long is _check's.)"""
        now = time.monotonic()
        pinged, answered = self._ping_at, self._answered_at
        if pinged is not None and answered is None:
            if now - pinged >= limit and not self._stalled and self.armed is None:
                where = _stall_place(self._loop_ident)
                if where is not None:  # (None: a debugger holds it)
                    self._stalled = True
                    log.warning(
                        "the worker's event loop has run nothing for %.2g s: code on it "
                        "blocks%s. An async activity must not block (time.sleep, blocking "
                        "I/O, long computation): make it a plain def activity, which runs "
                        "in a thread. Meanwhile this worker renews no lease, and once its "
                        "leases run out other workers run its activities again",
                        now - pinged,
                        where,
                    )
            return
        if self._stalled and pinged is not None and answered is not None:
            self._stalled = False
            log.warning(
                "the worker's event loop runs again (it had run nothing for %.2g s)",
                answered - pinged,
            )
        self._ping_at = self._answered_at = None
        if self._busy():
            self._ping_at = now
            try:
                self._loop.call_soon_threadsafe(self._answer)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed
                self._loop = None

    def _check(self, limit: float) -> None:
        with self._lock:
            armed = self.armed
            now = time.monotonic()
            again = self.fired is armed  # (the code caught it, or it has not landed yet)
            if armed is None or (again and now - self._fired_at < limit):
                return  # (fired: again only if the code is still there a limit later)
            since = self._still_since(armed, now)
            if now - since - _collecting_since(since) < limit:
                return  # (it moves on, or the collector, not the code, held it)
            self.fired, self._fired_at = armed, now
            where = _place(self.ident)
            if self.armed is not armed or where is None:
                # It ended meanwhile, or a debugger holds it: nothing to
                # interrupt (the turn still fails if it was interrupted before).
                self.fired = armed if again else None
                return
            self._where = self._where if again else where
            send(self.ident, TurnInterrupted)
        info = getattr(armed[1], "info", None)
        log.warning(
            "workflow code of run %s (%s) has run %.2g s without awaiting%s, blocking the "
            "worker's event loop; interrupting it (deadlock_timeout %g s)",
            info.run_id if info else "?",
            info.workflow_type if info else "?",
            time.monotonic() - since,
            self._where,
            limit,
        )


def _stack(ident: int) -> tuple[bool, FrameType | None]:
    """Whether a debugger traces thread ``ident`` (pdb, debugpy: a frame
    with a trace function; its user may be stopped at a breakpoint, and is
    left alone), and the thread's innermost frame."""
    frame = sys._current_frames().get(ident)
    outer = frame
    while outer is not None:
        if outer.f_trace is not None:
            return True, frame
        outer = outer.f_back
    return False, frame


def _stall_place(ident: int) -> str | None:
    """Where thread ``ident`` is: ' in FN (FILE:LINE), at FILE:LINE', the
    first code of the user's that perdure called and the innermost user
    frame ('' if no user code runs); None if a debugger traces it."""
    traced, frame = _stack(ident)
    if traced:
        return None
    innermost = entry = None
    while frame is not None:
        if not is_ours(frame.f_code.co_filename):
            innermost = innermost or frame
            entry = frame
        elif entry is not None:
            break  # perdure called the user's code here
        frame = frame.f_back
    if entry is None or innermost is None:
        return ""
    at = f"{innermost.f_code.co_filename}:{innermost.f_lineno}"
    return f" in {entry.f_code.co_name} ({entry.f_code.co_filename}:{entry.f_lineno}), at {at}"


def _place(ident: int) -> str | None:
    """' at FILE:LINE in FN' of the innermost workflow frame of thread
    ``ident`` ('' if none is found); None if a debugger traces it."""
    traced, frame = _stack(ident)
    if traced:
        return None
    frames = user_frames(frame) if frame is not None else []
    if not frames:
        return ""
    f = frames[0]
    return f" at {os.path.abspath(f.f_code.co_filename)}:{f.f_lineno} in {f.f_code.co_name}"
