"""An inline continuation hands its finished activity's task row to the next
activity the worker runs at once (one UPDATE instead of a DELETE and an
INSERT), on every backend. The row taken over must be indistinguishable from
a freshly inserted one, whatever columns the tasks table grows."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, leased_charge, new_run, schedule_charge, turn

from perdure import _history as h
from perdure._store.base import NewActivity, Store, TurnCommit
from perdure._store.sqlite import SqliteStore
from perdure._store.sqlrows import Tx

# Columns that name the row, or differ between two runs by design.
OWN = {"id", "run_id", "lease_token"}
# Columns the take-over leaves as they are: the next activity is of the same
# run and queue (a worker runs its own queue's activities only), priority and
# fairness key (sqlturn.take_over_heir), so writing them would only cost their
# indexes' pages (sqlturn.REUSE_ACTIVITY).
KEPT = {"queue", "priority", "fairness_key"}


async def _first_activity(store: Store, run_id: str, token: str) -> tuple[TurnCommit, int]:
    """A run whose first turn leased activity 1 to this worker: the commit and
    the activity's task id."""
    await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
    task = await claim_one(store, run_id)
    commit = await turn(store, task, [schedule_charge(1)], activities=[leased_charge(1, token)])
    assert await store.commit_turn(commit)
    return commit, commit.created_tasks[1]


async def _tasks(store: Store) -> list[dict[str, Any]]:
    async def body(tx: Tx) -> list[dict[str, Any]]:
        names = [row[0] for row in await tx.all(_COLUMNS[isinstance(store, SqliteStore)])]
        found = await tx.all(f"SELECT {', '.join(names)} FROM tasks WHERE kind = 'activity'")
        return [dict(zip(names, row, strict=True)) for row in found]

    return await store._read(body)  # type: ignore[attr-defined,no-any-return]


_COLUMNS = {
    True: "SELECT name FROM pragma_table_info('tasks') ORDER BY cid",
    False: "SELECT column_name FROM information_schema.columns"
    " WHERE table_name = 'tasks' AND table_schema = current_schema() ORDER BY ordinal_position",
}


async def _dirty(store: Store, task_id: int) -> None:
    """Put a value no INSERT leaves into every column of the row that does not
    name it: a column the take-over forgot to reset then shows."""
    columns = [c for c in (await _tasks(store))[0] if c not in OWN | KEPT | {"kind", "ref"}]

    async def body(tx: Tx) -> None:
        for column in columns:
            await tx.send(
                f"UPDATE tasks SET {column} = ? WHERE id = ?",
                (_odd_value(store, column), task_id),
            )

    await store._write(body)  # type: ignore[attr-defined]


def _odd_value(store: Store, column: str) -> Any:
    # Every column of tasks takes a number or a string; PostgreSQL wants the
    # right one. (A new column of another type fails here, loudly.)
    text = {"queue", "lease_owner", "payload", "last_failure", "heartbeat", "attempts"}
    return "odd" if column in text else 7


def _continuation(
    data: Any,
    done: tuple[int, str],
    ref: int = 2,
    timers: tuple[tuple[int, float], ...] = (),
    lease_kept: float = 0.0,
) -> TurnCommit:
    """run-1's inline turn: activity ``ref - 1``'s outcome, and activity
    ``ref`` (leased here, token "t<ref>") taking over the finished attempt's
    row, ``done`` (its task id and lease token), keeping that row's lease
    expiry if told (``lease_kept``). With ``timers`` the turn is not the
    commonest kind, which the group commits apply as a plan: its body runs."""
    outcome = h.ActivityCompleted(ref=ref - 1, result="ok")
    return TurnCommit(
        task=None,
        run_id="run-1",
        expected_version=data.run.version,
        events=h.turn_events(data.run.last_seq, 1.0, [outcome], [schedule_charge(ref)]),
        consumed_inbox=[],
        activities=[leased_charge(ref, f"t{ref}")],
        timers=list(timers),
        activity_done=done,
        lease_kept=lease_kept,
    )


