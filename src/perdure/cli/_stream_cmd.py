"""``perdure stream``: the values of a run's stream (``workflow.write_stream``,
``activity.write_stream``), one JSON text a line, and with ``--follow`` the
values written from then on, until the stream ends.

Imports the public API, typer and the JSON views of ``perdure.server._query``
(framework-free); exit codes come from ``_operator.run`` (no end within
``--timeout``: 8, as ``update``'s no answer in time).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Optional

import typer

from perdure._checks import BadName
from perdure.cli._app import ConverterOption, DbOption, app
from perdure.cli._operator import (
    EPILOG,
    EXIT_NO_ANSWER,
    EXIT_USAGE,
    RunIdOption,
    fail,
    run,
)
from perdure.client import Client, StreamEntry, WorkflowHandle
from perdure.server._query import MAX_POSITION, stream_entry_json

__all__ = ["stream"]

PAGE = 1000  # values read at a time


@app.command(epilog=EPILOG, rich_help_panel="Inspect")
def stream(
    workflow_id: str = typer.Argument(..., metavar="ID", help="Workflow id."),
    key: str = typer.Argument(
        ..., metavar="KEY", help="The stream's key (what workflow.write_stream names)."
    ),
    start: int = typer.Option(
        0, "--start", min=0, max=MAX_POSITION, help="The position to read from (0: the first)."
    ),
    follow: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="Print new values as they are written, until the stream ends (the workflow "
        "closed it, or the run ended).",
    ),
    timeout: Optional[float] = typer.Option(
        None, "--timeout", min=0, help="With --follow: give up after this many seconds (exit 8)."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='One object a line: {"position", "value", "time", "source"} (source: null for '
        "the workflow, else the activity attempt that wrote it).",
    ),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Print the values of a run's stream KEY, one JSON text a line.

    Without --follow: the values it holds now, from --start on. With --follow:
    then each new value as it is written, until the stream ends (exit 0); exit
    8 if it has not ended within --timeout (the error names the --start to read
    on from). Reads the latest run of the id (or --run-id), and only that run:
    a run that continues as new has streams of its own.
    """
    if not key:
        raise typer.BadParameter("must not be empty", param_hint="KEY")

    def emit(entries: list[StreamEntry]) -> None:
        try:
            for entry in entries:
                shown = stream_entry_json(entry) if as_json else entry.value
                sys.stdout.write(json.dumps(shown, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()  # (a value is printed as it comes, not when a buffer fills)
        except BrokenPipeError:
            # Its reader is done (perdure stream ... -f | head -3): so is this.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None

    async def work(client: Client) -> None:
        try:
            page = await client.get_handle(workflow_id, run_id).stream_page(key, start, PAGE)
        except BadName as exc:  # (a key the client refuses: NUL, over 2,000 bytes)
            fail(EXIT_USAGE, str(exc))
        # The run read first is the one followed (not a newer one started since).
        pinned = client.get_handle(workflow_id, page.run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            emit(page.entries)
            if len(page.entries) < PAGE:  # (a full page: more may be there already)
                if page.finished or not follow:
                    return
                left = None if deadline is None else deadline - time.monotonic()
                if not await _wait_for_more(pinned, key, page.next_start, left):
                    fail(
                        EXIT_NO_ANSWER,
                        f"stream {key!r} of workflow {workflow_id!r} did not end within "
                        f"{timeout:g}s",
                        f"to read on, run this again with --start {page.next_start}",
                    )
            page = await pinned.stream_page(key, page.next_start, PAGE)

    run(db, work, converter=converter)


async def _wait_for_more(
    handle: WorkflowHandle[Any], key: str, start: int, left: float | None
) -> bool:
    """Wait until the stream holds a value at ``start`` or has ended (True),
    or ``left`` seconds have passed (False). ``read_stream`` does the waiting
    (woken by the writes); the values are read again, with their positions,
    times and writers, by ``stream_page``."""
    if left is not None and left <= 0:
        return False
    values = handle.read_stream(key, start, timeout=left)
    try:
        async for _ in values:
            break
    except TimeoutError:
        return False
    finally:
        close = getattr(values, "aclose", None)  # (an async generator: its wait ends now)
        if close is not None:
            await close()
    return True
