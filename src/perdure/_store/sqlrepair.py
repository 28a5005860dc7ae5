"""The workers' safety net for a run left with events in its inbox and no
workflow task to read them (Store.repair_stranded). No write of the store
leaves a run so: every inbox row is written with its run's workflow task,
under the run's row lock, and a turn drops that task only when it finds the
inbox empty under the same lock. A run found so anyway is a bug (session
59's chaos run found one, an outcome written without the lock): the run
would wait for ever; here it gets its task again, and the worker says so
loudly. Imports the row helpers.
"""

from __future__ import annotations

from perdure._store import sqlrows as rows
from perdure._store.sqlrows import Dialect, Tx

# The runs with an inbox row at least as old as the bound and no workflow
# task. (The inbox holds only what the next turns will read: a scan of it
# is cheap, and this runs about once a minute per worker.)
STRANDED = (
    "SELECT DISTINCT i.run_id FROM inbox AS i WHERE i.created_at <= ?"
    " AND NOT EXISTS (SELECT 1 FROM tasks AS t WHERE t.kind = 'workflow'"
    " AND t.run_id = i.run_id) ORDER BY i.run_id LIMIT ?"
)


async def stranded(tx: Tx, older_than: float, limit: int) -> list[str]:
    """The run ids that STRANDED finds (read without locks: see repair)."""
    return [row[0] for row in await tx.all(STRANDED, (older_than, limit))]


async def repair(tx: Tx, d: Dialect, run_id: str, now: float) -> bool:
    """Give ``run_id`` its workflow task if, its row locked, it is open, has
    an inbox row and still has no workflow task (a turn may have come
    between the search and this); whether it did."""
    run = await rows.run_by_id(tx, d, run_id)
    if run is None or not run.is_open:
        return False
    if await tx.one("SELECT 1 FROM inbox WHERE run_id = ? LIMIT 1", (run_id,)) is None:
        return False
    held = "SELECT 1 FROM tasks WHERE kind = 'workflow' AND run_id = ?"
    if await tx.one(held, (run_id,)) is not None:
        return False
    await tx.send(
        rows.INSERT_WORKFLOW_TASK,
        (run.turn_queue, run_id, now, now, run.priority, run.fairness_key),
    )
    return True
