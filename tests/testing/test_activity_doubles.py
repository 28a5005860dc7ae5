"""Activities replaced by test doubles, by name, with the workflow code unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from toolkit_support import Charge, charge_card, greet, pays

from perdure import ApplicationError, WorkflowFailedError, activity
from perdure.testing import WorkflowEnvironment


async def test_a_plain_function_replaces_an_activity_and_gets_its_typed_arguments() -> None:
    seen: list[Any] = []

    def fake_charge(charge: Any) -> str:  # no hints: it borrows the real activity's
        seen.append(charge)
        return f"fake-{charge.order_id}"

    async with WorkflowEnvironment(
        [pays], [charge_card], activity_overrides={"charge_card": fake_charge}
    ) as env:
        assert await env.execute(pays, "o-1") == "fake-o-1"
    assert seen == [Charge("o-1", 1999)]  # decoded into the real hint's dataclass


async def test_an_async_function_can_fail_like_the_real_one_would() -> None:
    async def declined(charge: Charge) -> str:
        # Non-retryable: under the default policy (retry forever) a fake that always
        # fails would keep the workflow retrying through ever more virtual time.
        raise ApplicationError(f"card declined for {charge.order_id}", non_retryable=True)

    async with WorkflowEnvironment(
        [pays], [charge_card], activity_overrides={"charge_card": declined}
    ) as env:
        with pytest.raises(WorkflowFailedError) as caught:
            await env.execute(pays, "o-2")
    assert caught.value.cause.type == "ActivityError"
    assert "card declined for o-2" in caught.value.cause.message


async def test_decorated_fakes_replace_activities_of_the_same_name() -> None:
    @activity.defn(name="charge_card")
    async def fake_charge(charge: Charge) -> str:
        return f"decorated-{charge.cents}"

    async with WorkflowEnvironment(
        [pays], [charge_card, greet], activity_overrides=[fake_charge]
    ) as env:
        assert await env.execute(pays, "o-3") == "decorated-1999"
        assert {a.name for a in env.activities} == {"charge_card", "greet"}


def test_an_override_must_name_a_registered_activity() -> None:
    with pytest.raises(ValueError, match="'charge_crad', which is not among"):
        WorkflowEnvironment([pays], [charge_card], activity_overrides={"charge_crad": print})


def test_bad_overrides_are_refused_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="must be callable"):
        WorkflowEnvironment([pays], [charge_card], activity_overrides={"charge_card": 42})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an activity"):
        WorkflowEnvironment([pays], [charge_card], activity_overrides=[print])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="mapping"):
        WorkflowEnvironment([pays], [charge_card], activity_overrides="charge_card")  # type: ignore[arg-type]


def test_two_different_activities_with_one_name_are_refused() -> None:
    @activity.defn(name="charge_card")
    async def other(charge: Charge) -> str:
        return "other"

    with pytest.raises(ValueError, match="two activities are named 'charge_card'"):
        WorkflowEnvironment([pays], [charge_card, other])


async def test_a_plain_function_returning_a_coroutine_fails_the_run_clearly() -> None:
    async def charge_later(charge: Charge) -> str:
        return "never"

    async with WorkflowEnvironment(
        [pays], [charge_card], activity_overrides={"charge_card": lambda c: charge_later(c)}
    ) as env:
        with pytest.raises(WorkflowFailedError, match="make it an 'async def'"):
            await env.execute(pays, "o-4")
