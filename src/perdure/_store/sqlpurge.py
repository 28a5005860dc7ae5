"""Deleting closed runs (``Client.delete_closed_runs``): a batch of runs
that closed before a time, oldest first, with every row that is theirs —
the history, the streams, the search attributes' index — in one
transaction. A closed run whose child is still running is kept: the child
reports its end to it. Rows of its own a closed run no longer has (its
tasks, timers and inbox were deleted when it closed) are not looked for.
Imports the row helpers.
"""

from __future__ import annotations

from perdure._store.sqlrows import Tx

__all__ = ["delete_closed"]

_OLDEST_CLOSED = (
    "SELECT id, run_id FROM runs WHERE closed_at IS NOT NULL AND closed_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM runs AS child"
    " WHERE child.parent_run_id = runs.run_id AND child.status = 'running')"
    " ORDER BY id LIMIT ?"
)
_BY_RUN_ID = (
    "DELETE FROM events WHERE run_id = ?",
    "DELETE FROM streams WHERE run_id = ?",
    "DELETE FROM stream_heads WHERE run_id = ?",
)


async def delete_closed(tx: Tx, closed_before: float, limit: int) -> int:
    """Delete at most ``limit`` runs closed before ``closed_before`` (epoch
    seconds), and their rows; how many were deleted."""
    found = await tx.all(_OLDEST_CLOSED, (closed_before, limit))
    if not found:
        return 0
    rows, run_ids = [(row,) for row, _ in found], [(run_id,) for _, run_id in found]
    for sql in _BY_RUN_ID:
        await tx.executemany(sql, run_ids)
    await tx.executemany("DELETE FROM run_attributes WHERE run_row = ?", rows)
    await tx.executemany("DELETE FROM runs WHERE id = ?", rows)
    return len(found)
