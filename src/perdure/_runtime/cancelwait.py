"""What cancelling workflow code's await of an activity or of a child does
(its cancellation type, as Temporal's), and the wait that
"wait_cancellation_completed" makes: the cancelled await raises only once
what it awaited has ended. No I/O; the standard library only."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

__all__ = ["CANCELLATION_TYPES", "CancellationType", "check_cancellation_type", "wait_out"]

# "try_cancel" (the default): ask it to stop, and go on at once;
# "wait_cancellation_completed": ask it to stop, and go on once it has ended;
# "abandon": do not ask (an activity runs on, its outcome ignored; a child
# runs on, as its parent_close_policy "abandon" lets it).
CancellationType = Literal["try_cancel", "wait_cancellation_completed", "abandon"]
CANCELLATION_TYPES: tuple[str, ...] = ("try_cancel", "wait_cancellation_completed", "abandon")


def check_cancellation_type(value: object) -> None:
    """ValueError, naming the choices, unless ``value`` is one (or None)."""
    if value is not None and value not in CANCELLATION_TYPES:
        raise ValueError(
            f"cancellation_type must be one of {', '.join(map(repr, CANCELLATION_TYPES))} "
            f"(or None: 'try_cancel'), not {value!r}"
        )


async def wait_out(settled: asyncio.Future[Any] | None) -> None:
    """Wait until ``settled`` (what ends the awaited activity or child) is
    done, whatever it holds, through any further cancellation of the
    waiting code (None: nothing to wait for)."""
    while settled is not None and not settled.done():
        try:
            await asyncio.shield(settled)
        except asyncio.CancelledError:
            continue  # (cancelled again while it waits: it still waits)
        except Exception:
            break  # (its outcome: a failure, a cancelled one most likely)
