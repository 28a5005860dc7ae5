"""Interceptors: your code around what the engine does for you, for tracing,
metrics or a logging context. Subclass ``Interceptor``, override what you
need, and give instances to ``Client.connect(interceptors=[...])``: they
apply to that client's starts and to the activity attempts of every
``Worker`` made with it (``perdure worker --interceptor MODULE:NAME``;
``perdure server --interceptor`` for the runs its API starts).

Two places, as Temporal's interceptors offer them for the same uses:

- ``start_workflow(start)``: a client is starting a run. It may add
  **headers** (``start.headers``, name -> str), such as a trace context.
  They are recorded in the run's ``WorkflowStarted`` event, so they survive
  crashes and replays; the run's children and the run it continues as new
  inherit them, and every activity the run schedules carries them
  (``activity.info().headers``, ``workflow.info().headers``,
  ``describe().headers``).
- ``execute_activity(call, call_next)``: around each activity attempt, on
  the worker running it, in the attempt's own context: context variables
  set around ``await call_next(call)`` are seen by the activity's code, a
  plain ``def`` activity's thread included. The activity's exception (or
  ``asyncio.CancelledError`` when the attempt is stopped) comes out of
  ``call_next``; what ``call_next`` returns is the activity's result.

Workflow code is not intercepted: it is replayed, and must not do I/O.
``perdure.contrib.opentelemetry`` is a tracing interceptor built on these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from perdure._checks import check_text
from perdure.activity import ActivityInfo

__all__ = ["MAX_HEADERS_BYTES", "ActivityCall", "ActivityNext", "Interceptor", "WorkflowStart"]

# The most a run's headers may hold, names and values together, in UTF-8
# bytes: they are copied into each of its activities' options.
MAX_HEADERS_BYTES = 8 * 1024


@dataclass
class WorkflowStart:
    """A run a client is starting, as ``Interceptor.start_workflow`` sees
    it. Only ``headers`` may be changed."""

    workflow_type: str
    workflow_id: str
    run_id: str
    task_queue: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivityCall:
    """One activity attempt about to run, as ``Interceptor.execute_activity``
    sees it: pass it on to ``call_next``, or a copy with other arguments
    (``dataclasses.replace(call, args=...)``)."""

    info: ActivityInfo
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        """Its run's headers (``info.headers``)."""
        return self.info.headers


ActivityNext = Callable[[ActivityCall], Awaitable[Any]]


class Interceptor:
    """Hooks around a client's starts and a worker's activity attempts; each
    does nothing until overridden. Given to ``Client.connect``, they run in
    the order given, the first outermost."""

    def start_workflow(self, start: WorkflowStart) -> None:
        """A run is being started by this client (``start``, ``execute``,
        ``signal_with_start``, ``update_with_start``, a schedule's
        backfill), before anything is written: add to ``start.headers``.
        An exception raised here fails the start, which writes nothing."""

    async def execute_activity(self, call: ActivityCall, call_next: ActivityNext) -> Any:
        """Around one activity attempt: return ``await call_next(call)``
        (or raise). Raising fails the attempt as the activity's own
        exception would, retries included."""
        return await call_next(call)


def checked_interceptors(interceptors: Iterable[Interceptor] | None) -> tuple[Interceptor, ...]:
    """The interceptors a client was given, each an Interceptor (TypeError
    if not: a class given instead of an instance is the likely slip)."""
    found = tuple(interceptors or ())
    for each in found:
        if not isinstance(each, Interceptor):
            hint = " (a class: give an instance)" if isinstance(each, type) else ""
            raise TypeError(
                f"interceptors must be perdure.interceptors.Interceptor instances, not "
                f"{type(each).__name__} {each!r}{hint}"
            )
    return found


def activity_interceptors(interceptors: tuple[Interceptor, ...]) -> tuple[Interceptor, ...]:
    """Those that override ``execute_activity`` (the others would only add
    a call to each attempt)."""
    return tuple(
        i for i in interceptors if type(i).execute_activity is not Interceptor.execute_activity
    )


def headers_for(interceptors: tuple[Interceptor, ...], start: WorkflowStart) -> dict[str, str]:
    """The headers ``interceptors`` give a run being started: ``start``'s
    once each has added to them, checked (TypeError or ValueError, naming
    the interceptor, for names or values that are not non-empty text, or
    more than MAX_HEADERS_BYTES in all)."""
    for each in interceptors:
        each.start_workflow(start)
        try:
            _check_headers(start.headers)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{type(each).__name__}.start_workflow: {exc}") from None
    return start.headers


def _check_headers(headers: object) -> None:
    if not isinstance(headers, dict):
        raise TypeError(f"headers must be a dict of str to str, not {type(headers).__name__}")
    size = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"a header's name must be a non-empty str, not {name!r}")
        if not isinstance(value, str):
            raise TypeError(f"header {name!r} must be a str, not {type(value).__name__} {value!r}")
        check_text(f"header {name!r}", name)
        check_text(f"header {name!r}", value)
        size += len(name.encode()) + len(value.encode())
    if size > MAX_HEADERS_BYTES:
        raise ValueError(
            f"headers hold {size} bytes, more than the {MAX_HEADERS_BYTES} allowed "
            f"(they travel with each of the run's activities)"
        )


async def intercepted(
    interceptors: tuple[Interceptor, ...], call: ActivityCall, innermost: ActivityNext
) -> Any:
    """``innermost(call)`` inside each interceptor's ``execute_activity``,
    the first outermost."""

    def layer(index: int) -> ActivityNext:
        if index == len(interceptors):
            return innermost
        inner = layer(index + 1)
        each = interceptors[index]
        return lambda c: each.execute_activity(c, inner)

    return await layer(0)(call)
