"""A stopping worker's drain: its turns and activity attempts in flight may
finish for ``drain_timeout`` seconds, or until a second stop request. Then
the attempts still running are stopped and record their end (the next
attempt is due at once, for the other workers), and what is left is
cancelled.

The tasks in flight are read again after each wait, not once: a turn whose
commit was under way when the worker stopped may start an activity attempt
it leased to this worker (decided before the stop), and the drain waits for
that one too, rather than leave it running unrenewed past the worker's end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from perdure._worker.activities import ActivityRunner

__all__ = ["drain"]

log = logging.getLogger("perdure.worker")


async def drain(
    identity: str,
    in_flight: Callable[[], Collection[asyncio.Task[None]]],
    timeout: float,
    hurry: asyncio.Event,
    runner: ActivityRunner,
) -> None:
    """Wait for the worker's tasks in flight (``in_flight()``, read again
    after each wait) for ``timeout`` seconds, or until ``hurry`` is set; then
    stop ``runner``'s attempts, give them 5 s to record their end, and
    cancel whatever still runs."""
    pending = _live(in_flight)
    if not pending:
        return
    log.info("worker %s draining %d task(s)", identity, len(pending))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    hurried = asyncio.ensure_future(hurry.wait())
    try:
        while pending and not hurry.is_set():
            left = deadline - loop.time()
            if left <= 0:
                break
            drained = asyncio.ensure_future(asyncio.wait(pending, timeout=left))
            await asyncio.wait([drained, hurried], return_when=asyncio.FIRST_COMPLETED)
            drained.cancel()  # (it does not cancel the tasks it waits for)
            pending = _live(in_flight)
    finally:
        hurried.cancel()
    if not pending:
        return
    # The attempts still running are stopped and record their end, so the
    # next attempt is due now for the other workers. (Cancelled with the
    # rest, they had kept their leases: a deploy's restart held them back
    # for lease_timeout.)
    stopping = len(runner.running)
    if stopping:
        log.warning(
            "worker %s: %s; stopping %d running activity attempt(s), to be retried by "
            "other workers",
            identity,
            "stopped again" if hurry.is_set() else f"drain_timeout ({timeout:g}s) passed",
            stopping,
        )
        runner.stop_all()
        await asyncio.wait(pending, timeout=5)
    still = _live(in_flight)
    for task in still:
        task.cancel()
    if still:
        await asyncio.wait(still, timeout=5)


def _live(in_flight: Callable[[], Collection[asyncio.Task[None]]]) -> set[asyncio.Task[None]]:
    return {task for task in in_flight() if not task.done()}
