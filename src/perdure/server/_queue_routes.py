"""The ``/api/queues`` routes (perdure.queues): the task queues' activities
and their limits, their fairness weights, and their worker builds
(docs/versioning.md). Reading needs the ``read`` role; setting or lifting
limits, setting a weight, or choosing the current or the ramping build,
``admin``.

Imports fastapi, the public Client API, its input errors (``perdure._checks``),
``_deps``, ``_query`` (a build's JSON) and the bodies (``_models``,
``_queue_models``, ``_build_models``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from perdure._checks import BadName
from perdure.client import Client
from perdure.server import _build_models as builds
from perdure.server import _models as m
from perdure.server import _queue_models as qm
from perdure.server._deps import (
    CURRENT_BUILD_BODY,
    RAMPING_BUILD_BODY,
    body_doc,
    client_of,
    current_build_request,
    error_responses,
    limits_request,
    ramping_build_request,
    require_admin,
    require_read,
    weight_request,
)
from perdure.server._query import build_json

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
    "", response_model=qm.QueueList, dependencies=Reader, responses=error_responses(401, 403, 503)
)
async def list_queues(client: ClientDep) -> Any:
    """The task queues that have activity tasks or limits, by name."""
    return {"items": [q.to_json() for q in await client.list_queues()]}


@router.get(
    "/{task_queue:path}/limits",
    response_model=qm.QueueLimitsOut,
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
    response_model=qm.QueueLimitsOut,
    dependencies=Admin,
    responses={**error_responses(401, 403, 422, 503), **UNROUTABLE},
    openapi_extra=body_doc(qm.QueueLimitsBody),
)
async def set_limits(
    client: ClientDep,
    task_queue: QueueName,
    body: Annotated[qm.QueueLimitsBody, Depends(limits_request)],
) -> Any:
    """Set the queue's limits, replacing its old ones; every worker obeys
    them from its next claim. 422 if none is given, or ``max_starts`` or
    ``max_starts_per_key`` without ``per_seconds`` (or the other way
    round)."""
    per = None if body.per_seconds is None else timedelta(seconds=body.per_seconds)
    try:
        limits = await client.set_queue_limits(
            task_queue,
            max_running=body.max_running,
            max_starts=body.max_starts,
            per=per,
            max_running_per_key=body.max_running_per_key,
            max_starts_per_key=body.max_starts_per_key,
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
    "/{task_queue:path}/weights",
    response_model=qm.FairnessWeightsOut,
    dependencies=Reader,
    responses={**error_responses(401, 403, 422, 503), **UNROUTABLE},
)
async def get_weights(client: ClientDep, task_queue: QueueName) -> Any:
    """The fairness keys given a weight on the queue (the others weigh 1)."""
    return {"fairness_weights": (await _describe(client, task_queue))["fairness_weights"]}


@router.put(
    "/{task_queue:path}/weights",
    response_model=qm.FairnessWeightOut,
    dependencies=Admin,
    responses={**error_responses(401, 403, 422, 503), **UNROUTABLE},
    openapi_extra=body_doc(qm.FairnessWeightBody),
)
async def set_weight(
    client: ClientDep,
    task_queue: QueueName,
    body: Annotated[qm.FairnessWeightBody, Depends(weight_request)],
) -> Any:
    """Give a fairness key a weight on the queue (docs/queues.md,
    "Weights"); every worker's next claim follows it. 422 for a bad key or
    weight."""
    try:
        before = await client.set_fairness_weight(task_queue, body.fairness_key, body.weight)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"fairness_key": body.fairness_key, "weight": body.weight, "weight_before": before}


@router.get(
    "/{task_queue:path}/builds",
    response_model=builds.BuildList,
    dependencies=Reader,
    responses={**error_responses(401, 403, 422, 503), **UNROUTABLE},
)
async def list_builds(client: ClientDep, task_queue: QueueName) -> Any:
    """The worker builds the queue has had, the current first: when each
    became current, its open pinned runs and its live workers (none for a
    queue no versioned worker served)."""
    return {"items": [build_json(b) for b in await client.builds(task_queue)]}


@router.get(
    "/{task_queue:path}/builds/current",
    response_model=builds.BuildOut,
    dependencies=Reader,
    responses={
        **error_responses(401, 403, 422, 503),
        404: {"model": m.ErrorBody, "description": "The queue has had no build"},
    },
)
async def current_build(client: ClientDep, task_queue: QueueName) -> Any:
    """The queue's current build; 404 if no worker with a build served it
    and none was chosen."""
    found = await client.builds(task_queue)
    if not found:
        raise HTTPException(404, f"task queue {task_queue!r} has had no build")
    return build_json(found[0])


@router.put(
    "/{task_queue:path}/builds/current",
    response_model=builds.BuildList,
    dependencies=Admin,
    responses={**error_responses(401, 403, 422, 503), **UNROUTABLE},
    openapi_extra=CURRENT_BUILD_BODY,
)
async def set_current_build(
    client: ClientDep,
    task_queue: QueueName,
    body: Annotated[builds.CurrentBuildRequest, Depends(current_build_request)],
) -> Any:
    """Make ``build_id`` the queue's current build: its workers take the
    queue's new runs (and those pinned to none) from their next heartbeat;
    the other builds' workers only finish the runs pinned to them. For a
    rollback, or forward again; the build need not have a worker yet.
    Answers the queue's builds then."""
    await client.set_current_build(task_queue, body.build_id)
    return {"items": [build_json(b) for b in await client.builds(task_queue)]}


@router.put(
    "/{task_queue:path}/builds/ramping",
    response_model=builds.BuildList,
    dependencies=Admin,
    responses={
        **error_responses(401, 403, 422, 503),
        **UNROUTABLE,
        409: {
            "model": m.ErrorBody,
            "description": "The queue has no current build, or the build named is the current one",
        },
    },
    openapi_extra=RAMPING_BUILD_BODY,
)
async def set_ramping_build(
    client: ClientDep,
    task_queue: QueueName,
    body: Annotated[builds.RampingBuildRequest, Depends(ramping_build_request)],
) -> Any:
    """Let ``build_id`` take ``percent`` of the queue's new runs beside its
    current build (by a hash of the workflow id), to try a release on a
    share of the traffic; one build ramps at a time, so it replaces the one
    that did. ``build_id`` null stops the ramp. 409 if the queue has no
    current build, or ``build_id`` is it. Answers the queue's builds then."""
    try:
        await client.set_ramping_build(task_queue, body.build_id, body.percent)
    except BadName:
        raise  # (the caller's input: 422, as everywhere)
    except ValueError as exc:  # (the queue's builds do not allow it now)
        raise HTTPException(409, str(exc)) from None
    return {"items": [build_json(b) for b in await client.builds(task_queue)]}


@router.get("/{task_queue:path}/builds/ramping", include_in_schema=False)
async def put_only() -> Any:
    """A GET (or HEAD) of the ramping build's route: 405, naming the method
    it takes, as the activity routes' own (else the catch-all below would
    describe a queue named "QUEUE/builds/ramping"). GET .../builds shows
    which build ramps."""
    raise HTTPException(405, "this route takes PUT only", headers={"Allow": "PUT"})


@router.get(
    "/{task_queue:path}",
    response_model=qm.Queue,
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
