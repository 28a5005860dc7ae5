"""The application database's side of ``perdure.transactions``, on SQLite:
a transaction function's writes and the record that they were made (a row
of the outputs table, keyed by the activity's idempotency key) committed
together, so that they are made once however often the activity runs.

A transaction here is ``BEGIN IMMEDIATE``: it holds the file's write lock
from its first statement, so a second attempt with the same key waits for
the first and then finds its record. While the function runs, the
connection refuses statements that would end the transaction (an
authorizer denies BEGIN, COMMIT and ROLLBACK, ``conn.commit()`` included):
its writes must commit with their record or not at all. Connections are
kept for reuse (``max_idle``), one attempt at a time each.

Takes the key and how to encode and decode the result from
``perdure.transactions``; imports only the standard library and the
store's pieces shared with PostgreSQL (``apptx_shared``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from perdure._store.apptx_shared import PRUNE_EVERY, outputs_sql, prune_failed, transaction_ended

__all__ = ["SqliteTransactions"]

T = TypeVar("T")


class SqliteTransactions:
    """Transactions on the SQLite file at ``path``, recorded in ``table``."""

    def __init__(
        self, path: str, *, table: str, keep: float | None, max_idle: int, timeout: float
    ) -> None:
        self.path = path
        self.table = table
        self.keep = keep
        self.max_idle = max_idle
        self.timeout = timeout
        self._sql = outputs_sql(table, mark="?", stamp_type="REAL", stamp_now="")
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._ready = False
        self._pruned_at = -PRUNE_EVERY

    def run(
        self,
        key: str | None,
        body: Callable[[sqlite3.Connection], T],
        encode: Callable[[T], str],
        decode: Callable[[str], T],
    ) -> T:
        """``body(conn)`` in a transaction committed with the record of ``key``,
        or the result recorded for ``key`` if an earlier attempt committed.
        Without a key (outside an activity): the transaction alone."""
        conn = self._take()
        try:
            value = self._transaction(conn, key, body, encode, decode)
        except BaseException:
            self._give(conn)
            raise
        self._prune(conn)
        self._give(conn)
        return value

    def _transaction(
        self,
        conn: sqlite3.Connection,
        key: str | None,
        body: Callable[[sqlite3.Connection], T],
        encode: Callable[[T], str],
        decode: Callable[[str], T],
    ) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if key is not None:
                row = conn.execute(self._sql.read, (key,)).fetchone()
                if row is not None:
                    conn.execute("COMMIT")
                    return decode(row[0])
            guard = _Guard()
            conn.set_authorizer(guard)
            try:
                value = body(conn)
            except BaseException as exc:
                if guard.denied is not None:
                    raise transaction_ended(guard.denied) from exc
                raise
            finally:
                conn.set_authorizer(None)
            if guard.denied is not None:  # (the function caught the refusal)
                raise transaction_ended(guard.denied)
            if key is not None:
                conn.execute(self._sql.insert, (key, encode(value), time.time()))
            conn.execute("COMMIT")
            return value
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        if not self._ready:
            try:
                for statement in self._sql.create:
                    conn.execute(statement)
            except BaseException:
                conn.close()
                raise
            self._ready = True
        return conn

    def _give(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not conn.in_transaction and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Delete the records older than ``keep``, at most once per PRUNE_EVERY
        seconds (a statement of its own, after the commit)."""
        if self.keep is None or time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = time.monotonic()
        try:
            conn.execute(self._sql.prune, (time.time() - self.keep,))
        except sqlite3.Error as exc:  # (the write lock busy past the timeout, say)
            prune_failed(self.table, exc)

    def close(self) -> None:
        """Close the connections kept for reuse."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _Guard:
    """The authorizer a transaction function's connection runs under: it
    denies the statements that would end (or nest) the transaction, and
    notes which, so that the error can say what happened."""

    __slots__ = ("denied",)

    def __init__(self) -> None:
        self.denied: str | None = None

    def __call__(self, action: int, arg1: Any, *_: Any) -> int:
        if action == sqlite3.SQLITE_TRANSACTION:
            self.denied = str(arg1 or "a transaction statement")
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
