"""Peer engines for ``run.py --peers``: set-up on demand, then the same workloads.

DBOS Transact 3.4.0 runs from PyPI in its own virtual environment under
``benchmarks/.peers/dbos-venv`` (created here), on SQLite and on PostgreSQL
(database ``dbos_bench`` on run.py's --pg server, created when missing).
Restate (server 1.7.12 from the npm registry, Python SDK 1.3.0) is set up by
``peer_restate.py`` itself under ``benchmarks/.peers/``. Nothing is installed
system-wide. A peer that cannot be set up is skipped with a note in NOTES,
which run.py adds to the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
DBOS_VERSION = "3.4.0"
NOTES: list[str] = []


def note(msg: str) -> None:
    print(f"  note: {msg}", flush=True)
    NOTES.append(msg)


def run_lines(cmd: list[str], timeout: float = 1800) -> list[dict[str, Any]]:
    """Run one peer process; every JSON line it printed (also when it failed)."""
    print("$", " ".join(cmd), flush=True)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        stdout, stderr, code = out.stdout, out.stderr, out.returncode
    except subprocess.TimeoutExpired as exc:
        stdout, stderr, code = str(exc.stdout or ""), str(exc.stderr or ""), -1
    results = [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]
    for r in results:
        print("  ", r, flush=True)
    if code != 0:
        last = (stderr.strip().splitlines() or ["(no output)"])[-1]
        note(f"{Path(cmd[1]).name} {' '.join(cmd[2:])} failed (exit {code}): {last}")
        print(stderr[-3000:], flush=True)
    return results


def dbos_python() -> Path | None:
    venv = PEERS / "dbos-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists():
        PEERS.mkdir(exist_ok=True)
        print(f"setting up DBOS {DBOS_VERSION} in {venv}", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(python), "-m", "pip", "install", "-q", f"dbos=={DBOS_VERSION}"]
            subprocess.run(pip, check=True)
        except subprocess.CalledProcessError as exc:
            note(f"DBOS skipped: could not set it up ({exc})")
            return None
        stamp.touch()
    return python


def dbos_pg_url(pg: str) -> str:
    """run.py's --pg URL with the database swapped for dbos_bench."""
    parts = urlsplit(pg)
    return urlunsplit((parts.scheme, parts.netloc, "/dbos_bench", "", ""))


def run_dbos(repeat: int, quick: bool, pg: str) -> list[dict[str, Any]]:
    python = dbos_python()
    if python is None:
        return []
    script = str(HERE / "peer_dbos.py")
    results: list[dict[str, Any]] = []
    for db in ["sqlite"] + ([dbos_pg_url(pg)] if pg else []):
        # DBOS is a process-wide singleton: one fresh process per measurement.
        for _ in range(repeat):
            for args in (
                ["sequential", "-n", "50" if quick else "200"],
                ["concurrent", "-n", "200" if quick else "500"],
            ):
                results += run_lines([str(python), script, *args, "--db", db])
        for args in (["sleep", "-n", "200" if quick else "1000"], ["recovery"]):
            results += run_lines([str(python), script, *args, "--db", db])
    return results


def run_restate(repeat: int, quick: bool) -> list[dict[str, Any]]:
    """One fresh server per repeat (sequential, concurrent); recovery and the
    sleepers (left sleeping, so last) in the first one."""
    script = str(HERE / "peer_restate.py")
    results: list[dict[str, Any]] = []
    for i in range(repeat):
        modes = [f"sequential={50 if quick else 200}", f"concurrent={200 if quick else 500}"]
        if i == 0:
            modes += ["recovery", f"sleep={200 if quick else 1000}"]
            modes += [] if quick else ["--suspend"]
        lines = run_lines([sys.executable, script, *modes])
        results += lines
        if not lines:
            break  # not available (see the note): do not try again
    return results


def run_peers(repeat: int, quick: bool, pg: str = "") -> list[dict[str, Any]]:
    return run_dbos(repeat, quick, pg) + run_restate(repeat, quick)
