"""A durable AI agent: model calls and tool calls are activities, a risky tool
waits for a human's approval, and a crash mid-conversation repeats no model call.
Run it: ``python -m examples.durable_agent``."""
