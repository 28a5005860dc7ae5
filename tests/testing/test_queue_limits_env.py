"""Task queue limits in the time-skipping environment: a rate limit of a few
starts an hour spaces a workflow's steps by virtual hours, which the
environment skips."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from perdure import activity, workflow
from perdure.testing import WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "crash"))
from crash_harness import attempt_spans, most_started

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@activity.defn
async def ask_model(question: int) -> int:
    return question * 2


@workflow.defn
async def survey(questions: int) -> list[int]:
    return [await ask_model(q) for q in range(questions)]


async def test_a_rate_limit_spreads_steps_over_virtual_hours() -> None:
    async with WorkflowEnvironment(
        workflows=[survey], activities=[ask_model], start_time=START
    ) as env:
        await env.client.set_queue_limits("default", max_starts=2, per=timedelta(hours=1))
        handle = await env.start(survey, 5)
        assert await handle.result() == [0, 2, 4, 6, 8]
        # Two steps in the first hour, two in the second, the last in the third.
        spans = attempt_spans([await env.client.get_handle(handle.id).history()])
        assert most_started(spans, 3600.0) == 2
        assert timedelta(hours=2) <= env.now() - START < timedelta(hours=2, minutes=1)
