"""tests/crash/test_signal_sigkill.py's SIGKILLs of a workflow that signals
another, on PostgreSQL."""

from __future__ import annotations

import pytest
from crash_harness import Cluster
from test_signal_sigkill import CRASH_POINTS, signals_crash

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_signals_between_workflows_survive_sigkill_on_postgres(
    cluster: Cluster, crash_at: str
) -> None:
    signals_crash(cluster, crash_at)
