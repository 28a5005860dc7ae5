"""The batch form of ``perdure activity pause``, ``unpause``, ``reset`` and
``update-options``: with ``-w``/``-a`` left out, every pending activity the
filters match (``Client.batch_activities``): of the type
``--activity-type`` names (or any), in the open runs the run filters match.
Without ``--yes`` it lists them and does nothing; with it, it acts and sums
up.

Imports the public API, typer, ``_filters``, ``_batch`` (the form, the list
and the summary, the exit codes) and the framework-free
``perdure.server._query`` (the JSON); registers no command
(``_activity_retries`` and ``_activity_cmd`` do).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NoReturn, Optional

import typer

from perdure.cli._batch import (
    Forms,
    Noun,
    Report,
    carry_out,
    limit_option,
    which_form,
    yes_option,
)
from perdure.cli._filters import (
    RunFilter,
    attr_option,
    build_option,
    retrying_option,
    run_filter,
    search_option,
    since_option,
    type_option,
    until_option,
)
from perdure.client import ActivityBatchResult, Client, PendingActivityInfo
from perdure.server._query import activity_batch_json

__all__ = [
    "ActivityBatch",
    "ActivityTypeOption",
    "AttrOption",
    "BuildOption",
    "JsonOption",
    "LimitOption",
    "RetryingOption",
    "SearchOption",
    "SinceOption",
    "UntilOption",
    "WorkflowTypeOption",
    "YesOption",
    "act",
    "is_batch",
    "read_batch",
]

Action = Literal["pause", "unpause", "reset", "update_options"]

ACTIVITIES = Noun("activity", "activities")
PANEL = "Filters (instead of -w and -a: act on every pending activity they match)"
FILTERS = "--activity-type, --type, --since, --until, --search, --attr, --retrying, --build-id"

# How the messages say an action that is not one word: "to update the
# options of every pending activity they match" (usage errors); "Updated
# the options of 3 of 3 activities matched", "nothing to update" (the
# list and the summary, by _batch's words for "update").
VERB = {"update_options": "update the options of"}
SAID = {"update_options": "update"}

# The run filters of `perdure list` (but --status: only an open run has
# pending activities), with the activities' own type, in a panel of their own.
ActivityTypeOption = typer.Option(
    None,
    "--activity-type",
    metavar="NAME",
    help="Only activities of this type (as `perdure show` names them); default: any.",
    rich_help_panel=PANEL,
)
WorkflowTypeOption = type_option(PANEL)
SinceOption = since_option(PANEL)
UntilOption = until_option(PANEL)
SearchOption = search_option(PANEL)
AttrOption = attr_option(PANEL)
RetryingOption = retrying_option(PANEL)
BuildOption = build_option(PANEL)
LimitOption = limit_option(
    "At most N activities, those of the newest runs first (default: every match).", PANEL
)
YesOption = yes_option(
    "Act on them. Without it, only list the activities that match: nothing is done.", PANEL
)
JsonOption = typer.Option(
    False, "--json", help="Print what matched, and what was done, as JSON.", rich_help_panel=PANEL
)


@dataclass(frozen=True)
class ActivityBatch:
    """The batch form as a command line asks for it: which pending
    activities (their type; their runs' filter, its status left out: the
    runs are open ones), at most how many, for real (``yes``; else a dry
    run), printed as JSON or not."""

    activity_type: str | None
    runs: RunFilter
    limit: Optional[int] = None
    yes: bool = False
    as_json: bool = False

    def filters(self) -> list[str]:
        """The filters that were given, as typed."""
        return [*(["--activity-type"] if self.activity_type else []), *self.runs.given()]

    def options(self) -> list[str]:
        """The batch form's other options that were given, as typed."""
        named = {"--limit": self.limit is not None, "--yes": self.yes, "--json": self.as_json}
        return [option for option, given in named.items() if given]


def read_batch(
    activity_type: Optional[str],
    workflow_type: Optional[str],
    since: Optional[str],
    until: Optional[str],
    search: Optional[str],
    retrying: bool,
    attrs: list[str],
    build_id: Optional[str],
    limit: Optional[int],
    yes: bool,
    as_json: bool,
) -> ActivityBatch:
    """The batch form's options read and checked (exit 2 naming a bad
    filter); an empty text is no filter."""
    runs = run_filter(None, workflow_type, since, until, search, retrying, attrs, build_id)
    return ActivityBatch(activity_type or None, runs, limit, yes, as_json)


