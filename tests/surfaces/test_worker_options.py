"""``perdure worker``'s options reach the Worker it runs (or, with
``--processes``, each worker process's command), and a Worker refuses
numeric options out of range, naming them. In-process: the command's
``main`` with the Worker (or the supervisor) replaced by a recorder.
(The flags' spelling in errors, through the real entry point, is in
test_cli.py's exit-code cases.)"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sealed_workflows
import surface_workflows as wf

import perdure
import perdure._worker.worker as worker_module
import perdure.cli._supervise as supervise_module
from perdure import workflow
from perdure.cli._worker_run import main


@workflow.defn
async def greet_twice(name: str) -> list[str]:
    return [await wf.make_greeting(name), await wf.make_greeting(f"{name}!")]


class _Recorded:
    """A Worker that records its arguments and serves nothing."""

    seen: list[dict[str, Any]] = []

    def __init__(self, client: Any, workflows: Any, activities: Any, **options: Any) -> None:
        self.seen.append(options)
        self.workflows = {"w": None}
        self.activities: dict[str, Any] = {}

    async def run(self) -> None:
        return None


def test_the_worker_options_reach_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Recorded, "seen", [])
    monkeypatch.setattr(worker_module, "Worker", _Recorded)
    db = f"sqlite:///{tmp_path / 'options.db'}"
    flags = ["--max-activities", "40", "--max-workflow-tasks", "7", "--cache-size", "3"]
    flags += ["--drain-timeout", "1.5", "--lease-timeout", "9", "--poll-interval", "0.3"]
    flags += ["--deadlock-timeout", "4.5"]
    assert main([wf.__file__, "--db", db, "--log-level", "ERROR", *flags]) == 0
    [options] = _Recorded.seen
    assert options["max_concurrent_activities"] == 40
    assert options["max_concurrent_workflow_tasks"] == 7
    assert options["cache_size"] == 3
    assert options["drain_timeout"] == 1.5
    assert options["lease_timeout"] == 9.0
    assert options["poll_interval"] == 0.3
    assert options["deadlock_timeout"] == 4.5


def test_a_deadlock_timeout_of_zero_turns_the_watchdog_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_Recorded, "seen", [])
    monkeypatch.setattr(worker_module, "Worker", _Recorded)
    db = f"sqlite:///{tmp_path / 'options.db'}"
    assert main([wf.__file__, "--db", db, "--log-level", "ERROR"]) == 0
    assert main([wf.__file__, "--db", db, "--log-level", "ERROR", "--deadlock-timeout", "0"]) == 0
    assert [seen["deadlock_timeout"] for seen in _Recorded.seen] == [2.0, None]
    assert main([wf.__file__, "--db", db, "--deadlock-timeout", "-1"]) == 2
    assert "--deadlock-timeout must be a positive number of seconds" in capsys.readouterr().err


def test_each_worker_process_gets_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def supervise(command: Any, count: int) -> int:
        commands.extend(list(command(k)) for k in range(1, count + 1))
        return 0

    monkeypatch.setattr(supervise_module, "supervise", supervise)
    db = f"sqlite:///{tmp_path / 'options.db'}"
    flags = ["--max-workflow-tasks", "7", "--cache-size", "3", "--drain-timeout", "1.5"]
    converter = f"{sealed_workflows.__file__}:converter"
    flags += ["--converter", converter]
    assert main([wf.__file__, "--db", db, "--processes", "2", "--identity", "w", *flags]) == 0
    assert len(commands) == 2
    for k, command in enumerate(commands, 1):
        given = _pairs(command)
        assert given["--max-workflow-tasks"] == "7"
        assert given["--cache-size"] == "3"
        assert float(given["--drain-timeout"]) == 1.5
        assert float(given["--deadlock-timeout"]) == 2.0
        assert given["--identity"] == f"w/{k}"
        assert given["--converter"] == converter


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("poll_interval", 0, "poll_interval must be a positive number of seconds, not 0"),
        ("lease_timeout", -5.0, "lease_timeout must be a positive number of seconds, not -5.0"),
        ("lease_timeout", float("inf"), "lease_timeout must be a positive number"),
        ("max_concurrent_activities", 0, "max_concurrent_activities must be a whole number"),
        ("max_concurrent_workflow_tasks", 2.5, "max_concurrent_workflow_tasks must be a whole"),
        ("cache_size", -1, "cache_size must be a whole number of at least 0, not -1"),
        ("drain_timeout", float("nan"), "drain_timeout must be a number of seconds of at least 0"),
        ("poll_interval", "1", "poll_interval must be a positive number of seconds, not '1'"),
        ("task_queue", "", "task_queue must be a non-empty string, not ''"),
        ("deadlock_timeout", 0, "deadlock_timeout must be a positive number of seconds, not 0"),
        ("deadlock_timeout", -1.0, "deadlock_timeout must be a positive number of seconds"),
        ("deadlock_timeout", float("nan"), "deadlock_timeout must be a positive number"),
        ("deadlock_timeout", float("inf"), "deadlock_timeout must be a positive number"),
        ("deadlock_timeout", "2", "deadlock_timeout must be a positive number of seconds, not '2'"),
        ("deadlock_timeout", True, "deadlock_timeout must be a positive number of seconds"),
    ],
)
async def test_a_worker_refuses_options_out_of_range(
    client: perdure.Client, option: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        perdure.Worker(client, [wf.double], **{option: value})


async def test_a_worker_takes_its_options_at_their_bounds(client: perdure.Client) -> None:
    """The smallest values allowed work: one slot of each kind, no cache
    (every turn replays), no drain."""
    worker = perdure.Worker(
        client,
        [greet_twice],
        [wf.make_greeting],
        max_concurrent_activities=1,
        max_concurrent_workflow_tasks=1,
        cache_size=0,
        drain_timeout=0,
        poll_interval=0.01,
        lease_timeout=0.5,
    )
    async with worker:
        handles = [await client.start(greet_twice, name) for name in ("ada", "bo", "cy")]
        results = [await h.result(timeout=30) for h in handles]
    assert results == [[f"hello {n}", f"hello {n}!"] for n in ("ada", "bo", "cy")]
    assert worker.turns.replays >= 6  # no instance was kept between turns


def _pairs(command: Sequence[str]) -> dict[str, str]:
    return dict(itertools.pairwise(command))