async def test_the_next_inline_activity_takes_the_finished_ones_row(open_store: Any) -> None:
    store: Store = await open_store()
    _, task_id = await _first_activity(store, "run-1", "t1")
    await _dirty(store, task_id)

    continuation = _continuation(await store.load_turn("run-1", 0), (task_id, "t1"))
    assert await store.commit_turn(continuation)
    assert continuation.created_tasks == {2: task_id}

    # Another run's first activity, inserted: the same values, a new row.
    await _first_activity(store, "run-2", "t3")
    rows = {row["run_id"]: row for row in await _tasks(store)}
    assert set(rows) == {"run-1", "run-2"}  # the finished activity's row is gone
    taken, fresh = rows["run-1"], rows["run-2"]
    assert taken["id"] == task_id and taken["lease_token"] == "t2"
    # Its payload is the second activity's ActivityScheduled event as recorded.
    assert '"ref":2' in taken["payload"] and '"seq":6' in taken["payload"]
    fresh["ref"] = 2  # run-2's activity is its first; run-1's, its second
    same = OWN | {"payload"}
    assert {k: v for k, v in taken.items() if k not in same} == {
        k: v for k, v in fresh.items() if k not in same
    }

    # The finished attempt can no longer touch the row: its token is gone.
    assert await store.record_heartbeat(task_id, "t1", None, 30) == "lost"
    assert await store.record_heartbeat(task_id, "t2", None, 30) == "ok"


async def test_a_lost_lease_fences_the_take_over_and_starts_nothing(open_store: Any) -> None:
    store: Store = await open_store()
    _, task_id = await _first_activity(store, "run-1", "t1")
    data = await store.load_turn("run-1", 0)
    continuation = _continuation(data, (task_id, "not-my-token"))
    assert not await store.commit_turn(continuation)
    assert continuation.created_tasks == {}
    [row] = await _tasks(store)
    assert (row["id"], row["ref"], row["lease_token"]) == (task_id, 1, "t1")
    after = await store.load_turn("run-1", 0)
    assert after.run.version == data.run.version and after.events == data.events


@pytest.mark.parametrize("plan", [True, False], ids=["plan", "body"])
async def test_a_take_over_keeps_the_rows_lease_expiry_when_told(
    open_store: Any, clock: FakeClock, plan: bool
) -> None:
    store: Store = await open_store()
    _, task_id = await _first_activity(store, "run-1", "t1")
    [row] = await _tasks(store)
    first_expiry = row["visible_at"]
    assert first_expiry == store.clock() + 30  # (now + the 30-s lease)

    timers = () if plan else ((9, 4_000_000_000.0),)
    clock.advance(2.0)  # (now + lease would be another expiry)
    data = await store.load_turn("run-1", 0)
    kept = _continuation(data, (task_id, "t1"), timers=timers, lease_kept=first_expiry)
    assert await store.commit_turn(kept)
    [row] = await _tasks(store)
    assert (row["ref"], row["lease_token"], row["visible_at"]) == (2, "t2", first_expiry)

    # Told nothing, the next take-over writes a new expiry: now + its lease.
    again = tuple((10, at) for _, at in timers)  # (a body's turn again, for the body)
    fresh = _continuation(await store.load_turn("run-1", 0), (task_id, "t2"), 3, again)
    assert await store.commit_turn(fresh)
    [row] = await _tasks(store)
    assert (row["ref"], row["lease_token"], row["visible_at"]) == (3, "t3", store.clock() + 30)


async def _two_activities(store: Store) -> tuple[int, int]:
    """run-1, whose first turn leased activities 1 and 2 to this worker."""
    await store.create_run(new_run(wid="run-1", run_id="run-1"), "fail")
    task = await claim_one(store, "run-1")
    commit = await turn(
        store,
        task,
        [schedule_charge(1), schedule_charge(2)],
        activities=[leased_charge(1, "t1"), leased_charge(2, "t2")],
    )
    assert await store.commit_turn(commit)
    return commit.created_tasks[1], commit.created_tasks[2]


def _both_done(data: Any, first: int, second: int, token: str) -> TurnCommit:
    """One turn taking in both activities' outcomes (the second one's task
    fenced by ``token``), scheduling nothing."""
    outcomes: list[h.Event] = [
        h.ActivityCompleted(ref=1, result="a"),
        h.ActivityCompleted(ref=2, result="b"),
    ]
    return TurnCommit(
        task=None,
        run_id="run-1",
        expected_version=data.run.version,
        events=h.turn_events(data.run.last_seq, 1.0, outcomes, []),
        consumed_inbox=[],
        activity_done=(first, "t1"),
        also_done=((second, token),),
    )


