"""The streams routes of the HTTP API, on SQLite and PostgreSQL, with a real
worker: ``GET /api/workflows/{id}/streams`` (the run's streams),
``.../streams/{key}`` (a page of values with positions, times and writers)
and ``.../streams/{key}/events`` (Server-Sent Events).

The values a workflow and an activity wrote are listed and paged; keys that
need URL-encoding (a space, ``/`` as ``%2F``, unicode, ``%``, ``?``, and keys
that end like another route: ``x/history``, ``result``) address their
stream; the events deliver the values written after the reader started, in
order, and end with ``event: end`` when the workflow closes the stream or the
run ends; ``Last-Event-ID`` resumes after an event; a client that goes away
ends its feed; an unknown workflow is a 404, bad input a 422; a read token
may read. The event stream's tests go through a real uvicorn server
(httpx's ASGI transport hands a response over only once it is complete), in
this process, over the test's client; a server shutting down ends its open
event streams (``perdure server`` in a subprocess).

The test controls when values are written: the workflow writes one per
``say`` signal and closes its stream at a ``say`` of null.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from api_both import ADMIN, BASE, READ, eventually
from fastapi import FastAPI
from surface_helpers import spawn

import perdure
import perdure.server._sse
from perdure import activity, workflow
from perdure.server._auth import AuthConfig
from perdure.server._serve import bind, url_of
from perdure.server.app import create_app, end_event_streams

pytestmark = pytest.mark.both_databases

KEYS = ["a/b c é", "x/history", "result", "events", "50% ?#", "streams"]


@activity.defn
def spell(word: str) -> int:
    """Writes the word's letters to the stream ``answer``, one value each."""
    for letter in word:
        activity.write_stream("answer", letter)
    return len(word)


@workflow.defn
async def chatter(topic: str) -> str:
    """Writes to ``answer``: a line of its own, the letters of ``topic`` (by
    the activity ``spell``), then each ``say`` signal's value; a ``say`` of
    null closes the stream. Writes one value to each of ``KEYS`` too. Then
    waits for ``finish``."""
    workflow.write_stream("answer", f"about {topic}")
    for number, key in enumerate(KEYS):
        workflow.write_stream(key, number)
    await spell(topic)
    while (said := await workflow.wait_signal("say", timeout=timedelta(days=1))) is not None:
        workflow.write_stream("answer", said)
    workflow.close_stream("answer")
    await workflow.wait_signal("finish", timeout=timedelta(days=1))
    return "done"


@workflow.defn
async def bulk(count: int) -> int:
    """Writes ``count`` numbers to ``numbers`` in one turn, and ends."""
    for number in range(count):
        workflow.write_stream("numbers", number)
    return count


@pytest.fixture
async def stream_worker(client: perdure.Client) -> AsyncIterator[perdure.Worker]:
    async with perdure.Worker(client, [chatter, bulk], [spell], poll_interval=0.02) as w:
        yield w


async def started(client: perdure.Client, ident: str, topic: str) -> perdure.WorkflowHandle[Any]:
    """A ``chatter`` run once it waits for ``say`` (its first values written)."""
    handle = await client.start(chatter, topic, id=ident)

    async def waiting() -> bool:
        return (await handle.describe()).waiting_signals == ["say"]

    await eventually(waiting, f"{ident} to wait for say")
    return handle


def at(ident: str, key: str | None = None, events: bool = False) -> str:
    """A stream route's path: the id and key encoded as one segment each."""
    path = f"/api/workflows/{quote(ident, safe='')}/streams"
    if key is not None:
        path += f"/{quote(key, safe='')}"
    return path + ("/events" if events else "")


def parsed(body: str) -> list[dict[str, str]]:
    """The events of a ``text/event-stream`` body (comments left out)."""
    events = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if fields:
            events.append(fields)
    return events


@pytest.fixture
async def served(client: perdure.Client) -> AsyncIterator[tuple[str, FastAPI]]:
    """A uvicorn server over the test's client, in this process: its URL and app."""
    app = create_app(client)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def up() -> bool:
        return server.started

    await eventually(up, "the server to start")
    yield url_of(sock).rstrip("/"), app
    end_event_streams(app)
    server.should_exit = True
    await asyncio.wait_for(task, 15)
    sock.close()


