"""``perdure stream`` and the streams of ``perdure show``, through the real
entry point (``python -m perdure``), on SQLite, with a real worker process
(``perdure worker`` serves this file's workflow and activity).

The values a workflow and an activity wrote are printed one JSON text a line
(``--json``: with position, time and writer; ``--start``: from a position);
``--follow`` prints the values written after it started and exits 0 when the
workflow closes the stream, or when the run ends; ``--timeout`` exits 8
naming the ``--start`` to read on from; an unknown workflow is exit 3, bad
input exit 2. ``show`` lists a run's streams (``--json``: ``streams``).

The test controls when values are written: the workflow writes one per
``say`` signal, and closes the stream at a ``say`` of null. Reading goes
through the client's ``stream_page`` and ``read_stream`` (tested on both
databases in tests/e2e; the HTTP API's routes on both in test_streams_api.py):
here one database keeps the suite short.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from surface_helpers import Proc, cli_all, migrated_sqlite, spawn, sync_client, wait_for
from surface_helpers import worker_serving as serving

import perdure
from perdure import activity, workflow

# ---------------------------------------------------------------- the worker's code


@activity.defn
def spell(word: str) -> int:
    """Writes the word's letters to the stream ``answer``, one value each."""
    for letter in word:
        activity.write_stream("answer", letter)
    return len(word)


@workflow.defn
async def chatter(topic: str) -> str:
    """Writes to ``answer``: a line of its own, the letters of ``topic`` (by
    the activity ``spell``), then each ``say`` signal's text; a ``say`` of
    null closes the stream. Then waits for ``finish``."""
    workflow.write_stream("answer", f"about {topic}")
    await spell(topic)
    while (said := await workflow.wait_signal("say", timeout=timedelta(days=1))) is not None:
        workflow.write_stream("answer", said)
    workflow.close_stream("answer")
    await workflow.wait_signal("finish", timeout=timedelta(days=1))
    return "done"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("streams-cli"))


