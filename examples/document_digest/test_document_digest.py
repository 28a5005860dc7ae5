"""The document digest: with the model queue's limits, two model workers
together never exceed the provider's terms (two at once, five a second)
and it refuses nothing; without them it refuses calls, which retries make
good. The first summary is published before the digest ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import perdure

from ..story import run_story

pytestmark = pytest.mark.slow


def calls(folder: Path) -> list[dict[str, object]]:
    lines = (folder / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def most_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t - 1.0 < u <= t) for t in times)


def test_the_limits_keep_two_workers_within_the_models_terms(tmp_path: Path) -> None:
    out = run_story("document_digest", tmp_path, clear_env=("DIGEST_",))
    assert "first summary, while the others are asked for: doc-01: REPORT 1 ON THE…" in out
    assert "12 summaries in" in out
    made = calls(tmp_path)
    assert [c["status"] for c in made] == [200] * 12  # nothing refused
    assert max(int(c["in_flight"]) for c in made) == 2  # (two at once, and no more)
    # Five a second, by the attempts' starts the history records.
    with perdure.SyncClient.connect(f"sqlite:///{tmp_path / 'digest.db'}") as client:
        [run] = client.list(workflow="digest")
        history = client.get_handle(run.id).history()
    starts = [
        attempt["started_at"]
        for event in history
        if event["type"] == "ActivityCompleted"
        for attempt in event["attempts"]
    ]
    assert len(starts) == 12
    assert most_in_a_second(starts) == 5  # (twelve calls: the limit was met, not passed)


def test_without_limits_the_model_refuses_calls(tmp_path: Path) -> None:
    out = run_story("document_digest", tmp_path, "--no-limits", clear_env=("DIGEST_",))
    assert "12 summaries in" in out
    made = calls(tmp_path)
    assert sum(c["status"] == 200 for c in made) == 12
    assert sum(c["status"] == 429 for c in made) > 0  # retried until answered
