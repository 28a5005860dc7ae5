"""The history's versioned JSON encoding (``HISTORY_FORMAT``, ``event_to_dict``,
``event_from_dict``, ``field_problem``) and quick constructors for the events
every step makes; re-exports every event class from ``eventtypes``, where they
are defined. Imports only ``eventtypes``. The overview of the history model is
in ``perdure._history``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

from perdure._history.eventtypes import *
from perdure._history.eventtypes import EVENT_TYPES

# The encoding's names and, re-exported, eventtypes' (its classes, CLOSING_EVENTS, JSON).
__all__ = [
    "CLOSING_EVENTS",
    "HISTORY_FORMAT",
    "JSON",
    "MAX_ERROR_TEXT",
    "ActivityCancelled",
    "ActivityCompleted",
    "ActivityFailed",
    "ActivityScheduled",
    "CancelRequested",
    "ChildWorkflowCancelRequested",
    "ChildWorkflowCompleted",
    "ChildWorkflowFailed",
    "ChildWorkflowRequested",
    "ChildWorkflowStartFailed",
    "ChildWorkflowStarted",
    "Event",
    "ExternalCancelDelivered",
    "ExternalCancelFailed",
    "ExternalCancelRequested",
    "ExternalSignalDelivered",
    "ExternalSignalFailed",
    "ExternalSignalRequested",
    "FairnessKeyChanged",
    "HistoryFormatError",
    "PatchRecorded",
    "PriorityChanged",
    "SearchAttributesSet",
    "SideEffectRecorded",
    "SignalReceived",
    "StateSet",
    "StreamClosed",
    "StreamWritten",
    "TimerCancelled",
    "TimerFired",
    "TimerStarted",
    "TurnStarted",
    "UpdateReplied",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowContinuedAsNew",
    "WorkflowFailed",
    "WorkflowReset",
    "WorkflowStarted",
    "WorkflowTerminated",
    "WorkflowTimedOut",
    "activity_completed",
    "attempt_record",
    "event_from_dict",
    "event_to_dict",
    "field_problem",
    "last_error",
    "turn_started",
]

# 2 (session 22): a turn that begins the history, or begins with an input right
# after a command, is written without its TurnStarted marker (see
# turns.split_turns). A reader of format 1 would misread such a history, so it
# refuses format 2's events.
HISTORY_FORMAT = 2


class HistoryFormatError(ValueError):
    """A stored event cannot be read (unknown type, newer format, missing field)."""


MAX_ERROR_TEXT = 500  # characters of an attempt's error message kept in its record


def attempt_record(
    attempt: int, started_at: float, ended_at: float, failure: dict[str, JSON] | None = None
) -> dict[str, JSON]:
    """One activity attempt as ``ActivityCompleted.attempts`` records it:
    ``{"attempt", "started_at", "ended_at", "error"}``, times in epoch seconds and
    ``error`` None (it succeeded) or ``{"type", "message"}`` (no traceback: the
    final failure carries the last one)."""
    error = None
    if failure is not None:
        message = str(failure.get("message", ""))
        if len(message) > MAX_ERROR_TEXT:
            message = message[: MAX_ERROR_TEXT - 1] + "\u2026"
        error = {"type": str(failure.get("type", "")), "message": message}
    return {"attempt": attempt, "started_at": started_at, "ended_at": ended_at, "error": error}


def last_error(attempts: list[dict[str, JSON]]) -> str:
    """How the latest of ``attempts`` (attempt records, oldest first) failed,
    as a clause a timeout's message ends with (``"; attempt 5 failed:
    ConnectionError: still down"``), or "" if none failed: a deadline that
    ends an activity between its retries would otherwise hide why it was
    retrying at all (Temporal's timeout carries the last failure as its cause)."""
    if not attempts or not isinstance(attempts[-1].get("error"), dict):
        return ""
    last = attempts[-1]
    error: Any = last["error"]
    return f"; attempt {last['attempt']} failed: {error.get('type')}: {error.get('message')}"


# Quick constructors for the events every step of every workflow makes (the
# third, ActivityScheduled, is ScheduleActivity.to_event's). A frozen
# dataclass's __init__ sets each field through object.__setattr__, which made
# these three events and the ScheduleActivity command about 5% of a
# concurrent step's instructions; writing the instance's __dict__ at once
# builds the same object. Each names every field of its class
# (tests/runtime/test_quick_events.py holds them to the classes' own).


def turn_started(seq: int, time: float) -> TurnStarted:
    """``TurnStarted(seq=seq, time=time)``."""
    event = object.__new__(TurnStarted)
    event.__dict__.update(seq=seq, time=time)
    return event


def activity_completed(
    ref: int, result: JSON, attempt: int, attempts: list[JSON]
) -> ActivityCompleted:
    """``ActivityCompleted(ref=..., result=..., attempt=..., attempts=...)``, not yet numbered."""
    event = object.__new__(ActivityCompleted)
    event.__dict__.update(
        seq=0, time=0.0, ref=ref, result=result, attempt=attempt, attempts=attempts
    )
    return event


# Field names per event class, computed once (fields() is slow on a hot path).
_FIELDS: dict[type[Event], tuple[str, ...]] = {}

# What a stored field may hold, by its annotation; None: any JSON value.
_ACCEPTS: dict[str, tuple[type, ...] | None] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "str | None": (str, type(None)),
    "list[JSON]": (list,),
    "dict[str, JSON]": (dict,),
    "JSON": None,
}
_CHECKS: dict[type[Event], tuple[tuple[str, tuple[type, ...] | None], ...]] = {}


