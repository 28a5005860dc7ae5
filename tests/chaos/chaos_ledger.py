"""The chaos driver's side of the ledgers (``chaos_workloads.ledger``: posts
made by transactional activities): where their table lives, made before the
workers start, and each ledger checked once the work has drained, from its
table, its history and the post functions' side file (``chaos_checks.check_ledger``).
Imports perdure (client side), sqlite3 and, on PostgreSQL, psycopg.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import chaos_checks as checks
import chaos_workloads as workloads

import perdure
from perdure import _history as h


class Ledgers:
    """The ledgers' database: a file of its own on SQLite (in ``side``), the
    chaos database itself on PostgreSQL (beside perdure's tables)."""

    def __init__(self, url: str, side: Path) -> None:
        self.side = side
        self.url = f"sqlite:///{side / 'ledger.db'}" if url.startswith("sqlite:") else url
        self.posts = 0  # rows checked, each written once
        self.answered = 0  # of those, answered by a later attempt from the record
        self.rolled_back = 0  # runs of a post's function rolled back

    def create(self) -> None:
        self._sql(workloads.LEDGER_TABLE)

    def check(self, client: perdure.SyncClient, wid: str, run_id: str, args: Any) -> None:
        """One ledger, ended: its posts each written once (see check_ledger).
        (Its posts log no executions: an attempt that finds an earlier
        one's record does not run the function. The table is the check.)"""
        handle = client.get_handle(wid, run_id)
        events = [h.event_from_dict(e) for e in handle.history()]
        rows = self._sql("SELECT i, entry FROM ledger_entries WHERE tag = ?", args[0])
        posts = [
            json.loads(line)
            for path in sorted(self.side.glob("post-*.log"))
            for line in path.read_text().splitlines()
        ]
        answered, rolled_back = checks.check_ledger(
            run_id, args, handle.result(timeout=5), rows, posts, events
        )
        self.posts += len(rows)
        self.answered += answered
        self.rolled_back += rolled_back

    def _sql(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement on the ledgers' database (``?`` for its parameters)."""
        if self.url.startswith("sqlite:"):
            conn = sqlite3.connect(self.url[len("sqlite:///") :])
            try:
                with conn:  # (commits)
                    return list(conn.execute(sql, params))
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(sql.replace("?", "%s"), params)
            return list(cur.fetchall()) if cur.description else []
