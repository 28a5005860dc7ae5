"""Activity-side API: ``activity.defn``, ``activity.info()``, ``activity.heartbeat()``.

An activity is where side effects live. Inside a workflow, calling an activity
function records a ScheduleActivity command and awaits its durable result;
anywhere else it simply runs the function, so activities stay unit-testable.
Imports the runtime (to detect workflow code), the converter, retry and errors.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar, overload

from perdure import _history as h
from perdure._checks import check_name, check_queue
from perdure._converter import DataConverter
from perdure._runtime import current_instance
from perdure._runtime.cancelwait import CancellationType, check_cancellation_type, wait_out
from perdure.errors import PayloadCodecError
from perdure.retry import RetryPolicy

__all__ = [
    "ActivityFunction",
    "ActivityInfo",
    "ActivityOptions",
    "CancellationType",
    "CompleteAsyncError",
    "cancellation_reason",
    "defn",
    "heartbeat",
    "in_activity",
    "info",
    "logger",
    "raise_complete_async",
    "write_stream",
]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class ActivityOptions:
    task_queue: str | None = None
    retry: RetryPolicy | None = None
    start_to_close_timeout: timedelta | None = None
    schedule_to_close_timeout: timedelta | None = None
    heartbeat_timeout: timedelta | None = None
    priority: int | None = None  # 1 (first) to 5 (last); None: its run's
    fairness_key: str | None = None  # None: its run's (docs/queues.md "Fairness")
    # What cancelling the workflow code's await of it does (CancellationType):
    # None is "try_cancel". Not recorded in its ActivityScheduled: the code
    # that awaits decides, and its ActivityCancelled records whether it waited.
    cancellation_type: CancellationType | None = None

    def __post_init__(self) -> None:
        # Refused here, where the activity is defined or called, rather than
        # found out at run time (a zero timeout failed every attempt at once).
        for name in ("start_to_close_timeout", "schedule_to_close_timeout", "heartbeat_timeout"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, timedelta) and value > timedelta(0)):
                raise ValueError(f"{name} must be a positive timedelta (or None), not {value!r}")
        check_queue("task_queue", self.task_queue, none_means="the workflow's queue")
        h.check_priority("priority", self.priority)
        check_name("fairness_key", self.fairness_key, none_means="its run's")
        # (As Temporal's ActivityCancellationType: see _runtime.cancelwait. For
        # an activity, "wait_cancellation_completed" waits for its attempt to
        # stop at a heartbeat, or to end on its own; at once if none holds it.)
        check_cancellation_type(self.cancellation_type)
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            # (A dict here had failed the workflow at run time, with AttributeError.)
            raise TypeError(
                f"retry must be a RetryPolicy (or None for the default), not "
                f"{type(self.retry).__name__} {self.retry!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in ActivityScheduled (the worker reads it back)."""

        def secs(d: timedelta | None) -> float | None:
            return None if d is None else d.total_seconds()

        recorded: dict[str, Any] = {
            "retry": (self.retry or RetryPolicy()).to_dict(),
            "start_to_close_timeout": secs(self.start_to_close_timeout),
            "schedule_to_close_timeout": secs(self.schedule_to_close_timeout),
            "heartbeat_timeout": secs(self.heartbeat_timeout),
        }
        if self.priority is not None:  # (none: its run's; histories before priorities)
            recorded["priority"] = self.priority
        if self.fairness_key is not None:  # (none: its run's)
            recorded["fairness_key"] = self.fairness_key
        return recorded


