"""The run filters ``perdure list`` and the batch forms of ``cancel``,
``terminate``, ``reset``, ``update-options`` and ``activity
pause|unpause|reset|update-options`` share: their options, read once into
a :class:`RunFilter` (``list`` reads its own into a ``ListQuery``).

Imports typer, the search attributes' and build ids' rules
(``perdure._attributes``, ``perdure._checks``), the framework-free
``perdure.server._query`` (the statuses) and ``_operator`` (times).
Registers no command, so each command module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional, TypedDict

import typer

from perdure._attrfilters import parse_filter
from perdure._checks import build_problem
from perdure.cli._operator import when_option
from perdure.server._query import KNOWN_STATUSES

__all__ = [
    "BATCH_PANEL",
    "AttrFilterOption",
    "BatchAttrOption",
    "BatchBuildOption",
    "BatchRetryingOption",
    "BatchSearchOption",
    "BatchSinceOption",
    "BatchStatusOption",
    "BatchTypeOption",
    "BatchUntilOption",
    "BuildFilterOption",
    "IdOrFiltersArg",
    "OpenStatusOption",
    "RetryingOption",
    "RunFilter",
    "RunKeywords",
    "SearchOption",
    "SinceOption",
    "StatusOption",
    "TypeOption",
    "UntilOption",
    "attr_option",
    "attribute_filter",
    "build_filter",
    "build_option",
    "retrying_option",
    "run_filter",
    "search_option",
    "since_option",
    "status_option",
    "type_option",
    "until_option",
]

BATCH_PANEL = "Filters (instead of ID: act on every run they match)"
STATUS_HELP = f"Only runs in this status ({', '.join(KNOWN_STATUSES)})."


# Each option is made by a function: `list` shows them among its options,
# `cancel`, `terminate` and `reset` in a panel of their own (BATCH_PANEL),
# `activity pause|unpause|reset` in theirs (_activity_batch).


def status_option(help: str = STATUS_HELP, panel: str | None = None) -> Any:
    return typer.Option(None, "--status", "-s", help=help, rich_help_panel=panel)


def type_option(panel: str | None = None) -> Any:
    return typer.Option(None, "--type", "-t", help="Workflow type.", rich_help_panel=panel)


def since_option(panel: str | None = None) -> Any:
    return typer.Option(
        None,
        "--since",
        help="Started at or after: ISO time (local if no offset) or an age: 15m, 2h, 3d.",
        rich_help_panel=panel,
    )


def until_option(panel: str | None = None) -> Any:
    return typer.Option(
        None, "--until", help="Started at or before (same forms).", rich_help_panel=panel
    )


def search_option(panel: str | None = None) -> Any:
    return typer.Option(
        None, "--search", help="Text the workflow id contains.", rich_help_panel=panel
    )


def retrying_option(panel: str | None = None) -> Any:
    return typer.Option(
        False,
        "--retrying",
        help="Only runs whose latest workflow task failed and is retried.",
        rich_help_panel=panel,
    )


def attr_option(panel: str | None = None) -> Any:
    return typer.Option(
        [],
        "--attr",
        metavar="NAME=VALUE",
        help="Only runs whose search attribute NAME has VALUE, matched as text (120 finds "
        "120, 120.0 and '120'; true finds True), or a bound: NAME>=VALUE, NAME>VALUE, "
        "NAME<=VALUE, NAME<VALUE (a number compares numbers, other text strings by code "
        "point: --attr 'total>=1000' --attr 'day<2027-01-01'); repeat for more: a run must "
        "match each.",
        rich_help_panel=panel,
    )


def build_filter(value: Optional[str]) -> Optional[str]:
    """A ``--build-id`` filter as typed: a usage error for one no build can
    have (over 200 bytes, a NUL); empty is no filter, as for the others."""
    if not value:
        return None
    problem = build_problem("a build id", value)
    if problem is not None:
        raise typer.BadParameter(problem)
    return value


def build_option(panel: str | None = None) -> Any:
    return typer.Option(
        None,
        "--build-id",
        metavar="BUILD",
        callback=build_filter,
        help="Only runs pinned to this worker build (perdure build list QUEUE names them).",
        rich_help_panel=panel,
    )


BuildFilterOption = build_option()
StatusOption = status_option()
TypeOption = type_option()
SinceOption = since_option()
UntilOption = until_option()
SearchOption = search_option()
RetryingOption = retrying_option()
AttrFilterOption = attr_option()
# The same in the panel of `cancel`, `terminate` and `reset` (those two
# with their own --status: open runs only).
BatchStatusOption = status_option(panel=BATCH_PANEL)
OpenStatusOption = status_option(
    "Only runs in this status: running, the default (only open runs can be).", BATCH_PANEL
)
BatchTypeOption = type_option(BATCH_PANEL)
BatchSinceOption = since_option(BATCH_PANEL)
BatchUntilOption = until_option(BATCH_PANEL)
BatchSearchOption = search_option(BATCH_PANEL)
BatchRetryingOption = retrying_option(BATCH_PANEL)
BatchAttrOption = attr_option(BATCH_PANEL)
BatchBuildOption = build_option(BATCH_PANEL)
# The id of a command that acts on one run by id or on the runs filters match.
IdOrFiltersArg = typer.Argument(
    None,
    metavar="ID",
    show_default=False,
    help="Workflow id. Leave it out to name runs by filter instead (see below).",
)


def attribute_filter(terms: list[str]) -> dict[str, str]:
    """``--attr`` terms as a filter (name -> text); exit 2 for a bad term."""
    try:
        return parse_filter(terms, "--attr")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


class RunKeywords(TypedDict):
    """A :class:`RunFilter` as the Client's batches take it, its status
    apart (a batch of activities takes none: its runs are open ones)."""

    workflow: str | None
    since: datetime | None
    until: datetime | None
    search: str | None
    search_attributes: dict[str, str] | None
    retrying: bool
    build_id: str | None


@dataclass(frozen=True)
class RunFilter:
    """Which runs a command names by filter (an empty text is no filter, as
    an option left out: ``--search ''`` must not name every run)."""

    status: str | None = None
    workflow_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    retrying: bool = False
    search_attributes: dict[str, str] = field(default_factory=dict)
    build_id: str | None = None

    def given(self) -> list[str]:
        """The options that were given, as typed (``--status``, ``--attr``...)."""
        named = {
            "--status": self.status,
            "--type": self.workflow_type,
            "--since": self.since,
            "--until": self.until,
            "--search": self.search,
            "--retrying": self.retrying or None,
            "--attr": self.search_attributes or None,
            "--build-id": self.build_id,
        }
        return [option for option, value in named.items() if value is not None]

    def keywords(self) -> RunKeywords:
        """The filter as ``Client.batch`` and ``batch_activities`` take it,
        its status apart."""
        return RunKeywords(
            workflow=self.workflow_type,
            since=self.since,
            until=self.until,
            search=self.search,
            search_attributes=self.search_attributes or None,
            retrying=self.retrying,
            build_id=self.build_id,
        )


def run_filter(
    status: Optional[str],
    workflow_type: Optional[str],
    since: Optional[str],
    until: Optional[str],
    search: Optional[str],
    retrying: bool,
    attrs: list[str],
    build_id: Optional[str],
) -> RunFilter:
    """The filter options read and checked: exit 2 naming the option that
    cannot be (a status perdure does not have, an unreadable time, a bad
    ``--attr`` term, ``--since`` after ``--until``; a ``--build-id`` no
    build can have, by its option's callback, ``build_filter``)."""
    if status and status not in KNOWN_STATUSES:
        raise typer.BadParameter(
            f"must be one of {', '.join(KNOWN_STATUSES)}, not {status!r}", param_hint="--status"
        )
    chosen = RunFilter(
        status=status or None,
        workflow_type=workflow_type or None,
        since=when_option(since or None, "--since"),
        until=when_option(until or None, "--until"),
        search=search or None,
        retrying=retrying,
        search_attributes=attribute_filter(attrs),
        build_id=build_id or None,
    )
    if chosen.since and chosen.until and chosen.since > chosen.until:
        raise typer.BadParameter(f"--since ({since}) is after --until ({until})")
    return chosen
