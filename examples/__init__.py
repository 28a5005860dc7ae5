"""Runnable examples: each one is a package you run with ``python -m examples.NAME``
from the repository root (see examples/README.md), and each has its tests beside it."""
