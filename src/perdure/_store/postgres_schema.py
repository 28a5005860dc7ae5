"""Setting up a PostgreSQL database for perdure: migrations, the wake-up
channel's name, and the offset of this host's clock from the server's.

All of it runs once, on the connection ``PostgresStore.open`` makes before its
pool. Imports psycopg, the errors and the standard library.
"""

from __future__ import annotations

import contextlib
import time
from importlib import resources
from typing import Any

import psycopg

from perdure.errors import SchemaVersionError, StoreError

# The session-level advisory lock that serialises migrations (b"perdure\0" as a
# bigint: outside the int4 range of the hashtext() keys that lock workflow ids).
MIGRATION_LOCK = 0x7065726475726500

Conn = psycopg.AsyncConnection[Any]


def migrations() -> list[tuple[int, str]]:
    """The ordered (version, sql) list shipped in the package."""
    folder = resources.files("perdure._store") / "migrations" / "postgres"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)


async def migrate(conn: Conn, where: str) -> int:
    """Apply the pending migrations, all in one transaction, and return the
    version reached. ``pg_advisory_lock`` is the lock: processes opening a
    new database at once serialise here, and each later one sees the version
    the first one reached. A schema newer than this perdure knows is refused,
    untouched. One transaction for all of them (PostgreSQL's DDL is
    transactional): an upgrade that fails or is interrupted part-way leaves
    the database at the version it had, still usable by the perdure that
    wrote it, and a new database costs one commit, not one per migration."""
    known = migrations()
    newest = known[-1][0] if known else 0
    # An up-to-date database (every open but the first after an upgrade) is
    # one query, and takes no lock: a version only grows, so a version read
    # as the newest stays the newest. Any other answer goes the long way,
    # under the lock.
    if await _version(conn) == newest:
        return newest
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await conn.execute("BEGIN")
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS perdure_schema (version INTEGER NOT NULL)"
            )
            row = await (await conn.execute("SELECT version FROM perdure_schema")).fetchone()
            if row is None:
                await conn.execute("INSERT INTO perdure_schema (version) VALUES (0)")
            start = current = int(row[0]) if row else 0
            if current > newest:
                raise SchemaVersionError(
                    f"database {where} has schema version {current}, but this perdure "
                    f"knows versions up to {newest}: it was written by a newer perdure; "
                    f"upgrade perdure"
                )
            for version, script in known:
                if version > current:
                    await _apply(conn, version, script, start, where)
                    current = version
            await conn.execute("UPDATE perdure_schema SET version = %s", (current,))
        except BaseException:
            with contextlib.suppress(psycopg.Error):  # a dead connection rolled back already
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        return current
    finally:
        with contextlib.suppress(psycopg.Error):  # a dead session released it already
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


async def _apply(conn: Conn, version: int, script: str, start: int, where: str) -> None:
    """One migration's script; its failure says which migration failed and
    that the database stays at the version it had."""
    try:
        await conn.execute(script)  # no parameters: simple protocol, many statements
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())
        raise StoreError(
            f"cannot prepare the PostgreSQL database ({where}): migration {version} "
            f"failed, so the upgrade was rolled back and the database stays at schema "
            f"version {start}: {text}"
        ) from exc


async def _version(conn: Conn) -> int | None:
    """The schema version, read without a lock; None before the first migration."""
    try:
        row = await (await conn.execute("SELECT version FROM perdure_schema")).fetchone()
    except psycopg.errors.UndefinedTable:
        return None  # (autocommit: the failed statement left no transaction behind)
    return int(row[0]) if row else None


async def channel_name(conn: Conn) -> str:
    """The NOTIFY channel: ``perdure``, or ``perdure.<schema>`` when the tables
    live in another schema than ``public`` (a ``search_path`` in the URL), so
    that two deployments sharing a database do not wake each other."""
    row = await (await conn.execute("SELECT current_schema()")).fetchone()
    schema = row[0] if row else None
    return "perdure" if schema in (None, "public") else f"perdure.{schema}"[:63]


async def clock_offset(conn: Conn, samples: int = 3) -> float:
    """Seconds to add to this host's ``time.time()`` to get the server's clock,
    from the sample with the shortest round trip. Every worker on every machine
    then shares the server's time base for leases, timers and visibility."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        before = time.time()
        row = await (
            await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
        ).fetchone()
        after = time.time()
        assert row is not None
        rtt, offset = after - before, float(row[0]) - (before + after) / 2
        if best is None or rtt < best[0]:
            best = (rtt, offset)
    assert best is not None
    return best[1]
