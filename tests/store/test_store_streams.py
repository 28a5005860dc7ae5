"""Streams in the store, on every backend: ``append_stream`` (an activity's
writes), a turn's writes and closes (``TurnCommit.streams``), ``read_stream``
and ``stream_heads``. Positions are gapless and in order, also when many
connections append to one stream at once; a closed stream, or an ended run,
takes nothing more (and nothing of a refused append is written); whoever
listens for the run here is woken by a write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import Store
from perdure.errors import WorkflowClosedError, WorkflowNotFoundError

SOURCE = "tokens (ref 1) attempt 1"


async def started(store: Store, run_id: str = "run-1") -> Any:
    """A run, created and its first workflow task claimed."""
    await store.create_run(new_run(wid=f"wf-{run_id}", run_id=run_id), "fail")
    return await claim_one(store, run_id)


async def values(store: Store, run_id: str, key: str, start: int = 0) -> list[Any]:
    found = await store.read_stream(run_id, key, start, 10_000)
    return [value for _, value, _, _ in found.entries]


async def test_append_returns_the_new_length_and_positions_follow_on(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await started(store)
    empty = await store.read_stream("run-1", "tokens", 0, 10)
    assert (empty.entries, empty.length, empty.closed, empty.run_open) == ([], 0, False, True)
    assert not empty.finished
    assert await store.append_stream("run-1", "tokens", ["a"], SOURCE) == 1
    clock.advance(1)
    tokens: list[Any] = [{"text": "b", "n": [1, 2]}, "ü\u2603", None, 3.5, True]
    assert await store.append_stream("run-1", "tokens", tokens, SOURCE) == 6
    assert await store.append_stream("run-1", "other", ["x"], "other (ref 2) attempt 3") == 1
    found = await store.read_stream("run-1", "tokens", 0, 100)
    assert [p for p, _, _, _ in found.entries] == [0, 1, 2, 3, 4, 5]
    assert [v for _, v, _, _ in found.entries] == ["a", *tokens]
    assert {s for _, _, s, _ in found.entries} == {SOURCE}
    assert [t for _, _, _, t in found.entries] == [clock.now - 1] + [clock.now] * 5
    assert (found.length, found.closed, found.run_open, found.finished) == (6, False, True, False)
    other = await store.read_stream("run-1", "other", 0, 100)
    assert other.entries == [(0, "x", "other (ref 2) attempt 3", clock.now)]


async def test_a_slice_starts_at_start_and_holds_at_most_limit(open_store: Any) -> None:
    store = await open_store()
    await started(store)
    assert await store.append_stream("run-1", "k", list(range(10)), SOURCE) == 10
    middle = await store.read_stream("run-1", "k", 3, 4)
    assert [(p, v) for p, v, _, _ in middle.entries] == [(3, 3), (4, 4), (5, 5), (6, 6)]
    assert middle.length == 10  # (the whole stream's, not the slice's)
    tail = await store.read_stream("run-1", "k", 8, 100)
    assert [p for p, _, _, _ in tail.entries] == [8, 9]
    beyond = await store.read_stream("run-1", "k", 25, 100)
    assert (beyond.entries, beyond.length) == ([], 10)
    # A stream never written reads as empty.
    never = await store.read_stream("run-1", "never", 0, 100)
    assert (never.entries, never.length, never.closed) == ([], 0, False)


async def test_heads_list_each_stream_by_key(open_store: Any) -> None:
    store = await open_store()
    task = await started(store)
    await started(store, "run-2")
    assert await store.stream_heads("run-1") == []
    await store.append_stream("run-1", "b", [1, 2], SOURCE)
    await store.append_stream("run-1", "a", [1], SOURCE)
    await store.append_stream("run-2", "a", [1, 2, 3], SOURCE)
    commit = await turn(
        store,
        task,
        [h.CloseStream(key="c"), h.CloseStream(key="a")],
        streams=[("c", None, True), ("a", None, True)],
    )
    assert await store.commit_turn(commit)
    assert await store.stream_heads("run-1") == [("a", 1, True), ("b", 2, False), ("c", 0, True)]
    assert await store.stream_heads("run-2") == [("a", 3, False)]
    assert await store.stream_heads("no-such-run") == []
    # By code point, whatever the database's collation.
    for key in ("_x", "B", "Z1", "é", "a"):
        await store.append_stream("run-2", key, [1], SOURCE)
    assert [k for k, _, _ in await store.stream_heads("run-2")] == ["B", "Z1", "_x", "a", "é"]


async def test_a_closed_stream_refuses_an_append_and_writes_none_of_it(open_store: Any) -> None:
    store = await open_store()
    task = await started(store)
    await store.append_stream("run-1", "answer", ["a", "b"], SOURCE)
    commit = await turn(
        store, task, [h.CloseStream(key="answer")], streams=[("answer", None, True)]
    )
    assert await store.commit_turn(commit)
    with pytest.raises(WorkflowClosedError, match="'answer' of run run-1 was closed"):
        await store.append_stream("run-1", "answer", ["c", "d"], SOURCE)
    found = await store.read_stream("run-1", "answer", 0, 100)
    assert [v for _, v, _, _ in found.entries] == ["a", "b"]
    assert (found.length, found.closed, found.run_open, found.finished) == (2, True, True, True)
    # The run's other streams still take values.
    assert await store.append_stream("run-1", "other", ["x"], SOURCE) == 1


@pytest.mark.parametrize("how", ["completed", "terminated"])
async def test_an_ended_run_refuses_an_append_and_its_streams_are_finished(
    open_store: Any, how: str
) -> None:
    store = await open_store()
    task = await started(store)
    assert await store.append_stream("run-1", "progress", [10, 20], SOURCE) == 2
    if how == "completed":
        done = h.CompleteWorkflow(result=1)
        assert await store.commit_turn(
            await turn(store, task, [done], close_status="completed", result=1)
        )
    else:
        await store.terminate("wf-run-1", None, "ops")
    with pytest.raises(WorkflowClosedError, match=f"run run-1 has ended \\({how}\\)"):
        await store.append_stream("run-1", "progress", [30], SOURCE)
    with pytest.raises(WorkflowClosedError):
        await store.append_stream("run-1", "fresh", [1], SOURCE)
    found = await store.read_stream("run-1", "progress", 0, 100)
    assert [v for _, v, _, _ in found.entries] == [10, 20]
    assert (found.closed, found.run_open, found.finished) == (False, False, True)
    assert await store.stream_heads("run-1") == [("progress", 2, False)]  # ("fresh": nothing)


async def test_an_unknown_run_is_not_found(open_store: Any) -> None:
    store = await open_store()
    with pytest.raises(WorkflowNotFoundError, match="no-such-run"):
        await store.read_stream("no-such-run", "k", 0, 10)
    with pytest.raises(WorkflowNotFoundError, match="no-such-run"):
        await store.append_stream("no-such-run", "k", [1], SOURCE)


async def test_a_turn_writes_its_values_and_closes_in_order(open_store: Any) -> None:
    store = await open_store()
    task = await started(store)
    await store.append_stream("run-1", "b", ["from an activity"], SOURCE)
    writes: list[tuple[str, Any, bool]] = [
        ("a", "a0", False),
        ("a", {"n": 1}, False),
        ("b", "b1", False),
        ("a", "a2", False),
        ("a", None, True),
        ("b", "b2", False),
        ("c", "c0", False),
        ("c", None, True),
    ]
    commands: list[h.Command] = [
        h.CloseStream(key=k) if closing else h.WriteStream(key=k, value=v)
        for k, v, closing in writes
    ]
    commit = await turn(store, task, commands, streams=writes)
    assert await store.commit_turn(commit)
    assert await values(store, "run-1", "a") == ["a0", {"n": 1}, "a2"]
    assert await values(store, "run-1", "b") == ["from an activity", "b1", "b2"]
    assert await values(store, "run-1", "c") == ["c0"]
    a = await store.read_stream("run-1", "a", 0, 100)
    assert [(p, s) for p, _, s, _ in a.entries] == [(0, None), (1, None), (2, None)]
    b = await store.read_stream("run-1", "b", 0, 100)
    assert [s for _, _, s, _ in b.entries] == [SOURCE, None, None]
    assert await store.stream_heads("run-1") == [("a", 3, True), ("b", 3, False), ("c", 1, True)]
    # The history holds the writes as events, in the same order.
    history = await store.history("run-1")
    recorded = [
        (e.key, e.value) if isinstance(e, h.StreamWritten) else (e.key, "closed")
        for e in history
        if isinstance(e, (h.StreamWritten, h.StreamClosed))
    ]
    assert recorded == [(k, "closed" if closing else v) for k, v, closing in writes]
    # A later append: refused for the closed streams, taken for the open one.
    for key in ("a", "c"):
        with pytest.raises(WorkflowClosedError):
            await store.append_stream("run-1", key, ["late"], SOURCE)
    assert await store.append_stream("run-1", "b", ["late"], SOURCE) == 4
    assert await values(store, "run-1", "a") == ["a0", {"n": 1}, "a2"]


async def test_a_closing_turn_writes_its_values_with_the_end(open_store: Any) -> None:
    store = await open_store()
    task = await started(store)
    done = h.CompleteWorkflow(result="ok")
    commit = await turn(
        store,
        task,
        [h.WriteStream(key="log", value="last words"), done],
        streams=[("log", "last words", False)],
        close_status="completed",
        result="ok",
    )
    assert await store.commit_turn(commit)
    found = await store.read_stream("run-1", "log", 0, 100)
    assert [v for _, v, _, _ in found.entries] == ["last words"]
    assert (found.run_open, found.finished) == (False, True)


async def test_a_fenced_turn_writes_none_of_its_values(open_store: Any, clock: FakeClock) -> None:
    slow, fast = await open_store(), await open_store()
    await slow.create_run(new_run(wid="wf-run-1", run_id="run-1"), "fail")
    [stale] = await slow.claim_workflow_tasks(["q"], "slow", 10, 1)
    writes: list[tuple[str, Any, bool]] = [("k", "stale", False)]
    stale_commit = await turn(slow, stale, [h.WriteStream(key="k", value="stale")], streams=writes)
    clock.advance(11)  # its lease ran out; another worker took the task
    [fresh] = await fast.claim_workflow_tasks(["q"], "fast", 10, 1)
    fresh_writes: list[tuple[str, Any, bool]] = [("k", "fresh", False)]
    fresh_commit = await turn(
        fast, fresh, [h.WriteStream(key="k", value="fresh")], streams=fresh_writes
    )
    assert await slow.commit_turn(stale_commit) is False
    assert await fast.commit_turn(fresh_commit) is True
    assert await values(fast, "run-1", "k") == ["fresh"]
    assert await fast.stream_heads("run-1") == [("k", 1, False)]


async def test_a_write_wakes_the_runs_stream_listeners_here(open_store: Any) -> None:
    store = await open_store()
    task = await started(store)
    await started(store, "run-2")
    woken: list[str] = []
    store.add_stream_listener("run-1", lambda: woken.append("run-1"))
    store.add_stream_listener("run-2", lambda: woken.append("run-2"))
    # A write is not the run's end: its result waiters are not woken for it.
    store.add_run_listener("run-1", lambda: woken.append("end of run-1"))
    await store.append_stream("run-1", "k", [1], SOURCE)
    assert woken == ["run-1"]
    commit = await turn(store, task, [h.WriteStream(key="k", value=2)], streams=[("k", 2, False)])
    assert await store.commit_turn(commit)
    assert woken == ["run-1", "run-1"]


async def test_a_write_through_another_connection_wakes_this_one(open_store: Any) -> None:
    here, elsewhere = await open_store(), await open_store()
    await started(here)
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    here.add_stream_listener("run-1", lambda: loop.call_soon_threadsafe(woken.set))
    listener = getattr(here, "_listener", None)
    if listener is not None:  # PostgreSQL: wait until LISTEN is in place
        await asyncio.wait_for(listener.connected.wait(), 5)
    await elsewhere.append_stream("run-1", "k", ["there"], SOURCE)
    await asyncio.wait_for(woken.wait(), 5)
    assert await values(here, "run-1", "k") == ["there"]


async def test_concurrent_appends_to_one_stream_take_every_position_once(
    open_store: Any,
) -> None:
    """Writers on several connections (processes) and several tasks each
    append to one stream at once: every value lands once, positions are
    0..N-1, each writer's values keep their order, and each append's new
    length is its last value's position + 1."""
    stores = [await open_store() for _ in range(4)]
    await started(stores[0])
    per_writer, batch = 24, 3

    async def writer(store: Store, name: str) -> list[tuple[int, list[str]]]:
        done = []
        for n in range(0, per_writer, batch):
            sent = [f"{name}-{i}" for i in range(n, n + batch)]
            done.append((await store.append_stream("run-1", "shared", sent, name), sent))
        return done

    writers = [(store, f"w{s}.{t}") for s, store in enumerate(stores) for t in range(4)]
    results = await asyncio.gather(*(writer(store, name) for store, name in writers))
    total = len(writers) * per_writer
    found = await stores[1].read_stream("run-1", "shared", 0, 10_000)
    assert [p for p, _, _, _ in found.entries] == list(range(total))
    assert found.length == total
    by_position = {p: (v, s) for p, v, s, _ in found.entries}
    assert len({v for v, _ in by_position.values()}) == total  # (no value twice)
    for (_, name), appended in zip(writers, results, strict=True):
        mine = [v for _, (v, s) in sorted(by_position.items()) if s == name]
        assert mine == [f"{name}-{i}" for i in range(per_writer)]
        for length, sent in appended:
            # An append's values are together, ending at its new length.
            assert [by_position[p][0] for p in range(length - batch, length)] == sent
    assert await stores[2].stream_heads("run-1") == [("shared", total, False)]


