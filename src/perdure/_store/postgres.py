"""The PostgreSQL backend: a connection pool, transactions, and wake-ups.

All of the store's logic lives in :class:`~perdure._store.sqlstore.SqlStore`;
this module supplies transactions over psycopg 3's asyncio API and the dialect
(row locks, ``SKIP LOCKED`` claims, an advisory lock per workflow id). Writes
run at READ COMMITTED with the run-row locks described in ``sqlrows``; reads
run at REPEATABLE READ, READ ONLY, so one read sees one snapshot. Every
psycopg error leaves as :class:`~perdure.errors.StoreError`, with the cause.
Imports psycopg (only this backend does), the SQL layer and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import select
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from perdure._store import postgres_schema as schema
from perdure._store.base import CLOSED, TurnInput
from perdure._store.postgres_conns import Connections
from perdure._store.postgres_dialect import PostgresDialect
from perdure._store.postgres_group import GROUPS, GroupedWrites, Member, OutcomeUnknown, Write
from perdure._store.postgres_listen import Listener, Notifier, parse_payload
from perdure._store.postgres_loads import TurnLoads
from perdure._store.postgres_plans import (
    apply_claimed,
    apply_closes,
    apply_deliveries,
    apply_plans,
    apply_starts,
    lock_runs,
)
from perdure._store.postgres_prepared import Statements
from perdure._store.postgres_tx import BEGIN_READ, BEGIN_WRITE, _BatchedTx, _PgTx
from perdure._store.sqlclaimed import ClaimedPlan
from perdure._store.sqlcomplete import CompletePlan
from perdure._store.sqlplans import ClosePlan, Plan
from perdure._store.sqlrows import Tx
from perdure._store.sqlstart import AnyPlan, StartPlan
from perdure._store.sqlstore import Body, Query, SqlStore
from perdure.errors import StoreError

T = TypeVar("T")
log = logging.getLogger("perdure.store")

# URL query parameters perdure reads (and removes before libpq sees the URL): the
# pool's limits, and ``prepare=0``, which sends every write statement as text (for
# a pooler that keeps no session state, such as PgBouncer in transaction mode).
URL_OPTIONS = {"pool_min_size": 1, "pool_max_size": 10, "pool_timeout": 10.0, "prepare": 1.0}
# What the server answers a connection while it starts, stops or recovers
# (SQLSTATE 57P03, cannot_connect_now, which a failed connection's error does
# not carry in psycopg: its message, as the server words it in English).
_NOT_NOW = "the database system is "
DEADLOCK_RETRIES = 5
# A group's transaction waits at most this long for a row lock, then fails
# (and every body of the group runs alone): see _group.
GROUP_LOCK_TIMEOUT = "50ms"
BEGIN_GROUP = (BEGIN_WRITE, f"SET LOCAL lock_timeout = '{GROUP_LOCK_TIMEOUT}'")
# Each pooled connection's settings, in one statement:
# - A transaction idle this long holds row locks for a process that froze (or
#   whose event loop is blocked): the server ends the session and frees them.
# - No sequential scans where an index can serve. Every statement the store
#   sends reaches its rows through an index (or by TID), but on tables that
#   are empty and never analyzed (a new database) the planner costs a scan
#   lower, and a prepared statement keeps that generic plan while the table
#   grows: each claim, timer firing or closing turn would then read the
#   whole queue (tests/store/test_store_plans.py). A table no index
#   serves is still scanned.
SESSION_SETUP = (
    "SELECT set_config('idle_in_transaction_session_timeout', '60s', false),"
    " set_config('enable_seqscan', 'off', false)"
)


def _url_option(key: str, value: str) -> float:
    """One of URL_OPTIONS, read and checked: a size is a whole number of
    connections from 1, a timeout a finite number of seconds above 0, prepare
    0 or 1. (A NaN or infinite size had failed deep in the store, a timeout
    of 0 or below as a pool that could not start, and a fraction of a
    connection been rounded down.)"""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if key == "pool_timeout":
        fine, wanted = math.isfinite(number) and number > 0, "a number of seconds above 0"
    elif key == "prepare":
        fine, wanted = number in (0.0, 1.0), "0 or 1"
    else:
        fine, wanted = number.is_integer() and number >= 1, "a whole number from 1"
    if not fine:
        raise StoreError(f"bad {key}={value!r} in the PostgreSQL URL: it must be {wanted}")
    return number


def parse_url(url: str) -> tuple[str, dict[str, float], str]:
    """(libpq conninfo, pool options, a printable name without password)."""
    parts = urlsplit(url)
    query, options = [], dict(URL_OPTIONS)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in options:
            options[key] = _url_option(key, value)
        else:
            query.append((key, value))
    if options["pool_max_size"] < options["pool_min_size"]:
        raise StoreError(
            f"pool_max_size={options['pool_max_size']:g} is below "
            f"pool_min_size={options['pool_min_size']:g} in the PostgreSQL URL"
        )
    # quote, not quote_plus: libpq reads '+' literally, not as a space.
    url = urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise StoreError(f"malformed PostgreSQL URL: {exc}") from exc
    params.setdefault("connect_timeout", 10)
    params.setdefault("application_name", "perdure")
    where = (
        f"postgresql://{params.get('user') or ''}@{params.get('host') or ''}"
        f":{params.get('port') or 5432}/{params.get('dbname') or ''}"
    )
    return make_conninfo("", **params), options, where


class _StaleConnection(Exception):
    """A pooled connection was dead before the transaction began (the server
    restarted): nothing was sent, so another connection may safely be tried."""


class PostgresStore(PostgresDialect, SqlStore):
    """A Store on a PostgreSQL database, shared by any number of processes.

    ``url`` is a libpq URL; ``pool_min_size``, ``pool_max_size`` (connections
    for transactions, plus one for LISTEN) and ``pool_timeout`` (seconds to
    wait for a free connection) may be added to its query string. Without a
    ``clock``, the store keeps time by the server's clock (see
    ``postgres_schema.clock_offset``), so every machine agrees on leases and
    timers. Use it from the event loop that opened it (psycopg's rule).
    """

    def __init__(self, url: str, *, clock: Callable[[], float] | None = None) -> None:
        self._conninfo, options, self.where = parse_url(url)
        super().__init__(clock or self._server_time)
        self._clock_offset = 0.0
        self._min_size = int(options["pool_min_size"])
        self._max_size = int(options["pool_max_size"])
        self._pool_timeout = options["pool_timeout"]
        self._prepare = bool(options["prepare"])
        self._statements: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], Statements]
        self._statements = weakref.WeakKeyDictionary()
        self._refused: set[str] = set()  # statements the server would not prepare
        self._pool: AsyncConnectionPool | None = None
        self._conns: Connections  # hands the pool's connections to transactions (once open)
        self._listener: Listener | None = None
        self._notifier: Notifier | None = None
        self._guard: asyncio.Task[None] | None = None
        self._id = uuid.uuid4().hex  # our own notifications carry it: ignore them
        self.channel = "perdure"
        self._writes = GroupedWrites(
            self._group, self._write_alone, groups=min(GROUPS, self._max_size)
        )
        self._loads = TurnLoads(self._read_queries)

    def _server_time(self) -> float:
        return time.time() + self._clock_offset

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        try:
            conn = await self._first_connection()
        except psycopg.Error as exc:
            raise StoreError(self._explain("cannot connect to PostgreSQL", exc)) from exc
        try:
            await schema.migrate(conn, self.where)
            self.channel = await schema.channel_name(conn)
            self._clock_offset = await schema.clock_offset(conn)
        except psycopg.Error as exc:
            raise StoreError(self._explain("cannot prepare the PostgreSQL database", exc)) from exc
        finally:
            await conn.close()
        pool = AsyncConnectionPool(
            self._conninfo,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=self._pool_timeout,
            name="perdure",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=self._pool_timeout)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(self._explain("cannot open a PostgreSQL pool", exc)) from exc
        self._pool = pool
        self._conns = Connections(pool, self._max_size, self._pool_timeout)
        self._notifier = Notifier(self._conns, self.channel, self._id, CLOSED)
        self._notifier.start()
        self._listener = Listener(self._conninfo, self.channel, self._on_notify, self.notify)
        self._listener.start()
        self._guard = asyncio.get_running_loop().create_task(
            self._close_if_abandoned(), name="perdure-pool-guard"
        )

    async def _close_if_abandoned(self) -> None:
        """Close the store if its event loop ends with it still open.

        ``asyncio.run`` ends by cancelling every task and waiting for them.
        psycopg_pool's maintenance workers catch ``CancelledError`` while
        they run a task (replacing a connection given back mid-query, say);
        such a worker then waits for the stop message that only the pool's
        ``close()`` sends, and the program never exits. This task is
        cancelled with the others and sends that message."""
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            if self._pool is not None:  # not closed by close(): the loop is ending
                log.warning("the PostgreSQL store was not closed before its event loop ended")
                await self.close()
            raise

    async def _first_connection(self) -> psycopg.AsyncConnection[Any]:
        """The store's first connection. A server that answers that it cannot
        take connections now (starting up, shutting down, recovering: a
        restart or a failover under way) is waited for, and so is the gap
        of a restart after such an answer, up to ``pool_timeout`` seconds, as
        the pool then waits for its own connections. A server that was never
        there fails at once: a wrong address should not look like a hang."""
        deadline = time.monotonic() + self._pool_timeout
        pause, waited = 0.05, False
        while True:
            try:
                return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            except psycopg.OperationalError as exc:
                if not (waited or _NOT_NOW in str(exc)) or time.monotonic() + pause > deadline:
                    raise
                if not waited:
                    log.warning(
                        "PostgreSQL at %s cannot take connections yet (%s); waiting up to %gs",
                        self.where,
                        str(exc).strip().splitlines()[-1],
                        self._pool_timeout,
                    )
                waited = True
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    @staticmethod
    async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
        # perdure prepares its own statements (postgres_prepared). psycopg's
        # automatic ones would be cleared with "DEALLOCATE ALL" after any
        # ROLLBACK, taking perdure's with them.
        conn.prepare_threshold = None
        await conn.execute(SESSION_SETUP)

    async def close(self) -> None:
        listener, notifier, pool = self._listener, self._notifier, self._pool
        self._listener = self._notifier = self._pool = None
        guard, self._guard = self._guard, None
        if guard is not None and guard is not asyncio.current_task():
            guard.cancel()
        if listener is not None:
            await listener.stop()
        if notifier is not None:
            await notifier.stop()
        if pool is not None:
            await self._conns.close()
            await pool.close()

    async def schema_version(self) -> int:
        async def query(tx: Tx) -> int:
            row = await tx.one("SELECT version FROM perdure_schema")
            return int(row[0]) if row else 0

        return await self._read(query)

    # ------------------------------------------------------------ wake-ups

    def notify_other_processes(self, *topics: str) -> None:
        if self._notifier is not None:
            self._notifier.kick(topics)

    def _on_notify(self, payload: str) -> None:
        sender, topics = parse_payload(payload)
        if sender != self._id:  # our own commits woke this process already
            self.notify_elsewhere(topics)

    # ------------------------------------------------------------ transactions

    async def _write(self, body: Body[T]) -> T:
        return await self._writes.write(body)

    applies_plans = True
    applies_close_plans = True
    applies_start_plans = True

    async def _write_planned(self, body: Body[T], plan: AnyPlan | None) -> T:
        return await self._writes.write(body, plan)

    async def _write_own(self, body: Body[T]) -> T:
        return await self._write_alone(body)

    async def _write_alone(self, body: Body[T]) -> T:
        return await self._transaction(body, BEGIN_WRITE)

    async def _group(self, writes: list[Write]) -> list[tuple[bool, Any]]:
        """Run the bodies of ``writes`` one after the other in one write
        transaction (see postgres_group), those that came with a plan first,
        applied together as their plans (postgres_plans): each one's (ok,
        value or error) once it committed. Raises when the server rolled the
        group back (then each body runs alone), or OutcomeUnknown."""
        if self._pool is None:
            raise StoreError(f"the PostgreSQL store {self.where} is closed")
        conn = await self._conns.take()
        tx: _BatchedTx | None = None
        done: list[tuple[Member, bool, Any]] = []
        # (A completion beside a turn's plan of its run is left to its body:
        # see sqlcomplete.)
        turned = {plan.run_id for _, plan in writes if not isinstance(plan, CompletePlan | None)}
        if turned:
            writes = [
                (body, None if isinstance(plan, CompletePlan) and plan.run_id in turned else plan)
                for body, plan in writes
            ]
        if sum(plan is not None for _, plan in writes) < 2:
            # (A lone plan is its body's statements: applied as the body.)
            writes = [(body, None) for body, _ in writes]
        # Each kind in run-id order: the order its statement locks the rows in.
        steps = sorted((p for _, p in writes if isinstance(p, Plan)), key=_run_id)
        closes = sorted((p for _, p in writes if isinstance(p, ClosePlan)), key=_run_id)
        starts = [plan for _, plan in writes if isinstance(plan, StartPlan)]
        claimed = sorted((p for _, p in writes if isinstance(p, ClaimedPlan)), key=_run_id)
        completes = [plan for _, plan in writes if isinstance(plan, CompletePlan)]
        errors: dict[str, Exception] = {}  # (filled by the commit: see apply_closes)
        told: list[tuple[Member, str]] = []  # plans whose callbacks the commit calls
        woken: list[tuple[int, ClaimedPlan]] = []  # claimed turns, by their place in done
        requeued: list[int] = []  # (filled by the commit: see apply_claimed)
        try:
            # Groups lock rows in their own orders: two of them, or a group
            # and a lone write, may each wait for a row the other holds
            # (children of one parent ending in both, each telling it). The
            # server would break the cycle only after deadlock_timeout (1 s,
            # a setting only a superuser may lower): a group gives up after
            # GROUP_LOCK_TIMEOUT instead, and its bodies run alone.
            tx = await self._write_tx(conn, BEGIN_GROUP)
            tells = [c.tell for c in closes if c.tell is not None]
            if completes or tells:
                # Plans that write to other runs than their own (a parent
                # told, a run given an activity's outcome): every run the
                # plans write is locked first, in one order, so that two
                # such groups never wait for each other in a cycle.
                await lock_runs(tx, steps, closes, claimed, completes, tells)
            if steps:
                await apply_plans(tx, steps)
            if closes:
                errors.update(await apply_closes(tx, self, closes))
            parents: list[Plan | ClaimedPlan] = [p for p in steps if p.children or p.first_turns]
            parents += [p for p in claimed if p.children or p.first_turns]
            if starts or parents:
                errors.update(await apply_starts(tx, starts, parents))
            if claimed:
                await apply_claimed(tx, claimed, requeued.append)
            if completes or tells:
                await apply_deliveries(tx, completes, tells)
            for body, plan in writes:
                member = Member(tx)
                if isinstance(plan, Plan):
                    done.append((member, True, plan.topics()))
                    continue
                if isinstance(plan, CompletePlan):
                    done.append((member, True, True))  # (complete_activity's answer)
                    continue
                if isinstance(plan, ClaimedPlan):  # (its topics once committed)
                    woken.append((len(done), plan))
                    done.append((member, True, None))
                    continue
                if isinstance(plan, ClosePlan | StartPlan):
                    answer = None if isinstance(plan, StartPlan) else plan.topics()
                    done.append((member, True, answer))
                    told.append((member, plan.run_id))
                    continue
                mark = tx.mark()
                try:
                    value = await body(member)
                except Exception as exc:
                    if not tx.undo(mark):
                        raise  # its statements reached the server: the group must go
                    done.append((member, False, exc))
                    continue
                done.append((member, True, value))
            await tx.finish()
            for member, run_id in told:
                member.error = errors.get(run_id)
            for at, plan in woken:  # (a requeued task wakes a worker: any of the group's will do)
                done[at] = (done[at][0], True, plan.topics(any(requeued)))
        except BaseException as exc:
            await _abandon(conn)
            lost = isinstance(exc, psycopg.Error) and exc.sqlstate is None
            if tx is not None and tx.committing and lost:
                error = StoreError(self._explain("lost the connection during COMMIT", exc))
                raise OutcomeUnknown(error) from exc
            raise
        finally:
            await self._conns.give(conn)
        return [
            (False, member.error) if ok and member.error is not None else (ok, value)
            for member, ok, value in done
        ]

    async def _read(self, body: Body[T]) -> T:
        return await self._transaction(body, BEGIN_READ)

    async def load_turn(self, run_id: str, after_seq: int) -> TurnInput:
        # Loads made together are read together (postgres_loads).
        return await self._loads.load(run_id, after_seq)

    async def _read_queries(self, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
        # One round trip: a lone query runs by itself (one statement is one
        # snapshot); several travel as "BEGIN ... READ ONLY; q1; q2; COMMIT".
        async def body(tx: Tx) -> list[list[tuple[Any, ...]]]:
            assert isinstance(tx, _PgTx)
            return await tx.all_at_once(queries)

        return await self._transaction(body, BEGIN_READ)

    async def _transaction(self, body: Body[T], begin: str) -> T:
        if self._pool is None:
            raise StoreError(f"the PostgreSQL store {self.where} is closed")
        conns = self._conns
        stale = deadlocks = lost = 0
        while True:
            try:
                conn = await conns.take()
                try:
                    return await self._attempt(conn, body, begin)
                finally:
                    await conns.give(conn)
            except _StaleConnection as exc:
                # Every pooled connection may be dead after a server restart;
                # the pool replaces each one we hand back.
                stale += 1
                if stale > self._max_size:
                    raise StoreError(self._explain("lost the connection", exc.__cause__)) from exc
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                # The server rolled this transaction back to break a lock cycle
                # (see sqlrows' lock order). The body only talks to the database,
                # so running it again from the start is safe.
                deadlocks += 1
                if deadlocks > DEADLOCK_RETRIES:
                    raise StoreError(self._explain("gave up after deadlocks", exc)) from exc
                log.info("PostgreSQL transaction retried after %s", type(exc).__name__)
                await asyncio.sleep(0.01 * deadlocks)
            except pg_errors.InvalidSqlStatementName as exc:
                # A prepared statement is gone: a pooler between us and the
                # server (PgBouncer in transaction mode) does not keep them.
                # The server rolled the transaction back: run it again, with
                # every statement as text from now on.
                lost += 1
                if lost > 1:
                    raise StoreError(self._explain("PostgreSQL error", exc)) from exc
                if self._prepare:
                    log.warning(
                        "PostgreSQL lost a prepared statement (a pooler in transaction mode?): "
                        "sending statements as text from now on; add prepare=0 to the URL"
                    )
                self._prepare = False
            except PoolClosed as exc:
                raise StoreError(f"the PostgreSQL store {self.where} is closed") from exc
            except PoolTimeout as exc:
                raise StoreError(
                    f"no PostgreSQL connection to {self.where} within {self._pool_timeout:g}s "
                    f"(server unreachable, or pool_max_size={self._max_size} too small): {exc}"
                ) from exc
            except psycopg.Error as exc:
                raise StoreError(self._explain("PostgreSQL error", exc)) from exc

    async def _attempt(self, conn: psycopg.AsyncConnection[Any], body: Body[T], begin: str) -> T:
        """One transaction: BEGIN, the body, COMMIT. Writes are batched (see
        _BatchedTx); reads send BEGIN with their first statement.
        A failure rolls back (or drops the connection) and propagates: a COMMIT
        whose outcome is unknown must not be repeated blindly."""
        tx: _PgTx | _BatchedTx | None = None
        try:
            if begin == BEGIN_WRITE:
                tx = await self._write_tx(conn)
                result = await body(tx)
                await tx.finish()
            else:
                tx = _PgTx(conn, begin)
                result = await body(tx)
                if tx.begun:
                    await conn.execute("COMMIT")
        except psycopg.OperationalError as exc:
            if (tx is None or not tx.begun) and (conn.broken or conn.closed):
                # Dead before BEGIN took effect (a restarted server): nothing
                # happened, so another connection may run the body from scratch.
                raise _StaleConnection() from exc
            await _abandon(conn)
            raise
        except BaseException:
            await _abandon(conn)
            raise
        return result

    async def _write_tx(
        self, conn: psycopg.AsyncConnection[Any], begin: tuple[str, ...] = (BEGIN_WRITE,)
    ) -> _BatchedTx:
        """A write transaction on ``conn``, its pending statements prepared."""
        if _has_unread_input(conn):
            # The server spoke to an idle connection: it is ending the
            # session (a restart, pg_terminate_backend). A write may
            # carry its COMMIT in its first query, whose loss would
            # leave its outcome unknown: use another connection.
            await conn.close()
            raise _StaleConnection()
        statements = self._statements_of(conn)
        if statements is not None and statements.pending:
            await statements.prepare_pending(conn)
        return _BatchedTx(conn, statements, begin)

    def _statements_of(self, conn: psycopg.AsyncConnection[Any]) -> Statements | None:
        if not self._prepare:
            return None
        statements = self._statements.get(conn)
        if statements is None:
            statements = self._statements[conn] = Statements(self._refused)
        return statements

    def _explain(self, what: str, exc: BaseException | None) -> str:
        text = " ".join(str(exc).split()) if exc is not None else "unknown error"
        hint = ""
        if 'database "' in text and "does not exist" in text:
            hint = " (create it first, e.g. with createdb)"
        elif 'role "' in text and "does not exist" in text:
            hint = " (check the user name in the URL, or create the role)"
        elif "password authentication failed" in text:
            hint = " (check the password in the URL, $PGPASSWORD or ~/.pgpass)"
        return f"{what} ({self.where}): {text}{hint}"


def _has_unread_input(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection's socket has something to read: on a pooled
    connection between transactions, only the server's goodbye."""
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, psycopg.Error):
        return True


async def _abandon(conn: psycopg.AsyncConnection[Any]) -> None:
    """After a failed or cancelled transaction: roll back, or close a
    connection left mid-statement so the pool discards it."""
    status = conn.info.transaction_status
    if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        try:
            await conn.execute("ROLLBACK")
            return
        except psycopg.Error:
            pass
    if status != TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            await conn.close()


def _run_id(plan: Plan | ClosePlan | ClaimedPlan) -> str:
    return plan.run_id
