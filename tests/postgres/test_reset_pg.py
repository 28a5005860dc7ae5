"""tests/crash/test_reset_sigkill.py's SIGKILLs of a reset run's first
turn, on PostgreSQL."""

from __future__ import annotations

import pytest
from crash_harness import Cluster
from test_reset_sigkill import reset_crash

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("crash_at", ["turn.before_commit:1", "turn.after_commit:1"])
def test_a_reset_runs_first_turn_survives_sigkill_on_postgres(
    cluster: Cluster, crash_at: str
) -> None:
    reset_crash(cluster, crash_at)
