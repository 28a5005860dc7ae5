"""Golden histories recorded by earlier builds must keep replaying unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import golden_workflows as g
import pytest

from perdure import _history as h
from perdure._converter import default_converter
from perdure._runtime import replay_history

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
BY_TYPE = {fn.__name__: fn for fn in g.WORKFLOWS}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_golden_history_replays(path: Path) -> None:
    events = [h.event_from_dict(e) for e in json.loads(path.read_text())]
    started = next(e for e in events if isinstance(e, h.WorkflowStarted))
    instance = replay_history(BY_TYPE[started.workflow_type], events, default_converter)
    # Every recorded turn replayed, ending in the recorded closing command.
    assert instance.closed
    assert isinstance(events[-1], h.CLOSING_EVENTS)


def test_there_are_golden_histories() -> None:
    assert len(HISTORIES) >= 3


def test_a_history_from_a_newer_format_is_refused_clearly() -> None:
    record = json.loads(HISTORIES[0].read_text())[0]
    record["v"] = h.HISTORY_FORMAT + 1
    with pytest.raises(h.HistoryFormatError, match="newer than this perdure"):
        h.event_from_dict(record)


def test_unknown_fields_from_the_future_are_ignored() -> None:
    record = json.loads(HISTORIES[0].read_text())[1]
    record["added_in_a_later_release"] = 1
    assert record["type"] == h.event_from_dict(record).TYPE
