"""The layering in DESIGN.md, enforced: each room imports only the rooms below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import perdure

PACKAGE = Path(perdure.__file__).parent

# module prefix -> perdure modules it may import (prefixes)
ALLOWED: dict[str, tuple[str, ...]] = {
    "perdure.errors": (),
    "perdure.retry": ("perdure._spans",),
    "perdure._spans": (),  # the standard library only
    "perdure._json": (),  # the standard library only
    "perdure._memo": (),  # the standard library only
    "perdure._history": ("perdure._history",),
    "perdure._converter": (
        "perdure._converter",
        "perdure._json",
        "perdure._memo",
        "perdure._spans",
        "perdure.errors",
    ),
    "perdure._store": (
        "perdure._store",
        "perdure._attributes",
        "perdure._attrfilters",
        "perdure._checks",  # (the separator of a queue and a build)
        "perdure._history",
        "perdure._json",
        "perdure._memo",
        "perdure.errors",
    ),
    "perdure._runtime": (
        "perdure._runtime",
        "perdure._attributes",
        "perdure._history",
        "perdure._converter",
        "perdure.errors",
    ),
    # The client's records (and how an update's wait reads among a run's signals).
    "perdure._views": (
        "perdure._store.base",
        "perdure._history.updates",
        "perdure._spans",
        "perdure.retry",
    ),
    "perdure._waiting": ("perdure._store.base", "perdure.errors"),  # the client's result waiters
    "perdure._gcpolicy": (),  # the standard library only
    "perdure._checks": (),  # the standard library only
    "perdure._attributes": ("perdure._checks",),  # search attributes' rules
    # A listing's attribute filters (values and ranges).
    "perdure._attrfilters": ("perdure._attributes", "perdure._checks"),
    "perdure._cron": (),  # the standard library only
}
# Names the runtime must never import: it has no clock, no randomness, no I/O.
RUNTIME_FORBIDDEN = {
    "time",
    "random",
    "uuid",
    "socket",
    "sqlite3",
    "threading",
    "datetime",
    "secrets",
    "subprocess",
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_module_imports_respect_the_layers(path: Path) -> None:
    name = module_name(path)
    rule = next((ALLOWED[p] for p in ALLOWED if name == p or name.startswith(p + ".")), None)
    if rule is None:
        return  # public API and surfaces may use everything below them
    for imported in imports_of(path):
        if imported.startswith("perdure."):
            assert imported.startswith(rule), f"{name} must not import {imported}"


def test_runtime_does_no_io_and_has_no_clock() -> None:
    for path in (PACKAGE / "_runtime").rglob("*.py"):
        bad = {i for i in imports_of(path) if i.split(".")[0] in RUNTIME_FORBIDDEN}
        assert not bad, f"{module_name(path)} imports {bad}"


def test_every_module_says_what_it_owns() -> None:
    for path in MODULES:
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc, f"{module_name(path)} has no module docstring"


def test_sqlite_path_does_not_import_postgres_driver() -> None:
    for path in MODULES:
        assert "psycopg" not in {i.split(".")[0] for i in imports_of(path)} or "postgres" in (
            path.name
        )


def test_only_the_store_speaks_sql() -> None:
    """sqlite3, psycopg and SQLAlchemy are the store's: perdure.transactions, which runs
    the application's transactions, leaves their SQL to the store too."""
    for path in MODULES:
        name = module_name(path)
        drivers = {i.split(".")[0] for i in imports_of(path)} & {"sqlite3", "psycopg", "sqlalchemy"}
        assert not drivers or name.startswith("perdure._store"), f"{name} imports {drivers}"


def test_only_contrib_imports_optional_integrations() -> None:
    """OpenTelemetry is an optional dependency: only perdure.contrib's module
    for it imports it, and nothing imports perdure.contrib."""
    for path in MODULES:
        name = module_name(path)
        imported = imports_of(path)
        if not name.startswith("perdure.contrib"):
            assert "opentelemetry" not in {i.split(".")[0] for i in imported}, name
            assert not any(i.startswith("perdure.contrib") for i in imported), name
