"""A worker's leases kept alive: every third of the lease timeout, the
leases of its turns and activity attempts in flight are renewed in one
write, and an attempt whose lease was lost (another worker took its task
over) is stopped. Then the worker's registry row is refreshed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from perdure._store.base import Store
from perdure._worker.activities import ActivityRunner
from perdure.errors import StoreError

__all__ = ["keep_leases"]

log = logging.getLogger("perdure.worker")


async def keep_leases(
    store: Store,
    identity: str,
    lease_timeout: float,
    turns: dict[asyncio.Task[None], tuple[int, str]],
    runner: ActivityRunner,
    heartbeat: Callable[[], Awaitable[None]],
) -> None:
    """Until cancelled. ``turns``: the worker's turns in flight (their task
    ids and lease tokens), read at each renewal; ``runner``: its activity
    attempts; ``heartbeat``: its registry row's refresh."""
    while True:
        await asyncio.sleep(lease_timeout / 3)
        held = list(turns.values()) + runner.renewable()
        try:
            lost = await store.renew_leases(held, lease_timeout)
            if lost:
                # A turn whose commit came back in the same round as this
                # renewal deleted its task row: let it leave the in-flight
                # set before judging (one loop iteration).
                await asyncio.sleep(0)
        except StoreError as exc:
            log.warning("worker %s: could not renew leases: %s", identity, exc)
            continue
        # A task that finished while the renewal ran has no row (or no lease)
        # any more: only tasks still in flight were really lost.
        # Match by token too: a retried activity's task row was claimed again (by us,
        # with a new token) while the renewal ran with the old one.
        renewed = dict(held)
        still = set(turns.values())
        still |= {(tid, r.task.token) for tid, r in runner.running.items()}
        lost = [tid for tid in lost if (tid, renewed[tid]) in still]
        if lost:
            log.warning("worker %s lost the lease of tasks %s", identity, lost)
            for tid in lost:
                running = runner.running.get(tid)
                if running is not None:
                    running.stop("lost")
        await heartbeat()  # after the renewal: never delays it
