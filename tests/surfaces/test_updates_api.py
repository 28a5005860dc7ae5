"""``POST /api/workflows/{id}/updates/{name}`` in process (httpx over ASGI), on
SQLite and PostgreSQL, with a real worker: the workflow's answer is a 200
``{"id", "update_id", "result"}``; a rejection a 409 that says so, with the
workflow's message and the update id (a closed run's 409 says neither); no
answer within ``timeout`` a 404 (as the state long-poll's) with the update id,
and sending it again with that id gets the answer; an unknown workflow 404;
bad input 422; only an admin may. The description lists ``waiting_updates``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import update_workflows as uw
from api_both import ADMIN, BASE, READ, eventually

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

pytestmark = pytest.mark.both_databases


@pytest.fixture
async def update_worker(client: perdure.Client) -> AsyncIterator[perdure.Worker]:
    async with perdure.Worker(client, uw.WORKFLOWS, [], poll_interval=0.02) as w:
        yield w


async def described_when(api: httpx.AsyncClient, ident: str, key: str, names: list[str]) -> Any:
    """The run's description once its ``key`` (waiting_updates, ...) is ``names``."""

    async def look() -> Any:
        d = (await api.get(f"/api/workflows/{ident}")).json()
        return d if d.get(key) == names else None

    return await eventually(look, f"{ident} to wait for {names}")


