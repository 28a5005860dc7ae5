"""The ``perdure`` command line. A surface: uses only the public API.

Commands so far: ``worker`` (serve the workflows and activities of modules)
and ``demo`` (the order-fulfilment crash demo). ``--db`` defaults to
``$PERDURE_DB``, else ``sqlite:///perdure.db``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import typer

from perdure.activity import ActivityFunction
from perdure.errors import PerdureError
from perdure.workflow import definition_of

ModulesArg = typer.Argument(..., help="Modules (or .py files) to load.")

app = typer.Typer(
    name="perdure",
    help="perdure: durable workflows on SQLite (and soon PostgreSQL).",
    no_args_is_help=True,
    add_completion=False,
)

DbOption = typer.Option(None, "--db", envvar="PERDURE_DB", help="Database URL.")


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


@app.command()
def worker(
    modules: list[str] = ModulesArg,
    db: Optional[str] = DbOption,
    task_queue: str = typer.Option("default", "--task-queue", "-q"),
    lease_timeout: float = typer.Option(30.0, help="Seconds before a dead worker's tasks move."),
    poll_interval: float = typer.Option(0.2, help="Idle poll interval in seconds."),
    max_activities: int = typer.Option(100, help="Concurrent activities."),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Run a worker for every workflow and activity defined in MODULES."""
    from perdure._worker.worker import Worker
    from perdure.client import Client

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loaded = [load_module(m) for m in modules]
    workflows, activities = collect(loaded)
    if not workflows and not activities:
        typer.echo(f"error: no workflows or activities found in {', '.join(modules)}", err=True)
        raise typer.Exit(2)

    async def main() -> None:
        client = await Client.connect(db)
        try:
            w = Worker(
                client,
                workflows,
                activities,
                task_queue=task_queue,
                lease_timeout=lease_timeout,
                poll_interval=poll_interval,
                max_concurrent_activities=max_activities,
            )
            names = sorted(w.workflows) + sorted(w.activities)
            logging.getLogger("perdure.cli").info("serving %s", ", ".join(names))
            await w.run()
        finally:
            await client.close()

    try:
        asyncio.run(main())
    except PerdureError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def demo(
    folder: Optional[str] = typer.Option(None, help="Where to keep the demo database."),
) -> None:
    """The order-fulfilment demo: a worker is SIGKILLed mid-way, the order still
    completes, and the card is charged exactly once."""
    from perdure.demo.run import run_demo

    raise typer.Exit(run_demo(folder))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
