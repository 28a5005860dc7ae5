"""The ``perdure`` command line. A surface: uses only the public API.

One module per command group, each registering its commands on ``app``:
``_worker_cmd`` (worker), ``_demo_cmd`` (demo), ``_inspect_cmd`` (list,
show, history, result), ``_stream_cmd`` (stream), ``_control_cmd`` (start,
signal, update, cancel, terminate, reset, migrate, delete-closed),
``_options_cmd`` (set-priority, set-fairness-key, update-options),
``_replay_cmd`` (replay), ``_server_cmd`` (server), ``_schedule_cmd``
(schedule create/list/show/pause/unpause/trigger/delete), ``_queue_cmd``
(queue list/show/limit/unlimit, stats), ``_build_cmd`` (build
list/set-current/move), ``_activity_cmd`` (activity
complete/fail/heartbeat/report-cancellation/update-options; it imports
``_activity_retries``: activity pause/unpause/reset).
Helpers that register no command: ``_operator`` (exit codes, output),
``_filters`` (the run filters of list and of the batch forms), ``_batch``
(the batch form of cancel/terminate/reset/update-options), ``_activity_batch`` (that of
activity pause/unpause/reset), ``_activity_target`` (the ``activity``
group, how its commands name an activity), ``_activity_options`` (an
activity's options in a line).
``--db`` defaults to ``$PERDURE_DB``, else ``sqlite:///perdure.db``.

``main()`` imports only the module of the command it runs: ``perdure worker``
is what restarts after a crash, and every module it skips (the others' rich
tables, their parameters for typer to build) shortens the time until the
restarted worker takes its runs back. ``perdure --help``, or a name it does not
know, loads them all. ``perdure worker`` itself (but for ``--help``) runs
without typer at all: ``_worker_run``.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

__all__ = ["COMMANDS", "app", "main"]

# Which module registers each top-level command (tests check the table is whole).
COMMANDS = {
    "worker": "_worker_cmd",
    "demo": "_demo_cmd",
    "list": "_inspect_cmd",
    "count": "_inspect_cmd",
    "show": "_inspect_cmd",
    "history": "_inspect_cmd",
    "result": "_inspect_cmd",
    "stream": "_stream_cmd",
    "start": "_control_cmd",
    "signal": "_control_cmd",
    "update": "_control_cmd",
    "cancel": "_control_cmd",
    "set-priority": "_options_cmd",
    "set-fairness-key": "_options_cmd",
    "update-options": "_options_cmd",
    "terminate": "_control_cmd",
    "reset": "_control_cmd",
    "migrate": "_control_cmd",
    "delete-closed": "_control_cmd",
    "replay": "_replay_cmd",
    "server": "_server_cmd",
    "schedule": "_schedule_cmd",
    "queue": "_queue_cmd",
    "stats": "_queue_cmd",
    "build": "_build_cmd",
    "activity": "_activity_cmd",
}


def _load(modules: set[str]) -> typer.Typer:
    from perdure.cli._app import app

    for module in sorted(modules):
        importlib.import_module(f"perdure.cli.{module}")
    return app


def __getattr__(name: str) -> Any:
    # ``perdure.cli.app``: the whole application, every command registered.
    if name == "app":
        return _load(set(COMMANDS.values()))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    # The command is the first argument (the application has no options of
    # its own that take a value).
    args = sys.argv[1:]
    if args[:1] == ["worker"] and "--help" not in args:
        # What restarts after a crash starts without typer (see _worker_run).
        from perdure.cli._worker_run import main as worker

        sys.exit(worker(args[1:]))
    module = COMMANDS.get(args[0]) if args else None
    app = _load({module} if module is not None else set(COMMANDS.values()))
    app()
