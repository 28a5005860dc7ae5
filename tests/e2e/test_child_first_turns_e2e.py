"""A real worker's children get their first turns from the worker that
starts them (sqlstart.prepare_children): the parent's commit writes each
child's first turn, so no child's workflow task is ever claimed, and the
child's first activity starts right after that commit. The exceptions go
the ordinary way and still finish: a child that ends in its first turn, a
child on a queue no worker of this process serves, and the children beyond
MAX_PREPARED_CHILDREN. Every backend."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from e2e_helpers import fast_worker, settled, wait_until

import perdure
from perdure import activity, workflow
from perdure._store import sqlstart

K = 6
ran: Counter[int] = Counter()


@activity.defn
async def triple(x: int) -> int:
    ran[x] += 1
    return 3 * x


@workflow.defn
async def kid(x: int) -> int:
    return await triple(x)


@workflow.defn
async def quick_kid(x: int) -> int:
    return x  # (ends in its first turn)


@workflow.defn
async def fan(k: int, after_step: bool, queue: str | None) -> int:
    base = await triple(100) if after_step else 0
    calls = [workflow.execute_child(kid, base + i, task_queue=queue) for i in range(k)]
    calls += [workflow.execute_child(quick_kid, 1000 + i) for i in range(2)]
    return sum(await asyncio.gather(*calls))


def claimed_runs(client: perdure.Client, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run ids of every workflow task a poll claimed."""
    runs: list[str] = []
    original = client.store.claim_workflow_tasks

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        tasks = await original(*args, **kwargs)
        runs.extend(t.run_id for t in tasks)
        return tasks

    monkeypatch.setattr(client.store, "claim_workflow_tasks", recorded)
    return runs


def expected(k: int, after_step: bool) -> int:
    base = 300 if after_step else 0
    return sum(3 * (base + i) for i in range(k)) + 1000 + 1001


@pytest.mark.parametrize("after_step", [False, True], ids=["first turn", "after a step"])
async def test_children_start_with_their_first_turns(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch, after_step: bool
) -> None:
    ran.clear()
    claimed = claimed_runs(client, monkeypatch)
    async with fast_worker(client, [fan, kid, quick_kid], [triple]) as worker:
        handle = await client.start(fan, K, after_step, None)
        assert await handle.result(timeout=20) == expected(K, after_step)
        await settled(worker)
        # Every slot a first turn reserved was given back.
        assert (worker._turns_reserved, worker._inline_reserved) == (0, 0)
    kids = await client.list(workflow="kid")
    assert len(kids) == K
    assert not {r.run_id for r in kids} & set(claimed)  # (none was claimed)
    # The quick ones end in their first turn: they went the ordinary way.
    quick = await client.list(workflow="quick_kid")
    assert {r.run_id for r in quick} <= set(claimed)
    assert ran == Counter([*range(300, 300 + K), 100] if after_step else range(K))
    history = await client.get_handle(kids[0].id).history()
    assert [e["type"] for e in history] == [
        "WorkflowStarted",
        "ActivityScheduled",
        "ActivityCompleted",
        "WorkflowCompleted",
    ]


async def test_children_beyond_the_cap_go_the_ordinary_way(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran.clear()
    monkeypatch.setattr(sqlstart, "MAX_PREPARED_CHILDREN", 2)
    claimed = claimed_runs(client, monkeypatch)
    async with fast_worker(client, [fan, kid, quick_kid], [triple]):
        handle = await client.start(fan, K, False, None)
        assert await handle.result(timeout=20) == expected(K, False)
    kids = await client.list(workflow="kid")
    assert Counter(r.run_id in claimed for r in kids) == Counter({True: K - 2, False: 2})
    assert ran == Counter(range(K))


async def test_children_on_a_queue_nobody_here_serves_are_queued(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran.clear()
    claimed = claimed_runs(client, monkeypatch)
    async with fast_worker(client, [fan, kid, quick_kid], [triple]):
        handle = await client.start(fan, 2, False, "elsewhere")

        async def started() -> bool:
            return len(await client.list(workflow="kid")) == 2

        await wait_until(started, what="the children's runs")
        async with fast_worker(client, [kid], [triple], task_queue="elsewhere"):
            assert await handle.result(timeout=20) == expected(2, False)
    kids = await client.list(workflow="kid")
    assert {r.run_id for r in kids} <= set(claimed)  # (their first tasks were claimed)
    assert ran == Counter(range(2))
