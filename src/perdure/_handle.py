"""WorkflowHandle: a reference to one workflow run (its result, signals,
cancel, terminate, reset, description, state and history), and the checks
on what a client sends into a run. Made by a Client (``perdure.client``,
which exports it); talks to the Client's store only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from perdure import _history as h
from perdure._checks import BadName, check_build, check_name, check_text, timeout_seconds
from perdure._converter import DataConverter
from perdure._store.base import OPEN, RunRecord, new_run_id
from perdure._streams import StreamInfo, StreamPage, read_values, stream_infos, stream_page
from perdure._updates import UpdateHandle, send_update
from perdure._views import ResetPoints, WorkflowDescription, describe_run, waited
from perdure._waiting import MAX_RESULT_POLL, EndWatch
from perdure.errors import (
    PayloadError,
    WorkflowCancelledError,
    WorkflowClosedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
    cause_from_failure,
)

if TYPE_CHECKING:
    from perdure.client import Client

__all__ = ["WorkflowHandle"]

R = TypeVar("R")
T = TypeVar("T")
STATE_POLL_FIRST = 0.01  # seconds: wait_state's first pause (it doubles each time)
E = TypeVar("E", bound=h.Event)


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


def signal_event(converter: DataConverter, name: str, payload: Any) -> h.SignalReceived:
    """The event a client sends as signal ``name`` (``handle.signal``,
    ``signal_with_start``), checked: a bad name or payload raises here."""
    if not isinstance(name, str):
        raise TypeError(f"a signal's name must be a str, not {type(name).__name__} {name!r}")
    check_text("a signal's name", name)
    problem = h.signal_name_problem(name)
    if problem is not None:
        raise BadName(problem)
    encoded = converter.to_json(payload, where=f"payload of signal {name!r}")
    return _checked_event(h.SignalReceived(name=name, payload=encoded))


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
        """Deliver a signal to the handle's run (or the run it continued as new
        in). Once this returns it is durable and will be delivered exactly
        once, after every signal accepted before it."""
        await self._deliver(signal_event(self.client.converter, name, payload))

    async def start_update(
        self, name: str, payload: Any = None, *, update_id: str | None = None
    ) -> UpdateHandle:
        """Send update ``name`` with ``payload``; return once the request is
        durable, as an ``UpdateHandle`` (its ``id``; ``await
        result(timeout=60)`` for the answer). The workflow takes it with
        ``workflow.wait_update(name)`` and answers it once.

        ``update_id`` (default: a new random one) makes the call safe to
        retry: a second call with the same id, to the same run (or after the
        run that answered it continued as new), gets the first one's answer
        and is not taken again. Raises ``WorkflowClosedError`` if the run
        has ended, ``WorkflowNotFoundError``, and for bad arguments before
        anything is sent.
        """
        return await send_update(self, name, payload, update_id)

    async def update(
        self,
        name: str,
        payload: Any = None,
        *,
        update_id: str | None = None,
        timeout: float = 60.0,
    ) -> Any:
        """``start_update``, then the answer: the value the workflow's code
        gave ``request.reply()`` (decoded as JSON, like ``wait_state``).
        Raises ``UpdateRejectedError`` if it called ``request.reject(message)``,
        ``UpdateTimeoutError`` (a ``TimeoutError``: the request stays queued,
        call again with the id it names) after ``timeout`` seconds without
        an answer, ``WorkflowClosedError`` if the run has ended or ends
        without answering, ``WorkflowNotFoundError``.
        """
        timeout = timeout_seconds(timeout)
        sent = await self.start_update(name, payload, update_id=update_id)
        return await sent.result(timeout)

    async def _awaiting(self, waiting: Coroutine[Any, Any, T]) -> T:
        """``await waiting``: a wait for the run (the test environment's
        handles skip time meanwhile)."""
        return await waiting

    async def cancel(self, reason: str | None = None) -> None:
        """Ask the run (or the run it continued as new in) to cancel: workflow
        code sees ``asyncio.CancelledError``."""
        await self._deliver(_checked_event(h.CancelRequested(reason=_reason(reason))))

    async def set_priority(self, priority: int) -> None:
        """Change the run's priority (1 first, 5 last): its workflow task and
        its activities' tasks that have the run's priority (not their own)
        move in their queues' backlogs now, and what it starts next inherits
        the new one. Recorded in its history (``PriorityChanged``), where
        ``workflow.info().priority`` changes. Follows continue-as-new as
        ``signal`` does; raises WorkflowClosedError once the run has ended."""
        checked = h.check_priority("priority", priority)
        if checked is None:
            raise TypeError("priority must be an int from 1 (first) to 5 (last), not None")
        await self._to_open_run(
            lambda run_id: self.client.store.set_priority(self.id, run_id, checked)
        )

    async def set_fairness_key(self, fairness_key: str | None) -> None:
        """Change whose work the run is (``fairness_key``; None for no key):
        its workflow task and its activities' tasks that have the run's key
        (not their own) move to the new key's turn in their queues now, an
        attempt running counts against the new key's limit, and what the
        run starts next inherits it. Recorded in its history
        (``FairnessKeyChanged``), where ``workflow.info().fairness_key``
        changes. Follows continue-as-new as ``signal`` does; raises
        WorkflowClosedError once the run has ended."""
        check_name("fairness_key", fairness_key, none_means="no key")
        key = fairness_key or ""
        await self._to_open_run(
            lambda run_id: self.client.store.set_fairness_key(self.id, run_id, key)
        )

    async def set_build_id(self, build_id: str | None) -> None:
        """Pin the run to the worker build ``build_id``: its next turns go to
        that build's workers only (a turn in flight on another is fenced
        out and run again there). None unpins it: the queue's current build
        takes it on, and pins it again if its workflow type is pinned. For
        a run whose build's workers are gone, or a fix deployed as a new
        build (docs/versioning.md). Follows continue-as-new as ``signal``
        does; raises WorkflowClosedError once the run has ended."""
        check_build("build_id", build_id, none_means="unpinned")
        await self._to_open_run(
            lambda run_id: self.client.store.set_run_build(self.id, run_id, build_id)
        )

    async def _deliver(self, event: h.Event) -> RunRecord:
        """Into the run's inbox (see _to_open_run)."""
        return await self._to_open_run(
            lambda run_id: self.client.store.deliver(self.id, run_id, event)
        )

    async def _to_open_run(self, act: Callable[[str | None], Awaitable[RunRecord]]) -> RunRecord:
        """``act`` on the handle's run, or, if that run has continued as new,
        on the run it continued in (a handle from ``start()`` names the first
        run of a workflow that may have rolled over many times); on the
        latest run of the id for a handle without a run id."""
        run_id = self.run_id
        while True:
            try:
                return await act(run_id)
            except WorkflowClosedError:
                if run_id is None:
                    raise
                run_id = (await self._run(run_id)).continued_to
                if run_id is None:
                    raise

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
        points = h.reset_points(events)
        wanted = set(points)
        types = {e.seq: e.TYPE for e in events if e.seq in wanted}
        return ResetPoints(points, h.default_point(events), types)

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
        # Why its turn or an activity has waited long: the workers serving them.
        turn = pending.workflow_task
        now = self.client.store.clock()
        long = (turn is not None and turn.ahead is not None) or any(
            waited(a, now) for a in pending.activities
        )
        workers = await self.client._live_workers() if long else []
        current = await self.client.store.current_build(run.task_queue) if long else None
        return describe_run(run, pending, self.client.converter.display, now, workers, current)

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

    async def wait_state(self, key: str, timeout: float = 60.0) -> Any:
        """Wait until the run publishes ``key`` (``workflow.set_state``) and
        return its value: what DBOS's ``get_event`` does (a checkout that
        publishes its payment link for the request that started it), in
        this run or the runs it continued as new in. Raises ``TimeoutError`` after
        ``timeout`` seconds, and ``WorkflowClosedError`` if the run ends
        without publishing it. (It reads the run every 10 ms at first, then
        less often, up to the client's ``poll_interval``.)"""
        if not isinstance(key, str):
            raise TypeError(f"a state key is a str, not {type(key).__name__} {key!r}")
        timeout = timeout_seconds(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = STATE_POLL_FIRST
        run_id = self.run_id
        while True:
            run = await self._run(run_id)
            if key in run.state:
                return self.client.converter.from_json(run.state[key], where=f"state {key!r}")
            if run.continued_to is not None:
                run_id = run.continued_to  # (its next run: read at once)
                continue
            if run.status != OPEN:
                raise WorkflowClosedError(
                    f"run {run.run_id} of workflow {self.id!r} ended {run.status} "
                    f"without publishing state {key!r}"
                )
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(
                    f"workflow {self.id!r} did not publish state {key!r} within {timeout:g}s"
                )
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, max(STATE_POLL_FIRST, self.client.poll_interval))

    def read_stream(
        self, key: str, start: int = 0, *, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """The values of the run's stream ``key`` (``workflow.write_stream``,
        ``activity.write_stream``), from position ``start`` on, as they are
        written: ``async for token in handle.read_stream("answer"): ...``.
        Ends once the workflow closed the stream, or the run ended, and
        every value was read; raises ``TimeoutError`` if it has not ended
        after ``timeout`` seconds (None: no limit). Reads the handle's run,
        or the latest run of the id when reading starts (not the runs it
        continues as new in: each run has its own streams)."""
        return read_values(self, key, start, timeout)

    async def stream_page(self, key: str, start: int = 0, limit: int = 100) -> StreamPage:
        """The values of the stream ``key`` from position ``start`` on (at
        most ``limit``) with their positions, times and writers, without
        waiting: a ``StreamPage`` (``entries``, ``next_start``, ``finished``)."""
        return await stream_page(self, key, start, limit)

    async def streams(self) -> list[StreamInfo]:
        """The run's streams, by key: each one's length and whether it is closed."""
        return await stream_infos(self)

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
