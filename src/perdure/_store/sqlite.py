"""The SQLite backend: a connection, its thread, and its migrations.

All of the store's logic lives in :class:`~perdure._store.sqlstore.SqlStore`;
this module only supplies transactions. One connection per Store, owned by a
dedicated thread that runs its own small event loop: store coroutines are
handed to that loop, so the caller's asyncio loop never blocks on SQLite (not
on an fsync, not on another process holding the write lock). WAL mode with
``synchronous=FULL``: a commit is durable when it returns. Several processes
may share the file: writers take the lock with ``BEGIN IMMEDIATE`` and wait up
to ``busy_timeout``. Imports the SQL layer, the history model and errors.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from importlib import resources
from typing import Any, TypeVar

from perdure._store.sqlstore import Body, SqlStore
from perdure.errors import SchemaVersionError, StoreError

T = TypeVar("T")


def migrations(dialect: str = "sqlite") -> list[tuple[int, str]]:
    """The ordered (version, sql) list shipped in the package for a dialect."""
    folder = resources.files("perdure._store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)


def statements(sql: str) -> list[str]:
    """Split a migration into statements (they contain no literal semicolons)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class _SqliteTx:
    """The Tx protocol over a sqlite3 connection (used only on the store's thread)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.executemany(sql, rows)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]


class SqliteStore(SqlStore):
    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] | None = None,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
    ) -> None:
        super().__init__(clock or time.time)
        self.path = path
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Body[Any], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="perdure-sqlite", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------ plumbing

    async def _on_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise StoreError(f"the SQLite store {self.path!r} is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    async def _transaction(self, body: Body[T], begin: str) -> T:
        conn = self._conn
        if conn is None:
            raise StoreError(f"the SQLite store {self.path!r} is closed")
        try:
            conn.execute(begin)
            try:
                result = await body(_SqliteTx(conn))
                conn.execute("COMMIT")
            except BaseException:
                # SQLITE_FULL and some I/O errors roll back by themselves; a failed
                # COMMIT (SQLITE_BUSY) leaves the transaction open: close it either way.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite error on {self.path!r}: {exc}") from exc

    async def _write(self, body: Body[T]) -> T:
        return await self._on_thread(self._queue_write(body))

    # -- group commit --------------------------------------------------------
    #
    # Every write (a turn, a claim, an activity completion, a signal) becomes a
    # body queued on the store's thread. One flush runs every body queued so far
    # in ONE transaction, each inside its own SAVEPOINT, and commits once: many
    # workflows' turns share one fsync. A body that raises (a fenced turn, a
    # duplicate id) rolls back to its savepoint only; its caller gets its error
    # and the others commit. Callers are released only after the COMMIT
    # returned, so nothing is acknowledged before it is durable.

    async def _queue_write(self, body: Body[T]) -> T:
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append((body, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # call_soon: bodies submitted meanwhile join this batch.
            self._loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        self._loop.create_task(self._flush(batch))

    async def _flush(self, batch: list[tuple[Body[Any], asyncio.Future[Any]]]) -> None:
        conn = self._conn
        if conn is None:
            for _, future in batch:
                future.set_exception(StoreError(f"the SQLite store {self.path!r} is closed"))
            return
        tx = _SqliteTx(conn)
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        single = len(batch) == 1
        try:
            # BEGIN IMMEDIATE takes the write lock up front, so two processes
            # never deadlock upgrading read locks to write locks.
            conn.execute("BEGIN IMMEDIATE")
            for index, (body, future) in enumerate(batch):
                if not single:
                    conn.execute(f"SAVEPOINT w{index}")
                try:
                    value = await body(tx)
                except sqlite3.Error:
                    raise  # the database itself failed: the whole batch fails
                except Exception as exc:
                    if single:
                        raise
                    conn.execute(f"ROLLBACK TO w{index}")
                    conn.execute(f"RELEASE w{index}")
                    outcomes.append((future, False, exc))
                    continue
                if not single:
                    conn.execute(f"RELEASE w{index}")
                outcomes.append((future, True, value))
            conn.execute("COMMIT")
        except BaseException as exc:
            # SQLITE_FULL and some I/O errors roll back by themselves; a failed
            # COMMIT (SQLITE_BUSY) leaves the transaction open: close it either way.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error: BaseException = exc
            if isinstance(exc, sqlite3.Error):
                error = StoreError(f"SQLite error on {self.path!r}: {exc}")
                error.__cause__ = exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for future, ok, value in outcomes:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _read(self, body: Body[T]) -> T:
        return await self._on_thread(self._transaction(body, "BEGIN"))

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        await self._on_thread(self._open())

    async def _open(self) -> None:
        if self.path != ":memory:":
            folder = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(folder):
                raise StoreError(
                    f"cannot open SQLite database {self.path!r}: folder {folder!r} does not exist"
                )
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
            )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if self.path != ":memory:":
                # WAL is persistent: only a new file needs the switch, which takes an
                # exclusive lock that ignores busy_timeout ("database is locked" when
                # another process is mid-transaction).
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"could not switch {self.path!r} to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException as exc:
            conn.close()  # never leave the file open behind a failed open()
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
            raise
        try:
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"cannot prepare SQLite database {self.path!r}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply pending migrations, one transaction each. BEGIN IMMEDIATE is the
        lock: two processes opening a new file at once serialise here, and the
        second sees the version the first one reached."""
        known = migrations()
        newest = known[-1][0] if known else 0
        for version, sql in [(0, ""), *known]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS perdure_schema (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM perdure_schema").fetchone()
                if row is None:
                    conn.execute("INSERT INTO perdure_schema (version) VALUES (0)")
                current = row[0] if row else 0
                if current > newest:
                    raise SchemaVersionError(
                        f"database {self.path!r} has schema version {current}, but this "
                        f"perdure knows versions up to {newest}: it was written by a newer "
                        f"perdure; upgrade perdure"
                    )
                if version > current:
                    for statement in statements(sql):
                        conn.execute(statement)
                    conn.execute("UPDATE perdure_schema SET version = ?", (version,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    async def schema_version(self) -> int:
        async def query(tx: Any) -> int:
            row = await tx.one("SELECT version FROM perdure_schema")
            return int(row[0]) if row else 0

        return await self._read(query)

    async def close(self) -> None:
        if self._loop.is_closed():
            return

        async def shut() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        await self._on_thread(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 5)
        self._loop.close()