def is_batch(
    action: Action,
    workflow_id: Optional[str],
    activity_id: Optional[int],
    run_id: Optional[str],
    asked: ActivityBatch,
) -> bool:
    """Which form the command takes: one activity by -w and -a (False; both
    given) or filters (True). A usage error (exit 2) for both, neither, one
    of -w and -a without the other, or -r with filters."""
    usage = f"perdure activity {action.replace('_', '-')} -w ID -a N"
    verb = VERB.get(action, action)
    form = which_form(
        Forms(verb, "-w ID -a N", usage, "-w and -a", ACTIVITIES),
        named=workflow_id is not None or activity_id is not None,
        filters=asked.filters(),
        options=asked.options(),
        one_only={"--run-id": run_id is not None},
    )
    if form:
        return True
    if form is None:  # (neither: what a missing -w has always said, and the other form)
        _missing(
            "--workflow-id",
            "-w",
            f"Name one activity ({usage}), or give filters ({FILTERS}) to {verb} every "
            "pending activity they match (listed first; --yes acts).",
        )
    if workflow_id is None:
        _missing("--workflow-id", "-w", "By id, give both --workflow-id and --activity-id.")
    if activity_id is None:
        _missing("--activity-id", "-a", "By id, give both --workflow-id and --activity-id.")
    return False


class _MissingOption(typer.BadParameter):
    """A usage error (exit 2) said as typer says a required option is
    missing: ``Missing option '--workflow-id' / '-w'.``, then why."""

    def format_message(self) -> str:
        return f"Missing option {self.param_hint}. {self.message}"


def _missing(option: str, short: str, message: str) -> NoReturn:
    raise _MissingOption(message, param_hint=f"'{option}' / '{short}'")


def act(
    action: Action,
    asked: ActivityBatch,
    db: Optional[str],
    *,
    reset_attempts: bool = False,
    keep_paused: bool = False,
    clear_heartbeat_details: bool = False,
    jitter: Optional[timedelta] = None,
    new_options: Optional[Mapping[str, object]] = None,
) -> None:
    """Without ``yes``: list the pending activities ``asked`` matches that
    the action changes (a dry run). With it: act on them, with the action's
    options (unpause: ``reset_attempts``; reset: ``keep_paused``,
    ``clear_heartbeat_details``; both: ``jitter``, each activity drawing
    its own moment; update_options: ``new_options``, update_options's
    keywords; all checked by the caller), and sum up; exit 5 if any
    activity's action failed."""
    said = SAID.get(action, action)

    async def matching(client: Client, dry_run: bool) -> Report:
        result = await client.batch_activities(
            action,
            activity_type=asked.activity_type,
            reset_attempts=reset_attempts,
            keep_paused=keep_paused,
            clear_heartbeat_details=clear_heartbeat_details,
            jitter=jitter,
            new_options=new_options,
            limit=asked.limit,
            dry_run=dry_run,
            **asked.runs.keywords(),
        )
        return _report(result, said)

    carry_out(
        said, ACTIVITIES, matching, limit=asked.limit, yes=asked.yes, db=db, as_json=asked.as_json
    )


def _report(result: ActivityBatchResult, said: str) -> Report:
    """The result as the list and the summary print it, the action ``said``
    by its key in _batch's words (the JSON names it as the Client does)."""

    def named(key: tuple[str, int]) -> str:
        return f"{key[0]} activity {key[1]}"

    return Report(
        action=said,
        noun=ACTIVITIES,
        scope="pending in the open runs that match (each workflow id's latest), newest run first",
        columns=("WORKFLOW ID", "ACTIVITY", "TYPE", "ATTEMPT", "STATE"),
        rows=[
            (
                m.workflow_id,
                str(m.activity.activity_id),
                m.activity.activity_type,
                str(m.activity.attempt),
                _state(m.activity),
            )
            for m in result.matched
        ],
        done=len(result.done),
        skipped={named(key): why for key, why in result.skipped.items()},
        skipped_why="ended, or their run did, since they were chosen",
        failed={named(key): error for key, error in result.failed.items()},
        json=activity_batch_json(result),
    )


def _state(a: PendingActivityInfo) -> str:
    """What the activity does now, in a few words (`perdure show` says more)."""
    if a.awaiting_completion or a.running:
        now = "awaiting completion" if a.awaiting_completion else "running"
        return f"paused, {now}" if a.paused else now  # (a paused attempt runs on)
    if a.paused:
        return "paused"
    return "scheduled" if a.attempt == 0 else "waiting to retry"
