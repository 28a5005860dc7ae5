"""SQLite applies the commonest turns of one group commit together: inline
continuations that start the next activity at once come with a Plan
(sqlplans.plan_turn), plain closes with a ClosePlan (an inline step's, or a
claimed workflow task's that consumed its inbox: a timer, a signal), and a
batch's plans are written with one statement per kind for all of them. The
rows must be exactly those the turns' bodies write; a tripped fence must
cost the other turns nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from store_helpers import (
    FakeClock,
    claim_one,
    leased_charge,
    new_run,
    schedule_charge,
    together,
    turn,
)

from perdure import _history as h
from perdure._store import sqlitetx
from perdure._store.base import NewActivity, Store, TurnCommit, WorkflowTask
from perdure._store.sqlclaimed import plan_claimed
from perdure._store.sqlite import SqliteStore
from perdure._store.sqlplans import plan_close, plan_turn
from perdure._store.sqlrows import Tx
from perdure._store.sqlstart import StartPlan
from perdure._store.sqlstore import SqlStore
from perdure._store.sqlturn import encode_turn

RUNS = 5


async def _open(path: Path, clock: FakeClock) -> SqliteStore:
    store = SqliteStore(str(path), clock=clock)
    await store.open()
    return store


async def _first_activities(
    store: Store, runs: int = RUNS, leftovers: bool = False
) -> dict[str, int]:
    """``runs`` runs, each with its first activity leased here: run id -> task
    id. ``leftovers``: each run also has a timer and a queued activity of its
    own (what a close must delete with the run)."""
    ids = {}
    for i in range(runs):
        run_id = f"run-{i}"
        await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
        task = await claim_one(store, run_id)
        commands: list[h.Command] = [schedule_charge(1)]
        activities = [leased_charge(1, f"{run_id}/1")]
        extra: dict[str, Any] = {}
        if leftovers:
            commands += [schedule_charge(3), h.StartTimer(ref=4, fire_at=999.0)]
            activities.append(NewActivity(3, "charge", "q", [3], {}, {}, None))
            extra["timers"] = [(4, 999.0)]
        commit = await turn(store, task, commands, activities=activities, **extra)
        assert await store.commit_turn(commit)
        ids[run_id] = commit.created_tasks[1]
    return ids


async def _continuation(
    store: Store, run_id: str, task_id: int, token: str | None = None, stale: bool = False
) -> TurnCommit:
    """The turn after activity 1 completed: record it, start activity 2 here
    (the worker, which keeps the instance, names itself the run's holder)."""
    return await _after_first(
        store,
        run_id,
        task_id,
        token,
        stale,
        schedule_charge(2),
        activities=[leased_charge(2, f"{run_id}/2")],
        holder="worker-1",
    )


async def _close(
    store: Store, run_id: str, task_id: int, token: str | None = None, stale: bool = False
) -> TurnCommit:
    """The turn after activity 1 completed, which completes the run."""
    result = {"done": run_id}
    return await _after_first(
        store,
        run_id,
        task_id,
        token,
        stale,
        h.CompleteWorkflow(result=result),
        close_status="completed",
        result=result,
        has_relatives=False,
    )


async def _after_first(
    store: Store,
    run_id: str,
    task_id: int,
    token: str | None,
    stale: bool,
    command: h.Command,
    **extra: Any,
) -> TurnCommit:
    """The inline turn that records activity 1's completion and issues
    ``command`` (``stale``: from an old version; ``token``: another lease)."""
    data = await store.load_turn(run_id, 0)
    return TurnCommit(
        task=None,
        run_id=run_id,
        expected_version=data.run.version - (1 if stale else 0),
        events=h.turn_events(
            data.run.last_seq,
            2.0,
            [h.ActivityCompleted(ref=1, result={"ok": True}, attempts=[{"attempt": 1}])],
            [command],
        ),
        consumed_inbox=[],
        activity_done=(task_id, token or f"{run_id}/1"),
        **extra,
    )


async def _rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    async def body(tx: Tx) -> dict[str, list[tuple[Any, ...]]]:
        return {
            "runs": await tx.all("SELECT * FROM runs ORDER BY run_id"),
            "tasks": await tx.all("SELECT * FROM tasks ORDER BY id"),
            "events": await tx.all("SELECT * FROM events ORDER BY run_id, seq"),
        }

    return await store._read(body)


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each call of run_plans returned (a list of jobs, or None), the
    starts of new runs left out (see test_start_plans.py)."""
    calls: list[Any] = []
    run_plans = sqlitetx.run_plans

    def spy(conn: Any, batch: Any) -> Any:
        got = run_plans(conn, batch)
        turns = None if got is None else [j for j in got if type(j[0].plan) is not StartPlan]
        calls.append(turns)
        return got

    monkeypatch.setattr(sqlitetx, "run_plans", spy)
    return calls


async def test_plans_write_exactly_what_the_bodies_write(
    tmp_path: Path, applied: list[Any]
) -> None:
    rows = {}
    for name in ("together", "alone", "bodies"):
        clock = FakeClock()
        store = await _open(tmp_path / f"{name}.db", clock)
        if name == "bodies":
            store.applies_plans = False  # (no plan is built: every turn is its body)
        ids = await _first_activities(store)
        commits = [await _continuation(store, r, t) for r, t in ids.items()]
        assert all(plan_turn(c, clock(), _encoded(c)) is not None for c in commits)
        applied.clear()
        if name == "together":
            results = await together(store, [store.commit_turn(c) for c in commits])
        else:  # one at a time: each flush holds one turn
            results = [await store.commit_turn(c) for c in commits]
        assert results == [True] * RUNS
        # Each next activity took its finished one's task row over.
        assert [c.created_tasks for c in commits] == [{2: t} for t in ids.values()]
        expected = {"together": [RUNS], "alone": [1] * RUNS, "bodies": []}[name]
        assert [len(a) for a in applied if a] == expected
        rows[name] = await _rows(store)
        await store.close()
    assert rows["together"] == rows["alone"] == rows["bodies"]
    assert len(rows["bodies"]["events"]) == RUNS * (3 + 3)  # the first turn's, the continuation's


def _encoded(commit: TurnCommit) -> Any:
    return encode_turn(commit)


@pytest.mark.parametrize("fault", ["stale version", "lost lease", "same run twice"])
async def test_a_tripped_fence_costs_the_other_turns_nothing(
    tmp_path: Path, applied: list[Any], fault: str
) -> None:
    store = await _open(tmp_path / "store.db", FakeClock())
    ids = await _first_activities(store)
    applied.clear()  # (the first turns were plans too: claimed tasks' turns)
    before = await _rows(store)
    commits = [await _continuation(store, r, t) for r, t in ids.items()]
    bad_run, bad_task = next(iter(ids.items()))
    if fault == "stale version":
        commits[0] = await _continuation(store, bad_run, bad_task, stale=True)
    elif fault == "lost lease":
        commits[0] = await _continuation(store, bad_run, bad_task, token="not-mine")
    else:  # a second turn for run-0, from the same version: only one can win
        commits.append(await _continuation(store, bad_run, bad_task))

    results = await together(store, [store.commit_turn(c) for c in commits])

    if fault == "same run twice":
        assert sorted(results[:1] + results[-1:]) == [False, True]
        assert results[1:-1] == [True] * (RUNS - 1)
        # The second turn of run-0 was left to its body, so the plans went through.
        assert [len(a) for a in applied if a] == [RUNS]
        return
    assert results == [False] + [True] * (RUNS - 1)
    assert None in applied  # the fence tripped inside the plans: the bodies took over
    after = await _rows(store)
    assert [r for r in after["runs"] if r[1] == bad_run] == [
        r for r in before["runs"] if r[1] == bad_run
    ]
    assert [e for e in after["events"] if e[0] == bad_run] == [
        e for e in before["events"] if e[0] == bad_run
    ]
    assert len(after["events"]) == len(before["events"]) + 3 * (RUNS - 1)
    assert commits[0].created_tasks == {}
    await store.close()


async def test_other_turns_have_no_plan(tmp_path: Path) -> None:
    store = await _open(tmp_path / "store.db", FakeClock())
    ids = await _first_activities(store)
    run_id, task_id = next(iter(ids.items()))
    commit = await _continuation(store, run_id, task_id)
    assert plan_turn(commit, 1.0, _encoded(commit)) is not None
    variants = {
        "a closing turn": {"close_status": "completed", "activities": []},
        "a turn with a timer": {"timers": [(3, 9.0)]},
        "two activities": {"activities": [*commit.activities, leased_charge(3, "x")]},
        "an activity for the queue": {
            "activities": [NewActivity(2, "charge", "q", [2], {}, {}, None)]
        },
        "an inbox row consumed": {"consumed_inbox": [7]},
        "no finished activity (a workflow task's turn)": {"activity_done": None},
    }
    for what, changes in variants.items():
        other = dataclasses.replace(commit, **changes)
        assert plan_turn(other, 1.0, _encoded(other)) is None, what
    await store.close()


Make = Callable[..., Awaitable[TurnCommit]]


async def claimed(
    store: Store, ids: dict[str, int], turn_of: Callable[[str], tuple[list[h.Command], Any]]
) -> Make:
    """A signal for each run of ``ids``, its workflow task claimed here; and
    a maker of each run's turn for that task, which consumes the signal and
    issues the commands ``turn_of(run_id)`` gives (with the commit's other
    fields: what a turn woken by a timer or a signal does)."""
    tasks = {}
    for run_id in ids:
        await store.deliver(run_id, None, h.SignalReceived(name="go", payload=run_id))
        tasks[run_id] = await claim_one(store, run_id)

    async def make(
        store: Store, run_id: str, task_id: int, token: str | None = None, stale: bool = False
    ) -> TurnCommit:
        task = tasks[run_id]
        if token is not None:
            task = dataclasses.replace(task, token=token)
        commands, extra = turn_of(run_id)
        commit = await turn(store, task, commands, **extra)
        assert commit.consumed_inbox
        if stale:
            commit.expected_version -= 1
        return commit

    return make


def _ending(run_id: str) -> tuple[list[h.Command], dict[str, Any]]:
    result = {"done": run_id}
    close = {"close_status": "completed", "result": result, "has_relatives": False}
    return [h.CompleteWorkflow(result=result)], close


async def claimed_closes(store: Store, ids: dict[str, int]) -> Make:
    """claimed: each run's closing turn (as _close's, but for the claimed
    task: a timer that fired or a signal that ends a run)."""
    return await claimed(store, ids, _ending)


async def closes_to_apply(
    store: SqlStore, runs: int, now: float, claimed: bool = False
) -> tuple[dict[str, int], list[TurnCommit]]:
    """``runs`` runs with leftovers, someone here waiting for each (so that
    its close reads it back), and the closing turn of each, every one with
    a ClosePlan (``claimed``: a claimed workflow task's, see claimed_closes)."""
    ids = await _first_activities(store, runs, leftovers=True)
    left = await _all_rows(store)
    assert (len(left["tasks"]), len(left["timers"])) == (2 * runs, runs)
    for run_id in ids:
        store.add_run_listener(run_id, lambda: None)
    make = await claimed_closes(store, ids) if claimed else _close
    commits = [await make(store, r, t) for r, t in ids.items()]
    assert all(plan_close(c, now, _encoded(c), None) is not None for c in commits)
    return ids, commits


def assert_closed_alike(
    rows: dict[str, dict[str, list[tuple[Any, ...]]]], seen: dict[str, list[Any]], runs: int
) -> None:
    """Closes applied "together" left the rows and gave each waiter the
    record that their "bodies" did, and every run's tasks and timers went."""
    assert rows["together"] == rows["bodies"]
    assert rows["bodies"]["tasks"] == rows["bodies"]["timers"] == []
    assert [r.status if r else None for r in seen["together"]] == ["completed"] * runs
    assert seen["together"] == seen["bodies"]


async def faulty(
    store: Store, ids: dict[str, int], make: Any, fault: str, at: int
) -> tuple[list[TurnCommit], str]:
    """A turn by ``make`` for each run, the one at ``at`` made to fail by
    ``fault`` ("stale version", "lost lease", or "a signal came": input
    reached its inbox after the turn was computed); and that run's id."""
    commits = [await make(store, r, t) for r, t in ids.items()]
    bad_run, bad_task = list(ids.items())[at]
    if fault == "stale version":
        commits[at] = await make(store, bad_run, bad_task, stale=True)
    elif fault == "lost lease":
        commits[at] = await make(store, bad_run, bad_task, token="not-mine")
    else:
        await store.deliver(bad_run, None, h.SignalReceived(name="late"))
    return commits, bad_run


def assert_untouched(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]], run_id: str
) -> None:
    """Every row of ``run_id`` in ``after`` is as it was ``before``."""
    for table, rows in before.items():
        mine = [row for row in rows if run_id in row]
        assert [row for row in after[table] if run_id in row] == mine, table


