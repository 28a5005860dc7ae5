"""Peer engines for ``run.py --peers``: set-up on demand, then the same workloads.

DBOS Transact runs from PyPI in its own virtual environment under
``benchmarks/.peers/`` (created here; nothing is installed system-wide).
Restate needs its server from the npm registry; see ../shared/bench/peers/restate
for the reference set-up — its adapter is not written yet, so it is skipped
with a note in the report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
PG = "postgresql://postgres:postgres@127.0.0.1:5432/dbos_bench"


def dbos_python() -> Path | None:
    venv = PEERS / "dbos-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        PEERS.mkdir(exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "dbos==3.4.0"], check=True)
        except subprocess.CalledProcessError as exc:
            print(f"could not set up DBOS: {exc}")
            return None
    return python


def run_peers(repeat: int, quick: bool) -> list[dict[str, Any]]:
    from run import run

    results: list[dict[str, Any]] = []
    python = dbos_python()
    if python is None:
        return results
    script = str(HERE / "peer_dbos.py")
    for _ in range(repeat):
        for args in (
            ["sequential", "-n", "50" if quick else "200"],
            ["concurrent", "-n", "200" if quick else "500"],
        ):
            r = run([str(python), script, *args, "--db", "sqlite"])
            if r:
                results.append(r)
    r = run([str(python), script, "sleep", "-n", "1000", "--db", "sqlite"])
    if r:
        results.append(r)
    return results
