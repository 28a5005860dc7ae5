"""Transactional activities: database writes made exactly once.

An activity runs at least once: a worker killed after the activity's work
and before its completion was recorded leaves it to run again. For writes to
your application's own database there is a better answer than an
idempotency key: commit them in one transaction with a record that they
were made, keyed by the activity's idempotency key. An attempt that finds
the record returns the result it holds and runs nothing; an attempt that
fails rolls its writes back with it. So the writes happen once, whatever
crashes, retries and takeovers come between (DBOS's ``@DBOS.transaction``)::

    shop = AppDatabase("postgresql://app@db/shop")

    @shop.transaction(retry=RetryPolicy(max_attempts=5))
    async def reserve(conn: psycopg.AsyncConnection, sku: str, qty: int) -> int:
        cur = await conn.execute(
            "UPDATE stock SET qty = qty - %s WHERE sku = %s RETURNING qty", (qty, sku))
        (left,) = await cur.fetchone()
        return left

The function takes the connection first, then the activity's arguments;
what ``@shop.transaction`` returns is an activity (register it with a
worker, call it from workflow code as ``await reserve(sku, 3)``) whose
arguments are the rest. On PostgreSQL it may be ``async def`` (a
``psycopg.AsyncConnection``) or plain ``def`` (a ``psycopg.Connection``, in
the worker's thread pool); on SQLite plain ``def`` (a ``sqlite3.Connection``).
The records go to a table of that database, ``perdure_transactions``
(created on first use), and are deleted after ``keep`` (30 days).
Called outside its activity (a unit test, or directly by another
activity), the function runs in a transaction with no record. Given a
SQLAlchemy engine instead of a URL, the function gets an ORM ``Session``
(DBOS's ``DBOS.sql_session``). The
database's SQL is the store's (``perdure._store.apptx``,
``apptx_postgres``, ``apptx_sqlalchemy``); this module makes activities of it.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from perdure import activity
from perdure._store import postgres_module, sqlite_path
from perdure._store.apptx import SqliteTransactions
from perdure._store.apptx_shared import check_table
from perdure.activity import CancellationType
from perdure.retry import RetryPolicy

__all__ = ["AppDatabase"]

P = ParamSpec("P")
R = TypeVar("R")

_KEEP = timedelta(days=30)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class AppDatabase:
    """Your application's database, for transactional activities
    (``@db.transaction``): ``postgresql://...`` or ``sqlite:///path.db``
    (it may be the same database as perdure's own), or a SQLAlchemy
    ``Engine`` or ``AsyncEngine``, whose functions get an ORM ``Session``
    (``AsyncSession``) in the transaction instead of the driver's connection
    (``max_idle`` and ``timeout`` are then the engine's business).

    ``table``: where the records of committed transactions go (``name`` or
    ``schema.name``; created if missing). ``keep``: how long a record is
    kept (``None``: for ever): an attempt that starts later than that after
    its activity's transaction committed would run it again, so keep it
    longer than any outage you would sit out; deleted by each process at
    most once an hour. ``isolation_level``: PostgreSQL's, ``"read
    committed"``, ``"repeatable read"`` or ``"serializable"`` (default: the
    database's); a serialization failure fails the attempt, and the retry
    policy runs it again. SQLite's transactions are ``BEGIN IMMEDIATE``,
    waiting up to ``timeout`` seconds for the file's write lock.
    ``max_idle``: connections kept open for the next transactions (per
    event loop for ``async def`` functions). ``close()`` closes them."""

    def __init__(
        self,
        url: Any,
        *,
        table: str = "perdure_transactions",
        keep: timedelta | None = _KEEP,
        isolation_level: str | None = None,
        max_idle: int = 4,
        timeout: float = 5.0,
    ) -> None:
        check_table(table)
        if keep is not None and not (isinstance(keep, timedelta) and keep > timedelta(0)):
            raise ValueError(f"keep must be a positive timedelta or None, not {keep!r}")
        if isinstance(max_idle, bool) or not isinstance(max_idle, int) or max_idle < 0:
            raise ValueError(f"max_idle must be an int >= 0, not {max_idle!r}")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not (math.isfinite(timeout) and timeout >= 0)
        ):
            raise ValueError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
        seconds = None if keep is None else keep.total_seconds()
        self.url = url
        self.table = table
        self._backend: Any
        self._engine: Any = None  # a SQLAlchemy engine's backend, if given one
        if type(url).__module__.startswith("sqlalchemy."):
            engines: Any = _sqlalchemy_module()
            if not engines.is_engine(url):
                raise TypeError(f"give a SQLAlchemy Engine or AsyncEngine, not {url!r}")
            if isolation_level is not None:
                raise ValueError(
                    "isolation_level is the engine's: create_engine(url, isolation_level=...)"
                )
            self.dialect = url.dialect.name
            self._backend = self._engine = engines.SqlAlchemyTransactions(
                url, table=table, keep=seconds
            )
        elif not isinstance(url, str) or not url:
            raise ValueError(
                f"the database URL must be a non-empty string (or a SQLAlchemy engine), not {url!r}"
            )
        elif url.startswith("sqlite:"):
            path = sqlite_path(url)
            if path == ":memory:":
                raise ValueError(
                    "an in-memory SQLite database cannot hold your application's data "
                    "across connections: give a file, sqlite:///path.db"
                )
            if isolation_level is not None:
                raise ValueError(
                    "isolation_level is for PostgreSQL: a SQLite transaction is BEGIN "
                    "IMMEDIATE (serializable)"
                )
            self.dialect = "sqlite"
            self._backend = SqliteTransactions(
                path, table=table, keep=seconds, max_idle=max_idle, timeout=float(timeout)
            )
        elif url.startswith(("postgresql:", "postgres:")):
            postgres: Any = postgres_module("apptx_postgres")
            if isolation_level is not None and isolation_level not in postgres.ISOLATION_LEVELS:
                known = ", ".join(repr(k) for k in postgres.ISOLATION_LEVELS)
                raise ValueError(
                    f"unknown isolation_level {isolation_level!r}: use one of {known} "
                    f"(or None for the database's default)"
                )
            self.dialect = "postgresql"
            self._backend = postgres.PostgresTransactions(
                url, table=table, keep=seconds, max_idle=max_idle, isolation=isolation_level
            )
        else:
            scheme = url.split(":", 1)[0] if ":" in url else url
            raise ValueError(
                f"unsupported database URL {url!r} (scheme {scheme!r}): expected "
                f"postgresql://user@host/db or sqlite:///path.db"
            )

    @overload
    def transaction(
        self, fn: Callable[Concatenate[Any, P], R], /
    ) -> activity.ActivityFunction[P, R]: ...
    @overload
    def transaction(
        self,
        /,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        start_to_close_timeout: timedelta | None = None,
        schedule_to_close_timeout: timedelta | None = None,
        heartbeat_timeout: timedelta | None = None,
        task_queue: str | None = None,
        priority: int | None = None,
        cancellation_type: CancellationType | None = None,
    ) -> Callable[[Callable[Concatenate[Any, P], R]], activity.ActivityFunction[P, R]]: ...
    def transaction(self, fn: Any = None, /, **options: Any) -> Any:
        """Make ``fn(conn, *args)`` an activity of ``args`` whose writes on
        ``conn`` commit exactly once. The options are ``activity.defn``'s
        (typed by the overload above; an unknown one is defn's TypeError)."""
        define: Callable[[Any], activity.ActivityFunction[Any, Any]] = activity.defn(**options)

        def wrap(f: Any) -> activity.ActivityFunction[Any, Any]:
            made = define(self._wrapper(f))
            made.fn._activity_name = made.name  # type: ignore[attr-defined]
            return made

        return wrap(fn) if fn is not None else wrap

    def _wrapper(self, fn: Any) -> Callable[..., Any]:
        """The activity's own function: ``fn`` without its first parameter,
        run in a transaction of this database."""
        if not callable(fn):
            raise TypeError(f"@transaction needs a function, got {fn!r}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"@transaction needs a function that returns its result, not a generator "
                f"function ({fn!r} yields)"
            )
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
        engine = self._engine
        if engine is not None and is_async != engine.is_async:
            given, wanted = (
                ("async def", "an Engine: make it a plain def (with a Session)")
                if is_async
                else ("a plain def", "an AsyncEngine: make it async def (with an AsyncSession)")
            )
            raise TypeError(f"{fn!r} is {given}, but the database is {wanted}")
        if engine is None and is_async and self.dialect == "sqlite":
            raise TypeError(
                f"{fn!r} is async def, but SQLite's driver has no async API: make it a plain "
                f"def (it runs in the worker's thread pool, with a sqlite3.Connection)"
            )
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())
        if not params or params[0].kind not in _POSITIONAL:
            raise TypeError(
                f"{fn!r} must take the connection as its first parameter, before the "
                f"activity's arguments: def {getattr(fn, '__name__', 'f')}(conn, ...)"
            )
        backend = self._backend

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            key, encode, decode = _recording(run, getattr(run, "_activity_name", None))
            body = functools.partial(_call, fn, args, kwargs)
            return await backend.run_async(key, body, encode, decode)

        def run_sync(*args: Any, **kwargs: Any) -> Any:
            key, encode, decode = _recording(run, getattr(run, "_activity_name", None))
            body = functools.partial(_call, fn, args, kwargs)
            return backend.run(key, body, encode, decode)

        run: Callable[..., Any] = run_async if is_async else run_sync

        functools.update_wrapper(run, fn)
        run.__signature__ = signature.replace(parameters=params[1:])  # type: ignore[attr-defined]
        return run

    def close(self) -> None:
        """Close the connections kept for reuse (they reopen when needed)."""
        self._backend.close()

    def __repr__(self) -> str:
        return f"<AppDatabase {self.dialect} table={self.table!r}>"


def _sqlalchemy_module() -> Any:
    try:
        from perdure._store import apptx_sqlalchemy
    except ImportError as exc:  # (an engine was given, so SQLAlchemy is there: greenlet?)
        raise ImportError(
            f"SQLAlchemy engines need SQLAlchemy 2 with asyncio support ({exc}): "
            f"pip install 'perdure[sqlalchemy]'"
        ) from exc
    return apptx_sqlalchemy


def _call(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any], conn: Any) -> R:
    return fn(conn, *args, **kwargs)


def _recording(run: Callable[..., Any], name: str | None) -> tuple[Any, ...]:
    """(key, encode, decode) for the running attempt of ``run``'s activity
    (named ``name``): its idempotency key, and its result to and from the
    record's text by the worker's converter (codecs included). Outside an
    attempt of that activity (a unit test, or another activity that calls
    the function directly, whose key is its own), no key: a plain transaction."""
    ctx = activity._context.get()
    if ctx is None or ctx.info.activity_type != name:
        return None, None, None
    converter = ctx.converter

    def encode(value: Any) -> str:
        return json.dumps(converter.encode_result(run, value), ensure_ascii=False)

    def decode(text: str) -> Any:
        return converter.decode_result(run, json.loads(text))

    return ctx.info.idempotency_key, encode, decode
