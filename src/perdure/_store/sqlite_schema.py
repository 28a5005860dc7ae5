"""Setting up a SQLite file for perdure: the store's connection, WAL mode
and the migrations.

All of it runs once, on the store's thread, when ``SqliteStore.open`` makes
its connection. Imports the errors and the standard library.
"""

from __future__ import annotations

import os
import sqlite3
import time
from importlib import resources
from typing import Any

from perdure.errors import SchemaVersionError, StoreError


def migrations(dialect: str = "sqlite") -> list[tuple[int, str]]:
    """The ordered (version, sql) list shipped in the package for a dialect."""
    folder = resources.files("perdure._store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)


def statements(sql: str) -> list[str]:
    """Split a migration into statements (they contain no literal semicolons,
    but a trigger's body holds statements of its own: SQLite's own parser
    says where each statement ends)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    found: list[str] = []
    pending = ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip().removesuffix(";").strip())
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"a migration ends inside a statement: {pending.strip()[:200]!r}")
    return found


def switch_to_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """``PRAGMA journal_mode = WAL``, waiting up to ``busy_timeout`` for the
    exclusive lock it needs (SQLite does not wait for that one by itself):
    two processes may open a new file at once, or one may be writing to a
    file that another process created in rollback-journal mode."""
    deadline = time.monotonic() + busy_timeout
    delay = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)  # on the store's thread, during open() only
        delay = min(delay * 2, 0.1)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Apply the pending migrations, all in one transaction. BEGIN IMMEDIATE
    is the lock: two processes opening a new file at once serialise here,
    and the second sees the version the first one reached. One transaction
    for all of them: an upgrade that fails or is interrupted part-way leaves
    the file at the version it had, still usable by the perdure that wrote
    it, and a new file costs one commit, not one per migration."""
    known = migrations()
    newest = known[-1][0] if known else 0
    # An up-to-date file (every open but the first after an upgrade) is one
    # read, with no write lock: a version only grows.
    if _version(conn) == newest:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS perdure_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM perdure_schema").fetchone()
        if row is None:
            conn.execute("INSERT INTO perdure_schema (version) VALUES (0)")
        start = current = row[0] if row else 0
        if current > newest:
            raise SchemaVersionError(
                f"database {path!r} has schema version {current}, but this "
                f"perdure knows versions up to {newest}: it was written by a newer "
                f"perdure; upgrade perdure"
            )
        for version, sql in known:
            if version > current:
                _apply(conn, version, sql, start, path)
                current = version
        conn.execute("UPDATE perdure_schema SET version = ?", (current,))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _apply(conn: sqlite3.Connection, version: int, sql: str, start: int, path: str) -> None:
    """One migration's statements; its failure says which migration failed
    and that the file stays at the version it had."""
    try:
        for statement in statements(sql):
            conn.execute(statement)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"cannot prepare SQLite database {path!r}: migration {version} failed, so the "
            f"upgrade was rolled back and the file stays at schema version {start}: {exc}"
        ) from exc


def _version(conn: sqlite3.Connection) -> int | None:
    """The schema version, read without a write lock; None before the first migration."""
    try:
        row = conn.execute("SELECT version FROM perdure_schema").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return None
    return int(row[0]) if row else None


def busy_pragma(busy_timeout: float) -> str:
    """How long SQLite itself waits for a lock, in seconds, as its pragma."""
    return f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def connect(path: str, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    """The store's connection to ``path``, in WAL mode and migrated to the
    current schema; StoreError says why it could not be."""
    if path != ":memory:":
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise StoreError(
                f"cannot open SQLite database {path!r}: folder {folder!r} does not exist"
            )
    try:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout,
            cached_statements=512,  # every statement the store uses stays prepared
        )
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
    try:
        # SQLite's own LOWER folds ASCII letters only: the id search
        # (LOWER(workflow_id) LIKE LOWER(?)) would miss "ÉTÉ" for "été".
        # Python's folds every letter, as PostgreSQL's does.
        conn.create_function("lower", 1, _lower, deterministic=True)
        conn.execute(busy_pragma(busy_timeout))
        if path != ":memory:":
            # WAL is persistent: only a new file needs the switch, which takes an
            # exclusive lock that ignores busy_timeout ("database is locked" when
            # another process is mid-transaction).
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                mode = switch_to_wal(conn, busy_timeout)
            if mode.lower() != "wal":
                raise StoreError(f"could not switch {path!r} to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # Statement and savepoint journals in memory, not in temporary
        # files: every page a savepoint (or a multi-row INSERT) touches is
        # journaled, and SQLite spills that journal to a file past 64 KiB,
        # one write system call per page (25 per workflow step when every
        # body of a group commit had its savepoint; see SqliteStore._flush).
        # Perdure keeps no temporary tables of its own.
        conn.execute("PRAGMA temp_store = MEMORY")
    except BaseException as exc:
        conn.close()  # never leave the file open behind a failed open()
        if isinstance(exc, sqlite3.DatabaseError):
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
        raise
    try:
        migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"cannot prepare SQLite database {path!r}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn
