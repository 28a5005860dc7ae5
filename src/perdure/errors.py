"""Public exception types. Imports nothing from perdure.

Every error a user can see derives from :class:`PerdureError`. Errors that cross
a process boundary (an activity's failure reaching its workflow, a workflow's
failure reaching a client) travel as a *failure* dict: type name, message,
traceback text, and the ``non_retryable`` flag; see :func:`failure_from_exception`.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

__all__ = [
    "ActivityError",
    "ApplicationError",
    "AsyncActivityCancelledError",
    "AsyncActivityNotFoundError",
    "ChildWorkflowError",
    "NonDeterminismError",
    "PayloadCodecError",
    "PayloadError",
    "PerdureError",
    "SchemaVersionError",
    "StoreError",
    "UpdateRejectedError",
    "UpdateTimeoutError",
    "WorkflowAlreadyStartedError",
    "WorkflowCancelledError",
    "WorkflowClosedError",
    "WorkflowFailedError",
    "WorkflowNotFoundError",
    "WorkflowResetError",
    "WorkflowTerminatedError",
    "WorkflowTimedOutError",
]


class PerdureError(Exception):
    """Base class of every error perdure raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its args and its attributes, not by calling __init__
        # again with the args alone: the errors whose __init__ takes
        # keyword-only arguments (workflow_id=, cause=...) could not be
        # unpickled, so raising one in a process pool, or returning it from
        # another process, failed with a TypeError instead.
        return (_rebuilt, (type(self), self.args), self.__dict__ or None)


def _rebuilt(cls: type[PerdureError], args: tuple[Any, ...]) -> PerdureError:
    """An error of ``cls`` with ``args``, its attributes to come from the
    pickle's state (see PerdureError.__reduce__)."""
    error = cls.__new__(cls, *args)
    error.args = args  # (OSError's __new__ leaves them to __init__: UpdateTimeoutError)
    return error