def _field_checks(cls: type[Event]) -> tuple[tuple[str, tuple[type, ...] | None], ...]:
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = _CHECKS[cls] = tuple((f.name, _ACCEPTS.get(str(f.type))) for f in fields(cls))
    return checks


_DEFAULTS: dict[type[Event], tuple[tuple[str, Any, Callable[[], Any] | None], ...]] = {}


def _field_defaults(cls: type[Event]) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...]:
    """(name, default, default factory) of each field, in order."""
    found = _DEFAULTS.get(cls)
    if found is None:
        found = _DEFAULTS[cls] = tuple(
            (f.name, f.default, None if f.default_factory is MISSING else f.default_factory)
            for f in fields(cls)
        )
    return found


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


def event_to_dict(event: Event) -> dict[str, JSON]:
    out: dict[str, JSON] = {"v": HISTORY_FORMAT, "type": event.TYPE}
    for name in _field_names(type(event)):
        out[name] = getattr(event, name)
    for name in event.OPTIONAL:
        if not out[name]:
            del out[name]
    return out


def field_problem(event: Event) -> str | None:
    """Why ``event`` could not be read back (event_from_dict refuses a field
    whose value is not of its annotated type), or None: checked before an
    event from outside (a client's signal, a cancel's reason) is written, so
    that nothing unreadable reaches a run's inbox and stalls the run."""
    for name, accepts in _field_checks(type(event)):
        value = getattr(event, name)
        if accepts is not None and (not isinstance(value, accepts) or isinstance(value, bool)):
            return (
                f"{event.TYPE} event field {name!r} would hold {type(value).__name__} "
                f"{value!r:.60}, not {' or '.join(t.__name__ for t in accepts)}"
            )
    return None


def event_from_dict(data: dict[str, JSON]) -> Event:
    try:
        version = int(data.get("v", 1))
        type_name = data["type"]
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryFormatError(f"event record has no valid 'type'/'v': {data!r:.200}") from exc
    if version > HISTORY_FORMAT:
        raise HistoryFormatError(
            f"event {type_name!r} uses history format v{version}, newer than this "
            f"perdure understands (v{HISTORY_FORMAT}); upgrade perdure"
        )
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise HistoryFormatError(f"unknown event type {type_name!r}")
    for name, accepts in _field_checks(cls):
        value = data.get(name)
        if (
            name in data
            and accepts is not None
            and (not isinstance(value, accepts) or isinstance(value, bool))
        ):
            raise HistoryFormatError(
                f"{type_name} event field {name!r} holds {type(value).__name__} {value!r:.60}, "
                f"not {' or '.join(t.__name__ for t in accepts)}"
            )
    # Built as the quick constructors above build (a replay reads every event
    # of a history): each field from the record, or its default.
    event = object.__new__(cls)
    store = event.__dict__
    for name, default, factory in _field_defaults(cls):
        if name in data:
            store[name] = data[name]
        elif factory is not None:
            store[name] = factory()
        elif default is not MISSING:
            store[name] = default
        else:
            raise HistoryFormatError(f"malformed {type_name} event: no {name!r}")
    return event
