"""Changing a pending activity's options in flight on the operator surfaces:
``perdure activity update-options -w ID -a N --retry-... --...-timeout``,
the options line ``perdure show`` prints under each pending activity and
the fields of ``show --json`` and the HTTP description (``retry_policy``,
the three timeouts, ``deadline``), and ``POST
/api/workflows/{id}/activities/{n}/options`` (admin only, as a pause). Each
runs on SQLite and PostgreSQL. Usage errors exit 2 and bad bodies are a
422 saying what is wrong, changing nothing (so are a change that makes no
retry policy and a max_attempts that allows no more attempts); what is not
pending exits 3 or is a 404.

The activity is ``keeps_retrying``'s (tests/surfaces/async_workflows.py),
retried every 50 ms for ever: a change of its retry policy shows at once
in when its next attempt is due. How the engine applies new options (a
running attempt's timeouts, the due time worked out again, a deadline) is
tested with the API in tests/e2e and tests/store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import async_workflows as aw
import httpx
import pytest
from api_both import ADMIN, BASE, READ, eventually
from surface_helpers import Proc, cli_all, migrated_database, said, sync_client, worker_serving
from surface_helpers import first_activity as the_activity

import perdure
from perdure.cli._operator import local_time
from perdure.client import PendingActivityInfo
from perdure.server._auth import AuthConfig
from perdure.server._query import iso
from perdure.server.app import create_app

HOUR = 3600.0


def due_after(pending: PendingActivityInfo | dict[str, Any]) -> float:
    """Seconds from the end of its last attempt to its next attempt's due time."""
    if isinstance(pending, dict):
        due = datetime.fromisoformat(pending["next_attempt_at"].replace("Z", "+00:00"))
        last = pending["attempts"][-1]["ended_at"]
        ended = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
    else:
        assert pending.next_attempt_at is not None
        due, ended = pending.next_attempt_at, pending.attempts[-1]["ended_at"]
    return due.timestamp() - ended


def waits_long(a: PendingActivityInfo) -> bool:
    """It waits out a backoff of over a second (none runs)."""
    return not a.running and due_after(a) > 1


def backoff(attempt: int, initial: float, factor: float, cap: float) -> float:
    return min(initial * factor ** (attempt - 1), cap)


# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_database(request, lambda: tmp_path_factory.mktemp("options-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from worker_serving(aw.__file__, db, tmp_path_factory.mktemp("options-worker"))


