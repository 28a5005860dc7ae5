"""Helpers for the surface tests (importable by name, unlike conftest): the real
``perdure`` entry point in a subprocess, and waiting on conditions with deadlines."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import perdure
from perdure.client import PendingActivityInfo

T = TypeVar("T")

PERDURE = [sys.executable, "-m", "perdure"]
ENV = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "200", "NO_COLOR": "1"}
ENV.pop("PERDURE_DB", None)
ENV.pop("PERDURE_TOKEN", None)
ENV.pop("PERDURE_ADMIN_TOKEN", None)
ENV.pop("PERDURE_CONVERTER", None)


def cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m perdure ARGS`` to completion."""
    return _commands([args], env, timeout)[0]


def cli_all(
    *commands: tuple[str, ...], env: Mapping[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands concurrently (each ``python -m perdure ARGS``);
    results in order."""
    return _commands(commands, env, 30)


def _commands(
    commands: Sequence[Sequence[str]], env: Mapping[str, str] | None, timeout: float
) -> list[subprocess.CompletedProcess[str]]:
    # Each a process of its own: forked from cli_forkserver.py, which has
    # perdure imported (0.36 s of CPU a command less), or with
    # PERDURE_TEST_CLI=exec a fresh interpreter's.
    environment = {**ENV, **(env or {})}
    if os.environ.get("PERDURE_TEST_CLI") == "exec":
        return _executed(commands, environment, timeout)
    return _FORKS.run(commands, environment, timeout)


def _executed(
    commands: Sequence[Sequence[str]], env: Mapping[str, str], timeout: float
) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [*PERDURE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for args in commands
    ]
    results = []
    for args, proc in zip(commands, procs, strict=True):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for left in procs:
                left.kill()
            for left in procs:
                left.communicate()  # (reaped, its pipes closed)
            raise
        results.append(subprocess.CompletedProcess([*PERDURE, *args], proc.returncode, out, err))
    return results


class _ForkServer:
    """The client of one cli_forkserver.py process (started at the first
    command, ended with this process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="perdure-cli-"))
        self.count = 0
        atexit.register(self.stop)

    def start(self) -> subprocess.Popen[str]:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115 (the server's, to its end)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cli_forkserver.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=ENV,
        )
        log.close()
        return self.proc

    def stop(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
            if self.proc.stdout is not None:  # (else a ResourceWarning at exit)
                self.proc.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(
        self, commands: Sequence[Sequence[str]], env: Mapping[str, str], timeout: float
    ) -> list[subprocess.CompletedProcess[str]]:
        with self.lock:
            proc = self.start()
            assert proc.stdin is not None and proc.stdout is not None
            files = []
            for _ in commands:
                self.count += 1
                files.append((self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"))
            request = {
                "commands": [
                    {
                        "args": list(args),
                        "env": dict(env),
                        "cwd": os.getcwd(),
                        "out": str(out),
                        "err": str(err),
                    }
                    for args, (out, err) in zip(commands, files, strict=True)
                ],
                "timeout": timeout,
            }
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                log = (self.folder / "server.log").read_text(errors="replace")
                raise RuntimeError(f"the CLI fork server ended (exit {proc.wait()}):\n{log}")
            reply = json.loads(line)
            results = []
            for args, code, (out, err) in zip(commands, reply["codes"], files, strict=True):
                results.append(
                    subprocess.CompletedProcess(
                        [*PERDURE, *args], code, out.read_text("utf-8"), err.read_text("utf-8")
                    )
                )
                out.unlink()
                err.unlink()
            if reply["timed_out"]:
                raise subprocess.TimeoutExpired(
                    [*PERDURE, *commands[0]],
                    timeout,
                    output=results[0].stdout,
                    stderr=results[0].stderr,
                )
            return results


_FORKS = _ForkServer()


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Proc:
    """A ``perdure`` subprocess whose output goes to a log file."""

    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def url(self, timeout: float = 15) -> str:
        """The http:// URL the process printed (``perdure server``, ``demo --ui``)."""

        def found() -> str | None:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited early:\n{self.output()}")
            match = re.search(r"http://127\.0\.0\.1:\d+/", self.output())
            return match[0] if match else None

        return wait_for(found, timeout, "the server's URL")

    def stop(self, sig: int = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def first_activity(
    client: perdure.SyncClient,
    ident: str,
    holds: Callable[[PendingActivityInfo], object],
    what: str,
) -> PendingActivityInfo:
    """Workflow ``ident``'s first pending activity, once ``holds`` says yes
    of it; fails with ``what`` after 20 s."""

    def found() -> PendingActivityInfo | None:
        pending = client.get_handle(ident).describe().pending_activities
        return pending[0] if pending and holds(pending[0]) else None

    return wait_for(found, 20, f"{ident}'s activity: {what}")


def said(done: Any) -> str:
    """A command's output as one line of words (rich boxes and wraps it)."""
    return " ".join(f"{done.stdout} {done.stderr}".replace("│", " ").split())


# async_workflows' two workflows of a pending activity: one retried every
# 50 ms for ever (down_for_ever), one whose attempt awaits completion.
RETRIED = "keeps_retrying"
AWAITING = "awaits_an_answer_for_ever"


def started_activities(
    sync: perdure.SyncClient, runs: dict[str, str]
) -> dict[str, perdure.SyncWorkflowHandle[Any]]:
    """Start each run (id -> RETRIED or AWAITING) and wait until its
    activity has failed once or awaits completion."""
    handles = {ident: sync.start(workflow, ident, id=ident) for ident, workflow in runs.items()}
    for ident, workflow in runs.items():
        ready: Callable[[PendingActivityInfo], object] = (
            (lambda a: a.attempts) if workflow == RETRIED else (lambda a: a.awaiting_completion)
        )
        first_activity(sync, ident, ready, "failed once, or awaiting completion")
    return handles


def spawn(args: list[str], log: Path, env: Mapping[str, str] | None = None) -> Proc:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen(
            [*PERDURE, *args], stdout=out, stderr=subprocess.STDOUT, env={**ENV, **(env or {})}
        )
    return Proc(popen, log)


# A CLI test module's own world (module-scoped fixtures call these): a
# migrated SQLite database, a SyncClient on it, and a `perdure worker`
# process serving a workflow module.


def migrated_sqlite(folder: Path) -> str:
    """A SQLite database in ``folder``, made by ``perdure migrate``."""
    url = f"sqlite:///{folder / 'cli.db'}"
    (done,) = cli_all(("migrate", "--db", url))
    assert done.returncode == 0, done.stderr
    return url


def sync_client(db: str) -> Iterator[perdure.SyncClient]:
    with perdure.SyncClient.connect(db) as c:
        c.client.poll_interval = 0.02
        yield c


def worker_serving(module_file: str, db: str, folder: Path) -> Iterator[Proc]:
    """A ``perdure worker`` process for ``module_file``, stopped (and
    checked to exit 0) when the generator closes."""
    args = ["worker", module_file, "--db", db, "--poll-interval", "0.05", "--log-level", "ERROR"]
    proc = spawn(args, folder / "worker.log")
    yield proc
    stop_serving_worker(proc, db)


def stop_serving_worker(proc: Proc, db: str) -> None:
    """Stop a ``perdure worker`` process with SIGTERM once it serves (it is
    in the worker registry, its drain set up) and check that it exits 0.
    A module whose tests never waited on the worker once stopped it while
    its interpreter was still starting, under a loaded machine: SIGTERM's
    default action, exit -15 (session 68)."""
    with perdure.SyncClient.connect(db) as client:
        wait_for(
            lambda: (
                proc.popen.poll() is not None
                or any(w.pid == proc.popen.pid for w in client.list_workers())
            ),
            30,
            "the worker to serve",
        )
    assert proc.stop() == 0, proc.output()


# A browser, the open server's URL and the database (the activity pages' tests).
UI = tuple[object, str, str]


def activity_pages(folder: Path) -> Iterator[UI]:
    """A module fixture's body for the pages of pending activities: a
    browser, the open server's URL and the database, over a worker of
    async_workflows (admin and read tokens for the other server); skips
    the test without chromium, as the browser tests do."""
    import async_workflows as aw
    import browser_support as bs  # (importing it skips without chromium)
    from api_both import ADMIN, READ

    for browser in bs.launch():
        for stack in bs.serve(folder, [aw.__file__], ADMIN, READ):
            yield browser, stack.open_url, stack.db


def pages_client(ui: UI) -> Iterator[perdure.SyncClient]:
    """A fixture's body: a blocking client of ``ui``'s database, quick to poll."""
    with perdure.SyncClient.connect(ui[2]) as c:
        c.client.poll_interval = 0.02
        yield c


def migrated_database(request: Any, folder: Callable[[], Path]) -> str:
    """A module fixture's body, parametrised over "sqlite" and "postgres":
    a migrated database of the module's own (SQLite in ``folder()``)."""
    if request.param == "sqlite":
        return migrated_sqlite(folder())
    url: str = request.getfixturevalue("pg_database").fresh_url()
    (done,) = cli_all(("migrate", "--db", url))
    assert done.returncode == 0, done.stderr
    return url
