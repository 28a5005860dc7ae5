"""The retention job as a built-in workflow every Worker runs
(``perdure.delete_closed``), so that a schedule can run it without a cron
outside: ``client.create_schedule("retention", "perdure.delete_closed",
30 * 86400, cron="0 3 * * *")`` deletes, each night, the runs closed more
than 30 days before (``Client.delete_closed_runs``). The workflow calls one
activity, ``perdure.delete_closed``, bound to the worker's client; deleting
again what is already gone is harmless, so a retried attempt is too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from perdure import activity, workflow
from perdure.activity import ActivityFunction
from perdure.retry import RetryPolicy

if TYPE_CHECKING:
    from perdure._store.base import Store
    from perdure.client import Client

__all__ = ["DELETE_CLOSED", "add_retention", "delete_closed_runs", "delete_closed_workflow"]

DELETE_CLOSED = "perdure.delete_closed"


async def delete_closed_runs(store: Store, older_than: timedelta, batch: int) -> int:
    """Client.delete_closed_runs: in transactions of ``batch`` runs until
    none is left to delete; how many were."""
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise ValueError(f"older_than must be a timedelta of 0 or more, not {older_than!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 10_000:
        raise ValueError(f"batch must be an int from 1 to 10,000, not {batch!r}")
    closed_before = store.clock() - older_than.total_seconds()
    deleted = 0
    while True:
        done = await store.delete_closed_runs(closed_before, batch)
        deleted += done
        if done < batch:
            return deleted


@activity.defn(
    name=DELETE_CLOSED,
    start_to_close_timeout=timedelta(hours=1),
    retry=RetryPolicy(max_interval=timedelta(minutes=5)),
)
async def _delete_closed(older_than_seconds: float) -> int:
    """Stands for the activity each worker registers under this name, bound
    to its client (``_Deleter``); never run itself."""
    raise RuntimeError("perdure.delete_closed runs only in a worker")


class _Deleter:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def delete(self, older_than_seconds: float) -> int:
        return await self.client.delete_closed_runs(timedelta(seconds=older_than_seconds))


# (Auto-upgrade: its runs follow the current worker build, and its changes
# are patched; pinned, a long-lived run would keep an old build running.)
@workflow.defn(name=DELETE_CLOSED, versioning="auto_upgrade")
async def delete_closed_workflow(older_than_seconds: float) -> int:
    """Delete the runs closed more than ``older_than_seconds`` ago; returns
    how many (see Client.delete_closed_runs)."""
    # (Its type is checked by the converter, by the hint: a float.)
    if not older_than_seconds >= 0:
        raise ValueError(f"the age must be 0 seconds or more, not {older_than_seconds!r}")
    return await _delete_closed(older_than_seconds)


def add_retention(
    workflows: dict[str, Any], activities: dict[str, ActivityFunction[Any, Any]], client: Client
) -> None:
    """Register the retention workflow, and its activity bound to ``client``,
    beside a worker's own (which keep their names if they clash)."""
    workflows.setdefault(DELETE_CLOSED, delete_closed_workflow)
    deleter = _Deleter(client)
    activities.setdefault(
        DELETE_CLOSED, ActivityFunction(deleter.delete, DELETE_CLOSED, _delete_closed.opts)
    )
