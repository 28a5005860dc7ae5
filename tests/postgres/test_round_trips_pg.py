"""Round trips on PostgreSQL: a start, each turn and a close travel as one query.

A round trip to the server costs more than anything perdure does around it, so
these counts are what keeps a sequential workflow fast: a new run's start is
one query (it fences on its id being new instead of reading), every turn is one
query carrying its COMMIT (nothing is read back mid-transaction, even when the
run closes), and a used id falls back to reading what ``id_conflict`` needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

import perdure
from perdure import activity, workflow


@activity.defn
async def plus_one(x: int) -> int:
    return x + 1


@workflow.defn
async def two_steps(x: int) -> int:
    return await plus_one(await plus_one(x))


@pytest.fixture
async def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every query this process sends to PostgreSQL, in order."""
    queries: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def counted(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        queries.append(str(query))
        return await execute(self, query, params, **kw)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    return queries


@pytest.fixture
async def client(pg_url: str) -> AsyncIterator[perdure.Client]:
    c = await perdure.Client.connect(pg_url)
    try:
        yield c
    finally:
        await c.close()


async def settled(worker: perdure.Worker) -> None:
    deadline = time.monotonic() + 10
    while not worker.idle:
        assert time.monotonic() < deadline, "the worker never settled"
        await asyncio.sleep(0.01)


async def test_a_start_each_turn_and_the_close_are_one_query_each(
    client: perdure.Client, sent: list[str]
) -> None:
    async with perdure.Worker(client, [two_steps], [plus_one], poll_interval=60.0) as worker:
        await settled(worker)
        sent.clear()
        handle = await client.start(two_steps, 1)
        assert len(sent) == 1 and sent[0].rstrip().endswith("COMMIT"), sent
        sent.clear()
        assert await handle.result(timeout=10) == 3
        turns = [q for q in sent if "UPDATE runs SET version" in q]
        # The first turn, one after each step (the last one closes the run).
        assert len(turns) == 3
        assert all(q.startswith("BEGIN") and q.rstrip().endswith("COMMIT") for q in turns)


async def test_a_used_id_takes_a_second_transaction_that_reads_the_run(
    client: perdure.Client, sent: list[str]
) -> None:
    first = await client.start(two_steps, 1, id="order-7")
    sent.clear()
    again = await client.start(two_steps, 5, id="order-7", id_conflict="use_existing")
    assert again.run_id == first.run_id
    # The fenced try failed on the server; then a transaction read the run.
    assert "perdure_fence" in sent[0] and "ROLLBACK" in sent
    assert any(q.startswith("BEGIN") and "FROM runs WHERE workflow_id" in q for q in sent[1:])
    with pytest.raises(perdure.WorkflowAlreadyStartedError):
        await client.start(two_steps, 5, id="order-7")
