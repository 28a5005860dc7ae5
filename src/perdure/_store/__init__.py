"""The store layer: the Store interface, its backends, and database URLs.

May import the history model and errors; never the runtime, worker or client.
The PostgreSQL backend (and psycopg) is imported only for a PostgreSQL URL.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from perdure._store.base import Store
from perdure.errors import StoreError

DEFAULT_URL = "sqlite:///perdure.db"

__all__ = ["DEFAULT_URL", "Store", "postgres_module", "resolve_url", "store_for_url"]


def resolve_url(url: str | None) -> str:
    """The URL to use: the given one, else ``$PERDURE_DB``, else ``sqlite:///perdure.db``.
    An empty URL is refused: it had quietly meant the default, so a program
    whose URL setting came out empty used a local file that no worker serves."""
    if url is not None and not (isinstance(url, str) and url):
        raise StoreError(
            f"the database URL must be a non-empty string (or None for $PERDURE_DB, "
            f"else {DEFAULT_URL}), not {type(url).__name__} {url!r}"
        )
    return url or os.environ.get("PERDURE_DB") or DEFAULT_URL


# A SQLite URL's parameters (``?name=value``), with the values each accepts.
SQLITE_PARAMETERS = {
    # Where the store's transactions run: on the event loop's own thread (the
    # default and the faster; the loop stands still while its commit syncs),
    # or on the store's thread (the loop never does). See docs/operations.md.
    "transactions": ("loop", "thread"),
}


def sqlite_parameters(url: str) -> dict[str, str]:
    """The ``?name=value&...`` parameters of a SQLite URL, checked."""
    query = url.partition("?")[2]
    found: dict[str, str] = {}
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        accepted = SQLITE_PARAMETERS.get(name)
        if accepted is None:
            raise StoreError(
                f"unknown parameter {name!r} in SQLite URL {url!r}: "
                f"known are {', '.join(sorted(SQLITE_PARAMETERS))}"
            )
        if value not in accepted:
            raise StoreError(
                f"bad value in SQLite URL {url!r}: {name}={value} "
                f"(expected {' or '.join(repr(a) for a in accepted)})"
            )
        found[name] = value
    return found


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``;
    ``sqlite://:memory:`` -> ``:memory:`` (parameters after ``?`` dropped).
    The path is percent-decoded, as a URL's is: ``%3F`` for a ``?`` in it,
    ``%25`` for a ``%``, ``%20`` (or a space) for a space."""
    rest = url.partition("?")[0][len("sqlite:") :]
    if rest in ("//:memory:", "///:memory:", ":memory:"):
        return ":memory:"
    if not rest.startswith("///") or len(rest) == 3:
        raise StoreError(
            f"malformed SQLite URL {url!r}: use sqlite:///relative/path.db, "
            f"sqlite:////absolute/path.db or sqlite://:memory:"
        )
    return unquote(rest[3:])


def postgres_module(name: str) -> ModuleType:
    """``perdure._store.<name>``, a module that imports psycopg: imported only
    when a PostgreSQL URL is used, so that SQLite users never import (or
    need) the driver; a StoreError that says how to install it if missing."""
    try:
        return importlib.import_module(f"perdure._store.{name}")
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreError(
            f"PostgreSQL URLs need the psycopg driver, which is not installed ({exc}): "
            f"pip install perdure[postgres]"
        ) from exc


def store_for_url(url: str, *, clock: Callable[[], float] | None = None) -> Store:
    """A Store (not yet opened) for a database URL."""
    if url.startswith("sqlite:"):
        from perdure._store.sqlite import SqliteStore

        path, parameters = sqlite_path(url), sqlite_parameters(url)
        on_loop = parameters.get("transactions", "loop") == "loop"
        return SqliteStore(path, clock=clock, rounds_on_loop=on_loop)
    if url.startswith(("postgresql:", "postgres:")):
        postgres: Any = postgres_module("postgres")
        return postgres.PostgresStore(url, clock=clock)  # type: ignore[no-any-return]
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise StoreError(
        f"unsupported database URL {url!r} (scheme {scheme!r}): expected sqlite:///path.db, "
        f"sqlite://:memory: or postgresql://user@host/db"
    )
