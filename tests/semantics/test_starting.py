"""Starting: signal-with-start, delayed starts across a crash, and what a run
of a type no worker serves looks like."""

from __future__ import annotations

import time
from datetime import timedelta

from semantics_harness import SemanticsCluster


def test_signal_with_start_creates_then_signals(cluster: SemanticsCluster) -> None:
    client = cluster.client
    first = client.signal_with_start("inbox", 2, signal="item", signal_payload="a", id="box")
    second = client.signal_with_start("inbox", 2, signal="item", signal_payload="b", id="box")
    assert first.run_id == second.run_id  # the second call signalled the open run
    cluster.start()
    assert first.result(timeout=20) == ["a", "b"]


def test_start_delay_survives_a_worker_crash(cluster: SemanticsCluster) -> None:
    worker = cluster.start()
    t0 = time.time()
    handle = cluster.client.start("delayed", "later", start_delay=timedelta(seconds=1.5))
    assert handle.history() == []
    starts_at = handle.describe().starts_at  # (nothing else showed the delay)
    assert starts_at is not None and t0 + 1.5 <= starts_at.timestamp() <= time.time() + 1.5
    cluster.kill(worker)
    cluster.start()
    assert handle.result(timeout=20) == "done later"
    started_at = handle.history()[0]["time"]
    assert isinstance(started_at, float) and started_at >= t0 + 1.5
    assert handle.describe().starts_at is None


def test_a_type_nobody_serves_waits_and_says_so(cluster: SemanticsCluster) -> None:
    handle = cluster.client.start("delayed", "orphan")
    cluster.wait_until(
        lambda: handle.describe().waiting_for_worker, 10, what="describe() to say it waits"
    )
    assert handle.describe().status == "running"
    cluster.start()
    assert handle.result(timeout=20) == "done orphan"
    assert not handle.describe().waiting_for_worker
