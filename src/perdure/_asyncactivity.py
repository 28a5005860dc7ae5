"""Completing an activity attempt from another process: the task token that
names the attempt (``activity.info().task_token``), and the handle a client
completes, fails or heartbeats it with (``Client.get_async_activity_handle``).

A token holds the attempt's task row id, its run, its activity's id in the
run and the attempt's lease token: every statement on the row matches all of
them, so a token completes its own attempt only (a retry has a new one), and
the run id's random part makes a token impossible to guess from another.
The outcome is recorded as the worker records one (perdure._worker.outcomes).
Imports the store interface, the converter, the history model and errors.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

from perdure import _history as h
from perdure._activityoptions import OptionsChange, jitter_seconds, planned
from perdure._converter import DataConverter
from perdure._store.base import RESET_REQUESTED, ActivityState, ActivityTask, RunRecord, Store
from perdure._worker.outcomes import (
    attempts_ended,
    cancelled_failure,
    completion_deadline,
    failure_outcome,
    operator_stop,
)
from perdure.errors import (
    AsyncActivityCancelledError,
    AsyncActivityNotFoundError,
    PerdureError,
    failure_from_exception,
)

__all__ = ["AsyncActivityHandle", "TaskKey", "parse_task_token", "task_token"]

_PREFIX = "pt1."  # (a token's format, should it ever change)


class TaskKey(NamedTuple):
    task_id: int
    token: str
    run_id: str
    ref: int


def task_token(task: ActivityTask) -> str:
    """The attempt's task token: URL-safe text."""
    key = [task.task_id, task.token, task.run_id, task.ref]
    raw = json.dumps(key, separators=(",", ":")).encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_task_token(text: object) -> TaskKey:
    """A task token read back; TypeError or ValueError if it is not one."""
    if not isinstance(text, str):
        raise TypeError(f"a task token is a str, not {type(text).__name__} {text!r}")
    body = text.strip()
    if body.startswith(_PREFIX):
        body = body[len(_PREFIX) :]
        try:
            key = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError):
            key = None
        if (
            isinstance(key, list)
            and len(key) == 4
            and type(key[0]) is int
            and isinstance(key[1], str)
            and isinstance(key[2], str)
            and type(key[3]) is int
            # (ids a database holds: PostgreSQL's BIGINT and INTEGER, SQLite's 64 bits)
            and 0 < key[0] < 2**63
            and 0 < key[3] < 2**31
        ):
            return TaskKey(*key)
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise ValueError(
        f"not a task token: {shown!r} (a token is activity.info().task_token, "
        f"as the attempt's function read it, starting {_PREFIX!r})"
    )


