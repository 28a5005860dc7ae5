"""Resetting activities over HTTP, in process (httpx over ASGI), on SQLite and
PostgreSQL: ``POST /api/workflows/{id}/activities/{n}/reset`` (as
``AsyncActivityHandle.reset``: attempts counted from 1 again, backoff
dropped) and the action ``reset`` of ``POST /api/batch/activities/{action}``,
with a worker of tests/surfaces/async_workflows.py. ``keeps_retrying``'s
activity fails every 50 ms for ever; each test first makes its retries an
hour apart (its options changed in flight), so that an attempt started by
the reset shows. An attempt awaiting completion
(``awaits_an_answer_for_ever``) runs on, its reset requested. Bad input is
a 422, what is not pending a 404, a read token a 403; the OpenAPI document
describes both. (The engine's side: tests/e2e/test_activity_reset.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import async_workflows as aw
import httpx
import pytest
from api_both import ADMIN, BASE, READ, eventually

import perdure
from perdure.client import PendingActivityInfo
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

pytestmark = pytest.mark.both_databases

HOUR = timedelta(hours=1)


@pytest.fixture
async def served(client: perdure.Client) -> AsyncIterator[perdure.Client]:
    """The client, with an in-process worker of async_workflows."""
    w = perdure.Worker(client, aw.WORKFLOWS, aw.ACTIVITIES, poll_interval=0.02, lease_timeout=5.0)
    async with w:
        yield client


def route(ident: str, activity_id: int = 1) -> str:
    return f"/api/workflows/{ident}/activities/{activity_id}/reset"


async def the_activity(
    client: perdure.Client, ident: str, holds: Any, what: str
) -> PendingActivityInfo:
    """The run's one pending activity, once ``holds`` says yes of it."""

    async def found() -> PendingActivityInfo | None:
        pending = (await client.get_handle(ident).describe()).pending_activities
        return pending[0] if pending and holds(pending[0]) else None

    return await eventually(found, f"{ident}'s activity: {what}")


def an_hour_off(a: PendingActivityInfo) -> bool:
    """Waiting for its next attempt, due in about an hour."""
    later = datetime.now(UTC) + HOUR / 2
    return not a.running and a.next_attempt_at is not None and a.next_attempt_at > later


async def waiting(client: perdure.Client, ident: str) -> PendingActivityInfo:
    """Start keeps_retrying as ``ident``, let it fail twice, then make its
    retries an hour apart: its activity waits, once its attempt has failed."""
    await client.start(aw.keeps_retrying, ident, id=ident)
    await the_activity(client, ident, lambda a: a.attempt >= 2, "retried")
    handle = client.get_async_activity_handle(workflow_id=ident, activity_id=1)
    await handle.update_options(retry_initial_interval=HOUR, retry_max_interval=HOUR)
    return await the_activity(client, ident, an_hour_off, "waiting an hour")


async def ran_again_as_attempt_1(
    client: perdure.Client, ident: str, before: PendingActivityInfo
) -> PendingActivityInfo:
    """The activity after its reset: one more attempt ended, numbered 1,
    and its next one an hour off again."""

    def again(a: PendingActivityInfo) -> bool:
        return len(a.attempts) == len(before.attempts) + 1 and an_hour_off(a)

    after = await the_activity(client, ident, again, "its attempt after the reset")
    assert (after.attempt, after.attempts[-1]["attempt"], after.reset_requested) == (1, 1, False)
    return after


