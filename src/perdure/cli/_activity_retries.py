"""``perdure activity pause``, ``unpause`` and ``reset``: what an operator
does to an activity's retries. A pause holds its attempts back, an unpause
lets them go (its next attempt due now), a reset counts them from 1 again
and tries again now (as Temporal's ``activity reset``); ``--jitter SPAN``
makes the unpaused or reset attempt due at a random moment within SPAN
instead. Each names one activity by id (``-w``/``-a``), or, with those left
out, every pending activity filters match: the batch form,
``_activity_batch``.

Imports the public API, typer, rich, ``_activity_target`` (the group, the
options naming an activity, ``Target``), ``_activity_batch``,
``_schedule_cmd.parse_span`` and the handle's check of a jitter
(``perdure._activityoptions.jitter_seconds``: a bad --jitter is a usage
error, exit 2, before any database is opened); exit codes come from
``_operator.run`` (and, of the batch form, from ``_batch``): not pending
exits 3; an unpause that cannot count attempts from 1 again under a
running attempt exits 5.
"""

from __future__ import annotations

import shlex
from datetime import timedelta
from typing import Optional

import typer
from rich.markup import escape

from perdure._activityoptions import jitter_seconds
from perdure._asyncactivity import AsyncActivityHandle
from perdure.cli import _activity_batch as matching
from perdure.cli._activity_options import reset_ends
from perdure.cli._activity_target import (
    ActivityIdOption,
    RunOption,
    Target,
    WorkflowIdOption,
    activity_app,
    out,
    target,
)
from perdure.cli._app import EPILOG, DbOption
from perdure.cli._operator import EXIT_CONFLICT, fail, local_time, run
from perdure.cli._schedule_cmd import parse_span
from perdure.client import Client, PendingActivityInfo
from perdure.errors import AsyncActivityCancelledError, AsyncActivityNotFoundError, PerdureError

__all__ = ["pause", "reset", "unpause"]

JitterOption = typer.Option(
    None,
    "--jitter",
    metavar="SPAN",
    help="Its next attempt due at a random moment within SPAN from now, not now: 30s, 5m, "
    "1h (in the batch form, each activity its own).",
)


def _jitter(text: Optional[str]) -> Optional[timedelta]:
    """``--jitter`` read, and checked as the handle's unpause and reset
    check it: a usage error (exit 2) before any database is opened."""
    if text is None:
        return None
    hint = "'--jitter'"
    if text.strip().startswith("-"):  # (else parse_span says it is no duration)
        raise typer.BadParameter(f"{text!r}: must be 0 or more (0s: due now)", param_hint=hint)
    span = parse_span(text, hint)
    try:
        jitter_seconds(span)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: must be at most 36525d (100 years)", param_hint=hint
        ) from None
    return span


def _one(
    action: matching.Action,
    asked: matching.ActivityBatch,
    workflow_id: Optional[str],
    activity_id: Optional[int],
    run_id: Optional[str],
    db: Optional[str],
    jitter: Optional[timedelta] = None,
    **flags: bool,
) -> Optional[Target]:
    """The activity ``-w`` and ``-a`` name; None once the batch form (filters
    instead) has acted, with the action's ``jitter`` and ``flags``. A usage
    error (exit 2) for a mix of the two forms, or neither."""
    if matching.is_batch(action, workflow_id, activity_id, run_id, asked):
        matching.act(
            action,
            asked,
            db,
            reset_attempts=flags.get("reset_attempts", False),
            keep_paused=flags.get("keep_paused", False),
            clear_heartbeat_details=flags.get("clear_heartbeat_details", False),
            jitter=jitter,
        )
        return None
    where, _ = target([], workflow_id, activity_id, run_id)
    return where


def _unpause(where: Target) -> str:
    """The command that unpauses the activity ``where`` names by id (escaped)."""
    assert where.workflow_id is not None  # (by id)
    return (
        f"`perdure activity unpause -w {escape(shlex.quote(where.workflow_id))} "
        f"-a {where.activity_id}`"
    )


