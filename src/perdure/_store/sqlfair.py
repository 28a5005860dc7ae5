"""Fair claims: a queue whose tasks carry fairness keys (docs/queues.md
"Fairness") serves, within each priority, the keys with due tasks in turn,
so that one key's backlog does not hold back another key's work.

tasks_due orders a priority's tasks by key, then by due time: each key's due
tasks are one range of it, and the keys are found one index search each (a
recursive query walks from key to key). A claim of a queue in this mode:

1. walks the keys of each priority (first to last) from where this store's
   previous claim of that priority stopped (its turn), to find as many
   with a task due (not leased, not backing off, not held by another
   worker) and below the queue's limit per key, if it has one, as it has
   room for; a walk that stops at KEYS_WALKED keys short of that moves the
   turn to the last key it walked;
2. shares its room among them in passes, each key taking up to its weight
   (1 unless the queue gives it one: queue_weights) in each pass, no key
   more than its limit leaves it: one each if it found as many as its room
   and all weigh 1, else the room split evenly by weight; a key the room
   cuts short of its weight is served first by the next claim, for the
   rest;
3. leases each key's share, its oldest due tasks first, in one statement; a
   round that leaves room (a key had fewer due tasks than its share) shares
   it again among the keys that filled theirs.

Unkeyed tasks ('') are one key among the others. A queue none of whose
tasks has a key is claimed as before (sqlclaims' one range read, of key
''); whether it has keyed tasks is one search of the partial index
tasks_keyed, read with each such claim, and a fair claim that finds no
keyed task due and none left at all puts the queue back. The turns are
this store's (one per worker process): two workers each serve the keys in
turn, not in one shared order. Imports the history model and the row
helpers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from perdure import _history as h
from perdure._store.sqlqueues import KeyBound
from perdure._store.sqlrows import Dialect

__all__ = ["KEYS_WALKED", "Turns", "claim_fair", "keyed_check"]

# At most so many keys of one priority walked by one claim's search for keys
# with a task due (the keys after its turn, then from the first key on): two
# index searches per key walked.
KEYS_WALKED = 1000

# At most so many leasing rounds for one priority in one claim (step 3).
_ROUNDS = 3


@dataclass
class Turns:
    """A store's fair claims: the queues in that mode ((kind, queue)), and
    where each priority's turn stands (the last key served)."""

    keyed: set[tuple[str, str]] = field(default_factory=set)
    after: dict[tuple[str, str, int], str] = field(default_factory=dict)
    # A key of weight > 1 whose share the last claim's room cut short, and
    # what it is still owed: the turn stands before it.
    owed: dict[tuple[str, str, int], tuple[str, int]] = field(default_factory=dict)


def keyed_check(table: str, kind: str, queues: Sequence[str]) -> tuple[str, list[Any]]:
    """A query of which of ``queues`` have tasks of ``kind`` with a key (one
    search of tasks_keyed each; ``table``: the dialect's keyed_tasks)."""
    one = (
        f"SELECT queue FROM (SELECT queue FROM {table} WHERE kind = ? AND queue = ?"
        " AND fairness_key <> '' LIMIT 1) AS k"
    )
    params: list[Any] = []
    for q in queues:
        params += (kind, q)
    return " UNION ALL ".join([one] * len(queues)), params


# A condition on a column tasks_due does not hold (always true), so that the
# walk's searches are plain index scans, not index-only ones: PostgreSQL
# marks the index entries of deleted tasks dead as a plain scan passes them,
# which an index-only scan does not do, so after 20,000 tasks were deleted
# each claim walked over their entries until a vacuum (5.7 ms a claim of
# two keys; 2.2 ms with it). SQLite has no dead entries; it costs it ~5%.
_HEAP = " AND attempt >= 0"


def _keys_sql(op: str, upto: str, tail: str, capped: str) -> str:
    """The keys of a queue's priority that have a task due (``tail``: the
    claim's conditions on a task) and are not at their limit (``capped``:
    "" or "k.key NOT IN <the keys> AND "), in order from a key on (``op``:
    ">" after it, ">=" from it), up to a key (``upto``: " AND fairness_key
    <= ?", or ""): rows (key, n, due, weight). The recursive part finds the next key
    by one search of tasks_due, and stops after so many keys (n); the outer
    LIMIT stops it once enough keys with a task due are found (both
    databases run it lazily). The last key walked comes too if the walk
    stopped there, due or not (due: 1, else NULL), so that the turn can go
    on from it. Whether a key has a task due is a subquery of LIMIT 1, one
    search per key: PostgreSQL made an EXISTS a hash join with every due
    task of the queue (29 ms for 17,000). A key's weight is one search of
    queue_weights (1 unless the queue gives it one)."""
    has_due = (
        "(SELECT 1 FROM tasks WHERE kind = ? AND queue = ? AND priority = ?"
        f" AND fairness_key = k.key AND visible_at <= ?{tail}{_HEAP} LIMIT 1)"
    )
    return (
        "WITH RECURSIVE k(key, n) AS ("
        "SELECT (SELECT fairness_key FROM tasks WHERE kind = ? AND queue = ? AND priority = ?"
        f" AND fairness_key {op} ?{upto}{_HEAP} ORDER BY fairness_key LIMIT 1), 1"
        " UNION ALL SELECT (SELECT fairness_key FROM tasks WHERE kind = ? AND queue = ?"
        f" AND priority = ? AND fairness_key > k.key{upto}{_HEAP} ORDER BY fairness_key LIMIT 1),"
        " k.n + 1 FROM k WHERE k.key IS NOT NULL AND k.n < ?)"
        f" SELECT key, n, CASE WHEN n = ? THEN {has_due} ELSE 1 END, {_WEIGHT} FROM k"
        f" WHERE key IS NOT NULL AND (n = ? OR ({capped}{has_due} = 1)) LIMIT ?"
    )


