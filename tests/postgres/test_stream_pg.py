"""Streams on PostgreSQL with real ``perdure worker`` processes:
tests/crash/test_stream_sigkill.py's SIGKILLs (mid-stream, and right after
the commit of a turn that writes values), and the NOTIFY that wakes a
reader in another process than the worker that wrote (a workflow's turn,
an activity's append)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from crash_harness import Cluster
from test_stream_sigkill import steps_crash, tokens_crash

import perdure._streams

pytestmark = pytest.mark.slow


def test_a_retried_activitys_tokens_follow_the_killed_attempts_on_postgres(
    cluster: Cluster,
) -> None:
    tokens_crash(cluster, "mid-stream")


def test_workflow_values_are_written_once_across_a_kill_on_postgres(cluster: Cluster) -> None:
    steps_crash(cluster, "turn.after_commit:3")


def test_a_write_in_another_process_wakes_the_reader(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's looks are 30 s apart here (and it has no deadline): only
    the NOTIFY the worker process sends with each commit that wrote brings
    the values sooner."""
    monkeypatch.setattr(perdure._streams, "POLL_FIRST", 30.0)
    client = cluster.client
    client.client.poll_interval = 30.0
    cluster.start_worker()
    client.start("stream_echo", id="echo")
    handle = client.get_handle("echo")
    values = handle.read_stream("echo")
    seen: list[tuple[Any, float]] = []

    def read() -> None:
        for value in values:
            seen.append((value, time.monotonic()))

    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read)
        # (Once the reader waits: its first look found nothing.)
        time.sleep(0.5)
        for say, expected in (("hello", ["hello"]), ("act: two words", ["two", "words"])):
            began, before = time.monotonic(), len(seen)
            wanted = before + len(expected)
            handle.signal("say", say)
            cluster.wait_until(
                lambda: len(seen) >= wanted,  # noqa: B023  (called within this pass)
                timeout=25,
                what=f"the reader to get {expected}",
            )
            assert [v for v, _ in seen[before:]] == expected
            assert seen[-1][1] - began < 10, "the reader was not woken by the NOTIFY"
        handle.signal("say", "bye")
        reading.result(timeout=25)
    assert [v for v, _ in seen] == ["hello", "two", "words"]
    assert handle.result(timeout=20) == 3
