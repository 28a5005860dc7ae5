"""Named crash points for the chaos tests: ``crash_point(name)`` SIGKILLs this process.

The worker calls :func:`crash_point` at the moments of its commit path where a crash is
most interesting (just before a turn commits, just after, around an activity's
completion, after firing timers). It does nothing unless the environment variable
``PERDURE_CRASH_AT`` names that point, read once at import: ``name`` kills at the first
hit, ``name:N`` at the N-th; several points may be given, separated by commas. With the
variable unset, :func:`crash_point` is an empty function. Imports only the standard library.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_POINTS", "ENV_VAR", "STARTER_POINTS", "crash_point", "parse_spec"]

ENV_VAR = "PERDURE_CRASH_AT"

CRASH_POINTS = (
    "start.after_commit",  # a start that carried its first turn is durable; nothing ran yet
    "turn.before_commit",  # a turn's commands are computed; its transaction has not run
    "turn.before_handover",  # a new run for the ramping build is claimed; not handed over yet
    "turn.after_commit",  # the turn is durable; the instance is not cached yet
    "activity.before_complete",  # the activity returned; its completion is not written
    "activity.after_complete",  # the completion is in the run's inbox
    "activity.before_await",  # raise_complete_async(): the task does not await completion yet
    "timers.after_fire",  # due timers were moved into their runs' inboxes
)
"""The points the worker calls, in the order a step goes through them."""

STARTER_POINTS = ("start.after_commit",)
"""Points hit only in a process that starts runs next to its own worker (a
``perdure worker`` process starts none: the chaos tests arm the others)."""


def parse_spec(spec: str) -> dict[str, int]:
    """``"a,b:3"`` -> ``{"a": 1, "b": 3}``: each named point and the hit that kills.
    Raises ValueError for an unknown point or a bad count, so a typo in a chaos run
    fails loudly instead of never crashing."""
    wanted: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        if name not in CRASH_POINTS:
            raise ValueError(
                f"{ENV_VAR}: unknown crash point {name!r} (known: {', '.join(CRASH_POINTS)})"
            )
        hit = int(count) if count else 1
        if hit < 1:
            raise ValueError(f"{ENV_VAR}: hit count of {name!r} must be at least 1, not {hit}")
        wanted[name] = hit
    return wanted


_WANTED = parse_spec(os.environ.get(ENV_VAR, ""))
_hits: dict[str, int] = {}


def _crash_point(name: str, when: bool = True) -> None:
    if not when or name not in _WANTED:
        return
    _hits[name] = hit = _hits.get(name, 0) + 1
    if hit == _WANTED[name]:
        # One write(2), unbuffered: the line is in the log even though we die next.
        os.write(2, f"perdure: crash point {name} (hit {hit}): SIGKILL\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)


def _no_crash_point(name: str, when: bool = True) -> None:
    """Crash points are off (``PERDURE_CRASH_AT`` is unset): nothing to do."""


crash_point = _crash_point if _WANTED else _no_crash_point
"""``crash_point(name, when=True)``: SIGKILL this process if ``PERDURE_CRASH_AT`` asks for
this hit of ``name``. ``when=False`` does not count as a hit (for a point that only
matters when something happened, such as a timer firing)."""
