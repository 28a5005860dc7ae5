"""A paused activity across a real crash (SIGKILL): the worker running its
attempt dies; the worker that comes next finds the attempt's lease run out,
records the attempt as lost and starts no other while the activity is
paused; once it is unpaused, the next attempt runs, once."""

from __future__ import annotations

from semantics_harness import SemanticsCluster


def test_a_paused_activity_whose_worker_dies_waits_for_its_unpause(
    cluster: SemanticsCluster,
) -> None:
    worker = cluster.start()
    handle = cluster.client.start("slow_then_quick", "paused-dead")

    def started() -> list[int]:
        return [
            int(e["attempt"])  # type: ignore[call-overload]
            for e in cluster.side_events("step")
            if e["tag"] == "paused-dead"
        ]

    cluster.wait_until(started, 20, what="the slow first attempt to start")
    by_id = cluster.client.get_async_activity_handle(workflow_id=handle.id, activity_id=1)
    by_id.pause()
    cluster.kill(worker)  # (its lease is still held, by a dead worker)
    cluster.start()

    def parked() -> bool:
        [activity] = handle.describe().pending_activities
        return activity.paused and not activity.running

    # The new worker's claim takes the run-out lease and parks the task.
    cluster.wait_until(parked, 30, what="the lost attempt to be parked")
    [activity] = handle.describe().pending_activities
    assert [(a["attempt"], a["error"]["type"]) for a in activity.attempts] == [(1, "LeaseExpired")]
    assert started() == [1]
    by_id.unpause()
    assert handle.result(timeout=30) == "done paused-dead on attempt 2"
    assert started() == [1, 2]
