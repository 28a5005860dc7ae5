"""Activity execution: run one claimed attempt, then complete, retry or fail it.

An attempt's outcome is written with the attempt's lease token, so an attempt
that lost its lease (timed out, worker presumed dead) cannot overwrite a newer
one. Heartbeats are saved (throttled: ``heartbeats``) with the task; they
extend the lease of activities that have a ``heartbeat_timeout`` (nothing
else does, so a stalled attempt's lease lapses and another worker retries
it), and they are how a running attempt learns that its workflow cancelled
it. Imports the activity definitions, retry policy, errors, the Store and
the worker's attempt helpers (the attempt's record, outcomes, streams,
threads).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from perdure import _history as h
from perdure._converter import DataConverter
from perdure._store.base import ActivityTask, Store
from perdure._worker.attempt import STOPPED_BECAUSE, Attempt
from perdure._worker.crashpoints import crash_point
from perdure._worker.outcomes import (
    attempts_ended,
    cancelled_failure,
    completion_deadline,
    failure_outcome,
    lost_backoff,
    operator_stop,
    unretried_failure,
)
from perdure._worker.outcomes import failure as _failure_dict
from perdure._worker.streams import AttemptStreams
from perdure._worker.threads import SPARE_THREADS, ActivityThreads, Escaped, ThreadedCall, in_thread
from perdure.activity import (
    ActivityFunction,
    CompleteAsyncError,
    _context,
)
from perdure.errors import (
    PayloadCodecError,
    StoreError,
)
from perdure.interceptors import ActivityCall, Interceptor, intercepted

log = logging.getLogger("perdure.worker")

UNKNOWN_ACTIVITY_RETRY = 5.0  # (also for arguments this worker cannot open)


class WorkerStopped(Exception):
    """An attempt still running when its stopping worker's drain_timeout
    passed: stopped, and recorded as ended, so that another worker runs the
    next attempt at once instead of when the attempt's lease runs out."""


class ActivityTimeoutError(Exception):
    """An attempt outlived its start_to_close, schedule_to_close or heartbeat timeout."""


class _Unopened(Exception):
    """The attempt's arguments (or heartbeat details) are stored through
    codecs this worker cannot undo (a PayloadCodecError): not the activity's
    failure, and not run."""

    def __init__(self, error: PayloadCodecError) -> None:
        super().__init__(error)
        self.error = error