@pytest.fixture(scope="module")
def client(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    yield from serving(__file__, db, tmp_path_factory.mktemp("streams-worker"))


def started(client: perdure.SyncClient, ident: str, topic: str) -> perdure.SyncWorkflowHandle[Any]:
    """A ``chatter`` run once its first values are written (the activity's
    too) and it waits for ``say``."""
    client.start("chatter", topic, id=ident)
    handle = client.get_handle(ident)
    wait_for(lambda: handle.describe().waiting_signals == ["say"], 20, f"{ident} to wait")
    return handle


def text(done: Any) -> str:
    """stderr as one line (rich wraps it)."""
    return " ".join(done.stderr.split())


def printed(proc: Proc, lines: list[str]) -> None:
    """Wait until ``proc`` has printed exactly ``lines`` (so far)."""
    what = f"{lines} in the output"
    wait_for(lambda: proc.output().splitlines() == lines, 20, what)


# ---------------------------------------------------------------- tests


def test_the_values_now_with_json_start_and_show(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    handle = started(client, "cli-stream-1", "hi")
    plain, as_json, later, shown, described, empty = cli_all(
        ("stream", "cli-stream-1", "answer", "--db", db),
        ("stream", "cli-stream-1", "answer", "--json", "--db", db),
        ("stream", "cli-stream-1", "answer", "--start", "2", "--db", db),
        ("show", "cli-stream-1", "--db", db),
        ("show", "cli-stream-1", "--json", "--db", db),
        ("stream", "cli-stream-1", "never written", "--db", db),
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == ['"about hi"', '"h"', '"i"']
    assert later.returncode == 0, later.stderr
    assert later.stdout.splitlines() == ['"i"']
    assert (empty.returncode, empty.stdout) == (0, "")

    assert as_json.returncode == 0, as_json.stderr
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(e["position"], e["value"], e["source"]) for e in entries] == [
        (0, "about hi", None),  # the workflow's own
        (1, "h", "spell (ref 1) attempt 1"),
        (2, "i", "spell (ref 1) attempt 1"),
    ]
    times = [datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in entries]
    assert times == sorted(times) and all(t.tzinfo == UTC for t in times)
    assert datetime.now(UTC) - times[0] < timedelta(minutes=5)

    assert shown.returncode == 0, shown.stderr
    assert "Streams" in shown.stdout and "answer  3 values" in shown.stdout
    assert "values, closed" not in shown.stdout
    assert json.loads(described.stdout)["streams"] == [
        {"key": "answer", "length": 3, "closed": False}
    ]

    # Closed: show says so.
    handle.signal("say", None)
    wait_for(lambda: handle.streams()[0].closed, 20, "the stream to close")
    shown, described = cli_all(
        ("show", "cli-stream-1", "--db", db), ("show", "cli-stream-1", "--json", "--db", db)
    )
    assert "answer  3 values, closed" in shown.stdout
    assert json.loads(described.stdout)["streams"] == [
        {"key": "answer", "length": 3, "closed": True}
    ]
    handle.signal("finish")
    assert handle.result(timeout=20) == "done"


def test_follow_prints_new_values_and_ends_when_the_stream_closes(
    db: str, worker: Proc, client: perdure.SyncClient, tmp_path: Path
) -> None:
    handle = started(client, "cli-stream-2", "ok")
    args = ["stream", "cli-stream-2", "answer", "--follow", "--json", "--db", db]
    follower = spawn(args, tmp_path / "follow.log")
    plain = spawn([*args[:4], "--start", "1", "--db", db], tmp_path / "plain.log")
    try:
        first = ["about ok", "o", "k"]

        def values(proc: Proc) -> list[Any]:
            return [json.loads(line)["value"] for line in proc.output().splitlines()]

        wait_for(lambda: values(follower) == first, 20, "the values written before")
        printed(plain, ['"o"', '"k"'])
        # Values written after the readers started: each one comes, in order.
        handle.signal("say", "and then")
        wait_for(lambda: values(follower) == [*first, "and then"], 20, "a new value")
        printed(plain, ['"o"', '"k"', '"and then"'])
        handle.signal("say", {"done": True, "text": "à bientôt\n"})
        printed(plain, ['"o"', '"k"', '"and then"', '{"done": true, "text": "à bientôt\\n"}'])
        assert follower.popen.poll() is None and plain.popen.poll() is None  # still following

        handle.signal("say", None)  # the workflow closes the stream: both end
        assert follower.popen.wait(timeout=20) == 0, follower.output()
        assert plain.popen.wait(timeout=20) == 0, plain.output()
        entries = [json.loads(line) for line in follower.output().splitlines()]
        assert [e["position"] for e in entries] == [0, 1, 2, 3, 4]
        assert entries[4]["value"] == {"done": True, "text": "à bientôt\n"}
        assert [e["source"] for e in entries] == [
            None,
            *["spell (ref 1) attempt 1"] * 2,
            None,
            None,
        ]
        assert handle.describe().status == "running"  # (the stream ended, not the run)
    finally:
        follower.stop(9)
        plain.stop(9)
    handle.signal("finish")
    assert handle.result(timeout=20) == "done"


def test_follow_ends_with_the_run_and_times_out_naming_the_start(
    db: str, worker: Proc, client: perdure.SyncClient, tmp_path: Path
) -> None:
    handle = started(client, "cli-stream-3", "yo")
    (late,) = cli_all(
        ("stream", "cli-stream-3", "answer", "-f", "--timeout", "0.3", "--db", db),
    )
    assert late.returncode == 8, late
    assert late.stdout.splitlines() == ['"about yo"', '"y"', '"o"']  # (what was there)
    said = text(late)
    assert "stream 'answer' of workflow 'cli-stream-3' did not end within 0.3s" in said
    assert "run this again with --start 3" in said

    # A stream the workflow never closes ends with its run.
    follower = spawn(
        ["stream", "cli-stream-3", "answer", "--start", "3", "-f", "--db", db],
        tmp_path / "follow.log",
    )
    try:
        handle.signal("say", "last words")
        printed(follower, ['"last words"'])
        handle.terminate("enough")
        assert follower.popen.wait(timeout=20) == 0, follower.output()
        assert follower.output().splitlines() == ['"last words"']
    finally:
        follower.stop(9)


def test_unknown_workflows_and_bad_input(db: str, worker: Proc, client: perdure.SyncClient) -> None:
    handle = started(client, "cli-stream-4", "no")
    cases: dict[tuple[str, ...], tuple[int, str]] = {
        ("stream", "nope", "answer"): (3, "no workflow with id 'nope'"),
        ("stream", "nope", "answer", "--follow"): (3, "no workflow with id 'nope'"),
        ("stream", "cli-stream-4", "answer", "--run-id", "no-such-run"): (3, "no-such-run"),
        ("stream", "nope", "answer", "--start", "-1"): (2, "Invalid value for '--start'"),
        ("stream", "nope", "answer", "--start", "x"): (2, "Invalid value for '--start'"),
        ("stream", "nope", "answer", "-f", "--timeout", "-1"): (2, "Invalid value for '--timeout'"),
        ("stream", "nope", ""): (2, "must not be empty"),
        ("stream", "nope", "k" * 2001): (2, "a stream key must be at most 2,000 bytes"),
        ("stream", "", "answer"): (2, "must be a non-empty string"),
        ("stream", "nope", "answer", "--run-id", ""): (2, "must not be empty"),
        ("stream", "nope"): (2, "Missing argument 'KEY'"),
    }
    results = cli_all(*((*args, "--db", db) for args in cases))
    for (args, (code, message)), done in zip(cases.items(), results, strict=True):
        assert done.returncode == code, (args[:4], done)
        assert message in text(done), (args[:4], done.stderr)
        assert done.stdout == "", (args[:4], done.stdout)
    handle.terminate("done")
