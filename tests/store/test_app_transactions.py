"""The application database's side of ``perdure.transactions``, both
dialects (``store_url``: a fresh SQLite file or PostgreSQL schema): two
attempts with one key at once commit once; records older than ``keep`` are
deleted, at most once an hour; the outputs table may be named; connections
are reused and closed; bad arguments are refused with the reason."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from perdure.errors import StoreError
from perdure.transactions import AppDatabase

WAIT = 10.0  # seconds a test waits for another thread, at most


def same(value: Any) -> Any:
    return value


@pytest.fixture
def db(store_url: str) -> Iterator[AppDatabase]:
    app = AppDatabase(store_url)
    app._backend.run(None, lambda conn: conn.execute("CREATE TABLE t (name TEXT)"), None, None)
    yield app
    app.close()


def q(db: AppDatabase, sql: str) -> str:
    return sql if db.dialect == "sqlite" else sql.replace("?", "%s")


def rows(db: AppDatabase, sql: str) -> list[tuple[Any, ...]]:
    return db._backend.run(None, lambda conn: list(conn.execute(sql).fetchall()), None, None)


def writer(
    db: AppDatabase,
    name: str,
    before_commit: threading.Event | None = None,
    inside: threading.Event | None = None,
) -> Any:
    def body(conn: Any) -> str:
        conn.execute(q(db, "INSERT INTO t VALUES (?)"), (name,))
        if inside is not None:
            inside.set()
        if before_commit is not None:
            assert before_commit.wait(WAIT)
        return name

    return body


def test_two_attempts_at_once_commit_once(db: AppDatabase) -> None:
    """On PostgreSQL the second attempt runs and commits while the first
    is between its writes and its record: the first's record then fails on
    the key, its writes roll back, and it returns the second's result. On
    SQLite the second waits at BEGIN IMMEDIATE and finds the first's record."""
    go_on, inside = threading.Event(), threading.Event()
    results: dict[str, str] = {}

    def first() -> None:
        results["first"] = db._backend.run("k", writer(db, "first", go_on, inside), same, same)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(WAIT)
    if db.dialect == "postgresql":
        results["second"] = db._backend.run("k", writer(db, "second"), same, same)
        go_on.set()
        thread.join(WAIT)
        assert results == {"first": "second", "second": "second"}
        assert rows(db, "SELECT name FROM t") == [("second",)]
    else:
        second = threading.Thread(
            target=lambda: results.update(second=db._backend.run("k", writer(db, "2"), same, same))
        )
        second.start()
        go_on.set()
        thread.join(WAIT)
        second.join(WAIT)
        assert results == {"first": "first", "second": "first"}
        assert rows(db, "SELECT name FROM t") == [("first",)]
    assert rows(db, "SELECT key, result FROM perdure_transactions") == [("k", results["first"])]


@pytest.fixture
def pg_url(pg_database: Any) -> str:
    return str(pg_database.fresh_url())


async def test_two_async_attempts_at_once_commit_once(pg_url: str) -> None:
    db = AppDatabase(pg_url)
    try:
        await db._backend.run_async(None, _create, None, None)
        go_on = asyncio.Event()

        inside = asyncio.Event()

        async def body(name: str, wait: bool) -> Any:
            async def write(conn: psycopg.AsyncConnection[Any]) -> str:
                await conn.execute("INSERT INTO t VALUES (%s)", (name,))
                if wait:
                    inside.set()
                    await asyncio.wait_for(go_on.wait(), WAIT)
                return name

            return await db._backend.run_async("k", write, same, same)

        first = asyncio.create_task(body("first", True))
        await asyncio.wait_for(inside.wait(), WAIT)
        assert await body("second", False) == "second"
        go_on.set()
        assert await first == "second"
        assert rows(db, "SELECT name FROM t") == [("second",)]
    finally:
        db.close()


