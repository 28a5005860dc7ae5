"""``perdure start``, ``signal``, ``update``, ``cancel``, ``terminate``, ``reset``
``migrate`` and ``delete-closed``: the commands that change something.

Imports the public API, typer, rich, the search attributes' rules
(``perdure._attributes``: ``start --attr``), the run filters' options
(``_filters``) and the batch form of cancel, terminate and reset (``_batch``:
the id left out, the runs the filters match); exit codes come from
``_operator.run`` (``update``'s own two, a rejection and no answer in time,
from the command). ``migrate`` alone may create a database; the others refuse
a missing SQLite file.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal, Optional

import typer
from rich.console import Console
from rich.markup import escape

from perdure._attributes import AttributeValue, checked_attributes, parse_terms, typed_value
from perdure._checks import BadName
from perdure._starts import ID_CONFLICTS
from perdure.cli._app import ConverterOption, DbOption, PriorityOption, app
from perdure.cli._batch import LimitOption, YesOption, act_on_matching, is_batch
from perdure.cli._debounce_opts import (
    DebounceKeyOption,
    DebounceMaxOption,
    DebounceOption,
    debounce_of,
)
from perdure.cli._filters import (
    BatchAttrOption,
    BatchBuildOption,
    BatchRetryingOption,
    BatchSearchOption,
    BatchSinceOption,
    BatchStatusOption,
    BatchTypeOption,
    BatchUntilOption,
    IdOrFiltersArg,
    OpenStatusOption,
    run_filter,
)
from perdure.cli._operator import (
    EPILOG,
    EXIT_NO_ANSWER,
    EXIT_REJECTED,
    EXIT_USAGE,
    JsonOption,
    RunIdOption,
    database_url,
    err,
    fail,
    local_time,
    parse_json,
    print_json,
    run,
    shown_url,
    sqlite_file,
)
from perdure.cli._schedule_cmd import parse_span
from perdure.client import Client, WorkflowHandle
from perdure.errors import UpdateRejectedError, UpdateTimeoutError
from perdure.server._query import rejected_update_json

out = Console(highlight=False, soft_wrap=True)

IdArg = typer.Argument(..., metavar="ID", help="Workflow id.")
ReasonOption = typer.Option(None, "--reason", "-r", help="Why (recorded in the history).")
ArgsOption = typer.Option(
    [], "--arg", "-a", help="A positional argument as JSON; repeat for more: --arg '\"o-1\"'."
)
AttrsOption = typer.Option(
    [],
    "--attr",
    metavar="NAME=VALUE",
    help="A search attribute the run can be found by (perdure list --attr); repeat for more. "
    "VALUE is a string, unless it reads as a JSON integer, number or boolean: amount=120 "
    "stores the int 120, ratio=0.5 the float, vip=true True, customer=c-42 the string "
    "'c-42'; in JSON quotes it is the string inside: order='\"1001\"'. (Filters match "
    "them as text either way: --attr amount=120 finds 120 and '120'.)",
)


def typed_attributes(terms: list[str]) -> dict[str, AttributeValue]:
    """``--attr NAME=VALUE`` terms as a start's search attributes (see
    ``typed_value``); a usage error (exit 2) for a bad term."""
    try:
        found = parse_terms(terms, "--attr")
        # (Checked again once typed: JSON quotes may hold what text may not, "\u0000".)
        return checked_attributes({name: typed_value(value) for name, value in found.items()})
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command(epilog=EPILOG, rich_help_panel="Control")
def start(
    workflow: str = typer.Argument(..., help="Workflow type name (as @workflow.defn names it)."),
    args: list[str] = ArgsOption,
    workflow_id: Optional[str] = typer.Option(None, "--id", help="Workflow id (default: a UUID)."),
    task_queue: str = typer.Option("default", "--task-queue", "-q", help="Task queue."),
    id_conflict: Optional[str] = typer.Option(
        None,
        help="If the id is taken: fail (the default), use_existing, retry_failed (a new run"
        " unless the latest is running or completed) or terminate_existing.",
    ),
    attrs: list[str] = AttrsOption,
    priority: Optional[int] = PriorityOption,
    fairness_key: Optional[str] = typer.Option(
        None,
        "--fairness-key",
        help="Whose work the run is (a tenant, a customer): within a priority, its queues"
        " serve the keys with due work in turn. Its activities and children inherit it.",
    ),
    debounce_key: Optional[str] = DebounceKeyOption,
    debounce: Optional[str] = DebounceOption,
    debounce_max: Optional[str] = DebounceMaxOption,
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Start a workflow by name. A worker serving the task queue runs it."""
    values = [parse_json(a, f"--arg #{i + 1}") for i, a in enumerate(args)]
    attributes = typed_attributes(attrs)
    spans = debounce_of(
        debounce_key, debounce, debounce_max, ("--id", workflow_id), ("--id-conflict", id_conflict)
    )
    id_conflict = id_conflict or "fail"
    if id_conflict not in ID_CONFLICTS:
        raise typer.BadParameter(
            f"must be {', '.join(ID_CONFLICTS[:-1])} or {ID_CONFLICTS[-1]}",
            param_hint="--id-conflict",
        )
    if not workflow.strip():
        raise typer.BadParameter("must not be empty", param_hint="WORKFLOW")
    if not task_queue:
        raise typer.BadParameter("must not be empty", param_hint="--task-queue")
    if workflow_id == "":
        raise typer.BadParameter(
            "must not be empty (leave it out for a new UUID)", param_hint="--id"
        )

    async def work(client: Client) -> None:
        asked = time.time()
        if spans is None:
            handle = await client.start(
                workflow,
                *values,
                id=workflow_id,
                task_queue=task_queue,
                id_conflict=id_conflict,
                search_attributes=attributes or None,
                priority=priority,
                fairness_key=fairness_key,
            )
        else:
            handle = await client.debounce(
                workflow,
                *values,
                key=spans.key,
                delay=spans.delay,
                max_delay=spans.max_delay,
                task_queue=task_queue,
                search_attributes=attributes or None,
                priority=priority,
                fairness_key=fairness_key,
            )
        if as_json:
            print_json({"id": handle.id, "run_id": handle.run_id})
            return
        if id_conflict in ("use_existing", "retry_failed"):
            # The id's latest run, if it was not this start's: made before it
            # (a run this start makes has this process's time, from now on).
            found = await handle.describe()
            if found.created_at.timestamp() < asked:
                out.print(
                    f"Found [bold]{escape(handle.id)}[/] (run {handle.run_id}, {found.status},"
                    f" started {local_time(found.created_at)}): not started again"
                    f" (--id-conflict {id_conflict})"
                )
                return
        out.print(
            f"{'Started' if spans is None else 'Debounced'} [bold]{escape(workflow)}[/] id "
            f"[bold]{escape(handle.id)}[/] (run {handle.run_id}) on task queue "
            f"{escape(task_queue)}"
            + ("" if priority is None else f" at priority {priority}")
            + ("" if fairness_key is None else f" for key {escape(fairness_key)}")
            + ("" if spans is None else f": {spans.text()}")
        )
        out.print(
            f"[dim]perdure show {escape(handle.id)}   perdure result {escape(handle.id)} --wait[/]"
        )

    run(db, work, converter=converter)


