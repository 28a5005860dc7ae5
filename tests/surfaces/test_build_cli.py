"""Worker builds on the command line (docs/versioning.md): ``perdure
worker --build-id`` (and ``$PERDURE_BUILD_ID``) reaches the Worker, and
each worker process's command; a bad one is exit 2 and nothing runs. A
real ``perdure worker`` of a build pins the runs it takes: ``show`` names
the build, ``list --build-id`` finds them, ``build list`` counts them and
the build's live worker. ``build set-current``, ``build ramp`` (a build,
its share, ``--clear``) and ``build move`` (to a build, ``--unpin``), with
their exit codes: 2 for bad input, 3 for an unknown id, 5 for a run that
has ended (and for a ramp the queue's builds do not allow).

How the builds share a queue's runs is tested in tests/e2e/test_builds.py;
here, only that each command carries its values to the Client and shows
what it answers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import surface_workflows as wf
from surface_helpers import (
    Proc,
    cli_all,
    migrated_sqlite,
    said,
    spawn,
    stop_serving_worker,
    sync_client,
    wait_for,
)

import perdure
import perdure._worker.worker as worker_module
import perdure.cli._supervise as supervise_module
from perdure.cli._worker_run import main

QUEUE = "builds"  # the queue of this module's worker (of build cli-b1)


# ---------------------------------------------------------------- worker --build-id


class _Recorded:
    """A Worker that records its options and serves nothing."""

    seen: list[dict[str, Any]] = []

    def __init__(self, client: Any, workflows: Any, activities: Any, **options: Any) -> None:
        self.seen.append(options)
        self.workflows = {"w": None}
        self.activities: dict[str, Any] = {}

    async def run(self) -> None:
        return None


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setattr(_Recorded, "seen", [])
    monkeypatch.setattr(worker_module, "Worker", _Recorded)
    monkeypatch.delenv("PERDURE_BUILD_ID", raising=False)
    return _Recorded.seen


def test_the_build_id_reaches_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: list[dict[str, Any]]
) -> None:
    base = [wf.__file__, "--db", f"sqlite:///{tmp_path / 'b.db'}", "--log-level", "ERROR"]
    assert main([*base, "--build-id", "2026-12-06.1"]) == 0
    assert main(base) == 0
    monkeypatch.setenv("PERDURE_BUILD_ID", "from-env")
    assert main(base) == 0
    assert main([*base, "--build-id", "flag-wins"]) == 0
    monkeypatch.setenv("PERDURE_BUILD_ID", "")  # (an empty variable is no build)
    assert main(base) == 0
    builds = [options["build_id"] for options in recorded]
    assert builds == ["2026-12-06.1", None, "from-env", "flag-wins", None]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "--build-id must not be empty (leave it out, and $PERDURE_BUILD_ID unset"),
        ("b" * 201, "--build-id must be at most 200 bytes long in UTF-8, not 201"),
        ("é" * 101, "--build-id must be at most 200 bytes long in UTF-8, not 202"),
        ("a\x00b", "--build-id must not hold the NUL character"),
    ],
    ids=["empty", "201 bytes", "202 bytes of 101 letters", "NUL"],
)
def test_a_bad_build_id_is_refused_before_anything_runs(
    tmp_path: Path,
    recorded: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    value: str,
    message: str,
) -> None:
    db = f"sqlite:///{tmp_path / 'b.db'}"
    assert main([wf.__file__, "--db", db, "--build-id", value]) == 2
    assert message in capsys.readouterr().err
    assert recorded == []
    assert not (tmp_path / "b.db").exists()  # (refused before connecting)


def test_each_worker_process_gets_the_build_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def supervise(command: Any, count: int) -> int:
        commands.extend(list(command(k)) for k in range(1, count + 1))
        return 0

    monkeypatch.setattr(supervise_module, "supervise", supervise)
    db = f"sqlite:///{tmp_path / 'b.db'}"
    assert main([wf.__file__, "--db", db, "--processes", "2", "--build-id", "b-7"]) == 0
    assert main([wf.__file__, "--db", db, "--processes", "2"]) == 0
    with_build, without = commands[:2], commands[2:]
    assert [dict(itertools.pairwise(c))["--build-id"] for c in with_build] == ["b-7", "b-7"]
    assert not any("--build-id" in c for c in without)


def test_the_worker_help_names_the_option() -> None:
    (helped,) = cli_all(("worker", "--help"))
    text = said(helped)
    assert "--build-id BUILD" in text and "PERDURE_BUILD_ID" in text, text


# ---------------------------------------------------------------- a worker of a build


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("build-cli"))


@pytest.fixture(scope="module")
def sync(db: str) -> Iterator[perdure.SyncClient]:
    yield from sync_client(db)


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A ``perdure worker`` of build cli-b1 (from the environment) on QUEUE."""
    args = ["worker", wf.__file__, "--db", db, "-q", QUEUE, "--poll-interval", "0.05"]
    log = tmp_path_factory.mktemp("build-worker") / "worker.log"
    proc = spawn([*args, "--log-level", "INFO"], log, env={"PERDURE_BUILD_ID": "cli-b1"})
    yield proc
    stop_serving_worker(proc, db)


