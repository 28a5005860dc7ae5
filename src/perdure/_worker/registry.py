"""A worker's row in the worker registry (``Client.list_workers``): its
announcement at start, its heartbeat, its departure, and the leases a
restarted worker takes back. The registry is informational: a store error
here is logged and never stops the worker."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable

from perdure._store.base import Store, WorkerRecord
from perdure.errors import StoreError

__all__ = ["HAND_BACK_DELAY", "HAND_BACK_MAX", "Registration"]

log = logging.getLogger("perdure.worker")

# How long a worker trusts its last read of the registry (served_elsewhere).
SERVED_ELSEWHERE_TTL = 1.0
# How long a task handed back to the workers that serve its type stays out
# of sight (Store.hand_back): all workers see it again at once after that.
# The same task handed back again (those workers are busy) waits twice as
# long each time, up to HAND_BACK_MAX: a backlog of them is not claimed and
# handed back five times a second while it lasts.
HAND_BACK_DELAY = 0.2
HAND_BACK_MAX = 5.0


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
        build_id: str | None = None,
        promotes: bool = True,
    ) -> None:
        self.store = store
        self.build_id = build_id
        self.promotes = promotes  # (see Store.register_worker)
        # Whether this worker's build is its queue's current one (it takes
        # the queue's unpinned runs), as its last look said (see look).
        self.current = True
        # The queue's current build as last read (None: none yet, or not read).
        self.named: str | None = None
        # While it is: the queue's ramping build and its share of new runs
        # in percent (Store.ramping_build), which it hands them to.
        self.ramp: tuple[str, float] | None = None
        self.identity = identity
        self.task_queue = task_queue
        self.workflows = sorted(workflows)
        self.activities = sorted(activities)
        self.lease_timeout = lease_timeout
        self._others: tuple[float, list[WorkerRecord]] = (float("-inf"), [])
        self._handed: dict[int, int] = {}  # task id -> times handed back

    async def hand_back_delay(self, kind: str, name: str, task_id: int) -> float | None:
        """If another live worker of the queue serves ``name``, how long task
        ``task_id``, claimed here, is to wait for it (Store.hand_back); None
        if none does (the task fails here the ordinary way)."""
        if not await self.served_elsewhere(kind, name):
            return None
        if len(self._handed) >= 10_000:
            self._handed.clear()
        times = self._handed.get(task_id, 0)
        self._handed[task_id] = times + 1
        return float(min(HAND_BACK_MAX, HAND_BACK_DELAY * 2**times))

    async def served_elsewhere(self, kind: str, name: str) -> bool:
        """Whether another live worker on this task queue registers the
        workflow type or activity ``name`` (``kind`` "workflow" or
        "activity"): then a task of it that this worker claimed goes back
        to the queue for that worker, rather than failing here. The
        registry is read at most once a second (a burst of such claims)."""
        now = time.monotonic()
        read_at, workers = self._others
        if now - read_at > SERVED_ELSEWHERE_TTL:
            try:
                workers = await self.store.list_workers()
            except StoreError as exc:
                log.warning("worker %s: could not read the registry: %s", self.identity, exc)
                workers = []
            self._others = (now, workers)
        clock = self.store.clock()
        return any(
            w.identity != self.identity
            and w.task_queue == self.task_queue
            and clock - w.heartbeat_at <= w.lease_timeout
            and name in (w.workflows if kind == "workflow" else w.activities)
            # (A worker with a build claims runs pinned to it, and unpinned
            # ones while it is current: a worker of another build may not
            # take this one's workflow tasks.)
            and (
                kind != "workflow"
                or None in (w.build_id, self.build_id)
                or w.build_id == self.build_id
            )
            for w in workers
        )

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
                build_id=self.build_id,
                promotes=self.promotes,
            )
        except StoreError as exc:
            log.warning("worker %s: could not register: %s", self.identity, exc)

    async def look(self) -> bool:
        """Read whether this worker's build is its queue's current build
        (always, for a worker without one): whether ``current`` changed. On
        a store error it stays as it was."""
        if self.build_id is None:
            return False
        try:
            named = await self.store.current_build(self.task_queue)
        except StoreError as exc:
            log.warning("worker %s: could not read its queue's builds: %s", self.identity, exc)
            return False
        current = named is None or named == self.build_id
        self.named = named
        await self._look_at_ramp(current and named is not None)
        if current == self.current:
            return False
        self.current = current
        log.info(
            "worker %s (build %r): %s",
            self.identity,
            self.build_id,
            "its build is current again: it takes the queue's new runs"
            if current
            else f"build {named!r} is current now: this worker takes only the runs pinned "
            "to its build (and, while its build ramps, the new runs the current build's "
            "workers hand it)",
        )
        return True

    async def _look_at_ramp(self, current: bool) -> None:
        """Read the queue's ramping build, if this worker's build is the
        current one (only its workers hand new runs to it); said in the log
        when it changes. On a store error it stays as it was."""
        ramp = None
        if current:
            try:
                ramp = await self.store.ramping_build(self.task_queue)
            except StoreError as exc:
                log.warning("worker %s: could not read its queue's ramp: %s", self.identity, exc)
                return
        if ramp == self.ramp:
            return
        self.ramp = ramp
        if ramp is not None:
            log.info(
                "worker %s (build %r): build %r ramps: it takes %g%% of the queue's new runs",
                self.identity,
                self.build_id,
                *ramp,
            )
        elif current:
            log.info("worker %s (build %r): no build ramps now", self.identity, self.build_id)

    async def predecessor_gone(self) -> bool:
        """At start, before registering: whether the process that registered
        this identity last is surely gone, so that its leases may be taken
        back at once. A live one (two workers given the same ``--identity``,
        or a predecessor still draining) would have every attempt it is
        running started again here. Sure: it has not renewed anything for a
        lease timeout, or it ran on this host and its process is gone. On
        another host it cannot be told: its leases then run out as any
        worker's do."""
        try:
            rows = await self.store.list_workers()
        except StoreError as exc:
            log.warning("worker %s: could not read the registry: %s", self.identity, exc)
            return False
        row = next((r for r in rows if r.identity == self.identity), None)
        if row is None or self.store.clock() - row.heartbeat_at > row.lease_timeout:
            return True
        host = socket.gethostname()
        if row.host == host and (row.pid == os.getpid() or not _alive(row.pid)):
            return True
        who = (
            f"process {row.pid} of this host, which registered this identity, still runs"
            if row.host == host
            else f"the worker on {row.host} that registered this identity may still run"
        )
        log.warning(
            "worker %s: %s, so its leases are not taken back (they run out within %gs); "
            "give each live worker an identity of its own: two with one take each other's work",
            self.identity,
            who,
            row.lease_timeout,
        )
        return False

    async def reclaim(self) -> None:
        """At start only, if ``predecessor_gone``: a worker restarting under
        its identity (``--identity``) takes back at once what its previous
        process held, instead of after the lease timeout. (Never later: it
        would expire its own live leases.)"""
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
        if await self.look() and self.on_change is not None:
            self.on_change()

    # Told when ``current`` changes (Worker: its queues and new runs).
    on_change: Callable[[], None] | None = None

    async def unregister(self) -> None:
        try:
            await self.store.unregister_worker(self.identity)
        except StoreError as exc:
            log.warning("worker %s: could not unregister: %s", self.identity, exc)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # (another user's, PermissionError: it runs)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # (no /proc: kill said it exists)
