"""The history's event classes (past tense), one frozen dataclass per kind of
event, and ``EVENT_TYPES``, the registry that maps a stored event's ``"type"``
to its class. Imports nothing; ``events`` re-exports all of it with the encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "CLOSING_EVENTS",
    "JSON",
    "ActivityCancelled",
    "ActivityCompleted",
    "ActivityFailed",
    "ActivityScheduled",
    "CancelRequested",
    "ChildWorkflowCancelRequested",
    "ChildWorkflowCompleted",
    "ChildWorkflowFailed",
    "ChildWorkflowRequested",
    "ChildWorkflowStartFailed",
    "ChildWorkflowStarted",
    "Event",
    "ExternalCancelDelivered",
    "ExternalCancelFailed",
    "ExternalCancelRequested",
    "ExternalSignalDelivered",
    "ExternalSignalFailed",
    "ExternalSignalRequested",
    "FairnessKeyChanged",
    "PatchRecorded",
    "PriorityChanged",
    "SearchAttributesSet",
    "SideEffectRecorded",
    "SignalReceived",
    "StateSet",
    "StreamClosed",
    "StreamWritten",
    "TimerCancelled",
    "TimerFired",
    "TimerStarted",
    "TurnStarted",
    "UpdateReplied",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowContinuedAsNew",
    "WorkflowFailed",
    "WorkflowReset",
    "WorkflowStarted",
    "WorkflowTerminated",
    "WorkflowTimedOut",
]

JSON = Any  # a value made of dict/list/str/int/float/bool/None


@dataclass(frozen=True)
class Event:
    """Base of all events. ``seq`` and ``time`` are assigned when recorded."""

    TYPE: ClassVar[str] = ""
    KIND: ClassVar[str] = ""  # "marker", "input" or "command"
    # Fields written only when they hold something (added after histories
    # were first recorded: an event without them reads back with the default,
    # and one that does not use them is stored as it always was).
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    seq: int = field(default=0, kw_only=True)
    time: float = field(default=0.0, kw_only=True)


@dataclass(frozen=True)
class TurnStarted(Event):
    TYPE: ClassVar[str] = "TurnStarted"
    KIND: ClassVar[str] = "marker"


# Inputs: what reaches a run from outside, via its inbox.


@dataclass(frozen=True)
class WorkflowStarted(Event):
    TYPE: ClassVar[str] = "WorkflowStarted"
    KIND: ClassVar[str] = "input"
    OPTIONAL: ClassVar[tuple[str, ...]] = (
        "search_attributes",
        "priority",
        "headers",
        "fairness_key",
    )
    workflow_type: str = ""
    workflow_id: str = ""
    run_id: str = ""
    task_queue: str = "default"
    args: list[JSON] = field(default_factory=list)
    kwargs: dict[str, JSON] = field(default_factory=dict)
    seed: int = 0
    attempt: int = 1
    parent_workflow_id: str | None = None
    parent_run_id: str | None = None
    continued_from_run_id: str | None = None
    # The run's search attributes as it started (Client.start's, or those of
    # the run it continues): name -> str, int, float or bool.
    search_attributes: dict[str, JSON] = field(default_factory=dict)
    # The run's priority (see priorities), 0 for the default: a run started
    # without one records none, as runs did before priorities.
    priority: int = 0
    # The run's headers (name -> str), written by the starting client's
    # interceptors (a trace context) or inherited from the run that started
    # or continued to this one; its activities carry them (perdure.interceptors).
    headers: dict[str, str] = field(default_factory=dict)
    # The run's fairness key ('' for none: docs/queues.md "Fairness").
    fairness_key: str = ""


@dataclass(frozen=True)
class ActivityCompleted(Event):
    TYPE: ClassVar[str] = "ActivityCompleted"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    result: JSON = None
    attempt: int = 1
    # Every attempt, oldest first, the last being this one (see attempt_record).
    # Absent from events recorded before attempts were kept: decoded as [].
    attempts: list[JSON] = field(default_factory=list)


@dataclass(frozen=True)
class ActivityFailed(Event):
    TYPE: ClassVar[str] = "ActivityFailed"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    failure: dict[str, JSON] = field(default_factory=dict)
    attempt: int = 1
    attempts: list[JSON] = field(default_factory=list)  # as in ActivityCompleted


@dataclass(frozen=True)
class TimerFired(Event):
    TYPE: ClassVar[str] = "TimerFired"
    KIND: ClassVar[str] = "input"
    ref: int = 0


@dataclass(frozen=True)
class SignalReceived(Event):
    TYPE: ClassVar[str] = "SignalReceived"
    KIND: ClassVar[str] = "input"
    name: str = ""
    payload: JSON = None


@dataclass(frozen=True)
class CancelRequested(Event):
    TYPE: ClassVar[str] = "CancelRequested"
    KIND: ClassVar[str] = "input"
    reason: str | None = None


@dataclass(frozen=True)
class PriorityChanged(Event):
    """An operator changed the run's priority (``handle.set_priority``): its
    later workflow tasks, and the activities and children it starts from
    this turn on that are given none, have this one."""

    TYPE: ClassVar[str] = "PriorityChanged"
    KIND: ClassVar[str] = "input"
    priority: int = 3


@dataclass(frozen=True)
class FairnessKeyChanged(Event):
    """An operator changed the run's fairness key (``handle.set_fairness_key``;
    '' for none): its later workflow tasks, and the activities and children
    it starts from this turn on that are given none, have this one."""

    TYPE: ClassVar[str] = "FairnessKeyChanged"
    KIND: ClassVar[str] = "input"
    fairness_key: str = ""


@dataclass(frozen=True)
class WorkflowReset(Event):
    """The first input of a run that an operator's reset made from another
    run (``from_run_id``) by keeping its history before event ``at_seq``:
    it comes after the inputs of the turn that began there, which the new
    run takes again. Activities the new run schedules carry
    ``idempotency_run_id`` (the first run of a chain of resets) so that
    their idempotency keys are those of the run they take over from."""

    TYPE: ClassVar[str] = "WorkflowReset"
    KIND: ClassVar[str] = "input"
    from_run_id: str = ""
    at_seq: int = 0
    reason: str | None = None
    idempotency_run_id: str = ""


@dataclass(frozen=True)
class ChildWorkflowStarted(Event):
    TYPE: ClassVar[str] = "ChildWorkflowStarted"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    workflow_id: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class ChildWorkflowStartFailed(Event):
    """The child could not start (its workflow id is taken)."""

    TYPE: ClassVar[str] = "ChildWorkflowStartFailed"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    failure: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildWorkflowCompleted(Event):
    TYPE: ClassVar[str] = "ChildWorkflowCompleted"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    result: JSON = None


@dataclass(frozen=True)
class ChildWorkflowFailed(Event):
    """The child ended without a result: ``status`` is failed, cancelled,
    terminated or timed_out; ``failure`` says why."""

    TYPE: ClassVar[str] = "ChildWorkflowFailed"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    status: str = "failed"
    failure: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class ExternalSignalDelivered(Event):
    """The signal of ExternalSignalRequested ``ref`` is in the inbox of run
    ``run_id`` (the target id's latest, open run), written with the turn that
    sent it."""

    TYPE: ClassVar[str] = "ExternalSignalDelivered"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    run_id: str = ""


@dataclass(frozen=True)
class ExternalSignalFailed(Event):
    """The signal of ExternalSignalRequested ``ref`` could not be delivered:
    ``reason`` is "not_found" (no run has the workflow id) or "closed" (its
    latest run has ended, with ``status``)."""

    TYPE: ClassVar[str] = "ExternalSignalFailed"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    reason: str = "not_found"
    status: str = ""


@dataclass(frozen=True)
class ExternalCancelDelivered(Event):
    """The cancel request of ExternalCancelRequested ``ref`` is in the inbox
    of run ``run_id`` (the target id's latest, open run), written with the
    turn that sent it."""

    TYPE: ClassVar[str] = "ExternalCancelDelivered"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    run_id: str = ""


@dataclass(frozen=True)
class ExternalCancelFailed(Event):
    """The cancel request of ExternalCancelRequested ``ref`` could not be
    delivered: ``reason`` and ``status`` as ExternalSignalFailed's."""

    TYPE: ClassVar[str] = "ExternalCancelFailed"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    reason: str = "not_found"
    status: str = ""


# Command events: the record of a command the workflow issued.


@dataclass(frozen=True)
class ActivityScheduled(Event):
    TYPE: ClassVar[str] = "ActivityScheduled"
    KIND: ClassVar[str] = "command"
    ref: int = 0
    name: str = ""
    task_queue: str = "default"
    args: list[JSON] = field(default_factory=list)
    kwargs: dict[str, JSON] = field(default_factory=dict)
    options: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivityCancelled(Event):
    TYPE: ClassVar[str] = "ActivityCancelled"
    KIND: ClassVar[str] = "command"
    OPTIONAL: ClassVar[tuple[str, ...]] = ("wait",)
    ref: int = 0
    # The workflow waits for the activity's outcome before its await raises
    # (cancellation_type "wait_cancellation_completed"): an activity no
    # attempt holds gets a cancelled outcome from the cancel's own commit.
    wait: bool = False


@dataclass(frozen=True)
class TimerStarted(Event):
    TYPE: ClassVar[str] = "TimerStarted"
    KIND: ClassVar[str] = "command"
    ref: int = 0
    fire_at: float = 0.0


@dataclass(frozen=True)
class TimerCancelled(Event):
    TYPE: ClassVar[str] = "TimerCancelled"
    KIND: ClassVar[str] = "command"
    ref: int = 0


@dataclass(frozen=True)
class StateSet(Event):
    TYPE: ClassVar[str] = "StateSet"
    KIND: ClassVar[str] = "command"
    key: str = ""
    value: JSON = None


@dataclass(frozen=True)
class SearchAttributesSet(Event):
    """``workflow.set_search_attributes``: the names it changed, each to its
    new value (None: removed)."""

    TYPE: ClassVar[str] = "SearchAttributesSet"
    KIND: ClassVar[str] = "command"
    attributes: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamWritten(Event):
    """``workflow.write_stream``: one value appended to the run's stream
    ``key`` (as the converter encoded it). The store writes the stream's row
    in the same commit; activities' writes go to the stream only (see
    docs/workflows.md#streams)."""

    TYPE: ClassVar[str] = "StreamWritten"
    KIND: ClassVar[str] = "command"
    key: str = ""
    value: JSON = None


@dataclass(frozen=True)
class StreamClosed(Event):
    """``workflow.close_stream``: the stream ``key`` takes no more values."""

    TYPE: ClassVar[str] = "StreamClosed"
    KIND: ClassVar[str] = "command"
    key: str = ""


@dataclass(frozen=True)
class UpdateReplied(Event):
    """An update's answer (``UpdateRequest.reply`` / ``reject``): ``result``
    as the converter encoded it, or the refusal's message in ``failure``.
    The update's request is a signal (``perdure._history.updates``)."""

    TYPE: ClassVar[str] = "UpdateReplied"
    KIND: ClassVar[str] = "command"
    update_id: str = ""
    name: str = ""
    result: JSON = None
    failure: str | None = None


@dataclass(frozen=True)
class ChildWorkflowRequested(Event):
    TYPE: ClassVar[str] = "ChildWorkflowRequested"
    KIND: ClassVar[str] = "command"
    ref: int = 0
    workflow_type: str = ""
    workflow_id: str = ""
    task_queue: str = "default"
    args: list[JSON] = field(default_factory=list)
    kwargs: dict[str, JSON] = field(default_factory=dict)
    parent_close_policy: str = "cancel"


@dataclass(frozen=True)
class ExternalSignalRequested(Event):
    """The workflow signalled another workflow (``workflow.signal_workflow``):
    ``name`` with ``payload`` to the latest run of ``workflow_id``, delivered
    with this turn's commit (see ExternalSignalDelivered / Failed)."""

    TYPE: ClassVar[str] = "ExternalSignalRequested"
    KIND: ClassVar[str] = "command"
    ref: int = 0
    workflow_id: str = ""
    name: str = ""
    payload: JSON = None


@dataclass(frozen=True)
class ExternalCancelRequested(Event):
    """The workflow asked another workflow to cancel
    (``workflow.cancel_workflow``): a CancelRequested with ``reason`` into the
    inbox of the latest run of ``workflow_id``, delivered with this turn's
    commit (see ExternalCancelDelivered / Failed)."""

    TYPE: ClassVar[str] = "ExternalCancelRequested"
    KIND: ClassVar[str] = "command"
    ref: int = 0
    workflow_id: str = ""
    reason: str | None = None


@dataclass(frozen=True)
class ChildWorkflowCancelRequested(Event):
    TYPE: ClassVar[str] = "ChildWorkflowCancelRequested"
    KIND: ClassVar[str] = "command"
    ref: int = 0


@dataclass(frozen=True)
class PatchRecorded(Event):
    TYPE: ClassVar[str] = "PatchRecorded"
    KIND: ClassVar[str] = "command"
    patch_id: str = ""


@dataclass(frozen=True)
class SideEffectRecorded(Event):
    TYPE: ClassVar[str] = "SideEffectRecorded"
    KIND: ClassVar[str] = "command"
    ref: int = 0
    value: JSON = None


@dataclass(frozen=True)
class WorkflowContinuedAsNew(Event):
    TYPE: ClassVar[str] = "WorkflowContinuedAsNew"
    KIND: ClassVar[str] = "command"
    args: list[JSON] = field(default_factory=list)
    kwargs: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkflowCompleted(Event):
    TYPE: ClassVar[str] = "WorkflowCompleted"
    KIND: ClassVar[str] = "command"
    result: JSON = None


@dataclass(frozen=True)
class WorkflowFailed(Event):
    TYPE: ClassVar[str] = "WorkflowFailed"
    KIND: ClassVar[str] = "command"
    failure: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkflowCancelled(Event):
    TYPE: ClassVar[str] = "WorkflowCancelled"
    KIND: ClassVar[str] = "command"


@dataclass(frozen=True)
class WorkflowTerminated(Event):
    """Written by an operator's ``terminate``, not by workflow code."""

    TYPE: ClassVar[str] = "WorkflowTerminated"
    KIND: ClassVar[str] = "marker"
    reason: str | None = None


@dataclass(frozen=True)
class WorkflowTimedOut(Event):
    """Written when the run's execution timeout passes, not by workflow code."""

    TYPE: ClassVar[str] = "WorkflowTimedOut"
    KIND: ClassVar[str] = "marker"
    timeout: float = 0.0


# Every event class by the "type" it is stored under: how event_from_dict
# (in events) knows what a stored event is.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        TurnStarted,
        WorkflowStarted,
        ActivityCompleted,
        ActivityFailed,
        TimerFired,
        SignalReceived,
        CancelRequested,
        PriorityChanged,
        FairnessKeyChanged,
        WorkflowReset,
        ChildWorkflowStarted,
        ChildWorkflowStartFailed,
        ChildWorkflowCompleted,
        ChildWorkflowFailed,
        ActivityScheduled,
        ActivityCancelled,
        TimerStarted,
        TimerCancelled,
        StateSet,
        SearchAttributesSet,
        StreamWritten,
        StreamClosed,
        UpdateReplied,
        ChildWorkflowRequested,
        ChildWorkflowCancelRequested,
        ExternalSignalRequested,
        ExternalSignalDelivered,
        ExternalSignalFailed,
        ExternalCancelRequested,
        ExternalCancelDelivered,
        ExternalCancelFailed,
        PatchRecorded,
        SideEffectRecorded,
        WorkflowContinuedAsNew,
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowCancelled,
        WorkflowTerminated,
        WorkflowTimedOut,
    )
}

CLOSING_EVENTS = (
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    WorkflowContinuedAsNew,
    WorkflowTerminated,
    WorkflowTimedOut,
)
