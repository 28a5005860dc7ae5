"""A worker's row in the worker registry (``Client.list_workers``): its
announcement at start, its heartbeat, its departure, and the leases a
restarted worker takes back. The registry is informational: a store error
here is logged and never stops the worker."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable

from perdure._store.base import Store
from perdure.errors import StoreError

__all__ = ["Registration"]

log = logging.getLogger("perdure.worker")


class Registration:
    """What one worker tells the registry, and when."""

    def __init__(
        self,
        store: Store,
        identity: str,
        task_queue: str,
        workflows: Iterable[str],
        activities: Iterable[str],
        lease_timeout: float,
    ) -> None:
        self.store = store
        self.identity = identity
        self.task_queue = task_queue
        self.workflows = sorted(workflows)
        self.activities = sorted(activities)
        self.lease_timeout = lease_timeout

    async def register(self) -> None:
        """Announce this worker (again: the row is taken over)."""
        try:
            await self.store.register_worker(
                self.identity,
                host=socket.gethostname(),
                pid=os.getpid(),
                task_queue=self.task_queue,
                workflows=self.workflows,
                activities=self.activities,
                lease_timeout=self.lease_timeout,
            )
        except StoreError as exc:
            log.warning("worker %s: could not register: %s", self.identity, exc)

    async def reclaim(self) -> None:
        """At start only: a worker restarting under its identity (``--identity``)
        takes back at once what its previous process held, instead of after
        the lease timeout. (Never later: it would expire its own live leases.)"""
        try:
            reclaimed = await self.store.reclaim_leases(self.identity)
        except StoreError as exc:
            log.warning("worker %s: could not reclaim its old leases: %s", self.identity, exc)
            return
        if reclaimed:
            log.info("worker %s took back %d task(s) of its previous run", self.identity, reclaimed)

    async def heartbeat(self) -> None:
        try:
            if not await self.store.heartbeat_worker(self.identity):
                await self.register()  # not registered yet, or pruned
        except StoreError as exc:
            log.warning("worker %s: could not send its heartbeat: %s", self.identity, exc)

    async def unregister(self) -> None:
        try:
            await self.store.unregister_worker(self.identity)
        except StoreError as exc:
            log.warning("worker %s: could not unregister: %s", self.identity, exc)
