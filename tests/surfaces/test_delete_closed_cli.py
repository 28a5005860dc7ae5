"""``perdure delete-closed --older-than SPAN``: the retention job from a
shell (or a cron entry) deletes closed runs past the age, says how many,
and keeps the open ones; a bad span is exit 2 with nothing deleted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import surface_workflows as wf
from surface_helpers import cli, migrated_sqlite

import perdure


async def two_runs(db: str) -> None:
    """One closed run (``double``) and one open (``approval`` waits for a signal)."""
    async with await perdure.Client.connect(db) as client:
        activities = [wf.make_greeting, wf.flaky_step]
        async with perdure.Worker(client, [wf.double, wf.approval], activities, poll_interval=0.02):
            assert await client.execute(wf.double, 4, id="closed-1", timeout=10) == 8
            await client.start(wf.approval, "ada", id="open-1")


def test_delete_closed_from_the_command_line(tmp_path: Path) -> None:
    db = migrated_sqlite(tmp_path)
    asyncio.run(two_runs(db))
    bad = cli("delete-closed", "--older-than", "5x", "--db", db)
    assert bad.returncode == 2 and "'5x' is not a duration" in bad.stderr, bad.stderr
    kept = cli("delete-closed", "--older-than", "1d", "--db", db, "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout) == {"deleted": 0, "older_than_seconds": 86400.0}
    done = cli("delete-closed", "--older-than", "0s", "--db", db)
    assert done.returncode == 0, done.stderr
    assert "Deleted 1 closed run(s) older than 0s" in done.stdout
    listed = json.loads(cli("list", "--json", "--db", db).stdout)
    assert [r["id"] for r in listed["items"]] == ["open-1"]
