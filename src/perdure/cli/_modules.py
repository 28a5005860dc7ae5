"""Loading the modules a command serves or replays, and finding their
workflows and activities. No typer here: ``perdure worker`` runs without it
(see perdure.cli._worker_run)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from perdure.activity import ActivityFunction
from perdure.workflow import definition_of

__all__ = ["ModuleLoadError", "collect", "load_module"]


class ModuleLoadError(ValueError):
    """A module named on the command line could not be loaded."""


def load_module(spec: str) -> ModuleType:
    """Import ``pkg.module`` or a ``path/to/file.py``."""
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).resolve()
        if not path.exists():
            raise ModuleLoadError(f"no such file: {spec}")
        sys.path.insert(0, str(path.parent))
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise ModuleLoadError(f"cannot import {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        raise ModuleLoadError(f"cannot import module {spec!r}: {exc}") from exc


def collect(modules: list[ModuleType]) -> tuple[list[Any], list[Any]]:
    """Every workflow and activity defined at the top level of the modules."""
    workflows: dict[int, Any] = {}
    activities: dict[int, Any] = {}
    for module in modules:
        for value in vars(module).values():
            if definition_of(value) is not None:
                workflows[id(value)] = value
            elif isinstance(value, ActivityFunction):
                activities[id(value)] = value
    return list(workflows.values()), list(activities.values())