@app.command(epilog=EPILOG, rich_help_panel="Control")
def signal(
    workflow_id: str = IdArg,
    name: str = typer.Argument(..., help="Signal name (what workflow.wait_signal waits for)."),
    payload: Optional[str] = typer.Option(None, "--payload", "-p", help="Payload as JSON."),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
    converter: Optional[str] = ConverterOption,
) -> None:
    """Send a signal to an open run (exit 5 if it has ended)."""
    value: Any = None if payload is None else parse_json(payload, "--payload")

    async def work(client: Client) -> None:
        try:
            await client.get_handle(workflow_id, run_id).signal(name, value)
        except ValueError as exc:  # (a name the client refuses: perdure.update:..., say)
            fail(EXIT_USAGE, str(exc))
        out.print(f"Signal [bold]{escape(name)}[/] delivered to {escape(workflow_id)}")

    run(db, work, converter=converter)


def _an_update_id(value: str | None) -> str | None:
    if value == "":
        raise typer.BadParameter("must not be empty (leave it out for a new id)")
    return value


@app.command(epilog=EPILOG, rich_help_panel="Control")
def update(
    workflow_id: str = IdArg,
    name: str = typer.Argument(
        ..., metavar="NAME", help="Update name (what workflow.wait_update takes)."
    ),
    payload: Optional[str] = typer.Argument(
        None, metavar="PAYLOAD_JSON", show_default=False, help="Payload as JSON (default: null)."
    ),
    update_id: Optional[str] = typer.Option(
        None,
        "--update-id",
        help="The request's id: run the command again with it to get the first one's answer "
        "(it is not delivered twice). Default: a new id, named if no answer comes in time.",
        callback=_an_update_id,
    ),
    timeout: float = typer.Option(
        60.0, "--timeout", min=0, help="Seconds to wait for the answer (then exit 8)."
    ),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
    as_json: bool = typer.Option(
        False, "--json", help='Print {"id", "update_id", "result"} (or the rejection) as JSON.'
    ),
    converter: Optional[str] = ConverterOption,
) -> None:
    """Send an update to a run and print the workflow's answer as JSON.

    The workflow takes it with workflow.wait_update(NAME) and answers it with
    request.reply(value) or request.reject(message). Exit 7 if it rejected the
    update (its message on stderr); 8 if no answer came within --timeout (the
    request stays queued: run the command again with the --update-id it names);
    5 if the run has ended, or ends without answering. --json prints
    {"id", "update_id", "result"} (rejected: "rejected" and "message"; no
    answer in time: "timed_out").
    """
    value: Any = None if payload is None else parse_json(payload, "PAYLOAD_JSON")
    if not name.strip():
        raise typer.BadParameter("must not be empty", param_hint="NAME")

    async def work(client: Client) -> None:
        try:
            handle = client.get_handle(workflow_id, run_id)
            sent = await handle.start_update(name, value, update_id=update_id)
            answer = await sent.result(timeout)
        except BadName as exc:  # (an id, name or update id the client refuses)
            fail(EXIT_USAGE, str(exc))
        except UpdateRejectedError as exc:
            if as_json:
                print_json(rejected_update_json(workflow_id, exc))
                raise typer.Exit(EXIT_REJECTED) from None
            fail(EXIT_REJECTED, str(exc))
        except UpdateTimeoutError as exc:
            if as_json:
                print_json({"id": workflow_id, "update_id": exc.update_id, "timed_out": True})
                raise typer.Exit(EXIT_NO_ANSWER) from None
            fail(
                EXIT_NO_ANSWER,
                f"workflow {workflow_id!r} did not answer update {name!r} within {timeout:g}s; "
                f"the request stays queued",
                f"for its answer, run this again with --update-id {exc.update_id}",
            )
        if as_json:
            print_json({"id": workflow_id, "update_id": sent.id, "result": answer})
        else:
            print_json(answer)

    run(db, work, converter=converter)


