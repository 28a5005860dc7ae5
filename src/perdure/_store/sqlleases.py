"""The SQL of leases, shared by the SQL backends (``SqlStore`` runs each
function in one transaction): renewing a worker's leases, an activity's
heartbeat, and a restarted worker taking its predecessor's leases back.

A lease is a task row's ``visible_at`` while its ``lease_token`` is set; each
statement here matches the token, so a lease that moved on is never touched.
Imports the row helpers only.
"""

from __future__ import annotations

from typing import Any

from perdure._store.sqlrows import Dialect, Tx, dumps

_CHUNK = 400  # (id, token) pairs per statement: two parameters each


async def renew(tx: Tx, d: Dialect, leases: list[tuple[int, str]], until: float) -> list[int]:
    """Extend ``(task id, token)`` leases to ``until``; return the ids of
    those no longer ours. A few statements for all the leases, and none of
    them waits: a row another transaction holds (a turn committing, an
    activity completing) is skipped (PostgreSQL) -- it is ours while its token
    matches, and the next renewal comes after a third of the lease."""
    renewed: set[int] = set()
    for i in range(0, len(leases), _CHUNK):
        chunk = leases[i : i + _CHUNK]
        pairs = ", ".join(["(?, ?)"] * len(chunk))
        flat = [value for held in chunk for value in held]
        for row in await tx.all(
            "UPDATE tasks SET visible_at = ? WHERE"
            f" {d.picked('id', f'FROM tasks WHERE (id, lease_token) IN (VALUES {pairs})')}"
            " RETURNING id",
            (until, *flat),
        ):
            renewed.add(row[0])
        skipped = [held for held in chunk if held[0] not in renewed]
        if skipped and d.skip_locked:
            pairs = ", ".join(["(?, ?)"] * len(skipped))
            for row in await tx.all(
                f"SELECT id FROM tasks WHERE (id, lease_token) IN (VALUES {pairs})",
                [value for held in skipped for value in held],
            ):
                renewed.add(row[0])  # still ours, only busy
    return [task_id for task_id, _ in leases if task_id not in renewed]


async def heartbeat(tx: Tx, task_id: int, token: str, details: Any, until: float) -> str:
    """Record an activity's heartbeat and extend its lease: "ok", "cancelled"
    (the workflow asked it to stop) or "lost" (the lease is not ours)."""
    row = await tx.one(
        "UPDATE tasks SET visible_at = ?, heartbeat = ? WHERE id = ? AND lease_token = ?"
        " RETURNING cancel_requested",
        (until, dumps(details), task_id, token),
    )
    if row is None:
        return "lost"
    return "cancelled" if row[0] else "ok"


async def reclaim(tx: Tx, d: Dialect, owner: str, now: float) -> int:
    """Make ``owner``'s live leases due now (a worker restarting under its
    identity takes them back at once); return how many."""
    live = d.picked(
        "id", "FROM tasks WHERE lease_owner = ? AND lease_token IS NOT NULL AND visible_at > ?"
    )
    return await tx.execute(
        f"UPDATE tasks SET visible_at = ? WHERE {live}",
        (now, owner, now),
    )
