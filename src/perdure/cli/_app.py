"""The typer application and helpers shared by the command modules (and the
options more than one takes: ``--db``, ``--converter``, ``--priority``, whose
range comes from ``perdure._history``)."""

from __future__ import annotations

from types import ModuleType

import typer

from perdure._history import DEFAULT_PRIORITY, PRIORITIES
from perdure.cli import _modules
from perdure.cli._modules import collect

__all__ = [
    "EPILOG",
    "ConverterOption",
    "DbOption",
    "ModulesArg",
    "PriorityOption",
    "a_priority",
    "app",
    "collect",
    "load_module",
]

EPILOG = (
    "Exit codes: 0 ok; 1 the workflow failed, timed out, was cancelled or terminated (result); "
    "2 usage error; 3 workflow not found, or the token's attempt can no longer end (activity); "
    "4 database error; "
    "5 conflict (run already closed, or id taken; with --yes, a run the batch could not act "
    "on); 6 still running (result); 7 the workflow rejected the update (update); 8 no answer "
    "within --timeout (update), or the stream did not end within it (stream --follow); 9 the "
    "workflow cancelled the attempt (activity heartbeat)."
)

app = typer.Typer(
    name="perdure",
    help="perdure: durable workflows on SQLite or PostgreSQL.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _commands() -> None:
    # A callback keeps ``app`` a group of commands even when ``perdure.cli.main``
    # registered only the one it runs (typer runs a lone command directly).
    pass


DbOption = typer.Option(None, "--db", envvar="PERDURE_DB", help="Database URL.")
ModulesArg = typer.Argument(..., help="Modules (or .py files) to load.")
ConverterOption = typer.Option(
    None,
    "--converter",
    envvar="PERDURE_CONVERTER",
    metavar="MODULE:NAME",
    help="The DataConverter payloads were written with (its codecs and keys): NAME in "
    "MODULE is one, or a function that returns one.",
)

InterceptorOption = typer.Option(
    None,
    "--interceptor",
    metavar="MODULE:NAME",
    help="A perdure.interceptors.Interceptor around its starts (and a worker's "
    "activities; tracing: see docs/operations.md): NAME in MODULE is one, or a function "
    "or class that returns one. Repeatable.",
)


def load_module(spec: str) -> ModuleType:
    """Import ``pkg.module`` or a ``path/to/file.py`` (a usage error if not)."""
    try:
        return _modules.load_module(spec)
    except _modules.ModuleLoadError as exc:
        raise typer.BadParameter(str(exc)) from exc


def a_priority(value: int | None) -> int | None:
    """A ``--priority`` (or PRIORITY) as typed: a usage error if out of range."""
    if value is not None and value not in PRIORITIES:
        raise typer.BadParameter(
            f"must be from {PRIORITIES[0]} (first) to {PRIORITIES[-1]} (last), "
            f"{DEFAULT_PRIORITY} being the default; not {value}"
        )
    return value


PriorityOption = typer.Option(
    None,
    "--priority",
    metavar="1-5",
    show_default=False,
    callback=a_priority,
    help=f"The run's place in its queues' backlogs: {PRIORITIES[0]} (first) to "
    f"{PRIORITIES[-1]} (last); default {DEFAULT_PRIORITY}. Its activities and children "
    "inherit it.",
)
