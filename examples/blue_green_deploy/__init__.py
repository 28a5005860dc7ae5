"""A deploy that changes a workflow's steps while orders are in flight: each
order stays on the release of the code that started it (worker builds)."""
