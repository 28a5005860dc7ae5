"""A pure, in-memory driver for WorkflowInstance: plays the worker's part
(turn bookkeeping, history) with no database, no threads and virtual time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perdure import _history as h
from perdure._converter import default_converter
from perdure._runtime import WorkflowInstance

T0 = 1_700_000_000.0

# Every instance a test created; conftest evicts them after each test, as a
# worker would, so no pending workflow task is left for the garbage collector.
LIVE: list[WorkflowInstance] = []


class Driver:
    def __init__(self, fn: Callable[..., Any], *args: Any, workflow_id: str = "wf-1") -> None:
        self.fn = fn
        self.instance = WorkflowInstance(fn, default_converter)
        LIVE.append(self.instance)
        self.history: list[h.Event] = []
        self.time = T0
        self.pending: list[h.Event] = [
            h.WorkflowStarted(
                workflow_type=fn.__name__,
                workflow_id=workflow_id,
                run_id="run-1",
                args=[default_converter.to_json(a) for a in args],
                seed=42,
            )
        ]

    def turn(self, *inputs: h.Event, advance: float = 0.0) -> list[h.Command]:
        """Deliver the pending start (first turn only) plus ``inputs``."""
        self.time += advance
        batch = [*self.pending, *inputs]
        self.pending = []
        last = self.history[-1].seq if self.history else 0
        commands = self.instance.activate(self.time, batch, history_length=last)
        marked = h.needs_marker(self.history)  # as the worker writes it
        self.history.extend(h.turn_events(last, self.time, batch, commands, marked))
        return commands

    def replay(self, fn: Callable[..., Any] | None = None) -> WorkflowInstance:
        """A fresh instance replaying the whole recorded history."""
        instance = WorkflowInstance(fn or self.fn, default_converter)
        LIVE.append(instance)
        for turn in h.split_turns(self.history):
            if instance.closed:
                break
            instance.activate(turn.time, turn.inputs, turn.commands, turn.events_before)
        return instance

    def result(self) -> Any:
        closing = self.history[-1]
        assert isinstance(closing, h.WorkflowCompleted), closing
        return closing.result


def kinds(commands: list[h.Command]) -> list[str]:
    return [type(c).__name__ for c in commands]
