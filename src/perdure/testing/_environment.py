"""WorkflowEnvironment: an in-process engine with a virtual clock, for tests.

Owns the test environment's lifecycle (an in-memory SQLite store, a Client
and a Worker sharing it) and the time-skipping driver. Imports the public API,
the store factory and the testing helpers next to it; the engine never
imports this module.

Time skipping follows Temporal: virtual time runs at real speed, and jumps to
the next due timer or task only while the test waits for a result (or inside
:meth:`WorkflowEnvironment.sleep`) and the worker has nothing to do.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, overload

from perdure import _history as h
from perdure._checks import delay_seconds
from perdure._converter import DataConverter
from perdure._store import store_for_url
from perdure._store.base import NEVER_DUE, RunFilter, RunRecord
from perdure._views import waits_for_nothing
from perdure._worker.options import several
from perdure._worker.watchdog import DEFAULT_DEADLOCK_TIMEOUT
from perdure._worker.worker import Worker
from perdure.client import WorkflowHandle
from perdure.errors import NonDeterminismError, PerdureError
from perdure.interceptors import Interceptor
from perdure.testing._clock import VirtualClock
from perdure.testing._env_client import EnvClient, EnvHandle
from perdure.testing._overrides import ActivityOverrides, apply_overrides
from perdure.testing._replayer import Replayer

__all__ = ["WorkflowEnvironment", "WorkflowStuckError"]

log = logging.getLogger("perdure.testing")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_ALL = 1 << 62


class _Step(enum.Enum):
    BUSY = "busy"  # the worker has something to do
    SETTLED = "settled"  # nothing will run until something outside the worker acts
    SKIPPED = "skipped"  # the clock jumped to the next due time
    REACHED = "reached"  # env.sleep's end time has come


# How often to look again: the worker does not announce that it became idle.
_POLL = {_Step.BUSY: 0.002, _Step.SETTLED: 0.02}
# Real seconds an awaited run may wait for nothing (a test's own task may be
# about to cancel it) before result() raises WorkflowStuckError.
AWAITING_NOTHING_GRACE = 1.0


class WorkflowStuckError(PerdureError):
    """The awaited run cannot make progress in this environment (its workflow
    or one of its activities is not registered, its turns keep failing, or
    it waits for nothing that can come)."""


class WorkflowEnvironment:
    """An engine in one process for tests: ``async with WorkflowEnvironment(...) as env``.

    ``time_skipping=False`` runs on the real clock. ``check_determinism``
    replays every run that closed against the current code (failing
    ``result()``/``execute()``, or the ``async with`` block for runs never
    awaited). ``activity_overrides`` replaces activities by name with test
    doubles: ``{"charge_card": fake}`` or ``[activity.defn(name="charge_card")(fake)]``.
    ``start_time`` (aware datetime) sets the virtual clock's starting point.
    """

    def __init__(
        self,
        workflows: Iterable[Any] = (),
        activities: Iterable[Any] = (),
        *,
        time_skipping: bool = True,
        check_determinism: bool = True,
        task_queue: str = "default",
        activity_overrides: ActivityOverrides | None = None,
        converter: DataConverter | None = None,
        start_time: datetime | None = None,
        deadlock_timeout: float | None = DEFAULT_DEADLOCK_TIMEOUT,
        interceptors: Iterable[Interceptor] | None = None,
    ) -> None:
        if not task_queue:
            raise ValueError("task_queue must be a non-empty string")
        self.workflows = list(several(workflows, "workflows"))
        self.activities = apply_overrides(activities, activity_overrides)
        self.time_skipping = time_skipping
        self.check_determinism = check_determinism
        self.task_queue = task_queue
        self.clock = VirtualClock(start_time)
        store = store_for_url("sqlite://:memory:", clock=self.clock)
        self.client = EnvClient(store, converter, self, interceptors)
        self.worker = Worker(
            self.client,
            self.workflows,
            self.activities,
            task_queue=task_queue,
            identity="perdure-testing",
            lease_timeout=60.0,
            poll_interval=0.05,
            drain_timeout=2.0,
            deadlock_timeout=deadlock_timeout,
        )
        self._replayer: Replayer | None = None
        if self.workflows:
            self._replayer = Replayer(
                self.workflows,
                converter=self.client.converter,
                deadlock_timeout=deadlock_timeout,
            )
        self._checked: set[str] = set()
        # Awaited runs seen waiting for nothing, since when (real time).
        self._awaiting_nothing: dict[str, float] = {}
        self._worker_task: asyncio.Task[None] | None = None
        self._drive_lock = asyncio.Lock()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> WorkflowEnvironment:
        if self._worker_task is not None:
            raise RuntimeError("this WorkflowEnvironment is already running")
        await self.client.store.open()
        self._worker_task = asyncio.create_task(
            self.worker.run(handle_signals=False), name="perdure-testing-worker"
        )
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if self._worker_task is not None:
                self.worker.stop()
                try:
                    await self._worker_task
                except Exception:
                    if exc_type is None:
                        raise
                    # The test's own error is the one to report.
                    log.exception("the environment's worker failed")
            if exc_type is None and self.check_determinism:
                await self._check_closed_runs()
        finally:
            await self.client.close()

    # ------------------------------------------------------------ time

    def now(self) -> datetime:
        """The environment's current (virtual) time, UTC."""
        return self.clock.now()

    async def sleep(self, delay: timedelta | float) -> None:
        """Let ``delay`` pass. With time skipping, virtual time jumps from one
        due timer or task to the next (each runs as it comes due) until
        ``delay`` has passed, and returns at once; otherwise sleeps for real."""
        seconds = delay_seconds(delay)
        if not math.isfinite(seconds):  # (NaN had driven the environment for ever)
            raise ValueError(f"cannot sleep {seconds!r} seconds: give a finite number")
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds:g}s)")
        if not self.time_skipping:
            await asyncio.sleep(seconds)
            return
        self._require_running()
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._drive(never, until=self.clock() + seconds)

    # ------------------------------------------------------------ workflows

    @overload
    async def start(
        self, workflow: Callable[P, Coroutine[Any, Any, R]], *args: Any, **options: Any
    ) -> EnvHandle[R]: ...
    @overload
    async def start(self, workflow: str, *args: Any, **options: Any) -> EnvHandle[Any]: ...
    async def start(self, workflow: Any, *args: Any, **options: Any) -> EnvHandle[Any]:
        """``env.client.start(...)``: the options are those of :meth:`Client.start`."""
        self._require_running()
        return await self.client.start(workflow, *args, **options)

    @overload
    async def execute(
        self, workflow: Callable[P, Coroutine[Any, Any, R]], *args: Any, **options: Any
    ) -> R: ...
    @overload
    async def execute(self, workflow: str, *args: Any, **options: Any) -> Any: ...
    async def execute(self, workflow: Any, *args: Any, **options: Any) -> Any:
        """Start a run and return its result, skipping time while it waits."""
        timeout = options.pop("timeout", None)
        handle = await self.start(workflow, *args, **options)
        return await handle.result(timeout=timeout)

    async def debounce(self, workflow: Any, *args: Any, **options: Any) -> EnvHandle[Any]:
        """``env.client.debounce(...)``: the options are those of :meth:`Client.debounce`."""
        self._require_running()
        return await self.client.debounce(workflow, *args, **options)

    def get_handle(self, id: str, run_id: str | None = None) -> EnvHandle[Any]:
        return self.client.get_handle(id, run_id)

    # ------------------------------------------------------------ waiting

    def _require_running(self) -> None:
        if self._worker_task is None:
            raise RuntimeError("use the environment inside 'async with WorkflowEnvironment(...)'")
        if self._worker_task.done():
            exc = None if self._worker_task.cancelled() else self._worker_task.exception()
            raise RuntimeError(f"the environment's worker has stopped ({exc!r})") from exc

    async def wait_for_result(
        self, handle: WorkflowHandle[Any], waiting: Coroutine[Any, Any, T]
    ) -> T:
        """Run ``waiting`` (a ``WorkflowHandle.result()``) while driving the clock."""
        task = asyncio.ensure_future(waiting)
        try:
            self._require_running()
            await self._drive(task, until=None, watch=handle)
        except BaseException:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        # A run that ended (completed, failed, cancelled...) is replayed before
        # its outcome is handed over; a result() that timed out checks nothing.
        if (
            self.check_determinism
            and not task.cancelled()
            and not isinstance(task.exception(), TimeoutError)
        ):
            run = await self.client.store.get_run(handle.id, handle.run_id)
            if run is not None and not run.is_open:
                await self._check_run(run)
        return task.result()

    async def _drive(
        self,
        done: asyncio.Future[Any],
        *,
        until: float | None,
        watch: WorkflowHandle[Any] | None = None,
    ) -> None:
        """Wait for ``done``, or (with ``until``) for virtual time to reach ``until``,
        moving the clock whenever nothing can run. ``watch`` is the awaited run."""
        while not done.done():
            self._require_running()
            # One decision at a time, so that concurrent result() calls (a
            # gather) never jump the clock on each other's stale reading.
            async with self._drive_lock:
                step = await self._step(until, watch)
            if step is _Step.REACHED:
                return
            if step is not _Step.SKIPPED:
                await asyncio.wait({done}, timeout=_POLL[step])

    async def _step(self, until: float | None, watch: WorkflowHandle[Any] | None) -> _Step:
        """Look once, and jump the clock if nothing can run before the next due time.

        Nothing can run when the worker is idle and no task or timer is due now.
        ``worker.idle`` may lag a wake-up by one loop iteration, but the store
        cannot: whatever woke the worker is a due task or timer, visible in
        ``next_due`` until the worker has taken it.
        """
        if not self.worker.idle:
            return _Step.BUSY
        polls = self.worker.polls
        due = await self.client.store.next_due(
            [self.task_queue], ("workflow", "activity"), self.worker.identity
        )
        if due is not None and due >= NEVER_DUE:
            due = None  # (an attempt awaiting completion with no deadline: no time is its)
        if not self.worker.idle or self.worker.polls != polls:
            # The worker woke while we read: what it claimed meanwhile no
            # longer shows as due (its lease does), so this reading is stale.
            return _Step.BUSY
        now = self.clock()
        if due is not None and due <= now:
            return _Step.BUSY
        if watch is not None:
            await self._raise_if_stuck(watch)
        target = due
        if until is not None and (due is None or due > until):
            if now >= until:
                return _Step.REACHED
            target = until
        if not self.time_skipping or target is None:
            return _Step.SETTLED  # only someone else (a signal, another worker) can act
        self.clock.advance_to(target)
        self.worker.wake()
        return _Step.SKIPPED

    async def _raise_if_stuck(self, handle: WorkflowHandle[Any]) -> None:
        store = self.client.store
        run = await store.get_run(handle.id, handle.run_id)
        if run is None or not run.is_open:
            return
        where = f"workflow {run.workflow_id!r} ({run.workflow_type}, run {run.run_id})"
        if run.last_error:
            if run.last_error.startswith("non-determinism"):
                raise NonDeterminismError(run.last_error)
            raise WorkflowStuckError(f"{where} cannot make progress: {run.last_error}")
        work = await store.pending_work(run.run_id)
        if not waits_for_nothing(run, work):
            self._awaiting_nothing.pop(run.run_id, None)
        else:
            # Nothing can move it but a cancel: give a test's own task a
            # moment to send one, then say so rather than wait for ever.
            since = self._awaiting_nothing.setdefault(run.run_id, time.monotonic())
            if time.monotonic() - since >= AWAITING_NOTHING_GRACE:
                raise WorkflowStuckError(
                    f"{where} waits for nothing that can come: no activity, timer, child or "
                    f"signal wait is pending (does its code await an asyncio.Event or Future "
                    f"that no workflow code completes?); only a cancel or terminate moves it"
                )
        for pending in work.activities:
            failure = pending.last_failure or {}
            if failure.get("type") == "ActivityNotRegistered":
                raise WorkflowStuckError(
                    f"{where} cannot make progress: {failure.get('message')}; add it to "
                    f"WorkflowEnvironment(activities=[...]) (or activity_overrides)"
                )

    # ------------------------------------------------------------ determinism

    async def _check_run(self, run: RunRecord) -> None:
        if run.run_id in self._checked or self._replayer is None:
            return
        self._checked.add(run.run_id)
        replayer = self._replayer
        if (
            run.workflow_type not in replayer.workflows
            and run.workflow_type not in replayer.builtins
        ):
            return
        events = await self.client.store.history(run.run_id)
        if not any(isinstance(e, h.WorkflowStarted) for e in events):
            return  # (ended before its first turn: no code ran, nothing to replay)
        result = self._replayer.replay(events)
        if not result.ok:
            raise NonDeterminismError(
                f"{result.error}\n(perdure.testing replayed the closed run from its history, "
                f"and the workflow code made different decisions the second time: use "
                f"workflow.now(), workflow.random() and workflow.uuid4() instead of the real "
                f"clock and randomness, and do I/O only in activities)"
            )

    async def _check_closed_runs(self) -> None:
        errors: list[str] = []
        for run in await self.client.store.list_runs(RunFilter(limit=_ALL)):
            if run.is_open:
                continue
            try:
                await self._check_run(run)
            except NonDeterminismError as exc:
                errors.append(str(exc))
        if errors:
            raise NonDeterminismError("\n\n".join(errors))
