"""tests/crash/test_transactions_sigkill.py on PostgreSQL: the charges
table in the same schema as perdure's own tables, a worker SIGKILLed after
a charge's transaction committed and before its completion was recorded;
with the transactional activity (one charge), on psycopg's connection and
on a SQLAlchemy engine's Session, and with the plain one (two: the crash
came after the write)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from crash_harness import Cluster
from test_transactions_sigkill import check_a_charge_across_a_sigkill

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("form", ["transaction", "plain", "sqlalchemy"])
def test_a_charge_commits_once_across_a_sigkill_on_postgres(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE charges (charge_id text, order_id text, cents integer)")
    monkeypatch.setenv("PERDURE_TEST_APP_DB", cluster.url)

    def charges() -> list[tuple[Any, ...]]:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            return list(conn.execute("SELECT charge_id, order_id FROM charges"))

    if form == "sqlalchemy":  # (the transaction through a SQLAlchemy engine's Session)
        monkeypatch.setenv("PERDURE_TEST_APP_SQLALCHEMY", "1")
    check_a_charge_across_a_sigkill(cluster, form != "plain", charges)
