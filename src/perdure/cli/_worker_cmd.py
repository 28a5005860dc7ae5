"""``perdure worker``: serve the workflows and activities of modules."""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

import typer

from perdure.cli._app import DbOption, ModulesArg, app, collect, load_module
from perdure.errors import PerdureError


@app.command()
def worker(
    modules: list[str] = ModulesArg,
    db: Optional[str] = DbOption,
    task_queue: str = typer.Option("default", "--task-queue", "-q"),
    lease_timeout: float = typer.Option(30.0, help="Seconds before a dead worker's tasks move."),
    poll_interval: float = typer.Option(0.2, help="Idle poll interval in seconds."),
    max_activities: int = typer.Option(100, help="Concurrent activities."),
    log_level: str = typer.Option("INFO", help="Logging level."),
    identity: Optional[str] = typer.Option(
        None,
        help="A stable name for this worker (host:pid:random by default). A worker "
        "restarted with the same identity takes its dead predecessor's leases at once.",
    ),
    tune_gc: bool = typer.Option(
        True,
        "--tune-gc/--no-tune-gc",
        help="Raise the garbage collector's thresholds while serving (more throughput "
        "with thousands of workflows in flight; see docs/operations.md).",
    ),
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
                identity=identity,
                tune_gc=tune_gc,
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
