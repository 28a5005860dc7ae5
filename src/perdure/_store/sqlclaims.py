"""SqlClaims: how a worker's claims lease a queue's due tasks, written once
for every SQL backend and part of SqlStore (sqlstore). A claim takes a
queue's due tasks by priority, then by due time, in one statement; a queue
whose tasks carry fairness keys is claimed key by key (sqlfair); a queue
with limits is claimed in a transaction that counts its room first
(sqlqueues). Imports the history model, the store records and the row
helpers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from perdure import _history as h
from perdure._store import sqlfair, sqlqueues
from perdure._store import sqlleases as leases_sql
from perdure._store import sqlrows as rows
from perdure._store import sqlwake as wake
from perdure._store.base import ActivityTask, WorkflowTask, new_token
from perdure._store.sqlclient import SqlClientSide
from perdure._store.sqlleases import CLAIMED_COLUMNS
from perdure._store.sqlrows import Tx

__all__ = ["PRIORITY_IN", "SqlClaims"]

# Every priority, for a claim's "priority IN (...)" (see _claim).
PRIORITY_IN = f"priority IN ({', '.join(map(str, h.PRIORITIES))})"


def _claim_order(row: tuple[Any, ...]) -> tuple[int, int]:
    return (row[11], row[0])


_HAS_LIMITS = "SELECT 1 FROM queue_limits WHERE queue = ?"


class SqlClaims(SqlClientSide):
    @functools.cached_property
    def _turns(self) -> sqlfair.Turns:
        return sqlfair.Turns()

    async def _claim(
        self,
        tx: Tx,
        kind: str,
        queues: list[str],
        owner: str,
        lease: float,
        limit: int,
        now: float | None = None,
        caps: dict[str, int] | None = None,
        unlimited: bool = False,
        per_key: dict[str, list[sqlqueues.KeyBound]] | None = None,
        limited: bool = False,
    ) -> list[tuple[Any, ...]]:
        # The lease is the new visible_at: an expired lease is claimable again.
        # SQLite serialises writers, so no task goes to two workers; PostgreSQL
        # gets the same from FOR UPDATE SKIP LOCKED in the subquery. An activity
        # row that still has a lease token is one whose lease expired: its
        # attempt was lost, and is recorded as such in the same statement.
        # ``caps``: at most so many of a queue's tasks (its limits' room);
        # ``unlimited``: none of a queue that has limits; ``per_key``: a
        # queue's limits per key, with its keys' counts (sqlqueues.Gate). A
        # queue whose tasks have fairness keys is claimed key by key
        # (sqlfair); the others' tasks are all of key ''. ``limited``: a
        # claim of queues with limits.
        now = self.clock() if now is None else now
        caps = dict(caps or {})
        per_key = per_key or {}
        token = new_token()
        lost = rows.lost_attempt(self)
        # A workflow task of a run another worker holds (it keeps the run's
        # instance: runs.holder) is left to that worker for HELD_GRACE (base).
        held = kind == "workflow"
        tail = (wake.NOT_HELD if held else "") + (sqlqueues.NOT_LIMITED if unlimited else "")
        given = (now - wake.HELD_GRACE, owner) if held else ()

        # A limited queue's attempts are marked: its claims count them
        # (sqlqueues.gate).
        counted = ", limited = 1" if limited else ""

        async def leased(due: str, picking: list[Any]) -> list[tuple[Any, ...]]:
            return await tx.all(
                f"UPDATE tasks SET visible_at = ?, lease_owner = ?, lease_token = ?{counted},"
                f" attempts = CASE WHEN kind = 'activity' AND lease_token IS NOT NULL"
                f" THEN {lost} ELSE attempts END, attempt_started_at = ?,"
                f" attempt = attempt + 1 WHERE {due}"
                f" RETURNING {CLAIMED_COLUMNS}",
                (now + lease, owner, token, now, *picking),
            )

        fair = self._turns.keyed
        plain = [q for q in queues if (kind, q) not in fair]
        for q in plain:
            for bound in per_key.get(q, ()):  # (its tasks are all of key '')
                caps[q] = min(caps.get(q, limit), max(bound.most - bound.counts.get("", 0), 0))
        claimed = await self._claim_plain(tx, kind, plain, limit, now, caps, tail, given, leased)
        if plain:  # (whether they have keyed tasks: with the commit, no round trip)
            check, params = sqlfair.keyed_check(self.keyed_tasks, kind, plain)
            await tx.later_all(
                check, params, lambda found: fair.update((kind, r[0]) for r in found)
            )
        for q in queues:
            room = min(caps.get(q, limit), limit - len(claimed))
            if (kind, q) not in fair or room <= 0:
                continue
            if unlimited and await tx.one(_HAS_LIMITS, (q,)) is not None:
                continue  # (its tasks are all NOT_LIMITED's: the walks would find none)
            claim = sqlfair.Claim(kind, q, now, tail, given, self, per_key.get(q, ()))

            async def lease_ids(ids: str, picking: list[Any]) -> list[tuple[Any, ...]]:
                return await leased(self.picked("id", f"FROM ({ids}) AS due", locked=True), picking)

            claimed += await sqlfair.claim_fair(tx.all, lease_ids, self._turns, claim, room)
        return claimed

    async def _claim_plain(
        self,
        tx: Tx,
        kind: str,
        queues: list[str],
        limit: int,
        now: float,
        caps: dict[str, int],
        tail: str,
        given: tuple[Any, ...],
        leased: Callable[[str, list[Any]], Coroutine[Any, Any, list[tuple[Any, ...]]]],
    ) -> list[tuple[Any, ...]]:
        """_claim's tasks of ``queues`` that have no fairness keys."""
        if not queues:
            return []
        # The due tasks of each queue by priority, then by due time, read
        # from tasks_due (kind, queue, priority, fairness_key, visible_at) one
        # range per priority, each only as far as its first task not yet due:
        # tasks not due (leased, backing off) never hold back those due of a
        # later priority, and no backlog is sorted. SQLite walks "priority IN
        # (...)" that way, value by value in order; PostgreSQL's planner
        # reads an IN list as a filter on one range, so there each priority
        # is a branch of its own, merged.
        picking: list[Any] = []
        if self.ordered_in:
            one = (
                "SELECT id, priority, visible_at FROM tasks WHERE kind = ? AND queue = ? AND "
                + PRIORITY_IN
                + " AND fairness_key = '' AND visible_at <= ?"
                + tail
                + " ORDER BY priority, visible_at LIMIT ?"
            )
            for q in queues:
                picking += (kind, q, now, *given, caps.get(q, limit))
        else:
            branch = (
                "SELECT id, priority, visible_at FROM (SELECT id, priority, visible_at FROM tasks"
                " WHERE kind = ? AND queue = ? AND priority = ? AND fairness_key = ''"
                " AND visible_at <= ?"
                + tail
                + " ORDER BY visible_at LIMIT ?"
                + self.skip_locked
                + ") AS one"
            )
            branches = " UNION ALL ".join([branch] * len(h.PRIORITIES))
            one = (
                f"SELECT id, priority, visible_at FROM ({branches}) AS queued"
                " ORDER BY priority, visible_at LIMIT ?"
            )
            for q in queues:
                cap = caps.get(q, limit)
                for priority in h.PRIORITIES:
                    picking += (kind, q, priority, now, *given, cap)
                picking.append(cap)
        if len(queues) == 1:
            due = self.picked("id", f"FROM ({one}) AS due", locked=True)
        else:
            # The first of each queue, then the first of those: "queue IN
            # (...)" read and sorted every due task of every queue (one index
            # cannot order two queues), for each claim, however long the
            # backlog.
            union = " UNION ALL ".join([f"SELECT * FROM ({one}) AS capped"] * len(queues))
            due = self.picked(
                "id", f"FROM ({union}) AS due ORDER BY priority, visible_at LIMIT ?", locked=True
            )
            picking.append(limit)
        claimed = await leased(due, picking)
        # (RETURNING follows the table's order: the claim's is by priority,
        # then by age, which the rows' ids follow within a priority.)
        if len(claimed) > 1:
            claimed.sort(key=_claim_order)
        return claimed

    async def claim_workflow_tasks(
        self, queues: list[str], owner: str, lease: float, limit: int
    ) -> list[WorkflowTask]:
        inputs = wake.TurnInputs()

        async def claim(tx: Tx) -> list[tuple[Any, ...]]:
            inputs.clear()
            found = await self._claim(tx, "workflow", queues, owner, lease, limit)
            if found:
                # What each turn reads after the history its worker has cached
                # (see WorkflowTask.turn_input), read back with the commit.
                await inputs.read(tx, self, [r[1] for r in found])
            return found

        found = await self._write(claim)
        return [
            WorkflowTask(
                task_id=r[0], run_id=r[1], token=r[6], attempt=r[3], turn_input=inputs.of(r[1])
            )
            for r in found
        ]

    async def claim_activity_tasks(
        self, queues: list[str], owner: str, lease: float, limit: int, limited: bool = False
    ) -> list[ActivityTask]:
        # The tasks of queues without limits, in one statement; whether any
        # of ``queues`` has limits is read with the commit (no round trip of
        # its own). Those queues' tasks are then claimed in a transaction of
        # their own, which counts what their limits allow first (at once, if
        # the caller expects limits).
        if limited:
            every = sorted(set(queues))
            return await self._write_own(
                lambda tx: self._claim_limited(tx, every, owner, lease, limit)
            )
        found_limited: list[str] = []

        async def claim(tx: Tx) -> list[ActivityTask]:
            found_limited.clear()
            found = await self._claim(tx, "activity", queues, owner, lease, limit, unlimited=True)
            await tx.later_all(
                f"SELECT queue FROM queue_limits WHERE queue IN ({rows.marks(queues)})",
                queues,
                lambda found: found_limited.extend(sorted(r[0] for r in found)),
            )
            return await leases_sql.claimed(tx, found, lease)

        tasks = await self._write(claim)
        if found_limited and len(tasks) < limit:
            left = limit - len(tasks)
            tasks += await self._write_own(
                lambda tx: self._claim_limited(tx, found_limited, owner, lease, left)
            )
        return tasks

    async def _claim_limited(
        self, tx: Tx, queues: list[str], owner: str, lease: float, limit: int
    ) -> list[ActivityTask]:
        """Claim tasks of ``queues`` (sorted), as many as each one's limits
        allow (a queue without limits: up to ``limit``)."""
        # On PostgreSQL the limits rows are locked (in this order) first, and
        # the claim's time read once they are held: an attempt's recorded
        # start is then never before the claims it waited for.
        found = [(q, await sqlqueues.read_limits(tx, q, self.for_update)) for q in queues]
        counted = self.clock()
        limited = {}
        per_key = {}
        for queue, limits in found:
            if limits is not None:  # (else removed meanwhile: no cap)
                g = await sqlqueues.gate(tx, queue, limits, counted, limit)
                limited[queue] = (limits, min(g.room, limit))
                per_key[queue] = g.bounds(limits)
        # The starts' time is read after the count: an attempt counted as
        # ended had its outcome committed before it, so each start is after
        # every end that made room for it (the count at the earlier time
        # holds: no other claim of these queues runs meanwhile).
        now = self.clock()
        caps = {q: room for q, (_, room) in limited.items()}
        open_queues = [q for q in queues if caps.get(q, limit) > 0]
        claimed = (
            await self._claim(
                tx,
                "activity",
                open_queues,
                owner,
                lease,
                limit,
                now,
                caps,
                per_key=per_key,
                limited=True,
            )
            if open_queues
            else []
        )
        for queue, (limits, _) in limited.items():
            # (10: the queue, 13: paused, 14: the key)
            keys = [r[14] for r in claimed if r[10] == queue and not r[13]]
            await sqlqueues.record_starts(tx, queue, limits, now, keys)
        return await leases_sql.claimed(tx, claimed, lease)
