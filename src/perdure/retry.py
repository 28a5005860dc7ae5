"""RetryPolicy: how often and how fast a failed activity is tried again. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts.

    The delay before attempt ``n + 1`` (after attempt ``n`` failed) is
    ``initial_interval * backoff ** (n - 1)``, capped at ``max_interval``.
    ``max_attempts=None`` retries without limit (the Temporal default);
    ``max_attempts=1`` means no retry. ``non_retryable`` lists exception types
    (classes, or names as strings) that fail the activity at once.
    """

    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    max_interval: timedelta = timedelta(seconds=100)
    max_attempts: int | None = None
    non_retryable: tuple[type[BaseException] | str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.initial_interval <= timedelta(0):
            raise ValueError("RetryPolicy.initial_interval must be positive")
        if self.backoff < 1.0:
            raise ValueError("RetryPolicy.backoff must be >= 1.0")
        if self.max_interval < self.initial_interval:
            raise ValueError("RetryPolicy.max_interval must be >= initial_interval")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1 (or None for no limit)")

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
            initial_interval=timedelta(seconds=float(data["initial_interval"])),
            backoff=float(data["backoff"]),
            max_interval=timedelta(seconds=float(data["max_interval"])),
            max_attempts=data.get("max_attempts"),
            non_retryable=tuple(str(n) for n in data.get("non_retryable", ())),
        )
