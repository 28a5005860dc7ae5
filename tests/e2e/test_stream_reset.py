"""A reset run's streams (WorkflowHandle.reset): they hold the values the
kept turns of its history wrote (the workflow's own, which the history
records), and a close among them; the old run keeps its streams. On every
backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import RetryPolicy, activity, workflow

broken: dict[str, bool] = {}


@activity.defn(retry=RetryPolicy(max_attempts=1, initial_interval=timedelta(milliseconds=10)))
async def stage(name: str) -> str:
    activity.write_stream("log", f"{name} (activity)")
    if broken.get(name):
        raise ConnectionError(f"{name}: the API is down")
    return f"{name} done"


@workflow.defn
async def staged(n: int) -> list[str]:
    out = []
    for i in range(n):
        workflow.write_stream("progress", i)
        if i == 0:
            workflow.write_stream("first-steps", f"s{i}")
        elif i == 1:
            workflow.close_stream("first-steps")
        out.append(await stage(f"s{i}"))
    return out


@pytest.fixture(autouse=True)
def _fresh() -> None:
    broken.clear()


async def test_a_reset_run_streams_the_values_of_its_kept_turns(client: perdure.Client) -> None:
    broken["s2"] = True
    async with fast_worker(client, [staged], [stage]):
        old = await client.start(staged, 4, id="staged-1")
        with pytest.raises(perdure.WorkflowFailedError, match="the API is down"):
            await old.result(timeout=20)
    assert [v async for v in old.read_stream("progress")] == [0, 1, 2]
    assert [v async for v in old.read_stream("log")] == [
        "s0 (activity)",
        "s1 (activity)",
        "s2 (activity)",
    ]
    broken["s2"] = False
    new = await old.reset()  # the turn that scheduled s2: it wrote progress 2
    # Before any worker takes it: the kept turns' values (progress 0 and 1,
    # first-steps s0 and its close), not their activities'.
    infos = {i.key: (i.length, i.closed) for i in await new.streams()}
    assert infos == {"progress": (2, False), "first-steps": (1, True)}
    page = await new.stream_page("progress")
    assert [(e.position, e.value, e.source) for e in page.entries] == [(0, 0, None), (1, 1, None)]
    async with fast_worker(client, [staged], [stage]):
        assert await new.result(timeout=20) == ["s0 done", "s1 done", "s2 done", "s3 done"]
    assert [v async for v in new.read_stream("progress")] == [0, 1, 2, 3]
    assert [v async for v in new.read_stream("first-steps")] == ["s0"]
    assert [v async for v in new.read_stream("log")] == ["s2 (activity)", "s3 (activity)"]
    # The old run's streams are as it left them.
    assert [v async for v in old.read_stream("progress")] == [0, 1, 2]
