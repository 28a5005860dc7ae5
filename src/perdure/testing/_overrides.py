"""Activity test doubles: swap an activity's implementation by name.

Owns the rules for ``WorkflowEnvironment(activity_overrides=...)``. Imports only
the public ``perdure.activity`` and ``perdure.errors`` modules. Workflow code is
untouched: it still schedules the activity by name; the worker runs the double.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

from perdure._worker.options import collect_activities
from perdure.activity import ActivityFunction, ActivityOptions
from perdure.errors import ApplicationError

__all__ = ["ActivityOverrides", "apply_overrides"]

ActivityOverrides = Union[
    Mapping[str, Callable[..., Any]],
    Iterable[ActivityFunction[Any, Any]],
]
"""Either ``{"charge_card": fake}`` (any callable, ``async def`` or ``def``) or
a list of ``@activity.defn(name="charge_card")``-decorated fakes."""


def _double(
    name: str, fake: Callable[..., Any], real: ActivityFunction[Any, Any]
) -> ActivityFunction[Any, Any]:
    """An activity named ``name`` that runs ``fake``.

    A plain callable borrows the real activity's signature and type hints
    (through ``__wrapped__``), so arguments reach the fake decoded exactly as
    the real one would see them, and its result is encoded by the real
    return hint. An ``@activity.defn`` fake keeps its own hints.
    """
    if isinstance(fake, ActivityFunction):
        return ActivityFunction(fake.fn, name, fake.opts)
    if not callable(fake):
        raise TypeError(f"the override for activity {name!r} must be callable, got {fake!r}")
    if inspect.iscoroutinefunction(fake) or inspect.iscoroutinefunction(
        getattr(fake, "__call__", None)  # noqa: B004  an object with `async def __call__`
    ):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return await fake(*args, **kwargs)

        runner: Callable[..., Any] = run_async
    else:

        def run_sync(*args: Any, **kwargs: Any) -> Any:
            result = fake(*args, **kwargs)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()  # never awaited: do not leave a warning behind
                raise ApplicationError(  # a bug in the test: retrying cannot help
                    f"the override for activity {name!r} returned an awaitable from a plain "
                    f"function; make it an 'async def'",
                    type="TypeError",
                    non_retryable=True,
                )
            return result

        runner = run_sync
    functools.update_wrapper(runner, real.fn)  # signature and hints of the real one
    return ActivityFunction(runner, name, ActivityOptions())


def apply_overrides(
    activities: Iterable[Any], overrides: ActivityOverrides | None
) -> list[ActivityFunction[Any, Any]]:
    """``activities`` with the overridden ones replaced by their doubles.

    Every override must name an activity in ``activities``: a typo must not
    silently leave the real implementation (a real payment call) in place.
    """
    registered = collect_activities(activities)
    if overrides is None:
        return list(registered.values())
    pairs: list[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        pairs = list(overrides.items())
    elif isinstance(overrides, (str, bytes)) or not isinstance(overrides, Iterable):
        raise TypeError(
            "activity_overrides must be a mapping {name: callable} or a list of "
            f"@activity.defn-decorated fakes, got {overrides!r}"
        )
    else:
        pairs = []
        for fake in overrides:
            if not isinstance(fake, ActivityFunction):
                raise TypeError(
                    f"{fake!r} in activity_overrides is not an activity: decorate it with "
                    f'@activity.defn(name="...") or pass a mapping {{name: callable}}'
                )
            pairs.append((fake.name, fake))
    result = dict(registered)
    for name, fake in pairs:
        if not isinstance(name, str):
            raise TypeError(f"activity_overrides keys must be activity names, got {name!r}")
        real = registered.get(name)
        if real is None:
            known = ", ".join(sorted(registered)) or "none"
            raise ValueError(
                f"activity_overrides names {name!r}, which is not among the environment's "
                f"activities (registered: {known}); pass the real activity in activities=[...] "
                f"too, or add the fake to activities=[...] directly"
            )
        result[name] = _double(name, fake, real)
    return list(result.values())
