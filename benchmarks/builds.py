"""What a worker build costs (docs/versioning.md, "Pinning runs to a
build"): the same workloads on a worker without a build id and on one
with (its runs pinned by their first turns, its claims taken from two
queues), alternating, each round on a fresh database.

- concurrent: ``--workflows`` workflows of ``--steps`` steps started at
  once; steps per second;
- sequential: ``--sequential`` workflows of ``--steps`` steps one after
  another; p50 of a workflow, in milliseconds.

Usage::

    python benchmarks/builds.py --folder /tmp/builds-bench --rounds 3
    python benchmarks/builds.py --url postgresql://postgres@127.0.0.1:5432/test

On PostgreSQL each round gets a fresh schema of the database given,
dropped at its end. Prints each round and the medians, and the ratio with
a build to without. Run by hand; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import perdure
from perdure import activity, workflow


@activity.defn
async def step(i: int) -> int:
    return i + 1


@workflow.defn
async def steps(n: int) -> int:
    total = 0
    for _ in range(n):
        total = await step(total)
    return total


async def one_round(url: str, build: str | None, args: argparse.Namespace) -> tuple[float, float]:
    """(steps per second concurrently, sequential p50 in ms) on ``url``."""
    client = await perdure.Client.connect(url)
    try:
        async with perdure.Worker(client, [steps], [step], build_id=build):
            began = time.perf_counter()
            handles = [await client.start(steps, args.steps) for _ in range(args.workflows)]
            for handle in handles:
                await handle.result(timeout=600)
            rate = args.workflows * args.steps / (time.perf_counter() - began)
            took = []
            for _ in range(args.sequential):
                began = time.perf_counter()
                await client.execute(steps, args.steps)
                took.append((time.perf_counter() - began) * 1000)
            if build is not None:  # (the runs were pinned: the comparison is the one meant)
                assert (await handles[0].describe()).build_id == build
        return rate, statistics.median(took)
    finally:
        await client.close()


def fresh_url(args: argparse.Namespace, n: int) -> tuple[str, object]:
    if args.url is None:
        folder = Path(args.folder or tempfile.mkdtemp(prefix="perdure-builds-"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"round-{n}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}", lambda: None
    import psycopg

    schema = f"buildsbench_{secrets.token_hex(4)}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    sep = "&" if "?" in args.url else "?"
    return f"{args.url}{sep}{urlencode({'options': f'-csearch_path={schema}'})}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a PostgreSQL database (default: SQLite files)")
    parser.add_argument("--folder", help="where the SQLite files go")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    results: dict[str | None, list[tuple[float, float]]] = {None: [], "b1": []}
    n = 0
    for _ in range(args.rounds):
        for build in (None, "b1"):
            n += 1
            url, drop = fresh_url(args, n)
            try:
                rate, p50 = asyncio.run(one_round(url, build, args))
            finally:
                drop()  # type: ignore[operator]
            results[build].append((rate, p50))
            name = "with a build" if build else "no build"
            print(f"round {n} ({name}): {rate:,.0f} steps/s, sequential p50 {p50:.2f} ms")
    med = {
        b: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v))
        for b, v in results.items()
    }
    (rate0, p0), (rate1, p1) = med[None], med["b1"]
    print(f"medians: no build {rate0:,.0f} steps/s, p50 {p0:.2f} ms; "
          f"with a build {rate1:,.0f} steps/s, p50 {p1:.2f} ms")  # fmt: skip
    print(f"with a build / without: throughput {rate1 / rate0:.2f}x, sequential p50 {p1 / p0:.2f}x")


if __name__ == "__main__":
    main()
