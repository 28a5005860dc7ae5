"""The history model: events (past tense) and commands (imperative). Imports nothing.

A run's history is an append-only list of events, numbered from 1 by ``seq``.
It is cut into *turns*: each turn is a :class:`TurnStarted` marker (carrying the
workflow time of that turn), then the *input* events the turn consumed (in the
order they arrived), then the *command* events the workflow code produced while
handling them. Replay feeds each recorded turn's inputs in the same batch and
checks the code produces the same commands.

Commands that wait for an answer (an activity, a timer) carry ``ref``: one
counter per run, incremented in the order the workflow issued them; the answer
(``ActivityCompleted``, ``TimerFired``) names the same ``ref``.

Encoding: ``event_to_dict`` / ``event_from_dict`` give a JSON object with
``"v"`` (the encoding version, :data:`HISTORY_FORMAT`), ``"type"``, ``"seq"``,
``"time"`` and the event's own fields. A reader accepts every version up to its
own and ignores fields it does not know, so older histories keep replaying.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

HISTORY_FORMAT = 1

JSON = Any  # a value made of dict/list/str/int/float/bool/None


class HistoryFormatError(ValueError):
    """A stored event cannot be read (unknown type, newer format, missing field)."""


# --------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """Base of all events. ``seq`` and ``time`` are assigned when recorded."""

    TYPE: ClassVar[str] = ""
    KIND: ClassVar[str] = ""  # "marker", "input" or "command"
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


@dataclass(frozen=True)
class ActivityCompleted(Event):
    TYPE: ClassVar[str] = "ActivityCompleted"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    result: JSON = None
    attempt: int = 1


@dataclass(frozen=True)
class ActivityFailed(Event):
    TYPE: ClassVar[str] = "ActivityFailed"
    KIND: ClassVar[str] = "input"
    ref: int = 0
    failure: dict[str, JSON] = field(default_factory=dict)
    attempt: int = 1


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
        ChildWorkflowStarted,
        ChildWorkflowStartFailed,
        ChildWorkflowCompleted,
        ChildWorkflowFailed,
        ActivityScheduled,
        ActivityCancelled,
        TimerStarted,
        TimerCancelled,
        StateSet,
        ChildWorkflowRequested,
        ChildWorkflowCancelRequested,
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


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


def event_to_dict(event: Event) -> dict[str, JSON]:
    out: dict[str, JSON] = {"v": HISTORY_FORMAT, "type": event.TYPE}
    for name in _field_names(type(event)):
        out[name] = getattr(event, name)
    return out


_HEADER = frozenset(("v", "type"))


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
    known = _field_names(cls)
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
    try:
        return cls(**{k: v for k, v in data.items() if k in known and k not in _HEADER})
    except TypeError as exc:
        raise HistoryFormatError(f"malformed {type_name} event: {exc}") from exc


# ------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """Base of all commands: what workflow code asks the engine to do."""

    def to_event(self) -> Event:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class ScheduleActivity(Command):
    ref: int
    name: str
    task_queue: str
    args: list[JSON]
    kwargs: dict[str, JSON]
    options: dict[str, JSON]

    def to_event(self) -> Event:
        return ActivityScheduled(
            ref=self.ref,
            name=self.name,
            task_queue=self.task_queue,
            args=self.args,
            kwargs=self.kwargs,
            options=self.options,
        )

    def describe(self) -> str:
        return f"ScheduleActivity {self.name!r} (ref {self.ref})"


@dataclass(frozen=True)
class CancelActivity(Command):
    ref: int

    def to_event(self) -> Event:
        return ActivityCancelled(ref=self.ref)

    def describe(self) -> str:
        return f"CancelActivity (ref {self.ref})"


@dataclass(frozen=True)
class StartTimer(Command):
    ref: int
    fire_at: float

    def to_event(self) -> Event:
        return TimerStarted(ref=self.ref, fire_at=self.fire_at)

    def describe(self) -> str:
        return f"StartTimer (ref {self.ref})"


@dataclass(frozen=True)
class CancelTimer(Command):
    ref: int

    def to_event(self) -> Event:
        return TimerCancelled(ref=self.ref)

    def describe(self) -> str:
        return f"CancelTimer (ref {self.ref})"


@dataclass(frozen=True)
class SetState(Command):
    key: str
    value: JSON

    def to_event(self) -> Event:
        return StateSet(key=self.key, value=self.value)

    def describe(self) -> str:
        return f"SetState {self.key!r}"


@dataclass(frozen=True)
class StartChild(Command):
    ref: int
    workflow_type: str
    workflow_id: str
    task_queue: str
    args: list[JSON]
    kwargs: dict[str, JSON]
    parent_close_policy: str

    def to_event(self) -> Event:
        return ChildWorkflowRequested(
            ref=self.ref,
            workflow_type=self.workflow_type,
            workflow_id=self.workflow_id,
            task_queue=self.task_queue,
            args=self.args,
            kwargs=self.kwargs,
            parent_close_policy=self.parent_close_policy,
        )

    def describe(self) -> str:
        return f"StartChild {self.workflow_type!r} (ref {self.ref})"


@dataclass(frozen=True)
class CancelChild(Command):
    ref: int

    def to_event(self) -> Event:
        return ChildWorkflowCancelRequested(ref=self.ref)

    def describe(self) -> str:
        return f"CancelChild (ref {self.ref})"


@dataclass(frozen=True)
class RecordPatch(Command):
    patch_id: str

    def to_event(self) -> Event:
        return PatchRecorded(patch_id=self.patch_id)

    def describe(self) -> str:
        return f"RecordPatch {self.patch_id!r}"


@dataclass(frozen=True)
class RecordSideEffect(Command):
    ref: int
    value: JSON

    def to_event(self) -> Event:
        return SideEffectRecorded(ref=self.ref, value=self.value)

    def describe(self) -> str:
        return f"RecordSideEffect (ref {self.ref})"


@dataclass(frozen=True)
class ContinueAsNew(Command):
    args: list[JSON]
    kwargs: dict[str, JSON]

    def to_event(self) -> Event:
        return WorkflowContinuedAsNew(args=self.args, kwargs=self.kwargs)

    def describe(self) -> str:
        return "ContinueAsNew"


@dataclass(frozen=True)
class CompleteWorkflow(Command):
    result: JSON

    def to_event(self) -> Event:
        return WorkflowCompleted(result=self.result)

    def describe(self) -> str:
        return "CompleteWorkflow"


@dataclass(frozen=True)
class FailWorkflow(Command):
    failure: dict[str, JSON]

    def to_event(self) -> Event:
        return WorkflowFailed(failure=self.failure)

    def describe(self) -> str:
        return "FailWorkflow"


@dataclass(frozen=True)
class CancelWorkflow(Command):
    def to_event(self) -> Event:
        return WorkflowCancelled()

    def describe(self) -> str:
        return "CancelWorkflow"


def describe_recorded(event: Event) -> str:
    """Name a recorded command event the way :meth:`Command.describe` names commands."""
    if isinstance(event, ActivityScheduled):
        return f"ScheduleActivity {event.name!r} (ref {event.ref})"
    if isinstance(event, ActivityCancelled):
        return f"CancelActivity (ref {event.ref})"
    if isinstance(event, TimerStarted):
        return f"StartTimer (ref {event.ref})"
    if isinstance(event, TimerCancelled):
        return f"CancelTimer (ref {event.ref})"
    if isinstance(event, StateSet):
        return f"SetState {event.key!r}"
    if isinstance(event, ChildWorkflowRequested):
        return f"StartChild {event.workflow_type!r} (ref {event.ref})"
    if isinstance(event, ChildWorkflowCancelRequested):
        return f"CancelChild (ref {event.ref})"
    if isinstance(event, PatchRecorded):
        return f"RecordPatch {event.patch_id!r}"
    if isinstance(event, SideEffectRecorded):
        return f"RecordSideEffect (ref {event.ref})"
    return {
        WorkflowCompleted: "CompleteWorkflow",
        WorkflowFailed: "FailWorkflow",
        WorkflowCancelled: "CancelWorkflow",
        WorkflowContinuedAsNew: "ContinueAsNew",
    }.get(type(event), event.TYPE)


def matches(command: Command, event: Event) -> bool:
    """Does a replayed command match the recorded event? Arguments may differ;
    the kind and the identity (activity name, ref, state key) may not."""
    if isinstance(command, ScheduleActivity):
        return (
            isinstance(event, ActivityScheduled)
            and event.ref == command.ref
            and event.name == command.name
        )
    if isinstance(command, SetState):
        return isinstance(event, StateSet) and event.key == command.key
    if isinstance(command, StartChild):
        return (
            isinstance(event, ChildWorkflowRequested)
            and event.ref == command.ref
            and event.workflow_type == command.workflow_type
        )
    if isinstance(command, RecordPatch):
        return isinstance(event, PatchRecorded) and event.patch_id == command.patch_id
    recorded = command.to_event()
    if type(recorded) is not type(event):
        return False
    return getattr(recorded, "ref", None) == getattr(event, "ref", None)


@dataclass
class RecordedTurn:
    """One turn of a stored history: its time, its inputs and its commands."""

    time: float
    inputs: list[Event]
    commands: list[Event]
    events_before: int = 0  # history length when the turn began


def split_turns(events: list[Event]) -> list[RecordedTurn]:
    """Cut a history into turns. Raises HistoryFormatError on a malformed history."""
    turns: list[RecordedTurn] = []
    for event in events:
        if isinstance(event, TurnStarted):
            turns.append(
                RecordedTurn(time=event.time, inputs=[], commands=[], events_before=event.seq - 1)
            )
            continue
        if isinstance(event, (WorkflowTerminated, WorkflowTimedOut)):
            break
        if not turns:
            raise HistoryFormatError(
                f"history starts with {event.TYPE} (seq {event.seq}), not TurnStarted"
            )
        turn = turns[-1]
        if event.KIND == "input":
            if turn.commands:
                raise HistoryFormatError(
                    f"input event {event.TYPE} (seq {event.seq}) after a command in one turn"
                )
            turn.inputs.append(event)
        else:
            turn.commands.append(event)
    return turns


def turn_events(
    last_seq: int, time: float, inputs: list[Event], commands: list[Command]
) -> list[Event]:
    """The events one turn appends: its marker, its inputs, then its commands,
    numbered from ``last_seq + 1`` and stamped with the turn's time."""
    out: list[Event] = []
    for event in [TurnStarted(), *inputs, *(c.to_event() for c in commands)]:
        out.append(dataclasses.replace(event, seq=last_seq + len(out) + 1, time=time))
    return out
