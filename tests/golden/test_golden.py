"""Golden histories recorded by earlier builds must keep replaying unchanged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import golden_workflows as g
import pytest

from perdure import _history as h
from perdure._converter import default_converter
from perdure._runtime import replay_history
from perdure._schedule_workflow import schedule_workflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
BY_TYPE = {fn.__name__: fn for fn in g.WORKFLOWS}
BY_TYPE["perdure.schedule"] = schedule_workflow  # (built in: every worker runs it)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_golden_history_replays(path: Path) -> None:
    events = [h.event_from_dict(e) for e in json.loads(path.read_text())]
    started = next(e for e in events if isinstance(e, h.WorkflowStarted))
    instance = replay_history(BY_TYPE[started.workflow_type], events, default_converter)
    # Every recorded turn replayed, ending in the recorded closing command.
    assert instance.closed
    assert isinstance(events[-1], h.CLOSING_EVENTS)


@pytest.mark.parametrize("version", range(1, h.HISTORY_FORMAT + 1))
def test_there_are_golden_histories_of_every_format(version: int) -> None:
    """Each format's histories, as recorded (``record.py``); format 2 writes
    a marker only before a turn that follows an input."""
    mine = [p for p in HISTORIES if p.stem.endswith(f"_v{version}")]
    assert len(mine) >= 3
    for path in mine:
        records = json.loads(path.read_text())
        assert {r["v"] for r in records} == {version}
        events = [h.event_from_dict(r) for r in records]
        # Markers a history needs: before a turn that follows an input.
        unneeded = [
            e.seq
            for index, e in enumerate(events)
            if isinstance(e, h.TurnStarted) and not h.needs_marker(events[:index])
        ]
        assert bool(unneeded) == (version == 1), (path.name, unneeded)


def test_a_history_from_a_newer_format_is_refused_clearly() -> None:
    record = json.loads(HISTORIES[0].read_text())[0]
    record["v"] = h.HISTORY_FORMAT + 1
    with pytest.raises(h.HistoryFormatError, match="newer than this perdure"):
        h.event_from_dict(record)


def test_unknown_fields_from_the_future_are_ignored() -> None:
    record = json.loads(HISTORIES[0].read_text())[1]
    record["added_in_a_later_release"] = 1
    assert record["type"] == h.event_from_dict(record).TYPE


@pytest.mark.parametrize("path", [p for p in HISTORIES if p.stem.startswith("activity_attempts")])
def test_activity_outcomes_carry_their_attempts(path: Path) -> None:
    """Recorded with per-attempt records: a success on the third attempt and a
    failure after three; the last record is the attempt the event names."""
    events = [h.event_from_dict(e) for e in json.loads(path.read_text())]
    done = [e for e in events if isinstance(e, (h.ActivityCompleted, h.ActivityFailed))]
    assert [type(e).__name__ for e in done] == ["ActivityCompleted", "ActivityFailed"]
    for event in done:
        assert [a["attempt"] for a in event.attempts] == [1, 2, 3] == [*range(1, event.attempt + 1)]
        for a in event.attempts:
            assert a["started_at"] <= a["ended_at"] <= event.time
    assert [a["error"] for a in done[0].attempts][2] is None
    assert {a["error"]["type"] for a in done[1].attempts} == {"ConnectionError"}


def test_events_recorded_before_attempts_were_kept_decode_with_none() -> None:
    for path in HISTORIES:
        for record in json.loads(path.read_text()):
            if (
                record["type"] in ("ActivityCompleted", "ActivityFailed")
                and "attempts" not in record
            ):
                event = h.event_from_dict(record)
                assert event.attempts == []  # type: ignore[attr-defined]
                rewritten = {**record, "v": h.HISTORY_FORMAT, "attempts": []}
                assert h.event_to_dict(event) == rewritten


def test_attempt_records_round_trip_and_are_checked() -> None:
    records = [
        h.attempt_record(1, 1.0, 2.0, {"type": "E", "message": "x" * 900}),
        h.attempt_record(2, 3.0, 4.0),
    ]
    assert len(records[0]["error"]["message"]) == h.MAX_ERROR_TEXT  # type: ignore[index]
    event = h.ActivityCompleted(ref=1, result=5, attempt=2, attempts=records)
    assert h.event_from_dict(h.event_to_dict(event)) == event
    old = {"v": 1, "type": "ActivityFailed", "seq": 4, "time": 1.0, "ref": 1, "attempt": 3}
    assert h.event_from_dict(old) == h.ActivityFailed(ref=1, attempt=3, seq=4, time=1.0)
    with pytest.raises(h.HistoryFormatError, match="'attempts' holds str"):
        h.event_from_dict({**old, "attempts": "three"})


def _event_classes(cls: type[h.Event] = h.Event) -> list[type[h.Event]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_event_classes(sub)]
    return found


@pytest.mark.parametrize("cls", [c for c in _event_classes() if c.KIND == "input"])
def test_a_turn_records_copies_of_its_inputs_renumbered(cls: type[h.Event]) -> None:
    # turn_events copies an input through its __dict__: what dataclasses.replace
    # gives only while no event class has __slots__ or a __post_init__.
    assert "__slots__" not in vars(cls) and not hasattr(cls, "__post_init__")
    event = cls(seq=3, time=1.5)
    [marker, copy] = h.turn_events(10, 9.0, [event], [])
    assert marker == h.TurnStarted(seq=11, time=9.0)
    assert copy == dataclasses.replace(event, seq=12, time=9.0)
    assert type(copy) is cls and copy is not event
    assert (event.seq, event.time) == (3, 1.5)  # the caller's event is left alone


def test_the_golden_search_attributes_replay_to_what_the_run_returned() -> None:
    """The run returned workflow.info().search_attributes: a replay of its
    history (the start's, then each SearchAttributesSet) arrives at them."""
    path = Path(__file__).parent / "histories" / "search_attributes_v2.json"
    events = [h.event_from_dict(e) for e in json.loads(path.read_text())]
    instance = replay_history(g.golden_tagged, events, default_converter)
    assert instance.search_attributes == events[-1].result  # type: ignore[attr-defined]
    assert instance.search_attributes == {
        "region": "eu",
        "order": "o-9",
        "stage": "charged",
        "amount": 10,
        "ratio": 0.5,
    }


def test_a_recorded_priority_reaches_the_replayed_run() -> None:
    """The run's priority comes from its WorkflowStarted, on replay too; a
    run that recorded none has the default."""
    by_name = {p.stem: p for p in HISTORIES}
    for name, priority in (
        ("priority_v2", 2),
        ("order_approved_v1", 3),
        ("priority_changed_v2", 2),  # (started at 4, then changed)
    ):
        events = [h.event_from_dict(e) for e in json.loads(by_name[name].read_text())]
        started = next(e for e in events if isinstance(e, h.WorkflowStarted))
        instance = replay_history(BY_TYPE[started.workflow_type], events, default_converter)
        assert instance.info is not None and instance.info.priority == priority
