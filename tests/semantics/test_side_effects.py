"""Side effects: a recorded non-deterministic value is replayed, not
recomputed, after a crash."""

from __future__ import annotations

from semantics_harness import SemanticsCluster


def test_side_effect_value_survives_a_crash(cluster: SemanticsCluster) -> None:
    worker = cluster.start()
    handle = cluster.client.start("lottery", id="lot")
    cluster.wait_until(lambda: cluster.side_events("step"), 20, what="the draw to start")
    cluster.kill(worker)
    cluster.start()  # replays the history: the ticket is read back, not redrawn
    result = handle.result(timeout=20)
    recorded = [e["value"] for e in handle.history() if e["type"] == "SideEffectRecorded"]
    assert len(recorded) == 2
    assert result == {"ticket": recorded[0], "again_is_float": True}
