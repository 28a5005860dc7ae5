"""``POST /api/batch/activities/{action}`` in process (httpx over ASGI), on
SQLite and PostgreSQL, with a worker of tests/surfaces/async_workflows.py
(``keeps_retrying``'s activity ``down_for_ever`` fails every 50 ms for ever;
``awaits_an_answer_for_ever``'s ``ask_without_a_deadline`` awaits completion
for ever): a dry run lists the activities as describe() shows them and
changes nothing; a pause takes only the type named, of the runs the filters
match; an unpause with ``reset_attempts`` counts their attempts from 1
again, and one whose attempt runs is reported failed while the others go
on; bad input is a 422 saying what is wrong; only an admin token may; the
OpenAPI document describes it. (The choosing itself: tests/e2e/test_activity_batch.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import async_workflows as aw
import httpx
import pytest
from api_both import ADMIN, BASE, READ, eventually

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

pytestmark = pytest.mark.both_databases

ROUTE = "/api/batch/activities"


@pytest.fixture
async def served(client: perdure.Client) -> AsyncIterator[perdure.Client]:
    """The client, with an in-process worker of async_workflows."""
    w = perdure.Worker(client, aw.WORKFLOWS, aw.ACTIVITIES, poll_interval=0.02, lease_timeout=5.0)
    async with w:
        yield client


async def batch(api: httpx.AsyncClient, action: str, **body: Any) -> dict[str, Any]:
    answer = await api.post(f"{ROUTE}/{action}", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def pending(api: httpx.AsyncClient, ident: str) -> dict[str, Any]:
    """The run's one pending activity, as GET /api/workflows/{id} shows it."""
    [activity] = (await api.get(f"/api/workflows/{ident}")).json()["pending_activities"]
    return activity  # type: ignore[no-any-return]


async def started(client: perdure.Client, runs: dict[str, Any]) -> None:
    """Start each run (id -> workflow), then wait until each one's activity
    has been tried: failed twice, or awaiting completion."""
    for ident, wf in runs.items():
        await client.start(wf, ident, id=ident)

    async def tried() -> bool:
        for ident in runs:
            found = (await client.get_handle(ident).describe()).pending_activities
            if not found or not (found[0].attempt >= 2 or found[0].awaiting_completion):
                return False
        return True

    await eventually(tried, f"the activities of {sorted(runs)} to be tried")


