"""Writers racing each other from separate connections (separate 'processes').

On SQLite the writers serialise on the file lock; on PostgreSQL they really run
at once at READ COMMITTED, so these tests exercise the row locks, SKIP LOCKED
claims and lock order described in ``perdure._store.sqlrows``. Each asserts an
invariant that must hold whichever writer wins.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import NewChild, RunFilter, Store


async def test_racing_claims_give_each_task_to_exactly_one_worker(open_store: Any) -> None:
    stores = [await open_store() for _ in range(4)]
    for i in range(40):
        await stores[0].create_run(new_run(f"w{i}", f"r{i}"), "fail")

    async def claim_all(store: Store, owner: str) -> list[str]:
        got = []
        while batch := await store.claim_workflow_tasks(["q"], owner, 30, 3):
            got += [t.run_id for t in batch]
        return got

    results = await asyncio.gather(*(claim_all(s, f"o{i}") for i, s in enumerate(stores)))
    claimed = [run_id for got in results for run_id in got]
    assert sorted(claimed) == sorted(f"r{i}" for i in range(40))  # each exactly once


async def test_timer_firers_racing_turns_that_cancel_the_timers(
    open_store: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stores = [await open_store() for _ in range(4)]
    main = stores[0]
    runs = [f"r{i}" for i in range(12)]
    for i, run_id in enumerate(runs):
        await main.create_run(new_run(f"w{i}", run_id), "fail")
        task = await claim_one(main, run_id)
        started = h.StartTimer(ref=1, fire_at=clock.now + 10)
        assert await main.commit_turn(
            await turn(main, task, [started], timers=[(1, clock.now + 10)])
        )
    cancelling = runs[::2]
    commits = []
    for i, run_id in enumerate(runs):
        if run_id in cancelling:
            await main.deliver(f"w{i}", None, h.SignalReceived(name="go"))
            task = await claim_one(main, run_id)
            commits.append(await turn(main, task, [h.CancelTimer(ref=1)], cancelled_timers=[1]))
    clock.advance(11)

    async def fire_all(store: Store) -> int:
        fired = 0
        while n := await store.fire_due_timers(2):
            fired += n
        return fired

    outcome = await asyncio.gather(
        *(fire_all(s) for s in stores),
        *(s.commit_turn(c) for s, c in zip(stores, commits, strict=False)),
    )
    assert all(outcome[len(stores) :]), "a turn commit was fenced out by a timer firing"
    await fire_all(main)
    # Firers and turns take their locks in one order: no deadlock to break.
    assert "Deadlock" not in caplog.text
    for run_id in runs:
        fired = [e for _, e in (await main.load_turn(run_id, 0)).inbox]
        fired += await main.history(run_id)
        count = sum(isinstance(e, h.TimerFired) for e in fired)
        # A cancelled timer may still fire if a firer held it first: the workflow
        # ignores that TimerFired. A live one fires exactly once.
        assert count == 1 if run_id not in cancelling else count <= 1, (run_id, count)
        assert (await main.pending_work(run_id)).timers == []


async def test_a_signal_racing_a_turn_commit_is_never_stranded(open_store: Any) -> None:
    a, b = await open_store(), await open_store()
    for i in range(15):
        await a.create_run(new_run(f"w{i}", f"r{i}"), "fail")
        task = await claim_one(a, f"r{i}")
        commit = await turn(a, task)
        ok, _ = await asyncio.gather(
            a.commit_turn(commit), b.deliver(f"w{i}", None, h.SignalReceived(name="s", payload=i))
        )
        assert ok
        # The turn did not consume the signal, whichever committed first: it
        # waits in the inbox with a workflow task that a worker can claim.
        await claim_one(b, f"r{i}")
        inbox = (await b.load_turn(f"r{i}", 0)).inbox
        assert [e.payload for _, e in inbox if isinstance(e, h.SignalReceived)] == [i]


async def test_terminate_racing_a_turn_commit_leaves_one_consistent_history(
    open_store: Any,
) -> None:
    a, b = await open_store(), await open_store()
    for i in range(10):
        await a.create_run(new_run(f"w{i}", f"r{i}"), "fail")
        task = await claim_one(a, f"r{i}")
        commit = await turn(a, task, timers=[(1, 2e9)])
        ok, _ = await asyncio.gather(a.commit_turn(commit), b.terminate(f"w{i}", None, "ops"))
        types = [e.TYPE for e in await b.history(f"r{i}")]
        expected = ["TurnStarted", "WorkflowStarted"] if ok else []
        assert types == [*expected, "WorkflowTerminated"]
        pending = await b.pending_work(f"r{i}")
        assert (pending.timers, pending.workflow_task) == ([], None)


async def test_continue_as_new_racing_signals_and_starts_of_the_same_id(open_store: Any) -> None:
    a, b, c = await open_store(), await open_store(), await open_store()
    for i in range(8):
        wid = f"chain-{i}"
        await a.create_run(new_run(wid, f"{wid}-1"), "fail")
        task = await claim_one(a, f"{wid}-1")
        commit = await turn(
            a,
            task,
            [h.ContinueAsNew(args=[2], kwargs={})],
            close_status="continued_as_new",
            continue_as_new=new_run(wid, f"{wid}-2"),
        )
        conflict = "use_existing" if i % 2 else "terminate_existing"
        ok, signalled, (started, _) = await asyncio.gather(
            a.commit_turn(commit),
            b.deliver(wid, None, h.SignalReceived(name="s")),  # must not find a closed run
            c.create_run(new_run(wid, f"{wid}-3"), conflict),
        )
        # The start may terminate the first run before its turn commits (which
        # is then fenced out), and a signal that reaches run 1 first makes its
        # closing turn be refused (to be recomputed with the signal, never
        # dropped). Whatever the order, nobody sees a closed run as the latest
        # one, and one run of the id is open at the end.
        assert signalled.is_open and started.is_open
        runs = await a.list_runs(RunFilter())
        still_open = [r.run_id for r in runs if r.workflow_id == wid and r.is_open]
        if conflict == "terminate_existing":
            assert still_open == [f"{wid}-3"]
        elif ok:
            assert still_open == [f"{wid}-2"] and signalled.run_id == f"{wid}-2"
        else:
            assert still_open == [f"{wid}-1"] and signalled.run_id == f"{wid}-1"


async def test_a_parent_and_its_child_closing_at_once(open_store: Any) -> None:
    # The child's close locks its parent (to report); the parent's terminate
    # locks its children (to terminate them): on PostgreSQL the two can
    # deadlock, and the transaction the server aborts must be retried.
    a, b = await open_store(), await open_store()
    for i in range(1):  # each deadlock costs PostgreSQL's deadlock_timeout (1 s)
        await a.create_run(new_run(f"parent-{i}", f"p{i}"), "fail")
        task = await claim_one(a, f"p{i}")
        child = NewChild(1, "t", f"child-{i}", f"c{i}", "q", [], {}, "terminate", 3)
        start = h.StartChild(1, "t", f"child-{i}", "q", [], {}, "terminate")
        assert await a.commit_turn(await turn(a, task, [start], children=[child]))
        task = await claim_one(a, f"c{i}")
        done = await turn(
            a, task, [h.CompleteWorkflow(result=7)], close_status="completed", result=7
        )
        ok, _ = await asyncio.gather(a.commit_turn(done), b.terminate(f"parent-{i}", None, "ops"))
        parent, kid = await a.get_run(f"parent-{i}"), await a.get_run(f"child-{i}")
        assert parent is not None and parent.status == "terminated"
        assert kid is not None and kid.status == ("completed" if ok else "terminated")
