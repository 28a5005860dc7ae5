"""Workflows whose recorded histories (``histories/*.json``) must keep replaying.

Never change these in a way that alters the commands they issue: the golden
files are the contract that histories written by an older perdure still replay.
Re-record with ``python tests/golden/record.py`` only when the history *format*
deliberately changes (and keep the old files too).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import perdure
from perdure import ActivityError, RetryPolicy, activity, workflow


@dataclass
class Order:
    order_id: str
    cents: int


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10)))
def charge(order: Order) -> str:
    return f"ch-{order.order_id}-{order.cents}"


@activity.defn
async def ship(order_id: str) -> str:
    return f"label-{order_id}"


@activity.defn
async def slow_lookup(key: str) -> str:
    await asyncio.sleep(0.3)
    return key


@workflow.defn
async def golden_order(order: Order) -> dict[str, str]:
    workflow.set_state("stage", "charging")
    charge_id = await charge(order)
    workflow.set_state("stage", "waiting")
    try:
        decision = await workflow.wait_signal("approve", timeout=timedelta(seconds=2))
    except TimeoutError:
        decision = "auto"
    await workflow.sleep(0.05)
    labels = await asyncio.gather(ship(order.order_id), ship(order.order_id + "-b"))
    try:
        fast = await asyncio.wait_for(slow_lookup("k"), timeout=0.05)
    except TimeoutError:
        fast = "timed out"
    token = str(workflow.uuid4())[:8]
    return {
        "charge": charge_id,
        "decision": str(decision),
        "labels": ",".join(labels),
        "fast": fast,
        "token_len": str(len(token)),
    }


@workflow.defn
async def golden_cancel(order_id: str) -> str:
    try:
        await workflow.wait_signal("never")
        return "unreachable"
    except asyncio.CancelledError:
        await ship(order_id + "-refund")
        raise


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=3))
async def flaky(fail_times: int) -> str:
    if activity.info().attempt <= fail_times:
        raise ConnectionError(f"attempt {activity.info().attempt} failed")
    return f"ok on attempt {activity.info().attempt}"


@workflow.defn
async def golden_retries(fail_times: int) -> list[str]:
    """History format with per-attempt records: one activity that succeeds on its
    third attempt, one that fails on all three."""
    results = [await flaky(fail_times)]
    try:
        await flaky(fail_times + 5)
    except ActivityError as exc:
        results.append(exc.cause.type if exc.cause else "?")
    return results


@workflow.defn
async def golden_mailbox(count: int) -> list[Any]:
    """Waits for ``count`` ``note`` signals."""
    return [await workflow.wait_signal("note") for _ in range(count)]


@workflow.defn
async def golden_notifier(target: str) -> str:
    """Signals ``target`` twice from workflow code, and an id nobody has
    once (session 44: workflow.signal_workflow)."""
    await workflow.signal_workflow(target, "note", {"from": "notifier"})
    try:
        await workflow.signal_workflow("golden-nobody", "note", 1)
    except perdure.WorkflowNotFoundError:
        pass
    await workflow.signal_workflow(target, "note", 2)
    return "told"


@workflow.defn
async def golden_tagged(order_id: str) -> dict[str, Any]:
    """Started with search attributes; sets, changes and removes some
    (session 45: workflow.set_search_attributes)."""
    workflow.set_search_attributes({"order": order_id, "stage": "charging", "vip": True})
    await ship(order_id)
    workflow.set_search_attributes({"stage": "charged", "amount": 10, "ratio": 0.5, "vip": None})
    return workflow.info().search_attributes


@workflow.defn
async def golden_canceller(target: str) -> str:
    """Cancels ``target``, then an id nobody has (session 45:
    workflow.cancel_workflow)."""
    await workflow.cancel_workflow(target, reason="golden")
    try:
        await workflow.cancel_workflow("golden-nobody")
    except perdure.WorkflowNotFoundError:
        pass
    return "cancelled"


@workflow.defn
async def golden_desk(count: int) -> list[Any]:
    """Takes ``count`` updates of 'ask': answers each after an activity, or
    rejects it (session 46: workflow.wait_update)."""
    answers: list[Any] = []
    for _ in range(count):
        request = await workflow.wait_update("ask")
        if request.payload == "no":
            request.reject("not this one")
            answers.append("rejected")
            continue
        answers.append(await ship(str(request.payload)))
        request.reply(answers[-1])
    return answers


@activity.defn
async def narrate(count: int) -> int:
    """Streams ``count`` tokens (an activity's writes are not in the history)."""
    for n in range(count):
        activity.write_stream("story", f"token {n}")
    return count


@workflow.defn
async def golden_streamer(count: int) -> dict[str, Any]:
    """Writes to two streams, around an activity that writes to one; closes
    both (the second twice), and is refused a write after a close (session
    47: workflow.write_stream, close_stream)."""
    workflow.write_stream("story", {"begins": count})
    told = await narrate(count)
    workflow.write_stream("story", "the end")
    workflow.close_stream("story")
    workflow.write_stream("progress", 1.0)
    try:
        workflow.write_stream("story", "epilogue")
    except ValueError:
        refused = True
    else:
        refused = False
    workflow.close_stream("progress")
    workflow.close_stream("progress")  # (closed already: records nothing)
    return {"told": told, "refused": refused}


@workflow.defn
async def golden_prioritised(order_id: str) -> dict[str, Any]:
    """A run of its own priority (its start's), with an activity and a
    child of their own (session 48: priorities)."""
    label = await ship.options(priority=1)(order_id)
    child = await workflow.execute_child(golden_retries, 0, priority=4)
    return {"priority": workflow.info().priority, "label": label, "child": child}


@workflow.defn
async def golden_bumped(order_id: str) -> list[Any]:
    """A run whose priority an operator changes while it waits (session 48:
    set_priority, PriorityChanged): its priority before and after."""
    before = workflow.info().priority
    await workflow.wait_signal("go")
    label = await ship(order_id)
    return [before, workflow.info().priority, label]


@workflow.defn
async def golden_rekeyed(order_id: str) -> list[Any]:
    """A run whose fairness key an operator changes while it waits (session
    68: set_fairness_key, FairnessKeyChanged): its key before and after."""
    before = workflow.info().fairness_key
    await workflow.wait_signal("go")
    label = await ship(order_id)
    return [before, workflow.info().fairness_key, label]


WORKFLOWS = [
    golden_order,
    golden_cancel,
    golden_retries,
    golden_mailbox,
    golden_notifier,
    golden_tagged,
    golden_canceller,
    golden_desk,
    golden_streamer,
    golden_prioritised,
    golden_bumped,
    golden_rekeyed,
]
ACTIVITIES = [charge, ship, slow_lookup, flaky, narrate]
