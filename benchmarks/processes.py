"""The benchmark modes' ``perdure worker`` processes: their command, their
environment, their CPU, and the recovery mode, which SIGKILLs one. Used by
bench_perdure.py; never a test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import workloads as w

import perdure

HERE = Path(__file__).resolve().parent


def lines(path: str) -> int:
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return len(f.read().splitlines())


def worker_env() -> dict[str, str]:
    """The environment of a ``perdure worker`` process. A deployed worker starts
    from compiled bytecode (pip compiles it at install). Where
    PYTHONDONTWRITEBYTECODE is set (as on the project's machines), every restart
    would compile each module first: let the first worker write the bytecode
    that later ones read."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# The event loop every perdure process of a run uses (--loop): asyncio's own
# by default, as in every report so far; "uvloop" to measure that loop.
LOOP = {"name": "asyncio"}


def worker_command(url: str, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "perdure",
        "worker",
        str(HERE / "workloads.py"),
        "--db",
        url,
        "--poll-interval",
        "0.05",
        "--log-level",
        "WARNING",
        "--loop",
        LOOP["name"],
        *options,
    ]


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def serving(
    url: str, processes: int, *options: str
) -> AsyncIterator[tuple[perdure.Client, Callable[[], float]]]:
    """``processes`` worker processes serving ``url`` (with ``options``), once
    all of them serve: a client of this process, and a function that gives
    the CPU seconds this process and the workers have used so far."""
    workers = [
        subprocess.Popen(worker_command(url, *options), env=worker_env()) for _ in range(processes)
    ]
    client = await perdure.Client.connect(url)
    client.poll_interval = 0.5
    try:
        deadline = time.time() + 60
        while len(await client.list_workers()) < processes:
            if time.time() > deadline:
                raise RuntimeError("the worker processes did not start serving")
            await asyncio.sleep(0.05)
        yield client, lambda: time.process_time() + sum(process_cpu(p.pid) for p in workers)
    finally:
        for p in workers:
            p.send_signal(signal.SIGTERM)
        for p in workers:
            p.wait()
        await client.close()


def recovery(url: str, same_identity: bool) -> dict[str, Any]:
    """SIGKILL a worker process mid-run; time until the run continues."""
    side = tempfile.mktemp(prefix="perdure-bench-side-")
    env = {**worker_env(), "PERDURE_BENCH_SIDE": side}
    cmd = worker_command(url, "--lease-timeout", "5")
    identity = ["--identity", "bench-worker"] if same_identity else []
    first = subprocess.Popen(cmd + identity, env=env)
    try:
        client = perdure.SyncClient.connect(url)
        handle = client.start(w.recover, 20)
        deadline = time.time() + 60
        while time.time() < deadline:
            if lines(side) >= 11:
                break
            time.sleep(0.005)
        time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.time()
        seen = lines(side)
        second = subprocess.Popen(cmd + identity, env=env)
        try:
            while lines(side) == seen and time.time() < killed_at + 60:
                time.sleep(0.002)
            resumed = time.time() - killed_at
            handle.result(timeout=120)
            done = time.time() - killed_at
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait()
        client.close()
    finally:
        if first.poll() is None:
            first.kill()
    return {
        "mode": "recovery",
        "same_identity": same_identity,
        "resume_s": resumed,
        "done_s": done,
        "lease_s": 5.0,
    }
