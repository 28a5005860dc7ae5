"""``perdure activity``: give the outcome of an activity attempt that awaits
completion (its function called ``activity.raise_complete_async()``), named
by its task token: ``complete`` with a result, ``fail`` with an
ApplicationError, ``report-cancellation`` once its workflow cancelled it;
or say it is alive with ``heartbeat``. What a webhook handler or a script
of the system that does the work would run.

Imports the public API, typer, rich and the task token's reader
(``perdure._asyncactivity.parse_task_token``: a malformed token is a usage
error, exit 2, before any database is opened); exit codes come from
``_operator.run``, and a token that names no attempt that can still end
(``AsyncActivityNotFoundError``) exits 3, as an unknown workflow does; a
heartbeat of one its workflow cancelled (``AsyncActivityCancelledError``)
exits 9.
"""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from perdure._asyncactivity import parse_task_token
from perdure.cli._app import ConverterOption, DbOption, app
from perdure.cli._operator import (
    EPILOG,
    EXIT_CANCELLED,
    EXIT_NOT_FOUND,
    fail,
    parse_json,
    run,
)
from perdure.client import Client
from perdure.errors import (
    ApplicationError,
    AsyncActivityCancelledError,
    AsyncActivityNotFoundError,
)

out = Console(highlight=False, soft_wrap=True)
activity_app = typer.Typer(
    help="End or heartbeat an activity attempt that awaits completion, by its task token.",
    epilog=EPILOG,
    no_args_is_help=True,
)
app.add_typer(activity_app, name="activity", rich_help_panel="Control")

NOT_FOUND_HINT = (
    "a token names one attempt: a retry has a new one, which the activity's function "
    "hands out again; `perdure show ID` shows whether the activity still awaits completion"
)


def _a_token(value: str) -> str:
    try:
        parse_task_token(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


TokenArg = typer.Argument(
    ...,
    metavar="TOKEN",
    show_default=False,
    help="The attempt's task token: activity.info().task_token, as its function handed it out.",
    callback=_a_token,
)


def _named(token: str) -> str:
    key = parse_task_token(token)
    return f"activity {key.ref} of run {key.run_id}"


def _a_type(value: Optional[str]) -> Optional[str]:
    if value is not None and not value.strip():
        raise typer.BadParameter("must not be empty (leave it out for ApplicationError)")
    return value


@activity_app.command("complete", epilog=EPILOG)
def complete(
    token: str = TokenArg,
    result: Optional[str] = typer.Argument(
        None,
        metavar="RESULT_JSON",
        show_default=False,
        help="The activity's result as JSON (default: null); strings need quotes: '\"ok\"'.",
    ),
    db: Optional[str] = DbOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Record the result of an attempt awaiting completion (exit 3 if it cannot end).

    The workflow's await returns RESULT_JSON, decoded as the activity's return
    type. The first outcome wins: a token whose attempt has ended already, was
    lost to a timeout (its retry has a new token) or whose run has ended exits 3.
    """
    value: Any = None if result is None else parse_json(result, "RESULT_JSON")

    async def work(client: Client) -> None:
        try:
            await client.get_async_activity_handle(token).complete(value)
        except AsyncActivityNotFoundError as exc:
            fail(EXIT_NOT_FOUND, str(exc), NOT_FOUND_HINT)
        out.print(f"Completed {escape(_named(token))}")

    run(db, work, converter=converter)


@activity_app.command("fail", epilog=EPILOG)
def fail_(
    token: str = TokenArg,
    message: str = typer.Option(..., "--message", "-m", help="What went wrong."),
    error_type: Optional[str] = typer.Option(
        None,
        "--type",
        "-t",
        help="The failure's type, as the workflow's ActivityError cause shows it "
        "(default: ApplicationError).",
        callback=_a_type,
    ),
    non_retryable: bool = typer.Option(
        False,
        "--non-retryable",
        help="Fail the activity now, whatever its retry policy says.",
    ),
    db: Optional[str] = DbOption,
) -> None:
    """Fail an attempt awaiting completion, as if it raised ApplicationError.

    As if the activity's function had raised ApplicationError(MESSAGE, type=TYPE):
    retried per its retry policy (a new attempt runs the function again, with a
    new token) unless --non-retryable or no attempt is left; then the workflow's
    await raises ActivityError.
    """
    error = ApplicationError(message, type=error_type, non_retryable=non_retryable)

    async def work(client: Client) -> None:
        try:
            await client.get_async_activity_handle(token).fail(error)
        except AsyncActivityNotFoundError as exc:
            fail(EXIT_NOT_FOUND, str(exc), NOT_FOUND_HINT)
        then = (
            "not retried: the workflow's await raises ActivityError"
            if non_retryable
            else "retried per its retry policy while attempts are left"
        )
        out.print(f"Failed {escape(_named(token))} with {escape(error.type)} ({then})")

    run(db, work)


@activity_app.command("heartbeat", epilog=EPILOG)
def heartbeat(
    token: str = TokenArg,
    details: Optional[str] = typer.Argument(
        None,
        metavar="DETAILS_JSON",
        show_default=False,
        help="Progress details as JSON (default: null); a retry reads them as "
        "activity.info().heartbeat_details.",
    ),
    db: Optional[str] = DbOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Say an attempt awaiting completion is alive (exit 9 if it was cancelled).

    With a heartbeat_timeout, the attempt is lost (and retried) unless a
    heartbeat or an outcome comes that often: each one moves its deadline.
    Exit 9 if its workflow cancelled it (end it with `perdure activity
    report-cancellation`), 3 if it can no longer end.
    """
    value: Any = None if details is None else parse_json(details, "DETAILS_JSON")

    async def work(client: Client) -> None:
        try:
            await client.get_async_activity_handle(token).heartbeat(value)
        except AsyncActivityNotFoundError as exc:
            fail(EXIT_NOT_FOUND, str(exc), NOT_FOUND_HINT)
        except AsyncActivityCancelledError as exc:
            fail(
                EXIT_CANCELLED,
                str(exc),
                "stop its work, then record that it stopped: "
                "perdure activity report-cancellation TOKEN",
            )
        out.print(f"Heartbeat recorded for {escape(_named(token))}")

    run(db, work, converter=converter)


@activity_app.command("report-cancellation", epilog=EPILOG)
def report_cancellation(token: str = TokenArg, db: Optional[str] = DbOption) -> None:
    """Record that an attempt awaiting completion stopped because it was cancelled.

    What to run once a heartbeat exits 9: the attempt ends as cancelled, and
    the workflow, which stopped waiting for it, goes on. (Any outcome ends it;
    this one says the work was not done.)
    """

    async def work(client: Client) -> None:
        try:
            await client.get_async_activity_handle(token).report_cancellation()
        except AsyncActivityNotFoundError as exc:
            fail(EXIT_NOT_FOUND, str(exc), NOT_FOUND_HINT)
        out.print(f"Recorded the cancellation of {escape(_named(token))}")

    run(db, work)
