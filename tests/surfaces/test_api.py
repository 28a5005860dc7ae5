"""Every route of the HTTP API, in process (httpx over ASGI) with a real worker:
the happy paths, and 401 / 403 / 404 / 409 / 422 / 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from api_both import ADMIN, BASE, READ
from fastapi import FastAPI

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app


def http(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers)


async def waiting(api: httpx.AsyncClient, workflow_id: str, timeout: float = 10) -> dict[str, Any]:
    """Describe until the run waits for its signal (deadline ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        d: dict[str, Any] = (await api.get(f"/api/workflows/{workflow_id}")).json()
        if d.get("waiting_signals") == ["approve"]:
            return d
        assert loop.time() < deadline, f"{workflow_id} never waited for its signal: {d}"
        await asyncio.sleep(0.02)


async def test_start_describe_signal_result_history(
    api: httpx.AsyncClient, client: perdure.Client, worker: perdure.Worker
) -> None:
    started = await api.post(
        "/api/workflows", json={"workflow": "approval", "args": ["ada", 1], "id": "api-1"}
    )
    assert started.status_code == 201, started.text
    assert started.json()["id"] == "api-1" and started.json()["run_id"]

    early = (await api.get("/api/workflows/api-1/result", params={"timeout": 0.05})).json()
    assert early["done"] is False and early["status"] == "running"

    d = await waiting(api, "api-1")
    assert d["workflow_type"] == "approval" and d["input"] == {"args": ["ada", 1], "kwargs": {}}
    assert d["state"] == {"stage": "waiting for approval"}
    assert len(d["pending_timers"]) == 1 and d["pending_timers"][0]["fire_at"].endswith("Z")

    signal = await api.post("/api/workflows/api-1/signals/approve", json="boss")
    assert signal.status_code == 202 and signal.json() == {
        "id": "api-1",
        "action": "signal approve",
    }
    result = await api.get("/api/workflows/api-1/result", params={"timeout": 10})
    assert result.status_code == 200
    assert result.json() == {
        "id": "api-1",
        "run_id": started.json()["run_id"],
        "status": "completed",
        "done": True,
        "result": {"greeting": "hello ada", "step": "ok after 2 attempts", "approved_by": "boss"},
        "failure": None,
    }

    history = (await api.get("/api/workflows/api-1/history")).json()
    assert history == await client.get_handle("api-1").history()
    tail = (await api.get("/api/workflows/api-1/history", params={"after_seq": 10})).json()
    assert [e["seq"] for e in tail] == [e["seq"] for e in history if e["seq"] > 10]


async def test_list_filters_and_pages(
    api: httpx.AsyncClient, client: perdure.Client, worker: perdure.Worker
) -> None:
    for i in range(5):
        await client.start("double", i, id=f"list-{i}")
    await client.start("doomed", "no", id="other-1")
    for i in range(5):
        assert await client.get_handle(f"list-{i}").result(timeout=10) == 2 * i

    page = (await api.get("/api/workflows", params={"type": "double", "limit": 2})).json()
    assert [r["id"] for r in page["items"]] == ["list-4", "list-3"]
    assert page["items"][0]["status"] == "completed" and page["items"][0]["closed_at"]
    more = await api.get(
        "/api/workflows", params={"type": "double", "limit": 2, "cursor": page["next_cursor"]}
    )
    assert [r["id"] for r in more.json()["items"]] == ["list-2", "list-1"]
    last = await api.get("/api/workflows", params={"type": "double", "limit": 2, "page": 3})
    assert [r["id"] for r in last.json()["items"]] == ["list-0"]
    assert last.json()["next_cursor"] is None

    found = (await api.get("/api/workflows", params={"search": "OTHER"})).json()["items"]
    assert [r["id"] for r in found] == ["other-1"]
    recent = await api.get("/api/workflows", params={"since": "1h", "until": "2999-01-01"})
    assert len(recent.json()["items"]) == 6
    running = (await api.get("/api/workflows", params={"status": "terminated"})).json()
    assert running["items"] == []

    for params in (
        {"since": "yesterday"},
        {"page": 1, "cursor": page["next_cursor"]},
        {"cursor": "not-a-cursor"},
        {"limit": 0},
        {"limit": 5000},
        {"since": "2h", "until": "3h"},
        {"status": "Completed"},  # (had listed nothing, as if no run had completed)
    ):
        bad = await api.get("/api/workflows", params=params)
        assert bad.status_code == 422, (params, bad.text)


async def test_cancel_terminate_and_closed_runs(
    api: httpx.AsyncClient, client: perdure.Client, worker: perdure.Worker
) -> None:
    for ident in ("c-1", "t-1"):
        body = {"workflow": "approval", "args": ["x"], "id": ident}
        assert (await api.post("/api/workflows", json=body)).status_code == 201
    await waiting(api, "c-1")
    cancel = await api.post("/api/workflows/c-1/cancel", json={"reason": "not needed"})
    assert cancel.status_code == 202
    outcome = (await api.get("/api/workflows/c-1/result", params={"timeout": 10})).json()
    assert outcome["status"] == "cancelled" and outcome["done"] is True

    terminate = await api.post("/api/workflows/t-1/terminate", json={"reason": "by hand"})
    assert terminate.status_code == 200
    d = (await api.get("/api/workflows/t-1")).json()
    assert d["status"] == "terminated" and d["failure"]["message"] == "by hand"
    assert (await api.post("/api/workflows/t-1/terminate")).status_code == 409  # no body: fine

    for path, body in (("signals/approve", None), ("cancel", {}), ("terminate", {})):
        closed = await api.post(f"/api/workflows/c-1/{path}", json=body)
        assert closed.status_code == 409, path
        assert "already cancelled" in closed.json()["detail"]
    again = await api.post("/api/workflows", json={"workflow": "approval", "id": "c-1"})
    assert again.status_code == 409 and "already used" in again.json()["detail"]
    reused = await api.post(
        "/api/workflows", json={"workflow": "double", "id": "c-1", "id_conflict": "use_existing"}
    )
    assert reused.status_code == 201
    # c-1 was cancelled: retry_failed starts a new run; asked again, it is that run.
    retried = await api.post(
        "/api/workflows",
        json={"workflow": "approval", "args": ["y"], "id": "c-1", "id_conflict": "retry_failed"},
    )
    assert retried.status_code == 201, retried.text
    assert retried.json()["run_id"] != reused.json()["run_id"]
    twice = await api.post(
        "/api/workflows", json={"workflow": "approval", "id": "c-1", "id_conflict": "retry_failed"}
    )
    assert twice.status_code == 201 and twice.json()["run_id"] == retried.json()["run_id"]


async def test_bodies_are_json_whatever_the_content_type(
    api: httpx.AsyncClient, client: perdure.Client, worker: perdure.Worker
) -> None:
    """``curl -d`` sends form-urlencoded; webhooks send what they like: JSON is JSON."""
    form = {"content-type": "application/x-www-form-urlencoded"}
    body = b'{"workflow": "approval", "args": ["x"], "id": "lenient"}'
    started = await api.post("/api/workflows", content=body, headers=form)
    assert started.status_code == 201, started.text
    unlabelled = await api.post("/api/workflows", content=b'{"workflow": "approval"}')
    assert unlabelled.status_code == 201, unlabelled.text
    sent = (
        await api.post("/api/workflows/lenient/signals/a", content=b'{"n": 1}', headers=form),
        await api.post("/api/workflows/lenient/signals/b", content=b"[1, 2]"),  # no type at all
        await api.post("/api/workflows/lenient/signals/c"),  # empty: null
    )
    assert [r.status_code for r in sent] == [202, 202, 202]
    handle = client.get_handle("lenient")

    async def signals() -> list[tuple[str, object]]:
        events = await handle.history()
        return [(e["name"], e["payload"]) for e in events if e["type"] == "SignalReceived"]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(await signals()) < 3:
        assert loop.time() < deadline, await signals()
        await asyncio.sleep(0.02)
    assert await signals() == [("a", {"n": 1}), ("b", [1, 2]), ("c", None)]
    cancel = await api.post(
        "/api/workflows/lenient/cancel", content=b'{"reason": "r"}', headers=form
    )
    assert cancel.status_code == 202
    outcome = (await api.get("/api/workflows/lenient/result", params={"timeout": 10})).json()
    assert outcome["status"] == "cancelled"
    assert any(
        e["type"] == "CancelRequested" and e["reason"] == "r" for e in await handle.history()
    )


async def test_children_and_continue_as_new(
    api: httpx.AsyncClient, client: perdure.Client, worker: perdure.Worker
) -> None:
    await client.start("family", 4, id="fam")
    kid = "/api/workflows/fam%2Fkid"  # child ids contain the parent's id and a '/'
    await waiting(api, "fam%2Fkid")
    parent = (await api.get("/api/workflows/fam")).json()
    assert parent["pending_children"] == [
        {"workflow_id": "fam/kid", "run_id": parent["pending_children"][0]["run_id"],
         "workflow_type": "approval"}
    ]  # fmt: skip
    child = (await api.get(kid)).json()
    assert child["parent_run_id"] == parent["run_id"]
    assert (await api.post(f"{kid}/signals/approve", json="mum")).status_code == 202
    done = (await api.get("/api/workflows/fam/result", params={"timeout": 10})).json()
    assert done["result"]["doubled"] == 8 and done["result"]["kid"]["approved_by"] == "mum"

    first = await client.start("countdown", 2, id="count")
    outcome = (await api.get("/api/workflows/count/result", params={"timeout": 10})).json()
    assert outcome["status"] == "completed" and outcome["result"] == "liftoff"
    assert outcome["run_id"] != first.run_id  # followed the continue-as-new chain
    old = (await api.get("/api/workflows/count", params={"run_id": first.run_id})).json()
    assert old["status"] == "continued_as_new" and old["continued_to"]
    via_old = await api.get("/api/workflows/count/result", params={"run_id": first.run_id})
    assert via_old.json()["result"] == "liftoff"
    runs = (await api.get("/api/workflows", params={"search": "count"})).json()["items"]
    assert [r["status"] for r in runs] == ["completed", "continued_as_new", "continued_as_new"]


async def test_reset_runs_a_workflow_again_in_a_new_run(
    api: httpx.AsyncClient, worker: perdure.Worker
) -> None:
    started = await api.post(
        "/api/workflows", json={"workflow": "double", "args": [21], "id": "r-1"}
    )
    old_run = started.json()["run_id"]
    first = (await api.get("/api/workflows/r-1/result", params={"timeout": 10})).json()
    assert first["result"] == 42
    points = await api.get("/api/workflows/r-1/reset-points")
    assert points.json() == {"points": [1], "default": 1}
    reset = await api.post("/api/workflows/r-1/reset", json={"to_event": 1, "reason": "again"})
    assert reset.status_code == 200, reset.text
    body = reset.json()
    assert body["id"] == "r-1" and body["at_seq"] == 1 and body["run_id"] != old_run
    again = (await api.get("/api/workflows/r-1/result", params={"timeout": 10})).json()
    assert again["result"] == 42 and again["run_id"] == body["run_id"]
    events = (await api.get("/api/workflows/r-1/history")).json()
    marker = next(e for e in events if e["type"] == "WorkflowReset")
    assert marker["from_run_id"] == old_run and marker["reason"] == "again"
    listed = await api.get("/api/workflows", params={"search": "r-1", "latest": "true"})
    assert [r["run_id"] for r in listed.json()["items"]] == [body["run_id"]]
    every = await api.get("/api/workflows", params={"search": "r-1"})
    assert len(every.json()["items"]) == 2
    # No body: the default point (here, the run's only turn).
    assert (await api.post("/api/workflows/r-1/reset")).json()["at_seq"] == 1
    stale = await api.post("/api/workflows/r-1/reset", params={"run_id": old_run})
    assert stale.status_code == 409 and "not the latest run" in stale.json()["detail"]
    missing = await api.post("/api/workflows/r-1/reset", json={"to_event": 99})
    assert missing.status_code == 409 and "no event 99" in missing.json()["detail"]
    for bad, where in (
        ({"to_event": 0}, "body.to_event"),
        ({"to_event": "x"}, "body.to_event"),
        ({"to_evnt": 3}, "body.to_evnt"),
    ):
        refused = await api.post("/api/workflows/r-1/reset", json=bad)
        assert refused.status_code == 422 and where in refused.json()["detail"], refused.text


async def test_unknown_workflows_are_404(api: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/workflows/nope"),
        ("GET", "/api/workflows/nope/history"),
        ("GET", "/api/workflows/nope/result"),
        ("POST", "/api/workflows/nope/signals/go"),
        ("POST", "/api/workflows/nope/cancel"),
        ("POST", "/api/workflows/nope/terminate"),
        ("POST", "/api/workflows/nope/reset"),
        ("GET", "/api/workflows/nope/reset-points"),
    ):
        response = await api.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert response.json() == {"detail": "no workflow with id 'nope'"}


async def test_ids_with_slashes_and_spaces_round_trip(api: httpx.AsyncClient) -> None:
    ident = "team/a b?#"
    started = await api.post("/api/workflows", json={"workflow": "double", "id": ident})
    assert started.status_code == 201
    quoted = "/api/workflows/team%2Fa%20b%3F%23"  # what the UI's encodeURIComponent sends
    assert (await api.get(quoted)).json()["id"] == ident
    history = await api.get(f"{quoted}/history")
    assert history.status_code == 200 and history.json() == []  # no worker: no turn yet
    assert (await api.post(f"{quoted}/signals/go", json=1)).status_code == 202


async def test_malformed_requests_are_422_with_a_message(api: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    not_json = await api.post("/api/workflows", content=b"{workflow:", headers=headers)
    assert not_json.status_code == 422
    assert not_json.json()["message"].startswith("the request body is not valid JSON")
    for body, message in (
        ({}, "body.workflow: Field required"),
        ({"workflow": ""}, "body.workflow: String should have at least 1 character"),
        ({"workflow": "double", "args": 3}, "body.args: Input should be a valid list"),
        ({"workflow": "double", "extra": 1}, "body.extra: Extra inputs are not permitted"),
        ({"workflow": "double", "id_conflict": "maybe"}, "body.id_conflict: Input should be"),
        ([1, 2], "body: Input should be"),
    ):
        response = await api.post("/api/workflows", json=body)
        assert response.status_code == 422, body
        assert response.json()["message"].startswith(message), response.json()
    for raw in (b"{", b"NaN", b"plain text", b"\xff\xfe{", b""):
        bad_start = await api.post("/api/workflows", content=raw, headers=headers)
        assert bad_start.status_code == 422, raw
        message = bad_start.json()["message"]
        assert message.startswith(("the request body is not valid", "body: ")), (raw, message)
    for raw in (b"{", b"NaN", b"plain text", b"\xff\xfe{"):
        bad_signal = await api.post("/api/workflows/x/signals/go", content=raw)
        assert bad_signal.status_code == 422, raw
        assert bad_signal.json()["detail"].startswith("the request body is not valid JSON")
    no_run = await api.get("/api/workflows/x", params={"run_id": ""})
    assert no_run.status_code == 422  # (leave it out for the latest run)
    bad_reason = await api.post("/api/workflows/x/cancel", json={"reason": 5})
    assert bad_reason.status_code == 422
    assert (await api.get("/api/workflows/x/result", params={"timeout": 999})).status_code == 422


async def test_names_no_database_can_hold_are_422_not_500(api: httpx.AsyncClient) -> None:
    """A NUL in an id, queue, type or search (PostgreSQL's text cannot hold
    one), and a lone surrogate in a body (UTF-8 cannot carry one): the
    caller's input, refused with a message. These had been 500s, the
    surrogate even while rendering pydantic's own 422."""
    cases = [
        ("post", "/api/workflows", {"json": {"workflow": "dou\x00ble"}}, "workflow name"),
        ("post", "/api/workflows", {"json": {"workflow": "double", "id": "a\x00"}}, "id"),
        (
            "post",
            "/api/workflows",
            {"json": {"workflow": "double", "task_queue": "q\x00"}},
            "task_queue",
        ),
        ("get", "/api/workflows/a%00b", {}, "id"),
        ("get", "/api/workflows/a%00b/history", {}, "id"),
        ("post", "/api/workflows/a%00b/cancel", {}, "id"),
        ("get", "/api/workflows/x", {"params": {"run_id": "r\x00"}}, "run_id"),
        ("get", "/api/workflows", {"params": {"type": "t\x00"}}, "workflow"),
        ("get", "/api/workflows", {"params": {"search": "s\x00"}}, "search"),
    ]
    for method, url, options, option in cases:
        response = await getattr(api, method)(url, **options)
        assert response.status_code == 422, (url, options, response.text)
        assert response.json()["detail"].startswith(f"{option} must not hold the NUL character")
    headers = {"content-type": "application/json"}
    for raw in (b'{"workflow": "x\\ud800"}', b'{"workflow": "double", "id": "\\udfff"}'):
        response = await api.post("/api/workflows", content=raw, headers=headers)
        assert response.status_code == 422, (raw, response.text)
        assert "unable to parse raw data as a unicode string" in response.json()["message"]
    assert (await api.get("/api/workflows", params={"type": "double"})).status_code == 200


async def test_tokens_roles_401_and_403(client: perdure.Client) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    async with http(app) as anonymous:
        missing = await anonymous.get("/api/workflows")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert (await anonymous.get("/api/health")).status_code == 200  # for load balancers
        me = (await anonymous.get("/api/whoami")).json()
        assert me == {"role": None, "auth_required": True}
        assert (await anonymous.post("/api/workflows/x/cancel")).status_code == 401
        basic = await anonymous.get("/api/workflows", headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401
    async with http(app, Authorization="Bearer wrong-token-wrong-token") as wrong:
        assert (await wrong.get("/api/workflows")).status_code == 401
        assert (await wrong.get("/api/whoami")).status_code == 401
    async with http(app, Authorization=f"Bearer {READ}") as reader:
        assert (await reader.get("/api/workflows")).status_code == 200
        assert (await reader.get("/api/whoami")).json() == {"role": "read", "auth_required": True}
        for path in (
            "/api/workflows/x/signals/go",
            "/api/workflows/x/cancel",
            "/api/workflows/x/terminate",
            "/api/workflows/x/reset",
        ):
            forbidden = await reader.post(path)
            assert forbidden.status_code == 403 and "read-only" in forbidden.json()["detail"]
        assert (await reader.post("/api/workflows", json={"workflow": "x"})).status_code == 403
    async with http(app, Authorization=f"Bearer {ADMIN}") as admin:
        assert (await admin.get("/api/whoami")).json()["role"] == "admin"
        assert (await admin.post("/api/workflows/x/cancel")).status_code == 404  # allowed
        # With tokens, other host names are fine (the server may sit behind a proxy).
        assert (await admin.get("/api/workflows", headers={"host": "ops.example"})).is_success


async def test_open_api_guards_and_headers(api: httpx.AsyncClient) -> None:
    me = (await api.get("/api/whoami")).json()
    assert me == {"role": "admin", "auth_required": False}
    rebinding = await api.get("/api/workflows", headers={"host": "evil.example"})
    assert rebinding.status_code == 403 and "loopback" in rebinding.json()["detail"]
    csrf = await api.post("/api/workflows/x/cancel", headers={"origin": "http://evil.example"})
    assert csrf.status_code == 403 and "cross-origin" in csrf.json()["detail"]
    same = await api.post("/api/workflows/x/cancel", headers={"origin": BASE})
    assert same.status_code == 404  # allowed through, then: no such workflow
    health = await api.get("/api/health")
    assert health.json() == {"status": "ok"} and health.headers["cache-control"] == "no-store"


async def test_ui_and_openapi_are_served(api: httpx.AsyncClient) -> None:
    page = await api.get("/")
    assert page.status_code == 200 and '<script type="module" src="js/app.js">' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for asset in ("/app.css", "/js/app.js", "/js/timeline.js", "/favicon.svg"):
        assert (await api.get(asset)).status_code == 200, asset
    assert "javascript" in (await api.get("/js/app.js")).headers["content-type"]
    spec = (await api.get("/api/openapi.json")).json()
    assert {
        "/api/workflows",
        "/api/workflows/{workflow_id}",
        "/api/workflows/{workflow_id}/history",
        "/api/workflows/{workflow_id}/result",
        "/api/workflows/{workflow_id}/signals/{name}",
        "/api/workflows/{workflow_id}/cancel",
        "/api/workflows/{workflow_id}/terminate",
        "/api/workflows/{workflow_id}/reset",
        "/api/workflows/{workflow_id}/reset-points",
    } <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert (await api.get("/docs")).status_code == 404  # CDN-backed pages are off


async def test_an_unusable_database_is_503(db_url: str) -> None:
    client = await perdure.Client.connect(db_url)
    async with http(create_app(client)) as api:
        await client.close()
        for path in ("/api/health", "/api/workflows", "/api/workflows/x"):
            response = await api.get(path)
            assert response.status_code == 503, path
            assert "closed" in response.json()["detail"]


async def test_the_app_can_own_its_client(db_url: str, client: perdure.Client) -> None:
    app = create_app(db_url=db_url)
    async with app.router.lifespan_context(app), http(app) as api:
        await client.start("double", 1, id="owned")
        assert [r["id"] for r in (await api.get("/api/workflows")).json()["items"]] == ["owned"]


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    client: perdure.Client, worker: perdure.Worker
) -> None:
    """The payload limit applies only once a body is parsed: a client could make
    the server hold any amount of memory. Now a body over the limit is a 413, by
    its Content-Length or, chunked, as it arrives; one within it is served."""
    read: list[int] = []

    async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            read.append(size)
            yield b" " * size

    async with http(create_app(client, max_body_bytes=1000)) as api:
        declared = await api.post("/api/workflows", content=b"[" + b"1," * 600 + b"1]")
        assert declared.status_code == 413, declared.text
        assert "over the server's limit of 1,000 bytes" in declared.json()["message"]
        assert declared.headers["x-content-type-options"] == "nosniff"
        chunked = await api.post("/api/workflows/x/signals/s", content=chunks(100, 100))
        assert chunked.status_code == 413
        assert len(read) < 100  # refused as it came, not read to its end
        fits = b'{"workflow": "double", "args": [4], "id": "fits"}'
        started = await api.post("/api/workflows", content=chunks_of(fits))
        assert started.status_code == 201, started.text
        assert await client.get_handle("fits").result(timeout=10) == 8


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 7):
        yield data[start : start + 7]


async def test_the_list_marks_and_filters_runs_whose_turns_fail(
    api: httpx.AsyncClient, client: perdure.Client, worker: perdure.Worker
) -> None:
    await client.start("double", 3, id="fine")
    failing = await client.start("reads_in_a_thread", "api", id="retrying")
    assert await client.get_handle("fine").result(timeout=10) == 6
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not (await failing.describe()).last_error:
        assert loop.time() < deadline, "the turn did not fail"
        await asyncio.sleep(0.02)
    listed = (await api.get("/api/workflows")).json()["items"]
    marks = {item["id"]: item["last_error"] for item in listed}
    assert marks["fine"] is None and "loop.run_in_executor()" in marks["retrying"]
    only = (await api.get("/api/workflows", params={"retrying": "true"})).json()["items"]
    assert [item["id"] for item in only] == ["retrying"]
    await failing.terminate("seen")
