"""What a run does with other workflows: the children it starts, the signals and
cancel requests it sends, and the answers about them that come back as input
events. A mixin of WorkflowInstance (which holds the state it uses). No I/O;
imports the history model, perdure's errors and the runtime's records.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from perdure import _history as h
from perdure._converter import fresh
from perdure._runtime.runinfo import _Child
from perdure.errors import (
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
    WorkflowClosedError,
    WorkflowNotFoundError,
    cause_from_failure,
)

if TYPE_CHECKING:
    from perdure._runtime.loop import WorkflowLoop

__all__ = ["FROM_OTHERS", "OtherWorkflows"]

# The input events OtherWorkflows._apply_from_others takes.
FROM_OTHERS = (
    h.ChildWorkflowStarted,
    h.ChildWorkflowStartFailed,
    h.ExternalSignalDelivered,
    h.ExternalCancelDelivered,
    h.ExternalSignalFailed,
    h.ExternalCancelFailed,
    h.ChildWorkflowCompleted,
    h.ChildWorkflowFailed,
)


def _undelivered(
    workflow_id: str, failed: h.ExternalSignalFailed | h.ExternalCancelFailed
) -> Exception:
    """What ``workflow.signal_workflow`` (``cancel_workflow``) raises when its
    signal (cancel request) was not delivered."""
    verb = "cancel" if isinstance(failed, h.ExternalCancelFailed) else "signal"
    if failed.reason == "closed":
        return WorkflowClosedError(
            f"cannot {verb} workflow {workflow_id!r}: its latest run has ended ({failed.status})"
        )
    return WorkflowNotFoundError(f"cannot {verb} workflow {workflow_id!r}: no run has that id")


class OtherWorkflows:
    """WorkflowInstance's dealings with other workflows."""

    # Set by WorkflowInstance.__init__:
    loop: WorkflowLoop
    has_children: bool  # started a child, in this turn or an earlier one
    _children: dict[int, _Child]
    # Signals and cancel requests to other workflows not yet delivered:
    # ref -> (their id, the future)
    _signals_out: dict[int, tuple[str, asyncio.Future[None]]]

    if TYPE_CHECKING:  # WorkflowInstance's

        def next_ref(self) -> int: ...

        def issue(self, command: h.Command) -> h.Event | None: ...

    def start_child(
        self,
        workflow_type: str,
        workflow_id: str,
        task_queue: str,
        args: list[Any],
        kwargs: dict[str, Any],
        parent_close_policy: str,
        search_attributes: dict[str, Any] | None = None,
        priority: int | None = None,
        cancellation: str = "try_cancel",
        fairness_key: str | None = None,
    ) -> tuple[int, asyncio.Future[str], asyncio.Future[Any]]:
        """Issue StartChild; returns its ref, and futures for the child's run
        id and its result. ``priority``, ``fairness_key`` None: the parent's. ``cancellation``:
        what cancelling the code that awaits its result does (a
        CancellationType; "wait_cancellation_completed": the awaiting code
        asks, cancel_child_and_wait)."""
        ref = self.next_ref()
        child = _Child(
            workflow_type,
            workflow_id,
            self.loop.create_future(),
            self.loop.create_future(),
            cancellation,
        )
        self._children[ref] = child
        self.has_children = True
        self.issue(
            h.StartChild(
                ref,
                workflow_type,
                workflow_id,
                task_queue,
                args,
                kwargs,
                parent_close_policy,
                search_attributes or {},
                priority or 0,
                fairness_key,
            )
        )

        def on_done(fut: asyncio.Future[Any]) -> None:
            # The awaiting code was cancelled: ask the child to cancel too
            # ("abandon": forget it, and let it run on).
            if not fut.cancelled() or cancellation == "wait_cancellation_completed":
                return
            if self._children.pop(ref, None) is not None and cancellation != "abandon":
                self.issue(h.CancelChild(ref=ref))

        child.result.add_done_callback(on_done)
        return ref, child.started, child.result

    def cancel_child_and_wait(self, ref: int) -> asyncio.Future[Any] | None:
        """The code awaiting child ``ref``'s result was cancelled, and waits
        for the child to end before it goes on (its cancellation type
        "wait_cancellation_completed"): ask the child to cancel (once), and
        return the future its end settles (the one the code awaited was
        cancelled with it). None if it has ended already. (A child always
        tells its open parent how it ended: nothing else is needed.)"""
        child = self._children.get(ref)
        if child is None:
            return None
        if child.result.cancelled():
            self.issue(h.CancelChild(ref=ref))
            child.result = self.loop.create_future()
        return child.result

    def signal_external(self, workflow_id: str, name: str, payload: Any) -> asyncio.Future[None]:
        """Issue SignalExternal (``payload`` is JSON); the future is done
        once the signal is delivered, with the error that says why if not."""
        ref = self.next_ref()
        done: asyncio.Future[None] = self.loop.create_future()
        self._signals_out[ref] = (workflow_id, done)
        self.issue(h.SignalExternal(ref, workflow_id, name, payload))
        return done

    def cancel_external(self, workflow_id: str, reason: str | None) -> asyncio.Future[None]:
        """Issue CancelExternal; the future is done once the request is
        delivered, with the error that says why if not."""
        ref = self.next_ref()
        done: asyncio.Future[None] = self.loop.create_future()
        self._signals_out[ref] = (workflow_id, done)
        self.issue(h.CancelExternal(ref, workflow_id, reason))
        return done

    def _apply_from_others(self, event: h.Event) -> None:
        """Apply an input event of FROM_OTHERS: what became of a child, or of
        a signal or cancel request sent to another workflow."""
        if isinstance(event, h.ChildWorkflowStarted):
            child = self._children.get(event.ref)
            if child is not None and not child.started.done():
                child.started.set_result(event.run_id)
        elif isinstance(event, h.ChildWorkflowStartFailed):
            child = self._children.pop(event.ref, None)
            if child is not None:
                cause = cause_from_failure(fresh(event.failure))  # (its own details)
                error = WorkflowAlreadyStartedError(
                    f"child workflow {child.workflow_id!r} could not start: {cause.message}",
                    workflow_id=child.workflow_id,
                    run_id="",
                )
                if not child.started.done():
                    child.started.set_exception(error)
                if not child.result.done():
                    child.result.set_exception(error)
                    child.result.exception()  # start_child raises it; never log it twice
        elif isinstance(event, (h.ExternalSignalDelivered, h.ExternalCancelDelivered)):
            sent = self._signals_out.pop(event.ref, None)
            if sent is not None and not sent[1].done():
                sent[1].set_result(None)
        elif isinstance(event, (h.ExternalSignalFailed, h.ExternalCancelFailed)):
            sent = self._signals_out.pop(event.ref, None)
            if sent is not None and not sent[1].done():
                sent[1].set_exception(_undelivered(sent[0], event))
        elif isinstance(event, h.ChildWorkflowCompleted):
            child = self._children.pop(event.ref, None)
            if child is not None and not child.result.done():
                child.result.set_result(event.result)
        elif isinstance(event, h.ChildWorkflowFailed):
            child = self._children.pop(event.ref, None)
            if child is not None and not child.result.done():
                cause = cause_from_failure(fresh(event.failure))  # (its own details)
                run_id = child.started.result() if child.started.done() else ""
                child.result.set_exception(
                    ChildWorkflowError(
                        f"child workflow {child.workflow_type!r} ({child.workflow_id!r}) "
                        f"{event.status}: {cause}",
                        workflow_id=child.workflow_id,
                        run_id=run_id,
                        status=event.status,
                        cause=cause,
                    )
                )
