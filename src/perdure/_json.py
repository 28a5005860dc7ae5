"""A faster ``JSONEncoder.encode``, and ``json.loads``, for the hot paths (the
standard library only).

``json.JSONEncoder.encode`` builds a new C encoder object, and a dict of the
containers it has entered, on every call: about 0.7 µs, which is most of the
cost of encoding a small event. :func:`encoder` builds the C encoder once.
It keeps no such dict, so a circular value ends in ``RecursionError`` (where the
standard encoder raises ``ValueError``); callers encode trees (decoded JSON, or
the converter's output, which is checked for cycles before it gets here).
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
from collections.abc import Callable
from typing import Any


def encoder(
    *,
    separators: tuple[str, str] = (",", ":"),
    ensure_ascii: bool = True,
    allow_nan: bool = True,
) -> Callable[[Any], str]:
    """``json.JSONEncoder(check_circular=False, ...).encode``, compact by default,
    as a function that reuses one C encoder."""
    standard = json.JSONEncoder(
        separators=separators,
        ensure_ascii=ensure_ascii,
        allow_nan=allow_nan,
        check_circular=False,
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return standard.encode
    c_encode = make(
        None,
        standard.default,
        json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring,
        None,
        separators[1],
        separators[0],
        False,
        False,
        allow_nan,
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(c_encode(value, 0))

    return encode


def decoder() -> Callable[[str], Any]:
    """``json.loads``, as a function that reuses one C scanner. ``json.loads``
    goes through ``JSONDecoder.decode``, which matches whitespace around the
    value with two regular expressions: about 0.7 µs a call, more than the
    scan itself for the small texts the store reads (a run's state, an
    event). Whatever the scanner does not take whole in one go (whitespace
    around the value, bytes, something that is not JSON) goes to
    ``json.loads``, so results and errors are exactly its own."""
    make = getattr(json.scanner, "c_make_scanner", None)
    if make is None:  # an interpreter without the C accelerator
        return json.loads
    scan = make(json.JSONDecoder())
    loads = json.loads

    def decode(text: str) -> Any:
        try:
            value, end = scan(text, 0)
        except (StopIteration, ValueError, TypeError):
            return loads(text)
        return value if end == len(text) else loads(text)

    return decode
