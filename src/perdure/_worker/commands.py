"""A turn's commands as its commit's rows: what ``WorkflowInstance.activate``
returned, put into the ``TurnCommit`` the store writes. Imports the history
model and the store's records only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from perdure import _history as h
from perdure._runtime import WorkflowInstance
from perdure._store.base import (
    NewActivity,
    NewChild,
    NewRun,
    TurnCommit,
    new_run_id,
    new_token,
    turn_queue,
)

__all__ = ["InlinePolicy", "add_build", "add_commands"]

# (activity name, task queue, own slot) -> (owner, lease seconds) to run it
# here, or None. "Own slot": the turn is an inline activity's continuation,
# whose finishing attempt hands its slot to the first activity it schedules.
InlinePolicy = Callable[[str, str, bool], "tuple[str, float] | None"]


def add_commands(
    commit: TurnCommit,
    instance: WorkflowInstance,
    commands: list[h.Command],
    inline: InlinePolicy | None,
    own_slot: bool,
) -> None:
    """Put what ``commands`` (one turn's) ask for into ``commit``: the
    activities (each leased here if ``inline`` says so), timers, children,
    cancellations, and the run's end or continuation."""
    info = instance.info
    priority = h.DEFAULT_PRIORITY if info is None else info.priority
    key = (info.fairness_key if info is not None else None) or ""
    for command in commands:
        if isinstance(command, h.ScheduleActivity):
            options = command.options
            activity = NewActivity(
                command.ref,
                command.name,
                command.task_queue,
                command.args,
                command.kwargs,
                options,
                None,
                options.get("priority") or priority,
                options.get("fairness_key") or key,
            )
            commit.activities.append(activity)
            if inline is not None:  # (a slot reserved here is counted in the commit)
                here = inline(command.name, command.task_queue, own_slot)
                own_slot = False  # (one successor per finishing attempt)
                if here is not None:
                    activity.lease = (here[0], new_token(), here[1])
        elif isinstance(command, h.CancelActivity):
            commit.cancelled_activities.append(command.ref)
            if command.wait:
                commit.cancel_waits.append(command.ref)
        elif isinstance(command, h.StartTimer):
            commit.timers.append((command.ref, command.fire_at))
        elif isinstance(command, h.CancelTimer):
            commit.cancelled_timers.append(command.ref)
        elif isinstance(command, h.StartChild):
            commit.children.append(
                NewChild(
                    ref=command.ref,
                    workflow_type=command.workflow_type,
                    workflow_id=command.workflow_id,
                    run_id=new_run_id(),
                    task_queue=command.task_queue,
                    args=command.args,
                    kwargs=command.kwargs,
                    parent_close_policy=command.parent_close_policy,
                    seed=secrets.randbits(63),
                    search_attributes=command.search_attributes,
                    priority=command.priority or priority,
                    fairness_key=key if command.fairness_key is None else command.fairness_key,
                    headers=info.headers if info is not None else {},
                )
            )
        elif isinstance(command, h.CancelChild):
            commit.cancelled_children.append(command.ref)
        elif isinstance(command, h.SetSearchAttributes):
            commit.search_attributes = (
                instance.search_attributes
            )  # (all of them, as the turn left them)
        elif isinstance(command, h.WriteStream):
            if commit.streams is None:
                commit.streams = []
            commit.streams.append((command.key, command.value, False))
        elif isinstance(command, h.CloseStream):
            if commit.streams is None:
                commit.streams = []
            commit.streams.append((command.key, None, True))
        elif isinstance(command, h.SignalExternal):
            signal = h.SignalReceived(name=command.name, payload=command.payload)
            commit.signals_out.append((command.ref, command.workflow_id, signal))
        elif isinstance(command, h.CancelExternal):
            request = h.CancelRequested(reason=command.reason)
            commit.signals_out.append((command.ref, command.workflow_id, request))
        elif isinstance(command, h.ContinueAsNew):
            assert info is not None
            commit.close_status = "continued_as_new"
            commit.continue_as_new = NewRun(
                workflow_id=info.workflow_id,
                run_id=new_run_id(),
                workflow_type=info.workflow_type,
                task_queue=info.task_queue,
                args=command.args,
                kwargs=command.kwargs,
                seed=secrets.randbits(63),
                search_attributes=instance.search_attributes,
                priority=priority,
                fairness_key=key,
                headers=info.headers,
                after_start=tuple(
                    h.SignalReceived(name=name, payload=payload)
                    for name, payload in command.signals
                ),
            )
        elif isinstance(command, h.CompleteWorkflow):
            commit.close_status, commit.result = "completed", command.result
        elif isinstance(command, h.FailWorkflow):
            commit.close_status, commit.failure = "failed", command.failure
        elif isinstance(command, h.CancelWorkflow):
            commit.close_status = "cancelled"
    if (commit.children or commit.signals_out or commit.cancel_waits) and info is not None:
        commit.workflow_id, commit.task_queue = info.workflow_id, info.task_queue
        commit.priority, commit.fairness_key = priority, key
    if commit.close_status is not None and info is not None:
        commit.has_children = instance.has_children
        commit.has_relatives = instance.has_children or info.parent_run_id is not None
        commit.parent_run_id = info.parent_run_id


def add_build(
    commit: TurnCommit,
    instance: WorkflowInstance,
    build: str | None,
    own: str | None,
    pinned: frozenset[str],
) -> None:
    """The worker build of ``commit`` (docs/versioning.md): ``build``, the
    one the run is pinned to, if it is; else ``own``, the worker's, if the
    run's type is ``pinned`` here and the turn leaves the run open (the
    commit pins it). The run's own queue becomes that build's, and the
    children it starts on that queue, of types pinned here, start pinned to
    it too (Temporal's rule: a parent and its children of one release)."""
    info = instance.info
    if info is None:
        return
    pins = own is not None and commit.close_status is None and info.workflow_type in pinned
    if build is None and pins:
        commit.pin = build = own
    if build is None:
        return
    for child in commit.children:
        if child.task_queue == info.task_queue and child.workflow_type in pinned:
            child.build_id = build
    if commit.task_queue is not None:
        commit.task_queue = turn_queue(commit.task_queue, build)
