"""What the outside watches: ``/api/metrics`` in Prometheus's text format
(each gauge with its HELP and TYPE, labels escaped), for a reader's token;
``perdure stats`` through the real entry point; and the long-poll for a
state key a run publishes (``/api/workflows/{id}/state/{key}``)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from surface_helpers import cli
from test_schedule_api import ADMIN, READ, http

import perdure
from perdure.client import QueueBacklog, Stats
from perdure.server._auth import AuthConfig
from perdure.server._metrics import prometheus_text
from perdure.server.app import create_app

SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (-?[0-9.e+]+)$")


def samples(text: str) -> dict[tuple[str, str], float]:
    found = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) perdure_[a-z_]+ .+$", line), line
            continue
        match = SAMPLE.match(line)
        assert match, line
        found[match[1], match[2] or ""] = float(match[3])
    return found


@pytest.mark.usefixtures("worker")
async def test_metrics_in_prometheus_text(client: perdure.Client) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    await client.start("double", 2, task_queue='no "worker" here')  # nobody serves it
    await client.start("double", 3, task_queue='no "worker" here', priority=1)
    await client.set_current_build("orders", "b1")
    await client.set_ramping_build("orders", "b2", 12.5)
    async with http(app, READ) as reader:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765"
        ) as nobody:
            assert (await nobody.get("/api/metrics")).status_code == 401
        answer = await reader.get("/api/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        found = samples(answer.text)
    queue = 'queue="no \\"worker\\" here",kind="workflow"'
    assert found["perdure_runs_open", ""] == 2
    assert found["perdure_runs_retrying", ""] == 0
    assert found["perdure_tasks_due", queue] == 2
    assert found["perdure_tasks_due_by_priority", queue + ',priority="1"'] == 1
    assert found["perdure_tasks_due_by_priority", queue + ',priority="3"'] == 1
    assert ("perdure_tasks_due_by_priority", queue + ',priority="5"') not in found
    assert found["perdure_tasks_running", queue] == 0
    assert found["perdure_task_lag_seconds", queue] > 0
    assert found["perdure_workers", 'queue="default"'] == 1
    assert ("perdure_workers", 'queue="no \\"worker\\" here"') not in found
    # The builds of each queue that has them.
    b1, b2 = 'queue="orders",build="b1"', 'queue="orders",build="b2"'
    assert (found["perdure_build_current", b1], found["perdure_build_current", b2]) == (1, 0)
    assert found["perdure_build_ramp_percent", b2] == 12.5
    assert ("perdure_build_ramp_percent", b1) not in found
    assert found["perdure_build_runs_open", b1] == found["perdure_build_workers", b2] == 0


def test_paused_activities_are_a_gauge_by_queue() -> None:
    at = datetime.now(UTC)
    backlog = [
        QueueBacklog("payments", "activity", 0, 1, 0.0, {}, paused=3),
        QueueBacklog("payments", "workflow", 2, 0, 1.5, {3: 2}),
    ]
    found = samples(prometheus_text(Stats(at, 4, 0, 0, 0.0, backlog, {})))
    assert found["perdure_activities_paused", 'queue="payments"'] == 3
    assert [k for k in found if k[0] == "perdure_activities_paused"] == [
        ("perdure_activities_paused", 'queue="payments"')
    ]


def test_perdure_stats(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'stats.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    assert cli("start", "double", "--arg", "3", "--db", db).returncode == 0  # no worker
    shown = cli("stats", "--json", "--db", db)
    assert shown.returncode == 0, shown.stderr
    stats = json.loads(shown.stdout)
    assert (stats["open_runs"], stats["retrying_runs"], stats["workers"]) == (1, 0, {})
    [backlog] = stats["backlog"]
    assert (backlog["task_queue"], backlog["kind"], backlog["due"]) == ("default", "workflow", 1)
    assert backlog["due_by_priority"] == {"3": 1}
    assert backlog["paused"] == 0
    text = cli("stats", "--db", db).stdout
    assert "runs open      1" in text and "default" in text


@pytest.mark.usefixtures("worker")
async def test_waiting_for_a_state_key_over_http(client: perdure.Client) -> None:
    """GET /api/workflows/{id}/state/{key}?timeout=: the long-poll a web
    backend in any language uses for a value the run publishes."""
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    handle = await client.start("approval", "Ada", 0, id="claim-9")
    async with http(app, READ) as reader:
        got = await reader.get("/api/workflows/claim-9/state/stage", params={"timeout": 10})
        assert got.status_code == 200, got.text
        assert got.json()["id"] == "claim-9" and got.json()["key"] == "stage"
        assert got.json()["value"] in ("greeting", "waiting for approval")
        missing = await reader.get("/api/workflows/claim-9/state/nope", params={"timeout": 0.1})
        assert missing.status_code == 404 and "has not published state 'nope'" in missing.text
        unknown = await reader.get("/api/workflows/no-such/state/stage")
        assert unknown.status_code == 404
        await handle.signal("approve", "ops")
        await handle.result(timeout=30)
        ended = await reader.get("/api/workflows/claim-9/state/nope", params={"timeout": 5})
        assert ended.status_code == 409 and "ended completed without" in ended.text
        stage = await reader.get("/api/workflows/claim-9/state/stage")
        assert stage.json()["value"] == "approved"
