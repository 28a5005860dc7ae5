"""Child workflows, from inside workflow code: ``workflow.start_child``,
``workflow.execute_child`` and the ``ChildHandle`` they give. Re-exported by
``perdure.workflow``, whose helpers it borrows at call time (that module
imports this one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Mapping
from typing import Any, Generic, Literal, ParamSpec, TypeVar

from perdure import _history as h
from perdure._attributes import checked_attributes
from perdure._checks import check_name, check_queue
from perdure._runtime import current_instance
from perdure._runtime.cancelwait import CancellationType, check_cancellation_type, wait_out
from perdure.errors import PayloadCodecError

__all__ = ["ChildHandle", "ParentClosePolicy", "execute_child", "start_child"]

ParentClosePolicy = Literal["cancel", "terminate", "abandon"]

P = ParamSpec("P")
R = TypeVar("R")


class ChildHandle(Generic[R]):
    """A child workflow started by this workflow. ``await handle`` returns its
    result or raises :class:`perdure.errors.ChildWorkflowError`."""

    def __init__(
        self,
        fn: Callable[..., Any] | None,
        workflow_id: str,
        started: asyncio.Future[str],
        result: asyncio.Future[Any],
        converter: Any,
        ref: int = 0,
        cancellation: str = "try_cancel",
    ) -> None:
        self.id = workflow_id
        self._fn = fn
        self._started = started
        self._result = result
        self._converter = converter
        self._ref = ref
        self._cancellation = cancellation

    @property
    def run_id(self) -> str | None:
        """The child's run id, once its start has been recorded."""
        return (
            self._started.result()
            if self._started.done() and not (self._started.cancelled() or self._started.exception())
            else None
        )

    async def started(self) -> str:
        """Wait until the child run exists; returns its run id."""
        return await asyncio.shield(self._started)

    async def result(self) -> R:
        try:
            data = await self._result
        except asyncio.CancelledError:
            if self._cancellation == "wait_cancellation_completed":
                inst = current_instance()
                settled = None if inst is None else inst.cancel_child_and_wait(self._ref)
                if settled is not None:
                    self._result = settled  # (awaited again, the handle gives its end)
                await wait_out(settled)  # (the child's end, before the await raises)
            raise
        try:
            if self._fn is None:
                return self._converter.from_json(data)  # type: ignore[no-any-return]
            return self._converter.decode_result(self._fn, data)  # type: ignore[no-any-return]
        except PayloadCodecError as exc:
            inst = current_instance()
            if inst is None:
                raise
            inst.unreadable(exc)

    def __await__(self) -> Generator[Any, None, R]:
        return self.result().__await__()


async def start_child(
    workflow_fn: Callable[P, Coroutine[Any, Any, R]] | str,
    *args: Any,
    id: str | None = None,
    task_queue: str | None = None,
    parent_close_policy: ParentClosePolicy = "cancel",
    search_attributes: Mapping[str, str | int | float | bool] | None = None,
    priority: int | None = None,
    cancellation_type: CancellationType = "try_cancel",
    fairness_key: str | None = None,
) -> ChildHandle[R]:
    """Start a child workflow and return once its start is recorded.

    The child has its own id (default: ``<parent id>/child-<n>``, deterministic),
    history and result. ``parent_close_policy`` says what happens to it if this
    run ends first: ``"cancel"`` (request cancellation, the default),
    ``"terminate"``, or ``"abandon"`` (let it run on). Cancelling the code that
    awaits the child's result also requests the child's cancellation.
    ``search_attributes``: the child's, as ``Client.start``'s (it does not
    inherit its parent's). ``priority``: the child's, from 1 (first) to 5
    (last); by default its parent's. ``cancellation_type``: what cancelling
    the code that awaits its result does, as Temporal's
    ChildWorkflowCancellationType: "try_cancel" (the default: request the
    child's cancellation and raise at once), "wait_cancellation_completed"
    (request it, and raise once the child has ended) or "abandon" (do not
    request it: the child runs on). ``fairness_key``: whose work the child
    is (docs/queues.md, "Fairness"); by default its parent's: a parent that
    fans out one child per tenant gives each its tenant's key.
    """
    from perdure.workflow import _instance, definition_of  # (it imports this module)

    inst = _instance("start_child")
    assert inst.info is not None
    if isinstance(workflow_fn, str):
        if not workflow_fn:  # (a child of type "" would wait for ever for a worker)
            raise ValueError("workflow name must not be empty")
        fn, name = None, workflow_fn
        pos = [inst.converter.to_json(a, where=f"argument {i}") for i, a in enumerate(args)]
        kw: dict[str, Any] = {}
    else:
        definition = definition_of(workflow_fn)
        if definition is None:
            raise TypeError(f"{workflow_fn!r} is not a workflow: decorate it with @workflow.defn")
        fn, name = definition.fn, definition.name
        pos, kw = inst.converter.encode_args(fn, args, {})
    if parent_close_policy not in ("cancel", "terminate", "abandon"):
        raise ValueError(
            f"parent_close_policy must be 'cancel', 'terminate' or 'abandon', "
            f"not {parent_close_policy!r}"
        )
    check_cancellation_type(cancellation_type)
    check_name("id", id, none_means="<parent id>/child-<n>")
    check_queue("task_queue", task_queue, none_means="the parent's")
    attributes = None if search_attributes is None else checked_attributes(search_attributes)
    priority = h.check_priority("priority", priority)
    check_name("fairness_key", fairness_key, none_means="the parent's")
    child_id = id if id is not None else f"{inst.info.workflow_id}/child-{inst._next_ref}"
    if id is None and inst.info.continued_from_run_id is not None:
        # Each run of a continue-as-new chain numbers its commands from 1 again.
        child_id = f"{inst.info.workflow_id}/{inst.info.run_id[:8]}/child-{inst._next_ref}"
    queue = task_queue if task_queue is not None else inst.info.task_queue
    ref, started, result = inst.start_child(
        name,
        child_id,
        queue,
        pos,
        kw,
        parent_close_policy,
        attributes,
        priority,
        cancellation_type,
        fairness_key,
    )
    handle: ChildHandle[R] = ChildHandle(
        fn, child_id, started, result, inst.converter, ref, cancellation_type
    )
    await started
    return handle


async def execute_child(
    workflow_fn: Callable[P, Coroutine[Any, Any, R]] | str,
    *args: Any,
    id: str | None = None,
    task_queue: str | None = None,
    parent_close_policy: ParentClosePolicy = "cancel",
    search_attributes: Mapping[str, str | int | float | bool] | None = None,
    priority: int | None = None,
    cancellation_type: CancellationType = "try_cancel",
    fairness_key: str | None = None,
) -> R:
    """Start a child workflow and wait for its result (``cancellation_type``:
    as ``start_child``'s)."""
    handle: ChildHandle[R] = await start_child(
        workflow_fn,
        *args,
        id=id,
        task_queue=task_queue,
        parent_close_policy=parent_close_policy,
        search_attributes=search_attributes,
        priority=priority,
        cancellation_type=cancellation_type,
        fairness_key=fairness_key,
    )
    return await handle.result()
