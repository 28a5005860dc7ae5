"""A stopping worker's drain: its turns and activity attempts in flight may
finish for ``drain_timeout`` seconds, or until a second stop request. Then
the attempts still running are stopped and record their end (the next
attempt is due at once, for the other workers), and what is left is
cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from perdure._worker.activities import ActivityRunner

__all__ = ["drain"]

log = logging.getLogger("perdure.worker")


async def drain(
    identity: str,
    pending: Collection[asyncio.Task[None]],
    timeout: float,
    hurry: asyncio.Event,
    runner: ActivityRunner,
) -> None:
    """Wait for ``pending`` (the worker's tasks in flight) for ``timeout``
    seconds, or until ``hurry`` is set; then stop ``runner``'s attempts, give
    them 5 s to record their end, and cancel whatever still runs."""
    if not pending:
        return
    log.info("worker %s draining %d task(s)", identity, len(pending))
    drained = asyncio.ensure_future(asyncio.wait(pending, timeout=timeout))
    hurried = asyncio.ensure_future(hurry.wait())
    await asyncio.wait([drained, hurried], return_when=asyncio.FIRST_COMPLETED)
    for waiter in (drained, hurried):
        waiter.cancel()  # (neither cancels the tasks it waits for)
    still = {task for task in pending if not task.done()}
    if not still:
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
        _, still = await asyncio.wait(still, timeout=5)
    for task in still:
        task.cancel()
    if still:
        await asyncio.wait(still, timeout=5)