async def _all_rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    async def body(tx: Tx) -> dict[str, list[tuple[Any, ...]]]:
        return {
            table: await tx.all(f"SELECT * FROM {table} ORDER BY {key}")
            for table, key in (
                ("runs", "run_id"),
                ("tasks", "id"),
                ("events", "run_id, seq"),
                ("timers", "run_id, ref"),
                ("inbox", "id"),
            )
        }

    return await store._read(body)


@pytest.mark.parametrize("claimed", [False, True], ids=["inline", "claimed"])
async def test_closes_write_exactly_what_the_bodies_write(
    tmp_path: Path, applied: list[Any], claimed: bool
) -> None:
    rows = {}
    seen = {}
    for name in ("together", "bodies"):
        clock = FakeClock()
        store = await _open(tmp_path / f"{name}.db", clock)
        if name == "bodies":
            store.applies_close_plans = False
        ids, commits = await closes_to_apply(store, RUNS, clock(), claimed)
        applied.clear()
        results = await together(store, [store.commit_turn(c) for c in commits])
        assert results == [True] * RUNS
        assert [len(a) for a in applied if a] == ([RUNS] if name == "together" else [])
        seen[name] = [store.ended_here(r) for r in ids]
        rows[name] = await _all_rows(store)
        await store.close()
    assert_closed_alike(rows, seen, RUNS)
    assert rows["bodies"]["inbox"] == []  # (the signals the claimed closes consumed went)


