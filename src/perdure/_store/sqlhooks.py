"""SqlHooks: the base of SqlStore, what each SQL backend supplies it.

A backend subclass supplies a transaction (``_write``/``_read`` run an async
body against a :class:`~perdure._store.sqlrows.Tx`), the plans it applies, and
how other processes hear of a commit. Imports the store's base and the row helpers.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from perdure._store.base import WORK, Store, closed_topic
from perdure._store.sqlrows import Dialect, Tx
from perdure._store.sqlstart import AnyPlan

T = TypeVar("T")
Body = Callable[[Tx], Awaitable[T]]
Query = tuple[str, Sequence[Any]]  # SQL with ? placeholders, and its parameters


class SqlHooks(Store, Dialect):
    """The hooks a SQL backend fills in, and what SqlStore does after a commit."""

    @abc.abstractmethod
    async def _write(self, body: Body[T]) -> T:
        """Run ``body`` in one read-write transaction (commit, or roll back on error)."""

    async def _write_own(self, body: Body[T]) -> T:
        """``_write(body)`` in a transaction of its own, never shared with
        other writes (PostgreSQL's groups): for a body that may wait for a
        lock that writers take in turn (a limited queue's claim), which must
        hold it no longer than its own statements take."""
        return await self._write(body)

    applies_plans = False  # whether _write_planned may apply them (else none is built)
    applies_close_plans = False  # the same, for sqlplans.ClosePlan
    applies_start_plans = False  # the same, for sqlstart.StartPlan
    keeps_ended_feed = False  # the ended_runs table (see runs_ended_after)

    async def _write_planned(self, body: Body[T], plan: AnyPlan | None) -> T:
        """``_write(body)``; a backend may apply ``plan`` (sqlplans.plan_turn,
        plan_close, sqlstart.plan_start) instead."""
        return await self._write(body)

    @abc.abstractmethod
    async def _read(self, body: Body[T]) -> T:
        """Run ``body`` against a consistent snapshot."""

    async def _read_queries(self, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
        """The rows of independent queries (none needs another's answer), read
        in one snapshot. A backend may send them all at once (PostgreSQL: one
        round trip, where a read transaction costs one per statement plus one
        for its COMMIT)."""

        async def body(tx: Tx) -> list[list[tuple[Any, ...]]]:
            return [await tx.all(sql, params) for sql, params in queries]

        return await self._read(body)

    def notify_other_processes(self, *topics: str) -> None:
        """Tell workers and result waiters in other processes what a commit
        changed (PostgreSQL: NOTIFY, naming ``topics``). Without it they notice
        at their next poll."""

    def wake_workers(self) -> None:
        self._committed(WORK)

    def run_changed(self, run_id: str) -> None:
        self.wake_run(run_id)
        self.notify_other_processes(closed_topic(run_id))

    def _committed(self, *topics: str) -> None:
        """After a commit that may have changed ``topics`` (WORK, CLOSED)."""
        if topics:
            self.notify(*topics)
            self.notify_other_processes(*topics)
