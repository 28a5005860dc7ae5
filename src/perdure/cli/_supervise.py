"""``perdure worker --processes N``: N worker processes under one command.

One Python process runs its own code on one core, so a machine with several
cores serves more with several worker processes (docs/operations.md). This
runs them: each child is ``perdure worker`` with the same options, one
process, and an identity of its own that stays the same when the child is
started again (``IDENTITY/1`` ... ``IDENTITY/N``). So a child that dies (a
SIGKILL, the OOM killer) is started again at once and takes back its own
leases, as a worker restarted under its identity does.

- SIGTERM or SIGINT: every child is asked to drain (SIGTERM), and the
  command ends when they have, with the worst exit code among them.
- A child that fails within ``START_GRACE`` seconds of its start (exits
  with an error code: a module that does not load, a database that cannot
  be opened) is not started again in a loop: every child is stopped and the
  command exits with its code. One killed by a signal is started again,
  however soon.
- On Linux each child is told to drain if the supervising process dies
  (``PR_SET_PDEATHSIG``), so a SIGKILL of the command leaves no worker behind
  for long.

No asyncio and no threads: the supervisor waits for its children with
``os.waitpid``. Imports only the standard library.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

__all__ = ["START_GRACE", "supervise"]

log = logging.getLogger("perdure.cli")

START_GRACE = 5.0  # a child that exits sooner than this failed to start
RESTART_PAUSE = 0.5  # before a child that ran for a while is started again
DRAIN_WAIT = 60.0  # for the children left when the supervisor fails

_PR_SET_PDEATHSIG = 1


def _child_setup() -> Callable[[], None] | None:
    """What a child runs between fork and exec: on Linux, ask the kernel to
    send it SIGTERM when its parent dies. (prctl is looked up here, in the
    parent: nothing between fork and exec may load a library.)"""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return setup


_Child = tuple[int, "subprocess.Popen[bytes]", float]


def _terminate(pid: int) -> None:
    """Ask a worker to drain. (A signal may come just after the loop reaped
    the pid and before it forgot it: that pid is gone, nothing to do.)"""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def supervise(command: Callable[[int], Sequence[str]], count: int) -> int:
    """Run ``command(k)`` for k in 1..count, each started again if it dies
    after ``START_GRACE``; the exit code (see the module docstring)."""
    # pid -> (k, its process, when it started). Only the loop below reaps a
    # child (os.waitpid), so a pid here is alive or a zombie, never reused:
    # signalling it with os.kill is safe (Popen.send_signal would reap it).
    children: dict[int, _Child] = {}
    stopping = False
    worst = 0
    setup = _child_setup()

    def start(k: int) -> None:
        # Each child in a process group of its own: a terminal's Ctrl-C
        # reaches this process only, which passes one SIGTERM on. (Sent to
        # the whole group as well, it made two stop requests in each child,
        # and a second ends a worker's drain at once.)
        process = subprocess.Popen(list(command(k)), preexec_fn=setup, process_group=0)
        children[process.pid] = (k, process, time.monotonic())
        if stopping:  # (a signal came while it started: stop_all did not see it)
            _terminate(process.pid)

    def stop_all(signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _terminate(pid)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for k in range(1, count + 1):
            start(k)
        while children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid not in children:
                continue
            k, process, began = children.pop(pid)
            process.returncode = code = os.waitstatus_to_exitcode(status)
            if stopping:
                if code != 0:  # (a negative code: ended by a signal, not drained)
                    worst = max(worst, code if code > 0 else 1)
                continue
            ran = time.monotonic() - began
            if ran < START_GRACE and code > 0:  # (not a signal: it gave up by itself)
                log.error("worker %d failed to start (exit code %d); stopping", k, code)
                worst = code
                stop_all()
                continue
            log.warning(
                "worker %d ended (exit code %d) after %.1fs; starting it again", k, code, ran
            )
            time.sleep(RESTART_PAUSE)
            if not stopping:
                start(k)
    finally:
        # Left here by an error (a child that could not be executed): stop
        # the others too, and wait for them to drain.
        for pid in children:
            _terminate(pid)
        for _, process, _ in children.values():
            try:
                process.wait(timeout=DRAIN_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return worst
