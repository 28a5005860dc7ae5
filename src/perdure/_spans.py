"""A span of time as the CLI and messages write it: ``90s``, ``15m``,
``2h``, ``1d``. Imports nothing of perdure."""

from __future__ import annotations

from datetime import timedelta

__all__ = ["span_text"]


def span_text(span: timedelta) -> str:
    """A span in the largest unit that divides it: 90s, 15m, 2h, 1d."""
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
