"""How an update travels. Its request is a signal (so it is queued, delivered
once, carried over by continue-as-new and re-sent by a reset as any signal
is) under a reserved name, carrying the update's id with its payload; its
answer is an :class:`UpdateReplied` command event. Imports nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "UPDATE_SIGNAL_PREFIX",
    "parse_update_request",
    "signal_name_problem",
    "update_request",
    "update_signal_name",
]

# No signal a client or workflow sends may start with it (the checks refuse it).
UPDATE_SIGNAL_PREFIX = "perdure.update:"


def signal_name_problem(name: str) -> str | None:
    """Why a signal sent or waited for by name cannot have ``name``, if it cannot."""
    if name.startswith(UPDATE_SIGNAL_PREFIX):
        return (
            f"signal names starting with {UPDATE_SIGNAL_PREFIX!r} are kept for updates, "
            f"not {name!r}: send an update with handle.update(), take it with "
            f"workflow.wait_update()"
        )
    return None


def update_signal_name(name: str) -> str:
    """The signal that carries requests of update ``name``."""
    return UPDATE_SIGNAL_PREFIX + name


def update_request(update_id: str, payload: Any) -> dict[str, Any]:
    """The signal's payload (encoded whole by the converter, codecs included)."""
    return {"update_id": update_id, "payload": payload}


def parse_update_request(value: Any) -> tuple[str, Any] | None:
    """(update id, payload) from a decoded request; None if it is not one
    (a signal sent under the reserved name by other means)."""
    if isinstance(value, dict) and set(value) == {"update_id", "payload"}:
        update_id = value["update_id"]
        if isinstance(update_id, str) and update_id:
            return update_id, value["payload"]
    return None