class Reader:
    """An event stream read as it comes, in a task: ``events`` grows."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.body = ""
        self.status: int | None = None
        self.task = asyncio.create_task(self._read(url, headers or {}))

    async def _read(self, url: str, headers: dict[str, str]) -> None:
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            self.status = response.status_code
            self.headers = response.headers
            async for text in response.aiter_text():
                self.body += text

    @property
    def events(self) -> list[dict[str, str]]:
        return parsed(self.body)

    async def until(self, count: int, what: str) -> list[dict[str, str]]:
        async def enough() -> list[dict[str, str]] | None:
            if self.task.done():
                self.task.result()  # (raises what ended it)
            return self.events if len(self.events) >= count else None

        return await eventually(enough, what)


def values(events: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(id, data) of the value events."""
    return [(e["id"], e["data"]) for e in events if "event" not in e]


async def test_streams_and_pages_of_values_by_workflow_and_activity(
    api: httpx.AsyncClient, client: perdure.Client, stream_worker: perdure.Worker
) -> None:
    handle = await started(client, "api-stream/1", "hi")
    listed = await api.get(at("api-stream/1"))
    assert listed.status_code == 200, listed.text
    assert listed.json() == sorted(
        [
            {"key": "answer", "length": 3, "closed": False},
            *({"key": key, "length": 1, "closed": False} for key in KEYS),
        ],
        key=lambda s: s["key"],
    )

    page = (await api.get(at("api-stream/1", "answer"))).json()
    assert page["run_id"] == handle.run_id
    assert (page["next_start"], page["finished"]) == (3, False)
    entries = page["entries"]
    assert [(e["position"], e["value"], e["source"]) for e in entries] == [
        (0, "about hi", None),  # the workflow's own
        (1, "h", "spell (ref 1) attempt 1"),
        (2, "i", "spell (ref 1) attempt 1"),
    ]
    times = [datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in entries]
    assert times == sorted(times) and all(t.tzinfo == UTC for t in times)
    assert all(e["time"].endswith("Z") for e in entries)

    # Paging: start and limit; the run by its id.
    first = (await api.get(at("api-stream/1", "answer"), params={"limit": 2})).json()
    assert [e["value"] for e in first["entries"]] == ["about hi", "h"]
    assert (first["next_start"], first["finished"]) == (2, False)
    rest = await api.get(at("api-stream/1", "answer"), params={"start": 2, "run_id": handle.run_id})
    assert [e["value"] for e in rest.json()["entries"]] == ["i"]
    beyond = (await api.get(at("api-stream/1", "answer"), params={"start": 10})).json()
    assert (beyond["entries"], beyond["next_start"], beyond["finished"]) == ([], 10, False)

    # Each key that needs encoding (and one that ends like another route)
    # addresses its own stream; the other routes are not taken for them.
    for number, key in enumerate(KEYS):
        found = await api.get(at("api-stream/1", key))
        assert found.status_code == 200, (key, found.text)
        assert [e["value"] for e in found.json()["entries"]] == [number], key
    history = await api.get("/api/workflows/api-stream%2F1/history")
    assert history.status_code == 200 and history.json()[0]["type"] == "WorkflowStarted"
    result = await api.get("/api/workflows/api-stream%2F1/result")
    assert result.status_code == 200 and result.json()["done"] is False

    # Closed, then the run ended: finished.
    await handle.signal("say", None)

    async def closed() -> Any:
        found = (await api.get(at("api-stream/1", "answer"))).json()
        return found if found["finished"] else None

    assert [e["value"] for e in (await eventually(closed, "closed"))["entries"]][-1] == "i"
    assert {"key": "answer", "length": 3, "closed": True} in (
        await api.get(at("api-stream/1"))
    ).json()
    await handle.signal("finish")
    assert await handle.result(timeout=20) == "done"
    ended = (await api.get(at("api-stream/1", "never written"))).json()
    assert (ended["entries"], ended["finished"]) == ([], True)


async def test_events_deliver_new_values_and_end_when_the_stream_closes(
    served: tuple[str, FastAPI], client: perdure.Client, stream_worker: perdure.Worker
) -> None:
    url, app = served
    handle = await started(client, "api-stream-2", "ok")
    reader = Reader(url + at("api-stream-2", "answer", events=True))
    later = Reader(url + at("api-stream-2", "answer", events=True) + "?start=3")
    assert values(await reader.until(3, "the values written before")) == [
        ("0", '"about ok"'),
        ("1", '"o"'),
        ("2", '"k"'),
    ]
    assert reader.status == 200
    assert reader.headers["content-type"].startswith("text/event-stream")
    assert reader.headers["x-perdure-run-id"] == handle.run_id
    assert reader.headers["cache-control"] == "no-store"
    await eventually(lambda: _opened(app, 2), "both feeds to open")
    assert later.events == []

    # Written after the readers started: each value comes, in order.
    await handle.signal("say", "and then")
    assert values(await reader.until(4, "a new value"))[3] == ("3", '"and then"')
    await handle.signal("say", {"text": "à bientôt\n", "n": 2})
    assert values(await reader.until(5, "another"))[4] == ("4", '{"text":"à bientôt\\n","n":2}')
    assert values(await later.until(2, "the later reader's")) == [
        ("3", '"and then"'),
        ("4", '{"text":"à bientôt\\n","n":2}'),
    ]
    assert not reader.task.done()

    # Closed by the workflow: the end, and the responses are complete.
    await handle.signal("say", None)
    await asyncio.wait_for(asyncio.gather(reader.task, later.task), 20)
    end = {"event": "end", "data": f'{{"run_id":"{handle.run_id}","next_start":5}}'}
    assert reader.events[-1] == later.events[-1] == end
    assert len(reader.events) == 6 and len(later.events) == 3
    assert handle.run_id is not None and (await handle.describe()).status == "running"
    await eventually(lambda: _opened(app, 0), "the feeds to be dropped")
    await handle.signal("finish")


