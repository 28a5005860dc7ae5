"""Task queue limits in SQL: the room a queue's limits leave its next claim
(``gate``), the starts a claim records for a rate limit (``record_starts``),
setting and reading the limits, setting a fairness key's weight
(``write_weight``; the fair claims read them: sqlfair), and what
``Store.queues`` reports.

A queue's attempts running are its activity task rows leased to a worker
whose lease has not run out (``lease_owner`` set, ``visible_at``, the lease
expiry, in the future): an attempt whose worker died still counts until its
lease runs out and a claim takes it again. The rows a limited queue's claims
lease are marked (``limited``), as are the attempts running when its limits
are set, and counted from an index of their own (``tasks_limited``), so a
claim reads the attempts running, not the queue's backlog; inline attempts
(never on a limited queue) are not in it. The rate limit's window is kept
in ``queue_starts``, one row per attempt started (with its fairness key,
for a rate limit per key), which claims prune. On
PostgreSQL a claim locks the queue's limits row (``Dialect.for_update``)
before counting, so that two workers' claims of one limited queue take
turns; SQLite serialises every writer anyway.
Imports the store's records and the row helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from perdure._store.records import QueueLimitsRecord, QueueRecord
from perdure._store.sqlrows import Dialect, Tx, loads

__all__ = [
    "NOT_LIMITED",
    "Gate",
    "KeyBound",
    "gate",
    "queue_records",
    "rated",
    "read_limits",
    "record_starts",
    "write_limits",
    "write_weight",
]

# The room of a queue whose only limit is per key (its keys bound it).
MAX_ROOM = 1_000_000_000

LIMITS_COLUMNS = "max_running, max_starts, per, max_running_per_key, max_starts_per_key"
_LIMITS = f"SELECT {LIMITS_COLUMNS} FROM queue_limits WHERE queue = ?"
# A claim's condition on tasks: their queue has no limits (those are claimed
# by a claim that counts first).
NOT_LIMITED = " AND NOT EXISTS (SELECT 1 FROM queue_limits WHERE queue_limits.queue = tasks.queue)"
# The attempts running, and the first lease of theirs to run out: a read of
# tasks_limited (the condition is its own), which holds only leased rows.
_COUNTED = "limited = 1 AND lease_owner IS NOT NULL AND queue = ? AND visible_at > ?"
_RUNNING = f"SELECT COUNT(*), MIN(visible_at) FROM tasks WHERE {_COUNTED}"
# The same by fairness key (for a limit per key).
_RUNNING_BY_KEY = (
    f"SELECT fairness_key, COUNT(*), MIN(visible_at) FROM tasks WHERE {_COUNTED}"
    " GROUP BY fairness_key"
)
# Setting a queue's limits: its attempts running count from then on.
_COUNT_RUNNING = (
    "UPDATE tasks SET limited = 1 WHERE kind = 'activity' AND queue = ? AND visible_at > ?"
    " AND lease_owner IS NOT NULL AND limited = 0"
)
_STARTED = "SELECT COUNT(*) FROM queue_starts WHERE queue = ? AND started_at > ?"
# The start whose leaving the window makes room for one more.
_NTH_START = (
    "SELECT started_at FROM queue_starts WHERE queue = ? AND started_at > ?"
    " ORDER BY started_at LIMIT 1 OFFSET ?"
)
# The same by fairness key (for a rate limit per key), read from the index
# of the queue's starts by key (queue_starts_by_key): each key's starts in
# the window, of the keys with more than so many (a claim of n tasks needs
# only those within n of the limit: it takes no more of the others).
_STARTED_BY_KEY = (
    "SELECT fairness_key, COUNT(*), NULL FROM queue_starts WHERE queue = ? AND started_at > ?"
    " GROUP BY fairness_key HAVING COUNT(*) > ?"
)
# And for a key at the limit (n or more), its nth latest: the start whose
# leaving the window makes room for one more (one search of the index each;
# a window function over the window's starts cost SQLite 5 µs a start).
_STARTED_BY_KEY_NEXT = (
    "SELECT fairness_key, COUNT(*), CASE WHEN COUNT(*) >= ? THEN (SELECT s.started_at"
    " FROM queue_starts s WHERE s.queue = ? AND s.fairness_key = w.fairness_key"
    " AND s.started_at > ? ORDER BY s.started_at DESC LIMIT 1 OFFSET ?) END"
    " FROM queue_starts w WHERE queue = ? AND started_at > ? GROUP BY fairness_key"
)


class KeyBound(NamedTuple):
    """A limit per key as a claim applies it: at most ``most`` of each key,
    ``counts`` holding each key's count (attempts running, or started in
    the window) that has some; a claim adds what it leases."""

    most: int
    counts: dict[str, int]


class Gate(NamedTuple):
    """What a queue's limits allow at a time: how many attempts may start
    now, and (if none may) when one may next (None: not before one running
    ends, which wakes the workers)."""

    room: int
    free_at: float | None
    started: int  # the starts in the rate limits' window (0 without one)
    opens: float | None  # when the rate limit lets one more start, if it holds them back
    # With a limit per key: each key with attempts running, how many, and
    # the first of their leases to run out.
    by_key: dict[str, tuple[int, float]]
    # With a rate limit per key: each key with starts in the window, how
    # many, and (at its limit) when the window lets it start one more.
    started_by_key: dict[str, tuple[int, float | None]]

    def capped(self, limits: QueueLimitsRecord) -> dict[str, float]:
        """The keys at a limit per key, and when each may start one more:
        at ``limits``' max_running_per_key, when its first lease runs out
        (an attempt that ends wakes the workers before); at its
        max_starts_per_key, when the window moves on; at both, the later.
        (Of a gate read for the next due time or a report: a claim's has no
        such times, and applies ``bounds``.)"""
        found: dict[str, float] = {}
        most = limits.max_running_per_key
        if most is not None:
            found = {key: first for key, (n, first) in self.by_key.items() if n >= most}
        rate = limits.max_starts_per_key
        if rate is not None:
            for key, (n, opens) in self.started_by_key.items():
                if n >= rate and opens is not None:
                    found[key] = max(found.get(key, opens), opens)
        return found

    def bounds(self, limits: QueueLimitsRecord) -> list[KeyBound]:
        """``limits``' limits per key, with this count's keys."""
        found = []
        if limits.max_running_per_key is not None:
            running = {key: n for key, (n, _) in self.by_key.items()}
            found.append(KeyBound(limits.max_running_per_key, running))
        if limits.max_starts_per_key is not None:
            started = {key: n for key, (n, _) in self.started_by_key.items()}
            found.append(KeyBound(limits.max_starts_per_key, started))
        return found


async def read_limits(tx: Tx, queue: str, lock: str = "") -> QueueLimitsRecord | None:
    """``queue``'s limits (``lock``: the dialect's row lock, in a claim)."""
    row = await tx.one(_LIMITS + lock, (queue,))
    if row is None:
        return None
    return QueueLimitsRecord(*row)


async def gate(
    tx: Tx, queue: str, limits: QueueLimitsRecord, now: float, claim: int | None = None
) -> Gate:
    """The room ``limits`` leave ``queue`` at ``now``: for a claim of up to
    ``claim`` tasks, the starts by key of only the keys that it could take
    to their rate limit, and not when those at it may start again (the
    claim passes them over); else every key's, and when."""
    room: int | None = None
    free_at: float | None = now
    started = 0
    opens = None
    by_key: dict[str, tuple[int, float]] = {}
    started_by_key: dict[str, tuple[int, float | None]] = {}
    if limits.max_running_per_key is not None:
        for key, n, first in await tx.all(_RUNNING_BY_KEY, (queue, now)):
            by_key[key] = (int(n), first)
    if limits.max_running is not None:
        if limits.max_running_per_key is not None:  # (the same count, by key)
            running = sum(n for n, _ in by_key.values())
            first_expiry = min((first for _, first in by_key.values()), default=None)
        else:
            row = await tx.one(_RUNNING, (queue, now))
            assert row is not None
            running, first_expiry = row
        room = limits.max_running - running
        if room <= 0:
            # An attempt that ends wakes the workers; one whose worker died
            # frees its slot when its lease runs out.
            free_at = first_expiry
    if limits.max_starts is not None:
        assert limits.per is not None
        since = now - limits.per
        row = await tx.one(_STARTED, (queue, since))
        assert row is not None
        started = row[0]
        left = limits.max_starts - started
        if left <= 0:
            nth = await tx.one(_NTH_START, (queue, since, -left))
            if nth is not None:  # (always: the window holds more than -left starts)
                opens = nth[0] + limits.per
                free_at = opens if free_at is None else max(free_at, opens)
        room = left if room is None else min(room, left)
    if limits.max_starts_per_key is not None:
        assert limits.per is not None
        most, since = limits.max_starts_per_key, now - limits.per
        params: tuple[Any, ...]
        if claim is None:
            sql, params = _STARTED_BY_KEY_NEXT, (most, queue, since, most - 1, queue, since)
        else:
            sql, params = _STARTED_BY_KEY, (queue, since, most - claim)
        for key, n, nth in await tx.all(sql, params):
            started_by_key[key] = (int(n), None if nth is None else nth + limits.per)
        if limits.max_starts is None and claim is None:  # (the same count, by key)
            started = sum(n for n, _ in started_by_key.values())
    if room is None:  # (a limit per key only)
        room = MAX_ROOM
    if room > 0:
        free_at = now
    return Gate(max(room, 0), free_at, started, opens, by_key, started_by_key)


