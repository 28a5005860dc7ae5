"""Client CPU per one-query commit: psycopg's cursor against perdure's
``postgres_wire.simple_query``, on the same connection and statements.

Each "workflow" is eleven transactions, each one query ("BEGIN; UPDATE ...;
INSERT ...; COMMIT"), the shape of a sequential perdure workflow on
PostgreSQL, without perdure around it. The modes alternate, so the machine's
drift touches both alike. Prints one JSON line per run.

Usage: python benchmarks/pg_wire_probe.py [--db URL] [-n WORKFLOWS] [--pairs N]
Run by hand; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import psycopg

from perdure._store import postgres_wire as wire


async def run(url: str, mode: str, n: int) -> dict[str, Any]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        await conn.execute("DROP TABLE IF EXISTS probe_runs, probe_events")
        await conn.execute(
            "CREATE TABLE probe_runs (run_id text PRIMARY KEY, version int, state text)"
        )
        await conn.execute(
            "CREATE TABLE probe_events (run_id text, seq int, data text, PRIMARY KEY (run_id, seq))"
        )
        cur = psycopg.AsyncClientCursor(conn)

        async def send(query: str) -> None:
            if mode == "wire":
                wire.check(await wire.simple_query(conn, query.encode()), conn)
            else:
                await cur.execute(query.encode())

        latencies = []
        cpu0 = time.process_time()
        for w in range(n):
            t = time.perf_counter()
            run_id = f"r{w}"
            await send(f"BEGIN; INSERT INTO probe_runs VALUES ('{run_id}', 0, '{{}}'); COMMIT")
            for s in range(10):
                await send(
                    f"BEGIN; UPDATE probe_runs SET version = version + 1, state = '{{\"s\":{s}}}'"
                    f" WHERE run_id = '{run_id}'; INSERT INTO probe_events VALUES"
                    f" ('{run_id}', {2 * s}, '{{\"result\":{s}}}'),"
                    f" ('{run_id}', {2 * s + 1}, '{{}}'); COMMIT"
                )
            latencies.append((time.perf_counter() - t) * 1000)
        cpu = time.process_time() - cpu0
        await conn.execute("DROP TABLE probe_runs, probe_events")
    finally:
        await conn.close()
    return {
        "mode": mode,
        "p50_ms_per_workflow": statistics.median(latencies),
        "cpu_us_per_query": cpu / (n * 11) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.pairs):
        for mode in ("cursor", "wire"):
            print(json.dumps(asyncio.run(run(args.db, mode, args.n))), flush=True)


if __name__ == "__main__":
    main()