async def _opened(app: FastAPI, count: int) -> bool:
    return len(app.state.perdure.feeds.open) == count


async def test_events_end_with_the_run_and_a_gone_client_ends_its_feed(
    served: tuple[str, FastAPI], client: perdure.Client, stream_worker: perdure.Worker
) -> None:
    url, app = served
    handle = await started(client, "api-stream-3", "yo")
    # Never written, never closed: it ends when the run does.
    reader = Reader(url + at("api-stream-3", "a/b c é/x", events=True))
    await eventually(lambda: _opened(app, 1), "the feed to open")

    # A client that goes away: its feed and the task reading for it end.
    gone_url = url + at("api-stream-3", "answer", events=True)
    async with httpx.AsyncClient(timeout=30) as http, http.stream("GET", gone_url) as gone:
        body = b""
        async for chunk in gone.aiter_bytes():
            body += chunk
            if body.count(b"\n\n") >= 4:  # (the opening comment and three values)
                break
        await eventually(lambda: _opened(app, 2), "the second feed to open")
    await eventually(lambda: _opened(app, 1), "the gone client's feed to end")

    async def one_reading_task() -> bool:
        return sum(t.get_name().startswith("perdure-sse") for t in asyncio.all_tasks()) == 1

    await eventually(one_reading_task, "the gone client's reading task to end")

    await handle.terminate("enough")
    await asyncio.wait_for(reader.task, 20)
    end = {"event": "end", "data": f'{{"run_id":"{handle.run_id}","next_start":0}}'}
    assert reader.events == [end]


async def test_last_event_id_resumes_after_it(
    api: httpx.AsyncClient, client: perdure.Client, stream_worker: perdure.Worker
) -> None:
    handle = await started(client, "api-stream-4", "abc")
    await handle.signal("say", None)  # closed: the responses end (the ASGI transport waits)

    async def closed() -> bool:
        return any(s.key == "answer" and s.closed for s in await handle.streams())

    await eventually(closed, "the stream to close")
    path = at("api-stream-4", "answer", events=True)
    whole = await api.get(path)
    assert values(parsed(whole.text)) == [
        ("0", '"about abc"'),
        ("1", '"a"'),
        ("2", '"b"'),
        ("3", '"c"'),
    ]
    resumed = await api.get(path, params={"start": 0}, headers={"Last-Event-ID": "1"})
    assert values(parsed(resumed.text)) == [("2", '"b"'), ("3", '"c"')]  # (it wins over start)
    from_start = await api.get(path, params={"start": 3})
    assert values(parsed(from_start.text)) == [("3", '"c"')]
    at_end = await api.get(path, headers={"Last-Event-ID": "3"})
    assert parsed(at_end.text) == [
        {"event": "end", "data": f'{{"run_id":"{handle.run_id}","next_start":4}}'}
    ]
    await handle.signal("finish")


