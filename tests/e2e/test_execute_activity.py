"""``workflow.execute_activity(fn, *args)``: the same step as ``await
fn(*args)`` (recorded once, with the activity's options or those given
with ``.options()``), for plain ``def`` and ``async def`` activities; a
clear error outside workflow code and for what is not an activity.
Both backends."""

from __future__ import annotations

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow

attempts: list[str] = []


@activity.defn
def label(order: str) -> str:
    attempts.append(f"label {order}")
    return f"parcel-{order}"


@activity.defn
async def charge(order: str, cents: int) -> str:
    attempts.append(f"charge {order} {cents}")
    return f"ch-{order}"


@workflow.defn
async def checkout(order: str) -> list[str]:
    return [
        await workflow.execute_activity(charge, order, 100),
        await workflow.execute_activity(label, order),
        await workflow.execute_activity(label.options(task_queue="labels"), order),
    ]


@workflow.defn
async def misuses() -> str:
    try:
        await workflow.execute_activity(checkout, "x")  # type: ignore[call-overload]
    except TypeError as exc:
        return str(exc)
    return "no error"


async def test_it_runs_each_activity_once(client: perdure.Client) -> None:
    async with (
        fast_worker(client, [checkout, misuses], [charge, label]),
        fast_worker(client, [], [label], task_queue="labels"),
    ):
        handle = await client.start(checkout, "o-1", id="o-1")
        assert await handle.result(timeout=10) == ["ch-o-1", "parcel-o-1", "parcel-o-1"]
        said = await client.execute(misuses, id="misuses", timeout=10)
    assert said.startswith("execute_activity takes an activity (decorated with @activity.defn)")
    assert attempts == ["charge o-1 100", "label o-1", "label o-1"]
    history = await handle.history()
    scheduled = [e for e in history if e["type"] == "ActivityScheduled"]
    assert [(e["name"], e["task_queue"]) for e in scheduled] == [
        ("charge", "default"),
        ("label", "default"),
        ("label", "labels"),
    ]


def test_outside_workflow_code_it_says_where_it_belongs() -> None:
    with pytest.raises(RuntimeError, match=r"workflow\.execute_activity\(\) can only be called"):
        workflow.execute_activity(label, "o-1")
