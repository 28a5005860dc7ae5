"""The priority lanes: with one call at a time, the model serves the
customer's question (priority 1) first, then the document an operator
moved to priority 2, then the nightly batch (priority 5) in the order it
came; each call at its run's priority."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..story import run_story

pytestmark = pytest.mark.slow


def test_the_question_goes_before_the_batch(tmp_path: Path) -> None:
    out = run_story("priority_lanes", tmp_path, clear_env=("LANES_",))
    assert "waiting on 'model': 13 (priority 1: 1, priority 2: 1, priority 5: 11)" in out, out
    assert "the customer's answer: answer of where is my order?: done" in out
    served = [json.loads(line) for line in (tmp_path / "served.jsonl").read_text().splitlines()]
    rest = [f"doc-{i:02}" for i in range(1, 13) if i != 7]
    assert [s["subject"] for s in served] == ["where is my order?", "doc-07", *rest]
    assert [s["priority"] for s in served] == [1, 2, *[5] * 11]
