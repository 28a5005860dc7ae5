"""The converter's coders by hint (``encoder_for``, ``decoder_for``) do the
common cases directly and hand the rest to ``_encode`` and ``_decode``: for
every hint and every value, the outcome must be exactly theirs, the same
objects of the same types or the same error with the same path."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, MutableSequence, Sequence
from typing import Annotated, Any, NewType, Optional, Union

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure._converter import DataConverter
from perdure._converter.values import _decode, _encode, _Failure, decoder_for, encoder_for
from perdure.errors import PayloadError

UserId = NewType("UserId", str)


class Text(str):
    """A str subclass: the coders must not take it for a str."""


class Table(dict):  # type: ignore[type-arg]
    """A dict subclass."""


HINTS: list[Any] = [
    Any,
    object,
    str,
    int,
    bool,
    float,
    dict,
    list,
    dict[str, Any],
    dict[str, int],
    dict[str, str],
    dict[Any, Any],
    dict[int, str],
    Mapping[str, list[int]],
    dict[str, dict[str, bool]],
    list[Any],
    list[int],
    list[dict[str, Any]],
    Sequence[str],
    MutableSequence[float],
    tuple[int, ...],
    set[int],
    Annotated[dict[str, int], "meta"],
    UserId,
    int | None,
    dict[str, int | str],
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["\ud800", "é", Text("x"), Text("ü"), -0.0, 1e300])
)
keys = st.text(max_size=4) | st.integers(-3, 3) | st.sampled_from([Text("k"), "\udc80", True])
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(keys, inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=2).map(Table)
    ),
    max_leaves=10,
)
# What the store gives back: JSON only (lists, str keys).
stored = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def outcome(step: Any, value: Any) -> tuple[str, Any]:
    try:
        return "value", step(value)
    except _Failure as failure:
        return "failure", (failure.message, list(failure.path))
    except RecursionError:
        return "recursion", None


def assert_same_outcome(fast: tuple[str, Any], slow: tuple[str, Any]) -> None:
    assert fast[0] == slow[0]
    if fast[0] == "value":
        assert same(fast[1], slow[1]), (fast[1], slow[1])
    else:
        assert fast[1] == slow[1]


@pytest.mark.parametrize("hint", HINTS, ids=repr)
@given(value=values)
def test_encoder_for_does_what_encode_does(hint: Any, value: Any) -> None:
    fast = outcome(encoder_for(hint), value)
    slow = outcome(lambda v: _encode(v, hint), value)
    assert_same_outcome(fast, slow)


@pytest.mark.parametrize("hint", HINTS, ids=repr)
@given(data=stored | values)
def test_decoder_for_does_what_decode_does(hint: Any, data: Any) -> None:
    fast = outcome(decoder_for(hint), data)
    slow = outcome(lambda d: _decode(d, hint), data)
    assert_same_outcome(fast, slow)


# Each case the quick paths must send to the slow one, for every hint.
TRICKY: list[Any] = [
    {"\udc80": 1},
    {"é": 1},
    {Text("k"): 1},
    {1: "one"},
    {True: 1},
    Table(a=1),
    [1, "\ud800"],
    [True, 1],
    ("a", 1),
    {"a": math.nan},
    {"a": [1, "x"]},
    "\ud800",
    Text("x"),
    True,
]


@pytest.mark.parametrize("hint", HINTS, ids=repr)
@pytest.mark.parametrize("value", TRICKY, ids=repr)
def test_coders_on_the_tricky_cases(hint: Any, value: Any) -> None:
    assert_same_outcome(
        outcome(encoder_for(hint), value), outcome(lambda v: _encode(v, hint), value)
    )
    assert_same_outcome(
        outcome(decoder_for(hint), value), outcome(lambda d: _decode(d, hint), value)
    )


def test_decoded_containers_are_fresh_copies() -> None:
    data = {"a": [1, {"b": 2}]}
    for hint in (Any, dict[str, Any], dict[str, list[Any]]):
        decoded = decoder_for(hint)(data)
        assert decoded == data
        decoded["a"].append(3)
        assert data == {"a": [1, {"b": 2}]}
    items = [[1], [2]]
    decoded_list = decoder_for(list[list[int]])(items)
    decoded_list[0].append(9)
    assert items == [[1], [2]]


def test_errors_name_where_and_what_through_the_quick_path() -> None:
    converter = DataConverter()
    with pytest.raises(PayloadError, match=r"cannot encode value at \['n'\]\[1\]: expected int"):
        converter.to_json({"n": [1, "two"]}, dict[str, list[int]])
    with pytest.raises(PayloadError, match=r"cannot decode result at \['k'\]: expected int"):
        converter.from_json({"k": "v"}, dict[str, int], where="result")
    with pytest.raises(PayloadError, match="lone surrogate"):
        converter.to_json({"k": "\ud800"}, dict[str, Any])
    with pytest.raises(PayloadError, match="not valid JSON"):
        converter.to_json([math.nan], list[Any])
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(PayloadError, match="nested too deeply, or contains itself"):
        converter.to_json(circular, list[Any])


def test_unhashable_hints_still_work() -> None:
    # Annotated metadata may be unhashable: the coder is built each time, not cached.
    hint = Annotated[dict[str, int], {"unhashable": []}]
    assert encoder_for(hint)({"a": 1}) == {"a": 1}
    assert decoder_for(hint)({"a": 1}) == {"a": 1}


def test_equal_hints_written_differently_keep_their_own_order_and_name() -> None:
    # Union[A, B] == Union[B, A] (and they hash alike), but a union tries its
    # members in order: the caches go by the hint object, not by equality.
    @dataclasses.dataclass
    class A:
        x: int

    @dataclasses.dataclass
    class B:
        x: int

    converter = DataConverter()
    assert type(converter.from_json({"x": 1}, Union[A, B])) is A
    assert type(converter.from_json({"x": 1}, Union[B, A])) is B
    assert type(converter.from_json({"x": 1}, A | B)) is A
    assert type(converter.from_json({"x": 1}, B | A)) is B
    with pytest.raises(PayloadError, match=r"expected Optional\[int\]"):
        converter.to_json("x", Optional[int])
    with pytest.raises(PayloadError, match=r"expected int \| None"):
        converter.to_json("x", int | None)
