"""``/api/schedules``, in process (httpx over ASGI) with a real worker:
create, list, describe, pause, unpause, trigger, delete; 401/403 for the
wrong token, 404, 409 and 422 with what is wrong, and nothing made."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app

BASE = "http://127.0.0.1:8765"
ADMIN, READ = "a" * 24, "r" * 24


def http(app: FastAPI, token: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(
        transport=transport, base_url=BASE, headers={"Authorization": f"Bearer {token}"}
    )


async def until(api: httpx.AsyncClient, schedule_id: str, check: Any, what: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        d: dict[str, Any] = (await api.get(f"/api/schedules/{schedule_id}")).json()
        if check(d):
            return d
        assert loop.time() < deadline, f"timed out waiting for {what}: {d}"
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("worker")
async def test_schedules_through_the_api(client: perdure.Client) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    body = {"schedule_id": "team/often", "workflow": "double", "args": [4], "every_seconds": 1}
    async with http(app, ADMIN) as api, http(app, READ) as reader:
        assert (await reader.post("/api/schedules", json=body)).status_code == 403
        bad = {
            "cron": ({"cron": "0 3 * *"}, "has 4 fields; it needs 5"),
            "both": ({"cron": "@daily", "every_seconds": 60}, "exactly one of cron="),
            "zone": ({"cron": "@daily", "timezone": "Mars/Olympus"}, "unknown time zone"),
            "short": ({"every_seconds": 0.5}, "greater than or equal to 1"),
            "jitter": ({"every_seconds": 60, "jitter_seconds": 60}, "shorter than the gap"),
            "negative": ({"every_seconds": 60, "jitter_seconds": -1}, "greater than or equal"),
            "priority": ({"every_seconds": 60, "priority": 6}, "less than or equal to 5"),
            "priority-bool": ({"every_seconds": 60, "priority": True}, "valid integer"),
            "key": ({"every_seconds": 60, "fairness_key": ""}, "fairness_key must be"),
            "key-type": ({"every_seconds": 60, "fairness_key": 7}, "valid string"),
        }
        for name, (fields, says) in bad.items():
            sent = {"schedule_id": name, "workflow": "double", **fields}
            refused = await api.post("/api/schedules", json=sent)
            assert refused.status_code == 422 and says in refused.text, refused.text
        typo = await api.post("/api/schedules", json={**body, "overlap": "queue"})
        assert typo.status_code == 422
        assert (await reader.get("/api/schedules")).json() == {"items": []}

        made = await api.post(
            "/api/schedules", content=httpx.Request("POST", "/", json=body).content
        )
        assert made.status_code == 201, made.text
        assert made.json()["schedule_id"] == "team/often" and made.json()["every_seconds"] == 1.0
        assert made.json()["jitter_seconds"] == 0.0 and made.json()["priority"] == 3
        assert made.json()["fairness_key"] is None
        again = await api.post("/api/schedules", json=body)
        assert again.status_code == 409 and "already exists" in again.json()["detail"]
        kept = await api.post("/api/schedules", json={**body, "if_exists": "keep"})
        assert kept.status_code == 201 and kept.json()["every_seconds"] == 1.0
        assert (await api.get("/api/schedules/nope")).status_code == 404
        assert (await api.post("/api/schedules/nope/pause")).status_code == 404

        ran = await until(reader, "team/often", lambda d: d["runs_started"] >= 2, "two runs")
        first = ran["recent"][0]
        assert first["workflow_id"] == f"team/often@{first['scheduled_time'][:19]}Z"
        outcome = await reader.get(f"/api/workflows/{first['workflow_id']}/result?timeout=10")
        assert outcome.json()["result"] == 8

        assert (await reader.post("/api/schedules/team/often/pause")).status_code == 403
        paused = await api.post("/api/schedules/team/often/pause", json={"note": "db upgrade"})
        assert paused.status_code == 202 and paused.json() == {
            "id": "team/often",
            "action": "pause",
        }
        # An optional body is an object or nothing: null is refused, as the document says.
        null = await api.post("/api/schedules/team/often/unpause", content=b"null")
        assert null.status_code == 422 and "valid dictionary" in null.text
        d = await until(reader, "team/often", lambda d: d["paused"], "the pause")
        assert d["note"] == "db upgrade" and d["next_run_at"] is None
        count = d["runs_started"]
        assert (await api.post("/api/schedules/team/often/trigger")).status_code == 202
        d = await until(reader, "team/often", lambda d: d["runs_started"] > count, "the trigger")
        assert d["recent"][-1]["trigger"] is True
        assert (await api.post("/api/schedules/team/often/unpause", json={})).status_code == 202
        await until(reader, "team/often", lambda d: not d["paused"], "the unpause")

        assert (await reader.post("/api/schedules/team/often/update", json={})).status_code == 403
        moved = await api.post(
            "/api/schedules/team/often/update",
            json={
                "every_seconds": 2,
                "args": [5],
                "jitter_seconds": 0.5,
                "priority": 1,
                "fairness_key": "team",
            },
        )
        assert moved.status_code == 202 and moved.json()["action"] == "update"
        d = await until(reader, "team/often", lambda d: d["every_seconds"] == 2.0, "the update")
        assert d["jitter_seconds"] == 0.5 and d["priority"] == 1 and d["fairness_key"] == "team"
        bad = await api.post("/api/schedules/team/often/update", json={"cron": "0 0 31 2 *"})
        assert bad.status_code == 422 and "never matches" in bad.json()["detail"]
        assert (
            await api.post("/api/schedules/nope/update", json={"cron": "@daily"})
        ).status_code == 404

        body = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T00:00:02Z"}
        filled = await api.post("/api/schedules/team/often/backfill", json=body)
        assert filled.status_code == 200, filled.text
        assert [r["scheduled_time"] for r in filled.json()["runs"]] == [
            f"2026-11-01T00:00:0{s}+00:00"
            for s in (0, 2)  # (every 2 s by now)
        ]
        assert (
            await reader.post("/api/schedules/team/often/backfill", json=body)
        ).status_code == 403
        huge = {"start": "2026-01-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}
        too_many = await api.post("/api/schedules/team/often/backfill", json=huge)
        assert too_many.status_code == 422 and "more than 1000 times" in too_many.text

        listed = (await reader.get("/api/schedules")).json()["items"]
        assert [s["schedule_id"] for s in listed] == ["team/often"]
        assert (await reader.delete("/api/schedules/team/often")).status_code == 403
        deleted = await api.delete("/api/schedules/team/often")
        assert deleted.status_code == 200 and deleted.json()["action"] == "delete"
        assert (await api.delete("/api/schedules/team/often")).status_code == 409
        assert (await api.post("/api/schedules/team/often/trigger")).status_code == 409
        assert (await reader.get("/api/schedules")).json() == {"items": []}
        gone = (await reader.get("/api/schedules/team/often")).json()
        assert gone["status"] == "terminated"
