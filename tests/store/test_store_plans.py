"""The store's statements reach their rows by key, whatever the size of the
tables and whatever the planner knows about them.

PostgreSQL: a prepared statement gets a *generic* plan after a few
executions, made once for any parameter values and kept for the
connection's life (until an ``ANALYZE`` of its tables). A fresh database
has empty, never-analyzed tables, where every path costs about the same:
the fenced turn update ``WHERE run_id = $5 AND version = $6 AND status =
$7`` got a plan that walked ``runs_by_status`` (every running run) and
filtered on the id, and kept it while the table grew. Each turn then read
all the open runs: a worker process that started with its database ran
1,600 steps/s where one that happened to avoid that plan ran 2,200. Claims,
timer firings and closing turns had generic plans that scanned their whole
queue. So every statement must leave the planner no such choice; a test
asks the server for the generic plan of each one on an empty schema, the
worst case.

SQLite plans each statement on its own, without statistics: a statement
with no index to use scans the table. The close of a run deleted its tasks
``WHERE run_id = ?``, which no SQLite index serves: every queued task was
read at each close.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import perdure
import perdure._store.sqlite
from perdure import activity, workflow
from perdure._store import postgres_plans, sqlite_schema, store_for_url
from perdure._store.postgres import SESSION_SETUP
from perdure._store.postgres_prepared import Statements, _numbered
from perdure._store.sqlrows import TURN_QUEUE

# Every statement of postgres_plans (a group's plans).
GROUP_STATEMENTS = [
    value
    for name, value in vars(postgres_plans).items()
    if name.isupper() and isinstance(value, str) and "?" in value
]

# Tables that grow with the work in flight, and the indexes that serve
# listings (by status, type or age) rather than a key.
GROWING = {"runs", "tasks", "timers", "events", "inbox"}
LISTING = {"runs_by_status", "runs_by_type", "runs_newest", "runs_one_open_per_workflow_id"}


@activity.defn
async def plus_one(x: int) -> int:
    return x + 1


@workflow.defn
async def steps(x: int) -> int:
    for _ in range(3):
        x = await plus_one(x)
    return x


@workflow.defn
async def naps(x: int) -> int:
    await workflow.sleep(timedelta(milliseconds=10))  # a timer that fires
    return x


@workflow.defn
async def waits(x: int) -> int:
    # Ends on the signal with its timeout's timer pending: the closing turn
    # deletes that timer.
    return x + await workflow.wait_signal("go", timeout=600)


@workflow.defn
async def parent(x: int) -> int:
    return await workflow.execute_child(steps, x) + 1


@activity.defn(task_queue="far")
async def far_plus_one(x: int) -> int:
    return x + 1


@workflow.defn
async def far(x: int) -> int:
    # Its activities run on a worker of their own queue: each outcome goes
    # to the run's inbox (complete_activity), in a group with others or alone.
    results = await asyncio.gather(*(far_plus_one(x) for _ in range(3)))
    return x + sum(results) - 3 * x


@pytest.fixture
def prepared(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Every statement text the store's connections prepare ($1, $2, ...)."""
    texts: set[str] = set()
    original = Statements.prepare_pending

    async def recorded(self: Statements, conn: Any) -> None:
        texts.update(_numbered(sql)[0] for sql in self.pending)
        await original(self, conn)

    monkeypatch.setattr(Statements, "prepare_pending", recorded)
    yield texts


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def workload(url: str) -> None:
    """Steps, timers fired and deleted, signals, a child, result waits."""
    client = await perdure.Client.connect(url)
    try:
        async with (
            perdure.Worker(
                client, workflows=[steps, naps, waits, parent, far], activities=[plus_one]
            ),
            perdure.Worker(client, workflows=[], activities=[far_plus_one], task_queue="far"),
        ):
            for i in range(4):  # each connection prepares what it sends twice
                handles = [await client.start(fn, 1) for fn in (steps, naps, waits, parent, far)]
                await handles[2].signal("go", 1)
                # A debounced start, and a second call that moves it.
                soon = {"key": f"burst-{i}", "delay": timedelta(milliseconds=300)}
                await client.debounce(steps, 1, **soon)  # type: ignore[arg-type]
                handles.append(await client.debounce(steps, 2, **soon))  # type: ignore[arg-type]
                assert [await h.result(timeout=30) for h in handles] == [4, 1, 2, 5, 4, 5]
    finally:
        await client.close()


