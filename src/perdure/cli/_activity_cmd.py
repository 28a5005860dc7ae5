"""``perdure activity``: act on an activity from outside its worker, named
either by an attempt's task token (an attempt whose function called
``activity.raise_complete_async()``) or by its workflow id and activity id
(``--workflow-id/-w``, ``--activity-id/-a``, as Temporal's CLI names them):
``complete`` with a result, ``fail`` with an ApplicationError,
``heartbeat`` to say an attempt awaiting completion is alive, and
``report-cancellation`` once a heartbeat said it is to stop. By id, ``complete``
and ``fail`` end the activity now, whatever it waits for: an operator
settling a step by hand; ``update-options`` changes its timeouts, retry
policy or task queue in flight (by id, or, its batch form, every pending
activity filters match). ``pause``, ``unpause`` and ``reset`` are
``_activity_retries``'s, imported last here so that loading this module
registers the whole group. What a webhook handler, a script of the system
that does the work, or an operator at 3 a.m. would run.

Imports the public API, typer, rich, ``_activity_target`` (the group and
how a command names its activity: a malformed token is a usage error, exit
2, before any database is opened), the options change's checks
(``perdure._activityoptions.OptionsChange``, for the same reason),
``_schedule_cmd.parse_span``, ``_activity_options`` (the options line
``show`` prints too) and ``_activity_batch`` (the batch form); exit codes
come from ``_operator.run``. What can no longer end exits 3, as an unknown
workflow does; a heartbeat of an attempt that is to stop (its workflow
cancelled it, an operator paused or reset its activity) exits 9
(``Target.act``); options that make no retry policy, or allow no more
attempts, exit 2 (in the batch form, 5: that activity failed).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional

import typer
from rich.markup import escape

from perdure._activityoptions import MAX_SPAN, OptionsChange
from perdure._asyncactivity import AsyncActivityHandle
from perdure._spans import span_text
from perdure.cli import _activity_batch as matching
from perdure.cli._activity_options import options_text
from perdure.cli._activity_target import (
    ActivityIdOption,
    RunOption,
    TokenArg,
    WorkflowIdOption,
    activity_app,
    out,
    target,
)
from perdure.cli._app import ConverterOption, DbOption
from perdure.cli._operator import EPILOG, EXIT_USAGE, fail, parse_json, run
from perdure.cli._schedule_cmd import parse_span
from perdure.client import Client
from perdure.errors import ApplicationError


def _a_type(value: Optional[str]) -> Optional[str]:
    if value is not None and not value.strip():
        raise typer.BadParameter("must not be empty (leave it out for ApplicationError)")
    return value


@activity_app.command("complete", epilog=EPILOG)
def complete(
    token: Optional[str] = TokenArg,
    result: Optional[str] = typer.Argument(
        None,
        metavar="RESULT_JSON",
        show_default=False,
        help="The activity's result as JSON (default: null); strings need quotes: '\"ok\"'.",
    ),
    workflow_id: Optional[str] = WorkflowIdOption,
    activity_id: Optional[int] = ActivityIdOption,
    run_id: Optional[str] = RunOption,
    db: Optional[str] = DbOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Record an activity's result: TOKEN [RESULT_JSON], or -w ID -a N [RESULT_JSON].

    The workflow's await returns RESULT_JSON, decoded as the activity's return
    type. By token: the attempt awaiting completion; the first outcome wins. By
    id: the activity ends now, whatever it waits for (its next attempt, a
    worker; an attempt running on a worker has its own result refused). Exit 3
    if it can no longer end.
    """
    where, text = target([token, result], workflow_id, activity_id, run_id, "RESULT_JSON")
    value: Any = None if text is None else parse_json(text, "RESULT_JSON")

    async def work(client: Client) -> None:
        await where.act(client, lambda h: h.complete(value), f"Completed {escape(where.named)}")

    run(db, work, converter=converter)


