"""Transactional activities on a SQLAlchemy engine (``AppDatabase(engine)``):
the function gets an ORM Session (an AsyncSession for an AsyncEngine) in
the transaction perdure commits with the activity's record, as DBOS's
``DBOS.sql_session``. Both backends (an ``Engine``), and an ``AsyncEngine``
on PostgreSQL (psycopg's async driver)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from e2e_helpers import LoseFirstOutcome, fast_worker
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import perdure
from perdure import RetryPolicy, workflow
from perdure.errors import ActivityError
from perdure.transactions import AppDatabase

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=4)

ran: list[str] = []


class Base(DeclarativeBase):
    pass


class Movement(Base):
    __tablename__ = "movements"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str]
    qty: Mapped[int]


def sqlalchemy_url(db_url: str, driver: str = "psycopg") -> str:
    return db_url.replace("postgresql://", f"postgresql+{driver}://", 1)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    ran.clear()
    made = sa.create_engine(sqlalchemy_url(db_url))
    Base.metadata.create_all(made)
    yield made
    made.dispose()


def movements(engine: sa.Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(sa.text("SELECT sku, qty FROM movements ORDER BY id"))
        ]


def records(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT key FROM perdure_transactions"))]


async def test_an_orm_session_commits_once_with_the_record(db_url: str, engine: sa.Engine) -> None:
    db = AppDatabase(engine)

    @db.transaction(name="take", retry=FAST_RETRY)
    def take(session: Session, sku: str, qty: int) -> int:
        ran.append(f"take {sku}")
        session.add(Movement(sku=sku, qty=-qty))
        session.commit()  # (flushes; the transaction is perdure's: it commits with the record)
        return int(session.scalar(sa.select(sa.func.count()).select_from(Movement)) or 0)

    @workflow.defn(name="orm_order")
    async def orm_order(sku: str) -> list[int]:
        return [await take(sku, 1), await take(sku, 2)]

    lose = LoseFirstOutcome()
    client = await perdure.Client.connect(db_url, interceptors=[lose])
    try:
        async with fast_worker(client, [orm_order], [take]):
            assert await client.execute(orm_order, "lamp", id="o-1", timeout=10) == [1, 2]
    finally:
        await client.close()
    assert lose.results == [1, 1, 2, 2]  # each second attempt answered from the record
    assert ran == ["take lamp", "take lamp"]
    assert movements(engine) == [("lamp", -1), ("lamp", -2)]
    assert len(records(engine)) == 2


async def test_a_failure_after_session_commit_leaves_nothing(
    client: perdure.Client, engine: sa.Engine
) -> None:
    db = AppDatabase(engine)

    @db.transaction(name="take", retry=FAST_RETRY)
    def take(session: Session, sku: str) -> str:
        ran.append("take")
        session.add(Movement(sku=sku, qty=-1))
        session.commit()
        if len(ran) == 1:
            raise RuntimeError("after session.commit(), before perdure's")
        return sku

    @workflow.defn(name="orm_retry")
    async def orm_retry(sku: str) -> str:
        return await take(sku)

    async with fast_worker(client, [orm_retry], [take]):
        assert await client.execute(orm_retry, "desk", id="o-2", timeout=10) == "desk"
    assert ran == ["take", "take"]
    assert movements(engine) == [("desk", -1)]


async def test_session_rollback_ends_the_transaction_and_is_refused(
    client: perdure.Client, engine: sa.Engine
) -> None:
    db = AppDatabase(engine)

    @db.transaction(name="undoes", retry=FAST_RETRY)
    def undoes(session: Session, sku: str) -> None:
        ran.append("undoes")
        session.add(Movement(sku=sku, qty=-1))
        session.flush()
        session.rollback()

    @workflow.defn(name="orm_undo")
    async def orm_undo(sku: str) -> str:
        try:
            await undoes(sku)
        except ActivityError as exc:
            return str(exc.cause)
        return "no error"

    async with fast_worker(client, [orm_undo], [undoes]):
        said = await client.execute(orm_undo, "desk", id="o-3", timeout=10)
    assert said.startswith("TransactionError: the transaction function tried to end its")
    assert ran == ["undoes"] and movements(engine) == [] and records(engine) == []


@pytest.fixture
async def async_engine(db_url: str) -> AsyncIterator[Any]:
    ran.clear()
    made = create_async_engine(sqlalchemy_url(db_url))
    async with made.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield made
    await made.dispose()


@pytest.mark.postgres_only
async def test_an_async_session_on_an_async_engine(db_url: str, async_engine: Any) -> None:
    db = AppDatabase(async_engine)

    @db.transaction(name="take", retry=FAST_RETRY)
    async def take(session: AsyncSession, sku: str, qty: int) -> int:
        ran.append(f"take {sku}")
        session.add(Movement(sku=sku, qty=-qty))
        await session.commit()
        return int(await session.scalar(sa.select(sa.func.count()).select_from(Movement)) or 0)

    @workflow.defn(name="async_orm_order")
    async def async_orm_order(sku: str) -> list[int]:
        return [await take(sku, 1), await take(sku, 2)]

    lose = LoseFirstOutcome()
    client = await perdure.Client.connect(db_url, interceptors=[lose])
    try:
        async with fast_worker(client, [async_orm_order], [take]):
            assert await client.execute(async_orm_order, "lamp", id="o-4", timeout=10) == [1, 2]
    finally:
        await client.close()
    assert lose.results == [1, 1, 2, 2]
    assert ran == ["take lamp", "take lamp"]
    async with async_engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT sku, qty FROM movements ORDER BY id"))).all()
        (count,) = (await conn.execute(sa.text("SELECT count(*) FROM perdure_transactions"))).one()
    assert [tuple(r) for r in rows] == [("lamp", -1), ("lamp", -2)] and count == 2
    assert await take("lamp", 3) == 3  # outside an activity: a plain transaction


def test_functions_and_engines_must_match(engine: sa.Engine) -> None:
    db = AppDatabase(engine)

    async def coroutine(session: AsyncSession) -> None: ...

    with pytest.raises(TypeError, match="is async def, but the database is an Engine"):
        db.transaction(coroutine)
    with pytest.raises(ValueError, match="isolation_level is the engine's"):
        AppDatabase(engine, isolation_level="serializable")
    with pytest.raises(TypeError, match="give a SQLAlchemy Engine or AsyncEngine"):
        AppDatabase(sa.MetaData())


@pytest.mark.postgres_only
def test_a_plain_def_on_an_async_engine_is_refused(async_engine: Any) -> None:
    def plain(session: Session) -> None: ...

    with pytest.raises(TypeError, match="is a plain def, but the database is an AsyncEngine"):
        AppDatabase(async_engine).transaction(plain)
