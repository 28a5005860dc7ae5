"""Prepared statements for the PostgreSQL store's write transactions.

A write transaction travels as one simple-protocol query ("BEGIN; UPDATE
...; INSERT ...; COMMIT", see ``postgres_tx._BatchedTx``), which the server
parses and plans anew every time: for an inline workflow step, about as much
CPU as everything else the server does for it
(``benchmarks/pg_prepare_probe.py``). So each connection prepares the
statements it keeps sending (``PREPARE perdure_3 AS ...``), and the batch
then names them (``EXECUTE perdure_3(...)``, the values still bound by the
client). Imports psycopg only.

- A statement is prepared the second time one connection sends it, at the
  start of that connection's next write transaction, outside any
  transaction: a failed ``PREPARE`` inside one would abort it, and one that
  succeeded would survive a rollback, leaving the bookkeeping wrong.
- A statement the server will not prepare (it cannot infer a parameter's
  type, say) is sent as text from then on, by every connection.
- Claims and timer firings are prepared too: their locking subquery runs
  once whatever the plan (``PostgresStore.picked``), so a generic plan made
  without the ``LIMIT``'s value cannot lock more rows than asked for.
- At most ``MAX_PER_CONNECTION`` statements per connection (multi-row
  inserts make one text per row count); the rest are sent as text.
- The bookkeeping lives with the connection: a connection the pool drops
  takes its statements with it, on both sides.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import psycopg

log = logging.getLogger("perdure.store")

PREPARE_AFTER = 2  # the use (on one connection) that gets a statement prepared
MAX_PER_CONNECTION = 200
_MAX_COUNTED = 2000  # texts counted per connection before the counts start over


@functools.lru_cache(maxsize=1024)
def _numbered(sql: str) -> tuple[str, int]:
    """``sql`` with psycopg's ``%s`` placeholders as ``$1, $2, ...``, and
    their number (the shared SQL has no literal ``%``)."""
    parts = sql.split("%s")
    out = [parts[0]]
    for number, part in enumerate(parts[1:], start=1):
        out.append(f"${number}{part}")
    return "".join(out), len(parts) - 1


class Statements:
    """One connection's prepared statements."""

    def __init__(self, refused: set[str]) -> None:
        self.names: dict[str, str] = {}  # SQL text -> prepared statement name
        self._calls: dict[str, str] = {}  # SQL text -> its "EXECUTE name(%s, ...)"
        self.pending: list[str] = []  # to prepare before the next transaction
        self._uses: dict[str, int] = {}
        self._refused = refused  # shared by the store's connections

    def text(self, sql: str) -> str:
        """What to send for ``sql``: ``EXECUTE name(%s, ...)`` once prepared."""
        call = self._calls.get(sql)
        if call is not None:
            return call
        uses = self._uses.get(sql, 0) + 1
        if len(self._uses) >= _MAX_COUNTED and uses == 1:
            self._uses.clear()
        self._uses[sql] = uses
        if (
            uses == PREPARE_AFTER
            and sql not in self._refused
            and len(self.names) + len(self.pending) < MAX_PER_CONNECTION
        ):
            self.pending.append(sql)
        return sql

    async def prepare_pending(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """PREPARE what is pending, on an idle connection (autocommit). A
        statement the server refuses is sent as text from then on; a broken
        connection raises (nothing was sent for the transaction yet)."""
        pending, self.pending = self.pending, []
        for sql in pending:
            name = f"perdure_{len(self.names)}"
            numbered, _ = _numbered(sql)
            try:
                await conn.execute(f"PREPARE {name} AS {numbered}")
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                log.info("PostgreSQL will not prepare a statement; sending it as text: %s", exc)
                self._refused.add(sql)
                continue
            self.names[sql] = name
            _, count = _numbered(sql)
            self._calls[sql] = (
                f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}"
            )
