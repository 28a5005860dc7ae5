"""One activity attempt in flight on a worker (``Attempt``): the worker's
record of it, and what the attempt's own ``activity.info()``,
``heartbeat()``, ``write_stream()`` and ``cancellation_reason()`` reach
(its context variable). Why an attempt was stopped, in words
(``STOPPED_BECAUSE``). Imports the activity API's context, the store's
task, the heartbeats, streams and outcomes; ActivityRunner (its runner)
for types only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perdure._asyncactivity import task_token
from perdure._converter import DataConverter
from perdure._store.base import ActivityTask
from perdure._worker.heartbeats import AttemptBeats
from perdure._worker.outcomes import OPERATOR_STOPS
from perdure._worker.streams import AttemptStreams
from perdure.activity import ActivityInfo, _ActivityContext

if TYPE_CHECKING:
    from perdure._worker.activities import ActivityRunner

__all__ = ["STOPPED_BECAUSE", "Attempt"]

# How early, at most, an event loop runs a timer (uvloop's clock counts
# milliseconds): Attempt.cancellation_reason's margin for its deadline.
_TIMER_SLACK = 0.005

# Why an attempt was stopped (Attempt.stop_reason), in a sentence.
STOPPED_BECAUSE = {
    "cancelled": "its workflow cancelled it",
    "lost": "its lease was lost",
    "heartbeat_timeout": "it sent no heartbeat within its heartbeat_timeout",
    "worker_stopped": "its stopping worker ended its drain",
    **{reason: why for reason, (_, why) in OPERATOR_STOPS.items()},
}


@dataclass(slots=True)
class Attempt(_ActivityContext):
    """One attempt in flight on this worker; also what the attempt's
    ``activity.info()`` and ``heartbeat()`` reach (its context variable)."""

    task: ActivityTask
    heartbeat_timeout: float | None
    runner: ActivityRunner
    beats: AttemptBeats | None = None  # made by its first heartbeat (see heartbeats)
    stop_reason: str | None = None  # a key of STOPPED_BECAUSE, or "lost"
    future: asyncio.Future[Any] | None = None
    # Set as the attempt starts: what heartbeats and info need.
    loop: asyncio.AbstractEventLoop | None = None
    is_async: bool = True
    first_details: Any = None  # the last attempt's heartbeat details, if any
    built_info: ActivityInfo | None = None
    streams: AttemptStreams | None = None  # its stream writes, once it makes one
    deadline: float | None = None  # by the loop's clock: when its timeout stops it, if it has one

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            if self.future is not None:
                self.future.cancel()

    @property
    def info(self) -> ActivityInfo:
        if self.built_info is None:
            self.built_info = activity_info(self.task, self.first_details)
        return self.built_info

    def on_heartbeat(self, details: Any) -> None:
        """``activity.heartbeat(details)``. May run on an activity thread:
        hands over to the loop."""
        if self.stop_reason is not None and not self.is_async:
            raise asyncio.CancelledError(f"activity {self.stop_reason}")
        assert self.loop is not None
        # Encoded here: details that JSON cannot hold fail the activity's own
        # call (PayloadError), not later, in a line of the worker's log.
        encoded = self.runner.converter.to_json(details, where="heartbeat details")
        self.loop.call_soon_threadsafe(self._beat, encoded)

    def _beat(self, details: Any) -> None:
        self.heartbeats().beat(details, self)

    def cancellation_reason(self) -> str | None:
        """``activity.cancellation_reason()``. (A timeout is told by the
        clock: asyncio.wait_for stops the attempt at its deadline, with
        no reason given, its timer set just after ``deadline`` was.)"""
        if self.stop_reason is not None:
            return self.stop_reason
        loop, deadline = self.loop, self.deadline
        if deadline is not None and loop is not None and loop.time() >= deadline - _TIMER_SLACK:
            return "timed_out"
        return None

    @property
    def converter(self) -> DataConverter:
        return self.runner.converter

    def heartbeats(self) -> AttemptBeats:
        if self.beats is None:
            runner = self.runner
            self.beats = AttemptBeats(
                self.task, runner.store, self.heartbeat_timeout, runner.lease_timeout
            )
        return self.beats

    def on_stream(self, key: str, value: Any) -> None:
        """``activity.write_stream(key, value)``. May run on an activity
        thread: hands over to the loop (whose order keeps the writes')."""
        # Encoded here, as heartbeat details are: a bad value fails the call.
        encoded = self.runner.converter.to_json(value, where=f"stream {key!r}")
        assert self.loop is not None
        if asyncio._get_running_loop() is self.loop:  # (on the loop's own thread)
            self.runner._stream(self, key, encoded)
        else:
            self.loop.call_soon_threadsafe(self.runner._stream, self, key, encoded)


def activity_info(task: ActivityTask, heartbeat_details: Any) -> ActivityInfo:
    """What ``activity.info()`` tells an attempt of ``task``."""
    return ActivityInfo(
        workflow_id=task.workflow_id,
        run_id=task.run_id,
        workflow_type=task.workflow_type,
        activity_id=str(task.ref),
        activity_type=task.name,
        task_queue=task.task_queue,
        attempt=task.attempt,
        # (A run made by a reset keeps the keys of the run it took over from.)
        idempotency_key=f"{task.workflow_id}/"
        f"{task.options.get('idempotency_run_id') or task.run_id}/{task.ref}",
        heartbeat_details=heartbeat_details,
        priority=task.priority,
        fairness_key=task.fairness_key or None,
        task_token=task_token(task),
        headers=task.options.get("headers") or {},
    )
