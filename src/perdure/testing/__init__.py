"""perdure.testing: test workflows fast, and check changes before deploying them.

A surface over the public API: it may use the runtime and store internals it
needs, but nothing in the engine imports it. Names load lazily, so that the
pytest plugin (``perdure.testing.pytest_plugin``, loaded in every pytest run)
stays cheap to import.

- :class:`WorkflowEnvironment`: an in-process engine with a time-skipping clock.
- :class:`Replayer`: replays recorded histories against the current code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perdure.testing._clock import VirtualClock
    from perdure.testing._environment import WorkflowEnvironment, WorkflowStuckError
    from perdure.testing._replayer import Replayer, ReplayResult

__all__ = [
    "ReplayResult",
    "Replayer",
    "VirtualClock",
    "WorkflowEnvironment",
    "WorkflowStuckError",
]

_HOMES = {
    "ReplayResult": "perdure.testing._replayer",
    "Replayer": "perdure.testing._replayer",
    "VirtualClock": "perdure.testing._clock",
    "WorkflowEnvironment": "perdure.testing._environment",
    "WorkflowStuckError": "perdure.testing._environment",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'perdure.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
