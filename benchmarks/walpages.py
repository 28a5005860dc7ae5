"""Where a concurrent step's SQLite writes go: the WAL frames (pages) a run
writes, per step, by table and index. By hand, never a test.

A step's durable cost on SQLite is the pages its commit writes to the WAL
(each a system call, a checksum, and part of the fsync). This runs the
``concurrent`` workload of ``bench_perdure.py`` (in this process, or with
``--processes P`` in P ``perdure worker`` processes) on a fresh file while a
reader holds a snapshot from before the first workflow, so no checkpoint can
reset the WAL and every frame written stays in it. Then each frame is read:
its page's type and the number of columns in its first record name the
B-tree it belonged to when written (the tables and indexes of that shape;
the one that owns the page at the end, per ``dbstat``, when its shape
matches: a page freed by one table and reused by another is counted for the
one that wrote it). Interior pages carry no record: they go to their owner
at the end.

    python benchmarks/walpages.py                    # one process, 5,000 workflows
    python benchmarks/walpages.py --processes 2 -n 2000
    python benchmarks/walpages.py --sequential -n 200   # one workflow at a time

Session 17 found with it that the event table, clustered by run, cost 1.79
of 1.91 pages per step (schema 7 made it 0.84 in all).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sqlite3
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_perdure as bench

import perdure

TABLE_LEAF, INDEX_LEAF, TABLE_INTERIOR, INDEX_INTERIOR = 13, 10, 5, 2


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    for k in range(8):
        byte = data[i + k]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i + k + 1
    return (value << 8) | data[i + 8], i + 9


def page_shape(page: bytes, pgno: int) -> tuple[str, int | None]:
    """("table" | "index" | "interior table" | "interior index" | "empty",
    the number of columns of its first record, for a leaf)."""
    header = 100 if pgno == 1 else 0
    kind = page[header]
    if kind == TABLE_INTERIOR:
        return "interior table", None
    if kind == INDEX_INTERIOR:
        return "interior index", None
    if kind not in (TABLE_LEAF, INDEX_LEAF) or struct.unpack_from(">H", page, header + 3)[0] == 0:
        return "empty", None
    i = struct.unpack_from(">H", page, header + 8)[0]  # the first cell
    _, i = _varint(page, i)  # its payload's size
    if kind == TABLE_LEAF:
        _, i = _varint(page, i)  # its rowid
    size, j = _varint(page, i)  # the record header's size, then one serial type per column
    columns = 0
    while j < i + size:
        _, j = _varint(page, j)
        columns += 1
    return ("table" if kind == TABLE_LEAF else "index"), columns


def shapes(db: sqlite3.Connection) -> dict[str, tuple[str, int]]:
    """Every B-tree's leaf shape: a table's columns; an index's, plus the rowid."""
    known: dict[str, tuple[str, int]] = {}
    for kind, name in db.execute("SELECT type, name FROM sqlite_schema WHERE rootpage > 0"):
        if kind == "table":
            known[name] = ("table", len(db.execute(f'PRAGMA table_info("{name}")').fetchall()))
        else:
            known[name] = ("index", len(db.execute(f'PRAGMA index_info("{name}")').fetchall()) + 1)
    return known


def attribute(wal: bytes, db: sqlite3.Connection) -> tuple[collections.Counter[str], int]:
    """Frames per B-tree, and the number of commits, in the WAL ``wal``."""
    page_size = struct.unpack_from(">I", wal, 8)[0]
    owner = dict((pgno, name) for name, pgno in db.execute("SELECT name, pageno FROM dbstat"))
    known = shapes(db)
    by_shape: dict[tuple[str, int], list[str]] = collections.defaultdict(list)
    for name, shape in known.items():
        by_shape[shape].append(name)
    counts: collections.Counter[str] = collections.Counter()
    commits = 0
    offset = 32  # the WAL header
    while offset + 24 + page_size <= len(wal):
        pgno, size_after = struct.unpack_from(">II", wal, offset)
        page = wal[offset + 24 : offset + 24 + page_size]
        offset += 24 + page_size
        commits += size_after != 0
        kind, columns = page_shape(page, pgno)
        end_owner = owner.get(pgno, "?")
        if columns is None:
            counts[end_owner if kind.startswith("interior") else kind] += 1
        elif known.get(end_owner) == (kind, columns):
            counts[end_owner] += 1
        else:
            counts[" or ".join(by_shape.get((kind, columns), [f"? {kind} of {columns}"]))] += 1
    return counts, commits


async def run(n: int, processes: int, folder: str, sequential: bool = False) -> dict[str, Any]:
    url = bench.fresh_url("sqlite", "walpages")
    path = url[len("sqlite:///") :]
    client = await perdure.Client.connect(url)  # creates the schema
    await client.close()
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM runs").fetchone()  # the snapshot that pins the WAL
    try:
        if sequential:
            result = await bench.sequential(url, n, 10)
        elif processes:
            result = await bench.concurrent_processes(url, n, 10, processes)
        else:
            result = await bench.concurrent(url, n, 10)
        # Copies taken while the snapshot still holds: the last close would
        # checkpoint the WAL away.
        shutil.copy(path, f"{folder}/copy.db")
        shutil.copy(path + "-wal", f"{folder}/copy.db-wal")
        shutil.copy(path + "-wal", f"{folder}/frames.wal")
    finally:
        reader.execute("COMMIT")
        reader.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="workflows of 10 steps")
    parser.add_argument("--processes", type=int, default=0, help="perdure worker processes")
    parser.add_argument(
        "--sequential", action="store_true", help="the sequential workload instead (after 5)"
    )
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="perdure-walpages-")
    result = asyncio.run(run(args.n, args.processes, folder, args.sequential))
    wal = Path(f"{folder}/frames.wal").read_bytes()
    db = sqlite3.connect(f"{folder}/copy.db")  # (reads the copied WAL as its own)
    counts, commits = attribute(wal, db)
    db.close()
    shutil.rmtree(folder)
    steps = (args.n + (5 if args.sequential else 0)) * 10  # (sequential warms up with 5)
    frames = sum(counts.values())
    print(
        f"{result['steps_per_s']:.0f} steps/s; {frames} frames in {commits} commits: "
        f"{frames / steps:.3f} pages per step, {frames / max(commits, 1):.1f} per commit"
    )
    for name, count in counts.most_common():
        print(f"  {name:48s} {count:8d}  {count / steps:.3f} per step")


if __name__ == "__main__":
    main()