@pytest.mark.parametrize("claimed", [False, True], ids=["inline", "claimed"])
@pytest.mark.parametrize("fault", ["stale version", "lost lease", "a signal came"])
async def test_a_tripped_close_costs_the_other_turns_nothing(
    tmp_path: Path, applied: list[Any], fault: str, claimed: bool
) -> None:
    store = await _open(tmp_path / "store.db", FakeClock())
    ids = await _first_activities(store, RUNS, leftovers=True)
    make = await claimed_closes(store, ids) if claimed else _close
    commits, bad_run = await faulty(store, ids, make, fault, 0)
    before = await _all_rows(store)

    results = await together(store, [store.commit_turn(c) for c in commits])

    assert results == [False] + [True] * (RUNS - 1)
    assert None in applied  # the fence tripped inside the plans: the bodies took over
    after = await _all_rows(store)
    assert_untouched(before, after, bad_run)
    assert sum(1 for r in after["runs"] if "completed" in r) == RUNS - 1
    await store.close()


def claimed_commit(**fields: Any) -> TurnCommit:
    """A turn for workflow task 3 (token "t") of run "r", with ``fields``."""
    task = WorkflowTask(task_id=3, run_id="r", token="t", attempt=1)
    return TurnCommit(task=task, run_id="r", expected_version=2, events=[], **fields)


