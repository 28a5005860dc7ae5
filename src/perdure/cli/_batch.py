"""The batch form of ``perdure cancel``, ``terminate`` and ``reset``: with the
workflow id left out, every run the filters match (``Client.batch``). Without
``--yes`` it shows which and does nothing; with it, it acts and sums up.

Imports the public API, typer, rich, ``_operator`` (exit codes,
output) and ``_filters``; registers no command (``_control_cmd`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from perdure.cli._filters import BATCH_PANEL, RunFilter
from perdure.cli._operator import (
    EXIT_CONFLICT,
    EXIT_USAGE,
    err,
    fail,
    local_time,
    print_json,
    run,
)
from perdure.client import BatchResult, Client
from perdure.server._query import batch_json

__all__ = ["PREVIEW", "Action", "LimitOption", "YesOption", "act_on_matching", "is_batch"]

Action = Literal["cancel", "terminate", "reset"]

out = Console(highlight=False, soft_wrap=True)

PREVIEW = 20  # runs a preview lists (--json: all of them)
FILTERS = "--status, --type, --since, --until, --search, --attr, --retrying"
# Per action: the summary's "Terminated 3 of 3 runs matched", the spinner's
# "terminating ...", and the error's "could not be terminated".
DONE = {"cancel": "Cancellation requested for", "terminate": "Terminated", "reset": "Reset"}
DOING = {"cancel": "cancelling", "terminate": "terminating", "reset": "resetting"}
PAST = {"cancel": "cancelled", "terminate": "terminated", "reset": "reset"}

LimitOption = typer.Option(
    None,
    "--limit",
    min=1,
    help="At most N runs, the newest first (default: every match).",
    rich_help_panel=BATCH_PANEL,
)
YesOption = typer.Option(
    False,
    "--yes",
    "-y",
    help="Act on them. Without it, only list the runs that match: nothing is done.",
    rich_help_panel=BATCH_PANEL,
)


def is_batch(
    action: Action,
    workflow_id: Optional[str],
    chosen: RunFilter,
    *,
    limit: Optional[int],
    yes: bool,
    one_run_only: Mapping[str, bool],
) -> bool:
    """Which form the command takes: one workflow id (False) or filters
    (True). A usage error (exit 2) for both, neither, or an option of the
    one form given to the other (``one_run_only``: option -> given)."""
    batch_only = [*chosen.given(), *(["--limit"] if limit is not None else [])]
    batch_only += ["--yes"] if yes else []
    if workflow_id is not None:
        if batch_only:
            fail(
                EXIT_USAGE,
                f"give a workflow id or filters, not both ({', '.join(batch_only)} "
                "go with filters)",
                f"perdure {action} ID, or leave out ID to {action} every run the filters match",
            )
        return False
    if not chosen.given():
        fail(
            EXIT_USAGE,
            f"name a workflow id, or give filters ({FILTERS}) to {action} every run they match",
            f"e.g. perdure {action} --status {'failed' if action == 'reset' else 'running'} "
            "--type NAME (lists them; --yes acts)",
        )
    single = [option for option, given in one_run_only.items() if given]
    if single:
        fail(
            EXIT_USAGE,
            f"{' and '.join(single)} {'is' if len(single) == 1 else 'are'} for one run, "
            "not with filters",
            f"perdure {action} ID {single[0]} ...",
        )
    if action in ("cancel", "terminate") and chosen.status not in (None, "running"):
        raise typer.BadParameter(
            f"only open runs can be {PAST[action]}: leave it out or give running, not "
            f"{chosen.status!r}",
            param_hint="--status",
        )
    return True


def act_on_matching(
    action: Action,
    chosen: RunFilter,
    *,
    limit: Optional[int],
    yes: bool,
    reason: Optional[str],
    db: Optional[str],
    as_json: bool,
) -> None:
    """Without ``yes``: list the runs ``chosen`` matches (a dry run). With it:
    act on them and sum up; exit 5 if any run's action failed."""

    async def work(client: Client) -> int:
        try:
            if yes:  # (the runs are chosen, then acted on a few at a time)
                with err.status(f"{DOING[action]} the runs that match", spinner="dots"):
                    result = await _batch(client, action, chosen, limit, reason, False)
            else:
                result = await _batch(client, action, chosen, limit, reason, True)
        except (TypeError, ValueError) as exc:  # (an argument the Client refused)
            fail(EXIT_USAGE, str(exc))
        if as_json:
            print_json(batch_json(result))
        elif yes:
            _summary(result)
        else:
            _preview(result, limit)
        return EXIT_CONFLICT if result.failed else 0

    run(db, work)


async def _batch(
    client: Client,
    action: Action,
    chosen: RunFilter,
    limit: Optional[int],
    reason: Optional[str],
    dry_run: bool,
) -> BatchResult:
    return await client.batch(
        action,
        status=chosen.status,
        workflow=chosen.workflow_type,
        since=chosen.since,
        until=chosen.until,
        search=chosen.search,
        search_attributes=chosen.search_attributes or None,
        retrying=chosen.retrying,
        reason=reason,
        limit=limit,
        dry_run=dry_run,
    )


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _preview(result: BatchResult, limit: Optional[int]) -> None:
    action = result.action
    if not result.matched:
        out.print(f"No runs match: nothing to {action}.")
        return
    capped = " (--limit)" if limit is not None and len(result.matched) >= limit else ""
    out.print(
        f"[bold]{_runs(len(result.matched))}[/] match{'es' if len(result.matched) == 1 else ''}"
        f"{capped}: each workflow id's latest run, newest first."
    )
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column in ("ID", "TYPE", "STATUS", "STARTED"):
        table.add_column(column, overflow="fold")
    for e in result.matched[:PREVIEW]:
        table.add_row(
            escape(e.id), escape(e.workflow_type), escape(e.status), local_time(e.created_at)
        )
    out.print(table)
    more = len(result.matched) - PREVIEW
    if more > 0:
        out.print(f"[dim]… and {more} more (--json lists them all)[/]")
    out.print(f"Nothing was done. To {action} them, run this again with [bold]--yes[/].")


def _summary(result: BatchResult) -> None:
    action = result.action
    if not result.matched:
        out.print(f"No runs match: nothing to {action}.")
        return
    out.print(
        f"{DONE[action]} {len(result.done)} of {_runs(len(result.matched))} matched: "
        f"{len(result.skipped)} skipped, {len(result.failed)} failed."
    )
    if result.skipped:
        out.print("[bold]Skipped[/] (ended or gone since they were chosen):")
        for ident, why in result.skipped.items():
            out.print(f"  {escape(ident)}: {escape(why)}")
    if result.failed:
        out.print("[bold red]Failed[/]:")
        for ident, error in result.failed.items():
            out.print(f"  {escape(ident)}: {escape(error)}")
        err.print(
            f"[bold red]error:[/] {_runs(len(result.failed))} could not be {PAST[action]} "
            "(listed above); running the same command again acts on what still matches",
            soft_wrap=True,
        )
