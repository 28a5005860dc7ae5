"""Inline timers' turns (TurnCommit.fired_timer), on both backends: a worker
that holds a run's instance takes in its due timer itself, and the turn's
commit deletes the timer's row as its fence, with no inbox row and no
workflow task. Such a turn that leaves its run open is a ClaimedPlan without
a task, one that ends it a ClosePlan without one; SQLite's rounds and
PostgreSQL's groups apply them together with the others. The rows must be
exactly those the bodies write, and a timer a firer took first (or that is
gone) must trip that turn's fence and cost the other turns nothing."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import Opener, claim_one, leased_charge, new_run, schedule_charge, turn
from test_complete_plans import RUNS, all_at_once, comparable
from test_sqlite_plans import _all_rows

from perdure import _history as h
from perdure._store import postgres, sqlitetx
from perdure._store.base import NewActivity, TurnCommit
from perdure._store.sqlclaimed import ClaimedPlan, plan_claimed
from perdure._store.sqlplans import ClosePlan, plan_close
from perdure._store.sqlstore import SqlStore
from perdure._store.sqlturn import encode_turn

NOW = 1_700_000_100.0
DUE = 1_699_999_990.0  # (the store's FakeClock starts at 1_700_000_000: long due)

# shape -> what the turn the timer wakes does
SHAPES = ["another timer", "an activity here", "an activity queued", "the run ends"]


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The run ids of the inline timers' plans each application of plans
    took, on either backend."""
    calls: list[list[str]] = []
    claimed, close = sqlitetx._claimed, sqlitetx._close
    apply_claimed, apply_closes = postgres.apply_claimed, postgres.apply_closes

    def note(plans: Any) -> None:
        runs = [p.run_id for p in plans if p.fired is not None]
        if runs:
            calls.append(runs)

    def sqlite_claimed(conn: Any, plans: Any) -> Any:
        note(plans)
        return claimed(conn, plans)

    def sqlite_close(conn: Any, closes: Any) -> Any:
        note(closes)
        return close(conn, closes)

    async def pg_claimed(tx: Any, plans: Any, requeued: Any) -> None:
        note(plans)
        await apply_claimed(tx, plans, requeued)

    async def pg_closes(tx: Any, d: Any, closes: Any) -> Any:
        note(closes)
        return await apply_closes(tx, d, closes)

    monkeypatch.setattr(sqlitetx, "_claimed", sqlite_claimed)
    monkeypatch.setattr(sqlitetx, "_close", sqlite_close)
    monkeypatch.setattr(postgres, "apply_claimed", pg_claimed)
    monkeypatch.setattr(postgres, "apply_closes", pg_closes)
    return calls


async def sleeping(store: SqlStore) -> list[str]:
    """RUNS runs, each asleep on timer 1 (its first turn's, claimed): their ids."""
    ids = []
    for i in range(RUNS):
        run_id = f"run-{i}"
        await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
        task = await claim_one(store, run_id)
        commit = await turn(store, task, [h.StartTimer(ref=1, fire_at=DUE)], timers=[(1, DUE)])
        assert await store.commit_turn(commit)
        ids.append(run_id)
    return ids


async def timer_turn(store: SqlStore, run_id: str, shape: str) -> TurnCommit:
    """The turn of ``shape`` that timer 1 of ``run_id`` wakes, taken in here."""
    data = await store.load_turn(run_id, 0)
    commands: list[h.Command] = []
    fields: dict[str, Any] = {}
    if shape == "another timer":
        commands = [h.StartTimer(ref=2, fire_at=NOW + 60)]
        fields.update(timers=[(2, NOW + 60)], holder="worker-a")
    elif shape == "an activity here":
        commands = [schedule_charge(2)]
        fields["activities"] = [leased_charge(2, f"{run_id}/2")]
    elif shape == "an activity queued":
        commands = [schedule_charge(2)]
        fields["activities"] = [NewActivity(2, "charge", "q", [2], {}, {}, None)]
    else:
        result = {"done": run_id}
        commands = [h.CompleteWorkflow(result=result)]
        fields.update(close_status="completed", result=result, has_relatives=False)
    inputs: list[h.Event] = [h.TimerFired(ref=1, time=NOW)]
    return TurnCommit(
        task=None,
        run_id=run_id,
        expected_version=data.run.version,
        events=h.turn_events(data.run.last_seq, NOW, inputs, commands),
        consumed_inbox=[],
        fired_timer=1,
        **fields,
    )


