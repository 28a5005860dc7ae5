"""Expense approval: the manager has three days to approve an expense.

The manager is notified (an activity); then the workflow waits up to three
days for the ``"approval"`` signal. Approved: the expense is reimbursed.
Rejected: nothing is paid. No answer in three days: the expense is escalated.
While it waits, the workflow holds no memory in any worker, only rows.

Run the story: ``python -m examples.expense_approval`` (see ``__main__.py``), or
serve it with ``perdure worker examples.expense_approval.workflow``, start it from a
client (``await client.start(expense_approval, Expense(...), id="expense-42")``)
and approve from anywhere: ``handle.signal("approval", {...})``, ``perdure signal``,
or ``POST /api/workflows/expense-42/signals/approval``. The tests
(``test_expense_approval.py``) cover the three days in milliseconds, and approve
through the real CLI and the HTTP API.
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
async def notify_manager(expense: Expense) -> str:
    """Ask the manager for a decision. A real system would email this text; here
    it is logged and returned (the workflow publishes it as state "message")."""
    wf = activity.info().workflow_id
    text = approval_message(expense, wf)
    log.info("to %s: %s", expense.manager, text)
    return text


def approval_message(expense: Expense, workflow_id: str) -> str:
    """The manager's email: how to approve, from a terminal or over HTTP."""
    payload = f'{{"approved": true, "by": "{expense.manager}"}}'
    return (
        f"{expense.employee} asks for {expense.amount} ({expense.description}). Approve with\n"
        f"  perdure signal {workflow_id} approval --payload '{payload}'\n"
        f"or, with `perdure server` running,\n"
        f"  curl -X POST -d '{payload}' "
        f"http://127.0.0.1:8765/api/workflows/{workflow_id}/signals/approval\n"
        f"or open http://127.0.0.1:8765/#/workflows/{workflow_id}?signal=approval"
    )


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
    workflow.set_state("message", await notify_manager(expense))
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
