"""The typer application and helpers shared by the command modules."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import typer

from perdure.activity import ActivityFunction
from perdure.workflow import definition_of

EPILOG = (
    "Exit codes: 0 ok; 1 the workflow failed, timed out, was cancelled or terminated (result); "
    "2 usage error; 3 workflow not found; 4 database error; "
    "5 conflict (run already closed, or id taken); 6 still running (result)."
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


def load_module(spec: str) -> ModuleType:
    """Import ``pkg.module`` or a ``path/to/file.py``."""
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).resolve()
        if not path.exists():
            raise typer.BadParameter(f"no such file: {spec}")
        sys.path.insert(0, str(path.parent))
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise typer.BadParameter(f"cannot import {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import module {spec!r}: {exc}") from exc


def collect(modules: list[ModuleType]) -> tuple[list[Any], list[Any]]:
    """Every workflow and activity defined at the top level of the modules."""
    workflows: dict[int, Any] = {}
    activities: dict[int, Any] = {}
    for module in modules:
        for value in vars(module).values():
            if definition_of(value) is not None:
                workflows[id(value)] = value
            elif isinstance(value, ActivityFunction):
                activities[id(value)] = value
    return list(workflows.values()), list(activities.values())
