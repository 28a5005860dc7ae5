"""``perdure set-priority``, ``set-fairness-key`` and ``update-options``:
the commands that change an open run's options (its priority and its
fairness key, which what it starts inherits). ``update-options`` takes the
batch form too: with the id left out, every open run the filters match.

Imports the public API, typer, rich, the names' rules (``perdure._checks``),
the run filters' options (``_filters``) and the batch form (``_batch``);
exit codes come from ``_operator.run``.
"""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from perdure._checks import BadName, check_name
from perdure.cli._app import DbOption, a_priority, app
from perdure.cli._batch import LimitOption, YesOption, act_on_matching, is_batch
from perdure.cli._filters import (
    BatchAttrOption,
    BatchBuildOption,
    BatchRetryingOption,
    BatchSearchOption,
    BatchSinceOption,
    BatchTypeOption,
    BatchUntilOption,
    IdOrFiltersArg,
    OpenStatusOption,
    run_filter,
)
from perdure.cli._operator import EPILOG, EXIT_USAGE, JsonOption, RunIdOption, fail, run
from perdure.client import Client

out = Console(highlight=False, soft_wrap=True)

IdArg = typer.Argument(..., metavar="ID", help="Workflow id.")
OPTIONS_PANEL = "New options"


@app.command("set-priority", epilog=EPILOG, rich_help_panel="Control")
def set_priority(
    workflow_id: str = IdArg,
    priority: int = typer.Argument(
        ..., metavar="PRIORITY", help="1 (first) to 5 (last)", callback=a_priority
    ),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
) -> None:
    """Change an open run's priority in its queues' backlogs (exit 5 if it has ended)."""

    async def work(client: Client) -> None:
        await client.get_handle(workflow_id, run_id).set_priority(priority)
        out.print(f"Run of {escape(workflow_id)} moved to priority {priority}")

    run(db, work)


@app.command("set-fairness-key", epilog=EPILOG, rich_help_panel="Control")
def set_fairness_key(
    workflow_id: str = IdArg,
    key: Optional[str] = typer.Argument(
        None, metavar="KEY", show_default=False, help="Whose work the run is now."
    ),
    no_key: bool = typer.Option(False, "--no-key", help="Take the run's key away instead."),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
) -> None:
    """Change an open run's fairness key in its queues (exit 5 if it has ended)."""
    if (key is None) == (not no_key):
        raise typer.BadParameter("give a KEY or --no-key (one of the two)")
    _check_key(key)

    async def work(client: Client) -> None:
        await client.get_handle(workflow_id, run_id).set_fairness_key(key)
        out.print(f"Run of {escape(workflow_id)} now has {_key_text(key)}")

    run(db, work)


@app.command("update-options", epilog=EPILOG, rich_help_panel="Control")
def update_options(
    workflow_id: Optional[str] = IdOrFiltersArg,
    priority: Optional[int] = typer.Option(
        None,
        "--priority",
        help="The new priority: 1 (first) to 5 (last).",
        callback=a_priority,
        rich_help_panel=OPTIONS_PANEL,
    ),
    fairness_key: Optional[str] = typer.Option(
        None, "--fairness-key", help="The new fairness key.", rich_help_panel=OPTIONS_PANEL
    ),
    no_fairness_key: bool = typer.Option(
        False, "--no-fairness-key", help="Take the key away.", rich_help_panel=OPTIONS_PANEL
    ),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
    as_json: bool = JsonOption,
    status: Optional[str] = OpenStatusOption,
    workflow_type: Optional[str] = BatchTypeOption,
    since: Optional[str] = BatchSinceOption,
    until: Optional[str] = BatchUntilOption,
    search: Optional[str] = BatchSearchOption,
    attrs: list[str] = BatchAttrOption,
    retrying: bool = BatchRetryingOption,
    build_id: Optional[str] = BatchBuildOption,
    limit: Optional[int] = LimitOption,
    yes: bool = YesOption,
) -> None:
    """Change an open run's priority or fairness key, or both (exit 5 if it has ended).

    With filters instead of an ID: every open run they match (each workflow
    id's latest), listed first; --yes changes them (exit 5 if any failed).
    """
    if fairness_key is not None and no_fairness_key:
        fail(EXIT_USAGE, "give --fairness-key KEY or --no-fairness-key, not both")
    new: dict[str, Any] = {}
    if priority is not None:
        new["priority"] = priority
    if fairness_key is not None or no_fairness_key:
        _check_key(fairness_key)
        new["fairness_key"] = fairness_key
    if not new:
        fail(
            EXIT_USAGE,
            "give the options to change: --priority N, --fairness-key KEY or --no-fairness-key",
        )
    chosen = run_filter(status, workflow_type, since, until, search, retrying, attrs, build_id)
    one_run = {"--run-id": run_id is not None}
    if is_batch("update-options", workflow_id, chosen, limit=limit, yes=yes, one_run_only=one_run):
        act_on_matching(
            "update_options",
            chosen,
            limit=limit,
            yes=yes,
            reason=None,
            db=db,
            as_json=as_json,
            new_options=new,
        )
        return
    assert workflow_id is not None  # (is_batch: an id, or filters)
    ident = workflow_id

    async def work(client: Client) -> None:
        handle = client.get_handle(ident, run_id)
        said = []
        if "priority" in new:
            await handle.set_priority(new["priority"])
            said.append(f"priority {new['priority']}")
        if "fairness_key" in new:
            await handle.set_fairness_key(new["fairness_key"])
            said.append(_key_text(new["fairness_key"]))
        out.print(f"Run of {escape(ident)} now has {' and '.join(said)}")

    run(db, work)


def _check_key(key: str | None) -> None:
    """A usage error (exit 2) for a key the Client would refuse."""
    try:
        check_name("fairness_key", key, none_means="no key")
    except BadName as exc:
        fail(EXIT_USAGE, str(exc))


def _key_text(key: str | None) -> str:
    return f"fairness key {escape(repr(key))}" if key is not None else "no fairness key"
