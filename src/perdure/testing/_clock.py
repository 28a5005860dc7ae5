"""The test environment's clock: real time plus the time skipped so far.

Owns only arithmetic on floats; imports nothing from perdure. The store and
the worker of a :class:`~perdure.testing.WorkflowEnvironment` read every time
from one instance of it, so moving it forward moves the whole engine.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["VirtualClock"]


class VirtualClock:
    """A callable returning epoch seconds, like ``time.time``.

    It runs at the speed of real time (so a real 50 ms activity still takes
    50 ms of workflow time, as in Temporal's time-skipping server) and can
    jump forward with :meth:`advance_to`. It never goes backwards.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and not isinstance(start, datetime):
            raise TypeError(
                f"start_time must be a timezone-aware datetime, not {type(start).__name__} "
                f"{start!r}"
            )
        if start is not None and start.tzinfo is None:
            raise ValueError(
                f"start_time must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc)), "
                f"got the naive {start!r}"
            )
        self._origin = time.time() if start is None else start.timestamp()
        self._started = time.monotonic()
        self._skipped = 0.0

    def __call__(self) -> float:
        return self._origin + (time.monotonic() - self._started) + self._skipped

    @property
    def skipped(self) -> float:
        """Seconds jumped over so far (on top of the real time that passed)."""
        return self._skipped

    def advance_to(self, when: float) -> None:
        """Jump to ``when`` (epoch seconds); a time already passed changes nothing."""
        gap = when - self()
        if gap > 0:
            self._skipped += gap

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"the clock cannot go backwards (asked for {seconds:g}s)")
        self._skipped += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self(), tz=UTC)
