"""The quick constructors of the events (and the command) every step makes
build exactly what the classes' own constructors build: the same type, every
field and no other, still frozen. A field added to one of these classes
fails here until its quick constructor names it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from perdure import _history as h
from perdure._history.events import EVENT_TYPES

OPTIONS = {"retry": {"max_attempts": 3}, "start_to_close_timeout": 2.5}

CASES: list[tuple[Callable[..., Any], type[Any], dict[str, Any]]] = [
    (h.turn_started, h.TurnStarted, {"seq": 7, "time": 1796185421.25}),
    (
        h.activity_completed,
        h.ActivityCompleted,
        {"ref": 3, "result": {"i": 2, "ok": True}, "attempt": 2, "attempts": [{"attempt": 1}]},
    ),
    (
        h.schedule_activity,
        h.ScheduleActivity,
        {
            "ref": 4,
            "name": "charge",
            "task_queue": "payments",
            "args": [1, "a"],
            "kwargs": {"k": None},
            "options": OPTIONS,
        },
    ),
]


def _name(case: Any) -> str:
    return getattr(case, "__name__", "")


@pytest.mark.parametrize(("quick", "cls", "values"), CASES, ids=_name)
def test_a_quick_constructor_builds_what_the_class_builds(
    quick: Callable[..., Any], cls: type[Any], values: dict[str, Any]
) -> None:
    made = quick(**values)
    expected = cls(**values)
    assert type(made) is cls
    assert made == expected
    assert vars(made) == vars(expected)  # every field, the defaults included, nothing more
    assert set(vars(made)) == {f.name for f in dataclasses.fields(cls)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.ref = 99


def test_the_scheduled_event_of_a_command_is_the_classes_own() -> None:
    command = h.ScheduleActivity(4, "charge", "payments", [1], {}, OPTIONS)
    event = command.to_event()
    expected = h.ActivityScheduled(
        ref=4, name="charge", task_queue="payments", args=[1], kwargs={}, options=OPTIONS
    )
    assert type(event) is h.ActivityScheduled
    assert event == expected
    assert vars(event) == vars(expected)  # every field, and no other
    assert h.matches(command, event)


def _value_of(annotation: str, name: str, index: int) -> Any:
    if annotation == "int":
        return index + 1
    if annotation == "float":
        return index + 0.5
    if annotation.startswith("list"):
        return [name]
    if annotation.startswith("dict") or annotation == "JSON":
        return {name: index}
    return f"value of {name}"  # str, str | None


@pytest.mark.parametrize("cls", sorted(EVENT_TYPES.values(), key=lambda c: c.TYPE), ids=_name)
def test_a_decoded_event_is_what_the_class_builds(cls: type[h.Event]) -> None:
    # Distinct values of each field's type: a field the decoder skipped or swapped differs.
    values = {
        f.name: _value_of(str(f.type), f.name, index)
        for index, f in enumerate(dataclasses.fields(cls))
    }
    event = cls(**values)  # type: ignore[arg-type]
    decoded = h.event_from_dict(h.event_to_dict(event))
    assert type(decoded) is cls
    assert decoded == event
    assert vars(decoded) == vars(event)
    # Absent fields take their defaults, and a default container is each event's own.
    bare = h.event_from_dict({"v": 1, "type": cls.TYPE})
    assert vars(bare) == vars(cls())
    again = h.event_from_dict({"v": 1, "type": cls.TYPE})
    for name, value in vars(bare).items():
        if isinstance(value, (list, dict)):
            assert value is not getattr(again, name)


def test_every_event_class_is_exported_by_the_encoding_and_the_package() -> None:
    """``events`` lists ``eventtypes``' names in its own ``__all__`` (mypy
    cannot follow one built from the other): a class added to one only is
    caught here, as is one missing from the registry."""
    from perdure._history import events, eventtypes

    assert set(eventtypes.__all__) <= set(events.__all__)
    assert set(eventtypes.__all__) <= set(h.__all__)
    found = [getattr(eventtypes, name) for name in eventtypes.__all__]
    classes = {
        c.__name__
        for c in found
        if isinstance(c, type) and issubclass(c, h.Event) and c is not h.Event
    }
    assert classes == {cls.__name__ for cls in EVENT_TYPES.values()}
