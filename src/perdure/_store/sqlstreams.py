"""Streams in SQL: the values a run appends to its named streams, for
clients to read as they come (``workflow.write_stream``,
``activity.write_stream``, ``WorkflowHandle.read_stream``).

A stream is the rows of ``streams`` under (run, key), numbered from 0 by
``position``, and its head in ``stream_heads``: how many values it holds and
whether it is closed. Every append first locks its run (``Dialect.for_update``:
the lock order of sqlrows, the run first), then bumps the head by an upsert that
returns the new length (and returns nothing for a closed stream): so two
writers never take one position, and positions commit in order (a later one
waits for the lock of the earlier one's run). A workflow's writes go in its
turn's transaction, which holds the run already; an activity's come in
transactions of their own (``append``). A reader reads the run's status and
the head before the values (in that order, so that "finished" is never said
before the last value is there to read). Imports the store's records, the
row helpers and the errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perdure._store.records import OPEN, StreamSlice
from perdure._store.sqlrows import Dialect, Tx, dumps, loads
from perdure.errors import WorkflowClosedError, WorkflowNotFoundError

__all__ = ["HEADS", "append", "heads", "read_queries", "slice_from_rows", "write_turn_streams"]

_LOCK_RUN = "SELECT status FROM runs WHERE run_id = ?"
# The head after adding ``length`` values; no row if the stream is closed.
_BUMP = (
    "INSERT INTO stream_heads (run_id, key, length, closed) VALUES (?, ?, ?, 0)"
    " ON CONFLICT (run_id, key) DO UPDATE SET length = stream_heads.length + excluded.length"
    " WHERE stream_heads.closed = 0 RETURNING length"
)
_CLOSE = (
    "INSERT INTO stream_heads (run_id, key, length, closed) VALUES (?, ?, 0, 1)"
    " ON CONFLICT (run_id, key) DO UPDATE SET closed = 1"
)
_INSERT = (
    "INSERT INTO streams (run_id, key, position, data, source, written_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_STATUS = "SELECT status FROM runs WHERE run_id = ?"
_HEAD = "SELECT length, closed FROM stream_heads WHERE run_id = ? AND key = ?"
_VALUES = (
    "SELECT position, data, source, written_at FROM streams"
    " WHERE run_id = ? AND key = ? AND position >= ? ORDER BY position LIMIT ?"
)
HEADS = "SELECT key, length, closed FROM stream_heads WHERE run_id = ? ORDER BY key"


async def _add(
    tx: Tx,
    run_id: str,
    key: str,
    values: Sequence[Any],
    source: str | None,
    now: float,
) -> int | None:
    """Append ``values`` (JSON values) to the stream; its new length, or
    None (nothing written) if the stream is closed. The run is locked."""
    row = await tx.one(_BUMP, (run_id, key, len(values)))
    if row is None:
        return None
    length = int(row[0])
    first = length - len(values)
    await tx.executemany(
        _INSERT,
        [(run_id, key, first + i, dumps(value), source, now) for i, value in enumerate(values)],
    )
    return length


async def write_turn_streams(
    tx: Tx, run_id: str, writes: list[tuple[str, Any, bool]], now: float
) -> None:
    """A turn's stream writes (TurnCommit.streams), in order; the turn's
    fence holds the run. (The runtime refuses a write after its own close,
    and only a run's workflow closes its streams: none is refused here.)"""
    pending: list[Any] = []
    key = ""
    for write_key, value, closing in writes:
        if pending and write_key != key:
            await _add(tx, run_id, key, pending, None, now)
            pending = []
        key = write_key
        if closing:
            if pending:
                await _add(tx, run_id, key, pending, None, now)
                pending = []
            await tx.send(_CLOSE, (run_id, key))
        else:
            pending.append(value)
    if pending:
        await _add(tx, run_id, key, pending, None, now)


async def append(
    tx: Tx,
    d: Dialect,
    run_id: str,
    key: str,
    values: Sequence[Any],
    source: str,
    now: float,
) -> int:
    """An activity's values, appended to its run's stream ``key``: the
    stream's new length. Raises WorkflowClosedError (nothing written) if the
    run has ended or its workflow closed the stream."""
    found = await tx.one(_LOCK_RUN + d.for_update, (run_id,))
    if found is None:
        raise WorkflowNotFoundError(f"no run {run_id!r}")
    if found[0] != OPEN:
        raise WorkflowClosedError(
            f"run {run_id} has ended ({found[0]}): its stream {key!r} takes no more values"
        )
    length = await _add(tx, run_id, key, values, source, now)
    if length is None:
        raise WorkflowClosedError(
            f"stream {key!r} of run {run_id} was closed by its workflow"
            " (workflow.close_stream): it takes no more values"
        )
    return length


def read_queries(
    run_id: str, key: str, start: int, limit: int
) -> list[tuple[str, tuple[Any, ...]]]:
    """The reads of one slice of a stream, in the order they must run
    (see the module's docstring); slice_from_rows makes their answer a StreamSlice."""
    return [
        (_STATUS, (run_id,)),
        (_HEAD, (run_id, key)),
        (_VALUES, (run_id, key, start, limit)),
    ]


def slice_from_rows(run_id: str, found: list[list[tuple[Any, ...]]]) -> StreamSlice:
    status, head, values = found
    if not status:
        raise WorkflowNotFoundError(f"no run {run_id!r}")
    length, closed = (int(head[0][0]), bool(head[0][1])) if head else (0, False)
    return StreamSlice(
        entries=[(int(p), loads(data), source, float(at)) for p, data, source, at in values],
        length=length,
        closed=closed,
        run_open=status[0][0] == OPEN,
    )


def heads(found: list[tuple[Any, ...]]) -> list[tuple[str, int, bool]]:
    """(key, length, closed) of each of a run's streams, by key: sorted here,
    by code point, as on SQLite (a PostgreSQL database's collation may sort
    text otherwise: "_x a B Z1" under en_US, "B Z1 _x a" under C)."""
    return sorted((str(k), int(n), bool(c)) for k, n, c in found)
