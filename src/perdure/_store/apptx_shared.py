"""What both backends of ``perdure.transactions`` share: the outputs table's
statements (its name checked), how often old records are deleted, and the
error for a function that ended its own transaction. Imports the errors.
"""

from __future__ import annotations

import logging
import re
from typing import NamedTuple

from perdure.errors import ApplicationError

__all__ = ["PRUNE_EVERY", "OutputsSql", "check_table", "prune_failed", "transaction_ended"]

# Seconds between two deletions of old records by one process.
PRUNE_EVERY = 3600.0

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")

_log = logging.getLogger("perdure.transactions")


def check_table(name: object) -> str:
    """``name`` if it can name the outputs table (``table`` or ``schema.table``)."""
    if not isinstance(name, str) or not _TABLE.fullmatch(name):
        raise ValueError(
            f"table must be a plain SQL name, 'name' or 'schema.name' (letters, digits "
            f"and underscores, not starting with a digit), not {name!r}"
        )
    return name


class OutputsSql(NamedTuple):
    """The statements on the outputs table: one row per committed
    transaction, its key the activity's idempotency key."""

    create: tuple[str, ...]
    read: str  # the result recorded for a key
    insert: str  # (key, result[, committed_at])
    prune: str  # the records committed before a time


def outputs_sql(outputs_table: str, *, mark: str, stamp_type: str, stamp_now: str) -> OutputsSql:
    """The statements on ``outputs_table`` (checked here: a plain SQL name),
    with the dialect's placeholder ``mark``, the type of the ``committed_at``
    column, and the default that column takes (empty: the caller gives it)."""
    check_table(outputs_table)
    assert mark in ("?", "%s") and stamp_type in ("REAL", "timestamptz"), (mark, stamp_type)
    assert stamp_now in ("", "now()"), stamp_now
    outputs_index = f"{outputs_table.rpartition('.')[2]}_committed_at"
    stamp_default = f" DEFAULT {stamp_now}" if stamp_now else ""
    return OutputsSql(
        create=(
            f"CREATE TABLE IF NOT EXISTS {outputs_table} (key TEXT PRIMARY KEY, "
            f"result TEXT NOT NULL, committed_at {stamp_type} NOT NULL{stamp_default})",
            f"CREATE INDEX IF NOT EXISTS {outputs_index} ON {outputs_table} (committed_at)",
        ),
        read=f"SELECT result FROM {outputs_table} WHERE key = {mark}",
        insert=(
            f"INSERT INTO {outputs_table} (key, result) VALUES ({mark}, {mark})"
            if stamp_now
            else f"INSERT INTO {outputs_table} (key, result, committed_at) "
            f"VALUES ({mark}, {mark}, {mark})"
        ),
        prune=f"DELETE FROM {outputs_table} WHERE committed_at < {mark}",
    )


def transaction_ended(what: str) -> ApplicationError:
    """The error for a transaction function that ended (or tried to end) its
    transaction itself. Not retryable: the code would do it again."""
    return ApplicationError(
        f"the transaction function tried to end its transaction ({what}): perdure commits the "
        f"transaction itself, with the record that makes its writes happen once, so the "
        f"function must not begin, commit or roll back (a savepoint may undo part of its work)",
        non_retryable=True,
        type="TransactionError",
    )


def prune_failed(table: str, exc: BaseException) -> None:
    _log.warning("could not delete old records from %s (tried again later): %s", table, exc)
