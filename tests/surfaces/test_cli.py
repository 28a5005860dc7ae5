"""The operator commands through the real entry point (``python -m perdure``),
against a real worker process: outputs, and every documented exit code.

Each command runs as a subprocess (about half a second each, mostly imports), so
set-up and waiting go through an in-process SyncClient, and independent
invocations run side by side (:func:`cli_all`).
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import surface_workflows as wf
from surface_helpers import ENV, PERDURE, Proc, cli, cli_all, spawn, stop_serving_worker, wait_for

import perdure
from perdure.cli import COMMANDS


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"
    done = cli("migrate", "--db", url)
    assert done.returncode == 0, done.stderr
    assert "Created database" in done.stdout and "schema version" in done.stdout
    return url


@pytest.fixture(scope="module")
def worker(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    log = tmp_path_factory.mktemp("cli-worker") / "worker.log"
    args = ["worker", wf.__file__, "--db", db, "--poll-interval", "0.05", "--log-level", "ERROR"]
    proc = spawn(args, log)
    yield proc
    stop_serving_worker(proc, db)


@pytest.fixture(scope="module")
def client(db: str) -> Iterator[perdure.SyncClient]:
    with perdure.SyncClient.connect(db) as c:
        c.client.poll_interval = 0.02
        yield c


def waiting_for_signal(client: perdure.SyncClient, workflow_id: str) -> None:
    handle = client.get_handle(workflow_id)
    wait_for(lambda: handle.describe().waiting_signals == ["approve"], 20, "the signal wait")


# ------------------------------------------------------------------ errors first


def test_error_exit_codes(db: str, tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    cases: dict[tuple[str, ...], tuple[int, str]] = {
        ("show", "x", "--db", f"sqlite:///{missing}"): (4, "does not exist (sqlite:///"),
        ("list", "--db", "mysql://nowhere/db"): (4, "unsupported database URL"),
        ("list", "--db", ""): (4, "database URL must be a non-empty string"),
        ("server", "--db", ""): (4, "database URL must be a non-empty string"),
        ("start", "double", "--arg", "ada", "--db", db): (2, "must be JSON"),
        ("signal", "x", "go", "--payload", "{", "--db", db): (2, "must be JSON"),
        ("list", "--since", "yesterday", "--db", db): (2, "cannot read time"),
        ("list", "--page", "2", "--cursor", "abc", "--db", db): (2, "not both"),
        # A misspelt status had listed nothing, as if no run were in it.
        ("list", "--status", "runnin", "--db", db): (2, "status must be one of running,"),
        ("server", "--host", "0.0.0.0", "--db", db): (2, "refusing to serve on '0.0.0.0'"),
        ("show", "nope", "--db", db): (3, "no workflow with id 'nope'"),
        ("show", "nope", "--run-id", "", "--db", db): (2, "must not be empty"),
        ("signal", "nope", "go", "--db", db): (3, "no workflow with id 'nope'"),
        # The worker parses its own options (see test_the_worker_starts_without_typer).
        ("worker", "--db", db): (2, "required: modules"),
        ("worker", str(tmp_path / "nope.py"), "--db", db): (2, "no such file"),
        ("worker", wf.__file__, "--lease-timeout", "soon", "--db", db): (2, "invalid float"),
        ("worker", wf.__file__, "--colour", "--db", db): (2, "unrecognized arguments: --colour"),
        ("worker", "json", "--db", db): (2, "no workflows or activities found in json"),
        ("worker", wf.__file__, "--db", "mysql://nowhere/db"): (1, "unsupported database URL"),
        ("worker", wf.__file__, "--loop", "trio", "--db", db): (2, "invalid choice: 'trio'"),
        # Out of range: refused before anything runs (these had made a worker
        # spin at full CPU, or fail deep in its thread pool).
        ("worker", wf.__file__, "--poll-interval", "0", "--db", db): (
            2,
            "--poll-interval must be a positive number of seconds, not 0.0",
        ),
        ("worker", wf.__file__, "--processes", "2", "--lease-timeout", "-5", "--db", db): (
            2,
            "--lease-timeout must be a positive number of seconds, not -5.0",
        ),
        ("worker", wf.__file__, "--max-activities", "0", "--db", db): (
            2,
            "--max-activities must be a whole number of at least 1, not 0",
        ),
        ("worker", wf.__file__, "-q", "", "--db", db): (
            2,
            "--task-queue must be a non-empty string, not ''",
        ),
        ("start", "double", "--arg", "1", "-q", "", "--db", db): (2, "must not be empty"),
        ("start", "double", "--arg", "1", "--id", "", "--db", db): (2, "must not be empty"),
    }
    for (args, (code, message)), done in zip(cases.items(), cli_all(*cases), strict=True):
        assert done.returncode == code, (args, done)
        assert message in done.stderr, (args, done.stderr)
    assert not missing.exists()  # a typo in --db does not create an empty database


def test_migrate_reads_perdure_db_and_help_lists_exit_codes(db: str) -> None:
    migrated, helped = cli_all(("migrate", "--json"), ("result", "--help"), env={"PERDURE_DB": db})
    report = json.loads(migrated.stdout)
    assert report["url"] == db and report["created"] is False
    assert isinstance(report["schema_version"], int) and report["schema_version"] >= 1
    assert helped.returncode == 0
    assert "Exit codes" in helped.stdout and "3 workflow not found" in helped.stdout


def test_printed_urls_hide_their_password() -> None:
    from perdure.cli._operator import shown_url

    assert shown_url("postgresql://ada:s3cr%40t@db:5432/app?sslmode=require") == (
        "postgresql://ada:***@db:5432/app?sslmode=require"
    )
    assert shown_url("postgresql://ada@db/app?password=s3cret&sslmode=require") == (
        "postgresql://ada@db/app?password=***&sslmode=require"
    )
    for plain in (
        "postgresql://ada@db/app",
        "sqlite:///tmp/x.db",
        "sqlite:///x.db?synchronous=NORMAL",
    ):
        assert shown_url(plain) == plain


def test_each_command_summary_is_one_line() -> None:
    """``perdure --help`` lists each command by its docstring's first paragraph:
    a summary wrapped over two source lines came out broken mid-sentence."""
    import typer.main

    from perdure.cli import app

    group = typer.main.get_command(app)
    assert set(group.commands) == set(COMMANDS)
    for name, command in group.commands.items():
        summary = (command.help or "").split("\n\n")[0]
        assert summary and "\n" not in summary and len(summary) <= 80, (name, summary)


def test_each_command_loads_only_its_own_module() -> None:
    """``main()`` imports the module of the command it runs, from a table that
    names every command: the worker's restart skips the others' imports."""
    code = (
        "import json, sys, typer.main\n"
        "import perdure.cli as cli\n"
        "group = typer.main.get_command(cli.app)\n"
        "def module(c):  # (a group of commands, perdure schedule: its commands')\n"
        "    return (c.callback or next(iter(c.commands.values())).callback).__module__\n"
        "print(json.dumps({n: module(c) for n, c in group.commands.items()}))\n"
        "sys.argv = ['perdure', 'worker', '--help']\n"
        "for name in [m for m in sys.modules if m.startswith('perdure.cli.')]:\n"
        "    del sys.modules[name]\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('perdure.cli._'))))\n"
    )
    done = subprocess.run(
        [PERDURE[0], "-c", code], capture_output=True, text=True, timeout=30, env=ENV
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    registered, loaded = json.loads(lines[0]), json.loads(lines[-1])
    assert registered == {name: f"perdure.cli.{m}" for name, m in COMMANDS.items()}
    assert loaded == [
        "perdure.cli._app",
        "perdure.cli._modules",
        "perdure.cli._worker_cmd",
        "perdure.cli._worker_run",
    ]


def test_the_worker_starts_without_typer() -> None:
    """``perdure worker`` (what restarts after a crash) parses its options
    with argparse: neither typer nor pydantic is imported."""
    code = (
        "import json, sys\n"
        "import perdure.cli as cli\n"
        "sys.argv = ['perdure', 'worker', 'no/such/module.py']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exc:\n"
        "    print(json.dumps([exc.code, sorted(m for m in ('typer', 'pydantic', 'click')"
        " if m in sys.modules)]))\n"
    )
    done = subprocess.run(
        [PERDURE[0], "-c", code], capture_output=True, text=True, timeout=30, env=ENV
    )
    assert json.loads(done.stdout) == [2, []], (done.stdout, done.stderr)
    assert "no such file: no/such/module.py" in done.stderr


def test_the_worker_options_are_its_typer_commands() -> None:
    """The options ``perdure worker`` parses are those its typer command
    declares (and ``--help`` shows): the same names and defaults."""
    import typer.main

    import perdure.cli as cli
    from perdure.cli._worker_run import parser

    command = typer.main.get_command(cli.app).commands["worker"]  # type: ignore[attr-defined]
    declared = {
        frozenset(p.opts + p.secondary_opts): p.default
        for p in command.params
        if p.param_type_name == "option" and "--help" not in p.opts
    }
    arguments = [p.name for p in command.params if p.param_type_name == "argument"]
    argparse_ = parser()
    names: dict[str, set[str]] = {}
    for action in argparse_._actions:
        if action.option_strings:
            names.setdefault(action.dest, set()).update(action.option_strings)
    parsed = {frozenset(opts): argparse_.get_default(dest) for dest, opts in names.items()}
    assert parsed == declared
    assert arguments == [a.dest for a in argparse_._actions if not a.option_strings]


@pytest.mark.parametrize(
    ("option", "loop"),
    [((), "asyncio"), (("--loop", "uvloop"), "uvloop"), (("--loop", "auto"), "uvloop")],
)
def test_the_worker_runs_on_the_event_loop_it_is_given(
    tmp_path: Path, option: tuple[str, ...], loop: str
) -> None:
    """``--loop``: asyncio's own loop by default, or uvloop (``auto``: when it
    is installed, as in the dev install; see tests/e2e/test_uvloop.py)."""
    db = f"sqlite:///{tmp_path / 'loop.db'}"
    args = ["worker", wf.__file__, "--db", db, "--poll-interval", "0.05", *option]
    proc = spawn(args, tmp_path / "worker.log")
    try:
        wait_for(lambda: f"(event loop: {loop})" in proc.output(), 20, "the worker's start")
        with perdure.SyncClient.connect(db) as client:
            assert client.execute("double", 21) == 42
    finally:
        assert proc.stop() == 0, proc.output()


# ------------------------------------------------------------------ a whole run


def test_show_and_the_api_tell_when_a_delayed_start_is_due(
    db: str, client: perdure.SyncClient
) -> None:
    handle = client.start("approval", "later", id="later-1", start_delay=timedelta(hours=2))
    due = handle.describe().starts_at
    assert due is not None and 7100 < due.timestamp() - time.time() <= 7200
    shown, as_json = cli_all(
        ("show", "later-1", "--db", db), ("show", "later-1", "--json", "--db", db)
    )
    assert "starts" in shown.stdout and "its first turn is not due yet" in shown.stdout
    assert datetime.fromisoformat(json.loads(as_json.stdout)["starts_at"]) == due


def shown_once(
    client: perdure.SyncClient,
    db: str,
    workflow: str,
    ident: str,
    ready: Callable[[perdure.WorkflowDescription], object],
) -> tuple[perdure.SyncWorkflowHandle[Any], str, dict[str, Any]]:
    """Start ``workflow("ada")`` as ``ident``; once ``ready(describe())``,
    what `perdure show` and `perdure show --json` print."""
    handle = client.start(workflow, "ada", id=ident)
    wait_for(lambda: ready(handle.describe()) or None, 20, f"{ident} to be ready")
    shown, as_json = cli_all(("show", ident, "--db", db), ("show", ident, "--json", "--db", db))
    return handle, shown.stdout, json.loads(as_json.stdout)


def test_show_says_the_run_waits_on_a_condition(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    handle, shown, described = shown_once(
        client, db, "awaits_a_condition", "condition-1", lambda d: d.waiting_conditions
    )
    assert "a condition in its code (workflow.wait_condition)" in shown, shown
    assert "signal item" in shown
    assert described["waiting_conditions"] == 1 and described["waiting_signals"] == ["item"]
    assert described["awaiting_nothing"] is False
    for item in ("a", "b", "c"):
        handle.signal("item", item)
    assert handle.result(timeout=20) == "ada: a, b, c"
    assert handle.describe().waiting_conditions == 0


def test_show_and_the_api_tell_when_a_run_awaits_nothing(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    handle, shown, described = shown_once(
        client, db, "awaits_an_event", "awaits-nothing-1", lambda d: d.awaiting_nothing
    )
    assert "This run waits for nothing that can come" in shown, shown
    assert "only cancel or terminate will move it" in shown
    assert described["awaiting_nothing"] is True
    handle.terminate("done looking")


def test_start_show_signal_result_history(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    args = ("approval", "--arg", '"ada"', "--arg", "1", "--id", "cli-1", "--db", db)
    done = cli("start", *args)
    assert done.returncode == 0, done.stderr
    assert "Started approval id cli-1" in done.stdout
    waiting_for_signal(client, "cli-1")

    again, shown, as_json, still, timed_out, running, wrong = cli_all(
        ("start", *args),
        ("show", "cli-1", "--db", db),
        ("show", "cli-1", "--json", "--db", db),
        ("result", "cli-1", "--db", db),
        ("result", "cli-1", "--wait", "--timeout", "0.2", "--db", db),
        ("start", *args, "--id-conflict", "retry_failed", "--json"),
        ("start", *args, "--id-conflict", "retry"),
    )
    (found,) = cli_all(("start", *args, "--id-conflict", "use_existing"))
    assert found.returncode == 0, found.stderr
    assert "Found cli-1 (run " in found.stdout and "running" in found.stdout, found.stdout
    assert "not started again (--id-conflict use_existing)" in found.stdout
    assert again.returncode == 5 and "already used" in again.stderr
    # Running: retry_failed gives that run (a failed one would be started again).
    assert running.returncode == 0, running.stderr
    assert json.loads(running.stdout)["run_id"] == client.get_handle("cli-1").describe().run_id
    assert wrong.returncode == 2
    assert "must be fail, use_existing, terminate_existing or retry_failed" in wrong.stderr
    assert shown.returncode == 0
    assert "running" in shown.stdout and "signal approve" in shown.stdout
    assert 'stage = "waiting for approval"' in shown.stdout
    assert "timer (ref 3): due" in shown.stdout  # the signal wait's timeout
    described = json.loads(as_json.stdout)
    assert described["waiting_signals"] == ["approve"] and described["status"] == "running"
    assert described["input"] == {"args": ["ada", 1], "kwargs": {}}
    assert still.returncode == 6 and "still running" in still.stderr
    assert timed_out.returncode == 6

    signal = cli("signal", "cli-1", "approve", "--payload", '"ops"', "--db", db)
    assert signal.returncode == 0 and "delivered" in signal.stdout
    final = cli("result", "cli-1", "--wait", "--timeout", "20", "--db", db)
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout) == {
        "greeting": "hello ada",
        "step": "ok after 2 attempts",
        "approved_by": "ops",
    }

    closed, history, table = cli_all(
        ("signal", "cli-1", "approve", "--db", db),
        ("history", "cli-1", "--json", "--db", db),
        ("history", "cli-1", "--db", db),
    )
    assert closed.returncode == 5 and "already completed" in closed.stderr
    events = json.loads(history.stdout)
    assert events == client.get_handle("cli-1").history()  # exactly handle.history()
    assert events[-1]["type"] == "WorkflowCompleted"
    assert "ActivityCompleted" in table.stdout and 'approve "ops"' in table.stdout


def test_result_exit_codes_cancel_terminate_and_continue_as_new(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    client.start("doomed", "boom", id="doomed-1")
    client.start("countdown", 2, id="count-1")
    for ident in ("cancel-me", "end-me"):
        client.start("approval", "x", id=ident)
    cancel, terminate = cli_all(
        ("cancel", "cancel-me", "--reason", "not needed", "--db", db),
        ("terminate", "end-me", "--reason", "operator says so", "--db", db),
    )
    assert cancel.returncode == 0 and "Cancellation requested" in cancel.stdout
    assert terminate.returncode == 0 and "Terminated end-me" in terminate.stdout

    failed, cancelled, terminated, again, continued = cli_all(
        ("result", "doomed-1", "--wait", "--timeout", "20", "--json", "--db", db),
        ("result", "cancel-me", "--wait", "--timeout", "20", "--db", db),
        ("result", "end-me", "--db", db),
        ("terminate", "end-me", "--db", db),
        ("result", "count-1", "--wait", "--timeout", "20", "--db", db),
    )
    assert continued.returncode == 0 and json.loads(continued.stdout) == "liftoff"
    assert failed.returncode == 1
    outcome = json.loads(failed.stdout)
    assert outcome["status"] == "failed" and outcome["failure"]["message"] == "boom"
    assert cancelled.returncode == 1 and "cancel-me cancelled" in cancelled.stderr
    assert terminated.returncode == 1 and "operator says so" in terminated.stderr
    assert again.returncode == 5 and "already terminated" in again.stderr


def test_reset_runs_a_workflow_again_and_its_exit_codes(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    first = client.start("double", 4, id="reset-1")
    assert first.result(timeout=20) == 8
    listed, table = cli_all(
        ("reset", "reset-1", "--list-points", "--json", "--db", db),
        ("reset", "reset-1", "--list-points", "--db", db),
    )
    assert json.loads(listed.stdout) == {"points": [1], "default": 1}
    assert "1  WorkflowStarted  ← default" in table.stdout, table.stdout
    done, missing, nothing, zero = cli_all(
        ("reset", "reset-1", "--to-event", "1", "--reason", "again", "--json", "--db", db),
        ("reset", "no-such-id", "--db", db),
        ("reset", "reset-1", "--run-id", "no-such-run", "--db", db),
        ("reset", "reset-1", "--to-event", "0", "--db", db),
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["id"] == "reset-1" and answer["at_seq"] == 1
    assert answer["run_id"] != first.run_id
    assert client.get_handle("reset-1", answer["run_id"]).result(timeout=20) == 8
    shown = cli("history", "reset-1", "--run-id", answer["run_id"], "--db", db)
    assert f"from run {first.run_id} at event 1: again" in shown.stdout, shown.stdout
    assert missing.returncode == 3 and "no workflow with id 'no-such-id'" in missing.stderr
    assert nothing.returncode == 3 and "no-such-run" in nothing.stderr
    assert zero.returncode == 2 and "--to-event" in zero.stderr
    listed = cli("list", "--search", "reset-1", "--latest", "--json", "--db", db)
    assert [r["run_id"] for r in json.loads(listed.stdout)["items"]] == [answer["run_id"]]
    shown_old = cli("show", "reset-1", "--run-id", first.run_id, "--db", db)
    assert f"newer run  {answer['run_id']} (completed)" in shown_old.stdout, shown_old.stdout
    stale, text = cli_all(
        ("reset", "reset-1", "--run-id", first.run_id, "--db", db),
        ("reset", "reset-1", "--db", db),
    )
    assert stale.returncode == 5 and "not the latest run" in stale.stderr
    assert text.returncode == 0 and "goes on from event 1" in text.stdout, text.stderr
    # (Once that run has had its turn: a run with none yet has nothing to reset.)
    assert client.get_handle("reset-1").result(timeout=20) == 8
    synced = client.get_handle("reset-1").reset(to_event=1, reason="from a SyncClient")
    assert isinstance(synced, perdure.SyncWorkflowHandle) and synced.result(timeout=20) == 8


def test_the_servers_body_limit_is_an_option(db: str, tmp_path: Path) -> None:
    args = ["server", "--port", "0", "--db", db, "--max-body-bytes", "2048"]
    server = spawn(args, tmp_path / "server.log")
    try:
        base = server.url()
        small = httpx.post(f"{base}api/workflows/nope/signals/go", json="x" * 100)
        assert small.status_code == 404  # read, then: no such workflow
        large = httpx.post(f"{base}api/workflows/nope/signals/go", json="x" * 4000)
        assert large.status_code == 413, large.text
    finally:
        assert server.stop() == 0, server.output()
    refused = cli("server", "--max-body-bytes", "10", "--db", db)
    assert refused.returncode == 2 and "--max-body-bytes" in refused.stderr


def test_list_marks_a_run_whose_turns_fail(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    handle = client.start("reads_in_a_thread", "cli", id="retrying-1")
    wait_for(lambda: handle.describe().last_error, 20, "the turn to fail")
    shown, as_json = cli_all(
        ("list", "--search", "retrying-1", "--db", db),
        ("list", "--retrying", "--json", "--db", db),
    )
    assert "running (retrying)" in shown.stdout, shown.stdout
    [item] = json.loads(as_json.stdout)["items"]  # the one run retrying, of all in the db
    assert item["id"] == "retrying-1" and "loop.run_in_executor()" in item["last_error"]
    handle.terminate("seen")


def test_list_filters_and_pages(db: str, worker: Proc, client: perdure.SyncClient) -> None:
    ids = [f"page-{i}" for i in range(5)]
    for ident in ids:
        client.start("double", 2, id=ident)
    for ident in ids:
        assert client.get_handle(ident).result(timeout=20) == 4

    runs = cli_all(
        ("list", "--search", "PAGE-", "--limit", "2", "--json", "--db", db),
        ("list", "--search", "page-", "--limit", "2", "--page", "3", "--json", "--db", db),
        ("list", "--type", "double", "--status", "completed", "--json", "--db", db),
        ("list", "--since", "2999-01-01", "--json", "--db", db),
        ("list", "--search", "page-", "--since", "1h", "--limit", "2", "--db", db),
    )
    first, third, typed, future = (json.loads(done.stdout) for done in runs[:4])
    table = runs[4]
    assert [r["id"] for r in first["items"]] == ["page-4", "page-3"]  # newest first
    assert [r["id"] for r in third["items"]] == ["page-0"] and third["next_cursor"] is None
    assert {r["id"] for r in typed["items"]} >= set(ids)
    assert {r["workflow_type"] for r in typed["items"]} == {"double"}
    assert future == {"items": [], "next_cursor": None}
    assert "page-4" in table.stdout and "completed" in table.stdout
    assert "--cursor" in table.stdout

    cursor = first["next_cursor"]
    second = cli(
        "list", "--search", "page-", "--limit", "2", "--cursor", cursor, "--json", "--db", db
    )
    assert [r["id"] for r in json.loads(second.stdout)["items"]] == ["page-2", "page-1"]


@pytest.mark.timeout(60)
def test_history_follow_tails_until_the_run_closes(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    handle = client.start("approval", "f", id="follow-1")
    waiting_for_signal(client, "follow-1")
    args = ["history", "follow-1", "--follow", "--json", "--interval", "0.05", "--db", db]
    follower = subprocess.Popen([*PERDURE, *args], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert follower.stdout is not None
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "TimerStarted" for e in seen):  # it caught up with the past
            seen.append(json.loads(follower.stdout.readline()))
        handle.signal("approve", 1)
        rest, _ = follower.communicate(timeout=20)  # it ends by itself when the run closes
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0
    seen += [json.loads(line) for line in rest.splitlines()]
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["type"] == "WorkflowCompleted"
    assert any(e["type"] == "SignalReceived" and e["payload"] == 1 for e in seen)


@pytest.mark.timeout(60)
def test_history_follow_goes_on_along_a_continue_as_new_chain(
    db: str, worker: Proc, client: perdure.SyncClient
) -> None:
    """A run that continues as new (an agent's loop, a poller) had ended the
    follow at its first hand-over; now it follows the chain to its end."""
    handle = client.start("relay", 0, id="follow-relay")
    wait_for(lambda: handle.describe().waiting_signals == ["next"], 20, "the signal wait")
    args = ["history", "follow-relay", "--follow", "--interval", "0.05", "--db", db]
    follower = subprocess.Popen([*PERDURE, *args], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert follower.stdout is not None
        while "relay args=[0]" not in follower.stdout.readline():
            pass
        relay = client.get_handle("follow-relay")

        def waits_at(leg: int) -> bool:
            d = relay.describe()
            return d.waiting_signals == ["next"] and d.input["args"] == [leg]

        for leg in (0, 1):
            wait_for(functools.partial(waits_at, leg), 20, f"leg {leg}'s signal wait")
            relay.signal("next")
        rest, _ = follower.communicate(timeout=20)  # it ends when the last run closes
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0
    assert rest.count("continued as new: run") == 2, rest
    assert "relay args=[1]" in rest and "relay args=[2]" in rest
    assert "WorkflowCompleted" in rest.splitlines()[-1]


# ------------------------------------------------------------------ server


def test_server_serves_the_api_and_the_ui_until_sigterm(db: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# ops\nadmin aaaaaaaaaaaaaaaaaaaa\nread rrrrrrrrrrrrrrrrrrrr\n")
    server = spawn(
        ["server", "--port", "0", "--token-file", str(tokens), "--db", db], tmp_path / "server.log"
    )
    try:
        url = server.url()
        assert "tokens: admin, read" in server.output()
        assert httpx.get(f"{url}api/workflows").status_code == 401
        read = {"Authorization": "Bearer rrrrrrrrrrrrrrrrrrrr"}
        assert httpx.get(f"{url}api/workflows", headers=read).status_code == 200
        page = httpx.get(url)
        assert page.status_code == 200 and "<title>perdure</title>" in page.text
    finally:
        code = server.stop()
    assert code == 0, server.output()


def test_show_and_the_api_name_the_queue_of_an_activity_nobody_takes() -> None:
    from perdure._views import PendingActivityInfo, WorkflowDescription
    from perdure.cli._inspect_cmd import _pending_lines
    from perdure.server._query import description_json

    now = datetime.now().astimezone()
    untaken = PendingActivityInfo(
        1, "charge", 0, False, now, None, [], None, "paymnets", waiting_for_worker=True
    )
    d = WorkflowDescription(
        "w", "r", "pay", "default", "running", {"args": [], "kwargs": {}}, now, now, None,
        {}, None, None, None, 2, pending_activities=[untaken],
    )  # fmt: skip
    [line] = _pending_lines(d)
    assert "no live worker serves task queue 'paymnets' with activity 'charge'" in line
    [shown] = description_json(d)["pending_activities"]
    assert shown["task_queue"] == "paymnets" and shown["waiting_for_worker"] is True
    # Served, and its workers busy: the backlog, and how much stands before it.
    busy = PendingActivityInfo(
        2, "charge", 0, False, now, None, [], None, "payments", in_backlog=True, ahead=7
    )
    d.pending_activities[:] = [busy]
    [line] = _pending_lines(d)
    assert "waiting in task queue 'payments''s backlog:[/] 7 due before it" in line
    assert "no live worker" not in line
    [shown] = description_json(d)["pending_activities"]
    assert (shown["in_backlog"], shown["ahead"], shown["waiting_for_worker"]) == (True, 7, False)
