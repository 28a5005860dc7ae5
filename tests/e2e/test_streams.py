"""Streams, end to end on every backend: a run's workflow code
(``workflow.write_stream``, ``close_stream``) and its activities
(``activity.write_stream``, async and plain ``def``) append values that
clients read as they come (``handle.read_stream``, ``stream_page``,
``streams``). Workflow writes are recorded once however often the run
replays; an activity's values are all written before its step's result is
seen, and a retried attempt writes its own again, each saying which attempt
wrote it; a reader ends at the stream's close or the run's end, and is woken
by a commit of its own process (not by its poll)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, record_claims, wait_until

import perdure
import perdure._converter
import perdure._streams
from perdure import RetryPolicy, activity, workflow
from perdure._store.base import ActivityTask
from perdure._worker.streams import AttemptStreams, finish_flushes
from perdure.cli._summaries import summarize
from perdure.client import StreamEntry, StreamInfo, StreamPage
from perdure.codecs import ZlibCodec
from perdure.testing import Replayer, WorkflowEnvironment

# What workflow code did (appended to by the code itself): how often a
# turn's code ran, which replays repeat.
attempts: list[str] = []
# Per-test gates for activities: asyncio events of the test's own loop.
gates: dict[str, asyncio.Event] = {}


def gate(name: str) -> asyncio.Event:
    event = gates[name] = asyncio.Event()
    return event


async def collect(values: AsyncIterator[Any]) -> list[Any]:
    return [v async for v in values]


async def read_all(handle: perdure.WorkflowHandle[Any], key: str) -> list[Any]:
    return await collect(handle.read_stream(key, timeout=20))


@activity.defn
async def nothing() -> None:
    return None


# ------------------------------------------------------------ workflow writes


@workflow.defn
async def st_progress(steps: int) -> str:
    """Writes a value per step, each in its own turn (a step between), then closes."""
    for n in range(steps):
        attempts.append(f"write {n}")
        workflow.write_stream("progress", {"step": n, "of": steps})
        await nothing()
        await workflow.sleep(0.01)  # (a timer's turn: held here, an inline one)
    workflow.close_stream("progress")
    workflow.close_stream("progress")  # (closing twice changes nothing)
    return "done"


@pytest.mark.parametrize("cache_size", [0, 100], ids=["replaying", "cached"])
async def test_workflow_writes_are_recorded_once_however_often_the_run_replays(
    client: perdure.Client, cache_size: int
) -> None:
    async with fast_worker(client, [st_progress], [nothing], cache_size=cache_size):
        handle = await client.start(st_progress, 4)
        assert await read_all(handle, "progress") == [{"step": n, "of": 4} for n in range(4)]
        assert await handle.result(timeout=20) == "done"
    # Replaying, each turn ran the code of those before it again.
    assert (attempts.count("write 0") > 4) == (cache_size == 0), attempts
    page = await handle.stream_page("progress")
    assert [(e.position, e.value["step"], e.source) for e in page.entries] == [
        (n, n, None) for n in range(4)
    ]
    assert page.finished
    events = await handle.history()
    writes = [(e["key"], e["value"]) for e in events if e["type"] == "StreamWritten"]
    assert writes == [("progress", {"step": n, "of": 4}) for n in range(4)]
    closes = [e["key"] for e in events if e["type"] == "StreamClosed"]
    assert closes == ["progress"]
    # What `perdure history` (and the UI) say of them.
    shown = [summarize(e) for e in events if e["type"].startswith("Stream")]
    assert shown[0] == 'progress <- {"step": 0, "of": 4}' and shown[-1] == "progress closed"
    assert Replayer([st_progress]).replay(events).ok
    # A history whose write differs from what the code writes: replay says so.
    changed = [
        {**e, "key": "other"} if e["type"] == "StreamWritten" and e["value"]["step"] == 2 else e
        for e in events
    ]
    mismatch = Replayer([st_progress]).replay(changed)
    assert mismatch.error_type == "NonDeterminismError"
    assert "WriteStream 'progress'" in (mismatch.error or "")


@workflow.defn
async def st_closer(catch: bool) -> str:
    workflow.write_stream("s", 1)
    workflow.close_stream("s")
    if not catch:
        workflow.write_stream("s", 2)
    try:
        workflow.write_stream("s", 2)
    except ValueError as exc:
        return f"refused: {exc}"
    return "written"


async def test_a_write_after_close_stream_raises_value_error_in_workflow_code(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [st_closer], []):
        caught = await client.start(st_closer, True)
        assert await caught.result(timeout=20) == (
            "refused: stream 's' was closed by this run (workflow.close_stream):"
            " it takes no more values"
        )
        failed = await client.start(st_closer, False)
        with pytest.raises(perdure.WorkflowFailedError) as raised:
            await failed.result(timeout=20)
    assert raised.value.cause is not None and raised.value.cause.type == "ValueError"
    assert "was closed by this run" in raised.value.cause.message
    for handle in (caught, failed):
        assert await read_all(handle, "s") == [1]
        assert await handle.streams() == [StreamInfo("s", 1, True)]


# ------------------------------------------------------------ activity writes


@activity.defn
async def async_tokens(word: str) -> int:
    await asyncio.to_thread(activity.write_stream, "log", "async start")  # (from a thread too)
    for n, letter in enumerate(word):
        activity.write_stream("answer", letter)
        if n < len(word) // 2:  # (then a burst, still being written as it returns)
            await asyncio.sleep(0)
    return len(word)


@activity.defn
def thread_tokens(word: str) -> int:
    assert threading.current_thread() is not threading.main_thread()
    for letter in word:
        activity.write_stream("answer", letter.upper())
    activity.write_stream("log", "thread done")
    return len(word)


@workflow.defn
async def st_answer(word: str) -> int:
    workflow.write_stream("answer", "<")
    n = await async_tokens(word)
    workflow.write_stream("answer", "|")  # (after every value of the step)
    n += await thread_tokens(word)
    workflow.write_stream("answer", ">")
    workflow.close_stream("answer")
    return n


async def test_an_activitys_writes_arrive_in_order_before_its_result(
    client: perdure.Client,
) -> None:
    word = "streaming" * 20
    async with fast_worker(client, [st_answer], [async_tokens, thread_tokens]):
        handle = await client.start(st_answer, word)
        got = await read_all(handle, "answer")
        assert await handle.result(timeout=20) == 2 * len(word)
    assert got == ["<", *word, "|", *word.upper(), ">"]
    page = await handle.stream_page("answer", limit=10_000)
    sources = [e.source for e in page.entries]
    n = len(word)
    assert sources == [
        None,
        *["async_tokens (ref 1) attempt 1"] * n,
        None,
        *["thread_tokens (ref 2) attempt 1"] * n,
        None,
    ]
    assert [e.position for e in page.entries] == list(range(2 * n + 3))
    # The values are not events: the history has the workflow's three only.
    events = await handle.history()
    assert [e["value"] for e in events if e["type"] == "StreamWritten"] == ["<", "|", ">"]
    assert await handle.streams() == [
        StreamInfo("answer", 2 * n + 3, True),
        StreamInfo("log", 2, False),
    ]
    assert await read_all(handle, "log") == ["async start", "thread done"]


@activity.defn
async def many_tokens(count: int) -> int:
    for n in range(count):
        activity.write_stream("many", n)
    return count


@workflow.defn
async def st_many(count: int) -> int:
    return await many_tokens(count)


async def test_a_long_stream_is_read_page_by_page(client: perdure.Client) -> None:
    count = 2 * perdure._streams.PAGE + 234
    async with fast_worker(client, [st_many], [many_tokens]):
        handle = await client.start(st_many, count)
        reading = asyncio.ensure_future(read_all(handle, "many"))
        assert await handle.result(timeout=20) == count
        assert await reading == list(range(count))
    assert await read_all(handle, "many") == list(range(count))  # (all there at once)
    page = await handle.stream_page("many", 10, limit=10_000)
    assert [e.value for e in page.entries] == list(range(10, count))
    assert (page.next_start, page.finished) == (count, True)


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=3))
async def flaky_tokens(count: int) -> str:
    attempt = activity.info().attempt
    for n in range(count):
        activity.write_stream("tokens", f"try {attempt}: {n}")
    if attempt == 1:
        raise ConnectionError("the model went away")
    return f"attempt {attempt}"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=3))
def flaky_thread_tokens(count: int) -> str:
    attempt = activity.info().attempt
    for n in range(count):
        activity.write_stream("tokens", f"try {attempt}: {n}")
    if attempt == 1:
        raise ConnectionError("the model went away")
    return f"attempt {attempt}"


@workflow.defn
async def st_retried(count: int, threaded: bool) -> str:
    if threaded:
        return await flaky_thread_tokens(count)
    return await flaky_tokens(count)


@pytest.mark.parametrize("threaded", [False, True], ids=["async", "def"])
async def test_a_retried_activity_writes_again_and_says_which_attempt_wrote(
    client: perdure.Client, threaded: bool
) -> None:
    name = "flaky_thread_tokens" if threaded else "flaky_tokens"
    async with fast_worker(client, [st_retried], [flaky_tokens, flaky_thread_tokens]):
        handle = await client.start(st_retried, 3, threaded)
        assert await handle.result(timeout=20) == "attempt 2"
    page = await handle.stream_page("tokens")
    assert [(e.value, e.source) for e in page.entries] == [
        *[(f"try 1: {n}", f"{name} (ref 1) attempt 1") for n in range(3)],
        *[(f"try 2: {n}", f"{name} (ref 1) attempt 2") for n in range(3)],
    ]
    assert page.finished  # (the run ended)
    # A reader who wants only the attempt that counted keeps its values.
    done = next(e for e in await handle.history() if e["type"] == "ActivityCompleted")
    kept = [
        e.value for e in page.entries if e.source == f"{name} (ref 1) attempt {done['attempt']}"
    ]
    assert kept == [f"try 2: {n}" for n in range(3)]


@activity.defn
async def late_writer(key: str) -> str:
    activity.write_stream(key, "dropped")
    activity.write_stream("open", "kept")
    activity.write_stream(key, "dropped too")
    return "wrote"


@workflow.defn
async def st_closes_first() -> str:
    workflow.write_stream("shut", "before")
    workflow.close_stream("shut")
    return await late_writer("shut")


async def test_an_activity_write_to_a_closed_stream_is_dropped_with_a_warning(
    client: perdure.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "perdure.worker")
    async with fast_worker(client, [st_closes_first], [late_writer]):
        handle = await client.start(st_closes_first)
        assert await handle.result(timeout=20) == "wrote"
    assert await read_all(handle, "shut") == ["before"]
    assert await read_all(handle, "open") == ["kept"]
    said = [r.getMessage() for r in caplog.records if r.name == "perdure.worker"]
    dropped = [m for m in said if "for stream 'shut' not written" in m]
    assert len(dropped) == 1, said  # (once: the later write is dropped unsaid)
    assert "late_writer" in dropped[0] and "closed by its workflow" in dropped[0]


@activity.defn
async def outliving_writer() -> str:
    gates["started"].set()
    await gates["release"].wait()
    activity.write_stream("late", "after the end")
    return "late"


@workflow.defn
async def st_leaves_early() -> str:
    workflow.write_stream("late", "in time")
    writer = asyncio.ensure_future(outliving_writer())  # (never awaited)
    await workflow.wait_signal("end")
    return "ended" if not writer.done() else "the writer ended first"


async def test_an_activity_write_after_the_run_ended_is_dropped_with_a_warning(
    client: perdure.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "perdure.worker")
    started, release = gate("started"), gate("release")
    async with fast_worker(client, [st_leaves_early], [outliving_writer]):
        handle = await client.start(st_leaves_early)
        await asyncio.wait_for(started.wait(), 10)
        await handle.signal("end")
        assert await handle.result(timeout=20) == "ended"
        release.set()

        async def warned() -> bool:
            return any("for stream 'late' not written" in r.getMessage() for r in caplog.records)

        await wait_until(warned, what="the warning of the dropped write")
    assert await read_all(handle, "late") == ["in time"]
    [said] = [r.getMessage() for r in caplog.records if "stream 'late'" in r.getMessage()]
    assert "has ended (completed)" in said


# ------------------------------------------------------------ reading


@activity.defn
async def trickle(count: int) -> int:
    for n in range(count):
        activity.write_stream("trickle", n)
        if n % 7 == 0:
            await asyncio.sleep(0.002)
    return count


@workflow.defn
async def st_trickle(count: int) -> int:
    half = await trickle(count // 2)
    workflow.write_stream("trickle", "half")
    return half + await trickle(count - count // 2)


async def test_readers_at_any_moment_get_every_value_once_in_order(
    client: perdure.Client,
) -> None:
    """Readers that start before, during and after the writes (which end
    with the run, the stream never closed) each get the whole stream."""
    count = 400
    expected = [*range(count // 2), "half", *range(count - count // 2)]
    async with fast_worker(client, [st_trickle], [trickle]):
        handle = await client.start(st_trickle, count)
        readers = [asyncio.ensure_future(read_all(handle, "trickle"))]
        for _ in range(4):
            await asyncio.sleep(0.01)
            readers.append(asyncio.ensure_future(read_all(handle, "trickle")))
        assert await handle.result(timeout=20) == count
        readers.append(asyncio.ensure_future(read_all(handle, "trickle")))
        for reader in readers:
            assert await asyncio.wait_for(reader, 20) == expected


@workflow.defn
async def st_chat() -> str:
    """Writes what each 'say' signal carries to 'chat' until 'bye' (which
    closes it), then waits for 'end'; 'notes' is never closed."""
    workflow.write_stream("notes", "opened")
    while True:
        said = await workflow.wait_signal("say")
        if said == "bye":
            workflow.close_stream("chat")
            break
        workflow.write_stream("chat", said)
    workflow.write_stream("notes", "closed chat")
    await workflow.wait_signal("end")
    return "over"


async def test_a_reader_ends_at_the_close_or_at_the_runs_end(client: perdure.Client) -> None:
    async with fast_worker(client, [st_chat], []):
        handle = await client.start(st_chat)
        chat = asyncio.ensure_future(read_all(handle, "chat"))
        notes = asyncio.ensure_future(read_all(handle, "notes"))
        for said in ("hi", "how are you", "bye"):
            await handle.signal("say", said)
        # The run is still open: the closed stream's reader ended, the other waits.
        assert await asyncio.wait_for(chat, 20) == ["hi", "how are you"]
        assert (await handle.describe()).status == "running"
        assert not notes.done()
        assert await handle.streams() == [
            StreamInfo("chat", 2, True),
            StreamInfo("notes", 2, False),
        ]
        await handle.signal("end")
        assert await asyncio.wait_for(notes, 20) == ["opened", "closed chat"]
        assert await handle.result(timeout=20) == "over"
    # Read again later, from anywhere: the same values; never written: empty.
    assert await read_all(handle, "chat") == ["hi", "how are you"]
    assert await read_all(handle, "never") == []
    assert (await handle.stream_page("never")).finished


async def test_a_first_turn_with_a_signal_writes_its_values(client: perdure.Client) -> None:
    async with fast_worker(client, [st_chat], []):
        handle = await client.signal_with_start(
            st_chat, signal="say", signal_payload="hi", id="signalled-chat"
        )
        await handle.signal("say", "bye")
        assert await read_all(handle, "chat") == ["hi"]
        again = await client.signal_with_start(
            st_chat, signal="end", id="signalled-chat"
        )  # (the open run: signalled)
        assert again.run_id == handle.run_id
        assert await handle.result(timeout=20) == "over"
    assert await read_all(handle, "notes") == ["opened", "closed chat"]


async def test_read_from_a_start_position_and_time_out(client: perdure.Client) -> None:
    async with fast_worker(client, [st_chat], []):
        handle = await client.start(st_chat)
        for said in "abcde":
            await handle.signal("say", said)

        async def five() -> bool:
            return [s.length for s in await handle.streams() if s.key == "chat"] == [5]

        await wait_until(five, what="five values")
        got: list[Any] = []
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(TimeoutError, match=r"stream 'chat' .* read on from start=5"):
            async for value in handle.read_stream("chat", 2, timeout=0.3):
                got.append(value)
        assert got == ["c", "d", "e"]
        assert 0.3 <= loop.time() - began < 5
        # Read on from where the timeout said, up to the close.
        rest = asyncio.ensure_future(collect(handle.read_stream("chat", start=5, timeout=20)))
        await handle.signal("say", "f")
        await handle.signal("say", "bye")
        assert await rest == ["f"]
        assert await collect(handle.read_stream("chat", start=99)) == []  # (past the end)
        await handle.signal("end")
        await handle.result(timeout=20)


@activity.defn
async def released_writer() -> None:
    await gates["release"].wait()
    activity.write_stream("s", "from the activity")
    await gates["finish"].wait()  # (no turn commits until the reader has the value)


@workflow.defn
async def st_woken() -> str:
    workflow.write_stream("s", "first")
    await workflow.wait_signal("go")
    workflow.write_stream("s", "from the workflow")
    await released_writer()
    workflow.close_stream("s")
    return "woken"


async def test_a_commit_of_this_process_wakes_the_reader_not_its_poll(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's looks are 30 s apart here (and it has no deadline): only
    the wake from the commit that wrote (a turn's, an activity's append)
    brings each value sooner."""
    monkeypatch.setattr(perdure._streams, "POLL_FIRST", 30.0)
    client.poll_interval = 30.0
    release, finish = gate("release"), gate("finish")
    loop = asyncio.get_running_loop()
    async with fast_worker(client, [st_woken], [released_writer]):
        handle = await client.start(st_woken)
        values = handle.read_stream("s")
        assert await asyncio.wait_for(anext(values), 10) == "first"
        # The reader looks again, finds nothing and waits: the turn's commit wakes it.
        pending = asyncio.ensure_future(anext(values))
        await asyncio.sleep(0.2)
        assert not pending.done()
        began = loop.time()
        await handle.signal("go")
        assert await asyncio.wait_for(pending, 25) == "from the workflow"
        assert loop.time() - began < 10, "the reader was not woken by the turn's commit"
        # An activity's append wakes it too.
        pending = asyncio.ensure_future(anext(values))
        await asyncio.sleep(0.2)
        assert not pending.done()
        began = loop.time()
        release.set()
        assert await asyncio.wait_for(pending, 25) == "from the activity"
        assert loop.time() - began < 10, "the reader was not woken by the activity's append"
        finish.set()
        # And the close ends it.
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(values), 25)
        assert await handle.result(timeout=20) == "woken"