async def _create(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("CREATE TABLE t (name TEXT)")


def test_old_records_are_deleted_at_most_once_an_hour(db: AppDatabase, store_url: str) -> None:
    def aged(conn: Any, key: str, days: int) -> None:
        if db.dialect == "sqlite":
            sql = "INSERT INTO perdure_transactions VALUES (?, '1', unixepoch('now') - ? * 86400)"
        else:
            sql = "INSERT INTO perdure_transactions VALUES (%s, '1', now() - %s * interval '1 day')"
        conn.execute(sql, (key, days))

    db._backend.run(None, lambda conn: [aged(conn, "old", 31), aged(conn, "young", 29)], None, None)
    fresh = AppDatabase(store_url)  # (a new process's first transaction: it prunes)
    try:
        fresh._backend.run("new", writer(db, "new"), same, same)
        assert rows(db, "SELECT key FROM perdure_transactions ORDER BY key") == [
            ("new",),
            ("young",),
        ]
        fresh._backend.run(None, lambda conn: aged(conn, "old-2", 31), None, None)
        fresh._backend.run("newer", writer(db, "newer"), same, same)  # (within the hour: kept)
        assert ("old-2",) in rows(db, "SELECT key FROM perdure_transactions")
    finally:
        fresh.close()


def test_records_kept_for_ever_with_keep_none(store_url: str) -> None:
    db = AppDatabase(store_url, keep=None, table="outputs")
    try:
        db._backend.run("a", lambda conn: "a", same, same)
        epoch = "0" if db.dialect == "sqlite" else "'epoch'"
        sql = f"UPDATE outputs SET committed_at = {epoch}"
        db._backend.run(None, lambda conn: conn.execute(sql), None, None)
        db._backend.run("b", lambda conn: "b", same, same)
        assert rows(db, "SELECT key FROM outputs ORDER BY key") == [("a",), ("b",)]
    finally:
        db.close()


def test_a_schema_qualified_table_on_postgres(pg_url: str) -> None:
    store_url = pg_url
    schema = f"app_{secrets.token_hex(4)}"
    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    db = AppDatabase(store_url, table=f"{schema}.outputs")
    try:
        assert db._backend.run("k", lambda conn: 5, str, int) == 5
        assert db._backend.run("k", lambda conn: 6, str, int) == 5  # (recorded)
        assert rows(db, f"SELECT key, result FROM {schema}.outputs") == [("k", "5")]
    finally:
        db.close()
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_connections_are_reused_up_to_max_idle_and_closed(store_url: str) -> None:
    db = AppDatabase(store_url, max_idle=1)
    seen: list[Any] = []
    db._backend.run(None, seen.append, None, None)
    db._backend.run(None, seen.append, None, None)
    assert seen[0] is seen[1]
    db.close()
    assert db._backend._idle == []
    db._backend.run(None, seen.append, None, None)  # (a new one after close)
    assert seen[2] is not seen[0]
    db.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"url": ""}, ValueError, "must be a non-empty string"),
        ({"url": "mysql://x"}, ValueError, "unsupported database URL 'mysql://x' (scheme 'mysql')"),
        ({"url": "sqlite://:memory:"}, ValueError, "an in-memory SQLite database cannot"),
        ({"url": "sqlite:/x.db"}, StoreError, "malformed SQLite URL"),
        ({"isolation_level": "serializable"}, ValueError, "isolation_level is for PostgreSQL"),
        ({"table": "drop table x;"}, ValueError, "table must be a plain SQL name"),
        ({"table": "a.b.c"}, ValueError, "not 'a.b.c'"),
        ({"keep": timedelta(0)}, ValueError, "keep must be a positive timedelta or None"),
        ({"keep": 30}, ValueError, "keep must be a positive timedelta or None, not 30"),
        ({"max_idle": -1}, ValueError, "max_idle must be an int >= 0, not -1"),
        ({"timeout": float("nan")}, ValueError, "timeout must be a number of seconds >= 0"),
    ],
)
def test_bad_arguments_are_refused(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], says: str
) -> None:
    given = {"url": f"sqlite:///{tmp_path / 'app.db'}", **kwargs}
    with pytest.raises(error) as raised:
        AppDatabase(**given)
    assert says in str(raised.value)


