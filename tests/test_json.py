"""perdure._json.encoder writes exactly what the standard library's encoder
writes, for every JSON value, in each configuration the engine uses; and
perdure._json.decoder reads exactly what json.loads reads, errors included."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure._json import decoder, encoder

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)

CONFIGS: list[dict[str, Any]] = [
    {"ensure_ascii": False},
    {"separators": (", ", ": ")},
    {"ensure_ascii": True, "allow_nan": False},
]


@pytest.mark.parametrize("config", CONFIGS)
@given(value=values)
def test_the_same_text_as_the_standard_encoder(config: dict[str, Any], value: Any) -> None:
    options = {"separators": (",", ":"), **config}
    standard = json.JSONEncoder(**options)
    try:
        expected = standard.encode(value)
    except ValueError:  # NaN or infinity, with allow_nan=False
        with pytest.raises(ValueError):
            encoder(**config)(value)
        return
    assert encoder(**config)(value) == expected


def test_what_is_not_json_is_refused() -> None:
    encode = encoder()
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode({"when": object()})
    with pytest.raises(ValueError, match="not JSON compliant"):
        encoder(allow_nan=False)([math.inf])
    # One failure leaves nothing behind for the next call.
    assert encode({"a": [1]}) == '{"a":[1]}'


def _same(text: str | bytes) -> None:
    """decoder()(text) gives what json.loads gives, or raises what it raises."""
    try:
        expected = json.loads(text)
    except (ValueError, TypeError) as error:
        with pytest.raises(type(error)) as raised:
            decoder()(text)  # type: ignore[arg-type]
        assert str(raised.value) == str(error)
        return
    got = decoder()(text)  # type: ignore[arg-type]
    # (repr: NaN is not equal to itself, and 1 == 1.0 == True would pass for a wrong type)
    assert repr(got) == repr(expected)


@given(value=values, spaced=st.booleans())
def test_the_same_values_as_json_loads(value: Any, spaced: bool) -> None:
    _same(json.dumps(value, indent=1 if spaced else None, ensure_ascii=spaced))


@given(text=st.text(alphabet=' \t\n{}[]":,0123456789.eE+-aeflnrstu\\\ufeff', max_size=30))
def test_the_same_errors_as_json_loads(text: str) -> None:
    _same(text)


@pytest.mark.parametrize(
    "text",
    [
        ' {"a": 1}',  # whitespace before
        '{"a": 1}\n',  # and after
        '{"a": 1} {"b": 2}',  # extra data
        '{"a": 1',  # cut short
        "",
        "\ufeff{}",  # a byte order mark
        b'{"a": [1, 2.5, null]}',  # bytes, which json.loads also reads
        "NaN",
        '"caf\u00e9"',
    ],
)
def test_the_edges_json_loads_treats_on_its_own(text: str | bytes) -> None:
    _same(text)
