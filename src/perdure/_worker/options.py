"""A worker's options, checked before anything runs: a zero or negative
poll interval or lease made a worker spin (it polled, or renewed its leases,
without ever sleeping), no slots for activities failed deep in the thread
pool, and an empty task queue served nothing anyone could start. Used by
Worker and by ``perdure worker`` (which names the options as its flags).
And the workflows and activities a Worker is given, by name. Imports the
name check and the definitions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from perdure._checks import build_problem, name_problem, queue_problem
from perdure.activity import ActivityFunction
from perdure.workflow import definition_of

__all__ = [
    "check_worker_options",
    "collect_activities",
    "collect_workflows",
    "deadlock_timeout_problem",
    "several",
]


def several(items: Iterable[Any], kind: str) -> Iterable[Any]:
    """``items``, a collection of workflows or activities: one alone (or a
    string, or no collection at all) is refused with what to write instead."""
    if callable(items) or isinstance(items, str) or not isinstance(items, Iterable):
        raise TypeError(
            f"{kind} must be a list of them, not {type(items).__name__} {items!r}: "
            f"write {kind}=[...]"
        )
    return items


def collect_workflows(items: Iterable[Any]) -> dict[str, Any]:
    """The workflow functions by the name histories record."""
    found: dict[str, Any] = {}
    for item in several(items, "workflows"):
        definition = definition_of(item)
        if definition is None:
            raise TypeError(f"{item!r} is not a workflow: decorate it with @workflow.defn")
        if definition.name in found and found[definition.name] is not item:
            raise ValueError(f"two workflows are named {definition.name!r}")
        found[definition.name] = definition.fn
    return found


def pinned_types(workflows: dict[str, Any]) -> frozenset[str]:
    """The names of the workflows whose runs a worker with a build pins to
    it (``@workflow.defn(versioning="pinned")``, the default)."""
    return frozenset(
        name
        for name, fn in workflows.items()
        if (definition := definition_of(fn)) is None or definition.versioning == "pinned"
    )


def collect_activities(items: Iterable[Any]) -> dict[str, ActivityFunction[Any, Any]]:
    """The activities by name."""
    found: dict[str, ActivityFunction[Any, Any]] = {}
    for item in several(items, "activities"):
        if not isinstance(item, ActivityFunction):
            raise TypeError(f"{item!r} is not an activity: decorate it with @activity.defn")
        if item.name in found and found[item.name].fn is not item.fn:
            raise ValueError(f"two activities are named {item.name!r}")
        found[item.name] = item
    return found


def _whole(value: Any, least: int) -> bool:
    return type(value) is int and value >= least


def _seconds(value: Any, positive: bool) -> bool:
    if type(value) not in (int, float) or not math.isfinite(value):
        return False
    return bool(value > 0 if positive else value >= 0)


def deadlock_timeout_problem(value: Any, name: str = "deadlock_timeout") -> str | None:
    """What is wrong with ``value`` as a deadlock_timeout (None if nothing)."""
    if value is None or _seconds(value, positive=True):
        return None
    return (
        f"{name} must be a positive number of seconds, not {value!r} "
        f"(None turns it off; on the command line, 0)"
    )


def check_worker_options(
    *,
    max_concurrent_activities: Any,
    max_concurrent_workflow_tasks: Any,
    lease_timeout: Any,
    poll_interval: Any,
    cache_size: Any,
    drain_timeout: Any,
    task_queue: Any = "default",
    identity: Any = None,
    deadlock_timeout: Any = None,
    build_id: Any = None,
    spell: Callable[[str], str] = str,
) -> None:
    """Raise ValueError naming every option out of its range (``spell``
    turns a parameter's name into the caller's: ``--lease-timeout``)."""
    problems = []
    for name, value in (
        ("max_concurrent_activities", max_concurrent_activities),
        ("max_concurrent_workflow_tasks", max_concurrent_workflow_tasks),
    ):
        if not _whole(value, 1):
            problems.append(f"{spell(name)} must be a whole number of at least 1, not {value!r}")
    if not _whole(cache_size, 0):
        problems.append(
            f"{spell('cache_size')} must be a whole number of at least 0, not {cache_size!r}"
        )
    for name, value in (("lease_timeout", lease_timeout), ("poll_interval", poll_interval)):
        if not _seconds(value, positive=True):
            problems.append(f"{spell(name)} must be a positive number of seconds, not {value!r}")
    if not _seconds(drain_timeout, positive=False):
        problems.append(
            f"{spell('drain_timeout')} must be a number of seconds of at least 0, "
            f"not {drain_timeout!r}"
        )
    problem = deadlock_timeout_problem(deadlock_timeout, spell("deadlock_timeout"))
    if problem is not None:
        problems.append(problem)
    for problem in (
        queue_problem(spell("task_queue"), task_queue),
        name_problem(spell("identity"), identity, none_means="host:pid:random"),
        None if build_id is None else build_problem(spell("build_id"), build_id),
    ):
        if problem is not None:
            problems.append(problem)
    if problems:
        raise ValueError("; ".join(problems))
