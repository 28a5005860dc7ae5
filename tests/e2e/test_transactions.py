"""Transactional activities (``perdure.transactions``): a function's writes
on its connection commit with the record of its activity's idempotency key,
so an attempt after one that committed returns that attempt's result and
writes nothing; an attempt that fails leaves nothing. The application's
tables here are in perdure's own database (a fresh SQLite file, or a fresh
PostgreSQL schema): both backends, and on PostgreSQL ``async def`` too."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import LoseFirstOutcome, fast_worker

import perdure
from perdure import DataConverter, RetryPolicy, activity, workflow
from perdure.codecs import AesGcmCodec
from perdure.errors import ActivityError, WorkflowFailedError
from perdure.transactions import AppDatabase

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=4)

ran: list[str] = []  # each run of a transaction function's body, in order


class App:
    """The application's two tables, read and written by SQL that suits the
    dialect (sqlite3 takes ?, psycopg %s)."""

    def __init__(self, url: str) -> None:
        self.db = AppDatabase(url)
        self.mark = "?" if self.db.dialect == "sqlite" else "%s"

    def q(self, sql: str) -> str:
        return sql.replace("?", self.mark)

    def setup(self) -> None:
        def create(conn: Any) -> None:
            conn.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL)")
            conn.execute("CREATE TABLE movements (sku TEXT NOT NULL, qty INTEGER NOT NULL)")
            conn.execute(self.q("INSERT INTO stock VALUES (?, ?)"), ("sku-1", 10))

        self.db._backend.run(None, create, None, None)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.db._backend.run(
            None, lambda conn: list(conn.execute(sql).fetchall()), None, None
        )

    def reserve_body(self, conn: Any, sku: str, qty: int) -> int:
        ran.append(f"reserve {sku} {qty}")
        conn.execute(self.q("INSERT INTO movements VALUES (?, ?)"), (sku, -qty))
        conn.execute(self.q("UPDATE stock SET qty = qty - ? WHERE sku = ?"), (qty, sku))
        (left,) = conn.execute(self.q("SELECT qty FROM stock WHERE sku = ?"), (sku,)).fetchone()
        return int(left)


@pytest.fixture
def app(db_url: str) -> Iterator[App]:
    ran.clear()
    app = App(db_url)
    app.setup()
    yield app
    app.db.close()


def reserving(app: App, **options: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """A transactional activity reserving stock, and a workflow calling it."""

    @app.db.transaction(name="reserve", retry=FAST_RETRY, **options)
    def reserve(conn: Any, sku: str, qty: int) -> int:
        return app.reserve_body(conn, sku, qty)

    @workflow.defn(name="order")
    async def order(sku: str, qty: int) -> int:
        return await reserve(sku, qty)

    return reserve, order


async def test_the_writes_commit_once_with_their_record(client: perdure.Client, app: App) -> None:
    reserve, order = reserving(app)
    async with fast_worker(client, [order], [reserve]):
        handle = await client.start(order, "sku-1", 3, id="o-1")
        assert await handle.result(timeout=10) == 7
    assert ran == ["reserve sku-1 3"]
    assert app.rows("SELECT sku, qty FROM movements") == [("sku-1", -3)]
    assert app.rows("SELECT qty FROM stock") == [(7,)]
    run_id = (await handle.describe()).run_id
    assert app.rows("SELECT key, result FROM perdure_transactions") == [(f"o-1/{run_id}/1", "7")]


async def test_an_attempt_after_a_commit_returns_its_result_and_writes_nothing(
    db_url: str, app: App
) -> None:
    lose = LoseFirstOutcome()
    client = await perdure.Client.connect(db_url, interceptors=[lose])
    try:
        reserve, order = reserving(app)
        async with fast_worker(client, [order], [reserve]):
            handle = await client.start(order, "sku-1", 4, id="o-2")
            assert await handle.result(timeout=10) == 6
        history = await handle.history()
    finally:
        await client.close()
    assert lose.results == [6, 6]  # the second attempt's result is the first's record
    assert ran == ["reserve sku-1 4"]  # run once
    assert app.rows("SELECT sku, qty FROM movements") == [("sku-1", -4)]
    assert app.rows("SELECT qty FROM stock") == [(6,)]
    (completed,) = [e for e in history if e["type"] == "ActivityCompleted"]
    assert completed["attempt"] == 2 and completed["result"] == 6


async def test_a_failed_attempt_leaves_nothing(client: perdure.Client, app: App) -> None:
    @app.db.transaction(name="reserve", retry=FAST_RETRY)
    def reserve(conn: Any, sku: str, qty: int) -> int:
        left = app.reserve_body(conn, sku, qty)
        if len(ran) == 1:
            raise RuntimeError("after the writes, before the commit")
        return left

    @workflow.defn(name="order")
    async def order(sku: str, qty: int) -> int:
        return await reserve(sku, qty)

    async with fast_worker(client, [order], [reserve]):
        assert await client.execute(order, "sku-1", 2, id="o-3", timeout=10) == 8
    assert ran == ["reserve sku-1 2", "reserve sku-1 2"]
    assert app.rows("SELECT sku, qty FROM movements") == [("sku-1", -2)]
    assert app.rows("SELECT qty FROM stock") == [(8,)]


async def test_outside_an_activity_it_is_a_plain_transaction(app: App) -> None:
    reserve, _ = reserving(app)
    assert reserve("sku-1", 1) == 9
    assert app.rows("SELECT qty FROM stock") == [(9,)]
    assert app.rows("SELECT key FROM perdure_transactions") == []


async def test_a_function_that_ends_its_transaction_is_refused(
    client: perdure.Client, app: App
) -> None:
    """Its writes are rolled back (on SQLite the COMMIT is denied; on
    PostgreSQL a COMMIT sent as SQL is caught before the record), and the
    error is not retried: the code would do it again."""

    @app.db.transaction(name="commits", retry=FAST_RETRY)
    def commits(conn: Any, sku: str) -> None:
        ran.append("commits")
        conn.execute(app.q("INSERT INTO movements VALUES (?, ?)"), (sku, 1))
        conn.execute("COMMIT")

    @workflow.defn(name="committing")
    async def committing(sku: str) -> str:
        try:
            await commits(sku)
        except ActivityError as exc:
            return str(exc.cause)
        return "no error"

    async with fast_worker(client, [committing], [commits]):
        said = await client.execute(committing, "sku-1", id="c-1", timeout=10)
    assert said.startswith(
        "TransactionError: the transaction function tried to end its transaction"
    )
    assert ran == ["commits"]  # not retried
    assert app.rows("SELECT key FROM perdure_transactions") == []
    if app.db.dialect == "sqlite":  # (PostgreSQL committed the row: SQL reached the server)
        assert app.rows("SELECT sku FROM movements") == []


@pytest.mark.sqlite_only
async def test_sqlite_refuses_commit_on_a_reused_connection(
    client: perdure.Client, app: App
) -> None:
    """``conn.commit()`` is refused on a connection whose earlier
    transaction prepared (and cached) the same COMMIT statement."""
    reserve, _ = reserving(app)

    @app.db.transaction(name="commits", retry=FAST_RETRY)
    def commits(conn: sqlite3.Connection, sku: str) -> None:
        conn.execute("INSERT INTO movements VALUES (?, ?)", (sku, 1))
        conn.commit()

    @workflow.defn(name="both")
    async def both(sku: str) -> str:
        await reserve(sku, 1)
        try:
            await commits(sku)
        except ActivityError as exc:
            return str(exc.cause)
        return "no error"

    async with fast_worker(client, [both], [reserve, commits]):
        said = await client.execute(both, "sku-1", id="c-2", timeout=10)
    assert "tried to end its transaction (COMMIT)" in said
    assert app.rows("SELECT sku, qty FROM movements") == [("sku-1", -1)]


@pytest.mark.postgres_only
async def test_an_async_transaction_stopped_by_its_timeout_leaves_nothing(
    client: perdure.Client, app: App
) -> None:
    @app.db.transaction(
        name="reserve", retry=FAST_RETRY, start_to_close_timeout=timedelta(milliseconds=300)
    )
    async def reserve(conn: Any, sku: str, qty: int) -> int:
        ran.append("reserve")
        await conn.execute("INSERT INTO movements VALUES (%s, %s)", (sku, -qty))
        await conn.execute("UPDATE stock SET qty = qty - %s WHERE sku = %s", (qty, sku))
        if len(ran) == 1:
            await asyncio.sleep(30)  # stopped by the timeout, mid-transaction
        cur = await conn.execute("SELECT qty FROM stock WHERE sku = %s", (sku,))
        (left,) = await cur.fetchone()
        return int(left)

    @workflow.defn(name="order")
    async def order(sku: str, qty: int) -> int:
        return await reserve(sku, qty)

    async with fast_worker(client, [order], [reserve]):
        assert await client.execute(order, "sku-1", 5, id="o-4", timeout=20) == 5
    assert ran == ["reserve", "reserve"]
    assert app.rows("SELECT sku, qty FROM movements") == [("sku-1", -5)]
    assert app.rows("SELECT qty FROM stock") == [(5,)]
    assert len(app.rows("SELECT key FROM perdure_transactions")) == 1


@pytest.mark.postgres_only
async def test_async_and_def_functions_on_postgres(client: perdure.Client, app: App) -> None:
    @app.db.transaction
    async def take(conn: Any, sku: str, qty: int) -> int:
        await conn.execute("UPDATE stock SET qty = qty - %s WHERE sku = %s", (qty, sku))
        cur = await conn.execute("SELECT qty FROM stock WHERE sku = %s", (sku,))
        (left,) = await cur.fetchone()
        return int(left)

    @app.db.transaction
    def put(conn: Any, sku: str, qty: int) -> int:
        conn.execute("UPDATE stock SET qty = qty + %s WHERE sku = %s", (qty, sku))
        (left,) = conn.execute("SELECT qty FROM stock WHERE sku = %s", (sku,)).fetchone()
        return int(left)

    @workflow.defn(name="moves")
    async def moves(sku: str) -> list[int]:
        return [await take(sku, 4), await put(sku, 1), await take(sku, 2)]

    async with fast_worker(client, [moves], [take, put]):
        assert await client.execute(moves, "sku-1", id="m-1", timeout=10) == [6, 7, 5]
    assert len(app.rows("SELECT key FROM perdure_transactions")) == 3
    assert await take("sku-1", 1) == 4  # outside an activity: a plain transaction


async def test_a_failure_to_reach_the_workflow_after_retries(
    client: perdure.Client, app: App
) -> None:
    """A function that always fails: each attempt rolled back, the last
    failure reaches the workflow, no record."""

    @app.db.transaction(name="broken", retry=FAST_RETRY)
    def broken(conn: Any, sku: str) -> None:
        ran.append("broken")
        conn.execute(app.q("INSERT INTO movements VALUES (?, ?)"), (sku, 1))
        raise ValueError("no such warehouse")

    @workflow.defn(name="failing")
    async def failing(sku: str) -> None:
        await broken(sku)

    async with fast_worker(client, [failing], [broken]):
        with pytest.raises(WorkflowFailedError):
            await client.execute(failing, "sku-1", id="f-1", timeout=10)
    assert ran == ["broken"] * 4
    assert app.rows("SELECT sku FROM movements") == []
    assert app.rows("SELECT key FROM perdure_transactions") == []


def test_the_activity_takes_the_arguments_after_the_connection(tmp_path: Any) -> None:
    db = AppDatabase(f"sqlite:///{tmp_path / 'app.db'}")

    @db.transaction(name="renamed", retry=FAST_RETRY)
    def reserve(conn: sqlite3.Connection, sku: str, qty: int = 1) -> int:
        """Reserves."""
        return qty

    assert isinstance(reserve, activity.ActivityFunction)
    assert reserve.name == "renamed" and reserve.__name__ == "reserve"
    assert reserve.__doc__ == "Reserves."
    assert list(__import__("inspect").signature(reserve.fn).parameters) == ["sku", "qty"]
    assert reserve.opts.retry == FAST_RETRY
    db.close()


async def test_the_record_holds_the_result_as_the_worker_encodes_it(db_url: str, app: App) -> None:
    """With a codec, the record is the codec's envelope (an encrypted
    payload stays encrypted in the application's table too), and the
    attempt that reads it back gets the value."""
    key = bytes(range(32))
    converter = DataConverter(codecs=[AesGcmCodec({"k1": key}, active="k1")])
    lose = LoseFirstOutcome()
    client = await perdure.Client.connect(db_url, converter=converter, interceptors=[lose])
    try:
        reserve, order = reserving(app)
        async with fast_worker(client, [order], [reserve]):
            assert await client.execute(order, "sku-1", 3, id="o-5", timeout=10) == 7
    finally:
        await client.close()
    assert lose.results == [7, 7] and ran == ["reserve sku-1 3"]
    ((text,),) = app.rows("SELECT result FROM perdure_transactions")
    assert sorted(json.loads(text)) == ["__perdure_codec__", "data"]


async def test_called_from_another_activity_it_is_a_plain_transaction(
    client: perdure.Client, app: App
) -> None:
    """The calling activity's idempotency key is its own: two calls of the
    function there must not share a record (the second would return the
    first's result), so there it runs as a plain transaction."""
    reserve, _ = reserving(app)

    @activity.defn(name="restock_and_take")
    def restock_and_take(sku: str) -> list[int]:
        return [reserve(sku, 1), reserve(sku, 2)]

    @workflow.defn(name="composed")
    async def composed(sku: str) -> list[int]:
        return await restock_and_take(sku)

    async with fast_worker(client, [composed], [restock_and_take]):
        assert await client.execute(composed, "sku-1", id="c-3", timeout=10) == [9, 7]
    assert ran == ["reserve sku-1 1", "reserve sku-1 2"]
    assert app.rows("SELECT key FROM perdure_transactions") == []
