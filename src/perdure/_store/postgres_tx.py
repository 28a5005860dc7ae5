"""Transactions of the PostgreSQL backend: the Tx protocol over psycopg.

Reads (``_PgTx``) send BEGIN with their first statement, through psycopg's
cursors; writes (``_BatchedTx``) hold every statement whose result the body
does not read and send them together, fences enforced by the server, so an
inline step is one round trip, sent over libpq directly (postgres_wire).
Imports psycopg, the prepared statements, the wire and the SQL layer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import psycopg.adapt
from psycopg.pq.abc import PGresult

from perdure._store import postgres_wire as wire
from perdure._store.postgres_prepared import Statements
from perdure._store.sqlrows import Fenced, RunsAtOnce
from perdure._store.sqlstore import Query

BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED"
BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"


@functools.lru_cache(maxsize=1024)
def _pg(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (it has no
    literal ``?`` or ``%``)."""
    return sql.replace("?", "%s")


def literal_writer(
    conn: psycopg.AsyncConnection[Any], psycopgs: Callable[[Any], bytes] | None = None
) -> Callable[[Any], bytes]:
    """How ``conn`` writes a value as an SQL literal: psycopg's own quoting
    (``psycopgs``, else a Transformer's of ``conn``),
    with the commonest values (ints, finite floats, strings with no
    backslash) written directly, in the same bytes psycopg gives them
    (tests/postgres/test_literals_pg.py). Direct strings need
    ``standard_conforming_strings`` and a UTF-8 connection; else every value
    goes through psycopg."""
    quote = psycopgs or psycopg.adapt.Transformer(conn).as_literal
    conforming = conn.pgconn.parameter_status(b"standard_conforming_strings") == b"on"
    if not conforming or conn.info.encoding != "utf-8":
        return quote

    def literal(value: Any) -> bytes:
        kind = type(value)
        if kind is str:
            if "\\" not in value and "\x00" not in value:
                try:
                    return b"'" + str.replace(value, "'", "''").encode() + b"'"
                except UnicodeEncodeError:
                    pass  # (a lone surrogate: psycopg says what is wrong)
        elif kind is int or (kind is float and math.isfinite(value)):
            text = repr(value).encode()
            return b" " + text if text[:1] == b"-" else text  # ("- -1", never "--1")
        elif kind is Array:
            return array(value)
        return quote(value)

    def array(values: Array) -> bytes:
        # The commonest columns whole, in C: strings with no backslash (NUL
        # joins them: none of them holds one), or numbers of one type.
        first = type(values[0])
        try:
            if first is str:
                joined = "\x00".join(values)
                if "\\" not in joined and joined.count("\x00") == len(values) - 1:
                    quoted = str.replace(joined, "'", "''").replace("\x00", "','")
                    return b"ARRAY['" + quoted.encode() + b"']"
            elif (
                (first is int or first is float)
                and all(type(v) is first for v in values)
                and (first is int or all(map(math.isfinite, values)))
            ):
                # (a minus after "[" or "," is a sign, never a comment)
                return b"ARRAY[" + ",".join(map(repr, values)).encode() + b"]"
        except (TypeError, UnicodeEncodeError):
            pass  # (an item of another type; a lone surrogate: psycopg says what is wrong)
        items = [b"NULL" if item is None else literal(item) for item in values]
        if all(item is None for item in values):
            # ARRAY[NULL] is a text[], which a prepared statement's
            # integer[] or float8[] parameter refuses; an untyped
            # literal takes the parameter's type.
            return b"'{" + b",".join(items) + b"}'"
        return b"ARRAY[" + b",".join(items) + b"]"

    return literal


class Array(list[Any]):
    """A parameter written as ``ARRAY[...]`` of its items' literals (for a
    statement that casts it, ``?::text[]``): psycopg's own array literal
    escapes each text with a regular expression, too slow for the arrays of
    a group's plans (postgres_plans). At least one item. Only NULLs: written
    as an untyped ``'{NULL,...}'``, which takes the parameter's type."""


def bind(query: bytes, params: Sequence[Any], literal: Callable[[Any], bytes]) -> bytes:
    """Client-side binding: ``query``'s ``%s`` placeholders (it has no other
    ``%``) filled with ``params``, each written by ``literal`` (see
    literal_writer), None as NULL."""
    return query % tuple([b"NULL" if p is None else literal(p) for p in params])


