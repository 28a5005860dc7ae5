"""Round trips on PostgreSQL: a start, each turn and a close travel as one query.

A round trip to the server costs more than anything perdure does around it, so
these counts are what keeps a sequential workflow fast: a new run's start is
one query (it fences on its id being new instead of reading), every turn is one
query carrying its COMMIT (nothing is read back mid-transaction, even when the
run closes), and a used id falls back to reading what ``id_conflict`` needs.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

import perdure
from perdure import activity, workflow
from perdure._store import postgres_wire


@activity.defn
async def plus_one(x: int) -> int:
    return x + 1


@workflow.defn
async def two_steps(x: int) -> int:
    return await plus_one(await plus_one(x))


@pytest.fixture
async def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every query this process sends to PostgreSQL, in order: through
    psycopg's cursors, or (write transactions) straight over libpq."""
    queries: list[str] = []
    execute = psycopg.AsyncCursor.execute
    simple_query = postgres_wire.simple_query

    async def counted(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        queries.append(query.decode() if isinstance(query, bytes) else str(query))
        return await execute(self, query, params, **kw)

    async def counted_simple(conn: Any, query: bytes) -> Any:
        queries.append(query.decode())
        return await simple_query(conn, query)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    monkeypatch.setattr(postgres_wire, "simple_query", counted_simple)
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


def round_trips(sent: list[str]) -> list[str]:
    """The queries of the workload itself: without the PREPAREs with which a
    connection readies a statement it repeats (once per connection and
    statement; see test_a_connection_prepares_what_it_repeats)."""
    return [q for q in sent if not q.startswith("PREPARE ")]


def with_option(url: str, option: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{option}"


def writes(sent: list[str]) -> list[str]:
    return [q for q in round_trips(sent) if q.startswith("BEGIN ISOLATION LEVEL READ COMMITTED")]


async def test_a_start_each_turn_and_the_close_are_one_query_each(
    client: perdure.Client, sent: list[str]
) -> None:
    async with perdure.Worker(client, [two_steps], [plus_one], poll_interval=60.0) as worker:
        await settled(worker)
        sent.clear()
        handle = await client.start(two_steps, 1)
        # The start carries the run's first turn (its worker is here).
        trips = round_trips(sent)
        assert len(trips) == 1 and trips[0].rstrip().endswith("COMMIT"), sent
        assert "INSERT INTO events" in trips[0] and "INSERT INTO tasks" in trips[0]
        sent.clear()
        assert await handle.result(timeout=10) == 3
        # One turn after each step (the last one closes the run): each one
        # query, carrying its COMMIT.
        turns = writes(sent)
        assert len(turns) == 2, sent
        assert all(q.rstrip().endswith("COMMIT") for q in turns)


async def test_a_connection_prepares_what_it_repeats(
    pg_url: str, sent: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The server parses and plans a simple-protocol query anew each time; a
    statement one connection repeats is prepared once (outside a transaction)
    and then sent as EXECUTE. A prepared statement the session lost (a pooler
    in transaction mode) makes the store send text from then on, and the
    transaction is run again: nothing is lost."""
    client = await perdure.Client.connect(with_option(pg_url, "pool_max_size=1"))
    try:
        # (No poll meanwhile: a timer firing's query, sent before it has been
        # repeated, is text; under load a poll fell among the turns measured.)
        async with perdure.Worker(client, [two_steps], [plus_one], poll_interval=60.0) as worker:
            await settled(worker)
            for x in range(3):
                assert await client.execute(two_steps, x, timeout=10) == x + 2
            assert any(q.startswith("PREPARE perdure_") for q in sent)
            sent.clear()
            assert await client.execute(two_steps, 10, timeout=10) == 12
            turns = writes(sent)
            assert turns and all("EXECUTE perdure_" in q for q in turns), sent
            assert not any("UPDATE runs SET version" in q for q in turns)
            assert not any(q.startswith("PREPARE ") for q in sent)  # all prepared by now

            store: Any = client.store
            conn = await store._conns.take()  # the one connection, with its statements
            try:
                await conn.execute("DEALLOCATE ALL")  # as a pooler's next session would be
            finally:
                await store._conns.give(conn)
            with caplog.at_level("WARNING", logger="perdure.store"):
                assert await client.execute(two_steps, 20, timeout=10) == 22
            assert "lost a prepared statement" in caplog.text
            sent.clear()
            assert await client.execute(two_steps, 30, timeout=10) == 32
            assert not any("EXECUTE perdure_" in q for q in sent)  # text from now on
    finally:
        await client.close()


async def test_prepare_0_sends_text_only(pg_url: str, sent: list[str]) -> None:
    client = await perdure.Client.connect(with_option(pg_url, "prepare=0"))
    try:
        async with perdure.Worker(client, [two_steps], [plus_one]):
            for x in range(4):
                assert await client.execute(two_steps, x, timeout=10) == x + 2
        assert not any(q.startswith("PREPARE") or "EXECUTE perdure_" in q for q in sent)
    finally:
        await client.close()


async def test_a_statement_the_server_will_not_prepare_is_sent_as_text(pg_url: str) -> None:
    from perdure._store.postgres_prepared import PREPARE_AFTER, Statements

    refused: set[str] = set()
    statements = Statements(refused)
    untyped = "SELECT %s IS NULL"  # the server cannot infer the parameter's type
    typed = "SELECT %s::int + 1"
    for _ in range(PREPARE_AFTER):
        assert statements.text(untyped) == untyped
        assert statements.text(typed) == typed
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await statements.prepare_pending(conn)
        assert statements.text(untyped) == untyped and untyped in refused
        assert statements.text(typed).startswith("EXECUTE perdure_")
        cur = psycopg.AsyncClientCursor(conn)
        await cur.execute(statements.text(typed), [41])
        assert await cur.fetchone() == (42,)


async def test_a_used_id_takes_a_second_transaction_that_reads_the_run(
    client: perdure.Client, sent: list[str]
) -> None:
    first = await client.start(two_steps, 1, id="order-7")
    sent.clear()
    again = await client.start(two_steps, 5, id="order-7", id_conflict="use_existing")
    assert again.run_id == first.run_id
    # The fenced try failed on the server; then a transaction read the run.
    trips = round_trips(sent)
    assert "perdure_fence" in trips[0] and "ROLLBACK" in trips
    assert any(q.startswith("BEGIN") and "FROM runs WHERE workflow_id" in q for q in trips[1:])
    with pytest.raises(perdure.WorkflowAlreadyStartedError):
        await client.start(two_steps, 5, id="order-7")


async def test_claims_and_timer_firings_are_prepared_too(pg_url: str, sent: list[str]) -> None:
    """Their locking subquery runs once whatever the plan (test_picking_pg), so
    they are prepared like every other statement a connection repeats."""
    from perdure._store import store_for_url

    store = store_for_url(with_option(pg_url, "pool_max_size=1"))
    await store.open()
    try:
        for _ in range(3):
            sent.clear()
            assert await store.claim_workflow_tasks(["q"], "w1", 30.0, 10) == []
            assert await store.claim_activity_tasks(["q"], "w1", 30.0, 10) == []
            assert await store.fire_due_timers(100) == 0
        # (Each claim's COMMIT carries the read of whether its queue has
        # fairness keys, the activity claim's whether it has limits too: no
        # round trip of their own.)
        assert sum("EXECUTE perdure_" in q for q in sent) == 5, sent
        assert sum(q.endswith("; COMMIT") and "EXECUTE perdure_" in q for q in sent) == 2, sent
        assert not any("SKIP LOCKED" in q for q in round_trips(sent))
    finally:
        await store.close()


async def test_a_timer_firing_reads_its_runs_in_one_query(
    client: perdure.Client, pg_url: str, sent: list[str]
) -> None:
    """Firing due timers locks and reads their runs: one query for the whole
    batch, not one round trip per timer while the firing holds its locks
    (2,000 naps due at once woke 1.6 times as fast)."""
    for x in range(30):
        await client.start(two_steps, x)  # no worker: the runs wait
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO timers (run_id, ref, fire_at) SELECT run_id, 1, 0 FROM runs"
        )
    sent.clear()
    assert await client.store.fire_due_timers(100) == 30
    # The timers picked, their runs locked and read, the TimerFired inbox rows
    # and workflow tasks written with the COMMIT.
    assert len(round_trips(sent)) == 3, round_trips(sent)


@workflow.defn
async def parent_of_one(x: int) -> int:
    return await workflow.execute_child(two_steps, x) + 1


async def test_only_a_run_that_started_children_reads_them_when_it_closes(
    pg_url: str, sent: list[str]
) -> None:
    """Closing a run reads its open children (to apply their close policy)
    only if it ever started one: a child's close tells its parent, and that
    is all it reads."""
    client = await perdure.Client.connect(with_option(pg_url, "prepare=0"))  # SQL as text
    try:
        async with perdure.Worker(client, [parent_of_one, two_steps], [plus_one]):
            assert await client.execute(parent_of_one, 1, timeout=10) == 4
    finally:
        await client.close()
    children_reads = [
        q for q in sent if re.search(r"WHERE parent_run_id = '[^']*' AND status = 'running'", q)
    ]
    assert len(children_reads) == 1, children_reads  # the parent's close, not the child's
