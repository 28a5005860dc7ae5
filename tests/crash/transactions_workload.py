"""A transactional activity for the crash tests' worker processes
(``perdure worker tests/crash/transactions_workload.py``), and the same
work as a plain activity, for contrast. Each inserts one row into the
application's ``charges`` table, in the database named by
``$PERDURE_TEST_APP_DB`` (a SQLite file or PostgreSQL; through a SQLAlchemy
engine's Session if ``$PERDURE_TEST_APP_SQLALCHEMY`` is set), with a charge id
made anew by each execution, and returns that id. Writes
``ready-<pid>`` to ``$PERDURE_TEST_DIR`` on import (the harness waits for
it)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from perdure import activity, workflow
from perdure.transactions import AppDatabase

URL = os.environ["PERDURE_TEST_APP_DB"]
INSERT = "INSERT INTO charges (charge_id, order_id, cents) VALUES ({0}, {0}, {0})"

if os.environ.get("PERDURE_TEST_APP_SQLALCHEMY"):  # a SQLAlchemy engine: a Session
    import sqlalchemy as sa

    app = AppDatabase(sa.create_engine(URL.replace("postgresql://", "postgresql+psycopg://", 1)))

    def _insert(session: Any, row: tuple[str, str, int]) -> None:
        values = dict(zip(("charge_id", "order_id", "cents"), row, strict=True))
        session.execute(sa.text(INSERT.format(":{}").format(*values)), values)

else:  # the driver's connection
    app = AppDatabase(URL)

    def _insert(conn: Any, row: tuple[str, str, int]) -> None:
        conn.execute(INSERT.format("?" if app.dialect == "sqlite" else "%s"), row)


def _charge(conn: Any, order: str, cents: int) -> str:
    charge_id = str(uuid.uuid4())
    _insert(conn, (charge_id, order, cents))
    return charge_id


@app.transaction
def charge(conn: Any, order: str, cents: int) -> str:
    return _charge(conn, order, cents)


@activity.defn
def charge_plainly(order: str, cents: int) -> str:
    """The same insert in a transaction of its own: at least once."""
    return app._backend.run(None, lambda conn: _charge(conn, order, cents), None, None)


@workflow.defn
async def checkout(order: str, transactional: bool) -> str:
    if transactional:
        return await charge(order, 1250)
    return await charge_plainly(order, 1250)


Path(os.environ["PERDURE_TEST_DIR"], f"ready-{os.getpid()}").touch()
