"""Turns: cutting a stored history into the batches replay feeds, and
numbering the events one new turn appends. Imports events and commands."""

from __future__ import annotations

from dataclasses import dataclass

from perdure._history.commands import Command
from perdure._history.events import *

__all__ = [
    "RecordedTurn",
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
    out: list[Event] = [turn_started(last_seq + 1, time)]
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
