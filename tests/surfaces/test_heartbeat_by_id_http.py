"""``POST /api/workflows/{id}/activities/{n}/heartbeat`` and
``/report-cancellation``: the by-id form of the token routes, for a system
that knows a run's workflow id and activity id rather than the task token
(as ``perdure activity heartbeat|report-cancellation -w ID -a N``). They act
on an attempt awaiting completion only (404 otherwise: a worker's running
attempt heartbeats itself); a heartbeat of a cancelled attempt is a 409;
bad input a 422; the admin role, as every route that changes a run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import async_workflows as aw
import httpx
import pytest
from api_both import ADMIN, BASE, READ, eventually

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app


@pytest.fixture
async def served(client: perdure.Client) -> AsyncIterator[perdure.Client]:
    """The client, with an in-process worker of async_workflows."""
    w = perdure.Worker(client, aw.WORKFLOWS, aw.ACTIVITIES, poll_interval=0.02, lease_timeout=5.0)
    async with w:
        yield client


async def awaiting(handle: perdure.WorkflowHandle) -> None:
    async def awaits() -> bool:
        pending = (await handle.describe()).pending_activities
        return bool(pending) and pending[0].awaiting_completion

    await eventually(awaits, f"{handle.id}'s attempt to await completion")


async def test_heartbeat_and_report_cancellation_by_id(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.awaits_until_cancelled, "i", id="api/beat-by-id")
    await awaiting(handle)
    base = "/api/workflows/api/beat-by-id/activities/1"
    beat = await api.post(f"{base}/heartbeat", json={"details": {"rows": 9}})
    assert beat.status_code == 200 and beat.json() == {"ok": True}, beat.text
    [pending] = (await api.get("/api/workflows/api/beat-by-id")).json()["pending_activities"]
    assert pending["heartbeat_details"] == {"rows": 9}
    empty = await api.post(f"{base}/heartbeat?run_id={handle.run_id}")  # (no body: null)
    assert empty.status_code == 200, empty.text
    await handle.cancel()

    async def gave_up() -> bool:
        return (await handle.describe()).waiting_signals == ["finish"]

    await eventually(gave_up, "the workflow to cancel its activity")
    told = await api.post(f"{base}/heartbeat", json={"details": 1})
    assert told.status_code == 409 and "was cancelled by its workflow" in told.json()["detail"]
    reported = await api.post(f"{base}/report-cancellation")
    assert reported.status_code == 200, reported.text
    assert reported.json() == {"ok": True, "stopped": "cancelled"}

    async def recorded() -> list[dict[str, object]]:
        return [e for e in await handle.history() if e["type"] == "ActivityFailed"]

    [ended] = await eventually(recorded, "the cancellation to be recorded")
    assert ended["failure"]["type"] == "CancelledError"  # type: ignore[index]
    for route in ("heartbeat", "report-cancellation"):
        late = await api.post(f"{base}/{route}")
        assert late.status_code == 404 and "is not pending" in late.json()["detail"], late.text
    await handle.signal("finish")
    assert await handle.result(timeout=20) == {"cancelled": True}
    spec = (await api.get("/api/openapi.json")).json()
    for route in ("heartbeat", "report-cancellation"):
        post = spec["paths"][f"/api/workflows/{{workflow_id}}/activities/{{activity_id}}/{route}"]
        assert {"200", "401", "403", "404", "422"} <= set(post["post"]["responses"]), route
    assert (
        "409"
        in spec["paths"]["/api/workflows/{workflow_id}/activities/{activity_id}/heartbeat"]["post"][
            "responses"
        ]
    )


async def test_by_id_beats_need_an_attempt_awaiting_completion(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.keeps_retrying, "k", id="api-beat-retrying")

    async def retried() -> bool:
        pending = (await handle.describe()).pending_activities
        return bool(pending) and pending[0].attempt >= 2

    await eventually(retried, "the activity to be retried")
    base = "/api/workflows/api-beat-retrying/activities"
    for route in ("heartbeat", "report-cancellation"):
        refused = await api.post(f"{base}/1/{route}")
        assert refused.status_code == 404, refused.text
        assert "act on an attempt awaiting completion" in refused.json()["detail"]
    for route, body, says in [
        (f"{base}/0/heartbeat", None, "activity_id"),
        (f"{base}/1/heartbeat", {"detail": 1}, "body.detail: Extra inputs"),
        (f"{base}/1/heartbeat", [1], "body: Input should be a valid dictionary"),
        (f"{base}/x/report-cancellation", None, "activity_id"),
    ]:
        bad = await api.post(route, json=body)
        assert bad.status_code == 422, (route, bad.text)
        reply = bad.json()
        assert says in str(reply.get("message", reply.get("detail"))), (route, reply)
    assert (await handle.describe()).pending_activities[0].heartbeat_details is None
    app = create_app(served, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as anonymous:
        assert (await anonymous.post(f"{base}/1/heartbeat")).status_code == 401
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers={"Authorization": f"Bearer {READ}"}
    ) as reader:
        assert (await reader.post(f"{base}/1/report-cancellation")).status_code == 403
    await handle.terminate("done")
