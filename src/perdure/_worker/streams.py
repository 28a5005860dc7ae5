"""An activity attempt's stream writes (``activity.write_stream``): handed
to the worker's loop as the code makes them, appended to the run's streams
in order by one task per attempt, a transaction per batch (the values of
one key that queued meanwhile), and waited for before the attempt's outcome
is recorded, so that a reader who sees the step done, or the run ended, has
every value the step wrote. A write the store refuses (the run has ended,
or its workflow closed the stream) is dropped with a warning; one it cannot
make (the database is unreachable) is tried again a few times first.
Imports the store's interface and perdure's errors.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from perdure._store.base import ActivityTask, Store
from perdure.errors import StoreError, WorkflowClosedError, WorkflowNotFoundError

__all__ = ["AttemptStreams", "finish_flushes"]

log = logging.getLogger("perdure.worker")

APPEND_TRIES = 5  # for a batch the store cannot write
FIRST_PAUSE = 0.1  # seconds before the second try; doubled each time


async def finish_flushes(flushes: set[asyncio.Task[None]], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the writes still in flight (a
    stopping worker's: an attempt it cut short may have left some), then
    give up on them with a warning."""
    if not flushes:
        return
    _, late = await asyncio.wait(set(flushes), timeout=timeout)
    for flushing in late:
        flushing.cancel()
    if late:
        await asyncio.wait(late, timeout=1.0)  # (their cancellation taken in)
        log.warning(
            "%d activity attempt(s) had stream values left unwritten at shutdown", len(late)
        )


class AttemptStreams:
    """The stream writes of one activity attempt, on the worker's loop."""

    def __init__(
        self,
        store: Store,
        task: ActivityTask,
        loop: asyncio.AbstractEventLoop,
        flushes: set[asyncio.Task[None]],
    ) -> None:
        self.store = store
        self.task = task
        self.loop = loop
        self.flushes = flushes  # the worker's flushes in flight (it waits for them as it stops)
        self.pending: list[tuple[str, Any]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.refused: set[str] = set()  # keys whose writes the store refused
        self.source = f"{task.name} (ref {task.ref}) attempt {task.attempt}"

    def add(self, key: str, value: Any) -> None:
        """One value (as the converter encoded it) for stream ``key``."""
        self.pending.append((key, value))
        if self.flushing is None:
            self.flushing = flushing = self.loop.create_task(self._flush())
            self.flushes.add(flushing)
            flushing.add_done_callback(self.flushes.discard)

    async def drain(self) -> None:
        """Wait until every value added so far is written (or refused)."""
        while self.flushing is not None:
            # (Shielded: a stop of the attempt does not stop its writes.)
            await asyncio.shield(self.flushing)

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                start = 0
                while start < len(batch):
                    key = batch[start][0]
                    end = start + 1
                    while end < len(batch) and batch[end][0] == key:
                        end += 1
                    if key not in self.refused:
                        await self._append(key, [value for _, value in batch[start:end]])
                    start = end
        finally:
            self.flushing = None

    async def _append(self, stream: str, values: list[Any]) -> None:
        task = self.task
        pause = FIRST_PAUSE
        for tried in range(1, APPEND_TRIES + 1):
            try:
                await self.store.append_stream(task.run_id, stream, values, self.source)
                return
            except (WorkflowClosedError, WorkflowNotFoundError) as exc:
                self.refused.add(stream)
                log.warning(
                    "activity %s (run %s) attempt %d: %d value(s) for stream %r not written,"
                    " nor any later one: %s",
                    task.name,
                    task.run_id,
                    task.attempt,
                    len(values),
                    stream,
                    exc,
                )
                return
            except StoreError as exc:
                if tried == APPEND_TRIES:
                    log.error(
                        "activity %s (run %s) attempt %d: %d value(s) for stream %r lost"
                        " after %d tries: %s",
                        task.name,
                        task.run_id,
                        task.attempt,
                        len(values),
                        stream,
                        tried,
                        exc,
                    )
                    return
                log.warning(
                    "activity %s (run %s): stream %r not written (%s); trying again in %.1fs",
                    task.name,
                    task.run_id,
                    stream,
                    exc,
                    pause,
                )
                await asyncio.sleep(pause)
                pause *= 2
