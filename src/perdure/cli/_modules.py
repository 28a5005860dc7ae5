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
from typing import Any, TypeVar

from perdure._converter import DataConverter
from perdure.activity import ActivityFunction
from perdure.interceptors import Interceptor
from perdure.workflow import definition_of

__all__ = ["ModuleLoadError", "collect", "load_converter", "load_interceptor", "load_module"]


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


def load_converter(spec: str) -> DataConverter:
    """The DataConverter that ``MODULE:NAME`` names (``--converter``): NAME is a
    DataConverter, or a function of no arguments that returns one (to read keys
    from the environment or a secret store when the command starts). MODULE is
    a dotted name or a ``path/to/file.py``, as for the modules a worker serves."""
    return _load_named(spec, "--converter", DataConverter, "myapp.payloads:converter")


def load_interceptor(spec: str) -> Interceptor:
    """The interceptor that ``MODULE:NAME`` names (``--interceptor``): an
    Interceptor, or a function of no arguments (a class included) that
    returns one, as for ``--converter``."""
    return _load_named(spec, "--interceptor", Interceptor, "myapp.tracing:interceptor")


T = TypeVar("T")


def _load_named(spec: str, option: str, kind: type[T], example: str) -> T:
    module_spec, colon, name = spec.rpartition(":")
    if not colon or not module_spec or not name.isidentifier():
        raise ModuleLoadError(f"{option} {spec!r} is not MODULE:NAME (for example {example})")
    module = load_module(module_spec)
    try:
        value = getattr(module, name)
    except AttributeError:
        raise ModuleLoadError(f"{option} {spec!r}: {module_spec} has no {name!r}") from None
    if not isinstance(value, kind) and callable(value):
        try:
            value = value()
        except Exception as exc:
            raise ModuleLoadError(
                f"{option} {spec!r}: {name}() raised {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(value, kind):
        raise ModuleLoadError(
            f"{option} {spec!r} is a {type(value).__name__}, not a "
            f"{kind.__module__.replace('._converter', '')}.{kind.__name__} "
            f"(or a function that returns one)"
        )
    return value
