"""A workflow that changes its search attributes as it goes, for the search
attribute tests of the surfaces (``perdure worker`` loads this file)."""

from __future__ import annotations

from datetime import timedelta

from perdure import workflow


@workflow.defn
async def tagged_order(order: str) -> str:
    """Marks itself ``stage=paid`` (dropping ``draft``), waits for ``ship``,
    then ``stage=shipped`` without its ``region``."""
    workflow.set_search_attributes({"stage": "paid", "draft": None})
    workflow.set_state("stage", "paid")
    await workflow.wait_signal("ship", timeout=timedelta(hours=1))
    workflow.set_search_attributes({"stage": "shipped", "region": None})
    return f"{order} shipped"
