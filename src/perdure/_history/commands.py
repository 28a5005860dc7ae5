"""Commands (imperative): what workflow code asks the engine to do, each with
the event that records it, and how a replayed command is matched against the
record. Imports the event types only."""

from __future__ import annotations

from dataclasses import dataclass, field

from perdure._history.events import *

__all__ = [
    "CancelActivity",
    "CancelChild",
    "CancelExternal",
    "CancelTimer",
    "CancelWorkflow",
    "CloseStream",
    "Command",
    "CompleteWorkflow",
    "ContinueAsNew",
    "FailWorkflow",
    "RecordPatch",
    "RecordSideEffect",
    "ReplyUpdate",
    "ScheduleActivity",
    "SetSearchAttributes",
    "SetState",
    "SignalExternal",
    "StartChild",
    "StartTimer",
    "WriteStream",
    "describe_recorded",
    "matches",
    "schedule_activity",
]


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
        # The event has the command's fields, numbered later (see schedule_activity).
        event = object.__new__(ActivityScheduled)
        event.__dict__.update(self.__dict__, seq=0, time=0.0)
        return event

    def describe(self) -> str:
        return f"ScheduleActivity {self.name!r} (ref {self.ref})"


def schedule_activity(
    ref: int,
    name: str,
    task_queue: str,
    args: list[JSON],
    kwargs: dict[str, JSON],
    options: dict[str, JSON],
) -> ScheduleActivity:
    """``ScheduleActivity(ref, name, ...)``, quickly: see the quick event
    constructors in perdure._history.events."""
    command = object.__new__(ScheduleActivity)
    command.__dict__.update(
        ref=ref, name=name, task_queue=task_queue, args=args, kwargs=kwargs, options=options
    )
    return command


@dataclass(frozen=True)
class CancelActivity(Command):
    ref: int
    wait: bool = False  # (see ActivityCancelled.wait)

    def to_event(self) -> Event:
        return ActivityCancelled(ref=self.ref, wait=self.wait)

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
class WriteStream(Command):
    key: str
    value: JSON

    def to_event(self) -> Event:
        return StreamWritten(key=self.key, value=self.value)

    def describe(self) -> str:
        return f"WriteStream {self.key!r}"


@dataclass(frozen=True)
class CloseStream(Command):
    key: str

    def to_event(self) -> Event:
        return StreamClosed(key=self.key)

    def describe(self) -> str:
        return f"CloseStream {self.key!r}"


@dataclass(frozen=True)
class SetSearchAttributes(Command):
    attributes: dict[str, JSON]  # the names changed: their new values (None: removed)

    def to_event(self) -> Event:
        return SearchAttributesSet(attributes=self.attributes)

    def describe(self) -> str:
        return f"SetSearchAttributes {sorted(self.attributes)!r}"


@dataclass(frozen=True)
class ReplyUpdate(Command):
    update_id: str
    name: str
    result: JSON  # (as the converter encoded it; None with a failure)
    failure: str | None = None  # a refusal's message

    def to_event(self) -> Event:
        return UpdateReplied(
            update_id=self.update_id, name=self.name, result=self.result, failure=self.failure
        )

    def describe(self) -> str:
        return f"ReplyUpdate {self.name!r} ({self.update_id})"


@dataclass(frozen=True)
class StartChild(Command):
    ref: int
    workflow_type: str
    workflow_id: str
    task_queue: str
    args: list[JSON]
    kwargs: dict[str, JSON]
    parent_close_policy: str
    # The child's search attributes and priority (0: the parent's), in its
    # WorkflowStarted, not in this command's event: the parent's replay does
    # not need them.
    search_attributes: dict[str, JSON] = field(default_factory=dict)
    priority: int = 0
    fairness_key: str | None = None  # (None: the parent's)

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
class CancelExternal(Command):
    ref: int
    workflow_id: str
    reason: str | None

    def to_event(self) -> Event:
        return ExternalCancelRequested(
            ref=self.ref, workflow_id=self.workflow_id, reason=self.reason
        )

    def describe(self) -> str:
        return f"CancelExternal {self.workflow_id!r} (ref {self.ref})"


@dataclass(frozen=True)
class SignalExternal(Command):
    ref: int
    workflow_id: str
    name: str
    payload: JSON

    def to_event(self) -> Event:
        return ExternalSignalRequested(
            ref=self.ref, workflow_id=self.workflow_id, name=self.name, payload=self.payload
        )

    def describe(self) -> str:
        return f"SignalExternal {self.name!r} to {self.workflow_id!r} (ref {self.ref})"


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
    # The signals this run received that no wait took, in the order they
    # came: (name, payload as recorded). They go to the next run's inbox,
    # not into the event (they are already in this run's history).
    signals: tuple[tuple[str, JSON], ...] = ()

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
    if isinstance(event, StreamWritten):
        return f"WriteStream {event.key!r}"
    if isinstance(event, StreamClosed):
        return f"CloseStream {event.key!r}"
    if isinstance(event, SearchAttributesSet):
        return f"SetSearchAttributes {sorted(event.attributes)!r}"
    if isinstance(event, UpdateReplied):
        return f"ReplyUpdate {event.name!r} ({event.update_id})"
    if isinstance(event, ChildWorkflowRequested):
        return f"StartChild {event.workflow_type!r} (ref {event.ref})"
    if isinstance(event, ChildWorkflowCancelRequested):
        return f"CancelChild (ref {event.ref})"
    if isinstance(event, ExternalSignalRequested):
        return f"SignalExternal {event.name!r} to {event.workflow_id!r} (ref {event.ref})"
    if isinstance(event, ExternalCancelRequested):
        return f"CancelExternal {event.workflow_id!r} (ref {event.ref})"
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
    if isinstance(command, WriteStream):
        return isinstance(event, StreamWritten) and event.key == command.key
    if isinstance(command, CloseStream):
        return isinstance(event, StreamClosed) and event.key == command.key
    if isinstance(command, SetSearchAttributes):
        # (The names, not their values: as a state's key.)
        return isinstance(event, SearchAttributesSet) and set(event.attributes) == set(
            command.attributes
        )
    if isinstance(command, ReplyUpdate):
        return isinstance(event, UpdateReplied) and event.update_id == command.update_id
    if isinstance(command, StartChild):
        return (
            isinstance(event, ChildWorkflowRequested)
            and event.ref == command.ref
            and event.workflow_type == command.workflow_type
        )
    if isinstance(command, CancelExternal):
        return (
            isinstance(event, ExternalCancelRequested)
            and event.ref == command.ref
            and event.workflow_id == command.workflow_id
        )
    if isinstance(command, SignalExternal):
        return (
            isinstance(event, ExternalSignalRequested)
            and event.ref == command.ref
            and event.name == command.name
        )
    if isinstance(command, RecordPatch):
        return isinstance(event, PatchRecorded) and event.patch_id == command.patch_id
    recorded = command.to_event()
    if type(recorded) is not type(event):
        return False
    return getattr(recorded, "ref", None) == getattr(event, "ref", None)
