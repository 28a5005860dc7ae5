"""Plumbing shared by the operator commands (``_inspect_cmd``, ``_control_cmd``,
``_server_cmd``): exit codes, connecting, error reporting, JSON and time output.

Imports the public API, typer and rich. Every command runs its work through
:func:`run`, which maps perdure's errors to the documented exit codes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn, Optional
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape

from perdure._converter import DataConverter
from perdure._store import resolve_url, sqlite_path
from perdure.cli._app import EPILOG
from perdure.cli._modules import ModuleLoadError, load_converter, load_interceptor
from perdure.client import Client
from perdure.errors import (
    PayloadError,
    PerdureError,
    StoreError,
    WorkflowAlreadyStartedError,
    WorkflowCancelledError,
    WorkflowClosedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowResetError,
    WorkflowTerminatedError,
)
from perdure.interceptors import Interceptor
from perdure.server._query import parse_when

__all__ = [
    "EPILOG",
    "EXIT_CANCELLED",
    "EXIT_CONFLICT",
    "EXIT_DB",
    "EXIT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_NO_ANSWER",
    "EXIT_REJECTED",
    "EXIT_RUNNING",
    "EXIT_USAGE",
    "JsonOption",
    "RunIdOption",
    "converter_of",
    "err",
    "fail",
    "local_time",
    "parse_json",
    "print_json",
    "run",
    "shown_url",
    "sqlite_file",
]

EXIT_FAILED = 1  # `result`: the run failed, timed out, was cancelled or terminated
EXIT_USAGE = 2  # what click/typer use for a bad option or argument
EXIT_NOT_FOUND = 3  # no workflow with this id
EXIT_DB = 4  # the database cannot be used: bad URL, missing file, newer schema
EXIT_CONFLICT = 5  # the run is already closed, or the workflow id is taken
EXIT_RUNNING = 6  # `result`: the run has not ended (no --wait, or --timeout passed)
EXIT_REJECTED = 7  # `update`: the workflow rejected the update (request.reject)
EXIT_NO_ANSWER = 8  # `update`: no answer within --timeout (the request stays queued);
# `stream --follow`: the stream did not end within --timeout
EXIT_CANCELLED = 9  # `activity heartbeat`: the attempt is to stop (cancelled, paused, reset)

JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _a_run_id(value: str | None) -> str | None:
    if value == "":  # (it had meant the latest run; say so by leaving it out)
        raise typer.BadParameter("must not be empty (leave it out for the latest run)")
    return value


RunIdOption = typer.Option(
    None, "--run-id", help="A specific run (default: the latest).", callback=_a_run_id
)

err = Console(stderr=True, highlight=False)


def fail(code: int, message: str, hint: str | None = None) -> NoReturn:
    """Print ``error: message`` (and a hint) to stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        err.print(f"[dim]{escape(hint)}[/]", soft_wrap=True)
    raise typer.Exit(code)


def database_url(db: str | None) -> str:
    """The URL a command uses: ``--db``, else ``$PERDURE_DB``, else the
    default; an empty one exits 4 (it had quietly meant the default file)."""
    try:
        return resolve_url(db)
    except StoreError as exc:
        fail(EXIT_DB, str(exc), "check --db / $PERDURE_DB")


def shown_url(url: str) -> str:
    """``url`` as the commands print it: a password, in the user part or in the
    query (``?password=``), is written ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key == "password" for key, _ in pairs):
            query = "&".join(
                f"{key}=***" if key == "password" else f"{key}={value}" for key, value in pairs
            )
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # (urlunsplit would write sqlite:///x.db as sqlite:/x.db)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def parse_json(text: str, what: str) -> Any:
    """A JSON option value, or a usage error (exit 2) saying what is wrong."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"{what} must be JSON ({exc.msg} at column {exc.colno}): {text!r}; "
            f"strings need quotes, e.g. '\"text\"'"
        ) from None


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def local_time(when: datetime | None) -> str:
    return "-" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def when_option(text: Optional[str], option: str) -> Optional[datetime]:
    """An option's time: ISO 8601 (naive: the local zone) or an age (2h, 3d);
    exit 2 naming the option if it cannot be read."""
    if text is None:
        return None
    local = datetime.now().astimezone()
    assert local.tzinfo is not None  # astimezone() always sets one
    try:
        return parse_when(text, now=local, naive_tz=local.tzinfo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def sqlite_file(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL, decoded as the store decodes it
    (None for other URLs and :memory:)."""
    if not url.startswith("sqlite:///"):
        return None
    path = sqlite_path(url)
    return None if path == ":memory:" else path


def converter_of(spec: Optional[str]) -> Optional[DataConverter]:
    """The DataConverter a ``--converter`` names (None: the default); a usage
    error (exit 2) if it names none."""
    if spec is None:
        return None
    try:
        return load_converter(spec)
    except ModuleLoadError as exc:
        fail(EXIT_USAGE, str(exc))


def interceptors_of(specs: Optional[list[str]]) -> list[Interceptor]:
    """The interceptors ``--interceptor`` options name; a usage error (exit 2)
    for one that names none."""
    try:
        return [load_interceptor(spec) for spec in specs or ()]
    except ModuleLoadError as exc:
        fail(EXIT_USAGE, str(exc))


def run(
    db: Optional[str],
    work: Callable[[Client], Awaitable[int | None]],
    *,
    create: bool = False,
    converter: Optional[str] = None,
) -> None:
    """Connect to ``db``, run ``work(client)``, and exit with its code (or the code
    of the error it raised). Unless ``create``, a missing SQLite file is an error
    (exit 4) instead of a new empty database: a typo in --db must not look like
    "no workflows". ``converter``: a ``--converter`` MODULE:NAME (exit 2 if it
    does not name a DataConverter)."""
    url = database_url(db)
    payloads = converter_of(converter)
    path = sqlite_file(url)
    if not create and path is not None and not os.path.exists(path):
        fail(
            EXIT_DB,
            f"database file {path!r} does not exist ({shown_url(url)})",
            "check --db / $PERDURE_DB, or create it with `perdure migrate`",
        )

    async def main() -> int | None:
        client = await Client.connect(url, converter=payloads)
        try:
            return await work(client)
        finally:
            await client.close()

    try:
        code = asyncio.run(main())
    except WorkflowNotFoundError as exc:
        fail(EXIT_NOT_FOUND, str(exc), "`perdure list` shows the workflows there are")
    except StoreError as exc:
        fail(EXIT_DB, str(exc))
    except (WorkflowClosedError, WorkflowAlreadyStartedError, WorkflowResetError) as exc:
        fail(EXIT_CONFLICT, str(exc))
    except PayloadError as exc:
        fail(EXIT_USAGE, str(exc))
    except (WorkflowFailedError, WorkflowCancelledError, WorkflowTerminatedError) as exc:
        fail(EXIT_FAILED, str(exc))
    except PerdureError as exc:
        fail(EXIT_FAILED, f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        fail(130, "interrupted")
    if code:
        raise typer.Exit(code)
