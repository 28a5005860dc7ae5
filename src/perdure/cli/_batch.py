"""The batch form of the commands that act on one thing by id: with the id
left out, every one the filters match. Without ``--yes`` it shows which and
does nothing; with it, it acts and sums up. Here: which form a command
takes, the list and the summary both batches print, and the batch of
``cancel``, ``terminate`` and ``reset`` (``Client.batch``); the batch of
``activity pause|unpause|reset|update-options`` is ``_activity_batch``'s.

Imports the public API, typer, rich, ``_operator`` (exit codes, output),
``_filters`` and the framework-free ``perdure.server._query`` (the JSON);
registers no command (``_control_cmd`` and ``_activity_retries`` do).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional

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

__all__ = [
    "PREVIEW",
    "RUNS",
    "Action",
    "Forms",
    "LimitOption",
    "Noun",
    "Report",
    "YesOption",
    "act_on_matching",
    "carry_out",
    "is_batch",
    "limit_option",
    "which_form",
    "yes_option",
]

Action = Literal["cancel", "terminate", "reset", "update_options"]
# What a batch form's command is called (update_options: update-options).
Command = Literal["cancel", "terminate", "reset", "update-options"]

out = Console(highlight=False, soft_wrap=True)

PREVIEW = 20  # matches a preview lists (--json: all of them)
FILTERS = "--status, --type, --since, --until, --search, --attr, --retrying, --build-id"
# Per action (a run's; an activity's: pause, unpause, reset, update): the summary's
# "Terminated 3 of 3 runs matched", the spinner's "terminating ...", and the
# error's "could not be terminated".
DONE = {
    "cancel": "Cancellation requested for",
    "terminate": "Terminated",
    "reset": "Reset",
    "pause": "Paused",
    "unpause": "Unpaused",
    "update": "Updated the options of",
}
DOING = {
    "cancel": "cancelling",
    "terminate": "terminating",
    "reset": "resetting",
    "pause": "pausing",
    "unpause": "unpausing",
    "update": "updating the options of",
}
PAST = {
    "cancel": "cancelled",
    "terminate": "terminated",
    "reset": "reset",
    "pause": "paused",
    "unpause": "unpaused",
    "update": "updated",
}


def limit_option(help: str, panel: str) -> Any:
    return typer.Option(None, "--limit", min=1, help=help, rich_help_panel=panel)


def yes_option(help: str, panel: str) -> Any:
    return typer.Option(False, "--yes", "-y", help=help, rich_help_panel=panel)


LimitOption = limit_option("At most N runs, the newest first (default: every match).", BATCH_PANEL)
YesOption = yes_option(
    "Act on them. Without it, only list the runs that match: nothing is done.", BATCH_PANEL
)


@dataclass(frozen=True)
class Noun:
    """What a batch acts on, as its messages count them."""

    one: str
    many: str

    def count(self, n: int) -> str:
        return f"{n} {self.one if n == 1 else self.many}"


RUNS = Noun("run", "runs")


@dataclass(frozen=True)
class Forms:
    """How a command's usage errors name its two forms: one thing by its id
    (``named``: "a workflow id"; ``usage``: "perdure cancel ID"), or, with
    ``left_out`` left out, every one the filters match."""

    action: str
    named: str
    usage: str
    left_out: str
    noun: Noun


def which_form(
    forms: Forms,
    *,
    named: bool,
    filters: list[str],
    options: list[str],
    one_only: Mapping[str, bool],
) -> bool | None:
    """The form a command takes: one thing by id (False: ``named``, its id
    given) or filters (True), else None: neither (the caller says what to
    give). A usage error (exit 2) for both (``filters`` and the batch
    ``options`` given, as typed) or an option of the one form given to the
    other (``one_only``: option -> given)."""
    if named:
        batch_only = [*filters, *options]
        if batch_only:
            fail(
                EXIT_USAGE,
                f"give {forms.named} or filters, not both ({', '.join(batch_only)} "
                "go with filters)",
                f"{forms.usage}, or leave out {forms.left_out} to {forms.action} every "
                f"{forms.noun.one} the filters match",
            )
        return False
    if not filters:
        return None
    single = [option for option, given in one_only.items() if given]
    if single:
        fail(
            EXIT_USAGE,
            f"{' and '.join(single)} {'is' if len(single) == 1 else 'are'} for one "
            f"{forms.noun.one}, not with filters",
            f"{forms.usage} {single[0]} ...",
        )
    return True


def is_batch(
    action: Command,
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
    options = [*(["--limit"] if limit is not None else []), *(["--yes"] if yes else [])]
    forms = Forms(action, "a workflow id", f"perdure {action} ID", "ID", RUNS)
    form = which_form(
        forms,
        named=workflow_id is not None,
        filters=chosen.given(),
        options=options,
        one_only=one_run_only,
    )
    if form is None:
        fail(
            EXIT_USAGE,
            f"name a workflow id, or give filters ({FILTERS}) to {action} every run they match",
            f"e.g. perdure {action} --status {'failed' if action == 'reset' else 'running'} "
            "--type NAME (lists them; --yes acts)",
        )
    if form and action != "reset" and chosen.status not in (None, "running"):
        done = PAST["update" if action == "update-options" else action]
        raise typer.BadParameter(
            f"only open runs can be {done}: leave it out or give running, not {chosen.status!r}",
            param_hint="--status",
        )
    return form


@dataclass(frozen=True)
class Report:
    """A batch's result as the commands print it, whichever the batch."""

    action: str
    noun: Noun
    scope: str
    """Which the matches are, and in what order ("each workflow id's ...")."""
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    """A row a match (plain text), in order."""
    done: int
    skipped: dict[str, str]
    """Each skipped one, as the summary names it -> why."""
    skipped_why: str
    """Why any is skipped ("ended or gone since they were chosen")."""
    failed: dict[str, str]
    json: dict[str, Any]


