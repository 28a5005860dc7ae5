"""The bodies of the activity routes (``_activity_routes``): an attempt named
by its task token (complete, fail, heartbeat, report-cancellation), an
activity's result or failure given by id, an unpause's, a reset's (and
their jitter, shared with the batch's, ``_batch_models``), and the options
to change in flight (their fields and their reading as ``update_options``'
arguments shared with the batch's).
Imports pydantic, ``_models``' strict base and the options' ceiling.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, Optional, TypedDict

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from perdure._activityoptions import MAX_SPAN
from perdure.server._models import Strict

__all__ = [
    "MAX_SECONDS",
    "MAX_TASK_TOKEN",
    "ActivityDone",
    "ActivityFailureRequest",
    "ActivityOptionsRequest",
    "ActivityResultRequest",
    "CompleteActivityRequest",
    "FailActivityRequest",
    "HeartbeatActivityRequest",
    "HeartbeatDetailsRequest",
    "ResetActivityRequest",
    "TaskTokenRequest",
    "UnpauseActivityRequest",
    "UpdateOptionsArgs",
    "jitter",
    "jitter_field",
    "max_attempts",
]

MAX_TASK_TOKEN = 2048  # characters: a token is about 150
MAX_SECONDS = MAX_SPAN.total_seconds()  # (a span's ceiling: 100 years)


class TaskTokenRequest(Strict):
    """An activity attempt that awaits completion, by its task token."""

    task_token: StrictStr = Field(
        max_length=MAX_TASK_TOKEN,
        description="The attempt's activity.info().task_token, as its function handed it out.",
    )


class ActivityResultRequest(Strict):
    """An activity's result, given by id: the activity ends now with it."""

    result: Any = Field(
        None,
        description="The activity's result, any JSON (left out: null); the workflow's await "
        "returns it decoded as the activity's return type.",
    )


class CompleteActivityRequest(ActivityResultRequest, TaskTokenRequest):
    """The outcome of an activity attempt that awaits completion
    (``activity.raise_complete_async()``): its result."""


class ActivityFailureRequest(Strict):
    """An activity's failure, given by id: the activity ends now, as if its
    function had raised ``perdure.ApplicationError(message, type=type)``,
    with no retry; the workflow's await raises ActivityError."""

    message: StrictStr = Field(max_length=10_000, description="What went wrong.")
    type: Optional[StrictStr] = Field(
        None,
        min_length=1,
        max_length=512,
        description="The failure's type, as ActivityError's cause.type shows it (null or "
        "left out: ApplicationError).",
    )


class FailActivityRequest(ActivityFailureRequest, TaskTokenRequest):
    """An activity attempt that awaits completion, failed as if its function
    had raised ``perdure.ApplicationError(message, type=type,
    non_retryable=non_retryable)``: retried per the activity's retry policy
    (a new attempt, with a new token, runs the function again), unless
    ``non_retryable`` or no attempt is left, when the workflow's await
    raises ActivityError."""

    non_retryable: StrictBool = Field(
        False, description="Fail the activity now, whatever its retry policy says."
    )


class HeartbeatDetailsRequest(Strict):
    """A heartbeat's progress details, given by id (an empty body: null)."""

    details: Any = Field(None, description="Progress details, any JSON (left out: null).")


class HeartbeatActivityRequest(HeartbeatDetailsRequest, TaskTokenRequest):
    """A heartbeat of an activity attempt that awaits completion: it is
    alive (with a heartbeat_timeout, its deadline moves to that long from
    now), with progress details a retry reads as
    ``activity.info().heartbeat_details``."""


class ActivityDone(BaseModel):
    ok: Literal[True] = Field(description="The outcome (or the heartbeat) was recorded.")


class CancellationReported(ActivityDone):
    stopped: Optional[Literal["cancelled", "paused", "reset"]] = Field(
        description="Why the attempt stopped, as the heartbeat's 409 said: cancelled (it "
        "ended as cancelled), paused or reset (handed back, not counted: the next attempt "
        "starts once the activity is unpaused, or at once as attempt 1); null: nothing asks "
        "it to stop any more (a pause undone since), and it was handed back all the same, "
        "the next attempt due now."
    )