@activity_app.command("pause", epilog=EPILOG)
def pause(
    workflow_id: Optional[str] = WorkflowIdOption,
    activity_id: Optional[int] = ActivityIdOption,
    run_id: Optional[str] = RunOption,
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
    """Pause an activity: no attempt of it starts until it is unpaused.

    -w ID -a N. An attempt running now runs on: its result is delivered, a
    failure is not retried while paused, and one that heartbeats is stopped at
    its next heartbeat (not counted as an attempt). Its timeouts still run.
    `perdure activity unpause` lets it go. Exit 3 if it is not pending.

    With filters instead of -w and -a: every pending activity not paused of
    the open runs they match (each workflow id's latest; no --status: only
    open runs have pending activities), listed first; --yes pauses them
    (exit 5 if any failed): perdure activity pause --activity-type NAME.
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
    where = _one("pause", asked, workflow_id, activity_id, run_id, db)
    if where is None:
        return
    done = f"Paused {escape(where.named)}: no attempt starts until {_unpause(where)}"

    async def work(client: Client) -> None:
        await where.act(client, lambda h: h.pause(), done)

    run(db, work)


@activity_app.command("unpause", epilog=EPILOG)
def unpause(
    workflow_id: Optional[str] = WorkflowIdOption,
    activity_id: Optional[int] = ActivityIdOption,
    run_id: Optional[str] = RunOption,
    reset_attempts: bool = typer.Option(
        False,
        "--reset-attempts",
        help="Count its attempts from 1 again (a fresh max_attempts); only while no "
        "attempt of it runs.",
    ),
    jitter: Optional[str] = JitterOption,
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
    """Unpause an activity: its next attempt is due now, its backoff dropped.

    -w ID -a N. Unpausing an activity that is not paused does nothing.
    --jitter SPAN: due at a random moment within SPAN from now instead (the
    line printed says when). Exit 3 if it is not pending, 5 if
    --reset-attempts meets a running attempt (it stays paused).

    With filters instead of -w and -a: every paused activity of the open
    runs they match, as pause takes them, listed first; --yes unpauses them
    (exit 5 if any failed, as --reset-attempts under a running attempt).
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
    spread = _jitter(jitter)
    where = _one(
        "unpause",
        asked,
        workflow_id,
        activity_id,
        run_id,
        db,
        spread,
        reset_attempts=reset_attempts,
    )
    if where is None:
        return
    counted = " (attempts counted from 1 again)" if reset_attempts else ""
    done = f"Unpaused {escape(where.named)}{counted}: its next attempt is due now"

    async def call(handle: AsyncActivityHandle) -> None:
        try:
            await handle.unpause(reset_attempts=reset_attempts, jitter=spread)
        except (AsyncActivityNotFoundError, AsyncActivityCancelledError):
            raise
        except PerdureError as exc:
            fail(EXIT_CONFLICT, str(exc))

    async def work(client: Client) -> None:
        if not spread:  # (due now: nothing to read back)
            await where.act(client, call, done)
            return
        await where.act(client, call)
        now = await where.pending(client)  # (when its jitter made it due)
        out.print(f"Unpaused {escape(where.named)}{counted}: {_unpaused_then(now)}")

    run(db, work)


@activity_app.command("reset", epilog=EPILOG)
def reset(
    workflow_id: Optional[str] = WorkflowIdOption,
    activity_id: Optional[int] = ActivityIdOption,
    run_id: Optional[str] = RunOption,
    keep_paused: bool = typer.Option(
        False,
        "--keep-paused",
        help="Paused, keep it paused: its fresh count waits for the unpause (default: unpause it).",
    ),
    clear_heartbeat_details: bool = typer.Option(
        False,
        "--clear-heartbeat-details",
        help="Drop its heartbeat details (default: kept, for the next attempt to resume from).",
    ),
    jitter: Optional[str] = JitterOption,
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
    """Reset an activity: attempts counted from 1 again, its next one due now.

    -w ID -a N, as Temporal's activity reset: a fresh max_attempts, its
    backoff dropped; paused, it is unpaused too, unless --keep-paused. An
    attempt running now stops at its next heartbeat (one awaiting completion,
    once its completer reports the cancellation that heartbeat asks for), and
    the next starts at once as attempt 1; one that sends none runs on:
    if it fails, or is lost, the next attempt starts at once as attempt 1
    (`perdure show`: reset requested). Its heartbeat details are kept unless
    --clear-heartbeat-details. --jitter SPAN: the attempt it makes due is due
    at a random moment within SPAN from now instead. Exit 3 if it is not
    pending.

    With filters instead of -w and -a: every pending activity of the open
    runs they match, paused or not, listed first; --yes resets them (exit 5
    if any failed).
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
    spread = _jitter(jitter)
    options = {"keep_paused": keep_paused, "clear_heartbeat_details": clear_heartbeat_details}
    where = _one("reset", asked, workflow_id, activity_id, run_id, db, spread, **options)
    if where is None:
        return

    async def work(client: Client) -> None:
        await where.act(client, lambda h: h.reset(**options, jitter=spread))
        now = await where.pending(client)  # (whether an attempt runs on: what the reset did)
        cleared = "; its heartbeat details dropped" if clear_heartbeat_details else ""
        then = _reset_then(where, now, bool(spread))
        out.print(f"Reset {escape(where.named)}: {then}{cleared}")

    run(db, work)


def _unpaused_then(a: Optional[PendingActivityInfo]) -> str:
    """When an unpause with a jitter made the activity's next attempt due,
    as ``describe()`` read just after it shows the activity (None: it has
    ended since)."""
    if a is None:
        return "it has ended since (it is no longer pending)"
    if a.running or a.awaiting_completion:  # (an attempt holds it: nothing was made due)
        running = "awaiting completion" if a.awaiting_completion else "running"
        return f"attempt {a.attempt} ({running}) runs on"
    if a.next_attempt_at is None:
        return "it has been paused again since"
    return f"its next attempt is due at {local_time(a.next_attempt_at)}"


def _reset_then(where: Target, a: Optional[PendingActivityInfo], jittered: bool = False) -> str:
    """What a reset leaves the activity to do, as ``describe()`` read just
    after it shows the activity (None: it has ended since); ``jittered``:
    its next attempt was made due at a random moment, which it says."""
    if a is None:
        return "it has ended since (it is no longer pending)"
    if not a.reset_requested:  # (no attempt held it: counted from 1 at once)
        if a.paused:
            return f"attempts count from 1 again; kept paused, it waits for {_unpause(where)}"
        due = "now"
        if jittered and a.next_attempt_at is not None:
            due = f"at {local_time(a.next_attempt_at)}"
        return f"attempts count from 1 again; its next attempt is due {due}"
    running = "awaiting completion" if a.awaiting_completion else "running"
    then = (
        f"is attempt 1, once {_unpause(where)} lets it start"
        if a.paused
        else "starts at once, as attempt 1"
    )
    return f"attempt {a.attempt} ({running}) {reset_ends(a)} {then}"