def carry_out(
    action: str,
    noun: Noun,
    batch: Callable[[Client, bool], Awaitable[Report]],
    *,
    limit: Optional[int],
    yes: bool,
    db: Optional[str],
    as_json: bool,
) -> None:
    """Without ``yes``: list what ``batch(client, dry_run=True)`` matches.
    With it: act (``dry_run`` False) and sum up; exit 5 if any action
    failed, 2 for an argument the Client refused."""

    async def work(client: Client) -> int:
        try:
            if yes:  # (chosen, then acted on a few at a time)
                with err.status(f"{DOING[action]} the {noun.many} that match", spinner="dots"):
                    report = await batch(client, False)
            else:
                report = await batch(client, True)
        except (TypeError, ValueError) as exc:  # (an argument the Client refused)
            fail(EXIT_USAGE, str(exc))
        if as_json:
            print_json(report.json)
        elif yes:
            _summary(report)
        else:
            _preview(report, limit)
        return EXIT_CONFLICT if report.failed else 0

    run(db, work)


def act_on_matching(
    action: Action,
    chosen: RunFilter,
    *,
    limit: Optional[int],
    yes: bool,
    reason: Optional[str],
    db: Optional[str],
    as_json: bool,
    new_options: Optional[Mapping[str, Any]] = None,
) -> None:
    """Without ``yes``: list the runs ``chosen`` matches (a dry run). With it:
    act on them and sum up; exit 5 if any run's action failed."""

    async def batch(client: Client, dry_run: bool) -> Report:
        result = await client.batch(
            action,
            status=chosen.status,
            reason=reason,
            limit=limit,
            dry_run=dry_run,
            new_options=new_options,
            **chosen.keywords(),
        )
        return _runs_report(result)

    said = "update" if action == "update_options" else action
    carry_out(said, RUNS, batch, limit=limit, yes=yes, db=db, as_json=as_json)


def _runs_report(result: BatchResult) -> Report:
    return Report(
        action="update" if result.action == "update_options" else result.action,
        noun=RUNS,
        scope="each workflow id's latest run, newest first",
        columns=("ID", "TYPE", "STATUS", "STARTED"),
        rows=[(e.id, e.workflow_type, e.status, local_time(e.created_at)) for e in result.matched],
        done=len(result.done),
        skipped=dict(result.skipped),
        skipped_why="ended or gone since they were chosen",
        failed=dict(result.failed),
        json=batch_json(result),
    )


def _preview(report: Report, limit: Optional[int]) -> None:
    action, noun, matched = report.action, report.noun, len(report.rows)
    if not matched:
        out.print(f"No {noun.many} match: nothing to {action}.")
        return
    capped = " (--limit)" if limit is not None and matched >= limit else ""
    out.print(
        f"[bold]{noun.count(matched)}[/] match{'es' if matched == 1 else ''}{capped}: "
        f"{report.scope}."
    )
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column in report.columns:
        table.add_column(column, overflow="fold")
    for row in report.rows[:PREVIEW]:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)
    more = matched - PREVIEW
    if more > 0:
        out.print(f"[dim]… and {more} more (--json lists them all)[/]")
    out.print(f"Nothing was done. To {action} them, run this again with [bold]--yes[/].")


def _summary(report: Report) -> None:
    action, noun = report.action, report.noun
    if not report.rows:
        out.print(f"No {noun.many} match: nothing to {action}.")
        return
    out.print(
        f"{DONE[action]} {report.done} of {noun.count(len(report.rows))} matched: "
        f"{len(report.skipped)} skipped, {len(report.failed)} failed."
    )
    if report.skipped:
        out.print(f"[bold]Skipped[/] ({report.skipped_why}):")
        for named, why in report.skipped.items():
            out.print(f"  {escape(named)}: {escape(why)}")
    if report.failed:
        out.print("[bold red]Failed[/]:")
        for named, error in report.failed.items():
            out.print(f"  {escape(named)}: {escape(error)}")
        err.print(
            f"[bold red]error:[/] {noun.count(len(report.failed))} could not be {PAST[action]} "
            "(listed above); running the same command again acts on what still matches",
            soft_wrap=True,
        )
