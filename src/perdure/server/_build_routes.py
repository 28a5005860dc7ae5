"""The ``/api/builds`` route: the worker builds of every task queue that
has had one (docs/versioning.md), for the web UI's builds page. Reading
needs the ``read`` role; one queue's builds, and choosing its current or
ramping build, are ``/api/queues/{queue}/builds...`` (``_queue_routes``).

Imports fastapi, the public Client API, ``_deps``, ``_query`` (a build's
JSON) and the bodies (``_build_models``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from perdure.client import Client
from perdure.server import _build_models as builds
from perdure.server._deps import client_of, error_responses, require_read
from perdure.server._query import build_json

__all__ = ["router"]

router = APIRouter(prefix="/api/builds")

ClientDep = Annotated[Client, Depends(client_of)]


@router.get(
    "",
    response_model=builds.QueueBuildsList,
    dependencies=[Depends(require_read)],
    responses=error_responses(401, 403, 503),
)
async def list_builds_by_queue(client: ClientDep) -> Any:
    """Every task queue that has had a worker build, by name, with its
    builds as ``GET /api/queues/{queue}/builds`` lists them (the current
    first: when each became current, its ramp, its open pinned runs and
    its live workers); no item for a queue no versioned worker served."""
    found = await client.builds_by_queue()
    return {
        "items": [
            {"task_queue": queue, "builds": [build_json(b) for b in queue_builds]}
            for queue, queue_builds in found.items()
        ]
    }
