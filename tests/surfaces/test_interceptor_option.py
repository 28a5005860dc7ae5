"""``--interceptor MODULE:NAME`` for ``perdure worker`` and ``perdure
server``: what does not name an Interceptor is a usage error that says
why, before anything starts; the server's starts go through the one
named (a real worker running with one: tests/crash/test_tracing_sigkill.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import sealed_workflows
from surface_helpers import cli, spawn

MODULE = sealed_workflows.__file__


def test_a_bad_interceptor_is_a_usage_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'bad.db'}"
    for spec, message in (
        ("nope", "--interceptor 'nope' is not MODULE:NAME"),
        (f"{MODULE}:missing", "has no 'missing'"),
        (f"{MODULE}:converter", "is a DataConverter, not a perdure.interceptors.Interceptor"),
        (f"{MODULE}:failing_converter", "failing_converter() raised KeyError"),
    ):
        served = cli("worker", MODULE, "--db", db, "--interceptor", spec)
        assert served.returncode == 2 and message in served.stderr, (spec, served.stderr)


STAMP = f"{Path(__file__).resolve().with_name('stamping.py')}:Stamp"


def test_the_server_starts_runs_through_its_interceptors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    bad = cli("server", "--db", db, "--port", "0", "--interceptor", f"{MODULE}:missing")
    assert bad.returncode == 2 and "has no 'missing'" in bad.stderr, bad.stderr
    server = spawn(
        ["server", "--db", db, "--port", "0", "--interceptor", STAMP], tmp_path / "s.log"
    )
    worker = spawn(["worker", STAMP.rpartition(":")[0], "--db", db], tmp_path / "w.log")
    try:
        api = f"{server.url()}api/workflows"
        started = httpx.post(api, json={"workflow": "stamped", "id": "h-1"}, timeout=10)
        assert started.status_code == 201, started.text
        done = cli("result", "h-1", "--wait", "--timeout", "20", "--db", db, "--json")
        assert done.returncode == 0, done.stderr
        history = httpx.get(f"{api}/h-1/history", timeout=10).json()
        described = httpx.get(f"{api}/h-1", timeout=10).json()
        shown = cli("show", "h-1", "--db", db)
    finally:
        assert worker.stop() == 0, worker.output()
        assert server.stop() == 0, server.output()
    assert json.loads(done.stdout)["result"] == {"started-by": "server"}
    assert history[0]["type"] == "WorkflowStarted"
    assert history[0]["headers"] == {"started-by": "server"}
    assert described["headers"] == {"started-by": "server"}
    assert described["input"] == {"args": [], "kwargs": {}}
    assert shown.returncode == 0 and "Headers\n  started-by: server\n" in shown.stdout, shown.stdout
