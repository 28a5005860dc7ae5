"""``perdure worker``: serve the workflows and activities of modules."""

from __future__ import annotations

from typing import Optional

import typer

from perdure.cli._app import ConverterOption, DbOption, InterceptorOption, ModulesArg, app
from perdure.cli._worker_run import serve


@app.command()
def worker(
    modules: list[str] = ModulesArg,
    db: Optional[str] = DbOption,
    task_queue: str = typer.Option("default", "--task-queue", "-q"),
    lease_timeout: float = typer.Option(30.0, help="Seconds before a dead worker's tasks move."),
    poll_interval: float = typer.Option(0.2, help="Idle poll interval in seconds."),
    max_activities: int = typer.Option(100, help="Concurrent activities."),
    max_workflow_tasks: int = typer.Option(
        100, help="Concurrent workflow turns (more help bursts of wake-ups)."
    ),
    cache_size: int = typer.Option(
        10_000, help="Workflow instances kept in memory between turns (LRU)."
    ),
    drain_timeout: float = typer.Option(
        30.0, help="Seconds a stopping worker lets its running turns and activities finish."
    ),
    deadlock_timeout: float = typer.Option(
        2.0,
        help="Seconds workflow code may run without awaiting before it is interrupted "
        "and its turn retried (a busy loop, a blocking call); 0: never.",
    ),
    log_level: str = typer.Option("INFO", help="Logging level."),
    identity: Optional[str] = typer.Option(
        None,
        help="A stable name for this worker (host:pid:random by default). A worker "
        "restarted with the same identity takes its dead predecessor's leases at once.",
    ),
    build_id: Optional[str] = typer.Option(
        None,
        "--build-id",
        envvar="PERDURE_BUILD_ID",
        metavar="BUILD",
        help="This worker's build: a release of the code (a git commit, a version; at "
        "most 200 bytes). The runs of pinned workflow types it runs stay on this build's "
        "workers; the newest build takes the queue's new runs (docs/versioning.md).",
    ),
    tune_gc: bool = typer.Option(
        True,
        "--tune-gc/--no-tune-gc",
        help="Raise the garbage collector's thresholds while serving (more throughput "
        "with thousands of workflows in flight; see docs/operations.md).",
    ),
    processes: int = typer.Option(
        1,
        help="Worker processes to run (one core each), identities IDENTITY/1 ... "
        "IDENTITY/N; one that dies is started again and takes its leases back.",
    ),
    loop: str = typer.Option(
        "asyncio",
        help="The event loop: asyncio, uvloop (pip install 'perdure[uvloop]'), or auto "
        "(uvloop if it is installed; see docs/operations.md).",
    ),
    converter: Optional[str] = ConverterOption,
    interceptor: Optional[list[str]] = InterceptorOption,
) -> None:
    """Run a worker for every workflow and activity defined in MODULES."""
    # (What runs is perdure.cli._worker_run, also without typer: see there.)
    code = serve(
        modules,
        db,
        task_queue=task_queue,
        lease_timeout=lease_timeout,
        poll_interval=poll_interval,
        max_activities=max_activities,
        max_workflow_tasks=max_workflow_tasks,
        cache_size=cache_size,
        drain_timeout=drain_timeout,
        deadlock_timeout=deadlock_timeout,
        log_level=log_level,
        identity=identity,
        build_id=build_id,
        tune_gc=tune_gc,
        processes=processes,
        loop=loop,
        converter=converter,
        interceptors=interceptor,
    )
    if code:
        raise typer.Exit(code)