@pytest.mark.usefixtures("worker")
def test_update_options_from_the_cli(db: str, sync: perdure.SyncClient) -> None:
    handle = sync.start("keeps_retrying", "o", id="cli-options/a")
    the_activity(sync, "cli-options/a", lambda a: a.attempt >= 2, "retried")
    (before,) = cli_all(("show", "cli-options/a", "--db", db))
    assert "options: no timeout; retry every 0.05s, no limit on attempts" in said(before)
    where = ("activity", "update-options", "-w", "cli-options/a", "-a", "1", "--db", db)
    (changed,) = cli_all(
        (
            *where,
            "--retry-initial-interval", "1h",
            "--retry-backoff", "2",
            "--retry-max-interval", "2h",
            "--retry-max-attempts", "1000",
            "--start-to-close-timeout", "30s",
            "--schedule-to-close-timeout", "1d",
            "--heartbeat-timeout", "10s",
        )
    )  # fmt: skip
    assert changed.returncode == 0, said(changed)
    # Its retry waits the new policy's delay after its last attempt ended (an
    # attempt running when it changed ends by the new policy too; one already
    # due when it changed runs first).
    held = the_activity(sync, "cli-options/a", waits_long, "waiting out its new backoff")
    assert due_after(held) == pytest.approx(backoff(held.attempt, HOUR, 2, 2 * HOUR), abs=1e-3)
    assert held.attempts[-1]["attempt"] == held.attempt
    assert held.retry_policy == perdure.RetryPolicy(
        initial_interval=timedelta(hours=1),
        backoff=2.0,
        max_interval=timedelta(hours=2),
        max_attempts=1000,
    )
    assert (
        held.start_to_close_timeout,
        held.schedule_to_close_timeout,
        held.heartbeat_timeout,
    ) == (
        timedelta(seconds=30),
        timedelta(days=1),
        timedelta(seconds=10),
    )
    assert held.deadline is not None
    line = (
        f"start_to_close 30s, schedule_to_close 1d (ends {local_time(held.deadline)}), "
        f"heartbeat 10s; retry every 1h x2 up to 2h, 1000 attempts at most"
    )
    assert changed.stdout.splitlines() == [
        "Updated activity 1 of workflow 'cli-options/a': start_to_close_timeout 30s, "
        "schedule_to_close_timeout 1d, heartbeat_timeout 10s, retry_initial_interval 1h, "
        "retry_backoff 2, retry_max_interval 2h, retry_max_attempts 1000",
        f"  options now: {line}; task queue 'default'",
    ]
    shown, shown_json = cli_all(
        ("show", "cli-options/a", "--db", db), ("show", "cli-options/a", "--json", "--db", db)
    )
    assert f"(ref 1): attempt {held.attempt} failed, next attempt at" in said(shown)
    assert f"options: {line}" in said(shown), shown.stdout
    [described] = json.loads(shown_json.stdout)["pending_activities"]
    assert described["retry_policy"] == {
        "initial_interval": HOUR,
        "backoff": 2.0,
        "max_interval": 2 * HOUR,
        "max_attempts": 1000,
        "non_retryable": [],
    }
    assert (
        described["start_to_close_timeout"],
        described["schedule_to_close_timeout"],
        described["heartbeat_timeout"],
        described["deadline"],
    ) == (30.0, 86400.0, 10.0, iso(held.deadline))
    # 0: no limit; the other options stay as they are.
    (unlimited,) = cli_all((*where, "--retry-max-attempts", "0"))
    assert unlimited.returncode == 0, said(unlimited)
    assert "retry_max_attempts 0 (no limit)" in said(unlimited)
    assert "retry every 1h x2 up to 2h, no limit on attempts" in said(unlimited)
    [now] = handle.describe().pending_activities
    assert now.retry_policy is not None and now.retry_policy.max_attempts is None
    assert (now.retry_policy.initial_interval, now.attempt) == (timedelta(hours=1), held.attempt)
    handle.terminate("done")