def test_a_workers_build_pins_its_runs_and_is_shown(
    db: str, sync: perdure.SyncClient, worker: Proc
) -> None:
    handle = sync.start("awaits_an_event", "x", id="cli-pinned", task_queue=QUEUE)
    sync.start("double", 2, id="cli-unpinned", task_queue="no-worker-here")
    wait_for(lambda: handle.describe().build_id == "cli-b1", 20, "the run pinned to cli-b1")
    assert "build cli-b1, event loop: asyncio" in worker.output()

    shown, shown_json, listed, other, table, builds, builds_json = cli_all(
        ("show", "cli-pinned", "--db", db),
        ("show", "cli-pinned", "--json", "--db", db),
        ("list", "--build-id", "cli-b1", "--json", "--db", db),
        ("list", "--build-id", "cli-b2", "--json", "--db", db),
        ("list", "--search", "cli-", "--db", db),
        ("build", "list", QUEUE, "--db", db),
        ("build", "list", QUEUE, "--json", "--db", db),
    )
    for done in (shown, shown_json, listed, other, table, builds, builds_json):
        assert done.returncode == 0, (done.args, done.stderr)
    lines = shown.stdout.splitlines()
    priority = next(i for i, line in enumerate(lines) if line.startswith("  priority"))
    assert lines[priority + 1] == "  build      cli-b1 (pinned: only its workers run its turns)"
    assert json.loads(shown_json.stdout)["build_id"] == "cli-b1"
    rows = json.loads(listed.stdout)["items"]
    assert [(r["id"], r["build_id"]) for r in rows] == [("cli-pinned", "cli-b1")]
    assert json.loads(other.stdout)["items"] == []
    header = table.stdout.splitlines()[0]
    assert header.split()[-1] == "BUILD", table.stdout
    by_id = {line.split()[0]: line.split()[-1] for line in table.stdout.splitlines()[2:]}
    assert by_id == {"cli-pinned": "cli-b1", "cli-unpinned": "-"}, table.stdout
    row = next(line for line in builds.stdout.splitlines() if "cli-b1" in line)
    assert row.replace("│", " ").split()[:2] == ["cli-b1", "yes"], builds.stdout
    assert row.replace("│", " ").split()[-2:] == ["1", "1"], builds.stdout  # 1 run, 1 worker
    (found,) = json.loads(builds_json.stdout)
    assert found["build_id"] == "cli-b1" and found["current"] is True
    assert (found["open_runs"], found["workers"]) == (1, 1)
    assert found["promoted_at"].endswith("Z")


