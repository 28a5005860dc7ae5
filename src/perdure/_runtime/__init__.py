"""The deterministic replay runtime: one workflow run, events in, commands out.

May import: ``perdure._history``, ``perdure._converter``, ``perdure.errors``.
Never imports the store, the worker, ``time``, ``random`` or ``uuid``: workflow
time comes from the history and randomness from a per-run seed, so replaying
the same history always produces the same commands.
"""

from perdure._runtime.endings import ExitInWorkflow, TurnNeverEnds
from perdure._runtime.instance import WorkflowInstance, current_instance
from perdure._runtime.loop import WorkflowLoop
from perdure._runtime.replay import replay_history
from perdure._runtime.runinfo import WorkflowInfo

__all__ = [
    "ExitInWorkflow",
    "TurnNeverEnds",
    "WorkflowInfo",
    "WorkflowInstance",
    "WorkflowLoop",
    "current_instance",
    "replay_history",
]
