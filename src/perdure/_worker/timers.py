"""Inline timers: the timers of a worker's cached instances, which the worker
takes in itself when they fall due (TurnRunner.fire_inline) instead of
through a firing (Store.fire_due_timers), the inbox and a claim.

The worker remembers each timer that a committed turn of a cached instance
starts, due within ``HORIZON``, in a heap. A firing of the same worker must
never take one of them (its turn would then be fenced in vain): each firing
is asked only for timers due by ``bound``, below the earliest timer
remembered or in flight; and a timer due by a bound already given may have
been fired meanwhile, so it is not remembered. Imports nothing from perdure.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

__all__ = ["HORIZON", "InlineTimers"]

# A timer due within this many seconds of its turn's commit is remembered.
# Later ones go the ordinary way: their instances are likely evicted by
# then, and the memo stays small.
HORIZON = 300.0

_BEFORE = 1e-6  # seconds: "due before" a time, for a firing's bound


class InlineTimers:
    """The remembered timers, as (due, run id, ref), earliest first."""

    def __init__(self) -> None:
        # False: every timer reaches its run through a firing and the inbox.
        self.enabled = True
        self._heap: list[tuple[float, str, int]] = []
        # The latest due time any firing of this worker was asked to fire up
        # to: a timer due by then is left to the firings.
        self.fired_until = float("-inf")
        self._firing: dict[tuple[str, int], float] = {}  # (run id, ref) -> due, in flight

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def in_flight(self) -> int:
        return len(self._firing)

    def remember(self, run_id: str, timers: Sequence[tuple[int, float]], now: float) -> None:
        """A turn of ``run_id`` that started ``timers`` (ref, due) committed,
        and its instance is cached."""
        if not self.enabled:
            return
        for ref, fire_at in timers:
            if self.fired_until < fire_at <= now + HORIZON:
                heapq.heappush(self._heap, (fire_at, run_id, ref))

    def next(self) -> float | None:
        """When the earliest remembered timer falls due."""
        return self._heap[0][0] if self._heap else None

    def bound(self, now: float) -> float:
        """The latest due time a firing may take timers up to at ``now``:
        before every timer remembered, or whose turn is in flight."""
        until = now
        if self._heap:
            until = min(until, self._heap[0][0] - _BEFORE)
        if self._firing:
            until = min(until, min(self._firing.values()) - _BEFORE)
        self.fired_until = max(self.fired_until, until)
        return until

    def due(
        self, now: float, limit: int, waits: Callable[[str, int], bool]
    ) -> list[tuple[str, int]]:
        """The remembered timers due by ``now`` (at most ``limit``), as (run
        id, ref), whose runs still wait for them here (``waits``): each is
        in flight until ``done``. The others are forgotten (their firing goes
        the ordinary way)."""
        found: list[tuple[str, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(found) < limit:
            fire_at, run_id, ref = heapq.heappop(heap)
            if waits(run_id, ref):
                found.append((run_id, ref))
                self._firing[run_id, ref] = fire_at
        return found

    def done(self, run_id: str, ref: int) -> None:
        """The turn of a timer ``due`` gave is over (committed or not)."""
        self._firing.pop((run_id, ref), None)
