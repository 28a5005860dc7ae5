"""The Store contract for fairness keys (docs/queues.md "Fairness"): within
a priority, a queue's claims serve the keys with due tasks in turn, so one
key's backlog does not hold back another's work; unkeyed tasks are one key
among the others; a key whose tasks are not due (leased, delayed) is passed
over; a claim's room is shared among the keys, and what a key cannot use
goes to those that can; priorities still come first; a queue whose keyed
tasks are all gone is claimed as before; a run's key reaches its workflow
tasks and its activities (unless they have their own)."""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store import sqlfair
from perdure._store.base import NewActivity, NewRun, QueueLimitsRecord, Store


def keyed(run_id: str, key: str = "", priority: int = 3, start_at: float | None = None) -> NewRun:
    new = new_run(wid=f"wf-{run_id}", run_id=run_id)
    new.fairness_key, new.priority, new.start_at = key, priority, start_at
    return new


async def scheduled(store: Store, run_key: str, keys: list[str]) -> None:
    """run-1 (of ``run_key``) and its first turn, which schedules one
    activity of each of ``keys``, ref 1 on: its own key, else the run's."""
    await store.create_run(keyed("run-1", run_key), "fail")
    task = await claim_one(store, "run-1")
    activities = [
        NewActivity(
            ref, "charge", "q", [], {}, {"fairness_key": key} if key != run_key else {},
            fairness_key=key,
        )
        for ref, key in enumerate(keys, start=1)
    ]  # fmt: skip
    assert await store.commit_turn(await turn(store, task, activities=activities))


async def claimed_runs(store: Store, limit: int, queue: str = "q") -> list[str]:
    return [t.run_id for t in await store.claim_workflow_tasks([queue], "w", 30, limit)]


async def backlog(store: Store, clock: FakeClock, counts: dict[str, int]) -> None:
    """``counts[key]`` runs of each key, each key's all started before the
    next key's (the oldest tasks are the first key's)."""
    for key, count in counts.items():
        for i in range(count):
            clock.advance(0.01)
            await store.create_run(keyed(f"{key or 'none'}-{i}", key), "fail")


def key_of(run_id: str) -> str:
    return run_id.rsplit("-", 1)[0]


