"""``perdure build``: the worker builds of a task queue (docs/versioning.md):
list them, choose the current one (a rollback, or forward again), let
another ramp beside it (a share of the new runs), and move an open run to
another build or unpin it.

Imports the public API, typer, rich, the build id's rule
(``perdure._checks``) and a build's JSON (``perdure.server._query``); exit
codes come from ``_operator.run``.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from perdure._checks import BadName, build_problem
from perdure.cli._app import DbOption, app
from perdure.cli._operator import (
    EPILOG,
    EXIT_CONFLICT,
    EXIT_USAGE,
    JsonOption,
    RunIdOption,
    fail,
    local_time,
    print_json,
    run,
)
from perdure.client import BuildInfo, Client
from perdure.server._query import build_json

out = Console(highlight=False, soft_wrap=True)
build_app = typer.Typer(
    help="Worker builds: which takes a task queue's new runs, and the runs each holds.",
    epilog=EPILOG,
    no_args_is_help=True,
)
app.add_typer(build_app, name="build", rich_help_panel="Control")


def a_build(value: Optional[str]) -> Optional[str]:
    """A BUILD as typed: a usage error for one no build can have (empty,
    over 200 bytes, a NUL)."""
    if value is None:
        return None
    problem = build_problem("a build id", value)
    if problem is not None:
        raise typer.BadParameter(problem)
    return value


QueueArg = typer.Argument(..., metavar="TASK_QUEUE", help="Task queue.")


@build_app.command("list")
def list_(
    task_queue: Optional[str] = typer.Argument(
        None,
        metavar="[TASK_QUEUE]",
        show_default=False,
        help="Task queue (left out: every queue that has had a build).",
    ),
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """The builds a task queue's workers have had, the current first."""

    async def work(client: Client) -> None:
        if task_queue is None:
            every = await client.builds_by_queue()
            if as_json:
                print_json(
                    [
                        {"task_queue": q, "builds": [build_json(b) for b in found]}
                        for q, found in every.items()
                    ]
                )
                return
            if not every:
                out.print("no task queue has had a worker with a build")
            for queue, found in every.items():
                _show(queue, found, titled=True)
            return
        try:
            found = await client.builds(task_queue)
        except BadName as exc:
            fail(EXIT_USAGE, str(exc))
        if as_json:
            print_json([build_json(b) for b in found])
        elif not found:
            out.print(f"task queue {escape(task_queue)!r} has had no worker with a build")
        else:
            _show(task_queue, found)

    run(db, work)


def _show(task_queue: str, found: list[BuildInfo], titled: bool = False) -> None:
    """One queue's builds as a table, and what an operator should know of them."""
    table = Table(
        "BUILD", "CURRENT", "RAMP", "PROMOTED AT", "OPEN RUNS", "LIVE WORKERS",
        title=f"task queue {escape(task_queue)}" if titled else None,
    )  # fmt: skip
    for b in found:
        table.add_row(
            escape(b.build_id),
            "yes" if b.current else "",
            "" if b.ramp is None else share(b.ramp),
            "never" if b.promoted_at is None else local_time(b.promoted_at),
            str(b.open_runs),
            str(b.workers),
        )
    out.print(table)
    if any(not b.current and b.ramp is None and not b.open_runs and b.workers for b in found):
        out.print("[dim]A build with no open run left can be shut down.[/]")
    for b in found:
        if b.open_runs and not b.workers:  # (the 3 a.m. case: runs wait for nobody)
            out.print(
                f"[yellow]Build {escape(b.build_id)} has {b.open_runs} open run(s) and no "
                f"live worker:[/] they wait. Start a worker of it (perdure worker ... "
                f"--build-id {escape(b.build_id)}), or move them (perdure build move ID "
                f"BUILD, after perdure replay ... --build-id {escape(b.build_id)})"
            )


@build_app.command("set-current")
def set_current(
    task_queue: str = QueueArg,
    build_id: str = typer.Argument(..., metavar="BUILD", help="A build id.", callback=a_build),
    db: Optional[str] = DbOption,
) -> None:
    """Make BUILD the current build: its workers take the queue's new runs."""

    async def work(client: Client) -> None:
        try:
            await client.set_current_build(task_queue, build_id)
        except BadName as exc:
            fail(EXIT_USAGE, str(exc))
        out.print(
            f"Build {escape(build_id)} is the current build of task queue "
            f"{escape(task_queue)}: its workers take the queue's new runs from their next "
            f"heartbeat; the other builds' workers finish the runs pinned to them"
        )
        if not _live(await client.builds(task_queue), build_id):
            out.print(
                f"[yellow]No live worker of build {escape(build_id)} serves the queue yet:[/] "
                f"its new runs wait for one (perdure worker ... --build-id {escape(build_id)})"
            )

    run(db, work)


