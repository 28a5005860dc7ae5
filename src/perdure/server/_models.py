"""The HTTP API's request and response bodies (pydantic), which make its OpenAPI
document; the activity routes' are in ``_activity_models``, the batches' in
``_batch_models``, the worker builds' in ``_build_models``, the schedules' in
``_schedule_models``. Imports pydantic only; the field names match
``_query``'s JSON views.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from perdure._starts import IdConflict

__all__ = [
    "MAX_SPAN",
    "Accepted",
    "DebounceRequest",
    "ErrorBody",
    "Health",
    "PendingActivity",
    "PendingChild",
    "PendingTimer",
    "PriorityRequest",
    "ReasonRequest",
    "RetryPolicyOut",
    "StartRequest",
    "StartResponse",
    "StreamEntry",
    "StreamInfo",
    "StreamPage",
    "Strict",
    "UpdateAnswer",
    "UpdateError",
    "WhoAmI",
    "WorkflowDescription",
    "WorkflowPage",
    "WorkflowResult",
    "WorkflowSummary",
]


class Strict(BaseModel):
    """A request body: an unknown field is a 422, not ignored."""

    model_config = ConfigDict(extra="forbid")


# A search attribute's value: a string, an integer, a number or a boolean, as
# JSON has them (strict: "120" stays a string, true a boolean; an object, a
# list or null is refused). perdure._attributes holds the other rules (names,
# lengths, how many), which the Client applies: a 422 saying which.
AttributeValue = Union[StrictStr, StrictInt, StrictFloat, StrictBool]
SearchAttributes = dict[str, AttributeValue]
_JSON_KINDS = {dict: "an object", list: "an array", type(None): "null"}


def _scalar_values(value: Any) -> Any:
    """One error naming the attribute whose value is not a JSON scalar (the
    union's own errors would be four, one per type it is not)."""
    if isinstance(value, dict):
        for name, item in value.items():
            kind = _JSON_KINDS.get(type(item))
            if kind is not None:
                message = (
                    f"search attribute {name!r} must be a string, an integer, a number or a"
                    f" boolean, not {kind}"
                )  # (formatted here: a name with braces stays as it is)
                raise PydanticCustomError("search_attribute_type", message)
    return value


class ErrorBody(BaseModel):
    """Every error: ``detail`` says what is wrong (for 422, the list of problems
    and ``message``, the first one in a sentence)."""

    detail: Union[str, list[dict[str, Any]]]
    message: Optional[str] = None


class UpdateError(ErrorBody):
    """An update's 409 or 404 (``POST .../updates/{name}``). A rejection is a
    409 with ``rejected`` true and ``message`` what the workflow gave
    ``request.reject()``; no answer within ``timeout`` is a 404 with
    ``timed_out`` true (the request stays queued: send it again with its
    ``update_id``). A closed run's 409 and an unknown workflow's 404 have neither."""

    id: Optional[str] = Field(None, description="The workflow id.")
    update_id: Optional[str] = Field(None, description="The request's id: the one to retry with.")
    rejected: bool = Field(False, description="The workflow rejected the update (409).")
    timed_out: bool = Field(False, description="No answer came within the timeout (404).")


class UpdateAnswer(BaseModel):
    id: str
    update_id: str = Field(description="The request's id: the one sent, or a new one.")
    result: Any = Field(description="What the workflow gave request.reply(), as JSON.")


MAX_SPAN = 100 * 366 * 86_400.0  # seconds: a century, well within what a timedelta holds


def _a_microsecond_or_more(value: Optional[float]) -> Optional[float]:
    # (A timedelta counts microseconds: less than one would be no delay at all.)
    if value is not None and timedelta(seconds=value) <= timedelta(0):
        raise PydanticCustomError(
            "below_a_microsecond", "Input should be at least 0.000001 (a microsecond)"
        )
    return value


class DebounceRequest(Strict):
    """A start's ``debounce``: Client.debounce's key and spans, in seconds."""

    key: str = Field(
        min_length=1, description="The burst's key: calls with one key (and workflow) make one run."
    )
    delay_seconds: float = Field(
        gt=0,
        le=MAX_SPAN,
        strict=True,  # (a number: true is not 1 second, nor "30" 30)
        description="Start the run this long after the last call of the burst.",
    )
    max_delay_seconds: Optional[float] = Field(
        None,
        gt=0,
        le=MAX_SPAN,
        strict=True,
        description="Start it no later than this long after the burst's first call; "
        "null or left out: no limit.",
    )

    _spans = field_validator("delay_seconds", "max_delay_seconds")(_a_microsecond_or_more)

    def spans(self) -> tuple[timedelta, Optional[timedelta]]:
        """``delay`` and ``max_delay`` as Client.debounce takes them."""
        most = self.max_delay_seconds
        delay = timedelta(seconds=self.delay_seconds)
        return delay, None if most is None else timedelta(seconds=most)


# The start body's ``debounce`` in the OpenAPI document: the object inline
# (body_doc puts a body's own schema in the document, where the "#/$defs/..."
# a nested model's would be is no address).
_DEBOUNCE_SCHEMA = WithJsonSchema(
    {
        "anyOf": [DebounceRequest.model_json_schema(), {"type": "null"}],
        "description": 'Debounce the start (docs/workflows.md, "Debouncing"): a burst of '
        "calls with one key makes one run, started delay_seconds after the last call with "
        "its arguments. The run's id is generated: id and id_conflict must be left out.",
    }
)


class StartRequest(Strict):
    workflow: str = Field(min_length=1, description="The workflow's type name.")
    args: list[Any] = Field(default_factory=list, description="Positional arguments (JSON).")
    id: Optional[str] = Field(None, min_length=1, description="Workflow id; a UUID if omitted.")
    task_queue: str = Field("default", min_length=1)
    id_conflict: IdConflict = Field(
        "fail",
        description="What to do when a run with this id exists: fail; use_existing (its "
        "latest run); retry_failed (its latest run if running or completed, else a new "
        "run); terminate_existing (a new run, the open one terminated).",
    )
    search_attributes: Optional[SearchAttributes] = Field(
        None,
        description="Values the run can be found by (GET /api/workflows?attr=NAME=VALUE): "
        "name -> string, integer, number or boolean.",
    )

    priority: Optional[StrictInt] = Field(
        None,
        ge=1,
        le=5,  # (perdure._history.PRIORITIES; strict: true is not 1, nor "2" 2)
        description="Its place in its queues' backlogs: 1 (first) to 5 (last); null or "
        "left out: 3. Its activities and children inherit it.",
    )
    fairness_key: Optional[StrictStr] = Field(
        None,
        description="Whose work the run is (a tenant, a customer): within a priority, its "
        "queues serve the keys with due work in turn, so that one key's backlog does not "
        "hold back another's. Its activities and children inherit it. null or left out: "
        "none.",
    )

    debounce: Annotated[Optional[DebounceRequest], _DEBOUNCE_SCHEMA] = None

    _scalar_attributes = field_validator("search_attributes", mode="before")(_scalar_values)

    @model_validator(mode="after")
    def _debounce_alone(self) -> StartRequest:
        # A debounced run's id is generated (the pending run of the key's, or a new one).
        given = [
            name
            for name, present in (
                ("id", self.id is not None),
                ("id_conflict", "id_conflict" in self.model_fields_set),
            )
            if present
        ]
        if self.debounce is not None and given:
            raise PydanticCustomError(
                "debounce_with_id",
                f"{' and '.join(given)} cannot be given with debounce: a debounced run's id is "
                "generated",
            )
        return self


class StartResponse(BaseModel):
    id: str
    run_id: str


class ReasonRequest(Strict):
    reason: Optional[str] = Field(None, max_length=10_000)


class ResetRequest(Strict):
    to_event: Optional[int] = Field(
        None,
        ge=1,
        description="Go back to the turn that recorded this event (its seq); "
        "null: the latest turn that took no failure and no cancel request.",
    )
    reason: Optional[str] = Field(None, max_length=10_000)


class ResetPointsOut(BaseModel):
    points: list[int] = Field(description="The usable events (their seq), oldest first.")
    default: Optional[int] = Field(
        description="Where a reset without to_event goes back to (null: nowhere)."
    )


class ResetDone(BaseModel):
    id: str
    run_id: str = Field(description="The new run.")
    at_seq: int = Field(description="The first event of the turn the new run took again.")


class PriorityRequest(Strict):
    priority: StrictInt = Field(
        ge=1, le=5, description="The run's new priority: 1 (first) to 5 (last)."
    )


class FairnessKeyRequest(Strict):
    fairness_key: Optional[StrictStr] = Field(
        min_length=1,
        description="Whose work the run is now (a tenant, a customer): its queued tasks "
        "take this key's turn in their queues, and what it starts next inherits it. null: "
        "no key.",
    )


class Accepted(BaseModel):
    id: str
    action: str = Field(description="What was accepted, e.g. 'signal approval'.")


class WorkflowSummary(BaseModel):
    id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: str
    created_at: str
    closed_at: Optional[str]
    last_error: Optional[str] = Field(
        None, description="Why its latest workflow task failed, while it is retried."
    )
    search_attributes: SearchAttributes = Field(
        default_factory=dict, description="The values the run can be found by (?attr=)."
    )
    priority: int = Field(description="Its place in its queues' backlogs: 1 (first) to 5 (last).")
    build_id: Optional[str] = Field(
        description="The worker build it is pinned to (?build_id=); null: not pinned."
    )


class WorkflowPage(BaseModel):
    items: list[WorkflowSummary]
    next_cursor: Optional[str] = Field(description="Pass as ?cursor= for the next page.")


class WorkflowCountResponse(BaseModel):
    count: int = Field(description="Runs the filters match.")
    by_status: dict[str, int] = Field(
        description="How many of each status: every status, 0 for none."
    )


class AttemptRecord(BaseModel):
    attempt: int
    started_at: Optional[str]
    ended_at: Optional[str]
    error: Optional[dict[str, Any]] = Field(description="type and message; null: it succeeded")


class RetryPolicyOut(BaseModel):
    """A pending activity's retry policy: the delay before attempt n + 1 is
    initial_interval * backoff ** (n - 1), capped at max_interval (seconds)."""

    initial_interval: float
    backoff: float
    max_interval: float
    max_attempts: Optional[int] = Field(description="The first attempt included; null: no limit.")
    non_retryable: list[str] = Field(description="Error types that fail it at once.")


class PendingActivity(BaseModel):
    activity_id: int
    activity_type: str
    attempt: int
    running: bool
    next_attempt_at: Optional[str]
    last_failure: Optional[dict[str, Any]]
    started_at: Optional[str] = Field(None, description="Of the attempt running now.")
    attempts: list[AttemptRecord] = Field(
        default_factory=list, description="The attempts that ended, oldest first."
    )
    task_queue: str = Field("", description="The queue its attempts are taken from.")
    waiting_for_worker: bool = Field(
        False,
        description="Due for over a second and no live worker (/api/workers) serves its queue "
        "with this activity.",
    )
    held_by_limits: bool = Field(
        False,
        description="Due for over a second, a live worker serves it, and its task queue has "
        "limits (see /api/queues).",
    )
    in_backlog: bool = Field(
        False,
        description="Due for over a second, a live worker serves it and its queue has no "
        "limits: it waits in the backlog while the workers are busy.",
    )
    ahead: Optional[int] = Field(
        None,
        description="With any of the three above: the due tasks of its queue a claim takes "
        "before it (a higher priority, or due earlier); null otherwise.",
    )
    awaiting_completion: bool = Field(
        False,
        description="Its attempt's function called activity.raise_complete_async(): another "
        "process gives the outcome with the attempt's task token (POST "
        "/api/activities/complete or /fail). Such an attempt is also running.",
    )
    completion_deadline: Optional[str] = Field(
        None,
        description="When an attempt awaiting completion is lost (and retried per its retry "
        "policy) if no outcome has come, from its timeouts; null: never.",
    )
    heartbeat_details: Any = Field(
        None,
        description="The details of the activity's latest heartbeat (activity.heartbeat(), or "
        "POST /api/activities/heartbeat), kept across its attempts: how far it got; null "
        "before any.",
    )
    paused: bool = Field(
        False,
        description="An operator paused it (POST .../activities/{activity_id}/pause): no "
        "attempt of it starts until it is unpaused; an attempt running may still end.",
    )
    retry_policy: Optional[RetryPolicyOut] = Field(
        None, description="As it stands (POST .../activities/{activity_id}/options changes it)."
    )
    start_to_close_timeout: Optional[float] = Field(None, description="Seconds; null: none.")
    schedule_to_close_timeout: Optional[float] = Field(
        None, description="Seconds from when it was scheduled, retries included; null: none."
    )
    heartbeat_timeout: Optional[float] = Field(None, description="Seconds; null: none.")
    deadline: Optional[str] = Field(
        None, description="When its schedule_to_close_timeout ends it; null: it has none."
    )
    reset_requested: bool = Field(
        False,
        description="An operator reset it while an attempt ran (POST "
        ".../activities/{activity_id}/reset): that attempt stops at its next heartbeat "
        "(one that sends none runs on); once it stops, fails or is lost, the next starts at "
        "once as attempt 1.",
    )
    cancel_requested: bool = Field(
        False,
        description="Its workflow cancelled it while an attempt held it: that attempt stops "
        "at its next heartbeat (one that sends none runs on until it ends); a workflow whose "
        "activity's cancellation_type is wait_cancellation_completed waits for it meanwhile.",
    )


class PendingChild(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str


class PendingTimer(BaseModel):
    timer_id: int
    fire_at: str


class WorkflowDescription(BaseModel):
    id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: str
    input: dict[str, Any]
    created_at: str
    updated_at: str
    closed_at: Optional[str]
    state: dict[str, Any]
    result: Any
    failure: Optional[dict[str, Any]]
    last_error: Optional[str]
    search_attributes: SearchAttributes = Field(
        default_factory=dict,
        description="The values the run can be found by: those it started with, as "
        "workflow.set_search_attributes changed them.",
    )
    priority: int = Field(
        description="Its place in its queues' backlogs, 1 (first) to 5 (last): its workflow "
        "tasks', and its activities' and children's unless they were given one."
    )
    fairness_key: Optional[str] = Field(
        None, description="Whose work it is: its queues take turns by key. null: none."
    )
    build_id: Optional[str] = Field(
        description="The worker build it is pinned to: only that build's workers run its "
        "turns (POST .../build moves it). null: not pinned; a worker of its queue's current "
        "build takes it."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="What the starting client's interceptors wrote (a trace context: "
        "traceparent), or what it inherited; its activities carry them.",
    )
    history_length: int
    pending_activities: list[PendingActivity]
    pending_timers: list[PendingTimer]
    pending_children: list[PendingChild]
    waiting_signals: list[str]
    waiting_updates: list[str] = Field(
        default_factory=list, description="The updates a workflow.wait_update waits for."
    )
    waiting_conditions: int = Field(
        0, description="How many workflow.wait_condition waits the run's code is in."
    )
    waiting_for_worker: bool = Field(
        description="Its turn has been due for over a second and no live worker serves its "
        "task queue with this workflow type."
    )
    in_backlog: bool = Field(
        False,
        description="Its turn has been due for over a second and a live worker serves it: it "
        "waits in the backlog while the workers are busy.",
    )
    ahead: Optional[int] = Field(
        None,
        description="With either of the two above: the due workflow tasks of its queue a claim "
        "takes before this run's; null otherwise.",
    )
    parent_run_id: Optional[str]
    continued_to: Optional[str] = Field(description="The run this one continued as new into.")
    starts_at: Optional[str] = Field(
        None, description="When the first turn is due, while that is ahead (start_delay)."
    )
    debounce_key: Optional[str] = Field(
        None,
        description="With starts_at, for a debounced start: its key (a start with it before "
        "then moves the run's start back).",
    )
    awaiting_nothing: bool = Field(
        False,
        description="Open, but no activity, timer, child, signal or update wait is pending "
        "and no turn is due: only a cancel or terminate moves it.",
    )


class WorkflowResult(BaseModel):
    id: str
    run_id: str
    status: str
    done: bool = Field(description="False if the run was still open when the wait ended.")
    result: Any
    failure: Optional[dict[str, Any]]


class WhoAmI(BaseModel):
    role: Optional[Literal["read", "admin"]]
    auth_required: bool


class StateValue(BaseModel):
    id: str
    key: str
    value: Any = Field(description="What the run published under the key (workflow.set_state).")


class StreamInfo(BaseModel):
    key: str
    length: int = Field(description="The values written so far.")
    closed: bool = Field(
        description="Closed by the workflow (workflow.close_stream); a run's streams all "
        "end with the run too."
    )


class StreamEntry(BaseModel):
    position: int = Field(description="0 for the first value, then 1, 2, ...")
    value: Any = Field(description="The value written (any JSON).")
    time: str = Field(description="When it was written.")
    source: Optional[str] = Field(
        description="Who wrote it: null for the workflow, else the activity attempt, "
        "'NAME (ref N) attempt K' (a retried activity writes its values again)."
    )


class StreamPage(BaseModel):
    run_id: str = Field(description="The run read (pass it as ?run_id= to stay on it).")
    entries: list[StreamEntry]
    next_start: int = Field(description="The position to ask for next (?start=).")
    finished: bool = Field(
        description="No value will follow these: the stream was closed, or the run ended."
    )


class Health(BaseModel):
    status: Literal["ok"]
