"""perdure.testing's public names are pinned, load lazily, and nothing in the
engine depends on them (the testing package is a surface, not a layer)."""

from __future__ import annotations

import ast
from pathlib import Path

import perdure
import perdure.testing

PACKAGE = Path(perdure.__file__).parent


def test_testing_all_is_pinned() -> None:
    assert sorted(perdure.testing.__all__) == [
        "ReplayResult",
        "Replayer",
        "VirtualClock",
        "WorkflowEnvironment",
        "WorkflowStuckError",
    ]
    for name in perdure.testing.__all__:
        assert getattr(perdure.testing, name).__name__ == name
    assert set(perdure.testing.__all__) <= set(dir(perdure.testing))
    assert issubclass(perdure.testing.WorkflowStuckError, perdure.PerdureError)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        perdure.testing.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_only_surfaces_import_the_testing_package() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).parts
        if rel[0] in ("testing", "cli"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.startswith("perdure.testing") for n in names), path