class ApplicationError(PerdureError):
    """Raise from an activity or workflow to fail it with a message of your own.

    ``non_retryable=True`` stops an activity's retries at once, whatever its
    retry policy says. ``details`` must be JSON-encodable; it travels with the
    failure.
    """

    def __init__(
        self,
        message: str,
        *,
        non_retryable: bool = False,
        details: Any = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.non_retryable = non_retryable
        self.details = details
        self.type = type or "ApplicationError"


class FailureCause:
    """A failure that came from somewhere else (another process, another run)."""

    def __init__(self, type: str, message: str, traceback: str = "", details: Any = None):
        self.type = type
        self.message = message
        self.traceback = traceback
        self.details = details

    def __repr__(self) -> str:
        return f"FailureCause(type={self.type!r}, message={self.message!r})"

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class ActivityError(PerdureError):
    """An activity failed after its retries; ``.cause`` says how the last attempt failed."""

    def __init__(self, message: str, *, activity: str, attempt: int, cause: FailureCause):
        super().__init__(message)
        self.activity = activity
        self.attempt = attempt
        self.cause = cause


class ChildWorkflowError(PerdureError):
    """A child workflow ended without a result (failed, cancelled, terminated or
    timed out); ``.status`` says which and ``.cause`` why."""

    def __init__(
        self, message: str, *, workflow_id: str, run_id: str, status: str, cause: FailureCause
    ):
        super().__init__(message)
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.status = status
        self.cause = cause


class WorkflowFailedError(PerdureError):
    """The workflow run ended with an exception; ``.cause`` describes it."""

    def __init__(self, message: str, *, workflow_id: str, run_id: str, cause: FailureCause):
        super().__init__(message)
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.cause = cause


class WorkflowTimedOutError(WorkflowFailedError):
    """The run's execution timeout passed before it finished."""


class WorkflowCancelledError(PerdureError):
    """The workflow run ended cancelled."""


class WorkflowTerminatedError(PerdureError):
    """The workflow run was terminated by an operator."""

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


class NonDeterminismError(PerdureError):
    """Replaying a history produced a different command than the one it recorded."""


class WorkflowAlreadyStartedError(PerdureError):
    """A run with this workflow id exists and ``id_conflict="fail"`` was asked for."""

    def __init__(self, message: str, *, workflow_id: str, run_id: str):
        super().__init__(message)
        self.workflow_id = workflow_id
        self.run_id = run_id


class WorkflowNotFoundError(PerdureError):
    """No workflow run has this id (or this run id)."""


class WorkflowClosedError(PerdureError):
    """The workflow run has already ended, so it cannot take a signal or a cancel."""


class AsyncActivityNotFoundError(PerdureError):
    """What an ``AsyncActivityHandle`` names cannot end. By task token: the
    attempt ended already, a timeout passed and it was retried (with a new
    token), or its run ended. By id: no such run, the run is not open, or
    the activity is not pending in it (for ``heartbeat`` and
    ``report_cancellation``: no attempt of it awaits completion)."""


class AsyncActivityCancelledError(PerdureError):
    """The attempt awaiting completion is to stop (its heartbeat said so,
    ``AsyncActivityHandle.heartbeat``): its workflow cancelled it
    (``reason`` "cancelled"), or an operator paused its activity ("paused")
    or reset it ("reset"). Stop its work and end it with
    ``report_cancellation()``: a cancelled attempt ends the activity as
    cancelled; a paused or reset one is handed back, not counted as an
    attempt, and the next starts once the activity is unpaused (or, after a
    reset, at once, as attempt 1). Any outcome ends it too."""

    def __init__(self, message: str, *, reason: str = "cancelled") -> None:
        super().__init__(message)
        self.reason = reason


class UpdateRejectedError(PerdureError):
    """The workflow refused an update (``request.reject(message)``): the
    message says why; ``reason`` is the workflow's own text, ``update_id``
    names the request."""

    def __init__(self, message: str, *, update_id: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.update_id = update_id
        self.reason = reason


class UpdateTimeoutError(PerdureError, TimeoutError):
    """No answer to an update in the time given (a ``TimeoutError``): the
    request stays queued; ``update_id`` names it, to wait again or call
    again with."""

    def __init__(self, message: str, *, update_id: str = "") -> None:
        super().__init__(message)
        self.update_id = update_id


class WorkflowResetError(PerdureError):
    """A run cannot be reset as asked: it is not its workflow id's latest
    run, it is a child workflow, or no point of its history can be used
    (the message says which, and names the nearest point that can)."""


class PayloadError(PerdureError):
    """A value could not be encoded to JSON or decoded into its type hint."""


class PayloadCodecError(PayloadError):
    """A stored payload went through codecs (encryption, compression) that this
    converter cannot undo: it has no codecs, lacks the key, or the envelope is
    newer or damaged. The value is intact in the database; a process with the
    writer's codecs and keys reads it. A worker therefore retries rather than
    fails: a workflow turn that meets one fails and is tried again, and an
    activity whose arguments it cannot open goes back to the queue without
    using an attempt."""


def cancelled_failure() -> dict[str, Any]:
    """The failure an activity its workflow cancelled ends with."""
    return {
        "type": "CancelledError",
        "message": "activity cancelled by its workflow",
        "traceback": "",
        "non_retryable": True,
        "details": None,
    }


def failure_from_exception(exc: BaseException) -> dict[str, Any]:
    """Encode an exception as a failure dict (JSON-safe)."""
    details: Any = None
    non_retryable = False
    type_name = type(exc).__name__
    if isinstance(exc, ApplicationError):
        details = exc.details
        non_retryable = exc.non_retryable
        type_name = exc.type
    elif isinstance(exc, ChildWorkflowError):
        details = {
            "workflow_id": exc.workflow_id,
            "status": exc.status,
            "cause": {"type": exc.cause.type, "message": exc.cause.message},
        }
    elif isinstance(exc, ActivityError):
        details = {
            "activity": exc.activity,
            "attempt": exc.attempt,
            "cause": {"type": exc.cause.type, "message": exc.cause.message},
        }
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    text = "".join(_cut(line, MAX_FAILURE_MESSAGE) for line in lines)  # (a message's line too)
    return {
        "type": _storable(type_name),
        "message": _storable(_cut(_message(exc), MAX_FAILURE_MESSAGE)),
        "traceback": _storable(_cut(text, MAX_FAILURE_TRACEBACK, keep_end=True)),
        "non_retryable": non_retryable,
        "details": _storable_details(details),
    }


# How much of a failure is kept. A failure is written into the history, the
# task's row and every failure that wraps it (an ActivityError's message holds
# its cause's): an exception carrying a whole HTTP response (20 MB) had made a
# 160 MB database of one run. The end of a traceback is kept: it is where the
# exception was raised.
MAX_FAILURE_MESSAGE = 8_192  # characters
MAX_FAILURE_TRACEBACK = 16_384  # characters
MAX_FAILURE_DETAILS = 262_144  # characters of JSON


def _cut(text: str, most: int, keep_end: bool = False) -> str:
    if len(text) <= most:
        return text
    note = f"\u2026 ({len(text):,} characters in all)"
    if keep_end:
        return note + "\n" + text[len(text) - most :]
    return text[:most] + note


# A failure is written as it is made, by the worker that caught the exception:
# whatever it holds must be storable, or the failure is never written and the
# attempt (or the run) stalls. An exception whose str() raised, details that
# JSON cannot hold, a lone surrogate in a message had each done that.


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as err:  # (the exception's own __str__ failed)
        return f"<str() of the {type(exc).__name__} raised {type(err).__name__}>"


def _storable(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate, which no database stores
    as text, is written as its escape (\\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _storable_details(details: Any) -> Any:
    """``details`` if JSON holds them as they are; else their repr, marked."""
    try:
        text = json.dumps(details, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError, UnicodeError):
        try:
            shown = repr(details)
        except Exception:
            shown = f"<a {type(details).__name__}>"
        return {"unencodable_details": _storable(shown[:2000])}
    if len(text) > MAX_FAILURE_DETAILS:
        return {
            "oversized_details": f"{len(text):,} characters of JSON, over {MAX_FAILURE_DETAILS:,}"
        }
    return details


def cause_from_failure(failure: dict[str, Any]) -> FailureCause:
    """Decode a failure dict written by :func:`failure_from_exception`."""
    return FailureCause(
        type=str(failure.get("type", "Error")),
        message=str(failure.get("message", "")),
        traceback=str(failure.get("traceback", "")),
        details=failure.get("details"),
    )


class StoreError(PerdureError):
    """The database cannot be used: bad URL, unreachable, or a schema we cannot run on."""


class SchemaVersionError(StoreError):
    """The database schema was written by a newer perdure than this one."""
