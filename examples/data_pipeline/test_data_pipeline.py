"""The data pipeline: a load that fails until the fault is cleared is retried on
its own; extract and transform run once (counted in the side file)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from perdure.testing import WorkflowEnvironment

from ..story import run_story
from .pipeline import LoadReport, daily_sales, extract, load, transform


def executions(folder: Path) -> Counter[str]:
    lines = (folder / "executions.jsonl").read_text().splitlines()
    return Counter(json.loads(line)["step"] for line in lines)


async def test_load_is_retried_without_redoing_extract_and_transform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_DIR", str(tmp_path))
    monkeypatch.delenv("PIPELINE_TRANSFORM_SECONDS", raising=False)
    (tmp_path / "warehouse-down").touch()
    async with WorkflowEnvironment([daily_sales], [extract, transform, load]) as env:
        handle = await env.start(daily_sales, "2024-05-01", 500, id="sales")

        await env.sleep(timedelta(minutes=10))  # the warehouse stays down for 10 minutes
        d = await handle.describe()
        assert d.status == "running"
        assert d.state["progress"] == {
            "step": "load",
            "done": ["extract", "transform"],
            "rows": 500,
        }
        [pending] = d.pending_activities
        assert pending.activity_type == "load" and pending.attempt >= 5
        assert pending.last_failure is not None
        assert "warehouse unreachable" in pending.last_failure["message"]
        failed_loads = executions(tmp_path)["load"]
        assert failed_loads >= 5

        (tmp_path / "warehouse-down").unlink()  # the operator fixes the warehouse
        report = await handle.result()
        assert (await handle.state("progress"))["step"] == "done"

    assert report == LoadReport("2024-05-01", 500, 4)
    counts = executions(tmp_path)
    assert counts["extract"] == counts["transform"] == 1
    assert counts["load"] == failed_loads + 1
    table = json.loads((tmp_path / "warehouse-2024-05-01.json").read_text())
    assert sum(region["sales"] for region in table.values()) == 500


@pytest.mark.slow
def test_the_story_program(tmp_path: Path) -> None:
    """``python -m examples.data_pipeline`` on the real clock: three failed loads,
    the operator's fix, then one successful load."""
    printed = run_story(
        "data_pipeline",
        tmp_path,
        clear_env=("PIPELINE_",),
        env={"PIPELINE_TRANSFORM_SECONDS": "0.2"},
    )
    assert "load attempt 3 failed: warehouse unreachable" in printed
    assert executions(tmp_path) == Counter(extract=1, transform=1, load=4)
