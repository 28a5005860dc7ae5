"""One line for each history event, as ``perdure history`` prints it
(``summarize``), and a JSON value cut to fit such a line (``brief``).
Imports the update signals' names and the CLI's time format only.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from perdure._history.updates import UPDATE_SIGNAL_PREFIX, parse_update_request
from perdure.cli._operator import local_time

__all__ = ["brief", "summarize"]


def brief(value: Any) -> str:
    """A JSON value on one line, cut at 80 characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def summarize(event: dict[str, Any]) -> str:
    """One line saying what a history event records."""

    kind, ref = event.get("type"), event.get("ref")
    failure = event.get("failure") or {}
    if kind == "WorkflowStarted":
        return f"{event.get('workflow_type')} args={brief(event.get('args'))}"
    if kind == "ActivityScheduled":
        return f"{event.get('name')} (ref {ref}) args={brief(event.get('args'))}"
    if kind == "ActivityCompleted":
        return f"ref {ref} attempt {event.get('attempt')} -> {brief(event.get('result'))}"
    if kind == "ActivityFailed":
        why = f"{failure.get('type')}: {failure.get('message')}"
        return f"ref {ref} attempt {event.get('attempt')} failed: {why}"
    if kind == "TimerStarted":
        fire_at = datetime.fromtimestamp(float(event.get("fire_at", 0))).astimezone()
        return f"ref {ref}, fires at {local_time(fire_at)}"
    if kind in ("TimerFired", "TimerCancelled", "ActivityCancelled"):
        return f"ref {ref}"
    if kind == "SignalReceived":
        name, payload = str(event.get("name")), event.get("payload")
        request = parse_update_request(payload) if name.startswith(UPDATE_SIGNAL_PREFIX) else None
        if request is not None:  # (an update's request)
            update = name[len(UPDATE_SIGNAL_PREFIX) :]
            return f"update {update} ({request[0]}) {brief(request[1])}"
        return f"{name} {brief(payload)}"
    if kind == "UpdateReplied":
        answer = event.get("failure")
        told = f"rejected: {answer}" if answer is not None else f"-> {brief(event.get('result'))}"
        return f"{event.get('name')} ({event.get('update_id')}) {told}"
    if kind == "StateSet":
        return f"{event.get('key')} = {brief(event.get('value'))}"
    if kind == "StreamWritten":
        return f"{event.get('key')} <- {brief(event.get('value'))}"
    if kind == "StreamClosed":
        return f"{event.get('key')} closed"
    if kind == "SearchAttributesSet":
        changes = event.get("attributes") or {}
        return ", ".join(f"{name}={brief(value)}" for name, value in changes.items())
    if kind == "WorkflowCompleted":
        return brief(event.get("result"))
    if kind == "WorkflowFailed":
        return f"{failure.get('type')}: {failure.get('message')}"
    if kind in ("WorkflowTerminated", "CancelRequested"):
        return str(event.get("reason") or "")
    if kind == "ChildWorkflowRequested":
        return f"{event.get('workflow_type')} id={event.get('workflow_id')} (ref {ref})"
    if kind == "ChildWorkflowStarted":
        return f"ref {ref} run {event.get('run_id')}"
    if kind == "ChildWorkflowCompleted":
        return f"ref {ref} -> {brief(event.get('result'))}"
    if kind in ("ChildWorkflowFailed", "ChildWorkflowStartFailed"):
        why = f"{failure.get('type')}: {failure.get('message')}"
        return f"ref {ref} {event.get('status', 'failed')}: {why}"
    if kind in ("ChildWorkflowCancelRequested",):
        return f"ref {ref}"
    if kind == "ExternalSignalRequested":
        payload = brief(event.get("payload"))
        return f"{event.get('name')} {payload} to {event.get('workflow_id')} (ref {ref})"
    if kind == "ExternalCancelRequested":
        return f"{event.get('workflow_id')}: {event.get('reason')} (ref {ref})"
    if kind in ("ExternalSignalDelivered", "ExternalCancelDelivered"):
        return f"ref {ref} to run {event.get('run_id')}"
    if kind in ("ExternalSignalFailed", "ExternalCancelFailed"):
        closed = event.get("reason") == "closed"
        return f"ref {ref}: " + (
            f"its run ended ({event.get('status')})" if closed else "no such workflow"
        )
    if kind == "SideEffectRecorded":
        return f"ref {ref} -> {brief(event.get('value'))}"
    if kind == "PatchRecorded":
        return str(event.get("patch_id"))
    if kind == "WorkflowContinuedAsNew":
        return f"args={brief(event.get('args'))}"
    if kind == "WorkflowTimedOut":
        return f"after {event.get('timeout')}s"
    if kind == "PriorityChanged":
        return f"to {event.get('priority')}"
    if kind == "FairnessKeyChanged":
        return f"to {event.get('fairness_key')}" if event.get("fairness_key") else "to no key"
    if kind == "WorkflowReset":
        why = f": {event.get('reason')}" if event.get("reason") else ""
        return f"from run {event.get('from_run_id')} at event {event.get('at_seq')}{why}"
    return ""