def named(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted((row["workflow_id"], row["activity_id"]) for row in rows)


async def test_a_dry_run_lists_the_activities_and_changes_nothing(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    runs = {"dry-1": aw.keeps_retrying, "dry-2": aw.keeps_retrying}
    await started(served, {**runs, "dry-3": aw.awaits_an_answer_for_ever})
    await served.start(aw.keeps_retrying, "x", id="other-1")  # (the search leaves it out)

    found = await batch(api, "pause", activity_type="down_for_ever", search="dry-", dry_run=True)
    assert (found["action"], found["dry_run"]) == ("pause", True)
    assert named(found["matched"]) == [("dry-1", 1), ("dry-2", 1)]
    assert found["done"] == found["skipped"] == found["failed"] == []
    for row in found["matched"]:
        shown = await pending(api, row["workflow_id"])
        # Each row is describe()'s pending activity (field for field), with its run's ids.
        assert set(row) == {*shown, "workflow_id", "run_id"}
        assert row["run_id"] == (await served.get_handle(row["workflow_id"]).describe()).run_id
        assert (row["activity_type"], row["paused"], shown["paused"]) == (
            "down_for_ever",
            False,
            False,
        )
    # Any type, of the runs the search names: the one awaiting completion too.
    every = await batch(api, "pause", search="dry-", dry_run=True)
    assert named(every["matched"]) == [("dry-1", 1), ("dry-2", 1), ("dry-3", 1)]
    limited = await batch(api, "pause", search="dry-", limit=1, dry_run=True)
    assert len(limited["matched"]) == 1
    # Nothing is paused, so an unpause matches none.
    assert (await batch(api, "unpause", search="dry-", dry_run=True))["matched"] == []
    for ident in ("dry-1", "dry-2", "dry-3", "other-1"):
        assert (await served.get_handle(ident).describe()).pending_activities[0].paused is False


async def test_pause_takes_only_the_type_named_then_unpause_counts_from_1_again(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await started(
        served,
        {
            "pay-1": aw.keeps_retrying,
            "pay-2": aw.keeps_retrying,
            "ask-1": aw.awaits_an_answer_for_ever,
        },
    )
    paused = await batch(api, "pause", activity_type="down_for_ever")
    assert named(paused["matched"]) == named(paused["done"]) == [("pay-1", 1), ("pay-2", 1)]
    assert (paused["dry_run"], paused["skipped"], paused["failed"]) == (False, [], [])
    assert (await pending(api, "ask-1"))["paused"] is False  # (another type: left alone)

    async def held(ident: str) -> dict[str, Any] | None:
        shown = await pending(api, ident)
        return shown if shown["paused"] and not shown["running"] else None

    for ident in ("pay-1", "pay-2"):
        await eventually(lambda i=ident: held(i), f"{ident}'s activity to be paused and idle")
    again = await batch(api, "pause", activity_type="down_for_ever")
    assert again["matched"] == again["done"] == []  # (nothing left to pause)

    unpaused = await batch(api, "unpause", activity_type="down_for_ever", reset_attempts=True)
    assert named(unpaused["done"]) == [("pay-1", 1), ("pay-2", 1)]
    assert unpaused["failed"] == unpaused["skipped"] == []
    for ident in ("pay-1", "pay-2"):

        async def from_1(ident: str = ident) -> bool:
            shown = await pending(api, ident)
            counted = [r["attempt"] for r in shown["attempts"]].count(1) == 2
            return counted and not shown["paused"]

        # (Retried again from attempt 1: the record of the ended ones shows 1 twice.)
        await eventually(from_1, f"{ident}'s attempts to count from 1 again")


async def test_build_id_names_the_activities_of_the_runs_pinned_to_a_build(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    """build_id alone names activities: those of the open runs pinned to
    that build (pinned by hand; activities run on any worker of their queue)."""
    await started(served, {"bp-1": aw.keeps_retrying, "bp-2": aw.keeps_retrying})
    await served.get_handle("bp-1").set_build_id("bad-1")
    found = await batch(api, "pause", build_id="bad-1", dry_run=True)
    assert named(found["matched"]) == [("bp-1", 1)]
    paused = await batch(api, "pause", build_id="bad-1")
    assert named(paused["done"]) == [("bp-1", 1)] and paused["failed"] == []
    assert (await pending(api, "bp-1"))["paused"] is True
    assert (await pending(api, "bp-2"))["paused"] is False


async def test_an_activity_whose_unpause_fails_is_reported_and_the_others_go_on(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await started(served, {"mix-1": aw.keeps_retrying, "mix-2": aw.awaits_an_answer_for_ever})
    paused = await batch(api, "pause", search="mix-")
    assert named(paused["done"]) == [("mix-1", 1), ("mix-2", 1)]

    async def idle() -> bool:
        return not (await pending(api, "mix-1"))["running"]

    await eventually(idle, "mix-1's attempt to end")
    # mix-2's attempt awaits completion: it runs, so its attempts cannot count from 1.
    unpaused = await batch(api, "unpause", search="mix-", reset_attempts=True)
    assert named(unpaused["done"]) == [("mix-1", 1)]
    [failed] = unpaused["failed"]
    assert (failed["workflow_id"], failed["activity_id"]) == ("mix-2", 1)
    assert "awaits completion" in failed["error"], failed
    assert (await pending(api, "mix-2"))["paused"] is True
    assert (await pending(api, "mix-1"))["paused"] is False


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        ("pause", {}, "name which activities to pause: give activity_type, or a filter of their"),
        ("unpause", {"activity_type": "", "search": ""}, "name which activities to unpause"),
        ("unpause", {"limit": 3}, "name which activities to unpause"),
        ("pause", {"activity_type": "down_for_ever", "reset_attempts": True}, "reset_attempts"),
        ("pause", {"activity_type": "a\x00b"}, "activity_type must not hold the NUL character"),
        ("pause", {"attr": ["team"]}, "attr takes NAME=VALUE (a search attribute and its value)"),
        ("pause", {"since": "yesterday"}, "since: cannot read time 'yesterday'"),
        ("pause", {"build_id": ""}, "name which activities to pause"),
        ("pause", {"build_id": "x" * 201}, "build_id must be at most 200 bytes long"),
    ],
)
async def test_bad_input_is_422_saying_what_is_wrong_and_does_nothing(
    served: perdure.Client, api: httpx.AsyncClient, action: str, body: Any, message: str
) -> None:
    await started(served, {"kept": aw.keeps_retrying})
    answer = await api.post(f"{ROUTE}/{action}", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(message), answer.json()
    assert (await pending(api, "kept"))["paused"] is False


async def test_a_malformed_request_is_422(api: httpx.AsyncClient) -> None:
    cases: list[tuple[str, Any, str]] = [
        (f"{ROUTE}/stop", {"search": "x"}, "path.action: Input should be 'pause', 'unpause' or"),
        (f"{ROUTE}/pause", None, "body: Input should be a valid dictionary"),
        (f"{ROUTE}/pause", {"search": "x", "force": True}, "body.force: Extra inputs are not"),
        (f"{ROUTE}/pause", {"search": "x", "status": "running"}, "body.status: Extra inputs"),
        (f"{ROUTE}/pause", {"search": "x", "reason": "why"}, "body.reason: Extra inputs are"),
        (f"{ROUTE}/unpause", {"search": "x", "reset_attempts": "yes"}, "body.reset_attempts:"),
        (f"{ROUTE}/pause", {"search": "x", "limit": 0}, "body.limit: Input should be greater"),
        (f"{ROUTE}/pause", {"activity_type": 7}, "body.activity_type: Input should be a valid"),
        # "/api/batch/{action}" takes one segment: "activities" alone is the runs' route's.
        (ROUTE, {"search": "x"}, "path.action: Input should be 'cancel', 'terminate' or"),
    ]
    for route, body, message in cases:
        answer = await api.post(route, json=body)
        assert answer.status_code == 422, (route, body, answer.text)
        assert answer.json()["message"].startswith(message), (route, answer.json())
    not_json = await api.post(f"{ROUTE}/pause", content=b"{search")
    assert not_json.status_code == 422
    assert not_json.json()["message"].startswith("the request body is not valid JSON")


async def test_only_an_admin_token_may_even_a_dry_run(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await started(served, {"tok-1": aw.keeps_retrying})
    app = create_app(served, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    body = {"activity_type": "down_for_ever", "dry_run": True}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        none = await http.post(f"{ROUTE}/pause", json=body)
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
        read = {"Authorization": f"Bearer {READ}"}
        for dry_run in (True, False):
            refused = await http.post(
                f"{ROUTE}/pause", json={**body, "dry_run": dry_run}, headers=read
            )
            assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
        admin = {"Authorization": f"Bearer {ADMIN}"}
        answer = await http.post(f"{ROUTE}/pause", json=body, headers=admin)
        assert answer.status_code == 200, answer.text
        assert named(answer.json()["matched"]) == [("tok-1", 1)]
    assert (await pending(api, "tok-1"))["paused"] is False


async def test_the_openapi_document_describes_it(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    route = spec["paths"]["/api/batch/activities/{action}"]["post"]
    (action,) = route["parameters"]
    assert action["in"] == "path" and action["schema"]["enum"] == ["pause", "unpause", "reset"]
    body = route["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {
        *("type", "since", "until", "search", "attr", "retrying", "build_id"),
        *("activity_type", "reset_attempts", "keep_paused", "clear_heartbeat_details"),
        *("jitter_seconds", "limit", "dry_run"),
    }
    assert body["additionalProperties"] is False
    assert set(route["responses"]) == {"200", "401", "403", "422", "503"}
    ok = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ActivityBatchOut"}
    schemas = spec["components"]["schemas"]
    out = schemas["ActivityBatchOut"]["properties"]
    assert set(out) == {"action", "dry_run", "matched", "done", "skipped", "failed"}
    assert out["matched"]["items"] == {"$ref": "#/components/schemas/MatchedActivityOut"}
    matched = schemas["MatchedActivityOut"]["properties"]
    assert set(matched) == {*schemas["PendingActivity"]["properties"], "workflow_id", "run_id"}
    # The runs' batch keeps its own route and body.
    runs = spec["paths"]["/api/batch/{action}"]["post"]
    assert "status" in runs["requestBody"]["content"]["application/json"]["schema"]["properties"]
