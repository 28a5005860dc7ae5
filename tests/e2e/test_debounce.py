"""Client.debounce (docs/workflows.md, "Debouncing"): a burst of calls with
one key makes one run, started ``delay`` after the last call with its
arguments, no later than ``max_delay`` after the first; a call once the run
has begun starts another; bad arguments are refused before anything is
written. In a time-skipping environment, and with a real worker on both
databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow
from perdure.testing import WorkflowEnvironment
from perdure.testing._env_client import EnvHandle

INDEXED: list[str] = []


@activity.defn
async def index(user: str, version: int) -> str:
    INDEXED.append(f"{user}@{version}")
    return f"{user}@{version}"


@workflow.defn
async def reindex(user: str, version: int) -> str:
    return await index(user, version)


@pytest.fixture(autouse=True)
def _nothing_indexed() -> None:
    INDEXED.clear()


async def test_a_burst_makes_one_run_with_the_last_arguments() -> None:
    async with WorkflowEnvironment(workflows=[reindex], activities=[index]) as env:
        began = env.now()
        wait = timedelta(seconds=30)
        handles = []
        for version in (1, 2, 3):  # an edit every 20 s, each within the 30 s of the last
            handle = await env.debounce(reindex, "ada", version, key="ada", delay=wait)
            handles.append(handle)
            if version < 3:
                await env.sleep(timedelta(seconds=20))
        assert len({(h.id, h.run_id) for h in handles}) == 1
        assert all(isinstance(h, EnvHandle) for h in handles)  # (they skip time)
        assert INDEXED == []
        pending = await handles[0].describe()
        assert pending.starts_at is not None and pending.debounce_key == "ada"
        assert await handles[-1].result() == "ada@3"
        assert (await handles[0].describe()).debounce_key is None  # (no start to move now)
        assert INDEXED == ["ada@3"]
        assert env.now() - began >= timedelta(seconds=40 + 30)
        # The run has begun (here: ended): the next call makes another.
        again = await env.client.debounce(reindex, "ada", 4, key="ada", delay=wait)
        assert again.id != handles[0].id
        assert await again.result() == "ada@4"
        # Another key is a run of its own.
        other = await env.client.debounce(reindex, "bob", 1, key="bob", delay=wait)
        assert await other.result() == "bob@1" and INDEXED == ["ada@3", "ada@4", "bob@1"]


async def test_a_burst_that_goes_on_starts_within_max_delay() -> None:
    async with WorkflowEnvironment(workflows=[reindex], activities=[index]) as env:
        began = env.now()
        options = {"key": "busy", "delay": timedelta(seconds=30), "max_delay": timedelta(minutes=2)}
        first = await env.client.debounce(reindex, "busy", 0, **options)
        version = 0
        while (await first.describe()).status == "running" and not INDEXED:
            version += 1
            await env.sleep(timedelta(seconds=20))  # edits never 30 s apart
            await env.client.debounce(reindex, "busy", version, **options)
        # Started by two minutes after the first call, with the arguments of
        # the last call before it; the calls after that made a run of their own.
        assert await first.result() == INDEXED[0]
        started = int(INDEXED[0].split("@")[1])
        assert started in (5, 6)  # (the call at 120 s may come just before the run is taken)
        assert env.now() - began < timedelta(minutes=2, seconds=30)


async def test_bad_arguments_are_refused(client: perdure.Client) -> None:
    wait = timedelta(seconds=1)
    for options, error, message in [
        ({"key": "", "delay": wait}, ValueError, "key must be a non-empty string"),
        ({"key": "k", "delay": 1.5}, TypeError, "delay must be a timedelta, not float 1.5"),
        ({"key": "k", "delay": timedelta(0)}, ValueError, "delay must be positive, not 0:00:00"),
        (
            {"key": "k", "delay": wait, "max_delay": -wait},
            ValueError,
            "max_delay must be positive, not -1 day, 23:59:59",
        ),
        ({"key": 7, "delay": wait}, ValueError, "key must be a non-empty string, not 7"),
    ]:
        with pytest.raises(error, match=message):
            await client.debounce(reindex, "x", 1, **options)  # type: ignore[arg-type]
    assert await client.list() == []


async def test_with_a_worker_a_burst_runs_once(client: perdure.Client) -> None:
    async with fast_worker(client, [reindex], [index]):
        # Calls back to back, well within the delay of one another.
        handles = [
            await client.debounce(reindex, "cy", n, key="cy", delay=timedelta(seconds=2))
            for n in range(1, 6)
        ]
        assert len({h.run_id for h in handles}) == 1
        assert await handles[0].result(timeout=20) == "cy@5"
        assert INDEXED == ["cy@5"]
        [run] = await client.list()
        assert run.id == handles[0].id
