"""perdure._json.encoder writes exactly what the standard library's encoder
writes, for every JSON value, in each configuration the engine uses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure._json import encoder

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