_WEIGHT = "COALESCE((SELECT weight FROM queue_weights WHERE queue = ? AND fairness_key = k.key), 1)"


def _share_sql(tail: str, lock: str) -> str:
    """One key's share: its oldest due tasks (``lock``: the dialect's)."""
    return (
        "SELECT id FROM (SELECT id FROM tasks WHERE kind = ? AND queue = ? AND priority = ?"
        f" AND fairness_key = ? AND visible_at <= ?{tail} ORDER BY visible_at LIMIT ?{lock})"
        " AS one"
    )


Lease = Callable[[str, list[Any]], Awaitable[list[tuple[Any, ...]]]]
Read = Callable[[str, list[Any]], Awaitable[list[tuple[Any, ...]]]]


@dataclass
class Claim:
    """One fair claim of a queue: what its statements share."""

    kind: str
    queue: str
    now: float
    tail: str  # conditions on a task (SqlStore._claim's), with their parameters
    given: tuple[Any, ...]
    d: Dialect  # (its row locks, its search of keyed tasks, its lists of keys)
    # The queue's limits per key (max_running_per_key, max_starts_per_key),
    # with each key's count (those the claim leases are added).
    bounds: Sequence[KeyBound] = ()
    # The weight of each key the walks found (see _walk).
    weights: dict[str, int] = field(default_factory=dict)

    def room_of(self, keys: Sequence[str]) -> dict[str, int] | None:
        """What each of ``keys`` may still start (None: no limit per key)."""
        if not self.bounds:
            return None
        return {
            key: max(min(b.most - b.counts.get(key, 0) for b in self.bounds), 0) for key in keys
        }

    def full(self) -> list[str]:
        """The keys at a limit."""
        return sorted({key for b in self.bounds for key, n in b.counts.items() if n >= b.most})

    def took(self, key: str, n: int) -> None:
        """The claim leased ``n`` of ``key``'s tasks: ``n`` more running, and
        started."""
        for b in self.bounds:
            b.counts[key] = b.counts.get(key, 0) + n


async def _walk(
    read: Read, c: Claim, priority: int, start: str, op: str, upto: str | None, most: int
) -> tuple[list[str], str | None]:
    """The keys with a task due (``most`` at most) from ``start``, and the
    last key walked if the walk stopped at KEYS_WALKED before it found them."""
    where = [c.kind, c.queue, priority]
    bound = [] if upto is None else [upto]
    full = c.full()
    capped = f"k.key{c.d.not_among} AND " if full else ""
    sql = _keys_sql(op, "" if upto is None else " AND fairness_key <= ?", c.tail, capped)
    due = [*where, c.now, *c.given]
    params = [*where, start, *bound, *where, *bound, KEYS_WALKED, KEYS_WALKED, *due, c.queue]
    params += (KEYS_WALKED, *([c.d.ids_param(full)] if full else []), *due, most + 1)
    keys: list[str] = []
    cut: str | None = None
    for key, n, is_due, weight in await read(sql, params):
        if is_due == 1 and key not in full and len(keys) < most:
            keys.append(key)
            c.weights[key] = int(weight)
        elif n == KEYS_WALKED:
            cut = key
    return keys, (cut if len(keys) < most else None)


async def due_keys(
    read: Read, c: Claim, priority: int, after: str | None, most: int
) -> tuple[list[str], str | None]:
    """Up to ``most`` keys of ``priority`` with a task due, in turn from the
    one after ``after`` (from the first, if None), going round to the first
    key after the last; and, if a walk stopped at KEYS_WALKED keys before it
    found as many, the last key it walked (the turn goes on from there)."""
    if after is None:
        return await _walk(read, c, priority, "", ">=", None, most)
    found, cut = await _walk(read, c, priority, after, ">", None, most)
    if len(found) < most and cut is None:  # (round to the first key, up to ``after``)
        more, cut = await _walk(read, c, priority, "", ">=", after, most - len(found))
        found += more
    return found, cut


class Shares(NamedTuple):
    """A claim's room shared among keys (see share_out)."""

    given: list[tuple[str, int]]  # (key, how many), in the keys' order
    last: str | None  # the last key given one (the turn goes on after it)
    short: tuple[str, int] | None  # a key the room cut short, and what it is still owed


