"""A worker process drains gracefully on SIGTERM: the activity in flight
finishes, its result is recorded, and it never runs again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from drain_workload import drained, endless, endless_step, slow_step
from e2e_helpers import fast_worker, wait_until

import perdure

HERE = Path(__file__).parent


def spawn_worker(url: str, folder: Path, *extra: str) -> subprocess.Popen[bytes]:
    stderr = open(folder / "worker.err", "wb")  # noqa: SIM115 - the child owns it
    with stderr:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "perdure",
                "worker",
                str(HERE / "drain_workload.py"),
                "--db",
                url,
                "--poll-interval",
                "0.05",
                "--log-level",
                "WARNING",
                "--no-tune-gc",  # the drain works the same without the worker's GC policy
                *extra,
            ],
            env={**os.environ, "PERDURE_TEST_DIR": str(folder)},
            stderr=stderr,
        )


async def test_sigterm_lets_the_running_activity_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'drain.db'}"
    log = tmp_path / "runs.log"
    monkeypatch.setenv("PERDURE_TEST_DIR", str(tmp_path))
    client = await perdure.Client.connect(url)
    proc = spawn_worker(url, tmp_path)
    try:
        handle = await client.start(drained, "job-1")

        async def started() -> bool:
            return log.exists() and "start job-1" in log.read_text()

        await wait_until(started, timeout=20, what="the activity to start")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        stderr = (tmp_path / "worker.err").read_text()
        assert code == 0, stderr
        assert "Traceback" not in stderr, stderr
        lines = log.read_text().splitlines()
        assert [line.split()[0] for line in lines] == ["start", "end"]
        # The result reached the database before the process left: a fresh
        # in-process worker finishes the workflow without running the step again.
        async with fast_worker(client, [drained], [slow_step]):
            assert await handle.result(timeout=20) == "job-1 done"
        assert len(log.read_text().splitlines()) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await client.close()


async def test_a_second_sigterm_ends_the_drain_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's second Ctrl-C (or SIGTERM) does not wait out the drain: the
    attempt still running is stopped and recorded, and the process exits."""
    url = f"sqlite:///{tmp_path / 'hurry.db'}"
    log = tmp_path / "runs.log"
    monkeypatch.setenv("PERDURE_TEST_DIR", str(tmp_path))
    client = await perdure.Client.connect(url)
    proc = spawn_worker(url, tmp_path, "--drain-timeout", "60")
    try:
        handle = await client.start(endless, "job-2")

        async def started() -> bool:
            return log.exists() and "start job-2 1" in log.read_text()

        await wait_until(started, timeout=20, what="the activity to start")
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)  # (draining now; the activity has a minute to go)
        assert proc.poll() is None
        loop = asyncio.get_running_loop()
        begun = loop.time()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        assert loop.time() - begun < 10
        stderr = (tmp_path / "worker.err").read_text()
        assert code == 0, stderr
        assert "stopped again" in stderr, stderr
        async with fast_worker(client, [endless], [endless_step]):
            assert await handle.result(timeout=20) == "job-2 done"
        assert log.read_text().split()[::3] == ["start", "start"]
        [completed] = [e for e in await handle.history() if e["type"] == "ActivityCompleted"]
        assert completed["attempts"][0]["error"]["type"] == "WorkerStopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await client.close()
