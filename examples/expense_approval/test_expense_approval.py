"""The expense-approval workflow, tested in both branches in milliseconds.

Three days of waiting pass in virtual time: the test environment's clock jumps
to the next timer whenever the test waits for a result and nothing else can
run. The payment activity is replaced by a test double; the workflow code is
the one that runs in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from expense_approval.workflow import (
    APPROVAL_TIMEOUT,
    Expense,
    Outcome,
    escalate,
    expense_approval,
    notify_manager,
    reimburse,
)
from perdure.testing import WorkflowEnvironment

EXPENSE = Expense("exp-42", "ada", "grace", Decimal("129.90"), "train tickets")


@pytest.fixture
def payments() -> list[Expense]:
    return []


@pytest.fixture
async def env(payments: list[Expense]) -> AsyncIterator[WorkflowEnvironment]:
    def fake_reimburse(expense: Expense) -> str:  # the payment provider is not called
        payments.append(expense)
        return f"fake-payment-{len(payments)}"

    async with WorkflowEnvironment(
        workflows=[expense_approval],
        activities=[notify_manager, reimburse, escalate],
        activity_overrides={"reimburse": fake_reimburse},
    ) as env:
        yield env


async def test_approved_within_three_days_is_reimbursed(
    env: WorkflowEnvironment, payments: list[Expense]
) -> None:
    start = env.now()
    handle = await env.start(expense_approval, EXPENSE, id="expense-42")

    await env.sleep(timedelta(days=2))  # the manager takes two days to answer
    assert await handle.state("status") == "awaiting approval"
    await handle.signal("approval", {"approved": True, "by": "grace"})

    outcome = await handle.result()
    assert outcome == Outcome("reimbursed", decided_by="grace", payment_id="fake-payment-1")
    assert payments == [EXPENSE]  # paid once, with the amount as a Decimal
    assert timedelta(days=2) <= env.now() - start < APPROVAL_TIMEOUT


async def test_no_answer_in_three_days_is_escalated(
    env: WorkflowEnvironment, payments: list[Expense]
) -> None:
    start = env.now()
    outcome = await env.execute(expense_approval, EXPENSE, id="expense-43")

    assert outcome == Outcome("escalated", ticket_id="ticket-exp-42")
    assert env.now() - start >= APPROVAL_TIMEOUT  # three virtual days, milliseconds of wall time
    assert payments == []


async def test_rejected_is_not_paid(env: WorkflowEnvironment, payments: list[Expense]) -> None:
    handle = await env.start(expense_approval, EXPENSE, id="expense-44")
    await handle.signal("approval", {"approved": False, "by": "grace"})

    assert await handle.result() == Outcome("rejected", decided_by="grace")
    assert await handle.state("status") == "rejected"
    assert payments == []


@pytest.mark.perdure(workflows=[expense_approval], activities=[notify_manager, reimburse, escalate])
async def test_with_the_pytest_fixture(perdure_env: WorkflowEnvironment) -> None:
    outcome = await perdure_env.execute(expense_approval, EXPENSE)
    assert outcome.status == "escalated"
