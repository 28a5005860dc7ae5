"""Helpers for the store conformance suite: a hand-moved clock, and turns
built by hand (what a worker would commit), so tests drive the Store directly."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from typing import Any

import psycopg

from perdure import _history as h
from perdure._store.base import NewActivity, NewChild, NewRun, Store, TurnCommit, WorkflowTask
from perdure._store.sqlrows import Tx
from perdure._store.sqlstore import SqlStore

# A test's opener of stores (the conftest's ``opener``): each call opens a
# store on a fresh database of the backend.
Opener = Callable[[], Awaitable[SqlStore]]


class FakeClock:
    """A clock tests move by hand, so lease expiry needs no sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_run(wid: str = "wf-1", run_id: str = "run-1", queue: str = "q") -> NewRun:
    return NewRun(
        workflow_id=wid,
        run_id=run_id,
        workflow_type="t",
        task_queue=queue,
        args=[1],
        kwargs={},
        seed=7,
    )


async def turn(
    store: Store, task: WorkflowTask, commands: list[h.Command] | None = None, **extra: Any
) -> TurnCommit:
    """The commit of a turn that consumes the whole inbox and issues ``commands``
    (their effects — timers, close status... — go in ``extra``)."""
    data = await store.load_turn(task.run_id, 0)
    return TurnCommit(
        task=task,
        run_id=task.run_id,
        expected_version=data.run.version,
        events=h.turn_events(data.run.last_seq, 1.0, [e for _, e in data.inbox], commands or []),
        consumed_inbox=[i for i, _ in data.inbox],
        **extra,
    )


async def claim_one(store: Store, run_id: str, queue: str = "q") -> WorkflowTask:
    """Claim workflow tasks until the one of ``run_id`` comes up (others are left leased)."""
    for _ in range(100):
        for task in await store.claim_workflow_tasks([queue], "test", 30, 10):
            if task.run_id == run_id:
                return task
    raise AssertionError(f"no workflow task for {run_id}")


def schedule_charge(ref: int) -> h.ScheduleActivity:
    """The command of a turn that schedules activity ``ref`` ("charge", queue "q")."""
    return h.ScheduleActivity(
        ref=ref, name="charge", task_queue="q", args=[ref], kwargs={}, options={}
    )


def child_start(
    ref: int,
    workflow_id: str,
    run_id: str,
    workflow_type: str = "t",
    policy: str = "abandon",
) -> tuple[h.StartChild, NewChild]:
    """The command of a turn that starts child ``ref`` (queue "kids"), and
    the child as the worker hands it to the store."""
    command = h.StartChild(
        ref=ref,
        workflow_type=workflow_type,
        workflow_id=workflow_id,
        task_queue="kids",
        args=[ref],
        kwargs={},
        parent_close_policy=policy,
    )
    child = NewChild(ref, workflow_type, workflow_id, run_id, "kids", [ref], {}, policy, seed=5)
    return command, child


def leased_charge(ref: int, token: str) -> NewActivity:
    """Activity ``ref`` as a turn starts it here at once: leased to this worker."""
    return NewActivity(
        ref=ref,
        name="charge",
        task_queue="q",
        args=[ref],
        kwargs={},
        options={},
        lease=("worker-1", token, 30.0),
    )


async def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Let the loop turn until ``check()`` holds; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


async def together(store: Any, writes: list[Awaitable[Any]]) -> list[Any]:
    """Start every write while the SQLite store's thread is held, so that one
    flush takes them all (a loop's round that finds the connection in use
    hands its jobs to that thread); each result is the write's value or its
    exception."""
    gate, inside = threading.Event(), threading.Event()

    async def hold() -> None:
        inside.set()
        gate.wait(10)

    held = asyncio.ensure_future(store._on_thread(hold()))
    started: list[asyncio.Future[Any]] = []
    try:
        await wait_for(inside.is_set, "the store's thread to be held")
        started = [asyncio.ensure_future(w) for w in writes]
        await wait_for(lambda: store._jobs.qsize() >= len(started), "every write to be queued")
    finally:
        gate.set()
        await held
    return list(await asyncio.gather(*started, return_exceptions=True))


def inbox_insert(
    run_id: str,
    then: Callable[[Any], None] | None = None,
    threads: list[str] | None = None,
) -> Callable[[Tx], Any]:
    """A write body: one inbox row for ``run_id``; ``then`` gets its run's row
    count after the commit; ``threads`` notes the thread the body ran on."""

    async def body(tx: Tx) -> str:
        if threads is not None:
            threads.append(threading.current_thread().name)
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES (?, '{}', 0)", (run_id,))
        if then is not None:
            await tx.later("SELECT count(*) FROM inbox WHERE run_id = ?", (run_id,), then)
        return run_id

    return body


async def inbox_runs(store: SqlStore) -> list[str]:
    """The run ids of the inbox rows, in the order they were written."""

    async def body(tx: Tx) -> list[str]:
        return [row[0] for row in await tx.all("SELECT run_id FROM inbox ORDER BY id")]

    return await store._read(body)


async def schedule_keyed(store: Store, keys: list[str], run: str = "run-1") -> None:
    """A run with one activity on queue "q" for each of ``keys`` (ref 1 on;
    '' for none), none claimed; then a claim of none, which learns whether
    the queue has keys (a claim would learn it otherwise, having taken the
    unkeyed tasks as before)."""
    await store.create_run(new_run(wid=f"wf-{run}", run_id=run), "fail")
    task = await claim_one(store, run)
    activities = [
        NewActivity(ref, "charge", "q", [], {}, {}, fairness_key=key)
        for ref, key in enumerate(keys, start=1)
    ]
    assert await store.commit_turn(await turn(store, task, activities=activities))
    assert await store.claim_activity_tasks(["q"], "w", 30, 0) == []


async def query_plans(store_url: str, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[str]:
    """Each query's plan for its parameters, as text: SQLite's, and
    PostgreSQL's generic plan (made once for any values, as for the
    store's prepared statements)."""
    from perdure._store.postgres import SESSION_SETUP

    if store_url.startswith("sqlite"):
        with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as conn:
            return [
                " | ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                for sql, params in queries
            ]
    found = []
    async with await psycopg.AsyncConnection.connect(store_url, autocommit=True) as conn:
        await conn.execute(SESSION_SETUP)
        await conn.execute("ANALYZE tasks")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        inline = psycopg.AsyncClientCursor(conn)  # (EXECUTE's arguments as literals)
        for number, (sql, params) in enumerate(queries):
            parts = sql.split("?")
            numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
            await conn.execute(f"PREPARE planned{number} AS {numbered}")
            marks = ", ".join(["%s"] * len(params))
            await inline.execute(f"EXPLAIN EXECUTE planned{number}({marks})", list(params))
            found.append(" | ".join(r[0] for r in await inline.fetchall()))
    return found