class ActivityRunner:
    def __init__(
        self,
        store: Store,
        converter: DataConverter,
        activities: dict[str, ActivityFunction[Any, Any]],
        max_threads: int,
        lease_timeout: float,
    ) -> None:
        self.store = store
        self.converter = converter
        self.activities = activities
        self.lease_timeout = lease_timeout
        # Threads are made as needed: one per attempt in flight, and one per
        # function still running after its attempt ended (see threads.py).
        self._pool = ActivityThreads(max_threads + SPARE_THREADS, "perdure-activity")
        self.overrunning: set[ThreadedCall] = set()  # (see _overran)
        self.running: dict[int, Attempt] = {}
        self.stream_flushes: set[asyncio.Task[None]] = set()  # (see AttemptStreams)
        # The worker's loop, set when it starts serving: every attempt runs
        # on it. (Asking asyncio for the running loop or task costs a system
        # call on Python 3.11, getpid, which checks for a fork.)
        self.loop: asyncio.AbstractEventLoop | None = None
        # Where an attempt's final outcome goes; the worker may route it into an
        # inline turn instead (see TurnRunner.continue_inline).
        self.deliver: Callable[[ActivityTask, h.Event], Awaitable[Any]] = store.complete_activity
        # If another live worker of the queue registers a workflow type or
        # activity, how long a task of it claimed here waits for it
        # (Registration.hand_back_delay); None: no such worker.
        self.hand_back_delay: Callable[[str, str, int], Awaitable[float | None]] | None = None
        # Those of the client's interceptors that wrap each attempt.
        self.interceptors: tuple[Interceptor, ...] = ()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stop_all(self) -> None:
        """Stop every attempt running here (the worker is stopping and its
        drain_timeout passed); each records its end (see _stopped)."""
        for running in list(self.running.values()):
            running.stop("worker_stopped")

    def renewable(self) -> list[tuple[int, str]]:
        """Leases the worker's generic renewal may extend: every attempt except
        those whose liveness is proven by heartbeats only."""
        return [
            (r.task.task_id, r.task.token)
            for r in self.running.values()
            if r.heartbeat_timeout is None
        ]

    async def run(self, task: ActivityTask) -> None:
        if task.cancel_requested:
            # Its workflow cancelled the attempt the claim found lost: the
            # activity is not wanted any more, so it is not run again.
            await self._fail(task, cancelled_failure(), task.attempt - 1)
            return
        activity = self.activities.get(task.name)
        if activity is None:
            await self._unknown(task)
            return
        options = task.options
        max_attempts = options["retry"].get("max_attempts")
        if max_attempts is not None and task.attempt > max_attempts:
            # The previous attempt was lost (its worker died or its lease ran out)
            # and it was the last one allowed.
            lost = task.attempts[-1].get("error") if task.attempts else None
            why = (lost or {}).get("message") or "its worker stopped or it outlived its lease"
            message = (
                f"attempt {task.attempt - 1} of activity {task.name!r} was lost ({why}) "
                f"and no attempts remain"
            )
            await self._fail(
                task, _failure_dict("ActivityTimeoutError", message, True), task.attempt - 1
            )
            return
        timeout = options.get("start_to_close_timeout")
        close_by = options.get("schedule_to_close_timeout")
        if close_by is not None:
            left = task.scheduled_at + close_by - self.store.clock()
            if left <= 0:
                message = (
                    f"activity {task.name!r} exceeded its schedule_to_close_timeout "
                    f"of {close_by:g}s (its attempt {task.attempt} did not start in time"
                    f"{h.last_error(task.attempts)})"
                )
                await self._fail(
                    task, _failure_dict("ActivityTimeoutError", message, True), task.attempt
                )
                return
            timeout = left if timeout is None else min(timeout, left)
        if len(task.attempts) > 1 and (waits := lost_backoff(task, self.store.clock())):
            log.warning("%s", waits[1]["message"])
            await self.store.hand_back(task, *waits)
            return
        running = Attempt(task, options.get("heartbeat_timeout"), self)
        self.running[task.task_id] = running
        watchdog = None
        try:
            if running.heartbeat_timeout is not None:
                await self.store.renew_leases(
                    [(task.task_id, task.token)], running.heartbeat_timeout
                )
                watchdog = asyncio.create_task(running.heartbeats().watch(running))
            result = await self._execute(activity, task, running, timeout)
        except asyncio.CancelledError:
            if running.stop_reason is None:
                raise  # the worker is shutting down
            # An attempt that ran in this task was stopped by cancelling the
            # task: it goes on, to record the stop (asyncio.timeout and
            # TaskGroup count cancellations).
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if running.streams is not None:
                await running.streams.drain()  # (its values before the next attempt's)
            await self._stopped(running)
            return
        except _Unopened as exc:
            await self._unopened(task, exc.error)
            return
        except CompleteAsyncError:
            # Another process will give the outcome, with the task token.
            if running.streams is not None:
                await running.streams.drain()
            await self._await_completion(task)
            return
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            # On the loop's thread these may be the program's own stop (a
            # signal handler's sys.exit() lands wherever the thread is).
            raise
        except BaseException as exc:  # an Exception, or the code's own BaseException
            # The attempt failed, not the worker: sys.exit() in a plain def
            # activity had ended the worker's process, and then every one it reached.
            failed = exc.inner if isinstance(exc, Escaped) else exc
            if running.streams is not None:
                await running.streams.drain()
            await self._handle_failure(task, failed, running=running)
            return
        finally:
            self.running.pop(task.task_id, None)
            if watchdog is not None:
                watchdog.cancel()
        if running.streams is not None:
            await running.streams.drain()  # (a reader who sees the step done has its values)
        crash_point("activity.before_complete")
        attempts = self._attempts(task, task.attempt, None)
        if not await self.deliver(
            task, h.activity_completed(task.ref, result, task.attempt, attempts)
        ):
            await self._unrecorded(task)
        crash_point("activity.after_complete")

    async def _await_completion(self, task: ActivityTask) -> None:
        """Let the attempt's task go: it waits for its outcome from the
        process its function gave the task token to, until its deadline."""
        until = completion_deadline(task, self.store.clock())
        crash_point("activity.before_await")
        if await self.store.await_completion(task, until):
            log.debug(
                "activity %s (run %s) attempt %d awaits completion by its task token",
                task.name,
                task.run_id,
                task.attempt,
            )
        else:  # (its outcome came already, or its lease was lost)
            log.debug(
                "activity %s (run %s) attempt %d ended already",
                task.name,
                task.run_id,
                task.attempt,
            )

    async def _unrecorded(self, task: ActivityTask) -> None:
        """Say why an attempt's result was not recorded: its task row holds
        another attempt's lease now, or is gone because its run ended (a
        workflow that stopped waiting for it, as ``asyncio.wait_for`` does,
        may end before a cancelled attempt that never heartbeats does)."""
        try:
            run = await self.store.get_run(task.workflow_id, task.run_id)
        except StoreError:
            run = None
        if run is not None and not run.is_open:
            log.info(
                "activity %s (run %s) attempt %d completed after its run had ended (%s): "
                "its result was not needed",
                task.name,
                task.run_id,
                task.attempt,
                run.status,
            )
            return
        log.warning(
            "activity %s (run %s) attempt %d completed, but its result was not recorded: "
            "its lease had run out and another attempt took the task over (was this "
            "worker's event loop blocked? see the watchdog's warnings)",
            task.name,
            task.run_id,
            task.attempt,
        )

    async def _execute(
        self,
        activity: ActivityFunction[Any, Any],
        task: ActivityTask,
        running: Attempt,
        timeout: float | None,
        intercepted_call: ActivityCall | None = None,
    ) -> Any:
        """Run the attempt's function and return its result, encoded. With
        interceptors, this calls itself inside them, given the call they
        passed on (``intercepted_call``), and then returns what the function
        returned, not encoded (one coroutine serves both: a step without
        interceptors pays for no second one)."""
        loop: asyncio.AbstractEventLoop | None
        if intercepted_call is None:
            try:
                args, kwargs = self.converter.decode_args(activity.fn, task.args, task.kwargs)
                if task.heartbeat is not None:
                    running.first_details = self.converter.from_json(task.heartbeat)
            except PayloadCodecError as exc:
                raise _Unopened(exc) from exc
            loop = running.loop = self.loop or asyncio.get_running_loop()
            running.is_async = activity.is_async
            if self.interceptors:
                value = await intercepted(
                    self.interceptors,
                    ActivityCall(running.info, tuple(args), kwargs),
                    # (A partial, not a lambda: a closure would make this
                    # coroutine's locals cells for every attempt.)
                    functools.partial(self._execute, activity, task, running, timeout),
                )
                return self.converter.encode_result(activity.fn, value)
        else:
            args, kwargs = list(intercepted_call.args), intercepted_call.kwargs
            loop = running.loop
            assert loop is not None
        if activity.is_async and timeout is None:
            # In this task, the attempt's (see Worker._spawn; an ending
            # attempt may hand it to the next: Worker._run_inline): no second
            # task per attempt. Stopping it cancels this task; its context
            # variables stay in this task, which holds the worker's clean
            # context when an attempt begins, and never reach workflow code
            # (which runs in its instance's own context).
            running.future = asyncio.current_task(loop)
            token = _context.set(running)
            try:
                value = await activity.fn(*args, **kwargs)
            finally:
                running.future = None
                _context.reset(token)
            if intercepted_call is not None:
                return value
            return self.converter.encode_result(activity.fn, value)
        ctx = contextvars.copy_context()
        ctx.run(_context.set, running)
        awaitable: asyncio.Future[Any]
        call = None
        if activity.is_async:
            # A task copies the context current at its creation: create it inside ctx.
            awaitable = ctx.run(loop.create_task, activity.fn(*args, **kwargs))
        else:
            # Plain `def` activities run in the thread pool, with the same context.
            call = ThreadedCall(self.overrunning.discard)
            awaitable = loop.run_in_executor(
                self._pool,
                functools.partial(ctx.run, in_thread, call.run, activity.fn, args, kwargs),
            )
        running.future = awaitable
        if timeout is not None:
            running.deadline = loop.time() + timeout
        why = "it timed out"
        try:
            value = await (awaitable if timeout is None else asyncio.wait_for(awaitable, timeout))
        except asyncio.CancelledError:
            why = STOPPED_BECAUSE.get(running.stop_reason or "", "its worker stopped")
            raise
        except TimeoutError as exc:
            if timeout is None or not awaitable.cancelled():
                raise  # the activity's own TimeoutError, not our deadline
            which = "start_to_close_timeout"
            if timeout != task.options.get("start_to_close_timeout"):
                which = "schedule_to_close_timeout"
            raise ActivityTimeoutError(
                f"activity {task.name!r} attempt {task.attempt} exceeded its {which} "
                f"({timeout:g}s for this attempt)"
            ) from exc
        finally:
            # The task holds its context, whose heartbeat callback holds
            # ``running``: dropping this link leaves no cycle for the garbage
            # collector to find, so the attempt is freed when it ends.
            running.future = None
            if call is not None and call.stop():
                self._overran(call, task, why)
        if intercepted_call is not None:
            return value
        return self.converter.encode_result(activity.fn, value)

    def _overran(self, call: ThreadedCall, task: ActivityTask, why: str) -> None:
        """The attempt ended while its plain def function still ran."""
        self.overrunning.add(call)
        held = len(self.overrunning)
        log.warning(
            "activity %s (run %s) attempt %d ended (%s) while its function still ran: "
            "AttemptEnded was raised in its thread, which stops it at its next Python line "
            "(a blocking call must return first; give such calls a timeout); "
            "%d thread(s) held so%s",
            task.name,
            task.run_id,
            task.attempt,
            why,
            held,
            "" if held < SPARE_THREADS else ", all spare: new attempts wait for a thread",
        )

    # ------------------------------------------------------------ heartbeats

    def _stream(self, running: Attempt, key: str, value: Any) -> None:
        if running.streams is None:
            assert running.loop is not None
            running.streams = AttemptStreams(
                self.store, running.task, running.loop, self.stream_flushes
            )
        running.streams.add(key, value)

    async def _unknown(self, task: ActivityTask) -> None:
        """A claimed activity this worker does not register goes back to the
        queue, its claim not counted as an attempt (it never ran): at once
        for the other workers on the queue if one registers it (a rolling
        deploy that adds an activity), else after UNKNOWN_ACTIVITY_RETRY,
        with why as its last_failure. A claim here had used up an attempt:
        a few, and the activity failed for good without running."""
        handing = self.hand_back_delay
        delay = None if handing is None else await handing("activity", task.name, task.task_id)
        if delay is not None:
            await self.store.hand_back(task, delay)
            return
        known = ", ".join(sorted(self.activities)) or "none"
        message = f"activity {task.name!r} is not registered on this worker (registered: {known})"
        log.warning("%s", message)
        failure = _failure_dict("ActivityNotRegistered", message, False)
        await self.store.hand_back(task, UNKNOWN_ACTIVITY_RETRY, failure)

    async def _unopened(self, task: ActivityTask, error: PayloadCodecError) -> None:
        """An attempt whose arguments this worker cannot open (it lacks a
        codec key, during a deploy that adds one) goes back to the queue as
        an unknown activity does: not run, its claim not counted as an
        attempt, tried again after UNKNOWN_ACTIVITY_RETRY with why as its
        last_failure. It had failed the activity for good."""
        message = f"activity {task.name!r} not run on this worker: {error}"
        log.warning("%s", message)
        failure = _failure_dict("PayloadCodecError", message, False)
        await self.store.hand_back(task, UNKNOWN_ACTIVITY_RETRY, failure)

    # ------------------------------------------------------------ outcomes

    async def _stopped(self, running: Attempt) -> None:
        task = running.task
        if running.stop_reason == "cancelled":
            await self._fail(task, cancelled_failure(), task.attempt)
        elif running.stop_reason == "heartbeat_timeout":
            timeout = running.heartbeat_timeout or 0
            error = ActivityTimeoutError(
                f"activity {task.name!r} attempt {task.attempt} sent no heartbeat for "
                f"{timeout:g}s (heartbeat_timeout)"
            )
            await self._handle_failure(task, error, running=running)
        elif running.stop_reason == "worker_stopped":
            # Counted as an attempt, as one lost with a killed worker is (it
            # may have had effects); the next one is due at once, for the
            # other workers, not when this one's lease would have run out.
            stopped = WorkerStopped(
                f"activity {task.name!r} attempt {task.attempt} was stopped: "
                f"{STOPPED_BECAUSE['worker_stopped']}"
            )
            await self._handle_failure(task, stopped, delay=0.0, running=running)
        elif running.stop_reason in ("paused", "reset"):
            # Handed back, not counted as an attempt (the operator stopped
            # it, not a fault), as Temporal's pause and reset do to a
            # heartbeating attempt: a paused task is parked until the
            # activity is unpaused; a reset one is due at once, and the claim
            # that takes it counts its attempts from 1 (sqlleases.claimed).
            message, stopped_by = operator_stop(task, running.stop_reason, "at its heartbeat")
            log.info("%s", message)
            await self.store.hand_back(task, 0.0, stopped_by)
        # "lost": another worker owns the task now; write nothing.

    def _attempts(
        self, task: ActivityTask, attempt: int, failure: dict[str, Any] | None
    ) -> list[Any]:
        return attempts_ended(task, attempt, failure, self.store.clock())

    async def _fail(self, task: ActivityTask, failure: dict[str, Any], attempt: int) -> None:
        attempts = self._attempts(task, attempt, failure)
        await self.deliver(
            task,
            h.ActivityFailed(ref=task.ref, failure=failure, attempt=attempt, attempts=attempts),
        )

    async def _handle_failure(
        self,
        task: ActivityTask,
        exc: BaseException,
        *,
        delay: float | None = None,
        running: Attempt | None = None,
    ) -> None:
        """Record a failed attempt: the next one after the policy's delay (or
        ``delay``), or the activity's failure if none may follow. By the
        options as they are now: an operator may have changed them while
        the attempt ran (AsyncActivityHandle.update_options, reset). A retry
        keeps the attempt's last heartbeat details (``running``'s), which
        its throttled writes may not have saved yet."""
        task = await self._current_options(task)
        try:
            failure, retry_in = failure_outcome(task, exc, self.store.clock(), delay)
        except Exception as why:
            # (A policy its worker cannot apply had left the attempt
            # unrecorded: lost at its lease's end and run again, for ever,
            # with unlimited retries. It fails the activity instead.)
            log.exception(
                "activity %s (run %s): its retry policy could not be applied",
                *(task.name, task.run_id),
            )
            failure, retry_in = unretried_failure(exc, why), None
        if retry_in is not None:
            log.info(
                "activity %s (run %s) attempt %d failed: %s; retrying in %.3gs",
                *(task.name, task.run_id, task.attempt, exc, retry_in),
            )
            beats = None if running is None else running.beats
            await self.store.retry_activity(
                task, failure, retry_in, None if beats is None else beats.kept()
            )
            return
        await self._fail(task, failure, task.attempt)

    async def _current_options(self, task: ActivityTask) -> ActivityTask:
        """``task`` with its activity's options as they are now (itself if
        unchanged or unreadable: the write that follows finds a lost lease)."""
        try:
            options = await self.store.activity_options(task.task_id, task.token)
        except StoreError as exc:
            log.warning("could not read the options of activity %s: %s", task.name, exc)
            return task
        if options is None or options == task.options:
            return task
        return replace(task, options=options)
