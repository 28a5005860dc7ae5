"""A stream's values as Server-Sent Events (``GET .../streams/{key}/events``):
the wire format, and the feed that turns ``handle.read_stream`` into events.

Imports the standard library and the public Client API only. One feed per
response: a task reads the stream (``read_stream`` waits for new values and
is woken by the writes), the response sends what it has read, and a comment
every ``HEARTBEAT`` seconds while there is nothing to send keeps proxies from
cutting an idle connection (and finds a client that went away). The server's
``Feeds`` ends every open feed when it shuts down: uvicorn waits for open
responses before it stops, and a feed of an open run would never end.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from perdure.client import WorkflowHandle
from perdure.errors import PerdureError

__all__ = ["HEARTBEAT", "EventFeed", "Feeds", "event_text"]

HEARTBEAT = 15.0  # seconds without an event before a keep-alive comment
MAX_PENDING = 1000  # values read ahead of a slow client before the reading pauses


def _json(value: Any) -> str:
    """One line of JSON (``json.dumps`` escapes line breaks inside strings);
    UTF-8 as it is, unless a string holds what UTF-8 cannot carry."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # (a lone surrogate: escaped, the JSON stays readable)
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)
    return text


def event_text(data: Any, *, event: str | None = None, event_id: int | None = None) -> str:
    """One event in the ``text/event-stream`` format: its fields, a blank line."""
    head = f"event: {event}\n" if event is not None else ""
    ident = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}{ident}data: {_json(data)}\n\n"


class Feeds:
    """The feeds a server has open, so that its shutdown can end them."""

    def __init__(self) -> None:
        self.open: set[EventFeed] = set()
        self.closing = False

    def close_all(self) -> None:
        """End every open feed (and any opened from now on) after what it has read."""
        self.closing = True
        for feed in list(self.open):
            feed.stop()


class EventFeed:
    """The events of one response: each value of ``key`` from ``start`` on
    (``id:`` its position), then ``event: end`` once the stream has ended.
    It ends without that event after ``timeout`` seconds, or when the
    server shuts down (the client reconnects, with ``Last-Event-ID``), and
    with ``event: error`` if reading fails (a value that cannot be decoded,
    the database gone)."""

    def __init__(
        self, handle: WorkflowHandle[Any], key: str, start: int, timeout: float | None
    ) -> None:
        self.handle, self.key, self.position, self.timeout = handle, key, start, timeout
        self._pending: deque[Any] = deque()
        self._last: str | None = None  # the final event, once reading is over
        self._over = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def _finish(self, last: str | None) -> None:
        if not self._over:
            self._over, self._last = True, last
            self._wake.set()

    def stop(self) -> None:
        """End the response once what was read is sent (a server shutting down)."""
        self._finish(None)

    async def _read(self) -> None:
        start, count = self.position, 0
        try:
            async for value in self.handle.read_stream(self.key, start, timeout=self.timeout):
                self._pending.append(value)
                count += 1
                self._wake.set()
                if len(self._pending) >= MAX_PENDING:  # (a slow client: wait for it)
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            self._finish(None)
        except Exception as exc:  # (a value that cannot be decoded, the database gone)
            detail = str(exc) if isinstance(exc, PerdureError) else f"{type(exc).__name__}: {exc}"
            self._finish(event_text({"detail": detail}, event="error"))
        else:
            end = {"run_id": self.handle.run_id, "next_start": start + count}
            self._finish(event_text(end, event="end"))

    async def events(self, feeds: Feeds) -> AsyncIterator[bytes]:
        """The response body. Cancelled when the client goes away (starlette
        listens for the disconnect): the reading task is cancelled with it."""
        feeds.open.add(self)
        if feeds.closing:
            self.stop()
        reader = asyncio.create_task(self._read(), name=f"perdure-sse {self.key!r}")
        try:
            yield b": perdure stream\n\n"  # (at once: some proxies hold the headers until a byte)
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), HEARTBEAT)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                self._wake.clear()
                over = self._over  # (read before draining: values come before the end)
                chunk = []
                while self._pending:
                    value = self._pending.popleft()
                    chunk.append(event_text(value, event_id=self.position))
                    self.position += 1
                self._room.set()
                if over and self._last is not None:
                    chunk.append(self._last)
                if chunk:
                    yield "".join(chunk).encode("utf-8")
                if over:
                    return
        finally:
            feeds.open.discard(self)
            reader.cancel()  # (not awaited: a cancelled response may not await again)
