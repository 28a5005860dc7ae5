"""``/api/queues``, in process (httpx over ASGI) with a real worker: a
queue's activities and limits, limits set and lifted by an admin; 403 for
a reader, 404 and 422 with what is wrong, and nothing changed."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from test_schedule_api import ADMIN, READ, http

import perdure
from perdure.server._auth import AuthConfig
from perdure.server.app import create_app


async def until(api: httpx.AsyncClient, check: Any, what: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        q: dict[str, Any] = (await api.get("/api/queues/default")).json()
        if check(q):
            return q
        assert loop.time() < deadline, f"timed out waiting for {what}: {q}"
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("worker")
async def test_queue_limits_through_the_api(client: perdure.Client) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    async with http(app, ADMIN) as api, http(app, READ) as reader:
        one_an_hour = {"max_starts": 1, "per_seconds": 3600}
        assert (await reader.put("/api/queues/default/limits", json=one_an_hour)).status_code == 403
        bad = {
            "none": ({}, "give max_running, or max_starts and per"),
            "negative": ({"max_running": -1}, "greater than or equal to 0"),
            "zero starts": ({"max_starts": 0, "per_seconds": 60}, "greater than or equal to 1"),
            "text": ({"max_running": "5"}, "Input should be a valid integer"),
            "half": ({"max_starts": 5}, "a rate limit needs both max_starts and per"),
            "long": ({"max_starts": 5, "per_seconds": 1e9}, "less than or equal to"),
            "typo": ({"max_runing": 5}, "Extra inputs are not permitted"),
            "none per key": ({"max_running_per_key": 0}, "greater than or equal to 1"),
            "no starts per key": (
                {"max_starts_per_key": 0, "per_seconds": 60},
                "greater than or equal to 1",
            ),
            "half per key": ({"max_starts_per_key": 5}, "or max_starts_per_key and per"),
        }
        for name, (body, says) in bad.items():
            refused = await api.put("/api/queues/default/limits", json=body)
            assert refused.status_code == 422 and says in refused.text, (name, refused.text)
        assert (await reader.get("/api/queues/default/limits")).status_code == 404
        assert (await reader.get("/api/queues")).json() == {"items": []}

        put = await api.put("/api/queues/default/limits", json=one_an_hour)
        assert put.status_code == 200, put.text
        assert put.json() == {
            "max_running": None,
            "max_starts": 1,
            "per_seconds": 3600.0,
            "max_running_per_key": None,
            "max_starts_per_key": None,
        }
        assert (await reader.get("/api/queues/default/limits")).json() == put.json()
        # approval's first step starts; its second waits for the next hour.
        handle = await client.start("approval", "Ada", 0)
        held = await until(reader, lambda q: q["waiting"] == 1, "the second step to wait")
        assert (held["running"], held["started"], held["limits"]) == (0, 1, put.json())
        assert held["held_until"] is not None
        [listed] = (await reader.get("/api/queues")).json()["items"]
        assert listed["task_queue"] == "default"

        assert (await reader.delete("/api/queues/default/limits")).status_code == 403
        assert (await api.delete("/api/queues/default/limits")).status_code == 204
        assert (await api.delete("/api/queues/default/limits")).status_code == 404
        lifted = await until(reader, lambda q: q["waiting"] == 0, "the second step to start")
        assert (lifted["limits"], lifted["held_until"]) == (None, None)
        assert (lifted["running_by_key"], lifted["keys_at_limit"]) == ({}, 0)
        per_key = await api.put("/api/queues/other/limits", json={"max_running_per_key": 2})
        assert per_key.status_code == 200, per_key.text
        assert per_key.json()["max_running_per_key"] == 2
        shown = (await reader.get("/api/queues/other")).json()
        assert shown["limits"] == per_key.json() and shown["keys_at_limit"] == 0
        rated = {"max_starts_per_key": 3, "per_seconds": 60}
        per_key = await api.put("/api/queues/other/limits", json=rated)
        assert per_key.status_code == 200, per_key.text
        assert per_key.json() == {
            "max_running": None,
            "max_starts": None,
            "per_seconds": 60.0,
            "max_running_per_key": None,
            "max_starts_per_key": 3,
        }
        shown = (await reader.get("/api/queues/other")).json()
        assert (shown["limits"], shown["started_by_key"]) == (per_key.json(), {})
        await handle.signal("approve", "ops")
        assert (await handle.result(timeout=30))["approved_by"] == "ops"


async def test_fairness_weights_through_the_api(client: perdure.Client) -> None:
    app = create_app(client, auth=AuthConfig({ADMIN: "admin", READ: "read"}))
    async with http(app, ADMIN) as api, http(app, READ) as reader:
        three = {"fairness_key": "acme", "weight": 3}
        assert (await reader.put("/api/queues/llm/weights", json=three)).status_code == 403
        bad = {
            "zero": ({"fairness_key": "acme", "weight": 0}, "greater than or equal to 1"),
            "big": ({"fairness_key": "acme", "weight": 1001}, "less than or equal to 1000"),
            "text": ({"fairness_key": "acme", "weight": "3"}, "Input should be a valid integer"),
            "no key": ({"fairness_key": "", "weight": 3}, "at least 1 character"),
            "nul": ({"fairness_key": "a\x00b", "weight": 3}, "fairness_key"),
            "typo": ({"fairness_key": "acme", "wieght": 3}, "Extra inputs are not permitted"),
        }
        for name, (body, says) in bad.items():
            refused = await api.put("/api/queues/llm/weights", json=body)
            assert refused.status_code == 422 and says in refused.text, (name, refused.text)
        assert (await reader.get("/api/queues")).json() == {"items": []}

        put = await api.put("/api/queues/llm/weights", json=three)
        assert put.status_code == 200, put.text
        assert put.json() == {"fairness_key": "acme", "weight": 3, "weight_before": 1}
        assert (await reader.get("/api/queues/llm")).json()["fairness_weights"] == {"acme": 3}
        weights = await reader.get("/api/queues/llm/weights")
        assert weights.json() == {"fairness_weights": {"acme": 3}}
        again = await api.put("/api/queues/llm/weights", json={"fairness_key": "acme", "weight": 1})
        assert again.json()["weight_before"] == 3
        assert (await reader.get("/api/queues/llm")).json()["fairness_weights"] == {}
