"""Turn loads on PostgreSQL read together: the ``load_turn`` calls made in
one moment (a worker's turns that missed its cache: a burst of timers, a
restart) share one read, one round trip, instead of one each.

A turn whose instance is not cached reads its run, the history after what
it has, and its inbox. After a restart, or when many timers fire at once
past a full cache, a worker starts a hundred such turns together (one claim
hands them out), and each read was a round trip through psycopg's cursor:
with 2,000 timers due at one moment, a quarter of the process's time (see
docs/decisions.md, session 26). Here each call waits for a batch, which the
first caller schedules for the loop's next turn; a batch reads its runs,
every caller's events after that caller's own sequence number (a lateral
join: one index range per caller) and the inboxes, in one snapshot, and
hands each caller its own ``TurnInput``. What fails for one caller (no such
run, a row that cannot be decoded) fails that caller alone; a failed read
fails the batch's callers.
Imports the row helpers and the store records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from perdure._store import sqlrows as rows
from perdure._store.base import TurnInput
from perdure._store.sqlrows import RUN_COLUMNS
from perdure._store.sqlstore import Query
from perdure.errors import WorkflowNotFoundError

Read = Callable[[Sequence[Query]], Awaitable[list[list[tuple[Any, ...]]]]]

MOST = 200  # callers per batch (the rest wait for the next)

RUNS = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ANY(?::text[])"
EVENTS = (
    "SELECT p.k, e.seq, e.data"
    " FROM unnest(?::text[], ?::bigint[]) WITH ORDINALITY AS p(run_id, after_seq, k)"
    " CROSS JOIN LATERAL (SELECT seq, data FROM events WHERE events.run_id = p.run_id"
    " AND events.seq > p.after_seq ORDER BY seq) AS e"
    " ORDER BY p.k, e.seq"
)
INBOXES = "SELECT run_id, id, data FROM inbox WHERE run_id = ANY(?::text[]) ORDER BY id"

_Caller = tuple[str, int, "asyncio.Future[TurnInput]"]


class TurnLoads:
    """``load`` calls of one loop turn, read together by ``read`` (the
    store's one-round-trip read of several queries)."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._callers: list[_Caller] = []
        self._reading: set[asyncio.Task[None]] = set()  # (kept: a task must not vanish)

    async def load(self, run_id: str, after_seq: int) -> TurnInput:
        """The run, its events after ``after_seq`` and its inbox (as
        SqlStore.load_turn)."""
        future: asyncio.Future[TurnInput] = asyncio.get_running_loop().create_future()
        self._callers.append((run_id, after_seq, future))
        if len(self._callers) == 1:
            self._start()
        return await future

    def _start(self) -> None:
        task = asyncio.get_running_loop().create_task(self._batch())
        self._reading.add(task)
        task.add_done_callback(self._reading.discard)

    async def _batch(self) -> None:
        """Read for the callers waiting now (at most MOST: the rest get a
        batch of their own at once)."""
        batch, self._callers = self._callers[:MOST], self._callers[MOST:]
        if self._callers:
            self._start()
        batch = [caller for caller in batch if not caller[2].done()]  # (one was cancelled)
        if not batch:
            return
        try:
            found = await self._read(_queries(batch))
        except asyncio.CancelledError:
            for _, _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        _hand_out(batch, *found)


def _queries(batch: list[_Caller]) -> list[Query]:
    run_ids = sorted({run_id for run_id, _, _ in batch})
    return [
        (RUNS, (run_ids,)),
        (EVENTS, ([run_id for run_id, _, _ in batch], [after for _, after, _ in batch])),
        (INBOXES, (run_ids,)),
    ]


def _hand_out(
    batch: list[_Caller],
    found: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
    inboxes: list[tuple[Any, ...]],
) -> None:
    """Each caller's TurnInput (or what is wrong with its run), from the rows
    of the batch's three queries."""
    runs = {row[0]: row for row in found}
    mine: dict[int, list[tuple[int, str]]] = {}
    for k, seq, data in events:
        mine.setdefault(k, []).append((seq, data))
    inbox: dict[str, list[tuple[int, str]]] = {}
    for run_id, inbox_id, data in inboxes:
        inbox.setdefault(run_id, []).append((inbox_id, data))
    for k, (run_id, _, future) in enumerate(batch, start=1):
        if future.done():
            continue
        try:
            row = runs.get(run_id)
            if row is None:
                raise WorkflowNotFoundError(f"no run {run_id!r}")
            future.set_result(
                TurnInput(
                    run=rows.run_from_row(row),
                    events=[
                        rows.event_from_row(data, run_id, f"event #{seq}")
                        for seq, data in mine.get(k, [])
                    ],
                    inbox=[
                        (i, rows.event_from_row(data, run_id, f"inbox row {i}"))
                        for i, data in inbox.get(run_id, [])
                    ],
                )
            )
        except Exception as exc:
            future.set_exception(exc)
