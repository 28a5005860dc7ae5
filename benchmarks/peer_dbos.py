"""The benchmark workloads on DBOS Transact, for ratios measured in the same run.

Runs under its own virtual environment (``peers.py`` creates it with
``pip install dbos==3.4.0``); prints one JSON line like bench_perdure.py.
Usage: python peer_dbos.py MODE --db sqlite|URL [-n N] [-k K]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from typing import Any

from dbos import DBOS


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


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["sequential", "concurrent", "sleep"])
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    url = args.db
    if url == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='dbos-bench-')}/dbos.sqlite"
    DBOS(config={"name": "perdure-peer-bench", "system_database_url": url})
    DBOS.launch()
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
