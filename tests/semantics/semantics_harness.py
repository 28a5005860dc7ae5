"""The semantics tests' harness: the crash harness's Cluster of real worker
processes, running ``semantics_workloads.py`` (importable by name, unlike conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "crash"))

from crash_harness import Cluster

WORKLOADS = Path(__file__).resolve().with_name("semantics_workloads.py")


class SemanticsCluster(Cluster):
    def start(self, *extra: str, module: Path = WORKLOADS) -> object:
        return self.start_worker(*extra, module=module)

    def side_events(self, kind: str | None = None) -> list[dict[str, object]]:
        import json

        found = []
        for path in self.side_dir.glob("events-*.log"):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if kind is None or record["kind"] == kind:
                    found.append(record)
        # In the order they were written, across processes (by file name,
        # events-<pid>.log, a later worker's pid may sort first: 10234 < 9876).
        return sorted(found, key=lambda record: float(str(record["at"])))
