"""Store.stats on every backend: open and retrying runs, timers and the
first one's due time, each queue's due and running tasks and the oldest
due one, in one snapshot."""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock, new_run, turn

from perdure._store.base import BacklogRecord, NewActivity


async def test_stats_count_runs_timers_and_each_queues_backlog(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    empty = await store.stats()
    assert (empty.open_runs, empty.retrying_runs, empty.timers, empty.backlog) == (0, 0, 0, [])
    t0 = clock.now
    for i in range(3):
        await store.create_run(new_run(f"wf-{i}", f"run-{i}"), "fail")
    await store.create_run(new_run("other", "run-x", queue="elsewhere"), "fail")
    tasks = {t.run_id: t for t in await store.claim_workflow_tasks(["q"], "w", 30, 10)}
    assert set(tasks) == {"run-0", "run-1", "run-2"}  # (run-2's stays leased: running)
    # run-0: a turn that schedules two activities on "acts" and a timer.
    activities = [NewActivity(ref, "charge", "acts", [], {}, {}) for ref in (1, 2)]
    commit = await turn(store, tasks["run-0"], activities=activities, timers=[(3, t0 + 100)])
    assert await store.commit_turn(commit)
    # run-1: its turn failed, retried in 60 s (backing off: neither due nor running).
    assert await store.fail_turn(tasks["run-1"], "boom", 60)
    clock.advance(5)
    [running] = await store.claim_activity_tasks(["acts"], "w", 30, 1)
    stats = await store.stats()
    assert stats.now == clock.now
    assert (stats.open_runs, stats.retrying_runs, stats.timers) == (4, 1, 1)
    assert stats.first_timer_at == t0 + 100
    assert stats.backlog == [  # (by queue, then kind)
        BacklogRecord("activity", "acts", 1, 1, t0, {3: 1}),  # (the due by priority)
        BacklogRecord("workflow", "elsewhere", 1, 0, t0, {3: 1}),
        BacklogRecord("workflow", "q", 0, 1, None),
    ]
    assert running.run_id == "run-0"
    # An operator pauses both: the idle one is no longer due, the running one
    # runs on; both are counted as paused (workflow tasks never are).
    for ref in (1, 2):
        assert await store.set_activity_paused("run-0", ref, True) is not None
    paused = {(b.queue, b.kind): b for b in (await store.stats()).backlog}
    acts = paused["acts", "activity"]
    assert (acts.due, acts.running, acts.paused, acts.oldest_due_at) == (0, 1, 2, None)
    assert paused["q", "workflow"].paused == 0
    for ref in (1, 2):
        assert await store.set_activity_paused("run-0", ref, False) is not None
    assert {b.queue: b.paused for b in (await store.stats()).backlog}["acts"] == 0
    # Its lease run out, run-2's turn is due again, since its lease's end.
    clock.advance(30)
    later = {(b.queue, b.kind): b for b in (await store.stats()).backlog}
    assert later["q", "workflow"] == BacklogRecord("workflow", "q", 1, 0, t0 + 30, {3: 1})
