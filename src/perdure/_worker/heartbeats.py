"""An activity attempt's heartbeats (``activity.heartbeat``): the latest
details, written with the task by one task per attempt, at most once per
MAX_HEARTBEAT_INTERVAL (a third of the lease, if shorter), each write
extending the attempt's lease; and the heartbeat_timeout's watch, which
stops an attempt that has gone quiet. A write that finds the activity
cancelled or paused, or its lease no longer the attempt's, stops the
attempt with that reason. A retry saves the last details itself
(``kept``): the throttled write may not have run yet.
Imports the store's interface.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from perdure._store.base import ActivityTask, Store

__all__ = ["MAX_HEARTBEAT_INTERVAL", "AttemptBeats"]

log = logging.getLogger("perdure.worker")

MAX_HEARTBEAT_INTERVAL = 1.0  # seconds between heartbeat writes, at most one per task


class Attempt(Protocol):
    """What the heartbeats stop: the attempt in flight."""

    stop_reason: str | None

    def stop(self, reason: str) -> None: ...


class AttemptBeats:
    """One attempt's heartbeats, made by its first heartbeat (or as it
    starts, when it has a heartbeat_timeout to watch). The attempt holds
    them, not they the attempt: their tasks are given it (a reference back
    would make each attempt that heartbeats cyclic garbage)."""

    __slots__ = (
        "beaten",
        "details",
        "dirty",
        "flushing",
        "last_beat",
        "lease",
        "store",
        "task",
        "timeout",
    )

    def __init__(
        self, task: ActivityTask, store: Store, timeout: float | None, lease_timeout: float
    ) -> None:
        self.task = task
        self.store = store
        self.timeout = timeout  # the heartbeat_timeout, if any
        self.lease = timeout or lease_timeout  # what each write extends the lease by
        self.last_beat = time.monotonic()
        self.details: Any = None  # the latest heartbeat's details, encoded
        self.beaten = False  # the attempt has heartbeaten (details holds the last)
        self.dirty = False  # details not written yet
        self.flushing = False

    def beat(self, details: Any, attempt: Attempt) -> None:
        """A heartbeat of ``attempt``, on the worker's loop: written soon."""
        self.last_beat = time.monotonic()
        self.details = details
        self.beaten = self.dirty = True
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().create_task(self._flush(attempt))

    def kept(self) -> tuple[Any] | None:
        """The last details as ``(details,)``, for the retry to save; None if
        the attempt has not heartbeaten."""
        return (self.details,) if self.beaten else None

    async def _flush(self, attempt: Attempt) -> None:
        task = self.task
        interval = min(MAX_HEARTBEAT_INTERVAL, self.lease / 3)
        try:
            while self.dirty and attempt.stop_reason is None:
                self.dirty = False
                try:
                    status = await self.store.record_heartbeat(
                        task.task_id, task.token, self.details, self.lease
                    )
                except Exception as exc:
                    log.warning("could not record a heartbeat for %s: %s", task.name, exc)
                    status = "ok"
                if status != "ok":
                    attempt.stop(status)
                    return
                await asyncio.sleep(interval)
        finally:
            self.flushing = False

    async def watch(self, attempt: Attempt) -> None:
        """Stop ``attempt`` once it has sent no heartbeat for its
        heartbeat_timeout."""
        assert self.timeout is not None
        while attempt.stop_reason is None:
            left = self.last_beat + self.timeout - time.monotonic()
            if left <= 0:
                attempt.stop("heartbeat_timeout")
                return
            await asyncio.sleep(left)
