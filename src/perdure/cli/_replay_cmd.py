"""``perdure replay``: check recorded histories against the current workflow code.

The check to run before deploying a change: every history given (``--history``
files, or the runs in ``--db``) must replay against the workflows of MODULES.
Imports :mod:`perdure.testing` (the Replayer), typer, rich and the CLI plumbing.
Exit codes: 0 all compatible, 1 a run does not replay, 2 usage error, 4 the
database cannot be used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from perdure._converter import DataConverter
from perdure.cli._app import ConverterOption, ModulesArg, app, collect, load_module
from perdure.cli._filters import build_filter
from perdure.cli._operator import EXIT_USAGE, converter_of, err, fail, print_json, run, when_option
from perdure.client import Client
from perdure.testing._replayer import Replayer, ReplayResult

out = Console(highlight=False, soft_wrap=True)

EXIT_INCOMPATIBLE = 1

HistoryOption = typer.Option(
    None,
    "--history",
    "-H",
    help="A history as JSON (what `perdure history ID --json` prints); repeatable.",
)

_PREFIX = re.compile(r"^non-determinism in workflow .*?, (turn \d+: )", re.DOTALL)


@app.command(rich_help_panel="Deploy")
def replay(
    ctx: typer.Context,
    modules: list[str] = ModulesArg,
    history: Optional[list[Path]] = HistoryOption,
    db: Optional[str] = typer.Option(
        None, "--db", envvar="PERDURE_DB", help="Replay the runs in this database."
    ),
    workflow: Optional[str] = typer.Option(
        None, "--workflow", "-w", help="With --db: only runs of this workflow type."
    ),
    since: Optional[str] = typer.Option(
        None,
        help="With --db: only runs started at or after this ISO time (local if no offset) "
        "or age (15m, 2h, 3d).",
    ),
    build_id: Optional[str] = typer.Option(
        None,
        "--build-id",
        metavar="BUILD",
        callback=build_filter,
        help="With --db: only runs pinned to this worker build (before moving them to this "
        "code: perdure build move).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per run."),
    converter: Optional[str] = ConverterOption,
) -> None:
    """Check that the workflows in MODULES can still replay recorded histories.

    Replays each history against the current code and reports every run it can
    no longer replay, with its first mismatching command.

    Exit status: 0 all runs compatible, 1 some run is not, 2 usage error, 4 database error.
    """
    source = ctx.get_parameter_source("db")  # COMMANDLINE, or ENVIRONMENT ($PERDURE_DB)
    db_given = source is not None and source.name == "COMMANDLINE"
    if history and db_given:
        fail(EXIT_USAGE, "give --history FILE or --db URL, not both")
    if not history and not db:
        fail(EXIT_USAGE, "nothing to replay: give --history FILE.json or --db URL")
    if history and (workflow is not None or since is not None or build_id is not None):
        fail(
            EXIT_USAGE,
            "--workflow, --since and --build-id select runs in --db; they do not apply to"
            " --history",
        )
    replayer = _replayer(modules, converter_of(converter))
    if history:
        results = [(str(path), _replay_file(replayer, path)) for path in history]
        raise typer.Exit(_report(results, as_json))
    if workflow is not None and workflow not in replayer.workflows:
        fail(
            EXIT_USAGE,
            f"--workflow {workflow!r} is not among the workflows of {', '.join(modules)} "
            f"(found: {', '.join(sorted(replayer.workflows))})",
        )
    since_time = when_option(since, "--since")

    async def work(client: Client) -> int:
        found = await replayer.replay_store(
            client.store, workflow=workflow, since=since_time, build_id=build_id
        )
        if not found and not as_json:
            kinds = workflow or ", ".join(sorted(replayer.workflows))
            pinned = f" pinned to build {build_id}" if build_id else ""
            err.print(
                f"no runs of {escape(kinds)}{escape(pinned)} to replay in this database",
                soft_wrap=True,
            )
        return _report([(None, r) for r in found], as_json)

    run(db, work)


def _replayer(modules: list[str], converter: Optional[DataConverter]) -> Replayer:
    workflows, _ = collect([load_module(m) for m in modules])
    if not workflows:
        fail(EXIT_USAGE, f"no workflows found in {', '.join(modules)}")
    try:
        return Replayer(workflows, converter=converter)
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc), "load one version of each workflow: the one to deploy")


def _replay_file(replayer: Replayer, path: Path) -> ReplayResult:
    try:
        return replayer.replay_file(path)
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))


def _report(results: Sequence[tuple[str | None, ReplayResult]], as_json: bool) -> int:
    bad = [(source, r) for source, r in results if not r.ok]
    if as_json:
        print_json([_json(source, r) for source, r in results])
        return EXIT_INCOMPATIBLE if bad else 0
    for source, result in bad:
        where = f"  [dim]{escape(source)}[/]" if source else ""
        out.print(
            f"[bold red]INCOMPATIBLE[/] [bold]{escape(result.workflow_id)}[/] "
            f"({escape(result.workflow_type)}, run {escape(result.run_id)}){where}"
        )
        detail = _PREFIX.sub(r"\1", result.error or "")
        out.print(f"  {escape(detail)}")
    for _, result in results:
        for warning in result.warnings:
            out.print(
                f"[bold yellow]OTHER ARGUMENTS[/] [bold]{escape(result.workflow_id)}[/] "
                f"(run {escape(result.run_id)}): {escape(warning)}"
            )
    kinds = len({r.workflow_type for _, r in results})
    summary = (
        f"replayed {len(results)} run(s) of {kinds} workflow type(s): "
        f"{len(results) - len(bad)} compatible, {len(bad)} incompatible"
    )
    out.print(f"[bold red]{summary}[/]" if bad else f"[bold green]{summary}[/]")
    return EXIT_INCOMPATIBLE if bad else 0


def _json(source: str | None, result: ReplayResult) -> dict[str, Any]:
    return {
        "workflow_id": result.workflow_id,
        "run_id": result.run_id,
        "workflow_type": result.workflow_type,
        "ok": result.ok,
        "error": result.error,
        "error_type": result.error_type,
        "warnings": list(result.warnings),
        "source": source,
    }
