"""The traced checkout: after worker #1 is killed mid-call, every span of
the run, in the app and both workers and the child, is in the web
request's trace, each attempt under the start's span; the killed attempt
left none."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..story import run_story
from . import spans


@pytest.mark.slow
def test_the_trace_survives_the_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_story("traced_checkout", tmp_path, clear_env=("TRACED_CHECKOUT_",))
    assert "result: o-77: charged as ch_o-77, shipped parcel-o-77" in out, out
    assert "the payment API was called 2 times (attempts 1, 2)" in out, out
    monkeypatch.setenv(spans.DIR_ENV, str(tmp_path))
    records = spans.read()
    (request,) = [r for r in records if r["name"] == "POST /checkout"]
    (start,) = [r for r in records if r["name"] == "StartWorkflow:checkout"]
    assert start["parent"] == request["span"]
    runs = {
        (r["name"], r["attributes"]["perdure.attempt"]): r
        for r in records
        if r["name"].startswith("RunActivity:")
    }
    assert sorted(runs) == [
        ("RunActivity:charge", 2),
        ("RunActivity:reserve", 1),
        ("RunActivity:send_receipt", 1),
        ("RunActivity:ship", 1),
    ]
    for record in records:
        assert record["trace"] == request["trace"], record
    for record in runs.values():
        assert record["parent"] == start["span"], record
    # The two workers: reserve in the first, the charge's retry in the second.
    assert runs[("RunActivity:reserve", 1)]["pid"] != runs[("RunActivity:charge", 2)]["pid"]
    (call,) = [r for r in records if r["name"] == "POST /v1/charges"]
    assert call["parent"] == runs[("RunActivity:charge", 2)]["span"]
