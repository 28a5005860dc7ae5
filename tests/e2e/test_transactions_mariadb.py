"""Transactional activities on a database perdure does not store in:
MariaDB, through a SQLAlchemy engine (``mysql+pymysql``), perdure's own
store a SQLite file. The records' table is made by SQLAlchemy's DDL there
too; an attempt after one that committed is answered from the record.

The server is ``$PERDURE_TEST_MARIADB`` (default
``mysql+pymysql://root@127.0.0.1:3306/test``); each test makes a database
of its own and drops it. Skipped when unreachable, except under
``CI=true``, where it fails."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from e2e_helpers import LoseFirstOutcome, fast_worker
from sqlalchemy.orm import Session

import perdure
from perdure import RetryPolicy, workflow
from perdure.transactions import AppDatabase

SERVER = os.environ.get("PERDURE_TEST_MARIADB") or "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture
def maria() -> Iterator[sa.Engine]:
    server = sa.create_engine(SERVER)
    try:
        with server.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        server.dispose()
        message = f"MariaDB at {SERVER} is unreachable (set PERDURE_TEST_MARIADB): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    name = f"perdure_test_{secrets.token_hex(5)}"
    with server.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(server.url.set(database=name))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE moves (sku VARCHAR(20), qty INT)"))
        yield engine
    finally:
        engine.dispose()
        with server.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}"))
        server.dispose()


async def test_a_take_on_mariadb_commits_once(maria: sa.Engine, tmp_path: Path) -> None:
    db = AppDatabase(maria)
    ran: list[int] = []

    @db.transaction(name="take", retry=RetryPolicy(initial_interval=timedelta(milliseconds=10)))
    def take(session: Session, sku: str, qty: int) -> int:
        ran.append(qty)
        session.execute(sa.text("INSERT INTO moves VALUES (:sku, :qty)"), {"sku": sku, "qty": -qty})
        session.commit()
        return qty

    @workflow.defn(name="maria_order")
    async def maria_order(sku: str) -> list[int]:
        return [await take(sku, 1), await take(sku, 2)]

    client = await perdure.Client.connect(
        f"sqlite:///{tmp_path / 'perdure.db'}", interceptors=[LoseFirstOutcome()]
    )
    try:
        async with fast_worker(client, [maria_order], [take]):
            assert await client.execute(maria_order, "lamp", id="m-1", timeout=10) == [1, 2]
    finally:
        await client.close()
    assert ran == [1, 2]  # each second attempt answered from the record
    with maria.connect() as conn:
        assert list(conn.execute(sa.text("SELECT sku, qty FROM moves"))) == [
            ("lamp", -1),
            ("lamp", -2),
        ]
        (count,) = conn.execute(sa.text("SELECT count(*) FROM perdure_transactions")).one()
    assert count == 2
