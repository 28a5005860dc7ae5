"""The surface tests' ``perdure`` commands, forked from a process that has
perdure imported (cli_forkserver.py), say and exit exactly as fresh
interpreters do: the same status, stdout and stderr for a success, a usage
error, a missing database, an unknown command and an environment variable;
a command past its timeout is killed and raises as ``subprocess.run`` does.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import surface_helpers
from surface_helpers import ENV


def both_ways(
    args: tuple[str, ...], env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    environment = {**ENV, **(env or {})}
    [executed] = surface_helpers._executed([args], environment, 30)
    forked = surface_helpers.cli(*args, env=env)
    return executed, forked


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("activity", "reset", "--help"),
        ("start", "x", "--input", "{bad"),  # (no such option: exit 2)
        ("schedule", "nope"),  # (no such command: exit 2)
        ("list", "--db", "sqlite:////nonexistent/perdure.db"),  # (exit 4)
        ("activity", "unpause", "-w", "x", "-a", "1", "--jitter", "soon"),  # (exit 2)
    ],
)
def test_a_forked_command_says_and_exits_as_a_fresh_one(args: tuple[str, ...]) -> None:
    executed, forked = both_ways(args)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        executed.returncode,
        executed.stdout,
        executed.stderr,
    )


def test_a_commands_environment_is_its_own(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert surface_helpers.cli("migrate", "--db", db).returncode == 0
    executed, forked = both_ways(("list", "--json"), env={"PERDURE_DB": db})
    assert (forked.returncode, forked.stdout) == (executed.returncode, executed.stdout)
    assert forked.returncode == 0 and json.loads(forked.stdout)["items"] == []


def test_a_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert surface_helpers.cli("migrate", "--db", db).returncode == 0
    started = surface_helpers.cli("start", "waits", "--id", "w-1", "--db", db)
    assert started.returncode == 0, started.stderr  # (no worker: it never ends)
    with pytest.raises(subprocess.TimeoutExpired):
        surface_helpers.cli("result", "w-1", "--wait", "--db", db, timeout=0.5)
    assert surface_helpers.cli("list", "--db", db).returncode == 0  # (the server goes on)
