"""Expense approval: the manager has three days to approve an expense.

The manager is notified (an activity); then the workflow waits up to three
days for the ``"approval"`` signal. Approved: the expense is reimbursed.
Rejected: nothing is paid. No answer in three days: the expense is escalated.
While it waits, the workflow holds no memory in any worker, only rows.

Run it: ``perdure worker examples/expense_approval/workflow.py``, then from a
client ``await client.start(expense_approval, Expense(...), id="expense-42")`` and
``await handle.signal("approval", {"approved": True, "by": "grace"})``.
Its tests (``test_expense_approval.py``) cover the three days in milliseconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from perdure import RetryPolicy, activity, workflow

APPROVAL_TIMEOUT = timedelta(days=3)

log = logging.getLogger("expense_approval")


@dataclass
class Expense:
    id: str
    employee: str
    manager: str
    amount: Decimal
    description: str


@dataclass
class Outcome:
    status: str  # "reimbursed", "rejected" or "escalated"
    decided_by: str | None = None
    payment_id: str | None = None
    ticket_id: str | None = None


_RETRY = RetryPolicy(max_attempts=5, initial_interval=timedelta(seconds=2))


@activity.defn(retry=_RETRY, start_to_close_timeout=timedelta(seconds=30))
async def notify_manager(expense: Expense) -> None:
    """Ask the manager for a decision (a real system would send an email)."""
    log.info("to %s: please approve %s (%s)", expense.manager, expense.id, expense.amount)


@activity.defn(retry=_RETRY, start_to_close_timeout=timedelta(seconds=30))
async def reimburse(expense: Expense) -> str:
    """Pay the employee. The idempotency key makes a retried payment a no-op
    at the payment provider, so the employee is paid exactly once."""
    key = activity.info().idempotency_key
    log.info("paying %s %s to %s (key %s)", expense.id, expense.amount, expense.employee, key)
    return f"pay-{expense.id}"


@activity.defn(retry=_RETRY, start_to_close_timeout=timedelta(seconds=30))
async def escalate(expense: Expense, waited_days: int) -> str:
    """Hand the expense to the manager's manager (a real system would open a ticket)."""
    log.info(
        "escalating %s: %s did not answer in %d days", expense.id, expense.manager, waited_days
    )
    return f"ticket-{expense.id}"


@workflow.defn
async def expense_approval(expense: Expense) -> Outcome:
    workflow.set_state("status", "awaiting approval")
    await notify_manager(expense)
    try:
        decision = await workflow.wait_signal("approval", timeout=APPROVAL_TIMEOUT)
    except TimeoutError:
        workflow.set_state("status", "escalated")
        ticket = await escalate(expense, APPROVAL_TIMEOUT.days)
        return Outcome("escalated", ticket_id=ticket)
    decided_by = str(decision.get("by", expense.manager))
    if not decision.get("approved"):
        workflow.set_state("status", "rejected")
        return Outcome("rejected", decided_by=decided_by)
    workflow.set_state("status", "approved")
    payment = await reimburse(expense)
    workflow.set_state("status", "reimbursed")
    return Outcome("reimbursed", decided_by=decided_by, payment_id=payment)
