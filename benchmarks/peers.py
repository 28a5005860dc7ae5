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


def _rounded(results: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """The sequential and concurrent results, tagged with their round (run.py)."""
    return [
        {**r, "round": index} if r.get("mode") in ("sequential", "concurrent") else r
        for r in results
    ]


def dbos_dbs(pg: str) -> list[str]:
    return ["sqlite"] + ([dbos_pg_url(pg)] if pg else [])


def dbos_round(index: int, quick: bool, pg: str) -> list[dict[str, Any]]:
    python = dbos_python()
    if python is None:
        return []
    script = str(HERE / "peer_dbos.py")
    results: list[dict[str, Any]] = []
    for db in dbos_dbs(pg):
        # DBOS is a process-wide singleton: one fresh process per measurement.
        for args in (
            ["sequential", "-n", "50" if quick else "200"],
            ["concurrent", "-n", "200" if quick else "500"],
        ):
            results += run_lines([str(python), script, *args, "--db", db])
    return _rounded(results, index)


def dbos_rest(quick: bool, pg: str) -> list[dict[str, Any]]:
    python = dbos_python()
    if python is None:
        return []
    script = str(HERE / "peer_dbos.py")
    results: list[dict[str, Any]] = []
    for db in dbos_dbs(pg):
        for args in (["sleep", "-n", "200" if quick else "1000"], ["recovery"]):
            results += run_lines([str(python), script, *args, "--db", db])
    return results


_restate_missing = False


def restate_round(index: int, quick: bool) -> list[dict[str, Any]]:
    """A fresh server per round (sequential, concurrent); recovery and the
    sleepers (left sleeping, so last) in the first one."""
    global _restate_missing
    if _restate_missing:
        return []  # not available (see the note): do not try again
    modes = [f"sequential={50 if quick else 200}", f"concurrent={200 if quick else 500}"]
    if index == 0:
        modes += ["recovery", f"sleep={200 if quick else 1000}"]
        modes += [] if quick else ["--suspend"]
    lines = run_lines([sys.executable, str(HERE / "peer_restate.py"), *modes])
    _restate_missing = not lines
    return _rounded(lines, index)


def peer_round(index: int, quick: bool, pg: str = "") -> list[dict[str, Any]]:
    """Round ``index`` of the modes compared with perdure's (see run.py)."""
    return dbos_round(index, quick, pg) + restate_round(index, quick)


def peer_rest(quick: bool, pg: str = "") -> list[dict[str, Any]]:
    """The peers' other measurements, once each (Restate's are in its first round)."""
    return dbos_rest(quick, pg)