def test_an_unknown_isolation_level_is_refused(pg_url: str) -> None:
    store_url = pg_url
    with pytest.raises(ValueError, match="unknown isolation_level 'snapshot': use one of"):
        AppDatabase(store_url, isolation_level="snapshot")
    db = AppDatabase(store_url, isolation_level="serializable")
    try:
        level = db._backend.run(
            None, lambda conn: conn.execute("SHOW transaction_isolation").fetchone(), None, None
        )
        assert level == ("serializable",)
    finally:
        db.close()


def test_bad_functions_are_refused(tmp_path: Path) -> None:
    db = AppDatabase(f"sqlite:///{tmp_path / 'app.db'}")

    async def coroutine(conn: Any) -> None: ...

    def nothing() -> None: ...

    def keyword_only(*, conn: Any) -> None: ...

    def generator(conn: Any) -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="async def, but SQLite's driver has no async API"):
        db.transaction(coroutine)
    with pytest.raises(TypeError, match="must take the connection as its first parameter"):
        db.transaction(nothing)
    with pytest.raises(TypeError, match="must take the connection as its first parameter"):
        db.transaction(keyword_only)
    with pytest.raises(TypeError, match="not a generator function"):
        db.transaction(generator)
    with pytest.raises(TypeError, match="needs a function"):
        db.transaction(42)
    with pytest.raises(TypeError, match="unexpected keyword argument 'retries'"):
        db.transaction(retries=3)  # type: ignore[call-overload]


def _terminate_kept(url: str, pids: list[int]) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_kept_connection_the_server_closed_is_replaced(pg_url: str) -> None:
    """A server restart, or an idle timeout, closes the connections kept for
    reuse: the next transaction opens a new one instead of failing its
    attempt (once the function has run, a lost connection is the attempt's
    failure, as any other)."""
    db = AppDatabase(pg_url, max_idle=2)
    try:
        pids = [db._backend.run(None, lambda conn: conn.info.backend_pid, None, None)]
        _terminate_kept(pg_url, pids)
        pid = db._backend.run("k", lambda conn: conn.info.backend_pid, str, int)
        assert pid != pids[0]
        assert rows(db, "SELECT key, result FROM perdure_transactions") == [("k", str(pid))]

        def killed_in_the_function(conn: Any) -> None:
            _terminate_kept(pg_url, [conn.info.backend_pid])
            conn.execute("SELECT 1")

        with pytest.raises(psycopg.OperationalError):
            db._backend.run("k2", killed_in_the_function, str, int)
    finally:
        db.close()


async def test_a_kept_async_connection_the_server_closed_is_replaced(pg_url: str) -> None:
    db = AppDatabase(pg_url, max_idle=2)
    try:

        async def pid_of(conn: psycopg.AsyncConnection[Any]) -> int:
            return conn.info.backend_pid

        first = await db._backend.run_async(None, pid_of, None, None)
        _terminate_kept(pg_url, [first])
        second = await db._backend.run_async("k", pid_of, str, int)
        assert second != first
        assert await db._backend.run_async("k", pid_of, str, int) == second  # (recorded)
    finally:
        db.close()


