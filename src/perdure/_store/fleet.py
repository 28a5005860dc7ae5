"""The operator's side of the Store interface, which ``base.Store``
inherits: a task queue's worker builds (which is current, which ramps), the
worker registry, the queues' limits and the engine's stats. Imports the
store records only.
"""

from __future__ import annotations

import abc

from perdure._store.records import QueueLimitsRecord, QueueRecord, StatsRecord, WorkerRecord

__all__ = ["Fleet"]


class Fleet(abc.ABC):
    """Queues, builds, workers and stats (see the module)."""

    # -- worker builds -----------------------------------------------------------

    @abc.abstractmethod
    async def set_current_build(self, queue: str, build_id: str) -> None:
        """Make ``build_id`` the current build of ``queue``: its workers take
        the queue's unpinned runs (new runs, auto-upgrade ones) from their
        next look (Worker's heartbeat), and the other builds' stop."""

    @abc.abstractmethod
    async def current_build(self, queue: str) -> str | None:
        """``queue``'s current build (the first of queue_builds), None if it
        has had none: what a worker reads at each heartbeat, one row."""

    @abc.abstractmethod
    async def set_ramping_build(self, queue: str, build_id: str | None, percent: float) -> None:
        """Make ``build_id`` ``queue``'s ramping build: the current build's
        workers hand it ``percent`` of the queue's new runs of pinned types
        (records.in_ramp) from their next look; None: no build ramps. Raises
        ValueError if the queue has no current build, or ``build_id`` is it."""

    @abc.abstractmethod
    async def ramping_build(self, queue: str) -> tuple[str, float] | None:
        """``queue``'s ramping build and its share of new runs in percent,
        None if none ramps: what a worker of the current build reads at each
        heartbeat, one row."""

    @abc.abstractmethod
    async def queue_builds(
        self, queue: str, with_runs: bool = False
    ) -> list[tuple[str, float, int | None, float | None]]:
        """(build id, when promoted (0: never, a build set to ramp first),
        with ``with_runs`` how many open runs are pinned to it, and its ramp
        in percent if it ramps) of the builds ``queue``'s workers have had,
        the current first; none if no worker of it had a build."""

    @abc.abstractmethod
    async def every_queue_builds(
        self, with_runs: bool = False
    ) -> dict[str, list[tuple[str, float, int | None, float | None]]]:
        """``queue_builds`` of every queue that has had a build (a build whose
        worker of workflows started, or one made current or set to ramp),
        by queue name, in one read."""

    # -- worker registry -------------------------------------------------------

    @abc.abstractmethod
    async def register_worker(
        self,
        identity: str,
        *,
        host: str,
        pid: int,
        task_queue: str,
        workflows: list[str],
        activities: list[str],
        lease_timeout: float,
        build_id: str | None = None,
        promotes: bool = True,
    ) -> None:
        """Announce a worker (or refresh its row if the identity is known).
        A ``build_id`` the queue has not had yet becomes its current build,
        unless the worker ``promotes`` nothing (it runs no workflow of its
        own: an activity worker does not take a queue's runs)."""

    @abc.abstractmethod
    async def reclaim_leases(self, owner: str) -> int:
        """A worker is starting under ``owner``: whatever that identity held
        before belonged to a process that is gone, so its leases expire now
        instead of at their timeout (claims then record the lost attempts and
        fence the old tokens as for any expired lease). Returns how many."""

    @abc.abstractmethod
    async def heartbeat_worker(self, identity: str) -> bool:
        """Refresh a worker's heartbeat; False if it is not registered."""

    @abc.abstractmethod
    async def unregister_worker(self, identity: str) -> None:
        """Remove a worker that stops gracefully."""

    # -- task queue limits ------------------------------------------------------

    @abc.abstractmethod
    async def set_queue_limits(self, queue: str, limits: QueueLimitsRecord | None) -> bool:
        """Set (None: remove) the limits on ``queue``'s activity attempts,
        which every claim of its tasks obeys from the next one on; whether
        the queue had limits before."""

    @abc.abstractmethod
    async def set_fairness_weight(self, queue: str, key: str, weight: int) -> int:
        """Set the weight of fairness key ``key`` on ``queue`` (1, the
        default, removes it), which every fair claim of its tasks follows
        from the next one on; the key's weight before."""

    @abc.abstractmethod
    async def queue_limits(self, queue: str) -> QueueLimitsRecord | None:
        """The limits set on ``queue`` (None: none)."""

    @abc.abstractmethod
    async def queues(self, queue: str | None = None) -> list[QueueRecord]:
        """The state of ``queue`` (None: of every queue that has activity
        tasks or limits), by name."""

    @abc.abstractmethod
    async def stats(self) -> StatsRecord:
        """The engine's vital counts, in one snapshot (see StatsRecord): for
        monitoring (``Client.stats``, the server's ``/metrics``)."""

    @abc.abstractmethod
    async def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker, live or not (callers judge liveness from
        ``heartbeat_at`` and ``lease_timeout``), oldest first."""
