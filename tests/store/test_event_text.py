"""The store writes each event with perdure._store.eventtext: the text must be
exactly what encoding the event's dict writes (the format every stored
history has), for every event class and every value a field can hold."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure import _history as h
from perdure._history.events import EVENT_TYPES
from perdure._store import eventtext
from perdure._store.base import TurnCommit
from perdure._store.eventtext import event_text
from perdure._store.sqlrows import dumps
from perdure._store.sqlturn import encode_turn


class Name(str):
    """A str subclass: written as its base type, as the encoder does."""


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from([0.0, -0.0, math.inf, -math.nan, 1e300])
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)
# Whatever a field holds (the classes do not check their own fields), each
# kind of value the writer treats on its own, and anything JSON.
field_values = (
    json_values
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text().map(Name)
    | st.just({})
    | st.just([])
)


@st.composite
def events(draw: st.DrawFn) -> h.Event:
    cls = draw(st.sampled_from(sorted(EVENT_TYPES.values(), key=lambda c: c.TYPE)))
    values = {f.name: draw(field_values) for f in dataclasses.fields(cls)}
    return cls(**values)


@given(event=events())
def test_every_event_is_written_as_its_dict_would_be(event: h.Event) -> None:
    assert event_text(event) == dumps(h.event_to_dict(event))


@pytest.mark.parametrize("cls", sorted(EVENT_TYPES.values(), key=lambda c: c.TYPE))
def test_every_field_of_every_class_is_written(cls: type[h.Event]) -> None:
    # Distinct values in every field: a writer that forgot or swapped one
    # (a hand-written one, after a field was added) differs.
    values = {f.name: f"value of {f.name}" for f in dataclasses.fields(cls)}
    event = cls(**values)  # type: ignore[arg-type]
    assert event_text(event) == dumps(h.event_to_dict(event))


# Each kind of value the hand-written writers tell apart, or might confuse.
TRICKY_VALUES: list[Any] = [
    True,
    False,
    0,
    -(2**70),
    1.5,
    -0.0,
    math.nan,
    math.inf,
    None,
    "",
    "é\n",
    Name("n"),
    {},
    [],
    {"a": [1, None]},
]


@pytest.mark.parametrize("cls", [h.TurnStarted, h.ActivityScheduled, h.ActivityCompleted])
@pytest.mark.parametrize("value", TRICKY_VALUES, ids=repr)
def test_each_field_of_a_step_s_events_takes_any_value(cls: type[h.Event], value: Any) -> None:
    # The events of every step have writers of their own (written by hand):
    # each field, in turn, holds each kind of value.
    for name in (f.name for f in dataclasses.fields(cls)):
        values = {f.name: f"value of {f.name}" for f in dataclasses.fields(cls)}
        values[name] = value
        event = cls(**values)  # type: ignore[arg-type]
        assert event_text(event) == dumps(h.event_to_dict(event)), name


def _scheduled(options: dict[str, Any]) -> h.ActivityScheduled:
    return h.ActivityScheduled(seq=3, time=1.5, ref=1, name="step", args=[1], options=options)


def test_the_options_text_is_kept_for_the_same_dict_only() -> None:
    options = {"retry": {"max_attempts": 3}, "start_to_close_timeout": 2.5}
    first = event_text(_scheduled(options))
    assert event_text(_scheduled(options)) == first
    assert '"options":{"retry":{"max_attempts":3},"start_to_close_timeout":2.5}' in first
    # An equal-looking dict built anew, or another one, is written from its own value.
    assert event_text(_scheduled({"start_to_close_timeout": 9.0})).endswith(
        '"options":{"start_to_close_timeout":9.0}}'
    )


def test_a_freed_options_dict_cannot_lend_its_text_to_a_new_one() -> None:
    # The memo keeps a reference, so a new dict never gets a remembered one's id.
    # (Reference counting frees an unkept dict at once, and CPython's allocator
    # hands its memory, and so its id, to the next dict of its size: no
    # collection is needed, and 512 full ones took minutes in a large process.)
    for i in range(2 * eventtext._MEMO_SIZE):
        event_text(_scheduled({"n": i}))
        fresh = {"n": -i}
        assert event_text(_scheduled(fresh)).endswith(f'"options":{{"n":{-i}}}}}')
    assert len(eventtext._options_text.known) <= eventtext._MEMO_SIZE  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "attempts",
    [
        [h.attempt_record(1, 1796121606.2865493, 1796121606.2866)],
        [
            h.attempt_record(1, 1.5, 2.5, {"type": "E", "message": "é\n\ud800"}),
            h.attempt_record(2, 3.0, 4, None),
        ],
        [{"attempt": 1, "ended_at": 2.0, "started_at": 1.0, "error": None}],  # another order
        [{"attempt": 1, "started_at": 1.0, "ended_at": 2.0, "error": None, "more": 1}],
        [{"attempt": True, "started_at": math.nan, "ended_at": -0.0, "error": []}],
        [None],
        ({"attempt": 1, "started_at": 1.0, "ended_at": 2.0, "error": None},),
        [],
    ],
    ids=repr,
)
def test_attempt_records_are_written_as_the_encoder_would(attempts: Any) -> None:
    event = h.ActivityCompleted(seq=2, time=1.5, ref=1, result=None, attempts=attempts)
    assert event_text(event) == dumps(h.event_to_dict(event))


def test_kept_floats_are_written_exactly() -> None:
    times = [1796121606.2865493, 0.1 + 0.2, 1e-310, 5e-324, 2.0**60, -1.5]
    for _ in range(2):  # the second round reads them from the memo
        for t in times:
            assert event_text(h.TurnStarted(seq=1, time=t)) == dumps(
                {"v": h.HISTORY_FORMAT, "type": "TurnStarted", "seq": 1, "time": t}
            )
    # Through several generations of the kept texts, each still its own float's.
    many = [1796121606.0 + i / 7 for i in range(3 * eventtext._FLOATS_SIZE)]
    for _ in range(2):
        for t in many:
            assert event_text(h.TurnStarted(seq=1, time=t)).endswith(f'"time":{t!r}}}')
    assert len(eventtext._floats) <= eventtext._FLOATS_SIZE
    assert len(eventtext._older_floats) <= eventtext._FLOATS_SIZE
    assert event_text(h.TurnStarted(seq=1, time=-0.0)).endswith('"time":-0.0}')
    assert event_text(h.TurnStarted(seq=1, time=0.0)).endswith('"time":0.0}')


@pytest.mark.parametrize(
    ("state", "waiting"),
    [
        ({}, {"signals": []}),  # the common turn: both texts written as kept
        ({"stage": "paid"}, {"signals": ["approve"]}),
        ({}, {"signals": [], "more": 1}),
    ],
)
def test_a_turn_s_state_and_waiting_are_written_as_encoded(
    state: dict[str, Any], waiting: dict[str, Any]
) -> None:
    commit = TurnCommit(
        task=None,
        run_id="r",
        expected_version=0,
        events=[],
        consumed_inbox=[],
        state=state,
        waiting=waiting,
    )
    encoded = encode_turn(commit)
    assert (encoded.state, encoded.waiting) == (dumps(state), dumps(waiting))
