"""An activity attempt that kills its worker (out of memory, a crash in
native code) is retried on the retry policy's backoff once two attempts in
a row were lost: the first loss is retried when its lease runs out, as
before (a worker killed once resumes at once), but the next attempt after
the second waits out the backoff, so a poison activity no longer kills a
worker every lease timeout. Real ``perdure worker`` processes, each
SIGKILLed by the activity it runs, replaced at once as a supervisor would."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from crash_harness import LEASE_TIMEOUT, Cluster

pytestmark = pytest.mark.slow

MODULE = Path(__file__).resolve().with_name("poison_workload.py")
BACKOFF = 4.0  # poison_workload.BACKOFF (that module runs in the workers only)


def test_attempts_that_kill_their_workers_wait_out_the_backoff(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERDURE_TEST_KILLS", "2")
    handle = cluster.client.start("takes_poison", 1, id="poisoned")
    waiting: list[str] = []  # what describe() said while attempt 3 waited
    deadline = time.monotonic() + 90
    while handle.describe().status == "running":
        assert time.monotonic() < deadline, cluster.diagnostics()
        for worker in cluster.workers:
            if not worker.alive():
                worker.killed = True  # (by the activity it ran)
        # Two live workers at all times: one is idle when a lease runs out.
        for _ in range(2 - sum(w.alive() for w in cluster.workers)):
            cluster.start_worker(module=MODULE, wait_ready=False)
        [pending] = handle.describe().pending_activities or [None]
        failure = None if pending is None else pending.last_failure
        if failure and "were lost in a row" in failure["message"]:
            waiting.append(failure["message"])
        time.sleep(0.05)
    assert handle.result(timeout=10) == "survived attempt 3"
    assert sorted(e.attempt for e in cluster.executions()) == [1, 2, 3]

    # The completion's records: attempts 1 and 2 lost; 3 started no sooner
    # than the backoff after 2's lease ran out (1 came back at once).
    [completed] = [e for e in handle.history() if e["type"] == "ActivityCompleted"]
    lost = completed["attempts"][:2]
    assert [(r["attempt"], r["error"]["type"]) for r in lost] == [
        (1, "LeaseExpired"), (2, "LeaseExpired"),
    ]  # fmt: skip
    third = completed["attempts"][2]
    assert third["attempt"] == 3 and third["error"] is None
    assert third["started_at"] - lost[1]["ended_at"] >= BACKOFF - 0.01
    assert lost[1]["started_at"] - lost[0]["ended_at"] < BACKOFF + LEASE_TIMEOUT
    # While it waited, the activity said why, and so did the worker that put it back.
    assert waiting and "attempts 1 to 2 of activity 'poison' were lost in a row" in waiting[0]
    assert "attempt 3 waits" in waiting[0]
    logs = "".join(w.output() for w in cluster.workers)
    assert "were lost in a row" in logs, cluster.diagnostics()


def test_a_turn_that_kills_its_workers_waits_before_its_third_attempt(cluster: Cluster) -> None:
    """Each of two workers dies computing the run's first turn (a crash point
    before its commit, as a worker run out of memory by the replay would);
    the third claim puts the turn back for its backoff, saying why in the
    run's last_error, and the claim after that runs it."""
    handle = cluster.client.start("sequential", 3, 0.0, id="poison-turn")
    for _ in range(2):
        cluster.crash_worker_at("turn.before_commit:1")
    assert handle.describe().history_length == 0  # (no turn committed)
    survivor = cluster.start_worker()
    said = cluster.wait_until(
        lambda: (handle.describe().last_error or "").startswith("turn attempt 3 waits 2s"),
        timeout=30,
        what="the third attempt to wait",
    )
    assert said
    assert handle.result(timeout=30) == [f"poison-turn#{n}" for n in (1, 2, 3)]
    assert handle.describe().last_error is None
    assert "turn attempt 3 waits 2s: the attempts before it were lost" in survivor.output()
    assert sorted((e.step, e.pid) for e in cluster.executions()) == [
        (n, survivor.pid) for n in (1, 2, 3)
    ]  # (the dead workers ran no step: they died before their turn's commit)
