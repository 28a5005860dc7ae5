"""Search attribute filters: what ``Client.list(search_attributes=)``, the
batches and the ``--attr`` / ``attr=`` terms of the command line and HTTP
find runs by. A filter names, for each attribute, a value (matched as text,
``perdure._attributes.attribute_text``) or an ``AttributeRange`` (numbers by
their value, strings in code point order). The standard library only;
imports the attribute rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from perdure._attributes import (
    MAX_SEARCH_ATTRIBUTES,
    AttributeValue,
    attribute_name_problem,
    checked_attributes,
    typed_value,
)
from perdure._checks import BadName, lone_surrogate

__all__ = ["AttributeFilter", "AttributeRange", "checked_filter", "parse_filter"]

Bound = Union[int, float, str]


@dataclass(frozen=True, kw_only=True, repr=False)
class AttributeRange:
    """Runs whose search attribute lies in a range, for a listing's
    ``search_attributes`` filter: ``AttributeRange(ge=1000)``,
    ``AttributeRange(ge="2026-12-01", lt="2027-01-01")``.

    ``gt``/``ge`` bound it from below (exclusive/inclusive), ``lt``/``le``
    from above; one or two bounds, all numbers or all strings. Number bounds
    match the runs whose value is an int or a float, compared as numbers
    (as 64-bit floats: integers past 2**53 may round); string bounds match
    the runs whose value is a string, compared by code point (so ISO dates
    and times of one format compare as time does). A bool matches neither.
    """

    gt: Bound | None = None
    ge: Bound | None = None
    lt: Bound | None = None
    le: Bound | None = None

    def __post_init__(self) -> None:
        given = [(f, v) for f, v in self._fields() if v is not None]
        if not given:
            raise ValueError("an AttributeRange needs a bound: gt=, ge=, lt= or le=")
        for field, value in given:
            problem = _bound_problem(field, value)
            if problem is not None:
                raise (TypeError if "must be a number" in problem else ValueError)(problem)
        if self.gt is not None and self.ge is not None:
            raise ValueError("an AttributeRange takes gt= or ge=, not both (one lower bound)")
        if self.lt is not None and self.le is not None:
            raise ValueError("an AttributeRange takes lt= or le=, not both (one upper bound)")
        if len({isinstance(v, str) for _, v in given}) > 1:
            shown = " and ".join(f"{f}={v!r}" for f, v in given)
            raise TypeError(
                f"an AttributeRange's bounds must be all numbers or all strings, not {shown}"
            )
        low, high = self.lower, self.upper
        if low is not None and high is not None and _crossed(low, high):
            raise ValueError(f"AttributeRange({self}) matches nothing: its bounds cross")

    def _fields(self) -> list[tuple[str, Bound | None]]:
        return [("gt", self.gt), ("ge", self.ge), ("lt", self.lt), ("le", self.le)]

    @property
    def numeric(self) -> bool:
        """Whether it compares numbers (else strings)."""
        return not any(isinstance(v, str) for _, v in self._fields())

    @property
    def lower(self) -> tuple[Bound, bool] | None:
        """The lower bound and whether it is inclusive; None for none."""
        if self.ge is not None:
            return self.ge, True
        return None if self.gt is None else (self.gt, False)

    @property
    def upper(self) -> tuple[Bound, bool] | None:
        """The upper bound and whether it is inclusive; None for none."""
        if self.le is not None:
            return self.le, True
        return None if self.lt is None else (self.lt, False)

    def __str__(self) -> str:
        return ", ".join(f"{f}={v!r}" for f, v in self._fields() if v is not None)

    def __repr__(self) -> str:
        return f"AttributeRange({self})"

    def terms(self, name: str) -> list[str]:
        """Its bounds as ``--attr`` terms (``total>=1000``); a string bound
        that would read as another type is in JSON quotes."""
        ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
        return [f"{name}{ops[f]}{_term_text(v)}" for f, v in self._fields() if v is not None]


def _crossed(low: tuple[Any, bool], high: tuple[Any, bool]) -> bool:
    """Whether no value lies between a lower and an upper bound (each a
    value and whether it is inclusive)."""
    return bool(low[0] > high[0] or (low[0] == high[0] and not (low[1] and high[1])))


def _term_text(value: Bound) -> str:
    if isinstance(value, str):
        return value if typed_value(value) == value and value else _quoted(value)
    return repr(value) if isinstance(value, float) else str(value)


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _bound_problem(field: str, value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return (
            f"an AttributeRange's {field} must be a number or a string,"
            f" not {type(value).__name__} {value!r:.60}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return f"an AttributeRange's {field} must be a finite number, not {value!r}"
    if isinstance(value, str):
        lone = lone_surrogate(value)
        if lone is not None:
            return f"an AttributeRange's {field} must be valid Unicode text: it {lone}"
        if "\x00" in value:
            return f"an AttributeRange's {field} must not hold the NUL character"
    return None


AttributeFilter = Union[AttributeValue, AttributeRange]


def checked_filter(filters: object, what: str = "search_attributes") -> dict[str, Any]:
    """A checked copy of a listing's ``filters``: a mapping of attribute
    names to values or AttributeRanges. Raises TypeError or ValueError
    saying what is wrong."""
    if not isinstance(filters, Mapping):
        raise TypeError(
            f"{what} must be a dict of names to values, not {type(filters).__name__}"
            f" {filters!r:.60}"
        )
    plain = {n: v for n, v in filters.items() if not isinstance(v, AttributeRange)}
    out: dict[str, Any] = checked_attributes(plain, what=what)
    for name, value in filters.items():
        if isinstance(value, AttributeRange):
            problem = attribute_name_problem(name)
            if problem is not None:
                raise (BadName if isinstance(name, str) else TypeError)(problem)
            out[name] = value
    if len(out) > MAX_SEARCH_ATTRIBUTES:
        raise BadName(f"a filter names at most {MAX_SEARCH_ATTRIBUTES} attributes, not {len(out)}")
    return {name: out[name] for name in filters}


_OPERATORS = ("<=", ">=", "<", ">", "=")
_FIELDS = {"<=": "le", ">=": "ge", "<": "lt", ">": "gt"}
_SIDES = {"le": "upper", "lt": "upper", "ge": "lower", "gt": "lower"}


def parse_filter(terms: list[str], what: str = "--attr") -> dict[str, Any]:
    """``NAME=VALUE`` terms (a command line's, a URL's) as a filter: each
    value is text, matched as ``attribute_text`` writes stored values; and
    ``NAME>=VALUE`` (``>``, ``<=``, ``<``) bounds, a name's one or two made
    into an AttributeRange: a bound that reads as a number in JSON is a
    number, else a string (one in JSON quotes is the string inside). The
    name ends at the first ``<``, ``>`` or ``=``. Raises ValueError for a
    term without an operator or a name, a name given an equality and a
    bound, or one bound twice."""
    values: dict[str, str] = {}
    bounds: dict[str, dict[str, Bound]] = {}
    for term in terms:
        at = min((i for i in map(term.find, "<>=") if i >= 0), default=-1)
        if at <= 0:
            raise BadName(
                f"{what} takes NAME=VALUE (a search attribute and its value), or a bound"
                f" NAME>=VALUE, NAME>VALUE, NAME<=VALUE or NAME<VALUE, not {term!r}"
            )
        name, rest = term[:at], term[at:]
        op = next(o for o in _OPERATORS if rest.startswith(o))
        text = rest[len(op) :]
        if name in (bounds if op == "=" else values):
            raise BadName(f"{what} gives {name!r} a value and a bound: give the value alone")
        if op == "=":
            if name in values:
                raise BadName(f"{what} names {name!r} twice: a run has one value for each name")
            values[name] = text
            continue
        bound = typed_value(text)
        if text == "" or isinstance(bound, bool):
            raise BadName(
                f"{what} {term!r} needs a number or a string after {op!r},"
                f" not {text!r}" + (" (a bool has no order)" if text else "")
            )
        field = _FIELDS[op]
        mine = bounds.setdefault(name, {})
        if any(_SIDES[f] == _SIDES[field] for f in mine):
            raise BadName(f"{what} gives {name!r} two {_SIDES[field]} bounds: give one")
        mine[field] = bound
    checked_attributes(values, what=what)
    out: dict[str, Any] = dict(values)
    for name, given in bounds.items():
        try:
            out[name] = AttributeRange(**given)
        except (TypeError, ValueError) as exc:
            raise BadName(f"{what} {name!r}: {exc}") from None
    return checked_filter(out, what=what)
