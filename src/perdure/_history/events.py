"""History events (past tense) and their versioned JSON encoding. Imports nothing.

The overview of the history model is in ``perdure._history``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

__all__ = [
    "CLOSING_EVENTS",
    "HISTORY_FORMAT",
    "JSON",
    "MAX_ERROR_TEXT",
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
    "HistoryFormatError",
    "PatchRecorded",
    "SearchAttributesSet",
    "SideEffectRecorded",
    "SignalReceived",
    "StateSet",
    "TimerCancelled",
    "TimerFired",
    "TimerStarted",
    "TurnStarted",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowContinuedAsNew",
    "WorkflowFailed",
    "WorkflowReset",
    "WorkflowStarted",
    "WorkflowTerminated",
    "WorkflowTimedOut",
    "activity_completed",
    "attempt_record",
    "event_from_dict",
    "event_to_dict",
    "field_problem",
    "turn_started",
]

# 2 (session 22): a turn that begins the history, or begins with an input right
# after a command, is written without its TurnStarted marker (see
# turns.split_turns). A reader of format 1 would misread such a history, so it
# refuses format 2's events.
HISTORY_FORMAT = 2

JSON = Any  # a value made of dict/list/str/int/float/bool/None


class HistoryFormatError(ValueError):
    """A stored event cannot be read (unknown type, newer format, missing field)."""


MAX_ERROR_TEXT = 500  # characters of an attempt's error message kept in its record


def attempt_record(
    attempt: int, started_at: float, ended_at: float, failure: dict[str, JSON] | None = None
) -> dict[str, JSON]:
    """One activity attempt as ``ActivityCompleted.attempts`` records it:
    ``{"attempt", "started_at", "ended_at", "error"}``, times in epoch seconds and
    ``error`` None (it succeeded) or ``{"type", "message"}`` (no traceback: the
    final failure carries the last one)."""
    error = None
    if failure is not None:
        message = str(failure.get("message", ""))
        if len(message) > MAX_ERROR_TEXT:
            message = message[: MAX_ERROR_TEXT - 1] + "\u2026"
        error = {"type": str(failure.get("type", "")), "message": message}
    return {"attempt": attempt, "started_at": started_at, "ended_at": ended_at, "error": error}


# --------------------------------------------------------------------- events


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
    OPTIONAL: ClassVar[tuple[str, ...]] = ("search_attributes",)
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
    ref: int = 0


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


# Quick constructors for the events every step of every workflow makes (the
# third, ActivityScheduled, is ScheduleActivity.to_event's). A frozen
# dataclass's __init__ sets each field through object.__setattr__, which made
# these three events and the ScheduleActivity command about 5% of a
# concurrent step's instructions; writing the instance's __dict__ at once
# builds the same object. Each names every field of its class
# (tests/runtime/test_quick_events.py holds them to the classes' own).


def turn_started(seq: int, time: float) -> TurnStarted:
    """``TurnStarted(seq=seq, time=time)``."""
    event = object.__new__(TurnStarted)
    event.__dict__.update(seq=seq, time=time)
    return event


def activity_completed(
    ref: int, result: JSON, attempt: int, attempts: list[JSON]
) -> ActivityCompleted:
    """``ActivityCompleted(ref=..., result=..., attempt=..., attempts=...)``, not yet numbered."""
    event = object.__new__(ActivityCompleted)
    event.__dict__.update(
        seq=0, time=0.0, ref=ref, result=result, attempt=attempt, attempts=attempts
    )
    return event


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


# Field names per event class, computed once (fields() is slow on a hot path).
_FIELDS: dict[type[Event], tuple[str, ...]] = {}

# What a stored field may hold, by its annotation; None: any JSON value.
_ACCEPTS: dict[str, tuple[type, ...] | None] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "str | None": (str, type(None)),
    "list[JSON]": (list,),
    "dict[str, JSON]": (dict,),
    "JSON": None,
}
_CHECKS: dict[type[Event], tuple[tuple[str, tuple[type, ...] | None], ...]] = {}


def _field_checks(cls: type[Event]) -> tuple[tuple[str, tuple[type, ...] | None], ...]:
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = _CHECKS[cls] = tuple((f.name, _ACCEPTS.get(str(f.type))) for f in fields(cls))
    return checks


_DEFAULTS: dict[type[Event], tuple[tuple[str, Any, Callable[[], Any] | None], ...]] = {}


def _field_defaults(cls: type[Event]) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...]:
    """(name, default, default factory) of each field, in order."""
    found = _DEFAULTS.get(cls)
    if found is None:
        found = _DEFAULTS[cls] = tuple(
            (f.name, f.default, None if f.default_factory is MISSING else f.default_factory)
            for f in fields(cls)
        )
    return found


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


def event_to_dict(event: Event) -> dict[str, JSON]:
    out: dict[str, JSON] = {"v": HISTORY_FORMAT, "type": event.TYPE}
    for name in _field_names(type(event)):
        out[name] = getattr(event, name)
    for name in event.OPTIONAL:
        if not out[name]:
            del out[name]
    return out


def field_problem(event: Event) -> str | None:
    """Why ``event`` could not be read back (event_from_dict refuses a field
    whose value is not of its annotated type), or None: checked before an
    event from outside (a client's signal, a cancel's reason) is written, so
    that nothing unreadable reaches a run's inbox and stalls the run."""
    for name, accepts in _field_checks(type(event)):
        value = getattr(event, name)
        if accepts is not None and (not isinstance(value, accepts) or isinstance(value, bool)):
            return (
                f"{event.TYPE} event field {name!r} would hold {type(value).__name__} "
                f"{value!r:.60}, not {' or '.join(t.__name__ for t in accepts)}"
            )
    return None


def event_from_dict(data: dict[str, JSON]) -> Event:
    try:
        version = int(data.get("v", 1))
        type_name = data["type"]
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryFormatError(f"event record has no valid 'type'/'v': {data!r:.200}") from exc
    if version > HISTORY_FORMAT:
        raise HistoryFormatError(
            f"event {type_name!r} uses history format v{version}, newer than this "
            f"perdure understands (v{HISTORY_FORMAT}); upgrade perdure"
        )
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise HistoryFormatError(f"unknown event type {type_name!r}")
    for name, accepts in _field_checks(cls):
        value = data.get(name)
        if (
            name in data
            and accepts is not None
            and (not isinstance(value, accepts) or isinstance(value, bool))
        ):
            raise HistoryFormatError(
                f"{type_name} event field {name!r} holds {type(value).__name__} {value!r:.60}, "
                f"not {' or '.join(t.__name__ for t in accepts)}"
            )
    # Built as the quick constructors above build (a replay reads every event
    # of a history): each field from the record, or its default.
    event = object.__new__(cls)
    store = event.__dict__
    for name, default, factory in _field_defaults(cls):
        if name in data:
            store[name] = data[name]
        elif factory is not None:
            store[name] = factory()
        elif default is not MISSING:
            store[name] = default
        else:
            raise HistoryFormatError(f"malformed {type_name} event: no {name!r}")
    return event