@build_app.command("ramp")
def ramp(
    task_queue: str = QueueArg,
    build_id: Optional[str] = typer.Argument(
        None,
        metavar="BUILD",
        show_default=False,
        help="The build to ramp (or --clear).",
        callback=a_build,
    ),
    percent: Optional[float] = typer.Argument(
        None,
        metavar="PERCENT",
        show_default=False,
        help="Its share of the queue's new runs, 0 to 100.",
    ),
    clear: bool = typer.Option(
        False, "--clear", help="Stop the ramp: the current build takes every new run."
    ),
    db: Optional[str] = DbOption,
) -> None:
    """Let BUILD take PERCENT of the queue's new runs beside the current build.

    To try a release on a share of the traffic before making it current
    (set-current): each workflow id falls on one side for good (a hash of
    it), so raising the share only adds ids to BUILD. One build ramps at a
    time: this replaces the one that did. Exit 5 if the queue has no
    current build, or BUILD is it.
    """
    if clear and (build_id is not None or percent is not None):
        raise typer.BadParameter("give BUILD and PERCENT, or --clear, not both", param_hint="BUILD")
    if not clear and build_id is None:
        raise typer.BadParameter(
            "give the build to ramp and its PERCENT, or --clear", param_hint="BUILD"
        )
    if not clear and percent is None:
        raise typer.BadParameter(
            "give BUILD's share of the queue's new runs, from 0 to 100", param_hint="PERCENT"
        )

    async def work(client: Client) -> None:
        try:
            await client.set_ramping_build(task_queue, build_id, percent)
        except BadName as exc:
            fail(EXIT_USAGE, str(exc))
        except ValueError as exc:  # (the queue's builds do not allow it now)
            fail(EXIT_CONFLICT, str(exc))
        if build_id is None or percent is None:
            out.print(
                f"No build ramps on task queue {escape(task_queue)}: its current build's "
                f"workers take all its new runs from their next heartbeat"
            )
            return
        out.print(
            f"Build {escape(build_id)} ramps on task queue {escape(task_queue)}: it takes "
            f"{share(percent)} of the queue's new runs from the current build's workers' next "
            f"heartbeat (set-current makes it take them all)"
        )
        if not _live(await client.builds(task_queue), build_id):
            out.print(
                f"[yellow]No live worker of build {escape(build_id)} serves the queue yet:[/] "
                f"its share of new runs waits for one (perdure worker ... --build-id "
                f"{escape(build_id)})"
            )

    run(db, work)


def share(percent: float) -> str:
    """A ramp's share as the table and the sentences show it: 30%, 12.5%."""
    return f"{percent:g}%"


def _live(found: list[BuildInfo], build_id: str) -> bool:
    return any(b.build_id == build_id and b.workers for b in found)


@build_app.command("move", epilog=EPILOG)
def move(
    workflow_id: str = typer.Argument(..., metavar="ID", help="Workflow id."),
    build_id: Optional[str] = typer.Argument(
        None,
        metavar="BUILD",
        show_default=False,
        help="The build to pin the run to (or --unpin).",
        callback=a_build,
    ),
    unpin: bool = typer.Option(
        False,
        "--unpin",
        help="Pin the run to no build: the queue's current build takes it on (and pins it "
        "again if its workflow type is pinned).",
    ),
    db: Optional[str] = DbOption,
    run_id: Optional[str] = RunIdOption,
) -> None:
    """Pin an open run to a build, or unpin it (exit 5 if it has ended).

    Its next turns go to that build's workers only (a turn in flight on
    another is run again there): for a run whose build's workers are gone,
    or a fix deployed as a new build. A run that continued as new is
    followed to the run that carries on.
    """
    if build_id is not None and unpin:
        raise typer.BadParameter("give BUILD or --unpin, not both", param_hint="BUILD")
    if build_id is None and not unpin:
        raise typer.BadParameter("give the build to pin the run to, or --unpin", param_hint="BUILD")

    async def work(client: Client) -> None:
        try:
            await client.get_handle(workflow_id, run_id).set_build_id(build_id)
        except BadName as exc:
            fail(EXIT_USAGE, str(exc))
        if build_id is None:
            out.print(f"Run of {escape(workflow_id)} unpinned: its queue's current build takes it")
        else:
            out.print(f"Run of {escape(workflow_id)} moved to build {escape(build_id)}")

    run(db, work)
