"""Worker builds over HTTP (docs/versioning.md), in process on SQLite and
PostgreSQL: ``build_id`` in the run list's rows (and its ``?build_id=``
filter) and in the description; ``POST /api/workflows/{id}/build`` pins a
run or unpins it (``null``), 404 for an unknown id or run, 409 for a run
that has ended, 422 for a bad body; ``GET /api/queues/{queue}/builds`` and
``GET``/``PUT .../builds/current``, a live worker of a build counted. A read token
gets 403 on the two writes. The OpenAPI document describes them, and the
workflow page's script shows the build.

How the builds share a queue's runs is tested in tests/e2e/test_builds.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import surface_workflows as wf
from api_both import ADMIN, READ, eventually
from test_schedule_api import http

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

pytestmark = pytest.mark.both_databases


async def start(api: httpx.AsyncClient, ident: str, queue: str = "default") -> str:
    body = {"workflow": "double", "args": [1], "id": ident, "task_queue": queue}
    started = await api.post("/api/workflows", json=body)
    assert started.status_code == 201, started.text
    run_id: str = started.json()["run_id"]
    return run_id


async def pinned(api: httpx.AsyncClient, ident: str) -> Any:
    answer = await api.get(f"/api/workflows/{ident}")
    assert answer.status_code == 200, answer.text
    return answer.json()["build_id"]


async def test_a_run_is_pinned_unpinned_and_listed_by_build(api: httpx.AsyncClient) -> None:
    await start(api, "api-b-1")
    run_id = await start(api, "api-b-2")
    await start(api, "api-b-plain")
    assert await pinned(api, "api-b-1") is None
    moved = await api.post("/api/workflows/api-b-1/build", json={"build_id": "b1"})
    assert moved.status_code == 202, moved.text
    assert moved.json() == {"id": "api-b-1", "action": "build b1"}
    by_run = await api.post(
        "/api/workflows/api-b-2/build", params={"run_id": run_id}, json={"build_id": "b1"}
    )
    assert by_run.status_code == 202, by_run.text
    assert (await pinned(api, "api-b-1"), await pinned(api, "api-b-2")) == ("b1", "b1")

    rows = (await api.get("/api/workflows", params={"search": "api-b-"})).json()["items"]
    assert {r["id"]: r["build_id"] for r in rows} == {
        "api-b-1": "b1",
        "api-b-2": "b1",
        "api-b-plain": None,
    }
    only = (await api.get("/api/workflows", params={"build_id": "b1"})).json()["items"]
    assert sorted(r["id"] for r in only) == ["api-b-1", "api-b-2"]
    assert (await api.get("/api/workflows", params={"build_id": "b9"})).json()["items"] == []
    every = (await api.get("/api/workflows", params={"build_id": ""})).json()["items"]
    assert len(every) == 3  # (an empty filter is none, as for the others)
    too_long = await api.get("/api/workflows", params={"build_id": "x" * 201})
    assert too_long.status_code == 422
    assert "build_id must be at most 200 bytes" in too_long.json()["detail"]

    unpinned = await api.post("/api/workflows/api-b-1/build", json={"build_id": None})
    assert unpinned.status_code == 202 and unpinned.json()["action"] == "unpin"
    assert await pinned(api, "api-b-1") is None


async def test_moving_a_run_refuses_what_cannot_be(api: httpx.AsyncClient) -> None:
    await start(api, "api-b-bad")
    assert (await api.post("/api/workflows/api-b-bad/build", json={"build_id": "b1"})).is_success
    cases: list[tuple[Any, str]] = [
        ({}, "body.build_id: Field required"),
        ({"build_id": ""}, "body.build_id: String should have at least 1 character"),
        ({"build_id": 7}, "body.build_id: Input should be a valid string"),
        ({"build_id": "b2", "run": "x"}, "body.run: Extra inputs are not permitted"),
        (None, "body: Input should be a valid dictionary"),
    ]
    for body, message in cases:
        refused = await api.post("/api/workflows/api-b-bad/build", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["message"].startswith(message), (body, refused.json())
    long = await api.post("/api/workflows/api-b-bad/build", json={"build_id": "é" * 101})
    assert long.status_code == 422
    assert "build_id must be at most 200 bytes long in UTF-8, not 202" in long.json()["detail"]
    assert await pinned(api, "api-b-bad") == "b1"

    nobody = await api.post("/api/workflows/api-b-nobody/build", json={"build_id": "b1"})
    assert nobody.status_code == 404 and "no workflow with id" in nobody.json()["detail"]
    no_run = await api.post(
        "/api/workflows/api-b-bad/build", params={"run_id": "nope"}, json={"build_id": "b1"}
    )
    assert no_run.status_code == 404, no_run.text
    assert (await api.post("/api/workflows/api-b-bad/terminate")).status_code == 200
    ended = await api.post("/api/workflows/api-b-bad/build", json={"build_id": "b2"})
    assert ended.status_code == 409 and "terminated" in ended.json()["detail"], ended.text
    assert await pinned(api, "api-b-bad") == "b1"


async def test_a_queues_builds_and_the_current_one(
    api: httpx.AsyncClient, client: perdure.Client
) -> None:
    assert (await api.get("/api/queues/rollout/builds")).json() == {"items": []}
    none = await api.get("/api/queues/rollout/builds/current")
    assert none.status_code == 404 and "has had no build" in none.json()["detail"]
    first = await api.put("/api/queues/rollout/builds/current", json={"build_id": "v2"})
    assert first.status_code == 200, first.text
    (v2,) = first.json()["items"]
    assert v2["build_id"] == "v2" and v2["current"] is True
    assert (v2["open_runs"], v2["workers"]) == (0, 0) and v2["promoted_at"].endswith("Z")

    await start(api, "api-b-rollout", queue="rollout")
    assert (
        await api.post("/api/workflows/api-b-rollout/build", json={"build_id": "v2"})
    ).is_success
    back = await api.put("/api/queues/rollout/builds/current", json={"build_id": "v1"})
    assert back.status_code == 200, back.text
    listed = (await api.get("/api/queues/rollout/builds")).json()["items"]
    assert back.json()["items"] == listed
    assert [(b["build_id"], b["current"], b["open_runs"]) for b in listed] == [
        ("v1", True, 0),
        ("v2", False, 1),
    ]
    current = await api.get("/api/queues/rollout/builds/current")
    assert current.status_code == 200 and current.json() == listed[0]

    # A live worker of a build is counted (and made its build current).
    worker = perdure.Worker(
        client, [wf.double], task_queue="with-worker", build_id="w-1", poll_interval=0.02
    )
    async with worker:

        async def served() -> list[Any] | None:
            found: list[Any] = (await api.get("/api/queues/with-worker/builds")).json()["items"]
            return found if found and found[0]["workers"] == 1 else None

        (live,) = await eventually(served, "the worker of build w-1 counted")
        assert live["build_id"] == "w-1" and live["current"] is True


async def test_choosing_the_current_build_refuses_what_cannot_be(api: httpx.AsyncClient) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("q", {}, "body.build_id: Field required"),
        ("q", {"build_id": ""}, "body.build_id: String should have at least 1 character"),
        ("q", {"build_id": None}, "body.build_id: Input should be a valid string"),
        ("q", {"build_id": True}, "body.build_id: Input should be a valid string"),
        ("q", {"build_id": "v", "queue": "q"}, "body.queue: Extra inputs are not permitted"),
    ]
    for queue, body, message in cases:
        refused = await api.put(f"/api/queues/{queue}/builds/current", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["message"].startswith(message), (body, refused.json())
    long = await api.put("/api/queues/q/builds/current", json={"build_id": "x" * 201})
    assert long.status_code == 422 and "at most 200 bytes" in long.json()["detail"]
    separator = await api.put("/api/queues/a%1Fb/builds/current", json={"build_id": "v"})
    assert separator.status_code == 422
    assert "must not hold the control character U+001F" in separator.json()["detail"]
    assert (await api.get("/api/queues/a%1Fb/builds")).status_code == 422
    assert (await api.get("/api/queues/q/builds")).json() == {"items": []}


async def test_a_read_token_may_look_but_not_choose(client: perdure.Client) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    async with http(app, ADMIN) as admin, http(app, READ) as reader:
        await start(admin, "api-b-auth")
        moved = await reader.post("/api/workflows/api-b-auth/build", json={"build_id": "b1"})
        assert moved.status_code == 403 and "read-only" in moved.json()["detail"]
        chosen = await reader.put("/api/queues/default/builds/current", json={"build_id": "b1"})
        assert chosen.status_code == 403
        assert (await reader.get("/api/queues/default/builds")).json() == {"items": []}
        assert (await reader.get("/api/workflows/api-b-auth")).json()["build_id"] is None
        assert (
            await admin.post("/api/workflows/api-b-auth/build", json={"build_id": "b1"})
        ).is_success
        assert (await reader.get("/api/workflows/api-b-auth")).json()["build_id"] == "b1"


async def test_the_openapi_document_and_the_page_know_the_build(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    paths = spec["paths"]
    assert "post" in paths["/api/workflows/{workflow_id}/build"]
    assert "get" in paths["/api/queues/{task_queue}/builds"]
    assert {"get", "put"} <= set(paths["/api/queues/{task_queue}/builds/current"])
    listing = {p["name"]: p for p in paths["/api/workflows"]["get"]["parameters"]}
    assert "pinned to this worker build" in listing["build_id"]["description"]
    move = paths["/api/workflows/{workflow_id}/build"]["post"]
    body = move["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["build_id"] and "null unpins it" in str(body)
    assert {"404", "409", "422"} <= set(move["responses"])
    schemas = spec["components"]["schemas"]
    for model in ("WorkflowSummary", "WorkflowDescription"):
        field = schemas[model]["properties"]["build_id"]
        assert {"type": "null"} in field["anyOf"] and field["description"], model
        assert "build_id" in schemas[model]["required"], model
    built = schemas["BuildOut"]
    assert set(built["required"]) == {"build_id", "current", "promoted_at", "open_runs", "workers"}

    script = await api.get("/js/workflow.js")
    assert script.status_code == 200
    assert 'id: "wf-build"' in script.text and "desc.build_id" in script.text
