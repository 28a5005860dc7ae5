"""For the examples' tests: run an example the way a newcomer does
(``python -m examples.NAME --folder DIR ...``) and return what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_story(
    name: str,
    folder: Path,
    *args: str,
    clear_env: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 90,
) -> str:
    """Run ``python -m examples.<name> --folder <folder> *args`` from the
    repository root, without ``PERDURE_*`` variables (nor those starting with
    ``clear_env``) from the calling environment; fail with its output unless
    it exits 0. Returns its standard output."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PERDURE_", *clear_env))
    }
    done = subprocess.run(
        [sys.executable, "-m", f"examples.{name}", "--folder", str(folder), *args],
        cwd=REPO_ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
