"""The PostgreSQL store writes values into its grouped queries as literals
(postgres_tx.literal_writer): its direct path for ints, floats and strings
must give exactly psycopg's bytes, and the server must read every literal
back as the value it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg.adapt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from perdure._store.postgres_tx import Array, literal_writer

VALUES = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(exclude_characters="\x00"))
    | st.booleans()
    | st.none()
)


@pytest.fixture
async def conn(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    opened = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    yield opened
    await opened.close()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES)
@example(value="o'k")
@example(value="back\\slash")
@example(value="été ☃")
@example(value=-1)
@example(value=-0.0)
@example(value=1.7e9 + 0.123)
@example(value="\ud800")
async def test_direct_literals_are_psycopgs_bytes(
    conn: psycopg.AsyncConnection[Any], value: Any
) -> None:
    psycopgs = psycopg.adapt.Transformer(psycopg.AsyncClientCursor(conn)).as_literal
    if value is None:
        return  # (never written by the writer: NULL is its callers')
    try:
        expected = psycopgs(value)
    except UnicodeEncodeError:  # a lone surrogate: UTF-8 cannot carry it
        with pytest.raises(UnicodeEncodeError):
            literal_writer(conn)(value)
        return
    assert literal_writer(conn)(value) == expected


async def test_the_server_reads_each_literal_back(conn: psycopg.AsyncConnection[Any]) -> None:
    literal = literal_writer(conn)
    cases: list[tuple[Any, bytes]] = [
        *((v, b"bigint") for v in (0, -7, 2**62, -(2**63))),
        *((v, b"float8") for v in (1.5, -2.25, -0.0, 1.7e9 + 0.123, 5e-324)),
        *((v, b"text") for v in ("", "o'k", "''", "é ☃", "a\\b", "%s")),
    ]
    cur = conn.cursor()
    for value, kind in cases:
        await cur.execute(b"SELECT (" + literal(value) + b")::" + kind)
        row = await cur.fetchone()
        assert row is not None and row[0] == value and type(row[0]) is type(value), value
    # A negative number after a minus sign stays a number, never a comment.
    await cur.execute(b"SELECT 1 -" + literal(-7))
    assert await cur.fetchone() == (8,)


async def test_a_nul_in_a_string_is_refused_by_psycopg(conn: psycopg.AsyncConnection[Any]) -> None:
    with pytest.raises(psycopg.DataError, match="NUL"):
        literal_writer(conn)("a\x00b")


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(
        st.text(alphabet=st.characters(exclude_characters="\x00")) | st.none(), min_size=1
    ),
    floats=st.lists(st.floats(allow_nan=False) | st.none(), min_size=1),
    ints=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1),
)
@example(texts=["o'k", "a\\b", '{"x": "y"}', None, "NULL", ","], floats=[-0.0, 1.5], ints=[-1])
# (columns written whole: strings only, floats only, negative numbers first)
@example(texts=["o'k", "''", "','", "é ☃", "NULL", ""], floats=[-1e-300, 2.5, -0.0], ints=[-5, 3])
@example(texts=[""], floats=[1.7e9 + 0.123], ints=[-(2**63)])
async def test_arrays_read_back_as_their_items(
    conn: psycopg.AsyncConnection[Any], texts: list[Any], floats: list[Any], ints: list[int]
) -> None:
    """An Array parameter (the arrays of a group's plans) is ARRAY[...] of its
    items' literals: the server reads every item back as it was."""
    literal = literal_writer(conn)
    cur = conn.cursor()
    for values, kind in ((texts, b"text[]"), (floats, b"float8[]"), (ints, b"bigint[]")):
        await cur.execute(b"SELECT (" + literal(Array(values)) + b")::" + kind)
        row = await cur.fetchone()
        assert row is not None and row[0] == values


async def test_arrays_fit_a_prepared_statement_s_typed_parameters(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    """The plans' statements are prepared once a connection has sent them
    twice (postgres_prepared): an Array must then coerce to its parameter's
    type in ``EXECUTE``, an array of NULLs too (ARRAY[NULL] is a text[])."""
    literal = literal_writer(conn)
    cur = conn.cursor()
    cases: list[tuple[bytes, list[Any]]] = [
        (b"text[]", [None, None]),
        (b"text[]", ["a", None]),
        (b"float8[]", [None]),
        (b"float8[]", [1.5, None]),
        (b"bigint[]", [None, None]),
        (b"bigint[]", [2**40, None]),
        (b"integer[]", [None]),
        (b"integer[]", [7, None]),
    ]
    for number, (kind, values) in enumerate(cases):
        name = b"perdure_array_%d" % number
        await cur.execute(b"PREPARE " + name + b"(" + kind + b") AS SELECT $1")
        await cur.execute(b"EXECUTE " + name + b"(" + literal(Array(values)) + b")")
        row = await cur.fetchone()
        assert row is not None and row[0] == values, kind
