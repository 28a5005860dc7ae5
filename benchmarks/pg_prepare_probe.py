"""Probe (by hand, not part of ``make bench``): what PostgreSQL's server spends
on parsing and planning an inline step's write transaction.

Runs the same four statements (a fenced run update, a fenced task delete,
three event rows, the next task) N times: as one simple-protocol query of
text, as perdure sent them before it prepared its write statements, and as
``EXECUTE`` of statements prepared once per session, as it sends them now
(``perdure._store.postgres_prepared``). Prints wall, client and server
(backend process) CPU per step.
``synchronous_commit = off``, so that CPU, not the disk, is what differs.
Uses a scratch schema ``prep`` in the database at ``PERDURE_TEST_PG``
(default: the local ``test`` database).

    python benchmarks/pg_prepare_probe.py
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import psycopg

URL = os.environ.get("PERDURE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
N = 3000
EVENT = json.dumps({"v": 1, "type": "ActivityScheduled", "seq": 3, "time": 1796068160.52})
ROWS = ", ".join(["(%s, %s, %s, %s, %s)"] * 3)
STEP = [
    "WITH f AS (UPDATE r SET version = version + 1, state = %s, updated_at = %s"
    " WHERE id = %s AND version = %s AND status = %s RETURNING 1) SELECT count(*) FROM f",
    "WITH f AS (DELETE FROM t WHERE id = %s AND token = %s RETURNING 1) SELECT count(*) FROM f",
    f"INSERT INTO ev (run_id, seq, type, time, data) VALUES {ROWS}",
    "INSERT INTO t (run_id, token, payload, visible_at) VALUES (%s, %s, %s, %s) RETURNING id",
]
SCHEMA = [
    "CREATE TABLE r (id text PRIMARY KEY, version int, state jsonb, updated_at float8,"
    " status text)",
    "CREATE TABLE ev (run_id text, seq int, type text, time float8, data jsonb,"
    " PRIMARY KEY (run_id, seq))",
    "CREATE TABLE t (id bigserial PRIMARY KEY, run_id text, token text, payload jsonb,"
    " visible_at float8)",
]


def backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def step_params(i: int, version: int) -> list[list[Any]]:
    run = f"run{i}"
    events = []
    for n in range(3):
        events += [run, 3 * version + n, "E", 1.5, EVENT]
    return [['{"a":1}', 1.5, run, version, "open"], [i, "tok"], events, [run, "tok", EVENT, 1.5]]


def main() -> None:
    conn = psycopg.connect(URL, autocommit=True)
    conn.execute("DROP SCHEMA IF EXISTS prep CASCADE")
    conn.execute("CREATE SCHEMA prep")
    conn.execute("SET search_path = prep")
    for sql in SCHEMA:
        conn.execute(sql)
    conn.execute("SET synchronous_commit = off")
    conn.execute(
        "INSERT INTO r SELECT 'run' || g, 0, '{}', 0, 'open' FROM generate_series(0, %s) g", [N]
    )
    for k, sql in enumerate(STEP):
        for j in range(1, sql.count("%s") + 1):
            sql = sql.replace("%s", f"${j}", 1)
        conn.execute(f"PREPARE s{k} AS {sql}")
    (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (0,)
    cur = psycopg.ClientCursor(conn)
    version = 0
    for _ in range(3):
        for prepared in (False, True):
            cpu0, server0, t0 = time.process_time(), backend_cpu(pid), time.perf_counter()
            for i in range(N):
                params = step_params(i, version)
                if prepared:
                    calls = [
                        f"EXECUTE s{k}({', '.join(['%s'] * len(p))})" for k, p in enumerate(params)
                    ]
                    parts = ["BEGIN", *calls, "COMMIT"]
                else:
                    parts = ["BEGIN", *STEP, "COMMIT"]
                cur.execute("; ".join(parts), [v for p in params for v in p])
            wall = (time.perf_counter() - t0) / N * 1e6
            client = (time.process_time() - cpu0) / N * 1e6
            server = (backend_cpu(pid) - server0) / N * 1e6
            version += 1
            kind = "prepared" if prepared else "simple  "
            print(f"{kind} per step: wall {wall:4.0f} µs, client {client:3.0f} µs", end="")
            print(f", server {server:3.0f} µs")
    conn.execute("DROP SCHEMA prep CASCADE")


if __name__ == "__main__":
    main()