def rated(limits: QueueLimitsRecord | None) -> bool:
    """Whether ``limits`` have a rate limit (the queue's, or per key)."""
    return limits is not None and (
        limits.max_starts is not None or limits.max_starts_per_key is not None
    )


async def record_starts(
    tx: Tx, queue: str, limits: QueueLimitsRecord, now: float, keys: Sequence[str]
) -> None:
    """Attempts of ``queue`` started at ``now``, one of each of ``keys``
    (their fairness keys): kept for its rate limits' window, and the starts
    that left the window dropped."""
    if not rated(limits) or limits.per is None:
        return
    await tx.send(
        "DELETE FROM queue_starts WHERE queue = ? AND started_at <= ?", (queue, now - limits.per)
    )
    if keys:
        await tx.executemany(
            "INSERT INTO queue_starts (queue, started_at, fairness_key) VALUES (?, ?, ?)",
            [(queue, now, key) for key in keys],
        )


async def write_limits(tx: Tx, queue: str, limits: QueueLimitsRecord | None, now: float) -> bool:
    """Set (None: remove) ``queue``'s limits; whether it had limits before.
    Its starts are kept while it has a rate limit, so that a change of the
    limit counts the starts already made."""
    had = await tx.one("SELECT 1 FROM queue_limits WHERE queue = ?", (queue,)) is not None
    if limits is None:
        await tx.send("DELETE FROM queue_limits WHERE queue = ?", (queue,))
    else:
        await tx.send(
            f"INSERT INTO queue_limits (queue, {LIMITS_COLUMNS}, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue) DO UPDATE SET"
            " max_running = excluded.max_running, max_starts = excluded.max_starts,"
            " per = excluded.per, max_running_per_key = excluded.max_running_per_key,"
            " max_starts_per_key = excluded.max_starts_per_key, updated_at = excluded.updated_at",
            (
                queue,
                limits.max_running,
                limits.max_starts,
                limits.per,
                limits.max_running_per_key,
                limits.max_starts_per_key,
                now,
            ),
        )
        await tx.send(_COUNT_RUNNING, (queue, now))
    if not rated(limits):
        await tx.send("DELETE FROM queue_starts WHERE queue = ?", (queue,))
    return had


