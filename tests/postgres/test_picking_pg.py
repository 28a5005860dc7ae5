"""How PostgreSQL picks the rows a claim, a lease renewal or a timer firing
takes: the locking subquery runs once, and the rows are fetched by key.

``UPDATE tasks ... WHERE id IN (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT n)``
let the planner join the subquery's rows with a sequential scan of the whole
table: a claim of 100 tasks read all 10,000 queued ones, a firing of 500
timers all 100,000 sleeping timers (14 ms). ``Dialect.picked`` now makes the
subquery an InitPlan (``key = ANY(ARRAY(SELECT ...))``), which runs once per
execution whatever the plan, so a generic plan of a prepared claim cannot
lock more rows than its LIMIT either. These tests read the plans the server
would use for the statements the store sends, generic ones included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import psycopg
import pytest

from perdure._store import sqlend, store_for_url
from perdure._store.postgres import PostgresStore
from perdure._store.postgres_prepared import _numbered
from perdure._store.postgres_tx import _pg
from perdure._store.sqlite import SqliteStore


class Recorder:
    """A Tx that records the statements a store body sends, and finds nothing."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Sequence[Any]]] = []

    async def _record(self, sql: str, params: Sequence[Any]) -> None:
        self.statements.append((sql, tuple(params)))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        await self._record(sql, params)
        return 0

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._record(sql, params)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        await self._record(sql, params)
        return []

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        await self._record(sql, params)
        return None

    async def later_all(
        self, sql: str, params: Sequence[Any], then: Callable[[list[tuple[Any, ...]]], None]
    ) -> None:
        then(await self.all(sql, params))


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    s = store_for_url(pg_url)
    assert isinstance(s, PostgresStore)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def picking_statements(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The statements that pick rows with SKIP LOCKED, as the store builds them."""
    recorder = Recorder()

    async def record(body: Any) -> Any:
        return await body(recorder)

    monkeypatch.setattr(store, "_write", record)
    await store.claim_workflow_tasks(["q"], "w1", 30.0, 100)
    await store.claim_activity_tasks(["q", "other"], "w1", 30.0, 100)
    await store.fire_due_timers(500)
    await store.renew_leases([(1, "t1"), (2, "t2")], 30.0)
    await store.reclaim_leases("w1")
    await sqlend.drop_pending_work(recorder, store, "run-1")  # type: ignore[arg-type]
    picking = [(sql, p) for sql, p in recorder.statements if "SKIP LOCKED" in sql]
    assert len(picking) == 6, recorder.statements
    return picking


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


async def test_picking_runs_its_subquery_once_and_fetches_by_key(
    store: PostgresStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = await picking_statements(store, monkeypatch)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        # Enough rows that scanning them all looks cheap to the planner next to
        # fetching 100 by key (as it did with "IN (subquery)").
        await conn.execute(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, created_at)"
            " SELECT CASE WHEN g % 2 = 0 THEN 'workflow' ELSE 'activity' END, 'q', 'r' || g,"
            " CASE WHEN g % 2 = 0 THEN NULL ELSE 1 END, g, 0 FROM generate_series(1, 10000) g"
        )
        await conn.execute(
            "INSERT INTO timers (run_id, ref, fire_at)"
            " SELECT 's' || g, 1, 1e6 + g FROM generate_series(1, 50000) g"
        )
        await conn.execute("ANALYZE tasks")
        await conn.execute("ANALYZE timers")
        unprepared: set[str] = set()
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            for number, (sql, params) in enumerate(statements):
                numbered, count = _numbered(_pg(sql))
                assert count == len(params)
                name = f"picking_{mode}_{number}"
                cur = psycopg.AsyncClientCursor(conn)
                try:
                    await conn.execute(f"PREPARE {name} AS {numbered}")
                except psycopg.errors.UndefinedFunction:
                    # The server cannot type "(id, lease_token) IN (VALUES ($1,
                    # $2))": the store sends the renewals as text (see
                    # postgres_prepared), planned for their values.
                    assert "VALUES" in sql
                    unprepared.add(sql)
                    await cur.execute(f"EXPLAIN (FORMAT JSON) {_pg(sql)}", params)
                else:
                    args = ", ".join(["%s"] * count)
                    await cur.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({args})", params)
                row = await cur.fetchone()
                assert row is not None
                top = row[0][0]["Plan"]
                kinds = [node["Node Type"] for node in plan_nodes(top)]
                assert top["Node Type"] == "ModifyTable", (mode, sql, kinds)
                # The subquery, with the row locks (a claim's: one per queue
                # and priority, each its own range of the index), is an
                # InitPlan ...
                (init,) = [n for n in top["Plans"] if n["Parent Relationship"] == "InitPlan"]
                locks = [n["Node Type"] for n in plan_nodes(init)].count("LockRows")
                assert locks == sql.count("SKIP LOCKED") >= 1, (mode, sql, kinds)
                assert kinds.count("LockRows") == locks, (mode, sql, kinds)
                # ... and the rows it picked are fetched by key, not by a scan
                # of the table (how the subquery finds them is the planner's
                # choice: with several queues, a backlog is sorted by due time).
                (fetch,) = [n for n in top["Plans"] if n["Parent Relationship"] != "InitPlan"]
                assert fetch["Node Type"] in ("Index Scan", "Tid Scan"), (mode, sql, kinds)
                assert "Index Cond" in fetch or "TID Cond" in fetch, (mode, sql, fetch)
    assert len(unprepared) == 1  # the renewals'


async def test_sqlite_picks_with_a_plain_subquery() -> None:
    # SQLite serialises writers (nothing to skip) and runs an IN subquery once.
    d = SqliteStore(":memory:")
    assert d.picked("id", "FROM tasks WHERE queue = ?") == (
        "id IN (SELECT id FROM tasks WHERE queue = ?)"
    )
    assert d.picked(d.timer_key, "FROM timers WHERE run_id = ?") == (
        "(run_id, ref) IN (SELECT run_id, ref FROM timers WHERE run_id = ?)"
    )


async def test_a_claim_on_several_queues_reads_only_the_oldest_of_each(
    store: PostgresStore, pg_url: str
) -> None:
    """With "queue IN (...) ORDER BY visible_at", one index range cannot give
    two queues' tasks in due order: the claim read and sorted every due task
    of both queues, for each claim. Now each queue gives its oldest."""
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, created_at)"
            " SELECT 'activity', CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, 'r' || g, 1, g, 0"
            " FROM generate_series(1, 10000) g"
        )
        await conn.execute("ANALYZE tasks")
    recorder = Recorder()
    await store._claim(recorder, "activity", ["a", "b"], "w1", 30.0, 10)  # type: ignore[arg-type]
    # (then the read of whether the queues have fairness keys: sqlfair)
    (sql, params), _ = recorder.statements
    plan = await explained(pg_url, sql, params)
    # Ten from each queue, ten of those claimed and fetched (the old form: 10,000).
    assert rows_read(plan) <= 40, plan
    assert plan["Actual Rows"] == 10


async def explained(pg_url: str, sql: str, params: Sequence[Any]) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("BEGIN")
        cur = psycopg.AsyncClientCursor(conn)
        await cur.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {_pg(sql)}", params)
        row = await cur.fetchone()
        await conn.execute("ROLLBACK")
    assert row is not None
    return row[0][0]["Plan"]  # type: ignore[no-any-return]


def rows_read(plan: dict[str, Any]) -> int:
    scans = [n for n in plan_nodes(plan) if n.get("Relation Name") == "tasks"]
    return int(sum(n["Actual Rows"] * n["Actual Loops"] for n in scans))


async def test_fair_claims_read_the_keys_not_the_backlog(store: PostgresStore, pg_url: str) -> None:
    """Whether a queue has keyed tasks is one search of the partial index
    (not a read of the queue's 10,000 unkeyed ones); a fair claim's walk
    from key to key reads a row or two per key, not each key's tasks, and
    passes over a key whose tasks are all leased in one search."""
    from perdure._store import sqlfair

    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, created_at)"
            " SELECT 'activity', 'plain', 'r' || g, 1, g, 0 FROM generate_series(1, 10000) g"
        )
        await conn.execute(  # 100 keys of 100 due tasks, and 100 keys of one leased task
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, created_at, fairness_key)"
            " SELECT 'activity', 'fair', 'f' || g, 1, CASE WHEN g > 10000 THEN 1e12 ELSE g END,"
            " 0, 'k' || (g % 100 + CASE WHEN g > 10000 THEN 100 ELSE 0 END)"
            " FROM generate_series(1, 10100) g"
        )
        await conn.execute("ANALYZE tasks")
    check, params = sqlfair.keyed_check(store.keyed_tasks, "activity", ["plain"])
    plan = await explained(pg_url, check, params)
    assert rows_read(plan) == 0 and plan["Actual Rows"] == 0

    recorder = Recorder()
    store._turns.keyed.add(("activity", "fair"))
    await store._claim(recorder, "activity", ["fair"], "w1", 30.0, 10, now=5e9)  # type: ignore[arg-type]
    # (the walk of priority 3, the tasks')
    [(sql, params)] = [(s, p) for s, p in recorder.statements if s.startswith("WITH") and p[2] == 3]
    plan = await explained(pg_url, sql, [*params[:-1], 1000])  # (all of them: 100 due)
    assert plan["Actual Rows"] == 100
    # Per key walked (200): the next key, and for the keys due the first task.
    assert rows_read(plan) <= 3 * 200, rows_read(plan)
