"""A fork server for the surface tests' ``perdure`` commands.

Each command the tests run used to be ``python -m perdure ARGS`` from
scratch: an interpreter, then perdure's, typer's and rich's imports, about
0.36 s of CPU before the command did anything, over six hundred commands a
suite (a third of its time on two cores). This process imports all of that
once; for each command it forks a child, which is then a real process of
its own (its own arguments, environment, working folder, stdout and stderr
files, exit status) that runs perdure's ``__main__`` as ``python -m
perdure`` does (``runpy``) and exits as the interpreter would (the status
of its SystemExit, an uncaught exception's traceback and 1, its threads
joined and atexit handlers run), but without tearing its modules down.
What differs from a fresh interpreter is only that the modules were
imported before the command's environment was set: no module of perdure's
command line reads the environment at import.

Protocol, one JSON line each way, on stdin and on the stdout this process
had when it started (the children get /dev/null there):

- request: ``{"commands": [{"args", "env", "cwd", "out", "err"}, ...],
  "timeout": seconds}``; the commands run concurrently.
- reply: ``{"codes": [status, ...], "timed_out": bool}``, each status as
  ``subprocess.Popen.returncode`` gives it (negative: the signal); past the
  timeout the children left are killed.

It ends when its stdin does (the test process is gone). surface_helpers.cli
and cli_all are its client; ``PERDURE_TEST_CLI=exec`` runs every command
as a fresh interpreter instead.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import runpy
import signal
import sys
import threading
import time
from typing import Any, NoReturn

import perdure.cli

# Imported once here: every command module (the attribute loads them), each
# store, and what typer imports for a command's parameters (pydantic) and
# for a usage error. (A module a typer or psycopg here lacks is skipped.)
perdure.cli.app  # noqa: B018
for _name in (
    "perdure._store.sqlite",
    "perdure._store.postgres",
    "typer._adapters",
    "typer.rich_utils",
):
    try:
        importlib.import_module(_name)
    except ImportError:  # pragma: no cover
        pass


def wait_all(pids: list[int], timeout: float) -> tuple[list[int], bool]:
    """Each child's status, in order; past ``timeout`` the rest are killed."""
    codes: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    timed_out = False
    while len(codes) < len(pids):
        if time.monotonic() >= deadline and not timed_out:
            timed_out = True
            for pid in pids:
                if pid not in codes:
                    os.kill(pid, signal.SIGKILL)
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        if len(codes) < len(pids):
            time.sleep(0.002)  # (portable; a command takes tens of milliseconds)
    return [codes[pid] for pid in pids], timed_out


def become(command: dict[str, Any]) -> None:
    """In a forked child: take the command's files, environment and folder,
    then run ``python -m perdure ARGS``."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    for fd, path in ((1, command["out"]), (2, command["err"])):
        file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(file, fd)
        os.close(file)
    os.close(null)
    sys.stdin = open(os.devnull)  # noqa: SIM115 (the process's own, to its end)
    os.environ.clear()
    os.environ.update(command["env"])
    os.chdir(command["cwd"])
    sys.argv = ["perdure", *command["args"]]
    runpy.run_module("perdure", run_name="__main__", alter_sys=True)


def leave(command: dict[str, Any]) -> NoReturn:
    """In a forked child: run the command, then exit as the interpreter
    would (the status of its SystemExit, or an uncaught exception's
    traceback and 1; its threads joined, atexit handlers run, output
    flushed), without tearing down the modules: that would write to every
    page this process shares with the server (about 0.15 s)."""
    try:
        become(command)
        code = 0
    except SystemExit as exc:
        code = exit_status(exc.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_status(code: object) -> int:
    """The status of ``sys.exit(code)``, as the interpreter gives it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def serve(requests: Any, replies: Any) -> None:
    """Answer requests until they end."""
    for line in requests:
        request = json.loads(line)
        pids = []
        for command in request["commands"]:
            pid = os.fork()
            if pid == 0:
                replies.close()
                leave(command)
            pids.append(pid)
        codes, timed_out = wait_all(pids, request["timeout"])
        replies.write(json.dumps({"codes": codes, "timed_out": timed_out}) + "\n")
        replies.flush()


if __name__ == "__main__":
    # The replies go to the stdout this process started with; its fd 1 is
    # then /dev/null, which is what a child starts from.
    replies = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    gc.freeze()  # (a child's collections then leave the shared pages alone)
    serve(sys.stdin, replies)