_WEIGHT = "SELECT weight FROM queue_weights WHERE queue = ? AND fairness_key = ?"


async def write_weight(tx: Tx, queue: str, key: str, weight: int, now: float) -> int:
    """Set ``key``'s weight on ``queue`` (1: the default, its row removed);
    return its weight before."""
    row = await tx.one(_WEIGHT, (queue, key))
    if weight == 1:
        await tx.send(
            "DELETE FROM queue_weights WHERE queue = ? AND fairness_key = ?", (queue, key)
        )
    else:
        await tx.send(
            "INSERT INTO queue_weights (queue, fairness_key, weight, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (queue, fairness_key) DO UPDATE SET"
            " weight = excluded.weight, updated_at = excluded.updated_at",
            (queue, key, weight, now),
        )
    return 1 if row is None else int(row[0])


# Each queue's activity tasks: running; due and waiting, not due yet, and
# paused (an operator's pause: not running, whatever their due time), the
# three of those not running.
_LEASED_NOW = "visible_at > ? AND lease_owner IS NOT NULL"
_TASK_COUNTS = (
    "SELECT queue,"
    f" SUM(CASE WHEN {_LEASED_NOW} THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN visible_at <= ? AND paused = 0 THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN visible_at > ? AND lease_owner IS NULL AND paused = 0 THEN 1 ELSE 0 END),"
    f" SUM(CASE WHEN paused = 1 AND NOT ({_LEASED_NOW}) THEN 1 ELSE 0 END)"
    " FROM tasks WHERE kind = 'activity'{} GROUP BY queue"
)


# A queue's paused activities that no attempt runs (the count's), the first
# MAX_PAUSED_LISTED by age: their runs' workflow ids, for an operator.
_PAUSED_ACTIVITIES = (
    "SELECT runs.workflow_id, tasks.run_id, tasks.ref, tasks.payload"
    " FROM tasks JOIN runs ON runs.run_id = tasks.run_id"
    " WHERE tasks.kind = 'activity' AND tasks.queue = ? AND tasks.paused = 1"
    f" AND NOT ({_LEASED_NOW})"
    " ORDER BY tasks.id LIMIT ?"
)
MAX_PAUSED_LISTED = 20


