"""A worker SIGKILLed mid-workflow: the run resumes in a new worker process,
no completed step runs again, and durable waits (signals, timers) survive."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from crash_harness import Cluster, check_executions

pytestmark = pytest.mark.slow

STEPS = 20
STEP_DELAY = 0.05
SEEDS = [1, 7, 2024]


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed={s}")
def test_sigkill_at_random_step(cluster: Cluster, seed: int) -> None:
    rng = random.Random(seed)
    k = rng.randint(3, 17)
    # A little jitter after step k starts moves the kill around within the step:
    # during the activity, during its completion, or during the workflow turn.
    jitter = rng.uniform(0.0, STEP_DELAY * 1.2)
    print(f"seed={seed}: SIGKILL once {k} of {STEPS} steps ran, +{jitter * 1000:.0f} ms")

    handle = cluster.client.start("sequential", STEPS, STEP_DELAY, id="wf-sigkill")
    first = cluster.start_worker()

    def steps_started() -> int:
        return len({e.step for e in cluster.executions_by_pid().get(first.pid, [])})

    cluster.wait_until(
        lambda: steps_started() >= k,
        timeout=60,
        interval=0.005,
        what=f"{k} steps to run in the first worker",
    )
    time.sleep(jitter)  # not a wait for anything: it only picks the kill point
    cluster.kill(first)
    done_before_kill = sorted({e.step for e in cluster.executions_by_pid()[first.pid]})
    assert len(done_before_kill) >= k and max(done_before_kill) < STEPS, done_before_kill
    assert handle.describe().status == "running"

    second = cluster.start_worker()
    result = handle.result(timeout=60)
    assert result == [f"wf-sigkill#{n}" for n in range(1, STEPS + 1)]

    executions = cluster.executions()
    by_step: dict[int, list[int]] = {}
    for e in executions:
        by_step.setdefault(e.step, []).append(e.pid)
    assert sorted(by_step) == list(range(1, STEPS + 1)), f"steps executed: {sorted(by_step)}"
    twice = {n: pids for n, pids in by_step.items() if len(pids) > 1}
    assert len(twice) <= 1 and all(len(p) == 2 for p in twice.values()), (
        f"more than the one in-flight step ran again: {twice}\n{cluster.diagnostics()}"
    )
    print(f"re-ran after the kill: {sorted(twice) or 'nothing (killed between steps)'}")
    for n, pids in twice.items():
        # Only the step in flight at the kill may run again: the last one the
        # first worker started, re-run once by the second worker.
        assert n == max(done_before_kill), (n, done_before_kill)
        assert sorted(pids) == sorted([first.pid, second.pid]), (n, pids)
    assert set(by_step[STEPS]) == {second.pid}

    history = handle.history()
    completions = [e for e in history if e["type"] == "ActivityCompleted"]
    assert len(completions) == STEPS
    assert len({e["ref"] for e in completions}) == STEPS
    check_executions(executions, {"wf-sigkill": history}, STEPS, killed_pids={first.pid})
    cluster.assert_no_tracebacks()


@pytest.mark.parametrize(
    "scenario",
    [
        "signal-then-restart",  # signal sent while no worker runs; restart at once
        "signal-restart-after-deadline",  # ... and the worker only returns after the timeout
        "no-signal",  # the durable timeout fires in the new worker
    ],
)
def test_sigkill_during_signal_wait(cluster: Cluster, scenario: str) -> None:
    timeout_s = 3.0
    handle = cluster.client.start("approval", timeout_s, id="wf-approval")
    first = cluster.start_worker()
    cluster.wait_until(
        lambda: handle.describe().waiting_signals == ["approve"],
        timeout=30,
        what="the workflow to wait for 'approve'",
    )
    waiting_since = time.time()
    cluster.kill(first)

    described = handle.describe()
    assert described.status == "running"
    assert len(described.pending_timers) == 1, described.pending_timers
    fire_at = described.pending_timers[0].fire_at.timestamp()
    assert fire_at > time.time(), "the timeout fired before the worker was killed"

    payload = {"by": "alice", "amount": 7}
    if scenario != "no-signal":
        handle.signal("approve", payload)  # durable once it returns, with no worker running
    if scenario == "signal-restart-after-deadline":
        wait_until_clock = fire_at + 0.2
        cluster.wait_until(
            lambda: time.time() > wait_until_clock,
            timeout=timeout_s + 5,
            what="the timeout to fall due",
        )
        # No worker: nothing fires, the run still waits.
        assert handle.describe().status == "running"

    cluster.start_worker()
    result = handle.result(timeout=30)
    finished = time.time()

    history = handle.history()
    types = [e["type"] for e in history]
    if scenario == "no-signal":
        assert result["outcome"] == "timed out", result
        assert result["payload"] is None
        # Durable timers fire at or after their due time, after any restart.
        assert result["waited_s"] >= timeout_s, result
        assert finished >= fire_at
        (started,) = [e for e in history if e["type"] == "TimerStarted"]
        (fired,) = [e for e in history if e["type"] == "TimerFired"]
        assert fired["ref"] == started["ref"] and fired["time"] >= started["fire_at"]
        assert "SignalReceived" not in types
    else:
        # The signal was accepted before the timeout fell due, so it wins even
        # when the worker comes back after the deadline.
        assert result["outcome"] == "approved", (result, history)
        assert result["payload"] == payload
        assert types.count("SignalReceived") == 1
        assert "TimerFired" not in types or types.index("SignalReceived") < types.index(
            "TimerFired"
        )
    assert types.count("WorkflowCompleted") == 1
    assert waiting_since < finished
    cluster.assert_no_tracebacks()


def test_a_worker_restarted_under_its_identity_resumes_before_the_lease_expires(
    cluster: Cluster,
) -> None:
    """``--identity``: the new process takes back its predecessor's leases at
    start, so the run resumes at once, not after the (long) lease timeout."""
    lease = 120.0  # the run must finish long before this
    same = ("--identity", "checkout-worker-1", "--lease-timeout", str(lease))
    handle = cluster.client.start("sequential", 6, 0.2, id="wf-same-identity")
    first = cluster.start_worker(*same)
    cluster.wait_until(
        lambda: len({e.step for e in cluster.executions_by_pid().get(first.pid, [])}) >= 3,
        timeout=60,
        interval=0.005,
        what="3 steps to run in the first worker",
    )
    cluster.kill(first)  # mid-step: its activity task and lease are left behind
    killed_at = time.monotonic()
    second = cluster.start_worker(*same)
    assert handle.result(timeout=30) == [f"wf-same-identity#{n}" for n in range(1, 7)]
    assert time.monotonic() - killed_at < lease / 4
    executions = cluster.executions()
    assert {e.step for e in executions if e.pid == second.pid} >= {4, 5, 6}
    history = handle.history()
    check_executions(executions, {"wf-same-identity": history}, 6, killed_pids={first.pid})
    assert lost_attempts(history) == ["LeaseExpired"]


def test_a_second_live_worker_with_the_same_identity_takes_nothing_back(
    cluster: Cluster,
) -> None:
    """Two live workers given one ``--identity`` (a fixed name in a config
    scaled to two): the second had taken back every lease of the first at
    start, and every step the first was running ran again. Now a worker
    takes leases back only from a predecessor that is surely gone (here its
    process still runs on this host), and says why it did not."""
    same = ("--identity", "shared-name", "--lease-timeout", "120")
    handle = cluster.client.start("sequential", 6, 0.4, id="wf-shared-identity")
    first = cluster.start_worker(*same)
    cluster.wait_until(
        lambda: len(cluster.executions_by_pid().get(first.pid, [])) >= 2,
        timeout=60,
        interval=0.005,
        what="the first worker to be mid-step",
    )
    second = cluster.start_worker(*same)
    assert handle.result(timeout=60) == [f"wf-shared-identity#{n}" for n in range(1, 7)]
    check_executions(cluster.executions(), {"wf-shared-identity": handle.history()}, 6, set())
    assert f"process {first.pid} of this host, which registered this identity, still runs" in (
        second.output()
    )


def lost_attempts(history: list[dict[str, Any]]) -> list[str]:
    """The error types of the failed attempts the completed activities record."""
    return [
        attempt["error"]["type"]
        for e in history
        if e["type"] == "ActivityCompleted"
        for attempt in e.get("attempts", [])
        if attempt.get("error")
    ]


STARTER = Path(__file__).resolve().with_name("start_here.py")


def start_here_and_die(cluster: Cluster, *args: str) -> None:
    """Run start_here.py with ``args``, SIGKILLed right after its start's commit."""
    env = dict(os.environ, PERDURE_TEST_DIR=str(cluster.side_dir), PYTHONUNBUFFERED="1")
    env["PERDURE_CRASH_AT"] = "start.after_commit"
    env.pop("PERDURE_DB", None)
    starter = subprocess.run(
        [sys.executable, str(STARTER), cluster.url, *args],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert starter.returncode == -signal.SIGKILL, starter.stderr.decode()
    assert b"crash point start.after_commit" in starter.stderr


def test_a_start_that_carried_its_first_turn_is_taken_over_after_a_kill(
    cluster: Cluster,
) -> None:
    """A process that starts a run next to its own worker: the start's one
    commit carries the first turn and leases the first activity to that
    worker. SIGKILLed right after that commit, before the activity began:
    another worker takes the activity once its lease expires, and every step
    runs exactly once."""
    start_here_and_die(cluster, "wf-eager", "4", "0.05")
    handle = cluster.client.get_handle("wf-eager")
    # The start wrote the first turn; nothing ran in the killed process.
    kinds = [e["type"] for e in handle.history()]
    assert kinds == ["WorkflowStarted", "ActivityScheduled"]
    assert cluster.executions() == []
    cluster.start_worker()
    assert handle.result(timeout=30) == [f"wf-eager#{n}" for n in range(1, 5)]
    history = handle.history()
    check_executions(cluster.executions(), {"wf-eager": history}, 4, killed_pids=set())
    assert lost_attempts(history) == ["LeaseExpired"]  # the first activity's, left by the kill


def test_children_whose_first_turns_came_with_their_parents_are_taken_over(
    cluster: Cluster,
) -> None:
    """A parent started next to its own worker, whose first turn starts three
    children on that worker's queue: the start's one commit carries the
    parent's turn and the children's first turns, each child's first
    activity leased to that worker. SIGKILLed right after that commit:
    another worker takes the activities once their leases expire, the
    parent its task (ChildWorkflowStarted), and every step runs once."""
    start_here_and_die(cluster, "wf-brood", "2", "0.05", "3")
    kids = [f"wf-brood/child-{n}" for n in range(1, 4)]
    for kid in kids:  # (each child's first turn was written; nothing ran)
        kinds = [e["type"] for e in cluster.client.get_handle(kid).history()]
        assert kinds == ["WorkflowStarted", "ActivityScheduled"], (kid, kinds)
    assert cluster.executions() == []
    cluster.start_worker()
    handle = cluster.client.get_handle("wf-brood")
    assert handle.result(timeout=30) == [[f"{kid}#1", f"{kid}#2"] for kid in kids]
    histories = {kid: cluster.client.get_handle(kid).history() for kid in kids}
    check_executions(cluster.executions(), histories, 2, killed_pids=set())
    for kid, history in histories.items():  # (its first activity's, left by the kill)
        assert lost_attempts(history) == ["LeaseExpired"], kid


def test_a_kill_right_after_an_inline_timers_turn_loses_nothing(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker takes in the due timers of the runs it holds itself (inline
    timers: the turn's commit deletes the timer's row; no inbox row, no
    workflow task, no claim). SIGKILLed right after the commit of the
    second such turn, which leased the next step to it: another worker
    takes that step once its lease expires, every timer fired once, and
    every step ran once."""
    handle = cluster.client.start("napping_steps", 4, 0.1, id="wf-naps")
    # Its turns: 1 (claimed) starts timer 1; 2 takes timer 1 in and leases
    # step 1; 3 (step 1's continuation) starts timer 2; 4 takes timer 2 in
    # and leases step 2: the kill. (A firing through the inbox would kill
    # it first: it never comes.)
    monkeypatch.setenv("PERDURE_CRASH_AT", "turn.after_commit:4,timers.after_fire")
    first = cluster.start_worker()
    monkeypatch.delenv("PERDURE_CRASH_AT")
    first.killed = True  # (by itself, at the crash point)
    first.proc.wait(timeout=30)
    assert "crash point turn.after_commit" in first.output()
    kinds = [e["type"] for e in handle.history()]
    assert kinds.count("TimerFired") == 2 and kinds[-1] == "ActivityScheduled", kinds
    with sqlite3.connect(cluster.db_path) as db:  # (inline: nothing went through the inbox)
        left = db.execute(
            "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM timers),"
            " (SELECT count(*) FROM tasks WHERE kind = 'workflow')"
        ).fetchone()
    assert left == (0, 0, 0)
    cluster.start_worker()
    assert handle.result(timeout=60) == [f"wf-naps#{n}" for n in range(1, 5)]
    history = handle.history()
    fired = [e["ref"] for e in history if e["type"] == "TimerFired"]
    assert len(fired) == len(set(fired)) == 4
    check_executions(cluster.executions(), {"wf-naps": history}, 4, killed_pids={first.pid})
    assert lost_attempts(history) == ["LeaseExpired"]  # step 2's, leased by the killed commit
