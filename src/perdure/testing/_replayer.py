"""Replayer: check recorded histories against the current workflow code.

Owns replaying whole histories outside any worker and reporting, per run,
whether the code still issues the recorded commands. Imports the runtime
(replay), the history model, the store factory and the public API; nothing
in the engine imports this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perdure import _history as h
from perdure._checks import check_build
from perdure._converter import DataConverter, default_converter
from perdure._runtime import replay_history
from perdure._schedule_workflow import builtin_workflows
from perdure._store import resolve_url, sqlite_path, store_for_url
from perdure._store.base import RunFilter, Store
from perdure._worker.options import deadlock_timeout_problem
from perdure._worker.watchdog import DEFAULT_DEADLOCK_TIMEOUT, Watchdog
from perdure.errors import NonDeterminismError, StoreError
from perdure.workflow import definition_of

__all__ = ["ReplayResult", "Replayer"]

_ALL = 1 << 62  # "no limit" for Store.list_runs


@dataclass(frozen=True)
class ReplayResult:
    """The verdict on one run: ``ok``, or the first problem replay found."""

    workflow_id: str
    run_id: str
    workflow_type: str
    error: str | None = None
    """The first mismatch (the :class:`NonDeterminismError` message, naming the
    recorded and the issued command and the line of code), or why the history
    could not be replayed at all."""
    error_type: str | None = None
    """``"NonDeterminismError"``, ``"HistoryFormatError"``, or the type of an
    unexpected exception."""
    created_at: datetime | None = None
    warnings: tuple[str, ...] = ()
    """Activities the code scheduled with other arguments than the history
    recorded (at most three): the replay passes, since code may change what
    it passes, but each got the result recorded for the old arguments. If the
    change was not on purpose, the workflow is not deterministic (a ``set``'s
    order, the clock, a global)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_error(self) -> None:
        """Raise :class:`NonDeterminismError` if this run did not replay."""
        if self.error is not None:
            raise NonDeterminismError(self.error)


def replay_events(
    fn: Callable[..., Any],
    events: list[h.Event],
    converter: DataConverter,
    deadlock_timeout: float | None = None,
) -> list[str]:
    """Replay a whole history with :func:`perdure._runtime.replay_history`;
    raise on the first mismatch. The instance is evicted afterwards either way.

    Evicting matters: a suspended workflow coroutine left to the garbage
    collector is closed outside the workflow loop, so its ``finally:`` blocks
    would run activity functions for real. (``replay_history`` evicts the
    instance itself when replay fails.) Returns the activities replayed with
    other arguments than recorded (``ReplayResult.warnings``). Workflow code
    that runs ``deadlock_timeout`` seconds without awaiting is interrupted
    (TurnBlocked), as a worker interrupts it: a busy loop does not hang the
    replay.
    """
    watchdog = Watchdog(deadlock_timeout, name="perdure-replay-watchdog")
    watchdog.start()
    try:
        instance = watchdog.run(None, replay_history, fn, events, converter, watchdog.rearm)
    finally:
        watchdog.stop()
    instance.evict()
    return instance.drift


def started_event(events: Sequence[h.Event]) -> h.WorkflowStarted:
    for event in events:
        if isinstance(event, h.WorkflowStarted):
            return event
    raise h.HistoryFormatError("the history has no WorkflowStarted event: it cannot be replayed")


def decode_history(history: Sequence[Any]) -> list[h.Event]:
    """Events from the JSON form ``handle.history()`` returns (already-decoded
    events pass through). Raises HistoryFormatError with the offending index."""
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise h.HistoryFormatError(
            f"a history is a list of event objects (what handle.history() returns), "
            f"got {type(history).__name__}"
        )
    events: list[h.Event] = []
    for index, item in enumerate(history):
        if isinstance(item, h.Event):
            events.append(item)
        elif isinstance(item, Mapping):
            try:
                events.append(h.event_from_dict(dict(item)))
            except h.HistoryFormatError as exc:
                raise h.HistoryFormatError(f"event [{index}]: {exc}") from exc
        else:
            raise h.HistoryFormatError(
                f"event [{index}] is a {type(item).__name__}, not an event object"
            )
    if not events:
        raise h.HistoryFormatError("the history is empty: there is nothing to replay")
    return events


