"""Where a PostgreSQL run's CPU goes: the server's processes and the machine.

Runs a command (a benchmark) and, while it runs, reads the CPU time of every
PostgreSQL process on this machine from ``/proc`` (a backend's time is kept
even after it exits, from its last reading), and the machine's busy time from
``/proc/stat`` around it. Prints the command's last output line, the
machine's busy seconds, and the seconds of each kind of PostgreSQL process
(``backend`` for client connections; ``walwriter``, ``checkpointer``,
``autovacuum worker``...). Divide by the run's steps for a step's share of
the server; compare two versions of the code by alternating runs.

Linux only (``/proc``), and only a server on this machine.

Usage: python benchmarks/pgcpu.py COMMAND... (for example
``python benchmarks/pgcpu.py python benchmarks/bench_perdure.py concurrent
-n 3000 --db postgresql://postgres@127.0.0.1:5432/test``). Run by hand;
never a test.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.1  # seconds between readings of the server's processes


def postgres_processes() -> dict[str, tuple[str, float]]:
    """pid -> (command line, CPU seconds so far) of every PostgreSQL process."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode().strip()
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # (gone meanwhile)
        if not command.startswith("postgres"):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found[pid] = (command, (int(fields[11]) + int(fields[12])) / TICK)
    return found


def kind(command: str) -> str:
    """A process's kind from its title ("postgres: 15/main: walwriter")."""
    if "127.0.0.1" in command or "[local]" in command or "::1" in command:
        return "backend"
    titled = re.match(r"postgres: \S+ (.+)", command)
    return titled.group(1).strip() if titled else command


def busy_ticks() -> int:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values) - values[3] - values[4]  # all but idle and iowait


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    before = postgres_processes()
    busy0 = busy_ticks()
    run = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
    last = dict(before)
    while run.poll() is None:
        last.update(postgres_processes())
        time.sleep(POLL)
    output = run.stdout.read() if run.stdout else ""
    busy = (busy_ticks() - busy0) / TICK
    last.update(postgres_processes())
    spent: collections.Counter[str] = collections.Counter()
    for pid, (command, seconds) in last.items():
        spent[kind(command)] += seconds - before.get(pid, (command, 0.0))[1]
    lines = output.strip().splitlines()
    print(lines[-1] if lines else "(no output)")
    print(f"machine busy s: {busy:.2f}")
    for name, seconds in spent.most_common():
        print(f"  {name:30s} {seconds:.2f}")
    if run.returncode:
        raise SystemExit(run.returncode)


if __name__ == "__main__":
    main()