async def test_an_update_is_answered_or_rejected_with_its_message(
    api: httpx.AsyncClient, client: perdure.Client, update_worker: perdure.Worker
) -> None:
    await client.start("expense", "exp-1", 1500, id="api-exp-1")
    d = await described_when(api, "api-exp-1", "waiting_updates", ["decide"])
    assert d["waiting_signals"] == [] and d["status"] == "running"
    url = "/api/workflows/api-exp-1/updates/decide"

    refused = await api.post(url, json={"decision": "approved", "by": "team-lead"})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["update_id"])  # (none sent: a new one)
    assert body == {
        "detail": "workflow 'api-exp-1' rejected update 'decide': above 1,000 a director decides",
        "id": "api-exp-1",
        "update_id": body["update_id"],
        "rejected": True,
        "message": "above 1,000 a director decides",
    }

    # A body of any Content-Type is read as JSON, as a signal's is.
    approve = '{"decision": "approved", "by": "director"}'
    answered = await api.post(
        url,
        content=approve,
        params={"update_id": "director-1", "timeout": 10},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answered.status_code == 200, answered.text
    assert answered.json() == {
        "id": "api-exp-1",
        "update_id": "director-1",
        "result": {"status": "approved", "amount": 1500},
    }
    assert await client.get_handle("api-exp-1").result(timeout=10) == "approved"

    # The run has ended: the same update id reads the answer (nothing is sent);
    # a new request is the closed run's 409, which says neither.
    again = await api.post(url, content=approve, params={"update_id": "director-1"})
    assert again.status_code == 200 and again.json() == answered.json()
    closed = await api.post(url, content=approve)
    assert closed.status_code == 409, closed.text
    assert set(closed.json()) == {"detail"} and "already completed" in closed.json()["detail"]

    history = (await api.get("/api/workflows/api-exp-1/history")).json()
    requests = [e for e in history if e["type"] == "SignalReceived"]
    assert [e["name"] for e in requests] == ["perdure.update:decide"] * 2
    assert requests[1]["payload"] == {
        "update_id": "director-1",
        "payload": {"decision": "approved", "by": "director"},
    }
    replies = [
        (e["update_id"], e["result"], e["failure"]) for e in history if e["type"] == "UpdateReplied"
    ]
    assert replies == [
        (body["update_id"], None, "above 1,000 a director decides"),
        ("director-1", {"status": "approved", "amount": 1500}, None),
    ]


async def test_no_answer_in_time_is_a_404_and_the_retry_by_id_gets_the_answer(
    api: httpx.AsyncClient, client: perdure.Client, update_worker: perdure.Worker
) -> None:
    await client.start("gate", "ada", id="api-gate-1")
    await described_when(api, "api-gate-1", "waiting_signals", ["open"])
    url = "/api/workflows/api-gate-1/updates/ask"

    late = await api.post(url, json="tea", params={"timeout": 0.2})
    assert late.status_code == 404, late.text
    body = late.json()
    update_id = body["update_id"]
    assert body == {
        "detail": "workflow 'api-gate-1' did not answer update 'ask' within 0.2s; the request "
        f"stays queued: send it again with update_id={update_id} for its answer",
        "id": "api-gate-1",
        "update_id": update_id,
        "timed_out": True,
    }

    # The request stayed queued. A retry by its id waits for its answer, which
    # comes once the gate opens.
    retry = asyncio.create_task(
        api.post(url, json="tea", params={"update_id": update_id, "timeout": 10})
    )

    async def sent() -> list[str] | None:
        events = await client.get_handle("api-gate-1").history()
        ids = [e["payload"]["update_id"] for e in events if e["type"] == "SignalReceived"]
        return ids if len(ids) == 2 else None

    assert await eventually(sent, "the retry's request") == [update_id, update_id]
    signal = await api.post("/api/workflows/api-gate-1/signals/open")
    assert signal.status_code == 202, signal.text
    answered = await retry
    assert answered.status_code == 200, answered.text
    assert answered.json() == {
        "id": "api-gate-1",
        "update_id": update_id,
        "result": "ada says yes to tea",
    }
    # The workflow took the request once (the retry's copy was skipped).
    assert await client.get_handle("api-gate-1").result(timeout=10) == f"answered {update_id}"


async def test_errors(
    api: httpx.AsyncClient, client: perdure.Client, update_worker: perdure.Worker
) -> None:
    await client.start("expense", "exp-w", 10, id="api-exp-w")
    await described_when(api, "api-exp-w", "waiting_updates", ["decide"])
    url = "/api/workflows/api-exp-w/updates/decide"

    missing = await api.post("/api/workflows/nope/updates/decide", json=1)
    assert missing.status_code == 404 and missing.json() == {"detail": "no workflow with id 'nope'"}
    for params, content in (
        ({}, b"{not json"),
        ({"timeout": 61}, b"1"),
        ({"timeout": -1}, b"1"),
        ({"timeout": "soon"}, b"1"),
        ({"update_id": ""}, b"1"),
        ({"update_id": "a\x00b"}, b"1"),
        ({"run_id": ""}, b"1"),
    ):
        bad = await api.post(url, params=params, content=content)
        assert bad.status_code == 422, (params, content, bad.text)
    too_long = await api.post(f"/api/workflows/api-exp-w/updates/{'n' * 513}", json=1)
    assert too_long.status_code == 422, too_long.text
    # A signal may not take an update's reserved name (it had been a 500).
    reserved = await api.post("/api/workflows/api-exp-w/signals/perdure.update:decide", json=1)
    assert reserved.status_code == 422 and "kept for updates" in reserved.json()["detail"]
    # None of them sent anything.
    history = await client.get_handle("api-exp-w").history()
    assert not [e for e in history if e["type"] == "SignalReceived"]

    # The run ends without answering: the closed run's 409.
    withdrawn = await api.post(url, json="withdraw", params={"timeout": 10})
    assert withdrawn.status_code == 409, withdrawn.text
    assert set(withdrawn.json()) == {"detail"}
    assert "ended completed without answering update 'decide'" in withdrawn.json()["detail"]


async def test_only_an_admin_may_send_an_update(client: perdure.Client) -> None:
    await client.start("expense", "exp-auth", 10, id="api-exp-auth")
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as api:
        url = "/api/workflows/api-exp-auth/updates/decide"
        anonymous = await api.post(url, json=1)
        read = await api.post(url, json=1, headers={"Authorization": f"Bearer {READ}"})
        late = await api.post(
            url, json=1, params={"timeout": 0}, headers={"Authorization": f"Bearer {ADMIN}"}
        )
    assert anonymous.status_code == 401 and read.status_code == 403
    assert late.status_code == 404 and late.json()["timed_out"] is True  # (no worker here)


def test_the_openapi_document_describes_the_route() -> None:
    document = create_app(db_url="unused").openapi()
    route = document["paths"]["/api/workflows/{workflow_id}/updates/{name}"]["post"]
    answers = route["responses"]
    assert answers["200"]["content"]["application/json"]["schema"]["$ref"].endswith("UpdateAnswer")
    for status in ("404", "409"):
        assert answers[status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "UpdateError"
        )
    assert "rejected" in answers["409"]["description"]
    assert "timed_out" in answers["404"]["description"]
    query = {p["name"] for p in route["parameters"] if p["in"] == "query"}
    assert query == {"run_id", "update_id", "timeout"}
    assert (
        "waiting_updates" in document["components"]["schemas"]["WorkflowDescription"]["properties"]
    )