def test_a_run_without_a_build_shows_none(db: str, sync: perdure.SyncClient) -> None:
    sync.start("double", 2, id="cli-plain", task_queue="no-worker-here")
    shown, listed = cli_all(
        ("show", "cli-plain", "--db", db), ("list", "--search", "cli-plain", "--db", db)
    )
    assert "build" not in shown.stdout and "BUILD" not in listed.stdout, (shown, listed)


def test_set_current_names_a_queues_build(db: str) -> None:
    queue = "rolled-back"
    first, empty = cli_all(
        ("build", "set-current", queue, "v2", "--db", db),
        ("build", "list", "nothing-here", "--db", db),
    )
    assert first.returncode == 0, first.stderr
    assert "Build v2 is the current build of task queue rolled-back" in said(first)
    assert "No live worker of build v2 serves the queue yet" in said(first)
    assert "has had no worker with a build" in empty.stdout
    (second,) = cli_all(("build", "set-current", queue, "v1", "--db", db))
    assert second.returncode == 0, second.stderr
    (listed,) = cli_all(("build", "list", queue, "--json", "--db", db))
    found = json.loads(listed.stdout)
    assert [(b["build_id"], b["current"]) for b in found] == [("v1", True), ("v2", False)]
    assert [(b["open_runs"], b["workers"]) for b in found] == [(0, 0), (0, 0)]

    bad = cli_all(
        ("build", "set-current", queue, "", "--db", db),
        ("build", "set-current", queue, "x" * 201, "--db", db),
        ("build", "set-current", "", "v3", "--db", db),
        ("build", "set-current", "a\x1fb", "v3", "--db", db),
        ("build", "list", "", "--db", db),
    )
    messages = [
        "a build id must be a non-empty string, not ''",
        "a build id must be at most 200 bytes long in UTF-8, not 201",
        "task_queue must be a non-empty string, not ''",
        "task_queue must not hold the control character U+001F",
        "task_queue must be a non-empty string, not ''",
    ]
    for done, message in zip(bad, messages, strict=True):
        assert done.returncode == 2 and message in said(done), (done.args, said(done))
    (after,) = cli_all(("build", "list", queue, "--json", "--db", db))
    assert [b["build_id"] for b in json.loads(after.stdout)] == ["v1", "v2"]


def ramps(db: str, queue: str) -> list[tuple[str, bool, Any, Any]]:
    """``build list --json``'s (build, current, ramp, promoted_at) of ``queue``."""
    (listed,) = cli_all(("build", "list", queue, "--json", "--db", db))
    assert listed.returncode == 0, listed.stderr
    return [
        (b["build_id"], b["current"], b["ramp"], b["promoted_at"])
        for b in json.loads(listed.stdout)
    ]


