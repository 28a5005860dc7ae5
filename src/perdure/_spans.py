"""Spans of time: as the CLI and messages write them (``90s``, ``15m``,
``2h``, ``1d``), and as read back from their recorded seconds. Imports
nothing of perdure."""

from __future__ import annotations

from datetime import timedelta

__all__ = ["span_of", "span_text"]

# timedelta.max as seconds is 86399999999999.999999, which a float rounds up
# to 86400000000000.0: one past what a timedelta holds.
_MAX_SECONDS = timedelta.max.total_seconds()


def span_text(span: timedelta) -> str:
    """A span in the largest unit that divides it: 90s, 15m, 2h, 1d."""
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def span_of(seconds: float) -> timedelta:
    """The timedelta whose ``total_seconds()`` gave ``seconds``: the float of
    ``timedelta.max`` (a retry policy's "no cap") reads back as
    ``timedelta.max``, where ``timedelta(seconds=...)`` overflows."""
    if seconds == _MAX_SECONDS:
        return timedelta.max
    return timedelta(seconds=seconds)
