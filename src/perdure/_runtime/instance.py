"""WorkflowInstance: one workflow run, driven turn by turn. No I/O.

``activate(time, inputs, recorded)`` applies one turn's input events, runs every
coroutine that became ready until none is, and returns the commands produced.
With ``recorded`` (replay), the produced commands are checked one by one against
the commands that turn recorded; the first difference is a
:class:`NonDeterminismError` naming both sides and the line of workflow code.
Mixins hold its rarer services: ``others`` (children, signals and cancel
requests to other workflows), ``recorded`` (patches, side effects, state,
search attributes) and ``updates``. Imports the history model, the converter, perdure's errors
and the rest of the runtime.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from contextvars import Context, ContextVar
from typing import Any, NoReturn

from perdure import _history as h
from perdure._converter import DataConverter, fresh
from perdure._runtime.conditions import Conditions
from perdure._runtime.endings import (
    ContinueAsNewError,
    ExitInWorkflow,
    ForbiddenInWorkflow,
    TurnNeverEnds,
    UnreadablePayload,
    _TurnAborted,
)
from perdure._runtime.locate import brief, raised_at, user_location
from perdure._runtime.loop import DurableTimerHandle, WorkflowLoop
from perdure._runtime.others import FROM_OTHERS, OtherWorkflows
from perdure._runtime.recorded import RecordedValues
from perdure._runtime.runinfo import WorkflowInfo, _Splitmix64
from perdure._runtime.signals import Signals
from perdure._runtime.updates import Updates
from perdure.errors import (
    ActivityError,
    NonDeterminismError,
    PayloadCodecError,
    PayloadError,
    cause_from_failure,
    failure_from_exception,
)

log = logging.getLogger("perdure.runtime")
# Callbacks run while an evicted instance's dead tasks wind down (a bound, in case
# a callback keeps scheduling more).
_EVICT_STEPS = 100_000

# The callbacks one turn may run. Workflow code that keeps itself busy without
# waiting for anything from outside the run never ends its turn: it had held
# its worker's event loop for ever (client.start itself, for a first turn
# computed there), then every other worker's that took the run over.
MAX_TURN_STEPS = 1_000_000
MAX_DRIFT = 3  # activities replayed with other arguments that an instance notes


# The instance whose context this is: set in each instance's own context (see
# WorkflowInstance._context), where all its code runs, and nowhere else.
# (Reading it costs a dictionary lookup; asking asyncio for the running loop,
# a system call on Python 3.11: getpid, which checks for a fork.)
_current: ContextVar[WorkflowInstance | None] = ContextVar("perdure_instance", default=None)


def current_instance() -> WorkflowInstance | None:
    """The running workflow instance, or None outside workflow code."""
    return _current.get()


WorkflowFn = Callable[..., Coroutine[Any, Any, Any]]


class WorkflowInstance(OtherWorkflows, RecordedValues, Updates):
    def __init__(self, fn: WorkflowFn, converter: DataConverter) -> None:
        self.fn = fn
        self.converter = converter
        self.loop = WorkflowLoop(self)
        # Workflow code runs in a context of its own, whichever worker task
        # activates it: it sees no context variable of the worker's, or of an
        # activity that ran before this turn in the same task (determinism).
        self._context = Context()
        self._context.run(_current.set, self)
        self.now_ts = 0.0
        self.activating = False
        self.replaying = False
        self.info: WorkflowInfo | None = None
        self.closed = False  # a closing command was issued
        self.state = {}  # (declared, with search_attributes and _patches, in RecordedValues)
        self.closed_streams = set()
        self.search_attributes = {}
        self.extras: dict[str, Any] = {}  # per-run objects of the API layer (its Random)
        self._rng = _Splitmix64(0)
        self._next_ref = 1
        self._commands: list[h.Command] = []
        self._expected: deque[h.Event] | None = None
        self._error: NonDeterminismError | TurnNeverEnds | None = None
        # Activities replayed with other arguments than recorded (at most
        # MAX_DRIFT): allowed (code may change what it passes), but each got
        # the result recorded for the old arguments, so the worker says so.
        self.drift: list[str] = []
        self._discarding = False
        self._main: asyncio.Task[Any] | None = None
        self._timers: dict[int, DurableTimerHandle] = {}
        self._activities: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._signals = Signals()
        self._conditions = Conditions()
        self._update_ids = set()  # (these three declared in Updates)
        self._unanswered = {}
        self.replied = False
        self._children = {}  # (declared, with the next two, in OtherWorkflows)
        self._signals_out = {}
        self.has_children = False
        self._patches = {}
        self.newer_build = None
        self._cancel_requested = False
        # What every activity the run schedules carries in its options, from
        # the run's history: its headers (WorkflowStarted), and, in a run
        # made by a reset, the run whose activities' idempotency keys its own
        # keep (idempotency_run_id, see h.WorkflowReset).
        self._extra_options: dict[str, Any] = {}
        self._turn = 0
        self.history_length = 0

    # ------------------------------------------------------------- activation

    def activate(
        self,
        time: float,
        inputs: list[h.Event],
        recorded: list[h.Event] | None = None,
        history_length: int = 0,
    ) -> list[h.Command]:
        """Run one turn. ``recorded`` is the turn's recorded commands when replaying;
        ``history_length`` the number of events recorded before this turn."""
        if self.closed:
            raise RuntimeError("activate() on a workflow instance that already closed")
        self._turn += 1
        self.loop.ran = 0
        self.history_length = history_length
        self.now_ts = time
        self.replaying = recorded is not None
        self._expected = deque(recorded) if recorded is not None else None
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        self.activating = True
        try:
            self._context.run(self._run_turn, inputs)
        finally:
            # (First: code interrupted by its worker's watchdog gets its
            # exception at a call's return, never between these lines and it.)
            asyncio.events._set_running_loop(outer)
            self.activating = False
        # Patch markers are optional on replay: code whose patch branch was
        # removed after old runs finished no longer asks for them.
        while self._expected and isinstance(self._expected[0], h.PatchRecorded):
            self._expected.popleft()
        if self._error is None and self._expected:
            missing = self._expected[0]
            self._error = NonDeterminismError(
                f"{self._where()}: history recorded {h.describe_recorded(missing)} "
                f"(event #{missing.seq}), but the workflow code no longer issues it"
            )
        if self._error is not None:
            raise self._error
        commands, self._commands = self._commands, []
        return commands

    def _run_turn(self, inputs: list[h.Event]) -> None:
        for event in inputs:
            self._apply(event)
        run_one = self.loop.run_one
        settle = self._conditions.settle
        left = MAX_TURN_STEPS
        try:
            while self._error is None:
                # Idle: the waits on conditions are tested (in the order they
                # began); one that ends makes its code ready again.
                if not run_one() and not settle():
                    return  # (the turn ended: nothing is ready)
                left -= 1
                if not left:
                    break
            else:
                return  # (the code failed)
        except (SystemExit, KeyboardInterrupt) as exc:
            raise ExitInWorkflow(
                f"workflow code raised {exc!r}{raised_at(exc)}, which would have ended the "
                f"worker's process: a workflow cannot stop its worker (sys.exit(), or a library "
                f"that calls it, such as argparse on bad arguments); the turn is tried again"
            ) from exc
        info = self.info
        name = info.workflow_type if info else getattr(self.fn, "__name__", "?")
        raise TurnNeverEnds(
            f"workflow {name!r} ran {MAX_TURN_STEPS:,} callbacks in turn {self._turn} without "
            f"waiting for anything from outside the run (a busy loop, such as `while not "
            f"done: await asyncio.sleep(0)`), so the turn would never end; wait with "
            f"workflow.wait_signal() or workflow.sleep() instead"
        )

    def _apply(self, event: h.Event) -> None:
        if isinstance(event, h.WorkflowStarted):
            self._start(event)
        elif isinstance(event, h.ActivityCompleted):
            entry = self._activities.pop(event.ref, None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(event.result)
        elif isinstance(event, h.ActivityFailed):
            entry = self._activities.pop(event.ref, None)
            if entry is not None and not entry[1].done():
                cause = cause_from_failure(fresh(event.failure))  # (its own details)
                entry[1].set_exception(
                    ActivityError(
                        f"activity {entry[0]!r} failed after {event.attempt} attempt(s): {cause}",
                        activity=entry[0],
                        attempt=event.attempt,
                        cause=cause,
                    )
                )
        elif isinstance(event, h.TimerFired):
            handle = self._timers.pop(event.ref, None)
            if handle is not None and not handle._cancelled:
                handle._scheduled = False  # a later cancel() must not issue CancelTimer
                self.loop.ready.append(handle)
        elif isinstance(event, h.SignalReceived):
            recorded = event.payload
            try:
                value = self.converter.from_json(recorded, where=f"signal {event.name!r}")
            except PayloadCodecError as exc:
                self._unreadable(exc)
                return
            self._signals.deliver(event.name, recorded, value)
        elif isinstance(event, h.CancelRequested):
            # Only the first request cancels: compensation that runs after it
            # cannot be interrupted by a second one (terminate is the hard stop).
            if not self._cancel_requested and self._main is not None and not self._main.done():
                self._cancel_requested = True
                self._main.cancel(event.reason)
        elif isinstance(event, h.WorkflowReset):
            if event.idempotency_run_id:
                self._extra_options["idempotency_run_id"] = event.idempotency_run_id
            else:
                self._extra_options.pop("idempotency_run_id", None)
        elif isinstance(event, h.PriorityChanged):
            assert self.info is not None
            self.info = dataclasses.replace(self.info, priority=event.priority)
        elif isinstance(event, h.FairnessKeyChanged):
            assert self.info is not None
            self.info = dataclasses.replace(self.info, fairness_key=event.fairness_key or None)
        elif isinstance(event, FROM_OTHERS):
            self._apply_from_others(event)
        else:
            raise ValueError(f"{event.TYPE} is not an input event")

    def _start(self, event: h.WorkflowStarted) -> None:
        self.info = WorkflowInfo(
            workflow_id=event.workflow_id,
            run_id=event.run_id,
            workflow_type=event.workflow_type,
            task_queue=event.task_queue,
            attempt=event.attempt,
            seed=event.seed,
            parent_workflow_id=event.parent_workflow_id,
            parent_run_id=event.parent_run_id,
            continued_from_run_id=event.continued_from_run_id,
            priority=event.priority or h.DEFAULT_PRIORITY,
            fairness_key=event.fairness_key or None,
            headers=dict(event.headers),  # (its own: code may change it)
        )
        if event.headers:
            self._extra_options["headers"] = event.headers
        self._rng = _Splitmix64(event.seed)
        self.search_attributes = dict(event.search_attributes)
        self._main = self.loop.create_task(self._run_main(event.args, event.kwargs))
        self._main.add_done_callback(self._on_main_done)

    async def _run_main(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        # Decoding inside the task makes a payload that does not fit the
        # signature fail the workflow (with the PayloadError) rather than the
        # turn; one this worker cannot open fails the turn (see unreadable).
        try:
            pos, kw = self.converter.decode_args(self.fn, args, kwargs)
        except PayloadCodecError as exc:
            self.unreadable(exc)
        return await self.fn(*pos, **kw)

    def _on_main_done(self, task: asyncio.Task[Any]) -> None:
        if self._discarding:
            return
        command: h.Command
        if task.cancelled():
            command = h.CancelWorkflow()
        elif isinstance(exc := task.exception(), ContinueAsNewError):
            command = h.ContinueAsNew(exc.new_args, exc.new_kwargs, self.handed_on())
        elif isinstance(exc, MemoryError) and self._error is None:
            # The machine's state, not the code's outcome: the turn fails and
            # is tried again (the run is kept), rather than the run for good.
            self._error = TurnNeverEnds(
                f"workflow code ran out of memory ({exc!r}{raised_at(exc)}); the turn is "
                f"tried again"
            )
            return
        elif exc is not None:
            command = h.FailWorkflow(failure_from_exception(exc))
        else:
            try:
                command = h.CompleteWorkflow(self.converter.encode_result(self.fn, task.result()))
            except PayloadError as err:
                command = h.FailWorkflow(failure_from_exception(err))
        self.issue(command)
        self.closed = True

    def forbidden(self, error: Exception) -> None:
        """Workflow code called what its loop forbids (``error``, which it
        gets as well): the turn fails, whatever the code does with it."""
        if self._error is None and not self._discarding:
            self._error = ForbiddenInWorkflow(
                f"{error} (at {self._located()}); the turn is tried again, and the run goes "
                f"on once code that does not make this call runs it"
            )

    def _unreadable(self, exc: PayloadCodecError) -> None:
        if self._error is None:
            self._error = UnreadablePayload(
                f"{exc}; the turn is tried again, and the run goes on once a worker with "
                f"the codecs and keys that wrote it takes it"
            )

    def unreadable(self, exc: PayloadCodecError) -> NoReturn:
        """Workflow code was to receive a recorded payload this worker cannot
        open: the turn fails and is tried again (the run is kept), and the
        code stops here with a BaseException its ``except Exception`` cannot
        take for the value's own failure."""
        self._unreadable(exc)
        raise _TurnAborted()

    # -------------------------------------------------------------- commands

    def issue(self, command: h.Command) -> h.Event | None:
        """Record a command; when replaying, check it against the history,
        and return the recorded event it matched."""
        if self._discarding or self._error is not None or self.closed:
            return None  # nothing a run does after its closing command is recorded
        if self._expected is None:
            self._commands.append(command)
            return None
        closing = isinstance(
            command, (h.CompleteWorkflow, h.FailWorkflow, h.CancelWorkflow, h.ContinueAsNew)
        )
        if not isinstance(command, h.RecordPatch):
            while self._expected and isinstance(self._expected[0], h.PatchRecorded):
                self._expected.popleft()  # a marker the current code does not ask for
        if not self._expected:
            where = "when the workflow function ended" if closing else f"at {self._located()}"
            self._error = NonDeterminismError(
                f"{self._where()}: the workflow code issued {command.describe()} "
                f"{where}, but the history recorded no further command in this turn"
            )
            return None
        recorded = self._expected.popleft()
        if not h.matches(command, recorded):
            where = "when the workflow function ended" if closing else f"at {self._located()}"
            self._error = NonDeterminismError(
                f"{self._where()}: history recorded {h.describe_recorded(recorded)} "
                f"(event #{recorded.seq}), but the workflow code issued "
                f"{command.describe()} {where}"
            )
        elif type(command) is h.ScheduleActivity and len(self.drift) < MAX_DRIFT:
            assert isinstance(recorded, h.ActivityScheduled)
            if (command.args, command.kwargs) != (recorded.args, recorded.kwargs) and (
                self._opened(command.args, command.kwargs)
                != self._opened(recorded.args, recorded.kwargs)
            ):  # (a codec's envelopes differ each time: compare what they hold)
                self.drift.append(
                    f"{command.describe()} at {self._located()}: recorded with "
                    f"{brief(recorded.args, recorded.kwargs)}, replayed with "
                    f"{brief(command.args, command.kwargs)}"
                )
        return recorded

    def _opened(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return self.converter.display([args, kwargs])

    def _located(self) -> str:
        return user_location(WorkflowInstance.activate.__code__)

    def _where(self) -> str:
        info = self.info
        name = info.workflow_type if info else getattr(self.fn, "__name__", "?")
        ident = f" {info.workflow_id!r} (run {info.run_id})" if info else ""
        return f"non-determinism in workflow {name!r}{ident}, turn {self._turn}"

    def next_ref(self) -> int:
        ref = self._next_ref
        self._next_ref += 1
        return ref

    # ----------------------------------------------------- services for the API

    def start_timer(self, handle: DurableTimerHandle, when: float) -> None:
        ref = self.next_ref()
        handle.ref = ref
        handle._scheduled = True  # so TimerHandle.cancel() reaches cancel_timer()
        self._timers[ref] = handle
        self.issue(h.StartTimer(ref=ref, fire_at=when))

    def waits_for_timer(self, ref: int) -> bool:
        """Whether timer ``ref`` is started and has neither fired nor been cancelled."""
        return ref in self._timers

    def cancel_timer(self, handle: DurableTimerHandle) -> None:
        if self._timers.pop(handle.ref, None) is not None:
            self.issue(h.CancelTimer(ref=handle.ref))

    def schedule_activity(
        self,
        name: str,
        task_queue: str,
        args: list[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> tuple[int, asyncio.Future[Any]]:
        """Issue ScheduleActivity; its ref, and the future that gets its JSON
        result (or ActivityError). Whoever awaits the future calls
        abandon_activity if that await is cancelled."""
        ref = self.next_ref()
        future = self.loop.create_future()
        self._activities[ref] = (name, future)
        if self._extra_options:
            options = {**options, **self._extra_options}
        self.issue(h.schedule_activity(ref, name, task_queue, args, kwargs, options))
        return ref, future

    def abandon_activity(self, ref: int, tell: bool = True) -> None:
        """The code awaiting activity ``ref`` was cancelled: tell the engine its
        result is unwanted (unless it already came; ``tell`` False, for the
        cancellation_type "abandon": forget it, and let the activity run on)."""
        if self._activities.pop(ref, None) is not None and tell:
            self.issue(h.CancelActivity(ref=ref))

    def cancel_activity_and_wait(self, ref: int) -> asyncio.Future[Any] | None:
        """The code awaiting activity ``ref`` was cancelled, and waits for the
        activity to end before it goes on (the cancellation_type
        "wait_cancellation_completed"): ask the engine to cancel it, and
        return a new future that its outcome settles (the one the code
        awaited was cancelled with it). None if there is nothing to wait
        for: its outcome came already, or the history being replayed
        cancelled it without waiting (recorded by code that did not wait: no
        outcome was asked for then)."""
        entry = self._activities.get(ref)
        if entry is None:
            return None
        recorded = self.issue(h.CancelActivity(ref=ref, wait=True))
        if self._error is not None or (
            isinstance(recorded, h.ActivityCancelled) and not recorded.wait
        ):
            del self._activities[ref]
            return None
        future = self.loop.create_future()
        self._activities[ref] = (entry[0], future)
        return future

    async def wait_signal(self, name: str, timeout: float | None) -> Any:
        return await self._signals.wait(self.loop, name, timeout)

    async def wait_condition(self, test: Callable[[], object], timeout: float | None) -> None:
        await self._conditions.wait(self.loop, test, timeout)

    def random_bits(self) -> int:
        return self._rng.next()

    def waiting(self) -> dict[str, Any]:
        """What the run's code waits on from outside, as its row keeps it
        (``runs.waiting``): the signal names, and how many waits on
        conditions there are (the key only when some are)."""
        found: dict[str, Any] = {"signals": self._signals.waited_for()}
        conditions = self._conditions.pending()
        if conditions:
            found["conditions"] = conditions
        return found

    # -------------------------------------------------------------- lifecycle

    def on_loop_exception(self, context: dict[str, Any]) -> None:
        if self._discarding:
            return
        log.error(
            "unhandled error in workflow %s: %s",
            self.info.workflow_id if self.info else "?",
            context.get("message"),
            exc_info=context.get("exception"),
        )

    def evict(self) -> None:
        """Drop every pending coroutine without recording anything.

        Closing a coroutine runs its ``finally:`` blocks, which may call workflow
        APIs (a compensation activity); in discarding mode those calls issue no
        command, so eviction never invents history.
        """
        self._discarding = True
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        try:
            self._context.run(self._discard)
        finally:
            asyncio.events._set_running_loop(outer)
        self.loop.close()
        self.loop.detach()
        self._context = Context()  # (it held this instance: no cycle is left)

    def _discard(self) -> None:
        tasks = list(self.loop.tasks)
        for task in tasks:
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            try:
                task.get_coro().close()
            except BaseException:  # a coroutine refusing to close is dropped anyway
                pass
        # Let the dead tasks end as cancelled, so that reference counting frees
        # an evicted instance at once instead of leaving it to the cyclic
        # collector: a pending task and the future it waits on point to each
        # other, and done callbacks (gather's, ours) point back at their owners.
        # Their coroutines are closed: no workflow code runs again here, only
        # done callbacks, which issue nothing in discarding mode.
        for task in tasks:
            task.cancel()
        for _ in range(_EVICT_STEPS):
            if not self.loop.run_one():
                break
        self.loop.tasks.clear()
        self.loop.ready.clear()
        self._main = None
        self._timers.clear()
        self._activities.clear()
        self._signals.drop_waits()
        self._conditions.drop_waits()