def test_a_claimed_close_is_planned_only_in_its_plain_shape() -> None:
    """A claimed workflow task's closing turn has a ClosePlan, its inbox rows
    with it; not if it also names an inline step's activity, starts its
    run's next run, or has relatives (their rows need the body)."""
    commit = claimed_commit(
        consumed_inbox=[5, 6],
        close_status="completed",
        result=1,
        has_relatives=False,
    )
    plan = plan_close(commit, 1.0, _encoded(commit), None)
    assert plan is not None and (plan.done, plan.consumed) == ((3, "t"), (5, 6))
    for changes in (
        {"activity_done": (4, "x")},
        {"has_relatives": True},
        {"fresh": True},
        {"close_status": None},
        {"continue_as_new": new_run()},
    ):
        other = dataclasses.replace(commit, **changes)
        assert plan_close(other, 1.0, _encoded(other), None) is None, changes


def _going_on(run_id: str) -> tuple[list[h.Command], dict[str, Any]]:
    commands = [schedule_charge(2), schedule_charge(3), h.StartTimer(ref=4, fire_at=99.0)]
    activities = [
        leased_charge(2, f"{run_id}/2"),
        NewActivity(3, "charge", "q", [3], {}, {}, None),
    ]
    return commands, {"activities": activities, "timers": [(4, 99.0)]}


async def claimed_turns(store: Store, ids: dict[str, int]) -> Make:
    """claimed: each run's turn that leaves the run open, starting activity
    2 here (leased), activity 3 for the queue and timer 4."""
    return await claimed(store, ids, _going_on)


