"""Group commit for the PostgreSQL backend: concurrent writes share a transaction.

Each write transaction on PostgreSQL pays for itself on the server (a
snapshot, a transaction id, a commit record, a WAL flush) and in the client
(a query through psycopg). Writes queued while the store is busy therefore
run together: their bodies, one after the other, in ONE transaction, sent
as one query when none of them reads mid-way ("BEGIN; turn 1; turn 2; ...;
COMMIT"). The caller of each is answered once that transaction committed.

A group that fails as a whole (a fence tripped: the server aborts the whole
transaction; a deadlock; a body that failed after its statements reached
the server) is rolled back by the server and each of its bodies then runs
alone, the ordinary way, so that each gets its own outcome. A body that
fails before any of its statements was sent has them dropped from the group
and gets its error; the rest commit. Running a body again is safe: bodies
only talk to the database, and their ``later`` callbacks run after COMMIT.
A group whose COMMIT was sent but whose answer was lost has an unknown
outcome: every body in it gets the error, none is run again.

Imports only the SQL layer's types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from perdure._store.sqlstart import AnyPlan
from perdure._store.sqlstore import Body

T = TypeVar("T")

# A group holds at most this many bodies (one query of a few hundred
# statements at most), and at most GROUPS groups are in flight at once.
GROUP_SIZE = 64
GROUPS = 3


class OutcomeUnknown(Exception):
    """A group's COMMIT was sent and its answer lost: every body gets
    ``error``, and none may run again."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Member:
    """One body's view of a group's transaction: the same statements, but
    its ``later`` callbacks keep their errors to themselves, so that one
    body's failing callback fails only that body."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx
        self.error: BaseException | None = None

    def _guard(self, then: Callable[[Any], None]) -> Callable[[Any], None]:
        def call(got: Any) -> None:
            if self.error is None:
                try:
                    then(got)
                except Exception as exc:  # committed, but its caller cannot use it
                    self.error = exc

        return call

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(await self._tx.execute(sql, params))

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._tx.send(sql, params)

    async def fence(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._tx.fence(sql, params)

    async def later(
        self, sql: str, params: Sequence[Any], then: Callable[[tuple[Any, ...] | None], None]
    ) -> None:
        await self._tx.later(sql, params, self._guard(then))

    async def later_all(
        self, sql: str, params: Sequence[Any], then: Callable[[list[tuple[Any, ...]]], None]
    ) -> None:
        await self._tx.later_all(sql, params, self._guard(then))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._tx.executemany(sql, rows)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return await self._tx.one(sql, params)  # type: ignore[no-any-return]

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._tx.all(sql, params)  # type: ignore[no-any-return]


# Runs a group's bodies in one transaction (a body that came with a Plan may
# be applied as that plan instead, with the others': postgres_plans): each
# body's (ok, value or error), once committed. Raises OutcomeUnknown, or
# anything else when the server rolled the whole group back.
Write = tuple[Body[Any], AnyPlan | None]
GroupRunner = Callable[[list[Write]], Awaitable[list[tuple[bool, Any]]]]


class GroupedWrites:
    """Queues writes and runs them in groups (see the module's docstring). A
    write that finds nothing queued and a group's place free runs alone at
    once, in its caller's task: a lone writer pays nothing for the queue."""

    def __init__(
        self,
        run_group: GroupRunner,
        alone: Callable[[Body[Any]], Awaitable[Any]],
        groups: int = GROUPS,
    ) -> None:
        self._run_group = run_group
        self._alone = alone
        self._groups = groups
        self._queued: list[tuple[Write, asyncio.Future[Any]]] = []
        self._running = 0  # transactions in flight: lone writes and groups
        self._drainers: set[asyncio.Future[None]] = set()
        self.grouped = 0  # groups of two or more bodies committed (for tests)

    async def write(self, body: Body[T], plan: AnyPlan | None = None) -> T:
        if self._running < self._groups and not self._queued:
            self._running += 1
            try:
                return await self._alone(body)  # type: ignore[no-any-return]
            finally:
                self._running -= 1
                self._kick()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append(((body, plan), future))
        self._kick()
        return await future

    def _kick(self) -> None:
        while self._queued and self._running < self._groups:
            self._running += 1
            drainer = asyncio.ensure_future(self._drain())
            self._drainers.add(drainer)
            drainer.add_done_callback(self._drainers.discard)

    async def _drain(self) -> None:
        batch: list[tuple[Write, asyncio.Future[Any]]] = []
        try:
            while self._queued:
                batch = self._queued[:GROUP_SIZE]
                del self._queued[:GROUP_SIZE]
                outcomes = await self._run(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    _answer(future, outcome)
                batch = []
        except BaseException as exc:  # cancelled (the loop is closing): nobody hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        exc
                        if isinstance(exc, Exception)
                        else RuntimeError("the store's writes were cancelled")
                    )
            raise
        finally:
            self._running -= 1

    async def _run(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> list[tuple[bool, Any]]:
        if len(batch) == 1:
            return [await _settle(self._alone(batch[0][0][0]))]
        try:
            outcomes = await self._run_group([write for write, _ in batch])
        except OutcomeUnknown as unknown:
            return [(False, unknown.error)] * len(batch)
        except Exception:
            # The server rolled the group back: each body alone (no plans),
            # each caller answered as soon as its own body committed (one
            # may wait long for a row another transaction holds).
            async def alone(body: Body[Any], future: asyncio.Future[Any]) -> tuple[bool, Any]:
                outcome = await _settle(self._alone(body))
                _answer(future, outcome)
                return outcome

            return list(await asyncio.gather(*(alone(w[0], f) for w, f in batch)))
        self.grouped += 1
        return outcomes


def _answer(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    """Give ``future`` its write's outcome, (ok, value or error), unless it
    has one already (answered earlier, or the caller stopped waiting)."""
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


async def _settle(work: Awaitable[T]) -> tuple[bool, Any]:
    try:
        return True, await work
    except Exception as exc:
        return False, exc
