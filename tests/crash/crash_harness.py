"""Harness for the crash tests: real ``perdure worker`` processes on a real SQLite file.

A :class:`Cluster` owns one database and one side-file folder, a ``SyncClient`` on
that database, and every worker process it started. Workers are stopped by
:meth:`Cluster.close` (SIGTERM, then SIGKILL), which the ``cluster`` fixture calls
even when the test failed. Waiting is always on a condition with a deadline
(:func:`wait_until`); a worker that dies without being killed by the test fails
the wait at once, with every worker's output in the message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import perdure

WORKLOADS = Path(__file__).resolve().with_name("workloads.py")
LEASE_TIMEOUT = 1.5
POLL_INTERVAL = 0.05
STOP_GRACE = 10.0  # seconds a worker gets to drain after SIGTERM before SIGKILL

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """Call ``predicate`` every ``interval`` s until it returns a truthy value
    (returned), or fail after ``timeout`` s. ``what`` (or its result) names the
    condition in the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g}s waiting for {text}")
        time.sleep(interval)


@dataclass(frozen=True)
class Execution:
    """One activity execution, as a worker process logged it before running it."""

    pid: int
    wf: str
    step: int
    key: str
    attempt: int
    activity_id: str


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Cluster:
    """Workers and a client on one database: a SQLite file in ``root`` by
    default, or the database at ``url`` (tests/postgres passes a PostgreSQL one)."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root = root
        self.db_path = root / "perdure.db"
        self.url = url or f"sqlite:///{self.db_path}"  # absolute path: four slashes
        assert url or self.url.startswith("sqlite:////"), self.url
        self.side_dir = root / "side"
        self.side_dir.mkdir()
        self.workers: list[WorkerProcess] = []
        self._client: perdure.SyncClient | None = None

    # ------------------------------------------------------------ client

    @property
    def client(self) -> perdure.SyncClient:
        if self._client is None:
            self._client = perdure.SyncClient.connect(self.url)
        return self._client

    # ------------------------------------------------------------ workers

    def start_worker(
        self, *extra_args: str, wait_ready: bool = True, module: Path | None = None
    ) -> WorkerProcess:
        """Start ``perdure worker workloads.py`` (or ``module``) on this cluster's
        database. The module must write ``ready-<pid>`` to $PERDURE_TEST_DIR on import."""
        name = f"worker-{len(self.workers) + 1}"
        log_path = self.root / f"{name}.log"
        cmd = [
            sys.executable, "-m", "perdure", "worker", str(module or WORKLOADS),
            "--db", self.url,
            "--lease-timeout", str(LEASE_TIMEOUT),
            "--poll-interval", str(POLL_INTERVAL),
            "--log-level", "WARNING",
            *extra_args,
        ]  # fmt: skip
        env = dict(os.environ)
        env.pop("PERDURE_DB", None)
        env.update(
            PERDURE_TEST_DIR=str(self.side_dir), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1"
        )
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        worker = WorkerProcess(name, proc, log_path)
        self.workers.append(worker)
        if wait_ready:
            ready = self.side_dir / f"ready-{worker.pid}"
            self.wait_until(ready.exists, timeout=30, what=f"{name} (pid {worker.pid}) to start")
        return worker

    def crash_worker_at(
        self, crash_at: str, *extra_args: str, module: Path | None = None
    ) -> WorkerProcess:
        """Start a worker armed to SIGKILL itself at ``crash_at`` (a crash
        point, ``name:N`` for its Nth passage); return it once it has, the
        point named in its output. (It may die before the harness sees it
        ready: its first turn can be the one.)"""
        env_var = "PERDURE_CRASH_AT"
        before = os.environ.get(env_var)
        os.environ[env_var] = crash_at
        try:
            worker = self.start_worker(*extra_args, wait_ready=False, module=module)
        finally:
            if before is None:
                os.environ.pop(env_var, None)
            else:
                os.environ[env_var] = before
        worker.killed = True  # (by itself, at the crash point)
        worker.proc.wait(timeout=30)
        point = crash_at.partition(":")[0]
        assert f"crash point {point}" in worker.output(), worker.output()
        return worker

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL a worker and reap it: no drain, no cleanup, like a power cut."""
        assert worker.alive(), f"{worker.name} died before the test killed it:\n{worker.output()}"
        worker.killed = True
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=30)

    def check_workers(self) -> None:
        """Fail if a worker the test did not kill has exited."""
        for w in self.workers:
            if not w.killed and not w.alive():
                raise AssertionError(
                    f"{w.name} (pid {w.pid}) exited with code {w.proc.returncode}"
                    f"\n{self.diagnostics()}"
                )

    def wait_until(
        self,
        predicate: Callable[[], T],
        timeout: float,
        interval: float = 0.05,
        what: str = "the condition",
    ) -> T:
        """:func:`wait_until`, failing fast if a worker dies, with diagnostics."""

        def checked() -> T:
            self.check_workers()
            return predicate()

        return wait_until(checked, timeout, interval, lambda: f"{what}\n{self.diagnostics()}")

    def close(self) -> None:
        """Stop every live worker (SIGTERM, then SIGKILL) and close the client."""
        live = [w for w in self.workers if w.alive()]
        for w in live:
            w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for w in live:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout=30)
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    # ------------------------------------------------------------ side files

    def executions(self) -> list[Execution]:
        found = []
        for path in sorted(self.side_dir.glob("exec-*.log")):
            text = path.read_text()
            lines = text.splitlines()
            if text and not text.endswith("\n"):
                # A SIGKILL landed inside the write(2) of the file's last line
                # (rare, but Linux lets a fatal signal cut a write short): that
                # attempt died before its work began, which it does only after
                # the line is written. Only the last line of a file can be so.
                lines.pop()
            for line in lines:
                found.append(Execution(**json.loads(line)))
        return found

    def executions_by_pid(self) -> dict[int, list[Execution]]:
        by_pid: dict[int, list[Execution]] = defaultdict(list)
        for e in self.executions():
            by_pid[e.pid].append(e)
        return by_pid

    def describe_open_runs(self, limit: int = 3) -> str:
        """Why some open runs are not moving: their last error and pending work."""
        if self._client is None:
            return "(no client)"
        try:
            lines = []
            for run in self.client.list(status="running", limit=limit):
                d = self.client.get_handle(run.id).describe()
                lines.append(f"{d.id}: history={d.history_length} last_error={d.last_error!r}")
                for a in d.pending_activities:
                    failure = a.last_failure or {}
                    lines.append(
                        f"  activity {a.activity_type}#{a.activity_id} attempt={a.attempt} "
                        f"running={a.running} last_failure={failure.get('type')}: "
                        f"{failure.get('message')}"
                    )
            return "\n".join(lines) or "(no open runs)"
        except Exception as exc:  # diagnostics must never hide the real failure
            return f"(could not describe runs: {exc!r})"

    def diagnostics(self) -> str:
        parts = [f"--- open runs (a few) ---\n{self.describe_open_runs()}"]
        for w in self.workers:
            state = "killed" if w.killed else ("alive" if w.alive() else f"rc={w.proc.returncode}")
            out = w.output().strip() or "(no output)"
            parts.append(f"--- {w.name} pid {w.pid} ({state}) output ---\n{out}")
        counts = Counter(e.pid for e in self.executions())
        parts.append(f"--- executions per pid: {dict(counts)}")
        return "\n".join(parts)

    def assert_no_tracebacks(self) -> None:
        for w in self.workers:
            out = w.output()
            assert "Traceback" not in out and " ERROR " not in out, (
                f"{w.name} (pid {w.pid}) logged an error:\n{out}"
            )


