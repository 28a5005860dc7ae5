"""Cross-process wake-ups on PostgreSQL: LISTEN on one dedicated connection,
NOTIFY after commits, and nothing else.

A notification carries no data: it only means "something committed, poll
now". Losing one costs latency, never correctness (the worker's poll interval
is the safety net), so both sides favour staying cheap and reconnecting over
being exact. Imports psycopg, the store's connections and its wire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql

from perdure._store import postgres_wire as wire
from perdure._store.postgres_conns import Connections
from perdure._store.postgres_tx import bind, literal_writer

log = logging.getLogger("perdure.store")

PING_EVERY = 10.0  # seconds of silence after which the listener checks its connection
RECONNECT_MIN, RECONNECT_MAX = 0.05, 2.0  # backoff between reconnection attempts


async def finish(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has really ended. One cancel is not
    always enough: ``asyncio.wait_for`` before Python 3.12 (psycopg_pool waits
    for connections with it) drops a cancellation that races with its result."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s ended with an error", task.get_name(), exc_info=task.exception())


class Listener:
    """LISTENs on ``channel`` over its own connection and calls ``on_notify``
    with each notification's payload. When the connection drops (a server
    restart, a network cut), it reconnects with backoff and then calls
    ``on_reconnect``: whatever was notified meanwhile is lost, so the owner
    polls once to catch up."""

    def __init__(
        self,
        conninfo: str,
        channel: str,
        on_notify: Callable[[str], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._on_notify = on_notify
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while LISTEN is in effect (tests wait on it)
        self.reconnects = 0
        self.backend_pid: int | None = None  # the server process serving the LISTEN

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="perdure-listen")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await finish(task)

    async def _run(self) -> None:
        delay = RECONNECT_MIN
        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            except psycopg.Error as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX, delay * 2)
                continue
            # What psycopg itself reads on this connection (during LISTEN, and
            # the pings) reaches this handler; _receive reads the rest.
            conn.add_notify_handler(lambda notice: self._call(self._on_notify, notice.payload))
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                self.backend_pid = conn.info.backend_pid
                self.connected.set()
                delay = RECONNECT_MIN
                if not first:
                    self.reconnects += 1
                    log.info("LISTEN connection re-established")
                    self._call(self._on_reconnect)
                first = False
                await self._receive(conn)
            except (TimeoutError, psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc or type(exc).__name__)
            finally:
                self.connected.clear()
                await conn.close()

    @staticmethod
    def _call(callback: Callable[..., None], *args: str) -> None:
        try:
            callback(*args)
        except Exception:  # a wake-up callback must not deafen the store
            log.exception("wake-up callback failed")

    async def _receive(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        # The notifications are read from libpq directly, the socket waited
        # for through the wire's standing registration: psycopg's notifies()
        # took a lock, a task and a reader registration per notification, and
        # every process hears every other's NOTIFYs (and its own). What
        # arrives while psycopg itself runs a query here (the ping) reaches
        # the notify handler _run gave the connection.
        pg = conn.pgconn
        encoding = conn.info.encoding
        try:
            while True:
                try:
                    await asyncio.wait_for(wire.readable(conn), PING_EVERY)
                except TimeoutError:
                    # Quiet for a while: make sure the connection is still there,
                    # since a silently dead one would make this process deaf
                    # until its next poll.
                    await asyncio.wait_for(conn.execute("SELECT 1"), PING_EVERY)
                    continue
                pg.consume_input()  # (raises OperationalError if the connection broke)
                while (notice := pg.notifies()) is not None:
                    self._call(self._on_notify, notice.extra.decode(encoding))
        finally:
            wire.release(conn)


NOTIFY = b"SELECT pg_notify(%s, %s)"  # the channel, the payload

# PostgreSQL refuses a payload of 8,000 bytes or more.
MAX_PAYLOAD = 7000


def payload(sender: str, topics: set[str], overflow: str) -> str:
    """A NOTIFY's payload: the sender's id, then the topics its commits
    changed (see Store.notify), space-separated. Topics naming one run each
    that would not fit become ``overflow`` ("some runs ended")."""
    text = " ".join(topics)
    if len(sender) + len(text) >= MAX_PAYLOAD:
        text = " ".join({topic for topic in topics if ":" not in topic} | {overflow})
    return f"{sender} {text}"


def parse_payload(text: str) -> tuple[str, list[str]]:
    """(sender, topics). A payload without topics (earlier versions sent
    only the sender's id) means "anything may have changed"."""
    sender, _, topics = text.partition(" ")
    return sender, topics.split()


class Notifier:
    """Sends ``NOTIFY channel, payload`` after commits, coalesced: at most one
    NOTIFY is in flight per store, and any number of commits during it cause
    one more, naming every topic they changed. It is sent outside the
    committing transaction on purpose: a transaction that NOTIFYs holds a
    database-wide lock through its commit, which would serialise every turn
    commit of every worker."""

    def __init__(self, conns: Connections, channel: str, sender: str, overflow: str) -> None:
        self._conns = conns
        self._channel = channel
        self._sender = sender
        self._overflow = overflow
        self._topics: set[str] = set()
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="perdure-notify")

    def kick(self, topics: tuple[str, ...]) -> None:
        self._topics.update(topics)
        self._wanted.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await finish(task)

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            topics, self._topics = self._topics, set()
            text = payload(self._sender, topics, self._overflow)
            try:
                conn = await self._conns.take()
                try:
                    # Over libpq directly, as the write transactions go: a
                    # sequential workflow sends one NOTIFY per run it ends, and
                    # psycopg's cursor cost about twice the CPU for it.
                    query = bind(NOTIFY, (self._channel, text), literal_writer(conn))
                    wire.check(await wire.simple_query(conn, query), conn)
                finally:
                    await self._conns.give(conn)
                self.sent += 1
            except psycopg.Error as exc:
                # Other processes notice the work at their next poll instead.
                log.debug("NOTIFY failed: %s", exc)
