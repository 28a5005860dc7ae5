"""A worker SIGKILLed while it runs all of a limited queue's slots: the
attempts it was running keep their slots until their leases run out, so the
next worker starts no more than the limit allows, at any instant; then it
runs everything, and no step ran again but the attempts the kill cut short."""

from __future__ import annotations

import pytest
from crash_harness import Cluster, attempt_spans, check_executions, peak_running

pytestmark = pytest.mark.slow

RUNS = 6


def test_a_killed_workers_attempts_hold_their_slots_until_their_leases_end(
    cluster: Cluster,
) -> None:
    limited_queue_crash(cluster)


def limited_queue_crash(cluster: Cluster) -> None:
    """Shared with tests/postgres/test_queue_limits_pg.py."""
    client = cluster.client
    client.set_queue_limits("default", max_running=2)
    first = cluster.start_worker()
    handles = [client.start("sequential", 2, 0.5) for _ in range(RUNS)]
    cluster.wait_until(
        lambda: len(cluster.executions()) >= 2, timeout=30, what="two attempts running"
    )
    assert client.describe_queue("default").running == 2
    cluster.kill(first)
    cluster.start_worker()
    for handle in handles:
        handle.result(timeout=60)
    histories = {h.id: client.get_handle(h.id).history() for h in handles}
    spans = attempt_spans(histories.values())
    completed = [e for h in histories.values() for e in h if e["type"] == "ActivityCompleted"]
    assert any(a["error"]["type"] == "LeaseExpired" for e in completed for a in e["attempts"][:-1])
    # The lost attempts' spans end when their leases ran out: the next
    # worker's starts never overlapped them past the limit.
    assert peak_running(spans) == 2
    check_executions(cluster.executions(), histories, 2, {first.pid})
