"""Wake-up latency on PostgreSQL: signal sent -> workflow resumed, across processes.

A worker runs in another process with a 1 s poll interval, so a quick wake-up
can only come from LISTEN/NOTIFY. The client signals a waiting workflow 100
times, one signal at a time; the latency of each is the time of the turn that
delivered it (its ``TurnStarted`` event) minus the moment the client called
``signal()``. Both clocks are the database server's (each store measures its
offset on connect), so the two processes agree.

    python benchmarks/wakeup_latency.py [--server postgresql://user@host/db] [--count 100]

It creates a scratch database ``perdure_bench_<random>`` on that server (the
default is $PERDURE_TEST_PG, else postgresql://postgres@127.0.0.1:5432/postgres)
and drops it at the end. Run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

import perdure
from perdure import workflow


@workflow.defn
async def ping_pong(count: int) -> int:
    for i in range(count):
        await workflow.wait_signal("ping")
        workflow.set_state("pongs", i + 1)
    return count


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def measure(url: str, count: int) -> list[float]:
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "perdure", "worker", str(Path(__file__).resolve()),
            "--db", url, "--poll-interval", "1.0", "--log-level", "WARNING",
            "--loop", "asyncio",
        ],
        env={k: v for k, v in os.environ.items() if k != "PERDURE_DB"},
    )  # fmt: skip
    try:
        async with await perdure.Client.connect(url) as client:
            deadline = time.monotonic() + 30
            while not await client.list_workers():  # the worker registered itself
                assert worker.poll() is None and time.monotonic() < deadline, "no worker"
                await asyncio.sleep(0.05)
            handle = await client.start(ping_pong, count, id="wakeup-latency")
            sent = []
            for i in range(count):
                # Wait (gently: this process shares the CPU) until the workflow
                # waits again, then give the worker time to fall idle.
                while (await handle.state("pongs") or 0) < i or (
                    await handle.describe()
                ).waiting_signals != ["ping"]:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
                sent.append(client.store.clock())
                await handle.signal("ping")
            assert await handle.result(timeout=10) == count
            history = await handle.history()
    finally:
        worker.terminate()
        worker.wait(30)
    turn_time, resumed = 0.0, []
    for event in history:
        if event["type"] == "TurnStarted":
            turn_time = event["time"]
        elif event["type"] == "SignalReceived":
            resumed.append(turn_time)
    return [r - s for r, s in zip(resumed, sent, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("PERDURE_TEST_PG") or "postgresql://postgres@127.0.0.1:5432/postgres"
    parser.add_argument("--server", default=default)
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    name = f"perdure_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        latencies = asyncio.run(measure(with_database(args.server, name), args.count))
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ms = sorted(x * 1000 for x in latencies)
    p90 = ms[int(0.9 * len(ms)) - 1]
    print(
        f"signal -> workflow resumed, {len(ms)} signals, worker polling every 1 s: "
        f"median {statistics.median(ms):.1f} ms, p90 {p90:.1f} ms, "
        f"min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
