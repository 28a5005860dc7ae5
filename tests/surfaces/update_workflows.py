"""Workflows for the update tests of the surfaces (``perdure worker`` loads this
file): an expense that takes ``decide`` updates until one is answered (it
rejects the ones it cannot accept, and ends without answering a withdrawal),
and a gate that takes no update before its ``open`` signal (an update's
timeout, then its retry by update id)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from perdure import workflow


@workflow.defn
async def expense(expense_id: str, amount: int) -> str:
    """Answers the first acceptable ``decide`` with ``{"status", "amount"}``
    and returns the decision; rejects the others, saying why; ends without
    answering a ``"withdraw"``."""
    workflow.set_state("stage", "waiting for a decision")
    while True:
        request = await workflow.wait_update("decide", timeout=timedelta(days=1))
        decision: Any = request.payload
        if decision == "withdraw":
            return "withdrawn"  # (its caller is told the run ended without answering)
        if not isinstance(decision, dict) or decision.get("decision") not in (
            "approved",
            "refused",
        ):
            request.reject(f"decide 'approved' or 'refused', not {decision!r}")
            continue
        if amount > 1000 and decision.get("by") != "director":
            request.reject("above 1,000 a director decides")
            continue
        request.reply({"status": decision["decision"], "amount": amount})
        return str(decision["decision"])


@workflow.defn
async def gate(name: str) -> str:
    """Waits for the ``open`` signal, then answers one ``ask`` update."""
    await workflow.wait_signal("open", timeout=timedelta(days=1))
    request = await workflow.wait_update("ask", timeout=timedelta(days=1))
    request.reply(f"{name} says yes to {request.payload}")
    return f"answered {request.id}"


WORKFLOWS = [expense, gate]