class AsyncActivityHandle:
    """An activity of a run, named by an attempt's task token or by its
    workflow id and activity id (``Client.get_async_activity_handle``).

    By task token it names the attempt whose function called
    ``activity.raise_complete_async()``: give its outcome with ``complete``
    or ``fail`` (once; the first outcome wins; ``fail`` is retried per the
    retry policy), say it is alive with ``heartbeat``, and
    ``report_cancellation`` once a heartbeat said it is to stop (its
    workflow cancelled it, or an operator paused or reset its activity).

    By id it names the activity, in whatever state it waits (not started,
    between attempts, running on a worker, awaiting completion): ``complete``
    and ``fail`` end it now, for an operator who settles a step by hand
    (``fail`` is not retried; an attempt running on a worker finds its
    lease gone, and its own outcome is refused); ``pause`` holds back its
    attempts until ``unpause``. ``heartbeat`` and ``report_cancellation``
    by id act on an attempt awaiting completion.

    Each method raises ``AsyncActivityNotFoundError`` if what the handle
    names cannot end: a token's attempt ended already, was lost at a timeout
    (its retry has a new token), or its run ended; an id's activity is not
    pending, or its run is not open."""

    def __init__(
        self,
        store: Store,
        converter: DataConverter,
        task_token: str | None = None,
        *,
        workflow_id: str | None = None,
        run_id: str | None = None,
        activity_id: int | None = None,
    ) -> None:
        self._store = store
        self._converter = converter
        self.task_token = task_token
        self._key: TaskKey | None = None
        if task_token is not None:
            if (workflow_id, run_id, activity_id) != (None, None, None):
                raise TypeError(
                    "give a task token, or workflow_id and activity_id (and run_id), not both"
                )
            self._key = parse_task_token(task_token)
            run_id, activity_id = self._key.run_id, self._key.ref
        else:
            activity_id = _checked_id(workflow_id, run_id, activity_id)
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.activity_id: int = activity_id

    def __repr__(self) -> str:
        if self._key is not None:
            return f"AsyncActivityHandle(run_id={self.run_id!r}, activity_id={self.activity_id})"
        return (
            f"AsyncActivityHandle(workflow_id={self.workflow_id!r}, run_id={self.run_id!r}, "
            f"activity_id={self.activity_id})"
        )

    # ------------------------------------------------------------ by token

    async def _attempt(self) -> ActivityTask:
        assert self._key is not None
        task = await self._store.awaiting_activity(*self._key)
        if task is None:
            raise self._not_found()
        return task

    def _not_found(self) -> AsyncActivityNotFoundError:
        return AsyncActivityNotFoundError(
            f"activity {self.activity_id} of run {self.run_id}: this attempt can no "
            f"longer end (it ended already, a timeout passed and it was retried with a "
            f"new token, or its run ended)"
        )

    async def _end(self, task: ActivityTask, event: h.Event) -> None:
        if not await self._store.complete_activity(task, event):
            raise self._not_found()  # (ended meanwhile, by another process)

    # ------------------------------------------------------------ by id

    def _named(self) -> str:
        run = "its latest run" if self.run_id is None else f"run {self.run_id}"
        return f"activity {self.activity_id} of workflow {self.workflow_id!r} ({run})"

    async def _open_run(self) -> RunRecord:
        """The open run the handle names."""
        assert self.workflow_id is not None
        run = await self._store.get_run(self.workflow_id, self.run_id)
        if run is None:
            raise AsyncActivityNotFoundError(f"{self._named()}: no such run")
        if not run.is_open:
            raise AsyncActivityNotFoundError(
                f"{self._named()}: the run has ended ({run.status}), and its activities with it"
            )
        return run

    def _not_pending(self, run_id: str) -> AsyncActivityNotFoundError:
        return AsyncActivityNotFoundError(
            f"{self._named()} is not pending in run {run_id}: it ended, or the run "
            f"has no activity {self.activity_id} (`perdure show` lists the pending ones)"
        )

    async def _pending(self) -> ActivityState:
        """The activity, pending, of the open run the handle names."""
        run_id = (await self._open_run()).run_id
        state = await self._store.activity_of_run(run_id, self.activity_id)
        if state is None:
            raise self._not_pending(run_id)
        return state

    async def _end_by_id(self, event_of: Callable[[ActivityState, float], h.Event]) -> None:
        """End the activity now with the event ``event_of`` makes of its
        state (read in the store's transaction, which holds the row), again
        should its fence miss all the same."""
        for _ in range(_TRIES):
            run_id = (await self._open_run()).run_id
            ended = await self._store.end_activity(run_id, self.activity_id, event_of)
            if ended is None:
                raise self._not_pending(run_id)
            if ended:
                return
        raise PerdureError(
            f"{self._named()} changed state {_TRIES} times while it was being ended: try again"
        )

    @staticmethod
    def _records(state: ActivityState, failed: dict[str, Any] | None, now: float) -> list[Any]:
        """The ended attempts' records, with the one that held the task, if any."""
        task = state.task
        if state.state == "idle":
            return list(task.attempts)
        return attempts_ended(task, task.attempt, failed, now)

    async def _awaited(self) -> ActivityTask:
        """The attempt awaiting completion that heartbeat and
        report_cancellation act on."""
        if self._key is not None:
            return await self._attempt()
        state = await self._pending()
        if state.state != "awaiting":
            doing = (
                "is running on a worker"
                if state.state == "running"
                else "has no attempt running (it waits for its next one)"
            )
            raise AsyncActivityNotFoundError(
                f"{self._named()} {doing}: heartbeat and report_cancellation by id act "
                f"on an attempt awaiting completion (activity.raise_complete_async())"
            )
        return state.task

    # ------------------------------------------------------------ outcomes

    async def complete(self, result: Any = None) -> None:
        """Record the activity's result; the workflow's await returns it
        (decoded as the activity's return type)."""
        encoded = self._converter.to_json(result, where="the activity's result")
        if self._key is None:

            def completed(state: ActivityState, now: float) -> h.Event:
                task = state.task
                records = self._records(state, None, now)
                return h.activity_completed(task.ref, encoded, task.attempt, records)

            await self._end_by_id(completed)
            return
        task = await self._attempt()
        attempts = attempts_ended(task, task.attempt, None, self._store.clock())
        await self._end(task, h.activity_completed(task.ref, encoded, task.attempt, attempts))

    async def fail(self, error: BaseException) -> None:
        """Record the activity as failed with ``error``. By task token, as if
        the attempt's function had raised it: retried per the activity's
        retry policy (a new attempt, with a new token, runs the function
        again) unless the error or the policy says not to, when the
        workflow's await raises ActivityError. By id, the activity ends now:
        the workflow's await raises ActivityError, with no retry."""
        if not isinstance(error, BaseException):
            raise TypeError(
                f"fail() takes the exception the attempt failed with, not "
                f"{type(error).__name__} {error!r}"
            )
        if self._key is None:
            failed = failure_from_exception(error)
            failed["non_retryable"] = True  # (ended by hand: not retried)

            def failed_now(state: ActivityState, now: float) -> h.Event:
                task = state.task
                records = self._records(state, failed, now)
                return h.ActivityFailed(
                    ref=task.ref, failure=failed, attempt=task.attempt, attempts=records
                )

            await self._end_by_id(failed_now)
            return
        task = await self._attempt()
        now = self._store.clock()
        failed, retry_in = failure_outcome(task, error, now)
        if retry_in is not None and not task.cancel_requested:  # (cancelled: wanted no more)
            if not await self._store.retry_activity(task, failed, retry_in):
                raise self._not_found()
            return
        attempts = attempts_ended(task, task.attempt, failed, now)
        await self._end(
            task,
            h.ActivityFailed(ref=task.ref, failure=failed, attempt=task.attempt, attempts=attempts),
        )

    # ------------------------------------------------------------ pausing

    async def pause(self) -> None:
        """Pause the activity (by id only): no attempt of it starts until
        ``unpause()``, on any worker. An attempt running now runs on: its
        result is delivered, a failure is not retried while the activity is
        paused, and one that heartbeats is stopped at its next heartbeat
        (``asyncio.CancelledError`` in its function; one awaiting
        completion, once its completer's ``heartbeat()`` raised
        AsyncActivityCancelledError and it called ``report_cancellation()``),
        not counted as an attempt. The activity's timeouts still run (a schedule_to_close
        timeout ends it, paused or not), and so do its run's other work,
        cancellation and ``complete``/``fail`` by id. Idempotent."""
        await self._set_paused(True)

    async def unpause(
        self, *, reset_attempts: bool = False, jitter: timedelta | None = None
    ) -> None:
        """Let a paused activity run again (by id only): its next attempt is
        due now, whatever backoff it waited out (an attempt still running
        goes on), or, with ``jitter``, at a random moment within that span
        from now. ``reset_attempts``: count its attempts from 1 again (a
        fresh ``max_attempts``), only while no attempt holds it. Unpausing
        an activity that is not paused does nothing."""
        if not isinstance(reset_attempts, bool):
            raise TypeError(f"reset_attempts must be a bool, not {reset_attempts!r}")
        delay = random.uniform(0.0, jitter_seconds(jitter))
        state = await self._set_paused(False, reset_attempts, delay)
        if reset_attempts and state.task.paused and state.state != "idle":
            holds = "is running on a worker" if state.state == "running" else "awaits completion"
            raise PerdureError(
                f"{self._named()}: attempt {state.task.attempt} {holds}, so its attempts "
                f"cannot be counted from 1 again; it is still paused (unpause it without "
                f"reset_attempts, or once that attempt has ended; or reset() it: the fresh "
                f"count then waits for that attempt's end)"
            )

    async def reset(
        self,
        *,
        keep_paused: bool = False,
        clear_heartbeat_details: bool = False,
        jitter: timedelta | None = None,
    ) -> None:
        """Reset the activity (by id only), as Temporal's ``activity reset``:
        its attempts are counted from 1 again (a fresh ``max_attempts``) and
        its backoff is dropped. Waiting for its next attempt, that attempt
        is due now (with ``jitter``, at a random moment within that span
        from now); paused, it is unpaused too, unless ``keep_paused`` (then
        the fresh count waits for the unpause). An attempt running now is
        stopped at its next heartbeat, uncounted (one awaiting completion,
        once its completer's ``heartbeat()`` raised
        AsyncActivityCancelledError and it called ``report_cancellation()``),
        and the next starts at once as attempt 1; one that does not
        heartbeat runs on: its result is delivered; if it fails, or is
        lost, the next attempt starts at once as attempt 1
        (``describe()``'s ``reset_requested`` until then). Its heartbeat
        details, as they stand at the reset, are kept for the next attempt,
        unless ``clear_heartbeat_details``; its schedule_to_close_timeout still
        counts from when it was scheduled. Not in the history."""
        for name, value in (
            ("keep_paused", keep_paused),
            ("clear_heartbeat_details", clear_heartbeat_details),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {value!r}")
        delay = random.uniform(0.0, jitter_seconds(jitter))
        run_id = await self._run_by_id("reset")
        state = await self._store.reset_activity(
            run_id, self.activity_id, keep_paused, clear_heartbeat_details, delay
        )
        if state is None:
            raise self._not_pending(run_id)

    async def _run_by_id(self, verb: str) -> str:
        """The id of the open run whose activity an operator's ``verb``
        names by id (a token handle: TypeError)."""
        if self._key is not None:
            raise TypeError(
                f"{verb}() names an activity by id: get the handle with "
                f"get_async_activity_handle(workflow_id=..., activity_id=...)"
            )
        return (await self._open_run()).run_id

    async def _set_paused(
        self, paused: bool, reset_attempts: bool = False, delay: float = 0.0
    ) -> ActivityState:
        run_id = await self._run_by_id("pause" if paused else "unpause")
        state = await self._store.set_activity_paused(
            run_id, self.activity_id, paused, reset_attempts, delay
        )
        if state is None:
            raise self._not_pending(run_id)
        return state

    # ------------------------------------------------------------ options

    async def update_options(
        self,
        *,
        start_to_close_timeout: timedelta | None = None,
        schedule_to_close_timeout: timedelta | None = None,
        heartbeat_timeout: timedelta | None = None,
        retry_initial_interval: timedelta | None = None,
        retry_backoff: float | None = None,
        retry_max_interval: timedelta | None = None,
        retry_max_attempts: int | None = None,
        task_queue: str | None = None,
    ) -> None:
        """Change the activity's options in flight (by id only), as
        Temporal's ``activity update-options`` does: only those given
        change (``retry_max_attempts`` 0: no limit). Nothing is added to
        the history. Waiting for a retry, its backoff is worked out again
        by the new policy (from when its last attempt ended); paused, the
        new options wait with it; an attempt running now keeps its
        timeouts, and its end is retried, or not, by the new retry policy.
        A new schedule_to_close_timeout counts from when the activity was
        scheduled, as the old one did (one that has passed ends it, unless
        an attempt runs). ``task_queue``: its next attempts are taken from
        that queue. Refused (ValueError, nothing changed): a retry policy
        that is not one, and a ``retry_max_attempts`` that allows no
        attempt after those made while none runs (fail it by id instead)."""
        change = OptionsChange.of(
            start_to_close_timeout=start_to_close_timeout,
            schedule_to_close_timeout=schedule_to_close_timeout,
            heartbeat_timeout=heartbeat_timeout,
            retry_initial_interval=retry_initial_interval,
            retry_backoff=retry_backoff,
            retry_max_interval=retry_max_interval,
            retry_max_attempts=retry_max_attempts,
            task_queue=task_queue,
        )
        run_id = await self._run_by_id("update_options")
        where = self._named()

        def plan(
            state: ActivityState, due: float, now: float
        ) -> tuple[dict[str, Any], float | None]:
            task = state.task
            idle = state.state == "idle"
            return planned(
                change,
                task.options,
                task.attempt,
                task.attempts,
                idle,
                task.paused,
                due,
                now,
                where,
            )

        state = await self._store.update_activity_options(
            run_id, self.activity_id, plan, change.task_queue
        )
        if state is None:
            raise self._not_pending(run_id)

    # ------------------------------------------------------------ heartbeats

    async def heartbeat(self, details: Any = None) -> None:
        """Say the attempt is alive, with progress ``details`` (a retry reads
        them as ``activity.info().heartbeat_details``): with a
        heartbeat_timeout, its deadline moves to that long from now. Raises
        AsyncActivityCancelledError if the attempt is to stop, as a worker's
        attempt stops at its heartbeat: its workflow cancelled it, or an
        operator paused or reset its activity (the error's ``reason``). Stop
        the work and end the attempt with ``report_cancellation()`` (or any
        outcome). Once a reset is requested, the details stay as the reset
        left them, for the next attempt."""
        encoded = self._converter.to_json(details, where="heartbeat details")
        task = await self._awaited()
        until = completion_deadline(task, self._store.clock())
        status = await self._store.beat_awaiting(task, encoded, until)
        if status == "lost":
            raise self._not_found()
        if status != "ok":
            raise AsyncActivityCancelledError(
                f"activity {task.name!r} ({task.ref}) of run {task.run_id} {_TO_STOP[status]}",
                reason=status,
            )

    async def report_cancellation(self) -> str | None:
        """Record that the attempt stopped because it was asked to; return
        why, as its heartbeat's error said: "cancelled", "paused" or
        "reset". Its workflow cancelled it: the activity ends as cancelled
        (the workflow stopped waiting for it). An operator paused or reset
        its activity: the attempt is handed back, not counted; the next
        starts once the activity is unpaused, or, after a reset, at once as
        attempt 1. If nothing asks it to stop any more (a pause undone
        before this call, say), it is handed back too, the next attempt due
        at once, and None is returned: never a cancellation nobody asked
        for, which would end the activity under its workflow."""
        for _ in range(_TRIES):
            task = await self._awaited()
            reason = _stop_asked(task)
            if reason == "cancelled":
                failed = cancelled_failure()
                attempts = attempts_ended(task, task.attempt, failed, self._store.clock())
                ended = h.ActivityFailed(
                    ref=task.ref, failure=failed, attempt=task.attempt, attempts=attempts
                )
                await self._end(task, ended)
                return "cancelled"
            _, stopped = operator_stop(task, reason, "by the process completing it")
            if await self._store.hand_back(task, 0.0, stopped):
                return reason
            # (Cancelled meanwhile, or it ended: read again.)
        raise PerdureError(
            f"activity {self.activity_id} of run {self.run_id} changed state {_TRIES} times "
            f"while its cancellation was being recorded: try again"
        )


def _stop_asked(task: ActivityTask) -> str | None:
    """Why the attempt awaiting completion is to stop, as its heartbeat
    says (the workflow's cancellation first), or None."""
    if task.cancel_requested:
        return "cancelled"
    if task.paused:
        return "paused"
    return "reset" if task.options.get(RESET_REQUESTED) else None


_TO_STOP = {
    "cancelled": "was cancelled by its workflow: end it with report_cancellation()",
    "paused": "was paused by an operator: stop its work and end the attempt with "
    "report_cancellation() (not counted; the next attempt starts once the activity "
    "is unpaused)",
    "reset": "was reset by an operator: stop its work and end the attempt with "
    "report_cancellation() (not counted; the next attempt starts at once, as attempt 1)",
}


_TRIES = 5  # ends by id tried before one gives up (each misses only on a race)


def _checked_id(workflow_id: object, run_id: object, activity_id: object) -> int:
    """A handle by id's names, checked where they are given: its activity id."""
    if workflow_id is None and activity_id is None:
        raise TypeError("give a task token, or workflow_id and activity_id")
    if not isinstance(workflow_id, str) or not workflow_id:
        raise TypeError(f"workflow_id must be a non-empty str, not {workflow_id!r}")
    if run_id is not None and (not isinstance(run_id, str) or not run_id):
        raise TypeError(f"run_id must be a non-empty str or None, not {run_id!r}")
    if not isinstance(activity_id, int) or isinstance(activity_id, bool):
        raise TypeError(
            f"activity_id must be an int (describe()'s pending_activities[i].activity_id), "
            f"not {type(activity_id).__name__} {activity_id!r}"
        )
    if not 0 < activity_id < 2**31:
        raise ValueError(f"activity_id must be from 1 to 2**31 - 1, not {activity_id}")
    return activity_id
