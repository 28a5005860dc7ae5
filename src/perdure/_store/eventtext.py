"""An event's stored JSON text, written field by field.

``event_text(event)`` is exactly ``dumps(event_to_dict(event))``, the text
that has always been stored, for half the cost (7.3 against 14.6 µs per
event, measured inside the concurrent benchmark): no intermediate dict, the
header and the keys are constant text, and the common values (strings,
integers, floats, None, empty containers) are written directly. Anything else
goes through the store's encoder. The three events of every step are written
by hand; the others by a writer built once per class.

An ``ActivityScheduled`` carries its activity's options, one dict shared by
every call of that activity (built once per options object and never changed:
``ActivityFunction._options_json``). Its text is remembered by identity.
Imports the history model, the JSON encoder and the identity memo.
"""

from __future__ import annotations

import json.encoder
import math
import operator
from collections.abc import Callable
from typing import Any

from perdure import _history as h
from perdure._history.events import _field_names
from perdure._json import encoder
from perdure._memo import by_identity

__all__ = ["dumps", "event_text"]

# The store's one JSON encoder for every row (sqlrows re-exports it): json.dumps
# with options would build a new encoder per call.
dumps = encoder(ensure_ascii=False)

# The C function the store's encoder uses for strings (ensure_ascii=False).
_string: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)
_int = int.__repr__
_float = float.__repr__

_MEMO_SIZE = 256


# Floats: the times of a turn's events are one value, an inline attempt ends
# at its next turn's time and began at the previous one's, and writing a
# float's shortest form (about 1 µs) is the most costly part of a small event.
# The texts of the latest 1,024 to 2,048 are kept: the current generation, and
# the one before it (a turn's time is needed again one turn later, after as
# many other turns as there are attempts in flight). (Zero is never kept:
# -0.0 equals 0.0 as a key.)
_FLOATS_SIZE = 1024
_floats: dict[float, str] = {}
_older_floats: dict[float, str] = {}


def _float_text(value: float) -> str:
    global _floats, _older_floats
    text = _older_floats.get(value)
    if text is None:
        text = _float(value)
    if len(_floats) >= _FLOATS_SIZE:
        _older_floats, _floats = _floats, {}
    _floats[value] = text
    return text


def _value(value: Any) -> str:
    kind = type(value)
    if kind is int:
        return _int(value)
    if kind is float and value and math.isfinite(value):
        return _floats.get(value) or _float_text(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if not value and (kind is dict or kind is list):
        return "{}" if kind is dict else "[]"
    return dumps(value)  # bools, NaN, zero, containers, subclasses: as the encoder writes them


# The options dicts' texts, by identity (see the module docstring).
_options_text = by_identity(_value, _MEMO_SIZE)


def _shared(value: Any) -> str:
    return _value(value) if type(value) is not dict else _options_text(value)


_Writer = Callable[[h.Event], str]


def _writer(cls: type[h.Event]) -> _Writer:
    """A function writing one event class: one C call reads every field, and
    one %-format puts their texts between the constant header and keys."""
    names = _field_names(cls)
    if cls.OPTIONAL:
        # Written only when set (see Event.OPTIONAL): the template covers the
        # event without them; one that holds any goes the general way.
        fast = _writer_of(cls, tuple(n for n in names if n not in cls.OPTIONAL))
        optional = operator.attrgetter(*cls.OPTIONAL)
        if len(cls.OPTIONAL) == 1:
            return lambda event: dumps(h.event_to_dict(event)) if optional(event) else fast(event)
        return lambda event: dumps(h.event_to_dict(event)) if any(optional(event)) else fast(event)
    return _writer_of(cls, names)


def _writer_of(cls: type[h.Event], names: tuple[str, ...]) -> _Writer:
    template = f'{{"v":{h.HISTORY_FORMAT},"type":{_string(cls.TYPE)}'
    for name in names:
        template += f",{_string(name)}:%s"  # (names and types are identifiers: no %)
    template += "}"
    read = operator.attrgetter(*names)  # (every event has seq and time: a tuple)
    return lambda event: template % tuple(map(_value, read(event)))


# The events of every step, written out by hand (tests/store/test_event_text.py
# holds them to the generic writer's text for every field). The fields that
# hold an int or a str (whatever else a test may put there) are written inline,
# not through a call of _value each.
_V = h.HISTORY_FORMAT


def _turn_started(e: h.TurnStarted) -> str:
    seq = e.seq
    return (
        f'{{"v":{_V},"type":"TurnStarted",'
        f'"seq":{_int(seq) if type(seq) is int else _value(seq)},"time":{_value(e.time)}}}'
    )


def _activity_scheduled(e: h.ActivityScheduled) -> str:
    seq, ref, name, queue = e.seq, e.ref, e.name, e.task_queue
    return (
        f'{{"v":{_V},"type":"ActivityScheduled",'
        f'"seq":{_int(seq) if type(seq) is int else _value(seq)},"time":{_value(e.time)},'
        f'"ref":{_int(ref) if type(ref) is int else _value(ref)},'
        f'"name":{_string(name) if type(name) is str else _value(name)},'
        f'"task_queue":{_string(queue) if type(queue) is str else _value(queue)},'
        f'"args":{_value(e.args)},"kwargs":{_value(e.kwargs)},"options":{_shared(e.options)}}}'
    )


def _activity_completed(e: h.ActivityCompleted) -> str:
    seq, ref, attempt = e.seq, e.ref, e.attempt
    return (
        f'{{"v":{_V},"type":"ActivityCompleted",'
        f'"seq":{_int(seq) if type(seq) is int else _value(seq)},"time":{_value(e.time)},'
        f'"ref":{_int(ref) if type(ref) is int else _value(ref)},"result":{_value(e.result)},'
        f'"attempt":{_int(attempt) if type(attempt) is int else _value(attempt)},'
        f'"attempts":{_attempts(e.attempts)}}}'
    )


_ATTEMPT_KEYS = ("attempt", "started_at", "ended_at", "error")


def _attempts(records: Any) -> str:
    """An outcome's attempt records (``h.attempt_record``'s dicts): written
    here, so that their times come from the kept floats; anything of another
    shape as the encoder writes it."""
    if type(records) is not list:
        return _value(records)
    texts = []
    for record in records:
        if type(record) is not dict or tuple(record) != _ATTEMPT_KEYS:
            return _value(records)
        texts.append(
            f'{{"attempt":{_value(record["attempt"])},"started_at":{_value(record["started_at"])},'
            f'"ended_at":{_value(record["ended_at"])},"error":{_value(record["error"])}}}'
        )
    return f"[{','.join(texts)}]"


_WRITERS: dict[type[h.Event], _Writer] = {
    h.TurnStarted: _turn_started,  # type: ignore[dict-item]
    h.ActivityScheduled: _activity_scheduled,  # type: ignore[dict-item]
    h.ActivityCompleted: _activity_completed,  # type: ignore[dict-item]
}


def event_text(event: h.Event) -> str:
    """The stored JSON of ``event``: the same text as ``dumps(event_to_dict(event))``."""
    cls = type(event)
    write = _WRITERS.get(cls)
    if write is None:
        write = _WRITERS[cls] = _writer(cls)
    return write(event)
