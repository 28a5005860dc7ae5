"""The application database's side of ``perdure.transactions`` through a
SQLAlchemy engine of the application's (``AppDatabase(engine)``): any
database SQLAlchemy speaks. The function gets an ORM ``Session`` (an
``AsyncSession`` for an ``AsyncEngine``) on a connection whose transaction
perdure began and commits with the record of the activity's idempotency
key, as DBOS's ``DBOS.sql_session``.

The session joins that transaction in SQLAlchemy's ``rollback_only`` mode:
``session.commit()`` in the function flushes but does not commit it (the
writes still commit with their record, or not at all), while
``session.rollback()`` does roll it back, which is refused as ending the
transaction. The records' table is made with SQLAlchemy's DDL;
``committed_at`` is seconds since the epoch on SQLite, as the sqlite3
backend's (``apptx``), and a timestamp with time zone elsewhere, as the
psycopg backend's (``apptx_postgres``), so that both kinds of AppDatabase
may share one table. Connections are the engine's pool's. Imports
SQLAlchemy and the pieces shared with the other backends.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from perdure._store.apptx_shared import PRUNE_EVERY, check_table, prune_failed, transaction_ended

__all__ = ["SqlAlchemyTransactions", "is_engine"]

T = TypeVar("T")


def is_engine(value: object) -> bool:
    """Whether ``value`` is a SQLAlchemy ``Engine`` or ``AsyncEngine``."""
    return isinstance(value, (sa.Engine, AsyncEngine))


class SqlAlchemyTransactions:
    """Transactions on ``engine``'s database, recorded in ``table``."""

    def __init__(self, engine: sa.Engine | AsyncEngine, *, table: str, keep: float | None) -> None:
        check_table(table)
        self.engine = engine
        self.is_async = isinstance(engine, AsyncEngine)
        self.table = table
        self.keep = keep
        self.epoch_seconds = engine.dialect.name == "sqlite"
        schema, _, name = table.rpartition(".")
        stamp: Any = sa.Float() if self.epoch_seconds else sa.DateTime(timezone=True)
        self.outputs = sa.Table(
            name,
            sa.MetaData(),
            sa.Column("key", sa.String(255), primary_key=True),
            sa.Column("result", sa.Text(), nullable=False),
            sa.Column("committed_at", stamp, nullable=False, index=True),
            schema=schema or None,
        )
        self._read = sa.select(self.outputs.c.result).where(
            self.outputs.c.key == sa.bindparam("key")
        )
        self._ready = False
        self._pruned_at = -PRUNE_EVERY

    def _now(self, ago: float = 0.0) -> float | datetime:
        if self.epoch_seconds:
            return time.time() - ago
        return datetime.now(UTC) - timedelta(seconds=ago)

    def _record(self, key: str, text: str) -> sa.Insert:
        return self.outputs.insert().values(key=key, result=text, committed_at=self._now())

    def _prune_statement(self) -> sa.Delete | None:
        """The deletion of old records, when one is due (at most once per
        PRUNE_EVERY seconds; never with keep=None)."""
        if self.keep is None or time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return None
        self._pruned_at = time.monotonic()
        return self.outputs.delete().where(self.outputs.c.committed_at < self._now(self.keep))

    def _create(self, engine: sa.Engine) -> None:
        """The records' table, if missing. (A second try sees the table that
        another process made at the same moment, and does nothing.)"""
        for tries in (1, 2):
            try:
                with engine.begin() as conn:
                    self.outputs.create(conn, checkfirst=True)
                break
            except sa_exc.DBAPIError:
                if tries == 2:
                    raise
        self._ready = True

    async def _create_async(self, engine: AsyncEngine) -> None:
        for tries in (1, 2):
            try:
                async with engine.begin() as conn:
                    await conn.run_sync(self.outputs.create, checkfirst=True)
                break
            except sa_exc.DBAPIError:
                if tries == 2:
                    raise
        self._ready = True

    # ------------------------------------------------------------ Engine

    def run(
        self,
        key: str | None,
        body: Callable[[Session], T],
        encode: Callable[[T], str],
        decode: Callable[[str], T],
    ) -> T:
        """``body(session)`` in a transaction committed with the record of
        ``key``, or the result recorded for ``key`` by an attempt that
        committed. Without a key (outside its activity): the transaction alone."""
        engine = self.engine
        assert isinstance(engine, sa.Engine)
        if not self._ready:
            self._create(engine)
        try:
            with engine.connect() as conn, conn.begin():
                if key is not None:
                    row = conn.execute(self._read, {"key": key}).first()
                    if row is not None:
                        return decode(row[0])
                with Session(bind=conn, join_transaction_mode="rollback_only") as session:
                    value = body(session)
                    if conn.in_transaction():
                        session.flush()
                if not conn.in_transaction():
                    raise transaction_ended("session.rollback()")
                if key is not None:
                    conn.execute(self._record(key, encode(value)))
        except sa_exc.IntegrityError:
            if key is None:
                raise
            with engine.connect() as conn:
                row = conn.execute(self._read, {"key": key}).first()
            if row is None:
                raise
            return decode(row[0])
        prune = self._prune_statement()
        if prune is not None:
            try:
                with engine.begin() as conn:
                    conn.execute(prune)
            except sa_exc.DBAPIError as exc:
                prune_failed(self.table, exc)
        return value

    # ------------------------------------------------------------ AsyncEngine

    async def run_async(
        self,
        key: str | None,
        body: Callable[[AsyncSession], Awaitable[T]],
        encode: Callable[[T], str],
        decode: Callable[[str], T],
    ) -> T:
        """``await body(session)``, as ``run`` does for a plain ``def``."""
        engine = self.engine
        assert isinstance(engine, AsyncEngine)
        if not self._ready:
            await self._create_async(engine)
        try:
            async with engine.connect() as conn, conn.begin():
                if key is not None:
                    row = (await conn.execute(self._read, {"key": key})).first()
                    if row is not None:
                        return decode(row[0])
                value = await self._body_async(conn, body)
                if key is not None:
                    await conn.execute(self._record(key, encode(value)))
        except sa_exc.IntegrityError:
            if key is None:
                raise
            async with engine.connect() as conn:
                row = (await conn.execute(self._read, {"key": key})).first()
            if row is None:
                raise
            return decode(row[0])
        prune = self._prune_statement()
        if prune is not None:
            try:
                async with engine.begin() as conn:
                    await conn.execute(prune)
            except sa_exc.DBAPIError as exc:
                prune_failed(self.table, exc)
        return value

    @staticmethod
    async def _body_async(conn: AsyncConnection, body: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with AsyncSession(bind=conn, join_transaction_mode="rollback_only") as session:
            value = await body(session)
            if conn.in_transaction():
                await session.flush()
        if not conn.in_transaction():
            raise transaction_ended("session.rollback()")
        return value

    def close(self) -> None:
        """Nothing to close: the connections are the engine's (its owner
        disposes of it)."""
