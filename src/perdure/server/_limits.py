"""The request body limit: a plain ASGI middleware in front of the app.

Imports only the standard library and starlette's ASGI types. Without it a
client could make the server hold any amount of memory: the converter's
payload limit applies only after a body has been read and parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyLimit"]

# Several payloads of the converter's default limit (2 MiB each) and their
# JSON around them fit; a body meant to exhaust memory does not.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyLimit:
    """Answers 413 to a request whose body is over ``limit`` bytes, before the
    app reads any of it: at once by its Content-Length, or as a chunked body
    arrives. The body is read here, up to the limit, and handed to the app
    whole (the routes read it whole anyway)."""

    def __init__(self, app: ASGIApp, limit: int, headers: Mapping[str, str] = {}) -> None:
        self.app = app
        self.limit = limit
        self.headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODILESS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        whole: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replay() -> Message:
            nonlocal whole
            if whole is None:
                return await receive()  # (after the body, only a disconnect comes)
            message, whole = whole, None
            return message

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        detail = (
            f"the request body is over the server's limit of {self.limit:,} bytes; store "
            f"large data elsewhere and pass a reference"
        )
        body = json.dumps({"detail": detail, "message": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            (b"connection", b"close"),
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