async def test_one_keys_backlog_does_not_hold_back_another(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await backlog(store, clock, {"big": 40, "small": 3, "": 2})
    order = []
    for _ in range(12):
        order += await claimed_runs(store, 1)
    # Without keys the 40 of "big" went first (the oldest). The first claim
    # cannot know the queue has keys (it takes an unkeyed task, and learns
    # it); from then on the keys take turns, each its oldest first.
    assert order == [
        "none-0",
        *["none-1", "big-0", "small-0", "big-1", "small-1", "big-2", "small-2"],
        *["big-3", "big-4", "big-5", "big-6"],
    ]


async def test_a_claims_room_is_shared_and_what_a_key_cannot_use_goes_on(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await backlog(store, clock, {"big": 30, "small": 3})
    assert await claimed_runs(store, 1) == []  # (none unkeyed: learns of the keys)
    # Ten: five each, but "small" has three; its other two go to "big". In
    # turn: each key's first, then each one's second...
    assert await claimed_runs(store, 10) == [
        *["big-0", "small-0", "big-1", "small-1", "big-2", "small-2"],
        *["big-3", "big-4", "big-5", "big-6"],
    ]
    assert await claimed_runs(store, 3) == ["big-7", "big-8", "big-9"]


async def test_more_keys_than_room_are_served_in_turn(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await backlog(store, clock, {f"k{i:02}": 2 for i in range(25)})
    assert await claimed_runs(store, 1) == []
    # Ten keys a claim, one task each, the turn going on where it stopped:
    # every key has its first task claimed before any has its second.
    claims = [await claimed_runs(store, 10) for _ in range(3)]
    assert claims == [
        [f"k{i:02}-0" for i in range(10)],
        [f"k{i:02}-0" for i in range(10, 20)],
        [*(f"k{i:02}-0" for i in range(20, 25)), *(f"k{i:02}-1" for i in range(5))],
    ]


async def test_a_key_with_nothing_due_is_passed_over(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    for i in range(5):  # a key whose runs start in a minute
        await store.create_run(keyed(f"later-{i}", "later", start_at=clock.now + 60), "fail")
    await backlog(store, clock, {"now": 4})
    assert await claimed_runs(store, 1) == []
    assert await claimed_runs(store, 10) == ["now-0", "now-1", "now-2", "now-3"]
    assert await claimed_runs(store, 10) == []  # (all leased or not due)
    clock.advance(61)  # (the leases ran out too: every task due again)
    assert await claimed_runs(store, 100) == [
        *["later-0", "now-0", "later-1", "now-1", "later-2", "now-2", "later-3", "now-3"],
        "later-4",
    ]


async def test_a_walk_cut_short_goes_on_from_where_it_stopped(
    open_store: Any, clock: FakeClock, monkeypatch: Any
) -> None:
    """A claim walks so many keys at most (KEYS_WALKED); when as many keys
    in a row have nothing due (their tasks running, backing off), the next
    claim goes on after the last one walked: the keys beyond are reached."""
    monkeypatch.setattr(sqlfair, "KEYS_WALKED", 4)
    store: Store = await open_store()
    for i in range(9):  # nine keys before "z", none of them due
        await store.create_run(keyed(f"a{i}-0", f"a{i}", start_at=clock.now + 60), "fail")
    await backlog(store, clock, {"z": 3})
    assert await claimed_runs(store, 1) == []  # (learns of the keys)
    claims = [await claimed_runs(store, 10) for _ in range(4)]
    # a0..a3, then a4..a7 walked; the third walk reaches "z" (before, every
    # claim walked a0..a3 again: "z" waited until a key came due).
    assert claims == [[], [], ["z-0", "z-1", "z-2"], []]


async def test_priorities_come_before_keys(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await store.create_run(keyed("late-0", "c", priority=5), "fail")
    await backlog(store, clock, {"a": 3, "b": 3})
    await store.create_run(keyed("urgent-0", "b", priority=1), "fail")
    assert await claimed_runs(store, 1) == []
    assert await claimed_runs(store, 20) == [
        "urgent-0",
        *["a-0", "b-0", "a-1", "b-1", "a-2", "b-2"],
        "late-0",
    ]


async def test_the_queue_leaves_the_fair_mode_when_its_keys_are_gone(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    turns: sqlfair.Turns = store._turns  # type: ignore[attr-defined]
    await backlog(store, clock, {"a": 2})
    assert await claimed_runs(store, 10) == []
    assert ("workflow", "q") in turns.keyed
    tasks = await store.claim_workflow_tasks(["q"], "w", 30, 10)
    assert [t.run_id for t in tasks] == ["a-0", "a-1"]
    await backlog(store, clock, {"": 2})
    # Leased keyed tasks keep the mode (they may come back); the unkeyed are
    # a key of the turn.
    assert await claimed_runs(store, 1) == ["none-0"]
    assert ("workflow", "q") in turns.keyed
    for task in tasks:  # the keyed runs end: no keyed task is left
        done = await turn(store, task, [h.CompleteWorkflow(result=None)], close_status="completed")
        assert await store.commit_turn(done)
    assert await claimed_runs(store, 1) == ["none-1"]
    assert ("workflow", "q") not in turns.keyed


async def test_a_runs_key_reaches_its_activities_unless_they_have_their_own(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await scheduled(store, "tenant-7", ["tenant-7", "tenant-9"])
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []  # (learns of the keys)
    claimed = await store.claim_activity_tasks(["q"], "w", 30, 10)
    assert [(t.ref, t.fairness_key) for t in claimed] == [(1, "tenant-7"), (2, "tenant-9")]
    run = await store.get_run("wf-run-1", None)
    assert run is not None and run.fairness_key == "tenant-7"


async def test_a_limited_queues_room_is_shared_among_its_keys(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await scheduled(store, "a", ["a"] * 8 + ["b"] * 2)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=4))
    # Room for four: two each, though "a" has eight waiting. (The claim's
    # first part, of the queue's unkeyed tasks if it had no limits, learns
    # of the keys before its limited part runs.)
    first = await store.claim_activity_tasks(["q"], "w", 30, 10)
    assert [(t.ref, t.fairness_key) for t in first] == [(1, "a"), (9, "b"), (2, "a"), (10, "b")]
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []  # (full)


async def test_a_queues_record_counts_the_waiting_by_key(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await scheduled(store, "a", ["a"] * 5 + ["b"] * 3 + [f"k{i:02}" for i in range(12)] + [""] * 4)
    [record] = await store.queues("q")
    assert record.waiting == 24
    assert record.waiting_keys == 14  # (the unkeyed four are in neither)
    assert record.waiting_by_key == {
        "a": 5,
        "b": 3,
        **{f"k{i:02}": 1 for i in range(8)},  # (ten keys: the most, then by name)
    }
    [plain] = await store.queues("other")
    assert (plain.waiting_keys, plain.waiting_by_key) == (0, {})


async def test_a_waiting_runs_place_counts_the_turns_of_the_other_keys(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await backlog(store, clock, {"big": 30, "small": 3})
    clock.advance(5)  # (a place is counted for a task that has waited a while)

    async def ahead(run_id: str) -> int | None:
        task = (await store.pending_work(run_id)).workflow_task
        assert task is not None
        return task.ahead

    # Served in turn: the small key's third task after two of each key's.
    assert await ahead("small-2") == 4
    assert await ahead("big-0") == 0
    assert await ahead("big-9") == 9 + 3  # (the small key has three only)
    # Unkeyed tasks are a key of the turn like the others.
    await backlog(store, clock, {"": 5})
    clock.advance(5)
    assert await ahead("none-3") == 3 + 3 + 3


def test_shares() -> None:
    assert sqlfair.share_out(["a", "b", "c"], 2).given == [("a", 1), ("b", 1)]
    assert sqlfair.share_out(["a", "b", "c"], 7).given == [("a", 3), ("b", 2), ("c", 2)]
    assert sqlfair.share_out(["a"], 5).given == [("a", 5)]


async def test_sqlite_reads_the_keyed_tasks_by_their_own_index(tmp_path: Any) -> None:
    """SQLite's planner (no statistics) would read whether a queue has keyed
    tasks through tasks_due, every task of the queue (1.2 ms for 20,000);
    the dialect names the partial index, a search."""
    import sqlite3

    from perdure._store import store_for_url

    path = tmp_path / "keyed.db"
    store = store_for_url(f"sqlite:///{path}")
    await store.open()
    try:
        check, params = sqlfair.keyed_check(store.keyed_tasks, "activity", ["q"])  # type: ignore[attr-defined]
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        plan = " ".join(str(r) for r in conn.execute(f"EXPLAIN QUERY PLAN {check}", params))
    finally:
        conn.close()
    assert "USING INDEX tasks_keyed" in plan, plan


async def test_a_limited_keyed_queue_is_walked_by_its_limited_claim_only(tmp_path: Any) -> None:
    """An activity claim first takes the queues without limits (the tasks of
    a limited queue excluded), then the limited ones: a keyed queue with
    limits is not walked key by key in the first part, where every key would
    be passed over for having nothing due there."""
    from perdure._store import store_for_url
    from perdure._store.sqlite import SqliteStore

    store = store_for_url(f"sqlite:///{tmp_path / 'limited.db'}")
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        await scheduled(store, "a", [f"k{ref}" for ref in range(1, 31)])
        await store.set_queue_limits("q", QueueLimitsRecord(max_running=3))
        first = await store.claim_activity_tasks(["q"], "w", 30, 10)
        assert len(first) == 3  # (its room; the queue is full now)
        statements: list[str] = []
        assert store._conn is not None
        store._conn.set_trace_callback(statements.append)
        claimed = await store.claim_activity_tasks(["q"], "w", 30, 10)
        store._conn.set_trace_callback(None)
    finally:
        await store.close()
    # No room: the limited part claims nothing, and the first part walked no
    # key (it had walked the queue's keys of all five priorities).
    assert claimed == []
    assert not [s for s in statements if s.startswith("WITH RECURSIVE")], statements


async def test_a_change_of_key_moves_the_runs_tasks_and_fences_its_turn(
    open_store: Any, clock: FakeClock
) -> None:
    """set_fairness_key: the run's row, its workflow task and the activity
    tasks that took the run's key (running or not; not one given its own)
    take the new key; the version moves on, so a turn computed before is
    fenced out; FairnessKeyChanged waits in the inbox; '' takes it away."""
    store: Store = await open_store()
    await scheduled(store, "acme", ["acme", "own", "acme"])  # (refs 1, 2 and 3)
    assert await store.claim_activity_tasks(["q"], "w", 30, 1) == []  # (learns of the keys)
    [running] = await store.claim_activity_tasks(["q"], "w", 30, 1)
    assert (running.ref, running.fairness_key) == (1, "acme")
    await store.deliver("wf-run-1", None, h.SignalReceived(name="go"))
    task = await claim_one(store, "run-1")
    in_flight = await turn(store, task, activities=[NewActivity(4, "charge", "q", [], {}, {})])

    changed = await store.set_fairness_key("wf-run-1", None, "globex")
    assert changed.fairness_key == "globex"
    assert not await store.commit_turn(in_flight)
    data = await store.load_turn("run-1", 0)
    assert data.run.fairness_key == "globex"
    assert [type(e).__name__ for _, e in data.inbox] == ["SignalReceived", "FairnessKeyChanged"]
    assert data.inbox[-1][1].fairness_key == "globex"  # type: ignore[attr-defined]

    async def keys() -> list[tuple[str, Any, str]]:
        held = await store._read(  # type: ignore[attr-defined]
            lambda tx: tx.all("SELECT kind, ref, fairness_key FROM tasks ORDER BY id")
        )
        return sorted(tuple(r) for r in held)  # type: ignore[misc]

    assert await keys() == [
        ("activity", 1, "globex"),  # (running: it counts against globex now)
        ("activity", 2, "own"),
        ("activity", 3, "globex"),
        ("workflow", None, "globex"),
    ]
    assert (await store.set_fairness_key("wf-run-1", None, "")).fairness_key == ""
    assert await keys() == [
        ("activity", 1, ""),
        ("activity", 2, "own"),
        ("activity", 3, ""),
        ("workflow", None, ""),
    ]
