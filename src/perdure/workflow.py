"""Workflow-side API: ``workflow.defn`` and what workflow code may call.

Every function here except :func:`defn` is only valid inside workflow code
(it reaches the running :class:`~perdure._runtime.WorkflowInstance` through the
running event loop). Imports the runtime, the converter and errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import random as _random
import uuid as _uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, ParamSpec, TypeVar, overload

from perdure import _history as h
from perdure._attributes import checked_attributes
from perdure._checks import BadName, check_name, check_text, delay_seconds
from perdure._children import ChildHandle, ParentClosePolicy, execute_child, start_child
from perdure._runtime import WorkflowInfo, WorkflowInstance, current_instance
from perdure._runtime.endings import ContinueAsNewError
from perdure._runtime.recorded import NEWER_BUILD
from perdure._runtime.updates import UpdateRequest
from perdure.activity import ActivityFunction

__all__ = [
    "ChildHandle",
    "ParentClosePolicy",
    "UpdateRequest",
    "WorkflowDefinition",
    "WorkflowInfo",
    "cancel_workflow",
    "close_stream",
    "continue_as_new",
    "defn",
    "execute_activity",
    "execute_child",
    "in_workflow",
    "info",
    "logger",
    "newer_build",
    "now",
    "patched",
    "random",
    "set_search_attributes",
    "set_state",
    "side_effect",
    "signal_workflow",
    "sleep",
    "start_child",
    "uuid4",
    "wait_condition",
    "wait_signal",
    "wait_update",
    "write_stream",
]

# How a workflow's runs follow a deploy of workers with build ids
# (docs/versioning.md): "pinned" runs stay on the build that first ran them;
# "auto_upgrade" runs go on with the queue's current build at each turn.
Versioning = Literal["pinned", "auto_upgrade"]
VERSIONINGS: tuple[Versioning, ...] = ("pinned", "auto_upgrade")

P = ParamSpec("P")
R = TypeVar("R")

_ATTR = "__perdure_workflow__"


@dataclass(frozen=True)
class WorkflowDefinition:
    """What ``@workflow.defn`` records about a workflow function."""

    name: str
    fn: Callable[..., Coroutine[Any, Any, Any]]
    versioning: Versioning = "pinned"


@overload
def defn(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def defn(
    *, name: str | None = None, versioning: Versioning = "pinned"
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]: ...
def defn(fn: Any = None, *, name: str | None = None, versioning: Versioning = "pinned") -> Any:
    """Mark an ``async def`` as a workflow. ``name`` (default: the function's
    ``__name__``) is what histories record: keep it stable across deploys.
    ``versioning`` matters to workers started with a ``build_id`` only: a
    "pinned" workflow's run stays on the build whose worker first ran it;
    an "auto_upgrade" one's turns go to the queue's current build, and its
    code changes are made safe by ``workflow.patched`` (docs/versioning.md)."""
    check_name("name", name, none_means="the function's name")
    if versioning not in VERSIONINGS:
        raise ValueError(
            f"versioning must be one of {', '.join(map(repr, VERSIONINGS))}, not {versioning!r}"
        )

    def mark(f: Any) -> Any:
        import inspect

        if not inspect.iscoroutinefunction(f):
            raise TypeError(f"@workflow.defn needs an 'async def' function, got {f!r}")
        if not inspect.isfunction(f):  # a bound method, a partial: no attribute to mark
            raise TypeError(
                f"@workflow.defn needs a plain 'async def' function (defined at module "
                f"level, where a worker imports it), not {type(f).__name__} {f!r}"
            )
        setattr(f, _ATTR, WorkflowDefinition(name=name or f.__name__, fn=f, versioning=versioning))
        return f

    return mark(fn) if fn is not None else mark


def definition_of(fn: Any) -> WorkflowDefinition | None:
    return getattr(fn, _ATTR, None)


def _instance(what: str) -> WorkflowInstance:
    inst = current_instance()
    if inst is None:
        raise RuntimeError(f"workflow.{what}() can only be called inside workflow code")
    return inst


def in_workflow() -> bool:
    """True when called from workflow code."""
    return current_instance() is not None


async def sleep(delay: timedelta | float) -> None:
    """A durable timer: the run holds no memory while it sleeps, and survives restarts."""
    _instance("sleep")
    await asyncio.sleep(delay_seconds(delay))


async def wait_signal(name: str, *, timeout: timedelta | float | None = None) -> Any:
    """Wait for the next signal called ``name`` and return its payload.

    Signals are delivered once each, in the order they were accepted; a signal
    that arrives before anyone waits is kept until the next wait. With
    ``timeout``, raises :class:`TimeoutError` when none arrives in time.
    """
    inst = _instance("wait_signal")
    _check_signal_name(name)
    return await inst.wait_signal(name, None if timeout is None else delay_seconds(timeout))


async def wait_condition(
    test: Callable[[], object], *, timeout: timedelta | float | None = None
) -> None:
    """Wait until ``test()`` is true: a function of the workflow's own state,
    such as ``lambda: len(items) >= 10`` over a list another task of the
    workflow fills from ``wait_signal`` (Temporal's ``wait_condition``).

    Returns at once if it is true now. Otherwise it is tested again each
    time the run has nothing left to run, in this turn and the later ones
    (after each signal, update, activity result or timer the run's code
    handles); the waits of a run are tested in the order they began, so a
    replay resumes them at the same points. ``test`` must be deterministic,
    as all workflow code, and should be cheap: it may run many times. An
    exception it raises is raised here. With ``timeout`` (a durable timer),
    raises :class:`TimeoutError` if the condition is not met in time.
    """
    inst = _instance("wait_condition")
    if not callable(test):
        raise TypeError(
            f"wait_condition takes a function that returns whether to go on "
            f"(such as lambda: approved), not {type(test).__name__} {test!r:.60}"
        )
    if inspect.iscoroutinefunction(test):
        raise TypeError(
            f"wait_condition's test must be a plain function, not the async function "
            f"{getattr(test, '__name__', test)!r}: its coroutine would always count as true"
        )
    await inst.wait_condition(test, None if timeout is None else delay_seconds(timeout))


def _check_signal_name(name: object, what: str = "a signal's name") -> None:
    if not isinstance(name, str):  # (a signal's name is a str: a wait would never end)
        raise TypeError(f"{what} must be a str, not {type(name).__name__} {name!r}")
    check_text(what, name)
    problem = h.signal_name_problem(name)
    if problem is not None:
        raise BadName(problem)


async def wait_update(
    name: str,
    *,
    timeout: timedelta | float | None = None,
    validate: Callable[[Any], object] | None = None,
) -> UpdateRequest:
    """Wait for the next request of update ``name`` (``handle.update(name,
    payload)``) and return it: its ``payload`` and ``id``; answer it with
    ``request.reply(value)`` or ``request.reject(message)``, in this turn or
    a later one (after activities); the caller waits for the answer.

    Requests queue and are delivered once each, in the order they were
    accepted, like signals; one that arrives before anyone waits is kept
    until the next wait (a run that continues as new hands it on). A request
    whose id this run already took (a caller's retry) is skipped. With
    ``timeout``, raises :class:`TimeoutError` when none arrives in time.

    ``validate``: a function of the payload, run as each request is taken
    (Temporal's update validator); if it raises an ``Exception``, the
    request is rejected with the exception's message (the caller's
    ``UpdateRejectedError``) and the wait goes on for the next one, within
    the same ``timeout``. It runs in the turn, so it must be deterministic,
    as all workflow code (it may read the workflow's state).
    """
    inst = _instance("wait_update")
    if not isinstance(name, str):
        raise TypeError(f"an update's name must be a str, not {type(name).__name__} {name!r}")
    check_text("an update's name", name)
    if validate is not None and not callable(validate):
        raise TypeError(f"validate must be a function of the payload, not {validate!r}")
    seconds = None if timeout is None else delay_seconds(timeout)
    if validate is None:
        return await inst.wait_update(name, seconds)
    deadline = None if seconds is None else inst.loop.time() + seconds
    refused = 0
    while True:
        left = None if deadline is None else max(0.0, deadline - inst.loop.time())
        try:
            request = await inst.wait_update(name, left)
        except TimeoutError:
            why = f" ({refused} refused by validate)" if refused else ""
            raise TimeoutError(f"no update {name!r} arrived within {seconds:g}s{why}") from None
        try:
            validate(request.payload)
        except Exception as exc:  # (the caller's refusal, not the run's failure)
            request.reject(str(exc) or type(exc).__name__)
            refused += 1
            continue
        return request


async def signal_workflow(workflow_id: str, name: str, payload: Any = None) -> None:
    """Signal another workflow: ``name`` with ``payload`` to the latest run
    of ``workflow_id``, which its ``wait_signal(name)`` receives.

    The signal is written into that run's inbox by the same commit that
    records this turn, so it is delivered exactly once, however often
    workers crash. Returns once it is delivered (at this run's next turn);
    raises ``WorkflowNotFoundError`` if no run has that id, or
    ``WorkflowClosedError`` if its latest run has ended. A workflow cannot
    signal its own id (keep the value in a variable).
    """
    inst = _instance("signal_workflow")
    assert inst.info is not None
    check_name("workflow_id", workflow_id)
    _check_signal_name(name)
    if workflow_id == inst.info.workflow_id:
        raise ValueError(
            f"a workflow cannot signal its own id {workflow_id!r}: keep the value in a variable"
        )
    encoded = inst.converter.to_json(payload, where=f"signal {name!r}")
    await inst.signal_external(workflow_id, name, encoded)


def set_state(key: str, value: Any) -> None:
    """Publish a JSON-encodable value that clients can read (``handle.state(key)``)."""
    inst = _instance("set_state")
    check_text("a state key", key)
    inst.set_state(key, value)


def write_stream(key: str, value: Any) -> None:
    """Append a JSON-encodable value to this run's stream ``key``, for clients
    to read as it grows (``handle.read_stream(key)``): progress, partial
    answers. Recorded with the turn (exactly once, however often the turn is
    replayed); the value is readable once the turn commits. Activities write
    to the same streams with ``activity.write_stream``. Raises ValueError
    after ``close_stream(key)``."""
    inst = _instance("write_stream")
    check_name("a stream key", key)
    inst.write_stream(key, value)


def close_stream(key: str) -> None:
    """Close this run's stream ``key``: readers stop once they have read
    everything in it. (A run's streams all end with the run anyway.)"""
    inst = _instance("close_stream")
    check_name("a stream key", key)
    inst.close_stream(key)


async def cancel_workflow(workflow_id: str, reason: str | None = None) -> None:
    """Ask another workflow to cancel: its latest run's code sees
    ``asyncio.CancelledError`` (and may compensate), as for ``handle.cancel()``.

    The request is written into that run's inbox by the same commit that
    records this turn, so it is delivered exactly once, however often
    workers crash. Returns once it is delivered (at this run's next turn),
    not once the other run has ended (wait for that with a child's handle,
    or a signal back); raises ``WorkflowNotFoundError`` if no run has that
    id, or ``WorkflowClosedError`` if its latest run has ended. ``reason``
    (default: "cancelled by workflow <this id>") is recorded with the
    request. A workflow cannot cancel its own id (raise
    ``asyncio.CancelledError``, or return).
    """
    inst = _instance("cancel_workflow")
    assert inst.info is not None
    check_name("workflow_id", workflow_id)
    if reason is not None and not isinstance(reason, str):
        raise TypeError(f"a reason is a str (or None), not {type(reason).__name__} {reason!r}")
    check_text("a reason", reason)
    if workflow_id == inst.info.workflow_id:
        raise ValueError(
            f"a workflow cannot cancel its own id {workflow_id!r}:"
            " raise asyncio.CancelledError, or return"
        )
    if reason is None:
        reason = f"cancelled by workflow {inst.info.workflow_id!r}"
    await inst.cancel_external(workflow_id, reason)


def set_search_attributes(attributes: Mapping[str, str | int | float | bool | None]) -> None:
    """Set this run's search attributes, the values ``Client.list(search_attributes=)``
    (``perdure list --attr``) finds it by: a customer id, an order number.

    Each name in ``attributes`` is set to its value (a str, int, float or
    bool), or removed if the value is None; names not given keep theirs.
    Recorded in the run's history and written with this turn's commit; a
    run that continues as new keeps them. At most 32 names; a string value
    at most 400 characters. Values match as text (``120`` finds ``120.0``
    and ``"120"``).
    """
    inst = _instance("set_search_attributes")
    changes = checked_attributes(attributes, removal=True, what="attributes")
    if changes:
        inst.set_search_attributes(changes)


def now() -> datetime:
    """The workflow's current time: the recorded time of this turn (UTC)."""
    return datetime.fromtimestamp(_instance("now").now_ts, tz=UTC)


def info() -> WorkflowInfo:
    inst = _instance("info")
    assert inst.info is not None
    return dataclasses.replace(
        inst.info,
        history_length=inst.history_length,
        search_attributes=dict(inst.search_attributes),
    )


def continue_as_new(*args: Any, **kwargs: Any) -> NoReturn:
    """End this run and start a fresh one of the same workflow, with the same
    workflow id, these arguments and an empty history. Never returns.

    Use it to keep the history of an endless loop bounded: roll over when
    ``workflow.info().history_length`` passes a few thousand events. Signals
    this run received that no ``wait_signal()`` took go on to the new run, in
    the order they came.
    """
    inst = _instance("continue_as_new")
    pos, kw = inst.converter.encode_args(inst.fn, args, kwargs)
    raise ContinueAsNewError(pos, kw)


def patched(change_id: str) -> bool:
    """Version a change to workflow code.

    Returns True for runs that reach this point on the new code (and records
    that), False when replaying a history that reached it before the change. So
    ``if workflow.patched("x"): new() else: old()`` serves both. Once no run
    from before the change is open, delete the old branch (see docs/versioning.md).
    """
    inst = _instance("patched")
    # (Recorded in the history, which holds a change id as a string: another
    # value was written, then refused when the history was read back, and the
    # run could not be replayed.)
    check_name("change_id", change_id, in_json=True)
    if change_id.startswith(NEWER_BUILD):
        raise ValueError(f"change ids starting with {NEWER_BUILD!r} are perdure's own")
    return inst.patched(change_id)


def newer_build() -> str | None:
    """The worker build a new run of this workflow id would start on now, if
    it is not the build this run is pinned to: a newer build was made
    current, or this id falls in the share of a build that ramps (see
    docs/versioning.md, "Moving a long-lived run to a new build"); None
    otherwise, and for a run pinned to no build. A pinned run that lives for
    weeks calls it at a safe point and continues as new, so that its next
    run starts on the newer build::

        if workflow.newer_build() is not None:
            workflow.continue_as_new(state)

    What the worker knew at the turn's start (from its heartbeat, a few
    seconds old at most), recorded in the history when it names a build:
    a replay returns what the first execution saw."""
    return _instance("newer_build").newer_build_seen()


def side_effect(compute: Callable[[], R]) -> R:
    """Run ``compute()`` once, record its (JSON-encodable) value, and return the
    recorded value on every replay: for small non-deterministic reads, such as a
    feature flag or a configuration value. Never use it for I/O that must not
    repeat; that is an activity's job."""
    return _instance("side_effect").side_effect(compute)  # type: ignore[no-any-return]


@overload
def execute_activity(
    activity: ActivityFunction[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
) -> Coroutine[Any, Any, R]: ...
@overload
def execute_activity(
    activity: ActivityFunction[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> Awaitable[R]: ...
def execute_activity(activity: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``await workflow.execute_activity(send_email, to, text)`` is
    ``await send_email(to, text)``, spelt so that a type checker sees an
    awaitable for a plain ``def`` activity too (calling one returns an
    awaitable in workflow code, its result outside it, and its annotation
    can only say the latter). Options are the activity's, or
    ``execute_activity(send_email.options(...), ...)``'s."""
    _instance("execute_activity")
    if not isinstance(activity, ActivityFunction):
        raise TypeError(
            f"execute_activity takes an activity (decorated with @activity.defn), "
            f"not {type(activity).__name__} {activity!r}"
        )
    return activity(*args, **kwargs)


def random() -> _random.Random:
    """A ``random.Random`` seeded per run: the same values on every replay."""
    inst = _instance("random")
    rng = inst.extras.get("random")
    if rng is None:
        rng = _random.Random(inst.random_bits())
        inst.extras["random"] = rng
    assert isinstance(rng, _random.Random)
    return rng


def uuid4() -> _uuid.UUID:
    """A random UUID that replays identically."""
    return _uuid.UUID(int=random().getrandbits(128), version=4)


class _ReplaySafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Drops records while a run replays, so each line is logged once."""

    def isEnabledFor(self, level: int) -> bool:
        inst = current_instance()
        if inst is not None and inst.replaying:
            return False
        return bool(self.logger.isEnabledFor(level))

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        inst = current_instance()
        if inst is not None and inst.info is not None:
            extra = dict(kwargs.get("extra") or {})
            extra.setdefault("workflow_id", inst.info.workflow_id)
            extra.setdefault("run_id", inst.info.run_id)
            kwargs["extra"] = extra
            msg = f"[{inst.info.workflow_type} {inst.info.workflow_id}] {msg}"
        return msg, kwargs


logger = _ReplaySafeLogger(logging.getLogger("perdure.workflow"), {})
