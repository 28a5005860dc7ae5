"""Transactional activities in the time-skipping ``WorkflowEnvironment``: a
real one on a test database (its record says what each step committed,
once), and one replaced by a fake that takes the activity's arguments, not
the connection (testing.md)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from perdure import workflow
from perdure.testing import WorkflowEnvironment
from perdure.transactions import AppDatabase


def shop(path: Path) -> AppDatabase:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE moves (sku TEXT, qty INTEGER)")
    return AppDatabase(f"sqlite:///{path}")


async def test_a_transactional_activity_in_the_environment(tmp_path: Path) -> None:
    db = shop(tmp_path / "shop.db")

    @db.transaction(name="take")
    def take(conn: sqlite3.Connection, sku: str, qty: int) -> int:
        conn.execute("INSERT INTO moves VALUES (?, ?)", (sku, -qty))
        return qty

    @workflow.defn(name="restock_later")
    async def restock_later(sku: str) -> int:
        await workflow.sleep(timedelta(days=2))
        return await take(sku, 3)

    async with WorkflowEnvironment([restock_later], [take]) as env:
        assert await env.execute(restock_later, "lamp", id="r-1") == 3
    conn = sqlite3.connect(tmp_path / "shop.db")
    try:
        assert list(conn.execute("SELECT sku, qty FROM moves")) == [("lamp", -3)]
        ((key,),) = conn.execute("SELECT key FROM perdure_transactions")
    finally:
        conn.close()
    assert key.startswith("r-1/")  # (the run's idempotency key for the step)
    db.close()


async def test_a_fake_takes_the_arguments_without_the_connection(tmp_path: Path) -> None:
    db = shop(tmp_path / "shop.db")

    @db.transaction(name="take")
    def take(conn: sqlite3.Connection, sku: str, qty: int) -> int:
        raise AssertionError("the real one ran")

    @workflow.defn(name="order_once")
    async def order_once(sku: str) -> int:
        return await take(sku, 2)

    def fake(sku: str, qty: int) -> int:
        return qty * 10

    async with WorkflowEnvironment([order_once], [take], activity_overrides={"take": fake}) as env:
        assert await env.execute(order_once, "lamp", id="o-1") == 20
    db.close()
