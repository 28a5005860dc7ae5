"""SyncClient: the Client's methods, blocking, for programs that are not asyncio.

It runs a private event loop in a daemon thread and forwards each call to it.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from perdure._activitybatch import ActivityBatchAction, ActivityBatchResult
from perdure._batch import BatchAction, BatchResult
from perdure._converter import DataConverter
from perdure._streams import StreamInfo, StreamPage
from perdure._updates import UpdateHandle
from perdure.client import (
    AsyncActivityHandle,
    BuildInfo,
    Client,
    ResetPoints,
    Stats,
    WorkerInfo,
    WorkflowCount,
    WorkflowDescription,
    WorkflowExecution,
    WorkflowHandle,
)
from perdure.interceptors import Interceptor
from perdure.queues import QueueInfo, QueueLimits
from perdure.schedules import ScheduleDescription, ScheduledRun, ScheduleHandle

__all__ = [
    "SyncAsyncActivityHandle",
    "SyncClient",
    "SyncScheduleHandle",
    "SyncUpdateHandle",
    "SyncWorkflowHandle",
]

T = TypeVar("T")
R = TypeVar("R")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="perdure-sync", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        # (The task is made by a callback that runs in a copy of the calling
        # thread's context, as call_soon_threadsafe makes it: what the caller
        # set in its context variables, such as a current trace span, is what
        # the call and its interceptors see.)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class SyncClient:
    """Blocking twin of :class:`Client`: ``SyncClient.connect(url)``."""

    def __init__(self, runner: _LoopThread, client: Client) -> None:
        self._runner = runner
        self.client = client

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        converter: DataConverter | None = None,
        clock: Callable[[], float] | None = None,
        tune_gc: bool = True,
        interceptors: Iterable[Interceptor] | None = None,
    ) -> SyncClient:
        runner = _LoopThread()
        try:
            client = runner.call(
                Client.connect(
                    url,
                    converter=converter,
                    clock=clock,
                    tune_gc=tune_gc,
                    interceptors=interceptors,
                )
            )
        except BaseException:
            runner.stop()
            raise
        return cls(runner, client)

    def close(self) -> None:
        try:
            self._runner.call(self.client.close())
        finally:
            self._runner.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, workflow: Any, *args: Any, **options: Any) -> SyncWorkflowHandle[Any]:
        handle = self._runner.call(self.client.start(workflow, *args, **options))
        return SyncWorkflowHandle(self._runner, handle)

    def execute(self, workflow: Any, *args: Any, **options: Any) -> Any:
        return self._runner.call(self.client.execute(workflow, *args, **options))

    def signal_with_start(
        self, workflow: Any, *args: Any, **options: Any
    ) -> SyncWorkflowHandle[Any]:
        handle = self._runner.call(self.client.signal_with_start(workflow, *args, **options))
        return SyncWorkflowHandle(self._runner, handle)

    def debounce(self, workflow: Any, *args: Any, **options: Any) -> SyncWorkflowHandle[Any]:
        """As :meth:`Client.debounce`."""
        handle = self._runner.call(self.client.debounce(workflow, *args, **options))
        return SyncWorkflowHandle(self._runner, handle)

    def update_with_start(self, workflow: Any, *args: Any, **options: Any) -> Any:
        return self._runner.call(self.client.update_with_start(workflow, *args, **options))

    def get_handle(self, id: str, run_id: str | None = None) -> SyncWorkflowHandle[Any]:
        return SyncWorkflowHandle(self._runner, self.client.get_handle(id, run_id))

    def get_async_activity_handle(
        self,
        task_token: str | None = None,
        *,
        workflow_id: str | None = None,
        activity_id: int | None = None,
        run_id: str | None = None,
    ) -> SyncAsyncActivityHandle:
        handle = self.client.get_async_activity_handle(
            task_token, workflow_id=workflow_id, activity_id=activity_id, run_id=run_id
        )
        return SyncAsyncActivityHandle(self._runner, handle)

    def list(
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
        search_attributes: Mapping[str, Any] | None = None,
        build_id: str | None = None,
    ) -> list[WorkflowExecution]:
        query = self.client.list(
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
        return self._runner.call(query)

    def count(
        self, status: str | None = None, workflow: str | None = None, **filters: Any
    ) -> WorkflowCount:
        """As :meth:`Client.count`."""
        return self._runner.call(self.client.count(status, workflow, **filters))

    def batch(self, action: BatchAction, **options: Any) -> BatchResult:
        """As :meth:`Client.batch`."""
        return self._runner.call(self.client.batch(action, **options))

    def batch_activities(self, action: ActivityBatchAction, **options: Any) -> ActivityBatchResult:
        """As :meth:`Client.batch_activities`."""
        return self._runner.call(self.client.batch_activities(action, **options))

    def delete_closed_runs(self, older_than: timedelta, *, batch: int = 500) -> int:
        """As :meth:`Client.delete_closed_runs`."""
        return self._runner.call(self.client.delete_closed_runs(older_than, batch=batch))

    def stats(self) -> Stats:
        """As :meth:`Client.stats`."""
        return self._runner.call(self.client.stats())

    def list_workers(self) -> builtins.list[WorkerInfo]:
        """Workers that are running now, as :meth:`Client.list_workers`."""
        return self._runner.call(self.client.list_workers())

    def set_queue_limits(
        self,
        task_queue: str,
        *,
        max_running: int | None = None,
        max_starts: int | None = None,
        per: timedelta | None = None,
        max_running_per_key: int | None = None,
        max_starts_per_key: int | None = None,
    ) -> QueueLimits:
        """As :meth:`Client.set_queue_limits`."""
        call = self.client.set_queue_limits(
            task_queue,
            max_running=max_running,
            max_starts=max_starts,
            per=per,
            max_running_per_key=max_running_per_key,
            max_starts_per_key=max_starts_per_key,
        )
        return self._runner.call(call)

    def remove_queue_limits(self, task_queue: str) -> bool:
        """As :meth:`Client.remove_queue_limits`."""
        return self._runner.call(self.client.remove_queue_limits(task_queue))

    def set_fairness_weight(self, task_queue: str, fairness_key: str, weight: int) -> int:
        """As :meth:`Client.set_fairness_weight`."""
        return self._runner.call(self.client.set_fairness_weight(task_queue, fairness_key, weight))

    def describe_queue(self, task_queue: str) -> QueueInfo:
        """As :meth:`Client.describe_queue`."""
        return self._runner.call(self.client.describe_queue(task_queue))

    def list_queues(self) -> builtins.list[QueueInfo]:
        """As :meth:`Client.list_queues`."""
        return self._runner.call(self.client.list_queues())

    def set_current_build(self, task_queue: str, build_id: str) -> None:
        """As :meth:`Client.set_current_build`."""
        self._runner.call(self.client.set_current_build(task_queue, build_id))

    def set_ramping_build(
        self, task_queue: str, build_id: str | None, percent: float | None = None
    ) -> None:
        """As :meth:`Client.set_ramping_build`."""
        self._runner.call(self.client.set_ramping_build(task_queue, build_id, percent))

    def builds(self, task_queue: str) -> builtins.list[BuildInfo]:
        """As :meth:`Client.builds`."""
        return self._runner.call(self.client.builds(task_queue))

    def builds_by_queue(self) -> dict[str, builtins.list[BuildInfo]]:
        """As :meth:`Client.builds_by_queue`."""
        return self._runner.call(self.client.builds_by_queue())

    def create_schedule(
        self, schedule_id: str, workflow: Any, *args: Any, **options: Any
    ) -> SyncScheduleHandle:
        """As :meth:`Client.create_schedule`."""
        call = self.client.create_schedule(schedule_id, workflow, *args, **options)
        return SyncScheduleHandle(self._runner, self._runner.call(call))

    def get_schedule(self, schedule_id: str) -> SyncScheduleHandle:
        return SyncScheduleHandle(self._runner, self.client.get_schedule(schedule_id))

    def list_schedules(self, limit: int = 100) -> builtins.list[ScheduleDescription]:
        return self._runner.call(self.client.list_schedules(limit))


class SyncScheduleHandle:
    """Blocking twin of :class:`perdure.schedules.ScheduleHandle`."""

    def __init__(self, runner: _LoopThread, handle: ScheduleHandle) -> None:
        self._runner = runner
        self.handle = handle

    @property
    def id(self) -> str:
        return self.handle.id

    @property
    def workflow_handle(self) -> SyncWorkflowHandle[None]:
        return SyncWorkflowHandle(self._runner, self.handle.workflow_handle)

    def describe(self) -> ScheduleDescription:
        return self._runner.call(self.handle.describe())

    def pause(self, note: str | None = None) -> None:
        self._runner.call(self.handle.pause(note))

    def unpause(self, note: str | None = None) -> None:
        self._runner.call(self.handle.unpause(note))

    def trigger(self) -> None:
        self._runner.call(self.handle.trigger())

    def backfill(self, start: datetime, end: datetime) -> builtins.list[ScheduledRun]:
        """As :meth:`perdure.schedules.ScheduleHandle.backfill`."""
        return self._runner.call(self.handle.backfill(start, end))

    def update(self, **changes: Any) -> None:
        """As :meth:`perdure.schedules.ScheduleHandle.update`."""
        self._runner.call(self.handle.update(**changes))

    def delete(self) -> None:
        self._runner.call(self.handle.delete())


async def _next_value(values: AsyncIterator[Any]) -> Any:
    return await anext(values)


async def _close_values(values: AsyncIterator[Any]) -> None:
    if isinstance(values, AsyncGenerator):
        await values.aclose()


class SyncAsyncActivityHandle:
    """Blocking twin of :class:`perdure.AsyncActivityHandle`."""

    def __init__(self, runner: _LoopThread, handle: AsyncActivityHandle) -> None:
        self._runner = runner
        self.handle = handle

    @property
    def task_token(self) -> str | None:
        return self.handle.task_token

    def complete(self, result: Any = None) -> None:
        self._runner.call(self.handle.complete(result))

    def fail(self, error: BaseException) -> None:
        self._runner.call(self.handle.fail(error))

    def heartbeat(self, details: Any = None) -> None:
        self._runner.call(self.handle.heartbeat(details))

    def report_cancellation(self) -> str | None:
        return self._runner.call(self.handle.report_cancellation())

    def pause(self) -> None:
        self._runner.call(self.handle.pause())

    def unpause(self, *, reset_attempts: bool = False, jitter: timedelta | None = None) -> None:
        self._runner.call(self.handle.unpause(reset_attempts=reset_attempts, jitter=jitter))

    def reset(
        self,
        *,
        keep_paused: bool = False,
        clear_heartbeat_details: bool = False,
        jitter: timedelta | None = None,
    ) -> None:
        """As AsyncActivityHandle.reset."""
        self._runner.call(
            self.handle.reset(
                keep_paused=keep_paused,
                clear_heartbeat_details=clear_heartbeat_details,
                jitter=jitter,
            )
        )

    def update_options(self, **changes: Any) -> None:
        """As AsyncActivityHandle.update_options (the same keyword arguments)."""
        self._runner.call(self.handle.update_options(**changes))


class SyncWorkflowHandle(Generic[R]):
    def __init__(self, runner: _LoopThread, handle: WorkflowHandle[R]) -> None:
        self._runner = runner
        self.handle = handle

    @property
    def id(self) -> str:
        return self.handle.id

    @property
    def run_id(self) -> str | None:
        return self.handle.run_id

    def result(self, timeout: float | None = None) -> R:
        return self._runner.call(self.handle.result(timeout))

    def signal(self, name: str, payload: Any = None) -> None:
        self._runner.call(self.handle.signal(name, payload))

    def cancel(self, reason: str | None = None) -> None:
        self._runner.call(self.handle.cancel(reason))

    def set_priority(self, priority: int) -> None:
        self._runner.call(self.handle.set_priority(priority))

    def set_fairness_key(self, fairness_key: str | None) -> None:
        self._runner.call(self.handle.set_fairness_key(fairness_key))

    def set_build_id(self, build_id: str | None) -> None:
        self._runner.call(self.handle.set_build_id(build_id))

    def terminate(self, reason: str | None = None) -> None:
        self._runner.call(self.handle.terminate(reason))

    def reset_points(self) -> ResetPoints:
        return self._runner.call(self.handle.reset_points())

    def reset(
        self, *, to_event: int | None = None, reason: str | None = None
    ) -> SyncWorkflowHandle[R]:
        """WorkflowHandle.reset: a handle on the new run."""
        new = self._runner.call(self.handle.reset(to_event=to_event, reason=reason))
        return SyncWorkflowHandle(self._runner, new)

    def describe(self) -> WorkflowDescription:
        return self._runner.call(self.handle.describe())

    def state(self, key: str | None = None) -> Any:
        return self._runner.call(self.handle.state(key))

    def wait_state(self, key: str, timeout: float = 60.0) -> Any:
        return self._runner.call(self.handle.wait_state(key, timeout))

    def read_stream(
        self, key: str, start: int = 0, *, timeout: float | None = None
    ) -> Iterator[Any]:
        """WorkflowHandle.read_stream, as a blocking iterator."""
        values = self.handle.read_stream(key, start, timeout=timeout)
        try:
            while True:
                try:
                    yield self._runner.call(_next_value(values))
                except StopAsyncIteration:
                    return
        finally:
            if not self._runner.loop.is_closed():  # (a client closed first ended it)
                self._runner.call(_close_values(values))

    def stream_page(self, key: str, start: int = 0, limit: int = 100) -> StreamPage:
        return self._runner.call(self.handle.stream_page(key, start, limit))

    def streams(self) -> list[StreamInfo]:
        return self._runner.call(self.handle.streams())

    def update(
        self,
        name: str,
        payload: Any = None,
        *,
        update_id: str | None = None,
        timeout: float = 60.0,
    ) -> Any:
        return self._runner.call(
            self.handle.update(name, payload, update_id=update_id, timeout=timeout)
        )

    def start_update(
        self, name: str, payload: Any = None, *, update_id: str | None = None
    ) -> SyncUpdateHandle:
        sent = self._runner.call(self.handle.start_update(name, payload, update_id=update_id))
        return SyncUpdateHandle(self._runner, sent)

    def history(self, after_seq: int = 0) -> list[dict[str, Any]]:
        return self._runner.call(self.handle.history(after_seq))


class SyncUpdateHandle:
    """An update sent from a SyncClient's handle: as ``UpdateHandle``."""

    def __init__(self, runner: _LoopThread, handle: UpdateHandle) -> None:
        self._runner = runner
        self.handle = handle
        self.id = handle.id

    def result(self, timeout: float = 60.0) -> Any:
        return self._runner.call(self.handle.result(timeout))
