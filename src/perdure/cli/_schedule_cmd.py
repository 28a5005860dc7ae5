"""``perdure schedule``: create, list, show, pause, unpause, trigger and
delete schedules (perdure.schedules). A schedule is a workflow
(``schedule:<id>``), so ``perdure show``/``history`` work on it too.

Imports the public API, typer and rich; exit codes come from ``_operator.run``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from perdure._spans import span_text
from perdure.cli._app import ConverterOption, DbOption, PriorityOption, app
from perdure.cli._operator import (
    EPILOG,
    EXIT_USAGE,
    JsonOption,
    fail,
    local_time,
    parse_json,
    print_json,
    run,
    when_option,
)
from perdure.client import Client
from perdure.schedules import ScheduleDescription

out = Console(highlight=False, soft_wrap=True)
schedule_app = typer.Typer(
    help="Start workflows on a cron expression or an interval.",
    epilog=EPILOG,
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule", rich_help_panel="Control")

IdArg = typer.Argument(..., metavar="SCHEDULE_ID", help="Schedule id.")
ArgsOption = typer.Option(
    [], "--arg", "-a", help="A positional argument as JSON; repeat for more: --arg 7."
)
NewArgsOption = typer.Option(
    None, "--arg", "-a", help="New positional arguments as JSON (all of them); repeat."
)
NoteOption = typer.Option(None, "--note", "-n", help="Why (shown by `perdure schedule show`).")
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_span(text: str, option: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h`` or ``1d`` as a timedelta."""
    found = _SPAN.match(text)
    if found is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration: a number with s, m, h or d (90s, 15m, 2h, 1d)",
            param_hint=option,
        )
    try:
        return timedelta(seconds=float(found[1]) * _UNITS[found[2]])
    except OverflowError:
        raise typer.BadParameter(f"{text!r} is longer than any date", param_hint=option) from None


def _when(d: ScheduleDescription) -> str:
    if d.cron is not None:
        zone = "" if d.timezone == "UTC" else f" ({d.timezone})"
        return f"cron {d.cron}{zone}"
    assert d.every is not None
    return f"every {span_text(d.every)}"


