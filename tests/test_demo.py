"""The ``perdure demo`` story, end to end: real worker processes, a real SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from perdure.demo.run import run_demo

pytestmark = pytest.mark.slow


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_survives_sigkill_and_charges_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(tmp_path) == 0
    out = capsys.readouterr().out
    assert "kill -9 worker #1" in out
    assert "charged exactly once" in out

    charges = read_jsonl(tmp_path / "charges.jsonl")
    assert len(charges) == 1
    assert json.loads((tmp_path / "payments.json").read_text()) == {
        charges[0]["key"]: charges[0]["charge_id"]
    }

    executions = read_jsonl(tmp_path / "executions.jsonl")
    assert len({e["pid"] for e in executions}) == 2  # worker #1 and worker #2
    runs = Counter(e["activity"] for e in executions)
    assert runs["create_shipping_label"] >= 3  # two simulated outages (one cut by the kill)
    assert runs["charge_card"] == 1  # completed before the kill: never re-run
    for name in ("validate_payment", "reserve_inventory", "notify_warehouse", "send_confirmation"):
        assert runs[name] == 1, name
    # One idempotency key per activity, whatever the attempt or the worker.
    assert len({(e["activity"], e["key"]) for e in executions}) == len(runs)


def test_demo_cli_reuses_its_folder(tmp_path: Path) -> None:
    """``perdure demo --folder`` twice: the second order gets the next number, and
    each order is charged once."""
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "perdure", "demo", "--folder", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert "order-1002" in done.stdout
    charges = read_jsonl(tmp_path / "charges.jsonl")
    assert sorted(str(c["order_id"]) for c in charges) == ["order-1001", "order-1002"]
