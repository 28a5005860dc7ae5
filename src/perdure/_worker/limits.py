"""Whether a worker's task queue has limits (Store.set_queue_limits): its
activities then start through claims only, which obey them, never inline.

Read at start, again when a change is heard of (a LIMITS notification: this
process's, PostgreSQL's NOTIFY, SQLite's watch of other processes' commits)
and every LIMITS_REFRESH behind them. Imports the store's interface only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from perdure._store.base import LIMITS, Store, loop_waker
from perdure.errors import StoreError

__all__ = ["LIMITS_REFRESH", "LimitsWatch"]

log = logging.getLogger("perdure.worker")

LIMITS_REFRESH = 1.0  # seconds between reads of whether the queue has limits


class LimitsWatch:
    """``limited``: whether the queue had limits when last read, or has had
    a change of some queue's limits heard of since (no attempt runs inline
    until they are read again)."""

    def __init__(self, store: Store, queue: str, identity: str) -> None:
        self.store, self.queue, self.identity = store, queue, identity
        self.limited = False
        self._seen = 0  # changes heard of (see _heard)
        self._task: asyncio.Task[None] | None = None
        self._listener: functools.partial[None] | None = None

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        changed = asyncio.Event()
        self._listener = functools.partial(self._heard, loop_waker(loop, changed))
        self.store.add_listener(self._listener, (LIMITS,))
        await self._read()
        self._task = asyncio.create_task(self._watch(changed))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener is not None:
            self.store.remove_listener(self._listener)

    def _heard(self, wake: Callable[[], None]) -> None:
        """A LIMITS listener (any thread): some queue's limits changed."""
        self._seen += 1
        self.limited = True
        wake()

    async def _read(self) -> None:
        seen = self._seen
        try:
            limited = await self.store.queue_limits(self.queue) is not None
        except StoreError as exc:
            log.warning("worker %s: could not read its queue's limits: %s", self.identity, exc)
            return
        if seen == self._seen:  # (else limits changed during the read: read again)
            self.limited = limited

    async def _watch(self, changed: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(changed.wait(), LIMITS_REFRESH)
            except TimeoutError:
                pass
            changed.clear()
            await self._read()
