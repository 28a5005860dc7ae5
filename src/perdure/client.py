"""Client and WorkflowHandle: start workflows, signal, cancel, wait for results.

Talks to a Store only; never runs workflow code. ``SyncClient`` (in
``perdure._sync``) wraps this one for programs that are not asyncio.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from perdure import _gcpolicy as gcpolicy
from perdure import _history as h
from perdure._checks import check_name, check_text
from perdure._converter import DataConverter, default_converter
from perdure._store import resolve_url, store_for_url
from perdure._store.base import (
    OPEN,
    STATUSES,
    IdConflict,
    NewRun,
    RunFilter,
    RunRecord,
    Store,
    new_run_id,
)
from perdure._views import (
    PendingActivityInfo,
    PendingTimerInfo,
    ResetPoints,
    WorkerInfo,
    WorkflowDescription,
    WorkflowExecution,
    _timestamp,
    describe_run,
)
from perdure._waiting import MAX_RESULT_POLL, EndWatch, OpenRuns, ResultWatch
from perdure.errors import (
    PayloadError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
    cause_from_failure,
)
from perdure.workflow import definition_of

__all__ = [
    "STATUSES",
    "Client",
    "PendingActivityInfo",
    "PendingTimerInfo",
    "ResetPoints",
    "WorkerInfo",
    "WorkflowDescription",
    "WorkflowExecution",
    "WorkflowHandle",
]

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=h.Event)


log = logging.getLogger("perdure.client")
LIVE_WORKER_LEASES = 3  # a worker is live while its last heartbeat is this many leases old at most


def _checked(id_conflict: IdConflict) -> IdConflict:
    if id_conflict not in ("fail", "use_existing", "terminate_existing"):
        raise ValueError(
            f"id_conflict must be 'fail', 'use_existing' or 'terminate_existing', "
            f"not {id_conflict!r}"
        )
    return id_conflict


def _checked_converter(converter: DataConverter | None) -> DataConverter:
    if converter is not None and not isinstance(converter, DataConverter):
        raise TypeError(
            f"converter must be a perdure.DataConverter (or None for the default), "
            f"not {type(converter).__name__} {converter!r}"
        )
    return converter or default_converter


def _reason(reason: str | None) -> str | None:
    if reason is not None and not isinstance(reason, str):
        raise TypeError(f"a reason is a str (or None), not {type(reason).__name__} {reason!r}")
    check_text("a reason", reason)
    return reason


def _checked_event(event: E) -> E:
    """``event``, from outside, if a worker can read it back: an unreadable
    inbox row would stall its run (every turn would fail to read it)."""
    problem = h.field_problem(event)
    if problem is not None:
        raise TypeError(problem)
    return event


class Client:
    """Connects to a perdure database. Use ``await Client.connect(url)``."""

    def __init__(self, store: Store, converter: DataConverter | None = None) -> None:
        self.store = store
        self.converter = _checked_converter(converter)
        self.poll_interval = 0.2
        # One check for every result() waiter at once (see ResultWatch).
        self._results = ResultWatch(store, lambda: self.poll_interval)
        self._open_runs = OpenRuns(store)  # waiters' looks, taken together
        self._gc_tuned = False  # holds the garbage-collection policy (see connect)

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        converter: DataConverter | None = None,
        clock: Callable[[], float] | None = None,
        tune_gc: bool = True,
    ) -> Client:
        """Open (and if needed create and migrate) the database at ``url``
        (default ``$PERDURE_DB``, else ``sqlite:///perdure.db``).

        ``tune_gc``: until the client is closed, raise the cyclic garbage
        collector's thresholds as a running worker does (young 20,000, middle
        100; never lowered; the last client or worker to stop restores them): a
        program awaiting thousands of results had spent 44% of its CPU in the
        collector (see docs/operations.md). ``False`` leaves them alone."""
        _checked_converter(converter)  # (before anything is opened)
        store = store_for_url(resolve_url(url), clock=clock)
        try:
            await store.open()
        except BaseException:
            await store.close()  # its thread, its pool: nothing outlives a failed connect
            raise
        client = cls(store, converter)
        if tune_gc:
            gcpolicy.acquire()
            client._gc_tuned = True
        return client

    async def close(self) -> None:
        if self._gc_tuned:
            self._gc_tuned = False
            gcpolicy.release()
        await self._results.close()
        await self.store.close()
        self.store.wake_waiters()  # (their next look raises: the store is closed)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ starting

    @overload
    async def start(
        self,
        workflow: Callable[P, Coroutine[Any, Any, R]],
        *args: Any,
        id: str | None = None,
        task_queue: str = "default",
        id_conflict: IdConflict = "fail",
        start_delay: timedelta | None = None,
        execution_timeout: timedelta | None = None,
    ) -> WorkflowHandle[R]: ...
    @overload
    async def start(
        self,
        workflow: str,
        *args: Any,
        id: str | None = None,
        task_queue: str = "default",
        id_conflict: IdConflict = "fail",
        start_delay: timedelta | None = None,
        execution_timeout: timedelta | None = None,
    ) -> WorkflowHandle[Any]: ...
    async def start(
        self,
        workflow: Any,
        *args: Any,
        id: str | None = None,
        task_queue: str = "default",
        id_conflict: IdConflict = "fail",
        start_delay: timedelta | None = None,
        execution_timeout: timedelta | None = None,
    ) -> WorkflowHandle[Any]:
        """Start a run. Once this returns, the run is durable: it will run to a
        terminal state as long as some worker serves ``task_queue``."""
        id_conflict = _checked(id_conflict)
        fn, new = self._new_run(workflow, args, id, task_queue, start_delay, execution_timeout)
        run, _created = await self.store.create_run(new, id_conflict)
        return WorkflowHandle(self, run.workflow_id, run.run_id, fn)

    def _new_run(
        self,
        workflow: Any,
        args: tuple[Any, ...],
        id: str | None,
        task_queue: str,
        start_delay: timedelta | None,
        execution_timeout: timedelta | None,
    ) -> tuple[Callable[..., Any] | None, NewRun]:
        check_name("task_queue", task_queue)
        check_name("id", id, none_means="a new UUID")
        for option, span in (
            ("start_delay", start_delay),
            ("execution_timeout", execution_timeout),
        ):
            if span is not None and not isinstance(span, timedelta):
                raise TypeError(f"{option} must be a timedelta, not {type(span).__name__} {span!r}")
        fn, name = self._resolve(workflow)
        if fn is not None:
            pos, kw = self.converter.encode_args(fn, args, {})
        else:
            pos = [self.converter.to_json(a, where=f"argument {i}") for i, a in enumerate(args)]
            kw = {}
        start_at = None
        if start_delay is not None:
            start_at = self.store.clock() + start_delay.total_seconds()
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
        )
        return fn, new

    @staticmethod
    def _resolve(workflow: Any) -> tuple[Callable[..., Any] | None, str]:
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

    async def execute(
        self,
        workflow: Any,
        *args: Any,
        id: str | None = None,
        task_queue: str = "default",
        id_conflict: IdConflict = "fail",
        start_delay: timedelta | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Start a run and wait for its result."""
        id_conflict = _checked(id_conflict)
        fn, new = self._new_run(workflow, args, id, task_queue, start_delay, None)
        # Listening before the start commits, the wait can take the start's
        # own record of the run as its first look: no read. (So can a start
        # that found the id used by a run that has ended: it stays ended.)
        watch = EndWatch(self.store)
        watch.listen(new.run_id)
        try:
            run, created = await self.store.create_run(new, id_conflict)
            handle: WorkflowHandle[Any] = WorkflowHandle(self, run.workflow_id, run.run_id, fn)
            return await handle._wait(timeout, watch, run if created or not run.is_open else None)
        finally:
            watch.close()

    async def signal_with_start(
        self,
        workflow: Any,
        *args: Any,
        signal: str,
        signal_payload: Any = None,
        id: str,
        task_queue: str = "default",
    ) -> WorkflowHandle[Any]:
        """Signal the open run of ``id``, or start a new run (with these arguments)
        and queue the signal for it — atomically: either way, once this returns
        the signal is durable and will be delivered."""
        fn, new = self._new_run(workflow, args, id, task_queue, None, None)
        event = self._signal_event(signal, signal_payload)
        run = await self.store.signal_with_start(new, event)
        return WorkflowHandle(self, run.workflow_id, run.run_id, fn)

    def _signal_event(self, name: str, payload: Any) -> h.SignalReceived:
        if not isinstance(name, str):
            raise TypeError(f"a signal's name must be a str, not {type(name).__name__} {name!r}")
        check_text("a signal's name", name)
        encoded = self.converter.to_json(payload, where=f"payload of signal {name!r}")
        return _checked_event(h.SignalReceived(name=name, payload=encoded))

    def get_handle(self, id: str, run_id: str | None = None) -> WorkflowHandle[Any]:
        """A handle to the given run, or to the latest run of ``id``."""
        check_name("id", id)
        check_name("run_id", run_id, none_means="the latest run of the id")
        return WorkflowHandle(self, id, run_id, None)

    async def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        after: str | None = None,
        offset: int = 0,
        retrying: bool = False,
        latest: bool = False,
    ) -> list[WorkflowExecution]:
        """Runs, newest first, optionally filtered by status, workflow type name,
        creation time (``since``/``until``, inclusive; a naive datetime is UTC)
        and ``search``, text the workflow id contains (case-insensitive);
        ``retrying``: only runs whose latest workflow task failed and is retried
        (their ``last_error`` set); ``latest``: only each workflow id's latest
        run (not those a reset, a continue-as-new or a reuse of the id replaced).
        Page with ``after``, the ``cursor`` of the previous page's last run
        (stable while runs are added), or with ``offset``, a number of runs to skip."""
        if status is not None and status not in STATUSES:
            # (A misspelt status had matched nothing: an empty list, not an error.)
            raise ValueError(
                f"status must be one of {', '.join(STATUSES)} (or None), not {status!r}"
            )
        check_name("workflow", workflow, none_means="every type")
        check_name("search", search or None, none_means="no search")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        since_ts, until_ts = _timestamp(since), _timestamp(until)
        if since_ts is not None and until_ts is not None and since_ts > until_ts:
            raise ValueError(f"since ({since}) is after until ({until})")
        keyset = None if after is None else WorkflowExecution.parse_cursor(after)
        query = RunFilter(
            status=status,
            workflow_type=workflow,
            since=since_ts,
            until=until_ts,
            id_contains=search or None,
            retrying=bool(retrying),
            latest=bool(latest),
            after=keyset,
            offset=offset,
            limit=limit,
        )
        return [WorkflowExecution.from_record(r) for r in await self.store.list_runs(query)]

    async def list_workers(self) -> builtins.list[WorkerInfo]:
        """Workers that are running now (on any machine): those whose last
        heartbeat is at most three lease timeouts old. Oldest first."""
        now = self.store.clock()
        return [
            WorkerInfo(
                w.identity,
                w.host,
                w.pid,
                w.task_queue,
                w.workflows,
                w.activities,
                datetime.fromtimestamp(w.started_at, tz=UTC),
                datetime.fromtimestamp(w.heartbeat_at, tz=UTC),
            )
            for w in await self.store.list_workers()
            if now - w.heartbeat_at <= LIVE_WORKER_LEASES * w.lease_timeout
        ]


