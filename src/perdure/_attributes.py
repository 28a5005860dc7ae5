"""Search attributes: the rules for their names and values, and the text a
value is indexed and matched by. Used by the client (a start's attributes,
a listing's filter), the runtime (``workflow.set_search_attributes``), the
store and the command line and HTTP surfaces. The standard library only.

A run's search attributes are a few named values (a customer id, an order
number, a region) that ``Client.list`` can find runs by. Values are strings,
integers, floats or booleans; they match as text (``attribute_text``), so
that a filter typed on a command line or in a URL finds what code stored:
``120``, ``120.0`` and ``"120"`` are one value, ``True`` is ``"true"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from perdure._checks import BadName, name_problem

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_SEARCH_ATTRIBUTES",
    "MAX_VALUE_CHARS",
    "AttributeValue",
    "attribute_kind",
    "attribute_name_problem",
    "attribute_text",
    "checked_attributes",
    "merged",
    "parse_terms",
    "typed_value",
]

AttributeValue = str | int | float | bool

MAX_SEARCH_ATTRIBUTES = 32  # names on one run
MAX_NAME_CHARS = 100
MAX_VALUE_CHARS = 400  # a string value's (indexed: with its name, at most 2,000 bytes in UTF-8)


def attribute_text(value: AttributeValue) -> str:
    """The text a value is indexed and matched by: a string as it is, a bool
    as ``true``/``false``, a number as JSON writes it (an integral float as
    an integer)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _value_problem(name: str, value: object, removal: bool) -> str | None:
    if value is None and removal:
        return None
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            return (
                f"search attribute {name!r} is a string of {len(value):,} characters;"
                f" at most {MAX_VALUE_CHARS} are indexed"
            )
        return name_problem(f"search attribute {name!r}", value) if value else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if len(text := attribute_text(value)) > MAX_VALUE_CHARS:
            return (
                f"search attribute {name!r} is an integer of {len(text):,} digits;"
                f" at most {MAX_VALUE_CHARS} are indexed"
            )
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"search attribute {name!r} is {value!r}"
    allowed = "a str, int, float or bool" + (" (or None to remove it)" if removal else "")
    return f"search attribute {name!r} must be {allowed}, not {type(value).__name__} {value!r:.60}"


def attribute_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a search attribute, or None if it can."""
    if not isinstance(name, str):
        return f"a search attribute's name must be a str, not {type(name).__name__} {name!r:.60}"
    problem = name_problem("a search attribute's name", name)
    if problem is None and len(name) > MAX_NAME_CHARS:
        problem = (
            f"a search attribute's name is at most {MAX_NAME_CHARS} characters, not {len(name)}"
        )
    return problem


def attribute_kind(value: AttributeValue) -> tuple[str, float | None]:
    """How the store orders a value in a range (``AttributeRange``): ``"n"``
    and the number for an int or a float (an int past a float's range as an
    infinity of its sign), ``"s"`` for a string, ``"b"`` for a bool (never
    in a range), with no number."""
    if isinstance(value, bool):
        return "b", None
    if isinstance(value, int):
        try:
            return "n", float(value)
        except OverflowError:
            return "n", math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return "n", value
    return "s", None


def typed_value(text: str) -> AttributeValue:
    """A search attribute's value typed as text (a command line's, a URL's):
    the int, float or bool it reads as in JSON (``120``, ``0.5``, ``-3``,
    ``true``), the string inside JSON quotes (``"1001"``: so that a string
    of digits can be given as one), else the text itself (``c-42``, ``007``,
    ``NaN``, ``null``, `` 7`` with its space)."""
    if text != text.strip():
        return text
    try:
        value = json.loads(text, parse_constant=lambda constant: text)
    except ValueError:
        return text
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return text  # (1e999, a JSON array, object or null: the text as typed)


def checked_attributes(
    attributes: object, *, removal: bool = False, what: str = "search_attributes"
) -> dict[str, Any]:
    """A checked copy of ``attributes``, a mapping of names to values (None
    too, with ``removal``: the name is removed). Raises TypeError or
    ValueError saying what is wrong."""
    if not isinstance(attributes, Mapping):
        raise TypeError(
            f"{what} must be a dict of names to values, not {type(attributes).__name__}"
            f" {attributes!r:.60}"
        )
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        problem = attribute_name_problem(name)
        if problem is not None:
            raise (BadName if isinstance(name, str) else TypeError)(problem)
        problem = _value_problem(name, value, removal)
        if problem is not None:
            raise (TypeError if "must be a str, int" in problem else BadName)(problem)
        out[name] = value
    if len(out) > MAX_SEARCH_ATTRIBUTES:
        raise BadName(
            f"a run has at most {MAX_SEARCH_ATTRIBUTES} search attributes, not {len(out)}"
        )
    return out


def merged(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes`` applied (None removes a name); raises
    ValueError if the run would have more than MAX_SEARCH_ATTRIBUTES."""
    out = dict(current)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    if len(out) > MAX_SEARCH_ATTRIBUTES:
        raise BadName(
            f"a run has at most {MAX_SEARCH_ATTRIBUTES} search attributes; these changes"
            f" would give it {len(out)}"
        )
    return out


def parse_terms(terms: list[str], what: str = "--attr") -> dict[str, str]:
    """``NAME=VALUE`` terms (a command line's) as a run's attributes, each
    value as text (``typed_value`` types it). Raises ValueError for a term
    without ``=``, with an empty name, or naming one given before."""
    out: dict[str, str] = {}
    for term in terms:
        name, sep, value = term.partition("=")
        if not sep or not name:
            raise BadName(
                f"{what} takes NAME=VALUE (a search attribute and its value), not {term!r}"
            )
        if name in out:
            raise BadName(f"{what} names {name!r} twice: a run has one value for each name")
        out[name] = value
    checked_attributes(out, what=what)
    return out