@dataclass
class Progress:
    done: int
    at: datetime


@workflow.defn
async def st_pages() -> None:
    workflow.write_stream("p", Progress(0, workflow.now()))
    for n in range(1, 5):
        workflow.write_stream("p", n)
    await late_writer("p")
    await workflow.wait_signal("close")
    workflow.close_stream("p")
    await workflow.wait_signal("end")


async def test_a_page_says_positions_times_writers_and_where_to_go_on(
    client: perdure.Client,
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    async with fast_worker(client, [st_pages], [late_writer]):
        handle = await client.start(st_pages)

        async def written() -> bool:
            return [s.length for s in await handle.streams() if s.key == "p"] == [7]

        await wait_until(written, what="the values")
        first = await handle.stream_page("p", limit=3)
        assert isinstance(first, StreamPage)
        assert first.run_id == handle.run_id
        assert [e.position for e in first.entries] == [0, 1, 2]
        assert all(isinstance(e, StreamEntry) for e in first.entries)
        # (Decoded without a type hint: a dataclass comes back as its JSON.)
        assert first.entries[0].value["done"] == 0
        assert [e.value for e in first.entries[1:]] == [1, 2]
        assert (first.next_start, first.finished) == (3, False)
        for entry in first.entries:
            assert entry.time.tzinfo is UTC and before <= entry.time <= datetime.now(UTC)
        rest = await handle.stream_page("p", first.next_start)
        assert [(e.position, e.value, e.source) for e in rest.entries] == [
            (3, 3, None),
            (4, 4, None),
            (5, "dropped", "late_writer (ref 1) attempt 1"),
            (6, "dropped too", "late_writer (ref 1) attempt 1"),
        ]
        assert (rest.next_start, rest.finished) == (7, False)
        empty = await handle.stream_page("p", 7)
        assert (empty.entries, empty.next_start, empty.finished) == ([], 7, False)
        await handle.signal("close")

        async def closed() -> bool:
            return (await handle.stream_page("p", 7)).finished

        await wait_until(closed, what="the close")
        # Finished only on the page that holds the last value.
        assert not (await handle.stream_page("p", 0, limit=6)).finished
        last = await handle.stream_page("p", 6, limit=1)
        assert ([e.position for e in last.entries], last.finished) == ([6], True)
        assert (await handle.stream_page("p", 50)).next_start == 50
        await handle.signal("end")
        await handle.result(timeout=20)
    assert await handle.streams() == [StreamInfo("open", 1, False), StreamInfo("p", 7, True)]


async def test_the_sync_client_reads_a_stream(db_url: str, client: perdure.Client) -> None:
    async with fast_worker(client, [st_chat], []):
        handle = await client.start(st_chat, id="sync-chat")

        def read() -> tuple[list[Any], list[Any], StreamPage, list[StreamInfo]]:
            with perdure.SyncClient.connect(db_url) as sync:
                mine = sync.get_handle("sync-chat")
                values = []
                for value in mine.read_stream("chat", timeout=20):
                    values.append(value)
                    if value == "b":
                        mine.signal("say", "bye")
                # Stopped early: the reader stops listening.
                first = []
                for value in mine.read_stream("notes", timeout=20):
                    first.append(value)
                    break
                assert not sync.client.store.listened_runs()
                return values, first, mine.stream_page("chat", 1), mine.streams()

        reading = asyncio.ensure_future(asyncio.to_thread(read))
        await handle.signal("say", "a")
        await handle.signal("say", "b")
        values, first, page, infos = await asyncio.wait_for(reading, 30)
        assert values == ["a", "b"] and first == ["opened"]
        assert ([e.value for e in page.entries], page.finished) == (["b"], True)
        assert infos == [StreamInfo("chat", 2, True), StreamInfo("notes", 2, False)]
        await handle.signal("end")
        await handle.result(timeout=20)


# ------------------------------------------------------------ runs and their streams


@workflow.defn
async def st_rolling(left: int) -> str:
    workflow.write_stream("s", f"run with {left} left")
    if left > 0:
        await workflow.wait_signal("next")
        workflow.write_stream("s", "rolling over")  # (in the closing turn)
        workflow.continue_as_new(left - 1)
    await workflow.wait_signal("end")
    return "last"


async def test_each_run_has_its_own_streams_across_continue_as_new(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [st_rolling], []):
        first = await client.start(st_rolling, 1, id="rolling")
        by_id = client.get_handle("rolling")
        # A reader of the first run (a handle without a run id reads the
        # latest run as it starts: the first, here) ends with that run.
        readers = [asyncio.ensure_future(read_all(h, "s")) for h in (first, by_id)]
        await asyncio.sleep(0.1)
        assert not any(r.done() for r in readers)
        await first.signal("next")
        assert [await asyncio.wait_for(r, 20) for r in readers] == [
            ["run with 1 left", "rolling over"]
        ] * 2

        async def rolled() -> bool:
            return (await by_id.describe()).run_id != first.run_id

        await wait_until(rolled, what="the continue-as-new")
        second = asyncio.ensure_future(read_all(by_id, "s"))  # (the latest run now)
        await by_id.signal("end")
        assert await asyncio.wait_for(second, 20) == ["run with 0 left"]
        assert await by_id.result(timeout=20) == "last"
        # Each run's page says whose it is.
        assert (await first.stream_page("s")).run_id == first.run_id
        latest = await by_id.stream_page("s")
        assert latest.run_id != first.run_id
        assert [e.value for e in latest.entries] == ["run with 0 left"]


@workflow.defn
async def st_cancellable() -> None:
    workflow.write_stream("s", "waiting")
    try:
        await workflow.wait_signal("never")
    except asyncio.CancelledError:
        workflow.write_stream("s", "cancelled")
        raise


async def test_a_reader_ends_when_the_run_is_cancelled_or_terminated(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [st_cancellable], []):
        cancelled = await client.start(st_cancellable)
        terminated = await client.start(st_cancellable)
        readers = [asyncio.ensure_future(read_all(h, "s")) for h in (cancelled, terminated)]
        await asyncio.sleep(0.1)
        assert not any(r.done() for r in readers)
        await cancelled.cancel()
        await terminated.terminate("enough")
        assert await asyncio.wait_for(readers[0], 20) == ["waiting", "cancelled"]
        assert await asyncio.wait_for(readers[1], 20) == ["waiting"]
        with pytest.raises(perdure.WorkflowCancelledError):
            await cancelled.result(timeout=20)
    assert (await cancelled.stream_page("s")).finished
    assert await terminated.streams() == [StreamInfo("s", 1, False)]


@workflow.defn
async def st_child(n: int) -> int:
    for i in range(n):
        workflow.write_stream("kid", i)
    await workflow.wait_signal("go")
    workflow.write_stream("kid", "bye")
    return n


@workflow.defn
async def st_parent(n: int) -> int:
    workflow.write_stream("parent", "starting")
    child = await workflow.start_child(st_child, n, id="streaming-kid")
    return await child


async def test_a_child_that_writes_in_its_first_turn(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    claimed = record_claims(client, monkeypatch, "claim_workflow_tasks")
    async with fast_worker(client, [st_parent, st_child], []):
        parent = await client.start(st_parent, 3)
        kid = client.get_handle("streaming-kid")

        async def started() -> bool:
            try:
                return len((await kid.stream_page("kid")).entries) == 3
            except perdure.WorkflowNotFoundError:
                return False

        await wait_until(started, what="the child's first turn")
        # (Its first turn came with its parent's commit: no task was claimed.)
        kid_run = (await kid.describe()).run_id
        assert kid_run not in {t.run_id for t in claimed}
        reading = asyncio.ensure_future(read_all(kid, "kid"))
        await kid.signal("go")
        assert await asyncio.wait_for(reading, 20) == [0, 1, 2, "bye"]
        assert await parent.result(timeout=20) == 3
    assert await read_all(parent, "parent") == ["starting"]
    events = await kid.history()
    assert [e["value"] for e in events if e["type"] == "StreamWritten"] == [0, 1, 2, "bye"]


# ------------------------------------------------------------ the test environment


@workflow.defn
async def st_slow_news() -> int:
    for n, pause in enumerate((timedelta(hours=1), timedelta(days=2), timedelta(minutes=5))):
        workflow.write_stream("news", f"{n} at {workflow.now():%d %H:%M}")
        await workflow.sleep(pause)
    workflow.close_stream("news")
    await workflow.sleep(timedelta(days=1))
    return 3


async def test_the_test_environment_skips_time_while_a_reader_waits() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with WorkflowEnvironment(workflows=[st_slow_news], start_time=start) as env:
        handle = await env.start(st_slow_news)
        got = await collect(handle.read_stream("news", timeout=20))
        assert got == ["0 at 01 00:00", "1 at 01 01:00", "2 at 03 01:00"]
        assert env.now() >= start + timedelta(days=2, hours=1, minutes=5)
        assert await handle.result() == 3
    assert loop.time() - began < 10


# ------------------------------------------------------------ values at rest


@activity.defn
async def odd_values() -> None:
    activity.write_stream("odd", "nul \x00 and \u2603 from the activity")
    activity.write_stream("odd", {"big": 2**62, "list": [None, True, "x" * 300]})


@workflow.defn
async def st_odd_values() -> None:
    workflow.write_stream("odd", "nul \x00 and \u2603 from the workflow")
    await odd_values()
    workflow.close_stream("odd")


ODD_VALUES = [
    "nul \x00 and \u2603 from the workflow",
    "nul \x00 and \u2603 from the activity",
    {"big": 2**62, "list": [None, True, "x" * 300]},
]


async def test_values_round_trip_and_pass_through_codecs(db_url: str) -> None:
    """What JSON holds comes back as written (on PostgreSQL too, whose text
    holds no NUL); with payload codecs, values are sealed at rest and a
    reader with the same codecs reads them, one without them is told why."""
    sealed = perdure.DataConverter([ZlibCodec(min_size=0)])
    async with await perdure.Client.connect(db_url, converter=sealed) as client:
        client.poll_interval = 0.02
        async with fast_worker(client, [st_odd_values], [odd_values]):
            handle = await client.start(st_odd_values, id="odd")
            assert await read_all(handle, "odd") == ODD_VALUES
            await handle.result(timeout=20)
        assert [e.value for e in (await handle.stream_page("odd")).entries] == ODD_VALUES
        run_id = handle.run_id
        assert run_id is not None
        stored = await client.store.read_stream(run_id, "odd", 0, 10)
        assert all(perdure._converter.ENVELOPE_KEY in v for _, v, _, _ in stored.entries)
    async with await perdure.Client.connect(db_url) as plain:
        with pytest.raises(perdure.PayloadError, match=r"stream 'odd'.* payload codecs"):
            await collect(plain.get_handle("odd").read_stream("odd"))


# ------------------------------------------------------------ bad input


class Unencodable:
    pass


@workflow.defn
async def st_bad_writes() -> list[str]:
    said = []
    big = "x" * (3 * 2**20)  # (over the converter's max_payload_bytes, 2 MiB)
    bad = (
        (7, 1),
        ("", 1),
        ("a\x00b", 1),
        ("k" * 2001, 1),
        ("ok", Unencodable()),
        ("ok", "\ud800"),
        ("ok", big),
    )
    for key, value in bad:
        try:
            workflow.write_stream(key, value)  # type: ignore[arg-type]
        except (ValueError, perdure.PayloadError) as exc:
            said.append(f"{type(exc).__name__}: {exc}"[:70])
    try:
        workflow.close_stream("")
    except ValueError as exc:
        said.append(f"close: {exc}")
    said.append(await bad_activity_writes())
    workflow.write_stream("ok", "fine")
    return said


@activity.defn
async def bad_activity_writes() -> str:
    try:
        activity.write_stream("ok", Unencodable())
    except perdure.PayloadError as exc:
        payload = f"{type(exc).__name__}: {exc}"[:40]
    try:
        activity.write_stream("ok", "x" * (3 * 2**20))
    except perdure.PayloadError as exc:
        payload += f"; {exc}"[:30]
    try:
        activity.write_stream("", 1)
    except ValueError as exc:
        return f"{payload}; {exc}"
    return "not refused"


async def test_bad_writes_raise_in_the_code_that_made_them(client: perdure.Client) -> None:
    async with fast_worker(client, [st_bad_writes], [bad_activity_writes]):
        handle = await client.start(st_bad_writes)
        said = await handle.result(timeout=20)
    assert said[0].startswith("BadName: a stream key must be a non-empty string, not 7")
    assert said[1].startswith("BadName: a stream key must be a non-empty string, not ''")
    assert said[2].startswith("BadName: a stream key must not hold the NUL")
    assert said[3].startswith("BadName: a stream key must be at most 2,000 bytes")
    assert said[4].startswith("PayloadError: ")
    assert said[5].startswith("PayloadError: cannot encode stream 'ok': string contains the")
    assert said[6].startswith("PayloadError: stream 'ok' is too large: 3,145,730 bytes")
    assert said[7] == "close: a stream key must be a non-empty string, not ''"
    assert said[8].startswith("PayloadError: ")
    assert "; stream 'ok' is too large: 3," in said[8]
    assert said[8].endswith("; a stream key must be a non-empty string, not ''")
    assert await handle.streams() == [StreamInfo("ok", 1, False)]
    assert await read_all(handle, "ok") == ["fine"]


async def test_bad_reads_are_refused(client: perdure.Client) -> None:
    async with fast_worker(client, [st_chat], []):
        handle = await client.start(st_chat)
        for key in (7, "", "a\x00b", "k" * 2001, None):
            with pytest.raises(ValueError, match="a stream key must"):
                await collect(handle.read_stream(key))  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="a stream key must"):
                await handle.stream_page(key)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="start must not be negative, not -1"):
            await collect(handle.read_stream("chat", -1))
        with pytest.raises(ValueError, match="start must not be negative"):
            await handle.stream_page("chat", -1)
        for start in (True, 1.5, "3"):
            with pytest.raises(TypeError, match="start must be an int"):
                await collect(handle.read_stream("chat", start))  # type: ignore[arg-type]
        # Past what a position can be (a 64-bit integer): refused on every
        # backend (SQLite's driver had raised OverflowError).
        for start in (2**63, 2**70):
            with pytest.raises(ValueError, match="start must be at most 9,223,372,036,854,775,807"):
                await collect(handle.read_stream("chat", start))
            with pytest.raises(ValueError, match="start must be at most"):
                await handle.stream_page("chat", start)
        assert (await handle.stream_page("chat", 2**63 - 1)).entries == []
        for limit in (0, 10_001, True, 2.0, "5"):
            with pytest.raises(ValueError, match="limit must be an int from 1 to 10,000"):
                await handle.stream_page("chat", 0, limit)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="at least 0"):
            await collect(handle.read_stream("chat", timeout=-1))
        with pytest.raises(TypeError, match="timeout must be a number"):
            await collect(handle.read_stream("chat", timeout="1"))  # type: ignore[arg-type]
        unknown = client.get_handle("no-such-workflow")
        with pytest.raises(perdure.WorkflowNotFoundError, match="no-such-workflow"):
            await collect(unknown.read_stream("chat"))
        with pytest.raises(perdure.WorkflowNotFoundError):
            await unknown.stream_page("chat")
        with pytest.raises(perdure.WorkflowNotFoundError):
            await unknown.streams()
        with pytest.raises(perdure.WorkflowNotFoundError):
            await collect(client.get_handle(handle.id, "no-such-run").read_stream("chat"))
        await handle.signal("say", "bye")
        await handle.signal("end")
        await handle.result(timeout=20)
    assert not client.store.listened_runs()  # (every reader stopped listening)


