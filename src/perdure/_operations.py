"""The operator's side of a Client: task queues (their limits, their worker
builds), the live workers, the engine's stats, the retention of closed
runs, and batch operations on runs and activities. ``Operations`` is the
base of ``perdure.client.Client``, which these methods are documented on.
Talks to a Store only.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from perdure import queues
from perdure._activitybatch import (
    ActivityBatchAction,
    ActivityBatchResult,
    activity_batch_filters,
    run_activity_batch,
)
from perdure._attrfilters import AttributeFilter
from perdure._batch import (
    BatchAction,
    BatchResult,
    batch_filters,
    checked_run_options,
    run_batch,
)
from perdure._checks import BadName, check_build, check_queue
from perdure._handle import _reason
from perdure._retention import delete_closed_runs
from perdure._store.base import Store, WorkerRecord
from perdure._views import BuildInfo, Stats, WorkerInfo, stats_of
from perdure.queues import QueueInfo, QueueLimits

if TYPE_CHECKING:
    from perdure.client import Client

LIVE_WORKER_LEASES = 3  # a worker is live while its last heartbeat is this many leases old at most


class Operations:
    """Queues, builds, workers, stats, retention and batches (see the module)."""

    store: Store

    async def set_queue_limits(
        self,
        task_queue: str,
        *,
        max_running: int | None = None,
        max_starts: int | None = None,
        per: timedelta | None = None,
        max_running_per_key: int | None = None,
        max_starts_per_key: int | None = None,
    ) -> QueueLimits:
        """Limit ``task_queue``'s activity attempts, across every worker: at
        most ``max_running`` running at once, at most ``max_starts`` started
        in any window of ``per``, at most ``max_running_per_key`` of one
        fairness key running at once, at most ``max_starts_per_key`` of one
        key started in any window of ``per`` (the unkeyed: one key). Replaces the
        queue's limits (a limit not given is lifted); workers obey them from
        their next claim on. The queue's activities then never run inline.
        See docs/queues.md."""
        limits = queues.make_limits(
            task_queue, max_running, max_starts, per, max_running_per_key, max_starts_per_key
        )
        await self.store.set_queue_limits(task_queue, limits.to_record())
        return limits

    async def remove_queue_limits(self, task_queue: str) -> bool:
        """Lift every limit of ``task_queue``; whether it had any."""
        check_queue("task_queue", task_queue)
        return await self.store.set_queue_limits(task_queue, None)

    async def set_fairness_weight(self, task_queue: str, fairness_key: str, weight: int) -> int:
        """Give the fairness key ``fairness_key`` of ``task_queue`` a weight:
        in its turn, it takes up to ``weight`` tasks for each one a key of
        weight 1 takes (1 to 1,000; keys not given one weigh 1, and 1 removes
        it). The queue's workflow tasks and activity tasks alike follow it,
        from each worker's next claim on. Returns the key's weight before.
        See docs/queues.md, "Weights"."""
        queues.check_weight(task_queue, fairness_key, weight)
        return await self.store.set_fairness_weight(task_queue, fairness_key, weight)

    async def describe_queue(self, task_queue: str) -> QueueInfo:
        """``task_queue``'s limits and its activities now: running, waiting,
        backing off, started in the rate limit's window."""
        check_queue("task_queue", task_queue)
        (found,) = await self.store.queues(task_queue)
        return QueueInfo.from_record(found)

    async def set_current_build(self, task_queue: str, build_id: str) -> None:
        """Make ``build_id`` the current build of ``task_queue``: its
        workers take the queue's new runs, and the runs no build holds, from
        their next heartbeat on (a third of their lease timeout); the other
        builds' workers then only finish the runs pinned to them. A build
        becomes current by itself when its first worker of workflows
        starts (an activity worker makes none current): this is for
        going back to an older one (a rollback), or forward again. The
        build need not have a worker yet (docs/versioning.md)."""
        check_queue("task_queue", task_queue)
        check_build("build_id", build_id)
        await self.store.set_current_build(task_queue, build_id)

    async def set_ramping_build(
        self, task_queue: str, build_id: str | None, percent: float | None = None
    ) -> None:
        """Let ``build_id`` take ``percent`` (0 to 100) of ``task_queue``'s
        new runs beside its current build, to try a release on a share of
        the traffic before making it current; ``build_id=None`` stops the
        ramp. Each workflow id falls on one side for good (a hash of it):
        raising the share only adds ids to the ramping build. The current
        build's workers hand those runs over from their next heartbeat;
        runs of auto-upgrade types, and children that follow their parent's
        build, are not ramped. ``set_current_build(task_queue, build_id)``
        ends the ramp by making the build current; one build ramps at a
        time. The build need not have a worker yet (set the ramp before its
        workers start: a build whose first worker starts first becomes
        current); while it has none, its share of new runs waits for one
        (docs/versioning.md). Raises
        ValueError if the queue has no current build, or if ``build_id`` is
        the current one."""
        check_queue("task_queue", task_queue)
        if build_id is None:
            if percent:
                raise BadName("percent: no share without a build (build_id=None stops the ramp)")
            await self.store.set_ramping_build(task_queue, None, 0.0)
            return
        check_build("build_id", build_id)
        if (
            isinstance(percent, bool)
            or not isinstance(percent, (int, float))
            or not 0 <= percent <= 100
        ):
            raise BadName(f"percent must be a number from 0 to 100, not {percent!r}")
        await self.store.set_ramping_build(task_queue, build_id, float(percent))

    async def builds(self, task_queue: str) -> builtins.list[BuildInfo]:
        """The builds ``task_queue``'s workers have had, the current first:
        when each became current, its open pinned runs and its live workers.
        A build with no open run left can be shut down (docs/versioning.md)."""
        check_queue("task_queue", task_queue)
        found = await self.store.queue_builds(task_queue, with_runs=True)
        return _build_infos(task_queue, found, await self._live_workers())

    async def builds_by_queue(self) -> dict[str, builtins.list[BuildInfo]]:
        """The builds of every task queue that has had one, by queue name:
        each queue's as :meth:`builds` lists them (the web UI's builds page)."""
        found = await self.store.every_queue_builds(with_runs=True)
        live = await self._live_workers()
        return {queue: _build_infos(queue, builds, live) for queue, builds in found.items()}

    async def list_queues(self) -> builtins.list[QueueInfo]:
        """Every task queue that has activity tasks or limits, by name."""
        return [QueueInfo.from_record(r) for r in await self.store.queues()]

    async def delete_closed_runs(self, older_than: timedelta, *, batch: int = 500) -> int:
        """Delete the runs that closed more than ``older_than`` ago, with their
        histories, streams and search attributes: a retention job (run it
        daily, say; ``perdure delete-closed --older-than 30d``). Open runs
        are never touched, nor a closed run whose child still runs (the child
        reports to it). In transactions of ``batch`` runs, oldest first, so
        that workers' commits go on between them; returns how many runs were
        deleted. A deleted run is gone: export what you must keep first
        (``handle.history()``)."""
        return await delete_closed_runs(self.store, older_than, batch)

    async def stats(self) -> Stats:
        """The engine at a glance, for monitoring: open and retrying runs,
        timers and how late the first is, each queue's backlog and lag, the
        live workers of each task queue (see docs/operations.md#monitoring)."""
        record = await self.store.stats()
        live = Counter(w.task_queue for w in await self.list_workers())
        return stats_of(record, dict(sorted(live.items())))

    async def list_workers(self) -> builtins.list[WorkerInfo]:
        """Workers that are running now (on any machine): those whose last
        heartbeat is at most three lease timeouts old. Oldest first."""
        return [
            WorkerInfo(
                w.identity,
                w.host,
                w.pid,
                w.task_queue,
                w.workflows,
                w.activities,
                datetime.fromtimestamp(w.started_at, tz=UTC),
                datetime.fromtimestamp(w.heartbeat_at, tz=UTC),
                w.build_id,
            )
            for w in await self._live_workers()
        ]

    async def _live_workers(self) -> builtins.list[WorkerRecord]:
        now = self.store.clock()
        return [
            w
            for w in await self.store.list_workers()
            if now - w.heartbeat_at <= LIVE_WORKER_LEASES * w.lease_timeout
        ]

    async def batch(
        self,
        action: BatchAction,
        *,
        status: str | None = None,
        workflow: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        search_attributes: Mapping[str, AttributeFilter] | None = None,
        retrying: bool = False,
        reason: str | None = None,
        limit: int | None = None,
        dry_run: bool = False,
        build_id: str | None = None,
        new_options: Mapping[str, object] | None = None,
    ) -> BatchResult:
        """Cancel, terminate or reset (``action``) every run the filters
        match, as ``list(..., latest=True)`` does: each workflow id's latest
        run (cancel and terminate: its open runs only), but schedules' own
        runs unless ``workflow="perdure.schedule"``. ``"update_options"``
        changes the open runs' ``priority`` or ``fairness_key`` (None: no
        key), given in ``new_options`` (``{"priority": 1}``), as
        ``WorkflowHandle.set_priority`` and ``set_fairness_key`` do. At least one filter is
        required (``status="running"`` names every open run); ``limit``: at
        most that many, newest first. ``dry_run``: only say which.
        ``build_id``: the runs pinned to that worker build (after a bad
        deploy: reset the runs its code broke, docs/versioning.md).

        The runs are chosen first, then acted on a few at a time, each by its
        run id: one that ended or was replaced meanwhile is ``skipped``, an
        action that raised is ``failed`` (with its error); the others go on.
        Running the same batch again acts on what still matches."""
        filters = batch_filters(
            action,
            status,
            workflow,
            since,
            until,
            search,
            search_attributes,
            retrying,
            limit,
            build_id,
        )
        given = None
        if action == "update_options":
            given = checked_run_options(new_options)
            if reason is not None:
                raise ValueError(
                    "reason goes with cancel, terminate and reset: a change of options records none"
                )
        elif new_options is not None:
            raise ValueError(f"new_options goes with update_options, not {action}")
        return await run_batch(
            _client(self), action, filters, _reason(reason), limit, dry_run, given
        )

    async def batch_activities(
        self,
        action: ActivityBatchAction,
        *,
        activity_type: str | None = None,
        workflow: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        search_attributes: Mapping[str, AttributeFilter] | None = None,
        retrying: bool = False,
        reset_attempts: bool = False,
        keep_paused: bool = False,
        clear_heartbeat_details: bool = False,
        jitter: timedelta | None = None,
        new_options: Mapping[str, object] | None = None,
        limit: int | None = None,
        dry_run: bool = False,
        build_id: str | None = None,
    ) -> ActivityBatchResult:
        """Pause (those not paused), unpause (the paused), reset or update the
        options of (all) each pending activity of ``activity_type`` (None: any)
        of the open runs the filters match, as ``batch`` chooses runs; then each
        by id, with its handle method's options (unpause: ``reset_attempts``,
        ``jitter``; reset: ``keep_paused``, ``clear_heartbeat_details``,
        ``jitter``; update_options: ``new_options``)."""
        filters = activity_batch_filters(
            action,
            activity_type,
            workflow,
            since,
            until,
            search,
            search_attributes,
            retrying,
            build_id,
        )
        options = {
            "reset_attempts": reset_attempts,
            "keep_paused": keep_paused,
            "clear_heartbeat_details": clear_heartbeat_details,
            "jitter": jitter,
        }
        return await run_activity_batch(
            _client(self), action, filters, options, new_options, limit, dry_run
        )


def _build_infos(
    task_queue: str,
    found: list[tuple[str, float, int | None, float | None]],
    live: list[WorkerRecord],
) -> list[BuildInfo]:
    """``task_queue``'s builds as the store gave them (Store.queue_builds,
    with their runs), each with its live workers among ``live``."""
    workers = Counter(w.build_id for w in live if w.task_queue == task_queue)
    return [
        BuildInfo(
            build_id,
            i == 0,
            datetime.fromtimestamp(promoted_at, tz=UTC) if promoted_at else None,
            open_runs or 0,
            workers[build_id],
            ramp,
        )
        for i, (build_id, promoted_at, open_runs, ramp) in enumerate(found)
    ]


def _client(operations: Operations) -> Client:
    """The Client these methods are part of (Operations is its base)."""
    return cast("Client", operations)
