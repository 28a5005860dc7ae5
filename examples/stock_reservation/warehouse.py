"""The warehouse's workflow and activities: what you would copy into your
project. ``perdure worker examples.stock_reservation.warehouse`` serves it.

An order reserves each of its lines from the stock table of the
warehouse's own database (``$WAREHOUSE_DB``, a SQLite URL), then books a
courier. ``reserve`` is a transactional activity: its UPDATE and its
movement row commit in one transaction with perdure's record of the
activity's idempotency key, so a second attempt after a crash returns the
first's result and writes nothing. ``reserve_plainly`` is the same SQL in
an ordinary activity, for contrast: it runs at least once, and a crash
between its commit and the record of its completion makes it run twice.
"""

from __future__ import annotations

import os
import sqlite3

from perdure import activity, workflow
from perdure.transactions import AppDatabase

warehouse = AppDatabase(os.environ.get("WAREHOUSE_DB", "sqlite:///warehouse.db"))


def _take(conn: sqlite3.Connection, order: str, sku: str, qty: int) -> int:
    """Take ``qty`` of ``sku`` off the shelf for ``order``; what is left."""
    (left,) = conn.execute("SELECT qty FROM stock WHERE sku = ?", (sku,)).fetchone()
    if left < qty:
        raise ValueError(f"only {left} of {sku} left, {order} wants {qty}")
    conn.execute("UPDATE stock SET qty = qty - ? WHERE sku = ?", (qty, sku))
    conn.execute("INSERT INTO movements (order_id, sku, qty) VALUES (?, ?, ?)", (order, sku, -qty))
    return int(left - qty)


@warehouse.transaction
def reserve(conn: sqlite3.Connection, order: str, sku: str, qty: int) -> int:
    return _take(conn, order, sku, qty)


@activity.defn
def reserve_plainly(order: str, sku: str, qty: int) -> int:
    with sqlite3.connect(warehouse.url.removeprefix("sqlite:///")) as conn:
        return _take(conn, order, sku, qty)


@activity.defn
async def book_courier(order: str) -> str:
    return f"courier-{order}"


@workflow.defn
async def fulfil(order: str, lines: dict[str, int], transactional: bool = True) -> str:
    take = reserve if transactional else reserve_plainly
    left = {sku: await take(order, sku, qty) for sku, qty in lines.items()}
    courier = await book_courier(order)
    return f"{order}: reserved {lines}, left {left}, {courier}"


def create_tables(path: str) -> None:
    """The warehouse's tables, stocked."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL)")
        conn.execute("CREATE TABLE movements (order_id TEXT, sku TEXT, qty INTEGER)")
        conn.executemany("INSERT INTO stock VALUES (?, ?)", [("lamp", 5), ("desk", 2)])