@activity_app.command("fail", epilog=EPILOG)
def fail_(
    token: Optional[str] = TokenArg,
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
        help="By token: fail the activity now, whatever its retry policy says (by id, "
        "it always is).",
    ),
    workflow_id: Optional[str] = WorkflowIdOption,
    activity_id: Optional[int] = ActivityIdOption,
    run_id: Optional[str] = RunOption,
    db: Optional[str] = DbOption,
) -> None:
    """Fail an activity as if it raised ApplicationError: TOKEN, or -w ID -a N.

    As if the activity's function had raised ApplicationError(MESSAGE, type=TYPE).
    By token: retried per its retry policy (a new attempt runs the function
    again, with a new token) unless --non-retryable or no attempt is left. By
    id: the activity ends now, not retried, whatever it waits for. Then the
    workflow's await raises ActivityError.
    """
    where, _ = target([token], workflow_id, activity_id, run_id)
    error = ApplicationError(message, type=error_type, non_retryable=non_retryable)

    then = (
        "not retried: the workflow's await raises ActivityError"
        if non_retryable or where.token is None
        else "retried per its retry policy while attempts are left"
    )
    done = f"Failed {escape(where.named)} with {escape(error.type)} ({then})"

    async def work(client: Client) -> None:
        await where.act(client, lambda h: h.fail(error), done)

    run(db, work)