async def test_every_prepared_statement_reaches_rows_by_key_on_empty_tables(
    pg_database: Any, prepared: set[str]
) -> None:
    await workload(pg_database.fresh_url())
    assert any("UPDATE runs SET version" in text for text in prepared), prepared
    # A group's statements are prepared once a connection has sent them
    # twice, which a short workload may or may not do: every one is checked.
    prepared.update(_numbered(text.replace("?", "%s"))[0] for text in GROUP_STATEMENTS)
    # (and the inboxes a claim or a timer firing reads back for the turns it leased)
    assert any("FROM inbox WHERE run_id = ANY" in text for text in prepared), prepared

    # The plans, made for empty tables that were never analyzed.
    empty_url = pg_database.fresh_url()
    store = store_for_url(empty_url)
    await store.open()  # creates the tables
    await store.close()
    problems = []
    async with await psycopg.AsyncConnection.connect(empty_url, autocommit=True) as conn:
        await conn.execute(SESSION_SETUP)  # the store's own connection settings
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        for number, text in enumerate(sorted(prepared)):
            await conn.execute(f"PREPARE s{number} AS {text}")
            args = ", ".join(["NULL"] * text.count("$"))
            cur = await conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE s{number}({args})")
            row = await cur.fetchone()
            assert row is not None
            for node in nodes(row[0][0]["Plan"]):
                table, index = node.get("Relation Name"), node.get("Index Name")
                if node["Node Type"] == "Seq Scan" and table in GROWING:
                    problems.append(f"scans all of {table}: {text}")
                if index in LISTING:
                    problems.append(f"walks {index}: {text}")
    assert not problems, "\n".join(problems)


async def test_checking_awaited_runs_reads_them_by_id(
    pg_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's result watch checks every run it waits on in one query. It
    named the status as well, and on a table not analyzed yet PostgreSQL
    then also read the index of all the open runs (it holds just those)."""
    pg_url = pg_database.fresh_url()
    store = store_for_url(pg_url)
    await store.open()
    try:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status,"
                " input, created_at, updated_at)"
                " SELECT 'r' || g, 'w' || g, 'steps', 'q', 'running', '[]', g, g"
                " FROM generate_series(1, 5000) g"
            )
            await conn.execute(SESSION_SETUP)  # and no ANALYZE yet, as in a new database
            sent: list[tuple[str, Any]] = []
            read_queries = store._read_queries  # type: ignore[attr-defined]

            async def recorded(queries: Any) -> Any:
                sent.extend(queries)
                return await read_queries(queries)

            monkeypatch.setattr(store, "_read_queries", recorded)
            await conn.execute("UPDATE runs SET status = 'completed' WHERE run_id = 'r7'")
            ended = await store.ended_runs(["r3", "r7", "r9"])
            assert list(ended) == ["r7"]
            record = ended["r7"]
            assert record is not None and record.status == "completed"
            # The question, then the ended run's record: both by id.
            assert len(sent) == 2, sent
            cur = psycopg.AsyncClientCursor(conn)
            for sql, params in sent:
                await cur.execute(f"EXPLAIN (FORMAT JSON) {sql.replace('?', '%s')}", params)
                row = await cur.fetchone()
                assert row is not None
                used = {node.get("Index Name") for node in nodes(row[0][0]["Plan"])}
                assert used - {None} == {"runs_run_id_key"}, (sql, used)
    finally:
        await store.close()


# Statements that may read a whole table on SQLite, and why that is fine.
SQLITE_SCANS_ALLOWED = {
    # A worker giving back (or taking back) its leases when it stops or
    # starts: once per worker process, not per step.
    "SELECT id FROM tasks WHERE lease_owner =",
}


async def test_sqlite_statements_reach_rows_by_index(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: set[str] = set()
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(sent.add)  # each statement, with its values
        return conn

    monkeypatch.setattr(perdure._store.sqlite.sqlite3, "connect", traced)
    path = tmp_path / "plans.db"
    await workload(f"sqlite:///{path}")
    monkeypatch.undo()
    # (the far workflow's outcomes were delivered as plans: sqlcomplete's statements)
    assert any(f"SELECT 'workflow', {TURN_QUEUE}, run_id" in sql for sql in sent), sent
    problems = set()
    # A migration runs once per database, and may copy a whole table on purpose.
    migrating = {
        " ".join(statement.split())
        for _, text in sqlite_schema.migrations()
        for statement in sqlite_schema.statements(text)
    }
    with closing(sqlite3.connect(path)) as conn:
        for sql in sent:
            if (
                not sql.lstrip()
                .upper()
                .startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"))
                or " ".join(sql.split()) in migrating
            ):
                continue
            for *_, detail in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
                scanned = re.match(r"SCAN (\w+)", detail)
                allowed = any(reason in sql for reason in SQLITE_SCANS_ALLOWED)
                if scanned and scanned[1] in GROWING and not allowed:
                    problems.add(f"{detail}: {sql}")
                # A listing's index holds every run of a status (or type,
                # or age): a search there reads them all.
                used = re.search(r"USING (?:COVERING )?INDEX (\w+)", detail)
                if used and used[1] in LISTING:
                    problems.add(f"{detail}: {sql}")
                # A search by a task's kind alone reads every task of that kind.
                if re.search(r"INDEX \w+ \(kind=\?\)$", detail):
                    problems.add(f"{detail}: {sql}")
    assert sent and not problems, "\n".join(sorted(problems))


async def test_the_stores_connections_take_those_settings(pg_database: Any) -> None:
    store = store_for_url(pg_database.fresh_url())
    await store.open()
    try:
        settings = await store._read(  # type: ignore[attr-defined]
            lambda tx: tx.one(
                "SELECT current_setting('enable_seqscan'),"
                " current_setting('idle_in_transaction_session_timeout')"
            )
        )
        assert settings == ("off", "1min")
    finally:
        await store.close()
