"""What only the PostgreSQL backend has: connection errors, migrations under an
advisory lock, LISTEN/NOTIFY wake-ups, reconnection, and psycopg errors
surfacing as StoreError. (The Store contract itself is tests/store, run on
both backends.)"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pg_private
import pg_testdb
import psycopg
import pytest

import perdure
from perdure import _history as h
from perdure._store import postgres_listen, store_for_url
from perdure._store.base import NewRun, Store, TurnCommit
from perdure._store.postgres import PostgresStore, parse_url


def new_run(i: int) -> NewRun:
    return NewRun(f"wf-{i}", f"run-{i}", "t", "q", [], {}, 1)


async def opened(url: str) -> PostgresStore:
    store = store_for_url(url)
    assert isinstance(store, PostgresStore)
    await store.open()
    return store


# ---------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://postgres@127.0.0.1:{port}/test", "Connection refused"),
        ("postgresql://postgres@127.0.0.1:{port}/test?pool_max_size=many", "pool_max_size"),
        ("postgresql://postgres@127.0.0.1:{port}/test?no_such_option=1", "malformed"),
        # Each had failed deep in the store, or opened a pool that could never
        # start (a timeout of 0 or below), or lost its fraction.
        ("postgresql://u@127.0.0.1:{port}/t?pool_max_size=nan", "must be a whole number from 1"),
        ("postgresql://u@127.0.0.1:{port}/t?pool_min_size=inf", "must be a whole number from 1"),
        ("postgresql://u@127.0.0.1:{port}/t?pool_min_size=0", "must be a whole number from 1"),
        ("postgresql://u@127.0.0.1:{port}/t?pool_max_size=2.5", "must be a whole number from 1"),
        ("postgresql://u@127.0.0.1:{port}/t?pool_timeout=0", "a number of seconds above 0"),
        ("postgresql://u@127.0.0.1:{port}/t?pool_timeout=nan", "a number of seconds above 0"),
        ("postgresql://u@127.0.0.1:{port}/t?prepare=2", "must be 0 or 1"),
        (
            "postgresql://u@127.0.0.1:{port}/t?pool_min_size=5&pool_max_size=2",
            "pool_max_size=2 is below pool_min_size=5",
        ),
    ],
)
async def test_unreachable_or_malformed_urls_raise_store_error(url: str, message: str) -> None:
    url = url.format(port=pg_private.free_port())  # nothing listens there
    began = time.monotonic()
    with pytest.raises(perdure.StoreError, match=message):
        await perdure.Client.connect(url)
    assert time.monotonic() - began < 5


async def test_missing_database_or_role_is_explained(pg_database: Any) -> None:
    server = pg_database.server
    with pytest.raises(perdure.StoreError, match=r'database "no_such_db" does not exist.*createdb'):
        await perdure.Client.connect(pg_database.url.replace(pg_database.name, "no_such_db"))
    bad_role = server.replace("postgresql://postgres@", "postgresql://no_such_role@")
    with pytest.raises(perdure.StoreError, match=r'role "no_such_role" does not exist'):
        await perdure.Client.connect(bad_role)


def test_pool_options_are_read_from_the_url_and_hidden_from_libpq() -> None:
    conninfo, options, where = parse_url(
        "postgresql://ada:secret@db.example:6543/app?pool_max_size=20&sslmode=disable"
    )
    assert options["pool_max_size"] == 20 and options["pool_min_size"] == 1
    assert "pool_max_size" not in conninfo and "sslmode=disable" in conninfo
    assert where == "postgresql://ada@db.example:6543/app"  # no password in messages


def test_a_missing_driver_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("perdure._store.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(perdure.StoreError, match=r"pip install perdure\[postgres\]"):
        store_for_url("postgresql://localhost/db")


def test_the_sqlite_path_never_imports_psycopg(tmp_path: Path) -> None:
    code = (
        "import sys, perdure\n"
        f"c = perdure.SyncClient.connect('sqlite:///{tmp_path / 'x.db'}')\n"
        "c.list(); c.close()\n"
        "assert not [m for m in sys.modules if m.startswith('psycopg')], 'psycopg imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------- schema


async def test_concurrent_first_opens_migrate_once(pg_url: str) -> None:
    stores = await asyncio.gather(*(opened(pg_url) for _ in range(4)))
    try:
        versions = {await s.schema_version() for s in stores}
        assert versions == {max(v for v, _ in migrations_shipped())}
    finally:
        for s in stores:
            await s.close()


def migrations_shipped() -> list[tuple[int, str]]:
    from perdure._store.postgres_schema import migrations

    return migrations()


def _pages_after_one_update(url: str, runs: int) -> list[tuple[int, int]]:
    """The heap page of every fourth run before and after one update of it
    that changes no indexed column, as every step's turn does."""
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [f"run-{i}" for i in range(0, runs, 4)]
        before = dict(
            conn.execute(
                "SELECT run_id, (ctid::text::point)[0]::int FROM runs WHERE run_id = ANY(%s)",
                (ids,),
            ).fetchall()
        )
        for run_id in ids:
            conn.execute(
                "UPDATE runs SET version = version + 1, updated_at = updated_at + 1,"
                " state = '{\"step\": 1}' WHERE run_id = %s",
                (run_id,),
            )
        after = dict(
            conn.execute(
                "SELECT run_id, (ctid::text::point)[0]::int FROM runs WHERE run_id = ANY(%s)",
                (ids,),
            ).fetchall()
        )
    return [(before[i], after[i]) for i in ids]


