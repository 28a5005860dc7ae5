"""Cancellation and sagas: compensations run durably (even across a crash in
the middle of one), a second cancel cannot interrupt them, and a running
heartbeating activity is told it was cancelled. A workflow that waits for
its cancelled activity to end (cancellation_type
"wait_cancellation_completed") goes on once the attempt is found lost with
its worker (SIGKILL), without running it again."""

from __future__ import annotations

from collections import Counter

import pytest
from semantics_harness import SemanticsCluster

import perdure


def _completed_tags(history: list[dict[str, object]]) -> list[object]:
    names = {e["ref"]: e["args"][0] for e in history if e["type"] == "ActivityScheduled"}  # type: ignore[index]
    return [names[e["ref"]] for e in history if e["type"] == "ActivityCompleted"]


def test_compensation_survives_a_crash_and_a_second_cancel(cluster: SemanticsCluster) -> None:
    worker = cluster.start()
    handle = cluster.client.start("saga", "o1", id="saga-o1")
    cluster.wait_until(
        lambda: handle.describe().waiting_signals == ["ship"], 20, what="the saga to wait"
    )
    handle.cancel("customer changed their mind")
    cluster.wait_until(
        lambda: any(e["tag"] == "release-o1" for e in cluster.side_events("step")),
        20,
        what="the first compensation to start",
    )
    handle.cancel("impatient second cancel")  # ignored: compensation goes on
    cluster.kill(worker)  # mid-compensation
    cluster.start()
    with pytest.raises(perdure.WorkflowCancelledError):
        handle.result(timeout=30)
    history = handle.history()
    assert _completed_tags(history) == ["charge-o1", "reserve-o1", "release-o1", "refund-o1"]
    assert [e["type"] for e in history].count("CancelRequested") == 2
    assert history[-1]["type"] == "WorkflowCancelled"
    runs = Counter(e["tag"] for e in cluster.side_events("step"))
    assert runs["charge-o1"] == 1 and runs["reserve-o1"] == 1
    assert 1 <= runs["release-o1"] <= 2  # at most re-run once: it was in flight
    assert runs["refund-o1"] == 1
    assert "ship-o1" not in runs


def test_a_running_activity_learns_of_its_cancellation(cluster: SemanticsCluster) -> None:
    cluster.start()
    handle = cluster.client.start("cancel_running_activity", "job-1")
    assert handle.result(timeout=20) == "gave up"
    cluster.wait_until(
        lambda: cluster.side_events("cancellable-cancelled"),
        10,
        what="the activity to see CancelledError at its heartbeat",
    )


def test_a_cancelled_attempt_lost_with_its_worker_is_not_run_again(
    cluster: SemanticsCluster,
) -> None:
    # The workflow cancels a running attempt that sends no heartbeats (it
    # cannot hear of it), then its worker dies: when the attempt's lease runs
    # out, the next worker records the cancellation instead of running the
    # activity again for a workflow that no longer wants it.
    worker = cluster.start()
    handle = cluster.client.start("cancel_then_wait", "job-2")
    cluster.wait_until(
        lambda: handle.describe().waiting_signals == ["finish"], 20, what="the cancellation"
    )
    assert len(cluster.side_events("unheeding-start")) == 1
    cluster.kill(worker)
    cluster.start()
    cluster.wait_until(
        lambda: not handle.describe().pending_activities,
        30,
        what="the lost attempt's task to be dropped",
    )
    handle.signal("finish")
    assert handle.result(timeout=20) == "done"
    assert len(cluster.side_events("unheeding-start")) == 1
    kinds = [e["type"] for e in handle.history()]
    assert "ActivityCompleted" not in kinds


def test_a_wait_for_a_cancelled_activity_ends_when_its_lost_attempt_is_found(
    cluster: SemanticsCluster,
) -> None:
    worker = cluster.start()
    handle = cluster.client.start("wait_out_the_cancel", "job-3")

    def cancel_recorded() -> bool:
        return any(e["type"] == "ActivityCancelled" for e in handle.history())

    cluster.wait_until(cancel_recorded, 20, what="the cancellation")
    assert handle.describe().status == "running"  # (it waits: the attempt runs on)
    cluster.kill(worker)
    cluster.start()
    assert handle.result(timeout=30) == "gave up once it had ended"
    assert len(cluster.side_events("unheeding-start")) == 1  # (not run again)
    history = handle.history()
    [cancelled] = [e for e in history if e["type"] == "ActivityCancelled"]
    [failed] = [e for e in history if e["type"] == "ActivityFailed"]
    assert cancelled["wait"] is True and failed["seq"] > cancelled["seq"]
    assert failed["failure"]["type"] == "CancelledError"
