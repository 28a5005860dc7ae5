"""tests/crash/test_queue_limits_sigkill.py's SIGKILL of the worker running
all of a limited queue's slots, on PostgreSQL."""

from __future__ import annotations

import pytest
from crash_harness import Cluster
from test_queue_limits_sigkill import limited_queue_crash

pytestmark = pytest.mark.slow


def test_a_killed_workers_slots_are_held_until_their_leases_end_on_postgres(
    cluster: Cluster,
) -> None:
    limited_queue_crash(cluster)
