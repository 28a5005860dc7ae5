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
from typing import Any, NamedTuple

from perdure import _history as h
from perdure._converter import DataConverter
from perdure._store.base import ActivityTask, Store
from perdure._worker.outcomes import (
    attempts_ended,
    cancelled_failure,
    completion_deadline,
    failure_outcome,
)
from perdure.errors import AsyncActivityCancelledError, AsyncActivityNotFoundError

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
    """An activity attempt whose function called
    ``activity.raise_complete_async()``, named by its task token: give its
    outcome with ``complete`` or ``fail`` (once; the first outcome wins), say
    it is alive with ``heartbeat``. Each method raises
    ``AsyncActivityNotFoundError`` if the token names no attempt that can
    still end: one already ended, one lost at a timeout (its retry has a new
    token), or one whose run ended."""

    def __init__(self, store: Store, converter: DataConverter, task_token: str) -> None:
        self._key = parse_task_token(task_token)
        self._store = store
        self._converter = converter
        self.task_token = task_token

    def __repr__(self) -> str:
        return f"AsyncActivityHandle(run_id={self._key.run_id!r}, activity_id={self._key.ref})"

    async def _attempt(self) -> ActivityTask:
        task = await self._store.awaiting_activity(*self._key)
        if task is None:
            raise self._not_found()
        return task

    def _not_found(self) -> AsyncActivityNotFoundError:
        return AsyncActivityNotFoundError(
            f"activity {self._key.ref} of run {self._key.run_id}: this attempt can no "
            f"longer end (it ended already, a timeout passed and it was retried with a "
            f"new token, or its run ended)"
        )

    async def _end(self, task: ActivityTask, event: h.Event) -> None:
        if not await self._store.complete_activity(task, event):
            raise self._not_found()  # (ended meanwhile, by another process)

    async def complete(self, result: Any = None) -> None:
        """Record the attempt's result; the workflow's await returns it
        (decoded as the activity's return type)."""
        encoded = self._converter.to_json(result, where="the activity's result")
        task = await self._attempt()
        attempts = attempts_ended(task, task.attempt, None, self._store.clock())
        await self._end(task, h.activity_completed(task.ref, encoded, task.attempt, attempts))

    async def fail(self, error: BaseException) -> None:
        """Record the attempt as failed with ``error``, as if the function had
        raised it: retried per the activity's retry policy (a new attempt,
        with a new token, runs the function again) unless the error or the
        policy says not to, when the workflow's await raises ActivityError."""
        if not isinstance(error, BaseException):
            raise TypeError(
                f"fail() takes the exception the attempt failed with, not "
                f"{type(error).__name__} {error!r}"
            )
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

    async def heartbeat(self, details: Any = None) -> None:
        """Say the attempt is alive, with progress ``details`` (a retry reads
        them as ``activity.info().heartbeat_details``): with a
        heartbeat_timeout, its deadline moves to that long from now. Raises
        AsyncActivityCancelledError if its workflow cancelled it (end it
        with ``report_cancellation()``, or any outcome)."""
        encoded = self._converter.to_json(details, where="heartbeat details")
        task = await self._attempt()
        until = completion_deadline(task, self._store.clock())
        status = await self._store.beat_awaiting(task, encoded, until)
        if status == "lost":
            raise self._not_found()
        if status == "cancelled":
            raise AsyncActivityCancelledError(
                f"activity {task.name!r} ({task.ref}) of run {task.run_id} was cancelled by "
                f"its workflow: end it with report_cancellation()"
            )

    async def report_cancellation(self) -> None:
        """Record that the attempt stopped because its workflow cancelled it."""
        task = await self._attempt()
        failed = cancelled_failure()
        attempts = attempts_ended(task, task.attempt, failed, self._store.clock())
        await self._end(
            task,
            h.ActivityFailed(ref=task.ref, failure=failed, attempt=task.attempt, attempts=attempts),
        )
