"""The bodies of the worker builds' routes (docs/versioning.md): a queue's
builds (``GET /api/queues/{queue}/builds``) and every queue's (``GET
/api/builds``), the one to make current, the one to ramp beside it, and
the build to pin a run to (``POST /api/workflows/{id}/build``). Imports
pydantic and ``_models`` (``Strict``); the field names match
``_query.build_json``.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field, StrictFloat, StrictStr

from perdure.server._models import Strict

__all__ = [
    "BuildList",
    "BuildOut",
    "CurrentBuildRequest",
    "QueueBuilds",
    "QueueBuildsList",
    "RampingBuildRequest",
    "RunBuildRequest",
]

# A build id as a body gives it: at most 200 bytes in UTF-8 (perdure._checks.
# MAX_BUILD_BYTES; the Client checks the bytes, and what it refuses is a 422).
_BUILD_HELP = "A worker build (Worker(build_id=), perdure worker --build-id): at most 200 bytes."


class BuildOut(BaseModel):
    """One build a task queue's workers have had (``client.builds``)."""

    build_id: str
    current: bool = Field(
        description="Its workers take the queue's new runs, and those pinned to no build."
    )
    promoted_at: Optional[str] = Field(
        description="When it became current: its first worker's start, or the last "
        "PUT .../builds/current that named it; null if it never was (a build set to ramp "
        "before any worker of it started)."
    )
    open_runs: int = Field(
        description="Open runs pinned to it: its workers must run until none is left."
    )
    workers: int = Field(description="Its live workers on the queue.")
    ramp: Optional[float] = Field(
        description="The share of the queue's new runs, in percent, it takes beside the "
        "current build (PUT .../builds/ramping); null if it does not ramp."
    )


class BuildList(BaseModel):
    items: list[BuildOut] = Field(description="The queue's builds, the current first.")


class QueueBuilds(BaseModel):
    task_queue: str
    builds: list[BuildOut] = Field(description="The queue's builds, the current first.")


class QueueBuildsList(BaseModel):
    items: list[QueueBuilds] = Field(
        description="Each task queue that has had a build, by name (GET /api/builds)."
    )


class CurrentBuildRequest(Strict):
    build_id: StrictStr = Field(
        min_length=1,
        description=f"{_BUILD_HELP} It becomes the queue's current build (it need not "
        "have a worker yet).",
    )


class RampingBuildRequest(Strict):
    build_id: Optional[StrictStr] = Field(
        min_length=1,
        description=f"{_BUILD_HELP} It takes ``percent`` of the queue's new runs beside "
        "the current build (which must exist, and be another; it need not have a worker "
        "yet), replacing the build that ramped; null stops the ramp.",
    )
    percent: Optional[StrictFloat] = Field(
        None,
        ge=0,
        le=100,
        description="Its share of the queue's new runs, 0 to 100 (by a hash of the "
        "workflow id: an id falls on one side for good). Required with a build; with "
        "build_id null: left out, null or 0.",
    )


class RunBuildRequest(Strict):
    build_id: Optional[StrictStr] = Field(
        min_length=1,
        description=f"{_BUILD_HELP} The run is pinned to it: only its workers run the "
        "run's turns. null unpins it: the queue's current build takes it on (and pins it "
        "again if its workflow type is pinned).",
    )
