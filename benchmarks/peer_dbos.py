"""The benchmark workloads on DBOS Transact, for ratios measured in the same run.

Runs under its own virtual environment (``peers.py`` creates it with
``pip install dbos==3.4.0``); prints one JSON line like bench_perdure.py.
Usage: python peer_dbos.py MODE --db sqlite|URL [-n N] [-k K]
Modes: sequential, concurrent, sleep, recovery. A PostgreSQL URL gets a fresh
``dbos`` schema (the database is created when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from dbos import DBOS, SetWorkflowID

RECOVERY_ID = "perdure-bench-recovery"


@DBOS.step()
def step(i: int) -> dict[str, Any]:
    return {"i": i, "ok": True}


@DBOS.workflow()
def steps(k: int) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for i in range(k):
        last = step(i)
    return {"k": k, "last": last}


@DBOS.workflow()
def sleeper(seconds: float) -> None:
    DBOS.sleep(seconds)


@DBOS.step()
def slow_step(side: str, i: int) -> int:
    """For the recovery measurement: notes each start in a side file."""
    with open(side, "a") as f:
        f.write(f"start {i} {os.getpid()} {time.time()}\n")
    time.sleep(0.1)
    return i


@DBOS.workflow()
def recover(side: str, k: int) -> int:
    total = 0
    for i in range(k):
        total += slow_step(side, i)
    return total


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fresh_postgres(url: str) -> None:
    """Create the database if missing, and drop DBOS's schema: an empty start."""
    import sqlalchemy as sa

    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        found = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": target.database}
        ).scalar()
        if not found:
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    engine = sa.create_engine(target, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS dbos CASCADE"))
    engine.dispose()


def launch(url: str) -> None:
    DBOS(config={"name": "perdure-peer-bench", "system_database_url": url})
    DBOS.launch()


def lines(path: str) -> list[list[str]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [ln.split() for ln in f.read().splitlines() if ln.count(" ") == 3]


def recovery_child(url: str, side: str, k: int, phase: str) -> None:
    launch(url)
    if phase == "start":
        with SetWorkflowID(RECOVERY_ID):
            handle = DBOS.start_workflow(recover, side, k)
        handle.get_result()  # SIGKILLed before this returns
    else:
        # DBOS.launch() has put the pending workflow back on its internal queue.
        result = DBOS.retrieve_workflow(RECOVERY_ID).get_result(polling_interval_sec=0.01)
        print(json.dumps({"result": result}), flush=True)
    os._exit(0)


def recovery(url: str, k: int) -> dict[str, Any]:
    """SIGKILL the process running a 20-step workflow while step 11 runs; start a
    new process at once. resume_s: kill -> first step starting in the new process;
    done_s: kill -> the new process has the result (interpreter start, imports
    and DBOS.launch included, as for perdure's new worker)."""
    side = os.path.join(tempfile.mkdtemp(prefix="dbos-bench-side-"), "side.txt")
    me = [sys.executable, os.path.abspath(__file__), "_recovery", "--db", url, "-k", str(k)]
    first = subprocess.Popen([*me, "--side", side, "--phase", "start"])
    try:
        deadline = time.time() + 60
        while len(lines(side)) < 11:
            if time.time() > deadline or first.poll() is not None:
                raise SystemExit("recovery: the steps did not progress")
            time.sleep(0.005)
        time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = time.time()
    second = subprocess.Popen(
        [*me, "--side", side, "--phase", "resume"], stdout=subprocess.PIPE, text=True
    )
    try:
        new = str(second.pid)
        resumed = None
        while resumed is None and time.time() < killed_at + 120 and second.poll() is None:
            starts = [float(ln[3]) for ln in lines(side) if ln[2] == new]
            if starts:
                resumed = min(starts) - killed_at
            time.sleep(0.002)
        assert second.stdout is not None
        out = [ln for ln in second.stdout if ln.startswith("{")]
        done = time.time() - killed_at
        second.wait(60)
    finally:
        if second.poll() is None:
            second.kill()
    if resumed is None:
        starts = [float(ln[3]) for ln in lines(side) if ln[2] == new]
        resumed = min(starts) - killed_at if starts else None
    executed = [int(ln[1]) for ln in lines(side)]
    return {
        "mode": "recovery",
        "k": k,
        "resume_s": resumed,
        "done_s": done,
        "result_ok": bool(out) and json.loads(out[-1])["result"] == sum(range(k)),
        "steps_started_twice": sorted({i for i in executed if executed.count(i) > 1}),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    modes = ["sequential", "concurrent", "sleep", "recovery", "_recovery"]
    parser.add_argument("mode", choices=modes)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["start", "resume"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = args.db
    if args.mode == "_recovery":
        recovery_child(url, args.side, args.k, args.phase)
        return
    if url == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='dbos-bench-')}/dbos.sqlite"
    else:
        fresh_postgres(url)
    if args.mode == "recovery":
        result = {"engine": "dbos", **recovery(url, 20)}
        result["db"] = "sqlite" if url.startswith("sqlite") else "postgres"
        print(json.dumps(result), flush=True)
        return
    launch(url)
    result: dict[str, Any] = {"engine": "dbos", "mode": args.mode, "n": args.n, "k": args.k}
    if args.mode == "sequential":
        for _ in range(5):
            steps(args.k)
        latencies = []
        t0 = time.perf_counter()
        for _ in range(args.n):
            t = time.perf_counter()
            steps(args.k)
            latencies.append((time.perf_counter() - t) * 1000)
        wall = time.perf_counter() - t0
        result.update(
            wf_per_s=args.n / wall,
            steps_per_s=args.n * args.k / wall,
            p50_ms=statistics.median(latencies),
            p99_ms=pct(latencies, 0.99),
            mean_ms=statistics.mean(latencies),
        )
    elif args.mode == "concurrent":
        t0 = time.perf_counter()
        handles = [DBOS.start_workflow(steps, args.k) for _ in range(args.n)]
        for handle in handles:
            handle.get_result()
        wall = time.perf_counter() - t0
        result.update(wf_per_s=args.n / wall, steps_per_s=args.n * args.k / wall, wall_s=wall)
    else:
        base = rss_kb()
        for _ in range(args.n):
            DBOS.start_workflow(sleeper, 3600.0)
        time.sleep(2.0)
        result.update(
            rss_before_kb=base,
            rss_after_kb=rss_kb(),
            bytes_per_sleeper=(rss_kb() - base) * 1024 / args.n,
        )
    result["db"] = "sqlite" if url.startswith("sqlite") else "postgres"
    result["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result), flush=True)
    os._exit(0)  # DBOS keeps background threads; the numbers are out


if __name__ == "__main__":
    main()
