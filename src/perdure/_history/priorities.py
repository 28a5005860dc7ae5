"""Priorities: the order in which a task queue's backlog is handed out.

A run has a priority, from 1 (first) to 5 (last), 3 when none is given (as
Temporal's ``priority_key``, whose default is 3 of 5; DBOS's queues also put
the lower number first). Its workflow tasks carry it, its activities and
children inherit it unless told otherwise, and a claim takes the due tasks
of priority 1 before those of 2, and so on; within a priority, the oldest
due first. A fixed, small range: each claim reads one index range per
priority (see sqlstore's claim), so the due tasks of each are found
without scanning those not yet due.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PRIORITY", "PRIORITIES", "check_priority", "priority_problem"]

PRIORITIES = (1, 2, 3, 4, 5)
DEFAULT_PRIORITY = 3


def priority_problem(option: str, value: object) -> str | None:
    """Why ``value`` cannot be ``option`` (a priority), or None if it can."""
    if type(value) is int and value in PRIORITIES:
        return None
    what = f"{type(value).__name__} {value!r}"
    return (
        f"{option} must be an int from {PRIORITIES[0]} (first) to {PRIORITIES[-1]} (last),"
        f" {DEFAULT_PRIORITY} being the default; got {what}"
    )


def check_priority(option: str, value: object) -> int | None:
    """``value`` if it is a priority, or None (the caller's default); else
    TypeError (not an int) or ValueError (out of range), saying why."""
    if value is None:
        return None
    problem = priority_problem(option, value)
    if problem is None:
        return value  # type: ignore[return-value]
    raise (ValueError if type(value) is int else TypeError)(problem)
