"""History format 2: a turn that begins the history, or begins with an input
right after a command, has no TurnStarted marker (its first input begins it);
only a turn after one that issued no command has one. Replay must cut such a
history into the same turns as the live run made, and keep replaying format
1's histories (a marker on every turn) and histories that mix the two (a run
begun by an older perdure and continued by this one)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from runtime_driver import Driver

from perdure import _history as h
from perdure import activity, workflow
from perdure._converter import default_converter
from perdure._history import events as history_events
from perdure._runtime import replay_history
from perdure._store.eventtext import event_text


@activity.defn
async def greet(name: str) -> str:
    return f"hi {name}"


@workflow.defn
async def steps_then_signals(k: int) -> list[str]:
    for i in range(k):
        await greet(f"n{i}")
    return [await workflow.wait_signal("note") for _ in range(2)]


def _completed(ref: int, result: Any) -> h.ActivityCompleted:
    return h.ActivityCompleted(ref=ref, result=result, attempt=1)


def _kinds(events: list[h.Event]) -> list[str]:
    return [e.TYPE for e in events]


def test_only_turns_after_an_input_are_marked() -> None:
    d = Driver(steps_then_signals, 2)
    d.turn(advance=1.0)  # the first turn: its WorkflowStarted begins it
    d.turn(_completed(1, "hi n0"), advance=1.0)  # after ActivityScheduled: unmarked
    d.turn(_completed(2, "hi n1"), advance=1.0)  # waits for a signal: no command
    d.turn(h.SignalReceived(name="other", payload=1), advance=1.0)  # no command again
    d.turn(h.SignalReceived(name="note", payload="a"), advance=1.0)  # after an input: marked
    d.turn(h.SignalReceived(name="note", payload="b"), advance=1.0)
    assert _kinds(d.history) == [
        "WorkflowStarted",
        "ActivityScheduled",
        "ActivityCompleted",
        "ActivityScheduled",
        "ActivityCompleted",
        "TurnStarted",
        "SignalReceived",
        "TurnStarted",
        "SignalReceived",
        "TurnStarted",
        "SignalReceived",
        "WorkflowCompleted",
    ]
    assert d.result() == ["a", "b"]
    turns = h.split_turns(d.history)
    # Six turns, each with its own time and one input, as they ran.
    assert [t.time for t in turns] == [d.history[0].time + i for i in range(6)]
    assert [t.events_before for t in turns] == [0, 2, 4, 5, 7, 9]
    assert [_kinds(t.inputs) for t in turns] == [
        ["WorkflowStarted"],
        ["ActivityCompleted"],
        ["ActivityCompleted"],
        ["SignalReceived"],
        ["SignalReceived"],
        ["SignalReceived"],
    ]
    assert d.replay().closed


def _as_format_1(history: list[h.Event]) -> list[h.Event]:
    """The same turns with a marker on each (what format 1 wrote), renumbered."""
    out: list[h.Event] = []
    for turn in h.split_turns(history):
        events = h.turn_events(len(out), turn.time, turn.inputs, [], marked=True)
        out += events
        for command in turn.commands:
            out.append(dataclasses.replace(command, seq=len(out) + 1))
    return out


def test_format_1_and_format_2_cut_into_the_same_turns() -> None:
    d = Driver(steps_then_signals, 3)
    d.turn()
    for ref in (1, 2, 3):
        d.turn(_completed(ref, f"hi n{ref - 1}"), advance=0.5)
    d.turn(h.SignalReceived(name="note", payload="x"), h.SignalReceived(name="note", payload="y"))
    old = _as_format_1(d.history)
    # Marked in format 2: only the signals' turn (it follows an input).
    assert _kinds(old).count("TurnStarted") == 5 and _kinds(d.history).count("TurnStarted") == 1
    assert len(old) == len(d.history) + 4

    def shape(history: list[h.Event]) -> list[tuple[float, list[str], list[str]]]:
        return [(t.time, _kinds(t.inputs), _kinds(t.commands)) for t in h.split_turns(history)]

    assert shape(old) == shape(d.history)
    for history in (old, d.history):
        instance = replay_history(steps_then_signals, history, default_converter)
        assert instance.closed
        instance.evict()


def test_a_run_begun_in_format_1_continues_in_format_2() -> None:
    d = Driver(steps_then_signals, 3)
    d.turn()
    d.turn(_completed(1, "hi n0"))
    # An older perdure wrote these first turns, with their markers.
    d.history = _as_format_1(d.history)
    assert _kinds(d.history)[-3:] == ["TurnStarted", "ActivityCompleted", "ActivityScheduled"]
    d.instance = d.replay()  # a worker of this version replays them, then goes on
    d.turn(_completed(2, "hi n1"))
    d.turn(_completed(3, "hi n2"))
    d.turn(h.SignalReceived(name="note", payload="x"), h.SignalReceived(name="note", payload="y"))
    # The two old markers, and the signals' turn (it follows an input).
    assert _kinds(d.history).count("TurnStarted") == 3
    assert d.result() == ["x", "y"]
    assert d.replay().closed


def test_a_history_must_begin_with_an_input_or_a_marker() -> None:
    d = Driver(steps_then_signals, 1)
    d.turn()
    assert _kinds(d.history) == ["WorkflowStarted", "ActivityScheduled"]
    with pytest.raises(h.HistoryFormatError, match="starts with the command ActivityScheduled"):
        h.split_turns(d.history[1:])
    assert len(h.split_turns(_as_format_1(d.history))) == 1  # (a marker first: format 1)


def test_an_older_reader_is_told_to_upgrade(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event of this format says so, as the store writes it: a reader of
    format 1, which would cut an unmarked turn wrongly, refuses the history
    with a clear error instead."""
    d = Driver(steps_then_signals, 1)
    d.turn()
    d.turn(_completed(1, "hi n0"))
    records = [json.loads(event_text(e)) for e in d.history]
    assert {r["v"] for r in records} == {h.HISTORY_FORMAT} == {2}
    monkeypatch.setattr(history_events, "HISTORY_FORMAT", 1)
    with pytest.raises(h.HistoryFormatError, match=r"format v2, newer than .* \(v1\); upgrade"):
        h.event_from_dict(records[-1])
