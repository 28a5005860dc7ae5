"""``perdure start``'s debounce options (``--debounce-key``, ``--debounce``,
``--debounce-max``), checked into Client.debounce's arguments
(docs/workflows.md, "Debouncing"). Imports the public API's checks and
span helpers, and the CLI's span parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import typer

from perdure._activityoptions import MAX_SPAN
from perdure._checks import name_problem
from perdure._spans import span_text
from perdure.cli._schedule_cmd import parse_span

__all__ = ["Debounce", "DebounceKeyOption", "DebounceMaxOption", "DebounceOption", "debounce_of"]

DebounceKeyOption = typer.Option(
    None,
    "--debounce-key",
    metavar="KEY",
    help="Debounce the start: a burst of starts with this key (and workflow) makes one "
    "run, with the last start's arguments (docs/workflows.md, Debouncing); needs "
    "--debounce. The run's id is generated: not with --id or --id-conflict.",
)
DebounceOption = typer.Option(
    None,
    "--debounce",
    metavar="DURATION",
    help="With --debounce-key: start the run this long after the burst's last start (30s, 5m, 2h).",
)
DebounceMaxOption = typer.Option(
    None,
    "--debounce-max",
    metavar="DURATION",
    help="With --debounce-key: start it no later than this long after the burst's first start.",
)


@dataclass(frozen=True)
class Debounce:
    """``start``'s debounce options, checked: Client.debounce's arguments."""

    key: str
    delay: timedelta
    max_delay: Optional[timedelta]

    def text(self) -> str:
        most = (
            ""
            if self.max_delay is None
            else f" (at most {span_text(self.max_delay)} after the first)"
        )
        return f"it starts {span_text(self.delay)} after the last start with key {self.key!r}{most}"


def _positive_span(text: str, option: str) -> timedelta:
    span = parse_span(text, option)
    if not timedelta(0) < span <= MAX_SPAN:
        raise typer.BadParameter(
            f"{text!r}: must be more than 0 and at most 36525d", param_hint=option
        )
    return span


def debounce_of(
    key: Optional[str], delay: Optional[str], most: Optional[str], *refused: tuple[str, object]
) -> Optional[Debounce]:
    """``start``'s ``--debounce-key``, ``--debounce`` and ``--debounce-max``
    (None: none of them), checked; ``refused``: the options a debounced run
    refuses, as (option, value or None): its id is generated. Exit 2 for a bad
    value or combination."""
    if key is None and delay is None and most is None:
        return None
    if key is None or delay is None:
        pair = (("--debounce-key", key), ("--debounce", delay))
        missing = [option for option, value in pair if value is None]
        given = [option for option, value in pair if value is not None] or ["--debounce-max"]
        raise typer.BadParameter(f"needs {' and '.join(missing)}", param_hint=f"'{given[0]}'")
    for option, value in refused:
        if value is not None:
            raise typer.BadParameter(
                "cannot be given with --debounce-key: a debounced run's id is generated",
                param_hint=f"'{option}'",
            )
    problem = name_problem("the key", key) if key else "must not be empty"
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="'--debounce-key'")
    longest = None if most is None else _positive_span(most, "'--debounce-max'")
    return Debounce(key, _positive_span(delay, "'--debounce'"), longest)