async def test_appends_at_once_get_their_own_outcomes(open_store: Any) -> None:
    """Appends to a closed stream, an ended run and an open stream, made at
    once through one store (on PostgreSQL, one group's transaction): each
    refused one raises and writes nothing, the others are written."""
    store = await open_store()
    task = await started(store)
    ended = await started(store, "run-2")
    close = await turn(store, task, [h.CloseStream(key="shut")], streams=[("shut", None, True)])
    assert await store.commit_turn(close)
    done = h.CompleteWorkflow(result=1)
    assert await store.commit_turn(
        await turn(store, ended, [done], close_status="completed", result=1)
    )
    appends = []
    for n in range(8):
        appends += [
            store.append_stream("run-1", "open", [n], SOURCE),
            store.append_stream("run-1", "shut", [n], SOURCE),
            store.append_stream("run-2", "open", [n], SOURCE),
        ]
    outcomes = await asyncio.gather(*appends, return_exceptions=True)
    assert sorted(o for o in outcomes[0::3] if isinstance(o, int)) == list(range(1, 9))
    assert all(isinstance(o, WorkflowClosedError) for o in outcomes[1::3] + outcomes[2::3])
    assert sorted(await values(store, "run-1", "open")) == list(range(8))
    assert await store.stream_heads("run-1") == [("open", 8, False), ("shut", 0, True)]
    assert await store.stream_heads("run-2") == []
