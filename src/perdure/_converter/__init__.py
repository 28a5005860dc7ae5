"""Payloads: values to JSON and back, steered by type hints (read in ``.hints``).

:class:`DataConverter` turns values into JSON-able objects (``to_json``/``from_json``) and those
into bytes (``dumps``/``loads``) through a chain of :class:`PayloadCodec`. With a hint
of ``Any`` the encoding follows the value's runtime type, and decoding returns plain JSON.

At rest: every *top-level* payload the engine stores (an argument, a result, a signal payload,
a state value, a side-effect value, heartbeat details) goes through ``to_json``/``from_json``
(or ``encode_args``/``decode_args``, ``encode_result``/``decode_result``). With codecs, ``to_json``
returns an opaque envelope ``{"__perdure_codec__": 1, "data": "<base64>"}`` holding the codec-
encoded JSON bytes, and ``from_json`` opens it; without codecs the JSON itself is stored. Either
way a payload larger than ``max_payload_bytes`` (as stored) is refused with a
:class:`PayloadError` that names it and its size, where the value is produced.

Supported: ``None``, ``bool``, ``int``, ``float`` (takes an int, never a bool), ``str``;
``list``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``set``, ``frozenset``, ``dict`` and their
``Sequence``/``Mapping``/``Set`` ABCs; ``Optional``, ``Union``, ``X | Y``, ``Literal``,
``Annotated``, ``NewType``, ``Any``, ``object``; dataclasses, ``TypedDict`` and ``NamedTuple``
(each a JSON object keyed by field name); pydantic v2 models; ``datetime``/``date``/``time``
(ISO 8601, offset kept); ``timedelta`` (float seconds: exact to the microsecond under ~140
years); ``UUID`` and ``Decimal`` (strings); enums (by value); ``bytes``/``bytearray`` (base64).

Dict keys are written as strings (str, int, enum, UUID, ... keys; parsed back by the key hint).
Sets are written sorted, so equal values give equal payloads whatever the hash seed. A union
tries its members in order, except that JSON ``3`` goes to an ``int`` member and ``3.0`` to a
``float`` member first, so numbers keep their type in ``int | float``.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, NoReturn, Protocol, Union, get_origin
from uuid import UUID

from perdure._converter.hints import (
    _BY_NAME,
    _POSITIONAL,
    _VAR_KEYWORD,
    _VAR_POSITIONAL,
    _fields_of,
    _is_model,
    _is_record,
    _shape,
    _split,
)
from perdure.errors import PayloadError

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "ENVELOPE_KEY",
    "JSON",
    "DataConverter",
    "PayloadCodec",
    "default_converter",
]

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


ENVELOPE_KEY = "__perdure_codec__"
"""The key that marks a codec envelope. A top-level payload may not use it as a dict key."""
_ENVELOPE_VERSION = 1
DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
"""The default ``max_payload_bytes``: 2 MiB per payload as stored."""


class PayloadCodec(Protocol):
    """Transforms payload bytes at rest (compression, encryption); ``decode`` undoes ``encode``.

    ``decode`` raises (any exception) on bytes it cannot read; the converter turns that into
    a :class:`PayloadError` naming the payload."""

    def encode(self, data: bytes) -> bytes: ...

    def decode(self, data: bytes) -> bytes: ...


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


def _seconds(data: float) -> timedelta:
    return timedelta(seconds=data)


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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _sort(items: list[JSON]) -> list[JSON]:
    try:
        return sorted(items)
    except TypeError:  # mixed or unorderable items: order by their canonical text
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


# For the size check: to_json's output is a tree (never circular), and escaped ASCII
# is the C encoder's fastest path.
_MEASURE = json.JSONEncoder(check_circular=False)
_INT64 = 2**63


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 10 * 1024 else f"{n:,} bytes ({n / 1024 / 1024:.2f} MiB)"


class DataConverter:
    """Encodes values to JSON by their type hints, and JSON to bytes through ``codecs``.

    ``codecs`` apply in order on the way in (so ``[ZlibCodec(), AesGcmCodec(...)]``
    compresses, then encrypts) and in reverse on the way out. ``max_payload_bytes``
    (``None``: no limit) bounds each top-level payload as stored.
    """

    def __init__(
        self,
        codecs: Sequence[PayloadCodec] = (),
        *,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if max_payload_bytes is not None and max_payload_bytes < 1:
            raise ValueError(f"max_payload_bytes must be positive, not {max_payload_bytes}")
        self.codecs: tuple[PayloadCodec, ...] = tuple(codecs)
        self.max_payload_bytes = max_payload_bytes

    def to_json(self, value: Any, hint: Any = Any, *, where: str = "value") -> JSON:
        """``value`` as a JSON-able object, ready to store (an envelope when there are
        codecs); :class:`PayloadError` says where it cannot be, or that it is too large."""
        return self._seal(self._guard("encode", self._encode, value, hint, where), where)

    def from_json(self, data: JSON, hint: Any = Any, *, where: str = "value") -> Any:
        """``data`` (as :meth:`to_json` stored it) read back as a value of type ``hint``."""
        return self._guard("decode", self._decode, self._open(data, where), hint, where)

    # ------------------------------------------------------------ at rest

    def _seal(self, data: JSON, where: str) -> JSON:
        """Plain JSON -> what is stored: the JSON itself, or a codec envelope."""
        if type(data) is dict and ENVELOPE_KEY in data:
            raise PayloadError(
                f"cannot encode {where}: the dict key {ENVELOPE_KEY!r} is reserved for "
                f"perdure's codec envelopes"
            )
        limit = self.max_payload_bytes
        if self.codecs:
            try:
                raw = self.dumps(data)
            except PayloadError as error:
                raise PayloadError(f"cannot encode {where}: {error}") from error
            text = base64.b64encode(raw).decode("ascii")
            if limit is not None and len(text) > limit:
                self._too_large(where, len(text), limit, "after its codecs")
            return {ENVELOPE_KEY: _ENVELOPE_VERSION, "data": text}
        kind = type(data)
        if limit is None or data is None or kind is bool or kind is float:
            return data  # at most 24 characters: never near a sensible limit
        if kind is int and -_INT64 <= data < _INT64:
            return data
        if kind is str and 6 * len(data) + 2 <= limit:
            return data  # even fully escaped, this string fits
        try:
            # ASCII-escaped JSON is never shorter than its UTF-8 form (an escape is at least
            # as long as the bytes it stands for): measure exactly only when that bound is over.
            if len(_MEASURE.encode(data)) > limit:
                text = json.dumps(data, ensure_ascii=False)
                size = len(text.encode("utf-8", "surrogatepass"))
                if size > limit:
                    self._too_large(where, size, limit, "as JSON")
        except ValueError as error:  # an int beyond sys.get_int_max_str_digits()
            raise PayloadError(f"cannot encode {where}: {error}") from None
        return data

    @staticmethod
    def _too_large(where: str, size: int, limit: int, form: str) -> NoReturn:
        raise PayloadError(
            f"{where} is too large: {_size(size)} {form}, over the limit of {_size(limit)}; "
            f"store large data elsewhere and pass a reference, or raise the limit with "
            f"DataConverter(max_payload_bytes=...)"
        )

    def _open(self, data: JSON, where: str) -> JSON:
        """What is stored -> plain JSON (the inverse of :meth:`_seal`)."""
        if type(data) is not dict or ENVELOPE_KEY not in data:
            return data
        if not self.codecs:
            raise PayloadError(
                f"cannot decode {where}: it was stored through payload codecs (encrypted or "
                f"compressed), but this DataConverter has none; configure the same codecs "
                f"(and keys) as the program that wrote it"
            )
        version, text = data.get(ENVELOPE_KEY), data.get("data")
        if version != _ENVELOPE_VERSION or not isinstance(text, str):
            raise PayloadError(
                f"cannot decode {where}: malformed codec envelope (version {version!r}); "
                f"it was written by a newer perdure, or damaged"
            )
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError as error:
            raise PayloadError(f"cannot decode {where}: damaged codec envelope: {error}") from None
        try:
            return self.loads(raw)
        except PayloadError as error:
            raise PayloadError(f"cannot decode {where}: {error}") from error.__cause__

    def display(self, data: JSON, depth: int = 3) -> JSON:
        """Stored JSON opened for people (``describe()``, the CLI, the UI): codec envelopes
        in ``data`` — at the top or within ``depth`` levels of lists and dicts, such as a
        run's ``{"args": [...], "kwargs": {...}}`` or its state — are opened; one that cannot
        be opened (a missing key) is left as stored rather than failing the whole view."""
        if type(data) is dict:
            if ENVELOPE_KEY in data:
                try:
                    return self._open(data, "value")
                except PayloadError:
                    return data
            if depth > 0:
                return {key: self.display(value, depth - 1) for key, value in data.items()}
        elif type(data) is list and depth > 0:
            return [self.display(item, depth - 1) for item in data]
        return data

    def dumps(self, data: JSON) -> bytes:
        """Compact UTF-8 JSON, then each codec in order."""
        try:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            raw = text.encode("utf-8")
        except (TypeError, ValueError, RecursionError) as error:
            raise PayloadError(f"cannot serialise payload: {error}") from error
        for codec in self.codecs:
            raw = codec.encode(raw)
        return raw

    def loads(self, raw: bytes) -> JSON:
        """Undo :meth:`dumps`: the codecs in reverse order, then JSON."""
        try:
            for codec in reversed(self.codecs):
                raw = codec.decode(raw)
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except Exception as error:  # codecs raise what they like on corrupt input (zlib.error)
            raise PayloadError(f"cannot read payload: {error}") from error

    def encode_args(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[JSON], dict[str, JSON]]:
        """A call's arguments, encoded by ``fn``'s parameter hints. Arguments left to their
        defaults are not written, so the function's current default applies on replay."""
        shape = _shape(fn)
        fits = shape.positional
        if fits is not None and not kwargs and fits[0] <= len(args) <= fits[1]:
            # Plain positional parameters, filled in order: what bind() would say, cheaply.
            bound = {param.name: value for param, value in zip(shape.params, args, strict=False)}
        else:
            try:
                bound = shape.signature.bind(*args, **kwargs).arguments
            except TypeError as error:
                raise TypeError(f"{shape.name}(): {error}") from None
        positional: list[JSON] = []
        keywords: dict[str, JSON] = {}
        # After a parameter left to its default, later ones travel by name: by position,
        # decode_args would shift them into the gap.
        contiguous = True
        for name, kind, hint, where in shape.params:
            if name not in bound:
                contiguous = contiguous and kind is _VAR_POSITIONAL
            elif kind is _VAR_POSITIONAL:
                # Each item is a payload of its own, sealed (and size-checked) alone.
                items = self._guard("encode", self._encode, bound[name], hint, where)
                positional.extend(
                    self._seal(item, f"{where}[{index}]") for index, item in enumerate(items)
                )
            elif kind is _VAR_KEYWORD:
                items = self._guard("encode", self._encode, bound[name], hint, where)
                keywords.update(
                    {key: self._seal(v, f"{where}[{key!r}]") for key, v in items.items()}
                )
            elif contiguous and kind in _POSITIONAL:
                positional.append(self.to_json(bound[name], hint, where=where))
            else:
                keywords[name] = self.to_json(bound[name], hint, where=where)
        return positional, keywords

    def decode_args(
        self, fn: Callable[..., Any], args: Sequence[JSON], kwargs: Mapping[str, JSON]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Inverse of :meth:`encode_args`. Arguments that no longer fit ``fn`` (its signature
        changed since they were written) raise :class:`PayloadError`."""
        shape = _shape(fn)
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        extra = dict(kwargs)
        for name, kind, hint, where in shape.params:
            if kind in _POSITIONAL and len(positional) < len(args):
                positional.append(self.from_json(args[len(positional)], hint, where=where))
            elif kind is _VAR_POSITIONAL:
                rest = [
                    self._open(item, f"{where}[{index}]")
                    for index, item in enumerate(args[len(positional) :])
                ]
                positional.extend(self._guard("decode", self._decode, rest, hint, where))
            elif kind is _VAR_KEYWORD:
                opened = {key: self._open(v, f"{where}[{key!r}]") for key, v in extra.items()}
                extra = self._guard("decode", self._decode, opened, hint, where)
            if kind in _BY_NAME and name in extra:
                keywords[name] = self.from_json(extra.pop(name), hint, where=where)
        positional.extend(args[len(positional) :])  # surplus and unknown names: bind() reports
        keywords.update(extra)
        fits = shape.positional
        if fits is not None and not keywords and fits[0] <= len(positional) <= fits[1]:
            return positional, keywords  # what bind() would accept, without its cost
        try:
            shape.signature.bind(*positional, **keywords)
        except TypeError as error:
            raise PayloadError(f"cannot decode arguments of {shape.name}: {error}") from None
        return positional, keywords

    def encode_result(self, fn: Callable[..., Any], value: Any) -> JSON:
        """``fn``'s result encoded by its return hint (``X`` for ``async def f() -> X``)."""
        shape = _shape(fn)
        return self.to_json(value, shape.returns, where=f"result of {shape.name}")

    def decode_result(self, fn: Callable[..., Any], data: JSON) -> Any:
        """Inverse of :meth:`encode_result`."""
        shape = _shape(fn)
        return self.from_json(data, shape.returns, where=f"result of {shape.name}")

    def _guard(
        self, verb: str, step: Callable[[Any, Any], Any], data: Any, hint: Any, where: str
    ) -> Any:
        """Run ``step``, turning an inner failure into a PayloadError that says where it was."""
        try:
            return step(data, hint)
        except _Failure as failure:
            if failure.path:
                where = f"{where} at {''.join(reversed(failure.path)).lstrip('.')}"
            raise PayloadError(f"cannot {verb} {where}: {failure.message}") from failure.__cause__
        except RecursionError:  # also how a circular structure ends
            message = f"cannot {verb} {where}: it is nested too deeply, or contains itself"
            raise PayloadError(message) from None

    # ---------------------------------------------------------------- encoding

    def _encode(self, value: Any, hint: Any) -> JSON:
        if hint is Any or hint is object:
            return self._encode_value(value)
        origin, args = _split(hint)
        if origin is Any or origin is object:
            return self._encode_value(value)
        if origin in _UNIONS:
            return self._encode_union(value, hint, args)
        if origin is Literal:
            if any(type(value) is type(arg) and value == arg for arg in args):
                return self._encode_value(value)
            raise _mismatch(hint, value)
        if not _matches(value, origin):
            raise _mismatch(hint, value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Failure(f"expected {_name(hint)}, got {len(value)} items")
            return self._encode_items(value, args)
        if origin is tuple or origin in _LISTS:
            return self._encode_items(value, itertools.repeat(args[0] if args else Any))
        if origin in _SETS:
            return _sort(self._encode_items(value, itertools.repeat(args[0] if args else Any)))
        if origin in _DICTS:
            return self._encode_dict(value, *(args or (Any, Any)))
        if typing.is_typeddict(origin):
            return self._encode_record(value, origin)
        return self._encode_value(value)  # a class matched: the value's own type knows the rest

    def _encode_value(self, value: Any) -> JSON:
        """Encode by the value's runtime type: the hint said nothing more."""
        kind = type(value)
        if kind in _JSON_SCALARS:
            if kind is str:
                return value if value.isascii() else _check_text(value)
            if kind is float and not math.isfinite(value):
                raise _Failure(f"{value!r} is not valid JSON (NaN and infinities cannot be stored)")
            return value
        if isinstance(value, enum.Enum):
            return self._encode_value(value.value)
        if isinstance(value, (str, int, float)):
            if isinstance(value, str) and not value.isascii():
                _check_text(value)
            if isinstance(value, float) and not math.isfinite(value):
                raise _Failure(f"{value!r} is not valid JSON (NaN and infinities cannot be stored)")
            return value  # subclasses, which json writes as their base type
        if isinstance(value, tuple) and hasattr(kind, "_fields"):
            return self._encode_record(value, kind)
        if isinstance(value, (list, tuple)):
            return self._encode_items(value, itertools.repeat(Any))
        if isinstance(value, dict):
            return self._encode_dict(value, Any, Any)
        if isinstance(value, (set, frozenset)):
            return _sort(self._encode_items(value, itertools.repeat(Any)))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._encode_record(value, kind)
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

    def _encode_union(self, value: Any, hint: Any, members: tuple[Any, ...]) -> JSON:
        if value is None and _NONE in members:
            return None
        best: _Failure | None = None
        for member in members:
            try:
                return self._encode(value, member)
            except _Failure as failure:
                if best is None or len(failure.path) > len(best.path):
                    best = failure
        # The member that got furthest into the value explains the problem best.
        raise best if best is not None and best.path else _mismatch(hint, value)

    def _encode_items(self, value: Any, hints: Iterable[Any]) -> list[JSON]:
        out: list[JSON] = []
        for index, (item, hint) in enumerate(zip(value, hints, strict=False)):
            try:
                out.append(self._encode(item, hint))
            except _Failure as failure:
                failure.path.append(f"[{index}]")
                raise
        return out

    def _encode_dict(self, value: Any, key_hint: Any, value_hint: Any) -> JSON:
        out: dict[str, JSON] = {}
        for key, item in value.items():
            try:
                text = self._encode(key, key_hint)
                if type(text) is int:
                    text = str(text)
                elif type(text) is not str:
                    raise _Failure(f"a dict key of type {type(key).__qualname__} is not supported")
                if text in out:
                    raise _Failure(f"two keys are both written as {text!r}")
                out[text] = self._encode(item, value_hint)
            except _Failure as failure:
                failure.path.append(f"[{key!r}]")
                raise
        return out

    def _encode_record(self, value: Any, cls: type) -> JSON:
        fields = _fields_of(cls)
        is_dict = isinstance(value, dict)  # a TypedDict
        if is_dict and (unknown := [key for key in value if key not in fields]):
            raise _Failure(f"unknown keys for {cls.__qualname__}: {', '.join(map(str, unknown))}")
        out: dict[str, JSON] = {}
        for name, (hint, _) in fields.items():
            if is_dict and name not in value:
                continue
            try:
                out[name] = self._encode(value[name] if is_dict else getattr(value, name), hint)
            except _Failure as failure:
                failure.path.append(f".{name}")
                raise
        return out

    # ---------------------------------------------------------------- decoding

    def _decode(self, data: JSON, hint: Any) -> Any:
        if hint is Any or hint is object:
            return data
        origin, args = _split(hint)
        kind = type(data)
        if origin in (bool, int, str):
            if kind is origin:
                return data
        elif origin is float or origin is timedelta:
            if kind is int or kind is float:
                return _parse(float if origin is float else _seconds, hint, data)
        elif origin in _PARSERS:
            if kind is str:
                return _parse(_PARSERS[origin], hint, data)
        elif origin is None or origin is _NONE:
            if data is None:
                return None
        elif origin is Any or origin is object:
            return data
        elif origin in _UNIONS:
            return self._decode_union(data, hint, args)
        elif origin is Literal:
            for arg in args:
                written = arg.value if isinstance(arg, enum.Enum) else arg
                if type(written) is kind and written == data:
                    return arg
        elif origin is tuple or origin in _LISTS or origin in _SETS:
            if kind is list:
                return self._decode_sequence(data, hint, origin, args)
        elif origin in _DICTS:
            if kind is dict:
                return self._decode_dict(data, *(args or (Any, Any)))
        elif isinstance(origin, type):
            return self._decode_class(data, hint, origin)
        else:
            raise _Failure(f"unsupported type hint {_name(hint)}")
        raise _mismatch(hint, data)

    def _decode_union(self, data: JSON, hint: Any, members: tuple[Any, ...]) -> Any:
        # A number goes to a member of exactly its type first: 3 stays an int in `float | int`.
        if type(data) in (int, float) and type(data) in members:
            members = (type(data), *members)
        best: _Failure | None = None
        for member in members:
            try:
                return self._decode(data, member)
            except _Failure as failure:
                if best is None or len(failure.path) > len(best.path):
                    best = failure
        raise best if best is not None and best.path else _mismatch(hint, data)

    def _decode_sequence(self, data: list[JSON], hint: Any, origin: Any, args: Any) -> Any:
        hints: Iterable[Any] = itertools.repeat(args[0] if args else Any)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(data) != len(args):
                raise _Failure(f"expected {_name(hint)}, got {len(data)} items")
            hints = args
        items: list[Any] = []
        for index, (item, item_hint) in enumerate(zip(data, hints, strict=False)):
            try:
                items.append(self._decode(item, item_hint))
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

    def _decode_dict(self, data: dict[str, JSON], key_hint: Any, value_hint: Any) -> Any:
        out: dict[Any, Any] = {}
        for key, item in data.items():
            try:
                out[self._decode_key(key, key_hint)] = self._decode(item, value_hint)
            except _Failure as failure:
                failure.path.append(f"[{key!r}]")
                raise
        return out

    def _decode_key(self, key: str, hint: Any) -> Any:
        if hint is int:
            return _parse(int, hint, key)
        try:
            return self._decode(key, hint)
        except _Failure as failure:
            try:  # the key may have been an int (or an int-valued enum) before it was written
                number = int(key)
            except ValueError:
                raise failure from None
            return self._decode(number, hint)

    def _decode_class(self, data: JSON, hint: Any, cls: type) -> Any:
        if issubclass(cls, enum.Enum):
            return _parse(cls, hint, data)
        if _is_record(cls):
            return self._decode_record(data, hint, cls)
        if _is_model(cls):
            try:
                return cls.model_validate(data)  # type: ignore[attr-defined]
            except ValueError as error:  # pydantic.ValidationError is a ValueError
                raise _Failure(f"invalid {cls.__qualname__}: {error}") from error
        raise _Failure(f"unsupported type hint {_name(hint)}")

    def _decode_record(self, data: JSON, hint: Any, cls: type) -> Any:
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
                values[name] = self._decode(item, fields[name][0])
            except _Failure as failure:
                failure.path.append(f".{name}")
                raise
        try:
            return cls(**values)
        except Exception as error:  # __post_init__ validation and the like, in user code
            raise _Failure(f"{cls.__qualname__}() raised {error!r}") from error


default_converter = DataConverter()
"""The converter used when none is configured: plain JSON, no codecs."""
