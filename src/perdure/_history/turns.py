"""Turns: cutting a stored history into the batches replay feeds, and
numbering the events one new turn appends. Imports events and commands."""

from __future__ import annotations

from dataclasses import dataclass

from perdure._history.commands import Command
from perdure._history.events import *

__all__ = [
    "RecordedTurn",
    "needs_marker",
    "split_turns",
    "turn_events",
]


@dataclass
class RecordedTurn:
    """One turn of a stored history: its time, its inputs and its commands."""

    time: float
    inputs: list[Event]
    commands: list[Event]
    events_before: int = 0  # history length when the turn began


def split_turns(events: list[Event]) -> list[RecordedTurn]:
    """Cut a history into turns. A turn begins at a ``TurnStarted`` marker, or
    (history format 2) at an input that begins the history or comes right
    after a command: inputs come before commands within a turn, so such an
    input can only begin a turn, whose time every one of its events carries.
    Raises HistoryFormatError on a malformed history."""
    turns: list[RecordedTurn] = []
    turn: RecordedTurn | None = None
    for event in events:
        if isinstance(event, (WorkflowTerminated, WorkflowTimedOut)):
            break
        marker = isinstance(event, TurnStarted)
        if marker or (event.KIND == "input" and (turn is None or turn.commands)):
            # A turn begins here (unmarked: at its first input).
            turn = RecordedTurn(
                time=event.time, inputs=[], commands=[], events_before=event.seq - 1
            )
            turns.append(turn)
        if marker:
            continue
        if turn is None:  # (an input would have begun one)
            raise HistoryFormatError(
                f"history starts with the command {event.TYPE} (seq {event.seq}), "
                f"not with an input or TurnStarted"
            )
        (turn.inputs if event.KIND == "input" else turn.commands).append(event)
    return turns


def needs_marker(events: list[Event]) -> bool:
    """Whether the next turn of a history needs a ``TurnStarted`` marker: only
    where the history so far ends in an input (a turn that issued no command),
    since an input that begins the history or follows a command begins a turn
    by itself (see split_turns)."""
    return bool(events) and events[-1].KIND != "command"


def turn_events(
    last_seq: int,
    time: float,
    inputs: list[Event],
    commands: list[Command],
    marked: bool = True,
) -> list[Event]:
    """The events one turn appends: its marker (if ``marked``: see
    needs_marker; a turn without an input always has one), its inputs, then
    its commands, numbered from ``last_seq + 1`` and stamped with the turn's
    time. Unmarked, a step of a sequential workflow writes two events, not
    three."""
    out: list[Event] = [turn_started(last_seq + 1, time)] if marked or not inputs else []
    for event in inputs:  # shared with the caller: copies (what dataclasses.replace
        # makes, for a tenth of its cost: events have no __post_init__ or slots)
        copy = object.__new__(type(event))
        copy.__dict__.update(event.__dict__, seq=last_seq + len(out) + 1, time=time)
        out.append(copy)
    for command in commands:
        event = command.to_event()  # a new event of this turn's own: stamped in place
        object.__setattr__(event, "seq", last_seq + len(out) + 1)
        object.__setattr__(event, "time", time)
        out.append(event)
    return out
