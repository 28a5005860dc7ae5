"""Instructions per workflow step, counted by valgrind: a measure of CPU work
that the shared machine's noise does not move (timings here swing by a third
from one run to the next; instruction counts by a few percent).

Runs one bench_perdure.py mode under ``valgrind --tool=callgrind`` at two
sizes and divides the difference in instructions by the difference in
steps, so start-up and imports cancel out. Every thread counts: the event
loop's and the SQLite store's, SQLite's own C code included; the kernel's
work (the fsyncs) does not. valgrind runs threads one at a time, so group
commits hold fewer writes than in a real run.

Usage: python benchmarks/instructions.py [MODE] [--small N] [--large N] [--db URL] [-k K]
(for example ``concurrent --small 100 --large 300``). ``-k`` sets the steps
per workflow (10 by default); the difference between ``-k 10`` and ``-k 1``
per workflow separates a step's cost from a workflow's fixed cost (its
start, its closing turn, its awaited result). Needs valgrind
(Debian: ``apt-get install valgrind``). Compare two versions of the code
by pointing PYTHONPATH at each tree. Run by hand; never a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def instructions(mode: str, n: int, db: str, k: int) -> int:
    """Instructions valgrind counted for one whole run of ``n`` workflows."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        os.path.join(HERE, "bench_perdure.py"),
        mode,
        "-n",
        str(n),
        "--db",
        db,
        "-k",
        str(k),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind reported no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="concurrent")
    parser.add_argument("--small", type=int, default=100, help="workflows in the first run")
    parser.add_argument("--large", type=int, default=300, help="workflows in the second run")
    parser.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("-k", type=int, default=10, help="steps per workflow")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.large <= args.small:
        raise SystemExit("--large must be more workflows than --small")
    if args.k < 1:
        raise SystemExit("-k must be at least 1")
    small = instructions(args.mode, args.small, args.db, args.k)
    large = instructions(args.mode, args.large, args.db, args.k)
    workflows = args.large - args.small
    print(
        f"{args.mode} on {args.db}, {args.k} steps per workflow:"
        f" {round((large - small) / (workflows * args.k)):,} instructions per step,"
        f" {round((large - small) / workflows):,} per workflow"
    )


if __name__ == "__main__":
    main()
