"""The history records what happened, whatever workflow code does with it.

A value handed to workflow code (an activity's result, a signal's payload,
the run's arguments, a failure's details) is the workflow's own: changing it changes neither what
the history says the activity returned (or the signal carried, or the run was
given) nor what a replay hands the workflow. An activity, a signal or an
argument without a type hint used to reach the workflow as the very object
its event held, so the mutation was written into the history when the turn
committed, and a replay then handed the workflow the mutated value (the
result of this file's workflows came out different after a replay).
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import ActivityError, ApplicationError, activity, workflow


@activity.defn
async def give(n):  # type: ignore[no-untyped-def]  # (no hint: decoded as Any)
    return {"n": n, "seen": []}


@activity.defn
async def pause() -> None:
    return None


@activity.defn
async def refuse() -> None:
    raise ApplicationError("no", non_retryable=True, details={"codes": [51]})


@workflow.defn
async def meddler(box):  # type: ignore[no-untyped-def]
    box["items"].append("added by the workflow")  # its argument
    got = await give(1)
    got["n"] += 100  # the activity's result
    got["seen"].append("first turn")
    await pause()  # a turn boundary: with no cache, the next turn replays this one
    payload = await workflow.wait_signal("note")
    payload["text"] += " (changed)"  # the signal's payload
    await pause()
    try:
        await refuse()
    except ActivityError as exc:
        details = exc.cause.details
        details["codes"].append(0)  # a failure's details
    await pause()
    return {"box": box, "got": got, "payload": payload, "details": details}


EXPECTED = {
    "box": {"items": ["given", "added by the workflow"]},
    "got": {"n": 101, "seen": ["first turn"]},
    "payload": {"text": "hello (changed)"},
    "details": {"codes": [51, 0]},
}


@pytest.mark.parametrize("cache_size", [10, 0])
async def test_mutating_what_it_was_handed_changes_no_history(
    client: perdure.Client, cache_size: int
) -> None:
    async with fast_worker(client, [meddler], [give, pause, refuse], cache_size=cache_size):
        handle = await client.start(meddler, {"items": ["given"]})
        await handle.signal("note", {"text": "hello"})
        assert await handle.result(timeout=20) == EXPECTED
    history = await handle.history()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in history:
        by_type.setdefault(event["type"], []).append(event)
    assert by_type["WorkflowStarted"][0]["args"] == [{"items": ["given"]}]
    assert by_type["ActivityCompleted"][0]["result"] == {"n": 1, "seen": []}
    assert by_type["SignalReceived"][0]["payload"] == {"text": "hello"}
    assert by_type["ActivityFailed"][0]["failure"]["details"] == {"codes": [51]}
