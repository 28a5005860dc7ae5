"""Values to JSON-able objects and back, steered by type hints (read in ``.hints``).

Stateless: :class:`~perdure._converter.DataConverter` calls :func:`_encode` and
:func:`_decode` for every payload and keeps what happens at rest (codecs, size
limits, envelopes). A mismatch raises :class:`_Failure`, which collects the path
to the offending part on its way out; the converter turns it into a
PayloadError that says where.
Imports the hint reader and the identity memo.
"""

from __future__ import annotations

import base64
import collections.abc as abc
import dataclasses
import enum
import itertools
import json
import math
import types
import typing
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, Union, get_origin
from uuid import UUID

from perdure._converter.hints import _fields_of, _is_model, _is_record, _split
from perdure._memo import by_identity
from perdure._spans import span_of

JSON = Any
"""A JSON-able Python object: dict (with str keys), list, str, int, float, bool or None."""

_NONE = type(None)
_UNIONS: frozenset[Any] = frozenset({Union, types.UnionType})
_LISTS: frozenset[Any] = frozenset(
    {list, abc.Sequence, abc.MutableSequence, abc.Collection, abc.Iterable}
)
_SETS: dict[Any, Any] = {set: set, frozenset: frozenset, abc.Set: frozenset, abc.MutableSet: set}
_DICTS: frozenset[Any] = frozenset({dict, abc.Mapping, abc.MutableMapping})
_JSON_SCALARS: frozenset[type] = frozenset({str, int, float, bool, _NONE})
# Types written as a string, and how to read each back.
_PARSERS: dict[Any, Callable[[str], Any]] = {
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    time: time.fromisoformat,
    UUID: UUID,
    Decimal: Decimal,
    bytes: lambda text: base64.b64decode(text, validate=True),
    bytearray: lambda text: bytearray(base64.b64decode(text, validate=True)),
}


class _Failure(Exception):
    """A mismatch deep inside a value. Each container on the way out adds its path segment,
    so the success path pays nothing for error locations."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []  # innermost segment first


def _name(hint: Any) -> str:
    if hint is None or hint is _NONE:
        return "None"
    if isinstance(hint, type) and get_origin(hint) is None:
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


def _found(value: Any) -> str:
    if value is None:
        return "None"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _mismatch(hint: Any, value: Any) -> _Failure:
    return _Failure(f"expected {_name(hint)}, got {_found(value)}")


def _parse(parse: Callable[[Any], Any], hint: Any, data: Any) -> Any:
    try:
        return parse(data)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise _mismatch(hint, data) from error


def _matches(value: Any, cls: Any) -> bool:
    """Whether ``value`` may be encoded where ``cls`` is declared."""
    if cls is None or cls is _NONE:
        return value is None
    if cls is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if cls is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if cls in _LISTS and isinstance(value, (str, bytes, bytearray)):
        return False  # a str is a Sequence, but never the one the hint means
    if typing.is_typeddict(cls):
        return isinstance(value, dict)
    try:
        return isinstance(value, cls)
    except TypeError:  # not usable with isinstance (a non-runtime Protocol, ...)
        return False


def _check_text(text: str) -> str:
    """``text`` if it can be stored as UTF-8; a lone surrogate (``"\\ud800"``, from a
    bad decode) cannot, and would fail later, in the database driver."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start]
        raise _Failure(
            f"string contains the lone surrogate {bad!r} at index {error.start}, which is "
            f"not valid Unicode text and cannot be stored"
        ) from None
    return text


def _sort(items: list[JSON]) -> list[JSON]:
    try:
        return sorted(items)
    except TypeError:  # mixed or unorderable items: order by their canonical text
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


# ---------------------------------------------------------------- encoding


# Hints that a value of exactly that class meets as it is (str: once its text
# is checked). The common case, answered before the hint is taken apart.
_SAME: frozenset[type] = frozenset({str, int, bool})


