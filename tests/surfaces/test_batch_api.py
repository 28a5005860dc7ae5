"""``POST /api/batch/{action}`` in process (httpx over ASGI), on SQLite and
PostgreSQL: a dry run names the runs and changes nothing; terminate, cancel
and reset act on exactly the runs the filters match (each id's latest; other
types, other values and closed runs untouched); ``limit``; a run that ended
after it was chosen is skipped; a run whose action fails is reported with its
error while the others go on; bad input is a 422 saying what is wrong; only
an admin token may (dry run or not)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import batch_workflows as bw
import httpx
import pytest
from api_both import ADMIN, BASE, READ, eventually

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

pytestmark = pytest.mark.both_databases


@pytest.fixture
async def batch_worker(client: perdure.Client) -> AsyncIterator[perdure.Worker]:
    async with perdure.Worker(client, bw.WORKFLOWS, bw.ACTIVITIES, poll_interval=0.02) as w:
        yield w


async def batch(api: httpx.AsyncClient, action: str, **body: Any) -> dict[str, Any]:
    answer = await api.post(f"/api/batch/{action}", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def status_of(client: perdure.Client, ident: str) -> str:
    return (await client.get_handle(ident).describe()).status


async def snapshot(client: perdure.Client, ident: str) -> tuple[Any, ...]:
    """What a batch that does nothing must leave as it is."""
    d = await client.get_handle(ident).describe()
    return (d.run_id, d.status, d.history_length, d.updated_at, d.closed_at)


async def waiting(client: perdure.Client, *idents: str) -> None:
    """Until each run waits for its "go" signal (its first turn taken)."""

    async def all_wait() -> bool:
        for ident in idents:
            if (await client.get_handle(ident).describe()).waiting_signals != ["go"]:
                return False
        return True

    await eventually(all_wait, f"{idents} to wait for go")


async def test_a_dry_run_names_the_runs_as_the_list_does_and_changes_nothing(
    api: httpx.AsyncClient, client: perdure.Client
) -> None:
    for ident in ("d-1", "d-2", "d-3"):
        await client.start("parked", ident, id=ident)
    await client.start("held", "d-4", id="d-4")
    await client.get_handle("d-1").terminate("closed before")
    idents = ("d-1", "d-2", "d-3", "d-4")
    before = [await snapshot(client, ident) for ident in idents]

    found = await batch(api, "terminate", type="parked", dry_run=True, reason="not yet")
    assert [row["id"] for row in found["matched"]] == ["d-3", "d-2"]  # open runs only
    assert (found["action"], found["dry_run"]) == ("terminate", True)
    assert found["done"] == found["skipped"] == found["failed"] == {}
    # Its rows are the listing's (GET /api/workflows), field for field.
    listed = await api.get(
        "/api/workflows", params={"type": "parked", "status": "running", "latest": "true"}
    )
    assert found["matched"] == listed.json()["items"]
    # A reset names every status (here: the terminated run too), and a search.
    found = await batch(api, "reset", type="parked", search="d-", dry_run=True)
    assert [row["id"] for row in found["matched"]] == ["d-3", "d-2", "d-1"]
    assert [await snapshot(client, ident) for ident in idents] == before
    assert len(await client.list()) == 4  # (no run was added)


async def test_terminate_ends_exactly_the_matched_runs(
    api: httpx.AsyncClient, client: perdure.Client
) -> None:
    ops, dev = {"team": "ops"}, {"team": "dev"}
    runs = {}
    for ident in ("t-1", "t-2", "t-3"):
        runs[ident] = (await client.start("parked", ident, id=ident, search_attributes=ops)).run_id
    await client.start("parked", "t-4", id="t-4", search_attributes=dev)  # another value
    await client.start("held", "t-5", id="t-5", search_attributes=ops)  # another type
    await client.start("parked", "t-6", id="t-6", search_attributes=ops)
    await client.get_handle("t-6").terminate("closed before")  # closed: not matched

    done = await batch(api, "terminate", type="parked", attr=["team=ops"], reason="incident 7")
    assert done["done"] == runs and done["skipped"] == done["failed"] == {}
    assert done["dry_run"] is False
    for ident in runs:
        assert await status_of(client, ident) == "terminated"
        last = (await client.get_handle(ident).history())[-1]
        assert (last["type"], last["reason"]) == ("WorkflowTerminated", "incident 7")
    assert await status_of(client, "t-4") == "running"
    assert await status_of(client, "t-5") == "running"
    closed = [e for e in await client.get_handle("t-6").history() if e["type"] != "TurnStarted"]
    assert [e.get("reason") for e in closed if e["type"] == "WorkflowTerminated"] == [
        "closed before"
    ]
    # Again: nothing still matches.
    again = await batch(api, "terminate", type="parked", attr=["team=ops"])
    assert again["matched"] == [] and again["done"] == {}


async def test_build_id_names_the_runs_pinned_to_a_build(
    api: httpx.AsyncClient, client: perdure.Client
) -> None:
    """After a bad deploy: build_id alone is a filter, and the batch takes
    the runs pinned to that build, as ?build_id= of the listing does."""
    pins = {"b-1": "bad-1", "b-2": "bad-1", "b-3": "good-1", "b-4": None}
    for ident, build in pins.items():
        handle = await client.start("parked", ident, id=ident)
        if build is not None:
            await handle.set_build_id(build)
    found = await batch(api, "terminate", build_id="bad-1", dry_run=True)
    assert [row["id"] for row in found["matched"]] == ["b-2", "b-1"]
    listed = await api.get("/api/workflows", params={"build_id": "bad-1", "latest": "true"})
    assert found["matched"] == listed.json()["items"]
    done = await batch(api, "terminate", build_id="bad-1", reason="bad deploy")
    assert sorted(done["done"]) == ["b-1", "b-2"] and done["failed"] == done["skipped"] == {}
    assert [await status_of(client, i) for i in pins] == [
        "terminated",
        "terminated",
        "running",
        "running",
    ]


async def test_cancel_is_seen_by_the_matched_runs_code(
    api: httpx.AsyncClient, client: perdure.Client, batch_worker: perdure.Worker
) -> None:
    for ident in ("c-1", "c-2"):
        await client.start("parked", ident, id=ident)
    await client.start("held", "c-3", id="c-3")
    await waiting(client, "c-1", "c-2", "c-3")

    done = await batch(api, "cancel", type="parked", search="c-", reason="not needed")
    assert sorted(done["done"]) == ["c-1", "c-2"] and done["failed"] == {}

    async def cancelled() -> bool:
        return all([await status_of(client, i) == "cancelled" for i in ("c-1", "c-2")])

    await eventually(cancelled, "the matched runs to end cancelled")
    history = await client.get_handle("c-1").history()
    assert [e.get("reason") for e in history if e["type"] == "CancelRequested"] == ["not needed"]
    assert await status_of(client, "c-3") == "running"


async def test_reset_by_filter_runs_the_failed_payments_again(
    api: httpx.AsyncClient, client: perdure.Client, batch_worker: perdure.Worker, tmp_path: Path
) -> None:
    flag, up = tmp_path / "payment-api-up", tmp_path / "always-up"
    up.touch()
    old = {}
    for ident in ("r-1", "r-2", "r-3"):
        old[ident] = (await client.start("payment", ident, str(flag), id=ident)).run_id
    paid = await client.start("payment", "r-ok", str(up), id="r-ok")
    await client.start("parked", "r-other", id="r-other")
    assert await paid.result(timeout=15) == "charged r-ok"

    async def failed() -> bool:
        return all([await status_of(client, i) == "failed" for i in old])

    await eventually(failed, "the payments to fail")
    flag.touch()  # the payment API is back

    done = await batch(api, "reset", status="failed", type="payment", reason="API back")
    assert sorted(done["done"]) == sorted(old) and done["failed"] == done["skipped"] == {}
    for ident, old_run in old.items():
        new_run = done["done"][ident]
        assert new_run != old_run
        new = client.get_handle(ident, new_run)
        assert await new.result(timeout=15) == f"charged {ident}"
        assert (await client.get_handle(ident, old_run).describe()).status == "failed"
    latest = await client.list(search="r-", latest=True)
    assert {e.id: e.run_id for e in latest if e.id in old} == done["done"]
    every = await client.list(search="r-")
    assert sorted(e.run_id for e in every if e.id in old) == sorted(
        [*old.values(), *done["done"].values()]
    )
    assert [e.run_id for e in every if e.id == "r-ok"] == [paid.run_id]  # completed: not matched
    assert await status_of(client, "r-other") == "running"
    again = await batch(api, "reset", status="failed", type="payment", dry_run=True)
    assert again["matched"] == []  # the old runs are no longer their ids' latest


async def test_limit_acts_on_the_newest_runs(
    api: httpx.AsyncClient, client: perdure.Client
) -> None:
    for ident in ("l-1", "l-2", "l-3", "l-4"):
        await client.start("parked", ident, id=ident)
    done = await batch(api, "terminate", search="l-", limit=2)
    assert [row["id"] for row in done["matched"]] == ["l-4", "l-3"]
    assert sorted(done["done"]) == ["l-3", "l-4"]
    assert [await status_of(client, i) for i in ("l-1", "l-2", "l-3", "l-4")] == [
        "running",
        "running",
        "terminated",
        "terminated",
    ]


async def test_a_run_that_ended_after_it_was_chosen_is_skipped(
    api: httpx.AsyncClient, client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for ident in ("s-1", "s-2", "s-3"):
        await client.start("parked", ident, id=ident)
    listing = client.list

    async def then_one_ends(*args: Any, **kwargs: Any) -> list[perdure.WorkflowExecution]:
        chosen = await listing(*args, **kwargs)
        await client.get_handle("s-2").terminate("someone else, meanwhile")
        return chosen

    # (Between choosing and acting: the batch lists, then acts on what it listed.)
    monkeypatch.setattr(client, "list", then_one_ends)
    done = await batch(api, "terminate", search="s-")
    assert [row["id"] for row in done["matched"]] == ["s-3", "s-2", "s-1"]
    assert done["skipped"] == {"s-2": "it has ended"}
    assert sorted(done["done"]) == ["s-1", "s-3"] and done["failed"] == {}
    history = await client.get_handle("s-2").history()
    reasons = [e.get("reason") for e in history if e["type"] == "WorkflowTerminated"]
    assert reasons == ["someone else, meanwhile"]  # not terminated twice


async def test_a_run_whose_action_fails_is_reported_and_the_others_go_on(
    api: httpx.AsyncClient, client: perdure.Client, batch_worker: perdure.Worker, tmp_path: Path
) -> None:
    tag = {"batch": "f"}
    await client.start("parent", "o-1", "f", id="f-1")
    failing = await client.start(
        "payment", "o-2", str(tmp_path / "down"), id="f-2", search_attributes=tag
    )
    with pytest.raises(perdure.WorkflowFailedError):
        await failing.result(timeout=15)
    await waiting(client, "f-1/kid")

    # The child cannot be reset (its parent waits on it); the payment can.
    done = await batch(api, "reset", attr=["batch=f"], reason="again")
    assert sorted(row["id"] for row in done["matched"]) == ["f-1/kid", "f-2"]
    assert list(done["done"]) == ["f-2"] and done["skipped"] == {}
    assert list(done["failed"]) == ["f-1/kid"]
    assert done["failed"]["f-1/kid"].startswith("WorkflowResetError: workflow 'f-1/kid' is a child")
    assert "reset the parent instead" in done["failed"]["f-1/kid"]
    assert (await client.get_handle("f-2").describe()).run_id == done["done"]["f-2"]
    assert await status_of(client, "f-1/kid") == "running"


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        ("terminate", {}, "name which runs to terminate: give a filter (status, type, since"),
        ("reset", {"search": "", "type": ""}, "name which runs to reset: give a filter"),
        ("cancel", {"reason": "why"}, "name which runs to cancel: give a filter"),
        (
            "cancel",
            {"status": "failed"},
            'only open runs can be cancelled: status must be "running" (or left out), not '
            "'failed'",
        ),
        ("terminate", {"status": "completed"}, "only open runs can be terminated"),
        ("reset", {"status": "nope"}, "status must be one of running, completed, failed"),
        ("reset", {"attr": ["team"]}, "attr takes NAME=VALUE (a search attribute and its value)"),
        ("reset", {"since": "yesterday"}, "since: cannot read time 'yesterday'"),
        ("reset", {"since": "1h", "until": "2h"}, "since ("),
        ("terminate", {"search": "\x00"}, "search must not hold the NUL character"),
        ("terminate", {"build_id": ""}, "name which runs to terminate: give a filter"),
        ("reset", {"build_id": "x" * 201}, "build_id must be at most 200 bytes long in UTF-8"),
        ("cancel", {"build_id": "b\x00"}, "build_id must not hold the NUL character"),
    ],
)
async def test_bad_input_is_422_saying_what_is_wrong_and_does_nothing(
    api: httpx.AsyncClient, client: perdure.Client, action: str, body: Any, message: str
) -> None:
    await client.start("parked", "kept", id="kept")
    before = await snapshot(client, "kept")
    answer = await api.post(f"/api/batch/{action}", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(message), answer.json()
    assert await snapshot(client, "kept") == before


async def test_a_malformed_request_is_422(api: httpx.AsyncClient) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("archive", {"search": "x"}, "path.action: Input should be 'cancel', 'terminate' or"),
        ("terminate", None, "body: Input should be a valid dictionary"),
        ("terminate", {"search": "x", "force": True}, "body.force: Extra inputs are not"),
        ("terminate", {"search": "x", "limit": 0}, "body.limit: Input should be greater than"),
        ("terminate", {"search": "x", "limit": "2"}, "body.limit: Input should be a valid int"),
        ("terminate", {"search": "x", "dry_run": "yes"}, "body.dry_run: Input should be a valid"),
        ("terminate", {"attr": "team=ops"}, "body.attr: Input should be a valid list"),
        ("terminate", {"build_id": 7}, "body.build_id: Input should be a valid string"),
    ]
    for action, body, message in cases:
        answer = await api.post(f"/api/batch/{action}", json=body)
        assert answer.status_code == 422, (action, body, answer.text)
        assert answer.json()["message"].startswith(message), answer.json()
    not_json = await api.post("/api/batch/terminate", content=b"{search")
    assert not_json.status_code == 422
    assert not_json.json()["message"].startswith("the request body is not valid JSON")


async def test_only_an_admin_token_may_batch_even_a_dry_run(client: perdure.Client) -> None:
    await client.start("parked", "tok-1", id="tok-1")
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    transport = httpx.ASGITransport(app=app)
    body = {"search": "tok-", "dry_run": True}
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as api:
        none = await api.post("/api/batch/terminate", json=body)
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
        wrong = await api.post(
            "/api/batch/terminate", json=body, headers={"Authorization": f"Bearer {'w' * 24}"}
        )
        assert wrong.status_code == 401
        read = {"Authorization": f"Bearer {READ}"}
        refused = await api.post(
            "/api/batch/terminate", json={**body, "dry_run": False}, headers=read
        )
        assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
        assert (await api.post("/api/batch/terminate", json=body, headers=read)).status_code == 403
        admin = {"Authorization": f"Bearer {ADMIN}"}
        answer = await api.post("/api/batch/terminate", json=body, headers=admin)
        assert answer.status_code == 200 and [r["id"] for r in answer.json()["matched"]] == [
            "tok-1"
        ]
    assert await status_of(client, "tok-1") == "running"


async def test_the_openapi_document_describes_it(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    route = spec["paths"]["/api/batch/{action}"]["post"]
    (action,) = route["parameters"]
    assert action["in"] == "path" and action["schema"]["enum"] == ["cancel", "terminate", "reset"]
    body = route["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {
        *("status", "type", "since", "until", "search", "attr", "retrying", "build_id"),
        *("reason", "limit", "dry_run"),
    }
    assert body["additionalProperties"] is False
    assert set(route["responses"]) == {"200", "401", "403", "422", "503"}
    out = spec["components"]["schemas"]["BatchOut"]["properties"]
    assert set(out) == {"action", "dry_run", "matched", "done", "skipped", "failed"}
    assert out["matched"]["items"] == {"$ref": "#/components/schemas/WorkflowSummary"}
    options = spec["paths"]["/api/batch/update-options"]["post"]
    body = options["requestBody"]["content"]["application/json"]["schema"]
    assert "new_options" in body["required"] and body["additionalProperties"] is False
    assert set(options["responses"]) == {"200", "401", "403", "422", "503"}


async def options_of(client: perdure.Client, ident: str) -> tuple[int, str | None]:
    d = await client.get_handle(ident).describe()
    return d.priority, d.fairness_key


async def test_update_options_changes_exactly_the_matched_open_runs(
    api: httpx.AsyncClient, client: perdure.Client
) -> None:
    for ident in ("o-1", "o-2"):
        await client.start("parked", ident, id=ident, fairness_key="acme")
    await client.start("held", "o-3", id="o-3", fairness_key="acme")  # another type
    await client.start("parked", "o-4", id="o-4", fairness_key="acme")
    await client.get_handle("o-4").terminate("closed before")  # closed: not matched
    moving = {"priority": 1, "fairness_key": "acme-gold"}

    seen = await batch(api, "update-options", type="parked", new_options=moving, dry_run=True)
    assert [row["id"] for row in seen["matched"]] == ["o-2", "o-1"]
    assert (seen["action"], seen["dry_run"], seen["done"]) == ("update_options", True, {})
    assert await options_of(client, "o-1") == (3, "acme")

    done = await batch(api, "update-options", type="parked", new_options=moving)
    assert sorted(done["done"]) == ["o-1", "o-2"] and done["skipped"] == done["failed"] == {}
    assert [await options_of(client, i) for i in ("o-1", "o-2", "o-3")] == [
        (1, "acme-gold"),
        (1, "acme-gold"),
        (3, "acme"),
    ]
    # null takes the key away; the priority left out stays.
    done = await batch(api, "update-options", search="o-", new_options={"fairness_key": None})
    assert sorted(done["done"]) == ["o-1", "o-2", "o-3"]
    assert [await options_of(client, i) for i in ("o-1", "o-2", "o-3")] == [
        (1, None),
        (1, None),
        (3, None),
    ]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"new_options": {"priority": 1}}, "name which runs to change: give a filter"),
        ({"search": "kept", "new_options": {}}, "update_options needs new_options"),
        ({"search": "kept", "new_options": {"priority": 0}}, "new_options['priority'] must be"),
        ({"search": "kept", "new_options": {"priority": None}}, "new_options['priority'] must"),
        (
            {"search": "kept", "new_options": {"fairness_key": ""}},
            "new_options['fairness_key'] must be a non-empty string",
        ),
        (
            {"search": "kept", "status": "failed", "new_options": {"priority": 2}},
            "only open runs can be changed",
        ),
    ],
)
async def test_bad_options_are_422_saying_what_is_wrong_and_change_nothing(
    api: httpx.AsyncClient, client: perdure.Client, body: Any, message: str
) -> None:
    await client.start("parked", "kept", id="kept", fairness_key="acme")
    before = await snapshot(client, "kept")
    answer = await api.post("/api/batch/update-options", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(message), answer.json()
    assert await snapshot(client, "kept") == before
    assert await options_of(client, "kept") == (3, "acme")


async def test_a_malformed_options_request_is_422(api: httpx.AsyncClient) -> None:
    cases: list[tuple[Any, str]] = [
        ({"search": "x"}, "body.new_options: Field required"),
        ({"search": "x", "new_options": {"queue": "q"}}, "body.new_options.queue: Extra inputs"),
        ({"search": "x", "new_options": {"priority": "1"}}, "body.new_options.priority: Input"),
        ({"search": "x", "new_options": {"priority": 1}, "reason": "r"}, "body.reason: Extra"),
    ]
    for body, message in cases:
        answer = await api.post("/api/batch/update-options", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["message"].startswith(message), answer.json()
