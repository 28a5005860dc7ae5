"""The Store contract: what every backend must do, tested through the interface."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from store_helpers import FakeClock

from perdure import _history as h
from perdure._store.base import NewActivity, NewRun, RunFilter, Store, TurnCommit, WorkflowTask
from perdure.errors import WorkflowAlreadyStartedError, WorkflowClosedError, WorkflowNotFoundError


def new_run(wid: str = "wf-1", run_id: str = "run-1", queue: str = "q") -> NewRun:
    return NewRun(
        workflow_id=wid,
        run_id=run_id,
        workflow_type="t",
        task_queue=queue,
        args=[1],
        kwargs={},
        seed=7,
    )


async def first_turn(store: Store, task: WorkflowTask, **extra: Any) -> TurnCommit:
    data = await store.load_turn(task.run_id, 0)
    inputs = [e for _, e in data.inbox]
    commit = TurnCommit(
        task=task,
        run_id=task.run_id,
        expected_version=data.run.version,
        events=h.turn_events(data.run.last_seq, 1.0, inputs, []),
        consumed_inbox=[i for i, _ in data.inbox],
        **extra,
    )
    return commit


async def test_create_run_puts_start_in_inbox_and_a_task_on_the_queue(open_store: Any) -> None:
    store = await open_store()
    run, created = await store.create_run(new_run(), "fail")
    assert created and run.status == "running" and run.version == 0
    tasks = await store.claim_workflow_tasks(["q"], "w1", 30, 10)
    assert [t.run_id for t in tasks] == ["run-1"]
    data = await store.load_turn("run-1", 0)
    assert data.events == []
    assert [type(e).__name__ for _, e in data.inbox] == ["WorkflowStarted"]
    assert await store.claim_workflow_tasks(["other"], "w1", 30, 10) == []


async def test_id_conflicts(open_store: Any) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    with pytest.raises(WorkflowAlreadyStartedError):
        await store.create_run(new_run(run_id="run-2"), "fail")
    run, created = await store.create_run(new_run(run_id="run-3"), "use_existing")
    assert not created and run.run_id == "run-1"
    run, created = await store.create_run(new_run(run_id="run-4"), "terminate_existing")
    assert created and run.run_id == "run-4"
    old = await store.get_run("wf-1", "run-1")
    assert old is not None and old.status == "terminated"
    latest = await store.get_run("wf-1")
    assert latest is not None and latest.run_id == "run-4"


async def test_a_task_is_claimed_by_one_worker_at_a_time(open_store: Any, clock: FakeClock) -> None:
    a, b = await open_store(), await open_store()
    await a.create_run(new_run(), "fail")
    got = await asyncio.gather(
        a.claim_workflow_tasks(["q"], "wa", 30, 10), b.claim_workflow_tasks(["q"], "wb", 30, 10)
    )
    assert sorted(len(g) for g in got) == [0, 1]
    # The lease hides it until it expires; then anyone may claim it again.
    assert await b.claim_workflow_tasks(["q"], "wb", 30, 10) == []
    clock.advance(31)
    again = await b.claim_workflow_tasks(["q"], "wb", 30, 10)
    assert len(again) == 1 and again[0].attempt == 2


async def test_fencing_a_worker_that_lost_its_lease_cannot_commit(
    open_store: Any, clock: FakeClock
) -> None:
    slow, fast = await open_store(), await open_store()
    await slow.create_run(new_run(), "fail")
    [stale] = await slow.claim_workflow_tasks(["q"], "slow", 10, 1)
    stale_commit = await first_turn(slow, stale)
    clock.advance(11)  # the slow worker's lease expires (it paused, or was partitioned)
    [fresh] = await fast.claim_workflow_tasks(["q"], "fast", 10, 1)
    fresh_commit = await first_turn(fast, fresh)
    assert await slow.commit_turn(stale_commit) is False
    assert await fast.commit_turn(fresh_commit) is True
    history = await fast.history("run-1")
    assert [e.TYPE for e in history] == ["TurnStarted", "WorkflowStarted"]
    # And the late worker still cannot write afterwards.
    assert await slow.commit_turn(stale_commit) is False


async def test_version_fence_terminate_during_a_turn_wins(open_store: Any) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    commit = await first_turn(store, task)
    await store.terminate("wf-1", None, "ops")
    assert await store.commit_turn(commit) is False
    run = await store.get_run("wf-1")
    assert run is not None and run.status == "terminated"
    assert [e.TYPE for e in await store.history("run-1")] == ["WorkflowTerminated"]


async def test_a_closing_turn_is_refused_when_a_signal_arrived_meanwhile(
    open_store: Any,
) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    closing = await first_turn(store, task, close_status="completed", result=42)
    await store.deliver("wf-1", None, h.SignalReceived(name="late", payload=1))
    # The close would drop the signal: refused, and nothing of it is written.
    assert await store.commit_turn(closing) is False
    run = await store.get_run("wf-1")
    assert run is not None and run.is_open and run.version == 0 and run.result is None
    assert await store.history("run-1") == []
    data = await store.load_turn("run-1", 0)
    assert [e.TYPE for _, e in data.inbox] == ["WorkflowStarted", "SignalReceived"]


async def test_commit_schedules_activities_and_timers(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    commit = await first_turn(
        store,
        task,
        activities=[NewActivity(1, "charge", "q", ["o-1"], {}, {"retry": {}})],
        timers=[(2, clock.now + 60)],
        state={"stage": "charging"},
    )
    assert await store.commit_turn(commit)
    run = await store.get_run("wf-1")
    assert run is not None and run.state == {"stage": "charging"} and run.version == 1
    pending = await store.pending_work("run-1")
    assert [a.name for a in pending.activities] == ["charge"]
    assert [t.ref for t in pending.timers] == [2]
    # Nothing is left in the inbox, so the workflow task is gone.
    assert await store.claim_workflow_tasks(["q"], "w", 30, 1) == []
    [act] = await store.claim_activity_tasks(["q"], "w", 30, 1)
    assert (act.name, act.args, act.attempt, act.workflow_id) == ("charge", ["o-1"], 1, "wf-1")


async def test_activity_completion_is_fenced_by_its_attempt(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    await store.commit_turn(
        await first_turn(
            store, task, activities=[NewActivity(1, "charge", "q", [], {}, {"retry": {}})]
        )
    )
    [first] = await store.claim_activity_tasks(["q"], "w1", 5, 1)
    # Each claim tells its attempt when its lease runs out (what an inline
    # successor may keep: see _worker.inline.kept_lease).
    assert first.lease_until == clock() + 5
    clock.advance(6)  # attempt 1 is presumed dead
    [second] = await store.claim_activity_tasks(["q"], "w2", 5, 1)
    assert second.attempt == 2 and second.lease_until == clock() + 5
    done = h.ActivityCompleted(ref=1, result="x", attempt=1)
    assert await store.complete_activity(first, done) is False  # the stale attempt
    assert await store.complete_activity(second, done) is True
    assert await store.complete_activity(second, done) is False  # only once
    data = await store.load_turn("run-1", 0)
    assert [e.TYPE for _, e in data.inbox] == ["ActivityCompleted"]


async def test_retry_makes_the_activity_visible_after_the_delay(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    await store.commit_turn(
        await first_turn(
            store, task, activities=[NewActivity(1, "charge", "q", [], {}, {"retry": {}})]
        )
    )
    [act] = await store.claim_activity_tasks(["q"], "w", 30, 1)
    assert await store.retry_activity(act, {"type": "E", "message": "m"}, 10.0)
    assert await store.claim_activity_tasks(["q"], "w", 30, 1) == []
    acts = (await store.pending_work("run-1")).activities
    assert acts[0].last_failure == {"type": "E", "message": "m"} and not acts[0].running
    clock.advance(10)
    [again] = await store.claim_activity_tasks(["q"], "w", 30, 1)
    assert again.attempt == 2


async def test_timers_fire_exactly_once_across_connections(
    open_store: Any, clock: FakeClock
) -> None:
    a, b = await open_store(), await open_store()
    await a.create_run(new_run(), "fail")
    [task] = await a.claim_workflow_tasks(["q"], "w", 30, 1)
    await a.commit_turn(
        await first_turn(a, task, timers=[(i, clock.now + i) for i in range(1, 21)])
    )
    assert await a.next_due(["q"], ("workflow", "activity")) == clock.now + 1
    clock.advance(100)
    fired = await asyncio.gather(*(s.fire_due_timers(7) for s in (a, b, a, b, a, b)))
    assert sum(fired) == 20
    data = await a.load_turn("run-1", 0)
    refs = [e.ref for _, e in data.inbox if isinstance(e, h.TimerFired)]
    assert sorted(refs) == list(range(1, 21))


async def test_signals_keep_acceptance_order_and_need_an_open_run(open_store: Any) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    for i in range(5):
        await store.deliver("wf-1", None, h.SignalReceived(name="s", payload=i))
    data = await store.load_turn("run-1", 0)
    assert [e.payload for _, e in data.inbox if isinstance(e, h.SignalReceived)] == [0, 1, 2, 3, 4]
    with pytest.raises(WorkflowNotFoundError):
        await store.deliver("nope", None, h.SignalReceived(name="s"))
    await store.terminate("wf-1", None, None)
    with pytest.raises(WorkflowClosedError):
        await store.deliver("wf-1", None, h.SignalReceived(name="s"))


async def test_inbox_rows_arriving_during_a_turn_requeue_the_task(open_store: Any) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    commit = await first_turn(store, task)
    await store.deliver("wf-1", None, h.SignalReceived(name="late"))  # mid-turn
    assert await store.commit_turn(commit)
    [again] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    data = await store.load_turn(again.run_id, 0)
    assert [e.TYPE for _, e in data.inbox] == ["SignalReceived"]


async def test_closing_a_run_clears_its_tasks_and_timers(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    await store.commit_turn(
        await first_turn(
            store,
            task,
            activities=[NewActivity(1, "a", "q", [], {}, {"retry": {}})],
            timers=[(2, clock.now + 5)],
        )
    )
    await store.deliver("wf-1", None, h.CancelRequested())
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    data = await store.load_turn("run-1", 0)
    commit = TurnCommit(
        task=task,
        run_id="run-1",
        expected_version=data.run.version,
        events=h.turn_events(
            data.run.last_seq, 2.0, [e for _, e in data.inbox], [h.CancelWorkflow()]
        ),
        consumed_inbox=[i for i, _ in data.inbox],
        close_status="cancelled",
    )
    assert await store.commit_turn(commit)
    pending = await store.pending_work("run-1")
    assert (pending.activities, pending.timers, pending.workflow_task) == ([], [], None)
    run = await store.get_run("wf-1")
    assert run is not None and run.status == "cancelled" and run.closed_at is not None


async def test_lease_renewal_keeps_the_task_and_reports_lost_leases(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 10, 1)
    clock.advance(8)
    assert await store.renew_leases([(task.task_id, task.token)], 10) == []
    clock.advance(8)  # 16 s after the claim, but renewed at 8 s: still ours
    assert await store.claim_workflow_tasks(["q"], "other", 10, 1) == []
    clock.advance(11)
    [stolen] = await store.claim_workflow_tasks(["q"], "other", 10, 1)
    assert await store.renew_leases([(task.task_id, task.token)], 10) == [task.task_id]
    assert stolen.token != task.token


async def test_list_runs(open_store: Any) -> None:
    store = await open_store()
    for i in range(5):
        await store.create_run(new_run(wid=f"w{i}", run_id=f"r{i}"), "fail")
    await store.terminate("w1", None, None)
    assert [r.workflow_id for r in await store.list_runs(RunFilter(limit=3))] == ["w4", "w3", "w2"]
    assert [r.workflow_id for r in await store.list_runs(RunFilter(status="terminated"))] == ["w1"]
    assert await store.list_runs(RunFilter(workflow_type="other-type")) == []


async def test_a_restarted_worker_reclaims_the_leases_of_its_identity(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w-1", 30, 1)
    assert await store.claim_workflow_tasks(["q"], "w-2", 30, 1) == []  # leased
    assert await store.reclaim_leases("someone-else") == 0
    assert await store.reclaim_leases("w-1") == 1
    [again] = await store.claim_workflow_tasks(["q"], "w-1", 30, 1)
    assert again.task_id == task.task_id and again.token != task.token
    assert await store.commit_turn(await first_turn(store, task)) is False  # the old one is fenced
    assert await store.reclaim_leases("w-1") == 1  # the new lease is w-1's too


async def test_a_claim_on_several_queues_takes_the_oldest_due_tasks_of_all(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    order = ["a", "b", "b", "c", "a", "b"]  # queue of each run, oldest first
    for i, queue in enumerate(order):
        await store.create_run(new_run(f"wf-{i}", f"run-{i}", queue), "fail")
        clock.advance(1)
    first = await store.claim_workflow_tasks(["a", "b"], "w", 30, 3)
    assert sorted(t.run_id for t in first) == ["run-0", "run-1", "run-2"]
    rest = await store.claim_workflow_tasks(["b", "a"], "w", 30, 10)
    assert sorted(t.run_id for t in rest) == ["run-4", "run-5"]  # never queue c
    assert await store.claim_workflow_tasks(["a", "b"], "w", 30, 10) == []
    [c] = await store.claim_workflow_tasks(["c"], "w", 30, 10)
    assert c.run_id == "run-3"
