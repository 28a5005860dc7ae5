"""The ``perdure activity`` group, and how its commands name the activity
they act on: an attempt's task token, or the activity by id
(``--workflow-id/-w``, ``--activity-id/-a``, ``--run-id/-r``): the
arguments and options, their checks (a usage error, exit 2, before any
database is opened) and ``Target.act``, which maps what can no longer end
to exit 3 (a cancelled attempt: 9). Registers no command: ``_activity_cmd``
and ``_activity_retries`` do, on ``activity_app``.

Imports the public API, typer, rich, ``_app``, ``_operator`` and the task
token's reader (``perdure._asyncactivity.parse_task_token``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Optional

import typer
from rich.console import Console

from perdure._asyncactivity import AsyncActivityHandle, parse_task_token
from perdure.cli._app import EPILOG, app
from perdure.cli._operator import EXIT_CANCELLED, EXIT_NOT_FOUND, fail
from perdure.client import Client, PendingActivityInfo
from perdure.errors import AsyncActivityCancelledError, AsyncActivityNotFoundError

__all__ = [
    "ActivityIdOption",
    "RunOption",
    "Target",
    "TokenArg",
    "WorkflowIdOption",
    "activity_app",
    "out",
    "target",
]

out = Console(highlight=False, soft_wrap=True)
activity_app = typer.Typer(
    help="Complete, fail, heartbeat, pause, reset or update an activity, by token or id.",
    epilog=EPILOG,
    no_args_is_help=True,
)
app.add_typer(activity_app, name="activity", rich_help_panel="Control")

TOKEN_HINT = (
    "a token names one attempt: a retry has a new one, which the activity's function "
    "hands out again; `perdure show ID` shows whether the activity still awaits completion"
)
ID_HINT = "`perdure show ID` lists the run's pending activities and their ids (ref N)"
CANCELLED_HINT = "stop its work, then record that it stopped: perdure activity report-cancellation"

TokenArg = typer.Argument(
    None,
    metavar="TOKEN",
    show_default=False,
    help="The attempt's task token (activity.info().task_token, as its function handed it "
    "out); leave it out with --workflow-id and --activity-id.",
)
WorkflowIdOption = typer.Option(
    None, "--workflow-id", "-w", help="By id: the workflow whose activity it is."
)
ActivityIdOption = typer.Option(
    None,
    "--activity-id",
    "-a",
    min=1,
    max=2**31 - 1,
    help="By id: the activity's id in the run (perdure show: ref N).",
)
RunOption = typer.Option(
    None, "--run-id", "-r", help="By id: a specific run (default: the workflow's latest)."
)


@dataclass
class Target:
    """What a command acts on: a task token, or an activity by id."""

    token: Optional[str] = None
    workflow_id: Optional[str] = None
    activity_id: Optional[int] = None
    run_id: Optional[str] = None

    def handle(self, client: Client) -> AsyncActivityHandle:
        return client.get_async_activity_handle(
            self.token,
            workflow_id=self.workflow_id,
            activity_id=self.activity_id,
            run_id=self.run_id,
        )

    async def pending(self, client: Client) -> Optional[PendingActivityInfo]:
        """The activity (by id) as ``describe()`` shows it now; None once it
        is no longer pending."""
        assert self.workflow_id is not None  # (by id)
        description = await client.get_handle(self.workflow_id, run_id=self.run_id).describe()
        found = [a for a in description.pending_activities if a.activity_id == self.activity_id]
        return found[0] if found else None

    @property
    def named(self) -> str:
        if self.token is not None:
            key = parse_task_token(self.token)
            return f"activity {key.ref} of run {key.run_id}"
        run = "" if self.run_id is None else f" (run {self.run_id})"
        return f"activity {self.activity_id} of workflow {self.workflow_id!r}{run}"

    async def act(
        self,
        client: Client,
        call: Callable[[AsyncActivityHandle], Awaitable[object]],
        done: Optional[str] = None,
    ) -> None:
        """``call`` the handle, then print ``done`` (None: the caller says
        what was done); exit 3 (9) saying why it could not."""
        try:
            await call(self.handle(client))
        except AsyncActivityNotFoundError as exc:
            fail(EXIT_NOT_FOUND, str(exc), TOKEN_HINT if self.token is not None else ID_HINT)
        except AsyncActivityCancelledError as exc:
            named = "TOKEN" if self.token is not None else "-w ID -a N"
            fail(EXIT_CANCELLED, str(exc), f"{CANCELLED_HINT} {named}")
        if done is not None:
            out.print(done)


def target(
    positional: list[Optional[str]],
    workflow_id: Optional[str],
    activity_id: Optional[int],
    run_id: Optional[str],
    value_name: Optional[str] = None,
) -> tuple[Target, Optional[str]]:
    """The command's target and its value's text (``value_name``: the
    command takes one, RESULT_JSON or DETAILS_JSON) from its positional
    arguments and options: ``TOKEN [VALUE]``, or ``-w W -a N [VALUE]``.
    A usage error (exit 2) says what is wrong, before any database is
    opened."""
    given = [p for p in positional if p is not None]
    if workflow_id is None and activity_id is None and run_id is None:
        if not given:
            raise typer.BadParameter(
                "give the attempt's TOKEN, or --workflow-id and --activity-id",
                param_hint="'TOKEN'",
            )
        try:
            parse_task_token(given[0])
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'TOKEN'") from None
        return Target(token=given[0]), given[1] if len(given) > 1 else None
    if workflow_id is None or activity_id is None:
        raise typer.BadParameter(
            "by id, give both --workflow-id and --activity-id",
            param_hint="'--workflow-id' / '--activity-id'",
        )
    if not workflow_id:
        raise typer.BadParameter("must not be empty", param_hint="'--workflow-id'")
    if run_id == "":
        raise typer.BadParameter(
            "must not be empty (leave it out for the latest run)", param_hint="'--run-id'"
        )
    most = 1 if value_name else 0
    if len(given) > most:
        what = f"only {value_name}" if value_name else "no TOKEN"
        raise typer.BadParameter(
            f"by id (--workflow-id), give {what}: {given[most]!r} is one argument too many",
            param_hint="'TOKEN'",
        )
    found = Target(workflow_id=workflow_id, activity_id=activity_id, run_id=run_id)
    return found, given[0] if given else None
