"""The ``perdure`` command line. A surface: uses only the public API.

One module per command group, each registering its commands on ``app``:
``_worker_cmd`` (worker), ``_demo_cmd`` (demo). ``--db`` defaults to
``$PERDURE_DB``, else ``sqlite:///perdure.db``.
"""

from __future__ import annotations

from perdure.cli._app import app

# Importing a command module registers its commands.
from perdure.cli import _control_cmd, _demo_cmd, _inspect_cmd  # noqa: F401  isort: skip
from perdure.cli import _replay_cmd, _server_cmd, _worker_cmd  # noqa: F401  isort: skip

__all__ = ["app", "main"]


def main() -> None:
    app()
