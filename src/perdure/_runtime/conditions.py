"""A run's waits on conditions (``workflow.wait_condition``) inside its
instance: each is a function of the workflow's own state, tested whenever
the run's loop has nothing left to run, in the order the waits began, so a
replay resumes them at the same points. No I/O; the standard library only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Conditions"]


class Conditions:
    def __init__(self) -> None:
        # (None until a wait begins: most runs never wait on a condition,
        # and an empty list is one more object per run for the collector.)
        self._waits: list[tuple[Callable[[], object], asyncio.Future[None]]] | None = None

    async def wait(
        self, loop: asyncio.AbstractEventLoop, test: Callable[[], object], timeout: float | None
    ) -> None:
        """Until ``test()`` is true: at once if it is now, else when the loop
        next goes idle with it true. With ``timeout``, a durable timer raises
        TimeoutError first."""
        if test():
            return
        future: asyncio.Future[None] = loop.create_future()
        entry = (test, future)
        if self._waits is None:
            self._waits = []
        self._waits.append(entry)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _time_out, future, timeout)
        try:
            await future
        finally:
            if self._waits is not None and entry in self._waits:
                self._waits.remove(entry)
            if timer is not None:
                timer.cancel()

    def settle(self) -> bool:
        """Test every wait (the loop is idle); end those whose test is true,
        or raised (the exception goes to the wait). True if any ended: their
        code is now ready to run."""
        waits = self._waits
        if not waits:
            return False
        ended = False
        for entry in list(waits):
            test, future = entry
            if future.done():  # (cancelled, or timed out: its finally removes it)
                continue
            try:
                met = bool(test())
            except Exception as exc:
                future.set_exception(exc)
                met = True
            else:
                if met:
                    future.set_result(None)
            if met:
                waits.remove(entry)
                ended = True
        return ended

    def pending(self) -> int:
        if not self._waits:  # (every turn of a run that has none: no generator)
            return 0
        return sum(1 for _, future in self._waits if not future.done())

    def drop_waits(self) -> None:
        self._waits = None


def _time_out(future: asyncio.Future[None], timeout: float) -> None:
    if not future.done():
        future.set_exception(TimeoutError(f"the condition was not met within {timeout:g}s"))
