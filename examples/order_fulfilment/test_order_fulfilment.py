"""The order-fulfilment example: exactly-once charging when the charge step is
interrupted after the money moved — in process (time-skipping) and with a real
SIGKILLed worker (the example's own program)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import perdure
from perdure.testing import WorkflowEnvironment

from ..story import run_story
from .payments import PaymentProvider
from .shop import (
    Order,
    Receipt,
    charge_card,
    create_shipping_label,
    fulfil_order,
    notify_warehouse,
    reserve_inventory,
    send_confirmation_email,
    validate_payment,
)

ACTIVITIES = [
    validate_payment,
    charge_card,
    reserve_inventory,
    create_shipping_label,
    notify_warehouse,
    send_confirmation_email,
]
ORDER = Order("order-7", "ada@example.com", "4242 4242 4242 4242", ["lamp"], 1999)


def attempts(folder: Path, name: str) -> list[dict[str, object]]:
    lines = (folder / "activity-log.jsonl").read_text().splitlines()
    return [a for a in map(json.loads, lines) if a["activity"] == name]


@pytest.fixture
async def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WorkflowEnvironment]:
    monkeypatch.setenv("SHOP_DIR", str(tmp_path))
    monkeypatch.delenv("SHOP_RESPONSE_DELAY", raising=False)
    async with WorkflowEnvironment(workflows=[fulfil_order], activities=ACTIVITIES) as env:
        yield env


async def test_a_lost_charge_response_is_retried_with_the_same_key_and_charges_once(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    (tmp_path / "lose-next-charge-response").touch()  # attempt 1 charges, then raises

    receipt = await env.execute(fulfil_order, ORDER, id=ORDER.order_id)

    charges = PaymentProvider(tmp_path / "payments.db").charges()
    assert len(charges) == 1 and charges[0].cents == 1999
    assert receipt == Receipt(
        "order-7", charges[0].charge_id, "rsv-order-7", "lbl-order-7", "mail-order-7"
    )
    tries = attempts(tmp_path, "charge_card")
    assert [t["attempt"] for t in tries] == [1, 2]
    assert {t["key"] for t in tries} == {charges[0].idempotency_key}  # one key, two requests
    assert PaymentProvider(tmp_path / "payments.db").requests(charges[0].idempotency_key) == 2
    # The flaky label API failed twice and was retried; nothing else ran twice.
    assert len(attempts(tmp_path, "create_shipping_label")) == 3
    for name in ("validate_payment", "reserve_inventory", "notify_warehouse"):
        assert len(attempts(tmp_path, name)) == 1, name


async def test_an_invalid_card_fails_before_any_charge(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    bad = Order("order-8", "bob@example.com", "not a card", ["mug"], 500)
    with pytest.raises(perdure.WorkflowFailedError, match="invalid payment details"):
        await env.execute(fulfil_order, bad, id=bad.order_id)
    assert PaymentProvider(tmp_path / "payments.db").charges() == []
    assert len(attempts(tmp_path, "validate_payment")) == 1  # non-retryable


def test_two_orders_get_two_keys(tmp_path: Path) -> None:
    """The provider deduplicates by key only: distinct steps are distinct charges."""
    provider = PaymentProvider(tmp_path / "payments.db")
    first = provider.charge("wf-1/run/2", "o-1", 100)
    assert provider.charge("wf-1/run/2", "o-1", 100) == first
    assert provider.charge("wf-2/run/2", "o-2", 100) != first
    assert [c.order_id for c in provider.charges()] == ["o-1", "o-2"]


@pytest.mark.slow
def test_the_story_survives_sigkill_mid_charge(tmp_path: Path) -> None:
    """``python -m examples.order_fulfilment``: worker #1 is SIGKILLed after the
    provider charged and before the activity returned; worker #2 re-runs the
    charge with the same key; the provider moved money once."""
    printed = run_story("order_fulfilment", tmp_path, clear_env=("SHOP_DIR",))
    assert "kill -9 worker #1" in printed and "charged exactly once." in printed

    charges = PaymentProvider(tmp_path / "payments.db").charges()
    assert len(charges) == 1
    tries = attempts(tmp_path, "charge_card")
    assert len(tries) == 2 and len({t["pid"] for t in tries}) == 2  # killed, then re-run
    assert {t["key"] for t in tries} == {charges[0].idempotency_key}
