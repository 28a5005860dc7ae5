"""``perdure list``, ``count``, ``show``, ``history`` and ``result``: the read commands.

Imports the public API, rich, the framework-free query helpers of
``perdure.server._query`` (shared with the HTTP API), the run filters'
options (``_filters``: ``list --status``, ``--attr``, ``--build-id``...),
the line of a pending activity's options (``_activity_options``) and of a
history event (``_summaries``). Each has ``--json``; exit codes come from
``_operator.run``.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from datetime import datetime
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from perdure._history import PRIORITIES
from perdure.cli._activity_options import options_text, reset_ends
from perdure.cli._app import ConverterOption, DbOption, app
from perdure.cli._filters import (
    AttrFilterOption,
    BuildFilterOption,
    RetryingOption,
    SearchOption,
    SinceOption,
    StatusOption,
    TypeOption,
    UntilOption,
    attribute_filter,
)
from perdure.cli._operator import (
    EPILOG,
    EXIT_FAILED,
    EXIT_RUNNING,
    JsonOption,
    RunIdOption,
    err,
    local_time,
    print_json,
    run,
    when_option,
)
from perdure.cli._summaries import brief, summarize
from perdure.client import Client, StreamInfo, WorkflowDescription
from perdure.errors import WorkflowCancelledError, WorkflowFailedError, WorkflowTerminatedError
from perdure.server._query import (
    MAX_LIMIT,
    ListQuery,
    count_matching,
    description_json,
    execution_json,
    final_description,
    list_page,
    outcome_json,
    stream_info_json,
)

out = Console(highlight=False, soft_wrap=True)

STATUS_STYLE = {
    "running": "bold blue",
    "completed": "bold green",
    "failed": "bold red",
    "cancelled": "bold yellow",
    "terminated": "bold magenta",
    "timed_out": "bold red",
    "continued_as_new": "bold cyan",
}


def status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'bold')}]{escape(status)}[/]"


LatestOption = typer.Option(
    False, "--latest", help="Only each workflow id's latest run (not one a reset replaced)."
)


def listing_query(
    status: Optional[str],
    workflow_type: Optional[str],
    since: Optional[str],
    until: Optional[str],
    search: Optional[str],
    retrying: bool,
    latest: bool,
    attrs: list[str],
    build_id: Optional[str],
    **page: Any,
) -> ListQuery:
    """``list``'s and ``count``'s filter options (and ``list``'s page) as a
    checked query; exit 2 naming what is wrong."""
    query = ListQuery(
        status=status,
        workflow_type=workflow_type,
        since=when_option(since, "--since"),
        until=when_option(until, "--until"),
        search=search,
        retrying=retrying,
        latest=latest,
        search_attributes=attribute_filter(attrs),
        build_id=build_id,
        **page,
    )
    try:
        query.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return query


@app.command("list", epilog=EPILOG, rich_help_panel="Inspect")
def list_workflows(
    db: Optional[str] = DbOption,
    status: Optional[str] = StatusOption,
    workflow_type: Optional[str] = TypeOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    search: Optional[str] = SearchOption,
    retrying: bool = RetryingOption,
    latest: bool = LatestOption,
    attrs: list[str] = AttrFilterOption,
    build_id: Optional[str] = BuildFilterOption,
    limit: int = typer.Option(20, min=1, max=MAX_LIMIT, help="Runs per page."),
    page: Optional[int] = typer.Option(None, min=1, help="Page number (1 = newest)."),
    cursor: Optional[str] = typer.Option(None, help="Continue after a previous page's cursor."),
    as_json: bool = JsonOption,
) -> None:
    """List workflow runs, newest first."""
    filters = (status, workflow_type, since, until, search, retrying, latest, attrs, build_id)
    query = listing_query(*filters, limit=limit, page=page, cursor=cursor)

    async def work(client: Client) -> None:
        result = await list_page(client, query)
        if as_json:
            items = [execution_json(e) for e in result.items]
            print_json({"items": items, "next_cursor": result.next_cursor})
            return
        if not result.items:
            out.print("[dim]No workflow runs match.[/]")
            return
        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        columns = ["ID", "TYPE", "STATUS", "STARTED", "CLOSED"]
        # (A BUILD column only where some run is pinned: most queues have no builds.)
        builds = any(e.build_id is not None for e in result.items)
        if builds:
            columns.append("BUILD")
        for column in columns:
            table.add_column(column, overflow="fold")
        for e in result.items:
            row = [
                escape(e.id),
                escape(e.workflow_type),
                status_text(e.status) + (" [yellow](retrying)[/]" if e.last_error else ""),
                local_time(e.created_at),
                local_time(e.closed_at),
            ]
            if builds:
                row.append(escape(e.build_id or "-"))
            table.add_row(*row)
        out.print(table)
        if result.next_cursor:
            out.print(f"[dim]More: --cursor {result.next_cursor}[/]")

    run(db, work)


@app.command("count", epilog=EPILOG, rich_help_panel="Inspect")
def count_workflows(
    db: Optional[str] = DbOption,
    status: Optional[str] = StatusOption,
    workflow_type: Optional[str] = TypeOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    search: Optional[str] = SearchOption,
    retrying: bool = RetryingOption,
    latest: bool = LatestOption,
    attrs: list[str] = AttrFilterOption,
    build_id: Optional[str] = BuildFilterOption,
    as_json: bool = JsonOption,
) -> None:
    """Count the workflow runs the filters match (as list takes them), by status."""
    filters = (status, workflow_type, since, until, search, retrying, latest, attrs, build_id)
    query = listing_query(*filters)

    async def work(client: Client) -> None:
        found = await count_matching(client, query)
        if as_json:
            print_json(found.to_json())
            return
        runs = "run matches" if found.count == 1 else "runs match"
        parts = [f"{status_text(s)} {n:,}" for s, n in found.by_status.items() if n]
        out.print(f"{found.count:,} {runs}" + (f": {', '.join(parts)}" if parts else ""))

    run(db, work)


# Failed attempts after which `show` says how to settle an activity by hand.
SETTLE_HINT_AFTER = 3


def _pending_lines(
    d: WorkflowDescription, paused_queues: frozenset[str] = frozenset()
) -> list[str]:
    """What the run waits on, a line each (``paused_queues``: the task
    queues of its held activities whose limits pause them)."""
    lines = []
    for a in d.pending_activities:
        if a.awaiting_completion:
            where = f"attempt {a.attempt} awaiting completion by its task token"
            if a.completion_deadline is not None:
                where += f"; lost at {local_time(a.completion_deadline)} if none comes"
        elif a.running:
            where = f"attempt {a.attempt} running"
        elif a.paused:
            where = "paused" if a.attempt == 0 else f"attempt {a.attempt} failed, paused"
        elif a.attempt == 0:
            where = "scheduled, not started"
        else:
            where = f"attempt {a.attempt} failed, next attempt at {local_time(a.next_attempt_at)}"
        line = f"activity [bold]{escape(a.activity_type)}[/] (ref {a.activity_id}): {where}"
        queue = escape(a.task_queue)
        by_id = escape(f"-w {shlex.quote(d.id)} -a {a.activity_id}")
        if a.paused:
            then = "runs on; " if a.running else ""
            line += (
                f"\n    [bold yellow]paused:[/] {then}no attempt starts until "
                f"perdure activity unpause {by_id}"
            )
        elif a.waiting_for_worker:
            line += (
                f"\n    [bold yellow]no live worker serves task queue {queue!r} with activity "
                f"{escape(a.activity_type)!r}:[/] start one, or deploy one that registers it"
            )
        elif a.held_by_limits and a.task_queue in paused_queues:
            line += (
                f"\n    [bold yellow]waiting: task queue {queue!r} is paused[/] (max_running 0): "
                f"perdure queue limit {escape(shlex.quote(a.task_queue))} --max-running N "
                f"resumes it"
            )
        elif a.held_by_limits:
            line += (
                f"\n    [yellow]waiting: task queue {queue!r} has limits[/] "
                f"(perdure queue show {queue}); {a.ahead} due before it"
            )
        elif a.in_backlog:
            line += (
                f"\n    [yellow]waiting in task queue {queue!r}'s backlog:[/] {a.ahead} due "
                f"before it (its workers are busy)"
            )
        if a.reset_requested:  # (reset under this attempt: `perdure activity reset`)
            then = "as attempt 1, once unpaused" if a.paused else "at once, as attempt 1"
            line += (
                f"\n    [bold yellow]reset requested:[/] this attempt {reset_ends(a)} starts {then}"
            )
        if a.cancel_requested:  # (its workflow cancelled it: it may wait for its end)
            line += (
                "\n    [bold yellow]cancel requested[/] by its workflow: this attempt stops at "
                "its next heartbeat (if it sends none, it runs on until it ends)"
            )
        if a.heartbeat_details is not None:
            line += f"\n    [dim]last heartbeat: {escape(brief(a.heartbeat_details))}[/]"
        if len(a.attempts) > 1:  # the last failure is shown below; the earlier ones here
            earlier = [f"#{r.get('attempt')} {_attempt_error(r)}" for r in a.attempts[:-1]]
            line += f"\n    [dim]earlier attempts: {escape('; '.join(earlier))}[/]"
        if a.last_failure:
            failure = f"{a.last_failure.get('type')}: {a.last_failure.get('message')}"
            line += f"\n    [red]last error: {escape(failure)}[/]"
            if a.attempt >= SETTLE_HINT_AFTER and not a.paused:
                line += (
                    f"\n    [dim]failing for good? deploy a fix, pause it (perdure activity "
                    f"pause {by_id}), or settle it by hand: perdure activity "
                    f"fail|complete {by_id} ...; fixed, retry it now: perdure activity "
                    f"reset {by_id} (docs/operations.md)[/]"
                )
        options = options_text(a)
        if options is not None:
            line += f"\n    [dim]options: {escape(options)}[/]"
        lines.append(line)
    for t in d.pending_timers:
        lines.append(f"timer (ref {t.timer_id}): due {local_time(t.fire_at)}")
    for c in d.pending_children:
        lines.append(
            f"child workflow [bold]{escape(c.workflow_id)}[/] ({escape(c.workflow_type)}, "
            f"run {c.run_id})"
        )
    for name in d.waiting_signals:
        lines.append(f"signal [bold]{escape(name)}[/]")
    for name in d.waiting_updates:
        lines.append(f"update [bold]{escape(name)}[/]")
    if d.waiting_conditions:
        times = "" if d.waiting_conditions == 1 else f" ({d.waiting_conditions} waits)"
        lines.append(f"a condition in its code (workflow.wait_condition){times}")
    return lines


def _attempt_error(record: dict[str, Any]) -> str:
    error = record.get("error")
    return str(error.get("type")) if isinstance(error, dict) else "ok"


def _stream_line(s: StreamInfo) -> str:
    values = f"{s.length:,} value{'' if s.length == 1 else 's'}"
    return f"  {escape(s.key)}  [dim]{values}{', closed' if s.closed else ''}[/]"


def _show(
    d: WorkflowDescription,
    latest: WorkflowDescription | None = None,
    streams: list[StreamInfo] | None = None,
    paused_queues: frozenset[str] = frozenset(),
) -> None:
    out.print(f"[bold]{escape(d.id)}[/]  {escape(d.workflow_type)}  {status_text(d.status)}")
    facts = [
        ("run id", d.run_id),
        ("task queue", d.task_queue),
        ("priority", f"{d.priority} ({PRIORITIES[0]} first, {PRIORITIES[-1]} last)"),
    ]
    if d.fairness_key is not None:
        facts.append(("fairness", f"key {d.fairness_key}"))
    if d.build_id is not None:
        pinned = "" if d.closed_at else " (pinned: only its workers run its turns)"
        facts.append(("build", f"{d.build_id}{pinned}"))
    facts += [
        ("started", local_time(d.created_at)),
        ("updated", local_time(d.updated_at)),
        ("closed", local_time(d.closed_at)),
        ("history", f"{d.history_length} events"),
    ]
    if d.parent_run_id:
        facts.append(("parent run", d.parent_run_id))
    if d.continued_to:
        facts.append(("continued", f"as new into run {d.continued_to}"))
    if latest is not None and latest.run_id not in (d.run_id, d.continued_to):
        facts.append(("newer run", f"{latest.run_id} ({latest.status}) is the id's latest"))
    if d.starts_at:
        facts.append(("starts", f"{local_time(d.starts_at)} (its first turn is not due yet)"))
    if d.debounce_key is not None:
        facts.append(("debounced", f"key {d.debounce_key!r}: a start with it moves the start"))
    for label, value in facts:
        out.print(f"  [dim]{label:<11}[/]{escape(value)}")
    if d.waiting_for_worker:
        of_build = "" if d.build_id is None else f" of build {escape(d.build_id)!r}"
        out.print(
            f"[bold yellow]No live worker serves this run:[/] start one{of_build} for task "
            f"queue {escape(d.task_queue)!r} that registers workflow {escape(d.workflow_type)!r}."
        )
    elif d.in_backlog:
        out.print(
            f"[yellow]Its turn waits in task queue {escape(d.task_queue)!r}'s backlog:[/] "
            f"{d.ahead} due before it (its workers are busy)."
        )
    if d.awaiting_nothing:
        out.print(
            "[bold yellow]This run waits for nothing that can come:[/] no activity, timer, "
            "child, signal or update wait is pending. Its code awaits something only workflow code "
            "could complete (an asyncio.Event, a Future), or waits to be cancelled; only "
            "cancel or terminate will move it."
        )
    out.print(f"\n[bold]Input[/]  {escape(json.dumps(d.input, ensure_ascii=False))}")
    if d.headers:
        out.print("[bold]Headers[/]")
        for name, value in sorted(d.headers.items()):
            out.print(f"  {escape(name)}: {escape(value)}")
    if d.search_attributes:
        out.print("[bold]Search attributes[/]")
        for name, value in sorted(d.search_attributes.items()):
            out.print(f"  {escape(name)} = {escape(json.dumps(value, ensure_ascii=False))}")
    if d.state:
        out.print("[bold]State[/]")
        for key, value in d.state.items():
            out.print(f"  {escape(key)} = {escape(json.dumps(value, ensure_ascii=False))}")
    if streams:
        out.print("[bold]Streams[/]  [dim](perdure stream ID KEY)[/]")
        for s in streams:
            out.print(_stream_line(s))
    pending = _pending_lines(d, paused_queues)
    if pending:
        out.print("[bold]Waiting on[/]")
        for line in pending:
            out.print(f"  • {line}")
    if d.status == "completed":
        out.print(f"[bold]Result[/] {escape(json.dumps(d.result, ensure_ascii=False))}")
    elif d.failure:
        kind, message = d.failure.get("type"), d.failure.get("message")
        out.print(f"[bold red]Failure[/] {escape(f'{kind}: {message}')}")
        if d.failure.get("traceback"):
            out.print(f"[dim]{escape(str(d.failure['traceback']).rstrip())}[/]")
    if d.last_error:
        out.print(f"[bold red]Last error[/] (the run is retried) {escape(d.last_error)}")


@app.command(epilog=EPILOG, rich_help_panel="Inspect")
def show(
    workflow_id: str = typer.Argument(..., metavar="ID", help="Workflow id."),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
    as_json: bool = JsonOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Show where a run is: what it waits on, state, streams, result or failure.

    Waiting on: pending activities (attempt, next retry, last error; or awaiting
    completion by its task token, and until when), timers with their due time,
    and the signals and updates it awaits. Streams: each one's key, how many
    values it holds, and whether it is closed.
    """

    async def work(client: Client) -> None:
        d = await client.get_handle(workflow_id, run_id).describe()
        streams = await client.get_handle(workflow_id, d.run_id).streams()
        if as_json:
            print_json({**description_json(d), "streams": [stream_info_json(s) for s in streams]})
        else:  # (a given run: is there a newer one, after a reset or a reuse of the id?)
            latest = await client.get_handle(workflow_id).describe() if run_id else None
            _show(d, latest, streams, await _paused_queues(client, d))

    run(db, work, converter=converter)


async def _paused_queues(client: Client, d: WorkflowDescription) -> frozenset[str]:
    """The task queues of the run's activities held by their limits whose
    limits pause them (max_running 0): an operator's pause, to be said so."""
    held = {a.task_queue for a in d.pending_activities if a.held_by_limits}
    found = [await client.describe_queue(queue) for queue in sorted(held)]
    return frozenset(q.task_queue for q in found if q.limits is not None and q.limits.paused)


def _event_line(event: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(float(event.get("time", 0))).astimezone()
    stamp = when.strftime("%H:%M:%S.%f")[:-3]
    kind = str(event.get("type"))
    style = "dim" if kind == "TurnStarted" else "bold" if kind.startswith("Workflow") else ""
    name = f"[{style}]{kind:<18}[/]" if style else f"{kind:<18}"
    return f"{event.get('seq', 0):>4}  {stamp}  {name}  {escape(summarize(event))}"


@app.command(epilog=EPILOG, rich_help_panel="Inspect")
def history(
    workflow_id: str = typer.Argument(..., metavar="ID", help="Workflow id."),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
    as_json: bool = typer.Option(
        False, "--json", help="Print handle.history()'s JSON array (what `perdure replay` reads)."
    ),
    follow: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="Print new events as they happen until the run closes (a run that continues "
        "as new: on into the next).",
    ),
    interval: float = typer.Option(0.5, min=0.05, help="Seconds between polls with --follow."),
    converter: Optional[str] = ConverterOption,
) -> None:
    """Print a run's event history (--follow: live, until the run closes).

    --json prints exactly the array handle.history() returns, the input of
    `perdure replay --history FILE.json`; with --follow, one event object per line,
    each run of a continue-as-new chain from its WorkflowStarted.
    """

    async def work(client: Client) -> None:
        handle = client.get_handle(workflow_id, run_id)

        def line(event: dict[str, Any]) -> str:  # payloads opened (--converter) to be read
            return _event_line(client.converter.display(event, depth=3))

        if not follow:
            events = await handle.history()
            if as_json:
                print_json(events)
            else:
                out.print(f"[dim]{'seq':>4}  {'time':<12}  {'event':<18}  detail[/]")
                for event in events:
                    out.print(line(event))
            return
        pinned = client.get_handle(workflow_id, (await handle.describe()).run_id)
        seen = 0
        with out.status(f"following {workflow_id} (Ctrl-C to stop)", spinner="dots"):
            while True:
                described = await pinned.describe()
                # Only the new events: tailing a long run costs what it adds.
                for event in await pinned.history(after_seq=seen):
                    if as_json:
                        out.out(json.dumps(event, ensure_ascii=False), highlight=False)
                    else:
                        out.print(line(event))
                    seen = max(seen, int(event.get("seq", 0)))
                if described.continued_to is not None:
                    # An agent's loop, a poller: the chain goes on in a new run.
                    pinned = client.get_handle(workflow_id, described.continued_to)
                    seen = 0
                    if not as_json:
                        out.print(f"[dim]── continued as new: run {described.continued_to} ──[/]")
                    continue
                if described.closed_at is not None:
                    return
                await asyncio.sleep(interval)

    run(db, work, converter=converter)


@app.command(epilog=EPILOG, rich_help_panel="Inspect")
def result(
    workflow_id: str = typer.Argument(..., metavar="ID", help="Workflow id."),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the run to end."),
    timeout: Optional[float] = typer.Option(
        None, min=0, help="With --wait: give up after this many seconds (exit 6)."
    ),
    as_json: bool = JsonOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Print a run's result as JSON (--wait: wait for the end).

    A run that continued as new is followed to the run that carries on. Exit 1 if
    the run failed, timed out, was cancelled or terminated; exit 6 if it is still
    running (without --wait, or when --timeout passed).
    """

    async def work(client: Client) -> int:
        handle = client.get_handle(workflow_id, run_id)
        if wait:
            with err.status(f"waiting for {workflow_id} to finish", spinner="dots"):
                try:
                    await handle.result(timeout=timeout)
                except (
                    TimeoutError,
                    WorkflowFailedError,
                    WorkflowCancelledError,
                    WorkflowTerminatedError,
                ):
                    pass  # described below
        d = await final_description(client, workflow_id, run_id)
        outcome = outcome_json(d)
        if as_json:
            print_json(outcome)
        elif d.status == "completed":
            print_json(d.result)
        code = 0 if d.status == "completed" else EXIT_FAILED if outcome["done"] else EXIT_RUNNING
        if code and not as_json:
            if outcome["done"]:
                why = d.failure or {}
                detail = f"{why.get('type')}: {why.get('message')}" if why else ""
                err.print(f"[red]{escape(d.id)} {d.status}[/] {escape(detail)}".rstrip())
            else:
                hint = "not finished within the timeout" if wait else "use --wait to wait"
                err.print(f"{escape(d.id)} is still {status_text(d.status)} ({hint})")
        return code

    run(db, work, converter=converter)
