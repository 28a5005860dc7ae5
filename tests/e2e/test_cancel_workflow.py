"""workflow.cancel_workflow: a run asks another workflow's latest run to
cancel, exactly once, with its own turn's commit; the other run's code sees
CancelledError and compensates; the sender learns the request was delivered,
or why not (no such id, its run ended); cancelling its own id is refused;
the history records it, replays, and a reset treats it as outstanding until
its outcome."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import workflow
from perdure.cli._summaries import summarize
from perdure.testing import Replayer, WorkflowEnvironment


@workflow.defn
async def shipment(order_id: str) -> str:
    try:
        await workflow.wait_signal("delivered", timeout=timedelta(days=3))
    except asyncio.CancelledError:
        workflow.set_state("compensated", f"parcel of {order_id} returned")
        raise
    return "delivered"


@workflow.defn
async def order_desk(shipment_id: str) -> list[str]:
    """Cancels a shipment, then an id nobody has, then the same (now ended)
    shipment again, and its own id."""
    outcomes = []
    await workflow.cancel_workflow(shipment_id, reason="customer withdrew")
    outcomes.append("delivered")
    for target in ("no-such-shipment", shipment_id, workflow.info().workflow_id):
        try:
            await workflow.cancel_workflow(target)
        except (perdure.WorkflowNotFoundError, perdure.WorkflowClosedError, ValueError) as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
        if target == "no-such-shipment":
            # (Wait until the shipment has ended: its cancel was delivered,
            # and its code has run its handler.)
            while True:
                try:
                    await workflow.signal_workflow(shipment_id, "ping")
                except perdure.WorkflowClosedError:
                    break
                await workflow.sleep(timedelta(milliseconds=20))
    return outcomes


@workflow.defn(name="order_desk")
async def order_desk_changed(shipment_id: str) -> list[str]:
    """order_desk, but it cancels another id first."""
    await workflow.cancel_workflow("elsewhere")
    return []


async def test_a_workflow_cancels_another(client: perdure.Client) -> None:
    async with fast_worker(client, [shipment, order_desk], []):
        ship = await client.start(shipment, "o-1", id="ship-o-1")
        desk = await client.start(order_desk, "ship-o-1", id="desk-o-1")
        outcomes = await desk.result(timeout=30)
        with pytest.raises(perdure.WorkflowCancelledError):
            await ship.result(timeout=30)
    assert outcomes == [
        "delivered",
        "WorkflowNotFoundError: cannot cancel workflow 'no-such-shipment': no run has that id",
        "WorkflowClosedError: cannot cancel workflow 'ship-o-1': its latest run has ended"
        " (cancelled)",
        "ValueError: a workflow cannot cancel its own id 'desk-o-1': raise"
        " asyncio.CancelledError, or return",
    ]
    assert await ship.state("compensated") == "parcel of o-1 returned"
    received = [e for e in await ship.history() if e["type"] == "CancelRequested"]
    assert [e["reason"] for e in received] == ["customer withdrew"]  # exactly once
    events = await desk.history()
    requested = [e for e in events if e["type"] == "ExternalCancelRequested"]
    assert [(e["workflow_id"], e["reason"]) for e in requested] == [
        ("ship-o-1", "customer withdrew"),
        ("no-such-shipment", "cancelled by workflow 'desk-o-1'"),
        ("ship-o-1", "cancelled by workflow 'desk-o-1'"),
    ]
    delivered = [e for e in events if e["type"] == "ExternalCancelDelivered"]
    assert [e["run_id"] for e in delivered] == [ship.run_id]
    failed = [(e["reason"], e["status"]) for e in events if e["type"] == "ExternalCancelFailed"]
    assert failed == [("not_found", ""), ("closed", "cancelled")]
    # perdure history says what each was.
    lines = [summarize(e) for e in events if e["type"].startswith("ExternalCancel")]
    last = requested[-1]["ref"]  # (after as many pings as the shipment took to end)
    assert lines == [
        "ship-o-1: customer withdrew (ref 1)",
        f"ref 1 to run {ship.run_id}",
        "no-such-shipment: cancelled by workflow 'desk-o-1' (ref 2)",
        "ref 2: no such workflow",
        f"ship-o-1: cancelled by workflow 'desk-o-1' (ref {last})",
        f"ref {last}: its run ended (cancelled)",
    ]
    # The history replays; code that cancels another id first does not.
    assert Replayer([order_desk]).replay(events).ok
    changed = Replayer([order_desk_changed]).replay(events)
    assert changed.error_type == "NonDeterminismError"
    assert "CancelExternal 'elsewhere' (ref 1)" in (changed.error or "")
    assert "CancelExternal 'ship-o-1' (ref 1)" in (changed.error or "")


@workflow.defn
async def canceller(target: str) -> None:
    await workflow.cancel_workflow(target)


async def test_bad_cancel_requests_record_nothing(client: perdure.Client) -> None:
    @workflow.defn(name="bad_canceller")
    async def bad_canceller(what: str) -> str:
        try:
            if what == "empty":
                await workflow.cancel_workflow("")
            elif what == "reason":
                await workflow.cancel_workflow("x", reason=5)  # type: ignore[arg-type]
            elif what == "surrogate":
                await workflow.cancel_workflow("x", reason="\ud800")
        except (TypeError, ValueError) as exc:
            return str(exc)
        return "sent"

    async with fast_worker(client, [bad_canceller], []):
        said = {
            what: await client.execute(bad_canceller, what, id=f"bad-{what}")
            for what in ("empty", "reason", "surrogate")
        }
    assert said == {
        "empty": "workflow_id must be a non-empty string, not ''",
        "reason": "a reason is a str (or None), not int 5",
        "surrogate": "a reason must be valid Unicode text: it holds the lone surrogate"
        " '\\ud800' at index 0",
    }
    for what in said:
        events = await client.get_handle(f"bad-{what}").history()
        assert not [e for e in events if e["type"] == "ExternalCancelRequested"]


async def test_cancel_requests_in_the_time_skipping_environment() -> None:
    async with WorkflowEnvironment(workflows=[shipment, canceller]) as env:
        ship = await env.start(shipment, "o-2", id="ship-o-2")
        await env.sleep(timedelta(days=1))
        await env.start(canceller, "ship-o-2")
        with pytest.raises(perdure.WorkflowCancelledError):
            await ship.result()
        assert await ship.state("compensated") == "parcel of o-2 returned"


async def test_a_reset_treats_a_cancel_request_as_outstanding_until_its_outcome(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [shipment, canceller], []):
        ship = await client.start(shipment, "o-3", id="ship-o-3")
        sender = await client.start(canceller, "ship-o-3", id="canceller-3")
        await sender.result(timeout=30)
        with pytest.raises(perdure.WorkflowCancelledError):
            await ship.result(timeout=30)
    points = await sender.reset_points()
    events = {e["seq"]: e["type"] for e in await sender.history()}
    # The turn that took the outcome in is a point; none between request and outcome.
    assert [events[p] for p in points.points] == ["WorkflowStarted", "ExternalCancelDelivered"]
