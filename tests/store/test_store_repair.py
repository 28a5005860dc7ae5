"""Store.repair_stranded, the workers' safety net (sqlrepair): an open run
whose inbox has held an event long enough with no workflow task to read it
(a state no write of the store leaves, written here by hand as a bug would)
gets its task back, and nothing else is touched: a run whose task exists,
a closed run, an event younger than the bound."""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock, Opener, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.eventtext import event_text
from perdure._store.sqlrows import Tx
from perdure._store.sqlstore import SqlStore


async def _strand(store: SqlStore, run_id: str, name: str, at: float) -> None:
    """What the bug of session 59 left: a run's inbox row, and no task."""

    async def body(tx: Tx) -> None:
        text = event_text(h.SignalReceived(name=name))
        await tx.send(
            "INSERT INTO inbox (run_id, data, created_at) VALUES (?, ?, ?)", (run_id, text, at)
        )
        await tx.send("DELETE FROM tasks WHERE kind = 'workflow' AND run_id = ?", (run_id,))

    await store._write(body)


async def _quiet(store: SqlStore, run_id: str) -> None:
    """Run ``run_id`` with its first turn taken: open, no task, no inbox."""
    await store.create_run(new_run(wid=f"w-{run_id}", run_id=run_id), "fail")
    task = await claim_one(store, run_id)
    assert await store.commit_turn(await turn(store, task, timers=[(1, 2e9)]))


async def test_a_stranded_run_gets_its_workflow_task_back(opener: Opener) -> None:
    store = await opener()
    clock: Any = store.clock
    assert isinstance(clock, FakeClock)
    for run_id in ("stranded", "served", "closed", "young"):
        await _quiet(store, run_id)
    old = clock() - 60
    await _strand(store, "stranded", "lost", old)
    await _strand(store, "young", "fresh", clock() - 1)
    await store.deliver("w-served", None, h.SignalReceived(name="fine"))  # (with its task)
    await store.terminate("w-closed", None, "done")
    await _strand(store, "closed", "late", old)  # (a row a closed run would ignore)
    before = await store.pending_work("served")

    assert await store.repair_stranded(clock() - 30) == ["stranded"]
    assert await store.pending_work("served") == before

    task = await claim_one(store, "stranded")
    inbox = [e for _, e in (await store.load_turn(task.run_id, 0)).inbox]
    assert [e.name for e in inbox if isinstance(e, h.SignalReceived)] == ["lost"]
    assert (await store.pending_work("young")).workflow_task is None  # (not yet)
    assert await store.repair_stranded(clock() - 30) == []  # (it has its task now)
    # Once old enough, the young one is repaired too.
    clock.advance(60)
    assert await store.repair_stranded(clock() - 30) == ["young"]
