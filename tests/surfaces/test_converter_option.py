"""``--converter MODULE:NAME`` (or $PERDURE_CONVERTER): the commands and the
server read and write payloads through the codecs the application uses.
Without it, ``perdure worker`` could not serve a deployment that encrypts
its payloads at all, and the CLI and the UI showed only envelopes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import sealed_workflows
from surface_helpers import cli, spawn, wait_for

pytest.importorskip("zlib")

MODULE = sealed_workflows.__file__
CONVERTER = f"{MODULE}:converter"


def test_a_bad_converter_is_a_usage_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'bad.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    for spec, message in (
        ("nope", "is not MODULE:NAME"),
        (f"{MODULE}:missing", "has no 'missing'"),
        (f"{MODULE}:not_a_converter", "is a int, not a perdure.DataConverter"),
        (f"{MODULE}:failing_converter", "failing_converter() raised KeyError"),
        ("no_such_module_here:converter", "cannot import module 'no_such_module_here'"),
    ):
        shown = cli("show", "x", "--db", db, "--converter", spec)
        assert shown.returncode == 2 and message in shown.stderr, (spec, shown.stderr)
        served = cli("worker", MODULE, "--db", db, env={"PERDURE_CONVERTER": spec})
        assert served.returncode == 2 and message in served.stderr, (spec, served.stderr)


def test_commands_worker_replay_and_server_use_the_converter(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'sealed.db'}"
    assert cli("migrate", "--db", db).returncode == 0
    args = ["worker", MODULE, "--db", db, "--poll-interval", "0.05", "--converter", CONVERTER]
    worker = spawn(args, tmp_path / "worker.log")
    with_env = {"PERDURE_CONVERTER": f"{MODULE}:make_converter"}
    try:
        started = cli("start", "sealed_echo", "--arg", '"psst"', "--id", "s1", "--db", db, "--json",
                      env=with_env)  # fmt: skip
        assert started.returncode == 0, started.stderr

        def waiting() -> bool:
            shown = cli("show", "s1", "--db", db, "--json", "--converter", CONVERTER)
            return json.loads(shown.stdout)["waiting_signals"] == ["more"]

        wait_for(waiting, 20, "the run to wait for its signal")
        sent = cli("signal", "s1", "more", "-p", '{"n": 1}', "--db", db, env=with_env)
        assert sent.returncode == 0, sent.stderr
        done = cli("result", "s1", "--wait", "--timeout", "20", "--db", db, "--json", env=with_env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == {"loud": "PSST", "more": {"n": 1}}
    finally:
        assert worker.stop() == 0, worker.output()

    opened = json.loads(cli("show", "s1", "--db", db, "--json", env=with_env).stdout)
    assert opened["input"] == {"args": ["psst"], "kwargs": {}}
    assert opened["state"] == {"seen": "psst"}
    sealed = json.loads(cli("show", "s1", "--db", db, "--json").stdout)
    assert "__perdure_codec__" in json.dumps(sealed["input"])  # what it shows without one
    assert "psst" not in json.dumps(sealed)

    told = cli("history", "s1", "--db", db, env=with_env)
    assert told.returncode == 0 and 'args=["psst"]' in told.stdout, told.stdout
    assert "__perdure_codec__" not in told.stdout
    stored = json.loads(cli("history", "s1", "--db", db, "--json", env=with_env).stdout)
    assert "__perdure_codec__" in json.dumps(stored) and "psst" not in json.dumps(stored)

    replayed = cli("replay", MODULE, "--db", db, env=with_env)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    unopened = cli("replay", MODULE, "--db", db)
    assert unopened.returncode == 1 and "UnreadablePayload" in unopened.stdout, unopened.stdout

    server = spawn(
        ["server", "--db", db, "--port", "0", "--converter", CONVERTER], tmp_path / "server.log"
    )
    try:
        base = f"{server.url()}api/workflows/s1"
        described = httpx.get(base, timeout=10).json()
        assert described["input"] == {"args": ["psst"], "kwargs": {}}
        assert described["result"] == {"loud": "PSST", "more": {"n": 1}}
        opened = httpx.get(f"{base}/history", params={"opened": "true"}, timeout=10).json()
        assert opened[0]["args"] == ["psst"] and opened[-1]["result"]["loud"] == "PSST"
        assert httpx.get(f"{base}/history", timeout=10).json() == stored  # as stored
    finally:
        assert server.stop() == 0, server.output()
