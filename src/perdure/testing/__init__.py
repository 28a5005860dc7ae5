"""Testing helpers for workflows (a surface over the public API)."""
