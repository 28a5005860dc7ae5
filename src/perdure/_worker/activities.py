"""Activity execution: run one claimed attempt, then complete, retry or fail it.

An attempt's outcome is written with the attempt's lease token, so an attempt
that lost its lease (timed out, worker presumed dead) cannot overwrite a newer
one. Imports the activity definitions, retry policy, errors and the Store.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from perdure import _history as h
from perdure._converter import DataConverter
from perdure._store.base import ActivityTask, Store
from perdure.activity import ActivityFunction, ActivityInfo, _ActivityContext, _context
from perdure.errors import ApplicationError, PayloadError, failure_from_exception
from perdure.retry import RetryPolicy

log = logging.getLogger("perdure.worker")

UNKNOWN_ACTIVITY_RETRY = 5.0


class ActivityTimeoutError(Exception):
    """An attempt ran longer than its start_to_close_timeout."""


class ActivityRunner:
    def __init__(
        self,
        store: Store,
        converter: DataConverter,
        activities: dict[str, ActivityFunction[Any, Any]],
        max_threads: int,
    ) -> None:
        self.store = store
        self.converter = converter
        self.activities = activities
        self._pool = ThreadPoolExecutor(max_threads, thread_name_prefix="perdure-activity")
        self.heartbeats: dict[int, Any] = {}  # task id -> latest details, flushed by the lease loop

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, task: ActivityTask) -> None:
        activity = self.activities.get(task.name)
        if activity is None:
            known = ", ".join(sorted(self.activities)) or "none"
            failure = {
                "type": "ActivityNotRegistered",
                "message": f"activity {task.name!r} is not registered on this worker "
                f"(registered: {known})",
                "traceback": "",
                "non_retryable": False,
                "details": None,
            }
            log.warning("%s", failure["message"])
            await self.store.retry_activity(task, failure, UNKNOWN_ACTIVITY_RETRY)
            return
        policy = RetryPolicy.from_dict(task.options["retry"])
        if policy.max_attempts is not None and task.attempt > policy.max_attempts:
            # The previous attempt was lost (its worker died or its lease ran out)
            # and it was the last one allowed.
            failure = {
                "type": "ActivityTimeoutError",
                "message": f"attempt {task.attempt - 1} of activity {task.name!r} was lost "
                f"(its worker stopped or it outlived its lease) and no attempts remain",
                "traceback": "",
                "non_retryable": True,
                "details": None,
            }
            await self.store.complete_activity(
                task, h.ActivityFailed(ref=task.ref, failure=failure, attempt=task.attempt - 1)
            )
            return
        try:
            result = await self._execute(activity, task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._handle_failure(task, policy, exc)
            return
        await self.store.complete_activity(
            task, h.ActivityCompleted(ref=task.ref, result=result, attempt=task.attempt)
        )

    async def _execute(self, activity: ActivityFunction[Any, Any], task: ActivityTask) -> Any:
        args, kwargs = self.converter.decode_args(activity.fn, task.args, task.kwargs)
        info = ActivityInfo(
            workflow_id=task.workflow_id,
            run_id=task.run_id,
            workflow_type=task.workflow_type,
            activity_id=str(task.ref),
            activity_type=task.name,
            task_queue=task.task_queue,
            attempt=task.attempt,
            idempotency_key=f"{task.workflow_id}/{task.run_id}/{task.ref}",
            heartbeat_details=task.heartbeat,
        )
        loop = asyncio.get_running_loop()

        def on_heartbeat(details: Any) -> None:
            self.heartbeats[task.task_id] = details

        ctx = contextvars.copy_context()
        ctx.run(_context.set, _ActivityContext(info, on_heartbeat))
        timeout = task.options.get("start_to_close_timeout")
        awaitable: asyncio.Future[Any]
        if activity.is_async:
            # A task copies the context current at its creation: create it inside ctx.
            awaitable = ctx.run(loop.create_task, activity.fn(*args, **kwargs))
        else:
            # Plain `def` activities run in the thread pool, with the same context.
            awaitable = loop.run_in_executor(
                self._pool, functools.partial(ctx.run, activity.fn, *args, **kwargs)
            )
        try:
            value = await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError as exc:
            if timeout is None or not awaitable.cancelled():
                raise  # the activity's own TimeoutError, not our deadline
            raise ActivityTimeoutError(
                f"activity {task.name!r} attempt {task.attempt} exceeded its "
                f"start_to_close_timeout of {timeout:g}s"
            ) from exc
        return self.converter.encode_result(activity.fn, value)

    async def _handle_failure(
        self, task: ActivityTask, policy: RetryPolicy, exc: Exception
    ) -> None:
        failure = failure_from_exception(exc)
        names = {cls.__name__ for cls in type(exc).__mro__}
        non_retryable = (
            (isinstance(exc, ApplicationError) and exc.non_retryable)
            or isinstance(exc, PayloadError)  # bad input fails the same way every time
            or bool(names & set(policy.names_non_retryable()))
        )
        if not non_retryable and policy.allows_another(task.attempt):
            delay = policy.delay_after(task.attempt)
            log.info(
                "activity %s (run %s) attempt %d failed: %s; retrying in %.3gs",
                task.name,
                task.run_id,
                task.attempt,
                exc,
                delay,
            )
            await self.store.retry_activity(task, failure, delay)
            return
        failure["non_retryable"] = non_retryable
        await self.store.complete_activity(
            task, h.ActivityFailed(ref=task.ref, failure=failure, attempt=task.attempt)
        )