# Each queue's due activity tasks, by priority.
_WAITING_BY_PRIORITY = (
    "SELECT queue, priority, COUNT(*) FROM tasks WHERE kind = 'activity' AND visible_at <= ?"
    " AND paused = 0{} GROUP BY queue, priority ORDER BY queue, priority"
)


# Each queue's activity tasks that have a fairness key, due and waiting (or
# running), by key: a read of the keyed tasks' index only (a queue without
# keys costs one search).
_WAITING = "visible_at <= ? AND paused = 0"


def _by_key(keyed_tasks: str, state: str, only: str) -> str:
    return (
        f"SELECT queue, fairness_key, COUNT(*) FROM {keyed_tasks} WHERE kind = 'activity'"
        f" AND fairness_key <> '' AND {state}{only} GROUP BY queue, fairness_key"
    )


MAX_KEYS_LISTED = 10  # a queue's keys with the most waiting (running), in its record


async def _keyed_counts(
    tx: Tx, d: Dialect, state: str, only: str, now: float, queue: str | None
) -> dict[str, list[tuple[str, int]]]:
    """Each queue's keys (of tasks in ``state``) with the most such tasks
    (MAX_KEYS_LISTED), and their count."""
    found: dict[str, list[tuple[str, int]]] = {}
    for name, key, count in await tx.all(_by_key(d.keyed_tasks, state, only), (now, *_one(queue))):
        found.setdefault(name, []).append((key, int(count)))
    for keys in found.values():
        keys.sort(key=lambda kc: (-kc[1], kc[0]))
    return found


async def queue_records(tx: Tx, d: Dialect, queue: str | None, now: float) -> list[QueueRecord]:
    """``Store.queues``: the queues with activity tasks or limits (or just
    ``queue``), by name."""
    only = "" if queue is None else " AND queue = ?"
    counts = {
        r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0))
        for r in await tx.all(_TASK_COUNTS.format(only), (now, now, now, now, *_one(queue)))
    }
    by_priority: dict[str, dict[int, int]] = {}
    for name, priority, count in await tx.all(
        _WAITING_BY_PRIORITY.format(only), (now, *_one(queue))
    ):
        by_priority.setdefault(name, {})[int(priority)] = int(count)
    waiting_by_key = await _keyed_counts(tx, d, _WAITING, only, now, queue)
    running_by_key = await _keyed_counts(tx, d, _LEASED_NOW, only, now, queue)
    limited = {
        r[0]: QueueLimitsRecord(*r[1:])
        for r in await tx.all(
            f"SELECT queue, {LIMITS_COLUMNS} FROM queue_limits"
            + ("" if queue is None else " WHERE queue = ?"),
            _one(queue),
        )
    }
    weights: dict[str, dict[str, int]] = {}
    for name, key, weight in await tx.all(
        "SELECT queue, fairness_key, weight FROM queue_weights"
        + ("" if queue is None else " WHERE queue = ?")
        + " ORDER BY queue, fairness_key",
        _one(queue),
    ):
        weights.setdefault(name, {})[key] = int(weight)
    names = sorted(set(counts) | set(limited) | set(weights) | set(_one(queue)))
    found = []
    for name in names:
        running, waiting, backing_off, paused = counts.get(name, (0, 0, 0, 0))
        limits = limited.get(name)
        held_until, started, at_limit, started_by_key = None, 0, 0, {}
        if limits is not None:
            g = await gate(tx, name, limits, now)
            started, held_until, at_limit = g.started, g.opens, len(g.capped(limits))
            most = sorted(g.started_by_key.items(), key=lambda kv: (-kv[1][0], kv[0]))
            started_by_key = {key: n for key, (n, _) in most[:MAX_KEYS_LISTED]}
        listed: list[tuple[str, str, int, str]] = []
        if paused:
            for workflow_id, run_id, ref, payload in await tx.all(
                _PAUSED_ACTIVITIES, (name, now, MAX_PAUSED_LISTED)
            ):
                listed.append((workflow_id, run_id, int(ref), loads(payload)["name"]))
        keys = waiting_by_key.get(name, [])
        found.append(
            QueueRecord(
                name,
                limits,
                running,
                waiting,
                backing_off,
                started,
                held_until,
                by_priority.get(name, {}),
                paused,
                listed,
                dict(keys[:MAX_KEYS_LISTED]),
                len(keys),
                dict(running_by_key.get(name, [])[:MAX_KEYS_LISTED]),
                at_limit,
                weights.get(name, {}),
                started_by_key,
            )
        )
    return found


def _one(queue: str | None) -> Sequence[str]:
    return () if queue is None else (queue,)
