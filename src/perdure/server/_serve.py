"""Run the app under uvicorn on a socket bound beforehand, so that the URL printed
is the real one (``--port 0`` picks a free port) and a busy port is reported
before anything starts. Used by ``perdure server`` and ``perdure demo --ui``.
Imports uvicorn, fastapi (a type) and the ``app`` module.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from perdure._converter import DataConverter
from perdure.interceptors import Interceptor
from perdure.server._auth import AuthConfig, AuthSetupError, check_bind
from perdure.server._limits import DEFAULT_MAX_BODY_BYTES
from perdure.server.app import create_app, end_event_streams

__all__ = ["bind", "serve", "url_of"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``. Raises OSError (port in use...)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, so the process
    dies of the signal; perdure's processes exit 0 after a drain (as workers do).
    The drain waits for open responses: the event streams are ended first."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        if isinstance(app, FastAPI):
            end_event_streams(app)
        await super().shutdown(sockets)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; whoever runs us handles them
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(
    sock: socket.socket,
    db_url: str,
    auth: AuthConfig,
    *,
    log_level: str = "warning",
    on_ready: Callable[[str], None] | None = None,
    converter: DataConverter | None = None,
    max_body_bytes: int | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> None:
    """Serve the API and UI on ``sock`` until SIGINT/SIGTERM, then return.
    An open API (no token) on a socket beyond loopback raises AuthSetupError
    (and closes the socket): the check had been the CLI's only, and a program
    calling this directly could serve one to the network."""
    try:
        check_bind(sock.getsockname()[0], auth)
    except AuthSetupError:
        sock.close()
        raise
    app = create_app(
        db_url=db_url,
        auth=auth,
        converter=converter,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES if max_body_bytes is None else max_body_bytes,
        interceptors=interceptors,
    )
    config = uvicorn.Config(app, log_level=log_level, lifespan="on")
    server = _Server(config)
    if on_ready is not None:
        on_ready(url_of(sock))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