class _PgTx(RunsAtOnce):
    """The Tx protocol over a psycopg connection, inside one transaction.

    BEGIN travels with the body's first statement, as one simple-protocol
    query with client-side binding ("BEGIN ...; SELECT ... FOR UPDATE"): a
    round trip saved per transaction. Later statements use server-side binding,
    unprepared (psycopg's automatic preparing is off: see ``_configure``; the
    write transactions, ``_BatchedTx``, send perdure's own prepared ones)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], begin: str) -> None:
        self._conn = conn
        self._cur = conn.cursor()
        self._begin: str | None = begin
        self.begun = False  # BEGIN reached the server (there is something to commit)

    async def _run(self, sql: str, params: Sequence[Any]) -> psycopg.AsyncCursor[Any]:
        if self._begin is None:
            await self._cur.execute(_pg(sql), params or None)
            return self._cur
        first = psycopg.AsyncClientCursor(self._conn)
        await first.execute(f"{self._begin}; {_pg(sql)}", params or None)
        self._begin, self.begun = None, True
        first.nextset()  # past BEGIN's (empty) result
        return first

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self._run(sql, params)).rowcount

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._run(sql, params)

    async def fence(self, sql: str, params: Sequence[Any] = ()) -> None:
        if (await self._run(sql, params)).rowcount < 1:
            raise Fenced()

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) == 1 or (rows and self._begin is not None):
            for row in rows:
                await self._run(sql, row)
        elif rows:
            await self._cur.executemany(_pg(sql), rows)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = await (await self._run(sql, params)).fetchone()
        return None if row is None else tuple(row)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await (await self._run(sql, params)).fetchall()]

    async def all_at_once(self, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
        """A whole read, as the transaction's only work: one query, no BEGIN
        or COMMIT for a lone statement."""
        assert self._begin is not None, "all_at_once must be the transaction's only work"
        self._begin = None
        cur = psycopg.AsyncClientCursor(self._conn)
        params = [value for _, values in queries for value in values]
        if len(queries) == 1:
            await cur.execute(_pg(queries[0][0]), params or None)
            return [[tuple(r) for r in await cur.fetchall()]]
        parts = [BEGIN_READ, *(_pg(sql) for sql, _ in queries), "COMMIT"]
        await cur.execute("; ".join(parts), params or None)
        found = []
        for _ in queries:
            cur.nextset()
            found.append([tuple(r) for r in await cur.fetchall()])
        return found


# The SQLSTATE perdure_fence() raises (migration 0005) when a fence finds no row.
FENCE_SQLSTATE = "PDF01"


@functools.lru_cache(maxsize=256)
def _server_fence(sql: str) -> str:
    """A fence the server enforces: the statement's rows, counted by
    ``perdure_fence()``, which raises (SQLSTATE PDF01) when there are none and
    so aborts the transaction on the server, even when COMMIT travels in the
    same query as the fence."""
    sql = _pg(sql)
    if sql.lstrip()[:6].upper() == "SELECT":
        return f"SELECT perdure_fence(count(*)) FROM ({sql}) AS fenced"
    return f"WITH fenced AS ({sql} RETURNING 1) SELECT perdure_fence(count(*)) FROM fenced"


class _All:
    """A ``later_all`` callback: it takes every row of its statement."""

    __slots__ = ("then",)

    def __init__(self, then: Callable[[list[tuple[Any, ...]]], None]) -> None:
        self.then = then


_Then = Callable[[tuple[Any, ...] | None], None] | _All


class _BatchedTx:
    """The Tx protocol for a write transaction: statements travel together.

    Statements whose results the body does not read (``send``, fences,
    ``later``) are held, and sent with the next statement whose result it
    awaits, or with COMMIT: one simple-protocol query with client-side
    binding ("BEGIN ...; UPDATE ...; INSERT ...; COMMIT"), one round trip.
    Fences are enforced by the server (``_server_fence``): a tripped fence
    aborts the transaction there, and is raised here as :class:`Fenced`. An
    inline workflow step, which reads nothing mid-way, is one round trip; it
    was five with a statement per round trip. Client-side binding also costs
    psycopg far less CPU than a pipeline of server-bound statements."""

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Any],
        statements: Statements | None = None,
        begin: tuple[str, ...] = (BEGIN_WRITE,),
    ) -> None:
        self._conn = conn
        self._begin = list(begin)  # the statements that open the transaction
        self._loader = psycopg.adapt.Transformer(conn)  # reads rows, writes odd values
        self._literal = literal_writer(conn, self._loader.as_literal)
        self._statements = statements  # prepared ones are sent as EXECUTE
        self._sql: list[str] = []
        self._params: list[Any] = []
        self._thens: list[_Then | None] = []
        self._rows: list[tuple[_Then, Any]] = []
        self._open = False  # BEGIN reached the server, and its answer came back
        self.begun = False  # the server may have done something (even committed)
        self.sent = 0  # queries sent so far
        self.committing = False  # COMMIT was sent: a lost answer leaves the outcome unknown

    def _hold(
        self,
        sql: str,
        params: Sequence[Any],
        then: _Then | None = None,
    ) -> None:
        self._sql.append(sql if self._statements is None else self._statements.text(sql))
        self._params.extend(params)
        self._thens.append(then)

    async def _flush(self, commit: bool = False) -> PGresult:
        """Send everything held (after BEGIN, the first time; COMMIT last if
        ``commit``) as one query (postgres_wire). Returns the result of the
        last statement held."""
        sql, params, thens = self._sql, self._params, self._thens
        self._sql, self._params, self._thens = [], [], []
        self.sent += 1
        parts = sql if self._open else [*self._begin, *sql]
        if commit:
            parts = [*parts, "COMMIT"]
            self.begun = self.committing = True  # an answer lost now leaves the outcome unknown
        query = "; ".join(parts).encode()
        if params:
            # Client-side binding done here: each value as a literal, put in
            # the placeholders by %-formatting the bytes (the statements have
            # no other %). psycopg would first parse the whole text for its
            # placeholders, which it caches only for short queries with few
            # parameters: a grouped commit's query is neither, and parsing it
            # had been a fifth of a busy worker's CPU.
            query = bind(query, params, self._literal)
        results = await wire.simple_query(self._conn, query)
        try:
            wire.check(results, self._conn)
        except psycopg.Error as exc:
            if exc.sqlstate == FENCE_SQLSTATE:
                raise Fenced() from None
            raise
        first = 0 if self._open else len(self._begin)  # past BEGIN's (empty) results
        self._open = self.begun = True
        for i, then in enumerate(thens):
            if isinstance(then, _All):
                self._rows.append((then, wire.rows(self._loader, results[first + i])))
            elif then is not None:
                found = wire.rows(self._loader, results[first + i])
                self._rows.append((then, found[0] if found else None))
        return results[first + len(thens) - 1]

    def mark(self) -> tuple[int, int, int, int]:
        """Where the transaction stands: see ``undo``."""
        return (self.sent, len(self._sql), len(self._params), len(self._thens))

    def undo(self, mark: tuple[int, int, int, int]) -> bool:
        """Forget the statements held since ``mark``, if none of them has been
        sent (False if one was: only a rollback can undo it)."""
        sent, statements, params, thens = mark
        if self.sent != sent:
            return False
        del self._sql[statements:], self._params[params:], self._thens[thens:]
        return True

    async def finish(self) -> None:
        """COMMIT, with whatever is still held; then hand ``later`` rows over."""
        if self._sql or self._open:
            await self._flush(commit=True)
        for then, got in self._rows:
            if isinstance(then, _All):
                then.then(got)
            else:
                then(got)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._hold(_pg(sql), params)
        count = (await self._flush()).command_tuples
        return -1 if count is None else count

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._hold(_pg(sql), params)

    async def fence(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._hold(_server_fence(sql), params)

    async def later(
        self, sql: str, params: Sequence[Any], then: Callable[[tuple[Any, ...] | None], None]
    ) -> None:
        self._hold(_pg(sql), params, then)

    async def later_all(
        self, sql: str, params: Sequence[Any], then: Callable[[list[tuple[Any, ...]]], None]
    ) -> None:
        self._hold(_pg(sql), params, _All(then))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self._hold(_pg(sql), row)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._hold(_pg(sql), params)
        found = wire.rows(self._loader, await self._flush())
        return found[0] if found else None

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._hold(_pg(sql), params)
        return wire.rows(self._loader, await self._flush())
