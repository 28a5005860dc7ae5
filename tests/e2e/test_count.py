"""``Client.count``: how many runs the listing's filters match, and how many
of each status, on both databases: for each filter and some of their
combinations, exactly the runs a listing of them gives; bad filters refused
as the listing refuses them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import AttributeRange, workflow


@workflow.defn
async def held(n: int) -> None:
    """Waits for a signal that never comes (no worker runs it but one test's)."""
    await workflow.wait_signal("go")


@workflow.defn
async def quick(n: int) -> int:
    return n


async def test_a_count_is_the_listings_length_by_status(client: perdure.Client) -> None:
    async with fast_worker(client, [quick], []):
        for n in range(4):  # completed
            await client.execute(quick, n, id=f"q-{n}", search_attributes={"n": n, "kind": "q"})
    middle = datetime.now(UTC)  # (after the quick runs' starts, before the others')
    for n in range(6):
        await client.start(held, n, id=f"h-{n}", search_attributes={"n": n, "kind": "h"})
    await client.get_handle("h-1").terminate()
    await client.get_handle("h-4").terminate()
    await client.start(held, 9, id="h-1", id_conflict="terminate_existing")  # (h-1 again)
    filters: list[dict[str, Any]] = [
        {},
        {"status": "running"},
        {"status": "terminated"},
        {"workflow": "quick"},
        {"workflow": "held", "status": "running"},
        {"search": "h-1"},
        {"search": "h-1", "latest": True},
        {"since": middle},
        {"until": middle},
        {"search_attributes": {"kind": "h"}},
        {"search_attributes": {"n": AttributeRange(ge=2)}},
        {"search_attributes": {"n": AttributeRange(ge=2), "kind": "q"}},
        {"search_attributes": {"n": AttributeRange(lt=3)}, "status": "terminated"},
        {"search_attributes": {"kind": "nobody"}},
    ]
    for given in filters:
        listed = await client.list(limit=1000, **given)
        counted = await client.count(**given)
        assert counted.count == len(listed), given
        statuses = Counter(r.status for r in listed)
        assert counted.by_status == {s: statuses.get(s, 0) for s in perdure.client.STATUSES}, given
    assert (await client.count(since=middle)).count == 7
    everything = await client.count()
    assert (everything.count, everything.by_status["completed"]) == (11, 4)
    assert everything.by_status["terminated"] == 2
    assert everything.to_json() == {"count": 11, "by_status": everything.by_status}


async def test_bad_filters_are_refused_as_the_listing_refuses_them(
    client: perdure.Client,
) -> None:
    for given, error, message in (
        ({"status": "done"}, ValueError, "status must be one of"),
        ({"workflow": ""}, ValueError, "workflow must be a non-empty string"),
        (
            {"since": datetime(2026, 2, 1), "until": datetime(2026, 1, 1)},
            ValueError,
            "is after until",
        ),
        ({"search_attributes": {"n": "x" * 401}}, ValueError, "a string of 401 characters"),
        ({"search_attributes": [("n", 1)]}, TypeError, "must be a dict of names to values"),
    ):
        with pytest.raises(error) as raised:
            await client.count(**given)
        assert message in str(raised.value), raised.value
