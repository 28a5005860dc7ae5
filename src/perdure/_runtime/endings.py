"""The ways a turn ends other than by running until nothing is ready: the
exceptions the runtime raises (or workflow code raises through it) to stop
a turn. Imports nothing of perdure."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ContinueAsNewError",
    "ExitInWorkflow",
    "ForbiddenInWorkflow",
    "TurnNeverEnds",
    "UnreadablePayload",
]


class TurnNeverEnds(Exception):
    """A turn its workflow code cannot complete: the turn fails (and is tried
    again later, as a turn that meets non-determinism is); the run is kept.
    Here: it ran MAX_TURN_STEPS callbacks, busy without waiting for input."""


class ExitInWorkflow(TurnNeverEnds):
    """Workflow code raised SystemExit or KeyboardInterrupt: asyncio would
    pass it up and end the worker's process (and every worker that replays
    the run after it). The turn fails instead."""


class ForbiddenInWorkflow(TurnNeverEnds):
    """Workflow code called what a workflow may not (I/O, a thread, a
    subprocess, through its event loop): a bug in the code that a deploy
    fixes. The turn fails and is tried again, as a turn that meets
    non-determinism is, so the run goes on once fixed code runs it, however
    the code (or a library under it) handled the WorkflowIOError it got.
    It had failed the run for good."""


class UnreadablePayload(TurnNeverEnds):
    """A recorded payload this worker's converter cannot open (a
    PayloadCodecError: a codec key it lacks, during a deploy that adds one).
    The value is intact; the turn fails and is tried again, so the run goes
    on once a worker with the writer's codecs and keys takes it. It had
    failed the run for good."""


class ContinueAsNewError(BaseException):
    """Raised by ``workflow.continue_as_new``; a BaseException so that user code's
    ``except Exception`` cannot swallow it."""

    def __init__(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        super().__init__("continue-as-new")
        self.new_args = args
        self.new_kwargs = kwargs


class _TurnAborted(BaseException):
    """Stops workflow code after a non-determinism error was recorded."""