async def test_a_turn_takes_in_several_inline_outcomes(open_store: Any) -> None:
    store: Store = await open_store()
    first, second = await _two_activities(store)
    data = await store.load_turn("run-1", 0)
    assert await store.commit_turn(_both_done(data, first, second, "t2"))
    assert await _tasks(store) == []  # both finished attempts' rows are gone
    after = await store.load_turn("run-1", 0)
    assert [e.ref for e in after.events if isinstance(e, h.ActivityCompleted)] == [1, 2]
    assert after.run.version == data.run.version + 1


async def test_a_lost_lease_among_the_outcomes_fences_the_whole_turn(open_store: Any) -> None:
    store: Store = await open_store()
    first, second = await _two_activities(store)
    data = await store.load_turn("run-1", 0)
    assert not await store.commit_turn(_both_done(data, first, second, "not-mine"))
    assert {row["id"] for row in await _tasks(store)} == {first, second}  # untouched
    after = await store.load_turn("run-1", 0)
    assert after.events == data.events and after.run.version == data.run.version


def _queued_charge(ref: int) -> NewActivity:
    """Activity ``ref`` queued for any worker (not leased here)."""
    return NewActivity(ref=ref, name="charge", task_queue="q", args=[ref], kwargs={}, options={})


async def _scheduled(store: Store, run_id: str, leased: list[int], queued: list[int]) -> None:
    """A run whose first turn scheduled ``leased`` (running here) and ``queued``."""
    await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
    task = await claim_one(store, run_id)
    refs = leased + queued
    activities = [leased_charge(r, f"{run_id}-t{r}") for r in leased]
    activities += [_queued_charge(r) for r in queued]
    commit = await turn(store, task, [schedule_charge(r) for r in refs], activities=activities)
    assert await store.commit_turn(commit)


async def test_a_turn_that_waits_gives_the_unheld_cancelled_their_outcome(
    open_store: Any,
) -> None:
    """cancellation_type "wait_cancellation_completed": an activity no
    attempt holds ends with the cancel's commit (its cancelled outcome in the
    run's inbox, and a workflow task for the turn that reads it); one an
    attempt holds is told, and ends with that attempt."""
    store: Store = await open_store()
    await _scheduled(store, "run-1", leased=[1], queued=[3])
    await store.deliver("run-1", None, h.SignalReceived(name="stop"))
    task = await claim_one(store, "run-1")
    waits: list[h.Command] = [
        h.CancelActivity(ref=1, wait=True),
        h.CancelActivity(ref=3, wait=True),
    ]
    commit = await turn(
        store, task, waits, cancelled_activities=[1, 3], cancel_waits=[1, 3], task_queue="q"
    )
    assert await store.commit_turn(commit)
    rows = {row["ref"]: row for row in await _tasks(store)}
    assert set(rows) == {1} and rows[1]["cancel_requested"]
    again = await claim_one(store, "run-1")
    [(_, ended)] = (await store.load_turn(again.run_id, 0)).inbox
    assert isinstance(ended, h.ActivityFailed) and ended.ref == 3
    assert (ended.failure["type"], ended.attempt) == ("CancelledError", 0)


async def test_a_turn_cancels_several_activities_of_its_run_only(open_store: Any) -> None:
    # A run's activity tasks are found by run_id, then ref (no index holds
    # ref: see schema 9); a turn's cancellations are one statement for all.
    store: Store = await open_store()
    await _scheduled(store, "run-1", leased=[1, 2], queued=[3, 4])
    await _scheduled(store, "run-2", leased=[1], queued=[3])  # the same refs, another run
    await store.deliver("run-1", None, h.SignalReceived(name="stop"))
    task = await claim_one(store, "run-1")
    cancels: list[h.Command] = [h.CancelActivity(ref=1), h.CancelActivity(ref=3)]
    commit = await turn(store, task, cancels, cancelled_activities=[1, 3])
    assert await store.commit_turn(commit)

    rows = {(row["run_id"], row["ref"]): row for row in await _tasks(store)}
    # The waiting attempt (3) is gone; the running one (1) is told to stop.
    assert set(rows) == {("run-1", 1), ("run-1", 2), ("run-1", 4), ("run-2", 1), ("run-2", 3)}
    told = {key for key, row in rows.items() if row["cancel_requested"]}
    assert told == {("run-1", 1)}
