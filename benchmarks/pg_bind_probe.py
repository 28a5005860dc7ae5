"""The PostgreSQL server's CPU for a group commit's statements: sent as
literals inside one simple-protocol query (perdure's write transactions,
``EXECUTE name(ARRAY[...], ...)``), against bound parameters (the extended
protocol, prepared statements in a pipeline).

The server lexes and parses every byte of a simple query, the arrays'
literal values included; a bound parameter reaches it as data. Each
"group" here is what an inline step's plans write for ``--group`` runs at
once (the runs' fenced updates, the task rows' take-overs with their
payloads, two events each, about the sizes perdure writes), in one
transaction. The modes alternate; each prints the server backend's CPU per
step (from ``/proc``, so the server must run on this machine) and this
process's. The bound mode goes through psycopg's own adaptation of the
parameters, so its client figure is not what a libpq path written for it
would cost. By hand, never a test.

Usage: python benchmarks/pg_bind_probe.py [--db URL] [--groups N] [--group G] [--pairs P]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import psycopg

from perdure._store.postgres_tx import Array, literal_writer

TICK = os.sysconf("SC_CLK_TCK")

SCHEMA = (
    "DROP TABLE IF EXISTS probe_runs, probe_tasks, probe_events",
    "CREATE TABLE probe_runs (run_id text PRIMARY KEY, version bigint, state text,"
    " updated_at float8) WITH (fillfactor = 70)",
    "CREATE TABLE probe_tasks (id bigint PRIMARY KEY, run_id text, ref int, visible_at float8,"
    " token text, payload text) WITH (fillfactor = 70)",
    "CREATE INDEX probe_tasks_due ON probe_tasks (visible_at)",
    "CREATE INDEX probe_tasks_run ON probe_tasks (run_id)",
    "CREATE TABLE probe_events (id bigserial PRIMARY KEY, run_id text, seq bigint, data text)",
    "CREATE UNIQUE INDEX probe_events_by_run ON probe_events (run_id, seq)",
)
ADVANCE = (
    "UPDATE probe_runs SET version = r.version + 1, state = p.state, updated_at = p.at"
    " FROM unnest($1::text[], $2::text[], $3::float8[]) AS p(run_id, state, at)"
    " , probe_runs AS r WHERE probe_runs.run_id = p.run_id AND r.run_id = p.run_id"
)
TAKE_OVER = (
    "UPDATE probe_tasks SET ref = p.ref, token = p.token, payload = p.payload"
    " FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[]) AS p(id, ref, token, payload)"
    " WHERE probe_tasks.id = p.id"
)
EVENTS = (
    "INSERT INTO probe_events (run_id, seq, data)"
    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])"
)


def _psycopg(sql: str) -> str:
    """``sql`` with psycopg's placeholders instead of ``$1`` ... ``$4``."""
    for number in range(1, 5):
        sql = sql.replace(f"${number}", "%s")
    return sql


def backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def group_values(g: int, group: int, step: int) -> tuple[list[Any], list[Any], list[Any]]:
    runs = [f"run-{g * group + i:08d}-0000-7000-8000-000000000000" for i in range(group)]
    payload = '{"v":2,"type":"ActivityScheduled","seq":%d,"options":{"retry":' + "x" * 250 + "}}"
    event = '{"v":2,"type":"ActivityCompleted","seq":%d,"result":' + "y" * 150 + "}"
    advance = [runs, ['{"k":1}'] * group, [time.time()] * group]
    take = [list(range(g * group, (g + 1) * group)), [step] * group]
    take += [[f"tok-{step}-{i}" for i in range(group)], [payload % step] * group]
    events = [runs * 2, [2 * step] * group + [2 * step + 1] * group]
    events += [[event % step] * group + [payload % step] * group]
    return advance, take, events


def run(url: str, mode: str, groups: int, group: int) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in SCHEMA:
            conn.execute(sql)
        runs = [f"run-{i:08d}-0000-7000-8000-000000000000" for i in range(groups * group)]
        conn.execute(
            "INSERT INTO probe_runs SELECT r, 0, '{}', 0 FROM unnest(%s::text[]) AS r", (runs,)
        )
        conn.execute(
            "INSERT INTO probe_tasks SELECT i - 1, r, 0, 0, 't', '' FROM"
            " unnest(%s::text[]) WITH ORDINALITY AS u(r, i)",
            (runs,),
        )
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        literal = literal_writer(conn)  # type: ignore[arg-type]
        statements = (("probe_advance", ADVANCE), ("probe_take", TAKE_OVER), ("probe_ev", EVENTS))
        for name, sql in statements:
            conn.execute(f"PREPARE {name} AS {sql}")
        server0, client0 = backend_cpu(pid), time.process_time()
        for step in range(1, 4):  # three steps of every run, group by group
            for g in range(groups):
                values = group_values(g, group, step)
                if mode == "literal":
                    parts = [
                        f"EXECUTE {name}("
                        + ", ".join(literal(Array(column)).decode() for column in columns)
                        + ")"
                        for (name, _), columns in zip(statements, values, strict=True)
                    ]
                    conn.execute(("BEGIN; " + "; ".join(parts) + "; COMMIT").encode())
                else:
                    with conn.transaction(), conn.pipeline():
                        cur = conn.cursor()
                        for (_, sql), columns in zip(statements, values, strict=True):
                            cur.execute(_psycopg(sql), columns, prepare=True)
        steps = 3 * groups * group
        result = {
            "mode": mode,
            "steps": steps,
            "server_us_per_step": (backend_cpu(pid) - server0) / steps * 1e6,
            "client_us_per_step": (time.process_time() - client0) / steps * 1e6,
        }
        conn.execute("DROP TABLE probe_runs, probe_tasks, probe_events")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--group", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    found: dict[str, list[dict[str, Any]]] = {"literal": [], "bound": []}
    for _ in range(args.pairs):
        for mode in found:
            result = run(args.db, mode, args.groups, args.group)
            found[mode].append(result)
            print(json.dumps(result))
    for key in ("server_us_per_step", "client_us_per_step"):
        medians = {mode: statistics.median(r[key] for r in rs) for mode, rs in found.items()}
        print(f"{key}: literal {medians['literal']:.1f}, bound {medians['bound']:.1f}")


if __name__ == "__main__":
    main()