@schedule_app.command("create")
def create(
    schedule_id: str = IdArg,
    workflow: str = typer.Argument(..., help="Workflow type name (as @workflow.defn names it)."),
    args: list[str] = ArgsOption,
    cron: Optional[str] = typer.Option(
        None, "--cron", help="Five fields: minute hour day-of-month month day-of-week."
    ),
    every: Optional[str] = typer.Option(None, "--every", help="An interval: 30s, 15m, 2h, 1d."),
    timezone: str = typer.Option("UTC", "--timezone", help="The cron's time zone (IANA)."),
    task_queue: str = typer.Option("default", "--task-queue", "-q", help="Task queue."),
    overlap: str = typer.Option("skip", help="While the last run is running: skip or allow."),
    catchup_window: str = typer.Option(
        "1d", help="After an outage, start a run for the latest time passed within this."
    ),
    jitter: str = typer.Option(
        "0s", "--jitter", help="Start each run up to this much after its time (its own offset)."
    ),
    priority: Optional[int] = PriorityOption,
    fairness_key: Optional[str] = typer.Option(
        None, "--fairness-key", help="The runs' fairness key (whose work they are)."
    ),
    paused: bool = typer.Option(False, "--paused", help="Create it paused."),
    if_exists: str = typer.Option(
        "fail", "--if-exists", help="If it exists: fail, keep it, or update it to these."
    ),
    note: Optional[str] = NoteOption,
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Create a schedule: start WORKFLOW at each time of --cron, or --every interval."""
    values = [parse_json(a, f"--arg #{i + 1}") for i, a in enumerate(args)]
    span = None if every is None else parse_span(every, "--every")
    window = parse_span(catchup_window, "--catchup-window")
    spread = parse_span(jitter, "--jitter")

    async def work(client: Client) -> None:
        try:
            handle = await client.create_schedule(
                schedule_id,
                workflow,
                *values,
                cron=cron,
                every=span,
                timezone=timezone,
                task_queue=task_queue,
                overlap=overlap,  # type: ignore[arg-type]
                catchup_window=window,
                jitter=spread,
                priority=priority,
                fairness_key=fairness_key,
                paused=paused,
                note=note,
                if_exists=if_exists,  # type: ignore[arg-type]
            )
        except ValueError as exc:
            fail(EXIT_USAGE, str(exc))
        described = await handle.describe()
        if as_json:
            print_json(described.to_json())
            return
        if if_exists == "fail":
            out.print(
                f"Created schedule [bold]{escape(schedule_id)}[/]: {escape(workflow)} "
                f"{escape(_when(described))}; next run {local_time(described.next_run_at)}"
            )
        else:  # (made, kept, or updated: an update applies at its next turn)
            out.print(f"Schedule [bold]{escape(schedule_id)}[/] is in place")

    run(db, work, converter=converter)


@schedule_app.command("update")
def update(
    schedule_id: str = IdArg,
    workflow: Optional[str] = typer.Option(None, "--workflow", help="Start this workflow instead."),
    args: Optional[list[str]] = NewArgsOption,
    cron: Optional[str] = typer.Option(None, "--cron", help="A new cron expression."),
    every: Optional[str] = typer.Option(None, "--every", help="A new interval: 30s, 15m, 2h."),
    timezone: Optional[str] = typer.Option(None, "--timezone", help="A new time zone."),
    overlap: Optional[str] = typer.Option(None, help="skip or allow."),
    catchup_window: Optional[str] = typer.Option(None, help="A new catch-up window."),
    jitter: Optional[str] = typer.Option(None, "--jitter", help="A new jitter (0s: none)."),
    priority: Optional[int] = PriorityOption,
    fairness_key: Optional[str] = typer.Option(
        None, "--fairness-key", help="The runs' new fairness key ('': none)."
    ),
    db: Optional[str] = DbOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Change what a schedule starts or when; what is not given stays."""
    values = None if not args else [parse_json(a, f"--arg #{i + 1}") for i, a in enumerate(args)]
    span = None if every is None else parse_span(every, "--every")
    window = None if catchup_window is None else parse_span(catchup_window, "--catchup-window")
    spread = None if jitter is None else parse_span(jitter, "--jitter")

    async def work(client: Client) -> None:
        try:
            await client.get_schedule(schedule_id).update(
                workflow=workflow,
                args=values,
                cron=cron,
                every=span,
                timezone=timezone,
                overlap=overlap,  # type: ignore[arg-type]
                catchup_window=window,
                jitter=spread,
                priority=priority,
                fairness_key=fairness_key,
            )
        except ValueError as exc:
            fail(EXIT_USAGE, str(exc))
        out.print(f"Update sent to schedule {escape(schedule_id)} (applied at its next turn)")

    run(db, work, converter=converter)


@schedule_app.command("list")
def list_(
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
    limit: int = typer.Option(100, "--limit", "-n", help="At most this many."),
    converter: Optional[str] = ConverterOption,
) -> None:
    """The schedules there are (not deleted), newest first."""

    async def work(client: Client) -> None:
        found = await client.list_schedules(limit)
        if as_json:
            print_json([d.to_json() for d in found])
            return
        if not found:
            out.print("no schedules")
            return
        table = Table("SCHEDULE", "WORKFLOW", "WHEN", "NEXT RUN", "STARTED", "PAUSED")
        for d in found:
            table.add_row(
                escape(d.schedule_id),
                escape(d.workflow),
                escape(_when(d)),
                local_time(d.next_run_at),
                str(d.runs_started),
                escape(f"yes: {d.note}" if d.paused and d.note else "yes" if d.paused else ""),
            )
        out.print(table)

    run(db, work, converter=converter)


@schedule_app.command("show")
def show(
    schedule_id: str = IdArg,
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """A schedule: when it runs, its next time, the runs it started lately."""

    async def work(client: Client) -> None:
        d = await client.get_schedule(schedule_id).describe()
        if as_json:
            print_json(d.to_json())
            return
        state = "deleted" if d.status == "terminated" else d.status
        if d.paused:
            state += " (paused" + (f": {d.note})" if d.note else ")")
        out.print(f"[bold]{escape(d.schedule_id)}[/]  {escape(state)}")
        out.print(
            f"  starts     {escape(d.workflow)} on task queue {escape(d.task_queue)}"
            f" at priority {d.priority}"
            + ("" if d.fairness_key is None else f", key {escape(d.fairness_key)}")
        )
        spread = f"; each run up to {span_text(d.jitter)} late" if d.jitter else ""
        out.print(f"  when       {escape(_when(d))}; overlap {d.overlap}{spread}")
        out.print(f"  next run   {local_time(d.next_run_at)}")
        out.print(
            f"  so far     {d.runs_started} started, {d.runs_skipped} skipped, "
            f"{d.times_missed} missed"
        )
        for r in d.recent:
            what = f"skipped: {r.skipped}" if r.run_id is None else f"run {r.run_id}"
            out.print(f"  {local_time(r.scheduled_time)}  {escape(r.workflow_id)}  {escape(what)}")
        out.print(f"[dim]perdure show schedule:{escape(d.schedule_id)}   (its own workflow)[/]")

    run(db, work, converter=converter)


def _command(schedule_id: str, db: Optional[str], op: str, note: Optional[str] = None) -> None:
    async def work(client: Client) -> None:
        handle = client.get_schedule(schedule_id)
        if op == "pause":
            await handle.pause(note)
        elif op == "unpause":
            await handle.unpause(note)
        elif op == "trigger":
            await handle.trigger()
        else:
            await handle.delete()
        done = {"pause": "Paused", "unpause": "Unpaused", "trigger": "Triggered"}
        out.print(f"{done.get(op, 'Deleted')} schedule {escape(schedule_id)}")

    run(db, work)


@schedule_app.command("backfill")
def backfill(
    schedule_id: str = IdArg,
    start: str = typer.Option(..., "--from", help="The first time: ISO 8601 or an age (3d)."),
    end: str = typer.Option("0s", "--to", help="The last time (default: now)."),
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Start the runs of the schedule's times in a range (each time once)."""
    first, last = when_option(start, "--from"), when_option(end, "--to")
    assert first is not None and last is not None

    async def work(client: Client) -> None:
        try:
            runs = await client.get_schedule(schedule_id).backfill(first, last)
        except ValueError as exc:
            fail(EXIT_USAGE, str(exc))
        if as_json:
            print_json([r.to_json() for r in runs])
            return
        made = [r for r in runs if r.skipped is None]
        out.print(
            f"Backfilled schedule {escape(schedule_id)}: {len(made)} runs started, "
            f"{len(runs) - len(made)} times already had theirs"
        )
        for r in made:
            out.print(f"  {local_time(r.scheduled_time)}  {escape(r.workflow_id)}")

    run(db, work, converter=converter)


@schedule_app.command("pause")
def pause(
    schedule_id: str = IdArg, note: Optional[str] = NoteOption, db: Optional[str] = DbOption
) -> None:
    """Stop starting runs until unpaused (the times meanwhile are not caught up)."""
    _command(schedule_id, db, "pause", note)


@schedule_app.command("unpause")
def unpause(
    schedule_id: str = IdArg, note: Optional[str] = NoteOption, db: Optional[str] = DbOption
) -> None:
    """Start runs again, from the next time on."""
    _command(schedule_id, db, "unpause", note)


@schedule_app.command("trigger")
def trigger(schedule_id: str = IdArg, db: Optional[str] = DbOption) -> None:
    """Start a run now, beside the schedule's times."""
    _command(schedule_id, db, "trigger")


@schedule_app.command("delete")
def delete(schedule_id: str = IdArg, db: Optional[str] = DbOption) -> None:
    """End the schedule at once; the runs it started go on."""
    _command(schedule_id, db, "delete")
