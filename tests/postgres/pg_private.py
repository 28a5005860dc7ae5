"""A private PostgreSQL server for tests that restart it: ``initdb`` + ``pg_ctl``
in a temporary folder, on a free port, never the shared service.

``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` OS user (``runuser``), in a folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateServer:
    """One throw-away cluster. ``start``/``restart``/``stop`` wrap ``pg_ctl``."""

    def __init__(self) -> None:
        self.as_user: str | None = "postgres" if os.geteuid() == 0 else None
        # Not under pytest's tmp_path: its folders are private to root, and the
        # server runs as another user.
        self.root = Path(tempfile.mkdtemp(prefix="perdure-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if self.as_user is not None:
            entry = pwd.getpwnam(self.as_user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def _run(self, *cmd: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        done = subprocess.run(
            [*prefix, *cmd], capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", *extra,
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """Stop (fast: in-flight transactions are rolled back, sessions cut) and start."""
        self._pg_ctl("restart", "-m", "fast")

    def begin_smart_stop(self) -> None:
        """A smart shutdown, not waited for: the server refuses new
        connections ("the database system is shutting down") until its last
        session ends, then stops."""
        self._pg_ctl("stop", "-m", "smart", "-W")

    def wait_stopped(self, timeout: float = 60) -> None:
        """Wait until the server has gone (its postmaster.pid is removed last)."""
        deadline = time.monotonic() + timeout
        while (self.data / "postmaster.pid").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not stop within {timeout}s:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        try:
            self._pg_ctl("stop", "-m", "immediate")
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""


def require_tools() -> None:
    """Skip (or fail under CI=true) when initdb/pg_ctl are not available."""
    missing = [tool for tool in ("initdb", "pg_ctl") if shutil.which(tool) is None]
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser")
    if missing:
        message = f"a private PostgreSQL server needs {', '.join(missing)} on PATH"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
