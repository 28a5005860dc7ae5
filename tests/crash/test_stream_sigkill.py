"""Streams across a SIGKILL of the worker (real ``perdure worker`` processes):

- killed while an activity streams tokens (mid-stream, or after its values
  were written but before its completion was): the next worker's attempt
  writes its tokens again; a reader that read throughout sees attempt 1's
  values, then attempt 2's, each saying which attempt wrote it, and the run
  completes. Killed after the completion was recorded: no attempt runs
  again, every token is there once.
- killed before or after the commit of a turn that writes workflow values:
  each value is in the stream exactly once (the history holds it once, and
  a replay does not write it again)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from crash_harness import Cluster, check_executions

pytestmark = pytest.mark.slow

TOKENS = 10
HALF = TOKENS // 2
SOURCE = "stream_tokens (ref 1) attempt {}"


def read_in_background(cluster: Cluster, pool: ThreadPoolExecutor, wid: str, key: str) -> Future:
    """A reader in a thread of the test process, reading the stream to its close."""
    handle = cluster.client.get_handle(wid)
    return pool.submit(lambda: list(handle.read_stream(key, timeout=90)))


def stream_length(cluster: Cluster, wid: str, key: str) -> int:
    return sum(s.length for s in cluster.client.get_handle(wid).streams() if s.key == key)


def entries(cluster: Cluster, wid: str, key: str) -> list[tuple[Any, str | None]]:
    page = cluster.client.get_handle(wid).stream_page(key, limit=10_000)
    assert [e.position for e in page.entries] == list(range(len(page.entries)))
    assert page.finished
    return [(e.value, e.source) for e in page.entries]


def attempt(k: int, count: int = TOKENS) -> list[tuple[str, str]]:
    return [(f"attempt {k}: {i}", SOURCE.format(k)) for i in range(count)]


@pytest.mark.parametrize("kill", ["mid-stream", "activity.before_complete:1"])
def test_a_retried_activitys_tokens_follow_the_killed_attempts(cluster: Cluster, kill: str) -> None:
    tokens_crash(cluster, kill)


def tokens_crash(cluster: Cluster, kill: str) -> None:
    """Shared with tests/postgres/test_stream_pg.py."""
    client = cluster.client
    wid = "tokens"
    with ThreadPoolExecutor(1) as pool:
        if kill == "mid-stream":
            worker = cluster.start_worker()
            run = client.start("token_stream", TOKENS, 60.0, id=wid)
            reader = read_in_background(cluster, pool, wid, "tokens")
            # Attempt 1 wrote half its tokens and waits: kill its worker there.
            cluster.wait_until(
                lambda: stream_length(cluster, wid, "tokens") == 1 + HALF,
                timeout=30,
                what="attempt 1's first tokens",
            )
            cluster.kill(worker)
            first = attempt(1, HALF)
        else:
            run = client.start("token_stream", TOKENS, 0.0, id=wid)
            reader = read_in_background(cluster, pool, wid, "tokens")
            worker = cluster.crash_worker_at(kill)
            first = attempt(1)  # (all written: the worker waits for them before completing)
        cluster.start_worker()
        assert run.result(timeout=60) == f"{wid}#1"
        read = reader.result(timeout=60)
    expected = [("start", None), *first, *attempt(2), ("end", None)]
    assert entries(cluster, wid, "tokens") == expected
    assert read == [value for value, _ in expected]
    history = run.history()
    done = [e for e in history if e["type"] == "ActivityCompleted"]
    assert [e["attempt"] for e in done] == [2]
    check_executions(cluster.executions(), {wid: history}, 1, {worker.pid})
    cluster.assert_no_tracebacks()


def test_tokens_written_before_a_recorded_completion_are_not_written_again(
    cluster: Cluster,
) -> None:
    client = cluster.client
    run = client.start("token_stream", TOKENS, 0.0, id="once")
    with ThreadPoolExecutor(1) as pool:
        reader = read_in_background(cluster, pool, "once", "tokens")
        killed = cluster.crash_worker_at("activity.after_complete:1")
        cluster.start_worker()
        assert run.result(timeout=60) == "once#1"
        read = reader.result(timeout=60)
    expected = [("start", None), *attempt(1), ("end", None)]
    assert entries(cluster, "once", "tokens") == expected
    assert read == [value for value, _ in expected]
    check_executions(cluster.executions(), {"once": run.history()}, 1, {killed.pid})


STEPS = 4
STEP_VALUES = [v for n in range(1, STEPS + 1) for v in (f"before {n}", f"after {n}")]


@pytest.mark.parametrize(
    "crash_at", ["turn.before_commit:3", "turn.after_commit:3", "turn.after_commit:1"]
)
def test_workflow_values_are_written_once_across_a_kill_around_their_turn(
    cluster: Cluster, crash_at: str
) -> None:
    steps_crash(cluster, crash_at)


def steps_crash(cluster: Cluster, crash_at: str) -> None:
    """Shared with tests/postgres/test_stream_pg.py."""
    client = cluster.client
    run = client.start("stream_steps", STEPS, 0.05, id="steps")
    with ThreadPoolExecutor(1) as pool:
        reader = read_in_background(cluster, pool, "steps", "steps")
        killed = cluster.crash_worker_at(crash_at)
        cluster.start_worker()
        assert run.result(timeout=60) == STEPS
        read = reader.result(timeout=60)
    assert read == STEP_VALUES
    assert entries(cluster, "steps", "steps") == [(v, None) for v in STEP_VALUES]
    history = run.history()
    assert [e["value"] for e in history if e["type"] == "StreamWritten"] == STEP_VALUES
    assert [e["key"] for e in history if e["type"] == "StreamClosed"] == ["steps"]
    check_executions(cluster.executions(), {"steps": history}, STEPS, {killed.pid})