@activity_app.command("heartbeat", epilog=EPILOG)
def heartbeat(
    token: Optional[str] = TokenArg,
    details: Optional[str] = typer.Argument(
        None,
        metavar="DETAILS_JSON",
        show_default=False,
        help="Progress details as JSON (default: null); a retry reads them as "
        "activity.info().heartbeat_details.",
    ),
    workflow_id: Optional[str] = WorkflowIdOption,
    activity_id: Optional[int] = ActivityIdOption,
    run_id: Optional[str] = RunOption,
    db: Optional[str] = DbOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Say an attempt awaiting completion is alive (exit 9 if it is to stop).

    TOKEN [DETAILS_JSON], or -w ID -a N [DETAILS_JSON]. With a
    heartbeat_timeout, the attempt is lost (and retried) unless a heartbeat or
    an outcome comes that often: each one moves its deadline. Exit 9 if its
    workflow cancelled it, or an operator paused or reset its activity: stop
    the work, then `perdure activity report-cancellation`. Exit 3 if it can no
    longer end (or, by id, no attempt of it awaits completion).
    """
    where, text = target([token, details], workflow_id, activity_id, run_id, "DETAILS_JSON")
    value: Any = None if text is None else parse_json(text, "DETAILS_JSON")

    async def work(client: Client) -> None:
        done = f"Heartbeat recorded for {escape(where.named)}"
        await where.act(client, lambda h: h.heartbeat(value), done)

    run(db, work, converter=converter)


@activity_app.command("report-cancellation", epilog=EPILOG)
def report_cancellation(
    token: Optional[str] = TokenArg,
    workflow_id: Optional[str] = WorkflowIdOption,
    activity_id: Optional[int] = ActivityIdOption,
    run_id: Optional[str] = RunOption,
    db: Optional[str] = DbOption,
) -> None:
    """Record that an attempt awaiting completion stopped, as it was asked to.

    TOKEN, or -w ID -a N. What to run once a heartbeat exits 9. Cancelled by
    its workflow, the attempt ends as cancelled, and the workflow, which
    stopped waiting for it, goes on (any outcome ends it; this one says the
    work was not done). Stopped by an operator's pause or reset, it is handed
    back, not counted as an attempt: the next starts once the activity is
    unpaused, or, after a reset, at once as attempt 1. If nothing asks it to
    stop any more (a pause undone since), it is handed back too, the next
    attempt due now.
    """
    where, _ = target([token], workflow_id, activity_id, run_id)

    async def work(client: Client) -> None:
        stopped: list[str | None] = []

        async def call(handle: AsyncActivityHandle) -> None:
            stopped.append(await handle.report_cancellation())

        await where.act(client, call)
        out.print(_REPORTED[stopped[0]].format(escape(where.named)))

    run(db, work)


# What report-cancellation did, by why the attempt stopped.
_REPORTED = {
    "cancelled": "Recorded the cancellation of {}",
    "paused": "Handed back the attempt of {} (its activity is paused): not counted; "
    "the next attempt starts once it is unpaused",
    "reset": "Handed back the attempt of {} (its activity was reset): not counted; "
    "the next attempt starts now, as attempt 1",
    None: "Handed back the attempt of {}: nothing asks it to stop now (a pause undone "
    "since?); not counted; the next attempt starts now",
}


# update-options: what each option changes, by the keyword update_options takes.
_CHANGES = {
    "start_to_close_timeout": "--start-to-close-timeout",
    "schedule_to_close_timeout": "--schedule-to-close-timeout",
    "heartbeat_timeout": "--heartbeat-timeout",
    "retry_initial_interval": "--retry-initial-interval",
    "retry_backoff": "--retry-backoff",
    "retry_max_interval": "--retry-max-interval",
    "retry_max_attempts": "--retry-max-attempts",
    "task_queue": "--task-queue",
}
OPTIONS_HINT = "`perdure show ID` prints the activity's options as they stand"


def _span(text: Optional[str], option: str) -> Optional[timedelta]:
    if text is None:
        return None
    hint = f"'{option}'"
    span = parse_span(text, hint)
    if span <= timedelta(0):
        raise typer.BadParameter(f"{text!r}: must be more than 0", param_hint=hint)
    if span > MAX_SPAN:
        raise typer.BadParameter(f"{text!r}: must be at most 36525d (100 years)", param_hint=hint)
    return span


def _changes(given: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of update_options that were given, checked as
    it checks them (a usage error, exit 2, before any database is opened)."""
    changes = {name: value for name, value in given.items() if value is not None}
    if not changes:
        raise typer.BadParameter(
            f"give at least one option to change: {', '.join(_CHANGES.values())}"
        )
    try:
        OptionsChange.of(**changes)
    except (TypeError, ValueError) as exc:
        option = _CHANGES.get(str(exc).split(" ", 1)[0])
        hint = None if option is None else f"'{option}'"
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    return changes


def _changed_text(changes: dict[str, Any]) -> str:
    def value(name: str, v: Any) -> str:
        if isinstance(v, timedelta):
            return span_text(v)
        if name == "retry_max_attempts" and v == 0:
            return "0 (no limit)"
        return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{name} {value(name, v)}" for name, v in changes.items())


@activity_app.command("update-options", epilog=EPILOG)
def update_options(
    workflow_id: Optional[str] = WorkflowIdOption,
    activity_id: Optional[int] = ActivityIdOption,
    run_id: Optional[str] = RunOption,
    start_to_close_timeout: Optional[str] = typer.Option(
        None,
        "--start-to-close-timeout",
        metavar="SPAN",
        help="Each attempt's time limit, from when it starts: 30s, 15m, 2h, 1d.",
    ),
    schedule_to_close_timeout: Optional[str] = typer.Option(
        None,
        "--schedule-to-close-timeout",
        metavar="SPAN",
        help="The activity's time limit, retries included, counted from when it was scheduled.",
    ),
    heartbeat_timeout: Optional[str] = typer.Option(
        None,
        "--heartbeat-timeout",
        metavar="SPAN",
        help="How often an attempt must heartbeat, or be lost and retried.",
    ),
    retry_initial_interval: Optional[str] = typer.Option(
        None, "--retry-initial-interval", metavar="SPAN", help="The delay before the 1st retry."
    ),
    retry_backoff: Optional[float] = typer.Option(
        None,
        "--retry-backoff",
        metavar="FACTOR",
        help="What each delay is multiplied by for the next (at least 1.0).",
    ),
    retry_max_interval: Optional[str] = typer.Option(
        None, "--retry-max-interval", metavar="SPAN", help="The longest delay between attempts."
    ),
    retry_max_attempts: Optional[int] = typer.Option(
        None,
        "--retry-max-attempts",
        min=0,
        max=2**31 - 1,
        metavar="N",
        help="Attempts at most, the first included (0: no limit).",
    ),
    task_queue: Optional[str] = typer.Option(
        None, "--task-queue", help="The queue its next attempts are taken from."
    ),
    db: Optional[str] = DbOption,
    activity_type: Optional[str] = matching.ActivityTypeOption,
    workflow_type: Optional[str] = matching.WorkflowTypeOption,
    since: Optional[str] = matching.SinceOption,
    until: Optional[str] = matching.UntilOption,
    search: Optional[str] = matching.SearchOption,
    attrs: list[str] = matching.AttrOption,
    retrying: bool = matching.RetryingOption,
    build_id: Optional[str] = matching.BuildOption,
    limit: Optional[int] = matching.LimitOption,
    yes: bool = matching.YesOption,
    as_json: bool = matching.JsonOption,
) -> None:
    """Change a pending activity's timeouts, retry policy or task queue.

    -w ID -a N and at least one option; the others stay as they are (as
    Temporal's activity update-options). A retry waiting out its backoff
    waits the new policy's delay; an attempt running now keeps its timeouts,
    and its failure is retried, or not, by the new policy. Not recorded in
    the history. Exit 2 for a retry policy that is not one or a
    --retry-max-attempts that allows no more attempts, 3 if it is not pending.

    With filters instead of -w and -a: every pending activity of the open
    runs they match, paused or not, listed first; --yes changes each one's
    options (exit 5 if any was refused, as one activity's exit 2).
    """
    asked = matching.read_batch(
        activity_type,
        workflow_type,
        since,
        until,
        search,
        retrying,
        attrs,
        build_id,
        limit,
        yes,
        as_json,
    )
    batch = matching.is_batch("update_options", workflow_id, activity_id, run_id, asked)
    # (By id, a bad -w or -r is told before the options, as it always was.)
    where = None if batch else target([], workflow_id, activity_id, run_id)[0]
    changes = _changes(
        {
            "start_to_close_timeout": _span(start_to_close_timeout, "--start-to-close-timeout"),
            "schedule_to_close_timeout": _span(
                schedule_to_close_timeout, "--schedule-to-close-timeout"
            ),
            "heartbeat_timeout": _span(heartbeat_timeout, "--heartbeat-timeout"),
            "retry_initial_interval": _span(retry_initial_interval, "--retry-initial-interval"),
            "retry_backoff": retry_backoff,
            "retry_max_interval": _span(retry_max_interval, "--retry-max-interval"),
            "retry_max_attempts": retry_max_attempts,
            "task_queue": task_queue,
        }
    )
    if where is None:
        matching.act("update_options", asked, db, new_options=changes)
        return

    async def call(handle: AsyncActivityHandle) -> None:
        try:
            await handle.update_options(**changes)
        except ValueError as exc:  # (the policy it makes, or attempts it allows: nothing changed)
            fail(EXIT_USAGE, str(exc), OPTIONS_HINT)

    async def work(client: Client) -> None:
        done = f"Updated {escape(where.named)}: {escape(_changed_text(changes))}"
        await where.act(client, call, done)
        now = await where.pending(client)
        if now is None:
            out.print("  [dim]it is no longer pending[/]")
            return
        text = options_text(now) or "unknown"
        out.print(f"  options now: {escape(text)}; task queue {escape(repr(now.task_queue))}")

    run(db, work)


# Last: the commands of _activity_retries register on the group after these
# (`perdure activity --help` lists them in that order; the group's module is
# this one's, as perdure.cli.COMMANDS says).
from perdure.cli import _activity_retries  # noqa: E402, F401
