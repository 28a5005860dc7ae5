"""The small records a workflow instance keeps: what a run knows about itself
(``workflow.info()``), a child it started, and its deterministic random
numbers. No I/O; imports nothing of perdure."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WorkflowInfo"]


@dataclass(frozen=True)
class WorkflowInfo:
    """What a run knows about itself (``workflow.info()``)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    attempt: int
    seed: int
    history_length: int = 0
    """Events recorded before the current turn: a long-running loop calls
    ``continue_as_new`` when this grows past a few thousand."""
    parent_workflow_id: str | None = None
    parent_run_id: str | None = None
    continued_from_run_id: str | None = None
    priority: int = 3
    """The run's priority, from 1 (first) to 5 (last): its workflow tasks
    are handed out in this order, and its activities and children inherit
    it unless given their own."""
    search_attributes: dict[str, Any] = field(default_factory=dict)
    """The run's search attributes now: those it started with, and what
    ``workflow.set_search_attributes`` has changed since."""
    fairness_key: str | None = None
    """Whose work the run is (a tenant, a customer), or None: within a
    priority, its queues serve the keys with due work in turn; its
    activities and children inherit it unless given their own."""
    headers: dict[str, str] = field(default_factory=dict)
    """The run's headers: what the starting client's interceptors wrote
    (a trace context, a request id), inherited by its children, its
    continuation and its activities (``perdure.interceptors``)."""


@dataclass
class _Child:
    workflow_type: str
    workflow_id: str
    started: asyncio.Future[str]  # the child's run id
    result: asyncio.Future[Any]  # its JSON result, or ChildWorkflowError
    cancellation: str = "try_cancel"  # its CancellationType (_runtime.cancelwait)


class _Splitmix64:
    """A tiny deterministic PRNG (the runtime may not import ``random``)."""

    _MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self._state = seed & self._MASK

    def next(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & self._MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)
