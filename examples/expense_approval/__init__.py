"""Expense approval: a three-day human-in-the-loop workflow and its tests."""
