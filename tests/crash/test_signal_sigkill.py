"""A workflow that signals another (workflow.signal_workflow), its worker
SIGKILLed before and after the commit of the turn that sends a signal, and
after an activity's completion: the next worker goes on, and the other
workflow receives every signal exactly once, in order."""

from __future__ import annotations

import pytest
from crash_harness import Cluster

pytestmark = pytest.mark.slow

COUNT = 4
CRASH_POINTS = ["turn.before_commit:3", "turn.after_commit:3", "activity.after_complete:2"]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_signals_between_workflows_survive_sigkill(cluster: Cluster, crash_at: str) -> None:
    signals_crash(cluster, crash_at)


def signals_crash(cluster: Cluster, crash_at: str) -> None:
    """Shared with tests/postgres/test_signal_pg.py."""
    client = cluster.client
    target = client.start("collector", COUNT, id="collector")
    sender = client.start("signaller", "collector", COUNT, 0.05, id="signaller")
    cluster.crash_worker_at(crash_at)
    cluster.start_worker()
    assert sender.result(timeout=60) == COUNT
    assert target.result(timeout=60) == list(range(1, COUNT + 1))
    history = sender.history()
    requested = [e for e in history if e["type"] == "ExternalSignalRequested"]
    delivered = [e for e in history if e["type"] == "ExternalSignalDelivered"]
    assert [e["payload"] for e in requested] == list(range(1, COUNT + 1))
    assert [e["ref"] for e in delivered] == [e["ref"] for e in requested]
    received = [e for e in target.history() if e["type"] == "SignalReceived"]
    assert [e["payload"] for e in received] == list(range(1, COUNT + 1))
