"""Published state and signal queues: state is readable with no worker alive,
many signals arrive once each in acceptance order across a crash, and a
signal to a closed run is a clear error."""

from __future__ import annotations

import pytest
from semantics_harness import SemanticsCluster

import perdure


def test_signals_in_order_across_a_crash_and_state_without_workers(
    cluster: SemanticsCluster,
) -> None:
    worker = cluster.start()
    handle = cluster.client.start("inbox", 6, id="box")
    for i in range(3):
        handle.signal("item", i)
    cluster.wait_until(lambda: handle.state("received") == [0, 1, 2], 20, what="3 items")
    cluster.kill(worker)
    assert handle.state("received") == [0, 1, 2]  # read with no worker alive
    assert handle.describe().state == {"received": [0, 1, 2]}
    for i in range(3, 6):
        handle.signal("item", i)
    cluster.start()
    assert handle.result(timeout=20) == [0, 1, 2, 3, 4, 5]
    received = [e["payload"] for e in handle.history() if e["type"] == "SignalReceived"]
    assert received == [0, 1, 2, 3, 4, 5]
    with pytest.raises(perdure.WorkflowClosedError, match="already completed"):
        handle.signal("item", 6)