async def test_a_waiting_activity_runs_now_counted_from_1(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    before = await waiting(served, "rst/wait")
    assert before.attempt >= 2
    run_id = (await served.get_handle("rst/wait").describe()).run_id
    answer = await api.post(f"{route('rst%2Fwait')}?run_id={run_id}")  # (no body)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    await ran_again_as_attempt_1(served, "rst/wait", before)
    # Not recorded in the history.
    history = (await api.get("/api/workflows/rst%2Fwait/history")).json()
    assert not any("reset" in e["type"].lower() for e in history)


async def test_a_paused_activity_is_unpaused_unless_kept_paused(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    before = await waiting(served, "rst-paused")
    assert (await api.post("/api/workflows/rst-paused/activities/1/pause")).status_code == 200
    kept = await api.post(route("rst-paused"), json={"keep_paused": True})
    assert kept.status_code == 200, kept.text
    [shown] = (await api.get("/api/workflows/rst-paused")).json()["pending_activities"]
    # Counted from 1 again (none made yet: attempt 0), and still held back.
    assert (shown["paused"], shown["attempt"], shown["next_attempt_at"]) == (True, 0, None)
    assert len(shown["attempts"]) == len(before.attempts)
    # Reset again without keep_paused: unpaused too, its next attempt due now.
    plain = await api.post(route("rst-paused"), json={})
    assert plain.status_code == 200, plain.text
    after = await ran_again_as_attempt_1(served, "rst-paused", before)
    assert not after.paused


async def test_an_attempt_awaiting_completion_runs_on_its_reset_requested(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    await served.start(aw.awaits_an_answer_for_ever, "a", id="rst-busy")
    await the_activity(served, "rst-busy", lambda a: a.awaiting_completion, "awaiting")
    beat = await api.post(
        "/api/workflows/rst-busy/activities/1/heartbeat", json={"details": {"page": 3}}
    )
    assert beat.status_code == 200, beat.text
    body = {"keep_paused": False, "clear_heartbeat_details": True}
    answer = await api.post(route("rst-busy"), json=body)
    assert answer.status_code == 200, answer.text
    [shown] = (await api.get("/api/workflows/rst-busy")).json()["pending_activities"]
    assert (shown["reset_requested"], shown["awaiting_completion"], shown["attempt"]) == (
        True,
        True,
        1,
    )
    assert shown["heartbeat_details"] is None  # (cleared now)


async def test_what_is_not_pending_is_404_and_bad_input_422(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    before = await waiting(served, "rst-bad")
    missing = [
        (route("rst-bad", 7), "is not pending in run"),
        (f"{route('rst-bad')}?run_id=r-1", "(run r-1): no such run"),
        (route("no-such-workflow"), "no such run"),
    ]
    for path, message in missing:
        answer = await api.post(path)
        assert answer.status_code == 404, (path, answer.text)
        assert message in answer.json()["detail"], (path, answer.json())
    bad: list[tuple[str, Any, str]] = [
        (route("rst-bad"), {"keep_paused": "yes"}, "body.keep_paused: Input should be a valid"),
        (route("rst-bad"), {"clear_heartbeat_details": 1}, "body.clear_heartbeat_details:"),
        (route("rst-bad"), {"reset_attempts": True}, "body.reset_attempts: Extra inputs are"),
        (route("rst-bad"), [], "body: Input should be a valid dictionary"),
        (route("rst-bad", 0), None, "path.activity_id: Input should be greater than or equal"),
        (f"{route('rst-bad')}?run_id=", None, "query.run_id: String should have at least"),
    ]
    for path, body, message in bad:
        answer = await api.post(path, json=body)
        assert answer.status_code == 422, (path, body, answer.text)
        said = answer.json().get("detail")
        said = said if isinstance(said, str) else answer.json()["message"]
        assert said.startswith(message), (path, body, answer.json())
    not_json = await api.post(route("rst-bad"), content=b"{keep")
    assert not_json.status_code == 422
    assert not_json.json()["detail"].startswith("the request body is not valid JSON")
    # Nothing was reset: the same attempts, the next one still an hour off.
    [still] = (await served.get_handle("rst-bad").describe()).pending_activities
    assert (still.attempt, still.next_attempt_at) == (before.attempt, before.next_attempt_at)


async def test_only_an_admin_token_may_reset(served: perdure.Client) -> None:
    before = await waiting(served, "rst-auth")
    app = create_app(served, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        none = await http.post(route("rst-auth"))
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
        read = await http.post(route("rst-auth"), headers={"Authorization": f"Bearer {READ}"})
        assert read.status_code == 403 and "read-only" in read.json()["detail"]
        [still] = (await served.get_handle("rst-auth").describe()).pending_activities
        assert still.next_attempt_at == before.next_attempt_at
        admin = await http.post(route("rst-auth"), headers={"Authorization": f"Bearer {ADMIN}"})
        assert admin.status_code == 200, admin.text
    await ran_again_as_attempt_1(served, "rst-auth", before)


async def test_the_runs_routes_keep_their_paths(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    # The activity's reset is asked before the run routes (a run's own reset
    # would take it), for digits only: a signal named "reset" to an id that
    # ends in "/activities" still reaches the signal route.
    ident = "rst-route/activities"
    handle = await served.start(aw.keeps_retrying, "s", id=ident)
    signalled = await api.post("/api/workflows/rst-route%2Factivities/signals/reset", json=1)
    assert signalled.status_code == 202, signalled.text

    async def received() -> bool:
        history = (await api.get("/api/workflows/rst-route%2Factivities/history")).json()
        return [e["name"] for e in history if e["type"] == "SignalReceived"] == ["reset"]

    await eventually(received, "the signal named reset")
    # Not an activity id: the run routes' (no run "rst-route/activities/x").
    other = await api.post("/api/workflows/rst-route/activities/x/reset")
    assert other.status_code == 404, other.text
    await handle.terminate("done")


# ------------------------------------------------------------ the batch

BATCH = "/api/batch/activities"


def named(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted((row["workflow_id"], row["activity_id"]) for row in rows)


async def test_a_batch_reset_takes_paused_and_waiting_ones_alike(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    before = {ident: await waiting(served, ident) for ident in ("rb-1", "rb-2")}
    await served.get_async_activity_handle(workflow_id="rb-2", activity_id=1).pause()
    body = {"activity_type": "down_for_ever", "search": "rb-"}
    found = await api.post(f"{BATCH}/reset", json={**body, "dry_run": True})
    assert found.status_code == 200, found.text
    listed = found.json()
    assert (listed["action"], listed["dry_run"], listed["done"]) == ("reset", True, [])
    assert named(listed["matched"]) == [("rb-1", 1), ("rb-2", 1)]
    assert sorted(row["paused"] for row in listed["matched"]) == [False, True]
    for ident, was in before.items():  # (a dry run changes nothing)
        [now] = (await served.get_handle(ident).describe()).pending_activities
        assert (now.attempt, len(now.attempts)) == (was.attempt, len(was.attempts))
        assert now.paused is (ident == "rb-2")

    done = await api.post(f"{BATCH}/reset", json={**body, "clear_heartbeat_details": True})
    assert done.status_code == 200, done.text
    acted = done.json()
    assert named(acted["done"]) == [("rb-1", 1), ("rb-2", 1)]
    assert acted["skipped"] == acted["failed"] == []
    for ident, was in before.items():  # (the paused one unpaused too)
        assert not (await ran_again_as_attempt_1(served, ident, was)).paused


@pytest.mark.parametrize(
    ("action", "option", "message"),
    [
        ("pause", "keep_paused", "keep_paused goes with reset, not pause"),
        (
            "unpause",
            "clear_heartbeat_details",
            "clear_heartbeat_details goes with reset, not unpause",
        ),
        ("reset", "reset_attempts", "reset_attempts goes with unpause, not reset"),
    ],
)
async def test_a_batch_option_of_another_action_is_422(
    served: perdure.Client, api: httpx.AsyncClient, action: str, option: str, message: str
) -> None:
    before = await waiting(served, "rb-foreign")
    await served.get_async_activity_handle(workflow_id="rb-foreign", activity_id=1).pause()
    body = {"activity_type": "down_for_ever", option: True}
    answer = await api.post(f"{BATCH}/{action}", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == message
    typed = await api.post(f"{BATCH}/reset", json={"search": "rb-", "keep_paused": "yes"})
    assert typed.status_code == 422
    assert typed.json()["message"].startswith("body.keep_paused: Input should be a valid")
    [still] = (await served.get_handle("rb-foreign").describe()).pending_activities
    assert (still.paused, still.attempt) == (True, before.attempt)


async def test_the_openapi_document_describes_both(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    one = spec["paths"]["/api/workflows/{workflow_id}/activities/{activity_id}/reset"]["post"]
    assert {p["name"] for p in one["parameters"]} == {"workflow_id", "activity_id", "run_id"}
    assert one["requestBody"]["required"] is False
    body = one["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"keep_paused", "clear_heartbeat_details", "jitter_seconds"}
    assert body["additionalProperties"] is False
    assert set(one["responses"]) == {"200", "401", "403", "404", "422", "503"}
    assert "reset_requested" in one["description"]
    batch = spec["paths"]["/api/batch/activities/{action}"]["post"]
    (action,) = batch["parameters"]
    assert action["schema"]["enum"] == ["pause", "unpause", "reset"]
    fields = batch["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"reset_attempts", "keep_paused", "clear_heartbeat_details"} <= set(fields)
    out = spec["components"]["schemas"]["ActivityBatchOut"]["properties"]["action"]
    assert out["enum"] == ["pause", "unpause", "reset"]
    pending = spec["components"]["schemas"]["PendingActivity"]["properties"]
    assert "reset_requested" in pending