# ---------------------------------------------------------------- checks


def completed_steps(history: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """ref -> (step number, attempt that completed it), from one run's history."""
    step_of = {e["ref"]: e["args"][0] for e in history if e["type"] == "ActivityScheduled"}
    completed = [e for e in history if e["type"] == "ActivityCompleted"]
    refs = [e["ref"] for e in completed]
    assert len(refs) == len(set(refs)), f"an activity completed twice in the history: {refs}"
    return {e["ref"]: (step_of[e["ref"]], e["attempt"]) for e in completed}


def check_executions(
    executions: Iterable[Execution],
    histories: dict[str, list[dict[str, Any]]],
    steps: int,
    killed_pids: set[int],
) -> list[tuple[str, int]]:
    """Check the at-least-once / never-after-completion contract; return the
    (workflow, step) pairs that ran more than once.

    For every workflow and step: the history records exactly one completion, and
    exactly one logged execution is the attempt that completed it. Any other
    execution must have been cut short by a SIGKILL: it ran in a killed process,
    under the same idempotency key, with an earlier attempt number.
    """
    runs: dict[tuple[str, int], list[Execution]] = defaultdict(list)
    for e in executions:
        runs[(e.wf, e.step)].append(e)
    unknown = set(runs) - {(wf, n) for wf in histories for n in range(1, steps + 1)}
    assert not unknown, f"executions of steps no workflow scheduled: {sorted(unknown)}"
    duplicated = []
    for wf, history in histories.items():
        completed = completed_steps(history)
        assert sorted(s for s, _ in completed.values()) == list(range(1, steps + 1)), (
            f"{wf}: completed steps {sorted(completed.values())}, expected 1..{steps}"
        )
        for ref, (n, attempt) in completed.items():
            execs = runs.get((wf, n), [])
            assert execs, f"{wf} step {n} completed but never executed"
            keys = {e.key for e in execs}
            assert len(keys) == 1, f"{wf} step {n}: idempotency key changed: {keys}"
            assert {e.activity_id for e in execs} == {str(ref)}, (wf, n, execs)
            winners = [e for e in execs if e.attempt == attempt]
            assert len(winners) == 1, (
                f"{wf} step {n}: completed by attempt {attempt}, executions {execs}"
            )
            for loser in execs:
                if loser is winners[0]:
                    continue
                assert loser.pid in killed_pids and loser.attempt < attempt, (
                    f"{wf} step {n} ran again after it completed (not a SIGKILLed "
                    f"attempt): {loser} (completing attempt {attempt}, all: {execs})"
                )
            if len(execs) > 1:
                duplicated.append((wf, n))
    return duplicated


def attempt_spans(
    histories: Iterable[list[dict[str, Any]]], queue: str | None = None
) -> list[tuple[float, float]]:
    """(started_at, ended_at) of every activity attempt the histories record
    as ended (ActivityCompleted/ActivityFailed keep each attempt's record; a
    lost attempt ends when its lease ran out), of the activities scheduled
    on ``queue`` (None: on any). A queue limit holds a slot at least that
    long: from the claim until the outcome's commit, or the lease's end."""
    spans = []
    for history in histories:
        queues = {e["ref"]: e["task_queue"] for e in history if e["type"] == "ActivityScheduled"}
        for event in history:
            if event["type"] not in ("ActivityCompleted", "ActivityFailed"):
                continue
            if queue is None or queues.get(event["ref"]) == queue:
                spans += [(a["started_at"], a["ended_at"]) for a in event["attempts"]]
    return spans


def peak_running(spans: Iterable[tuple[float, float]]) -> int:
    """The most spans that overlap at any instant (one that ends as another
    starts does not overlap it)."""
    edges = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    peak = running = 0
    for _, step in edges:  # (at one time, ends sort before starts)
        running += step
        peak = max(peak, running)
    return peak


def most_started(spans: Iterable[tuple[float, float]], per: float) -> int:
    """The most spans started within any window (t - per, t]."""
    starts = sorted(start for start, _ in spans)
    most, first = 0, 0
    for last, start in enumerate(starts):
        while starts[first] <= start - per:
            first += 1
        most = max(most, last - first + 1)
    return most