class WorkflowHandle(Generic[R]):
    """A reference to a workflow run; cheap to create, does I/O only when used."""

    def __init__(
        self, client: Client, id: str, run_id: str | None, fn: Callable[..., Any] | None
    ) -> None:
        self.client = client
        self.id = id
        self.run_id = run_id
        self._fn = fn

    def __repr__(self) -> str:
        return f"WorkflowHandle(id={self.id!r}, run_id={self.run_id!r})"

    async def _run(self, run_id: str | None = None) -> RunRecord:
        run_id = run_id or self.run_id
        run = await self.client.store.get_run(self.id, run_id)
        if run is None:
            which = f"run {run_id!r} of workflow" if run_id else "workflow"
            raise WorkflowNotFoundError(f"no {which} with id {self.id!r}")
        return run

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the run to end; return its result or raise why it did not complete."""
        watch = EndWatch(self.client.store)
        try:
            return await self._wait(timeout, watch, None)
        finally:
            watch.close()

    async def _look(self, run_id: str | None) -> RunRecord | None:
        """The run if it has ended, or as read now; None if it is open (then
        its record was not needed). A known run is first asked about with
        every other waiter looking in the same pass of the loop (OpenRuns);
        its record, if it ended, comes with that answer or with this
        process's commit that ended it (Store.ended_here). A waiter reads its
        run alone only when neither has it (a workflow id's latest run, a run
        that does not exist or is another workflow id's, a store error)."""
        store = self.client.store
        if run_id is not None:
            run = store.ended_here(run_id)
            if run is None and await self.client._open_runs.is_open(run_id):
                return None
            run = run or store.ended_here(run_id)
            if run is not None and run.workflow_id == self.id:  # (both are found by run id)
                return run
        return await self._run(run_id)

    async def _wait(self, timeout: float | None, watch: EndWatch, known: RunRecord | None) -> R:
        """``result()`` with ``watch``; ``known``: this run as read while ``watch``
        already listened for it (a start's own record), used instead of a first read."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float))
        ):
            raise TypeError(
                f"timeout must be a number of seconds or None, not {type(timeout).__name__} "
                f"{timeout!r}"
            )
        if timeout is not None and timeout != timeout:  # NaN: no deadline would ever pass
            raise ValueError("timeout must be a number of seconds or None, not nan")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        run_id = self.run_id
        while True:
            if run_id is not None and watch.run_id != run_id:
                watch.listen(run_id)  # before reading: an end between the two is not missed
            run: RunRecord | None = None
            if known is not None and known.run_id == watch.run_id and not watch.changed.is_set():
                run = known
            else:
                watch.changed.clear()
                run = await self._look(run_id)
            known = None
            if run is not None:  # (None: open, as the look found it)
                if run.continued_to is not None:
                    run_id = run.continued_to  # follow the continue-as-new chain
                    continue
                if not run.is_open:
                    return self._outcome(run)
                if watch.run_id != run.run_id:
                    run_id = run.run_id  # the latest run of the id: listen, then read again
                    continue
            # Commits of this process wake us; the client's result watch is
            # the safety net, and handles other processes' commits, for every
            # waiter at once. A waiter re-reads by itself only rarely.
            self.client._results.ensure()
            wait = MAX_RESULT_POLL
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    status = run.status if run is not None else OPEN
                    raise TimeoutError(
                        f"workflow {self.id!r} did not finish within {timeout:g}s "
                        f"(status: {status})"
                    )
                wait = min(wait, left)
            await watch.wait(wait)

    def _outcome(self, run: RunRecord) -> R:
        if run.status == "completed":
            if self._fn is None:
                return self.client.converter.from_json(run.result)  # type: ignore[no-any-return]
            try:
                return self.client.converter.decode_result(self._fn, run.result)  # type: ignore[no-any-return]
            except PayloadError as exc:
                raise PayloadError(f"result of workflow {self.id!r}: {exc}") from exc
        if run.status == "failed":
            cause = cause_from_failure(run.failure or {})
            raise WorkflowFailedError(
                f"workflow {self.id!r} failed: {cause}",
                workflow_id=run.workflow_id,
                run_id=run.run_id,
                cause=cause,
            )
        if run.status == "cancelled":
            raise WorkflowCancelledError(f"workflow {self.id!r} was cancelled")
        if run.status == "timed_out":
            cause = cause_from_failure(run.failure or {})
            raise WorkflowTimedOutError(
                f"workflow {self.id!r} timed out: {cause.message}",
                workflow_id=run.workflow_id,
                run_id=run.run_id,
                cause=cause,
            )
        reason = (run.failure or {}).get("message") or None
        raise WorkflowTerminatedError(
            f"workflow {self.id!r} was terminated" + (f": {reason}" if reason else ""),
            reason=reason,
        )

    async def signal(self, name: str, payload: Any = None) -> None:
        """Deliver a signal. Once this returns it is durable and will be
        delivered exactly once, after every signal accepted before it."""
        event = self.client._signal_event(name, payload)
        await self.client.store.deliver(self.id, self.run_id, event)

    async def cancel(self, reason: str | None = None) -> None:
        """Ask the run to cancel: workflow code sees ``asyncio.CancelledError``."""
        event = _checked_event(h.CancelRequested(reason=_reason(reason)))
        await self.client.store.deliver(self.id, self.run_id, event)

    async def terminate(self, reason: str | None = None) -> None:
        """End the run at once, without running any more workflow code."""
        await self.client.store.terminate(self.id, self.run_id, _reason(reason))

    async def reset(
        self, *, to_event: int | None = None, reason: str | None = None
    ) -> WorkflowHandle[R]:
        """Start the workflow again from a point of this run's history, in a
        new run of the same id, and return its handle. The new run keeps the
        events before the point: their activities are not run again, their
        results are replayed. It takes the turn that began there again, with
        the code deployed now, and is sent again the signals that came after.
        ``to_event``: the ``seq`` of an event of this run; the run goes back
        to the beginning of the turn that recorded it. None: to the latest
        turn that took no failure and no cancel request (so an activity that
        failed for good is scheduled again). The run must be its id's latest;
        an open run is terminated. Activities keep their idempotency keys
        (see ``activity.ActivityInfo.idempotency_key``). Raises
        WorkflowNotFoundError, or WorkflowResetError naming the nearest
        usable point when a point cannot be used."""
        return (await self._reset(to_event, reason))[0]

    async def reset_points(self) -> ResetPoints:
        """Where ``reset()`` may take this run back to (see ResetPoints):
        every usable event, and the default one."""
        run = await self._run()
        events = await self.client.store.history(run.run_id)
        return ResetPoints(h.reset_points(events), h.default_point(events))

    async def _reset(
        self, to_event: int | None, reason: str | None
    ) -> tuple[WorkflowHandle[R], int]:
        """reset(), and the first event of the turn the new run takes again."""
        if to_event is not None and (isinstance(to_event, bool) or not isinstance(to_event, int)):
            raise TypeError(
                f"to_event is an event's seq (an int), not {type(to_event).__name__} {to_event!r}"
            )
        run, at_seq = await self.client.store.reset(
            self.id, self.run_id, to_event, _reason(reason), new_run_id()
        )
        # (Of this handle's own class: a test environment's handle skips time.)
        return type(self)(self.client, run.workflow_id, run.run_id, self._fn), at_seq

    async def describe(self) -> WorkflowDescription:
        run = await self._run()
        pending = await self.client.store.pending_work(run.run_id)
        return describe_run(run, pending, self.client.converter.display, self.client.store.clock())

    async def state(self, key: str | None = None) -> Any:
        """Published state (``workflow.set_state``): one key, or all as a dict."""
        if key is not None and not isinstance(key, str):
            raise TypeError(
                f"a state key is a str (or None for all), not {type(key).__name__} {key!r}"
            )
        run = await self._run()
        conv = self.client.converter
        if key is not None:
            return conv.from_json(run.state.get(key), where=f"state {key!r}")
        return {k: conv.from_json(v, where=f"state {k!r}") for k, v in run.state.items()}

    async def history(self, after_seq: int = 0) -> list[dict[str, Any]]:
        """The run's event history in its versioned JSON form, oldest first;
        with ``after_seq``, only the events after that ``seq`` (to tail a run)."""
        if isinstance(after_seq, bool) or not isinstance(after_seq, int):
            raise TypeError(
                f"after_seq must be an int, not {type(after_seq).__name__} {after_seq!r}"
            )
        if after_seq < 0:
            raise ValueError(f"after_seq must not be negative, not {after_seq}")
        run = await self._run()
        events = await self.client.store.history(run.run_id, after_seq)
        return [h.event_to_dict(e) for e in events]
