"""``perdure demo --ui``: the crash demo, then the web UI over its database until
Ctrl-C — what a newcomer runs first."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from surface_helpers import spawn

pytestmark = pytest.mark.slow


def test_demo_then_serves_its_data_until_ctrl_c(tmp_path: Path) -> None:
    demo = spawn(["demo", "--folder", str(tmp_path), "--ui", "--port", "0"], tmp_path / "out.log")
    try:
        url = demo.url(timeout=90)  # the story runs first
        assert "charged exactly once" in demo.output()
        runs = httpx.get(f"{url}api/workflows").json()["items"]
        assert [(r["id"], r["status"]) for r in runs] == [("order-1001", "completed")]
        history = httpx.get(f"{url}api/workflows/order-1001/history").json()
        assert history[-1]["type"] == "WorkflowCompleted"
        assert "<title>perdure</title>" in httpx.get(url).text
    finally:
        code = demo.stop(signal.SIGINT)
    assert code == 0, demo.output()
