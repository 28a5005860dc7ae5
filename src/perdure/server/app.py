"""The FastAPI application: the ``/api`` routes, the web UI's static files, error
mapping and the request guards. Imports fastapi/starlette and the public API.

Error mapping (one JSON shape, ``{"detail": ...}``): unknown workflow 404; closed
run or workflow id already used 409; malformed body, bad query or undecodable
payload 422; database unavailable 503; a body over the limit 413 (``_limits``).
Guards: an open API (no token configured) answers only requests whose ``Host``
is a loopback name, which defeats DNS rebinding; a write whose ``Origin`` is
another site is refused (CSRF).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

import perdure
from perdure._checks import BadName
from perdure._converter import DataConverter
from perdure.client import Client
from perdure.errors import (
    PayloadError,
    StoreError,
    WorkflowAlreadyStartedError,
    WorkflowClosedError,
    WorkflowNotFoundError,
    WorkflowResetError,
)
from perdure.interceptors import Interceptor
from perdure.server._activity_routes import reset_router as activity_reset_router
from perdure.server._activity_routes import router as activity_router
from perdure.server._auth import AuthConfig, host_header_is_loopback
from perdure.server._batch_routes import router as batch_router
from perdure.server._build_routes import router as build_router
from perdure.server._deps import ServerState, error_response
from perdure.server._limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from perdure.server._listing_routes import router as listing_router
from perdure.server._queue_routes import router as queue_router
from perdure.server._routes import router
from perdure.server._schedule_routes import router as schedule_router
from perdure.server._stream_routes import router as stream_router

__all__ = ["STATIC_DIR", "create_app", "end_event_streams"]

STATIC_DIR = Path(__file__).parent / "static"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
_STATUS_OF: dict[type[Exception], int] = {
    WorkflowNotFoundError: 404,
    WorkflowClosedError: 409,
    WorkflowResetError: 409,
    WorkflowAlreadyStartedError: 409,
    PayloadError: 422,
    BadName: 422,
    StoreError: 503,
}


def create_app(
    client: Client | None = None,
    *,
    db_url: str | None = None,
    auth: AuthConfig | None = None,
    converter: DataConverter | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    interceptors: Sequence[Interceptor] = (),
) -> FastAPI:
    """The API + UI app over ``client`` (yours to close), or over a Client it
    connects to ``db_url`` (with ``converter``, for payloads written through
    codecs, and ``interceptors``, around the starts it makes) at startup and
    closes at shutdown. A request body over
    ``max_body_bytes`` is refused (413) before it is read."""
    state = ServerState(client, auth or AuthConfig()) if client is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state is not None:
            yield
            return
        own = await Client.connect(db_url, converter=converter, interceptors=interceptors)
        app.state.perdure = ServerState(own, auth or AuthConfig())
        try:
            yield
        finally:
            await own.close()

    app = FastAPI(
        title="perdure",
        version=perdure.__version__,
        summary="Start, inspect and steer durable workflows.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # FastAPI's doc pages load scripts from a CDN; the UI stays offline
        redoc_url=None,
        lifespan=lifespan,
    )
    if state is not None:
        app.state.perdure = state
    # First: a stream route matches by the path as sent (``_stream_routes``), and
    # routing must ask it before .../history or .../state/{key} take a key's "/".
    app.include_router(stream_router)
    # Then an activity's reset, before a run's takes ".../activities/N/reset".
    app.include_router(activity_reset_router)
    app.include_router(listing_router)
    app.include_router(router)
    app.include_router(schedule_router)
    app.include_router(queue_router)
    app.include_router(build_router)
    app.include_router(batch_router)
    app.include_router(activity_router)
    _add_error_handlers(app)
    app.middleware("http")(_guard)
    app.add_middleware(BodyLimit, limit=max_body_bytes, headers=SECURITY_HEADERS)
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    return app


def end_event_streams(app: FastAPI) -> None:
    """End the app's open event streams (``GET .../events``), after the values
    each has read: a server shutting down waits for its open responses, and
    one that follows an open run would never end. Their clients reconnect."""
    state: ServerState | None = getattr(app.state, "perdure", None)
    if state is not None:
        state.feeds.close_all()


def _add_error_handlers(app: FastAPI) -> None:
    async def perdure_error(request: Request, exc: Exception) -> Response:
        status = next((s for t, s in _STATUS_OF.items() if isinstance(exc, t)), 500)
        return error_response({"detail": str(exc)}, status)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = jsonable_encoder(exc.errors())
        return error_response({"detail": errors, "message": _explain(errors)}, 422)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400:  # fastapi could not parse the body (not UTF-8, say)
            message = f"the request body cannot be read: {exc.detail}"
            return error_response({"detail": message, "message": message}, 422)
        return await http_exception_handler(request, exc)

    for error_type in _STATUS_OF:
        app.add_exception_handler(error_type, perdure_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)


def _explain(errors: list[dict[str, Any]]) -> str:
    """One sentence for the first validation error (the full list is in ``detail``)."""
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        why = (first.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON: {why}".rstrip(": ")
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid value')}"


def _same_origin(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
    state: ServerState | None = getattr(request.app.state, "perdure", None)
    host = request.headers.get("host", "")
    if state is not None and not state.auth.enabled and not host_header_is_loopback(host):
        # No token configured: only this machine may call, by a loopback name.
        detail = (
            f"this server has no tokens and answers only to loopback hosts, not {host!r}; "
            f"configure tokens to serve other names"
        )
        return JSONResponse({"detail": detail}, status_code=403)
    origin = request.headers.get("origin")
    if request.method not in SAFE_METHODS and origin and not _same_origin(origin, host):
        return JSONResponse(
            {"detail": f"cross-origin write from {origin!r} refused"}, status_code=403
        )
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.url.path.startswith("/api/"):
        response.headers.setdefault("cache-control", "no-store")
    return response
