"""tests/crash/test_update_sigkill.py's SIGKILL of a workflow that answers
updates, on PostgreSQL: the kill right after a turn's commit (the store's
own code is the same for the other points, which SQLite's run covers)."""

from __future__ import annotations

import pytest
from crash_harness import Cluster
from test_update_sigkill import updates_crash

pytestmark = pytest.mark.slow


def test_updates_survive_sigkill_on_postgres(cluster: Cluster) -> None:
    updates_crash(cluster, "turn.after_commit:3")