def planned(commit: TurnCommit) -> ClaimedPlan | ClosePlan | None:
    written = encode_turn(commit)
    return plan_claimed(commit, NOW, written) or plan_close(commit, NOW, written, None)


@pytest.mark.parametrize("shape", SHAPES)
async def test_inline_timer_turns_write_exactly_what_the_bodies_write(
    opener: Opener, applied: list[list[str]], shape: str
) -> None:
    rows = {}
    for name in ("together", "bodies"):
        store = await opener()
        if name == "bodies":
            store.applies_plans = store.applies_close_plans = False  # (every turn is its body)
        ids = await sleeping(store)
        commits = [await timer_turn(store, r, shape) for r in ids]
        assert all(planned(c) is not None for c in commits)
        applied.clear()
        results = await all_at_once(store, [store.commit_turn(c) for c in commits])
        assert results == [True] * RUNS
        if name == "together":
            assert max(len(a) for a in applied) >= 2  # (applied together, as plans)
        else:
            assert applied == []
        if shape == "an activity here":  # (each commit learnt its activity's task id)
            assert all(set(c.created_tasks) == {2} for c in commits)
        rows[name] = await _all_rows(store)
    assert comparable(rows["together"]) == comparable(rows["bodies"])
    got = rows["together"]
    # No inbox row and no workflow task: the timer's own row is gone.
    assert got["inbox"] == []
    assert [t for t in got["tasks"] if t[1] == "workflow"] == []
    timers = sorted((t[0], t[1]) for t in got["timers"])
    expected = sorted((r, 2) for r in ids) if shape == "another timer" else []
    assert timers == expected
    activities = [t for t in got["tasks"] if t[1] == "activity"]
    assert len(activities) == (RUNS if shape.startswith("an activity") else 0)
    fired = [e for e in got["events"] if '"TimerFired"' in e[-1]]
    assert len(fired) == RUNS
    if shape == "the run ends":
        assert all("completed" in r for r in got["runs"])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("taken", ["fired", "cancelled"])
async def test_a_timer_taken_first_fences_its_turn_alone(
    opener: Opener, applied: list[list[str]], shape: str, taken: str
) -> None:
    """The last run's timer was fired into its inbox by a firer (or deleted
    by a turn that cancelled it) before its inline turn commits: that turn
    is fenced, and its run keeps what the firing left; the others commit."""
    store = await opener()
    ids = await sleeping(store)
    commits = [await timer_turn(store, r, shape) for r in ids]
    late = ids[-1]  # (the last: on PostgreSQL it goes in the group)

    async def take(tx: Any) -> None:
        await tx.send("DELETE FROM timers WHERE run_id = ?", (late,))

    if taken == "cancelled":
        await store._write(take)
    else:
        assert await store.fire_due_timers(100) == RUNS

        # (it fired every run's timer: put the others' back, as if it took only one)
        async def restore(tx: Any) -> None:
            for run_id in ids[:-1]:
                await tx.send(
                    "INSERT INTO timers (run_id, ref, fire_at) VALUES (?, 1, ?)", (run_id, DUE)
                )
                await tx.send("DELETE FROM inbox WHERE run_id = ?", (run_id,))
                await tx.send("DELETE FROM tasks WHERE run_id = ?", (run_id,))

        await store._write(restore)
    before = await _all_rows(store)
    applied.clear()

    results = await all_at_once(store, [store.commit_turn(c) for c in commits])

    assert results == [True] * (RUNS - 1) + [False]
    after = await _all_rows(store)
    for table in ("runs", "events", "tasks", "inbox", "timers"):
        mine = [r for r in after[table] if late in r]
        assert mine == [r for r in before[table] if late in r], table
    assert commits[-1].created_tasks == {}
    if taken == "fired":  # (the inbox path delivers it)
        assert [t[3] for t in after["tasks"] if t[1] == "workflow"] == [late]
