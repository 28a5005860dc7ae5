"""A workflow instance rebuilt from its recorded history, turn by turn."""

from __future__ import annotations

from collections.abc import Callable

from perdure import _history as h
from perdure._converter import DataConverter
from perdure._runtime.instance import WorkflowFn, WorkflowInstance

__all__ = ["replay_history"]


def replay_history(
    fn: WorkflowFn,
    events: list[h.Event],
    converter: DataConverter,
    before_turn: Callable[[WorkflowInstance], None] | None = None,
) -> WorkflowInstance:
    """A new instance that has replayed ``events`` turn by turn, checking every
    command against the record. Raises NonDeterminismError or HistoryFormatError.
    ``before_turn(instance)`` is called as each turn begins."""
    instance = WorkflowInstance(fn, converter)
    try:
        for turn in h.split_turns(events):
            if instance.closed:
                break
            if before_turn is not None:
                before_turn(instance)
            instance.activate(turn.time, turn.inputs, turn.commands, turn.events_before)
    except BaseException:
        # Close its coroutines now, in discarding mode: left to the garbage
        # collector, their finally blocks would run outside any workflow loop.
        instance.evict()
        raise
    return instance