class Replayer:
    """Replays recorded histories against ``workflows`` (the code you are
    about to deploy). Run it in CI over histories from production.
    ``deadlock_timeout``: as a Worker's (None: never interrupt the code)."""

    def __init__(
        self,
        workflows: Iterable[Any],
        *,
        converter: DataConverter | None = None,
        deadlock_timeout: float | None = DEFAULT_DEADLOCK_TIMEOUT,
    ) -> None:
        problem = deadlock_timeout_problem(deadlock_timeout)
        if problem is not None:
            raise ValueError(problem)
        self.converter = converter or default_converter
        self.deadlock_timeout = deadlock_timeout
        self.workflows: dict[str, Callable[..., Any]] = {}
        for item in workflows:
            definition = definition_of(item)
            if definition is None:
                raise TypeError(f"{item!r} is not a workflow: decorate it with @workflow.defn")
            if self.workflows.get(definition.name, definition.fn) is not definition.fn:
                raise ValueError(f"two workflows are named {definition.name!r}")
            self.workflows[definition.name] = definition.fn
        if not self.workflows:
            raise ValueError("Replayer needs at least one workflow")
        # The built-in workflows every worker runs (schedules'): replayed when
        # a history is theirs, not looked for in a database unless named.
        self.builtins = builtin_workflows()

    def _function(self, workflow_type: str) -> Callable[..., Any]:
        fn = self.workflows.get(workflow_type) or self.builtins.get(workflow_type)
        if fn is None:
            known = ", ".join(sorted(self.workflows))
            raise ValueError(
                f"the history is of workflow type {workflow_type!r}, which is not among the "
                f"Replayer's workflows (registered: {known})"
            )
        return fn

    def replay(self, history: Sequence[Any]) -> ReplayResult:
        """Replay one run's history: the JSON list ``handle.history()`` returns
        (or ``perdure history ID --json`` prints), or a list of events.

        A mismatch is reported in the result; input that is not a replayable
        history (malformed, unknown workflow type) raises ValueError.
        """
        events = decode_history(history)
        started = started_event(events)
        fn = self._function(started.workflow_type)
        return self._verdict(fn, started, events, tolerate_format_errors=False)

    def replay_file(self, path: str | os.PathLike[str]) -> ReplayResult:
        """Replay the history saved as JSON in ``path``."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read history file {os.fspath(path)!r}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise h.HistoryFormatError(f"{os.fspath(path)!r} is not valid JSON: {exc}") from exc
        try:
            return self.replay(data)
        except ValueError as exc:
            raise type(exc)(f"{os.fspath(path)}: {exc}") from exc

    def _verdict(
        self,
        fn: Callable[..., Any],
        started: h.WorkflowStarted,
        events: list[h.Event],
        *,
        tolerate_format_errors: bool,
        created_at: datetime | None = None,
    ) -> ReplayResult:
        def result(
            error: str | None = None, error_type: str | None = None, warnings: Sequence[str] = ()
        ) -> ReplayResult:
            return ReplayResult(
                started.workflow_id,
                started.run_id,
                started.workflow_type,
                error,
                error_type,
                created_at,
                tuple(warnings),
            )

        try:
            drift = replay_events(fn, events, self.converter, self.deadlock_timeout)
        except NonDeterminismError as exc:
            return result(str(exc), "NonDeterminismError")
        except h.HistoryFormatError as exc:
            if not tolerate_format_errors:
                raise
            return result(f"the history cannot be read: {exc}", "HistoryFormatError")
        except Exception as exc:  # a broken history must not hide the other runs' verdicts
            return result(f"replay failed with {type(exc).__name__}: {exc}", type(exc).__name__)
        return result(warnings=drift)

    async def replay_store(
        self,
        store: Store,
        *,
        workflow: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        build_id: str | None = None,
    ) -> list[ReplayResult]:
        """Replay every run (open or closed) of the registered workflows in
        ``store``, oldest first; ``workflow`` narrows to one type, ``since`` to
        runs created at or after it, ``limit`` to the newest N per type,
        ``build_id`` to the runs pinned to that worker build (before moving
        them to the code given here: docs/versioning.md)."""
        check_build("build_id", build_id, none_means="any build")
        if workflow is not None:
            self._function(workflow)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        names = [workflow] if workflow is not None else sorted(self.workflows)
        runs = []
        for name in names:
            query = RunFilter(
                workflow_type=name,
                since=None if since is None else since.timestamp(),
                build_id=build_id,
                limit=_ALL if limit is None else limit,
            )
            runs.extend(await store.list_runs(query))
        runs.sort(key=lambda r: (r.created_at, r.run_id))
        results = []
        for run in runs:
            created = datetime.fromtimestamp(run.created_at, tz=UTC)
            fn = self._function(run.workflow_type)
            try:
                events = await store.history(run.run_id)
                started = started_event(events)
            except h.HistoryFormatError as exc:
                results.append(
                    ReplayResult(
                        run.workflow_id,
                        run.run_id,
                        run.workflow_type,
                        f"the history cannot be read: {exc}",
                        "HistoryFormatError",
                        created,
                    )
                )
                continue
            results.append(
                self._verdict(fn, started, events, tolerate_format_errors=True, created_at=created)
            )
        return results

    async def replay_db(
        self,
        url: str | None = None,
        *,
        workflow: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        build_id: str | None = None,
    ) -> list[ReplayResult]:
        """:meth:`replay_store` on the database at ``url`` (default
        ``$PERDURE_DB``). A SQLite file that does not exist is an error, not a
        new empty database."""
        url = resolve_url(url)
        if url.startswith("sqlite:"):
            path = sqlite_path(url)
            if path != ":memory:" and not os.path.exists(path):
                raise StoreError(f"no SQLite database at {path!r} (from {url!r})")
        store = store_for_url(url)
        await store.open()
        try:
            return await self.replay_store(
                store, workflow=workflow, since=since, limit=limit, build_id=build_id
            )
        finally:
            await store.close()