def test_ramp_lets_a_build_take_a_share_beside_the_current_one(db: str) -> None:
    queue = "ramped"
    (early,) = cli_all(("build", "ramp", queue, "r2", "30", "--db", db))
    assert early.returncode == 5, said(early)
    assert (
        "task queue 'ramped' has no current build for 'r2' to ramp beside: start a worker"
        in said(early)
    )
    assert ramps(db, queue) == []  # (refused: nothing written)

    (current,) = cli_all(("build", "set-current", queue, "r1", "--db", db))
    assert current.returncode == 0, current.stderr
    (ramped,) = cli_all(("build", "ramp", queue, "r2", "30", "--db", db))
    assert ramped.returncode == 0, ramped.stderr
    assert "Build r2 ramps on task queue ramped: it takes 30% of the queue's new runs" in said(
        ramped
    )
    assert (
        "No live worker of build r2 serves the queue yet: its share of new runs waits for one"
        in said(ramped)
    )
    (r1, r2) = ramps(db, queue)
    assert r1[:3] == ("r1", True, None) and r1[3].endswith("Z")
    assert r2 == ("r2", False, 30.0, None)  # (never current)
    (table,) = cli_all(("build", "list", queue, "--db", db))
    assert table.stdout.splitlines()[1].replace("┃", " ").split()[:4] == [
        "BUILD",
        "CURRENT",
        "RAMP",
        "PROMOTED",
    ], table.stdout
    rows = {
        cells[0]: cells
        for line in table.stdout.splitlines()
        if (cells := line.replace("│", " ").split()) and cells[0] in ("r1", "r2")
    }
    assert rows["r2"] == ["r2", "30%", "never", "0", "0"], table.stdout
    assert rows["r1"][:2] == ["r1", "yes"] and "%" not in " ".join(rows["r1"]), table.stdout

    # Another build's ramp replaces it.
    (other,) = cli_all(("build", "ramp", queue, "r3", "12.5", "--db", db))
    assert other.returncode == 0 and "it takes 12.5% of" in said(other), said(other)
    assert [(b, r) for b, _, r, _ in ramps(db, queue)] == [
        ("r1", None),
        ("r3", 12.5),
        ("r2", None),
    ]

    (of_current,) = cli_all(("build", "ramp", queue, "r1", "30", "--db", db))
    assert of_current.returncode == 5, said(of_current)
    assert (
        "build 'r1' is the current build of task queue 'ramped': it takes every new run "
        "already; only another build ramps"
    ) in said(of_current)
    bad = cli_all(
        ("build", "ramp", queue, "r3", "101", "--db", db),
        ("build", "ramp", "--db", db, queue, "r3", "--", "-1"),
        ("build", "ramp", queue, "r3", "-1", "--db", db),
        ("build", "ramp", queue, "r3", "abc", "--db", db),
        ("build", "ramp", queue, "r3", "--clear", "--db", db),
        ("build", "ramp", queue, "--db", db),
        ("build", "ramp", queue, "r3", "--db", db),
        ("build", "ramp", queue, "", "30", "--db", db),
        ("build", "ramp", "", "r3", "30", "--db", db),
    )
    messages = [
        "percent must be a number from 0 to 100, not 101.0",
        "percent must be a number from 0 to 100, not -1.0",
        "No such option: -1",  # (click's reading of it; after "--", the Client's)
        "Invalid value for 'PERCENT'",
        "give BUILD and PERCENT, or --clear, not both",
        "give the build to ramp and its PERCENT, or --clear",
        "give BUILD's share of the queue's new runs, from 0 to 100",
        "a build id must be a non-empty string, not ''",
        "task_queue must be a non-empty string, not ''",
    ]
    for done, message in zip(bad, messages, strict=True):
        assert done.returncode == 2 and message in said(done), (done.args, said(done))
    assert [(b, c, r) for b, c, r, _ in ramps(db, queue)] == [
        ("r1", True, None),
        ("r3", False, 12.5),
        ("r2", False, None),
    ]

    (cleared,) = cli_all(("build", "ramp", queue, "--clear", "--db", db))
    assert cleared.returncode == 0, cleared.stderr
    assert "No build ramps on task queue ramped" in said(cleared)
    assert [r for _, _, r, _ in ramps(db, queue)] == [None, None, None]

    # Making the ramping build current ends its ramp.
    (again,) = cli_all(("build", "ramp", queue, "r3", "50", "--db", db))
    assert again.returncode == 0, again.stderr
    assert ("r3", False, 50.0) in [(b, c, r) for b, c, r, _ in ramps(db, queue)]
    (promoted,) = cli_all(("build", "set-current", queue, "r3", "--db", db))
    assert promoted.returncode == 0, promoted.stderr
    (r3, r1, r2) = ramps(db, queue)
    assert r3[:3] == ("r3", True, None) and r3[3] is not None
    assert (r1[2], r2[2]) == (None, None)


def test_a_build_whose_runs_wait_for_nobody_is_pointed_out(
    db: str, sync: perdure.SyncClient
) -> None:
    queue = "stranded"
    sync.set_current_build(queue, "gone-1")
    sync.start("double", 2, id="cli-stranded", task_queue=queue).set_build_id("gone-1")
    (listed,) = cli_all(("build", "list", queue, "--db", db))
    assert listed.returncode == 0, listed.stderr
    assert "Build gone-1 has 1 open run(s) and no live worker: they wait" in said(listed)
    sync.get_handle("cli-stranded").terminate("done")
    (after,) = cli_all(("build", "list", queue, "--db", db))
    assert "no live worker" not in said(after)


