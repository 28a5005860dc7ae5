"""Pausing one activity on the operator surfaces: ``perdure activity pause
-w ID -a N`` and ``unpause [--reset-attempts]``, what ``perdure show`` (and
``--json``) says of a paused activity, and ``POST
/api/workflows/{id}/activities/{n}/pause|unpause`` with ``paused`` in the
description (admin only, as a signal). Usage errors exit 2 and bad bodies
are a 422, changing nothing; what is not pending exits 3 or is a 404; an
unpause that would count attempts from 1 again under an attempt awaiting
completion exits 5 or is a 409, and leaves the activity paused. How the
engine holds a paused activity back is tested in tests/e2e/test_activity_pause.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import async_workflows as aw
import httpx
import pytest
from api_both import ADMIN, BASE, READ, eventually
from surface_helpers import Proc, cli_all, migrated_sqlite, said, sync_client, worker_serving
from surface_helpers import first_activity as the_activity

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("pause-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from worker_serving(aw.__file__, db, tmp_path_factory.mktemp("pause-worker"))


@pytest.mark.usefixtures("worker")
def test_pause_and_unpause_from_the_cli(db: str, sync: perdure.SyncClient) -> None:
    handle = sync.start("keeps_retrying", "p", id="cli-pause/a")
    the_activity(sync, "cli-pause/a", lambda a: a.attempt >= 2, "retried")
    (paused,) = cli_all(("activity", "pause", "-w", "cli-pause/a", "-a", "1", "--db", db))
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == (
        "Paused activity 1 of workflow 'cli-pause/a': no attempt starts until "
        "`perdure activity unpause -w cli-pause/a -a 1`"
    )
    held = the_activity(sync, "cli-pause/a", lambda a: a.paused and not a.running, "paused")
    time.sleep(0.3)  # (retried every 50 ms: a few attempts would have run)
    [still] = handle.describe().pending_activities
    assert (still.attempt, still.paused, still.next_attempt_at) == (held.attempt, True, None)
    shown, shown_json, queue, queue_json = cli_all(
        ("show", "cli-pause/a", "--db", db),
        ("show", "cli-pause/a", "--json", "--db", db),
        ("queue", "show", held.task_queue, "--db", db),
        ("queue", "show", held.task_queue, "--json", "--db", db),
    )
    # The queue counts it apart: paused, neither waiting nor backing off.
    queue_said = " ".join(queue.stdout.split())
    assert (
        "paused 1 (by an operator; unpause each with:) down_for_ever of cli-pause/a: "
        "perdure activity unpause -w cli-pause/a -a 1"
    ) in queue_said, queue.stdout
    counted = json.loads(queue_json.stdout)
    assert (counted["paused"], counted["waiting"], counted["backing_off"]) == (1, 0, 0)
    assert counted["paused_activities"] == [
        {
            "workflow_id": "cli-pause/a",
            "run_id": handle.run_id,
            "activity_id": 1,
            "activity_type": "down_for_ever",
        }
    ]
    words = " ".join(shown.stdout.split())
    assert f"(ref 1): attempt {held.attempt} failed, paused" in words, shown.stdout
    assert "paused: no attempt starts until perdure activity unpause -w cli-pause/a -a 1" in words
    assert "failing for good?" not in words  # (the settle hint is for an activity not paused)
    [described] = json.loads(shown_json.stdout)["pending_activities"]
    assert described["paused"] is True and described["next_attempt_at"] is None
    (unpaused,) = cli_all(
        ("activity", "unpause", "-w", "cli-pause/a", "-a", "1", "--reset-attempts", "--db", db)
    )
    assert unpaused.returncode == 0, unpaused.stderr
    assert unpaused.stdout.strip() == (
        "Unpaused activity 1 of workflow 'cli-pause/a' (attempts counted from 1 again): its "
        "next attempt is due now"
    )
    # Retried again, its attempts counted from 1: the record of the ended
    # ones shows attempt 1 twice.
    again = the_activity(
        sync,
        "cli-pause/a",
        lambda a: [r["attempt"] for r in a.attempts].count(1) == 2,
        "retried from attempt 1",
    )
    assert not again.paused
    handle.terminate("done")


@pytest.mark.usefixtures("worker")
def test_cli_pause_errors_change_nothing(db: str, sync: perdure.SyncClient) -> None:
    handle = sync.start("keeps_retrying", "u", id="cli-pause-usage")
    the_activity(sync, "cli-pause-usage", lambda a: a.attempt >= 2, "retried")
    usage: list[tuple[tuple[str, ...], str]] = [
        (("pause",), "Missing option '--workflow-id'"),
        (("pause", "-w", "cli-pause-usage"), "Missing option '--activity-id'"),
        (("pause", "-w", "", "-a", "1"), "'--workflow-id': must not be empty"),
        (("pause", "-w", "cli-pause-usage", "-a", "0"), "'-a': Input should be greater than"),
        (("unpause", "-w", "cli-pause-usage", "-a", "1", "-r", ""), "'--run-id': must not be"),
        (("pause", "pt1.x", "-w", "cli-pause-usage", "-a", "1"), "unexpected extra argument"),
    ]
    missing: list[tuple[tuple[str, ...], str]] = [
        (("pause", "-w", "nope", "-a", "1"), "activity 1 of workflow 'nope' (its latest run): no"),
        (("unpause", "-w", "cli-pause-usage", "-a", "7"), "is not pending in run"),
    ]
    done = cli_all(*(("activity", *args, "--db", db) for args, _ in usage + missing))
    for (args, message), result in zip(usage + missing, done, strict=True):
        assert result.returncode == (2 if (args, message) in usage else 3), (args, said(result))
        assert message in said(result), (args, said(result))
    assert not handle.describe().pending_activities[0].paused
    handle.terminate("done")


@pytest.mark.usefixtures("worker")
def test_cli_reset_under_an_awaiting_attempt_exits_5(db: str, sync: perdure.SyncClient) -> None:
    handle = sync.start("awaits_an_answer_for_ever", "r", id="cli-pause-reset")
    the_activity(sync, "cli-pause-reset", lambda a: a.awaiting_completion, "awaiting")
    where = ("-w", "cli-pause-reset", "-a", "1", "--db", db)
    (paused,) = cli_all(("activity", "pause", *where))
    assert paused.returncode == 0, paused.stderr
    (refused,) = cli_all(("activity", "unpause", *where, "--reset-attempts"))
    assert refused.returncode == 5, said(refused)
    assert "attempt 1 awaits completion, so its attempts cannot be counted from 1" in said(refused)
    assert handle.describe().pending_activities[0].paused  # (still)
    handle.terminate("done")


# ---------------------------------------------------------------- the HTTP API


@pytest.fixture
async def served(client: perdure.Client) -> AsyncIterator[perdure.Client]:
    """The client, with an in-process worker of async_workflows."""
    w = perdure.Worker(client, aw.WORKFLOWS, aw.ACTIVITIES, poll_interval=0.02, lease_timeout=5.0)
    async with w:
        yield client


async def described(api: httpx.AsyncClient, ident: str) -> dict[str, Any]:
    [pending] = (await api.get(f"/api/workflows/{ident}")).json()["pending_activities"]
    return pending  # type: ignore[no-any-return]


async def test_pause_and_unpause_over_http(served: perdure.Client, api: httpx.AsyncClient) -> None:
    handle = await served.start(aw.keeps_retrying, "h", id="api/pause")

    async def retried() -> bool:
        pending = (await handle.describe()).pending_activities
        return bool(pending) and pending[0].attempt >= 2

    await eventually(retried, "the activity to be retried")
    base = "/api/workflows/api/pause/activities/1"
    paused = await api.post(f"{base}/pause")
    assert paused.status_code == 200 and paused.json() == {"ok": True}, paused.text

    async def parked() -> dict[str, Any] | None:
        pending = await described(api, "api/pause")
        return pending if pending["paused"] and not pending["running"] else None

    pending = await eventually(parked, "the activity to be paused")
    assert pending["next_attempt_at"] is None
    unpaused = await api.post(f"{base}/unpause?run_id={handle.run_id}")  # (no body)
    assert unpaused.status_code == 200, unpaused.text
    assert (await described(api, "api/pause"))["paused"] is False
    again = await api.post(f"{base}/pause")
    assert again.status_code == 200
    reset = await api.post(f"{base}/unpause", json={"reset_attempts": True})
    assert reset.status_code == 200, reset.text
    assert (await described(api, "api/pause"))["paused"] is False
    for route, says in [
        ("nope/activities/1/pause", "activity 1 of workflow 'nope' (its latest run): no such"),
        ("api/pause/activities/7/unpause", "is not pending in run"),
        ("api/pause/activities/1/pause?run_id=r-1", "(run r-1): no such run"),
    ]:
        missing = await api.post(f"/api/workflows/{route}")
        assert missing.status_code == 404, (route, missing.text)
        assert says in missing.json()["detail"], (route, missing.json())
    spec = (await api.get("/api/openapi.json")).json()
    for action in ("pause", "unpause"):
        post = spec["paths"][f"/api/workflows/{{workflow_id}}/activities/{{activity_id}}/{action}"]
        assert {"200", "401", "403", "404", "422"} <= set(post["post"]["responses"]), action
    assert "409" in post["post"]["responses"]  # (unpause's)
    fields = spec["components"]["schemas"]["PendingActivity"]["properties"]
    assert "no attempt of it starts until it is unpaused" in fields["paused"]["description"]
    await handle.terminate("done")


async def test_http_pause_bad_input_is_422_and_a_refused_reset_409(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.awaits_an_answer_for_ever, "b", id="api-pause-bad")

    async def awaiting() -> bool:
        pending = (await handle.describe()).pending_activities
        return bool(pending) and pending[0].awaiting_completion

    await eventually(awaiting, "the attempt to await completion")
    base = "/api/workflows/api-pause-bad/activities"
    for route, body, says in [
        (f"{base}/0/pause", None, "activity_id"),
        (f"{base}/x/unpause", None, "activity_id"),
        (f"{base}/1/unpause", {"reset_attempts": "yes"}, "body.reset_attempts"),
        (f"{base}/1/unpause", {"reset": True}, "body.reset: Extra inputs"),
        (f"{base}/1/unpause", [1], "body: Input should be a valid dictionary"),
        (f"{base}/1/pause?run_id=", None, "run_id"),
    ]:
        refused = await api.post(route, json=body)
        assert refused.status_code == 422, (route, body, refused.text)
        reply = refused.json()
        assert says in str(reply.get("message", reply.get("detail"))), (route, body, reply)
    assert not (await described(api, "api-pause-bad"))["paused"]
    assert (await api.post(f"{base}/1/pause")).status_code == 200
    conflict = await api.post(f"{base}/1/unpause", json={"reset_attempts": True})
    assert conflict.status_code == 409, conflict.text
    assert "awaits completion" in conflict.json()["detail"]
    assert (await described(api, "api-pause-bad"))["paused"] is True
    await handle.terminate("done")


async def test_pause_routes_need_the_admin_role(served: perdure.Client) -> None:
    app = create_app(served, auth=AuthConfig({ADMIN: "admin", READ: "read"}))

    def http(**headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        return httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers)

    handle = await served.start(aw.keeps_retrying, "m", id="api-pause-auth")
    routes = ("/api/workflows/api-pause-auth/activities/1/pause",
              "/api/workflows/api-pause-auth/activities/1/unpause")  # fmt: skip
    async with http() as anonymous:
        for route in routes:
            missing = await anonymous.post(route)
            assert missing.status_code == 401, (route, missing.text)
    async with http(Authorization=f"Bearer {READ}") as reader:
        for route in routes:
            forbidden = await reader.post(route)
            assert forbidden.status_code == 403, (route, forbidden.text)
            assert "read-only" in forbidden.json()["detail"]
    assert not [a for a in (await handle.describe()).pending_activities if a.paused]
    async with http(Authorization=f"Bearer {ADMIN}") as admin:

        async def scheduled() -> bool:
            return bool((await handle.describe()).pending_activities)

        await eventually(scheduled, "the activity to be scheduled")
        assert (await admin.post(routes[0])).status_code == 200
    assert (await handle.describe()).pending_activities[0].paused
    await handle.terminate("done")
