"""tests/crash/test_attributes_sigkill.py's SIGKILL of a workflow that sets
search attributes, on PostgreSQL: the kill right after a turn's commit (the
store's own code is the same for the other points, which SQLite's run
covers; the commit is PostgreSQL's)."""

from __future__ import annotations

import pytest
from crash_harness import Cluster
from test_attributes_sigkill import attributes_crash

pytestmark = pytest.mark.slow


def test_search_attributes_survive_sigkill_on_postgres(cluster: Cluster) -> None:
    attributes_crash(cluster, "turn.after_commit:3")
