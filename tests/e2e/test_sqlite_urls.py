"""A SQLite URL's path is percent-decoded, as a URL's is: a folder with a
space, a file name with "?" or "%" in it can be named (``%3F`` is a "?" of
the path, where a bare "?" begins the URL's parameters)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import perdure
from perdure._store import sqlite_path

PERDURE = [sys.executable, "-m", "perdure"]


@pytest.mark.parametrize(
    "url, path",
    [
        ("sqlite:////srv/app/perdure.db", "/srv/app/perdure.db"),
        ("sqlite:///rel/perdure.db?transactions=thread", "rel/perdure.db"),
        ("sqlite:////srv/my%20app/perdure.db", "/srv/my app/perdure.db"),
        ("sqlite:////srv/my app/perdure.db", "/srv/my app/perdure.db"),
        ("sqlite:////srv/what%3F.db?transactions=loop", "/srv/what?.db"),
        ("sqlite:////srv/100%25.db", "/srv/100%.db"),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_the_path_is_decoded(url: str, path: str) -> None:
    assert sqlite_path(url) == path


async def test_a_client_opens_the_decoded_path(tmp_path: Path) -> None:
    folder = tmp_path / "my app"
    folder.mkdir()
    url = f"sqlite:///{tmp_path}/my%20app/runs%3F%25.db?transactions=thread"
    client = await perdure.Client.connect(url)
    try:
        await client.list()
    finally:
        await client.close()
    assert [p.name for p in folder.iterdir() if p.suffix == ".db"] == ["runs?%.db"]


def test_the_cli_makes_and_finds_the_decoded_path(tmp_path: Path) -> None:
    folder = tmp_path / "my app"
    folder.mkdir()
    url = f"sqlite:///{tmp_path}/my%20app/cli%3F.db"
    missing = subprocess.run([*PERDURE, "list", "--db", url], capture_output=True, text=True)
    assert missing.returncode == 4 and "cli?.db" in missing.stderr, missing.stderr
    made = subprocess.run([*PERDURE, "migrate", "--db", url], capture_output=True, text=True)
    assert made.returncode == 0 and "created" in made.stdout.lower(), made.stdout + made.stderr
    assert (folder / "cli?.db").exists()
    listed = subprocess.run([*PERDURE, "list", "--db", url], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
