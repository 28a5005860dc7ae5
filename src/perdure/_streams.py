"""Reading a run's streams from a client (``WorkflowHandle.read_stream``,
``stream_page``, ``streams``): the values its workflow
(``workflow.write_stream``) and its activities (``activity.write_stream``)
appended, by position. A reader follows one run: the handle's, or the
latest run of its id when it starts reading. It reads what is there, then
waits: a commit of this process that writes to the run wakes it (a worker's
turn, an activity's append), another process's commit wakes it through
PostgreSQL's NOTIFY, and on SQLite it looks again every 2 ms at first, then
less often (up to the client's ``poll_interval``). Talks to the client's
store only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from perdure._checks import check_name, timeout_seconds
from perdure._waiting import StreamWatch

if TYPE_CHECKING:
    from perdure._handle import WorkflowHandle

__all__ = ["StreamEntry", "StreamInfo", "StreamPage", "read_values", "stream_infos", "stream_page"]

POLL_FIRST = 0.002  # seconds: the first pause between looks (it doubles each time)
PAGE = 500  # values read at a time
MAX_PAGE = 10_000
# The greatest position a stream can have (the databases' 64-bit integer):
# a start beyond it is refused (SQLite's driver cannot even send it).
MAX_START = 2**63 - 1


@dataclass(frozen=True)
class StreamEntry:
    """One value of a stream, at its ``position`` (0, 1, 2, ...)."""

    position: int
    value: Any
    time: datetime  # when it was written (UTC)
    # Who wrote it: None for the workflow itself, else the activity attempt,
    # as "NAME (ref N) attempt K" (a retried activity writes its values
    # again: a reader can drop those of an attempt that failed).
    source: str | None


@dataclass(frozen=True)
class StreamPage:
    """Part of a stream (``WorkflowHandle.stream_page``)."""

    run_id: str
    entries: list[StreamEntry]
    next_start: int  # the position to ask for next
    # True once no value will come after these: the workflow closed the
    # stream, or the run ended, and these are its last values.
    finished: bool


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a run (``WorkflowHandle.streams``)."""

    key: str
    length: int  # values written so far
    closed: bool  # closed by the workflow (a run's streams all end with it)


def _checked(key: object, start: object) -> int:
    check_name("a stream key", key)
    if isinstance(start, bool) or not isinstance(start, int):
        raise TypeError(f"start must be an int, not {type(start).__name__} {start!r}")
    if start < 0:
        raise ValueError(f"start must not be negative, not {start}")
    if start > MAX_START:
        raise ValueError(f"start must be at most {MAX_START:,} (a stream position), not {start}")
    return start


async def stream_page(handle: WorkflowHandle[Any], key: str, start: int, limit: int) -> StreamPage:
    """See ``WorkflowHandle.stream_page``."""
    start = _checked(key, start)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an int from 1 to {MAX_PAGE:,}, not {limit!r}")
    run = await handle._run()
    found = await handle.client.store.read_stream(run.run_id, key, start, limit)
    decode = handle.client.converter.from_json
    where = f"stream {key!r}"
    entries = [
        StreamEntry(position, decode(value, where=where), datetime.fromtimestamp(at, UTC), source)
        for position, value, source, at in found.entries
    ]
    next_start = entries[-1].position + 1 if entries else start
    return StreamPage(
        run.run_id, entries, next_start, found.finished and next_start >= found.length
    )


async def read_values(
    handle: WorkflowHandle[Any], key: str, start: int, timeout: float | None
) -> AsyncIterator[Any]:
    """See ``WorkflowHandle.read_stream``."""
    start = _checked(key, start)
    timeout = timeout_seconds(timeout) if timeout is not None else None
    run = await handle._run()
    store, decode = handle.client.store, handle.client.converter.from_json
    where = f"stream {key!r}"
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    watch = StreamWatch(store)
    watch.listen(run.run_id)
    pause = POLL_FIRST
    try:
        while True:
            watch.changed.clear()  # (before reading: a write between is not missed)
            found = await store.read_stream(run.run_id, key, start, PAGE)
            for position, value, _, _ in found.entries:
                start = position + 1
                yield decode(value, where=where)
            if found.entries:
                pause = POLL_FIRST
                if len(found.entries) == PAGE:
                    continue  # (more may be there already)
            if found.finished and start >= found.length:
                return
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise TimeoutError(
                    f"stream {key!r} of workflow {handle.id!r} (run {run.run_id}) did not"
                    f" end within {timeout:g}s; read on from start={start}"
                )
            wait = pause if left is None else min(pause, left)
            await handle._awaiting(watch.wait(wait))
            pause = min(pause * 2, max(POLL_FIRST, handle.client.poll_interval))
    finally:
        watch.close()


async def stream_infos(handle: WorkflowHandle[Any]) -> list[StreamInfo]:
    """See ``WorkflowHandle.streams``."""
    run = await handle._run()
    return [StreamInfo(k, n, c) for k, n, c in await handle.client.store.stream_heads(run.run_id)]
