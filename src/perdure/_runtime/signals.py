"""A run's signals inside its instance: the waits on them, and the ones no
wait took yet (kept in the order they came, across names, so that a run that
continues as new can hand them on). No I/O; imports the history model.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from perdure import _history as h

__all__ = ["Signals"]


class Signals:
    def __init__(self) -> None:
        # Signals no wait took yet, by name: (arrival number, payload as
        # recorded, payload decoded); the numbers order them across names.
        self._kept: dict[str, deque[tuple[int, h.JSON, Any]]] = {}
        self._arrivals = 0
        self._waiters: dict[str, deque[asyncio.Future[tuple[h.JSON, Any]]]] = {}

    async def wait(self, loop: asyncio.AbstractEventLoop, name: str, timeout: float | None) -> Any:
        return (await self.wait_recorded(loop, name, timeout))[1]

    async def wait_recorded(
        self, loop: asyncio.AbstractEventLoop, name: str, timeout: float | None
    ) -> tuple[h.JSON, Any]:
        """The next signal ``name``: (its payload as recorded, decoded)."""
        kept = self._kept.get(name)
        if kept:
            _, recorded, payload = kept.popleft()
            return recorded, payload
        future: asyncio.Future[tuple[h.JSON, Any]] = loop.create_future()
        waiters = self._waiters.setdefault(name, deque())
        waiters.append(future)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _time_out, future, name, timeout)
        try:
            return await future
        finally:
            if future in waiters:
                waiters.remove(future)
            if timer is not None:
                timer.cancel()

    def deliver(self, name: str, recorded: h.JSON, payload: Any) -> None:
        """To the oldest wait on ``name``; if none waits, kept for the next."""
        waiters = self._waiters.get(name)
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result((recorded, payload))
                return
        self._arrivals += 1
        self._kept.setdefault(name, deque()).append((self._arrivals, recorded, payload))

    def untaken(self) -> list[tuple[str, h.JSON, Any]]:
        """The signals no wait took, in the order they came, as (name, payload
        as recorded, decoded): a run that continues as new hands them to the
        next run, which receives them first (Temporal drops them unless the
        code drains them first)."""
        kept = sorted(
            (
                (arrival, name, recorded, payload)
                for name, entries in self._kept.items()
                for arrival, recorded, payload in entries
            ),
            key=lambda entry: entry[0],
        )
        return [(name, recorded, payload) for _, name, recorded, payload in kept]

    def waited_for(self) -> list[str]:
        """The names some wait is on now."""
        if not self._waiters:
            return []
        return sorted(n for n, ws in self._waiters.items() if any(not w.done() for w in ws))

    def drop_waits(self) -> None:
        self._waiters.clear()


def _time_out(future: asyncio.Future[tuple[h.JSON, Any]], name: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(TimeoutError(f"no signal {name!r} arrived within {timeout:g}s"))