async def test_a_runs_update_stays_on_its_page(
    pg_database: pg_testdb.TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 7 leaves room on each page of runs (and tasks), so that a step's
    update of its run's row is heap-only: its new version on the old one's
    page, no entry written in the run's eight indexes. Without it the pages
    of newly created runs are full, and updates leave them."""
    from perdure._store import postgres_schema

    pg_url = pg_database.fresh_url()
    store = await opened(pg_url)
    try:
        for i in range(120):  # several pages of runs
            await store.create_run(new_run(i), "fail")
    finally:
        await store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        options = dict(
            conn.execute(
                "SELECT relname, reloptions FROM pg_class"
                " WHERE relname IN ('runs', 'tasks')"
                " AND relnamespace = current_schema()::regnamespace"
            ).fetchall()
        )
    # (Schema 10 gives runs half of each page: about one update in eight of
    # an open run still left a page at 70%.)
    assert "fillfactor=50" in options["runs"] and "fillfactor=70" in options["tasks"], options
    moves = _pages_after_one_update(pg_url, 120)
    assert moves and all(before == after for before, after in moves), moves

    # The control: the same runs in a database at schema 6 (full pages).
    every = postgres_schema.migrations()
    monkeypatch.setattr(postgres_schema, "migrations", lambda: every[:6])
    pg_url = pg_database.fresh_url()
    store = await opened(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # (Today's store writes priorities and fairness keys, schema 16's and
        # 22's columns: borrowed, which rewrites no page.)
        for table in ("runs", "tasks"):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN priority INTEGER NOT NULL DEFAULT 3")
            conn.execute(f"ALTER TABLE {table} ADD COLUMN fairness_key TEXT NOT NULL DEFAULT ''")
    try:
        for i in range(120):
            await store.create_run(new_run(i), "fail")
    finally:
        await store.close()
    moves = _pages_after_one_update(pg_url, 120)
    assert any(before != after for before, after in moves), moves


async def test_a_newer_schema_is_refused_untouched(pg_url: str) -> None:
    store = await opened(pg_url)
    await store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE perdure_schema SET version = 999")
    with pytest.raises(perdure.SchemaVersionError, match=r"version 999.*upgrade perdure"):
        await perdure.Client.connect(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM perdure_schema").fetchone() == (999,)


async def test_tables_and_columns_match_the_sqlite_schema(pg_url: str, tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'same.db'}"
    for url in (pg_url, sqlite_url):
        store = store_for_url(url)
        await store.open()
        await store.close()
    with closing(sqlite3.connect(tmp_path / "same.db")) as conn, conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        lite = {
            t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")}
            for t in tables
            if not t.startswith("sqlite_")
        }
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
        ).fetchall()
    pg: dict[str, set[str]] = {}
    for table, column in rows:
        pg.setdefault(table, set()).add(column)
    # SQLite's feed of ended runs (its migration 6) stands in for the run
    # ids that PostgreSQL's NOTIFYs carry.
    assert lite.pop("ended_runs") == {"id", "run_id"}
    # SQLite keeps events in the order they are written under a rowid (its
    # migration 7), as PostgreSQL's heap does without a column.
    lite["events"].remove("id")
    assert pg == lite


# ---------------------------------------------------------------- wake-ups


async def woken_by(store: Store, action: Any, within: float = 2.0) -> float:
    """Seconds until ``store``'s listeners hear of ``action`` (done elsewhere)."""
    loop = asyncio.get_running_loop()
    heard = asyncio.Event()

    def listener() -> None:
        loop.call_soon_threadsafe(heard.set)

    store.add_listener(listener)
    try:
        began = time.monotonic()
        await action()
        await asyncio.wait_for(heard.wait(), within)
        return time.monotonic() - began
    finally:
        store.remove_listener(listener)


async def test_a_commit_in_one_process_wakes_listeners_in_another(pg_url: str) -> None:
    writer, reader = await opened(pg_url), await opened(pg_url)
    try:
        assert reader._listener is not None
        await asyncio.wait_for(reader._listener.connected.wait(), 5)
        await writer.create_run(new_run(1), "fail")
        latency = await woken_by(
            reader, lambda: writer.deliver("wf-1", None, h.SignalReceived(name="go"))
        )
        assert latency < 1.0  # a NOTIFY, not the 0.2 s poll of a worker nor a timeout
    finally:
        await writer.close()
        await reader.close()


async def test_the_listener_reconnects_after_its_connection_is_killed(pg_url: str) -> None:
    writer, reader = await opened(pg_url), await opened(pg_url)
    try:
        listener = reader._listener
        assert listener is not None
        await asyncio.wait_for(listener.connected.wait(), 5)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
        # Reconnecting wakes the store once (it may have missed notifications).
        deadline = time.monotonic() + 10
        while listener.reconnects < 1 or not listener.connected.is_set():
            assert time.monotonic() < deadline, "the listener did not reconnect"
            await asyncio.sleep(0.02)
        await writer.create_run(new_run(2), "fail")
        await woken_by(reader, lambda: writer.deliver("wf-2", None, h.SignalReceived(name="x")))
    finally:
        await writer.close()
        await reader.close()


async def test_the_listener_hears_what_arrives_during_its_ping(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quiet for PING_EVERY, the listener checks its connection with a query
    that psycopg runs; a notification that arrives meanwhile is read by
    psycopg, not by the listener's own loop, and must be heard all the same."""
    # A ping's answer is waited for PING_EVERY too: this one takes half.
    monkeypatch.setattr(postgres_listen, "PING_EVERY", 1.0)
    pinging = asyncio.Event()
    execute = psycopg.AsyncConnection.execute

    async def slow_ping(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if query == "SELECT 1":  # (the ping: held open while the NOTIFY comes)
            pinging.set()
            query = "SELECT 1 FROM pg_sleep(0.5)"
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", slow_ping)
    writer, reader = await opened(pg_url), await opened(pg_url)
    try:
        listener = reader._listener
        assert listener is not None
        await asyncio.wait_for(listener.connected.wait(), 5)
        await writer.create_run(new_run(3), "fail")
        pinging.clear()
        await asyncio.wait_for(pinging.wait(), 5)
        latency = await woken_by(
            reader, lambda: writer.deliver("wf-3", None, h.SignalReceived(name="go"))
        )
        assert latency < 1.0  # at the ping's end (psycopg keeps what no handler takes)
        assert listener.reconnects == 0
        # And after the pings, the listener's own loop hears the next one.
        await woken_by(reader, lambda: writer.deliver("wf-3", None, h.SignalReceived(name="x")))
    finally:
        await writer.close()
        await reader.close()


# ---------------------------------------------------------------- connections and errors


def end_perdure_sessions(admin: psycopg.Connection[Any]) -> list[int]:
    """Terminate every perdure session of this database; their process ids."""
    rows = admin.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'perdure'"
        " AND pid <> pg_backend_pid()"
    ).fetchall()
    return [pid for pid, _ in rows]


async def test_dead_pooled_connections_are_replaced_transparently(pg_url: str) -> None:
    store = await opened(pg_url)
    try:
        await store.create_run(new_run(3), "fail")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            killed = end_perdure_sessions(admin)
        assert killed
        run = await store.get_run("wf-3")  # on a new connection, without an error
        assert run is not None and run.run_id == "run-3"
    finally:
        await store.close()


async def test_a_write_after_the_server_ended_pooled_sessions_goes_through_once(
    pg_url: str,
) -> None:
    # A turn's commit carries COMMIT in its first (and only) query, so a
    # connection that dies under it would leave the outcome unknown: the store
    # must notice a session the server already ended before it writes, and
    # take another connection, without an error and without doubling anything.
    sep = "&" if "?" in pg_url else "?"
    store = await opened(f"{pg_url}{sep}pool_min_size=4")
    try:
        commits = []
        for i in range(4):
            await store.create_run(new_run(10 + i), "fail")
        for task in await store.claim_workflow_tasks(["q"], "w", 30, 4):
            data = await store.load_turn(task.run_id, 0)
            events = h.turn_events(data.run.last_seq, 1.0, [e for _, e in data.inbox], [])
            commits.append(
                TurnCommit(
                    task=task,
                    run_id=task.run_id,
                    expected_version=data.run.version,
                    events=events,
                    consumed_inbox=[i for i, _ in data.inbox],
                )
            )
        assert len(commits) == 4
        with psycopg.connect(pg_url, autocommit=True) as admin:
            pids = end_perdure_sessions(admin)
            assert len(pids) >= 4
            # Ended, not ending: a session the server is ending *while* a
            # commit travels leaves that commit's outcome unknown (StoreError,
            # and the turn is redone after its lease), which is not this test.
            deadline = time.monotonic() + 10
            while admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
            ).fetchone() != (0,):
                assert time.monotonic() < deadline, "terminated sessions still listed"
                time.sleep(0.01)
        for commit in commits:  # each may meet a dead pooled connection first
            assert await store.commit_turn(commit) is True
        for commit in commits:
            history = await store.history(commit.run_id)
            assert [e.TYPE for e in history] == ["TurnStarted", "WorkflowStarted"]
    finally:
        await store.close()


async def test_psycopg_errors_surface_as_store_errors(pg_url: str) -> None:
    store = await opened(pg_url)
    try:
        await store.create_run(new_run(4), "fail")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("ALTER TABLE events RENAME TO events_gone")
        with pytest.raises(perdure.StoreError, match="events") as err:
            await store.history("run-4")
        assert isinstance(err.value.__cause__, psycopg.Error)
        await store.close()
        with pytest.raises(perdure.StoreError, match="closed"):
            await store.get_run("wf-4")
    finally:
        await store.close()


_LEFT_OPEN = """
import asyncio, sys
from psycopg_pool.pool_async import MaintenanceTask
from perdure._store.postgres import PostgresStore

busy = asyncio.Event()

class Busy(MaintenanceTask):  # holds a pool worker, as replacing a connection does
    async def _run(self, pool):
        busy.set()
        await asyncio.sleep(3600)

async def main():
    store = PostgresStore(sys.argv[1])
    await store.open()
    store._pool.run_task(Busy(store._pool))
    await asyncio.wait_for(busy.wait(), 30)
    print("worker busy", flush=True)
    # ends without store.close()

asyncio.run(main())
print("loop ended", flush=True)
"""


def test_a_store_left_open_does_not_hang_the_end_of_its_event_loop(pg_url: str) -> None:
    # asyncio.run cancels every task at its end. psycopg_pool's maintenance
    # worker absorbs that cancellation while it runs a task and would then
    # wait forever for a stop message; the store's guard sends it.
    done = subprocess.run(
        [sys.executable, "-c", _LEFT_OPEN, pg_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["worker busy", "loop ended"]
    assert "not closed before its event loop ended" in done.stderr


async def test_a_closed_store_leaves_no_task_behind(pg_url: str) -> None:
    before = asyncio.all_tasks()
    store = await opened(pg_url)
    assert any(t.get_name() == "perdure-pool-guard" for t in asyncio.all_tasks() - before)
    await store.close()
    await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()


async def test_the_default_clock_is_the_servers(pg_url: str) -> None:
    store = await opened(pg_url)
    try:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        assert row is not None and abs(store.clock() - row[0]) < 0.5
    finally:
        await store.close()


async def test_an_up_to_date_database_opens_without_the_migration_lock(
    pg_url: str, pg_database: Any
) -> None:
    """Opening a migrated database reads its version and takes no lock: a
    process holding the migration lock (one migrating, or stuck) does not
    hold up the others. A database still to migrate waits for the lock."""
    from perdure._store.postgres_schema import MIGRATION_LOCK

    store = await opened(pg_url)
    await store.close()
    with psycopg.connect(pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        client = await asyncio.wait_for(perdure.Client.connect(pg_url), 10)
        await client.close()
        waiting = asyncio.ensure_future(perdure.Client.connect(pg_database.fresh_url()))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # behind the lock
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    client = await asyncio.wait_for(waiting, 10)
    await client.close()