def test_writes_outside_a_run() -> None:
    activity.write_stream("k", 1)  # (outside an activity: nothing)
    with pytest.raises(ValueError, match="a stream key must"):
        activity.write_stream("", 1)
    with pytest.raises(Exception, match="write_stream"):
        workflow.write_stream("k", 1)
    with pytest.raises(Exception, match="close_stream"):
        workflow.close_stream("k")


class _HeldStore:
    """A store whose appends wait for ``release`` (a database that is slow, or gone)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.written: list[Any] = []

    async def append_stream(self, run_id: str, key: str, values: list[Any], source: str) -> int:
        await self.release.wait()
        self.written.extend(values)
        return len(self.written)


def _attempt() -> ActivityTask:
    return ActivityTask(
        task_id=1, token="t", run_id="r", workflow_id="w", workflow_type="wf", ref=1,
        name="speak", task_queue="q", args=[], kwargs={}, options={}, attempt=1,
        scheduled_at=0.0,
    )  # fmt: skip


async def test_a_stopping_worker_waits_for_stream_values_in_flight(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What an attempt cut short at shutdown left in flight is written
    before the worker lets go (finish_flushes), within a bound: a store that
    never answers is given up on, with a warning."""
    store, flushes = _HeldStore(), set[asyncio.Task[None]]()
    writes = AttemptStreams(store, _attempt(), asyncio.get_running_loop(), flushes)  # type: ignore[arg-type]
    writes.add("s", 1)
    writes.add("s", 2)
    await asyncio.sleep(0)
    assert len(flushes) == 1
    asyncio.get_running_loop().call_later(0.05, store.release.set)
    await finish_flushes(flushes, timeout=10)
    assert store.written == [1, 2] and not flushes
    # Never answered: given up after the timeout, said in the log.
    store.release.clear()
    writes.add("s", 3)
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="perdure.worker"):
        await finish_flushes(flushes, timeout=0.05)
    await asyncio.sleep(0)
    assert store.written == [1, 2] and not flushes
    assert "stream values left unwritten at shutdown" in caplog.text
