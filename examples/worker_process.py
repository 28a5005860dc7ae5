"""What the examples' stories share (chat_session, durable_agent,
streaming_answer; order_fulfilment's wait): a ``perdure worker`` of an
example's module in a process of its own (so that the story can SIGKILL it), the
JSON lines an example's activities log, a wait for a condition with a
deadline, and the workers' stop at the end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def spawn_worker(
    module: str,
    url: str,
    log: Path,
    env: dict[str, str],
    lease_timeout: float,
    *options: str,
) -> subprocess.Popen[bytes]:
    """``perdure worker MODULE --db URL`` in a new process (with ``env``
    added to this one's, and the repository on its path), its output to
    ``log``. ``lease_timeout``: how long a killed worker's claims last;
    ``options``: more of the command's options."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "perdure", "worker", module,
        "--db", url, "--lease-timeout", str(lease_timeout), "--poll-interval", "0.05",
        "--log-level", "WARNING", *options,
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env={**os.environ, **env, "PYTHONPATH": path},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """Stop the workers still running as an operator would (SIGTERM: each
    drains and exits), waiting for each up to 30 s."""
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` (none if it does not exist yet)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def wait_for(
    what: str, check: Callable[[], object], deadline: float = 60.0, pause: float = 0.02
) -> None:
    """Until ``check()`` is true; gives up (SystemExit) after ``deadline`` seconds."""
    until = time.monotonic() + deadline
    while not check():
        if time.monotonic() > until:
            raise SystemExit(f"gave up after {deadline:g}s waiting for {what}")
        await asyncio.sleep(pause)
