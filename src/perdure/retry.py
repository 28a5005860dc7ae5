"""RetryPolicy: how often and how fast a failed activity is tried again. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from perdure._spans import span_of

__all__ = ["RetryPolicy"]

DEFAULT_MAX_RATIO = 100  # max_interval's default, in initial_intervals (Temporal's)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts.

    The delay before attempt ``n + 1`` (after attempt ``n`` failed) is
    ``initial_interval * backoff ** (n - 1)``, capped at ``max_interval``
    (by default 100 times ``initial_interval``, as in Temporal: 100 s for
    the default 1 s). ``max_attempts=None`` retries without limit (the Temporal default);
    ``max_attempts=1`` means no retry. ``non_retryable`` lists exception types
    (classes, or names as strings) that fail the activity at once; a name also
    matches an ``ApplicationError``'s ``type``, as in Temporal.
    """

    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    # None: 100 x initial_interval; set to that in __post_init__, so that
    # the field always holds a timedelta once the policy is made.
    max_interval: timedelta = None  # type: ignore[assignment]
    max_attempts: int | None = None
    non_retryable: tuple[type[BaseException] | str, ...] = field(default=())

    def __post_init__(self) -> None:
        # Refused here, where the policy is written, not when an attempt fails:
        # a NaN backoff had made the retry's due time NULL (the store refused
        # the failure, and the activity waited for its lease to run out, again
        # and again), and a lone name in non_retryable was read letter by letter.
        if self.max_interval is None and isinstance(self.initial_interval, timedelta):
            try:
                default = self.initial_interval * DEFAULT_MAX_RATIO
            except OverflowError:  # (an initial_interval past timedelta.max / 100)
                default = timedelta.max
            object.__setattr__(self, "max_interval", default)
        for name in ("initial_interval", "max_interval"):
            value = getattr(self, name)
            if not isinstance(value, timedelta):
                raise TypeError(
                    f"RetryPolicy.{name} must be a timedelta, not {type(value).__name__} {value!r}"
                )
        if self.initial_interval <= timedelta(0):
            raise ValueError("RetryPolicy.initial_interval must be positive")
        backoff = self.backoff
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)):
            raise TypeError(
                f"RetryPolicy.backoff must be a number, not {type(backoff).__name__} {backoff!r}"
            )
        if not math.isfinite(backoff) or backoff < 1.0:
            raise ValueError(f"RetryPolicy.backoff must be a finite number >= 1.0, not {backoff!r}")
        if self.max_interval < self.initial_interval:
            raise ValueError(
                f"RetryPolicy.max_interval ({self.max_interval}) must be >= initial_interval "
                f"({self.initial_interval}); leave it out for 100 x initial_interval"
            )
        attempts = self.max_attempts
        if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int)):
            raise TypeError(
                f"RetryPolicy.max_attempts must be an int (or None for no limit), "
                f"not {type(attempts).__name__} {attempts!r}"
            )
        if attempts is not None and attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1 (or None for no limit)")
        object.__setattr__(self, "non_retryable", _error_types(self.non_retryable))

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = self.max_interval.total_seconds()
        try:
            raw = self.initial_interval.total_seconds() * self.backoff ** max(0, attempt - 1)
        except OverflowError:  # unlimited retries reach huge exponents eventually
            return cap
        return min(raw, cap)

    def names_non_retryable(self) -> list[str]:
        return [t if isinstance(t, str) else t.__name__ for t in self.non_retryable]

    def allows_another(self, attempt: int) -> bool:
        return self.max_attempts is None or attempt < self.max_attempts

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as recorded in ActivityScheduled events."""
        return {
            "initial_interval": self.initial_interval.total_seconds(),
            "backoff": self.backoff,
            "max_interval": self.max_interval.total_seconds(),
            "max_attempts": self.max_attempts,
            "non_retryable": self.names_non_retryable(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(
            initial_interval=span_of(float(data["initial_interval"])),
            backoff=float(data["backoff"]),
            max_interval=span_of(float(data["max_interval"])),
            max_attempts=data.get("max_attempts"),
            non_retryable=tuple(str(n) for n in data.get("non_retryable", ())),
        )


def _error_types(value: Any) -> tuple[type[BaseException] | str, ...]:
    """``non_retryable`` as a tuple of exception classes and names (a list is
    taken too); a lone class or name is refused, so that it is not read as a
    sequence (a string, letter by letter)."""
    if isinstance(value, (str, type)):
        raise TypeError(
            f"RetryPolicy.non_retryable must be a tuple of exception classes or names, "
            f"not one {type(value).__name__} {value!r}: write ({value!r},)"
            if isinstance(value, str)
            else f"RetryPolicy.non_retryable must be a tuple of exception classes or names, "
            f"not one class: write ({value.__name__},)"
        )
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"RetryPolicy.non_retryable must be a tuple of exception classes or names, "
            f"not {type(value).__name__} {value!r}"
        ) from None
    for item in items:
        named = isinstance(item, str) and item
        if not named and not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"RetryPolicy.non_retryable holds exception classes or their names, "
                f"not {type(item).__name__} {item!r}"
            )
    return items