@app.command(epilog=EPILOG, rich_help_panel="Control")
def cancel(
    workflow_id: Optional[str] = IdOrFiltersArg,
    reason: Optional[str] = ReasonOption,
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
    """Ask an open run to cancel (its code sees CancelledError and may compensate).

    With filters instead of an ID: every open run they match (each workflow
    id's latest), listed first; --yes cancels them (exit 5 if any failed).
    """
    chosen = run_filter(status, workflow_type, since, until, search, retrying, attrs, build_id)
    _end("cancel", workflow_id, run_id, chosen, reason, db, as_json, limit, yes)


@app.command(epilog=EPILOG, rich_help_panel="Control")
def terminate(
    workflow_id: Optional[str] = IdOrFiltersArg,
    reason: Optional[str] = ReasonOption,
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
    """End an open run at once, without running any more of its code.

    With filters instead of an ID: every open run they match (each workflow
    id's latest), listed first; --yes terminates them (exit 5 if any failed).
    """
    chosen = run_filter(status, workflow_type, since, until, search, retrying, attrs, build_id)
    _end("terminate", workflow_id, run_id, chosen, reason, db, as_json, limit, yes)


def _end(
    action: Literal["cancel", "terminate"],
    workflow_id: Optional[str],
    run_id: Optional[str],
    chosen: Any,
    reason: Optional[str],
    db: Optional[str],
    as_json: bool,
    limit: Optional[int],
    yes: bool,
) -> None:
    """``cancel`` or ``terminate``: one run by its id, or (``chosen``: the
    filters) every run they match."""
    one_run = {"--run-id": run_id is not None}
    if is_batch(action, workflow_id, chosen, limit=limit, yes=yes, one_run_only=one_run):
        act_on_matching(action, chosen, limit=limit, yes=yes, reason=reason, db=db, as_json=as_json)
        return
    assert workflow_id is not None  # (is_batch: an id, or filters)
    ident = workflow_id

    async def work(client: Client) -> None:
        handle = client.get_handle(ident, run_id)
        if action == "cancel":
            await handle.cancel(reason)
            said = f"Cancellation requested for {escape(ident)}"
        else:
            await handle.terminate(reason)
            said = f"Terminated {escape(ident)}"
        if as_json:
            print_json({"id": ident, "action": action})
            return
        out.print(said)

    run(db, work)


@app.command(epilog=EPILOG, rich_help_panel="Control")
def reset(
    workflow_id: Optional[str] = IdOrFiltersArg,
    to_event: Optional[int] = typer.Option(
        None,
        "--to-event",
        "-e",
        min=1,
        help="Go back to the turn that recorded this event (its seq in `perdure history`). "
        "Default: the latest turn that took no failure and no cancel request.",
    ),
    reason: Optional[str] = ReasonOption,
    list_points: bool = typer.Option(
        False, "--list-points", help="Only list the events a reset may go back to."
    ),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
    as_json: bool = JsonOption,
    status: Optional[str] = BatchStatusOption,
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
    """Run a workflow again from a point of its latest run, in a new run.

    With filters instead of an ID: every run they match (each workflow id's
    latest), each from its default point, listed first; --yes resets them
    (exit 5 if any failed): perdure reset --status failed --type NAME --since 2h.
    """
    chosen = run_filter(status, workflow_type, since, until, search, retrying, attrs, build_id)
    one_run = {
        "--run-id": run_id is not None,
        "--to-event": to_event is not None,
        "--list-points": list_points,
    }
    if is_batch("reset", workflow_id, chosen, limit=limit, yes=yes, one_run_only=one_run):
        act_on_matching(
            "reset", chosen, limit=limit, yes=yes, reason=reason, db=db, as_json=as_json
        )
        return
    assert workflow_id is not None  # (is_batch: an id, or filters)
    ident = workflow_id

    async def work(client: Client) -> None:
        old = client.get_handle(ident, run_id)
        if list_points:
            await _list_points(old, as_json)
            return
        new, at_seq = await old._reset(to_event, reason)
        if as_json:
            print_json({"id": new.id, "run_id": new.run_id, "at_seq": at_seq})
            return
        out.print(
            f"Reset [bold]{escape(ident)}[/]: run {new.run_id} goes on from event "
            f"{at_seq}; the events before it are kept, not run again"
        )
        out.print(f"[dim]perdure show {escape(ident)}   perdure history {escape(ident)}[/]")

    run(db, work)


async def _list_points(handle: WorkflowHandle[Any], as_json: bool) -> None:
    found = await handle.reset_points()
    if as_json:
        print_json({"points": found.points, "default": found.default})
        return
    out.print(
        f"Events a reset of [bold]{escape(handle.id)}[/] may go back to (the first of each "
        f"turn where nothing it had started was outstanding):"
    )
    for seq in found.points:
        mark = "  [bold]← default[/]" if seq == found.default else ""
        out.print(f"  {seq:>6}  {found.types.get(seq, '?')}{mark}")
    if found.default is None:
        out.print("No default: every turn took a failure or a cancel request; name one.")
    out.print(f"[dim]perdure reset {escape(handle.id)} --to-event N[/]")


async def schema_version(client: Client) -> int | None:
    """The database's schema version. The Client has no accessor for it yet; both
    stores answer ``schema_version()``, which is not (yet) part of the Store interface."""
    query = getattr(client.store, "schema_version", None)
    return None if query is None else int(await query())


@app.command(epilog=EPILOG, rich_help_panel="Operate")
def migrate(db: Optional[str] = DbOption, as_json: bool = JsonOption) -> None:
    """Create the database, or migrate its schema to this perdure's version."""
    url = database_url(db)
    path = sqlite_file(url)
    created = path is not None and not os.path.exists(path)

    found: list[int | None] = []

    async def work(client: Client) -> None:
        found.append(await schema_version(client))  # connecting was migrating

    shown = shown_url(url)  # (its password, if any, masked)
    with err.status(f"connecting to {shown} and migrating the schema", spinner="dots"):
        run(url, work, create=True)
    version = found[0]
    if as_json:
        print_json({"url": shown, "schema_version": version, "created": created})
    else:
        what = "Created database" if created else "Database ready"
        out.print(f"{what}: {escape(shown)} (schema version {version})")


@app.command("delete-closed", epilog=EPILOG, rich_help_panel="Operate")
def delete_closed(
    older_than: str = typer.Option(
        ..., "--older-than", help="Runs that closed longer ago than this: 30d, 12h, 90m."
    ),
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete runs closed before an age, with their histories and streams."""
    # (A retention job: open runs, and closed runs whose child still runs, stay.)
    age = parse_span(older_than, "--older-than")

    async def work(client: Client) -> None:
        deleted = await client.delete_closed_runs(age)
        if as_json:
            print_json({"deleted": deleted, "older_than_seconds": age.total_seconds()})
        else:
            out.print(f"Deleted {deleted} closed run(s) older than {escape(older_than)}")

    run(db, work)