async def test_claimed_turns_write_exactly_what_the_bodies_write(
    tmp_path: Path, applied: list[Any]
) -> None:
    rows = {}
    told = {}
    for name in ("together", "bodies"):
        clock = FakeClock()
        store = await _open(tmp_path / f"{name}.db", clock)
        ids = await _first_activities(store)
        make = await claimed_turns(store, ids)
        commits = [await make(store, r, t) for r, t in ids.items()]
        assert all(plan_claimed(c, clock(), _encoded(c)) is not None for c in commits)
        if name == "bodies":
            store.applies_plans = False
        applied.clear()
        results = await together(store, [store.commit_turn(c) for c in commits])
        assert results == [True] * RUNS
        assert [len(a) for a in applied if a] == ([RUNS] if name == "together" else [])
        told[name] = [c.created_tasks for c in commits]
        rows[name] = await _all_rows(store)
        await store.close()
    assert without_task_ids(rows["together"], told["together"]) == without_task_ids(
        rows["bodies"], told["bodies"]
    )
    # Each run: its leased activity 2 told to its commit, activity 3 queued,
    # timer 4 set, the signal consumed, the workflow task gone.
    _, named = without_task_ids(rows["together"], told["together"])
    assert named == [{2: (run_id, 2)} for run_id in ids]
    tasks = rows["together"]["tasks"]
    assert sorted((t[1], t[4]) for t in tasks) == sorted(
        [("activity", ref) for _ in range(RUNS) for ref in (1, 2, 3)]
    )
    assert rows["together"]["inbox"] == []
    assert len(rows["together"]["timers"]) == RUNS


@pytest.mark.parametrize("fault", ["stale version", "lost lease", "a signal came"])
async def test_a_tripped_claimed_turn_costs_the_other_turns_nothing(
    tmp_path: Path, applied: list[Any], fault: str
) -> None:
    store = await _open(tmp_path / "store.db", FakeClock())
    ids = await _first_activities(store)
    make = await claimed_turns(store, ids)
    commits, bad_run = await faulty(store, ids, make, fault, 0)
    before = await _all_rows(store)
    applied.clear()

    results = await together(store, [store.commit_turn(c) for c in commits])

    after = await _all_rows(store)
    per_turn = len(commits[-1].events)  # (the signal, a marker, three commands)
    events = len(before["events"]) + per_turn * (RUNS - 1)
    if fault == "a signal came":
        # The plans commit every turn, and requeue that one's task for the
        # new signal, as its body would.
        assert None not in applied and applied
        assert results == [True] * RUNS
        (task,) = [t for t in after["tasks"] if t[1] == "workflow"]
        assert (task[3], task[7], task[8]) == (bad_run, None, None)  # (run, owner, token)
        assert [r[1] for r in after["inbox"]] == [bad_run]
        assert len(after["events"]) == events + per_turn
        return
    assert None in applied  # the plans failed as a whole: the bodies took over
    assert results == [False] + [True] * (RUNS - 1)
    assert_untouched(before, after, bad_run)
    assert len(after["events"]) == events
    assert commits[0].created_tasks == {}


def without_task_ids(
    rows: dict[str, list[tuple[Any, ...]]], told: list[dict[int, int]]
) -> tuple[dict[str, list[tuple[Any, ...]]], list[dict[int, tuple[Any, ...]]]]:
    """The rows with the task rows' ids left out (concurrent transactions
    may take new ids in any order), and each commit's new task ids as the
    (run id, ref) of the row they name."""
    by_id = {task[0]: (task[3], task[4]) for task in rows["tasks"]}
    kept = dict(rows, tasks=sorted(task[1:] for task in rows["tasks"]))
    return kept, [{ref: by_id[task_id] for ref, task_id in t.items()} for t in told]


def test_a_claimed_turn_is_planned_only_in_its_plain_shape() -> None:
    """A claimed task's turn that leaves its run open has a ClaimedPlan; not
    an inline turn, a close, a new run's first turn, one that cancels
    anything, or one that starts a child without the worker naming the run
    (their rows need the body). It wakes the pollers only if it queued work
    for them."""
    commit = claimed_commit(consumed_inbox=[5], activities=[leased_charge(2, "x")])
    plan = plan_claimed(commit, 1.0, _encoded(commit))
    assert plan is not None and (plan.done, plan.consumed, plan.leased) == ((3, "t"), (5,), {2})
    assert plan.topics() == set()
    queued = dataclasses.replace(commit, timers=[(4, 9.0)])
    assert (plan_claimed(queued, 1.0, _encoded(queued)) or plan).topics() == {"work"}
    for changes in (
        {"task": None, "activity_done": (4, "x")},
        {"close_status": "completed"},
        {"fresh": True},
        {"children": [object()]},  # (workflow_id and task_queue not given)
        {"cancelled_activities": [1]},
        {"cancelled_timers": [1]},
        {"cancelled_children": [1]},
        {"continue_as_new": new_run()},
    ):
        other = dataclasses.replace(commit, **changes)
        assert plan_claimed(other, 1.0, _encoded(other)) is None, changes
