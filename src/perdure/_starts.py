"""A start's arguments, checked and made into the run the store creates:
``Client.start`` and its kin (``execute``, ``signal_with_start``,
``update_with_start``), and the runs a schedule's client side starts (its
own workflow, a backfill's). A workflow given as a function or a name is
resolved here too. Nothing here reads or writes the store: the clock is
passed in.

Imports the history model (priorities), the public API's checks, the
converter, the store's records and ``perdure.workflow`` (a definition).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from perdure import _history as h
from perdure._attributes import AttributeValue, checked_attributes
from perdure._checks import check_name, check_queue
from perdure._converter import DataConverter
from perdure._store.base import ID_CONFLICTS, IdConflict, NewRun, new_run_id
from perdure.workflow import definition_of

__all__ = ["ID_CONFLICTS", "IdConflict", "checked_conflict", "debounce_spans", "new_run", "resolve"]


def checked_conflict(id_conflict: IdConflict) -> IdConflict:
    if id_conflict not in ID_CONFLICTS:
        named = ", ".join(repr(value) for value in ID_CONFLICTS[:-1])
        raise ValueError(
            f"id_conflict must be {named} or {ID_CONFLICTS[-1]!r}, not {id_conflict!r}"
        )
    return id_conflict


def debounce_spans(
    key: str, delay: timedelta, max_delay: timedelta | None
) -> tuple[float, float | None]:
    """A debounced start's ``delay`` and ``max_delay`` in seconds, checked
    with its ``key`` (Client.debounce)."""
    check_name("key", key)
    seconds = _positive("delay", delay)
    return seconds, None if max_delay is None else _positive("max_delay", max_delay)


def _positive(option: str, span: object) -> float:
    if not isinstance(span, timedelta):
        raise TypeError(f"{option} must be a timedelta, not {type(span).__name__} {span!r}")
    if span <= timedelta(0):
        raise ValueError(f"{option} must be positive, not {span}")
    return span.total_seconds()


def resolve(workflow: Any) -> tuple[Callable[..., Any] | None, str]:
    """A workflow function (decorated) or type name: its function (None for
    a name) and its type name; TypeError or ValueError if it is neither."""
    if isinstance(workflow, str):
        if not workflow:
            raise ValueError("workflow name must not be empty")
        check_name("workflow name", workflow)  # (valid Unicode: see _checks)
        return None, workflow
    definition = definition_of(workflow)
    if definition is None:
        raise TypeError(
            f"{workflow!r} is not a workflow: decorate it with @workflow.defn or pass its name"
        )
    return definition.fn, definition.name


def new_run(
    converter: DataConverter,
    clock: Callable[[], float],
    workflow: Any,
    args: tuple[Any, ...],
    id: str | None,
    task_queue: str,
    *,
    start_delay: timedelta | None = None,
    execution_timeout: timedelta | None = None,
    search_attributes: Mapping[str, AttributeValue] | None = None,
    priority: int | None = None,
    fairness_key: str | None = None,
) -> tuple[Callable[..., Any] | None, NewRun]:
    """The run a start of ``workflow(*args)`` creates, its arguments encoded
    by ``converter`` (by the function's hints, if given one), and the
    function (None for a name). Raises what a bad argument is, before
    anything is written."""
    check_queue("task_queue", task_queue)
    priority = h.check_priority("priority", priority)
    check_name("fairness_key", fairness_key, none_means="no key")
    check_name("id", id, none_means="a new UUID")
    for option, span in (
        ("start_delay", start_delay),
        ("execution_timeout", execution_timeout),
    ):
        if span is not None and not isinstance(span, timedelta):
            raise TypeError(f"{option} must be a timedelta, not {type(span).__name__} {span!r}")
    attributes = {} if search_attributes is None else checked_attributes(search_attributes)
    fn, name = resolve(workflow)
    if fn is not None:
        pos, kw = converter.encode_args(fn, args, {})
    else:
        pos = [converter.to_json(a, where=f"argument {i}") for i, a in enumerate(args)]
        kw = {}
    start_at = None
    if start_delay is not None:
        start_at = clock() + start_delay.total_seconds()
    timeout = None
    if execution_timeout is not None:
        timeout = execution_timeout.total_seconds()
        if timeout <= 0:
            raise ValueError("execution_timeout must be positive")
    new = NewRun(
        workflow_id=id if id is not None else new_run_id(),
        run_id=new_run_id(),
        workflow_type=name,
        task_queue=task_queue,
        args=pos,
        kwargs=kw,
        seed=secrets.randbits(63),
        start_at=start_at,
        execution_timeout=timeout,
        search_attributes=attributes,
        priority=h.DEFAULT_PRIORITY if priority is None else priority,
        fairness_key=fairness_key or "",
    )
    return fn, new