@dataclass(frozen=True)
class ActivityInfo:
    """What a running activity attempt knows about itself (``activity.info()``)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    activity_id: str
    activity_type: str
    task_queue: str
    attempt: int
    idempotency_key: str
    """Stable across retries and crashes: ``{workflow_id}/{run_id}/{activity_id}``.
    Pass it to external systems (a payment API's idempotency key) to get
    exactly-once effects out of at-least-once execution. In a run made by
    ``WorkflowHandle.reset``, the key's run id is not this run's but that of
    the run reset (the first of a chain of resets), so an activity scheduled
    again at the same point keeps its key."""
    heartbeat_details: Any = None
    priority: int = 3
    """Its task's priority, 1 (first) to 5 (last): its own, else its run's."""
    fairness_key: str | None = None
    """Its task's fairness key: its own, else its run's; None if neither has one."""
    task_token: str = ""
    """Names this attempt for another process to complete it
    (``Client.get_async_activity_handle``) once its function has called
    ``raise_complete_async()``. A capability: whoever holds it can complete
    or fail the attempt; pass it only to the system that will."""
    headers: dict[str, str] = field(default_factory=dict)
    """Its run's headers: what the client's interceptors wrote as the run
    (or the run that started it) began, such as a trace context
    (``perdure.interceptors``). Empty if none."""


class _ActivityContext:
    """What a running attempt offers ``activity.info()`` and ``heartbeat()``.
    The worker's own record of the attempt is one
    (``perdure._worker.attempt.Attempt``): nothing more is made per
    attempt for them, and its info is built only when first asked for (most
    attempts never ask: building it for each cost about 1% of a step)."""

    __slots__ = ()

    @property
    def info(self) -> ActivityInfo:
        raise NotImplementedError

    def on_heartbeat(self, details: Any) -> None:
        raise NotImplementedError

    def cancellation_reason(self) -> str | None:
        raise NotImplementedError

    def on_stream(self, key: str, value: Any) -> None:
        raise NotImplementedError

    @property
    def converter(self) -> DataConverter:
        """The worker's converter (what ``perdure.transactions`` records a
        result with, as the worker records it)."""
        raise NotImplementedError


_context: ContextVar[_ActivityContext | None] = ContextVar("perdure_activity", default=None)


def info() -> ActivityInfo:
    ctx = _context.get()
    if ctx is None:
        raise RuntimeError("activity.info() can only be called inside a running activity")
    return ctx.info


def in_activity() -> bool:
    return _context.get() is not None


def heartbeat(details: Any = None) -> None:
    """Tell the worker this attempt is alive (and record progress ``details``).
    Outside an activity this does nothing, so activities stay unit-testable."""
    ctx = _context.get()
    if ctx is not None:
        ctx.on_heartbeat(details)


def cancellation_reason() -> str | None:
    """Why the worker stopped this attempt, once it has (the
    ``asyncio.CancelledError`` an ``async def`` activity gets, or that a
    plain ``def`` one's ``heartbeat()`` raises): "cancelled" (its workflow
    cancelled it), "paused" or "reset" (an operator paused or reset its
    activity: the attempt is handed back, not counted, and the work may
    resume later), "heartbeat_timeout", "timed_out" (its
    start_to_close_timeout or schedule_to_close_timeout passed),
    "worker_stopped" (its worker's drain ended), "lost" (its lease was
    lost, and another attempt may run; or its run ended). None while it has
    not been stopped, and outside an activity. So the code that catches the
    stop can tell a pause, after which an outside job should be left
    running, from a cancellation, after which it should be undone
    (Temporal's ``activity.cancellation_details()``)."""
    ctx = _context.get()
    return None if ctx is None else ctx.cancellation_reason()


class _AttemptLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds the running attempt to each record: its message starts with
    ``[activity_type workflow_id #activity_id attempt N]``, and its
    ``extra`` holds ``workflow_id``, ``run_id``, ``activity_id``,
    ``activity_type`` and ``attempt`` (for a structured handler). Outside
    an activity it logs as a plain logger."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        ctx = _context.get()
        if ctx is not None:
            info = ctx.info
            extra = dict(kwargs.get("extra") or {})
            extra.setdefault("workflow_id", info.workflow_id)
            extra.setdefault("run_id", info.run_id)
            extra.setdefault("activity_id", info.activity_id)
            extra.setdefault("activity_type", info.activity_type)
            extra.setdefault("attempt", info.attempt)
            kwargs["extra"] = extra
            msg = (
                f"[{info.activity_type} {info.workflow_id} #{info.activity_id} "
                f"attempt {info.attempt}] {msg}"
            )
        return msg, kwargs


logger = _AttemptLogger(logging.getLogger("perdure.activity"), {})
"""``activity.logger.info("charging %s", order)``: a logger that names the
running attempt (as ``workflow.logger`` names the run), as Temporal's
``activity.logger`` does. A retried attempt logs again: it runs again."""


class CompleteAsyncError(BaseException):
    """Raised by ``raise_complete_async()``: the attempt's outcome will come
    from another process. A BaseException, so that ``except Exception`` in
    the activity does not catch it."""


def raise_complete_async() -> NoReturn:
    """End this attempt's function without an outcome: another process will
    give it, with the attempt's ``info().task_token``
    (``client.get_async_activity_handle(token).complete(result)``, or
    ``.fail(error)``). Until then the activity is pending, holding no worker
    slot; its timeouts still apply (start_to_close and schedule_to_close
    from the attempt's start, heartbeat_timeout from the last heartbeat
    the completing process sends), and when one passes the attempt is lost
    and retried per its retry policy, with a new token."""
    if _context.get() is None:
        raise RuntimeError(
            "activity.raise_complete_async() can only be called in a running activity"
        )
    raise CompleteAsyncError()


def write_stream(key: str, value: Any) -> None:
    """Append a JSON-encodable value to the stream ``key`` of the run that
    scheduled this activity, for clients to read as it grows
    (``handle.read_stream(key)``): a model's tokens as they come, progress.
    Returns at once; the worker writes the values in order, and before it
    records the attempt's outcome. At least once: a retried activity writes
    its values again (each value says which attempt wrote it). Outside an
    activity this does nothing, so activities stay unit-testable."""
    check_name("a stream key", key)
    ctx = _context.get()
    if ctx is not None:
        ctx.on_stream(key, value)


async def _result(
    fn: Callable[..., Any],
    inst: Any,
    ref: int,
    future: Awaitable[Any],
    cancellation: str | None = None,
) -> Any:
    """What a workflow awaits for an activity it called: its decoded result.
    (A function of its own, not a closure made at each call: no function
    object and cells per step for the collector to walk while it waits.)"""
    try:
        data = await future
    except asyncio.CancelledError:
        # The awaiting code was cancelled (which cancels the future it waits
        # on): the engine need not wait for this result. Said here, when the
        # cancellation reaches this await, rather than by a callback on the
        # future: a step costs one callback fewer, and the command comes at
        # the same point of the turn.
        if cancellation != "wait_cancellation_completed":
            inst.abandon_activity(ref, tell=cancellation != "abandon")
            raise
        await wait_out(inst.cancel_activity_and_wait(ref))
        raise
    try:
        return inst.converter.decode_result(fn, data)
    except PayloadCodecError as exc:
        inst.unreadable(exc)


class ActivityFunction(Generic[P, R]):
    """The object ``@activity.defn`` returns: call it like the function."""

    def __init__(self, fn: Callable[P, R], name: str, options: ActivityOptions) -> None:
        self.fn = fn
        self.name = name
        self.opts = options
        # (An object whose __call__ is an async def is async too: run in a
        # thread, it would only have returned a coroutine.)
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__
        )
        self.__name__ = getattr(fn, "__name__", name)
        self.__qualname__ = getattr(fn, "__qualname__", name)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self._recorded: tuple[ActivityOptions, dict[str, Any]] | None = None

    def _options_json(self) -> dict[str, Any]:
        """``opts.to_dict()``, built once per options object (never mutated after)."""
        recorded = self._recorded
        if recorded is None or recorded[0] is not self.opts:
            recorded = self._recorded = (self.opts, self.opts.to_dict())
        return recorded[1]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        inst = current_instance()
        if inst is None:
            return self.fn(*args, **kwargs)
        converter: DataConverter = inst.converter
        pos, kw = converter.encode_args(self.fn, args, kwargs)
        assert inst.info is not None
        ref, future = inst.schedule_activity(
            self.name,
            self.opts.task_queue or inst.info.task_queue,
            pos,
            kw,
            self._options_json(),
        )
        return _result(  # type: ignore[return-value]
            self.fn, inst, ref, future, self.opts.cancellation_type
        )

    def options(
        self,
        *,
        task_queue: str | None = None,
        retry: RetryPolicy | None = None,
        start_to_close_timeout: timedelta | None = None,
        schedule_to_close_timeout: timedelta | None = None,
        heartbeat_timeout: timedelta | None = None,
        priority: int | None = None,
        cancellation_type: CancellationType | None = None,
        fairness_key: str | None = None,
    ) -> ActivityFunction[P, R]:
        """A copy of this activity with per-call overrides (``None`` keeps the
        default). ``fairness_key``: whose work this call is, if not its run's
        (a run that works for several tenants: docs/queues.md, "Fairness")."""
        old = self.opts

        def given(value: Any, default: Any) -> Any:
            return default if value is None else value  # (a zero timedelta is falsy)

        new = ActivityOptions(
            task_queue=given(task_queue, old.task_queue),
            retry=given(retry, old.retry),
            start_to_close_timeout=given(start_to_close_timeout, old.start_to_close_timeout),
            schedule_to_close_timeout=given(
                schedule_to_close_timeout, old.schedule_to_close_timeout
            ),
            heartbeat_timeout=given(heartbeat_timeout, old.heartbeat_timeout),
            priority=given(priority, old.priority),
            cancellation_type=given(cancellation_type, old.cancellation_type),
            fairness_key=given(fairness_key, old.fairness_key),
        )
        return ActivityFunction(self.fn, self.name, new)

    def __repr__(self) -> str:
        return f"<activity {self.name!r}>"


@overload
def defn(fn: Callable[P, R]) -> ActivityFunction[P, R]: ...
@overload
def defn(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    start_to_close_timeout: timedelta | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    task_queue: str | None = None,
    priority: int | None = None,
    cancellation_type: CancellationType | None = None,
) -> Callable[[Callable[P, R]], ActivityFunction[P, R]]: ...
def defn(
    fn: Any = None,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    start_to_close_timeout: timedelta | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    task_queue: str | None = None,
    priority: int | None = None,
    cancellation_type: CancellationType | None = None,
) -> Any:
    """Mark a function (``async def`` or plain ``def``) as an activity.
    ``priority``: its tasks' place in its queue's backlog, 1 (first) to 5
    (last); by default its run's. ``cancellation_type``: what cancelling
    the workflow code's await of it does (see CancellationType):
    "try_cancel" (the default), "wait_cancellation_completed" or "abandon"."""
    check_name("name", name, none_means="the function's name")
    options = ActivityOptions(
        task_queue=task_queue,
        retry=retry,
        start_to_close_timeout=start_to_close_timeout,
        schedule_to_close_timeout=schedule_to_close_timeout,
        heartbeat_timeout=heartbeat_timeout,
        priority=priority,
        cancellation_type=cancellation_type,
    )

    def wrap(f: Any) -> ActivityFunction[Any, Any]:
        if not callable(f):
            raise TypeError(f"@activity.defn needs a function, got {f!r}")
        if inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f):
            raise TypeError(
                f"@activity.defn needs a function that returns its result, not a generator "
                f"function ({f!r} yields): an activity's result is recorded as one value; "
                f"return a list instead"
            )
        given = name or getattr(f, "__name__", None)
        if not isinstance(given, str):
            raise TypeError(
                f"{f!r} has no __name__ to name the activity by: give it one, "
                f"@activity.defn(name=...)"
            )
        return ActivityFunction(f, given, options)

    return wrap(fn) if fn is not None else wrap
