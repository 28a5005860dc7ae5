"""``perdure server``: the HTTP API and the web UI, over uvicorn.

Imports the public API and typer here; fastapi, uvicorn and ``perdure.server``
only inside the command, so the CLI works without the ``server`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from perdure.cli._app import EPILOG, ConverterOption, DbOption, InterceptorOption, app
from perdure.cli._operator import (
    EXIT_FAILED,
    EXIT_USAGE,
    converter_of,
    database_url,
    fail,
    interceptors_of,
    run,
)
from perdure.client import Client

DEFAULT_PORT = 8765
TokenFileOption = typer.Option(
    None,
    help="File of 'admin TOKEN' / 'read TOKEN' lines (also $PERDURE_ADMIN_TOKEN, $PERDURE_TOKEN).",
)


def serve(
    url: str,
    host: str,
    port: int,
    token_file: Optional[Path],
    log_level: str,
    converter: Optional[str] = None,
    max_body_bytes: Optional[int] = None,
    interceptors: Optional[list[str]] = None,
) -> None:
    """Check the tokens, the database, the converter and the port, then serve
    until Ctrl-C / SIGTERM."""
    try:
        from perdure.server import _serve
        from perdure.server._auth import AuthSetupError, check_bind, load_auth
    except ImportError as exc:
        fail(
            EXIT_FAILED,
            f"perdure server needs the server extra ({exc.name or exc} is missing)",
            "pip install 'perdure[server]'",
        )
    try:
        auth = load_auth(os.environ, token_file)
        check_bind(host, auth)
    except AuthSetupError as exc:
        fail(EXIT_USAGE, str(exc))

    async def probe(client: Client) -> None:
        await client.list(limit=1)  # a bad database fails here (exit 4), not per request

    payloads = converter_of(converter)
    around = interceptors_of(interceptors)
    run(url, probe)
    try:
        sock = _serve.bind(host, port)
    except OSError as exc:
        fail(EXIT_FAILED, f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    roles = sorted(set(auth.tokens.values()))
    access = f"tokens: {', '.join(roles)}" if auth.enabled else "open: loopback, no token"

    def ready(address: str) -> None:
        typer.echo(f"perdure server: {address}  (API {address}api/, {access}; Ctrl-C stops)")

    _serve.serve(
        sock,
        url,
        auth,
        log_level=log_level,
        on_ready=ready,
        converter=payloads,
        max_body_bytes=max_body_bytes,
        interceptors=around,
    )


@app.command(epilog=EPILOG, rich_help_panel="Operate")
def server(
    db: Optional[str] = DbOption,
    host: str = typer.Option("127.0.0.1", help="Address to bind; beyond loopback needs a token."),
    port: int = typer.Option(DEFAULT_PORT, min=0, max=65535, help="Port to listen on."),
    token_file: Optional[Path] = TokenFileOption,
    log_level: str = typer.Option("warning", help="uvicorn log level."),
    converter: Optional[str] = ConverterOption,
    max_body_bytes: Optional[int] = typer.Option(
        None,
        min=1024,
        help="Refuse (413) a request body over this many bytes (default 16 MiB): "
        "raise it for signals or starts with larger payloads.",
    ),
    interceptor: Optional[list[str]] = InterceptorOption,
) -> None:
    """Serve the HTTP API and the web UI.

    On a loopback address with no token configured, access is open. Any other
    address needs tokens: $PERDURE_ADMIN_TOKEN, $PERDURE_TOKEN (read-only) or
    --token-file.
    """
    url = database_url(db)
    serve(url, host, port, token_file, log_level.lower(), converter, max_body_bytes, interceptor)
