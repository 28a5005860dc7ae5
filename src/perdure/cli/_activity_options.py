"""A pending activity's options in one line, as ``perdure show`` prints them
under each activity and ``perdure activity update-options`` after a change:
its timeouts (and when schedule_to_close ends it), then its retry policy;
and how an attempt under a reset ends, as ``perdure show`` and ``perdure
activity reset`` say it. Plain text: the caller escapes it for rich. Imports the public views,
``_spans`` and ``_operator``'s local time.
"""

from __future__ import annotations

from perdure._spans import span_text
from perdure.cli._operator import local_time
from perdure.client import PendingActivityInfo
from perdure.retry import RetryPolicy

__all__ = ["options_text", "retry_text"]


def options_text(a: PendingActivityInfo) -> str | None:
    """``start_to_close 30s, schedule_to_close 1h (ends 2024-05-01 12:00:05),
    heartbeat 10s; retry every 1s x2 up to 100s, 5 attempts at most``
    (local time); None if the description holds none of its options."""
    timeouts = []
    if a.start_to_close_timeout is not None:
        timeouts.append(f"start_to_close {span_text(a.start_to_close_timeout)}")
    if a.schedule_to_close_timeout is not None:
        ends = "" if a.deadline is None else f" (ends {local_time(a.deadline)})"
        timeouts.append(f"schedule_to_close {span_text(a.schedule_to_close_timeout)}{ends}")
    if a.heartbeat_timeout is not None:
        timeouts.append(f"heartbeat {span_text(a.heartbeat_timeout)}")
    if a.retry_policy is None:
        return ", ".join(timeouts) or None
    return f"{', '.join(timeouts) or 'no timeout'}; {retry_text(a.retry_policy)}"


def retry_text(policy: RetryPolicy) -> str:
    """``retry every 1s x2 up to 100s, 5 attempts at most`` (backoff 1: a
    fixed interval, no cap to say; ``no retry`` for one attempt at most)."""
    if policy.max_attempts == 1:
        return "no retry (1 attempt at most)"
    every = f"retry every {span_text(policy.initial_interval)}"
    if policy.backoff != 1.0:
        every += f" x{policy.backoff:g} up to {span_text(policy.max_interval)}"
    if policy.max_attempts is None:
        return f"{every}, no limit on attempts"
    return f"{every}, {policy.max_attempts} attempts at most"


def reset_ends(a: PendingActivityInfo) -> str:
    """How the attempt a reset met ends, up to "the next" (attempt, which
    the caller says when and how starts)."""
    if a.awaiting_completion:
        return (
            "stops at its next heartbeat, once its completer reports the cancellation (if it "
            "sends none, it runs on until it fails or is lost); then the next"
        )
    return (
        "stops at its next heartbeat (if it sends none, it runs on until it fails or is "
        "lost); then the next"
    )
