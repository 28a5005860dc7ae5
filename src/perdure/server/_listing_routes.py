"""``GET /api/workflows``: a page of the runs the filters match, newest
first; ``GET /api/workflow-count``: how many they match, by status. Both
take the same filters (``run_filters``, one FastAPI dependency), read by
the framework-free ``_query`` as the command line reads them.

Imports fastapi, the public Client API, ``_deps`` (the client, the read
role, times), ``_models`` (the responses), ``_query`` and the search
attribute filters' terms (``perdure._attrfilters``). Both need the ``read``
role.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Query

from perdure._attrfilters import parse_filter
from perdure.client import Client
from perdure.server import _models as m
from perdure.server._deps import client_of, error_responses, parse_time, require_read
from perdure.server._query import (
    MAX_LIMIT,
    ListQuery,
    count_matching,
    execution_json,
    list_page,
)

__all__ = ["router"]

router = APIRouter(prefix="/api", dependencies=[Depends(require_read)])

ClientDep = Annotated[Client, Depends(client_of)]


def run_filters(
    status: Annotated[Optional[str], Query(max_length=64)] = None,
    type: Annotated[Optional[str], Query(max_length=512, description="Workflow type")] = None,
    since: Annotated[Optional[str], Query(description="ISO time or age: 2h, 3d")] = None,
    until: Annotated[Optional[str], Query(description="ISO time or age")] = None,
    search: Annotated[Optional[str], Query(max_length=512, description="Text in the id")] = None,
    retrying: Annotated[
        bool, Query(description="Only runs whose latest workflow task failed and is retried")
    ] = False,
    latest: Annotated[
        bool, Query(description="Only each workflow id's latest run (not one a reset replaced)")
    ] = False,
    build_id: Annotated[
        Optional[str],
        Query(max_length=512, description="Only runs pinned to this worker build"),
    ] = None,
    attr: Annotated[
        Optional[list[str]],
        Query(
            description="NAME=VALUE: only runs whose search attribute NAME has VALUE, "
            'matched as text (120 finds 120, 120.0 and "120"; true finds true); or a '
            "bound NAME>=VALUE, NAME>VALUE, NAME<=VALUE, NAME<VALUE: a VALUE that reads as "
            "a number in JSON compares the runs' numbers, other text their strings, by "
            "code point (total>=1000, day<2027-01-01); repeat for more: a run must match each"
        ),
    ] = None,
) -> ListQuery:
    """The listing's filters from the query string (422 for a bad one)."""
    try:
        wanted = parse_filter(attr or [], "attr")
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    query = ListQuery(
        status=status or None,
        workflow_type=type or None,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        search=search or None,
        retrying=retrying,
        latest=latest,
        search_attributes=wanted,
        build_id=build_id or None,
    )
    try:
        query.check()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return query


Filters = Annotated[ListQuery, Depends(run_filters)]


@router.get(
    "/workflows",
    response_model=m.WorkflowPage,
    responses=error_responses(401, 403, 422, 503),
)
async def list_workflows(
    client: ClientDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    page: Annotated[Optional[int], Query(ge=1, le=1_000_000)] = None,
    cursor: Annotated[Optional[str], Query(max_length=2048)] = None,
) -> Any:
    """Runs, newest first, filtered; page with ``cursor`` (or ``page``)."""
    query = replace(filters, limit=limit, page=page, cursor=cursor or None)
    try:
        query.check()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    result = await list_page(client, query)
    return {"items": [execution_json(e) for e in result.items], "next_cursor": result.next_cursor}


@router.get(
    "/workflow-count",
    response_model=m.WorkflowCountResponse,
    responses=error_responses(401, 403, 422, 503),
)
async def count_workflows(client: ClientDep, filters: Filters) -> Any:
    """How many runs the filters match (as the listing takes them), and how
    many of each status (every status, 0 for none)."""
    return (await count_matching(client, filters)).to_json()
