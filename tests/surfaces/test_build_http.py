"""Worker builds over HTTP (docs/versioning.md), in process on SQLite and
PostgreSQL: ``build_id`` in the run list's rows (and its ``?build_id=``
filter) and in the description; ``POST /api/workflows/{id}/build`` pins a
run or unpins it (``null``), 404 for an unknown id or run, 409 for a run
that has ended, 422 for a bad body; ``GET /api/queues/{queue}/builds`` and
``GET``/``PUT .../builds/current``, a live worker of a build counted;
``PUT .../builds/ramping`` lets a build take a share beside the current one
(``null`` stops it), 409 when the queue's builds do not allow it, 422 for a
bad body; ``GET /api/builds`` lists every queue's builds, by queue. A read
token reads them and gets 403 on the three writes. The OpenAPI document
describes them, and the workflow page's script shows the build.

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


async def builds_of(api: httpx.AsyncClient, queue: str) -> list[Any]:
    found = await api.get(f"/api/queues/{queue}/builds")
    assert found.status_code == 200, found.text
    items: list[Any] = found.json()["items"]
    return items


async def test_a_ramping_build_takes_a_share_beside_the_current_one(
    api: httpx.AsyncClient,
) -> None:
    ramping = "/api/queues/ramp/builds/ramping"
    early = await api.put(ramping, json={"build_id": "r2", "percent": 30})
    assert early.status_code == 409, early.text
    assert (
        "task queue 'ramp' has no current build for 'r2' to ramp beside" in (early.json()["detail"])
    )
    assert await builds_of(api, "ramp") == []  # (refused: nothing written)

    assert (await api.put("/api/queues/ramp/builds/current", json={"build_id": "r1"})).is_success
    ramped = await api.put(ramping, json={"build_id": "r2", "percent": 30})
    assert ramped.status_code == 200, ramped.text
    listed = await builds_of(api, "ramp")
    assert ramped.json()["items"] == listed
    r1, r2 = listed
    assert (r1["build_id"], r1["current"], r1["ramp"]) == ("r1", True, None)
    assert r1["promoted_at"].endswith("Z")
    assert r2 == {
        "build_id": "r2",
        "current": False,
        "promoted_at": None,  # (never current)
        "open_runs": 0,
        "workers": 0,
        "ramp": 30.0,
    }

    # Another build's ramp replaces it.
    other = await api.put(ramping, json={"build_id": "r3", "percent": 12.5})
    assert other.status_code == 200, other.text
    assert [(b["build_id"], b["ramp"]) for b in other.json()["items"]] == [
        ("r1", None),
        ("r3", 12.5),
        ("r2", None),
    ]

    stopped = await api.put(ramping, json={"build_id": None})
    assert stopped.status_code == 200, stopped.text
    assert [b["ramp"] for b in stopped.json()["items"]] == [None, None, None]
    again = await api.put(ramping, json={"build_id": "r2", "percent": 0})
    assert again.status_code == 200 and again.json()["items"][2]["ramp"] == 0.0, again.text
    zero = await api.put(ramping, json={"build_id": None, "percent": 0})
    assert zero.status_code == 200, zero.text
    assert [b["ramp"] for b in await builds_of(api, "ramp")] == [None, None, None]


async def test_ramping_refuses_what_cannot_be(api: httpx.AsyncClient) -> None:
    ramping = "/api/queues/q/builds/ramping"
    assert (await api.put("/api/queues/q/builds/current", json={"build_id": "v1"})).is_success
    assert (await api.put(ramping, json={"build_id": "v2", "percent": 30})).is_success
    before = await builds_of(api, "q")

    cases: list[tuple[Any, str]] = [
        ({}, "body.build_id: Field required"),
        ({"percent": 30}, "body.build_id: Field required"),
        ({"build_id": "", "percent": 30}, "body.build_id: String should have at least 1"),
        ({"build_id": 7, "percent": 30}, "body.build_id: Input should be a valid string"),
        ({"build_id": "v3", "percent": 101}, "body.percent: Input should be less than or equal"),
        ({"build_id": "v3", "percent": -1}, "body.percent: Input should be greater than or"),
        ({"build_id": "v3", "percent": "abc"}, "body.percent: Input should be a valid number"),
        ({"build_id": "v3", "percent": "30"}, "body.percent: Input should be a valid number"),
        ({"build_id": "v3", "percent": True}, "body.percent: Input should be a valid number"),
        ({"build_id": "v3", "percent": 3, "x": 1}, "body.x: Extra inputs are not permitted"),
        (None, "body: Input should be a valid dictionary"),
    ]
    for body, message in cases:
        refused = await api.put(ramping, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["message"].startswith(message), (body, refused.json())
    checked: list[tuple[str, Any, str]] = [
        ("q", {"build_id": "v3"}, "percent must be a number from 0 to 100, not None"),
        ("q", {"build_id": None, "percent": 30}, "percent: no share without a build"),
        ("q", {"build_id": "x" * 201, "percent": 1}, "at most 200 bytes"),
        ("a%1Fb", {"build_id": "v3", "percent": 1}, "must not hold the control character U+001F"),
    ]
    for queue, body, message in checked:
        refused = await api.put(f"/api/queues/{queue}/builds/ramping", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert message in refused.json()["detail"], (body, refused.json())

    current = await api.put(ramping, json={"build_id": "v1", "percent": 30})
    assert current.status_code == 409, current.text
    assert current.json()["detail"] == (
        "build 'v1' is the current build of task queue 'q': it takes every new run already; "
        "only another build ramps"
    )
    read = await api.get(ramping)  # (not a queue named "q/builds/ramping": GET .../builds)
    assert read.status_code == 405 and read.headers["allow"] == "PUT", read.text
    assert await builds_of(api, "q") == before
    assert [(b["build_id"], b["ramp"]) for b in before] == [("v1", None), ("v2", 30.0)]


async def test_every_queues_builds_by_queue(api: httpx.AsyncClient, client: perdure.Client) -> None:
    assert (await api.get("/api/builds")).json() == {"items": []}
    assert await client.builds_by_queue() == {}
    assert (await api.put("/api/queues/pay/builds/current", json={"build_id": "p1"})).is_success
    ramping = {"build_id": "p2", "percent": 25}
    assert (await api.put("/api/queues/pay/builds/ramping", json=ramping)).is_success
    await start(api, "api-b-every", queue="pay")
    pin = await api.post("/api/workflows/api-b-every/build", json={"build_id": "p1"})
    assert pin.is_success, pin.text
    # (A queue named with a '/', and one whose name sorts first by code point.)
    assert (await api.put("/api/queues/a%2Fb/builds/current", json={"build_id": "x"})).is_success
    assert (await api.put("/api/queues/Mail/builds/current", json={"build_id": "m1"})).is_success

    # A live worker counts on its own queue only (one read of the workers for all).
    worker = perdure.Worker(
        client, [wf.double], task_queue="Mail", build_id="m2", poll_interval=0.02
    )
    async with worker:

        async def served() -> list[Any] | None:
            answer = await api.get("/api/builds")
            assert answer.status_code == 200, answer.text
            found: list[Any] = answer.json()["items"]
            mail = next(q["builds"] for q in found if q["task_queue"] == "Mail")
            return found if mail[0]["workers"] == 1 else None

        items = await eventually(served, "the worker of build m2 counted")
        assert [q["task_queue"] for q in items] == ["Mail", "a/b", "pay"]
        for queue in items:  # (each as GET /api/queues/{queue}/builds lists it)
            own = await builds_of(api, queue["task_queue"].replace("/", "%2F"))
            assert queue["builds"] == own, queue["task_queue"]
        by_queue = {q["task_queue"]: q["builds"] for q in items}
        assert [(b["build_id"], b["current"], b["workers"]) for b in by_queue["Mail"]] == [
            ("m2", True, 1),
            ("m1", False, 0),
        ]
        assert [
            (b["build_id"], b["current"], b["ramp"], b["open_runs"]) for b in by_queue["pay"]
        ] == [
            ("p1", True, None, 1),
            ("p2", False, 25.0, 0),
        ]
        assert by_queue["pay"][1]["promoted_at"] is None
        assert [b["workers"] for b in by_queue["pay"] + by_queue["a/b"]] == [0, 0, 0]
        listed = await client.builds_by_queue()
        assert list(listed) == ["Mail", "a/b", "pay"]
        assert listed["pay"] == await client.builds("pay")


async def test_a_read_token_may_look_but_not_choose(client: perdure.Client) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    async with http(app, ADMIN) as admin, http(app, READ) as reader:
        await start(admin, "api-b-auth")
        moved = await reader.post("/api/workflows/api-b-auth/build", json={"build_id": "b1"})
        assert moved.status_code == 403 and "read-only" in moved.json()["detail"]
        chosen = await reader.put("/api/queues/default/builds/current", json={"build_id": "b1"})
        assert chosen.status_code == 403
        ramped = await reader.put(
            "/api/queues/default/builds/ramping", json={"build_id": "b1", "percent": 5}
        )
        assert ramped.status_code == 403
        assert (await reader.get("/api/queues/default/builds")).json() == {"items": []}
        assert (await reader.get("/api/builds")).json() == {"items": []}
        assert (
            await admin.put("/api/queues/default/builds/current", json={"build_id": "b0"})
        ).is_success
        (default,) = (await reader.get("/api/builds")).json()["items"]
        assert default["task_queue"] == "default" and default["builds"][0]["build_id"] == "b0"
        async with http(app, "") as nobody:
            assert (await nobody.get("/api/builds")).status_code == 401
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
    ramping = paths["/api/queues/{task_queue}/builds/ramping"]
    assert set(ramping) == {"put"}
    ramp = ramping["put"]
    assert {"200", "403", "409", "422"} <= set(ramp["responses"])
    assert "no current build" in ramp["responses"]["409"]["description"]
    body = ramp["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["build_id"] and "null stops the ramp" in str(body)
    (share, _) = body["properties"]["percent"]["anyOf"]
    assert (share["minimum"], share["maximum"]) == (0, 100)
    every = paths["/api/builds"]
    assert set(every) == {"get"}
    assert {"200", "401", "403"} <= set(every["get"]["responses"])
    assert "Every task queue that has had a worker build" in every["get"]["description"]
    listed = every["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"$ref": "#/components/schemas/QueueBuildsList"}
    (item,) = [schemas["QueueBuildsList"]["properties"]["items"]["items"]["$ref"]]
    assert item == "#/components/schemas/QueueBuilds"
    assert set(schemas["QueueBuilds"]["required"]) == {"task_queue", "builds"}
    built = schemas["BuildOut"]
    assert set(built["required"]) == {
        "build_id",
        "current",
        "promoted_at",
        "open_runs",
        "workers",
        "ramp",
    }
    for name in ("promoted_at", "ramp"):
        field = built["properties"][name]
        assert {"type": "null"} in field["anyOf"] and field["description"], name

    script = await api.get("/js/workflow.js")
    assert script.status_code == 200
    assert 'id: "wf-build"' in script.text and "desc.build_id" in script.text
