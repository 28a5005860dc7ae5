"""The names the public API is given: a task queue or an id is a non-empty
string of valid Unicode, without NUL (which PostgreSQL's text cannot hold),
of at most 2,000 bytes (which its indexes can).
An empty one had quietly meant the default (a new random id, the parent's
queue), which hides a bug in the caller: a start meant to be idempotent,
with an id built from a value that came out empty, started a new run every
time. And a delay is a timedelta or a number of seconds.
The standard library only.
"""

from __future__ import annotations

import numbers
from datetime import timedelta

__all__ = [
    "BUILD_SEP",
    "MAX_BUILD_BYTES",
    "MAX_NAME_BYTES",
    "BadName",
    "build_problem",
    "check_build",
    "check_name",
    "check_queue",
    "check_text",
    "delay_seconds",
    "lone_surrogate",
    "name_problem",
    "queue_problem",
    "timeout_seconds",
]


# The longest id, task queue or type name, in UTF-8 bytes: a PostgreSQL
# index row holds at most 2,704 bytes, the name's and its other columns'.
# (Temporal's default is 1,000.)
MAX_NAME_BYTES = 2000

# A worker's build id is at most this long (a run pinned to a build has its
# workflow tasks in the queue "<task queue>U+001F<build id>", and that name
# too must fit an index row).
MAX_BUILD_BYTES = 200
# Between a queue's name and a build id (see perdure._store.records.turn_queue):
# no task queue's name may hold it, so no queue's name is another's pinned one.
BUILD_SEP = "\x1f"


class BadName(ValueError):
    """A name or text the public API refuses (the HTTP API answers 422 for it,
    not 500: it is the caller's input, not a fault of the server)."""


def name_problem(
    option: str, value: object, none_means: str | None = None, in_json: bool = False
) -> str | None:
    """Why ``value`` cannot be ``option``, or None if it can: a non-empty
    string, or None where ``none_means`` says what None stands for. A name
    the store keeps in a column of its own (and an index) must not hold NUL
    and is at most MAX_NAME_BYTES long; ``in_json`` for one kept only inside
    JSON (which escapes NUL)."""
    if isinstance(value, str) and value:
        lone = lone_surrogate(value)
        if lone is not None:
            return f"{option} must be valid Unicode text: it {lone}"
        if in_json:
            return None
        # PostgreSQL's text cannot hold NUL, nor its indexes a long name:
        # refused on SQLite too, so that what works on one works on the other.
        if "\x00" in value:
            return (
                f"{option} must not hold the NUL character (at index {value.index(chr(0))}):"
                " PostgreSQL cannot store it"
            )
        if len(value) > MAX_NAME_BYTES // 4 and len(value.encode()) > MAX_NAME_BYTES:
            return (
                f"{option} must be at most {MAX_NAME_BYTES:,} bytes long in UTF-8,"
                f" not {len(value.encode()):,} (starting {value[:40]!r})"
            )
        return None
    if value is None and none_means is not None:
        return None
    alternative = f" (or None for {none_means})" if none_means is not None else ""
    return f"{option} must be a non-empty string{alternative}, not {value!r}"


def queue_problem(option: str, value: object, none_means: str | None = None) -> str | None:
    """name_problem for a task queue's name, which must not hold BUILD_SEP."""
    problem = name_problem(option, value, none_means)
    if problem is None and isinstance(value, str) and BUILD_SEP in value:
        return (
            f"{option} must not hold the control character U+001F (at index"
            f" {value.index(BUILD_SEP)}): perdure puts it between a queue and a build id"
        )
    return problem


def check_queue(option: str, value: object, none_means: str | None = None) -> None:
    """Raise ValueError unless ``value`` can be a task queue's name (queue_problem)."""
    problem = queue_problem(option, value, none_means)
    if problem is not None:
        raise BadName(problem)


def build_problem(option: str, value: object, none_means: str | None = None) -> str | None:
    """name_problem for a worker's build id, at most MAX_BUILD_BYTES long."""
    problem = name_problem(option, value, none_means)
    if problem is None and isinstance(value, str) and len(value.encode()) > MAX_BUILD_BYTES:
        return (
            f"{option} must be at most {MAX_BUILD_BYTES} bytes long in UTF-8,"
            f" not {len(value.encode()):,} (starting {value[:40]!r})"
        )
    return problem


def check_build(option: str, value: object, none_means: str | None = None) -> None:
    """Raise ValueError unless ``value`` can be a build id (build_problem)."""
    problem = build_problem(option, value, none_means)
    if problem is not None:
        raise BadName(problem)


def check_name(
    option: str, value: object, none_means: str | None = None, in_json: bool = False
) -> None:
    """Raise ValueError unless ``value`` can be ``option`` (see name_problem)."""
    problem = name_problem(option, value, none_means, in_json)
    if problem is not None:
        raise BadName(problem)


def delay_seconds(delay: object) -> float:
    """A delay's seconds: ``delay`` is a timedelta or a number of seconds
    (a string, which ``float()`` had read, or a bool raises TypeError)."""
    if isinstance(delay, timedelta):
        return delay.total_seconds()
    if isinstance(delay, bool) or not isinstance(delay, numbers.Real):
        raise TypeError(
            f"a delay is a timedelta or a number of seconds, not {type(delay).__name__} {delay!r}"
        )
    return float(delay)


def timeout_seconds(timeout: object) -> float:
    """A wait's timeout in seconds: a number, at least 0 (TypeError for
    another type or a bool, ValueError for a negative one or NaN)."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(
            f"timeout must be a number of seconds, not {type(timeout).__name__} {timeout!r}"
        )
    seconds = float(timeout)
    if not seconds >= 0:  # (NaN too)
        raise ValueError(f"timeout must be a number of seconds, at least 0, not {timeout}")
    return seconds


def lone_surrogate(text: str) -> str | None:
    """Where ``text`` is not valid Unicode (a lone surrogate, which no
    database stores as text), said as the rest of a sentence; None if it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds the lone surrogate {text[exc.start]!r} at index {exc.start}"
    return None


def check_text(what: str, text: object) -> None:
    """Raise ValueError if ``text`` is a string that is not valid Unicode: a
    string a run records must be, or its commit fails (no database stores a
    lone surrogate as text) and, written by a worker, the run stalls."""
    lone = lone_surrogate(text) if isinstance(text, str) else None
    if lone is not None:
        raise BadName(f"{what} must be valid Unicode text: it {lone}")