@pytest.mark.usefixtures("worker")
def test_cli_update_options_errors_change_nothing(db: str, sync: perdure.SyncClient) -> None:
    handle = sync.start("keeps_retrying", "u", id="cli-options-usage")
    the_activity(sync, "cli-options-usage", lambda a: a.attempt >= 2, "retried")
    # Paused, no attempt runs: a max_attempts below those made allows none.
    sync.get_async_activity_handle(workflow_id="cli-options-usage", activity_id=1).pause()
    held = the_activity(sync, "cli-options-usage", lambda a: not a.running, "paused")
    w = ("-w", "cli-options-usage", "-a", "1")
    usage: list[tuple[tuple[str, ...], str]] = [
        (w, "give at least one option to change: --start-to-close-timeout,"),
        (("--retry-backoff", "2"), "Missing option '--workflow-id'"),
        (("-w", "cli-options-usage", "--retry-backoff", "2"), "Missing option '--activity-id'"),
        (("-w", "", "-a", "1", "--retry-backoff", "2"), "'--workflow-id': must not be empty"),
        ((*w, "-r", "", "--retry-backoff", "2"), "'--run-id': must not be empty"),
        (("pt1.x", *w, "--retry-backoff", "2"), "unexpected extra argument"),
        ((*w, "--start-to-close-timeout", "soon"), "'soon' is not a duration"),
        ((*w, "--heartbeat-timeout", "0s"), "'--heartbeat-timeout': '0s': must be more than 0"),
        ((*w, "--schedule-to-close-timeout", "40000d"), "must be at most 36525d (100 years)"),
        ((*w, "--retry-backoff", "0.5"), "retry_backoff must be a finite number >= 1.0, not 0.5"),
        ((*w, "--retry-backoff", "nan"), "'--retry-backoff': retry_backoff must be a finite"),
        ((*w, "--retry-backoff", "fast"), "'--retry-backoff': Input should be a valid number"),
        ((*w, "--retry-max-attempts", "-1"), "'--retry-max-attempts'"),
        ((*w, "--task-queue", ""), "task_queue must be a non-empty string"),
        # Refused by what the activity holds (the database was opened):
        ((*w, "--retry-initial-interval", "10m"), "give retry_max_interval too"),
        ((*w, "--retry-max-attempts", "1"), "max_attempts 1 would allow no more"),
    ]
    missing: list[tuple[tuple[str, ...], str]] = [
        (("-w", "nope", "-a", "1", "--retry-backoff", "2"), "activity 1 of workflow 'nope'"),
        (("-w", "cli-options-usage", "-a", "7", "--retry-backoff", "2"), "is not pending in run"),
    ]
    done = cli_all(*(("activity", "update-options", *a, "--db", db) for a, _ in usage + missing))
    for (args, message), result in zip(usage + missing, done, strict=True):
        assert result.returncode == (2 if (args, message) in usage else 3), (args, said(result))
        assert message in said(result), (args, said(result))
    [still] = handle.describe().pending_activities
    assert (still.retry_policy, still.task_queue, still.paused) == (
        held.retry_policy,
        "default",
        True,
    )
    assert still.start_to_close_timeout is None and still.heartbeat_timeout is None
    handle.terminate("done")
    (ended,) = cli_all(("activity", "update-options", *w, "--retry-backoff", "2", "--db", db))
    assert ended.returncode == 3, said(ended)
    assert "the run has ended" in said(ended)


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


async def retried(api: httpx.AsyncClient, ident: str) -> dict[str, Any]:
    async def again() -> dict[str, Any] | None:
        pending = (await api.get(f"/api/workflows/{ident}")).json()["pending_activities"]
        return pending[0] if pending and pending[0]["attempt"] >= 2 else None

    return await eventually(again, f"{ident}'s activity to be retried")


