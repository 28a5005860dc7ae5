"""Asynchronous completion across real crashes (SIGKILL): an attempt that
awaits its completion outlives its worker, and the run goes on once the
token's holder completes it; a worker that dies after its attempt handed
the token out, before it recorded that the attempt awaits completion, loses
that attempt like any other: it is retried, with a new token. An activity
settled by id while the worker that ran it lies dead (SIGKILL) ends with
the operator's result and is not run again."""

from __future__ import annotations

from semantics_harness import SemanticsCluster

import perdure


def _tokens(cluster: SemanticsCluster, tag: str) -> list[tuple[int, str]]:
    return [
        (int(e["attempt"]), str(e["token"]))  # type: ignore[call-overload]
        for e in cluster.side_events("hand-off")
        if e["tag"] == tag
    ]


def _awaiting(handle: perdure.SyncWorkflowHandle[str]) -> bool:
    pending = handle.describe().pending_activities
    return bool(pending) and pending[0].awaiting_completion


def test_an_attempt_awaiting_completion_outlives_its_worker(cluster: SemanticsCluster) -> None:
    worker = cluster.start()
    handle = cluster.client.start("handed_off", "survivor")
    cluster.wait_until(lambda: _awaiting(handle), 20, what="the attempt to await completion")
    cluster.kill(worker)
    [(attempt, token)] = _tokens(cluster, "survivor")
    assert attempt == 1
    # With no worker alive, the token's holder gives the outcome.
    cluster.client.get_async_activity_handle(token).complete("approved")
    cluster.start()
    assert handle.result(timeout=30) == "approved"
    assert _tokens(cluster, "survivor") == [(1, token)]  # ran once
    done = [e for e in handle.history() if e["type"] == "ActivityCompleted"]
    assert [e["attempt"] for e in done] == [1]


def test_a_worker_dying_before_the_attempt_awaits_loses_it_to_a_retry(
    cluster: SemanticsCluster,
) -> None:
    first = cluster.start()
    first.killed = True  # (it will die by its own hand, as the workload arranges)
    handle = cluster.client.start("handed_off", "die-first")
    cluster.wait_until(lambda: not first.alive(), 20, what="the worker to die in its activity")
    cluster.start()
    cluster.wait_until(
        lambda: len(_tokens(cluster, "die-first")) == 2, 30, what="the lost attempt's retry"
    )
    cluster.wait_until(lambda: _awaiting(handle), 20, what="the retry to await completion")
    (_, lost), (attempt, token) = _tokens(cluster, "die-first")
    assert attempt == 2 and token != lost
    try:
        cluster.client.get_async_activity_handle(lost).complete("from the lost attempt")
    except perdure.AsyncActivityNotFoundError:
        pass
    else:
        raise AssertionError("the lost attempt's token completed the retry")
    cluster.client.get_async_activity_handle(token).complete("from the retry")
    assert handle.result(timeout=30) == "from the retry"
    done = next(e for e in handle.history() if e["type"] == "ActivityCompleted")
    assert done["attempt"] == 2
    assert done["attempts"][0]["error"]["type"] == "LeaseExpired"


def test_an_activity_settled_by_id_while_its_worker_lies_dead_is_not_run_again(
    cluster: SemanticsCluster,
) -> None:
    worker = cluster.start()
    handle = cluster.client.start("slow_step", "by-hand")

    def started() -> list[dict[str, object]]:
        return [e for e in cluster.side_events("step") if e["tag"] == "by-hand"]

    cluster.wait_until(started, 20, what="the slow attempt to start")
    cluster.kill(worker)  # (its lease is still held, by a dead worker)
    by_id = cluster.client.get_async_activity_handle(workflow_id=handle.id, activity_id=1)
    by_id.complete("done by hand")
    cluster.start()
    assert handle.result(timeout=30) == "done by hand"
    assert len(started()) == 1  # (not run again by the worker that came next)
    [done] = [e for e in handle.history() if e["type"] == "ActivityCompleted"]
    assert (done["result"], done["attempt"]) == ("done by hand", 1)
