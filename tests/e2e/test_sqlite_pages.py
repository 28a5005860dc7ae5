"""What a durable step writes to SQLite, counted in WAL pages: every page a
commit touches is written (and checksummed, and synced) again, so a step must
touch only the pages it has to. Counts, not times: the WAL says exactly which
pages each commit wrote."""

from __future__ import annotations

import sqlite3
import struct
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow
from perdure._store.base import new_run_id

pytestmark = pytest.mark.sqlite_only

WAL_HEADER, FRAME_HEADER = 32, 24


@activity.defn
async def step(i: int) -> dict[str, Any]:
    return {"i": i, "ok": True}


@workflow.defn
async def ten_steps() -> int:
    for i in range(10):
        await step(i)
    return 10


def wal_commits(db: Path) -> list[list[int]]:
    """The page numbers each commit in ``db``'s WAL wrote, commit by commit."""
    data = (db.parent / (db.name + "-wal")).read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    commits: list[list[int]] = []
    pages: list[int] = []
    offset = WAL_HEADER
    while offset + FRAME_HEADER + page_size <= len(data):
        page, size_after_commit = struct.unpack(">II", data[offset : offset + 8])
        pages.append(page)
        if size_after_commit:
            commits.append(pages)
            pages = []
        offset += FRAME_HEADER + page_size
    return commits


async def test_a_step_writes_few_pages_and_leaves_the_status_indexes_alone(
    client: perdure.Client, db_url: str
) -> None:
    db = Path(db_url.removeprefix("sqlite:///"))
    store: Any = client.store

    async def no_checkpoints() -> None:  # runs on the store's own thread
        store._conn.execute("PRAGMA wal_autocheckpoint = 0")
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async with fast_worker(client, [ten_steps], [step]):
        assert await client.execute(ten_steps) == 10  # tables and indexes exist
        await store._on_thread(no_checkpoints())
        for _ in range(5):
            assert await client.execute(ten_steps) == 10
    commits = wal_commits(db)
    assert len(commits) >= 5 * 11  # a start with its first turn, and 10 steps each

    with closing(sqlite3.connect(db)) as conn, conn:
        owner = {page: name for name, page in conn.execute("SELECT name, pageno FROM dbstat")}
    status_indexes = {"runs_by_status", "runs_by_parent", "runs_one_open_per_workflow_id"}
    touched = [sum(owner.get(p) in status_indexes for p in pages) for pages in commits]
    # A run's status changes twice (start, end): a turn that leaves it open
    # must not rewrite the indexes that hold it (it did once, via SET status).
    assert sum(1 for n in touched if n) <= 2 * 5 + 2
    # runs_by_parent holds children only: a top-level run never writes it.
    parented = [pages for pages in commits if any(owner.get(p) == "runs_by_parent" for p in pages)]
    assert not parented, f"{len(parented)} commits wrote runs_by_parent"
    per_commit = sum(len(pages) for pages in commits) / len(commits)
    assert per_commit < 10, f"{per_commit:.1f} pages per commit"
    # A step's activity takes over the task row of the one before it (an
    # UPDATE): only a start inserts a run and a task, and so moves the
    # AUTOINCREMENT counters that sqlite_sequence keeps.
    counters = sum(1 for pages in commits if any(owner.get(p) == "sqlite_sequence" for p in pages))
    assert counters <= 5, f"{counters} of {len(commits)} commits wrote sqlite_sequence"
    # And that UPDATE changes no indexed column: not the run or queue (the
    # same), not the activity's ref (in no index), not the lease expiry (kept
    # while most of a lease is left: TurnCommit.lease_kept). So only a run's
    # start (its first activity inserted) and end (its task deleted) touch the
    # task indexes; the nine steps between them do not.
    task_indexes = {"tasks_due", "tasks_activities_by_run"}
    touched = [sum(owner.get(p) in task_indexes for p in pages) for pages in commits]
    assert sum(1 for n in touched if n) <= 2 * 5 + 2, f"{touched}"


def test_new_run_ids_are_version_7_uuids_in_time_order() -> None:
    ids = [new_run_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    # The first 48 bits are milliseconds: never decreasing, and about now.
    stamps = [u.int >> 80 for u in parsed]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] / 1000 - time.time()) < 60
