"""The ``/api/queues`` routes (perdure.queues): the task queues' activities
and their limits. Reading needs the ``read`` role, setting or lifting limits
``admin``.

Imports fastapi, the public Client API and ``_deps``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from perdure.client import Client
from perdure.server import _models as m
from perdure.server._deps import (
    body_doc,
    client_of,
    error_responses,
    limits_request,
    require_admin,
    require_read,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/queues")

ClientDep = Annotated[Client, Depends(client_of)]
Reader = [Depends(require_read)]
Admin = [Depends(require_admin)]
QueueName = Annotated[str, Path(description="The task queue (may contain '/').")]
# A path parameter matches no line break (starlette's ``path`` is ``.*``): a
# queue whose name holds one cannot be addressed here, and no route answers.
UNROUTABLE: dict[int | str, dict[str, Any]] = {
    404: {"model": m.ErrorBody, "description": "No route: a queue name with a line break"}
}


@router.get(
    "", response_model=m.QueueList, dependencies=Reader, responses=error_responses(401, 403, 503)
)
async def list_queues(client: ClientDep) -> Any:
    """The task queues that have activity tasks or limits, by name."""
    return {"items": [q.to_json() for q in await client.list_queues()]}


@router.get(
    "/{task_queue:path}/limits",
    response_model=m.QueueLimitsOut,
    dependencies=Reader,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_limits(client: ClientDep, task_queue: QueueName) -> Any:
    """The queue's limits; 404 if it has none."""
    limits = (await _describe(client, task_queue))["limits"]
    if limits is None:
        raise HTTPException(404, f"task queue {task_queue!r} has no limits")
    return limits


@router.put(
    "/{task_queue:path}/limits",
    response_model=m.QueueLimitsOut,
    dependencies=Admin,
    responses={**error_responses(401, 403, 422, 503), **UNROUTABLE},
    openapi_extra=body_doc(m.QueueLimitsBody),
)
async def set_limits(
    client: ClientDep,
    task_queue: QueueName,
    body: Annotated[m.QueueLimitsBody, Depends(limits_request)],
) -> Any:
    """Set the queue's limits, replacing its old ones; every worker obeys
    them from its next claim. 422 if none is given, or ``max_starts``
    without ``per_seconds`` (or the other way round)."""
    per = None if body.per_seconds is None else timedelta(seconds=body.per_seconds)
    try:
        limits = await client.set_queue_limits(
            task_queue, max_running=body.max_running, max_starts=body.max_starts, per=per
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return limits.to_json()


@router.delete(
    "/{task_queue:path}/limits",
    status_code=204,
    dependencies=Admin,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def remove_limits(client: ClientDep, task_queue: QueueName) -> None:
    """Lift the queue's limits; 404 if it had none."""
    try:
        had = await client.remove_queue_limits(task_queue)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if not had:
        raise HTTPException(404, f"task queue {task_queue!r} has no limits")


@router.get(
    "/{task_queue:path}",
    response_model=m.Queue,
    dependencies=Reader,
    responses={**error_responses(401, 403, 422, 503), **UNROUTABLE},
)
async def describe_queue(client: ClientDep, task_queue: QueueName) -> Any:
    """The queue's activities now (running, waiting, backing off) and its
    limits (a queue nobody uses has all counts 0)."""
    return await _describe(client, task_queue)


async def _describe(client: Client, task_queue: str) -> dict[str, Any]:
    try:
        return (await client.describe_queue(task_queue)).to_json()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
