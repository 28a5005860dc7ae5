"""An interceptor for the surfaces' tests (``--interceptor
tests/surfaces/stamping.py:Stamp``): every run its process starts carries
the header ``started-by: <the process's name>``; ``stamped`` returns
its run's headers."""

from __future__ import annotations

import sys

from perdure import workflow
from perdure.interceptors import Interceptor, WorkflowStart


class Stamp(Interceptor):
    def start_workflow(self, start: WorkflowStart) -> None:
        start.headers["started-by"] = sys.argv[1] if len(sys.argv) > 1 else "?"


@workflow.defn
async def stamped() -> dict[str, str]:
    return workflow.info().headers
