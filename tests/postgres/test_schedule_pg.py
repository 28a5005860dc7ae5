"""tests/crash/test_schedule_sigkill.py's SIGKILLs of a schedule's worker
while it starts a time's run, on PostgreSQL."""

from __future__ import annotations

import pytest
from crash_harness import Cluster
from test_schedule_sigkill import CRASH_POINTS, schedule_crash

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_schedule_survives_sigkill_on_postgres(cluster: Cluster, crash_at: str) -> None:
    schedule_crash(cluster, crash_at)
