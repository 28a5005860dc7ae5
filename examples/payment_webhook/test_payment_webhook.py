"""The payment webhook: each charge waits for the provider's answer (in the
database, with no worker running), and the webhook handler's outcome
decides the checkout: a charge ships, a declined card is reported without
retries, a provider error is retried with the same idempotency key, and a
repeated delivery changes nothing; the provider charges each order once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from perdure.testing import WorkflowEnvironment

from ..story import run_story
from . import provider
from .payments import charge, checkout, ship
from .webhook import handle_delivery


async def _answer_all(env: WorkflowEnvironment, answered: set[str], count: int) -> list[str]:
    """Wait for ``count`` requests in all, then deliver the provider's answers."""
    while len(provider.requests()) < count:
        await asyncio.sleep(0.01)
    return [await handle_delivery(env.client, d) for d in provider.process(answered)]


async def test_the_webhook_decides_each_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(provider.DIR_ENV, str(tmp_path))
    async with WorkflowEnvironment(workflows=[checkout], activities=[charge, ship]) as env:
        paid = await env.client.start(checkout, "o-1", 500)
        declined = await env.client.start(checkout, "o-2-declined", 700)
        flaky = await env.client.start(checkout, "o-3-flaky", 900)
        answered: set[str] = set()
        outcomes = await _answer_all(env, answered, 3)
        assert sorted(outcomes) == [
            "completed with ch_0001",
            "failed: card declined",
            "failed: provider error (the attempt will be retried)",
        ]
        # The flaky order's retry asks again, with the same key.
        assert await _answer_all(env, answered, 4) == ["completed with ch_0002"]
        assert await asyncio.wait_for(paid.result(), 30) == (
            "o-1: charged 500 cents as ch_0001, shipped parcel-o-1"
        )
        assert await declined.result() == "o-2-declined: not charged (card declined)"
        assert await flaky.result() == (
            "o-3-flaky: charged 900 cents as ch_0002, shipped parcel-o-3-flaky"
        )
        first = provider.requests()[0]
        again = {"token": first["token"], "status": "succeeded", "charge": "x", "cents": 1}
        assert await handle_delivery(env.client, again) == "ignored: that attempt has ended"
    flaky_keys = [r["key"] for r in provider.requests() if r["order"] == "o-3-flaky"]
    assert len(flaky_keys) == 2 and len(set(flaky_keys)) == 1
    assert [(c["id"], c["cents"]) for c in provider.ledger()] == [
        ("ch_0001", 500),
        ("ch_0002", 900),
    ]


@pytest.mark.slow
def test_the_story_takes_the_answers_while_no_worker_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_story("payment_webhook", tmp_path, clear_env=("PAYMENTS_",))
    assert "checkout-o-1003-flaky: charge awaiting completion: True" in out, out
    assert "webhook succeeded for o-1001: completed with ch_0001" in out
    assert "webhook succeeded for o-1001: ignored: that attempt has ended" in out
    assert "o-1002-declined: not charged (card declined)" in out
    assert "o-1003-flaky: charged 12500 cents as ch_0002, shipped parcel-o-1003-flaky" in out
    monkeypatch.setenv(provider.DIR_ENV, str(tmp_path))
    ledger = [(c["id"], c["cents"]) for c in provider.ledger()]
    assert ledger == [("ch_0001", 4200), ("ch_0002", 12500)]  # each order charged once
