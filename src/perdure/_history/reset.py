"""Resetting a run: where a new run may take over a run's history, and what
it keeps, takes again and is sent again. Imports events and turns.

A reset point is the beginning of a turn. The new run keeps every event
before it (the turns the code will replay), takes that turn's inputs again
as its first turn's (the code runs from there with whatever code is now
deployed), and is sent again the signals the old run received after them.
A point is usable only where nothing the earlier turns started is still
outstanding once the turn's inputs have arrived: no activity, timer or
child workflow that the new run would have to wait on without a task,
timer row or child of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from perdure._history.events import *
from perdure._history.turns import RecordedTurn, split_turns

__all__ = ["ResetPlan", "ResetPointError", "default_point", "plan_reset", "reset_points"]

# Inputs a default reset does not take again: the turn that took one of
# these is what went wrong (an activity or child that failed, a cancel).
_SETBACKS = (ActivityFailed, ChildWorkflowFailed, ChildWorkflowStartFailed, CancelRequested)


class ResetPointError(ValueError):
    """The run cannot be reset at the point asked for (or has no point)."""


@dataclass
class ResetPlan:
    at_seq: int  # the first event of the turn the new run takes again
    kept: list[Event]  # the new run's history: every event before at_seq
    inputs: list[Event]  # its first turn's inputs: the turn's, then WorkflowReset
    signals: list[Event]  # received by the old run after that turn: sent again


def _note(waiting: dict[tuple[str, int], str], e: Event) -> None:
    """Track what a run waits on: ``e`` starts or ends an activity, timer,
    child, or signal or cancel request to another workflow."""
    if isinstance(e, ActivityScheduled):
        waiting["activity", e.ref] = f"activity {e.name!r} (ref {e.ref})"
    elif isinstance(e, (ActivityCompleted, ActivityFailed, ActivityCancelled)):
        waiting.pop(("activity", e.ref), None)
    elif isinstance(e, TimerStarted):
        waiting["timer", e.ref] = f"a timer (ref {e.ref})"
    elif isinstance(e, (TimerFired, TimerCancelled)):
        waiting.pop(("timer", e.ref), None)
    elif isinstance(e, ChildWorkflowRequested):
        waiting["child", e.ref] = f"child workflow {e.workflow_id!r} (ref {e.ref})"
    elif isinstance(e, (ChildWorkflowCompleted, ChildWorkflowFailed, ChildWorkflowStartFailed)):
        waiting.pop(("child", e.ref), None)
    elif isinstance(e, ExternalSignalRequested):
        waiting["signal", e.ref] = f"the signal {e.name!r} to {e.workflow_id!r} (ref {e.ref})"
    elif isinstance(e, ExternalCancelRequested):
        waiting["signal", e.ref] = f"the cancel request to {e.workflow_id!r} (ref {e.ref})"
    elif isinstance(
        e,
        (
            ExternalSignalDelivered,
            ExternalSignalFailed,
            ExternalCancelDelivered,
            ExternalCancelFailed,
        ),
    ):
        waiting.pop(("signal", e.ref), None)


def _walk(turns: list[RecordedTurn], upto: int | None = None) -> tuple[list[bool], list[str]]:
    """One pass over ``turns`` (to ``upto``, inclusive): whether each is a
    usable point (nothing the earlier turns started outstanding once its own
    inputs have come), and what was outstanding at turn ``upto``, in the
    order it was started (names built for that turn only: a fan-out of
    thousands would otherwise list thousands of names per turn)."""
    waiting: dict[tuple[str, int], str] = {}
    quiet: list[bool] = []
    names: list[str] = []
    for i, turn in enumerate(turns[: None if upto is None else upto + 1]):
        for e in turn.inputs:
            _note(waiting, e)
        quiet.append(not waiting)
        if i == upto:
            names = [name for _, name in sorted(waiting.items(), key=lambda kv: kv[0][::-1])]
        for e in turn.commands:
            _note(waiting, e)
    return quiet, names


def _first_seq(turn: RecordedTurn) -> int:
    return turn.events_before + 1


def reset_points(events: list[Event]) -> list[int]:
    """The usable reset points of a history (the first event of each turn
    where nothing is outstanding), oldest first."""
    turns = split_turns(events)
    return [_first_seq(t) for t, q in zip(turns, _walk(turns)[0], strict=True) if q]


def default_point(events: list[Event]) -> int | None:
    """Where a reset without ``to_event`` goes back to (see plan_reset), or
    None if no turn can be used."""
    turns = split_turns(events)
    try:
        return _first_seq(turns[_default_turn(turns, _walk(turns)[0])])
    except ResetPointError:
        return None


def _turn_at(turns: list[RecordedTurn], seq: int, events: list[Event]) -> int:
    """The index of the turn that recorded event ``seq``."""
    last_seq = events[-1].seq
    if not 1 <= seq <= last_seq:
        raise ResetPointError(f"the run has no event {seq} (its events are 1 to {last_seq})")
    for end in events:
        if isinstance(end, (WorkflowTerminated, WorkflowTimedOut)) and seq >= end.seq:
            raise ResetPointError(
                f"event {seq} is the run's end marker ({end.TYPE}), which no turn "
                f"recorded: choose an earlier event"
            )
    for i in range(len(turns) - 1, -1, -1):
        if _first_seq(turns[i]) <= seq:
            return i
    raise ResetPointError(f"event {seq} belongs to no turn")  # (turns begin at 1)


def _default_turn(turns: list[RecordedTurn], quiet: list[bool]) -> int:
    """The latest usable turn that took no failure and no cancel request."""
    for i in range(len(turns) - 1, -1, -1):
        if quiet[i] and not any(isinstance(e, _SETBACKS) for e in turns[i].inputs):
            return i
    raise ResetPointError("the run has no turn to go back to that took no failure or cancel")


def plan_reset(
    events: list[Event],
    unread: list[Event],
    to_event: int | None,
    new_run_id: str,
    reason: str | None,
) -> ResetPlan:
    """Where a new run ``new_run_id`` takes over the history ``events``
    (``unread``: the inputs still in the old run's inbox). ``to_event``: the
    new run goes back to the beginning of the turn that recorded that event;
    None: to the latest usable turn that took no failure and no cancel
    request (an activity that failed for good is scheduled again). Raises
    ResetPointError for a point that cannot be used, naming the nearest
    earlier one that can."""
    turns = split_turns(events)
    if not turns or not isinstance(events[0], WorkflowStarted):
        raise ResetPointError("the run has no turn yet: there is nothing to reset")
    if to_event is None:
        made = next((e for e in unread if isinstance(e, WorkflowReset)), None)
        if made is not None:
            # (A second click, or a retried request: the latest turn of the
            # kept history is older than the one that reset took again.)
            raise ResetPointError(
                f"this run was made by a reset of run {made.from_run_id} and has not run "
                f"its first turn yet, so its latest turn is older than the point that reset "
                f"went back to: name a point (to_event), or wait until it has run"
            )
        index = _default_turn(turns, _walk(turns)[0])
    else:
        index = _turn_at(turns, to_event, events)
        quiet, waiting = _walk(turns, index)
        if waiting:
            earlier = [
                _first_seq(t) for t, q in zip(turns[:index], quiet[:index], strict=True) if q
            ]
            hint = (
                f"; the nearest earlier point is event {earlier[-1]}"
                if earlier
                else "; no earlier point can be used either"
            )
            raise ResetPointError(
                f"event {to_event} is in the turn that begins at event "
                f"{_first_seq(turns[index])}, where the run still waited on "
                f"{_some(waiting)}: a new run could not wait on "
                f"what the old one started{hint}"
            )
    turn = turns[index]
    at_seq = _first_seq(turn)
    original = events[0]
    assert isinstance(original, WorkflowStarted)
    started = dataclasses.replace(original, run_id=new_run_id)
    kept = [started if e is original else e for e in events if e.seq < at_seq]
    inputs = [started if e is original else e for e in turn.inputs]
    later = [e for t in turns[index + 1 :] for e in t.inputs] + unread
    marker = WorkflowReset(
        from_run_id=original.run_id,
        at_seq=at_seq,
        reason=reason,
        idempotency_run_id=_keys_of(events) or original.run_id,
    )
    return ResetPlan(
        at_seq=at_seq,
        kept=kept,
        inputs=[*inputs, marker],
        signals=[e for e in later if isinstance(e, SignalReceived)],
    )


def _some(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _keys_of(events: list[Event]) -> str | None:
    """The idempotency run of a run that a reset made (its WorkflowReset's)."""
    for e in events:
        if isinstance(e, WorkflowReset):
            return e.idempotency_run_id
    return None
