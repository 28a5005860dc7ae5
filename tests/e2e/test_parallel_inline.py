"""A workflow's parallel inline activities end about at once: the outcomes
that end while the run's previous turn is being committed wait for that
commit and go into the run's next turn together (TurnRunner.continue_inline),
instead of each taking the inbox (a row, then a claim, a load and a turn).
If the turn they waited for is fenced out, each takes the inbox after all,
and nothing is lost or run twice; if it ends the run, they take the inbox
to a closed run. A waiting outcome whose task is cancelled just as it is
made the next turn's leader hands the run on (``_abdicate``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure._store.base import ActivityTask, TurnCommit
from perdure._store.sqlplans import plan_close, plan_turn
from perdure._store.sqlturn import encode_turn
from perdure._worker.inline_turns import CachedRun, Parked
from perdure._worker.turns import TurnRunner

K = 8
ran: Counter[int] = Counter()


@activity.defn
async def part(i: int) -> int:
    ran[i] += 1
    return i * i


@workflow.defn
async def parallel(k: int) -> int:
    return sum(await asyncio.gather(*(part(i) for i in range(k))))


def spy(client: perdure.Client, monkeypatch: pytest.MonkeyPatch, method: str) -> list[Any]:
    calls: list[Any] = []
    original = getattr(client.store, method)

    async def recorded(*args: Any) -> Any:
        calls.append(args)
        return await original(*args)

    monkeypatch.setattr(client.store, method, recorded)
    return calls


async def test_parallel_outcomes_share_the_next_turn(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran.clear()
    delivered = spy(client, monkeypatch, "complete_activity")
    commits = spy(client, monkeypatch, "commit_turn")
    async with fast_worker(client, [parallel], [part]):
        handle = await client.start(parallel, K)
        assert await handle.result(timeout=20) == sum(i * i for i in range(K))
    assert ran == Counter(range(K))  # each ran once
    assert delivered == []  # no outcome took the inbox
    turns: list[TurnCommit] = [c[0] for c in commits]
    # The first outcome's turn, then the others' together (before: one
    # turn for the first, and a claimed one for the rest, from the inbox).
    assert [1 + len(t.also_done) for t in turns] == [1, K - 1]
    # Both are plans: the first starts nothing; the second ends the run.
    for t in turns:
        written = encode_turn(t)
        assert plan_turn(t, 1.0, written) or plan_close(t, 1.0, written, None)
    history = await handle.history()
    done = {e["ref"] for e in history if e["type"] == "ActivityCompleted"}
    assert len(done) == K  # every outcome recorded, once


async def test_outcomes_waiting_for_a_fenced_turn_take_the_inbox(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran.clear()
    delivered = spy(client, monkeypatch, "complete_activity")
    original = client.store.commit_turn
    fenced: list[TurnCommit] = []
    worker = fast_worker(client, [parallel], [part])
    runner: TurnRunner = worker.turns

    async def commit_turn(commit: TurnCommit) -> bool:
        if commit.activity_done is not None and not fenced:
            # The first outcome's turn: once every other outcome waits for
            # it, it is fenced out (as if another worker had taken the run).
            fenced.append(commit)

            async def all_waiting() -> bool:
                return len(runner._parked.get(commit.run_id, [])) == K - 1

            await wait_until(all_waiting, what="the other outcomes to wait")
            return False
        return await original(commit)

    monkeypatch.setattr(client.store, "commit_turn", commit_turn)
    async with worker:
        handle = await client.start(parallel, K)
        assert await handle.result(timeout=20) == sum(i * i for i in range(K))
    assert len(fenced) == 1
    assert ran == Counter(range(K))  # nothing ran twice, nothing was lost
    assert len(delivered) == K  # every outcome went through the inbox
    assert runner._parked == {}


class _Instance:
    evicted = False

    def evict(self) -> None:
        self.evicted = True


def _task(ref: int) -> ActivityTask:
    return ActivityTask(ref, "t", "run", "wf", "parallel", ref, "part", "q", [], {}, {}, 1, 0.0)


async def test_a_leader_cancelled_before_it_runs_hands_the_run_on() -> None:
    runner = TurnRunner(None, None, {}, 10)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    runner._parked["run"] = []  # a turn of the run is being committed
    leader = asyncio.ensure_future(runner.continue_inline(_task(1), object()))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # it waits
    carried = Parked(_task(2), object(), loop.create_future())  # type: ignore[arg-type]
    runner._parked["run"].append(carried)
    instance = _Instance()
    runner._cache["run"] = CachedRun(instance, 3, 5, False)  # type: ignore[arg-type]
    runner._pass_on("run")  # the turn ended: the first outcome leads the next
    later = Parked(_task(3), object(), loop.create_future())  # type: ignore[arg-type]
    runner._parked["run"].append(later)  # and one more ends meanwhile
    leader.cancel()  # before the leader ran
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert instance.evicted  # its turn is not taken
    assert carried.answer.result() is False  # the outcomes it carried take the inbox
    assert later.answer.result() is False  # and so does the one that came later
    assert runner._parked == {} and runner._cache == {}


@activity.defn
async def first_or_slow(i: int) -> int:
    ran[i] += 1
    return i


@workflow.defn
async def first_wins(k: int) -> int:
    """Returns as soon as one of k parallel activities is done: the others'
    outcomes end while the closing turn commits, and find no run to join."""
    tasks = [asyncio.ensure_future(first_or_slow(i)) for i in range(k)]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    return next(iter(done)).result()


async def test_outcomes_waiting_for_a_closing_turn_are_dropped_with_the_run(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran.clear()
    delivered = spy(client, monkeypatch, "complete_activity")
    worker = fast_worker(client, [first_wins], [first_or_slow])
    runner: TurnRunner = worker.turns
    async with worker:
        handle = await client.start(first_wins, K)
        assert await handle.result(timeout=20) in range(K)

        async def settled() -> bool:
            return not runner._parked and worker.idle

        await wait_until(settled, what="the late outcomes to be dropped")
    assert ran == Counter(range(K))  # each ran once, none again
    assert len(delivered) == K - 1  # the late ones took the inbox, to a closed run
    description = await handle.describe()
    assert description.status == "completed"
