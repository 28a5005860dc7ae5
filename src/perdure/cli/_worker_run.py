"""``perdure worker`` without typer: what a restarted worker runs.

A worker is the process that restarts after a crash, and the time until it
takes its runs back is the time its workflows stand still. typer builds a
pydantic adapter for every parameter of the command it runs, and importing
pydantic for that took 50-100 ms of a worker's start on the project's
machine (`python -X importtime`), a quarter of the time from exec to the
first step. So ``perdure.cli.main`` parses the worker's options here, with
argparse, and runs it; ``perdure worker --help`` still goes through typer
(``_worker_cmd``), which documents the same options.
tests/surfaces/test_cli.py holds the two to the same names and defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from perdure._worker.options import check_worker_options
from perdure._worker.watchdog import DEFAULT_DEADLOCK_TIMEOUT
from perdure.cli._modules import (
    ModuleLoadError,
    collect,
    load_converter,
    load_interceptor,
    load_module,
)
from perdure.errors import PerdureError

__all__ = ["main", "parser", "serve"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # the CLI's exit code for usage errors
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    """The options of ``perdure worker`` (the same as its typer command's)."""
    p = _Parser(prog="perdure worker", add_help=False)
    p.add_argument("modules", nargs="+")
    p.add_argument("--db", default=None)
    p.add_argument("--task-queue", "-q", default="default")
    p.add_argument("--lease-timeout", type=float, default=30.0)
    p.add_argument("--poll-interval", type=float, default=0.2)
    p.add_argument("--max-activities", type=int, default=100)
    p.add_argument("--max-workflow-tasks", type=int, default=100)
    p.add_argument("--cache-size", type=int, default=10_000)
    p.add_argument("--drain-timeout", type=float, default=30.0)
    p.add_argument("--deadlock-timeout", type=float, default=DEFAULT_DEADLOCK_TIMEOUT)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--identity", default=None)
    p.add_argument("--build-id", default=os.environ.get("PERDURE_BUILD_ID") or None)
    p.add_argument("--tune-gc", dest="tune_gc", action="store_true", default=True)
    p.add_argument("--no-tune-gc", dest="tune_gc", action="store_false")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--loop", choices=LOOPS, default="asyncio")
    p.add_argument("--converter", default=os.environ.get("PERDURE_CONVERTER") or None)
    p.add_argument("--interceptor", dest="interceptors", action="append", default=None)
    return p


# The event loops a worker may run on: asyncio's own (the default), uvloop
# (an error if it is missing), or uvloop if it is installed ("auto", as
# uvicorn chooses).
LOOPS = ("asyncio", "uvloop", "auto")


def _runner(loop: str) -> tuple[str, Callable[[Coroutine[Any, Any, None]], None]]:
    """The named loop's ``run`` (as asyncio.run), and its name; ImportError
    for ``uvloop`` when it is not installed."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return "uvloop", uvloop.run
    return "asyncio", asyncio.run


# The worker's options as this command spells them (see check_worker_options).
_FLAGS = {
    "max_concurrent_activities": "--max-activities",
    "max_concurrent_workflow_tasks": "--max-workflow-tasks",
    "lease_timeout": "--lease-timeout",
    "poll_interval": "--poll-interval",
    "cache_size": "--cache-size",
    "drain_timeout": "--drain-timeout",
    "deadlock_timeout": "--deadlock-timeout",
    "task_queue": "--task-queue",
    "identity": "--identity",
    "build_id": "--build-id",
}


def main(argv: list[str]) -> int:
    """Run ``perdure worker`` with these arguments; the exit code."""
    args = parser().parse_intermixed_args(argv)
    return serve(**vars(args))  # (the options' names are serve's parameters)


def serve(
    modules: list[str],
    db: str | None,
    *,
    task_queue: str,
    lease_timeout: float,
    poll_interval: float,
    max_activities: int,
    log_level: str,
    identity: str | None,
    tune_gc: bool,
    build_id: str | None = None,
    processes: int = 1,
    loop: str = "asyncio",
    max_workflow_tasks: int = 100,
    cache_size: int = 10_000,
    drain_timeout: float = 30.0,
    deadlock_timeout: float = DEFAULT_DEADLOCK_TIMEOUT,
    converter: str | None = None,
    interceptors: Sequence[str] | None = None,
) -> int:
    """Serve every workflow and activity defined in ``modules`` until
    stopped (``db`` None: ``$PERDURE_DB``, else the default); the exit code
    (2: nothing to serve, or a module that does not load; 1: a perdure
    error, such as a database that cannot be opened). ``processes`` > 1:
    that many worker processes, each ``perdure worker`` with these options
    (see _supervise). ``loop``: one of LOOPS. ``deadlock_timeout`` 0: never
    interrupt workflow code. ``converter``: MODULE:NAME of the DataConverter
    (codecs, keys) its clients write payloads with; ``interceptors``: the
    MODULE:NAME of each Interceptor its activities run in. ``build_id``: the
    worker's build, or None (the parser's default is ``$PERDURE_BUILD_ID``);
    an empty one is refused, as a deploy's unset variable."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if processes < 1:
        print(f"error: --processes must be at least 1, not {processes}", file=sys.stderr)
        return 2
    if build_id == "":  # (`--build-id "$BUILD"` with BUILD unset must not run unversioned)
        print(
            "error: --build-id must not be empty (leave it out, and $PERDURE_BUILD_ID "
            "unset, for a worker without a build)",
            file=sys.stderr,
        )
        return 2
    try:
        check_worker_options(
            max_concurrent_activities=max_activities,
            max_concurrent_workflow_tasks=max_workflow_tasks,
            lease_timeout=lease_timeout,
            poll_interval=poll_interval,
            cache_size=cache_size,
            drain_timeout=drain_timeout,
            task_queue=task_queue,
            identity=identity or None,
            deadlock_timeout=deadlock_timeout or None,
            build_id=build_id,
            spell=_FLAGS.__getitem__,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        loaded = [load_module(m) for m in modules]
        payloads = None if converter is None else load_converter(converter)
        around = [load_interceptor(spec) for spec in interceptors or ()]
    except ModuleLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        loop_name, run_loop = _runner(loop)
    except ImportError:
        print(
            "error: --loop uvloop needs the uvloop package (pip install 'perdure[uvloop]')",
            file=sys.stderr,
        )
        return 2
    workflows, activities = collect(loaded)
    if not workflows and not activities:
        print(f"error: no workflows or activities found in {', '.join(modules)}", file=sys.stderr)
        return 2
    if processes > 1:
        from perdure.cli._supervise import supervise

        base = identity or f"{socket.gethostname()}:{os.getpid()}"
        options = [
            *("--task-queue", task_queue, "--lease-timeout", repr(lease_timeout)),
            *("--poll-interval", repr(poll_interval), "--max-activities", str(max_activities)),
            *("--max-workflow-tasks", str(max_workflow_tasks), "--cache-size", str(cache_size)),
            *("--drain-timeout", repr(drain_timeout)),
            *("--deadlock-timeout", repr(deadlock_timeout)),
            *("--log-level", log_level, "--tune-gc" if tune_gc else "--no-tune-gc"),
            *("--loop", loop),
            *(("--db", db) if db is not None else ()),
            *(("--build-id", build_id) if build_id is not None else ()),
            *(("--converter", converter) if converter is not None else ()),
            *(arg for spec in interceptors or () for arg in ("--interceptor", spec)),
        ]
        worker = [sys.executable, "-m", "perdure", "worker", *modules, *options]
        return supervise(lambda k: [*worker, "--identity", f"{base}/{k}"], processes)

    from perdure._worker.worker import Worker
    from perdure.client import Client

    async def run() -> None:
        client = await Client.connect(db, tune_gc=tune_gc, converter=payloads, interceptors=around)
        try:
            w = Worker(
                client,
                workflows,
                activities,
                task_queue=task_queue,
                lease_timeout=lease_timeout,
                poll_interval=poll_interval,
                max_concurrent_activities=max_activities,
                max_concurrent_workflow_tasks=max_workflow_tasks,
                identity=identity,
                cache_size=cache_size,
                drain_timeout=drain_timeout,
                tune_gc=tune_gc,
                deadlock_timeout=deadlock_timeout or None,
                build_id=build_id,
            )
            names = sorted(w.workflows) + sorted(w.activities)
            build = "" if build_id is None else f"build {build_id}, "
            logging.getLogger("perdure.cli").info(
                "serving %s (%sevent loop: %s)", ", ".join(names), build, loop_name
            )
            await w.run()
        finally:
            await client.close()

    try:
        run_loop(run())
    except PerdureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