def test_without_psycopg_a_postgresql_url_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from perdure._store import store_for_url

    monkeypatch.setitem(sys.modules, "psycopg", None)  # (importing it raises ImportError)
    for module in ("perdure._store.apptx_postgres", "perdure._store.postgres"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    for make in (AppDatabase, store_for_url):
        with pytest.raises(StoreError, match=r"need the psycopg driver.*pip install perdure\["):
            make("postgresql://nowhere/app")


@pytest.fixture
def sa_engine(store_url: str) -> Iterator[Any]:
    import sqlalchemy as sa

    made = sa.create_engine(store_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with made.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (name TEXT)"))
    yield made
    made.dispose()


def test_two_attempts_at_once_commit_once_through_sqlalchemy(sa_engine: Any) -> None:
    """As test_two_attempts_at_once_commit_once, on an Engine's Session:
    the second to record the key rolls back and returns the first's result."""
    import sqlalchemy as sa

    db = AppDatabase(sa_engine)
    go_on, inside = threading.Event(), threading.Event()
    results: dict[str, str] = {}

    def writer_of(name: str, wait: bool) -> Any:
        def body(session: Any) -> str:
            session.execute(sa.text("INSERT INTO t VALUES (:name)"), {"name": name})
            if wait:
                inside.set()
                assert go_on.wait(WAIT)
            return name

        return body

    def first() -> None:
        results["first"] = db._backend.run("k", writer_of("first", True), same, same)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(WAIT)
    second = threading.Thread(
        target=lambda: results.update(
            second=db._backend.run("k", writer_of("2nd", False), same, same)
        )
    )
    second.start()
    if sa_engine.dialect.name == "postgresql":
        second.join(WAIT)  # (it commits while the first waits between its writes and its record)
    go_on.set()
    thread.join(WAIT)
    second.join(WAIT)
    with sa_engine.connect() as conn:
        names = [r[0] for r in conn.execute(sa.text("SELECT name FROM t"))]
        kept = [
            tuple(r) for r in conn.execute(sa.text("SELECT key, result FROM perdure_transactions"))
        ]
    winner = "2nd" if sa_engine.dialect.name == "postgresql" else "first"
    assert results == {"first": winner, "second": winner}
    assert names == [winner] and kept == [("k", winner)]


def test_old_records_are_deleted_through_sqlalchemy(sa_engine: Any) -> None:
    import sqlalchemy as sa

    AppDatabase(sa_engine)._backend.run("young", lambda session: "y", same, same)
    sqlite = sa_engine.dialect.name == "sqlite"
    old = "unixepoch('now') - 40 * 86400" if sqlite else "now() - interval '40 days'"
    with sa_engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO perdure_transactions VALUES ('old', '1', {old})"))
    AppDatabase(sa_engine)._backend.run("new", lambda session: "n", same, same)  # (it prunes)
    with sa_engine.connect() as conn:
        keys = sorted(r[0] for r in conn.execute(sa.text("SELECT key FROM perdure_transactions")))
    assert keys == ["new", "young"]


def test_a_serialization_failure_fails_the_attempt_and_leaves_nothing(pg_url: str) -> None:
    """At isolation_level="serializable", a transaction that lost a race
    raises the serialization failure (what fails the activity's attempt,
    for its retry policy to run again), with nothing of it committed and
    its connection kept; run again, it applies."""
    db = AppDatabase(pg_url, isolation_level="serializable", max_idle=2)
    try:
        db._backend.run(None, lambda conn: conn.execute("CREATE TABLE c (n INTEGER)"), None, None)
        db._backend.run(None, lambda conn: conn.execute("INSERT INTO c VALUES (0)"), None, None)
        read, other_done = threading.Event(), threading.Event()

        def add_one(wait: bool) -> Any:
            def body(conn: Any) -> int:
                (n,) = conn.execute("SELECT n FROM c").fetchone()
                if wait:
                    read.set()
                    assert other_done.wait(WAIT)
                conn.execute("UPDATE c SET n = %s", (n + 1,))
                return int(n + 1)

            return body

        failure: list[BaseException] = []

        def racing() -> None:
            try:
                db._backend.run("a", add_one(True), str, int)
            except psycopg.errors.SerializationFailure as exc:
                failure.append(exc)

        thread = threading.Thread(target=racing)
        thread.start()
        assert read.wait(WAIT)
        assert db._backend.run("b", add_one(False), str, int) == 1
        other_done.set()
        thread.join(WAIT)
        assert len(failure) == 1  # (the attempt fails; nothing of it was committed)
        assert rows(db, "SELECT key FROM perdure_transactions") == [("b",)]
        assert db._backend.run("a", add_one(False), str, int) == 2  # (the retry)
        assert rows(db, "SELECT n FROM c") == [(2,)]
        assert sorted(rows(db, "SELECT key, result FROM perdure_transactions")) == [
            ("a", "2"),
            ("b", "1"),
        ]
    finally:
        db.close()
