"""Workflow-side API: ``workflow.defn`` and what workflow code may call.

Every function here except :func:`defn` is only valid inside workflow code
(it reaches the running :class:`~perdure._runtime.WorkflowInstance` through the
running event loop). Imports the runtime, the converter and errors.
"""

from __future__ import annotations

import logging
import random as _random
import uuid as _uuid
from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ParamSpec, TypeVar, overload

from perdure._runtime import WorkflowInfo, WorkflowInstance, current_instance

__all__ = [
    "WorkflowDefinition",
    "WorkflowInfo",
    "defn",
    "in_workflow",
    "info",
    "logger",
    "now",
    "random",
    "set_state",
    "sleep",
    "uuid4",
    "wait_signal",
]

P = ParamSpec("P")
R = TypeVar("R")

_ATTR = "__perdure_workflow__"


@dataclass(frozen=True)
class WorkflowDefinition:
    """What ``@workflow.defn`` records about a workflow function."""

    name: str
    fn: Callable[..., Coroutine[Any, Any, Any]]


@overload
def defn(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def defn(
    *, name: str | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]: ...
def defn(fn: Any = None, *, name: str | None = None) -> Any:
    """Mark an ``async def`` as a workflow. ``name`` (default: the function's
    ``__name__``) is what histories record: keep it stable across deploys."""

    def mark(f: Any) -> Any:
        import inspect

        if not inspect.iscoroutinefunction(f):
            raise TypeError(f"@workflow.defn needs an 'async def' function, got {f!r}")
        setattr(f, _ATTR, WorkflowDefinition(name=name or f.__name__, fn=f))
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


def _seconds(delay: timedelta | float) -> float:
    return delay.total_seconds() if isinstance(delay, timedelta) else float(delay)


async def sleep(delay: timedelta | float) -> None:
    """A durable timer: the run holds no memory while it sleeps, and survives restarts."""
    _instance("sleep")
    import asyncio

    await asyncio.sleep(_seconds(delay))


async def wait_signal(name: str, *, timeout: timedelta | float | None = None) -> Any:
    """Wait for the next signal called ``name`` and return its payload.

    Signals are delivered once each, in the order they were accepted; a signal
    that arrives before anyone waits is kept until the next wait. With
    ``timeout``, raises :class:`TimeoutError` when none arrives in time.
    """
    inst = _instance("wait_signal")
    return await inst.wait_signal(name, None if timeout is None else _seconds(timeout))


def set_state(key: str, value: Any) -> None:
    """Publish a JSON-encodable value that clients can read (``handle.state(key)``)."""
    _instance("set_state").set_state(key, value)


def now() -> datetime:
    """The workflow's current time: the recorded time of this turn (UTC)."""
    return datetime.fromtimestamp(_instance("now").now_ts, tz=timezone.utc)


def info() -> WorkflowInfo:
    inst = _instance("info")
    assert inst.info is not None
    return inst.info


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