def share_out(
    keys: Sequence[str],
    room: int,
    room_of: dict[str, int] | None = None,
    weights: dict[str, int] | None = None,
    credit: int | None = None,
) -> Shares:
    """``room`` shared among ``keys`` in turn: pass after pass over them in
    their order, each key given up to its weight in each pass (1 unless
    ``weights`` says; the first key, in the first pass, ``credit`` if not
    None: what an earlier claim left it owed), none beyond what ``room_of``
    allows it (None: no bound), until the room is used or no key can take
    more. So with more keys than room, the first ones get one each (their
    weight each); with fewer, the room is split evenly (by weight)."""
    given = dict.fromkeys(keys, 0)
    left, last, short, first_pass = room, None, None, True
    while left > 0:
        moved = False
        for i, key in enumerate(keys):
            weight = (weights or {}).get(key, 1)
            if first_pass and i == 0 and credit is not None:
                weight = credit
            bound = left if room_of is None else room_of[key] - given[key]
            n = min(weight, bound, left)
            if n <= 0:
                continue
            given[key] += n
            left -= n
            moved, last = True, key
            if left == 0:
                if n < weight and (room_of is None or given[key] < room_of[key]):
                    short = (key, weight - n)  # (cut short by the room, not its limit)
                break
        first_pass = False
        if not moved:
            break
    return Shares([(key, n) for key, n in given.items() if n > 0], last, short)


async def claim_fair(
    read: Read, lease: Lease, turns: Turns, c: Claim, room: int
) -> list[tuple[Any, ...]]:
    """Lease up to ``room`` due tasks of ``c.queue``, priority by priority,
    each priority's keys in turn, none beyond its key's limit. ``lease(ids,
    params)`` leases the tasks whose ids a query selects and returns them
    as claimed rows, their key last. The queue leaves the fair mode when it
    has no key but ''."""
    claimed: list[tuple[Any, ...]] = []
    keyed_due = False
    for priority in h.PRIORITIES:
        if room <= 0:
            break
        spot = (c.kind, c.queue, priority)
        due, cut = await due_keys(read, c, priority, turns.after.get(spot), room)
        if cut is not None:  # (every key up to it walked: served, or nothing due)
            turns.after[spot] = cut
        if not due:
            continue
        keyed_due = keyed_due or any(due)
        rank = {key: i for i, key in enumerate(due)}
        owed = turns.owed.pop(spot, None)
        credit = owed[1] if owed is not None and owed[0] == due[0] else None
        split = share_out(due, room, c.room_of(due), c.weights, credit)
        given = split.given
        if not given:  # (the keys found reached their limit in an earlier priority)
            continue
        # The next claim of this priority starts after the last key served:
        # the turn moves on. A key the room cut short of its weight is next
        # again, for what it is still owed. (A walk that found fewer keys
        # than its room found every key with work: if the last pass ended
        # with the last of them, the turn stays, which saves the next claim
        # a walk round to the first key.)
        went_round = len(due) < room  # (the walk found every key with work)
        if cut is None and split.short is not None:
            turns.owed[spot] = split.short
            if (at := rank[split.short[0]]) > 0:
                turns.after[spot] = due[at - 1]
        elif cut is None and split.last is not None and not (went_round and split.last == due[-1]):
            turns.after[spot] = split.last
        got: list[tuple[Any, ...]] = []
        for _ in range(_ROUNDS):
            rows = await lease(*_shares_query(c, priority, given))
            got += rows
            room -= len(rows)
            taken = Counter(r[-1] for r in rows)
            for key, n in taken.items():
                c.took(key, n)
            full = [key for key, n in given if taken[key] >= n]
            if room <= 0 or not full:
                break
            # (those may have more due)
            given = share_out(full, room, c.room_of(full), c.weights).given
            if not given:
                break
        claimed += _in_turn(got, rank)
    if not keyed_due and not await read(*keyed_check(c.d.keyed_tasks, c.kind, [c.queue])):
        turns.keyed.discard((c.kind, c.queue))
    return claimed


def _in_turn(got: list[tuple[Any, ...]], rank: dict[str, int]) -> list[tuple[Any, ...]]:
    """``got`` as the turn hands it out: each key's first (its oldest), in
    the keys' order, then each key's second..., for a worker that starts
    them in order."""
    got.sort(key=lambda r: (rank[r[-1]], r[0]))
    nth: Counter[str] = Counter()
    places = []
    for r in got:
        places.append((nth[r[-1]], rank[r[-1]]))
        nth[r[-1]] += 1
    return [r for _, r in sorted(zip(places, got, strict=True), key=lambda p: p[0])]


def _shares_query(c: Claim, priority: int, given: list[tuple[str, int]]) -> tuple[str, list[Any]]:
    branch = _share_sql(c.tail, c.d.skip_locked)
    params: list[Any] = []
    for key, n in given:
        params += (c.kind, c.queue, priority, key, c.now, *c.given, n)
    return " UNION ALL ".join([branch] * len(given)), params
