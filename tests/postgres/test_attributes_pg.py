"""tests/crash/test_attributes_sigkill.py's SIGKILLs of a workflow that sets
search attributes, on PostgreSQL."""

from __future__ import annotations

import pytest
from crash_harness import Cluster
from test_attributes_sigkill import CRASH_POINTS, attributes_crash

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_search_attributes_survive_sigkill_on_postgres(cluster: Cluster, crash_at: str) -> None:
    attributes_crash(cluster, crash_at)