def jitter_field(whose: str) -> Any:
    """``jitter_seconds``' field, its description led by ``whose`` (the
    activity's, or a batch's), as ``jitter`` reads it."""
    return Field(
        None,
        strict=True,  # (a number: true is not 1 second, "60" not 60)
        ge=0,
        le=MAX_SECONDS,
        description=f"{whose} next attempt, if it waits for one, is due at a random moment "
        "within this many seconds from now rather than now (as Temporal's --jitter), so that "
        "activities let go together do not all call a service at once; at most 100 years "
        "(null, left out or 0: due now).",
    )


def jitter(seconds: float | None) -> timedelta | None:
    """A body's ``jitter_seconds`` as unpause and reset take their jitter."""
    return _span(seconds)


class UnpauseActivityRequest(Strict):
    """How to unpause an activity (an empty body: as given here)."""

    reset_attempts: StrictBool = Field(
        False,
        description="Count its attempts from 1 again (a fresh max_attempts); refused (409) "
        "while an attempt of it runs.",
    )
    jitter_seconds: Optional[float] = jitter_field("Its")


class ResetActivityRequest(Strict):
    """How to reset an activity (an empty body: as given here)."""

    keep_paused: StrictBool = Field(
        False,
        description="A paused one stays paused: its attempts are counted from 1 again once "
        "it is unpaused (left out: it is unpaused too).",
    )
    clear_heartbeat_details: StrictBool = Field(
        False,
        description="Drop its heartbeat details: the next attempt starts without them (left "
        "out: kept, for it to resume from).",
    )
    jitter_seconds: Optional[float] = jitter_field("Its")


def _seconds(what: str) -> Any:
    return Field(None, strict=True, gt=0, le=MAX_SECONDS, description=f"{what} In seconds.")


def max_attempts(refused: str) -> Any:
    """``retry_max_attempts``' field, with what becomes of an activity whose
    attempts made it allows no more (each route says what it answers)."""
    return Field(
        None,
        ge=0,
        le=2**31 - 1,
        description=f"Attempts at most, the first included; 0: no limit. {refused}",
    )


def _span(seconds: float | None) -> timedelta | None:
    """A body's seconds as update_options takes them."""
    return None if seconds is None else timedelta(seconds=seconds)


class UpdateOptionsArgs(TypedDict):
    """The keyword arguments of ``AsyncActivityHandle.update_options`` (and
    a batch's ``new_options``), None for each option left unchanged."""

    start_to_close_timeout: timedelta | None
    schedule_to_close_timeout: timedelta | None
    heartbeat_timeout: timedelta | None
    retry_initial_interval: timedelta | None
    retry_backoff: float | None
    retry_max_interval: timedelta | None
    retry_max_attempts: int | None
    task_queue: str | None


class ActivityOptionsRequest(Strict):
    """The options of a pending activity to change in flight (as Temporal's
    activity update-options): at least one; null or left out: unchanged.
    Not recorded in the history."""

    start_to_close_timeout: Optional[float] = _seconds("Each attempt's time limit.")
    schedule_to_close_timeout: Optional[float] = _seconds(
        "The activity's time limit, retries included, counted from when it was scheduled "
        "(one that has passed ends it, unless an attempt runs)."
    )
    heartbeat_timeout: Optional[float] = _seconds(
        "How often an attempt must heartbeat, or be lost and retried."
    )
    retry_initial_interval: Optional[float] = _seconds("The delay before the first retry.")
    retry_backoff: Optional[float] = Field(
        None, strict=True, ge=1.0, description="What each delay is multiplied by for the next."
    )
    retry_max_interval: Optional[float] = _seconds(
        "The longest delay between attempts (at least the initial interval)."
    )
    retry_max_attempts: Optional[StrictInt] = max_attempts(
        "Refused (422) if it allows no attempt after those made while none runs."
    )
    task_queue: Optional[StrictStr] = Field(
        None, min_length=1, description="The queue its next attempts are taken from."
    )

    def update_options_args(self) -> UpdateOptionsArgs:
        """The options as update_options takes them: spans in timedeltas,
        every one named (None: unchanged; none given, it says so)."""
        return UpdateOptionsArgs(
            start_to_close_timeout=_span(self.start_to_close_timeout),
            schedule_to_close_timeout=_span(self.schedule_to_close_timeout),
            heartbeat_timeout=_span(self.heartbeat_timeout),
            retry_initial_interval=_span(self.retry_initial_interval),
            retry_backoff=self.retry_backoff,
            retry_max_interval=_span(self.retry_max_interval),
            retry_max_attempts=self.retry_max_attempts,
            task_queue=self.task_queue,
        )
