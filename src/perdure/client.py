"""Client: start workflows, find their runs (handles: ``perdure._handle``,
exported here), list runs and workers.

Talks to a Store only; never runs workflow code. ``SyncClient`` (in
``perdure._sync``) wraps this one for programs that are not asyncio.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, overload

from perdure import _gcpolicy as gcpolicy
from perdure import schedules
from perdure._activitybatch import (
    ActivityBatchResult,
    MatchedActivity,
)
from perdure._asyncactivity import AsyncActivityHandle
from perdure._attrfilters import AttributeFilter, AttributeRange
from perdure._attributes import AttributeValue
from perdure._batch import BatchResult
from perdure._checks import check_name, timeout_seconds
from perdure._converter import DataConverter, checked_converter
from perdure._handle import WorkflowHandle, signal_event
from perdure._listing import WorkflowCount, run_filter
from perdure._operations import Operations
from perdure._schedule_spec import ID_PREFIX, SCHEDULE_WORKFLOW
from perdure._starts import checked_conflict, debounce_spans, new_run
from perdure._store import resolve_url, store_for_url
from perdure._store.base import STATUSES, IdConflict, NewRun, Store
from perdure._streams import StreamEntry, StreamInfo, StreamPage
from perdure._updates import UpdateHandle, send_update
from perdure._views import (
    BuildInfo,
    PendingActivityInfo,
    PendingTimerInfo,
    QueueBacklog,
    ResetPoints,
    Stats,
    WorkerInfo,
    WorkflowDescription,
    WorkflowExecution,
)
from perdure._waiting import EndWatch, OpenRuns, ResultWatch
from perdure.interceptors import Interceptor, WorkflowStart, checked_interceptors, headers_for
from perdure.schedules import IfExists, Overlap, ScheduleDescription, ScheduleHandle

__all__ = [
    "STATUSES",
    "ActivityBatchResult",
    "AsyncActivityHandle",
    "AttributeRange",
    "BatchResult",
    "BuildInfo",
    "Client",
    "MatchedActivity",
    "PendingActivityInfo",
    "PendingTimerInfo",
    "QueueBacklog",
    "ResetPoints",
    "Stats",
    "StreamEntry",
    "StreamInfo",
    "StreamPage",
    "UpdateHandle",
    "WorkerInfo",
    "WorkflowCount",
    "WorkflowDescription",
    "WorkflowExecution",
    "WorkflowHandle",
]

P = ParamSpec("P")
R = TypeVar("R")


log = logging.getLogger("perdure.client")


class Client(Operations):
    """Connects to a perdure database. Use ``await Client.connect(url)``."""

    def __init__(
        self,
        store: Store,
        converter: DataConverter | None = None,
        interceptors: Iterable[Interceptor] | None = None,
    ) -> None:
        self.store = store
        self.converter = checked_converter(converter)
        # (Workers made with this client run their activities inside them.)
        self.interceptors = checked_interceptors(interceptors)
        self.poll_interval = 0.2
        # One check for every result() waiter at once (see ResultWatch).
        self._results = ResultWatch(store, lambda: self.poll_interval)
        self._open_runs = OpenRuns(store)  # waiters' looks, taken together
        self._gc_tuned = False  # holds the garbage-collection policy (see connect)

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        converter: DataConverter | None = None,
        clock: Callable[[], float] | None = None,
        tune_gc: bool = True,
        interceptors: Iterable[Interceptor] | None = None,
    ) -> Client:
        """Open (and if needed create and migrate) the database at ``url``
        (default ``$PERDURE_DB``, else ``sqlite:///perdure.db``).

        ``interceptors``: ``perdure.interceptors.Interceptor`` instances
        around this client's starts and the activities of every Worker made
        with it (tracing: ``perdure.contrib.opentelemetry``).

        ``tune_gc``: until the client is closed, raise the cyclic garbage
        collector's thresholds as a running worker does (young 20,000, middle
        100; never lowered; the last client or worker to stop restores them): a
        program awaiting thousands of results had spent 44% of its CPU in the
        collector (see docs/operations.md). ``False`` leaves them alone."""
        checked_converter(converter)  # (before anything is opened)
        interceptors = checked_interceptors(interceptors)
        store = store_for_url(resolve_url(url), clock=clock)
        try:
            await store.open()
        except BaseException:
            await store.close()  # its thread, its pool: nothing outlives a failed connect
            raise
        client = cls(store, converter, interceptors)
        if tune_gc:
            gcpolicy.acquire()
            client._gc_tuned = True
        return client

    async def close(self) -> None:
        if self._gc_tuned:
            self._gc_tuned = False
            gcpolicy.release()
        await self._results.close()
        await self.store.close()
        self.store.wake_waiters()  # (their next look raises: the store is closed)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ starting

    @overload
    async def start(
        self,
        workflow: Callable[P, Coroutine[Any, Any, R]],
        *args: Any,
        id: str | None = None,
        task_queue: str = "default",
        id_conflict: IdConflict = "fail",
        start_delay: timedelta | None = None,
        execution_timeout: timedelta | None = None,
        search_attributes: Mapping[str, AttributeValue] | None = None,
        priority: int | None = None,
        fairness_key: str | None = None,
    ) -> WorkflowHandle[R]: ...
    @overload
    async def start(
        self,
        workflow: str,
        *args: Any,
        id: str | None = None,
        task_queue: str = "default",
        id_conflict: IdConflict = "fail",
        start_delay: timedelta | None = None,
        execution_timeout: timedelta | None = None,
        search_attributes: Mapping[str, AttributeValue] | None = None,
        priority: int | None = None,
        fairness_key: str | None = None,
    ) -> WorkflowHandle[Any]: ...
    async def start(
        self,
        workflow: Any,
        *args: Any,
        id: str | None = None,
        task_queue: str = "default",
        id_conflict: IdConflict = "fail",
        start_delay: timedelta | None = None,
        execution_timeout: timedelta | None = None,
        search_attributes: Mapping[str, AttributeValue] | None = None,
        priority: int | None = None,
        fairness_key: str | None = None,
    ) -> WorkflowHandle[Any]:
        """Start a run. Once this returns, the run is durable: it will run to a
        terminal state as long as some worker serves ``task_queue``.
        ``search_attributes``: values ``list(search_attributes=)`` finds the
        run by (see ``workflow.set_search_attributes``). ``priority``: its
        place in its queues' backlogs, from 1 (first) to 5 (last), 3 if not
        given; its activities and children inherit it (docs/queues.md).
        ``fairness_key``: whose work the run is (a tenant, a customer): within
        a priority, its queues serve the keys with due work in turn, so one
        key's backlog does not hold back another's; its activities and
        children inherit it (docs/queues.md, "Fairness")."""
        id_conflict = checked_conflict(id_conflict)
        fn, new = self._new_run(
            workflow,
            args,
            id,
            task_queue,
            start_delay=start_delay,
            execution_timeout=execution_timeout,
            search_attributes=search_attributes,
            priority=priority,
            fairness_key=fairness_key,
        )
        run, _created = await self.store.create_run(new, id_conflict)
        return WorkflowHandle(self, run.workflow_id, run.run_id, fn)

    def _new_run(
        self,
        workflow: Any,
        args: tuple[Any, ...],
        id: str | None,
        task_queue: str,
        *,
        intercepted: bool = True,
        **options: Any,
    ) -> tuple[Callable[..., Any] | None, NewRun]:
        """The run a start creates, with this client's converter and clock
        (see ``perdure._starts.new_run``), and the headers its interceptors
        give it (none for a schedule's own run: ``intercepted`` False)."""
        fn, new = new_run(
            self.converter, self.store.clock, workflow, args, id, task_queue, **options
        )
        if intercepted and self.interceptors:
            start = WorkflowStart(new.workflow_type, new.workflow_id, new.run_id, new.task_queue)
            new.headers = dict(headers_for(self.interceptors, start))
        return fn, new

    async def execute(
        self,
        workflow: Any,
        *args: Any,
        id: str | None = None,
        task_queue: str = "default",
        id_conflict: IdConflict = "fail",
        start_delay: timedelta | None = None,
        timeout: float | None = None,
        search_attributes: Mapping[str, AttributeValue] | None = None,
        priority: int | None = None,
        fairness_key: str | None = None,
    ) -> Any:
        """Start a run and wait for its result."""
        id_conflict = checked_conflict(id_conflict)
        fn, new = self._new_run(
            workflow,
            args,
            id,
            task_queue,
            start_delay=start_delay,
            search_attributes=search_attributes,
            priority=priority,
            fairness_key=fairness_key,
        )
        # Listening before the start commits, the wait can take the start's
        # own record of the run as its first look: no read. (So can a start
        # that found the id used by a run that has ended: it stays ended.)
        watch = EndWatch(self.store)
        watch.listen(new.run_id)
        try:
            run, created = await self.store.create_run(new, id_conflict)
            handle: WorkflowHandle[Any] = WorkflowHandle(self, run.workflow_id, run.run_id, fn)
            return await handle._wait(timeout, watch, run if created or not run.is_open else None)
        finally:
            watch.close()

    async def signal_with_start(
        self,
        workflow: Any,
        *args: Any,
        signal: str,
        signal_payload: Any = None,
        id: str,
        task_queue: str = "default",
        search_attributes: Mapping[str, AttributeValue] | None = None,
        priority: int | None = None,
        fairness_key: str | None = None,
    ) -> WorkflowHandle[Any]:
        """Signal the open run of ``id``, or start a new run (with these arguments,
        ``search_attributes``, ``priority`` and ``fairness_key``) and queue the signal for it —
        atomically: either way, once this returns the signal is durable and
        will be delivered."""
        fn, new = self._new_run(
            workflow,
            args,
            id,
            task_queue,
            search_attributes=search_attributes,
            priority=priority,
            fairness_key=fairness_key,
        )
        event = signal_event(self.converter, signal, signal_payload)
        run = await self.store.signal_with_start(new, event)
        return WorkflowHandle(self, run.workflow_id, run.run_id, fn)

    async def update_with_start(
        self,
        workflow: Any,
        *args: Any,
        update: str,
        update_payload: Any = None,
        id: str,
        update_id: str | None = None,
        timeout: float = 60.0,
        task_queue: str = "default",
        search_attributes: Mapping[str, AttributeValue] | None = None,
        priority: int | None = None,
        fairness_key: str | None = None,
    ) -> Any:
        """Send update ``update`` to the open run of ``id``, or start a new
        run (with these arguments, ``search_attributes``, ``priority`` and
        ``fairness_key``) with the request
        queued for it, atomically as ``signal_with_start`` does; then wait
        for the answer and return it, as ``WorkflowHandle.update`` does (a
        cart created by its first item, answering with the new total)."""
        _, new = self._new_run(
            workflow,
            args,
            id,
            task_queue,
            search_attributes=search_attributes,
            priority=priority,
            fairness_key=fairness_key,
        )
        timeout = timeout_seconds(timeout)
        # (The handle get_handle makes: a test environment's skips time.)
        sent = await send_update(self.get_handle(id), update, update_payload, update_id, new)
        return await sent.result(timeout)

    async def debounce(
        self,
        workflow: Any,
        *args: Any,
        key: str,
        delay: timedelta,
        max_delay: timedelta | None = None,
        task_queue: str = "default",
        execution_timeout: timedelta | None = None,
        search_attributes: Mapping[str, AttributeValue] | None = None,
        priority: int | None = None,
        fairness_key: str | None = None,
    ) -> WorkflowHandle[Any]:
        """Start ``workflow(*args)`` ``delay`` from now, unless called again
        with the same ``key`` (and workflow) before a worker takes the run:
        each call pushes that run's start back to ``delay`` from the call
        and gives it the call's arguments, so that a burst of calls makes
        one run, with the last call's arguments. ``max_delay``: no push
        goes past this long after the burst's first call. A call after a
        worker took the run starts another (docs/workflows.md, "Debouncing").
        The run's other options are its first call's. Returns the run's handle."""
        seconds, most = debounce_spans(key, delay, max_delay)
        fn, new = self._new_run(
            workflow,
            args,
            None,
            task_queue,
            start_delay=delay if max_delay is None else min(delay, max_delay),
            execution_timeout=execution_timeout,
            search_attributes=search_attributes,
            priority=priority,
            fairness_key=fairness_key,
        )
        run, _created = await self.store.debounce(new, key, seconds, most)
        return WorkflowHandle(self, run.workflow_id, run.run_id, fn)

    def get_handle(self, id: str, run_id: str | None = None) -> WorkflowHandle[Any]:
        """A handle to the given run, or to the latest run of ``id``."""
        check_name("id", id)
        check_name("run_id", run_id, none_means="the latest run of the id")
        return WorkflowHandle(self, id, run_id, None)

    def get_async_activity_handle(
        self,
        task_token: str | None = None,
        *,
        workflow_id: str | None = None,
        activity_id: int | None = None,
        run_id: str | None = None,
    ) -> AsyncActivityHandle:
        """An activity to complete, fail or heartbeat from this process, as
        Temporal's handle of the same name: the attempt ``task_token`` names
        (``activity.info().task_token``, read by an attempt whose function
        called ``activity.raise_complete_async()``), or, by id, the pending
        activity ``activity_id`` (``describe()``'s ``activity_id``) of
        ``workflow_id``'s latest run (or of ``run_id``), whatever it waits
        for: ``complete`` and ``fail`` then end it now, as an operator settles
        a step by hand. A malformed token or id raises TypeError or
        ValueError here; what can no longer end raises
        AsyncActivityNotFoundError from the handle's methods."""
        return AsyncActivityHandle(
            self.store,
            self.converter,
            task_token,
            workflow_id=workflow_id,
            run_id=run_id,
            activity_id=activity_id,
        )

    async def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        after: str | None = None,
        offset: int = 0,
        retrying: bool = False,
        latest: bool = False,
        search_attributes: Mapping[str, AttributeFilter] | None = None,
        build_id: str | None = None,
    ) -> list[WorkflowExecution]:
        """Runs, newest first, optionally filtered by status, workflow type name,
        creation time (``since``/``until``, inclusive; a naive datetime is UTC)
        and ``search``, text the workflow id contains (case-insensitive);
        ``retrying``: only runs whose latest workflow task failed and is retried
        (their ``last_error`` set); ``latest``: only each workflow id's latest
        run (not those a reset, a continue-as-new or a reuse of the id replaced);
        ``search_attributes``: only runs with each of these values (matched as
        text: ``120`` finds ``120.0`` and ``"120"``) or with a value in each
        ``AttributeRange`` (``{"total": AttributeRange(ge=1000)}``: numbers by
        value, strings by code point); ``build_id``: only runs
        pinned to that worker build (docs/versioning.md). Page with ``after``, the
        ``cursor`` of the previous page's last run (stable while runs are
        added), or with ``offset``, a number of runs to skip."""
        query = run_filter(
            status,
            workflow,
            limit,
            since=since,
            until=until,
            search=search,
            after=after,
            offset=offset,
            retrying=retrying,
            latest=latest,
            search_attributes=search_attributes,
            build_id=build_id,
        )
        return [WorkflowExecution.from_record(r) for r in await self.store.list_runs(query)]

    async def count(
        self,
        status: str | None = None,
        workflow: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        retrying: bool = False,
        latest: bool = False,
        search_attributes: Mapping[str, AttributeFilter] | None = None,
        build_id: str | None = None,
    ) -> WorkflowCount:
        """How many runs match the filters (as :meth:`list` takes them), and
        how many of each status: ``(await client.count(workflow="payment",
        status="failed")).count``, ``(await client.count(search_attributes=
        {"customer": "c-42"})).by_status``. The store counts the matching
        rows of the narrowest index it has (a status's, a type's, a search
        attribute's), so the cost grows with the runs counted."""
        query = run_filter(
            status,
            workflow,
            1,
            since=since,
            until=until,
            search=search,
            after=None,
            offset=0,
            retrying=retrying,
            latest=latest,
            search_attributes=search_attributes,
            build_id=build_id,
        )
        return WorkflowCount.of(await self.store.count_runs(query))

    async def create_schedule(
        self,
        schedule_id: str,
        workflow: Any,
        *args: Any,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str = "UTC",
        task_queue: str = "default",
        overlap: Overlap = "skip",
        catchup_window: timedelta = timedelta(days=1),
        jitter: timedelta = timedelta(0),
        priority: int | None = None,
        fairness_key: str | None = None,
        paused: bool = False,
        note: str | None = None,
        if_exists: IfExists = "fail",
    ) -> ScheduleHandle:
        """Start ``workflow(*args)`` at each time of ``cron`` (five fields, read
        on ``timezone``'s wall clock) or ``every`` interval (aligned on the
        epoch: every hour is on the hour, UTC). ``overlap="skip"`` skips a
        time while the run the schedule started last is still running;
        ``"allow"`` starts it anyway. After workers were away, one run is
        started for the latest time passed, if it is within
        ``catchup_window``. ``jitter``: each run may start up to that much
        after its time (an offset of its own per time, so that schedules of
        the same times spread their runs). ``priority``: the runs' (1 first,
        5 last, 3 by default; docs/queues.md), ``fairness_key`` their key
        (docs/queues.md, "Fairness"). If a schedule with this id exists,
        ``if_exists="fail"`` raises ``WorkflowAlreadyStartedError``, ``"keep"``
        leaves it, ``"update"`` updates it to these arguments (for a script
        run at each deploy). See docs/schedules.md."""
        spec = schedules.make_spec(
            self,
            schedule_id,
            workflow,
            args,
            cron=cron,
            every=every,
            timezone=timezone,
            task_queue=task_queue,
            overlap=overlap,
            catchup_window=catchup_window,
            jitter=jitter,
            priority=priority,
            fairness_key=fairness_key,
        )
        return await schedules.create(self, spec, paused, note, if_exists)

    def get_schedule(self, schedule_id: str) -> ScheduleHandle:
        """The handle of the schedule ``schedule_id`` (not checked until used)."""
        check_name("schedule_id", schedule_id)
        return ScheduleHandle(self, schedule_id)

    async def list_schedules(self, limit: int = 100) -> builtins.list[ScheduleDescription]:
        """The schedules that exist (not deleted), newest first."""
        runs = await self.list(
            status="running", workflow=SCHEDULE_WORKFLOW, limit=limit, latest=True
        )
        found = []
        for run in runs:
            schedule_id = run.id.removeprefix(ID_PREFIX)
            described = await ScheduleHandle(self, schedule_id).describe()
            if described.status == "running":  # (not deleted meanwhile)
                found.append(described)
        return found
