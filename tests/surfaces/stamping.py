"""An interceptor for the surfaces' tests (``--interceptor
tests/surfaces/stamping.py:Stamp``): every run its process starts carries
the header ``started-by: <the process's name>``; ``stamped`` returns
its run's headers."""

from __future__ import annotations

import sys

from perdure import workflow
from perdure.interceptors import Interceptor, WorkflowStart


class Stamp(Interceptor):
    def __init__(self, by: str | None = None) -> None:
        # (Made by --interceptor with no argument: the command's name.)
        self.by = by or (sys.argv[1] if len(sys.argv) > 1 else "?")

    def start_workflow(self, start: WorkflowStart) -> None:
        start.headers["started-by"] = self.by


@workflow.defn
async def stamped() -> dict[str, str]:
    return workflow.info().headers