async def test_unknown_workflows_and_bad_input(
    api: httpx.AsyncClient,
    client: perdure.Client,
    stream_worker: perdure.Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handle = await started(client, "api-stream-5", "no")
    for path in (at("nope"), at("nope", "answer"), at("nope", "answer", events=True)):
        missing = await api.get(path)
        assert missing.status_code == 404, (path, missing.text)
        assert missing.json()["detail"] == "no workflow with id 'nope'"
    for path in (at("api-stream-5"), at("api-stream-5", "answer", events=True)):
        wrong_run = await api.get(path, params={"run_id": "no-such-run"})
        assert wrong_run.status_code == 404, (path, wrong_run.text)

    stream = at("api-stream-5", "answer")
    bad: list[tuple[str, dict[str, Any], dict[str, str], str]] = [
        (stream, {"start": -1}, {}, "start"),
        (stream, {"start": "x"}, {}, "start"),
        (stream, {"start": 2**53}, {}, "start"),
        (stream, {"limit": 0}, {}, "limit"),
        (stream, {"limit": 1001}, {}, "limit"),
        (stream, {"run_id": ""}, {}, "run_id"),
        (at("api-stream-5", "k" * 2001), {}, {}, "a stream key must be at most 2,000 bytes"),
        (stream + "/events", {"start": -1}, {}, "start"),
        (stream + "/events", {"timeout": -1}, {}, "timeout"),
        (stream + "/events", {}, {"Last-Event-ID": "x"}, "Last-Event-ID must be the id"),
        (stream + "/events", {}, {"Last-Event-ID": "-1"}, "Last-Event-ID must be the id"),
        (at("api-stream-5", "k\x00"), {}, {}, "NUL"),
    ]
    for path, params, headers, said in bad:
        answer = await api.get(path, params=params, headers=headers)
        assert answer.status_code == 422, (path[-40:], params, answer.text)
        assert said in answer.text, (path[-40:], params, answer.text)

    # A feed that has not ended within its timeout ends without the end event;
    # while nothing comes, a comment now and then keeps the connection alive.
    monkeypatch.setattr(perdure.server._sse, "HEARTBEAT", 0.05)
    timed = await api.get(stream + "/events", params={"timeout": 0.5, "start": 3})
    assert timed.status_code == 200 and parsed(timed.text) == []
    assert timed.text.startswith(": perdure stream\n\n: keep-alive\n\n"), timed.text
    await handle.terminate("done")


async def test_a_long_stream_comes_whole_and_in_order(
    api: httpx.AsyncClient, client: perdure.Client, stream_worker: perdure.Worker
) -> None:
    count = 2500  # (more than a feed reads ahead of its client, and than a page holds)
    assert await client.execute(bulk, count, id="api-stream-bulk") == count
    events = parsed((await api.get(at("api-stream-bulk", "numbers", events=True))).text)
    assert values(events) == [(str(n), str(n)) for n in range(count)]
    run_id = (await client.get_handle("api-stream-bulk").describe()).run_id
    end = {"event": "end", "data": f'{{"run_id":"{run_id}","next_start":{count}}}'}
    assert events[-1] == end
    page = (
        await api.get(at("api-stream-bulk", "numbers"), params={"start": 1990, "limit": 1000})
    ).json()
    assert [e["value"] for e in page["entries"]] == list(range(1990, 2500))
    assert (page["next_start"], page["finished"]) == (count, True)


async def test_a_read_token_reads_streams(
    client: perdure.Client, stream_worker: perdure.Worker
) -> None:
    handle = await started(client, "api-stream-6", "r")
    await handle.terminate("ended: its feed ends")
    auth = AuthConfig({ADMIN: "admin", READ: "read"})
    transport = httpx.ASGITransport(app=create_app(client, auth=auth))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as api:
        for path in (at("api-stream-6"), at("api-stream-6", "answer")):
            assert (await api.get(path)).status_code == 401
        token = {"Authorization": f"Bearer {READ}"}
        listed = (await api.get(at("api-stream-6"), headers=token)).json()
        assert {"key": "answer", "length": 2, "closed": False} in listed
        page = await api.get(at("api-stream-6", "answer"), headers=token)
        assert [e["value"] for e in page.json()["entries"]] == ["about r", "r"]
        feed = await api.get(at("api-stream-6", "answer", events=True), headers=token)
        assert values(parsed(feed.text)) == [("0", '"about r"'), ("1", '"r"')]
        assert parsed(feed.text)[-1]["event"] == "end"


def test_a_server_shutting_down_ends_its_event_streams(tmp_path: Path) -> None:
    """SIGTERM to ``perdure server`` with an event stream open on a run that
    never ends: the stream ends and the server exits 0 (uvicorn waits for open
    responses before it stops)."""
    db = f"sqlite:///{tmp_path / 'shutdown.db'}"
    with perdure.SyncClient.connect(db) as c:
        c.start("no_worker_runs_this", id="api-stream-shutdown")
    server = spawn(["server", "--port", "0", "--db", db], tmp_path / "server.log")
    try:
        url = server.url().rstrip("/") + at("api-stream-shutdown", "answer", events=True)
        with httpx.Client(timeout=30) as http, http.stream("GET", url) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            assert next(chunks) == b": perdure stream\n\n"
            server.popen.terminate()
            assert b"".join(chunks) == b""  # (the response ends: no end event)
        assert server.popen.wait(timeout=15) == 0, server.output()
    finally:
        server.stop(9)
