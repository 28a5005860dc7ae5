"""What an activity attempt's end records, decided the same way wherever the
attempt ends: in the worker that ran it, or in the process that completes it
with its task token (``perdure._asyncactivity``). Pure functions of the
attempt's task, the exception and the time; no I/O.
Imports the history model, the store's records, retry and errors.
"""

from __future__ import annotations

from typing import Any

from perdure import _history as h
from perdure._store.base import MAX_ATTEMPT_RECORDS, NEVER_DUE, RESET_REQUESTED, ActivityTask
from perdure.errors import (
    ApplicationError,
    PayloadError,
    cancelled_failure,
    failure_from_exception,
)
from perdure.retry import RetryPolicy

__all__ = [
    "OPERATOR_STOPS",
    "attempts_ended",
    "cancelled_failure",
    "completion_deadline",
    "failure",
    "failure_outcome",
    "lost_backoff",
    "operator_stop",
]

# Attempts lost in a row (their leases ran out) before the next one waits
# out its retry policy's backoff: the first loss is retried when its lease
# runs out (a worker killed once, or restarted under its identity, resumes
# at once); a second in a row looks like an attempt that kills its worker.
LOSSES_BEFORE_BACKOFF = 2


def failure(type_name: str, message: str, non_retryable: bool) -> dict[str, Any]:
    """A failure dict (as ``failure_from_exception`` makes) for an engine's reason."""
    return {
        "type": type_name,
        "message": message,
        "traceback": "",
        "non_retryable": non_retryable,
        "details": None,
    }


# Why an operator stopped an attempt (a heartbeat's "paused" or "reset"):
# the last failure's type, and the words.
OPERATOR_STOPS = {
    "paused": ("ActivityPaused", "an operator paused its activity"),
    "reset": ("ActivityReset", "an operator reset its activity"),
}


def operator_stop(task: ActivityTask, reason: str | None, how: str) -> tuple[str, dict[str, Any]]:
    """An attempt that an operator's pause or reset (``reason``) stopped
    (``how``: "at its heartbeat", say): the message to log, and the failure
    its task keeps as its last. The attempt is handed back, not counted:
    the operator stopped it, not a fault. (``reason`` None: one whose
    completer reported a stop when none was asked for any more.)"""
    kind, why = OPERATOR_STOPS.get(
        reason or "", ("ActivityStopped", "its stop was reported, none being asked for now")
    )
    message = f"activity {task.name!r} attempt {task.attempt} was stopped {how}: {why}"
    return message, failure(kind, message, False)


def attempts_ended(
    task: ActivityTask, attempt: int, failed: dict[str, Any] | None, now: float
) -> list[Any]:
    """The final event's attempt records: the earlier ones, then ``attempt``
    (already among them when it was a lost one: the claim recorded it)."""
    if attempt != task.attempt:
        return list(task.attempts)
    last = h.attempt_record(attempt, task.started_at, now, failed)
    return [*task.attempts, last][-MAX_ATTEMPT_RECORDS:]


def failure_outcome(
    task: ActivityTask, exc: BaseException, now: float, delay: float | None = None
) -> tuple[dict[str, Any], float | None]:
    """How a failed attempt of ``task`` ends: its failure dict, and the delay
    before the next attempt (the retry policy's, or ``delay``), or None if
    none may follow (then the failure's ``non_retryable`` says whether the
    error or the policy's end decided it)."""
    policy = RetryPolicy.from_dict(task.options["retry"])
    # Reset while it ran (Store.reset_activity): retried at once, its
    # attempts counted from 1 again by the claim that takes it next.
    reset = bool(task.options.get(RESET_REQUESTED))
    failed = failure_from_exception(exc)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, ApplicationError):
        names.add(exc.type)  # (as Temporal's non_retryable_error_types match it)
    non_retryable = (
        (isinstance(exc, ApplicationError) and exc.non_retryable)
        or isinstance(exc, PayloadError)  # bad input fails the same way every time
        or bool(names & set(policy.names_non_retryable()))
    )
    if delay is None:
        delay = 0.0 if reset else policy.delay_after(task.attempt)
    close_by = task.options.get("schedule_to_close_timeout")
    if close_by is not None and now + delay >= task.scheduled_at + close_by:
        non_retryable = True  # the next attempt could not start in time
    if not non_retryable and (reset or policy.allows_another(task.attempt)):
        return failed, delay
    failed["non_retryable"] = non_retryable
    return failed, None


def lost_backoff(task: ActivityTask, now: float) -> tuple[float, dict[str, Any]] | None:
    """For a claimed attempt that follows two or more attempts lost in a row
    (each one's lease ran out: its worker died, or it stalled past its
    lease or heartbeat timeout), how long it must still wait, its retry
    policy's backoff after the last loss, and the failure its task keeps as
    its last meanwhile; None if it may run now. A failed attempt waits out
    the backoff before its retry; a lost one had been taken again the moment
    its lease ran out, so an attempt that kills its worker (out of memory,
    a crash in native code) killed another worker every lease timeout, for
    ever with unlimited attempts."""
    losses = 0
    for record in reversed(task.attempts):
        if (record.get("error") or {}).get("type") != "LeaseExpired":
            break
        losses += 1
    if losses < LOSSES_BEFORE_BACKOFF:
        return None
    policy = RetryPolicy.from_dict(task.options["retry"])
    last = task.attempts[-1]
    due = float(last.get("ended_at") or now) + policy.delay_after(losses - 1)
    if due <= now:
        return None
    first = last["attempt"] - losses + 1
    message = (
        f"attempts {first} to {last['attempt']} of activity {task.name!r} were lost in a row "
        f"(their workers stopped, or they stalled past their lease, while running them): "
        f"attempt {task.attempt} waits {due - now:.3g}s, its retry policy's backoff"
    )
    return due - now, failure("LeaseExpired", message, False)


def unretried_failure(exc: BaseException, why: BaseException) -> dict[str, Any]:
    """The failure of an attempt whose retry could not be decided (``why``:
    the policy could not be read or applied): the activity fails, not
    retried, with the attempt's own error and why it was not retried."""
    failed = failure_from_exception(exc)
    failed["message"] = (
        f"{failed['message']} (not retried: its retry policy could not be applied: "
        f"{type(why).__name__}: {why})"
    )
    failed["non_retryable"] = True
    return failed


def completion_deadline(task: ActivityTask, now: float) -> float:
    """When an attempt awaiting its completion is lost if none has come: its
    start_to_close and schedule_to_close timeouts' ends, and its
    heartbeat_timeout from ``now`` (the last heartbeat); NEVER_DUE if it has
    none of them."""
    options = task.options
    ends = []
    if options.get("start_to_close_timeout") is not None:
        ends.append(task.started_at + options["start_to_close_timeout"])
    if options.get("schedule_to_close_timeout") is not None:
        ends.append(task.scheduled_at + options["schedule_to_close_timeout"])
    if options.get("heartbeat_timeout") is not None:
        ends.append(now + options["heartbeat_timeout"])
    return min(ends, default=NEVER_DUE)
