"""The ``/api/workflows/{id}/streams`` routes: a run's streams
(``handle.streams()``), a page of one (``handle.stream_page``) and its values
as Server-Sent Events (``_sse``). Reading needs the ``read`` role.

Imports fastapi/starlette, the public Client API, ``_deps``, ``_query`` and
``_sse``. A key may hold any character but a line break: one sent as a path
segment (``%2F`` for ``/``) is read from the path as the client sent it
(``StreamRoute``), since routing sees it decoded, where a ``/`` inside the key
and one between segments look the same.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional
from urllib.parse import quote, unquote_to_bytes

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from perdure.client import Client
from perdure.server import _models as m
from perdure.server._deps import READ_ERRORS, client_of, require_read, state_of
from perdure.server._query import (
    MAX_LIMIT,
    MAX_POSITION,
    stream_info_json,
    stream_page_json,
)
from perdure.server._sse import EventFeed

__all__ = ["MAX_FEED_SECONDS", "StreamRoute", "router"]

MAX_FEED_SECONDS = 86_400.0  # the longest ?timeout= of an event stream


class StreamRoute(APIRoute):
    """A route of this module. Beyond its path template (matched, as every
    route's, against the decoded path), it matches only a request whose
    path as sent reads ``/api/workflows/ID/streams[/KEY[/events]]`` with KEY
    one segment, and takes ``workflow_id`` and ``key`` from there, decoded.
    So ``/api/workflows/w/streams/a%2Fb`` is the key ``a/b`` of ``w``, and
    ``/api/workflows/w/streams/a/b`` no stream route: routing goes on, as
    for ``/api/workflows/w/streams/x/history``, the history of the workflow
    ``w/streams/x``, where ``.../streams/x%2Fhistory`` is the key ``x/history``."""

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        tail = path.rsplit("/streams", 1)[1]  # "", "/{key:path}" or "/{key:path}/events"
        key = "/(?P<key>[^/]+)" if tail else ""
        events = "/events" if tail.endswith("/events") else ""
        self.shape = re.compile(rf"/api/workflows/(?P<id>.+)/streams{key}{events}".encode())

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match == Match.NONE:
            return match, child
        found = self.shape.fullmatch(_sent_path(scope))
        if found is None:
            return Match.NONE, {}
        params = {name: _decoded(part) for name, part in found.groupdict().items()}
        child["path_params"] = {
            **child.get("path_params", {}),
            "workflow_id": params["id"],
            **({"key": params["key"]} if "key" in params else {}),
        }
        return match, child


def _sent_path(scope: Scope) -> bytes:
    """The request's path as the client sent it (percent-encoded), without
    the root path; without ``raw_path`` (a server that gives none), the
    decoded path re-encoded, where a key cannot hold ``/``."""
    raw = scope.get("raw_path")
    root = scope.get("root_path", "")
    if not isinstance(raw, bytes):
        path: str = scope["path"]
        raw = quote(path[len(root) :] if root and path.startswith(root) else path).encode()
        return raw
    raw = raw.partition(b"?")[0]  # (some servers leave the query on)
    sent_root = quote(root).encode()
    return raw[len(sent_root) :] if root and raw.startswith(sent_root) else raw


def _decoded(part: bytes) -> str:
    return unquote_to_bytes(part).decode("utf-8", "replace")


router = APIRouter(prefix="/api", route_class=StreamRoute)

ClientDep = Annotated[Client, Depends(client_of)]
Reader = [Depends(require_read)]
WorkflowId = Annotated[str, Path(description="The workflow id (may contain '/').")]
StreamKey = Annotated[
    str,
    Path(
        description="The stream's key (workflow.write_stream), URL-encoded as one path "
        "segment: '/' as %2F."
    ),
]
RunId = Annotated[
    Optional[str], Query(min_length=1, description="A run of the workflow; default: latest.")
]
Start = Annotated[
    int, Query(ge=0, le=MAX_POSITION, description="The position to read from (0: the first).")
]
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "description": "'end' once the stream has ended"},
        "data": {"type": "string", "description": "The value as JSON (end: where to resume)"},
        "id": {"type": "string", "description": "The value's position"},
        "retry": {"type": "integer", "minimum": 0},
    },
}
EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: one per value (id: its position, data: the value "
        "as JSON), then 'event: end' once the stream has ended",
        # One event's fields, as OpenAPI 3.2 describes the format (an earlier
        # 3.x reads "schema" as each event's): a fuzzer checks every event.
        "content": {"text/event-stream": {"schema": _SSE_EVENT}},
    }
}


# The routes in the order routing asks them: a key's, then the list (so that
# .../streams/streams is the stream "streams", not the list of "ID/streams";
# a workflow id sent with its "/" as %2F is never taken for a key's path).
@router.get(
    "/workflows/{workflow_id:path}/streams/{key:path}/events",
    dependencies=Reader,
    response_class=StreamingResponse,
    responses={**EVENT_STREAM, **READ_ERRORS},
)
async def stream_events(
    request: Request,
    client: ClientDep,
    workflow_id: WorkflowId,
    key: StreamKey,
    run_id: RunId = None,
    start: Start = 0,
    timeout: Annotated[
        Optional[float],
        Query(
            ge=0,
            le=MAX_FEED_SECONDS,
            description="End the response after this many seconds if the stream has not "
            "ended (reconnect to read on); default: no limit",
        ),
    ] = None,
    last_event_id: Annotated[
        Optional[str],
        Header(
            alias="Last-Event-ID",
            description="The id of the last event received: read on after it (it wins over "
            "start; a browser's EventSource sends it when it reconnects)",
        ),
    ] = None,
) -> Any:
    """The stream's values as they are written, as Server-Sent Events
    (``handle.read_stream``): ``id:`` a value's position, ``data:`` the
    value as JSON; then ``event: end`` (``data: {"run_id", "next_start"}``)
    once the workflow closed the stream, or the run ended, and every value
    was sent. Follows one run (the ``X-Perdure-Run-Id`` header names it)."""
    if last_event_id is not None and last_event_id.strip():  # (empty: none, as in the spec)
        start = _after(last_event_id)
    # Read once before answering: an unknown workflow or a bad key is a
    # 404 or 422, not a 200 whose events never come; and the run is pinned.
    first = await client.get_handle(workflow_id, run_id).stream_page(key, start, 1)
    feed = EventFeed(client.get_handle(workflow_id, first.run_id), key, start, timeout)
    headers = {"X-Perdure-Run-Id": first.run_id, "X-Accel-Buffering": "no"}
    return StreamingResponse(
        feed.events(state_of(request).feeds), media_type="text/event-stream", headers=headers
    )


def _after(last_event_id: str) -> int:
    """The position after the one a ``Last-Event-ID`` names; 422 if it names none."""
    text = last_event_id.strip()
    if not text.isascii() or not text.isdigit() or int(text) >= MAX_POSITION:
        raise HTTPException(
            422,
            f"Last-Event-ID must be the id of an event of this stream (a position from 0 to "
            f"{MAX_POSITION - 1}), not {last_event_id[:100]!r}",
        )
    return int(text) + 1


@router.get(
    "/workflows/{workflow_id:path}/streams/{key:path}",
    response_model=m.StreamPage,
    dependencies=Reader,
    responses=READ_ERRORS,
)
async def stream_values(
    client: ClientDep,
    workflow_id: WorkflowId,
    key: StreamKey,
    run_id: RunId = None,
    start: Start = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many values")] = 100,
) -> Any:
    """The values of the stream from ``start`` on, with their positions, times
    and writers, without waiting (``handle.stream_page``); ask again from
    ``next_start`` until ``finished``."""
    page = await client.get_handle(workflow_id, run_id).stream_page(key, start, limit)
    return stream_page_json(page)


@router.get(
    "/workflows/{workflow_id:path}/streams",
    response_model=list[m.StreamInfo],
    dependencies=Reader,
    responses=READ_ERRORS,
)
async def list_streams(client: ClientDep, workflow_id: WorkflowId, run_id: RunId = None) -> Any:
    """The run's streams by key: how many values each holds, and whether the
    workflow closed it."""
    return [stream_info_json(s) for s in await client.get_handle(workflow_id, run_id).streams()]