def test_move_pins_and_unpins_an_open_run(db: str, sync: perdure.SyncClient) -> None:
    handle = sync.start("double", 2, id="cli-move", task_queue="no-worker-here")
    moved, nobody = cli_all(
        ("build", "move", "cli-move", "fix-3", "--db", db),
        ("build", "move", "cli-nobody", "fix-3", "--db", db),
    )
    assert moved.returncode == 0 and "moved to build fix-3" in moved.stdout, moved.stderr
    assert handle.describe().build_id == "fix-3"
    assert nobody.returncode == 3 and "no workflow with id 'cli-nobody'" in nobody.stderr

    bad = cli_all(
        ("build", "move", "cli-move", "--db", db),
        ("build", "move", "cli-move", "fix-4", "--unpin", "--db", db),
        ("build", "move", "cli-move", "", "--db", db),
        ("build", "move", "cli-move", "y" * 201, "--db", db),
    )
    messages = [
        "give the build to pin the run to, or --unpin",
        "give BUILD or --unpin, not both",
        "a build id must be a non-empty string, not ''",
        "a build id must be at most 200 bytes long in UTF-8, not 201",
    ]
    for done, message in zip(bad, messages, strict=True):
        assert done.returncode == 2 and message in said(done), (done.args, said(done))
    assert handle.describe().build_id == "fix-3"

    run_id = handle.describe().run_id
    unpinned, wrong_run = cli_all(
        ("build", "move", "cli-move", "--unpin", "--run-id", run_id, "--db", db),
        ("build", "move", "cli-move", "fix-4", "--run-id", "no-such-run", "--db", db),
    )
    assert unpinned.returncode == 0 and "unpinned" in unpinned.stdout, unpinned.stderr
    assert handle.describe().build_id is None
    assert wrong_run.returncode == 3, wrong_run.stderr

    handle.terminate("done")
    (ended,) = cli_all(("build", "move", "cli-move", "fix-4", "--db", db))
    assert ended.returncode == 5 and "terminated" in ended.stderr, ended.stderr
    assert handle.describe().build_id is None


def test_build_list_without_a_queue_shows_every_queue(db: str, tmp_path: Path) -> None:
    (empty,) = cli_all(("build", "list", "--db", migrated_sqlite(tmp_path)))
    assert empty.returncode == 0 and "no task queue has had a worker with a build" in said(empty)
    # cli_all runs its commands at once: the ramp needs every-a's current
    # build, so it goes after.
    done = cli_all(
        ("build", "set-current", "every-a", "e1", "--db", db),
        ("build", "set-current", "every-b", "f1", "--db", db),
    )
    done += cli_all(("build", "ramp", "every-a", "e2", "20", "--db", db))
    assert [d.returncode for d in done] == [0, 0, 0], [said(d) for d in done]
    listed, one, table = cli_all(
        ("build", "list", "--json", "--db", db),
        ("build", "list", "every-a", "--json", "--db", db),
        ("build", "list", "--db", db),
    )
    assert listed.returncode == 0 and table.returncode == 0, said(listed) + said(table)
    every = {item["task_queue"]: item["builds"] for item in json.loads(listed.stdout)}
    assert every["every-a"] == json.loads(one.stdout)
    assert [(b["build_id"], b["current"], b["ramp"]) for b in every["every-a"]] == [
        ("e1", True, None),
        ("e2", False, 20.0),
    ]
    assert [b["build_id"] for b in every["every-b"]] == ["f1"]
    assert list(every) == sorted(every)  # (by name)
    text = said(table)
    assert "task queue every-a" in text and "task queue every-b" in text, text
    assert "e2 20% never 0 0" in text, text
