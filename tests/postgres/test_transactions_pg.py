"""tests/crash/test_transactions_sigkill.py on PostgreSQL: the charges
table in the same schema as perdure's own tables, a worker SIGKILLed after
a charge's transaction committed and before its completion was recorded;
once with the transactional activity (one charge), once with the plain one
(two: the crash came after the write)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from crash_harness import Cluster
from test_transactions_sigkill import check_a_charge_across_a_sigkill

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("transactional", [True, False], ids=["transaction", "plain"])
def test_a_charge_commits_once_across_a_sigkill_on_postgres(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, transactional: bool
) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE charges (charge_id text, order_id text, cents integer)")
    monkeypatch.setenv("PERDURE_TEST_APP_DB", cluster.url)

    def charges() -> list[tuple[Any, ...]]:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            return list(conn.execute("SELECT charge_id, order_id FROM charges"))

    check_a_charge_across_a_sigkill(cluster, transactional, charges)
