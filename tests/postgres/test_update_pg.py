"""tests/crash/test_update_sigkill.py's SIGKILL of a workflow that answers
updates, on PostgreSQL: the kill right after a turn's commit (the store's
own code is the same for the other points, which SQLite's run covers); and
the NOTIFY that wakes a caller in another process than the worker's."""

from __future__ import annotations

import time

import pytest
from crash_harness import Cluster
from test_update_sigkill import updates_crash

import perdure._updates

pytestmark = pytest.mark.slow


def test_updates_survive_sigkill_on_postgres(cluster: Cluster) -> None:
    updates_crash(cluster, "turn.after_commit:3")


def test_an_answer_from_another_process_wakes_the_caller(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's looks are 30 s apart here (its deadline 20 s away): only
    the NOTIFY the worker process sends with the answer brings it sooner."""
    monkeypatch.setattr(perdure._updates, "POLL_FIRST", 30.0)
    cluster.start_worker()
    client = cluster.client
    client.start("ledger", 2, 0.0, id="ledger-wake")
    handle = client.get_handle("ledger-wake")
    for deposit, balance in ((5, 5), (7, 12)):
        began = time.monotonic()
        assert handle.update("deposit", deposit, timeout=20) == balance
        assert time.monotonic() - began < 10, "the caller was not woken by the answer"