@pytest.mark.both_databases
async def test_update_options_over_http(served: perdure.Client, api: httpx.AsyncClient) -> None:
    handle = await served.start(aw.keeps_retrying, "h", id="api/options")
    await retried(api, "api/options")
    before = await described(api, "api/options")
    assert before["retry_policy"] == {
        "initial_interval": 0.05,
        "backoff": 1.0,
        "max_interval": 5.0,
        "max_attempts": None,
        "non_retryable": [],
    }
    assert [before[k] for k in ("start_to_close_timeout", "heartbeat_timeout", "deadline")] == [
        None,
        None,
        None,
    ]
    base = "/api/workflows/api/options/activities/1"
    changed = await api.post(
        f"{base}/options?run_id={handle.run_id}",
        json={
            "retry_initial_interval": 1800,
            "retry_backoff": 3,
            "retry_max_interval": 5400.5,
            "retry_max_attempts": 500,
            "start_to_close_timeout": 45,
            "schedule_to_close_timeout": 7200,
            "heartbeat_timeout": 2.5,
            "task_queue": None,  # (null: unchanged)
        },
    )
    assert changed.status_code == 200 and changed.json() == {"ok": True}, changed.text

    async def backing_off() -> dict[str, Any] | None:
        pending = await described(api, "api/options")
        return None if pending["running"] or due_after(pending) < 1 else pending

    pending = await eventually(backing_off, "the activity to wait out its new backoff")
    assert due_after(pending) == pytest.approx(
        backoff(pending["attempt"], 1800, 3, 5400.5), abs=1e-3
    )
    assert pending["retry_policy"] == {
        "initial_interval": 1800.0,
        "backoff": 3.0,
        "max_interval": 5400.5,
        "max_attempts": 500,
        "non_retryable": [],
    }
    assert (
        pending["start_to_close_timeout"],
        pending["schedule_to_close_timeout"],
        pending["heartbeat_timeout"],
        pending["task_queue"],
    ) == (45.0, 7200.0, 2.5, "default")
    # The deadline counts from when the activity was scheduled: after the run
    # started, before its first attempt did.
    d = await handle.describe()
    [info] = d.pending_activities
    assert info.deadline is not None and pending["deadline"] == iso(info.deadline)
    first = datetime.fromtimestamp(info.attempts[0]["started_at"], tz=UTC)
    assert d.created_at + timedelta(hours=2) <= info.deadline <= first + timedelta(hours=2)
    # Retried every 50 ms again, from another queue: no worker serves it, so no
    # attempt starts; back on its own queue, it runs again.
    fast = {"retry_initial_interval": 0.05, "retry_backoff": 1}
    moved = await api.post(f"{base}/options", json={"task_queue": "nowhere", **fast})
    assert moved.status_code == 200, moved.text

    async def stranded() -> dict[str, Any] | None:
        pending = await described(api, "api/options")
        return pending if pending["waiting_for_worker"] else None

    lost = await eventually(stranded, "no worker to serve queue 'nowhere'")
    assert lost["task_queue"] == "nowhere" and not lost["running"]
    back = await api.post(f"{base}/options", json={"task_queue": "default"})
    assert back.status_code == 200, back.text

    async def running_again() -> bool:
        return (await described(api, "api/options"))["attempt"] > lost["attempt"]

    await eventually(running_again, "an attempt from queue 'default' again")
    for route, says in [
        ("nope/activities/1/options", "activity 1 of workflow 'nope' (its latest run): no such"),
        ("api/options/activities/7/options", "is not pending in run"),
        ("api/options/activities/1/options?run_id=r-1", "(run r-1): no such run"),
        ("api/options/activities/1/options", "the run has ended"),
    ]:
        if "the run has ended" in says:
            await handle.terminate("done")
        missing = await api.post(f"/api/workflows/{route}", json={"retry_backoff": 2})
        assert missing.status_code == 404, (route, missing.text)
        assert says in missing.json()["detail"], (route, missing.json())


@pytest.mark.both_databases
async def test_http_update_options_bad_input_is_422(
    served: perdure.Client, api: httpx.AsyncClient
) -> None:
    handle = await served.start(aw.keeps_retrying, "b", id="api-options-bad")
    await retried(api, "api-options-bad")
    # Paused, no attempt runs: a max_attempts below those made allows none.
    base = "/api/workflows/api-options-bad/activities"
    assert (await api.post(f"{base}/1/pause")).status_code == 200

    async def idle() -> dict[str, Any] | None:
        pending = await described(api, "api-options-bad")
        return None if pending["running"] else pending

    held = await eventually(idle, "the paused activity to hold no attempt")
    cases: list[tuple[str, Any, str]] = [
        ("1/options", {}, "update_options changes nothing: give at least one of"),
        ("1/options", None, "update_options changes nothing"),  # (an empty body)
        ("1/options", {"task_queue": None}, "update_options changes nothing"),
        ("1/options", {"retry_backoff": 0.5}, "body.retry_backoff: Input should be greater"),
        ("1/options", {"start_to_close_timeout": 0}, "body.start_to_close_timeout: Input"),
        ("1/options", {"heartbeat_timeout": -1}, "body.heartbeat_timeout: Input should be"),
        ("1/options", {"start_to_close_timeout": "30"}, "body.start_to_close_timeout: Input"),
        ("1/options", {"retry_initial_interval": True}, "body.retry_initial_interval: Input"),
        ("1/options", {"schedule_to_close_timeout": 1e12}, "less than or equal to"),
        ("1/options", {"retry_max_attempts": True}, "body.retry_max_attempts: Input should"),
        ("1/options", {"retry_max_attempts": 1.5}, "body.retry_max_attempts: Input should"),
        ("1/options", {"retry_max_attempts": -1}, "body.retry_max_attempts: Input should be"),
        ("1/options", {"task_queue": ""}, "body.task_queue: String should have at least"),
        ("1/options", {"task_queue": 7}, "body.task_queue: Input should be a valid string"),
        ("1/options", {"timeout": 30}, "body.timeout: Extra inputs are not permitted"),
        ("1/options", [1], "body: Input should be a valid dictionary"),
        ("0/options", {"retry_backoff": 2}, "activity_id"),
        ("x/options", {"retry_backoff": 2}, "activity_id"),
        ("1/options?run_id=", {"retry_backoff": 2}, "run_id"),
        # Refused by what the activity holds:
        ("1/options", {"retry_initial_interval": 600}, "give retry_max_interval too"),
        ("1/options", {"retry_max_attempts": 1}, "max_attempts 1 would allow no more"),
    ]
    for route, body, says in cases:
        refused = await api.post(f"{base}/{route}", json=body)
        assert refused.status_code == 422, (route, body, refused.text)
        reply = refused.json()
        assert says in str(reply.get("message", reply.get("detail"))), (route, body, reply)
    malformed = await api.post(f"{base}/1/options", content=b"{nope")
    assert malformed.status_code == 422 and "not valid JSON" in malformed.text
    still = await described(api, "api-options-bad")
    for field in ("retry_policy", "start_to_close_timeout", "heartbeat_timeout", "task_queue"):
        assert still[field] == held[field], field
    assert still["paused"] is True
    await handle.terminate("done")


