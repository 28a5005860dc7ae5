"""A fake card processor that deduplicates charges by idempotency key.

Real providers do the same (Stripe's ``Idempotency-Key`` header, Adyen's
``idempotencyKey``): a request that repeats a key gets the first answer back and
moves no money. Here the provider is a SQLite file, so every process (the story,
each worker) sees the same ledger, and the check-and-insert is one transaction.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    idempotency_key TEXT PRIMARY KEY,
    charge_id       TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    cents           INTEGER NOT NULL,
    charged_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL,
    received_at     REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Charge:
    idempotency_key: str
    charge_id: str
    order_id: str
    cents: int


class PaymentProvider:
    """``charge()`` moves money at most once per idempotency key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            db.executescript(_SCHEMA)
            yield db

    def charge(self, idempotency_key: str, order_id: str, cents: int) -> str:
        """Charge ``cents`` for ``order_id`` unless this key was charged before;
        either way, return the charge id of the one charge made for the key."""
        with self._db() as db:
            # BEGIN IMMEDIATE: two requests with the same key (a retry racing a
            # slow first attempt) are serialised, and only the first inserts.
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO requests (idempotency_key, received_at) VALUES (?, ?)",
                (idempotency_key, time.time()),
            )
            db.execute(
                "INSERT INTO charges VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (idempotency_key, f"ch_{uuid.uuid4().hex[:12]}", order_id, cents, time.time()),
            )
            (charge_id,) = db.execute(
                "SELECT charge_id FROM charges WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            db.execute("COMMIT")
        return str(charge_id)

    def charges(self, order_id: str | None = None) -> list[Charge]:
        """The money actually moved (all orders, or one)."""
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute(
                "SELECT idempotency_key, charge_id, order_id, cents FROM charges"
                " ORDER BY charged_at"
            ).fetchall()
        return [Charge(*row) for row in rows if order_id in (None, row[2])]

    def requests(self, idempotency_key: str) -> int:
        """How many charge requests arrived with this key (retries included)."""
        if not self.path.exists():
            return 0
        with self._db() as db:
            (n,) = db.execute(
                "SELECT count(*) FROM requests WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return int(n)