def _encode(value: Any, hint: Any) -> JSON:
    if hint is Any or hint is object:
        return _encode_value(value)
    if hint is type(value) and hint in _SAME:
        return value if hint is not str or value.isascii() else _check_text(value)
    origin, args = _split(hint)
    if origin is Any or origin is object:
        return _encode_value(value)
    if origin in _UNIONS:
        return _encode_union(value, hint, args)
    if origin is Literal:
        if any(type(value) is type(arg) and value == arg for arg in args):
            return _encode_value(value)
        raise _mismatch(hint, value)
    if not _matches(value, origin):
        raise _mismatch(hint, value)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise _Failure(f"expected {_name(hint)}, got {len(value)} items")
        return _encode_items(value, args)
    if origin is tuple or origin in _LISTS:
        return _encode_items(value, itertools.repeat(args[0] if args else Any))
    if origin in _SETS:
        return _sort(_encode_items(value, itertools.repeat(args[0] if args else Any)))
    if origin in _DICTS:
        return _encode_dict(value, *(args or (Any, Any)))
    if typing.is_typeddict(origin):
        return _encode_record(value, origin)
    return _encode_value(value)  # a class matched: the value's own type knows the rest


def _encode_value(value: Any) -> JSON:
    """Encode by the value's runtime type: the hint said nothing more."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        if kind is str:
            return value if value.isascii() else _check_text(value)
        if kind is float and not math.isfinite(value):
            raise _Failure(f"{value!r} is not valid JSON (NaN and infinities cannot be stored)")
        return value
    if isinstance(value, enum.Enum):
        return _encode_value(value.value)
    if isinstance(value, (str, int, float)):
        if isinstance(value, str) and not value.isascii():
            _check_text(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise _Failure(f"{value!r} is not valid JSON (NaN and infinities cannot be stored)")
        return value  # subclasses, which json writes as their base type
    if isinstance(value, tuple) and hasattr(kind, "_fields"):
        return _encode_record(value, kind)
    if isinstance(value, (list, tuple)):
        return _encode_items(value, itertools.repeat(Any))
    if isinstance(value, dict):
        return _encode_dict(value, Any, Any)
    if isinstance(value, (set, frozenset)):
        return _sort(_encode_items(value, itertools.repeat(Any)))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_record(value, kind)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if _is_model(kind):
        try:
            return value.model_dump(mode="json")
        except Exception as error:  # pydantic's serialisation errors, or a user serialiser's
            raise _Failure(f"cannot dump {kind.__qualname__}: {error}") from error
    raise _Failure(f"object of type {kind.__qualname__} is not JSON-serialisable")


def _encode_union(value: Any, hint: Any, members: tuple[Any, ...]) -> JSON:
    if value is None and _NONE in members:
        return None
    best: _Failure | None = None
    for member in members:
        try:
            return _encode(value, member)
        except _Failure as failure:
            if best is None or len(failure.path) > len(best.path):
                best = failure
    # The member that got furthest into the value explains the problem best.
    raise best if best is not None and best.path else _mismatch(hint, value)


def _encode_items(value: Any, hints: Iterable[Any]) -> list[JSON]:
    out: list[JSON] = []
    for index, (item, hint) in enumerate(zip(value, hints, strict=False)):
        try:
            out.append(_encode(item, hint))
        except _Failure as failure:
            failure.path.append(f"[{index}]")
            raise
    return out


def _encode_dict(value: Any, key_hint: Any, value_hint: Any) -> JSON:
    out: dict[str, JSON] = {}
    for key, item in value.items():
        try:
            text = _encode(key, key_hint)
            if type(text) is int:
                text = str(text)
            elif type(text) is not str:
                raise _Failure(f"a dict key of type {type(key).__qualname__} is not supported")
            if text in out:
                raise _Failure(f"two keys are both written as {text!r}")
            out[text] = _encode(item, value_hint)
        except _Failure as failure:
            failure.path.append(f"[{key!r}]")
            raise
    return out


def _encode_record(value: Any, cls: type) -> JSON:
    fields = _fields_of(cls)
    is_dict = isinstance(value, dict)  # a TypedDict
    if is_dict and (unknown := [key for key in value if key not in fields]):
        raise _Failure(f"unknown keys for {cls.__qualname__}: {', '.join(map(str, unknown))}")
    out: dict[str, JSON] = {}
    for name, (hint, _) in fields.items():
        if is_dict and name not in value:
            continue
        try:
            out[name] = _encode(value[name] if is_dict else getattr(value, name), hint)
        except _Failure as failure:
            failure.path.append(f".{name}")
            raise
    return out


# ---------------------------------------------------------------- decoding


def fresh(data: JSON) -> Any:
    """``data`` with its containers copied. A decoded value belongs to the code
    it is handed to, which may change it; the stored form it came from (an
    event of the history, still to be written) must not change with it."""
    kind = type(data)
    if kind is dict:
        return {key: fresh(item) for key, item in data.items()}
    if kind is list:
        return [fresh(item) for item in data]
    return data


def _decode(data: JSON, hint: Any) -> Any:
    if hint is Any or hint is object:
        return fresh(data)
    if hint is type(data) and hint in _SAME:
        return data
    origin, args = _split(hint)
    kind = type(data)
    if origin in (bool, int, str):
        if kind is origin:
            return data
    elif origin is float or origin is timedelta:
        if kind is int or kind is float:
            return _parse(float if origin is float else span_of, hint, data)
    elif origin in _PARSERS:
        if kind is str:
            return _parse(_PARSERS[origin], hint, data)
    elif origin is None or origin is _NONE:
        if data is None:
            return None
    elif origin is Any or origin is object:
        return fresh(data)
    elif origin in _UNIONS:
        return _decode_union(data, hint, args)
    elif origin is Literal:
        for arg in args:
            written = arg.value if isinstance(arg, enum.Enum) else arg
            if type(written) is kind and written == data:
                return arg
    elif origin is tuple or origin in _LISTS or origin in _SETS:
        if kind is list:
            return _decode_sequence(data, hint, origin, args)
    elif origin in _DICTS:
        if kind is dict:
            return _decode_dict(data, *(args or (Any, Any)))
    elif isinstance(origin, type):
        return _decode_class(data, hint, origin)
    else:
        raise _Failure(f"unsupported type hint {_name(hint)}")
    raise _mismatch(hint, data)


def _decode_union(data: JSON, hint: Any, members: tuple[Any, ...]) -> Any:
    # A number goes to a member of exactly its type first: 3 stays an int in `float | int`.
    if type(data) in (int, float) and type(data) in members:
        members = (type(data), *members)
    best: _Failure | None = None
    for member in members:
        try:
            return _decode(data, member)
        except _Failure as failure:
            if best is None or len(failure.path) > len(best.path):
                best = failure
    raise best if best is not None and best.path else _mismatch(hint, data)


def _decode_sequence(data: list[JSON], hint: Any, origin: Any, args: Any) -> Any:
    hints: Iterable[Any] = itertools.repeat(args[0] if args else Any)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(data) != len(args):
            raise _Failure(f"expected {_name(hint)}, got {len(data)} items")
        hints = args
    items: list[Any] = []
    for index, (item, item_hint) in enumerate(zip(data, hints, strict=False)):
        try:
            items.append(_decode(item, item_hint))
        except _Failure as failure:
            failure.path.append(f"[{index}]")
            raise
    if origin is tuple:
        return tuple(items)
    if origin in _SETS:
        try:
            return _SETS[origin](items)
        except TypeError as error:  # unhashable items, e.g. set[list[int]]
            raise _Failure(f"cannot build {_name(hint)}: {error}") from error
    return items


def _decode_dict(data: dict[str, JSON], key_hint: Any, value_hint: Any) -> Any:
    out: dict[Any, Any] = {}
    for key, item in data.items():
        try:
            out[_decode_key(key, key_hint)] = _decode(item, value_hint)
        except _Failure as failure:
            failure.path.append(f"[{key!r}]")
            raise
    return out


def _decode_key(key: str, hint: Any) -> Any:
    if hint is int:
        return _parse(int, hint, key)
    try:
        return _decode(key, hint)
    except _Failure as failure:
        try:  # the key may have been an int (or an int-valued enum) before it was written
            number = int(key)
        except ValueError:
            raise failure from None
        return _decode(number, hint)


def _decode_class(data: JSON, hint: Any, cls: type) -> Any:
    if issubclass(cls, enum.Enum):
        return _parse(cls, hint, data)
    if _is_record(cls):
        return _decode_record(data, hint, cls)
    if _is_model(cls):
        try:
            return cls.model_validate(data)  # type: ignore[attr-defined]
        except ValueError as error:  # pydantic.ValidationError is a ValueError
            raise _Failure(f"invalid {cls.__qualname__}: {error}") from error
    raise _Failure(f"unsupported type hint {_name(hint)}")


def _decode_record(data: JSON, hint: Any, cls: type) -> Any:
    if type(data) is not dict:
        raise _mismatch(hint, data)
    fields = _fields_of(cls)
    if unknown := [key for key in data if key not in fields]:
        raise _Failure(f"unknown fields for {cls.__qualname__}: {', '.join(unknown)}")
    if missing := [name for name, (_, needed) in fields.items() if needed and name not in data]:
        raise _Failure(f"missing fields for {cls.__qualname__}: {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name, item in data.items():
        try:
            values[name] = _decode(item, fields[name][0])
        except _Failure as failure:
            failure.path.append(f".{name}")
            raise
    try:
        return cls(**values)
    except Exception as error:  # __post_init__ validation and the like, in user code
        raise _Failure(f"{cls.__qualname__}() raised {error!r}") from error


# ---------------------------------------------------------------- coders by hint
#
# Every payload goes through _encode or _decode at its top level with its
# parameter's or result's hint, and most hints are the same few: Any, a plain
# scalar, a dict of str keys, a list. For those, encoder_for and decoder_for
# build (once per hint) a function that does the common case directly, and
# hands anything else, including every value that fails, to _encode or _decode
# from the start: the results, and the errors with their paths, are theirs.


def _dict_args(hint: Any) -> tuple[bool, Any] | None:
    """(True, value hint) for a dict hint whose keys are str (or anything), else None."""
    origin, args = _split(hint)
    if origin not in _DICTS:
        return None
    key, value = args or (Any, Any)
    return (True, value) if key is str or key is Any or key is object else None


def _list_item(hint: Any) -> tuple[bool, Any] | None:
    """(True, item hint) for a list or Sequence hint, else None."""
    origin, args = _split(hint)
    if origin not in _LISTS or len(args) > 1:
        return None
    return True, (args[0] if args else Any)


def _dict_coder(
    code_item: Callable[[Any], Any], slow: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """For a dict hint: a dict of ASCII str keys (what JSON gives back, mostly),
    each value by ``code_item``; anything else, and any failure, by ``slow``."""

    def code_dict(value: Any) -> Any:
        if type(value) is dict:
            out: dict[str, Any] = {}
            try:
                for key, item in value.items():
                    if type(key) is not str or not key.isascii():
                        break
                    out[key] = code_item(item)
                else:
                    return out
            except _Failure:
                pass  # slow says where, and what
        return slow(value)

    return code_dict


def _list_coder(
    code_item: Callable[[Any], Any], slow: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """For a list hint: a list, each item by ``code_item``; anything else, and
    any failure, by ``slow``."""

    def code_list(value: Any) -> Any:
        if type(value) is list:
            try:
                return [code_item(item) for item in value]
            except _Failure:
                pass
        return slow(value)

    return code_list


def _build_encoder(hint: Any) -> Callable[[Any], JSON]:
    if hint is Any or hint is object:
        return _encode_value
    if isinstance(hint, type) and hint in _SAME:
        if hint is str:
            return lambda value: (
                value if type(value) is str and value.isascii() else _encode(value, str)
            )
        return lambda value: value if type(value) is hint else _encode(value, hint)

    def slow(value: Any) -> JSON:
        return _encode(value, hint)

    if (as_dict := _dict_args(hint)) is not None:
        return _dict_coder(encoder_for(as_dict[1]), slow)
    if (as_list := _list_item(hint)) is not None:
        return _list_coder(encoder_for(as_list[1]), slow)
    return slow


def _build_decoder(hint: Any) -> Callable[[JSON], Any]:
    if hint is Any or hint is object:
        return fresh
    if isinstance(hint, type) and hint in _SAME:
        return lambda data: data if type(data) is hint else _decode(data, hint)

    def slow(data: JSON) -> Any:
        return _decode(data, hint)

    if (as_dict := _dict_args(hint)) is not None:
        return _dict_coder(decoder_for(as_dict[1]), slow)
    if (as_list := _list_item(hint)) is not None:
        return _list_coder(decoder_for(as_list[1]), slow)
    return slow


encoder_for: Callable[[Any], Callable[[Any], JSON]] = by_identity(_build_encoder)
"""The function that encodes a value of ``hint``: ``_encode(value, hint)``, quicker."""
decoder_for: Callable[[Any], Callable[[JSON], Any]] = by_identity(_build_decoder)
"""The function that decodes stored ``hint``: ``_decode(data, hint)``, quicker."""