async def test_the_options_route_needs_the_admin_role(served: perdure.Client) -> None:
    app = create_app(served, auth=AuthConfig({ADMIN: "admin", READ: "read"}))

    def http(**headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        return httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers)

    handle = await served.start(aw.keeps_retrying, "m", id="api-options-auth")

    async def scheduled() -> bool:
        return bool((await handle.describe()).pending_activities)

    await eventually(scheduled, "the activity to be scheduled")
    route = "/api/workflows/api-options-auth/activities/1/options"
    body = {"retry_max_attempts": 1000}
    async with http() as anonymous:
        missing = await anonymous.post(route, json=body)
        assert missing.status_code == 401, missing.text
    async with http(Authorization=f"Bearer {READ}") as reader:
        forbidden = await reader.post(route, json=body)
        assert forbidden.status_code == 403, forbidden.text
        assert "read-only" in forbidden.json()["detail"]
    [pending] = (await handle.describe()).pending_activities
    assert pending.retry_policy is not None and pending.retry_policy.max_attempts is None
    async with http(Authorization=f"Bearer {ADMIN}") as admin:
        assert (await admin.post(route, json=body)).status_code == 200
    [pending] = (await handle.describe()).pending_activities
    assert pending.retry_policy is not None and pending.retry_policy.max_attempts == 1000
    await handle.terminate("done")


async def test_the_openapi_document_describes_it(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    post = spec["paths"]["/api/workflows/{workflow_id}/activities/{activity_id}/options"]["post"]
    assert {"200", "401", "403", "404", "422"} <= set(post["responses"])
    assert "changes nothing" in post["responses"]["422"]["description"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {
        "start_to_close_timeout",
        "schedule_to_close_timeout",
        "heartbeat_timeout",
        "retry_initial_interval",
        "retry_backoff",
        "retry_max_interval",
        "retry_max_attempts",
        "task_queue",
    }
    assert "0: no limit" in body["properties"]["retry_max_attempts"]["description"]
    assert body["additionalProperties"] is False
    schemas = spec["components"]["schemas"]
    fields = schemas["PendingActivity"]["properties"]
    for name in ("retry_policy", "start_to_close_timeout", "schedule_to_close_timeout"):
        assert name in fields, name
    assert "schedule_to_close_timeout ends it" in fields["deadline"]["description"]
    policy = schemas["RetryPolicyOut"]["properties"]
    assert set(policy) == {
        "initial_interval",
        "backoff",
        "max_interval",
        "max_attempts",
        "non_retryable",
    }
