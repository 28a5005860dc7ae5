"""Transactional activities across a SIGKILL: a ``perdure worker`` process
killed after a charge's transaction committed and before the activity's
completion was recorded (crash point ``activity.before_complete``). The
next worker runs the activity's second attempt, which finds the record of
the first's commit: one charge row, and the run's result is that row's id.
The same with the transaction on a SQLAlchemy engine's Session. The same
work as a plain activity, killed at the same point, charges twice:
the crash really came after the write. SQLite here (the application's
table in its own file); tests/postgres runs the same on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from crash_harness import Cluster

pytestmark = pytest.mark.slow

MODULE = Path(__file__).resolve().with_name("transactions_workload.py")


def check_a_charge_across_a_sigkill(cluster: Cluster, transactional: bool, charges: Any) -> None:
    """Run one checkout through a worker killed at the crash point and a
    second worker; then ``charges()`` (the table's charge_id, order_id) must
    hold one row, the run's result, for the transactional activity, and two
    for the plain one."""
    run = cluster.client.start("checkout", "o-1", transactional, id="o-1")
    cluster.crash_worker_at("activity.before_complete:1", module=MODULE)
    cluster.start_worker(module=MODULE)
    result = run.result(timeout=60)
    completed = [e for e in run.history() if e["type"] == "ActivityCompleted"]
    assert [e["attempt"] for e in completed] == [2]
    rows = charges()
    if transactional:
        assert rows == [(result, "o-1")]
    else:
        assert len(rows) == 2 and result in {charge_id for charge_id, _ in rows}


@pytest.mark.parametrize("form", ["transaction", "plain", "sqlalchemy"])
def test_a_charge_commits_once_across_a_sigkill(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as conn:
        conn.execute("CREATE TABLE charges (charge_id TEXT, order_id TEXT, cents INTEGER)")
    monkeypatch.setenv("PERDURE_TEST_APP_DB", f"sqlite:///{app_db}")

    def charges() -> list[tuple[str, str]]:
        with sqlite3.connect(app_db) as conn:
            return list(conn.execute("SELECT charge_id, order_id FROM charges"))

    if form == "sqlalchemy":  # (the transaction through a SQLAlchemy engine's Session)
        monkeypatch.setenv("PERDURE_TEST_APP_SQLALCHEMY", "1")
    check_a_charge_across_a_sigkill(cluster, form != "plain", charges)
