"""``perdure worker --processes N``: N worker processes under one command,
each with an identity of its own (IDENTITY/1 ... IDENTITY/N); one that is
killed is started again under the same identity; SIGTERM drains them all;
a child that cannot start stops the command with its exit code; and a
SIGKILL of the command itself leaves no worker behind."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import surface_workflows as wf
from surface_helpers import Proc, cli, spawn, wait_for

import perdure

pytestmark = pytest.mark.slow


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'processes.db'}"


@pytest.fixture
def client(db: str) -> Iterator[perdure.SyncClient]:
    with perdure.SyncClient.connect(db) as c:
        c.client.poll_interval = 0.02
        yield c


def _group(db: str, log: Path, *extra: str) -> Proc:
    args = ["worker", wf.__file__, "--db", db, "--poll-interval", "0.05"]
    return spawn([*args, "--log-level", "WARNING", "--processes", "2", *extra], log)


def _pids(client: perdure.SyncClient) -> dict[str, int]:
    return {w.identity: w.pid for w in client.list_workers()}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (not reaped yet by a parent that is itself gone) is gone too.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def _double_all(client: perdure.SyncClient, count: int) -> list[int]:
    handles = [client.start(wf.double, i) for i in range(count)]
    return [h.result(timeout=30) for h in handles]


def test_processes_share_the_work_come_back_and_drain(
    db: str, client: perdure.SyncClient, tmp_path: Path
) -> None:
    group = _group(db, tmp_path / "group.log", "--identity", "grp")
    try:
        pids = wait_for(
            lambda: (p := _pids(client)).keys() == {"grp/1", "grp/2"} and p,
            30,
            "both worker processes",
        )
        assert group.popen.pid not in pids.values()  # children, not the command
        assert _double_all(client, 20) == [2 * i for i in range(20)]

        os.kill(pids["grp/1"], signal.SIGKILL)
        restarted = wait_for(
            lambda: (p := _pids(client)).get("grp/1") not in (None, pids["grp/1"]) and p,
            30,
            "worker 1 started again under its identity",
        )
        assert restarted["grp/2"] == pids["grp/2"]  # the other one went on
        assert _double_all(client, 5) == [0, 2, 4, 6, 8]
    finally:
        code = group.stop(signal.SIGTERM)
    assert code == 0, group.output()
    assert "worker 1 ended (exit code -9)" in group.output()
    for pid in restarted.values():
        assert _gone(pid)
    assert client.list_workers() == []  # both drained and left the registry


def test_a_child_that_cannot_start_stops_the_command(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    alone = cli("worker", wf.__file__, "--db", missing)
    assert alone.returncode != 0
    group = cli("worker", wf.__file__, "--db", missing, "--processes", "3")
    assert group.returncode == alone.returncode, group.stderr
    assert "failed to start" in group.stderr
    bad = cli("worker", wf.__file__, "--processes", "0")
    assert bad.returncode == 2 and "--processes must be at least 1" in bad.stderr


def test_killing_the_command_drains_its_workers(
    db: str, client: perdure.SyncClient, tmp_path: Path
) -> None:
    group = _group(db, tmp_path / "group.log")
    pids = wait_for(lambda: len(p := _pids(client)) == 2 and p, 30, "both worker processes")
    group.popen.kill()  # SIGKILL: nobody forwards anything
    group.popen.wait()
    wait_for(lambda: all(_gone(pid) for pid in pids.values()), 30, "the workers to drain")
    wait_for(lambda: client.list_workers() == [], 30, "an empty registry")


def test_a_child_that_cannot_be_started_stops_the_others(tmp_path: Path) -> None:
    from perdure.cli._supervise import supervise

    pid_file = tmp_path / "first.pid"
    first = [
        sys.executable,
        "-c",
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)",
    ]

    def command(k: int) -> list[str]:
        if k == 2:
            wait_for(pid_file.exists, 10, "the first child")
            return [str(tmp_path / "no-such-program")]
        return first

    with pytest.raises(FileNotFoundError):
        supervise(command, 2)
    pid = int(pid_file.read_text())
    wait_for(lambda: _gone(pid), 10, "the first child to stop")


def test_a_function_blocked_for_good_does_not_keep_the_worker_alive(
    tmp_path: Path, db: str, client: perdure.SyncClient
) -> None:
    """SIGTERM, once the drain timeout has passed, ends the process even if
    a plain def activity is blocked in a call that never returns. Its
    threads had been joined at the interpreter's exit, so the process
    stayed until a SIGKILL. The attempt is recorded as stopped, and its
    next one is due at once for the other workers."""
    import blocking_workflows as bw

    marker = tmp_path / "blocked"
    args = ["worker", bw.__file__, "--db", db, "--poll-interval", "0.05", "--drain-timeout", "0.2"]
    worker = spawn(args, tmp_path / "worker.log", env={"PERDURE_TEST_BLOCKED": str(marker)})
    try:
        client.start("waits_on_a_blocked_call", 1)
        wait_for(lambda: marker.exists() or None, 20, "the activity to block")
        worker.popen.send_signal(signal.SIGTERM)
        code = worker.popen.wait(timeout=10)
    finally:
        worker.stop(signal.SIGKILL)
    assert code == 0, worker.output()
    why = "ended (its stopping worker ended its drain) while its function still ran"
    assert why in worker.output()
    assert "was stopped: its stopping worker ended its drain; retrying in 0s" in worker.output()


def test_workflow_code_that_never_awaits_does_not_keep_the_worker_from_stopping(
    tmp_path: Path, db: str, client: perdure.SyncClient
) -> None:
    """A busy loop in workflow code held the worker's event loop, which
    therefore never heard SIGTERM (nor renewed a lease). The watchdog
    interrupts it after --deadlock-timeout; the worker then stops as asked,
    and the run stays, with why its turn failed."""
    import blocking_workflows as bw

    marker = tmp_path / "spinning"
    args = ["worker", bw.__file__, "--db", db, "--poll-interval", "0.05"]
    args += ["--deadlock-timeout", "0.5", "--drain-timeout", "5"]
    worker = spawn(args, tmp_path / "worker.log", env={"PERDURE_TEST_BLOCKED": str(marker)})
    try:
        handle = client.start("spins_for_good", 1)
        wait_for(lambda: marker.exists() or None, 20, "the workflow to spin")
        worker.popen.send_signal(signal.SIGTERM)
        code = worker.popen.wait(timeout=20)
    finally:
        worker.stop(signal.SIGKILL)
    assert code == 0, worker.output()
    assert "without awaiting at " in worker.output()
    assert "blocking_workflows.py" in worker.output()
    assert handle.describe().status == "running"


def test_an_attempt_whose_lease_ran_out_while_it_held_the_loop_says_so(
    tmp_path: Path, db: str, client: perdure.SyncClient
) -> None:
    """An async activity that blocks the loop for longer than the lease:
    no lease is renewed meanwhile, another worker takes the task over and
    runs it again, and the first attempt's result is refused. Before,
    nothing was logged at all (the probe found the activity run five times
    in twelve seconds, in silence). Now the worker says where its loop was
    held, and that the result was not recorded."""
    import blocking_workflows as bw

    marker = tmp_path / "holding"
    args = ["worker", bw.__file__, "--db", db, "--poll-interval", "0.05"]
    args += ["--lease-timeout", "1", "--deadlock-timeout", "0.5", "--log-level", "WARNING"]
    env = {"PERDURE_TEST_BLOCKED": str(marker)}
    first = spawn(args, tmp_path / "first.log", env=env)
    second = None
    try:
        # Both serve before the run starts: the one the activity does not
        # hold takes its task over once the lease runs out. (The second was
        # started once the activity held the first's loop: on a loaded
        # machine it took longer to start than the activity took to end,
        # and a result whose lease ran out but that no worker took over is
        # still recorded.)
        second = spawn(args, tmp_path / "second.log", env=env)
        wait_for(lambda: len(client.list_workers()) == 2 or None, 20, "both workers to serve")
        client.start("waits_on_a_loop_holder", 1)
        wait_for(lambda: marker.exists() or None, 20, "the activity to hold a loop")
        said = "completed, but its result was not recorded: its lease had run out"

        def told() -> bool | None:
            return said in first.output() + second.output() or None  # type: ignore[union-attr]

        wait_for(told, 30, "a worker to say its result was not recorded")
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop(signal.SIGKILL)
    logs = first.output() + second.output()
    assert "event loop has run nothing for" in logs
    assert "in holds_the_loop (" in logs and "blocking_workflows.py" in logs


def test_a_terminals_ctrl_c_drains_the_workers(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the command's whole process group. The
    workers had got SIGINT from it and SIGTERM from the command, and a second
    stop request ends a worker's drain at once: the activity in flight was
    stopped instead of allowed to finish."""
    import subprocess

    from surface_helpers import ENV, PERDURE

    here = Path(__file__).resolve().parent.parent / "e2e"
    db = f"sqlite:///{tmp_path / 'ctrl-c.db'}"
    runs = tmp_path / "runs.log"
    env = {**ENV, "PERDURE_TEST_DIR": str(tmp_path)}
    args = ["worker", str(here / "drain_workload.py"), "--db", db, "--processes", "2"]
    with (tmp_path / "group.log").open("ab") as out:
        group = subprocess.Popen(
            [*PERDURE, *args, "--poll-interval", "0.05", "--log-level", "WARNING"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        with perdure.SyncClient.connect(db) as client:
            wait_for(lambda: len(client.list_workers()) == 2, 30, "both worker processes")
            handle = client.start("drained", "job-3")
            wait_for(lambda: runs.exists() and "start job-3" in runs.read_text(), 20, "the step")
            os.killpg(group.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            assert group.wait(timeout=30) == 0, (tmp_path / "group.log").read_text()
            assert [line.split()[0] for line in runs.read_text().splitlines()] == ["start", "end"]
            assert handle.describe().pending_activities == []  # its result was recorded
    finally:
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)
            group.wait()
