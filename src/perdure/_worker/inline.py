"""What an inline turn takes from the activity attempt it follows: the
attempt's end as the turn's time (``ended_at``), and the lease expiry of the
task row the next activity takes over (``kept_lease``). Imports the history
model and the store's records only.
"""

from __future__ import annotations

from perdure import _history as h
from perdure._store.base import ActivityTask, TurnCommit

__all__ = ["LEASE_KEPT_WHILE", "ended_at", "kept_lease"]

# An inline step's next activity, taking over the finished one's task row,
# keeps the row's lease expiry while at least this share of a lease is left
# (else it writes now + lease). The worker renews its leases every third of a
# lease, so a kept one still has half a lease of margin at the next renewal;
# and the take-over then changes no indexed column (docs/decisions.md).
LEASE_KEPT_WHILE = 5 / 6


def kept_lease(done: ActivityTask, commit: TurnCommit) -> float:
    """The lease expiry the activity that takes over ``done``'s task row in
    ``commit`` keeps (TurnCommit.lease_kept): ``done``'s, if enough of a
    lease is left of it; 0.0 to write a new one. Never an attempt's whose
    heartbeats set its expiry (a heartbeat_timeout may be shorter than the
    lease its worker knows of)."""
    heir = next((a for a in commit.activities if a.lease is not None), None)
    if heir is None or not commit.events or done.options.get("heartbeat_timeout") is not None:
        return 0.0
    assert heir.lease is not None
    lease = heir.lease[2]
    left = done.lease_until - commit.events[-1].time
    return done.lease_until if lease * LEASE_KEPT_WHILE <= left <= lease else 0.0


def ended_at(outcome: h.Event) -> float | None:
    """When the attempt that just succeeded ended, as its record says. (A
    failure's last record may be of an attempt lost a while ago: its turn
    reads the clock.)"""
    if isinstance(outcome, h.ActivityCompleted) and outcome.attempts:
        ended = outcome.attempts[-1].get("ended_at")
        if type(ended) is float:
            return ended
    return None
